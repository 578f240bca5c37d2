"""ICD-10-CM codes on Condition.code over the API: a billable code of the code set
is stored, a header, unknown or undotted code is a 400 naming the coding and the
code, and a refused create or update writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import outcome_issues, patient_body

BASE = "/fhir/R4"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"


def _condition(pid: str, *codings: tuple[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": s, "code": c} for s, c in codings]},
    }





@pytest.fixture
def pid(api) -> str:  # type: ignore[no-untyped-def]
    return api.create(patient_body(family="Icdcoded", given="Robin"))["id"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("F32", "F32 is a category header"),
        ("Z99.999", "Z99.999 is not an ICD-10-CM code"),
        ("F321", "dotted form: F32.1, not F321"),
    ],
)
def test_an_invalid_icd10cm_code_is_400_and_nothing_is_written(api, pid, code, words):
    r = api.post("Condition", _condition(pid, (SNOMED, "35489007"), (ICD10CM, code)))
    assert r.status_code == 400, r.body
    [issue] = outcome_issues(r)
    assert issue["code"] == "code-invalid"
    assert issue["expression"] == ["Condition.code.coding[1].code"]
    assert words in issue["diagnostics"]
    assert b"Icdcoded" not in r.body and b"Robin" not in r.body
    assert api.search("Condition", f"patient={pid}") == []


def test_a_billable_code_is_stored_and_an_update_to_a_header_is_refused(api, pid):
    r = api.post("Condition", _condition(pid, (ICD10CM, "F43.10"), (SNOMED, "47505003")))
    assert r.status_code == 201, r.body
    created = json.loads(r.body)
    assert created["code"]["coding"][0]["code"] == "F43.10"
    url = f"{BASE}/Condition/{created['id']}"

    bad = {**created, "code": {"coding": [{"system": ICD10CM, "code": "F43.1"}]}}
    r = api.http.put(url, headers=api.headers("clinician", If_Match='W/"1"'),
                     body=json.dumps(bad))  # fmt: skip
    assert r.status_code == 400, r.body
    assert [i["expression"] for i in outcome_issues(r)] == [["Condition.code.coding[0].code"]]
    current = json.loads(api.http.get(url, headers=api.headers("clinician")).body)
    assert current == created and current["meta"]["versionId"] == "1"
    assert [c["id"] for c in api.search("Condition", f"patient={pid}")] == [created["id"]]

    good = {**created, "code": {"coding": [{"system": ICD10CM, "code": "F32.A"}]}}
    r = api.http.put(url, headers=api.headers("clinician", If_Match='W/"1"'),
                     body=json.dumps(good))  # fmt: skip
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["meta"]["versionId"] == "2"


def test_several_bad_codings_are_each_named(api, pid):
    body = _condition(pid, (ICD10CM, "F41.1"), (ICD10CM, "F41"), (ICD10CM, "F99.9"))
    r = api.post("Condition", body)
    assert r.status_code == 400, r.body
    assert [i["expression"] for i in outcome_issues(r)] == [
        ["Condition.code.coding[1].code"],
        ["Condition.code.coding[2].code"],
    ]
    assert api.search("Condition", f"patient={pid}") == []


def test_snomed_coded_conditions_are_not_checked(api, pid):
    r = api.post("Condition", _condition(pid, (SNOMED, "35489007")))
    assert r.status_code == 201, r.body
