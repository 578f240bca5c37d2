"""The alerts consumer: `safety.risk-identified` -> `service.raise_alert`.

The Lambda `alerts_consumer` (app.py) hands its SQS batches to `consumer`; the
framework (events/consumer.py) validates each event, dead-letters what cannot be
processed and runs the handler at most once per event id. The handler is itself
safe to run twice (functions/alerts/service.py).
"""

from __future__ import annotations

from events.consumer import Consumer, Received
from functions.alerts import service


def on_risk(received: Received) -> None:
    """A suicide-risk Flag was raised: raise its alert (once) and announce it."""
    detail = received.detail
    service.raise_alert(
        service.Signal(
            tenant=received.tenant,
            event_id=received.event_id,
            occurred_at=received.occurred_at,
            patient_id=str(detail["patient_id"]),
            flag_id=str(detail["flag_id"]),
            response_id=str(detail["response_id"]),
            observation_id=str(detail["observation_id"]),
            instrument=str(detail["instrument"]),
            reason=str(detail["reason"]),
        )
    )


consumer = Consumer("alerts", {"safety.risk-identified": on_risk}, dlq_env="EMR_ALERTS_DLQ_URL")
