"""AllergyIntolerance's own rules over the API: the substance (code) is required;
criticality, reaction severity and the clinical and verification status codings
are checked against their R4 value sets; each reaction names a manifestation. A
refused create or update writes nothing, and no refusal repeats what was sent."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import outcome_issues, patient_body

BASE = "/fhir/R4"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
SECRET = "Qzxrwv"  # a marker in submitted values; never in an answer


def _allergy(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
        "code": {"coding": [{"system": RXNORM, "code": "7980", "display": "Penicillin G"}],
                 "text": "penicillin"},
        "criticality": "high",
        "reaction": [
            {
                "manifestation": [{"coding": [{"system": SNOMED, "code": "247472004",
                                               "display": "Hives"}]}],
                "severity": "moderate",
            }
        ],
    }  # fmt: skip





@pytest.fixture
def pid(api) -> str:  # type: ignore[no-untyped-def]
    return api.create(patient_body(family="Allergic", given="Rowan"))["id"]  # type: ignore[no-any-return]


def test_a_valid_allergy_is_stored_and_found_by_patient_and_code(api, pid):
    r = api.post("AllergyIntolerance", _allergy(pid))
    assert r.status_code == 201, r.body
    created = json.loads(r.body)
    assert created["criticality"] == "high"
    assert created["reaction"][0]["severity"] == "moderate"
    assert [a["id"] for a in api.search("AllergyIntolerance", f"patient={pid}")] == [created["id"]]
    found = api.search("AllergyIntolerance", f"patient={pid}&code={RXNORM}|7980")
    assert [a["id"] for a in found] == [created["id"]]
    assert api.search("AllergyIntolerance", f"patient={pid}&code={RXNORM}|7981") == []


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return change


_DELETE = object()

REFUSALS = [
    ("no-code", _set(("code",), _DELETE), "required", "AllergyIntolerance.code"),
    ("empty-code", _set(("code",), {"coding": []}), "required", "AllergyIntolerance.code"),
    ("code-names-nothing", _set(("code",), {"coding": [{"system": RXNORM}]}), "required",
     "AllergyIntolerance.code"),
    ("criticality", _set(("criticality",), SECRET.lower()), "code-invalid",
     "AllergyIntolerance.criticality"),
    ("criticality-r5-style", _set(("criticality",), "medium"), "code-invalid",
     "AllergyIntolerance.criticality"),
    ("severity", _set(("reaction", 0, "severity"), SECRET), "code-invalid",
     "AllergyIntolerance.reaction[0].severity"),
    ("manifestation-missing", _set(("reaction", 0, "manifestation"), _DELETE), "required",
     "AllergyIntolerance.reaction[0].manifestation"),
    ("manifestation-empty", _set(("reaction", 0, "manifestation"), []), "required",
     "AllergyIntolerance.reaction[0].manifestation"),
    ("manifestation-names-nothing", _set(("reaction", 0, "manifestation"), [{"coding": []}]),
     "required", "AllergyIntolerance.reaction[0].manifestation"),
    ("clinical-status", _set(("clinicalStatus", "coding"),
                             [{"system": SNOMED, "code": "55561003"},
                              {"system": CLINICAL, "code": SECRET.lower()}]),
     "code-invalid", "AllergyIntolerance.clinicalStatus.coding[1].code"),
    ("clinical-status-without-code", _set(("clinicalStatus", "coding"), [{"system": CLINICAL}]),
     "code-invalid", "AllergyIntolerance.clinicalStatus.coding[0].code"),
    ("verification-status", _set(("verificationStatus", "coding", 0, "code"), "suspected"),
     "code-invalid", "AllergyIntolerance.verificationStatus.coding[0].code"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "code", "expression"),
    [pytest.param(c, code, e, id=name) for name, c, code, e in REFUSALS],
)
def test_a_broken_rule_is_400_at_its_element_and_nothing_is_written(
    api, pid, change, code, expression
):
    body = _allergy(pid)
    body["code"]["text"] = f"penicillin {SECRET}"
    change(body)
    r = api.post("AllergyIntolerance", body)
    assert r.status_code == 400, r.body
    [issue] = outcome_issues(r)
    assert issue["code"] == code
    assert issue["expression"] == [expression]
    assert SECRET.lower().encode() not in r.body.lower()
    assert b"Allergic" not in r.body and b"Rowan" not in r.body
    assert api.search("AllergyIntolerance", f"patient={pid}") == []


def test_several_broken_rules_are_each_named(api, pid):
    body = _allergy(pid)
    body["criticality"] = "extreme"
    body["reaction"].append({"manifestation": [{"text": "wheeze"}], "severity": "fatal"})
    r = api.post("AllergyIntolerance", body)
    assert r.status_code == 400, r.body
    assert [i["expression"] for i in outcome_issues(r)] == [
        ["AllergyIntolerance.criticality"],
        ["AllergyIntolerance.reaction[1].severity"],
    ]
    assert api.search("AllergyIntolerance", f"patient={pid}") == []


@pytest.mark.parametrize(
    ("criticality", "clinical", "verification", "severity"),
    [
        ("low", "resolved", "unconfirmed", "mild"),
        ("high", "inactive", "refuted", "severe"),
        ("unable-to-assess", "active", "entered-in-error", "moderate"),
    ],
)
def test_the_codes_of_each_value_set_are_accepted(
    api, pid, criticality, clinical, verification, severity
):
    body = _allergy(pid)
    body["criticality"] = criticality
    body["clinicalStatus"]["coding"][0]["code"] = clinical
    body["verificationStatus"]["coding"][0]["code"] = verification
    body["reaction"][0]["severity"] = severity
    r = api.post("AllergyIntolerance", body)
    assert r.status_code == 201, r.body


def test_a_text_only_substance_and_other_status_systems_are_accepted(api, pid):
    body = _allergy(pid)
    body["code"] = {"text": "peanuts"}
    del body["criticality"]
    body["reaction"] = [{"manifestation": [{"text": "swelling"}]}]
    body["clinicalStatus"]["coding"].append({"system": SNOMED, "code": "55561003"})
    assert api.post("AllergyIntolerance", body).status_code == 201


def test_an_update_that_breaks_a_rule_is_refused_and_the_version_kept(api, pid):
    r = api.post("AllergyIntolerance", _allergy(pid))
    assert r.status_code == 201, r.body
    created = json.loads(r.body)
    url = f"{BASE}/AllergyIntolerance/{created['id']}"

    for breaking, expression in [
        ({"criticality": "severe"}, "AllergyIntolerance.criticality"),
        ({"code": {"coding": []}}, "AllergyIntolerance.code"),
    ]:
        bad = {**copy.deepcopy(created), **breaking}
        r = api.http.put(url, headers=api.headers("clinician", If_Match='W/"1"'),
                         body=json.dumps(bad))  # fmt: skip
        assert r.status_code == 400, r.body
        assert [i["expression"] for i in outcome_issues(r)] == [[expression]]
        current = json.loads(api.http.get(url, headers=api.headers("clinician")).body)
        assert current == created and current["meta"]["versionId"] == "1"

    good = {**created, "criticality": "low"}
    r = api.http.put(url, headers=api.headers("clinician", If_Match='W/"1"'),
                     body=json.dumps(good))  # fmt: skip
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["meta"]["versionId"] == "2"
