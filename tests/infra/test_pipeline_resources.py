"""The event pipelines' infrastructure: in infra/template.json (static) and on the
local stack built from it (moto over HTTP).

Queues and DLQs encrypted with the messaging key, redrive, rules, the bus archive,
the Object Lock ledger bucket, the CloudTrail trail with its key and bucket, and the
least-privilege roles of the pipeline functions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.provision import LocalStack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "infra" / "template.json"
MESSAGING_KEY = {"Fn::GetAtt": ["EmrMessagingKey", "Arn"]}
CONSUMERS = {  # function -> (queue, DLQ)
    "BillingConsumer": ("EmrBillingQueue", "EmrBillingDLQ"),
    "AuditConsumer": ("EmrAuditQueue", "EmrAuditDLQ"),
    "AlertsConsumer": ("EmrAlertsQueue", "EmrAlertsDLQ"),
}
SCHEDULES = ("AlertsEscalation", "LedgerArchive")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return loaded


def _props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return props


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(template: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    (policy,) = _props(template, role)["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def _grants(template: dict[str, Any], role: str) -> Iterator[tuple[str, Any]]:
    for statement in _statements(template, role).values():
        for action in _as_list(statement["Action"]):
            yield action, statement["Resource"]


# --- template: keys, queues, routing, archive -------------------------------------------


def test_messaging_key_lets_only_the_emr_rules_and_sns_use_it(template: dict[str, Any]) -> None:
    statements = {
        s["Sid"]: s for s in _props(template, "EmrMessagingKey")["KeyPolicy"]["Statement"]
    }
    assert all(
        s["Principal"] != "*" and s["Principal"] != {"AWS": "*"} for s in statements.values()
    )
    events = statements["EventBridgeRulesWriteToEncryptedQueues"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert set(events["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert events["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert events["Condition"]["ArnLike"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/emr/*"
    }
    sns = statements["SnsUsesKeyForAlertTopics"]
    assert sns["Principal"] == {"Service": "sns.amazonaws.com"}
    assert sns["Condition"]["ArnLike"]["kms:EncryptionContext:aws:sns:topicArn"][
        "Fn::Sub"
    ].endswith(":emr-alerts-*")


def test_every_queue_is_encrypted_with_the_messaging_key(template: dict[str, Any]) -> None:
    queues = {k for k, v in template["Resources"].items() if v.get("Type") == "AWS::SQS::Queue"}
    assert {"EmrAlertsQueue", "EmrAlertsDLQ", "EmrScheduleDLQ", "EmrStreamDLQ"} <= queues
    for queue in queues:
        props = _props(template, queue)
        assert props["KmsMasterKeyId"] == MESSAGING_KEY, queue
        assert "SqsManagedSseEnabled" not in props, queue
    dead = {q for q in queues if q.endswith("DLQ")}
    for queue in queues - dead:
        redrive = _props(template, queue)["RedrivePolicy"]
        assert redrive["maxReceiveCount"] == 5  # EMR_MAX_RECEIVES of the consumers
        assert redrive["deadLetterTargetArn"]["Fn::GetAtt"][0] in dead
    policy = _props(template, "EmrDeadLetterQueuePolicy")
    assert {q["Ref"] for q in policy["Queues"]} == dead  # every DLQ: TLS only, nobody sends


def test_the_bus_is_archived_for_replay(template: dict[str, Any]) -> None:
    archive = _props(template, "EmrEventArchive")
    assert archive["SourceArn"] == {"Fn::GetAtt": ["EmrEventBus", "Arn"]}
    assert archive["RetentionDays"] >= 365
    assert "EventPattern" not in archive  # every event, not a selection


def test_consumers_read_their_queue_with_partial_batch_failures(template: dict[str, Any]) -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))
    for function, (queue, _) in CONSUMERS.items():
        events = _props(template, function)["Events"]
        source = events[f"{function}SqsEventSource"]["Properties"]
        assert source["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert source["BatchSize"] == 10
        assert source["MaximumBatchingWindowInSeconds"] >= 1
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert source["ScalingConfig"]["MaximumConcurrency"] >= 2
        # AWS: a queue's visibility timeout at least 6x the function timeout
        assert _props(template, queue)["VisibilityTimeout"] >= 6 * config["lambda_timeout"]


def test_scheduled_functions_dead_letter_failed_runs(template: dict[str, Any]) -> None:
    for function in SCHEDULES:
        assert _props(template, function)["DeadLetterQueue"] == {
            "Type": "SQS",
            "TargetArn": {"Fn::GetAtt": ["EmrScheduleDLQ", "Arn"]},
        }
        grants = dict(_grants(template, f"{function}Role"))
        assert grants["sqs:SendMessage"] == {"Fn::GetAtt": ["EmrScheduleDLQ", "Arn"]}


def test_every_function_has_its_own_policy_file_in_each_stage() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))
    import app

    names = {source.name for source in app.app.event_sources} | {"api_handler"}
    assert {"billing_consumer", "ledger_archive"} <= names
    for stage in ("dev", "prod"):
        functions = config["stages"][stage]["lambda_functions"]
        assert config["stages"][stage]["autogen_policy"] is False
        assert set(functions) == names
        files = [functions[name]["iam_policy_file"] for name in names]
        assert len(set(files)) == len(files)
        assert all((ROOT / ".chalice" / file).is_file() for file in files)


# --- template: least-privilege roles of the pipeline functions -----------------------------


@pytest.mark.parametrize("function", sorted(CONSUMERS))
def test_consumer_roles_touch_only_their_own_queues(
    template: dict[str, Any], function: str
) -> None:
    queue, dlq = CONSUMERS[function]
    statements = _statements(template, f"{function}Role")
    grants = list(_grants(template, f"{function}Role"))
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert [r for a, r in grants if a == action] == [{"Fn::GetAtt": [queue, "Arn"]}]
    assert [r for a, r in grants if a == "sqs:SendMessage"] == [{"Fn::GetAtt": [dlq, "Arn"]}]
    kms = statements["MessagingKeyForOwnQueues"]
    assert kms["Resource"] == MESSAGING_KEY
    assert kms["Condition"]["StringEquals"]["kms:EncryptionContext:aws:sqs:arn"] == [
        {"Fn::GetAtt": [queue, "Arn"]},
        {"Fn::GetAtt": [dlq, "Arn"]},
    ]
    assert not [a for a, _ in grants if a.startswith(("events:", "s3:", "cloudtrail"))]


def test_only_the_alerts_functions_publish_and_only_to_tenant_alert_topics(
    template: dict[str, Any],
) -> None:
    roles = [f"{f}Role" for f in (*CONSUMERS, *SCHEDULES, "StreamPublisher")]
    for role in [*roles, "ApiHandlerRole"]:
        sns = {a: r for a, r in _grants(template, role) if a.startswith("sns:")}
        if role in {"AlertsConsumerRole", "AlertsEscalationRole"}:
            assert set(sns) == {"sns:CreateTopic", "sns:Publish"}
            assert all(r["Fn::Sub"].endswith(":emr-alerts-*") for r in sns.values())
        else:
            assert not sns, role


def test_pipeline_roles_never_get_the_psychotherapy_key(template: dict[str, Any]) -> None:
    psychotherapy = {"Fn::GetAtt": ["EmrPsychotherapyKey", "Arn"]}
    for function in (*CONSUMERS, *SCHEDULES):
        resources = [r for _, r in _grants(template, f"{function}Role")]
        assert psychotherapy not in resources, function
    # the audit ledger holds ids only: its consumer needs no data key at all
    audit = [r for a, r in _grants(template, "AuditConsumerRole") if a.startswith("kms:")]
    assert all(r == MESSAGING_KEY for r in audit)


def test_ledger_archive_writes_locked_segments_only(template: dict[str, Any]) -> None:
    statements = _statements(template, "LedgerArchiveRole")
    s3 = statements["WriteLockedLedgerSegments"]
    assert set(s3["Action"]) == {"s3:PutObject", "s3:PutObjectRetention", "s3:GetObject"}
    assert s3["Resource"] == {"Fn::Sub": "${EmrLedgerBucket.Arn}/ledger/*"}
    kms = statements["LedgerBucketKeyThroughS3"]
    assert kms["Condition"]["StringEquals"] == {
        "kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}
    }
    deletes = [a for a, _ in _grants(template, "LedgerArchiveRole") if "Delete" in a]
    assert deletes == []


def test_cloudtrail_lake_grant_exists_only_with_a_channel(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["CloudTrailChannelArn"]
    assert parameter["Default"] == ""
    policy = template["Resources"]["AuditConsumerCloudTrailLakePolicy"]
    assert policy["Condition"] == "HasCloudTrailChannel"
    assert template["Conditions"]["HasCloudTrailChannel"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "CloudTrailChannelArn"}, ""]}]
    }
    assert policy["Properties"]["Roles"] == [{"Ref": "AuditConsumerRole"}]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "cloudtrail-data:PutAuditEvents"
    assert statement["Resource"] == {"Ref": "CloudTrailChannelArn"}


# --- the local stack -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws(stack: LocalStack) -> Any:
    def make(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=stack.endpoint,
            region_name=stack.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    return make


def _take_marked(sqs: Any, url: str, marker: str) -> list[dict[str, Any]]:
    """Our messages on a queue (deleted); others stay visible for their consumers.
    EventBridge on moto delivers inside PutEvents: no waiting is needed."""
    found: list[dict[str, Any]] = []
    for _ in range(5):  # moto returns at most 10 messages a receive
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        for message in messages:
            body = json.loads(message["Body"])
            if body.get("detail", {}).get("marker") == marker:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                found.append(body)
        if not messages:
            break
    return found


@pytest.mark.parametrize(
    ("source", "detail_type", "queues"),
    [
        ("emr.measures", "safety.risk-identified.v1", {"EmrAlertsQueue", "EmrAuditQueue"}),
        ("emr.measures", "score.recorded.v1", {"EmrAuditQueue"}),
        ("emr.notes", "note.signed.v1", {"EmrBillingQueue", "EmrAuditQueue"}),
        ("emr.encounters", "encounter.finished.v1", {"EmrBillingQueue", "EmrAuditQueue"}),
    ],
)
def test_rules_route_each_event_to_its_consumers(
    stack: LocalStack, aws: Any, source: str, detail_type: str, queues: set[str]
) -> None:
    marker = str(uuid.uuid4())
    result = aws("events").put_events(
        Entries=[
            {
                "EventBusName": stack.event_bus_name,
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps({"marker": marker}),
            }
        ]
    )
    assert result["FailedEntryCount"] == 0
    sqs = aws("sqs")
    reached = {
        queue
        for queue in ("EmrAlertsQueue", "EmrAuditQueue", "EmrBillingQueue")
        if _take_marked(sqs, stack.queue_urls[queue], marker)
    }
    assert reached == queues


def test_local_queues_use_the_messaging_key_and_redrive_after_max_receives(
    stack: LocalStack, aws: Any
) -> None:
    sqs = aws("sqs")
    env = stack.env()
    assert (
        aws("kms").describe_key(KeyId="alias/emr-messaging")["KeyMetadata"]["Arn"]
        == (env["EMR_MESSAGING_KEY_ID"])
    )
    for name in ("Billing", "Audit", "Alerts"):
        url = env[f"EMR_{name.upper()}_QUEUE_URL"]
        dlq = env[f"EMR_{name.upper()}_DLQ_URL"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["KmsMasterKeyId"] == env["EMR_MESSAGING_KEY_ID"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == int(env["EMR_MAX_RECEIVES"]) == 5
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
        assert redrive["deadLetterTargetArn"] == dlq_arn["Attributes"]["QueueArn"]


def test_local_bus_has_its_archive(stack: LocalStack, aws: Any) -> None:
    events = aws("events")
    bus_arn = events.describe_event_bus(Name=stack.event_bus_name)["Arn"]
    (archive,) = [a for a in events.list_archives()["Archives"] if a["EventSourceArn"] == bus_arn]
    assert archive["RetentionDays"] == 365
    assert archive["State"] == "ENABLED"


def test_ledger_indexes_answer_queries(stack: LocalStack, aws: Any) -> None:
    dynamodb = aws("dynamodb")
    key = f"TENANT#infra-test#{uuid.uuid4()}"
    item = {"pk": {"S": key}, "sk": {"S": "X"}, "type": {"S": "infra-test"}}
    for index in ("gsi2", "gsi3"):
        item[f"{index}pk"] = {"S": f"{key}#{index}"}
        item[f"{index}sk"] = {"S": "2026-01-01T00:00:00Z"}
    dynamodb.put_item(TableName=stack.table_name, Item=item)
    try:
        for index in ("gsi2", "gsi3"):
            found = dynamodb.query(
                TableName=stack.table_name,
                IndexName=index,
                KeyConditionExpression=f"{index}pk = :p",
                ExpressionAttributeValues={":p": {"S": f"{key}#{index}"}},
            )["Items"]
            assert [i["pk"]["S"] for i in found] == [key]
    finally:
        dynamodb.delete_item(TableName=stack.table_name, Key={"pk": item["pk"], "sk": item["sk"]})
