"""The local SQS event source (devstack/queues.py) hands a Chalice `on_sqs_message`
function the batches and context Lambda would, deletes only what succeeded, and
returns failed messages to the queue; `make run` wires one per consumer queue."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
from chalice import Chalice

from devstack.dlq import CONSUMERS, env_name, queue_url
from devstack.queues import QueueRunner
from events.consumer import Consumer, Received
from tests.pipelines.conftest import encounter_finished, eventbridge_body


def test_a_batch_reaches_the_handler_in_lambdas_shape(queues):
    seen: list[tuple[dict[str, Any], Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append((event, context))
        return {"batchItemFailures": []}

    queues.sqs.send_message(
        QueueUrl=queues.url,
        MessageBody="hello",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "greeting"}},
    )
    runner = QueueRunner(queues.sqs, queues.url, queues.arn_, handler, function_name="f1")
    assert runner.poll_once() == 1

    ((event, context),) = seen
    (record,) = event["Records"]
    assert record["body"] == "hello"
    assert record["md5OfBody"] == hashlib.md5(b"hello").hexdigest()  # noqa: S324
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.arn_
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert "SentTimestamp" in record["attributes"]
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "greeting",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageId"] and record["receiptHandle"]
    assert context.function_name == "f1" and context.aws_request_id
    assert context.get_remaining_time_in_millis() > 0
    assert runner.acknowledged == 1 and queues.all_messages(queues.url) == []


def test_failed_messages_stay_and_come_back_others_are_deleted(queues):
    bodies = ["a", "b", "c"]
    for body in bodies:
        queues.send(body)
    receives: dict[str, list[str]] = {}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for r in event["Records"]:
            receives.setdefault(r["body"], []).append(r["attributes"]["ApproximateReceiveCount"])
        failed = [r for r in event["Records"] if r["body"] == "b" and len(receives["b"]) < 2]
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in failed]}

    runner = QueueRunner(queues.sqs, queues.url, queues.arn_, handler, retry_delay_s=0)
    runner.drain()

    assert receives == {"a": ["1"], "b": ["1", "2"], "c": ["1"]}
    assert runner.acknowledged == 3 and runner.failed == 1
    assert queues.all_messages(queues.url) == []


def test_a_raising_handler_leaves_the_whole_batch_on_the_queue(queues):
    queues.send("x")
    queues.send("y")
    calls: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise RuntimeError("the function crashed")
        return {"batchItemFailures": []}

    runner = QueueRunner(queues.sqs, queues.url, queues.arn_, handler, retry_delay_s=0)
    runner.drain()

    assert sum(calls[:1]) == 2 and sum(calls[1:]) == 2  # everything delivered again
    assert queues.all_messages(queues.url) == []


def test_a_chalice_sqs_function_runs_a_consumer_end_to_end(queues, monkeypatch):
    """The runner calls the Chalice-registered function as Lambda does; the function
    passes `event.to_dict()` and `event.context` to the consumer (as app.py does)."""
    monkeypatch.setenv("EMR_TEST_RUNNER_DLQ_URL", queues.dlq_url)
    handled: list[Received] = []
    consumer = Consumer(
        "runner-e2e", {"encounter.finished": handled.append}, "EMR_TEST_RUNNER_DLQ_URL"
    )
    app = Chalice(app_name="runner-test")

    @app.on_sqs_message(queue_arn=queues.arn_, batch_size=10, name="fixture_consumer")
    def fixture_consumer(event: Any) -> dict[str, Any]:
        return consumer.handle_batch(event.to_dict(), event.context)

    event = encounter_finished("other-clinic")
    queues.send(eventbridge_body(event))
    queues.send("not json")
    runner = QueueRunner(queues.sqs, queues.url, queues.arn_, fixture_consumer, retry_delay_s=0)
    runner.drain()

    assert [(r.event_id, r.tenant, r.name, r.major) for r in handled] == [
        (event.event_id, "other-clinic", "encounter.finished", 1)
    ]
    assert handled[0].detail["encounter_id"] == event.encounter_id
    (letter,) = queues.all_messages(queues.dlq_url)
    assert letter["Body"] == "not json"
    assert letter["MessageAttributes"]["reason"]["StringValue"] == "malformed JSON"
    assert queues.all_messages(queues.url) == []


def test_make_run_finds_every_consumer_queue_and_function(stack):
    import app as app_module

    sqs = boto3.client("sqs")
    for queue_id, dlq_id, function in CONSUMERS.values():
        assert callable(getattr(app_module, function))
        for logical_id in (queue_id, dlq_id):
            # By its environment variable when exported, else by its local name.
            assert queue_url(sqs, logical_id, {}) == stack.queue_urls[logical_id]
            url = {env_name(logical_id): "http://example.invalid/q"}
            assert queue_url(sqs, logical_id, url) == "http://example.invalid/q"
