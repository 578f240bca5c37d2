"""Exactly one audit record per request on PHI.

The view decorator opens an `AuditDraft` for the request; the use case fills in
what it touched. Writes stage the record in their own transaction and mark it
written once committed; for everything else (reads, searches, refusals, errors)
the decorator puts the record before the response leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models import audit as audit_store
from models.audit import AuditRecord
from models.clock import iso, now
from models.keys import valid_id
from models.uow import UnitOfWork

OUTCOME_BY_STATUS = {
    401: "unauthenticated",
    403: "denied",
    404: "not-found",
    409: "conflict",
    410: "gone",
    412: "conflict",
}


def outcome_for(status: int) -> str:
    if status < 400:
        return "success"
    if status >= 500:
        return "error"
    return OUTCOME_BY_STATUS.get(status, "invalid")


@dataclass
class AuditDraft:
    action: str
    request_id: str
    route: str
    source_ip: str | None
    tenant: str | None = None
    actor: str = "anonymous"
    actor_name: str | None = None
    roles: list[str] = field(default_factory=list)
    resource_type: str | None = None
    resource_id: str | None = None
    patient_id: str | None = None
    version: int | None = None
    query_params: list[str] | None = None
    result_count: int | None = None
    written: bool = False

    def concerns(self, resource_type: str, resource_id: str, patient_id: str | None) -> None:
        """The request is about this resource (within the caller's tenant): its record
        goes to that patient's trail, whatever the outcome. A malformed id names
        no resource and leaves the record at tenant level."""
        self.resource_type = resource_type
        if valid_id(resource_id):
            self.resource_id = resource_id
        if patient_id is not None and valid_id(patient_id):
            self.patient_id = patient_id

    def record(self, status: int) -> AuditRecord:
        return AuditRecord(
            tenant=self.tenant,
            actor=self.actor,
            actor_name=self.actor_name,
            roles=sorted(self.roles),
            action=self.action,
            outcome=outcome_for(status),
            status=status,
            request_id=self.request_id,
            at=iso(now()),
            source_ip=self.source_ip,
            route=self.route,
            resource_type=self.resource_type,
            resource_id=self.resource_id,
            patient_id=self.patient_id,
            version=self.version,
            query_params=self.query_params,
            result_count=self.result_count,
        )

    def stage(self, uow: UnitOfWork, status: int) -> None:
        """Put this request's record into the write's own transaction."""
        audit_store.stage(uow, self.record(status))

    def committed(self) -> None:
        self.written = True

    def finish(self, status: int) -> None:
        if not self.written:
            audit_store.put(self.record(status))
            self.written = True
