"""The local stream runner retries a failing record like the deployed mapping,
gives it up after the retry limit, and moves on without re-delivering others."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import boto3

from tests.conftest import patient_body


def test_a_failing_record_is_retried_then_given_up_and_delivery_moves_on(api, stack):
    from devstack.runner import StreamRunner

    api.create(patient_body("Runner" + uuid.uuid4().hex[:6]))
    api.create(patient_body("Runner" + uuid.uuid4().hex[:6]))
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
    runner.drain()
    assert runner.given_up == poisoned
    assert seen[poisoned[0]] == 3  # first try + 2 retries
    others = [s for s in seen if s != poisoned[0]]
    assert others  # the records after the poisoned one still reached the handler
    before = sum(seen.values())
    assert runner.drain() == 0 and sum(seen.values()) == before  # nothing re-delivered


def test_records_the_mapping_filters_out_are_not_delivered(api, stack):
    from devstack.runner import StreamRunner

    api.create(patient_body("Filter" + uuid.uuid4().hex[:6]))
    kinds: set[tuple[str, str]] = set()

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        for r in event["Records"]:
            kinds.add((r["eventName"], r["dynamodb"]["NewImage"]["type"]["S"]))
        return {"batchItemFailures": []}

    StreamRunner(boto3.client("dynamodbstreams"), stack.stream_arn, handler).drain()
    assert ("INSERT", "outbox") in kinds
    assert kinds <= {("INSERT", "outbox"), ("MODIFY", "resource")}
