"""Every key of the single table is built here and only here.

Keys are opaque strings and every one starts with the tenant, so no key
condition can reach across tenants. Identifiers that go into keys are checked
first: a tenant or id can never smuggle a `#` into another key's shape.
See models/README.md for the access patterns these keys serve.
"""

from __future__ import annotations

import re

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR id datatype
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # base64url HMAC tokens
TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")  # FHIR resource type names

CURRENT = "R"  # current version of a resource
HISTORY = "H"  # one item per version


class KeyError_(ValueError):
    """An identifier that may not appear in a key."""


def _tenant(tenant: str) -> str:
    if not TENANT_RE.match(tenant):
        raise KeyError_("tenant")
    return tenant


def _id(value: str, field: str = "id") -> str:
    if not ID_RE.match(value):
        raise KeyError_(field)
    return value


def valid_id(value: str) -> bool:
    return bool(ID_RE.match(value))


def tenant_pk(tenant: str) -> str:
    return f"TENANT#{_tenant(tenant)}"


def patient_pk(tenant: str, patient_id: str) -> str:
    """The patient's item collection: the chart, its history and search entries."""
    return f"TENANT#{_tenant(tenant)}#PATIENT#{_id(patient_id)}"


def resource_pk(tenant: str, resource_type: str, resource_id: str) -> str:
    """The item collection of a resource that belongs to no patient (Practitioner):
    its current item, history and search entries."""
    return f"TENANT#{_tenant(tenant)}#RES#{_type(resource_type)}#{_id(resource_id)}"


COMPOUND = "."  # patient id, COMPOUND, own id: the id of a resource in a patient's chart
LOCAL_ID_LENGTH = 26  # a ULID
MAX_PATIENT_ID = 64 - len(COMPOUND) - LOCAL_ID_LENGTH


def _type(resource_type: str) -> str:
    if not TYPE_RE.match(resource_type):
        raise KeyError_("resourceType")
    return resource_type


MARKERS = frozenset("p")  # lowercase: never a ULID character (Crockford base32 is uppercase)


def compound_id(patient_id: str, local_id: str, marker: str = "") -> str:
    """The id of a resource in a patient's chart names the patient, so that a read
    by id alone finds its partition (docs/adr/0007-addressing-and-keys.md). A
    separately stored variant of a type (psychotherapy notes) puts its one-letter
    marker before the ULID, so the id also names its key range."""
    if len(patient_id) > MAX_PATIENT_ID - len(marker) or len(local_id) != LOCAL_ID_LENGTH:
        raise KeyError_("id")
    if marker and marker not in MARKERS:
        raise KeyError_("marker")
    return _id(f"{_id(patient_id)}{COMPOUND}{marker}{local_id}")


def _split(resource_id: str) -> tuple[str, str, str] | None:
    if not ID_RE.match(resource_id):
        return None
    patient_id, sep, local = resource_id.rpartition(COMPOUND)
    marker = local[0] if len(local) == LOCAL_ID_LENGTH + 1 and local[0] in MARKERS else ""
    if not sep or len(local) - len(marker) != LOCAL_ID_LENGTH or not ID_RE.match(patient_id):
        return None
    return patient_id, marker, local[len(marker):]


def patient_of(resource_id: str) -> str | None:
    """The patient named by a compound id, or None when `resource_id` is not one."""
    parts = _split(resource_id)
    return parts[0] if parts else None


def marker_of(resource_id: str) -> str:
    """The variant marker of a compound id ("" for none, or not a compound id)."""
    parts = _split(resource_id)
    return parts[1] if parts else ""


def resource_sk(resource_type: str, resource_id: str) -> str:
    return f"{CURRENT}#{resource_type}#{_id(resource_id)}"


def history_sk(resource_type: str, resource_id: str, version: int) -> str:
    return f"{HISTORY}#{resource_type}#{_id(resource_id)}#{version:010d}"


def history_prefix(resource_type: str, resource_id: str) -> str:
    return f"{HISTORY}#{resource_type}#{_id(resource_id)}#"


LABELS = "L"  # keyed MAC of a resource's security labels


def labels_sk(resource_type: str, resource_id: str) -> str:
    """Beside the chart, outside its `R#` range: a chart Query never carries it."""
    return f"{LABELS}#{resource_type}#{_id(resource_id)}"


def type_list_pk(tenant: str, resource_type: str) -> str:
    """gsi1: every current resource of one type in a tenant, oldest first (ids are
    ULIDs, compound ids start with their patient's)."""
    return f"TENANT#{_tenant(tenant)}#TYPE#{_type(resource_type)}"


def resource_prefix(resource_type: str) -> str:
    """The current items of one type in a collection: `begins_with(sk, ...)`."""
    return f"{CURRENT}#{_type(resource_type)}#"


def search_entry_prefix(resource_type: str, resource_id: str) -> str:
    return f"S#{_type(resource_type)}#{_id(resource_id)}#"


def search_entry_sk(resource_type: str, resource_id: str, token: str) -> str:
    """One entry per (resource, token): several resources of a chart may share a token."""
    if not TOKEN_RE.match(token):
        raise KeyError_("token")
    return f"{search_entry_prefix(resource_type, resource_id)}{token}"


def search_pk(tenant: str, token: str) -> str:
    """gsi1: one partition per blind-index token (tokens are namespaced by resource
    type and parameter, so the partition holds one type)."""
    if not TOKEN_RE.match(token):
        raise KeyError_("token")
    return f"TENANT#{_tenant(tenant)}#SEARCH#{token}"


def audit_patient_pk(tenant: str, patient_id: str) -> str:
    return f"TENANT#{_tenant(tenant)}#AUDIT#PATIENT#{_id(patient_id)}"


def audit_tenant_pk(tenant: str, day: str) -> str:
    """Audit records that concern no single patient (searches, denied lists).
    Requests without a valid token have no tenant and are not stored at all: they
    are logged and counted (functions/common/http.py)."""
    return f"TENANT#{_tenant(tenant)}#AUDIT#DAY#{day}"


def audit_sk(at_iso: str, audit_id: str) -> str:
    return f"{at_iso}#{audit_id}"


def audit_day_gsi(tenant: str, day: str) -> str:
    """gsi1: a tenant's audit records of one day, whatever the patient."""
    return f"TENANT#{_tenant(tenant)}#AUDITDAY#{day}"


def conditional_create_pk(tenant: str, resource_type: str, token: str) -> str:
    """A short-lived claim on one set of conditional-create criteria (keyed MAC)."""
    if not TOKEN_RE.match(token):
        raise KeyError_("token")
    return f"TENANT#{_tenant(tenant)}#CC#{_type(resource_type)}#{token}"


CONDITIONAL_CREATE_SK = "CLAIM"


def outbox_pk(tenant: str, event_id: str) -> str:
    return f"TENANT#{_tenant(tenant)}#OUTBOX#{_id(event_id)}"


OUTBOX_SK = "EVENT"


def outbox_pending_gsi(tenant: str) -> str:
    """gsi1: a tenant's outbox events not yet delivered (sparse: delivery removes them)."""
    return f"TENANT#{_tenant(tenant)}#OUTBOX#PENDING"


def outbox_pending_sk(occurred_at: str, event_id: str) -> str:
    return f"{occurred_at}#{_id(event_id)}"


def tenant_key_sk(purpose: str) -> str:
    return f"KEY#{purpose}"


CHART = "C"  # chart entries (docs/adr/0008): summaries the chart Query reads, nothing else
COUNTER = "K"  # slot counters of the chart's rings, outside the chart's range
CHART_KEY_RE = re.compile(r"^[0-9]#[A-Za-z0-9#.\-]{1,150}$")
COUNTER_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{0,62}$")


def chart_sk(key: str) -> str:
    """`C#<section digit>#...`: the chart Query reads `C#` to `C$`, never bodies."""
    if not CHART_KEY_RE.match(key):
        raise KeyError_("chart key")
    return f"{CHART}#{key}"


def chart_range() -> tuple[str, str]:
    return f"{CHART}#", f"{CHART}$"


def counter_sk(name: str) -> str:
    if not COUNTER_RE.match(name):
        raise KeyError_("counter")
    return f"{COUNTER}#{name}"


CONSUMER_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def idempotency_pk(consumer: str) -> str:
    """An event consumer's idempotency records (powertools; sk `<consumer>#<hash of the
    event id>`). Ops index across tenants: event ids are global ULIDs, nothing else is in
    the key (models/README.md)."""
    if not CONSUMER_RE.match(consumer):
        raise KeyError_("consumer")
    return f"IDEMPOTENCY#{consumer}"


# The audit ledger (models/ledger.py): one hash chain per tenant.
LEDGER_ENTRY = "L"  # entries: `L#<seq:012d>`; HEAD and ARCHIVE sort outside `L#...`
LEDGER_HEAD_SK = "HEAD"
LEDGER_CURSOR_SK = "ARCHIVE"
LEDGER_MARKER_SK = "MARKER"
LEDGER_TENANTS = "OPS#LEDGER-TENANTS"  # ops index across tenants: gsi1sk = the tenant id
LEDGER_SEQ_MAX = 10**12 - 1
LEDGER_TIME_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,12}Z#[0-9]{12}$")


def ledger_pk(tenant: str) -> str:
    """A tenant's chain: its entries, its head and its archive cursor."""
    return f"TENANT#{_tenant(tenant)}#LEDGER"


def ledger_entry_sk(seq: int) -> str:
    if not 0 <= seq <= LEDGER_SEQ_MAX:
        raise KeyError_("seq")
    return f"{LEDGER_ENTRY}#{seq:012d}"


def ledger_marker_pk(tenant: str, event_id: str) -> str:
    """Claimed by the transaction that appends the event: an event is appended once."""
    return f"TENANT#{_tenant(tenant)}#LEDGER#EVENT#{_id(event_id, 'event id')}"


def ledger_patient_pk(tenant: str, patient_id: str) -> str:
    """Copies of the entries that name one patient (sk: `ledger_time_sk`)."""
    return f"TENANT#{_tenant(tenant)}#LEDGER#PATIENT#{_id(patient_id)}"


def ledger_user_gsi(tenant: str, actor: str) -> str:
    """gsi2: the entries of one user (the actor's id), sk `ledger_time_sk`."""
    return f"TENANT#{_tenant(tenant)}#LEDGER#USER#{_id(actor, 'actor')}"


def ledger_time_sk(occurred_at: str, seq: int) -> str:
    """`<occurred_at, ISO-8601 UTC ms>#<seq:012d>`: sorts by time, unique by seq."""
    value = f"{occurred_at}#{seq:012d}"
    if not LEDGER_TIME_RE.match(value) or not 0 <= seq <= LEDGER_SEQ_MAX:
        raise KeyError_("ledger time")
    return value


# Safety alerts (models/alerts.py): one item collection per alert, keyed by its Flag's id.
ALERT_SK = "ALERT"  # the alert itself (ids and codes)
ALERT_ACK_SK = "ACK"  # its acknowledgement: put once (`attribute_not_exists`)
ALERT_DUE_SK = "DUE"  # in the escalation index while escalation is pending
ALERT_ESCALATED_SK = "ESCALATED"  # the escalation: put once
ALERT_QUEUE_SUPERVISORS = "SUPERVISORS"  # the tenant's supervisors' queue (no owner)
ALERT_DUE = "OPS#ALERT-DUE"  # ops index across tenants (gsi1): ids and times only
ISO_MS_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")
ALERT_STEP_RE = re.compile(r"^[a-z][a-z-]{0,30}$")


def alert_pk(tenant: str, alert_id: str) -> str:
    return f"TENANT#{_tenant(tenant)}#ALERT#{_id(alert_id, 'alert id')}"


def alert_sent_sk(step: str) -> str:
    """`SENT#<step>`: the alert's SNS message of that step (`raised`, `escalated`) went out."""
    if not ALERT_STEP_RE.match(step):
        raise KeyError_("step")
    return f"SENT#{step}"


def work_queue(practitioner_id: str | None) -> str:
    """A work queue's name: a Practitioner's, or (None) the tenant's supervisors'."""
    if practitioner_id is None:
        return ALERT_QUEUE_SUPERVISORS
    return f"PRACTITIONER#{_id(practitioner_id, 'practitioner id')}"


def alert_queue_sk(queue: str) -> str:
    """The alert's entry in one work queue."""
    return f"QUEUE#{queue}"


def work_queue_gsi(tenant: str, queue: str) -> str:
    """gsi1: one work queue's open entries (sk `alert_time_sk`, newest last)."""
    return f"TENANT#{_tenant(tenant)}#WORKQUEUE#{queue}"


def _iso_ms(at: str) -> str:
    if not ISO_MS_RE.match(at):
        raise KeyError_("time")
    return at


def alert_time_sk(at: str, alert_id: str) -> str:
    return f"{_iso_ms(at)}#{_id(alert_id, 'alert id')}"


def alert_due_sk(due_at: str, tenant: str, alert_id: str) -> str:
    """gsi1 sort key of the escalation index: when, then which tenant and alert."""
    return f"{_iso_ms(due_at)}#{_tenant(tenant)}#{_id(alert_id, 'alert id')}"


# --- billing (functions/billing): the capture and claim guards, the biller work queue


def billing_encounter_pk(tenant: str, encounter_id: str) -> str:
    """An encounter's billing guards: `CAPTURE` (its charges) and `CLAIM` (its claim),
    each put once (attribute_not_exists) in the transaction that makes them."""
    return f"TENANT#{_tenant(tenant)}#BILLING#ENCOUNTER#{_id(encounter_id, 'encounter id')}"


BILLING_CAPTURE_SK = "CAPTURE"
BILLING_CLAIM_SK = "CLAIM"


def billing_work_pk(tenant: str) -> str:
    """The tenant's biller work queue (ids and reason codes only)."""
    return f"TENANT#{_tenant(tenant)}#BILLING#WORK"


BILLING_REASON_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def billing_work_sk(at: str, encounter_id: str, reason: str, code: str | None = None) -> str:
    """Oldest first: when the item was raised, then its encounter, reason and code."""
    if not BILLING_REASON_RE.match(reason):
        raise KeyError_("reason")
    tail = f"#{_id(code, 'code')}" if code else ""
    return f"{_iso_ms(at)}#{_id(encounter_id, 'encounter id')}#{reason}{tail}"
