"""The local stack on moto matches infra/template.json, delivers events, and
provisioning twice creates nothing twice."""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from devstack.moto_server import EmbeddedMotoServer
from devstack.provision import (
    LOCAL_SKIPPED,
    LocalStack,
    ProvisionError,
    load_template,
    provision,
)
from functions.common.authz import Role

ROLES = {role.value for role in Role}  # the authz table is the one list of roles


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Callable[[str], Any]:
    def make(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=stack.endpoint,
            region_name=stack.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    return make


def _props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return props


@pytest.fixture(scope="module")
def table(stack: LocalStack, client: Callable[[str], Any]) -> dict[str, Any]:
    described: dict[str, Any] = client("dynamodb").describe_table(TableName=stack.table_name)[
        "Table"
    ]
    return described


def test_env_has_exactly_the_contract_keys(stack: LocalStack) -> None:
    env = stack.env()
    assert set(env) == {
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "EMR_TABLE_NAME",
        "EMR_DATA_KEY_ID",
        "EMR_PSYCHOTHERAPY_KEY_ID",
        "EMR_USER_POOL_ID",
        "EMR_APP_CLIENT_ID",
        "EMR_JWT_ISSUER",
        "EMR_JWKS_URL",
        "EMR_EVENT_BUS_NAME",
        "EMR_ARCHIVE_BUCKET",
        "EMR_STREAM_ARN",
        "EMR_BILLING_QUEUE_URL",
        "EMR_AUDIT_QUEUE_URL",
        "EMR_ALERTS_QUEUE_URL",
        "EMR_BILLING_DLQ_URL",
        "EMR_AUDIT_DLQ_URL",
        "EMR_ALERTS_DLQ_URL",
        "EMR_MAX_RECEIVES",
        "EMR_LEDGER_BUCKET",
        "EMR_ALERTS_TOPIC_PREFIX",
        "EMR_MESSAGING_KEY_ID",
    }
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint
    assert env["EMR_EVENT_BUS_NAME"] == "emr"
    assert env["EMR_STREAM_ARN"] == stack.stream_arn
    assert stack.table_name == "emr-local"


def test_table_keys_and_index_match_template(
    template: dict[str, Any], table: dict[str, Any]
) -> None:
    props = _props(template, "EmrTable")
    assert table["KeySchema"] == props["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        props["AttributeDefinitions"], key=str
    )
    assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
    local = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    for index in props["GlobalSecondaryIndexes"]:
        assert local[index["IndexName"]]["KeySchema"] == index["KeySchema"]
        assert local[index["IndexName"]]["Projection"] == index["Projection"]
    assert set(local) == {i["IndexName"] for i in props["GlobalSecondaryIndexes"]}


def test_table_stream_encryption_and_protection(
    stack: LocalStack, template: dict[str, Any], table: dict[str, Any]
) -> None:
    props = _props(template, "EmrTable")
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": props["StreamSpecification"]["StreamViewType"],
    }
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert table["LatestStreamArn"] == stack.stream_arn
    sse = table["SSEDescription"]
    assert (sse["Status"], sse["SSEType"]) == ("ENABLED", "KMS")
    # moto reports the key id under KMSMasterKeyArn; AWS reports the ARN.
    assert sse["KMSMasterKeyArn"].endswith(stack.table_key_id)
    assert table["DeletionProtectionEnabled"] is True


def test_table_pitr_and_ttl(stack: LocalStack, client: Callable[[str], Any]) -> None:
    dynamodb = client("dynamodb")
    backups = dynamodb.describe_continuous_backups(TableName=stack.table_name)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    ttl = dynamodb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_keys_rotate_and_have_their_aliases(
    stack: LocalStack, client: Callable[[str], Any]
) -> None:
    kms = client("kms")
    table_key = kms.describe_key(KeyId="alias/emr-table")["KeyMetadata"]
    data_key = kms.describe_key(KeyId="alias/emr-data")["KeyMetadata"]
    psychotherapy_key = kms.describe_key(KeyId="alias/emr-psychotherapy")["KeyMetadata"]
    assert table_key["KeyId"] == stack.table_key_id
    assert data_key["Arn"] == stack.data_key_id
    assert psychotherapy_key["Arn"] == stack.psychotherapy_key_id != stack.data_key_id
    assert stack.env()["EMR_PSYCHOTHERAPY_KEY_ID"] == stack.psychotherapy_key_id
    for key in (table_key, data_key, psychotherapy_key):
        assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    policy = json.loads(
        kms.get_key_policy(KeyId=stack.table_key_id, PolicyName="default")["Policy"]
    )
    via = next(s for s in policy["Statement"] if "Condition" in s)["Condition"]["StringEquals"]
    assert via["kms:ViaService"] == f"dynamodb.{stack.region}.amazonaws.com"  # Fn::Sub resolved


def test_data_key_works_under_a_tenant_context(
    stack: LocalStack, client: Callable[[str], Any]
) -> None:
    kms = client("kms")
    context = {"tenant": "t1", "class": "phi"}
    data_key = kms.generate_data_key(
        KeyId=stack.data_key_id, KeySpec="AES_256", EncryptionContext=context
    )
    plain = kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)
    assert plain["Plaintext"] == data_key["Plaintext"]


def test_user_pool_has_tenant_attribute_and_groups(
    stack: LocalStack, client: Callable[[str], Any]
) -> None:
    cognito = client("cognito-idp")
    pool = cognito.describe_user_pool(UserPoolId=stack.user_pool_id)["UserPool"]
    (tenant,) = [a for a in pool["SchemaAttributes"] if a["Name"] == "custom:tenant"]
    assert tenant["Mutable"] is False
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    groups = cognito.list_groups(UserPoolId=stack.user_pool_id)["Groups"]
    assert {g["GroupName"] for g in groups} == ROLES
    assert pool["MfaConfiguration"] == "OPTIONAL"


def test_app_client_exists_as_in_template(
    stack: LocalStack, template: dict[str, Any], client: Callable[[str], Any]
) -> None:
    props = _props(template, "EmrUserPoolClient")
    described = client("cognito-idp").describe_user_pool_client(
        UserPoolId=stack.user_pool_id, ClientId=stack.app_client_id
    )["UserPoolClient"]
    assert described["ClientName"] == props["ClientName"]
    assert set(described["ExplicitAuthFlows"]) == set(props["ExplicitAuthFlows"])
    assert "custom:tenant" not in described["WriteAttributes"]
    assert "ClientSecret" not in described


def test_jwks_and_issuer(stack: LocalStack, client: Callable[[str], Any]) -> None:
    import urllib.request

    with urllib.request.urlopen(stack.jwks_url(), timeout=5) as response:
        keys = json.load(response)["keys"]
    assert keys and keys[0]["alg"] == "RS256"
    assert stack.issuer().endswith(f"/{stack.user_pool_id}")


def test_bus_and_rules_match_template(
    stack: LocalStack, template: dict[str, Any], client: Callable[[str], Any]
) -> None:
    events = client("events")
    assert events.describe_event_bus(Name=stack.event_bus_name)["Name"] == "emr"
    rules = events.list_rules(EventBusName="emr")["Rules"]
    local = {json.dumps(json.loads(r["EventPattern"]), sort_keys=True): r for r in rules}
    for logical_id in ("EmrAuditRule", "EmrBillingRule", "EmrAlertsRule"):
        props = _props(template, logical_id)
        rule = local[json.dumps(props["EventPattern"], sort_keys=True)]
        assert rule["State"] == "ENABLED"
        (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName="emr")["Targets"]
        queue = props["Targets"][0]["Arn"]["Fn::GetAtt"][0]
        assert target["Arn"] == _queue_arn(client, stack.queue_urls[queue])


def _queue_arn(client: Callable[[str], Any], url: str) -> str:
    attributes = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn: str = attributes["Attributes"]["QueueArn"]
    return arn


def test_queues_redrive_to_their_dlqs(stack: LocalStack, client: Callable[[str], Any]) -> None:
    sqs = client("sqs")
    assert set(stack.queue_urls) == {
        "EmrAuditQueue",
        "EmrAuditDLQ",
        "EmrBillingQueue",
        "EmrBillingDLQ",
        "EmrAlertsQueue",
        "EmrAlertsDLQ",
        "EmrStreamDLQ",
        "EmrScheduleDLQ",
    }
    for name in ("Audit", "Billing", "Alerts"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.queue_urls[f"Emr{name}Queue"], AttributeNames=["All"]
        )["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == _queue_arn(
            client, stack.queue_urls[f"Emr{name}DLQ"]
        )
        assert int(redrive["maxReceiveCount"]) == 5
        assert attributes["VisibilityTimeout"] == "180"
        assert attributes["KmsMasterKeyId"] == stack.messaging_key_id


def test_archive_bucket_is_encrypted_with_the_data_key(
    stack: LocalStack, client: Callable[[str], Any]
) -> None:
    s3 = client("s3")
    (rule,) = s3.get_bucket_encryption(Bucket=stack.archive_bucket)[
        "ServerSideEncryptionConfiguration"
    ]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": stack.data_key_id,
    }
    assert rule["BucketKeyEnabled"] is True
    assert s3.get_bucket_versioning(Bucket=stack.archive_bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=stack.archive_bucket)
    assert all(block["PublicAccessBlockConfiguration"].values())


def test_event_on_bus_reaches_the_audit_queue(
    stack: LocalStack, client: Callable[[str], Any]
) -> None:
    marker = str(uuid.uuid4())
    result = client("events").put_events(
        Entries=[
            {
                "EventBusName": stack.event_bus_name,
                "Source": "emr.patients",
                "DetailType": "infra.test",
                "Detail": json.dumps({"marker": marker}),
            }
        ]
    )
    assert result["FailedEntryCount"] == 0
    assert _receive_marked(client("sqs"), stack.queue_urls["EmrAuditQueue"], marker)


def _receive_marked(sqs: Any, url: str, marker: str, timeout: float = 10.0) -> bool:
    """Find (and delete) our message; others stay visible for the real consumers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=0
        ).get("Messages", [])
        for message in messages:
            if json.loads(message["Body"]).get("detail", {}).get("marker") == marker:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return True
    return False


def _inventory(client: Callable[[str], Any], stack: LocalStack) -> Counter[str]:
    cognito = client("cognito-idp")
    pools = cognito.list_user_pools(MaxResults=60)["UserPools"]
    clients = cognito.list_user_pool_clients(UserPoolId=stack.user_pool_id, MaxResults=60)
    return Counter(
        {
            "pools": len(pools),
            "clients": len(clients["UserPoolClients"]),
            "groups": len(cognito.list_groups(UserPoolId=stack.user_pool_id)["Groups"]),
            "keys": len(client("kms").list_keys()["Keys"]),
            "aliases": len(client("kms").list_aliases()["Aliases"]),
            "queues": len(client("sqs").list_queues().get("QueueUrls", [])),
            "tables": len(client("dynamodb").list_tables()["TableNames"]),
            "buses": len(client("events").list_event_buses()["EventBuses"]),
            "rules": len(client("events").list_rules(EventBusName="emr")["Rules"]),
            "buckets": len(client("s3").list_buckets()["Buckets"]),
            "archives": len(client("events").list_archives()["Archives"]),
            "trails": len(client("cloudtrail").describe_trails()["trailList"]),
        }
    )


_WRITES = re.compile(r"\.(Create|Put|Update|Enable|Set|Tag)|^http\.PUT$")


def test_provision_twice_reuses_everything(
    stack: LocalStack, moto: EmbeddedMotoServer, client: Callable[[str], Any]
) -> None:
    before = _inventory(client, stack)
    calls_before = moto.counter.snapshot()
    again = provision(stack.endpoint)
    calls = moto.counter.snapshot() - calls_before
    assert again == stack
    assert _inventory(client, stack) == before
    assert before["pools"] >= 1 and before["keys"] >= 2 and before["queues"] >= 5
    writes = sorted(op for op in calls if _WRITES.search(op))
    assert writes == [], writes


def test_unknown_resource_type_is_refused_before_anything_is_created(
    stack: LocalStack, client: Callable[[str], Any], template: dict[str, Any]
) -> None:
    drifted = copy.deepcopy(template)
    drifted["Resources"]["EmrAcl"] = {"Type": "AWS::WAFv2::WebACL", "Properties": {}}
    before = _inventory(client, stack)
    with pytest.raises(ProvisionError, match=r"EmrAcl \(AWS::WAFv2::WebACL\)"):
        provision(stack.endpoint, table_name="emr-drift", template=drifted)
    assert _inventory(client, stack) == before


def test_untranslated_property_is_refused(stack: LocalStack, template: dict[str, Any]) -> None:
    drifted = copy.deepcopy(template)
    drifted["Resources"]["EmrTable"]["Properties"]["ContributorInsightsSpecification"] = {
        "Enabled": True
    }
    with pytest.raises(ProvisionError, match="ContributorInsightsSpecification"):
        provision(stack.endpoint, table_name="emr-drift-props", template=drifted)


def test_skipped_types_are_only_those_moto_need_not_create() -> None:
    assert {
        "AWS::SQS::QueuePolicy",
        "AWS::S3::BucketPolicy",
    } <= LOCAL_SKIPPED
    assert not {t for t in LOCAL_SKIPPED if t.startswith(("AWS::DynamoDB", "AWS::KMS"))}
