"""The FHIR shapes of billing, as pure functions: a ChargeItem per CPT line, its
correction, and money in cents.

A charge (R4 ChargeItem): status `billable`, `code` a CPT coding, `quantity` the
units, `subject` the patient, `context` the encounter, `occurrencePeriod` the
encounter's period, `performer` the rendering practitioner, `reason` the
encounter's ICD-10-CM diagnoses in rank order (the claim's pointers), the
signed notes as `supportingInformation`, `enteredDate` the capture time and
`priceOverride` the fee schedule's amount times the units (R4 prices a charge
through a ChargeItemDefinition; this server keeps none, so the clinic's fee is
the override of a list price of nothing: docs/billing.md).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from functions.billing.cpt import CPT_SYSTEM, DISPLAY, Line

CURRENCY = "USD"
CORRECTION_URL = "https://emr.example/fhir/StructureDefinition/charge-correction"
CORRECTION_REASONS = "https://emr.example/fhir/CodeSystem/charge-correction-reason"
REASON_KINDS = {
    "coding-error": "The code or units did not match the documentation",
    "documentation-amended": "The documentation was amended after capture",
    "fee-schedule": "The price did not follow the fee schedule",
    "payer-requirement": "A payer's rule asks for another code, units or price",
    "duplicate": "The service was charged elsewhere",
    "other": "Another reason, stated in the note",
}


@dataclass(frozen=True)
class Context:
    """What every line of one encounter shares."""

    patient_id: str
    encounter_id: str
    performer_id: str | None
    period: dict[str, Any] | None
    diagnoses: list[dict[str, Any]]  # ICD-10-CM codings, in rank order
    notes: list[str]  # the signed notes' ids
    entered: str  # capture time


def money(cents: int) -> dict[str, Any]:
    value = Decimal(cents) / 100
    return {"value": int(value) if cents % 100 == 0 else float(value), "currency": CURRENCY}


def cents_of(money_value: Any) -> int | None:
    """A Money's value in cents (None when absent or not USD with at most 2 decimals)."""
    if not isinstance(money_value, dict) or money_value.get("currency", CURRENCY) != CURRENCY:
        return None
    value = money_value.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    exact = Decimal(str(value)) * 100
    return int(exact) if exact == exact.to_integral_value() and exact >= 0 else None


def cpt_coding(code: str) -> dict[str, Any]:
    coding = {"system": CPT_SYSTEM, "code": code}
    return {**coding, "display": DISPLAY[code]} if code in DISPLAY else coding


def charge_body(line: Line, ctx: Context, fee_cents: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "status": "billable",
        "code": {"coding": [cpt_coding(line.code)]},
        "subject": {"reference": f"Patient/{ctx.patient_id}"},
        "context": {"reference": f"Encounter/{ctx.encounter_id}"},
        "quantity": {"value": line.units},
        "enteredDate": ctx.entered,
    }
    if ctx.period:
        body["occurrencePeriod"] = dict(ctx.period)
    if ctx.performer_id:
        body["performer"] = [{"actor": {"reference": f"Practitioner/{ctx.performer_id}"}}]
    if fee_cents is not None:
        body["priceOverride"] = money(fee_cents * line.units)
    if ctx.diagnoses:
        body["reason"] = [{"coding": [dict(c)]} for c in ctx.diagnoses]
    if ctx.notes:
        body["supportingInformation"] = [{"reference": f"DocumentReference/{n}"}
                                         for n in ctx.notes]  # fmt: skip
    return body


def code_of(charge: dict[str, Any]) -> str | None:
    for coding in (charge.get("code") or {}).get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == CPT_SYSTEM:
            return str(coding.get("code"))
    return None


def units_of(charge: dict[str, Any]) -> int:
    value = (charge.get("quantity") or {}).get("value")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 1


@dataclass(frozen=True)
class Correction:
    reason: str  # a REASON_KINDS code
    code: str | None = None
    units: int | None = None
    unit_cents: int | None = None
    note: str | None = None


def corrected(charge: dict[str, Any], c: Correction, at: str) -> dict[str, Any]:
    """The charge's next version: the new code, units or unit price (the total is
    unit price x units; a unit price comes from the old total when not given), and
    the correction recorded (reason kind, time, the biller's note)."""
    out = {k: copy.deepcopy(v) for k, v in charge.items() if k != "meta"}
    old_units = units_of(charge)
    old_total = cents_of(charge.get("priceOverride"))
    units = c.units if c.units is not None else old_units
    if c.code is not None:
        out["code"] = {"coding": [cpt_coding(c.code)]}
    out["quantity"] = {"value": units}
    unit = c.unit_cents if c.unit_cents is not None else (
        old_total // old_units if old_total is not None and old_units else None)  # fmt: skip
    if unit is not None:
        out["priceOverride"] = money(unit * units)
    record = [{"url": "reason", "valueCoding": {"system": CORRECTION_REASONS, "code": c.reason,
                                                "display": REASON_KINDS[c.reason]}},
              {"url": "at", "valueDateTime": at}]  # fmt: skip
    out["extension"] = [*(out.get("extension") or []), {"url": CORRECTION_URL, "extension": record}]
    if c.note:
        out["note"] = [*(out.get("note") or []), {"text": c.note, "time": at}]
    return out
