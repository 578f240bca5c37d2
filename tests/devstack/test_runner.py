"""The local stream runner retries a failing record like the deployed mapping,
gives it up after the retry limit, and moves on without re-delivering others; a
refused write leaves nothing on the stream and later changes still arrive, in
order; a replaced shard is noticed and read."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import boto3

from tests.conftest import patient_body


def test_a_failing_record_is_retried_then_given_up_and_delivery_moves_on(api, stack):
    from devstack.runner import StreamRunner

    seen: Counter[str] = Counter()
    poisoned: list[str] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        records = event["Records"]
        for r in records:
            seen[r["dynamodb"]["SequenceNumber"]] += 1
        if not poisoned:
            poisoned.append(records[0]["dynamodb"]["SequenceNumber"])
        failed = [
            r["dynamodb"]["SequenceNumber"]
            for r in records
            if r["dynamodb"]["SequenceNumber"] in poisoned
        ]
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    runner = StreamRunner(
        boto3.client("dynamodbstreams"), stack.stream_arn, handler, batch_size=10, max_retries=2
    )
    runner.skip_to_latest()  # earlier tests' records are not this test's
    api.create(patient_body("Runner" + uuid.uuid4().hex[:6]))
    api.create(patient_body("Runner" + uuid.uuid4().hex[:6]))
    runner.drain()
    assert runner.given_up == poisoned
    assert seen[poisoned[0]] == 3  # first try + 2 retries
    others = [s for s in seen if s != poisoned[0]]
    assert others  # the records after the poisoned one still reached the handler
    before = sum(seen.values())
    assert runner.drain() == 0 and sum(seen.values()) == before  # nothing re-delivered


def test_records_the_mapping_filters_out_are_not_delivered(api, stack):
    from devstack.runner import StreamRunner

    kinds: set[tuple[str, str]] = set()

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        for r in event["Records"]:
            kinds.add((r["eventName"], r["dynamodb"]["NewImage"]["type"]["S"]))
        return {"batchItemFailures": []}

    runner = StreamRunner(boto3.client("dynamodbstreams"), stack.stream_arn, handler)
    runner.skip_to_latest()
    api.create(patient_body("Filter" + uuid.uuid4().hex[:6]))
    runner.drain()
    assert {("INSERT", "outbox"), ("INSERT", "audit")} <= kinds
    assert kinds <= {
        ("INSERT", "outbox"),
        ("INSERT", "audit"),
        ("INSERT", "audit-search"),
        ("MODIFY", "resource"),
    }


# --- refused writes and the stream ----------------------------------------------------------


def _latest_iterator(stack: Any) -> tuple[Any, str]:
    streams = boto3.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=stack.stream_arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=stack.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
    )["ShardIterator"]
    return streams, str(iterator)


def _put(api: Any, patient: dict[str, Any], etag: str) -> Any:
    import json

    return api.http.put(
        f"/fhir/R4/Patient/{patient['id']}",
        headers=api.headers(If_Match=etag),
        body=json.dumps(patient),
    )


def test_a_refused_write_publishes_nothing_and_later_changes_still_arrive_in_order(api, stack):
    """A 412 is a cancelled transaction: it leaves no stream record (its audit
    record, written on its own, is the only one), and the runner keeps delivering
    the changes that follow, in order."""
    from devstack.runner import StreamRunner

    delivered: list[tuple[str, str, str]] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        for r in event["Records"]:
            image = r["dynamodb"]["NewImage"]
            version = image.get("version", {}).get("N") or image.get("detail_type", {}).get("S")
            delivered.append((r["eventName"], image["type"]["S"], str(version)))
        return {"batchItemFailures": []}

    runner = StreamRunner(boto3.client("dynamodbstreams"), stack.stream_arn, handler)
    runner.skip_to_latest()
    patient = api.create(patient_body("Refused" + uuid.uuid4().hex[:6]))
    runner.drain()
    delivered.clear()

    streams, iterator = _latest_iterator(stack)
    assert _put(api, patient, 'W/"7"').status_code == 412
    page = streams.get_records(ShardIterator=iterator)
    kinds = {r["dynamodb"]["NewImage"]["type"]["S"] for r in page["Records"]}
    assert kinds == {"audit"}, kinds  # nothing of the refused transaction
    runner.drain()
    # nothing of it reached the handler: only the request's audit record (phi.accessed)
    assert [(name, kind) for name, kind, _ in delivered] == [("INSERT", "audit")]

    assert _put(api, patient, 'W/"1"').status_code == 200
    assert _put(api, patient, 'W/"1"').status_code == 412
    assert _put(api, patient, 'W/"2"').status_code == 200
    runner.drain()
    resources = [v for name, kind, v in delivered if (name, kind) == ("MODIFY", "resource")]
    assert resources == ["2", "3"]
    outbox = [v for name, kind, v in delivered if (name, kind) == ("INSERT", "outbox")]
    assert outbox == ["patient.updated.v1", "patient.updated.v1"]


def test_the_runner_recovers_from_a_replaced_shard_and_says_so(api, stack, caplog):
    """What moto did on every cancelled transaction before the local stack stopped
    copying tables: the table got a new shard object with the same id, and the
    runner's iterator kept reading the old one. The runner notices and goes on."""
    import copy
    import logging

    from devstack.moto_server import find_table
    from devstack.runner import StreamRunner

    caplog.set_level(logging.INFO)
    seen: list[str] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        seen.extend(r["dynamodb"]["SequenceNumber"] for r in event["Records"])
        return {"batchItemFailures": []}

    runner = StreamRunner(boto3.client("dynamodbstreams"), stack.stream_arn, handler, peek_every=2)
    runner.skip_to_latest()
    api.create(patient_body("Orphan" + uuid.uuid4().hex[:6]))
    runner.drain()
    table = find_table(stack.table_name)
    replacement = copy.copy(table.stream_shard)
    replacement.items = list(table.stream_shard.items)
    table.stream_shard = replacement
    seen.clear()
    api.create(patient_body("Orphan" + uuid.uuid4().hex[:6]))
    for _ in range(4):
        runner.poll_once()
    assert seen, "the outbox record of the second create was delivered"
    assert any(
        "returned none" in r.getMessage() and getattr(r, "shard", None) for r in caplog.records
    )
