"""The billing consumer: `encounter.finished`, `note.signed` and `note.cosigned`
each try to capture the encounter's charges (functions/billing/service.py).

Whichever of them arrives last finds the encounter ready and captures; the others
find it not ready, or already captured, and do nothing. A note without an
encounter (`encounter_id` null) concerns no charge. Every handler is safe to run
any number of times, concurrently, in any order: the capture guard holds the
effect to one.
"""

from __future__ import annotations

from events.consumer import Consumer, Received
from functions.billing.service import Outcome, capture
from functions.common.observability import logger


def _capture(received: Received, encounter_id: object) -> Outcome | None:
    if not isinstance(encounter_id, str) or not encounter_id:
        return None
    outcome = capture(received.tenant, encounter_id, received.event_id)
    logger.info(
        "billing: capture",
        extra={"event_id": received.event_id, "event": received.name, "outcome": outcome.value},
    )
    return outcome


def on_encounter_finished(received: Received) -> None:
    _capture(received, received.detail.get("encounter_id"))


def on_note_signed(received: Received) -> None:
    """`note.signed` and `note.cosigned`: the note's encounter, when it names one."""
    _capture(received, received.detail.get("encounter_id"))


consumer = Consumer(
    "billing",
    {
        "encounter.finished": on_encounter_finished,
        "note.signed": on_note_signed,
        "note.cosigned": on_note_signed,
    },
    dlq_env="EMR_BILLING_DLQ_URL",
)
