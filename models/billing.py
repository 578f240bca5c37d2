"""Billing's own items: the guards that make capture and claims happen once per
encounter, and the biller work queue. Ids, codes and times only: no PHI, so they
are stored in clear (the charges and claims themselves are sealed resources).

* Guard `TENANT#t#BILLING#ENCOUNTER#<encounter id>` / `CAPTURE`: put with
  `attribute_not_exists(pk)` in the very transaction that writes the encounter's
  charges; it names them. A second capture of the encounter, however it is
  triggered, fails on it as a whole.
* Guard ... / `CLAIM`: the same for the encounter's one claim.
* Work item `TENANT#t#BILLING#WORK` / `<raised at>#<encounter id>#<reason>`: what a
  biller must look at (a reason code), oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.attributes import ListAttribute, UnicodeAttribute

from models import keys
from models.items import TableItem
from models.uow import UnitOfWork

CAPTURE_LABEL = "billing-capture"  # the guard's label in a cancelled transaction
CLAIM_LABEL = "billing-claim"


class BillingGuardItem(TableItem, discriminator="billing-guard"):
    tenant = UnicodeAttribute()
    encounter_id = UnicodeAttribute()
    patient_id = UnicodeAttribute()
    at = UnicodeAttribute()
    charge_ids = ListAttribute(of=UnicodeAttribute, null=True)  # CAPTURE: its charges
    claim_id = UnicodeAttribute(null=True)  # CLAIM: the claim
    event_id = UnicodeAttribute(null=True)  # CAPTURE: the event that triggered it


class BillingWorkItem(TableItem, discriminator="billing-work"):
    tenant = UnicodeAttribute()
    encounter_id = UnicodeAttribute()
    patient_id = UnicodeAttribute()
    reason = UnicodeAttribute()  # a functions/billing/cpt.py Reason
    code = UnicodeAttribute(null=True)  # the CPT code concerned, if any
    at = UnicodeAttribute()


@dataclass(frozen=True)
class Captured:
    encounter_id: str
    patient_id: str
    charge_ids: list[str]
    at: str


@dataclass(frozen=True)
class Claimed:
    encounter_id: str
    claim_id: str


@dataclass(frozen=True)
class WorkEntry:
    encounter_id: str
    patient_id: str
    reason: str
    code: str | None
    at: str


def stage_capture(uow: UnitOfWork, tenant: str, done: Captured, event_id: str | None) -> None:
    item = BillingGuardItem(
        keys.billing_encounter_pk(tenant, done.encounter_id),
        keys.BILLING_CAPTURE_SK,
        tenant=tenant,
        encounter_id=done.encounter_id,
        patient_id=done.patient_id,
        at=done.at,
        charge_ids=list(done.charge_ids),
        event_id=event_id,
    )
    uow.put(CAPTURE_LABEL, item, BillingGuardItem.pk.does_not_exist())


def stage_claim(uow: UnitOfWork, tenant: str, patient_id: str, done: Claimed, at: str) -> None:
    item = BillingGuardItem(
        keys.billing_encounter_pk(tenant, done.encounter_id),
        keys.BILLING_CLAIM_SK,
        tenant=tenant,
        encounter_id=done.encounter_id,
        patient_id=patient_id,
        at=at,
        claim_id=done.claim_id,
    )
    uow.put(CLAIM_LABEL, item, BillingGuardItem.pk.does_not_exist())


def guards(tenant: str, encounter_id: str) -> tuple[Captured | None, Claimed | None]:
    """The encounter's capture and claim guards: one consistent Query."""
    pk = keys.billing_encounter_pk(tenant, encounter_id)
    captured: Captured | None = None
    claimed: Claimed | None = None
    for item in BillingGuardItem.query(pk, consistent_read=True):
        if item.sk == keys.BILLING_CAPTURE_SK:
            captured = Captured(
                item.encounter_id, item.patient_id, [str(c) for c in item.charge_ids or []], item.at
            )
        elif item.sk == keys.BILLING_CLAIM_SK and item.claim_id:
            claimed = Claimed(item.encounter_id, item.claim_id)
    return captured, claimed


def stage_work(uow: UnitOfWork, tenant: str, entry: WorkEntry) -> None:
    item = BillingWorkItem(
        keys.billing_work_pk(tenant),
        keys.billing_work_sk(entry.at, entry.encounter_id, entry.reason, entry.code),
        tenant=tenant,
        encounter_id=entry.encounter_id,
        patient_id=entry.patient_id,
        reason=entry.reason,
        code=entry.code,
        at=entry.at,
    )
    uow.put("billing-work", item, BillingWorkItem.pk.does_not_exist())


def work_page(tenant: str, limit: int, after: str | None) -> tuple[list[WorkEntry], str | None]:
    """One page of the work queue, oldest first (one Query); the cursor is the last sk."""
    start = {"pk": {"S": keys.billing_work_pk(tenant)}, "sk": {"S": after}} if after else None
    found = BillingWorkItem.query(
        keys.billing_work_pk(tenant), limit=limit, last_evaluated_key=start, consistent_read=True
    )
    rows = [WorkEntry(i.encounter_id, i.patient_id, i.reason, i.code, i.at) for i in found]
    last = found.last_evaluated_key
    return rows, (str(last["sk"]["S"]) if last else None)
