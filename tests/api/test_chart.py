"""The chart in one Query (docs/adr/0008) and the whole record ($everything)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import next_path, patient_body

BASE = "/fhir/R4"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def _post(api, kind: str, body: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = api.post(kind, body)
    assert r.status_code == 201, r.body
    created: dict[str, Any] = json.loads(r.body)
    return created


def _chart(api, pid: str, role: str = "clinician", tenant: str = "demo-clinic"):  # type: ignore[no-untyped-def]
    return api.http.get(f"{BASE}/Patient/{pid}/$chart", headers=api.headers(role, tenant))


def _condition(pid: str, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
        "code": {"coding": [{"system": ICD10, "code": "F32.1", "display": "Major depressive "
                             "disorder, single episode, moderate"}]},
    }


def _allergy(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": SNOMED, "code": "91936005", "display": "Penicillin"}]},
        "criticality": "high",
    }


@pytest.fixture()
def patient(api) -> str:  # type: ignore[no-untyped-def]
    return str(api.create(patient_body("Chart" + uuid.uuid4().hex[:8]))["id"])


def test_chart_shows_demographics_active_problems_and_allergies(api, patient):
    _post(api, "Condition", _condition(patient))
    _post(api, "AllergyIntolerance", _allergy(patient))
    r = _chart(api, patient)
    assert r.status_code == 200, r.body
    chart = json.loads(r.body)
    assert chart["patient"]["id"] == patient and chart["patient"]["birthDate"] == "1985-06-15"
    assert [p["code"]["code"] for p in chart["problems"]] == ["F32.1"]
    assert chart["allergies"][0]["criticality"] == "high"
    assert chart["withheld"] == []


def test_a_resolved_problem_leaves_the_chart_in_the_same_write(api, patient):
    created = _post(api, "Condition", _condition(patient))
    resolved = {**_condition(patient, "resolved"), "id": created["id"]}
    r = api.http.put(f"{BASE}/Condition/{created['id']}", headers=api.headers(
        "clinician", **{"If-Match": 'W/"1"'}), body=json.dumps(resolved))  # fmt: skip
    assert r.status_code == 200, r.body
    assert json.loads(_chart(api, patient).body)["problems"] == []


def test_a_deleted_problem_leaves_the_chart(api, patient):
    created = _post(api, "Condition", _condition(patient))
    r = api.http.delete(f"{BASE}/Condition/{created['id']}", headers=api.headers("supervisor"))
    assert r.status_code == 204
    assert json.loads(_chart(api, patient).body)["problems"] == []


def test_front_desk_sees_demographics_and_is_told_what_is_withheld(api, patient):
    _post(api, "Condition", _condition(patient))
    _post(api, "AllergyIntolerance", _allergy(patient))
    chart = json.loads(_chart(api, patient, "front_desk").body)
    assert chart["patient"]["id"] == patient
    assert chart["problems"] == [] and chart["allergies"] == []
    assert {"problems", "allergies"} <= set(chart["withheld"])


def test_biller_sees_problems_for_claims_but_not_allergies(api, patient):
    _post(api, "Condition", _condition(patient))
    _post(api, "AllergyIntolerance", _allergy(patient))
    chart = json.loads(_chart(api, patient, "biller").body)
    assert len(chart["problems"]) == 1 and chart["allergies"] == []
    assert "allergies" in chart["withheld"]


def test_another_organisation_gets_404_for_the_chart(api, patient):
    _post(api, "Condition", _condition(patient))
    r = _chart(api, patient, tenant="other-clinic")
    assert r.status_code == 404
    assert "F32.1" not in r.body.decode() if isinstance(r.body, bytes) else "F32.1" not in r.body


def test_an_unknown_or_deleted_patient_has_no_chart(api):
    assert _chart(api, "nobody-" + uuid.uuid4().hex[:8]).status_code == 404
    pid = api.create(patient_body("Gone" + uuid.uuid4().hex[:8]))["id"]
    assert api.http.delete(f"{BASE}/Patient/{pid}", headers=api.headers("supervisor")
                           ).status_code == 204  # fmt: skip
    assert _chart(api, pid).status_code == 404


def test_the_chart_is_one_query(api, moto, patient):
    for _ in range(3):
        _post(api, "Condition", _condition(patient))
    _chart(api, patient)  # warm
    before = moto.counter.snapshot()
    r = _chart(api, patient)
    after = moto.counter.snapshot()
    calls = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert r.status_code == 200
    reads = {k: v for k, v in calls.items() if not k.endswith(("PutItem", "TransactWriteItems"))}
    assert reads == {"dynamodb.Query": 1}, calls


def test_the_chart_is_in_the_patients_audit_trail(api, patient):
    _chart(api, patient)
    r = api.http.get(f"{BASE}/AuditEvent?patient={patient}", headers=api.headers("compliance"))
    events = [e["resource"] for e in json.loads(r.body)["entry"]]
    assert any("$chart" in json.dumps(e) or e.get("action") == "R" for e in events)


def _everything(api, pid: str, role: str = "clinician", tenant: str = "demo-clinic",  # type: ignore[no-untyped-def]
                count: int = 2) -> list[dict[str, Any]]:  # fmt: skip
    path: str | None = f"{BASE}/Patient/{pid}/$everything?_count={count}"
    found: list[dict[str, Any]] = []
    pages = 0
    while path:
        r = api.http.get(path, headers=api.headers(role, tenant))
        assert r.status_code == 200, r.body
        page = json.loads(r.body)
        found.extend(e["resource"] for e in page["entry"])
        path = next_path(page)
        pages += 1
        assert pages < 50
    return found


def test_everything_pages_through_the_whole_record(api, patient):
    ids = {_post(api, "Condition", _condition(patient))["id"] for _ in range(3)}
    ids.add(_post(api, "AllergyIntolerance", _allergy(patient))["id"])
    found = _everything(api, patient)
    assert ids | {patient} <= {r["id"] for r in found}
    assert len(found) == len({r["id"] for r in found})  # no resource twice across pages


def test_everything_shows_each_role_only_what_it_may_read(api, patient):
    _post(api, "AllergyIntolerance", _allergy(patient))
    kinds = {r["resourceType"] for r in _everything(api, patient, "front_desk", count=50)}
    assert kinds == {"Patient"}


def test_everything_of_another_organisations_patient_is_404(api, patient):
    r = api.http.get(f"{BASE}/Patient/{patient}/$everything",
                     headers=api.headers("clinician", "other-clinic"))  # fmt: skip
    assert r.status_code == 404


def test_a_forged_everything_cursor_is_refused(api, patient):
    r = api.http.get(f"{BASE}/Patient/{patient}/$everything?_cursor=C%230%23Patient",
                     headers=api.headers())  # fmt: skip
    assert r.status_code == 404
