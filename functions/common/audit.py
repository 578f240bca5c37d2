"""Exactly one audit record per request on PHI.

The view decorator opens an `AuditDraft` for the request; the use case fills in
what it touched. Writes stage the record in their own transaction and mark it
written once committed; for everything else (reads, searches, refusals, errors)
the decorator puts the record before the response leaves.

Everything a retry must reproduce is fixed per request: the record's id is the
request id, its time is taken once, and each transaction of the request gets a
ClientRequestToken derived from the request id (`token()`), so a call retried by
the SDK after a lost answer applies once and the record holds the status sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from models import audit as audit_store
from models.audit import AuditRecord
from models.clock import iso, now
from models.keys import valid_id
from models.uow import UnitOfWork

TOKEN_NAMESPACE = uuid.UUID("6f1d2c1e-7b0a-5b8e-9a51-3c2f4e0d9a77")
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
    patient_ids: list[str] | None = None
    purpose: str | None = None  # the declared purpose of use (X-Purpose-Of-Use), if any
    # rules the request overrode with a stated reason (e.g. a duplicate therapy), by kind
    overrides: list[str] | None = None
    written: bool = False
    at: str | None = None
    transactions: int = 0
    refusal: str | None = None  # why authentication failed (logged and counted, not stored)

    def concerns(self, resource_type: str, resource_id: str, patient_id: str | None) -> None:
        """The request is about this resource (within the caller's tenant): its record
        goes to that patient's trail, whatever the outcome. A malformed id names
        no resource and leaves the record at tenant level."""
        self.resource_type = resource_type
        if valid_id(resource_id):
            self.resource_id = resource_id
        if patient_id is not None and valid_id(patient_id):
            self.patient_id = patient_id

    def returned(self, patient_ids: list[str]) -> None:
        """The request returned these patients (a search page): the record names
        each one and appears in each one's trail."""
        self.patient_ids = list(dict.fromkeys(patient_ids))
        self.result_count = len(patient_ids)

    @property
    def audit_id(self) -> str:
        if valid_id(self.request_id):
            return self.request_id
        return str(uuid.uuid5(TOKEN_NAMESPACE, f"audit|{self.request_id}"))

    def token(self) -> str:
        """A ClientRequestToken for the request's next transaction (at most 36
        characters, as DynamoDB requires): the same for the same request and
        attempt, different for a second transaction of the same request."""
        self.transactions += 1
        return str(uuid.uuid5(TOKEN_NAMESPACE, f"{self.request_id}|{self.transactions}"))

    def record(self, status: int) -> AuditRecord:
        if self.tenant is None:
            raise ValueError("a request without a verified tenant has no audit record")
        if self.at is None:
            self.at = iso(now())
        return AuditRecord(
            tenant=self.tenant,
            actor=self.actor,
            actor_name=self.actor_name,
            roles=sorted(self.roles),
            action=self.action,
            outcome=outcome_for(status),
            status=status,
            request_id=self.request_id,
            at=self.at,
            source_ip=self.source_ip,
            route=self.route,
            resource_type=self.resource_type,
            resource_id=self.resource_id,
            patient_id=self.patient_id,
            version=self.version,
            query_params=self.query_params,
            result_count=self.result_count,
            patient_ids=self.patient_ids,
            purpose=self.purpose,
            overrides=self.overrides,
            audit_id=self.audit_id,
        )

    def stage(self, uow: UnitOfWork, status: int) -> None:
        """Put this request's record into the write's own transaction."""
        audit_store.stage(uow, self.record(status))

    def committed(self) -> None:
        self.written = True

    def finish(self, status: int) -> None:
        if not self.written:
            audit_store.put(self.record(status), self.token())
            self.written = True
