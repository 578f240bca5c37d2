"""Daily ledger segments in the Object Lock bucket (functions/audit/archive.py): each
completed UTC day once, as the hashed lines themselves, locked in compliance mode
and encrypted with SSE-KMS; a broken chain is never sealed."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.audit import archive
from functions.audit.ledger import LedgerEvent, append
from models import keys
from models import ledger_index as index
from models.clock import iso, new_id

DAY1 = datetime(2020, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def tenant(stack) -> str:  # type: ignore[no-untyped-def]
    return f"la-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3(stack):  # type: ignore[no-untyped-def]
    return boto3.client("s3")


def event(tenant: str, at: datetime) -> LedgerEvent:
    event_id = new_id()
    detail = {"event_id": event_id, "tenant": tenant, "occurred_at": iso(at), "actor": "u-1",
              "request_id": event_id, "version": 1, "patient_id": "p-1"}  # fmt: skip
    return LedgerEvent(event_id, tenant, "emr.notes", "note.signed.v1", iso(at), detail)


def three_days(tenant: str) -> list[list[str]]:
    """Entries recorded on 1, 2 and 3 March 2020 (two, one, one): their texts by day."""
    days = []
    for offset, n in ((0, 2), (1, 1), (2, 1)):
        at = DAY1 + timedelta(days=offset)
        days.append([e.text for e in append(tenant, [event(tenant, at) for _ in range(n)], at)])
    return days


def segment(s3, tenant: str, day: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    key = archive.segment_key(tenant, day)
    return s3.get_object(Bucket=os.environ["EMR_LEDGER_BUCKET"], Key=key)  # type: ignore[no-any-return]


def test_each_completed_day_is_written_once_as_its_hashed_lines(s3, tenant):
    texts = three_days(tenant)
    moment = datetime(2020, 3, 3, 12, 0, tzinfo=UTC)  # 1 and 2 March are complete, 3 is not
    assert archive.archive_tenant(tenant, moment) == 2
    first = segment(s3, tenant, "2020-03-01")
    lines = first["Body"].read().decode().splitlines()
    assert lines == texts[0]
    assert json.loads(lines[1])["prev"] == hashlib.sha256(lines[0].encode()).hexdigest()
    assert first["ObjectLockMode"] == "COMPLIANCE"
    assert first["ObjectLockRetainUntilDate"] >= moment + timedelta(days=2189)
    assert first["ServerSideEncryption"] == "aws:kms"
    assert first["Metadata"] == {
        "first-seq": "1", "last-seq": "2", "prev": "0" * 64,
        "last-hash": hashlib.sha256(lines[1].encode()).hexdigest(),
    }  # fmt: skip
    second = segment(s3, tenant, "2020-03-02")
    assert second["Body"].read().decode().splitlines() == texts[1]
    assert second["Metadata"]["prev"] == first["Metadata"]["last-hash"]  # the segments chain too
    with pytest.raises(ClientError):
        segment(s3, tenant, "2020-03-03")
    assert archive.archive_tenant(tenant, moment) == 0  # nothing twice
    assert archive.archive_tenant(tenant, datetime(2020, 3, 4, 0, 5, tzinfo=UTC)) == 0  # grace
    assert archive.run(now=datetime(2020, 3, 4, 0, 20, tzinfo=UTC)) >= 1
    assert index.read_cursor(tenant).archived_day == "2020-03-03"  # type: ignore[union-attr]


def test_a_segment_cannot_be_deleted_before_its_retention_ends(s3, tenant):
    three_days(tenant)
    archive.archive_tenant(tenant, datetime(2020, 3, 2, 1, 0, tzinfo=UTC))
    bucket, key = os.environ["EMR_LEDGER_BUCKET"], archive.segment_key(tenant, "2020-03-01")
    version = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_a_run_that_stopped_before_moving_its_cursor_does_not_write_again(stack, s3, tenant):
    three_days(tenant)
    moment = datetime(2020, 3, 2, 1, 0, tzinfo=UTC)
    assert archive.archive_tenant(tenant, moment) == 1
    boto3.resource("dynamodb").Table(stack.table_name).update_item(
        Key={"pk": keys.ledger_pk(tenant), "sk": keys.LEDGER_CURSOR_SK},
        UpdateExpression="SET archived_seq = :z, archived_hash = :g REMOVE archived_day",
        ExpressionAttributeValues={":z": 0, ":g": "0" * 64},
    )  # as if the run had stopped right after the put
    assert archive.archive_tenant(tenant, moment) == 1  # the cursor catches up
    versions = s3.list_object_versions(
        Bucket=os.environ["EMR_LEDGER_BUCKET"], Prefix=archive.segment_key(tenant, "2020-03-01")
    )
    assert len(versions["Versions"]) == 1
    assert index.read_cursor(tenant).archived_seq == 2  # type: ignore[union-attr]


def test_a_broken_chain_is_not_sealed(stack, s3, tenant):
    three_days(tenant)
    boto3.resource("dynamodb").Table(stack.table_name).delete_item(
        Key={"pk": keys.ledger_pk(tenant), "sk": keys.ledger_entry_sk(2)}
    )
    with pytest.raises(archive.SegmentBroken):
        archive.archive_tenant(tenant, datetime(2020, 3, 5, tzinfo=UTC))
    archive.run(datetime(2020, 3, 5, tzinfo=UTC))  # logged, and the other tenants go on
    with pytest.raises(ClientError):
        segment(s3, tenant, "2020-03-01")
    assert index.read_cursor(tenant).archived_seq == 0  # type: ignore[union-attr]


def test_every_ledger_is_in_the_ops_index(tenant):
    append(tenant, [event(tenant, DAY1)])
    assert tenant in set(index.ledger_tenants())
