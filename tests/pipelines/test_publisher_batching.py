"""The stream publisher puts a batch's events 10 to a PutEvents call, retries the
entries EventBridge reports failed (backoff with jitter), and when an entry still
fails answers with the first record not delivered, so the batch is retried from it
and no event is lost. Outbox items are listed as pending until delivered, then get
`delivered_at` and a TTL.

Driven through the real pieces: outbox items committed in one transaction, the
moto stream, the StreamRunner, `events.stream.handle_batch`, EventBridge and the
audit queue. Faults are injected in front of the real PutEvents: entries chosen
by event id are answered as failed (and not sent), the others go to moto."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any

import boto3
import pytest

from devstack.runner import StreamRunner
from events import outbox
from events.putevents import MAX_BYTES, Publisher, chunks
from events.resources import event_class
from events.stream import handle_batch
from models.aws import client
from models.uow import UnitOfWork
from tests.pipelines.conftest import AUDIT_QUEUE, queue_taker

EVENTS = 30


class Bus:
    """PutEvents in front of moto: records every call's event ids; an entry whose
    event id still has failures left in `fail` is answered InternalFailure."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.fail = dict(fail or {})
        self.calls: list[list[str]] = []

    def __call__(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [json.loads(e["Detail"])["event_id"] for e in entries]
        self.calls.append(ids)
        answers: list[dict[str, Any] | None] = []
        for event_id in ids:
            if self.fail.get(event_id, 0) > 0:
                self.fail[event_id] -= 1
                answers.append({"ErrorCode": "InternalFailure", "ErrorMessage": "injected"})
            else:
                answers.append(None)
        send = [e for e, a in zip(entries, answers, strict=True) if a is None]
        sent = iter(client("events").put_events(Entries=send)["Entries"] if send else [])
        results = [a if a is not None else next(sent) for a in answers]
        failed = sum(1 for r in results if r.get("ErrorCode"))
        return {"FailedEntryCount": failed, "Entries": results}


class Pipeline:
    """A StreamRunner whose handler is `handle_batch` with the Bus and a recorded sleep."""

    def __init__(self, stack: Any, bus: Bus, max_retries: int = 10) -> None:
        self.bus = bus
        self.sleeps: list[float] = []
        self.responses: list[dict[str, Any]] = []
        self.sequence_of: dict[str, str] = {}  # event id -> its record's sequence number

        def handler(event: dict[str, Any]) -> dict[str, Any]:
            for r in event["Records"]:
                image = r["dynamodb"]["NewImage"]
                if image["type"]["S"] == "outbox":
                    self.sequence_of[image["event_id"]["S"]] = r["dynamodb"]["SequenceNumber"]
            publisher = Publisher(put_events=bus, sleep=self.sleeps.append)
            response = handle_batch(event, None, publisher)
            self.responses.append(response)
            return response

        streams = boto3.client("dynamodbstreams")
        self.runner = StreamRunner(streams, stack.stream_arn, handler, max_retries=max_retries)
        self.runner.skip_to_latest()

    def drain(self) -> None:
        self.runner.drain(max_polls=100)


@pytest.fixture
def tenant() -> str:
    return "outbox-" + uuid.uuid4().hex[:10]


@pytest.fixture
def take(stack):  # type: ignore[no-untyped-def]
    return queue_taker(stack.queue_urls[AUDIT_QUEUE], "resource_id")


def _commit_events(tenant: str, tag: str, count: int = EVENTS) -> list[str]:
    """`count` outbox events in one transaction, in order; their event ids."""
    cls = event_class("emr.encounters", "encounter.updated")
    uow = UnitOfWork()
    ids = []
    for version in range(1, count + 1):
        event = cls(tenant=tenant, actor="system:test", request_id=f"req-{tag}",
                    resource_type="Encounter", resource_id=tag, patient_id=tag,
                    resource_version=version)  # fmt: skip
        outbox.stage(uow, event)
        ids.append(event.event_id)
    uow.commit()
    return ids


def _delivered(take, tag: str, expected: int) -> Counter[str]:  # type: ignore[no-untyped-def]
    messages = take(tag, expected)
    assert {m["detail-type"] for m in messages} == {"encounter.updated.v1"}
    return Counter(m["detail"]["event_id"] for m in messages)


def _outbox_items(tenant: str, ids: list[str]) -> list[Any]:
    from models import keys
    from models.items import OutboxItem

    return [OutboxItem.get(keys.outbox_pk(tenant, i), keys.OUTBOX_SK, consistent_read=True)
            for i in ids]  # fmt: skip


def test_thirty_events_go_out_in_three_calls_and_leave_the_pending_index(stack, tenant, take):
    tag = uuid.uuid4().hex
    pipeline = Pipeline(stack, Bus())
    ids = _commit_events(tenant, tag)
    pending = outbox.pending(tenant)
    assert sorted(item.event_id for item in pending) == sorted(ids)
    assert [i.occurred_at for i in pending] == sorted(i.occurred_at for i in pending)
    assert all(item.expires_at is None for item in _outbox_items(tenant, ids))

    pipeline.drain()
    assert [len(call) for call in pipeline.bus.calls] == [10, 10, 10]
    assert pipeline.responses == [{"batchItemFailures": []}]
    assert _delivered(take, tag, EVENTS) == Counter(ids)
    assert outbox.pending(tenant) == []
    day = 24 * 3600
    for item in _outbox_items(tenant, ids):
        assert item.delivered_at is not None and item.gsi1pk is None
        assert 0 < item.expires_at - time.time() <= day + 60


def test_entries_reported_failed_are_retried_with_backoff_and_delivered_once(stack, tenant, take):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex
    bus = Bus()
    pipeline = Pipeline(stack, bus)
    ids = _commit_events(tenant, tag)
    bus.fail = {ids[3]: 1, ids[14]: 2, ids[27]: 3}

    pipeline.drain()
    assert pipeline.responses == [{"batchItemFailures": []}]
    assert [len(call) for call in bus.calls] == [10, 10, 10, 3, 2, 1]
    assert len(pipeline.sleeps) == 3
    assert pipeline.sleeps[0] < pipeline.sleeps[2]  # the ceilings double: 50, 100, 200 ms
    assert _delivered(take, tag, EVENTS) == Counter(ids)  # each exactly once
    assert outbox.pending(tenant) == []


def test_a_batch_that_keeps_failing_names_its_first_undelivered_record_and_loses_nothing(
    stack, tenant, take
):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex
    bus = Bus()
    pipeline = Pipeline(stack, bus)
    ids = _commit_events(tenant, tag)
    bus.fail = {ids[12]: 5, ids[20]: 6}  # more failures than one invocation's 4 attempts

    pipeline.drain()
    first, *rest = pipeline.responses
    assert first == {"batchItemFailures": [{"itemIdentifier": pipeline.sequence_of[ids[12]]}]}
    assert rest == [{"batchItemFailures": []}]  # the runner retried from that record
    assert outbox.pending(tenant) == []
    # at least once: the retried batch starts at the first undelivered record, so the
    # events after it that were already put are put again (consumers dedupe on event_id)
    again = set(ids[13:]) - {ids[20]}
    delivered = _delivered(take, tag, EVENTS + len(again))
    assert delivered == Counter({i: 2 if i in again else 1 for i in ids})


def test_a_still_pending_event_is_listed_until_its_delivery(stack, tenant, take):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex
    bus = Bus()
    pipeline = Pipeline(stack, bus, max_retries=0)  # gives the record up at once
    ids = _commit_events(tenant, tag, count=3)
    bus.fail = {ids[1]: 100}

    pipeline.drain()
    assert [item.event_id for item in outbox.pending(tenant)] == [ids[1]]
    assert set(_delivered(take, tag, 2)) == {ids[0], ids[2]}


# --- batching and backoff, without AWS ---------------------------------------------------------


def _entry(detail_bytes: int) -> dict[str, Any]:
    return {"Source": "emr.test", "DetailType": "test.sized.v1", "Detail": "x" * detail_bytes}


def test_calls_hold_at_most_ten_entries_and_256_kib():
    small = [_entry(100)] * 25
    assert [len(c) for c in chunks(small, range(25))] == [10, 10, 5]
    big = [_entry(100 * 1024)] * 5  # two fit in 256 KiB, three do not
    assert [len(c) for c in chunks(big, range(5))] == [2, 2, 1]


def test_an_entry_over_the_size_limit_is_reported_undelivered_without_a_call():
    calls: list[int] = []

    def put(entries: list[dict[str, Any]]) -> dict[str, Any]:
        calls.append(len(entries))
        return {"Entries": [{"EventId": "e"} for _ in entries]}

    entries = [_entry(10), _entry(MAX_BYTES), _entry(10)]
    assert Publisher(put_events=put, sleep=lambda s: None).publish(entries) == {1}
    assert calls == [2]


def test_the_backoff_doubles_with_jitter_and_the_attempts_are_bounded():
    low = Publisher(jitter=lambda: 0.0)
    high = Publisher(jitter=lambda: 1.0)
    assert [low.delay(n) for n in (1, 2, 3)] == pytest.approx([0.025, 0.05, 0.1])
    assert [high.delay(n) for n in (1, 2, 3)] == pytest.approx([0.05, 0.1, 0.2])
    sleeps: list[float] = []

    def always_fails(entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Entries": [{"ErrorCode": "ThrottlingException"} for _ in entries]}

    publisher = Publisher(put_events=always_fails, sleep=sleeps.append)
    assert publisher.publish([_entry(10), _entry(10)]) == {0, 1}
    assert publisher.calls == 4 and len(sleeps) == 3
