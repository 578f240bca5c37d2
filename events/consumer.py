"""The consumer framework: an SQS batch of EventBridge events -> handlers, effect once.

Each consumer (billing, audit, alerts) is a `Consumer` with one handler per event name.
Delivery is at least once (SQS redelivers, the publisher may publish twice); every
handler call is wrapped in powertools idempotency keyed on (consumer, event_id), so a
redelivered event has no second effect. A crash between a handler's side effect and
the acknowledgement leaves an in-progress record that expires with the invocation's
deadline; the redelivery then runs the handler again, whose own conditional writes
keep the effect single.

A message that can never be processed (malformed JSON, not an EventBridge event, a
detail-type or major version this code does not know, a detail its model refuses) is
sent to the consumer's DLQ with a `reason` attribute and acknowledged: it never fails
the batch. A handler that raises reports the message failed (SQS redelivers it) until
its last allowed receive (EMR_MAX_RECEIVES), when it goes to the DLQ with the error as
its reason. SQS's own redrive policy stays the backstop. See docs/pipelines.md.

Log lines and reasons carry ids, names and error types only, never a detail's values.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from events.inbound import REASON_LIMIT, DeadLetter, Received, parse
from models import keys
from models.aws import client
from models.settings import storage_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

__all__ = ["Consumer", "DeadLetter", "Handler", "Received", "parse"]

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "emr"), child=True)

MAX_RECEIVES_ENV = "EMR_MAX_RECEIVES"
DEFAULT_MAX_RECEIVES = 5
# Idempotency records outlive the DLQs' retention (14 days), so a redrive has no second effect.
IDEMPOTENCY_TTL_S = 15 * 24 * 3600
# Without a Lambda context (a direct call), in-progress records expire after this budget.
DEFAULT_BUDGET_MS = 180_000


Handler = Callable[[Received], None]  # must be safe to run twice (idempotent effect)


def max_receives() -> int:
    return int(os.environ.get(MAX_RECEIVES_ENV, DEFAULT_MAX_RECEIVES))


def error_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:REASON_LIMIT]


class _Budget:
    """A stand-in Lambda context for direct calls: a fixed time budget."""

    def __init__(self, budget_ms: int = DEFAULT_BUDGET_MS) -> None:
        self._deadline = time.monotonic() + budget_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Consumer:
    def __init__(self, name: str, handlers: dict[str, Handler], dlq_env: str) -> None:
        self.name = name
        self.handlers = dict(handlers)
        self.dlq_env = dlq_env
        self._store: DynamoDBPersistenceLayer | None = None

    # --- Lambda entry point -----------------------------------------------------------

    def handle_batch(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """An SQS batch -> {"batchItemFailures": [...]} (only the messages to retry)."""
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )

        lambda_context = context if context is not None else _Budget()
        # A processor per batch: it holds the batch's results (thread-safe locally).
        processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)

        def record_handler(record: SQSRecord) -> None:
            self.process(record, lambda_context)

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)

    # --- one message ------------------------------------------------------------------

    def process(self, record: SQSRecord, lambda_context: Any) -> None:
        """Handle one message; raise to have it retried."""
        try:
            received = parse(record.body)
        except DeadLetter as dead:
            self.dead_letter(record, dead.reason)
            return
        handler = self.handlers.get(received.name)
        if handler is None:  # routed here by a broader rule: nothing to do
            return
        try:
            self._once(handler, received, lambda_context)
        except Exception as exc:
            receives = int(record.attributes.approximate_receive_count or 1)
            if receives >= max_receives():
                self.dead_letter(record, error_reason(exc), event_id=received.event_id)
                return
            logger.warning(
                "consumer: handler failed; the message will be retried",
                extra={
                    "consumer": self.name,
                    "event_id": received.event_id,
                    "message_id": record.message_id,
                    "receives": receives,
                    "error": type(exc).__name__,
                },
            )
            raise

    def _once(self, handler: Handler, received: Received, lambda_context: Any) -> None:
        from aws_lambda_powertools.utilities.idempotency import (
            IdempotencyConfig,
            idempotent_function,
        )

        config = IdempotencyConfig(
            event_key_jmespath="event_id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=IDEMPOTENCY_TTL_S,
            hash_function="sha256",
            lambda_context=lambda_context,  # in-progress records expire with the deadline
        )

        @idempotent_function(
            data_keyword_argument="received",
            persistence_store=self.store(),
            config=config,
            key_prefix=self.name,
        )
        def run(received: Received) -> None:
            handler(received)

        run(received=received)

    def store(self) -> DynamoDBPersistenceLayer:
        """Idempotency records in the table: pk IDEMPOTENCY#<consumer>, sk <consumer>#<hash>."""
        if self._store is None:
            from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

            self._store = DynamoDBPersistenceLayer(
                table_name=storage_settings().table_name,
                key_attr="pk",
                sort_key_attr="sk",
                static_pk_value=keys.idempotency_pk(self.name),
                expiry_attr="expires_at",
                boto3_client=client("dynamodb"),
            )
        return self._store

    # --- dead letters -----------------------------------------------------------------

    def dead_letter(self, record: SQSRecord, reason: str, event_id: str | None = None) -> None:
        """Send the original body to this consumer's DLQ with the reason (then it is acked)."""
        url = os.environ.get(self.dlq_env)
        if not url:
            raise RuntimeError(f"{self.dlq_env} is not set: cannot dead-letter")
        source_queue = record.event_source_arn.rsplit(":", 1)[-1] if record.event_source_arn else ""
        attributes = {
            "reason": reason,
            "consumer": self.name,
            "source-queue": source_queue,
            "receives": record.attributes.approximate_receive_count or "1",
        }
        client("sqs").send_message(
            QueueUrl=url,
            MessageBody=record.body,
            MessageAttributes={
                key: {"DataType": "String", "StringValue": value or "-"}
                for key, value in attributes.items()
            },
        )
        logger.error(
            "consumer: message sent to the DLQ",
            extra={
                "consumer": self.name,
                "message_id": record.message_id,
                "event_id": event_id,
                "reason": reason,
            },
        )
