"""The pure parts of the medication use cases: what an order puts in the chart, how
chart rows are compared for conflicts, the `$discontinue` parameters, the plain
update guard and the medication list as a FHIR List."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.list import List as FhirList

from functions.common.errors import Conflict, Invalid
from functions.medications.discontinue import Discontinuation, parse_discontinue
from functions.medications.formulary import RXNORM
from functions.medications.listing import ROW_URL, medication_list
from functions.medications.rules import OVERRIDE_URL, conflicts
from functions.medications.service import (
    _allergy_of,
    _order_of,
    chart_entries,
    plain_update_guard,
)
from models.resources import Address, Stored

SERTRALINE, ESCITALOPRAM = "36437", "321988"


def _order(rxcui: str = SERTRALINE, status: str = "active", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}]},
        "authoredOn": "2025-03-01",
        "dosageInstruction": [{"text": "50 mg daily"}],
        **extra,
    }


def _row(rxcui: str = SERTRALINE, rid: str = "p1.a", **extra: Any) -> dict[str, Any]:
    [entry] = chart_entries(rid, _order(rxcui, **extra))
    assert entry.summary is not None
    return entry.summary


def _stored(status: str) -> Stored:
    return Stored(Address("t", "MedicationRequest", "p1.a", "p1"), 1, "2025-03-01T00:00:00Z",
                  _order(status=status), [])  # fmt: skip


@pytest.mark.parametrize("status", ["active", "on-hold"])
def test_an_active_or_held_order_puts_its_list_row_in_the_chart(status: str) -> None:
    [entry] = chart_entries("p1.a", _order(status=status, extension=[
        {"url": OVERRIDE_URL, "valueString": " Titrating. "}]))  # fmt: skip
    assert entry.key == "1#MedicationRequest#p1.a"
    assert entry.summary == {
        "resourceType": "MedicationRequest", "id": "p1.a", "ingredient": "sertraline",
        "rxcui": SERTRALINE, "drugClass": "sri", "schedule": None, "dosage": "50 mg daily",
        "status": status, "authoredOn": "2025-03-01", "refills": 0,
        "overrideReason": "Titrating.",
    }  # fmt: skip


@pytest.mark.parametrize("status", ["stopped", "cancelled", "completed", "entered-in-error"])
def test_an_ended_or_deleted_order_takes_its_chart_entry_away(status: str) -> None:
    assert [e.summary for e in chart_entries("p1.a", _order(status=status))] == [None]
    assert [e.summary for e in chart_entries("p1.a", None)] == [None]


def test_chart_rows_are_compared_as_the_orders_they_summarise() -> None:
    rows = [_order_of(_row(SERTRALINE, "p1.a")), _order_of(_row(ESCITALOPRAM, "p1.b"))]
    found = conflicts(_order(SERTRALINE), rows, [])
    assert [(c.kind, c.reference) for c in found] == [
        ("duplicate-ingredient", "MedicationRequest/p1.a"),
        ("duplicate-class", "MedicationRequest/p1.b"),
    ]
    assert conflicts({**_order(SERTRALINE), "id": "p1.a"}, rows[:1], []) == []


@pytest.mark.parametrize(
    ("clinical", "verification", "conflicts_"),
    [("active", None, True), ("active", "confirmed", True), ("resolved", None, False),
     ("active", "refuted", False), (None, None, True)],
)  # fmt: skip
def test_allergy_chart_rows_keep_their_statuses(
    clinical: str | None, verification: str | None, conflicts_: bool
) -> None:
    row = {"resourceType": "AllergyIntolerance", "id": "p1.x", "criticality": "high",
           "code": {"text": "Sertraline"}, "clinicalStatus": clinical,
           "verificationStatus": verification}  # fmt: skip
    assert bool(conflicts(_order(), [], [_allergy_of(row)])) is conflicts_


def _params(*parameter: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parameter)}


def test_discontinue_takes_a_reason_and_defaults_to_stopped() -> None:
    reason = {"name": "reason", "valueString": " Side effects. "}
    assert parse_discontinue(_params(reason)) == Discontinuation("Side effects.", "stopped")
    done = parse_discontinue(_params(reason, {"name": "status", "valueCode": "completed"}))
    assert done.status == "completed"


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "MedicationRequest"},
        {"resourceType": "Parameters"},
        _params(),
        _params({"name": "status", "valueCode": "stopped"}),
        _params({"name": "reason", "valueCode": "x"}),
        _params({"name": "reason", "valueString": ""}),
        _params({"name": "reason", "valueString": "x" * 1001}),
        _params({"name": "reason", "valueString": "a"}, {"name": "reason", "valueString": "b"}),
        _params({"name": "reason", "valueString": "a"}, {"name": "status", "valueCode": "active"}),
        _params({"name": "reason", "valueString": "a"}, {"name": "why", "valueString": "b"}),
        _params("reason"),  # type: ignore[arg-type]
    ],
)
def test_malformed_discontinue_parameters_are_400(body: dict[str, Any]) -> None:
    with pytest.raises(Invalid):
        parse_discontinue(body)


@pytest.mark.parametrize("to", ["stopped", "cancelled", "completed"])
def test_a_plain_update_does_not_end_an_active_order(to: str) -> None:
    with pytest.raises(Conflict):
        plain_update_guard(_stored("active"), _order(status=to))
    plain_update_guard(_stored("active"), _order(status="on-hold"))
    plain_update_guard(_stored("active"), _order(status="entered-in-error"))
    plain_update_guard(_stored("stopped"), _order(status="stopped"))  # a correction
    plain_update_guard(None, _order())
    plain_update_guard(_stored("active"), None)


def test_the_medication_list_is_a_valid_fhir_list() -> None:
    rows = [_row(SERTRALINE, "p1.a"), _row("6901", "p1.b", dispenseRequest={
        "numberOfRepeatsAllowed": 0})]  # fmt: skip
    found = medication_list("p1", rows, "2025-03-01T10:00:00.000Z")
    FhirList.model_validate(found)
    assert [e["item"]["reference"] for e in found["entry"]] == [
        "MedicationRequest/p1.a", "MedicationRequest/p1.b"]  # fmt: skip
    stimulant = found["entry"][1]["extension"][0]
    assert stimulant["url"] == ROW_URL
    columns = {x["url"] for x in stimulant["extension"]}
    assert columns == {"ingredient", "drugClass", "schedule", "dosage", "status", "authoredOn",
                       "refills"}  # fmt: skip
    empty = medication_list("p1", [], "2025-03-01T10:00:00.000Z")
    FhirList.model_validate(empty)
    assert "entry" not in empty
