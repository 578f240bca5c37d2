"""The signed-in user's work queue of safety alerts, and acknowledging one.

A user's queues: their Practitioner's (functions/engine/directory.py) and, for the
supervisor role, the tenant's supervisors' queue (alerts with no responsible
clinician, escalations of clinicians without a supervisor). An alert may be
acknowledged by whoever's queue it was put in - its responsible clinician, or the
queue it was escalated to - once; anyone else gets 404, exactly as for an alert
that does not exist (an alert names a patient at risk: its existence is not
disclosed). Work queues are read on gsi1, which is eventually consistent: an alert
acknowledged a moment ago may still be listed (its acknowledgement answers 409).
"""

from __future__ import annotations

from typing import Any

from functions.common.authz import Role
from functions.common.caller import Caller
from functions.common.errors import Conflict, Invalid, Issue, NotFound
from models import alerts as store
from models import keys
from models.clock import iso, now
from models.uow import TransactionCancelled, UnitOfWork

TASK_CODE_SYSTEM = "https://emr.example/fhir/CodeSystem/work-item"
REASON_SYSTEM = "https://emr.example/fhir/CodeSystem/safety-rule"
KINDS = {"alert": "safety-alert", "escalation": "safety-alert-escalation"}
NOTE_WHERE = "Parameters.parameter.where(name='note')"
MAX_NOTE = 2000
ATTEMPTS = 3


def my_queues(caller: Caller) -> list[str]:
    from functions.engine.directory import practitioner_for

    me = practitioner_for(caller)
    queues = [keys.work_queue(me.address.resource_id)] if me is not None else []
    if Role.SUPERVISOR in caller.principal.roles:
        queues.append(keys.ALERT_QUEUE_SUPERVISORS)
    return queues


def _owner(queue: str) -> dict[str, Any]:
    _, _, practitioner_id = queue.partition("#")
    return {"owner": {"reference": f"Practitioner/{practitioner_id}"}} if practitioner_id else {}


def as_task(alert: store.Alert, kind: str, queue: str) -> dict[str, Any]:
    """An alert as a FHIR Task (status requested: open)."""
    return {
        "resourceType": "Task",
        "id": alert.flag_id,
        "status": "requested",
        "intent": "order",
        "priority": "stat",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": KINDS[kind]}]},
        "focus": {"reference": f"Flag/{alert.flag_id}"},
        "for": {"reference": f"Patient/{alert.patient_id}"},
        "authoredOn": alert.raised_at,
        **_owner(queue),
        "reasonCode": {"coding": [{"system": REASON_SYSTEM, "code": alert.reason}]},
        "reasonReference": {"reference": f"QuestionnaireResponse/{alert.response_id}"},
        "restriction": {"period": {"end": alert.due_at}},  # unacknowledged by then: escalated
    }


def open_tasks(caller: Caller) -> list[dict[str, Any]]:
    """The caller's open alerts, newest first: one Query per queue (gsi1)."""
    entries = [e for q in my_queues(caller) for e in store.queue_entries(caller.tenant, q)]
    newest: dict[str, store.AlertEntryItem] = {}
    for e in sorted(entries, key=lambda e: (e.raised_at, e.flag_id), reverse=True):
        newest.setdefault(e.flag_id, e)  # listed in two of the caller's queues: once
    caller.returned("Task", len(newest), [e.patient_id for e in newest.values()])
    return [as_task(store.alert_of(e), e.kind, e.queue) for e in newest.values()]


def parse_note(body: dict[str, Any]) -> str:
    """The `note` of an acknowledgement's Parameters body (400 naming it otherwise)."""
    from functions.engine.validation import FORBIDDEN_CHARACTERS

    parameters = body.get("parameter") if body.get("resourceType") == "Parameters" else None
    found = [p for p in parameters or [] if isinstance(p, dict) and p.get("name") == "note"]
    value = found[0].get("valueString") if len(found) == 1 else None
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_NOTE
        or FORBIDDEN_CHARACTERS.search(value)
        or set(found[0]) != {"name", "valueString"}
        or len(parameters or []) != 1
    ):
        raise Invalid(Issue("required", f"note is required: one valueString of 1 to {MAX_NOTE} "
                            "characters, without control characters.", [NOTE_WHERE]))  # fmt: skip
    return value


def _not_yours(alert_id: str) -> NotFound:
    return NotFound(Issue("not-found", f"Task/{alert_id} is not in your work queue.", ["Task.id"]))


def _readable(caller: Caller, alert_id: str) -> tuple[store.AlertState, str]:
    """The alert and the caller's queue it was put in, else 404."""
    state = store.read(caller.tenant, alert_id) if keys.valid_id(alert_id) else None
    if state is None:
        raise _not_yours(alert_id)
    assigned = {state.alert.queue}
    if state.escalated is not None and state.escalated.queue:
        assigned.add(state.escalated.queue)
    mine = [q for q in my_queues(caller) if q in assigned]
    if not mine:
        raise _not_yours(alert_id)
    caller.touched("Task", alert_id, state.alert.patient_id)
    return state, mine[0]


def acknowledge(caller: Caller, alert_id: str, note: str) -> dict[str, Any]:
    """Close the alert with the caller's note: one transaction with the audit record.
    409 when it was acknowledged already (the first acknowledgement wins)."""
    from functions.engine.directory import practitioner_for

    acked = f"Task/{alert_id} was already acknowledged."
    message = acked
    for _ in range(ATTEMPTS):
        state, queue = _readable(caller, alert_id)
        if state.ack is not None:
            message = acked
            break
        me = practitioner_for(caller)
        at = iso(now())
        ack = {"at": at, "by_user": caller.actor, "queue": queue, "request_id": caller.request_id,
               "by_practitioner": me.address.resource_id if me is not None else None}  # fmt: skip
        uow = UnitOfWork()
        store.stage_ack(uow, state, ack, note)
        caller.stage_audit(uow, 200)
        try:
            uow.commit(caller.token())
        except TransactionCancelled as exc:
            if "ack" in exc.failed:
                message = acked
                break
            message = f"Task/{alert_id} changed while it was acknowledged; retry."
            continue  # escalated meanwhile: read again
        caller.committed()
        return _acknowledged(state, queue, ack, note)
    raise Conflict(Issue("business-rule", message, ["Task.status"]))


def _acknowledged(state: store.AlertState, queue: str, ack: dict[str, Any],
                  note: str) -> dict[str, Any]:  # fmt: skip
    kind = "alert" if queue == state.alert.queue else "escalation"
    task = as_task(state.alert, kind, queue)
    by = ack["by_practitioner"]
    author = {"authorReference": {"reference": f"Practitioner/{by}"}} if by else {}
    task.update(status="completed", lastModified=ack["at"],
                executionPeriod={"end": ack["at"]},
                note=[{**author, "time": ack["at"], "text": note}])  # fmt: skip
    return task
