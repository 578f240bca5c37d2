"""Tidying stale search entries from the stream: only a failed condition (the entry
is gone or a newer version rewrote it) is ignored. Anything else (throttling, a
server error) fails the stream record, so the mapping retries it and an old name
cannot stay searchable for good."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
from pynamodb.exceptions import DeleteError

from events.stream import handle_batch
from models import keys
from models.resources import Address, remove_stale_entries
from tests.conftest import patient_body

TENANT = "demo-clinic"


def _renamed(api) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A patient whose update dropped the tokens of its old family name: (id, old family)."""
    old = "Stalename" + uuid.uuid4().hex[:8]
    created = api.create(patient_body(old))
    changed = {**created, "name": [{"family": "Freshname" + uuid.uuid4().hex[:8]}]}
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}",
        body=json.dumps(changed),
        headers=api.headers(If_Match='W/"1"'),
    )
    assert r.status_code == 200, r.body
    return created["id"], old


def _items(stack, patient_id: str) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    ddb = boto3.client("dynamodb")
    page = ddb.query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": keys.patient_pk(TENANT, patient_id)}},
        ConsistentRead=True,
    )
    return {i["sk"]["S"]: i for i in page["Items"]}


def _modify_record(stack, patient_id: str) -> tuple[dict[str, Any], set[str]]:  # type: ignore[no-untyped-def]
    """The MODIFY record of the resource item from version 1 to 2, as the stream
    delivers it (images rebuilt from the history items, which hold the same fields)."""
    items = _items(stack, patient_id)
    current = items[keys.resource_sk("Patient", patient_id)]
    entries = {sk: i for sk, i in items.items() if sk.startswith("S#")}
    stale = {i["token"]["S"] for i in entries.values() if int(i["version"]["N"]) < 2}
    tokens = sorted(set(current["tokens"]["SS"]) | stale)
    old_image = {**current, "version": {"N": "1"}, "tokens": {"SS": tokens}}
    record = {
        "eventID": uuid.uuid4().hex,
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": current["pk"], "sk": current["sk"]},
            "OldImage": old_image,
            "NewImage": current,
            "SequenceNumber": "7000",
            "SizeBytes": 1,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": stack.stream_arn,
    }
    return record, stale


def _address(pid: str) -> Address:
    return Address(TENANT, "Patient", pid, pid)


def test_a_throttled_delete_is_not_swallowed(api, stack, moto):  # type: ignore[no-untyped-def]
    pid, _ = _renamed(api)
    _, stale = _modify_record(stack, pid)
    assert stale
    moto.inject("dynamodb.DeleteItem", "before", times=100)
    try:
        try:
            remove_stale_entries(_address(pid), stale, below_version=2)
        except DeleteError as exc:
            assert exc.cause_response_code != "ConditionalCheckFailedException"
        else:
            raise AssertionError("a failed delete must raise")
    finally:
        moto.clear_faults()


def test_a_failed_tidy_fails_its_stream_record_and_the_retry_removes_the_old_name(api, stack, moto):  # type: ignore[no-untyped-def]
    pid, old = _renamed(api)
    record, stale = _modify_record(stack, pid)
    moto.inject("dynamodb.DeleteItem", "before", times=100)
    try:
        failed = handle_batch({"Records": [record]})["batchItemFailures"]
    finally:
        moto.clear_faults()
    assert failed == [{"itemIdentifier": "7000"}]
    assert {i["token"]["S"] for sk, i in _items(stack, pid).items() if sk.startswith("S#")} >= stale

    assert handle_batch({"Records": [record]})["batchItemFailures"] == []
    left = {i["token"]["S"] for sk, i in _items(stack, pid).items() if sk.startswith("S#")}
    assert not (left & stale)
    r = api.http.get(f"/fhir/R4/Patient?family={old}", headers=api.headers())
    assert json.loads(r.body).get("entry", []) == []


def test_an_entry_a_newer_version_rewrote_is_kept_without_error(api, stack):  # type: ignore[no-untyped-def]
    pid, _ = _renamed(api)
    _, stale = _modify_record(stack, pid)
    assert remove_stale_entries(_address(pid), stale, below_version=1) == 0  # condition fails
    assert remove_stale_entries(_address(pid), stale, below_version=2) == len(stale)
