"""The rules of treatment plans, safety plans and goals (functions/plans/rules.py; no server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from functions.common.errors import Issue
from functions.plans.rules import (
    CATEGORY_SYSTEM,
    REVIEW_DATE,
    REVIEW_DATE_URL,
    SECTION_SYSTEM,
    SECTIONS,
    care_plan_rules,
    goal_rules,
    plan_kind,
    safety_plan_sections,
    summary,
)
from tests.unit import plan_examples
from tests.unit.plan_examples import SAFETY_PLAN_WORDS, goal, safety_plan, treatment_plan


def _found(issues: list[Issue]) -> list[tuple[str, str]]:
    """(code, expression) of each issue, for comparing with what a rule should say."""
    return [(i.code, e) for i in issues for e in i.expression]


def _section(body: dict[str, Any], code: str) -> dict[str, Any]:
    """The detail of a safety plan's section."""
    for activity in body["activity"]:
        if activity["detail"]["code"]["coding"][0]["code"] == code:
            detail: dict[str, Any] = activity["detail"]
            return detail
    raise AssertionError(code)


# --- the valid examples -----------------------------------------------------------------------


@pytest.mark.parametrize("example", [treatment_plan, safety_plan])
def test_valid_plans_raise_no_issue(example: Callable[[], dict[str, Any]]) -> None:
    assert care_plan_rules(example()) == []


def test_valid_goal_raises_no_issue() -> None:
    assert goal_rules(goal()) == []


@pytest.mark.parametrize("example", [treatment_plan, safety_plan])
def test_valid_plans_are_r4_care_plans(example: Callable[[], dict[str, Any]]) -> None:
    from fhir.resources.R4B.careplan import CarePlan

    plan = CarePlan.model_validate(example())
    assert plan.intent == "plan"


def test_valid_goal_is_an_r4_goal() -> None:
    from fhir.resources.R4B.goal import Goal

    assert Goal.model_validate(goal()).lifecycleStatus == "active"


def test_the_sections_follow_the_stanley_brown_order() -> None:
    assert list(SECTIONS) == [
        "warning-signs",
        "internal-coping",
        "social-distraction",
        "help-contacts",
        "professional-contacts",
        "environment-safety",
    ]
    assert list(SAFETY_PLAN_WORDS) == list(SECTIONS)


# --- every plan -------------------------------------------------------------------------------


@pytest.mark.parametrize(("intent", "code"), [("order", "code-invalid"), (None, "required")])
def test_a_plan_is_intended_as_a_plan(intent: str | None, code: str) -> None:
    body = treatment_plan()
    body["intent"] = intent
    assert _found(care_plan_rules(body)) == [(code, "CarePlan.intent")]


def test_a_plan_without_a_category_of_ours_is_refused() -> None:
    body = treatment_plan()
    body["category"] = [{"coding": [{"system": "http://loinc.org", "code": "18776-5"}]}]
    assert _found(care_plan_rules(body)) == [("required", "CarePlan.category")]
    assert plan_kind(body) is None


def test_a_plan_has_only_one_kind() -> None:
    body = treatment_plan()
    body["category"].append({"coding": [{"system": CATEGORY_SYSTEM, "code": "safety-plan"}]})
    assert _found(care_plan_rules(body)) == [("invalid", "CarePlan.category")]
    assert plan_kind(body) is None


def test_an_unknown_kind_is_refused() -> None:
    body = treatment_plan()
    body["category"] = [{"coding": [{"system": CATEGORY_SYSTEM, "code": "discharge-plan"}]}]
    assert _found(care_plan_rules(body)) == [
        ("code-invalid", "CarePlan.category[0].coding[0].code")
    ]


def test_other_category_codings_are_kept_beside_ours() -> None:
    body = treatment_plan()
    body["category"].insert(0, {"coding": [{"system": "http://loinc.org", "code": "18776-5"}]})
    assert care_plan_rules(body) == []
    assert plan_kind(body) == "treatment-plan"


def test_a_goal_is_a_reference_to_a_goal() -> None:
    body = safety_plan()
    body["goal"] = [{"reference": "Goal/g-2"}, {"reference": "Condition/c-1"}, {"display": "x"}]
    assert _found(care_plan_rules(body)) == [
        ("value", "CarePlan.goal[1].reference"),
        ("value", "CarePlan.goal[2].reference"),
    ]


# --- treatment plans --------------------------------------------------------------------------


def test_treatment_plan_needs_a_goal() -> None:
    body = treatment_plan()
    del body["goal"]
    assert _found(care_plan_rules(body)) == [("required", "CarePlan.goal")]


def test_treatment_plan_needs_an_intervention() -> None:
    body = treatment_plan()
    body["activity"] = []
    assert _found(care_plan_rules(body)) == [("required", "CarePlan.activity")]


def test_an_intervention_is_described_or_coded() -> None:
    body = treatment_plan()
    body["activity"][1]["detail"]["description"] = "  "
    body["activity"].append({"reference": {"reference": "ServiceRequest/s-1"}})
    assert _found(care_plan_rules(body)) == [
        ("required", "CarePlan.activity[1].detail.description"),
        ("required", "CarePlan.activity[1].detail.code"),
        ("required", "CarePlan.activity[2].detail"),
    ]


@pytest.mark.parametrize(("status", "code"), [("done", "code-invalid"), (None, "required")])
def test_an_intervention_has_an_r4_status(status: str | None, code: str) -> None:
    body = treatment_plan()
    body["activity"][0]["detail"]["status"] = status
    assert _found(care_plan_rules(body)) == [(code, "CarePlan.activity[0].detail.status")]


def test_treatment_plan_needs_a_review_date() -> None:
    body = treatment_plan()
    del body["extension"]
    assert _found(care_plan_rules(body)) == [("required", REVIEW_DATE)]
    assert f"CarePlan.extension('{REVIEW_DATE_URL}')" == REVIEW_DATE


@pytest.mark.parametrize("value", ["2026-02-30", "2026-06-01T10:00:00Z", "01/06/2026", 20260601])
def test_the_review_date_is_a_fhir_date(value: Any) -> None:
    body = treatment_plan()
    body["extension"][0]["valueDate"] = value
    assert _found(care_plan_rules(body)) == [("value", REVIEW_DATE)]


def test_the_review_date_is_a_value_date() -> None:
    body = treatment_plan()
    body["extension"][0] = {"url": REVIEW_DATE_URL, "valueString": "2026-06-01"}
    assert _found(care_plan_rules(body)) == [("value", REVIEW_DATE)]


def test_a_plan_has_one_review_date() -> None:
    body = treatment_plan()
    body["extension"].append({"url": REVIEW_DATE_URL, "valueDate": "2026-09-01"})
    assert _found(care_plan_rules(body)) == [("invalid", REVIEW_DATE)]


def test_the_review_date_is_not_before_the_start() -> None:
    body = treatment_plan()
    body["extension"][0]["valueDate"] = "2026-02-28"
    assert _found(care_plan_rules(body)) == [("invariant", REVIEW_DATE)]


@pytest.mark.parametrize("review", ["2026-03-01", "2026-03", "2026"])
def test_a_review_date_that_may_fall_on_the_start_is_accepted(review: str) -> None:
    body = treatment_plan()
    body["period"]["start"] = "2026-03-01T16:30:00-05:00"
    body["extension"][0]["valueDate"] = review
    assert care_plan_rules(body) == []


def test_a_review_date_without_a_start_is_accepted() -> None:
    body = treatment_plan()
    del body["period"]
    assert care_plan_rules(body) == []


# --- safety plans -----------------------------------------------------------------------------


def test_safety_plan_without_988_is_refused() -> None:
    body = safety_plan()
    _section(body, "professional-contacts")["description"] = "My therapist; call 9880 or 1988."
    issues = care_plan_rules(body)
    assert _found(issues) == [("required", "CarePlan.activity[4].detail.description")]
    assert "988" in issues[0].diagnostics
    assert "crisis line is required" in issues[0].diagnostics


@pytest.mark.parametrize("words", ["Call 988.", "1-988", "text 988 any time", "988lifeline.org"])
def test_any_mention_of_988_gives_the_crisis_line(words: str | None) -> None:
    body = safety_plan()
    _section(body, "professional-contacts")["description"] = words
    assert care_plan_rules(body) == []


@pytest.mark.parametrize("code", list(SECTIONS))
def test_safety_plan_needs_every_section(code: str) -> None:
    body = safety_plan()
    body["activity"] = [a for a in body["activity"] if _section(body, code) is not a["detail"]]
    issues = care_plan_rules(body)
    assert _found(issues) == [("required", "CarePlan.activity")]
    assert code in issues[0].diagnostics


def test_a_section_appears_only_once() -> None:
    body = safety_plan()
    body["activity"].append({"detail": {**_section(body, "warning-signs")}})
    assert _found(care_plan_rules(body)) == [("duplicate", "CarePlan.activity[6].detail.code")]


@pytest.mark.parametrize("words", ["", "   ", None])
def test_a_section_holds_the_patients_words(words: str | None) -> None:
    body = safety_plan()
    _section(body, "internal-coping")["description"] = words
    assert _found(care_plan_rules(body)) == [
        ("required", "CarePlan.activity[1].detail.description")
    ]


def test_a_section_is_coded_in_the_section_system() -> None:
    body = safety_plan()
    body["activity"][0]["detail"]["code"] = {"text": "Warning signs"}
    assert _found(care_plan_rules(body)) == [
        ("required", "CarePlan.activity[0].detail.code"),
        ("required", "CarePlan.activity"),
    ]


def test_an_unknown_section_is_refused() -> None:
    body = safety_plan()
    body["activity"].append(
        {
            "detail": {
                "code": {"coding": [{"system": SECTION_SYSTEM, "code": "reasons-for-living"}]},
                "status": "in-progress",
                "description": "My dog.",
            }
        }
    )
    assert _found(care_plan_rules(body)) == [
        ("code-invalid", "CarePlan.activity[6].detail.code.coding[0].code")
    ]


def test_an_activity_is_one_section() -> None:
    body = safety_plan()
    body["activity"][0]["detail"]["code"]["coding"].append(
        {"system": SECTION_SYSTEM, "code": "internal-coping"}
    )
    assert _found(care_plan_rules(body)) == [
        ("invalid", "CarePlan.activity[0].detail.code"),
        ("required", "CarePlan.activity"),
    ]


def test_a_section_needs_a_detail() -> None:
    body = safety_plan()
    body["activity"][5] = {"reference": {"reference": "ServiceRequest/s-1"}}
    assert _found(care_plan_rules(body)) == [
        ("required", "CarePlan.activity[5].detail"),
        ("required", "CarePlan.activity"),
    ]


def test_a_section_has_an_r4_status() -> None:
    body = safety_plan()
    _section(body, "help-contacts")["status"] = "draft"
    assert _found(care_plan_rules(body)) == [("code-invalid", "CarePlan.activity[3].detail.status")]


def test_safety_plan_needs_no_review_date_but_a_given_one_is_checked() -> None:
    body = safety_plan()
    assert care_plan_rules(body) == []
    body["extension"] = [{"url": REVIEW_DATE_URL, "valueDate": "2026-01-01"}]
    assert _found(care_plan_rules(body)) == [("invariant", REVIEW_DATE)]


def test_safety_plan_needs_no_goal() -> None:
    assert "goal" not in safety_plan()
    assert care_plan_rules(safety_plan()) == []


# --- goals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "description", [None, {}, {"text": " "}, {"coding": [{"system": "http://snomed.info/sct"}]}]
)
def test_a_goal_names_something(description: Any) -> None:
    body = goal()
    body["description"] = description
    assert _found(goal_rules(body)) == [("required", "Goal.description")]


def test_a_goal_may_be_named_by_a_coding_alone() -> None:
    body = goal()
    body["description"] = {"coding": [{"system": "http://snomed.info/sct", "code": "x"}]}
    assert goal_rules(body) == []


@pytest.mark.parametrize(("status", "code"), [("achieved", "code-invalid"), (None, "required")])
def test_a_goal_has_an_r4_lifecycle_status(status: str | None, code: str) -> None:
    body = goal()
    body["lifecycleStatus"] = status
    assert _found(goal_rules(body)) == [(code, "Goal.lifecycleStatus")]


def test_a_measured_target_says_what_or_when() -> None:
    body = goal()
    del body["target"][0]["detailQuantity"], body["target"][0]["dueDate"]
    assert _found(goal_rules(body)) == [
        ("required", "Goal.target[0].detail"),
        ("required", "Goal.target[0].due"),
    ]


@pytest.mark.parametrize("kept", ["detailQuantity", "dueDate"])
def test_a_measured_target_with_a_detail_or_a_due_date_is_enough(kept: str) -> None:
    body = goal()
    target = body["target"][0]
    body["target"][0] = {"measure": target["measure"], kept: target[kept]}
    assert goal_rules(body) == []


def test_a_target_detail_needs_a_measure() -> None:
    body = goal()
    del body["target"][0]["measure"]
    assert _found(goal_rules(body)) == [("required", "Goal.target[0].measure")]


def test_a_target_is_not_due_before_the_start() -> None:
    body = goal()
    body["target"][0]["dueDate"] = "2026-02-28"
    assert _found(goal_rules(body)) == [("invariant", "Goal.target[0].dueDate")]


# --- what the chart shows ---------------------------------------------------------------------


def test_safety_plan_sections_are_read_in_template_order() -> None:
    body = safety_plan()
    body["activity"].reverse()
    assert safety_plan_sections(body) == SAFETY_PLAN_WORDS
    assert list(safety_plan_sections(body)) == list(SECTIONS)


def test_a_treatment_plan_has_no_sections() -> None:
    assert safety_plan_sections(treatment_plan()) == {}


def test_summary_of_a_treatment_plan() -> None:
    assert summary(treatment_plan()) == {
        "kind": "treatment-plan",
        "status": "active",
        "title": "Treatment plan",
        "reviewDate": "2026-06-01",
        "goalCount": 1,
        "activityCount": 2,
    }


def test_summary_of_a_safety_plan() -> None:
    assert summary(safety_plan()) == {
        "kind": "safety-plan",
        "status": "active",
        "title": "Safety plan",
        "reviewDate": None,
        "goalCount": 0,
        "activityCount": 6,
    }


def test_diagnostics_never_repeat_the_patients_words() -> None:
    body = safety_plan()
    secret = "Call my neighbour Alex"
    for detail in (a["detail"] for a in body["activity"]):
        detail["description"] = secret
    body["extension"] = [{"url": REVIEW_DATE_URL, "valueDate": "1999-12-31"}]
    issues = care_plan_rules(body)
    assert issues
    assert not any(secret in i.diagnostics or "1999" in i.diagnostics for i in issues)


def test_examples_are_fresh_copies() -> None:
    first = plan_examples.safety_plan()
    first["activity"].clear()
    assert len(plan_examples.safety_plan()["activity"]) == len(SECTIONS)
