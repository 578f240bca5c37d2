"""Safety alerts in the table (docs/alerts.md): one item collection per alert.

`TENANT#t#ALERT#<flag id>` holds the alert (`ALERT`), its entry in each work queue
that lists it (`QUEUE#<queue>`, on gsi1 `TENANT#t#WORKQUEUE#<queue>`), its place in
the escalation index while escalation is pending (`DUE`, on the ops index
`OPS#ALERT-DUE`, which spans tenants and carries ids and times only), its
escalation (`ESCALATED`) and acknowledgement (`ACK`), each put once, and markers of
the SNS messages that went out (`SENT#<step>`). Everything is ids and codes except
the acknowledgement's note, which is sealed like a body (models/crypto.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pynamodb.attributes import BinaryAttribute, UnicodeAttribute

from models import keys
from models.crypto import envelope
from models.items import TableItem
from models.uow import UnitOfWork

RAISED, ESCALATED = "raised", "escalated"  # the steps of an alert (DUE item, SENT markers)
QUEUE_PAGE = 99  # entries one work queue lists (a page's audit record names each patient)


class _AlertFields(TableItem):
    tenant = UnicodeAttribute()
    flag_id = UnicodeAttribute()  # the alert's id is its Flag's
    patient_id = UnicodeAttribute()
    response_id = UnicodeAttribute()
    observation_id = UnicodeAttribute()
    instrument = UnicodeAttribute()
    reason = UnicodeAttribute()  # the safety rule's code
    raised_at = UnicodeAttribute()
    due_at = UnicodeAttribute()  # when it escalates unless acknowledged
    owner_id = UnicodeAttribute(null=True)  # the responsible clinician's Practitioner id
    basis = UnicodeAttribute()  # how the owner was found (functions/alerts/service.py)
    supervisor_id = UnicodeAttribute(null=True)  # the owner's supervisor when raised


class AlertItem(_AlertFields, discriminator="alert"):
    event_id = UnicodeAttribute()  # the safety.risk-identified event that raised it


class AlertEntryItem(_AlertFields, discriminator="alert-entry"):
    """The alert in one work queue (gsi1); removed when it is acknowledged."""

    queue = UnicodeAttribute()
    kind = UnicodeAttribute()  # "alert" (the owner's) or "escalation"


class AlertDueItem(_AlertFields, discriminator="alert-due"):
    """The alert in the escalation index (gsi1 `OPS#ALERT-DUE`) while work is pending."""

    step = UnicodeAttribute()  # RAISED: escalate at due_at; ESCALATED: message pending
    escalate_to = UnicodeAttribute()  # the queue escalation puts it in


class AlertAckItem(TableItem, discriminator="alert-ack"):
    tenant = UnicodeAttribute()
    flag_id = UnicodeAttribute()
    at = UnicodeAttribute()
    by_user = UnicodeAttribute()  # the acknowledging user's subject
    by_practitioner = UnicodeAttribute(null=True)
    queue = UnicodeAttribute()  # the queue it was acknowledged from
    request_id = UnicodeAttribute()
    note = BinaryAttribute(legacy_encoding=False)  # sealed: free text may hold PHI


class AlertMarkItem(TableItem, discriminator="alert-mark"):
    """A step done once: the escalation, or an SNS message sent (`SENT#<step>`)."""

    tenant = UnicodeAttribute()
    flag_id = UnicodeAttribute()
    at = UnicodeAttribute()
    queue = UnicodeAttribute(null=True)  # of the escalation: where it went


@dataclass(frozen=True)
class Alert:
    tenant: str
    flag_id: str
    patient_id: str
    response_id: str
    observation_id: str
    instrument: str
    reason: str
    raised_at: str
    due_at: str
    owner_id: str | None
    basis: str
    supervisor_id: str | None

    @property
    def queue(self) -> str:
        return keys.work_queue(self.owner_id)

    @property
    def pk(self) -> str:
        return keys.alert_pk(self.tenant, self.flag_id)


FIELDS = tuple(Alert.__dataclass_fields__)


def _fields(alert: Alert) -> dict[str, Any]:
    return {name: getattr(alert, name) for name in FIELDS}


def alert_of(item: _AlertFields) -> Alert:
    return Alert(**{name: getattr(item, name) for name in FIELDS})


@dataclass
class AlertState:
    """Everything of one alert, read in one consistent Query."""

    alert: Alert
    entries: dict[str, AlertEntryItem] = field(default_factory=dict)  # queue -> entry
    due: AlertDueItem | None = None
    ack: AlertAckItem | None = None
    escalated: AlertMarkItem | None = None
    sent: set[str] = field(default_factory=set)


def read(tenant: str, flag_id: str) -> AlertState | None:
    """The alert's collection (one consistent Query); None when it was never raised."""
    items = list(TableItem.query(keys.alert_pk(tenant, flag_id), consistent_read=True))
    alerts = [i for i in items if isinstance(i, AlertItem)]
    if not alerts:
        return None
    state = AlertState(alert_of(alerts[0]))
    for item in items:
        if isinstance(item, AlertEntryItem):
            state.entries[item.queue] = item
        elif isinstance(item, AlertDueItem):
            state.due = item
        elif isinstance(item, AlertAckItem):
            state.ack = item
        elif isinstance(item, AlertMarkItem) and item.sk == keys.ALERT_ESCALATED_SK:
            state.escalated = item
        elif isinstance(item, AlertMarkItem):
            state.sent.add(item.sk.partition("#")[2])  # SENT#<step>
    return state


def entry(alert: Alert, queue: str, kind: str) -> AlertEntryItem:
    return AlertEntryItem(
        alert.pk, keys.alert_queue_sk(queue), queue=queue, kind=kind,
        gsi1pk=keys.work_queue_gsi(alert.tenant, queue),
        gsi1sk=keys.alert_time_sk(alert.raised_at, alert.flag_id), **_fields(alert),
    )  # fmt: skip


def due_item(alert: Alert, step: str, at: str, escalate_to: str) -> AlertDueItem:
    return AlertDueItem(
        alert.pk, keys.ALERT_DUE_SK, step=step, escalate_to=escalate_to,
        gsi1pk=keys.ALERT_DUE, gsi1sk=keys.alert_due_sk(at, alert.tenant, alert.flag_id),
        **_fields(alert),
    )  # fmt: skip


def stage_raise(uow: UnitOfWork, alert: Alert, event_id: str, escalate_to: str) -> None:
    """The alert (once: `attribute_not_exists`), its owner's queue entry, its DUE item."""
    item = AlertItem(alert.pk, keys.ALERT_SK, event_id=event_id, **_fields(alert))
    uow.put("alert", item, AlertItem.pk.does_not_exist())
    uow.put("entry", entry(alert, alert.queue, "alert"))
    uow.put("due", due_item(alert, RAISED, alert.due_at, escalate_to))


def mark_sent(alert: Alert, step: str, at: str) -> None:
    AlertMarkItem(alert.pk, keys.alert_sent_sk(step), tenant=alert.tenant,
                  flag_id=alert.flag_id, at=at).save()  # fmt: skip


def stage_escalation(uow: UnitOfWork, due: AlertDueItem, at: str) -> None:
    """Escalate once: not if acknowledged, not twice; the DUE item stays (step
    ESCALATED, due now) until the escalation's message is sent."""
    alert, target = alert_of(due), due.escalate_to
    uow.check("ack", TableItem, alert.pk, keys.ALERT_ACK_SK, TableItem.pk.does_not_exist())
    mark = AlertMarkItem(alert.pk, keys.ALERT_ESCALATED_SK, tenant=alert.tenant,
                         flag_id=alert.flag_id, at=at, queue=target)  # fmt: skip
    uow.put("escalated", mark, AlertMarkItem.pk.does_not_exist())
    if target != alert.queue:
        uow.put("entry", entry(alert, target, "escalation"), AlertEntryItem.pk.does_not_exist())
    uow.put("due", due_item(alert, ESCALATED, at, target), AlertDueItem.step == RAISED)


def finish_escalation(alert: Alert) -> None:
    """Out of the escalation index once the escalation's message went out."""
    from pynamodb.exceptions import DeleteError

    try:
        AlertDueItem(alert.pk, keys.ALERT_DUE_SK).delete(AlertDueItem.step == ESCALATED)
    except DeleteError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise


def due(now: str, limit: int) -> list[AlertDueItem]:
    """Alerts whose escalation is pending at `now`, oldest first: one Query on the ops
    index (eventually consistent: each write below is conditional)."""
    cut = f"{now}$"  # after every `<now>#...` key
    result = TableItem.gsi1.query(keys.ALERT_DUE, TableItem.gsi1sk < cut, page_size=limit)
    page = result.page_iter.next()
    items = [TableItem.from_raw_data(raw) for raw in page.get("Items", [])]
    return [i for i in items if isinstance(i, AlertDueItem)]


def queue_entries(tenant: str, queue: str) -> list[AlertEntryItem]:
    """A work queue's open entries, newest first: one Query on gsi1."""
    result = TableItem.gsi1.query(
        keys.work_queue_gsi(tenant, queue), scan_index_forward=False, page_size=QUEUE_PAGE
    )
    page = result.page_iter.next()
    items = [TableItem.from_raw_data(raw) for raw in page.get("Items", [])]
    return [i for i in items if isinstance(i, AlertEntryItem)]


def _note_aad(pk: str) -> bytes:
    return f"{pk}|{keys.ALERT_ACK_SK}|note".encode()


def stage_ack(uow: UnitOfWork, state: AlertState, ack: dict[str, Any], note: str) -> None:
    """The acknowledgement (once), and the alert out of every queue and of the index.
    An escalation committed after `state` was read cancels it (read again)."""
    alert = state.alert
    blob = envelope().seal(note.encode(), tenant=alert.tenant, data_class="phi",
                           aad=_note_aad(alert.pk))  # fmt: skip
    item = AlertAckItem(alert.pk, keys.ALERT_ACK_SK, tenant=alert.tenant,
                        flag_id=alert.flag_id, note=blob, **ack)  # fmt: skip
    uow.put("ack", item, AlertAckItem.pk.does_not_exist())
    for queue in state.entries:
        uow.delete("entry", AlertEntryItem(alert.pk, keys.alert_queue_sk(queue)))
    if state.due is not None:
        uow.delete("due", AlertDueItem(alert.pk, keys.ALERT_DUE_SK))
    if state.escalated is None:
        uow.check("escalated", TableItem, alert.pk, keys.ALERT_ESCALATED_SK,
                  TableItem.pk.does_not_exist())  # fmt: skip


def open_note(state: AlertState) -> str | None:
    if state.ack is None:
        return None
    pk = state.alert.pk
    plain = envelope().open(state.ack.note, tenant=state.alert.tenant, data_class="phi",
                            aad=_note_aad(pk))  # fmt: skip
    return plain.decode()
