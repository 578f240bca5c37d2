"""The local SQS event source: polls a queue on moto and calls the very handler the
consumer Lambda runs, with Lambda-shaped batches and a Lambda-like context.

It behaves like the deployed event source mapping with ReportBatchItemFailures:
the messages a batch reports in `batchItemFailures` stay on the queue and are made
visible again after `retry_delay_s` (in AWS: after the visibility timeout); the
others are deleted. A handler that raises leaves the whole batch on the queue.
SQS counts the receives, and the queue's redrive policy moves a message that keeps
failing to its DLQ, as in AWS.

Log lines carry queue names, message ids, counts and error types only.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from functions.common.observability import logger
from models.aws import error_code

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class LambdaContext:
    """What a handler may ask of Lambda's context object."""

    def __init__(self, function_name: str, timeout_s: float, region: str = "us-east-1") -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 1024
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """An SQS API message attribute -> Lambda's event shape."""
    shaped: dict[str, Any] = {
        "dataType": value["DataType"],
        "stringListValues": [],
        "binaryListValues": [],
    }
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return shaped


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message -> one record of Lambda's SQS event."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def scheduled_event(region: str = "us-east-1") -> dict[str, Any]:
    """The event an EventBridge schedule rule sends a function."""
    from models.clock import iso, now

    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": iso(now()),
        "region": region,
        "resources": [],
        "detail": {},
    }


class QueueRunner:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        batch_size: int = 10,
        retry_delay_s: int = 2,
        function_name: str = "consumer",
        timeout_s: float = 60.0,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self._handler = handler
        self._batch = batch_size
        self._retry_delay_s = retry_delay_s
        self._function_name = function_name
        self._timeout_s = timeout_s
        self._region = queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "us-east-1"
        self._queue_name = queue_arn.rsplit(":", 1)[-1]
        self.acknowledged = 0
        self.failed = 0
        self._stop = threading.Event()

    def poll_once(self) -> int:
        """Receive one batch and hand it to the handler; returns the messages handled."""
        messages = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self._batch,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [lambda_record(m, self.queue_arn, self._region) for m in messages]}
        context = LambdaContext(self._function_name, self._timeout_s, self._region)
        try:
            response = self._handler(event, context) or {}
        except Exception as exc:  # as in Lambda: the whole batch returns to the queue
            logger.error(
                "queue runner: the handler raised; the batch will be retried",
                extra={
                    "queue": self._queue_name,
                    "error": error_code(exc),
                    "messages": len(messages),
                },
            )
            self._retry([m["ReceiptHandle"] for m in messages])
            return len(messages)
        failed = {str(f["itemIdentifier"]) for f in response.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete([m["ReceiptHandle"] for m in done])
        self._retry([m["ReceiptHandle"] for m in messages if m["MessageId"] in failed])
        self.acknowledged += len(done)
        self.failed += len(messages) - len(done)
        return len(messages)

    def _delete(self, handles: list[str]) -> None:
        for start in range(0, len(handles), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h}
                    for i, h in enumerate(handles[start : start + 10])
                ],
            )

    def _retry(self, handles: list[str]) -> None:
        """Failed messages: visible again after the retry delay."""
        for start in range(0, len(handles), 10):
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": self._retry_delay_s}
                    for i, h in enumerate(handles[start : start + 10])
                ],
            )

    def drain(self, max_polls: int = 1000) -> int:
        """Poll until a poll finds the queue empty (or `max_polls`); messages handled."""
        total = 0
        for _ in range(max_polls):
            handled = self.poll_once()
            if handled == 0:
                break
            total += handled
        return total

    def run_forever(self, interval_s: float = 0.5) -> None:
        while not self._stop.wait(interval_s):
            try:
                while self.poll_once() and not self._stop.is_set():
                    pass
            except Exception as exc:  # keep the pipeline alive; the error is visible
                if self._stop.is_set():
                    return
                logger.warning(
                    "queue runner: poll failed",
                    extra={"queue": self._queue_name, "error": error_code(exc)},
                )

    def stop(self) -> None:
        self._stop.set()


class Periodic:
    """Calls `call()` every `every_s` seconds until stopped (a local schedule rule)."""

    def __init__(self, name: str, call: Callable[[], Any], every_s: float) -> None:
        self.name = name
        self._call = call
        self._every_s = every_s
        self._stop = threading.Event()

    def run_forever(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._call()
            except Exception as exc:
                logger.warning(
                    "schedule: run failed", extra={"schedule": self.name, "error": error_code(exc)}
                )

    def stop(self) -> None:
        self._stop.set()
