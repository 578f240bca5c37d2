"""What the pipeline tests share: a stream runner wired as `python -m devstack run`
wires it, and a reader of the audit queue that takes one resource's messages."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from devstack.runner import StreamRunner

AUDIT_QUEUE = "EmrAuditQueue"


class RecordingRunner:
    """A StreamRunner with the Chalice-registered `stream_publisher` as its handler,
    started after the records earlier tests left on the stream; it keeps every
    (batch, handler response) pair for inspection."""

    def __init__(self, stream_arn: str) -> None:
        import app as app_module

        self.calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

        def handler(event: dict[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = app_module.stream_publisher(event, None)
            self.calls.append((event, result))
            return result

        self.runner = StreamRunner(boto3.client("dynamodbstreams"), stream_arn, handler)
        self.runner.skip_to_latest()  # earlier tests' records are not this test's

    def drain(self, timeout: float = 60.0) -> None:
        """Poll until the stream has nothing left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.runner.poll_once() == 0:
                return
        pytest.fail(f"stream not drained within {timeout} s")


Take = Callable[..., list[dict[str, Any]]]


def empty_queue(sqs: Any, url: str) -> None:
    """Delete the messages of tests that have finished: nobody waits for them any more."""
    while True:
        old = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not old.get("Messages"):
            return
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(old["Messages"])
            ],
        )


def queue_taker(url: str, detail_key: str) -> Take:
    """`take(value, expected, timeout=10)` -> the messages whose `detail[detail_key]`
    is `value` (parsed, the raw body under "_raw"), deleted once taken; others are
    made visible again for the tests waiting for them."""
    sqs = boto3.client("sqs")

    def sweep(value: str) -> list[dict[str, Any]]:
        mine: list[dict[str, Any]] = []
        others: list[str] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                body = json.loads(message["Body"])
                if (body.get("detail") or {}).get(detail_key) == value:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    mine.append({**body, "_raw": message["Body"]})
                else:
                    others.append(message["ReceiptHandle"])
        for start in range(0, len(others), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(others[start : start + 10])
                ],
            )
        return mine

    def take(value: str, expected: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        found = sweep(value)
        while len(found) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
            found += sweep(value)
        return found

    return take


# --- Consumer framework: a fresh queue pair per test, EventBridge-shaped bodies ----------


class QueuePair:
    """A source queue whose redrive policy (maxReceiveCount 5) points at its own DLQ."""

    def __init__(self, sqs: Any, stem: str) -> None:
        import uuid

        name = f"{stem}-{uuid.uuid4().hex[:10]}"
        self.sqs = sqs
        self.dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        self.dlq_arn = self.arn(self.dlq_url)
        policy = json.dumps({"deadLetterTargetArn": self.dlq_arn, "maxReceiveCount": 5})
        self.url = sqs.create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": "30", "RedrivePolicy": policy}
        )["QueueUrl"]
        self.arn_ = self.arn(self.url)

    def arn(self, url: str) -> str:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    def send(self, body: str) -> str:
        return str(self.sqs.send_message(QueueUrl=self.url, MessageBody=body)["MessageId"])

    def all_messages(self, url: str) -> list[dict[str, Any]]:
        """Every message of `url`, received (hidden 30 s) with all attributes."""
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=30,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                return found
            found.extend(batch)

    def delete(self) -> None:
        for url in (self.url, self.dlq_url):
            self.sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def queues(stack):  # type: ignore[no-untyped-def]
    pair = QueuePair(boto3.client("sqs"), "emr-test")
    yield pair
    pair.delete()


def eventbridge_body(event: Any, detail_type: str | None = None, **detail: Any) -> str:
    """The SQS body an EventBridge rule target receives for `event` (a DomainEvent);
    `detail_type` and `detail` override the wire values (for broken events)."""
    import uuid

    from events.contracts import wire_detail_type

    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type or wire_detail_type(event),
            "source": event.source,
            "account": "123456789012",
            "time": event.occurred_at,
            "region": "us-east-1",
            "resources": [],
            "detail": {**event.model_dump(mode="json"), **detail},
        }
    )


def encounter_finished(tenant: str = "demo-clinic") -> Any:
    """A valid EncounterFinished with fresh ids."""
    from events.encounters import EncounterFinished
    from models.clock import new_id

    return EncounterFinished(
        tenant=tenant,
        actor="user-1",
        request_id=new_id(),
        encounter_id=new_id(),
        patient_id=new_id(),
        encounter_version=2,
    )
