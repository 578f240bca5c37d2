"""Escalation of unacknowledged safety alerts (schedule `alerts_escalation`, every 5 min).

One run is one Query of the escalation index (`OPS#ALERT-DUE` on gsi1, across
tenants, oldest first, at most `BATCH` alerts; the rest wait for the next run) plus
the writes. For each alert due at `now`:
1. step `raised`: one transaction puts the escalation (once), the alert's entry in
   the supervisor's queue and moves its DUE item to step `escalated` - cancelled when
   the alert was acknowledged or escalated meanwhile;
2. step `escalated`: the escalation's SNS message, its `SENT#escalated` marker, and
   the DUE item is deleted. A crash before the delete leaves the item in the index,
   so the next run sends the message again (at least once, never lost).
"""

from __future__ import annotations

from datetime import datetime

from functions.alerts import notify
from functions.common.observability import logger
from models import alerts as store
from models.clock import iso
from models.clock import now as clock_now
from models.uow import TransactionCancelled, UnitOfWork

BATCH = 100


def _escalate(due: store.AlertDueItem, at: str) -> bool:
    """Step 1; False when the alert was acknowledged or escalated meanwhile."""
    uow = UnitOfWork()
    store.stage_escalation(uow, due, at)
    try:
        uow.commit()
    except TransactionCancelled as exc:
        logger.info(
            "alert escalation skipped",
            extra={"tenant": due.tenant, "alert": due.flag_id, "by": ",".join(exc.failed)},
        )
        return False
    return True


def _announce(alert: store.Alert, queue: str, at: str) -> None:
    """Step 2."""
    notify.publish(alert, notify.ESCALATED_KIND, queue)
    store.mark_sent(alert, store.ESCALATED, at)
    store.finish_escalation(alert)


def _process(due: store.AlertDueItem, at: str) -> int:
    """Steps 1 and 2 of one alert; 1 when this run escalated it."""
    alert = store.alert_of(due)
    escalated = 0
    if due.step == store.RAISED:
        if not _escalate(due, at):
            return 0
        escalated = 1
    _announce(alert, due.escalate_to, at)
    logger.info("alert escalated", extra={"tenant": alert.tenant, "alert": alert.flag_id})
    return escalated


def run(now: datetime | None = None) -> int:
    """Escalate what is due at `now` (default: the clock); the number escalated. An
    alert that fails stays in the index and is taken up again by the next run."""
    at = iso(now or clock_now())
    escalated = 0
    for due in store.due(at, BATCH):
        try:
            escalated += _process(due, at)
        except Exception:
            logger.exception(
                "alert escalation failed; the next run retries it",
                extra={"tenant": due.tenant, "alert": due.flag_id},
            )
    return escalated
