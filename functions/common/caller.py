"""Who is asking, for every use case: the verified principal, the request, the
purpose of use it declared (`X-Purpose-Of-Use`) and, later, a break-glass reason.

The caller also carries the request's audit draft: use cases say what they
touched (`touched`) and writes put the record into their own transaction
(`stage_audit`); the record itself is built in one place
(functions/common/audit.py, `AuditDraft.record`).

After-load checks and views (functions/common/authz.py) are handed the principal
only; the request being served binds its caller (`bound`), and `current_for`
gives it back to them for that very principal object, never another request's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from functions.common.audit import AuditDraft
from functions.common.errors import Invalid, Issue
from functions.common.principal import Principal
from models.uow import UnitOfWork

PURPOSE_HEADER = "X-Purpose-Of-Use"
# Codes of HL7 v3 PurposeOfUse (ActReason) accepted in the header; the header is
# required on every request about a psychotherapy note (functions/notes/access.py).
PURPOSES_OF_USE = {
    "TREAT": "treatment",
    "ETREAT": "emergency treatment",
    "COC": "coordination of care",
    "HPAYMT": "healthcare payment",
    "HOPERAT": "healthcare operations (supervision, training, quality)",
    "HLEGAL": "legal (e.g. defending a claim)",
    "PATRQT": "requested by the patient",
}


def purpose_from(headers: Mapping[str, str]) -> str | None:
    """The declared purpose of use (None: none given); an unknown code is a 400
    naming the header (never echoing its value)."""
    value = headers.get(PURPOSE_HEADER.lower())
    if value is None:
        return None
    code = value.strip()
    if code not in PURPOSES_OF_USE:
        allowed = ", ".join(PURPOSES_OF_USE)
        raise Invalid(
            Issue("code-invalid", f"{PURPOSE_HEADER} must be one of {allowed}.", [PURPOSE_HEADER])
        )
    return code


@dataclass
class Caller:
    principal: Principal
    request_id: str
    audit: AuditDraft
    purpose_of_use: str | None = None  # a PURPOSES_OF_USE code, from the request header
    break_glass_reason: str | None = None
    # Lookups made for this request only (e.g. the signed-in user's Practitioner for
    # an after-load check): dropped with the caller, never shared between requests.
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

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


_current: ContextVar[Caller | None] = ContextVar("emr_caller", default=None)


@contextmanager
def bound(caller: Caller) -> Iterator[Caller]:
    """The request's caller, for after-load checks and views while its view runs."""
    token = _current.set(caller)
    try:
        yield caller
    finally:
        _current.reset(token)


def current_for(principal: Principal) -> Caller | None:
    """The bound caller when it carries this very principal object (identity, not
    equality: another request of the same user never matches), else None."""
    caller = _current.get()
    return caller if caller is not None and caller.principal is principal else None


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
