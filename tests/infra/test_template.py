"""Static checks of infra/template.json, the fragment merged into `chalice package`.

The fragment is also merged (with Chalice's own deep merger) into a skeleton of
what Chalice generates, and the result is linted with cfn-lint twice: as the SAM
template it will be, and without the SAM transform (cfn-lint skips its IAM
action check on SAM templates). The full lint of the real packaged output is done
by the packaging tests.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.common.authz import Role

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "infra" / "template.json"
WAF_PATH = TEMPLATE_PATH.with_name("waf.json")

ROLES = {role.value for role in Role}  # the authz table is the one list of roles
# What Chalice's SAM output defines and the fragment merges into; the package test
# (tests/package) checks these names against real `chalice package` output.
FUNCTIONS = {
    "APIHandler": "ApiHandlerRole",
    "StreamPublisher": "StreamPublisherRole",
    "BillingConsumer": "BillingConsumerRole",
    "AuditConsumer": "AuditConsumerRole",
    "AlertsConsumer": "AlertsConsumerRole",
    "AlertsEscalation": "AlertsEscalationRole",
    "LedgerArchive": "LedgerArchiveRole",
}
CONSUMERS = {  # function -> (its queue, its DLQ)
    "BillingConsumer": ("EmrBillingQueue", "EmrBillingDLQ"),
    "AuditConsumer": ("EmrAuditQueue", "EmrAuditDLQ"),
    "AlertsConsumer": ("EmrAlertsQueue", "EmrAlertsDLQ"),
}
SCHEDULES = {"AlertsEscalation": "rate(5 minutes)", "LedgerArchive": "cron(15 0 * * ? *)"}
CHALICE_RESOURCES = {*FUNCTIONS, *FUNCTIONS.values(), "RestAPI"}
STREAM_EVENT = "StreamPublisherDynamodbEventSource"
FUNCTION_ENV = {
    "EMR_TABLE_NAME",
    "EMR_DATA_KEY_ID",
    "EMR_PSYCHOTHERAPY_KEY_ID",
    "EMR_USER_POOL_ID",
    "EMR_APP_CLIENT_ID",
    "EMR_EVENT_BUS_NAME",
    "EMR_ARCHIVE_BUCKET",
}
PIPELINE_ENV = {
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
    "EMR_CLOUDTRAIL_CHANNEL_ARN",
    "EMR_PUBLIC_BASE_URL",
}
DATA_ACTION_SERVICES = ("dynamodb:", "kms:", "s3:", "sqs:", "events:", "cognito-idp:")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return loaded


def _resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == type_}


def _props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return props


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of an identity policy (role policies), with its role's id."""
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type", "AWS::IAM::Role") != "AWS::IAM::Role":
            continue
        for policy in resource.get("Properties", {}).get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield logical_id, statement


def _all_statements(node: Any) -> Iterator[dict[str, Any]]:
    """Every policy statement anywhere in the template (identity, key, resource)."""
    if isinstance(node, dict):
        if "Statement" in node and "Version" in node:
            yield from _as_list(node["Statement"])
        for value in node.values():
            yield from _all_statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from _all_statements(value)


def test_template_is_two_space_indented_json() -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


def test_every_kms_key_rotates_and_is_retained(template: dict[str, Any]) -> None:
    keys = _resources(template, "AWS::KMS::Key")
    assert set(keys) == {
        "EmrTableKey",
        "EmrDataKey",
        "EmrPsychotherapyKey",
        "EmrMessagingKey",
        "EmrTrailKey",
    }
    for key in keys.values():
        assert key["Properties"]["EnableKeyRotation"] is True
        assert key["DeletionPolicy"] == "Retain"  # a retained table needs its key


def test_aliases_name_the_keys(template: dict[str, Any]) -> None:
    aliases = {
        props["AliasName"]: props["TargetKeyId"]
        for props in (r["Properties"] for r in _resources(template, "AWS::KMS::Alias").values())
    }
    assert aliases == {
        "alias/emr-table": {"Ref": "EmrTableKey"},
        "alias/emr-data": {"Ref": "EmrDataKey"},
        "alias/emr-psychotherapy": {"Ref": "EmrPsychotherapyKey"},
        "alias/emr-messaging": {"Ref": "EmrMessagingKey"},
        "alias/emr-trail": {"Ref": "EmrTrailKey"},
    }


def test_table_key_policy_allows_dynamodb_only_via_the_service(template: dict[str, Any]) -> None:
    statements = _props(template, "EmrTableKey")["KeyPolicy"]["Statement"]
    wildcard = [s for s in statements if s["Principal"] == {"AWS": "*"}]
    assert len(wildcard) == 1
    condition = wildcard[0]["Condition"]["StringEquals"]
    assert condition["kms:ViaService"] == {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}
    assert condition["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}


@pytest.mark.parametrize("key", ["EmrDataKey", "EmrPsychotherapyKey"])
def test_data_key_policies_delegate_use_to_iam(template: dict[str, Any], key: str) -> None:
    root = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    statements = _props(template, key)["KeyPolicy"]["Statement"]
    assert all(s["Principal"] == root for s in statements)
    actions = {a for s in statements for a in _as_list(s["Action"])}
    assert {"kms:GenerateDataKey", "kms:Decrypt", "kms:Put*", "kms:ScheduleKeyDeletion"} <= actions


def test_psychotherapy_key_has_the_data_key_policy_shape(template: dict[str, Any]) -> None:
    assert (
        _props(template, "EmrPsychotherapyKey")["KeyPolicy"]
        == _props(template, "EmrDataKey")["KeyPolicy"]
    )


def test_no_service_wide_wildcard_actions_anywhere(template: dict[str, Any]) -> None:
    for statement in _all_statements(template):
        if statement["Effect"] == "Deny":
            continue
        for action in _as_list(statement["Action"]):
            assert action not in {"*", "dynamodb:*", "kms:*"}, statement


def test_role_policies_grant_no_data_action_on_star(template: dict[str, Any]) -> None:
    found = list(_role_statements(template))
    assert {role for role, _ in found} == set(FUNCTIONS.values())
    for role, statement in found:
        assert statement["Effect"] == "Allow"
        assert "*" not in _as_list(statement["Resource"]), (role, statement)
        for action in _as_list(statement["Action"]):
            assert not action.endswith(":*"), (role, action)
            assert "*" not in action, (role, action)


def test_api_role_table_and_data_key_grants(template: dict[str, Any]) -> None:
    statements = {s["Sid"]: s for _, s in _role_statements(template) if _ == "ApiHandlerRole"}
    table = statements["TableItemsAndIndexes"]
    assert set(table["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    assert table["Resource"] == [
        {"Fn::GetAtt": ["EmrTable", "Arn"]},
        {"Fn::Sub": "${EmrTable.Arn}/index/*"},
    ]
    kms = statements["DataKeysUnderTenantContext"]
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert kms["Resource"] == {"Fn::GetAtt": ["EmrDataKey", "Arn"]}
    condition = kms["Condition"]
    assert condition["ForAllValues:StringEquals"] == {
        "kms:EncryptionContextKeys": ["tenant", "class"]
    }
    assert condition["Null"] == {"kms:EncryptionContextKeys": "false"}


def test_api_role_uses_the_psychotherapy_key_for_that_class_only(template: dict[str, Any]) -> None:
    statements = {s["Sid"]: s for _, s in _role_statements(template) if _ == "ApiHandlerRole"}
    kms = statements["PsychotherapyKeysUnderTenantContext"]
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert kms["Resource"] == {"Fn::GetAtt": ["EmrPsychotherapyKey", "Arn"]}
    condition = kms["Condition"]
    assert condition["ForAllValues:StringEquals"] == {
        "kms:EncryptionContextKeys": ["tenant", "class"]
    }
    assert condition["Null"] == {"kms:EncryptionContextKeys": "false"}
    assert condition["StringEquals"] == {"kms:EncryptionContext:class": "psychotherapy"}
    psychotherapy_key = {"Fn::GetAtt": ["EmrPsychotherapyKey", "Arn"]}
    others = [s for sid, s in statements.items() if sid != "PsychotherapyKeysUnderTenantContext"]
    assert all(psychotherapy_key not in _as_list(s["Resource"]) for s in others)


def test_publisher_role_reads_the_stream_and_puts_on_the_bus(template: dict[str, Any]) -> None:
    statements = [s for role, s in _role_statements(template) if role == "StreamPublisherRole"]
    by_action = {a: s["Resource"] for s in statements for a in _as_list(s["Action"])}
    stream = {"Fn::GetAtt": ["EmrTable", "StreamArn"]}
    for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
        assert by_action[action] == stream
    assert by_action["dynamodb:ListStreams"] == {"Fn::Sub": "${EmrTable.Arn}/stream/*"}
    assert by_action["events:PutEvents"] == {"Fn::GetAtt": ["EmrEventBus", "Arn"]}
    assert by_action["sqs:SendMessage"] == {"Fn::GetAtt": ["EmrStreamDLQ", "Arn"]}
    # the failure destination is encrypted with the messaging key: only for that queue
    (kms,) = [s for s in statements if s["Sid"] == "MessagingKeyForStreamDLQ"]
    assert kms["Resource"] == {"Fn::GetAtt": ["EmrMessagingKey", "Arn"]}
    assert kms["Condition"]["StringEquals"]["kms:EncryptionContext:aws:sqs:arn"] == {
        "Fn::GetAtt": ["EmrStreamDLQ", "Arn"]
    }
    # events/stream.py deletes stale search entries (conditional DeleteItem) on MODIFY
    assert by_action["dynamodb:DeleteItem"] == {"Fn::GetAtt": ["EmrTable", "Arn"]}
    # and marks delivered outbox items (delivered_at, TTL): outbox keys only
    (mark,) = [s for s in statements if s["Sid"] == "MarkOutboxDelivered"]
    assert mark["Action"] == "dynamodb:UpdateItem"
    assert mark["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == [
        "TENANT#*#OUTBOX#*"
    ]
    assert set(by_action) == {
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "events:PutEvents",
        "sqs:SendMessage",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_table_shape(template: dict[str, Any]) -> None:
    resource = template["Resources"]["EmrTable"]
    props = resource["Properties"]
    assert "TableName" not in props
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
        "gsi1pk": "S",
        "gsi1sk": "S",
        "gsi2pk": "S",
        "gsi2sk": "S",
        "gsi3pk": "S",
        "gsi3sk": "S",
    }
    indexes = props["GlobalSecondaryIndexes"]
    assert [gsi["IndexName"] for gsi in indexes] == ["gsi1", "gsi2", "gsi3"]
    for gsi in indexes:
        name = gsi["IndexName"]
        assert gsi["KeySchema"] == [
            {"AttributeName": f"{name}pk", "KeyType": "HASH"},
            {"AttributeName": f"{name}sk", "KeyType": "RANGE"},
        ]
        assert gsi["Projection"] == {"ProjectionType": "ALL"}


def test_table_protection(template: dict[str, Any]) -> None:
    props = _props(template, "EmrTable")
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] is True
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Ref": "EmrTableKey"},
    }
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_user_pool_settings(template: dict[str, Any]) -> None:
    props = _props(template, "EmrUserPool")
    (tenant,) = [a for a in props["Schema"] if a["Name"] == "tenant"]
    assert tenant["AttributeDataType"] == "String"
    assert tenant["Mutable"] is False
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    password = props["Policies"]["PasswordPolicy"]
    assert password["MinimumLength"] >= 12
    assert all(
        password[k]
        for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols")
    )
    assert props["UsernameConfiguration"] == {"CaseSensitive": False}
    assert props["MfaConfiguration"] == "OPTIONAL"
    assert props["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]


def test_client_cannot_write_its_own_tenant(template: dict[str, Any]) -> None:
    props = _props(template, "EmrUserPoolClient")
    assert props["GenerateSecret"] is False
    assert "custom:tenant" not in props["WriteAttributes"]
    assert {"custom:tenant", "email"} <= set(props["ReadAttributes"])
    assert set(props["ExplicitAuthFlows"]) == {
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
        "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    }
    assert props["PreventUserExistenceErrors"] == "ENABLED"
    assert props["IdTokenValidity"] == props["AccessTokenValidity"] == 60
    assert props["TokenValidityUnits"]["IdToken"] == "minutes"
    assert props["TokenValidityUnits"]["AccessToken"] == "minutes"


def test_groups_are_the_eight_roles(template: dict[str, Any]) -> None:
    groups = _resources(template, "AWS::Cognito::UserPoolGroup")
    names = [g["Properties"]["GroupName"] for g in groups.values()]
    assert sorted(names) == sorted(ROLES)
    assert all(g["Properties"]["UserPoolId"] == {"Ref": "EmrUserPool"} for g in groups.values())


def test_rules_use_the_literal_bus_and_route_to_queues(template: dict[str, Any]) -> None:
    assert _props(template, "EmrEventBus") == {"Name": "emr"}
    expected = {
        "EmrAuditRule": ({"source": [{"prefix": "emr."}]}, "EmrAuditQueue"),
        "EmrBillingRule": ({"source": ["emr.encounters", "emr.notes"]}, "EmrBillingQueue"),
        "EmrAlertsRule": (
            {"source": ["emr.measures"], "detail-type": ["safety.risk-identified.v1"]},
            "EmrAlertsQueue",
        ),
    }
    rules = _resources(template, "AWS::Events::Rule")
    assert set(rules) == set(expected)
    for logical_id, (pattern, queue) in expected.items():
        rule = rules[logical_id]
        assert rule["DependsOn"] == "EmrEventBus"
        assert rule["Properties"]["EventBusName"] == "emr"
        assert rule["Properties"]["EventPattern"] == pattern
        (target,) = rule["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}


def test_queues_redrive_to_dlqs(template: dict[str, Any]) -> None:
    messaging_key = {"Fn::GetAtt": ["EmrMessagingKey", "Arn"]}
    for name in ("Audit", "Billing", "Alerts"):
        queue = _props(template, f"Emr{name}Queue")
        dlq = _props(template, f"Emr{name}DLQ")
        assert queue["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [f"Emr{name}DLQ", "Arn"]},
            "maxReceiveCount": 5,
        }
        assert queue["VisibilityTimeout"] == 180
        assert queue["KmsMasterKeyId"] == dlq["KmsMasterKeyId"] == messaging_key
        assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_queue_policies_pin_the_rule_and_deny_plain_http(template: dict[str, Any]) -> None:
    for name in ("Audit", "Billing", "Alerts"):
        document = _props(template, f"Emr{name}QueuePolicy")["PolicyDocument"]
        allow, deny = document["Statement"]
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        assert allow["Action"] == "sqs:SendMessage"
        assert allow["Condition"] == {
            "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [f"Emr{name}Rule", "Arn"]}}
        }
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_archive_bucket_is_private_encrypted_and_versioned(template: dict[str, Any]) -> None:
    props = _props(template, "EmrArchiveBucket")
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["EmrDataKey", "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (deny,) = _props(template, "EmrArchiveBucketPolicy")["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("response_type", ["MISSING_AUTHENTICATION_TOKEN", "INVALID_SIGNATURE"])
def test_unknown_routes_answer_a_fhir_operation_outcome(
    template: dict[str, Any], response_type: str
) -> None:
    """Set on the SAM API itself, so the response ships with the API's deployment.
    API Gateway answers an unknown route with MISSING_AUTHENTICATION_TOKEN, or, when
    the request has an Authorization header (every client of this API sends one),
    with an IncompleteSignature 403 of type INVALID_SIGNATURE. No route uses IAM
    (SigV4) authorization, so INVALID_SIGNATURE has no other cause here."""
    responses = _props(template, "RestAPI")["GatewayResponses"]
    missing = responses[response_type]
    assert missing["StatusCode"] == 404
    body = json.loads(missing["ResponseTemplates"]["application/json"])
    assert body == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "Unknown route"}],
    }
    assert missing["ResponseParameters"]["Headers"]["Content-Type"] == "'application/fhir+json'"


def test_throttled_requests_get_a_fhir_429_with_retry_after(template: dict[str, Any]) -> None:
    throttled = _props(template, "RestAPI")["GatewayResponses"]["THROTTLED"]
    assert throttled["StatusCode"] == 429
    assert throttled["ResponseParameters"]["Headers"] == {
        "Content-Type": "'application/fhir+json'",
        "Retry-After": "'1'",
    }
    body = json.loads(throttled["ResponseTemplates"]["application/json"])
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "throttled"


def test_the_api_stage_is_throttled_by_template_parameters(template: dict[str, Any]) -> None:
    (setting,) = _props(template, "RestAPI")["MethodSettings"]
    assert setting == {
        "ResourcePath": "/*",
        "HttpMethod": "*",
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    rate = template["Parameters"]["ApiThrottlingRateLimit"]
    burst = template["Parameters"]["ApiThrottlingBurstLimit"]
    assert rate["Type"] == burst["Type"] == "Number"
    assert int(rate["MinValue"]) >= 1 and int(burst["MinValue"]) >= 1
    # far below the account's 10,000 requests/s, above what one clinic's staff sends
    assert 10 <= int(rate["Default"]) <= 1000
    assert int(rate["Default"]) <= int(burst["Default"]) <= 5 * int(rate["Default"])


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("https://api.example.org/fhir/R4", True),
        ("https://api.example.org:8443/fhir/R4", True),
        ("http://api.example.org/fhir/R4", False),
        ("javascript://x/%0a", False),
        ("https://evil.example/fhir/R4?x=1", False),
        ("https://u:p@api.example.org/fhir/R4", False),
        ("https://api.example.org/fhir/R4 x", False),
    ],
)
def test_the_public_base_url_parameter_takes_only_https_urls(
    template: dict[str, Any], value: str, accepted: bool
) -> None:
    parameter = template["Parameters"]["PublicBaseUrl"]
    assert parameter["Type"] == "String" and parameter["Default"] == ""
    assert bool(re.match(parameter["AllowedPattern"], value)) is accepted
    variables = _props(template, "APIHandler")["Environment"]["Variables"]
    assert variables["EMR_PUBLIC_BASE_URL"] == {"Ref": "PublicBaseUrl"}


def test_the_local_stack_can_still_be_provisioned_from_the_template(
    template: dict[str, Any],
) -> None:
    from devstack.provision import check_supported

    check_supported(template)  # raises on a resource type the local stack cannot create


# --- the optional WAF (infra/waf.json) -----------------------------------------------------


@pytest.fixture(scope="module")
def waf() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(WAF_PATH.read_text(encoding="utf-8"))
    return loaded


def test_waf_template_is_two_space_indented_json() -> None:
    text = WAF_PATH.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


def test_waf_is_off_unless_enabled(waf: dict[str, Any]) -> None:
    assert waf["Parameters"]["EnableWaf"]["Default"] == "false"
    assert waf["Conditions"]["WafEnabled"] == {"Fn::Equals": [{"Ref": "EnableWaf"}, "true"]}
    typed = {k: v["Type"] for k, v in waf["Resources"].items()}
    assert {k for k, t in typed.items() if t.startswith("AWS::WAFv2::")} == {
        "EmrApiWebAcl",
        "EmrApiWebAclAssociation",
    }
    for logical_id in ("EmrApiWebAcl", "EmrApiWebAclAssociation"):
        assert waf["Resources"][logical_id]["Condition"] == "WafEnabled"


def test_waf_rule_limits_each_source_ip_and_answers_a_fhir_429(waf: dict[str, Any]) -> None:
    acl = _props(waf, "EmrApiWebAcl")
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    (rule,) = acl["Rules"]
    assert rule["Statement"] == {
        "RateBasedStatement": {"Limit": {"Ref": "WafRateLimit"}, "AggregateKeyType": "IP"}
    }
    response = rule["Action"]["Block"]["CustomResponse"]
    assert response["ResponseCode"] == 429
    body = acl["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    assert json.loads(body["Content"])["issue"][0]["code"] == "throttled"
    # sampled requests would keep URLs (search values are PHI) and bearer tokens
    for config in (acl["VisibilityConfig"], rule["VisibilityConfig"]):
        assert config["SampledRequestsEnabled"] is False
    association = _props(waf, "EmrApiWebAclAssociation")
    assert association["WebACLArn"] == {"Fn::GetAtt": ["EmrApiWebAcl", "Arn"]}
    assert association["ResourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/"
        "${RestApiId}/stages/${StageName}"
    }


def test_waf_types_are_not_in_the_merged_template_until_the_local_stack_skips_them(
    waf: dict[str, Any],
) -> None:
    """The local provisioner refuses resource types it neither creates nor lists in
    LOCAL_SKIPPED; WAF is neither, so it stays a separate stack for now."""
    from devstack.provision import ProvisionError, check_supported

    with pytest.raises(ProvisionError, match="WAFv2"):
        check_supported(waf)


@pytest.mark.slow
@pytest.mark.parametrize("enabled", ["true", "false"])
def test_cfn_lint_of_the_waf_template(waf: dict[str, Any], enabled: str) -> None:
    template = copy.deepcopy(waf)
    template["Parameters"]["EnableWaf"]["Default"] = enabled
    assert _lint(template) == []


def test_functions_get_the_stack_environment(template: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        variables = _props(template, function)["Environment"]["Variables"]
        extra = {"EMR_PUBLIC_BASE_URL"} if function == "APIHandler" else set()
        if function in {*CONSUMERS, *SCHEDULES}:
            extra = PIPELINE_ENV
        assert set(variables) == FUNCTION_ENV | extra
        assert variables["EMR_EVENT_BUS_NAME"] == "emr"
        assert variables["EMR_TABLE_NAME"] == {"Ref": "EmrTable"}
        assert variables["EMR_DATA_KEY_ID"] == {"Fn::GetAtt": ["EmrDataKey", "Arn"]}
        assert variables["EMR_PSYCHOTHERAPY_KEY_ID"] == {
            "Fn::GetAtt": ["EmrPsychotherapyKey", "Arn"]
        }


def test_stream_publisher_event_source(template: dict[str, Any]) -> None:
    events = _props(template, "StreamPublisher")["Events"]
    assert set(events) == {STREAM_EVENT}
    assert events[STREAM_EVENT]["Type"] == "DynamoDB"
    props = events[STREAM_EVENT]["Properties"]
    assert props["Stream"] == {"Fn::GetAtt": ["EmrTable", "StreamArn"]}
    assert props["StartingPosition"] == "TRIM_HORIZON"
    # large batches fill PutEvents calls of 10 (events/README.md, "The publisher")
    assert props["BatchSize"] == 1000
    assert props["MaximumBatchingWindowInSeconds"] == 1
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["MaximumRetryAttempts"] == 10
    assert props["BisectBatchOnFunctionError"] is True
    assert props["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["EmrStreamDLQ", "Arn"]}}
    }


def _matches(pattern: Any, record: Any) -> bool:
    """Lambda event filtering for the subset used: nested keys, lists of literals."""
    if isinstance(pattern, list):
        return record in pattern
    return isinstance(record, dict) and all(
        key in record and _matches(value, record[key]) for key, value in pattern.items()
    )


def _record(event_name: str, item_type: str) -> dict[str, Any]:
    image = {"pk": {"S": "TENANT#t#X"}, "type": {"S": item_type}}
    return {"eventName": event_name, "dynamodb": {"NewImage": image, "OldImage": image}}


@pytest.mark.parametrize(
    ("event_name", "item_type", "delivered"),
    [
        ("INSERT", "outbox", True),  # publish to the bus
        ("MODIFY", "resource", True),  # tidy stale search entries (events/stream.py)
        ("MODIFY", "outbox", False),
        ("INSERT", "resource", False),
        ("INSERT", "audit", True),  # PhiAccessed is published from audit records
        ("INSERT", "audit-search", True),
        ("INSERT", "audit-copy", False),
        ("MODIFY", "audit", False),
    ],
)
def test_stream_filter_keeps_what_the_publisher_handles(
    template: dict[str, Any], event_name: str, item_type: str, delivered: bool
) -> None:
    props = _props(template, "StreamPublisher")["Events"][STREAM_EVENT]["Properties"]
    patterns = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    record = _record(event_name, item_type)
    assert any(_matches(pattern, record) for pattern in patterns) is delivered


def test_stream_filter_keeps_only_inserted_outbox_and_audit_items_and_modified_resources(
    template: dict[str, Any],
) -> None:
    props = _props(template, "StreamPublisher")["Events"][STREAM_EVENT]["Properties"]
    inserted = ["outbox", "audit", "audit-search"]
    assert [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]] == [
        {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": inserted}}}},
        {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"type": {"S": ["resource"]}}}},
    ]


def test_outputs(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) == {
        "TableName",
        "DataKeyArn",
        "PsychotherapyKeyArn",
        "UserPoolId",
        "UserPoolClientId",
        "EventBusName",
        "ArchiveBucket",
        "AuditQueueUrl",
        "BillingQueueUrl",
        "AlertsQueueUrl",
        "MessagingKeyArn",
        "LedgerBucket",
        "TrailBucket",
        "TrailArn",
        "EventArchiveArn",
    }


def test_typeless_entries_only_merge_into_chalice_resources(template: dict[str, Any]) -> None:
    typeless = {k for k, v in template["Resources"].items() if "Type" not in v}
    assert typeless == CHALICE_RESOURCES


def test_every_reference_names_a_resource(template: dict[str, Any]) -> None:
    known = set(template["Resources"]) | {"RestAPI"} | set(template["Parameters"])

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "Ref" in node and not node["Ref"].startswith("AWS::"):
                yield node["Ref"]
            if "Fn::GetAtt" in node:
                yield node["Fn::GetAtt"][0]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    assert set(refs(template)) <= known


# --- cfn-lint on the fragment merged into a skeleton of Chalice's output -------------------

_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def _chalice_role(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": _TRUST,
            "Policies": [
                {
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}],
                    },
                    "PolicyName": f"{name}Policy",
                }
            ],
        },
    }


def _chalice_function(handler: str, role: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Runtime": "python3.11",
            "Handler": handler,
            "CodeUri": "./deployment.zip",
            "Tags": {"aws-chalice": "version=1.34.0:stage=dev:app=emr"},
            "Tracing": "PassThrough",
            "Timeout": 60,
            "MemorySize": 512,
            "Architectures": ["x86_64"],
            "Role": {"Fn::GetAtt": [role, "Arn"]},
            "Environment": {"Variables": {"EMR_STAGE": "dev"}},
        },
    }


def _handler(function: str) -> str:
    return "app." + "_".join(w.lower() for w in re.findall(r"[A-Z][a-z]+", function))


def _chalice_skeleton() -> dict[str, Any]:
    """The shape of `chalice package` SAM output for this app (chalice 1.34)."""
    resources: dict[str, Any] = {role: _chalice_role(role) for role in FUNCTIONS.values()}
    for function, role in FUNCTIONS.items():
        if function not in {"APIHandler", "StreamPublisher"}:
            resources[function] = _chalice_function(_handler(function), role)
    for function in CONSUMERS:
        resources[function]["Properties"]["Events"] = {
            f"{function}SqsEventSource": {
                "Type": "SQS",
                "Properties": {
                    "Queue": "arn:aws:sqs:us-east-1:123456789012:placeholder",
                    "BatchSize": 10,
                    "MaximumBatchingWindowInSeconds": 0,
                },
            }
        }
    for function, schedule in SCHEDULES.items():
        resources[function]["Properties"]["Events"] = {
            f"{function}Event": {"Type": "Schedule", "Properties": {"Schedule": schedule}}
        }
    publisher = _chalice_function("app.stream_publisher", "StreamPublisherRole")
    publisher["Properties"]["Events"] = {
        STREAM_EVENT: {
            "Type": "DynamoDB",
            "Properties": {
                "Stream": "arn:aws:dynamodb:us-east-1:123456789012:table/placeholder/stream/x",
                "BatchSize": 1000,
                "StartingPosition": "TRIM_HORIZON",
                "MaximumBatchingWindowInSeconds": 1,
            },
        }
    }
    api = {"swagger": "2.0", "info": {"version": "1.0", "title": "emr"}, "paths": {}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Outputs": {"RestAPIId": {"Value": {"Ref": "RestAPI"}}},
        "Resources": {
            **resources,
            "APIHandler": _chalice_function("app.app", "ApiHandlerRole"),
            "StreamPublisher": publisher,
            "RestAPI": {
                "Type": "AWS::Serverless::Api",
                "Properties": {
                    "EndpointConfiguration": "EDGE",
                    "StageName": "api",
                    "DefinitionBody": api,
                },
            },
        },
    }


@pytest.fixture(scope="module")
def merged(template: dict[str, Any]) -> dict[str, Any]:
    from chalice.package import TemplateDeepMerger

    result: dict[str, Any] = TemplateDeepMerger().merge(
        copy.deepcopy(template), _chalice_skeleton()
    )
    return result


def test_merge_keeps_chalice_settings_and_replaces_what_it_must(merged: dict[str, Any]) -> None:
    resources = merged["Resources"]
    variables = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert variables["EMR_STAGE"] == "dev"  # Chalice's own env survives the merge
    assert variables["EMR_TABLE_NAME"] == {"Ref": "EmrTable"}
    event = resources["StreamPublisher"]["Properties"]["Events"][STREAM_EVENT]["Properties"]
    assert event["Stream"] == {"Fn::GetAtt": ["EmrTable", "StreamArn"]}
    assert event["MaximumBatchingWindowInSeconds"] == 1  # app.py and the fragment agree
    for function, role in FUNCTIONS.items():
        assert "Type" in resources[function]  # every fragment met its Chalice resource
        (policy,) = resources[role]["Properties"]["Policies"]  # replaced, not appended
        assert "dynamodb:*" not in json.dumps(policy)
        assert resources[role]["Properties"]["AssumeRolePolicyDocument"] == _TRUST


def _lint(template: dict[str, Any]) -> list[str]:
    from cfnlint.api import lint

    return [str(match) for match in lint(json.dumps(template), regions=["us-east-1"])]


@pytest.mark.slow
def test_cfn_lint_as_sam_template(merged: dict[str, Any]) -> None:
    assert _lint(merged) == []


@pytest.mark.slow
def test_cfn_lint_without_transform_checks_iam_actions(merged: dict[str, Any]) -> None:
    plain = copy.deepcopy(merged)
    del plain["Transform"]
    for function in FUNCTIONS:
        del plain["Resources"][function]
    plain["Resources"]["RestAPI"] = {
        "Type": "AWS::ApiGateway::RestApi",
        "Properties": {"Name": "emr"},
    }
    # the API's parameters (base URL, throttling) are used by the SAM parts removed here
    used = json.dumps(plain["Resources"])
    plain["Parameters"] = {
        name: spec
        for name, spec in plain["Parameters"].items()
        if f'"Ref": "{name}"' in used or "${" + name in used
    }
    if not plain["Parameters"]:
        del plain["Parameters"]
    assert _lint(plain) == []
    broken = copy.deepcopy(plain)
    statement = broken["Resources"]["ApiHandlerRole"]["Properties"]["Policies"][0]
    statement["PolicyDocument"]["Statement"][0]["Action"].append("dynamodb:TransactWriteItems")
    assert any("W3037" in match for match in _lint(broken))  # the lint can fail
