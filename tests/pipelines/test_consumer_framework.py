"""The consumer framework (events/consumer.py) on real moto queues and the real table:
at-least-once delivery plus idempotency gives one effect; one failing message is
retried alone; a poison message ends in the DLQ with its reason; broken events go to
the DLQ without failing the batch; a crash between effect and acknowledgement is
retried after the in-progress record expires, and the effect stays single."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.queues import LambdaContext, QueueRunner, lambda_record
from events.consumer import Consumer, Received
from events.patients import PatientCreated
from models import keys
from models.aws import client
from models.clock import new_id
from models.settings import storage_settings
from tests.pipelines.conftest import encounter_finished, eventbridge_body

DLQ_ENV = "EMR_TEST_CONSUMER_DLQ_URL"


class ProcessDied(BaseException):
    """The process ends between the side effect and the acknowledgement (not an
    Exception: nothing in the framework may catch it)."""


class Effects:
    """A handler whose effect is a conditional write in the table, as real consumers'
    are; it counts calls and effects, and can fail or 'die' on demand."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.effects: Counter[str] = Counter()
        self.fail_times: dict[str, int] = {}
        self.die_after_effect: set[str] = set()

    def handle(self, received: Received) -> None:
        self.calls[received.event_id] += 1
        if self.fail_times.get(received.event_id, 0) > 0:
            self.fail_times[received.event_id] -= 1
            raise ValueError(f"downstream refused event {received.event_id}")
        try:
            client("dynamodb").put_item(
                TableName=storage_settings().table_name,
                Item={
                    "pk": {"S": f"{keys.tenant_pk(received.tenant)}#TEST-EFFECT"},
                    "sk": {"S": received.event_id},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
            self.effects[received.event_id] += 1
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        if received.event_id in self.die_after_effect:
            self.die_after_effect.discard(received.event_id)
            raise ProcessDied


@pytest.fixture
def effects() -> Effects:
    return Effects()


@pytest.fixture
def consumer(queues, effects, monkeypatch) -> Consumer:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(DLQ_ENV, queues.dlq_url)
    return Consumer("fixture", {"encounter.finished": effects.handle}, DLQ_ENV)


def runner_for(queues, consumer, responses=None) -> QueueRunner:  # type: ignore[no-untyped-def]
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        response = consumer.handle_batch(event, context)
        if responses is not None:
            responses.append(response)
        return response

    return QueueRunner(boto3.client("sqs"), queues.url, queues.arn_, handler, retry_delay_s=0)


def dead_letters(queues) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """body -> {attribute: value} of every message on the DLQ."""
    return {
        m["Body"]: {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}
        for m in queues.all_messages(queues.dlq_url)
    }


def test_duplicate_deliveries_of_one_event_have_one_effect(queues, consumer, effects):
    event = encounter_finished()
    body = eventbridge_body(event)
    for _ in range(3):  # the publisher retried, SQS delivered twice: three copies
        queues.send(body)
    runner = runner_for(queues, consumer)
    runner.drain()
    queues.send(body)  # and one more, long after the first was handled
    runner.drain()

    assert effects.calls[event.event_id] == 1
    assert effects.effects[event.event_id] == 1
    assert runner.acknowledged == 4 and runner.failed == 0
    assert queues.all_messages(queues.url) == [] and dead_letters(queues) == {}
    record = idempotency_record(event.event_id)
    assert record["status"]["S"] == "COMPLETED"
    assert int(record["expires_at"]["N"]) > time.time() + 14 * 24 * 3600  # outlives the DLQ


def idempotency_record(event_id: str) -> dict[str, Any]:
    """The consumer's idempotency item of one event: pk IDEMPOTENCY#<consumer>, sk
    <consumer>#<SHA-256 of the event id>, TTL attribute expires_at."""
    digest = hashlib.sha256(json.dumps(event_id).encode()).hexdigest()
    item = client("dynamodb").get_item(
        TableName=storage_settings().table_name,
        Key={"pk": {"S": "IDEMPOTENCY#fixture"}, "sk": {"S": f"fixture#{digest}"}},
        ConsistentRead=True,
    )
    return dict(item["Item"])


def test_one_raising_message_alone_is_retried_and_succeeds_on_redelivery(queues, consumer, effects):
    events = [encounter_finished() for _ in range(3)]
    flaky = events[1]
    effects.fail_times[flaky.event_id] = 1
    ids = {queues.send(eventbridge_body(e)): e.event_id for e in events}
    responses: list[dict[str, Any]] = []
    runner = runner_for(queues, consumer, responses)

    assert runner.poll_once() == 3
    failed = [f["itemIdentifier"] for f in responses[0]["batchItemFailures"]]
    assert [ids[m] for m in failed] == [flaky.event_id]

    runner.drain()
    assert responses[-1] == {"batchItemFailures": []}
    assert effects.calls == Counter(
        {events[0].event_id: 1, flaky.event_id: 2, events[2].event_id: 1}
    )
    assert all(effects.effects[e.event_id] == 1 for e in events)
    assert queues.all_messages(queues.url) == [] and dead_letters(queues) == {}


def test_a_poison_message_ends_in_the_dlq_after_the_last_receive_with_its_reason(
    queues, consumer, effects, monkeypatch
):
    monkeypatch.setenv("EMR_MAX_RECEIVES", "3")
    poison, healthy = encounter_finished(), encounter_finished()
    effects.fail_times[poison.event_id] = 100
    poison_body = eventbridge_body(poison)
    queues.send(poison_body)
    queues.send(eventbridge_body(healthy))

    runner_for(queues, consumer).drain()

    assert effects.calls[poison.event_id] == 3  # one call per receive, then the DLQ
    assert effects.effects == Counter({healthy.event_id: 1})
    letters = dead_letters(queues)
    assert list(letters) == [poison_body]
    attrs = letters[poison_body]
    assert attrs["reason"] == f"ValueError: downstream refused event {poison.event_id}"
    assert attrs["consumer"] == "fixture"
    assert attrs["source-queue"] == queues.arn_.rsplit(":", 1)[-1]
    assert attrs["receives"] == "3"
    assert queues.all_messages(queues.url) == []


def test_broken_events_go_to_the_dlq_with_a_reason_and_the_batch_does_not_fail(
    queues, consumer, effects
):
    good = encounter_finished()
    other = encounter_finished()
    broken = {
        eventbridge_body(other, "encounter.finished.v9"): "unknown major version 9",
        "{not json": "malformed JSON",
        json.dumps([1, 2, 3]): "not an EventBridge event",
        eventbridge_body(other, "chart.exploded.v1"): "unknown detail-type: chart.exploded.v1",
        eventbridge_body(other, "encounter.finished"): "unversioned detail-type",
        eventbridge_body(other, encounter_version="many"): "encounter_version:int_parsing",
        eventbridge_body(other, patient_name="Jane Roe"): "patient_name:extra_forbidden",
    }
    for body in [eventbridge_body(good), *broken]:
        queues.send(body)
    # A known event this consumer has no handler for: acknowledged, no effect.
    unhandled = PatientCreated(
        tenant="demo-clinic", actor="u", request_id=new_id(), patient_id=new_id(),
        resource_version=1,
    )  # fmt: skip
    queues.send(eventbridge_body(unhandled))
    responses: list[dict[str, Any]] = []

    runner_for(queues, consumer, responses).drain()

    assert all(r == {"batchItemFailures": []} for r in responses)
    assert effects.effects == Counter({good.event_id: 1})
    letters = dead_letters(queues)
    assert set(letters) == set(broken)  # the original bodies, byte for byte
    for body, expected in broken.items():
        assert expected in letters[body]["reason"], (expected, letters[body]["reason"])
        assert "Jane" not in letters[body]["reason"]  # reasons quote no values
    assert queues.all_messages(queues.url) == []


def _batch(queues) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The next message of the queue as a Lambda SQS event, left visible for redelivery."""
    messages = queues.sqs.receive_message(
        QueueUrl=queues.url, AttributeNames=["All"], MessageAttributeNames=["All"],
        VisibilityTimeout=0, WaitTimeSeconds=0,
    )["Messages"]  # fmt: skip
    return {"Records": [lambda_record(m, queues.arn_, "us-east-1") for m in messages]}


class Deadline(LambdaContext):
    """A Lambda context whose invocation has `remaining_ms` left."""

    def __init__(self, remaining_ms: int) -> None:
        super().__init__("fixture", 0)
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_crash_while_in_progress_blocks_a_parallel_redelivery(queues, consumer, effects):
    event = encounter_finished()
    effects.die_after_effect.add(event.event_id)
    queues.send(eventbridge_body(event))
    first = _batch(queues)
    with pytest.raises(ProcessDied):
        consumer.handle_batch(first, Deadline(600_000))  # the invocation had 10 minutes left

    # Redelivered while the crashed invocation could still be running: not run again.
    second = _batch(queues)
    response = consumer.handle_batch(second, Deadline(600_000))
    assert response == {
        "batchItemFailures": [{"itemIdentifier": second["Records"][0]["messageId"]}]
    }
    assert effects.calls[event.event_id] == 1 and effects.effects[event.event_id] == 1
    assert idempotency_record(event.event_id)["status"]["S"] == "INPROGRESS"


def test_a_crash_between_effect_and_ack_is_retried_after_the_deadline_with_one_effect(
    queues, consumer, effects
):
    event = encounter_finished()
    effects.die_after_effect.add(event.event_id)
    queues.send(eventbridge_body(event))
    with pytest.raises(ProcessDied):
        consumer.handle_batch(_batch(queues), Deadline(0))  # at its deadline: Lambda kills it
    expiry_ms = int(time.time() * 1000)
    while int(time.time() * 1000) <= expiry_ms:  # the in-progress record is past its expiry
        time.sleep(0.001)

    runner = runner_for(queues, consumer)
    runner.drain()

    assert effects.calls[event.event_id] == 2  # run again after the crash ...
    assert effects.effects[event.event_id] == 1  # ... and its conditional write kept one effect
    assert runner.acknowledged == 1 and queues.all_messages(queues.url) == []
    assert idempotency_record(event.event_id)["status"]["S"] == "COMPLETED"
    queues.send(eventbridge_body(event))  # a later duplicate: no third call
    runner.drain()
    assert effects.calls[event.event_id] == 2
