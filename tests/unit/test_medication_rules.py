"""Prescribing rules (functions/medications/rules.py), one behaviour at a time:
the drug, refills by DEA schedule, the prescriber's DEA registration, duplicate
therapy and allergy conflicts, the override reason, statuses and list rows."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from functions.medications.formulary import RXNORM, by_rxcui
from functions.medications.rules import (
    DEA_SYSTEM,
    DRUG,
    OVERRIDE_URL,
    REPEATS,
    STATES,
    STATUSES,
    VALIDITY_END,
    add_months,
    conflict_outcome,
    conflicts,
    dea_number_valid,
    list_entry,
    order_rules,
    override_issues,
    override_reason,
    prescriber_issues,
)

SERTRALINE, ESCITALOPRAM, QUETIAPINE = "36437", "321988", "51272"
METHYLPHENIDATE, CLONAZEPAM, BUPRENORPHINE = "6901", "2598", "1819"
ON = date(2025, 3, 1)


def _order(rxcui: str = SERTRALINE, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "new",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2025-03-01",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}]},
    }
    body.update(extra)
    return body


def _refills(n: int, **period: str) -> dict[str, Any]:
    request: dict[str, Any] = {"numberOfRepeatsAllowed": n}
    if period:
        request["validityPeriod"] = period
    return request


def _codes(issues: list[Any]) -> list[tuple[str, list[str]]]:
    return [(i.code, i.expression) for i in issues]


def _drug(rxcui: str) -> Any:
    found = by_rxcui(rxcui)
    assert found is not None
    return found


# --- the drug -------------------------------------------------------------------


def test_a_formulary_ingredient_passes() -> None:
    assert order_rules(_order(SERTRALINE)) == []


def test_an_order_without_an_rxnorm_coding_is_refused() -> None:
    body = _order()
    body["medicationCodeableConcept"] = {"text": "sertraline"}
    assert _codes(order_rules(body)) == [("required", [DRUG])]


def test_an_rxnorm_code_outside_the_formulary_is_refused_without_echoing_it() -> None:
    [issue] = order_rules(_order("999999999"))
    assert (issue.code, issue.expression) == ("code-invalid", [DRUG])
    assert "999999999" not in issue.diagnostics


def test_other_codings_next_to_the_rxnorm_one_are_kept() -> None:
    body = _order()
    body["medicationCodeableConcept"]["coding"].insert(
        0, {"system": "http://hl7.org/fhir/sid/ndc", "code": "0000-0000-00"}
    )
    assert order_rules(body) == []


def test_codings_of_two_ingredients_are_refused() -> None:
    body = _order()
    body["medicationCodeableConcept"]["coding"].append({"system": RXNORM, "code": QUETIAPINE})
    assert _codes(order_rules(body)) == [("business-rule", [DRUG])]


# --- refills by schedule ---------------------------------------------------------


def test_schedule_ii_order_with_a_refill_is_refused() -> None:
    issues = order_rules(_order(METHYLPHENIDATE, dispenseRequest=_refills(1)))
    assert _codes(issues) == [("business-rule", [REPEATS])]
    assert "1306.12" in issues[0].diagnostics


@pytest.mark.parametrize("request_", [None, _refills(0)])
def test_schedule_ii_order_without_refills_passes(request_: dict[str, Any] | None) -> None:
    extra = {"dispenseRequest": request_} if request_ is not None else {}
    assert order_rules(_order(METHYLPHENIDATE, **extra)) == []


def test_schedule_iv_order_with_five_refills_passes() -> None:
    assert order_rules(_order(CLONAZEPAM, dispenseRequest=_refills(5))) == []


def test_schedule_iv_order_with_six_refills_is_refused() -> None:
    issues = order_rules(_order(CLONAZEPAM, dispenseRequest=_refills(6)))
    assert _codes(issues) == [("business-rule", [REPEATS])]
    assert "1306.22" in issues[0].diagnostics


def test_a_non_controlled_drug_has_no_refill_limit() -> None:
    assert order_rules(_order(SERTRALINE, dispenseRequest=_refills(11))) == []


@pytest.mark.parametrize("value", [-1, 1.5, "2", True])
def test_a_refill_count_that_is_not_a_whole_number_is_refused(value: Any) -> None:
    body = _order(SERTRALINE, dispenseRequest={"numberOfRepeatsAllowed": value})
    assert _codes(order_rules(body)) == [("value", [REPEATS])]


def test_schedule_iii_refills_within_six_months_of_the_order_pass() -> None:
    body = _order(BUPRENORPHINE, dispenseRequest=_refills(2, end="2025-09-01"))
    assert order_rules(body) == []


def test_schedule_iii_refills_beyond_six_months_of_the_order_are_refused() -> None:
    body = _order(BUPRENORPHINE, dispenseRequest=_refills(2, end="2025-09-02"))
    issues = order_rules(body)
    assert _codes(issues) == [("business-rule", [VALIDITY_END])]
    assert "MedicationRequest.authoredOn" in issues[0].diagnostics


def test_the_six_months_count_from_the_validity_start_without_an_order_date() -> None:
    body = _order(CLONAZEPAM, dispenseRequest=_refills(1, start="2025-01-10", end="2025-07-11"))
    del body["authoredOn"]
    [issue] = order_rules(body)
    assert issue.expression == [VALIDITY_END]
    body["dispenseRequest"]["validityPeriod"]["end"] = "2025-07-10T18:00:00Z"
    assert order_rules(body) == []


def test_a_validity_end_without_an_order_date_is_refused() -> None:
    body = _order(CLONAZEPAM, dispenseRequest=_refills(1, end="2025-04-01"))
    del body["authoredOn"]
    assert _codes(order_rules(body)) == [("required", ["MedicationRequest.authoredOn"])]


def test_a_partial_validity_end_counts_as_its_last_day() -> None:
    # ordered 2025-03-01: six months reach 2025-09-01, and "2025-09" runs to 2025-09-30
    body = _order(CLONAZEPAM, dispenseRequest=_refills(1, end="2025-09"))
    assert _codes(order_rules(body)) == [("business-rule", [VALIDITY_END])]


def test_a_validity_end_that_is_not_a_date_is_refused() -> None:
    body = _order(CLONAZEPAM, dispenseRequest=_refills(1, end="soon"))
    assert _codes(order_rules(body)) == [("value", [VALIDITY_END])]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2025, 3, 1), date(2025, 9, 1)),
        (date(2024, 8, 31), date(2025, 2, 28)),
        (date(2023, 8, 31), date(2024, 2, 29)),
        (date(2025, 10, 15), date(2026, 4, 15)),
    ],
)
def test_six_months_are_calendar_months_clamped_to_the_month_end(start: date, end: date) -> None:
    assert add_months(start, 6) == end


# --- the prescriber's DEA registration ----------------------------------------------


def _practitioner(*identifiers: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "id": "dr", "identifier": list(identifiers)}


def _dea(value: str = "AB1234563", **period: str) -> dict[str, Any]:
    identifier: dict[str, Any] = {"system": DEA_SYSTEM, "value": value}
    if period:
        identifier["period"] = period
    return identifier


def test_the_dea_check_digit_of_a_hand_computed_number_passes() -> None:
    # (1 + 3 + 5) + 2 * (2 + 4 + 6) = 33: the check digit is 3
    assert dea_number_valid("AB1234563")


@pytest.mark.parametrize(
    "value",
    ["AB1234564", "AB1234560", "A11234563", "AB123456", "AB12345633", "ab1234563", "1B1234563"],
)
def test_a_dea_number_with_a_wrong_check_digit_or_format_fails(value: str) -> None:
    assert not dea_number_valid(value)


def test_a_controlled_drug_prescribed_with_a_valid_dea_registration_passes() -> None:
    practitioner = _practitioner(_dea(end="2025-03-01"))
    assert prescriber_issues(practitioner, _drug(METHYLPHENIDATE), ON) == []


def test_a_controlled_drug_without_a_dea_registration_is_refused() -> None:
    npi = {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
    issues = prescriber_issues(_practitioner(npi), _drug(CLONAZEPAM), ON)
    assert _codes(issues) == [("business-rule", ["Practitioner.identifier"])]


def test_a_controlled_drug_without_a_known_prescriber_is_refused() -> None:
    issues = prescriber_issues(None, _drug(BUPRENORPHINE), ON)
    assert _codes(issues) == [("business-rule", ["MedicationRequest.requester"])]


def test_a_dea_number_failing_the_check_digit_is_refused_without_echoing_it() -> None:
    [issue] = prescriber_issues(_practitioner(_dea("AB1234564")), _drug(CLONAZEPAM), ON)
    assert "check digit" in issue.diagnostics and "AB1234564" not in issue.diagnostics


def test_an_expired_dea_registration_is_refused() -> None:
    practitioner = _practitioner(_dea(end="2025-02-28"))
    [issue] = prescriber_issues(practitioner, _drug(METHYLPHENIDATE), ON)
    assert "expired" in issue.diagnostics


def test_a_dea_registration_not_yet_valid_is_refused() -> None:
    practitioner = _practitioner(_dea(start="2025-03-02"))
    [issue] = prescriber_issues(practitioner, _drug(METHYLPHENIDATE), ON)
    assert "not valid yet" in issue.diagnostics


def test_one_current_registration_among_expired_ones_suffices() -> None:
    practitioner = _practitioner(_dea(end="2020-01-01"), _dea("BJ6125341"))
    assert prescriber_issues(practitioner, _drug(CLONAZEPAM), ON) == []


def test_a_non_controlled_drug_needs_no_dea_registration() -> None:
    assert prescriber_issues(None, _drug(SERTRALINE), ON) == []
    assert prescriber_issues(_practitioner(), _drug(QUETIAPINE), ON) == []


# --- conflicts ---------------------------------------------------------------------


def _other(rxcui: str, id_: str = "old", status: str = "active") -> dict[str, Any]:
    return _order(rxcui, id=id_, status=status)


def _allergy(id_: str = "a1", **fields: Any) -> dict[str, Any]:
    return {"resourceType": "AllergyIntolerance", "id": id_, **fields}


def _status(system: str, code: str) -> dict[str, Any]:
    base = "http://terminology.hl7.org/CodeSystem/allergyintolerance-"
    return {"coding": [{"system": base + system, "code": code}]}


def _kinds(found: list[Any]) -> list[tuple[str, str]]:
    return [(c.kind, c.reference) for c in found]


def test_another_active_order_of_the_same_ingredient_is_a_duplicate() -> None:
    found = conflicts(_order(SERTRALINE), [_other(SERTRALINE)], [])
    assert _kinds(found) == [("duplicate-ingredient", "MedicationRequest/old")]
    assert SERTRALINE in found[0].diagnostics
    assert "duplicate-ingredient" in found[0].diagnostics


def test_another_active_order_of_the_same_class_is_a_duplicate() -> None:
    found = conflicts(_order(SERTRALINE), [_other(ESCITALOPRAM, status="on-hold")], [])
    assert _kinds(found) == [("duplicate-class", "MedicationRequest/old")]
    assert "sri" in found[0].diagnostics and "MedicationRequest/old" in found[0].diagnostics


def test_orders_of_other_classes_or_not_active_are_no_duplicates() -> None:
    others = [_other(QUETIAPINE, "q"), _other(SERTRALINE, "s", status="stopped")]
    assert conflicts(_order(SERTRALINE), others, []) == []


def test_a_change_of_an_order_does_not_conflict_with_itself() -> None:
    order = _order(SERTRALINE, id="same")
    assert conflicts(order, [_other(SERTRALINE, "same")], []) == []


def test_a_discontinued_order_conflicts_with_nothing() -> None:
    order = _order(SERTRALINE, id="mine", status="stopped")
    assert conflicts(order, [_other(SERTRALINE)], [_allergy(code={"text": "Sertraline"})]) == []


def test_an_allergy_coded_with_the_ingredient_conflicts() -> None:
    allergy = _allergy(code={"coding": [{"system": RXNORM, "code": SERTRALINE}]})
    found = conflicts(_order(SERTRALINE), [], [allergy])
    assert _kinds(found) == [("allergy", "AllergyIntolerance/a1")]
    assert "allergy" in found[0].diagnostics and SERTRALINE in found[0].diagnostics


@pytest.mark.parametrize(
    "code",
    [
        {"text": " SERTRALINE "},
        {"coding": [{"system": "http://snomed.info/sct", "display": "Sertraline"}]},
    ],
)
def test_an_allergy_named_as_the_ingredient_conflicts(code: dict[str, Any]) -> None:
    found = conflicts(_order(SERTRALINE), [], [_allergy(code=code)])
    assert _kinds(found) == [("allergy", "AllergyIntolerance/a1")]


def test_an_allergy_to_another_substance_does_not_conflict() -> None:
    allergy = _allergy(code={"text": "penicillin"})
    assert conflicts(_order(SERTRALINE), [], [allergy]) == []


@pytest.mark.parametrize(
    "status",
    [
        {"verificationStatus": _status("verification", "refuted")},
        {"verificationStatus": _status("verification", "entered-in-error")},
        {"clinicalStatus": _status("clinical", "resolved")},
        {"clinicalStatus": _status("clinical", "inactive")},
    ],
)
def test_a_refuted_or_resolved_allergy_is_ignored(status: dict[str, Any]) -> None:
    allergy = _allergy(code={"text": "sertraline"}, **status)
    assert conflicts(_order(SERTRALINE), [], [allergy]) == []


def test_a_confirmed_active_allergy_conflicts() -> None:
    allergy = _allergy(
        code={"text": "sertraline"},
        clinicalStatus=_status("clinical", "active"),
        verificationStatus=_status("verification", "confirmed"),
    )
    assert len(conflicts(_order(SERTRALINE), [], [allergy])) == 1


def test_each_conflict_is_a_business_rule_issue_on_the_drug() -> None:
    found = conflicts(_order(SERTRALINE), [_other(SERTRALINE), _other(ESCITALOPRAM, "e")], [])
    issues = conflict_outcome(found)
    assert _codes(issues) == [("business-rule", [DRUG])] * 2
    assert all(OVERRIDE_URL in i.diagnostics for i in issues)


# --- override reason -----------------------------------------------------------------


def _with_reason(*values: Any) -> dict[str, Any]:
    return _order(extension=[{"url": OVERRIDE_URL, "valueString": v} for v in values])


def test_the_override_reason_is_the_stripped_value_string() -> None:
    assert override_reason(_with_reason("  cross-taper over two weeks \n")) == (
        "cross-taper over two weeks"
    )
    assert override_issues(_with_reason("cross-taper")) == []


def test_an_order_without_an_override_extension_has_no_reason() -> None:
    other = {"url": "https://example.org/other", "valueString": "x"}
    assert override_reason(_order()) is None
    assert override_reason(_order(extension=[other])) is None
    assert override_issues(_order(extension=[other])) == []


def test_a_blank_override_reason_is_no_reason_and_refused() -> None:
    body = _with_reason("   ")
    assert override_reason(body) is None
    path = "MedicationRequest.extension[0].valueString"
    assert _codes(override_issues(body)) == [("value", [path])]


def test_an_override_reason_of_1000_characters_passes_and_1001_is_refused() -> None:
    assert override_issues(_with_reason("x" * 1000)) == []
    issues = override_issues(_with_reason("x" * 1001))
    assert _codes(issues) == [("value", ["MedicationRequest.extension[0].valueString"])]
    assert "x" * 20 not in issues[0].diagnostics


def test_two_override_reasons_are_refused() -> None:
    assert _codes(override_issues(_with_reason("a", "b"))) == [
        ("value", ["MedicationRequest.extension"])
    ]


# --- statuses and list rows --------------------------------------------------------------


def test_every_r4_status_is_declared_and_a_prescription_starts_active() -> None:
    assert set(STATES.statuses) == set(STATUSES)
    assert STATES.initial == frozenset({"active", "on-hold", "stopped", "cancelled", "completed"})


@pytest.mark.parametrize("end", ["stopped", "cancelled", "completed", "on-hold"])
def test_an_active_order_may_be_discontinued_or_held(end: str) -> None:
    assert end in STATES.transitions["active"]


@pytest.mark.parametrize("was", ["stopped", "cancelled", "completed", "entered-in-error"])
def test_a_discontinued_order_is_never_resumed(was: str) -> None:
    assert "active" not in STATES.transitions[was]


def test_a_list_entry_summarises_the_order() -> None:
    order = _order(
        CLONAZEPAM,
        id="o1",
        dosageInstruction=[{"text": "0.5 mg at night"}],
        dispenseRequest=_refills(2),
        extension=[{"url": OVERRIDE_URL, "valueString": " taper "}],
    )
    assert list_entry(order) == {
        "id": "o1",
        "ingredient": "clonazepam",
        "rxcui": CLONAZEPAM,
        "drugClass": "benzodiazepine",
        "schedule": "IV",
        "dosage": "0.5 mg at night",
        "status": "active",
        "authoredOn": "2025-03-01",
        "refills": 2,
        "overrideReason": "taper",
    }


def test_a_list_entry_of_an_order_without_dosage_or_refills() -> None:
    entry = list_entry(_order(SERTRALINE))
    assert (entry["dosage"], entry["refills"], entry["overrideReason"]) == (None, 0, None)
