"""Charge capture, exactly once per encounter.

`capture(tenant, encounter_id)` is what the billing consumer runs on
`encounter.finished`, `note.signed` and `note.cosigned`. It does nothing until the
encounter is finished and its note signed (and co-signed where required): the
event that completes the pair is the one that captures. It then writes, in ONE
TransactWriteItems, every ChargeItem of the encounter (sealed like any resource,
with their history, search entries and events), its biller work items, the
audit record and the capture guard `TENANT#t#BILLING#ENCOUNTER#<id>` / `CAPTURE`
put with `attribute_not_exists(pk)`.

Why exactly once (docs/billing.md): the guard and the charges commit together or
not at all, and a second guard cannot be put. A duplicate event finds the guard
and stops; two handlers racing past that read both build a capture, and the
loser's whole transaction is cancelled by the guard. The order of the events
does not matter: each handler reads the current state (consistent reads) after
the write its event reports was committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from functions.billing import charges, cpt, facts
from functions.billing.declarations import CHARGE_ITEM, WORKFLOW
from functions.common import tenant_settings
from functions.common.caller import Caller, system_caller
from functions.common.errors import Conflict
from functions.engine import service
from models import billing as store
from models.clock import iso, new_id, now
from models.uow import UnitOfWork

ACTOR = "system:billing"


class Outcome(StrEnum):
    CAPTURED = "captured"
    ALREADY = "already-captured"
    NOT_READY = "not-ready"
    UNKNOWN = "unknown-encounter"


@dataclass(frozen=True)
class Plan:
    """What one capture writes: the charges' bodies and the work items."""

    bodies: list[dict[str, Any]]
    work: list[cpt.Work]


def billing_caller(tenant: str, action: str) -> Caller:
    """The pipeline's own caller: audited under its actor, allowed to stage billing types."""
    caller = system_caller(tenant, ACTOR, "billing", new_id(), action)
    caller.memo[WORKFLOW] = True
    return caller


def plan(tenant: str, encounter: facts.Encounter, at: str) -> Plan:
    """The charges and work items of a ready encounter (reads the practitioner, the
    diagnoses and the fee schedule; writes nothing)."""
    body = encounter.body
    performer = facts.performer(body)
    coded = cpt.code_encounter(facts.facts(body, facts.read_practitioner(tenant, performer)))
    diagnoses = facts.diagnoses(tenant, encounter.patient_id, body)
    period = body.get("period") if isinstance(body.get("period"), dict) else None
    ctx = charges.Context(encounter.patient_id, encounter.stored.address.resource_id, performer,
                          period, diagnoses, encounter.signed_notes, at)  # fmt: skip
    fees = tenant_settings.get(tenant).fee_schedule
    work = list(coded.work)
    if coded.lines and performer is None:
        work.append(cpt.Work(cpt.Reason.PERFORMER_MISSING))
    if coded.lines and not diagnoses:
        work.append(cpt.Work(cpt.Reason.DIAGNOSIS_MISSING))
    work += [cpt.Work(cpt.Reason.FEE_MISSING, line.code) for line in coded.lines
             if line.code not in fees]  # fmt: skip
    bodies = [charges.charge_body(line, ctx, fees.get(line.code)) for line in coded.lines]
    return Plan(bodies, work)


def capture(tenant: str, encounter_id: str, event_id: str | None = None) -> Outcome:
    """Capture the encounter's charges if it is ready and not yet captured."""
    captured, _ = store.guards(tenant, encounter_id)
    if captured is not None:
        return Outcome.ALREADY
    encounter = facts.read_encounter(tenant, encounter_id)
    if encounter is None:
        return Outcome.UNKNOWN
    if facts.missing(encounter):
        return Outcome.NOT_READY
    caller = billing_caller(tenant, "chargeitem.create")
    at = iso(now())
    planned = plan(tenant, encounter, at)
    uow = UnitOfWork()
    ids = [service.stage_create(uow, caller, CHARGE_ITEM, b).address.resource_id
           for b in planned.bodies]  # fmt: skip
    store.stage_capture(uow, tenant, store.Captured(encounter_id, encounter.patient_id, ids, at),
                        event_id)  # fmt: skip
    for item in planned.work:
        store.stage_work(uow, tenant, store.WorkEntry(encounter_id, encounter.patient_id,
                                                      item.reason, item.code, at))  # fmt: skip
    caller.touched("ChargeItem", ids[0] if ids else "", encounter.patient_id, 1 if ids else None)
    try:
        service.commit(caller, CHARGE_ITEM, uow, 201)
    except Conflict:
        if store.guards(tenant, encounter_id)[0] is not None:
            return Outcome.ALREADY  # a concurrent capture won: its charges stand alone
        raise
    return Outcome.CAPTURED
