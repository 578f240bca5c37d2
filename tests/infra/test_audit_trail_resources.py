"""What compliance relies on: the Object Lock ledger bucket and the CloudTrail trail
(its key, its bucket, its event selectors), in infra/template.json and on the local
stack built from it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.provision import LocalStack

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "infra" / "template.json"
TRAIL_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/"
    "${AWS::StackName}-trail"
}
SIX_YEARS_DAYS = 2190  # HIPAA documentation retention, 45 CFR 164.316(b)(2)
TLS_ONLY = {"Bool": {"aws:SecureTransport": "false"}}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return loaded


def _props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return props


def _private_bucket(props: dict[str, Any], key: str) -> None:
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [key, "Arn"]},
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


# --- template ------------------------------------------------------------------------------


def test_ledger_bucket_locks_segments_in_compliance_mode_for_six_years(
    template: dict[str, Any],
) -> None:
    resource = template["Resources"]["EmrLedgerBucket"]
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    props = resource["Properties"]
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": SIX_YEARS_DAYS}},
    }
    _private_bucket(props, "EmrDataKey")
    (deny,) = _props(template, "EmrLedgerBucketPolicy")["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == TLS_ONLY


def test_trail_validates_and_encrypts_its_log_files(template: dict[str, Any]) -> None:
    trail = template["Resources"]["EmrTrail"]
    assert trail["DependsOn"] == "EmrTrailBucketPolicy"  # CloudTrail checks it on creation
    props = trail["Properties"]
    assert props["TrailName"] == {"Fn::Sub": "${AWS::StackName}-trail"}
    assert props["EnableLogFileValidation"] is True
    assert props["IsMultiRegionTrail"] is True
    assert props["IncludeGlobalServiceEvents"] is True
    assert props["IsLogging"] is True
    assert props["KMSKeyId"] == {"Fn::GetAtt": ["EmrTrailKey", "Arn"]}
    assert props["S3BucketName"] == {"Ref": "EmrTrailBucket"}
    _private_bucket(_props(template, "EmrTrailBucket"), "EmrTrailKey")


def test_trail_records_all_management_events_kms_included(template: dict[str, Any]) -> None:
    selectors = _props(template, "EmrTrail")["AdvancedEventSelectors"]
    management = [
        s
        for s in selectors
        if {"Field": "eventCategory", "Equals": ["Management"]} in s["FieldSelectors"]
    ]
    # KMS Decrypt (with its tenant encryption context) is a management event: nothing
    # may narrow this selector (no readOnly filter, no excluded event source).
    assert [s["FieldSelectors"] for s in management] == [
        [{"Field": "eventCategory", "Equals": ["Management"]}]
    ]
    assert "kms.amazonaws.com" not in json.dumps(selectors)
    assert "EventSelectors" not in _props(template, "EmrTrail")


def test_trail_records_data_events_of_the_table_and_the_audit_buckets(
    template: dict[str, Any],
) -> None:
    data = {
        json.dumps(field["Equals"])
        for s in _props(template, "EmrTrail")["AdvancedEventSelectors"]
        for field in s["FieldSelectors"]
        if field["Field"] == "resources.type"
    }
    assert data == {'["AWS::DynamoDB::Table"]', '["AWS::S3::Object"]'}
    fields = [
        field
        for s in _props(template, "EmrTrail")["AdvancedEventSelectors"]
        for field in s["FieldSelectors"]
        if field["Field"] == "resources.ARN"
    ]
    assert {"Field": "resources.ARN", "Equals": [{"Fn::GetAtt": ["EmrTable", "Arn"]}]} in fields
    prefixes = [p["Fn::Sub"] for f in fields for p in f.get("StartsWith", [])]
    assert set(prefixes) == {
        "${EmrLedgerBucket.Arn}/",
        "${EmrArchiveBucket.Arn}/",
        "${EmrTrailBucket.Arn}/",  # reads of the log files only (readOnly = true)
    }


def test_only_this_trail_may_write_to_its_bucket_and_use_its_key(template: dict[str, Any]) -> None:
    statements = {
        s["Sid"]: s for s in _props(template, "EmrTrailBucketPolicy")["PolicyDocument"]["Statement"]
    }
    acl, write = statements["CloudTrailChecksBucketAcl"], statements["CloudTrailWritesLogFiles"]
    for statement in (acl, write):
        assert statement["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert statement["Condition"]["StringEquals"]["aws:SourceArn"] == TRAIL_ARN
    assert acl["Action"] == "s3:GetBucketAcl"
    assert write["Action"] == "s3:PutObject"
    assert write["Resource"] == {"Fn::Sub": "${EmrTrailBucket.Arn}/AWSLogs/${AWS::AccountId}/*"}
    assert write["Condition"]["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"
    assert statements["DenyInsecureTransport"]["Condition"] == TLS_ONLY
    key = {s["Sid"]: s for s in _props(template, "EmrTrailKey")["KeyPolicy"]["Statement"]}
    encrypt = key["CloudTrailEncryptsLogFiles"]
    assert encrypt["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert encrypt["Condition"]["StringEquals"] == {"aws:SourceArn": TRAIL_ARN}
    read = key["AccountReadsLogFilesThroughIam"]
    assert set(read["Action"]) == {"kms:Decrypt", "kms:ReEncryptFrom"}
    assert read["Condition"]["Null"] == {"kms:EncryptionContext:aws:cloudtrail:arn": "false"}


# --- local stack ---------------------------------------------------------------------------


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


def test_local_ledger_segments_cannot_be_deleted(stack: LocalStack, aws: Any) -> None:
    s3 = aws("s3")
    assert stack.env()["EMR_LEDGER_BUCKET"] == stack.ledger_bucket
    lock = s3.get_object_lock_configuration(Bucket=stack.ledger_bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert lock["Rule"]["DefaultRetention"]["Days"] == SIX_YEARS_DAYS
    key = f"ledger/infra-test/{uuid.uuid4()}.ndjson"
    version = s3.put_object(Bucket=stack.ledger_bucket, Key=key, Body=b"{}\n")["VersionId"]
    head = s3.head_object(Bucket=stack.ledger_bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=stack.ledger_bucket, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_local_trail_is_logging_with_validation_and_its_selectors(
    stack: LocalStack, aws: Any, template: dict[str, Any]
) -> None:
    cloudtrail = aws("cloudtrail")
    trail = cloudtrail.get_trail(Name=stack.trail_arn)["Trail"]
    assert trail["LogFileValidationEnabled"] is True
    assert trail["IsMultiRegionTrail"] is True
    assert trail["IncludeGlobalServiceEvents"] is True
    assert (
        trail["KmsKeyId"] == aws("kms").describe_key(KeyId="alias/emr-trail")["KeyMetadata"]["Arn"]
    )
    assert cloudtrail.get_trail_status(Name=stack.trail_arn)["IsLogging"] is True
    selectors = cloudtrail.get_event_selectors(TrailName=stack.trail_arn)["AdvancedEventSelectors"]
    assert [s["Name"] for s in selectors] == [
        s["Name"] for s in _props(template, "EmrTrail")["AdvancedEventSelectors"]
    ]
    table_arn = aws("dynamodb").describe_table(TableName=stack.table_name)["Table"]["TableArn"]
    assert {"Field": "resources.ARN", "Equals": [table_arn]} in selectors[1]["FieldSelectors"]
