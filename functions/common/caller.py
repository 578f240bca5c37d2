"""Who is asking, for every use case: the verified principal, the request, and
(for the privacy rules that come next) a purpose of use and a break-glass reason.

The caller also carries the request's audit draft: use cases say what they
touched (`touched`) and writes put the record into their own transaction
(`stage_audit`); the record itself is built in one place
(functions/common/audit.py, `AuditDraft.record`).
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.common.audit import AuditDraft
from functions.common.principal import Principal
from models.uow import UnitOfWork


@dataclass
class Caller:
    principal: Principal
    request_id: str
    audit: AuditDraft
    purpose_of_use: str | None = None  # e.g. TREAT, HPAYMT (v3 PurposeOfUse), later
    break_glass_reason: str | None = None

    @property
    def tenant(self) -> str:
        return self.principal.tenant

    @property
    def actor(self) -> str:
        return self.principal.sub

    def touched(
        self,
        resource_type: str,
        resource_id: str,
        patient_id: str | None,
        version: int | None = None,
    ) -> None:
        self.audit.concerns(resource_type, resource_id, patient_id)
        if version is not None:
            self.audit.version = version

    def returned(self, resource_type: str, count: int, patient_ids: list[str]) -> None:
        """A search page: how many resources, and every patient they belong to."""
        self.audit.resource_type = resource_type
        self.audit.returned(patient_ids)
        self.audit.result_count = count

    def stage_audit(self, uow: UnitOfWork, status: int) -> None:
        self.audit.stage(uow, status)

    def committed(self) -> None:
        self.audit.committed()

    def token(self) -> str:
        return self.audit.token()


def system_caller(tenant: str, actor: str, name: str, request_id: str, action: str) -> Caller:
    """A caller for work the system does itself (the importer, seeding): audited
    under its own actor and role."""
    draft = AuditDraft(
        action=action,
        request_id=request_id,
        route=name,
        source_ip=None,
        tenant=tenant,
        actor=actor,
        actor_name=name,
        roles=[name],
    )
    principal = Principal(sub=actor, username=name, tenant=tenant, roles=frozenset({name}))
    return Caller(principal, request_id, draft)
