"""Claims: one FHIR Claim per encounter, assembled from its charges, then submitted.

`Encounter/{id}/$claim` makes the encounter's draft claim in one transaction with
the claim guard (`TENANT#t#BILLING#ENCOUNTER#<id>` / `CLAIM`, put once): asked
again, or by two billers at once, it answers with the one claim there is. It is
refused with 409 naming what is missing while the encounter is not finished, its
note unsigned or awaiting co-signature, or it has no charge to claim (or a charge
without a price, no diagnosis, no rendering practitioner).

`Claim/{id}/$submit` sends a draft: R4's Claim.status has no "submitted", so a
submitted claim is `active` with the extension SUBMITTED_URL (the time) and the
tag `claim-state|submitted` (docs/billing.md); in the same transaction its
charges become `billed`, after which nothing changes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.billing import charges, facts
from functions.billing.declarations import BILL, CHARGE_ITEM, CLAIM, SUBMIT, WORKFLOW
from functions.common.caller import Caller
from functions.common.errors import Conflict, Issue
from functions.engine import registry, service
from models import billing as store
from models import resources
from models.clock import iso, now
from models.resources import Stored
from models.uow import UnitOfWork

CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
CHARGE_URL = "https://emr.example/fhir/StructureDefinition/claim-charge-item"
SUBMITTED_URL = "https://emr.example/fhir/StructureDefinition/claim-submitted"
STATE_SYSTEM = "https://emr.example/fhir/CodeSystem/claim-state"
MAX_POINTERS = 4  # diagnosis pointers per line (CMS-1500 box 24E)
MAX_DIAGNOSES = 12  # diagnoses per claim (CMS-1500 box 21, A-L)
WHAT = {
    facts.Missing.NOT_FINISHED: ("The encounter is not finished.", "Encounter.status"),
    facts.Missing.NO_NOTE: ("The encounter has no note.", "DocumentReference.context.encounter"),
    facts.Missing.NOTE_UNSIGNED: ("The encounter's note is unsigned.",
                                  "DocumentReference.docStatus"),
    facts.Missing.COSIGN_PENDING: ("The encounter's note awaits its co-signature.",
                                   "DocumentReference.authenticator"),
    facts.Missing.NO_CHARGE: ("The encounter has no charge to claim.", "ChargeItem"),
}  # fmt: skip


@dataclass(frozen=True)
class Claimed:
    stored: Stored
    created: bool


def _reasons(charge: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for r in charge.get("reason") or [] for c in (r.get("coding") or [])[:1]]


def _performer(charge: dict[str, Any]) -> str | None:
    for p in charge.get("performer") or []:
        ref = (p.get("actor") or {}).get("reference")
        if isinstance(ref, str):
            return ref
    return None


def _item(seq: int, cid: str, charge: dict[str, Any], diagnoses: list[Any]) -> dict[str, Any]:
    units = charges.units_of(charge)
    total = charges.cents_of(charge.get("priceOverride")) or 0
    pointers = [diagnoses.index(c) + 1 for c in _reasons(charge) if c in diagnoses]
    item: dict[str, Any] = {
        "extension": [{"url": CHARGE_URL, "valueReference": {"reference": f"ChargeItem/{cid}"}}],
        "sequence": seq,
        "diagnosisSequence": pointers[:MAX_POINTERS],
        "productOrService": charge.get("code"),
        "quantity": {"value": units},
        "unitPrice": charges.money(total // units if units else total),
        "net": charges.money(total),
        "encounter": [charge.get("context")],
    }
    if isinstance(charge.get("occurrencePeriod"), dict):
        item["servicedPeriod"] = charge["occurrencePeriod"]
    if not item["diagnosisSequence"]:
        del item["diagnosisSequence"]
    return item


def claim_body(patient_id: str, lines: list[tuple[str, dict[str, Any]]], created: str,
               provider: str) -> dict[str, Any]:  # fmt: skip
    """A professional claim (R4 Claim) of the charges `lines` (id, body), in order."""
    diagnoses: list[dict[str, Any]] = []
    for _, charge in lines:
        diagnoses += [c for c in _reasons(charge) if c not in diagnoses]
    diagnoses = diagnoses[:MAX_DIAGNOSES]
    items = [_item(i, cid, charge, diagnoses) for i, (cid, charge) in enumerate(lines, 1)]
    total = sum(charges.cents_of(i["net"]) or 0 for i in items)
    return {
        "resourceType": "Claim", "status": "draft",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
        "use": "claim", "patient": {"reference": f"Patient/{patient_id}"}, "created": created,
        "provider": {"reference": provider},
        "priority": {"coding": [{"system": PRIORITY, "code": "normal"}]},
        # Coverage is not kept by this server: the payer is named when the claim is sent.
        "insurance": [{"sequence": 1, "focal": True,
                       "coverage": {"extension": [{"url": ABSENT, "valueCode": "unknown"}]}}],
        "diagnosis": [{"sequence": i, "diagnosisCodeableConcept": {"coding": [c]}}
                      for i, c in enumerate(diagnoses, 1)],
        "item": items, "total": charges.money(total),
    }  # fmt: skip


def encounter_charges(tenant: str, charge_ids: list[str]) -> list[Stored]:
    """The captured charges, in capture order (one BatchGetItem)."""
    addresses = [a for cid in charge_ids if (a := service.address_of(tenant, CHARGE_ITEM, cid))]
    found = resources.read_many(addresses)
    return [s for a in addresses if (s := found.get(a)) is not None and not s.deleted]


def _conflict(problems: list[tuple[str, str]]) -> Conflict:
    return Conflict([Issue("business-rule", text, [where]) for text, where in problems])


def _charge_problems(lines: list[Stored]) -> list[tuple[str, str]]:
    bodies = [s.resource or {} for s in lines]
    unpriced = [s for s, b in zip(lines, bodies, strict=True)
                if charges.cents_of(b.get("priceOverride")) is None]  # fmt: skip
    problems = [(f"ChargeItem/{s.address.resource_id} ({charges.code_of(s.resource or {})}) has "
                 "no price: correct it with $correct.", "ChargeItem.priceOverride")
                for s in unpriced]  # fmt: skip
    if not any(_reasons(b) for b in bodies):
        problems.append(("The encounter has no ICD-10-CM diagnosis.", "Encounter.diagnosis"))
    if not any(_performer(b) for b in bodies):
        problems.append(("The encounter names no rendering practitioner.",
                         "Encounter.participant"))  # fmt: skip
    return problems


def _existing(caller: Caller, claim_id: str) -> Claimed:
    return Claimed(service.read(caller, CLAIM, claim_id), created=False)


def claim(caller: Caller, encounter_id: str) -> Claimed:
    """The encounter's claim: made now (draft), or the one made before."""
    stored = service.read(caller, registry.require("Encounter"), encounter_id)  # 404/410, audited
    captured, claimed = store.guards(caller.tenant, encounter_id)
    if claimed is not None:
        return _existing(caller, claimed.claim_id)
    encounter = facts.read_encounter(caller.tenant, encounter_id, stored)
    assert encounter is not None  # the read above found it live
    missing = facts.missing(encounter)
    lines = encounter_charges(caller.tenant, captured.charge_ids) if captured else []
    if not missing and not lines:
        missing.append(facts.Missing.NO_CHARGE)
    if missing:
        raise _conflict([WHAT[m] for m in missing])
    if problems := _charge_problems(lines):
        raise _conflict(problems)
    at = iso(now())
    provider = next(p for s in lines if (p := _performer(s.resource or {})))
    body = claim_body(encounter.patient_id, [(s.address.resource_id, s.resource or {})
                                             for s in lines], at, provider)  # fmt: skip
    caller.memo[WORKFLOW] = True
    uow = UnitOfWork()
    made = service.stage_create(uow, caller, CLAIM, body)
    store.stage_claim(uow, caller.tenant, encounter.patient_id,
                      store.Claimed(encounter_id, made.address.resource_id), at)  # fmt: skip
    caller.touched("Claim", made.address.resource_id, encounter.patient_id, 1)
    try:
        service.commit(caller, CLAIM, uow, 201)
    except Conflict:
        again = store.guards(caller.tenant, encounter_id)[1]
        if again is None:
            raise
        return _existing(caller, again.claim_id)  # another biller's claim, made just now
    return Claimed(made, created=True)


def submitted_claim(body: dict[str, Any], at: str) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k != "meta"}
    server = ("versionId", "lastUpdated")
    meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in server}
    meta["tag"] = [*meta.get("tag", []), {"system": STATE_SYSTEM, "code": "submitted"}]
    out["meta"] = meta
    out["status"] = SUBMIT.to
    out["extension"] = [*out.get("extension", []), {"url": SUBMITTED_URL, "valueDateTime": at}]
    return out


def charge_ids_of(claim_body: dict[str, Any]) -> list[str]:
    refs = [e.get("valueReference", {}).get("reference", "") for i in claim_body.get("item") or []
            for e in i.get("extension") or [] if e.get("url") == CHARGE_URL]  # fmt: skip
    return [r.partition("/")[2] for r in refs if r.startswith("ChargeItem/")]


def submit(caller: Caller, claim_id: str) -> Stored:
    """A draft claim becomes submitted; its charges billed (one transaction)."""
    current = service.read_for_change(caller, CLAIM, claim_id)
    body = current.resource or {}
    if body.get("status") != "draft":
        raise Conflict(Issue("business-rule", "The claim was already submitted.",
                             ["Claim.status"]))  # fmt: skip
    at = iso(now())
    uow = UnitOfWork()
    new = service.stage_replace(uow, caller, CLAIM, current, submitted_claim(body, at), SUBMIT)
    for charge in encounter_charges(caller.tenant, charge_ids_of(body)):
        billed = {**(charge.resource or {}), "status": BILL.to}
        service.stage_replace(uow, caller, CHARGE_ITEM, charge, billed, BILL)
    caller.touched("Claim", claim_id, current.address.patient_id, new.version)
    service.commit(caller, CLAIM, uow, 200)
    return new
