"""The table-stream pipeline as the local stack runs it: DynamoDB stream (moto) ->
StreamRunner -> the Chalice-registered `stream_publisher` (the Lambda handler) ->
EventBridge bus `emr` -> the audit rule -> the audit SQS queue; and the same
consumer tidying search entries that an update left behind."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from models import keys
from tests.conftest import patient_body
from tests.pipelines.conftest import AUDIT_QUEUE, RecordingRunner, Take, queue_taker

TENANT = "demo-clinic"


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture
def runner(stack) -> RecordingRunner:  # type: ignore[no-untyped-def]
    return RecordingRunner(stack.stream_arn)


@pytest.fixture
def audit_queue(stack) -> Take:  # type: ignore[no-untyped-def]
    """`take(patient_id, expected)` -> the audit-queue messages about that patient."""
    return queue_taker(stack.queue_urls[AUDIT_QUEUE], "patient_id")


def _unique(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:12]


def _search_ids(api, query: str, tenant: str = TENANT) -> list[str]:  # type: ignore[no-untyped-def]
    r = api.http.get(f"/fhir/R4/Patient?{query}", headers=api.headers(tenant=tenant))
    assert r.status_code == 200, r.body
    return [e["resource"]["id"] for e in json.loads(r.body)["entry"]]


def _update(api, patient: dict[str, Any], version: int, **changes: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    body = {**patient, **changes}
    r = api.http.put(
        f"/fhir/R4/Patient/{patient['id']}",
        body=json.dumps(body),
        headers=api.headers(If_Match=f'W/"{version}"'),
    )
    assert r.status_code == 200, r.body
    updated: dict[str, Any] = json.loads(r.body)
    assert updated["meta"]["versionId"] == str(version + 1)
    return updated


def _delete(api, patient_id: str) -> None:  # type: ignore[no-untyped-def]
    r = api.http.delete(f"/fhir/R4/Patient/{patient_id}", headers=api.headers(role="supervisor"))
    assert r.status_code == 204, r.body


def _search_entries(stack, patient_id: str, tenant: str = TENANT) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every item of the patient's partition whose sk starts with S# (raw DynamoDB)."""
    ddb = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": stack.table_name,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :s)",
        "ExpressionAttributeValues": {
            ":pk": {"S": keys.patient_pk(tenant, patient_id)},
            ":s": {"S": "S#"},
        },
        "ConsistentRead": True,
    }
    while True:
        page = ddb.query(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _versions(entries: list[dict[str, Any]]) -> list[int]:
    return sorted(int(e["version"]["N"]) for e in entries)


def _split(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the resource's own events, the requests' `phi.accessed` events)."""
    accessed = [m for m in messages if m["detail-type"] == "phi.accessed.v1"]
    return [m for m in messages if m not in accessed], accessed


def _assert_no_phi(message: dict[str, Any], *values: str) -> None:
    raw = message["_raw"]
    for value in values:
        assert value not in raw, f"{value!r} leaked into the event"
        assert value.lower() not in raw.lower(), f"{value!r} leaked into the event"


# --- outbox -> EventBridge -> audit queue ------------------------------------------------


def test_patient_lifecycle_events_reach_the_audit_queue_once_each_and_without_phi(
    api,
    runner,
    audit_queue,  # type: ignore[no-untyped-def]
):
    family, given, birth = _unique("Pipeline"), _unique("Quill"), "1931-02-27"
    created = api.create(patient_body(family, given, birth))
    pid = created["id"]

    runner.drain()
    messages, accessed = _split(audit_queue(pid, expected=2))
    assert [m["detail-type"] for m in messages] == ["patient.created.v1"]
    assert [m["detail"]["action"] for m in accessed] == ["patient.create"]
    assert accessed[0]["source"] == "emr.audit"
    _assert_no_phi(accessed[0], family, given, birth)
    first = messages[0]
    assert first["source"] == "emr.patients"
    assert first["detail"]["tenant"] == TENANT
    assert first["detail"]["patient_id"] == pid
    assert first["detail"]["resource_version"] == 1
    assert first["detail"]["event_id"]
    _assert_no_phi(first, family, given, birth)

    _update(api, created, 1, gender="female")
    runner.drain()
    messages, accessed = _split(audit_queue(pid, expected=2))
    assert [m["detail-type"] for m in messages] == ["patient.updated.v1"]
    assert [m["detail"]["action"] for m in accessed] == ["patient.update"]
    second = messages[0]
    assert second["source"] == "emr.patients"
    assert (second["detail"]["tenant"], second["detail"]["resource_version"]) == (TENANT, 2)
    _assert_no_phi(second, family, given, birth)

    _delete(api, pid)
    runner.drain()
    messages, accessed = _split(audit_queue(pid, expected=2))
    assert [m["detail-type"] for m in messages] == ["patient.deleted.v1"]
    assert [m["detail"]["action"] for m in accessed] == ["patient.delete"]
    third = messages[0]
    assert third["source"] == "emr.patients"
    assert (third["detail"]["tenant"], third["detail"]["resource_version"]) == (TENANT, 3)
    _assert_no_phi(third, family, given, birth)

    event_ids = {m["detail"]["event_id"] for m in (first, second, third)}
    assert len(event_ids) == 3, "every event carries its own idempotency key"


def test_a_failed_publish_is_retried_by_the_runner_and_then_delivered_once(
    api,
    runner,
    audit_queue,
    monkeypatch,  # type: ignore[no-untyped-def]
):
    runner.drain()  # catch up with earlier tests of this worker
    pid = api.create(patient_body(_unique("Retry")))["id"]

    monkeypatch.setenv("EMR_EVENT_BUS_NAME", "emr-missing-" + uuid.uuid4().hex[:8])
    runner.calls.clear()
    runner.runner.poll_once()
    (event, response), *_ = runner.calls
    published = [  # the create's outbox event and its audit record
        r["dynamodb"]["SequenceNumber"]
        for r in event["Records"]
        if r["eventName"] == "INSERT"
        and r["dynamodb"]["NewImage"]["type"]["S"] in ("outbox", "audit")
    ]
    assert len(published) == 2
    # the first record not delivered, in stream order: Lambda retries from it
    assert response["batchItemFailures"] == [{"itemIdentifier": published[0]}]
    assert audit_queue(pid, expected=1, timeout=0.5) == []

    monkeypatch.delenv("EMR_EVENT_BUS_NAME")
    runner.drain()
    messages, accessed = _split(audit_queue(pid, expected=2))
    assert [m["detail-type"] for m in messages] == ["patient.created.v1"]
    assert [m["detail"]["action"] for m in accessed] == ["patient.create"]


# --- handle_batch with crafted stream records ----------------------------------------------


def _insert_record(sequence: str, key: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB stream INSERT record as Lambda delivers it (NEW_AND_OLD_IMAGES)."""
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": key,
            "NewImage": {**key, **image},
            "SequenceNumber": sequence,
            "SizeBytes": 300,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def _outbox_record(sequence: str, patient_id: str, detail: str | None = None) -> dict[str, Any]:
    event_id = uuid.uuid4().hex
    if detail is None:
        detail = json.dumps(
            {
                "version": 1,
                "event_id": event_id,
                "tenant": TENANT,
                "actor": "test",
                "request_id": "req",
                "patient_id": patient_id,
                "resource_version": 1,
            }
        )
    key = {"pk": {"S": f"TENANT#{TENANT}#OUTBOX#{event_id}"}, "sk": {"S": "EVENT"}}
    image = {
        "type": {"S": "outbox"},
        "event_id": {"S": event_id},
        "tenant": {"S": TENANT},
        "source": {"S": "emr.patients"},
        "detail_type": {"S": "patient.created.v1"},
        "detail": {"S": detail},
    }
    return _insert_record(sequence, key, image)


def _history_record(sequence: str, patient_id: str) -> dict[str, Any]:
    key = {
        "pk": {"S": keys.patient_pk(TENANT, patient_id)},
        "sk": {"S": keys.history_sk("Patient", patient_id, 1)},
    }
    return _insert_record(sequence, key, {"type": {"S": "history"}, "version": {"N": "1"}})


def test_a_publish_to_a_missing_bus_is_reported_as_that_records_batch_item_failure(
    stack,
    audit_queue,
    monkeypatch,  # type: ignore[no-untyped-def]
):
    from events.stream import handle_batch

    pid = _unique("crafted")
    monkeypatch.setenv("EMR_EVENT_BUS_NAME", "emr-missing-" + uuid.uuid4().hex[:8])
    event = {"Records": [_history_record("1000", pid), _outbox_record("1001", pid)]}
    assert handle_batch(event) == {"batchItemFailures": [{"itemIdentifier": "1001"}]}
    assert audit_queue(pid, expected=1, timeout=0.5) == []


def test_a_rejected_entry_is_reported_as_a_batch_item_failure_and_the_others_are_published(
    stack,
    audit_queue,  # type: ignore[no-untyped-def]
):
    from events.stream import handle_batch

    pid = _unique("crafted")
    good = _outbox_record("2000", pid)
    bad = _outbox_record("2001", pid, detail="{not json")  # PutEvents: FailedEntryCount 1
    assert handle_batch({"Records": [good, bad]}) == {
        "batchItemFailures": [{"itemIdentifier": "2001"}]
    }
    messages = audit_queue(pid, expected=1)
    assert [m["detail"]["event_id"] for m in messages] == [
        good["dynamodb"]["NewImage"]["event_id"]["S"]
    ]


def test_a_batch_in_which_every_publish_fails_is_retried_as_a_whole(
    stack,
    audit_queue,
    monkeypatch,  # type: ignore[no-untyped-def]
):
    """Two outbox INSERTs, bus missing: the answer names the first record, so Lambda
    retries the batch from it (bisecting on error); no record is taken as published."""
    from events.stream import handle_batch

    pid = _unique("crafted")
    monkeypatch.setenv("EMR_EVENT_BUS_NAME", "emr-missing-" + uuid.uuid4().hex[:8])
    event = {"Records": [_outbox_record("3000", pid), _outbox_record("3001", pid)]}
    assert handle_batch(event) == {"batchItemFailures": [{"itemIdentifier": "3000"}]}
    assert audit_queue(pid, expected=1, timeout=0.5) == []


# --- search entries ------------------------------------------------------------------------


def test_stale_search_entries_are_removed_from_the_stream(api, stack, runner):  # type: ignore[no-untyped-def]
    old, new = _unique("Oldname"), _unique("Newname")
    created = api.create(patient_body(old))
    pid = created["id"]
    _update(api, created, 1, name=[{"family": new, "given": ["Alex"]}])

    stale = [e for e in _search_entries(stack, pid) if int(e["version"]["N"]) < 2]
    assert stale, "the entries of the old family name stay until the stream removes them"

    runner.drain()
    assert _search_ids(api, f"family={old}") == []
    assert _search_ids(api, f"family={new}") == [pid]
    assert set(_versions(_search_entries(stack, pid))) == {2}


def test_a_name_changed_back_keeps_the_entries_the_newest_version_rewrote(api, stack, runner):  # type: ignore[no-untyped-def]
    a, b = _unique("Abaname"), _unique("Bbaname")
    created = api.create(patient_body(a))
    pid = created["id"]
    entries_v1 = len(_search_entries(stack, pid))
    v2 = _update(api, created, 1, name=[{"family": b, "given": ["Alex"]}])
    _update(api, v2, 2, name=[{"family": a, "given": ["Alex"]}])

    runner.drain()
    assert _search_ids(api, f"family={a}") == [pid]
    assert _search_ids(api, f"name={a}") == [pid]
    assert _search_ids(api, f"family={b}") == []
    entries = _search_entries(stack, pid)
    assert len(entries) == entries_v1
    assert set(_versions(entries)) == {3}


def test_deleting_a_patient_removes_all_its_search_entries_at_once(api, stack):  # type: ignore[no-untyped-def]
    family = _unique("Gonename")
    pid = api.create(patient_body(family, mrn=_unique("MRN-")))["id"]
    assert _search_ids(api, f"family={family}") == [pid]
    assert _search_entries(stack, pid)

    _delete(api, pid)  # no stream drain: the delete transaction itself removes them
    assert _search_ids(api, f"family={family}") == []
    assert _search_entries(stack, pid) == []


def test_deleting_a_patient_also_removes_entries_an_untidied_update_left_behind(api, stack):  # type: ignore[no-untyped-def]
    old, new = _unique("Leftname"), _unique("Rightname")
    created = api.create(patient_body(old))
    pid = created["id"]
    _update(api, created, 1, name=[{"family": new, "given": ["Alex"]}])

    _delete(api, pid)  # before the stream has tidied version 1's entries
    assert _search_ids(api, f"family={old}") == []
    assert _search_entries(stack, pid) == []
