"""Prescribing rules of a MedicationRequest, as pure functions over FHIR dicts.

* `order_rules`: the drug is an RxNorm ingredient of the formulary; refills follow
  its DEA schedule (21 CFR 1306.12 for II, 1306.22 for III-V).
* `prescriber_issues`: a controlled substance needs the prescriber's DEA
  registration on file, well formed and not expired.
* `conflicts` / `conflict_outcome`: duplicate therapy (same ingredient or same
  drug class as another active order) and documented allergies; the caller answers
  409 with `conflict_outcome` unless `override_reason` gives a reason.
* `STATES`: prescribe is a create (active), change an update, discontinue an
  update to stopped, cancelled or completed.

Diagnostics name FHIR elements, codes and references, never patient data nor the
submitted values. docs/medications.md describes every rule.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from functions.common.errors import Issue
from functions.engine.registry import StateMachine
from functions.engine.values import TINY, date_range
from functions.medications.formulary import RXNORM, FormularyEntry, by_rxcui

ROOT = "MedicationRequest"
DRUG = f"{ROOT}.medicationCodeableConcept"
REPEATS = f"{ROOT}.dispenseRequest.numberOfRepeatsAllowed"
VALIDITY_END = f"{ROOT}.dispenseRequest.validityPeriod.end"
DEA_SYSTEM = "http://hl7.org/fhir/sid/us-dea"
OVERRIDE_URL = "https://emr.example/fhir/StructureDefinition/override-reason"
OVERRIDE_MAX = 1000  # characters
MAX_REFILLS = 5  # Schedules III-V, 21 CFR 1306.22(a)
REFILL_MONTHS = 6  # Schedules III-V, 21 CFR 1306.22(a)

STATUSES = (
    "active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown"
)  # fmt: skip
ACTIVE = frozenset({"active", "on-hold"})  # what duplicate therapy is checked against
DISCONTINUED = frozenset({"stopped", "cancelled", "completed"})
_ONLY = frozenset
_OPEN = _ONLY({"active", "on-hold", *DISCONTINUED, "entered-in-error"})
STATES = StateMachine(
    element="status",
    transitions={
        "active": _OPEN,
        "on-hold": _OPEN,
        "draft": _ONLY({"draft", "active", "cancelled", "entered-in-error"}),
        # a discontinued order is corrected in place or marked as an error, never resumed
        "stopped": _ONLY({"stopped", "entered-in-error"}),
        "cancelled": _ONLY({"cancelled", "entered-in-error"}),
        "completed": _ONLY({"completed", "entered-in-error"}),
        "unknown": _ONLY({"unknown", "entered-in-error"}),
        "entered-in-error": _ONLY({"entered-in-error"}),
    },
    # a prescription starts active (the precheck holds it to that); a record reported
    # from elsewhere (reportedBoolean, e.g. an imported history) may arrive in any state
    initial=_ONLY({"active", "on-hold", *DISCONTINUED}),
    deletable=_ONLY({"draft", "entered-in-error"}),
)

_DEA = re.compile(r"[A-Z]{2}[0-9]{7}")


@dataclass(frozen=True)
class Conflict:
    """Why an order needs an override reason: a duplicate therapy or an allergy."""

    kind: str  # "duplicate-ingredient" | "duplicate-class" | "allergy"
    reference: str  # "MedicationRequest/<id>" or "AllergyIntolerance/<id>"
    diagnostics: str


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _codings(concept: Any) -> list[dict[str, Any]]:
    return [c for c in _list(_dict(concept).get("coding")) if isinstance(c, dict)]


def _drugs(body: dict[str, Any]) -> list[FormularyEntry]:
    """The formulary entries the RxNorm codings of the drug name, each once."""
    found: list[FormularyEntry] = []
    for coding in _codings(body.get("medicationCodeableConcept")):
        code = coding.get("code")
        entry = by_rxcui(code) if coding.get("system") == RXNORM and isinstance(code, str) else None
        if entry is not None and entry not in found:
            found.append(entry)
    return found


def drug_of(body: dict[str, Any]) -> FormularyEntry | None:
    """The order's formulary ingredient, None when it names none or several."""
    found = _drugs(body)
    return found[0] if len(found) == 1 else None


def _drug_issues(body: dict[str, Any]) -> list[Issue]:
    codings = _codings(body.get("medicationCodeableConcept"))
    if not any(c.get("system") == RXNORM for c in codings):
        message = (
            f"{DRUG} needs a coding of RxNorm ({RXNORM}) naming the drug's ingredient "
            "(medicationReference is not supported)."
        )
        return [Issue("required", message, [DRUG])]
    found = _drugs(body)
    if not found:
        message = (
            f"No RxNorm coding of {DRUG} is an ingredient (TTY=IN) of the formulary "
            "(docs/medications.md)."
        )
        return [Issue("code-invalid", message, [DRUG])]
    if len(found) > 1:
        message = f"The RxNorm codings of {DRUG} name more than one ingredient; order one."
        return [Issue("business-rule", message, [DRUG])]
    return []


def _refills(body: dict[str, Any]) -> tuple[int, list[Issue]]:
    value = _dict(body.get("dispenseRequest")).get("numberOfRepeatsAllowed", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0, [Issue("value", f"{REPEATS} must be a whole number, 0 or more.", [REPEATS])]
    return value, []


def add_months(day: date, months: int) -> date:
    """`day` plus whole months, the day clamped to the month's last (Aug 31 + 6 = Feb 28)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def _day(text: Any, latest: bool) -> date | None:
    """The first (or last) day a FHIR date/dateTime covers, None when it is not one."""
    found = date_range(text) if isinstance(text, str) else None
    if found is None:
        return None
    return (found.hi - TINY).date() if latest else found.lo.date()


def _issued(body: dict[str, Any]) -> tuple[str, Any]:
    if body.get("authoredOn") is not None:
        return f"{ROOT}.authoredOn", body["authoredOn"]
    period = _dict(_dict(body.get("dispenseRequest")).get("validityPeriod"))
    return f"{ROOT}.dispenseRequest.validityPeriod.start", period.get("start")


def _window_issues(body: dict[str, Any]) -> list[Issue]:
    """Schedules III-V: the validity period ends within 6 months of the order date."""
    period = _dict(_dict(body.get("dispenseRequest")).get("validityPeriod"))
    if period.get("end") is None:
        return []
    end = _day(period["end"], latest=True)
    if end is None:
        return [Issue("value", f"{VALIDITY_END} must be a FHIR dateTime.", [VALIDITY_END])]
    element, raw = _issued(body)
    issued = _day(raw, latest=False)
    if issued is None and raw is not None:
        return [Issue("value", f"{element} must be a FHIR dateTime.", [element])]
    if issued is None:
        message = f"{ROOT}.authoredOn (the order date) is required to check {VALIDITY_END}."
        return [Issue("required", message, [f"{ROOT}.authoredOn"])]
    if end > add_months(issued, REFILL_MONTHS):
        message = (
            f"{VALIDITY_END}: a Schedule III-V prescription is refilled within 6 months "
            f"of the order date ({element}) (21 CFR 1306.22)."
        )
        return [Issue("business-rule", message, [VALIDITY_END])]
    return []


def _schedule_issues(body: dict[str, Any], drug: FormularyEntry) -> list[Issue]:
    refills, issues = _refills(body)
    if drug.schedule == "II" and refills > 0:
        message = f"{REPEATS}: a Schedule II prescription is not refilled (21 CFR 1306.12)."
        issues.append(Issue("business-rule", message, [REPEATS]))
    elif drug.schedule in ("III", "IV", "V"):
        if refills > MAX_REFILLS:
            message = (
                f"{REPEATS}: a Schedule III-V prescription is refilled at most "
                f"{MAX_REFILLS} times (21 CFR 1306.22)."
            )
            issues.append(Issue("business-rule", message, [REPEATS]))
        issues += _window_issues(body)
    return issues


def reported(body: dict[str, Any]) -> bool:
    """A record reported from another source (R4 `reportedBoolean`: a medication
    history brought in, e.g. by the importer), not a prescription written here: it
    names its drug in any code system and is held to none of the prescribing rules."""
    return body.get("reportedBoolean") is True


def _names_a_drug(body: dict[str, Any]) -> list[Issue]:
    concept = body.get("medicationCodeableConcept")
    text = concept.get("text") if isinstance(concept, dict) else None
    if _codings(concept) or (isinstance(text, str) and text.strip()):
        return []
    return [Issue("required", f"{DRUG} must name the drug (a coding or a text).", [DRUG])]


def order_rules(body: dict[str, Any]) -> list[Issue]:
    """The order's own rules: a formulary drug, refills within its schedule's limits
    (a reported record: only that it names a drug)."""
    if reported(body):
        return _names_a_drug(body)
    issues = _drug_issues(body)
    drug = drug_of(body)
    if drug is None:
        return issues
    return issues + _schedule_issues(body, drug)


def dea_number_valid(value: str) -> bool:
    """Two letters and seven digits whose last is the check digit: the last digit of
    (d1 + d3 + d5) + 2 * (d2 + d4 + d6)."""
    if not _DEA.fullmatch(value):
        return False
    d = [int(c) for c in value[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def _registration_issue(identifier: dict[str, Any], on: date) -> str | None:
    """Why a DEA identifier does not register the prescriber on `on` (None: it does)."""
    value = identifier.get("value")
    if not isinstance(value, str) or not dea_number_valid(value):
        return "fails the DEA number format and check digit"
    period = _dict(identifier.get("period"))
    start = _day(period.get("start"), latest=False) if period.get("start") else None
    end = _day(period.get("end"), latest=True) if period.get("end") else None
    if start is not None and start > on:
        return "is not valid yet (Practitioner.identifier.period.start)"
    if end is not None and end < on:
        return "has expired (Practitioner.identifier.period.end)"
    return None


def prescriber_issues(
    practitioner: dict[str, Any] | None, drug: FormularyEntry, on: date
) -> list[Issue]:
    """A controlled substance needs the prescriber's DEA registration, valid on `on`."""
    if not drug.controlled:
        return []
    what = f"A Schedule {drug.schedule} drug (RxNorm {drug.rxcui})"
    if practitioner is None:
        message = f"{what} is prescribed by a Practitioner with a DEA registration on file."
        return [Issue("business-rule", message, [f"{ROOT}.requester"])]
    registrations = [
        i
        for i in _list(practitioner.get("identifier"))
        if isinstance(i, dict) and i.get("system") == DEA_SYSTEM
    ]
    reasons = [_registration_issue(i, on) for i in registrations]
    if registrations and None in reasons:
        return []
    if not registrations:
        message = f"{what} needs the prescriber's DEA registration (identifier {DEA_SYSTEM})."
    else:
        message = f"{what}: the prescriber's DEA registration {reasons[0]}."
    return [Issue("business-rule", message, ["Practitioner.identifier"])]


def _status_code(resource: dict[str, Any], element: str) -> str | None:
    for coding in _codings(resource.get(element)):
        if isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def _allergy_applies(allergy: dict[str, Any]) -> bool:
    """Not inactive or resolved, not refuted or entered in error."""
    clinical = _status_code(allergy, "clinicalStatus")
    verification = _status_code(allergy, "verificationStatus")
    return clinical not in ("inactive", "resolved") and verification not in (
        "refuted",
        "entered-in-error",
    )


def _allergy_names(allergy: dict[str, Any], drug: FormularyEntry) -> bool:
    """The allergy's substance is the ingredient: by RxNorm code or by name."""
    concept = _dict(allergy.get("code"))
    codings = _codings(concept)
    if any(c.get("system") == RXNORM and c.get("code") == drug.rxcui for c in codings):
        return True
    names = [concept.get("text"), *(c.get("display") for c in codings)]
    return any(isinstance(n, str) and n.strip().casefold() == drug.ingredient for n in names)


def _reference(resource: dict[str, Any], kind: str) -> str:
    return f"{kind}/{resource.get('id')}"


def _duplicate(drug: FormularyEntry, other: dict[str, Any]) -> Conflict | None:
    found = drug_of(other)
    if found is None or other.get("status") not in ACTIVE:
        return None
    ref = _reference(other, ROOT)
    if found.rxcui == drug.rxcui:
        message = f"duplicate-ingredient: RxNorm {drug.rxcui} is already ordered in {ref}."
        return Conflict("duplicate-ingredient", ref, message)
    if found.drug_class == drug.drug_class:
        message = f"duplicate-class: drug class {drug.drug_class} is already ordered in {ref}."
        return Conflict("duplicate-class", ref, message)
    return None


def conflicts(
    order: dict[str, Any], active_orders: list[dict[str, Any]], allergies: list[dict[str, Any]]
) -> list[Conflict]:
    """What the order conflicts with: other active orders of its ingredient or drug
    class, and allergies to its ingredient. An order that is not active conflicts
    with nothing (a discontinuation is never held up)."""
    drug = drug_of(order)
    if drug is None or order.get("status", "active") not in ACTIVE:
        return []
    own = order.get("id")
    others = [o for o in active_orders if own is None or o.get("id") != own]  # a change
    found = [c for c in (_duplicate(drug, o) for o in others) if c is not None]
    for allergy in allergies:
        if _allergy_applies(allergy) and _allergy_names(allergy, drug):
            ref = _reference(allergy, "AllergyIntolerance")
            message = f"allergy: {ref} records an allergy to RxNorm {drug.rxcui}."
            found.append(Conflict("allergy", ref, message))
    return found


def conflict_outcome(found: list[Conflict]) -> list[Issue]:
    """One issue per conflict, for a 409 unless the order carries an override reason."""
    hint = f"To prescribe anyway, give the reason in the extension {OVERRIDE_URL}."
    return [Issue("business-rule", f"{c.diagnostics} {hint}", [DRUG]) for c in found]


def _overrides(body: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [
        (i, e)
        for i, e in enumerate(_list(body.get("extension")))
        if isinstance(e, dict) and e.get("url") == OVERRIDE_URL
    ]


def override_reason(body: dict[str, Any]) -> str | None:
    """The override reason of the order (its valueString, stripped), None when none."""
    for _, extension in _overrides(body):
        value = extension.get("valueString")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def override_issues(body: dict[str, Any]) -> list[Issue]:
    """The override extension: once, a valueString of 1 to 1,000 characters."""
    found = _overrides(body)
    if len(found) > 1:
        message = f"{ROOT}.extension: one override reason ({OVERRIDE_URL}) at most."
        return [Issue("value", message, [f"{ROOT}.extension"])]
    issues = []
    for i, extension in found:
        path = f"{ROOT}.extension[{i}].valueString"
        value = extension.get("valueString")
        if not isinstance(value, str) or not value.strip():
            message = f"{path}: the override reason is a non-empty valueString."
            issues.append(Issue("value", message, [path]))
        elif len(value.strip()) > OVERRIDE_MAX:
            message = f"{path}: the override reason is at most {OVERRIDE_MAX} characters."
            issues.append(Issue("value", message, [path]))
    return issues


def list_entry(order: dict[str, Any]) -> dict[str, Any]:
    """One row of the patient's medication list."""
    drug = drug_of(order)
    dosage = next(iter(_list(order.get("dosageInstruction"))), None)
    refills = _dict(order.get("dispenseRequest")).get("numberOfRepeatsAllowed")
    return {
        "id": order.get("id"),
        "ingredient": drug.ingredient if drug else None,
        "rxcui": drug.rxcui if drug else None,
        "drugClass": drug.drug_class if drug else None,
        "schedule": drug.schedule if drug else None,
        "dosage": _dict(dosage).get("text"),
        "status": order.get("status"),
        "authoredOn": order.get("authoredOn"),
        "refills": refills if isinstance(refills, int) and not isinstance(refills, bool) else 0,
        "overrideReason": override_reason(order),
    }
