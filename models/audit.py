"""Audit records: one per request on PHI, whatever its outcome.

Writes of PHI stage the record in their own transaction; reads and refusals put
it on its own before the response leaves. A request that returned several
patients (a search) writes its record and, in the same transaction, one copy in
each returned patient's trail, so each patient's trail shows it.

The key is derived from the request (its id and the time the record was made),
and the write is conditional on the key being fresh *or* holding this very
request's record: an SDK retry of a write whose answer was lost finds its own
record and succeeds, it never fails on it nor adds a second one. Requests that
carried no valid token are not stored here (they have no tenant; see
functions/common/http.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pynamodb.attributes import ListAttribute, UnicodeAttribute
from pynamodb.expressions.condition import Condition

from models import keys
from models.clock import new_id
from models.items import AuditItem, TableItem
from models.uow import MAX_ITEMS, UnitOfWork

# A record and one trail copy per returned patient are one transaction.
MAX_PATIENTS_PER_RECORD = MAX_ITEMS - 1


class SearchAuditItem(AuditItem, discriminator="audit-search"):
    """The record of a request that returned patients (a search): names each one."""

    patient_ids = ListAttribute(of=UnicodeAttribute, default=list)


class AuditTrailCopy(AuditItem, discriminator="audit-copy"):
    """A multi-patient record as it appears in one returned patient's trail: the
    same audit id and sort key, this patient only, no day index (the record itself
    is the one counted in a day's records)."""

    record_pk = UnicodeAttribute()


@dataclass
class AuditRecord:
    tenant: str
    actor: str
    actor_name: str | None
    roles: list[str]
    action: str
    outcome: str
    status: int
    request_id: str
    at: str  # ISO-8601 UTC, millisecond precision
    source_ip: str | None = None
    route: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    patient_id: str | None = None
    version: int | None = None
    query_params: list[str] | None = None
    result_count: int | None = None
    patient_ids: list[str] | None = None  # every patient a search returned (ids only)
    purpose: str | None = None  # declared purpose of use (v3 PurposeOfUse code), if any
    overrides: list[str] | None = None  # kinds of rule overridden with a reason, if any
    audit_id: str = field(default_factory=new_id)


FIELDS = (
    "audit_id",
    "actor",
    "actor_name",
    "roles",
    "action",
    "outcome",
    "status",
    "request_id",
    "at",
    "source_ip",
    "route",
    "resource_type",
    "resource_id",
    "patient_id",
    "version",
    "query_params",
    "result_count",
    "purpose",
    "overrides",
)


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in FIELDS}


def to_item(record: AuditRecord) -> AuditItem:
    day = record.at[:10]
    if record.patient_id is not None:
        pk = keys.audit_patient_pk(record.tenant, record.patient_id)
    else:
        pk = keys.audit_tenant_pk(record.tenant, day)
    sk = keys.audit_sk(record.at, record.audit_id)
    item: AuditItem
    if record.patient_ids is None:
        item = AuditItem(pk, sk, tenant=record.tenant, **_fields(record))
    else:
        item = SearchAuditItem(
            pk, sk, tenant=record.tenant, patient_ids=list(record.patient_ids), **_fields(record)
        )
    item.gsi1pk = keys.audit_day_gsi(record.tenant, day)
    item.gsi1sk = sk
    return item


def trail_copies(record: AuditRecord, main: AuditItem) -> list[AuditTrailCopy]:
    fields = _fields(record)
    return [
        AuditTrailCopy(
            keys.audit_patient_pk(record.tenant, patient_id),
            main.sk,
            tenant=record.tenant,
            record_pk=main.pk,
            **{**fields, "patient_id": patient_id},
        )
        for patient_id in dict.fromkeys(record.patient_ids or [])
        if patient_id != record.patient_id  # the record itself is in that trail
    ]


def _fresh_or_own(record: AuditRecord) -> Condition:
    return AuditItem.pk.does_not_exist() | (AuditItem.request_id == record.request_id)


def stage(uow: UnitOfWork, record: AuditRecord) -> None:
    uow.put("audit", to_item(record), _fresh_or_own(record))


def put(record: AuditRecord, token: str) -> None:
    """One round trip: a PutItem, or (when the record names patients) one
    TransactWriteItems with the record and its trail copies, sent with `token`
    so that a retried call does not apply twice."""
    main = to_item(record)
    copies = trail_copies(record, main)
    if not copies:
        main.save(condition=_fresh_or_own(record))
        return
    if len(copies) > MAX_PATIENTS_PER_RECORD:
        raise ValueError(f"{len(copies)} patients in one audit record")
    uow = UnitOfWork()
    uow.put("audit", main, _fresh_or_own(record))
    for copy in copies:
        uow.put("audit-copy", copy, _fresh_or_own(record))
    uow.commit(token)


def for_patient(
    tenant: str, patient_id: str, count: int, before: str | None
) -> tuple[list[AuditItem], str | None]:
    """Newest first, one Query; `before` is the sort key to continue below."""
    pk = keys.audit_patient_pk(tenant, patient_id)
    condition = AuditItem.sk < before if before else None
    result = AuditItem.query(
        pk, condition, scan_index_forward=False, page_size=count, consistent_read=True
    )
    page = result.page_iter.next()
    items = [TableItem.from_raw_data(raw) for raw in page.get("Items", [])]
    records = [i for i in items if isinstance(i, AuditItem)]
    more = page.get("LastEvaluatedKey") is not None and records
    return records, (records[-1].sk if more else None)
