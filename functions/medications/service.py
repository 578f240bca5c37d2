"""Use cases of medication orders: the checks of a prescription that need the
caller or a read (its requester, the prescriber's DEA registration, conflicts
with the patient's active orders and allergies), what an order puts in the
chart and the patient's medication list (`$discontinue`: discontinue.py).

The pure rules are in functions/medications/rules.py; docs/medications.md says
which rule is checked where and what each costs in round trips.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from functions.common.caller import Caller
from functions.common.errors import Conflict, Forbidden, Invalid, Issue
from functions.engine import registry
from functions.engine.directory import practitioner_for
from functions.engine.registry import Change, ChartEntry, active_key
from functions.engine.values import date_range, normalize_reference
from functions.medications.formulary import RXNORM
from functions.medications.rules import (
    ACTIVE,
    DISCONTINUED,
    ROOT,
    conflict_outcome,
    conflicts,
    drug_of,
    list_entry,
    override_reason,
    prescriber_issues,
    reported,
)
from models import chart, keys
from models.clock import now
from models.resources import Stored
from models.uow import UnitOfWork

ORDER_KEY = active_key("MedicationRequest")
ALLERGY_KEY = active_key("AllergyIntolerance")
REQUESTER = f"{ROOT}.requester"
STATUS = f"{ROOT}.status"


def _decl() -> registry.ResourceType:
    return registry.require("MedicationRequest")


# ----------------------------------------------------------------- the chart


def chart_entries(resource_id: str, body: dict[str, Any] | None) -> list[ChartEntry]:
    """`1#MedicationRequest#<id>` while the order is active or on hold (its medication
    list row), removed otherwise."""
    key = ORDER_KEY + resource_id
    if body is None or body.get("status") not in ACTIVE:
        return [ChartEntry(key, None)]
    row = {"resourceType": "MedicationRequest", **list_entry(body), "id": resource_id}
    return [ChartEntry(key, row)]


def _order_of(row: dict[str, Any]) -> dict[str, Any]:
    """An order's chart row as the order `conflicts` compares (id, status, drug)."""
    coding = [{"system": RXNORM, "code": row["rxcui"]}] if row.get("rxcui") else []
    return {"id": row.get("id"), "status": row.get("status"),
            "medicationCodeableConcept": {"coding": coding}}  # fmt: skip


def _status_concept(code: Any) -> dict[str, Any] | None:
    return {"coding": [{"code": code}]} if isinstance(code, str) else None


def _allergy_of(row: dict[str, Any]) -> dict[str, Any]:
    """An allergy's chart row as the AllergyIntolerance `conflicts` compares."""
    return {
        "id": row.get("id"),
        "code": row.get("code"),
        "clinicalStatus": _status_concept(row.get("clinicalStatus")),
        "verificationStatus": _status_concept(row.get("verificationStatus")),
    }


@dataclass(frozen=True)
class ActiveItems:
    """What the patient's chart holds for prescribing: its active orders (as
    `conflicts` reads them) and its allergies."""

    orders: list[dict[str, Any]]
    allergies: list[dict[str, Any]]


def active_items(tenant: str, patient_id: str) -> ActiveItems:
    """The chart's one Query, opening only its order and allergy entries."""
    read = chart.read(tenant, patient_id)
    orders = [_order_of(e.open()) for e in read.entries if e.key.startswith(ORDER_KEY)]
    allergies = [_allergy_of(e.open()) for e in read.entries if e.key.startswith(ALLERGY_KEY)]
    return ActiveItems(orders, allergies)


# ----------------------------------------------------------------- prescribing


def _requester(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    """The signed-in user's Practitioner, which the order must name as requester."""
    ref = body.get("requester")
    text = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise Invalid(Issue("required", f"{REQUESTER} must name your own Practitioner "
                            "(Practitioner/<id>).", [REQUESTER]))  # fmt: skip
    own = practitioner_for(caller)
    if own is None or own.resource is None:
        raise Forbidden(Issue("forbidden", "Your user has no Practitioner in this "
                              "organisation's directory: an administrator adds it first.",
                              [REQUESTER]))  # fmt: skip
    if normalize_reference(text) != f"Practitioner/{own.address.resource_id}":
        raise Forbidden(
            Issue(
                "forbidden",
                f"{REQUESTER} must be your own Practitioner: an "
                "order is written under its prescriber's name.",
                [REQUESTER],
            )
        )
    return own.resource


def _days(body: dict[str, Any]) -> list[date]:
    """The order date (authoredOn, else today) and today: the prescriber is
    registered on both."""
    today = now().date()
    authored = body.get("authoredOn")
    found = date_range(authored) if isinstance(authored, str) else None
    return sorted({found.lo.date() if found else today, today})


def _patient_of(body: dict[str, Any]) -> str | None:
    compartment = _decl().compartment
    found = compartment.named_in(body) if compartment is not None else None
    return found if found is not None and keys.valid_id(found) else None


def _check_conflicts(caller: Caller, stored: Stored | None, body: dict[str, Any]) -> None:
    patient_id = _patient_of(body)
    if patient_id is None:
        return  # the write itself refuses a subject that names no patient of ours
    items = active_items(caller.tenant, patient_id)
    own = {**body, "id": stored.address.resource_id} if stored is not None else body
    found = conflicts(own, items.orders, items.allergies)  # a change is not its own duplicate
    if found and override_reason(body) is None:
        raise Conflict(conflict_outcome(found))
    if found:  # overridden with a reason: the audit record says which rules
        caller.audit.overrides = sorted({c.kind for c in found})


def precheck(caller: Caller, stored: Stored | None, body: dict[str, Any]) -> None:
    """Before a prescription or a change is written: the requester is the caller's
    own Practitioner (403/400); an active order of a controlled substance needs
    that Practitioner's DEA registration on the order date and today (400); and
    it conflicts with no active order or allergy unless it gives a reason (409)."""
    if reported(body):
        return  # a history from elsewhere: no prescriber of ours, nothing prescribed
    if stored is None and body.get("status") != "active":
        raise Conflict(Issue("business-rule", "A new prescription is active; an order "
                             "reported from elsewhere says so with reportedBoolean true.",
                             [STATUS]))  # fmt: skip
    practitioner = _requester(caller, body)
    drug = drug_of(body)
    if drug is None or body.get("status") not in ACTIVE:
        return  # the order's own rules refused it, or it is being ended
    for day in _days(body):
        issues = prescriber_issues(practitioner, drug, day)
        if issues:
            raise Invalid(issues)
    _check_conflicts(caller, stored, body)


def plain_update_guard(stored: Stored | None, body: dict[str, Any] | None) -> None:
    """An order is stopped, cancelled or completed by `$discontinue` only, which
    records why and tells the pharmacy-facing consumers (409 otherwise)."""
    if stored is None or body is None or body.get("status") not in DISCONTINUED:
        return
    was = (stored.resource or {}).get("status")
    if was in ACTIVE:
        raise Conflict(
            Issue(
                "business-rule",
                f"An order is ended with $discontinue "
                f"(POST {ROOT}/<id>/$discontinue), not an update.",
                [STATUS],
            )
        )


def prescribed(uow: UnitOfWork, caller: Caller, stored: Stored, change: Change) -> None:
    """A new order's `MedicationPrescribed` event, in the create's transaction."""
    if change is not Change.CREATED or stored.resource is None:
        return
    from events import outbox
    from events.medications import MedicationPrescribed

    drug = drug_of(stored.resource)
    a = stored.address
    outbox.stage(uow, MedicationPrescribed(
        tenant=a.tenant, actor=caller.actor, request_id=caller.request_id,
        medication_request_id=a.resource_id, patient_id=a.patient_id or "",
        resource_version=stored.version, rxcui=drug.rxcui if drug else None,
        schedule=drug.schedule if drug else None,
        overridden=override_reason(stored.resource) is not None,
    ))  # fmt: skip


# ----------------------------------------------------------------- the list


def medication_list(caller: Caller, patient_id: str) -> list[dict[str, Any]]:
    """The patient's active and on-hold orders, from the chart's one Query, as rows
    (rules.list_entry), by ingredient. 404 when the patient has no chart."""
    from functions.charts.service import read_chart

    caller.touched("MedicationRequest", "", patient_id)
    read = read_chart(caller, patient_id)
    rows = [e.open() for e in read.entries if e.key.startswith(ORDER_KEY)]
    rows.sort(key=lambda r: (str(r.get("ingredient") or ""), str(r.get("id"))))
    caller.audit.result_count = len(rows)
    return rows
