"""Use cases of the plans workflow: `$sign`.

Signing makes a draft plan `active` under the signer's name, in ONE transaction
(`service.commit`): the plan's next version, its Provenance (the SHA-256 of the
signed version, functions/plans/signing.py), the revocation of the plan it
replaces (if that one is still active), each with its chart entry and event, the
`careplan.signed` event and the audit record. Round trips: the plan (one
GetItem), the signer's Practitioner (one Query), the replaced plan for a revision
(one GetItem), the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.common.caller import Caller
from functions.common.errors import Conflict, Forbidden, Invalid, Issue, PreconditionFailed
from functions.engine import directory, service
from functions.notes.declarations import PROVENANCE
from functions.plans.declarations import CARE_PLAN, REVOKE, SIGN
from functions.plans.links import replaced_plan
from functions.plans.rules import plan_kind
from functions.plans.signing import plan_provenance, plan_sha256
from models import resources
from models.clock import iso, now
from models.resources import Stored
from models.uow import UnitOfWork

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Signed:
    plan: Stored  # the signed (active) version
    provenance: Stored
    replaced: Stored | None  # the revoked version of the plan it replaces, if any


def _signer(caller: Caller) -> str:
    """`Practitioner/<id>` of the caller (403 when the user has none)."""
    practitioner = directory.practitioner_for(caller)
    if practitioner is None:
        raise Forbidden(
            Issue("forbidden", "Only a user with a Practitioner record can sign a plan.",
                  ["Practitioner"])
        )  # fmt: skip
    return f"Practitioner/{practitioner.address.resource_id}"


def _check_version(current: Stored, if_match: str | None) -> None:
    """If-Match, when given, must name the current version (412 otherwise)."""
    if if_match is None:
        return
    expected = service.parse_if_match(if_match)
    if expected != current.version:
        raise PreconditionFailed(
            Issue("conflict", f"Version {expected} is not current (current is "
                  f"{current.version}).", ["If-Match"])
        )  # fmt: skip


def signed_body(body: dict[str, Any], signer: str) -> dict[str, Any]:
    """The draft as signed: active, authored by the signer. A plan is signed by its
    author: one authored by someone else is a 409 (change the draft's author, or
    ask them to sign)."""
    author = body.get("author")
    named = author.get("reference") if isinstance(author, dict) else None
    if author is not None and named != signer:
        raise Conflict(
            Issue("business-rule", "A plan is signed by its author; this plan's author is "
                  "someone else.", ["CarePlan.author"])
        )  # fmt: skip
    return {**body, "status": SIGN.to, "author": {"reference": signer}}


def _read_replaced(caller: Caller, plan_id: str) -> Stored | None:
    """The plan a revision replaces, to revoke it: None when it has already ended;
    a draft, or a plan that is not known, is refused (a revision replaces a plan
    that was signed)."""
    a = service.address_of(caller.tenant, CARE_PLAN, plan_id)
    old = resources.read_current(a) if a is not None else None
    status = (old.resource or {}).get("status") if old is not None else None
    if old is None or old.deleted or status == "draft":
        raise Invalid(
            Issue("value", "replaces must name a signed CarePlan of this patient.",
                  ["CarePlan.replaces[0].reference"])
        )  # fmt: skip
    return old if status in REVOKE.start else None


def _stage_revocation(uow: UnitOfWork, caller: Caller, old: Stored) -> Stored:
    body = {**(old.resource or {}), "status": REVOKE.to}
    return service.stage_replace(uow, caller, CARE_PLAN, old, body, step=REVOKE)


def _stage_event(
    uow: UnitOfWork, caller: Caller, plan: Stored, provenance: Stored, signer: str,
    replaced: Stored | None,
) -> None:  # fmt: skip
    from events import outbox
    from events.plans import PlanSigned

    a = plan.address
    event = PlanSigned(
        tenant=a.tenant, actor=caller.actor, request_id=caller.request_id,
        plan_id=a.resource_id, patient_id=a.patient_id or "", plan_version=plan.version,
        kind=plan_kind(plan.resource or {}), signer_id=signer.partition("/")[2],
        provenance_id=provenance.address.resource_id,
        replaced_plan_id=replaced.address.resource_id if replaced is not None else None,
    )  # fmt: skip
    outbox.stage(uow, event)


def sign(caller: Caller, plan_id: str, if_match: str | None) -> Signed:
    """`$sign`: draft -> active, with its Provenance, in one transaction. 404/410 for
    an unknown plan (another organisation's included), 412 for a stale If-Match, 403
    without a Practitioner, 409 when the plan is not a draft, is another's or changed
    meanwhile, 400 when what it replaces is not a signed plan of the patient."""
    current = service.read(caller, CARE_PLAN, plan_id)
    _check_version(current, if_match)
    signer = _signer(caller)
    body = signed_body(current.resource or {}, signer)
    replaced_id = replaced_plan(body)
    old = _read_replaced(caller, replaced_id) if replaced_id is not None else None
    uow = UnitOfWork()
    plan = service.stage_replace(uow, caller, CARE_PLAN, current, body, step=SIGN)
    target = f"CarePlan/{plan_id}/_history/{plan.version}"
    record = plan_provenance(target, signer, iso(now()), plan_sha256(plan.resource or {}))
    provenance = service.stage_create(uow, caller, PROVENANCE, record)
    replaced = _stage_revocation(uow, caller, old) if old is not None else None
    _stage_event(uow, caller, plan, provenance, signer, replaced)
    caller.touched(CARE_PLAN.name, plan_id, plan.address.patient_id, plan.version)
    service.commit(caller, CARE_PLAN, uow, 200)
    return Signed(plan, provenance, replaced)
