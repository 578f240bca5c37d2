"""Dead letters of the local stack: list them (`make dlq`) without consuming them, and
move one consumer's back to its queue after a fix (`make redrive QUEUE=billing`).

A consumer sends a message it cannot process to its DLQ with message attributes
`reason`, `consumer`, `source-queue` and `receives` (events/consumer.py); a message
SQS's redrive policy moved there has none (its reason is the policy). Listing prints
ids, detail-types and reasons only, never a detail's values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Consumer -> (its queue, its DLQ, the Chalice function that consumes the queue).
CONSUMERS: dict[str, tuple[str, str, str]] = {
    "billing": ("EmrBillingQueue", "EmrBillingDLQ", "billing_consumer"),
    "audit": ("EmrAuditQueue", "EmrAuditDLQ", "audit_consumer"),
    "alerts": ("EmrAlertsQueue", "EmrAlertsDLQ", "alerts_consumer"),
}
# Dead letters of the table-stream mapping (on-failure records, not events): listed only.
STREAM_DLQ = "EmrStreamDLQ"
DEAD_LETTER_QUEUES = [dlq for _, dlq, _ in CONSUMERS.values()] + [STREAM_DLQ]
# Attributes the consumer adds when dead-lettering; dropped when a message is redriven.
DEAD_LETTER_ATTRIBUTES = frozenset({"reason", "consumer", "source-queue", "receives"})
PEEK_VISIBILITY_S = 30


def env_name(logical_id: str) -> str:
    """`EmrBillingQueue` -> `EMR_BILLING_QUEUE_URL`, `EmrBillingDLQ` -> `EMR_BILLING_DLQ_URL`."""
    stem = logical_id.removeprefix("Emr")
    for suffix in ("Queue", "DLQ"):
        if stem.endswith(suffix) and stem != suffix:
            return f"EMR_{stem.removesuffix(suffix).upper()}_{suffix.upper()}_URL"
    return f"EMR_{stem.upper()}_URL"


def queue_url(sqs: Any, logical_id: str, env: Mapping[str, str] = os.environ) -> str:
    """A queue's URL: its environment variable, else looked up by its local name."""
    url = env.get(env_name(logical_id))
    if url:
        return url
    from devstack.provision import LocalNames

    table = env.get("EMR_TABLE_NAME", "emr-local")
    name = LocalNames(prefix=table, table=table, user_pool=table, bucket=table).of(
        logical_id, drop_suffix="Queue"
    )
    return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])


@dataclass(frozen=True)
class DeadLetterRow:
    queue: str
    message_id: str
    detail_type: str
    event_id: str
    reason: str
    receives: str


def _row(queue: str, message: dict[str, Any]) -> DeadLetterRow:
    attrs = {
        k: v.get("StringValue", "") for k, v in (message.get("MessageAttributes") or {}).items()
    }
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    envelope: dict[str, Any] = body if isinstance(body, dict) else {}
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        detail = {}
    return DeadLetterRow(
        queue=queue,
        message_id=message["MessageId"],
        detail_type=str(envelope.get("detail-type") or "-"),
        event_id=str(detail.get("event_id") or "-"),
        reason=attrs.get("reason") or "redrive policy: too many receives",
        receives=attrs.get("receives")
        or message.get("Attributes", {}).get("ApproximateReceiveCount", "-"),
    )


def _receive_all(sqs: Any, url: str, visibility_s: int) -> list[dict[str, Any]]:
    """Every message of the queue, each hidden for `visibility_s` once received."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=visibility_s,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def peek(sqs: Any, logical_id: str, url: str) -> list[DeadLetterRow]:
    """The dead letters of one queue, left on it (visible again at once)."""
    messages = _receive_all(sqs, url, PEEK_VISIBILITY_S)
    handles = [m["ReceiptHandle"] for m in messages]
    for start in range(0, len(handles), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for i, h in enumerate(handles[start : start + 10])
            ],
        )
    return [_row(logical_id, m) for m in messages]


def redrive(sqs: Any, dlq_url: str, source_url: str) -> int:
    """Move every message of a DLQ back to its source queue: send, then delete.
    The dead-letter attributes are dropped; a message sent but not yet deleted (a
    crash in between) is delivered twice, which idempotent consumers absorb."""
    moved = 0
    for message in _receive_all(sqs, dlq_url, PEEK_VISIBILITY_S):
        attributes = {
            name: {
                k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
            if name not in DEAD_LETTER_ATTRIBUTES
        }
        kwargs: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": message["Body"]}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        sqs.send_message(**kwargs)
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
        moved += 1
    return moved


def list_all(sqs: Any, env: Mapping[str, str] = os.environ) -> list[DeadLetterRow]:
    rows: list[DeadLetterRow] = []
    for logical_id in DEAD_LETTER_QUEUES:
        rows.extend(peek(sqs, logical_id, queue_url(sqs, logical_id, env)))
    return rows


def redrive_consumer(sqs: Any, consumer: str, env: Mapping[str, str] = os.environ) -> int:
    if consumer not in CONSUMERS:
        raise ValueError(f"QUEUE is one of {', '.join(CONSUMERS)}")
    source, dlq, _ = CONSUMERS[consumer]
    return redrive(sqs, queue_url(sqs, dlq, env), queue_url(sqs, source, env))


def format_rows(rows: list[DeadLetterRow]) -> str:
    if not rows:
        return "No dead letters."
    header = ("queue", "message id", "detail-type", "event id", "receives", "reason")
    lines = [(r.queue, r.message_id, r.detail_type, r.event_id, r.receives, r.reason) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(5)]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(line[:5], widths, strict=True))
        + "  "
        + str(line[5])
        for line in [header, *lines]
    )
