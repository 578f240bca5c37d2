"""Audit records: one per request on PHI, whatever its outcome.

Writes of PHI stage the record in their own transaction; reads, searches and
refusals put it on its own before the response leaves. Records are never
updated (the put is conditional on a fresh key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models import keys
from models.clock import new_id
from models.items import AuditItem, TableItem
from models.uow import UnitOfWork


@dataclass
class AuditRecord:
    tenant: str | None  # None: the request carried no valid token
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
    audit_id: str = field(default_factory=new_id)


def to_item(record: AuditRecord) -> AuditItem:
    day = record.at[:10]
    if record.tenant is None:
        pk = keys.audit_unauthenticated_pk(day)
    elif record.patient_id is not None:
        pk = keys.audit_patient_pk(record.tenant, record.patient_id)
    else:
        pk = keys.audit_tenant_pk(record.tenant, day)
    sk = keys.audit_sk(record.at, record.audit_id)
    fields: dict[str, Any] = {
        name: getattr(record, name)
        for name in (
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
        )
    }
    item = AuditItem(pk, sk, tenant=record.tenant or "-", **fields)
    if record.tenant is not None:
        item.gsi1pk = keys.audit_day_gsi(record.tenant, day)
        item.gsi1sk = sk
    return item


def stage(uow: UnitOfWork, record: AuditRecord) -> None:
    uow.put("audit", to_item(record), AuditItem.pk.does_not_exist())


def put(record: AuditRecord) -> None:
    to_item(record).save(condition=AuditItem.pk.does_not_exist())


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
