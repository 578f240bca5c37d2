"""Raising a safety alert from a `safety.risk-identified` event (docs/alerts.md).

`raise_alert` is safe to run any number of times for one Flag: the alert is put
once (`attribute_not_exists`, keyed on the Flag), and its SNS message is sent
only while no `SENT#raised` marker says it went out and nobody has acknowledged
the alert. A crash between the put and the message is therefore repaired by the
redelivery; a crash between the message and its marker sends it a second time
(SNS itself is at least once: subscribers key on the alert id and kind).

The responsible clinician, decided from the record (the Flag names no author):
1. the QuestionnaireResponse's `author`, when it is a live Practitioner of the
   tenant (the clinician who administered the screen);
2. else the patient's first `generalPractitioner` that is a live Practitioner;
3. else nobody: the alert goes to the tenant's supervisors' queue at once.
Escalation goes to the supervisor named by the responsible clinician's
`supervisor` extension when the alert is raised, else to the supervisors' queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from functions.alerts import notify
from models import alerts as store
from models import keys
from models.alerts import Alert
from models.clock import iso, now
from models.uow import TransactionCancelled, UnitOfWork

RESPONSE_AUTHOR, GENERAL_PRACTITIONER, NOBODY = "response-author", "general-practitioner", "none"


@dataclass(frozen=True)
class Signal:
    """The ids and codes of a SafetyRiskIdentified event."""

    tenant: str
    event_id: str
    occurred_at: str
    patient_id: str
    flag_id: str
    response_id: str
    observation_id: str
    instrument: str
    reason: str


@dataclass(frozen=True)
class Responsible:
    practitioner_id: str | None
    basis: str
    supervisor_id: str | None


def _practitioner_ids(references: Any) -> list[str]:
    listed = references if isinstance(references, list) else [references]
    refs = [r.get("reference") for r in listed if isinstance(r, dict)]
    ids = [r.partition("/")[2] for r in refs if isinstance(r, str) and r[:13] == "Practitioner/"]
    return [i for i in ids if keys.valid_id(i)]


def _candidates(tenant: str, patient_id: str, response_id: str) -> list[tuple[str, str]]:
    """(Practitioner id, basis) in the order of the module docstring: one BatchGetItem."""
    from functions.engine import registry
    from functions.engine.service import address_of
    from models import resources

    response_at = address_of(tenant, registry.require("QuestionnaireResponse"), response_id)
    patient_at = address_of(tenant, registry.chart_owner(), patient_id)
    found = resources.read_many([a for a in (response_at, patient_at) if a is not None])
    response = found[response_at].resource if response_at in found else None
    patient = found[patient_at].resource if patient_at in found else None
    authors = _practitioner_ids((response or {}).get("author"))
    general = _practitioner_ids((patient or {}).get("generalPractitioner"))
    return [(p, RESPONSE_AUTHOR) for p in authors] + [(p, GENERAL_PRACTITIONER) for p in general]


def responsible(tenant: str, patient_id: str, response_id: str) -> Responsible:
    """Who answers for the alert (module docstring): one BatchGetItem (the response and
    the patient), then a GetItem per candidate Practitioner until a live one."""
    from functions.engine import registry
    from functions.engine.service import address_of
    from functions.notes.signing import supervisor_of
    from models import resources

    practitioner = registry.require("Practitioner")
    for practitioner_id, basis in _candidates(tenant, patient_id, response_id):
        at = address_of(tenant, practitioner, practitioner_id)
        stored = resources.read_current(at) if at is not None else None
        if stored is not None and stored.resource is not None:
            supervisor = supervisor_of(stored.resource)
            supervisor_id = supervisor.partition("/")[2] if supervisor else None
            return Responsible(practitioner_id, basis, supervisor_id)
    return Responsible(None, NOBODY, None)


def _due(raised_at: str, minutes: int) -> str:
    raised = datetime.fromisoformat(raised_at.replace("Z", "+00:00"))
    return iso(raised + timedelta(minutes=minutes))


def escalation_queue(alert: Alert) -> str:
    """Where the alert goes when nobody acknowledges it in time."""
    if alert.supervisor_id is not None:
        return keys.work_queue(alert.supervisor_id)
    return keys.ALERT_QUEUE_SUPERVISORS


def _new_alert(signal: Signal) -> Alert:
    from functions.common import tenant_settings

    who = responsible(signal.tenant, signal.patient_id, signal.response_id)
    raised_at = iso(datetime.fromisoformat(signal.occurred_at.replace("Z", "+00:00")))
    minutes = tenant_settings.get(signal.tenant).alert_escalation_minutes
    return Alert(
        tenant=signal.tenant, flag_id=signal.flag_id, patient_id=signal.patient_id,
        response_id=signal.response_id, observation_id=signal.observation_id,
        instrument=signal.instrument, reason=signal.reason, raised_at=raised_at,
        due_at=_due(raised_at, minutes), owner_id=who.practitioner_id, basis=who.basis,
        supervisor_id=who.supervisor_id,
    )  # fmt: skip


def _create(signal: Signal) -> store.AlertState:
    """Put the alert unless it exists (a concurrent or earlier delivery put it)."""
    alert = _new_alert(signal)
    uow = UnitOfWork()
    store.stage_raise(uow, alert, signal.event_id, escalation_queue(alert))
    try:
        uow.commit()
    except TransactionCancelled as exc:
        if "alert" not in exc.failed:
            raise
        existing = store.read(signal.tenant, signal.flag_id)
        assert existing is not None  # the condition failed: it exists
        return existing
    return store.AlertState(alert)


def raise_alert(signal: Signal) -> store.AlertState:
    """The alert of this Flag, in its responsible clinician's queue, announced once."""
    state = store.read(signal.tenant, signal.flag_id) or _create(signal)
    if store.RAISED not in state.sent and state.ack is None:
        notify.publish(state.alert, notify.RAISED_KIND, state.alert.queue)
        store.mark_sent(state.alert, store.RAISED, iso(now()))
        state.sent.add(store.RAISED)
    return state
