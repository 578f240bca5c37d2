"""Round trips per request for every type the engine serves, counted by the moto
server itself (as tests/api/test_round_trips.py does for the Patient), warm: the
key set, the tenant key and each data class's data key are cached first."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from functions.engine.registry import fhir_types
from tests.conftest import patient_body

BASE = "/fhir/R4"
# Types written with plain FHIR interactions here; the workflow types (notes, plans,
# questionnaire responses, flags, signatures) have their writes counted with their
# operations, in their own tests (WORKFLOW_COUNTED).
TYPES = ["Patient", "Practitioner", "Encounter", "Condition", "AllergyIntolerance",
         "Observation", "MedicationRequest"]  # fmt: skip
WORKFLOW_COUNTED = {
    "DocumentReference": "tests/api/test_notes_*.py",
    "Provenance": "tests/api/test_notes_*.py",
    "QuestionnaireResponse": "tests/api/test_measures_*.py",
    "Flag": "tests/api/test_measures_*.py",
    "CarePlan": "tests/api/test_plans_*.py",
    "Goal": "tests/api/test_plans_*.py",
    "ChargeItem": "tests/api/test_billing.py",
    "Claim": "tests/api/test_billing.py",
}
CHART_TYPES = [t for t in TYPES if t not in ("Patient", "Practitioner")]
WRITER = {"Practitioner": "admin", "MedicationRequest": "prescriber"}


def _subject(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def _body(kind: str, pid: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    bodies: dict[str, dict[str, Any]] = {
        "Patient": {
            **patient_body("Trip" + tag),
            "identifier": [{"system": "urn:test:trips", "value": tag}],
        },
        "Practitioner": {
            "resourceType": "Practitioner",
            "name": [{"family": "Trip" + tag}],
            "identifier": [{"system": "urn:test:trips", "value": tag}],
        },
        "Encounter": {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": _subject(pid),
            "period": {"start": "2024-01-02T10:00:00Z", "end": "2024-01-02T11:00:00Z"},
        },
        "Condition": {
            "resourceType": "Condition",
            "subject": _subject(pid),
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]},
        },
        "AllergyIntolerance": {
            "resourceType": "AllergyIntolerance",
            "patient": _subject(pid),
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]},
        },
        "Observation": {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": _subject(pid),
            "effectiveDateTime": "2024-01-02T10:05:00Z",
            "valueQuantity": {"value": 70, "unit": "/min"},
        },
        "MedicationRequest": {
            "resourceType": "MedicationRequest",
            # a reported record (history from elsewhere): what is exercised here is the engine,
            # not the prescribing rules (tests/api/test_medications_*.py)
            "reportedBoolean": True,
            "status": "active",
            "intent": "order",
            "subject": _subject(pid),
            "medicationCodeableConcept": {
                "coding": [
                    {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}
                ]
            },
            "authoredOn": "2024-01-02",
        },
    }
    return bodies[kind]


def _criteria(kind: str, body: dict[str, Any], pid: str) -> str:
    """If-None-Exist criteria the body matches: its identifier, or its chart."""
    if kind in ("Patient", "Practitioner"):
        ident = body["identifier"][0]
        return f"identifier={ident['system']}|{ident['value']}"
    return f"patient={pid}"


def _calls(moto, request: Callable[[], Any]) -> tuple[Counter[str], Any]:  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()
    result = request()
    after = moto.counter.snapshot()
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]}), result


def _headers(api, kind: str, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    headers: dict[str, str] = api.headers(WRITER.get(kind, "clinician"), **extra)
    return headers


def _create(api, kind: str, pid: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = api.http.post(
        f"{BASE}/{kind}", headers=_headers(api, kind), body=json.dumps(_body(kind, pid))
    )
    assert r.status_code == 201, r.body
    created: dict[str, Any] = json.loads(r.body)
    return created


@pytest.fixture(scope="module")
def warm(api) -> str:  # type: ignore[no-untyped-def]
    """A patient; every type created, read and searched once in this process."""
    pid = api.create(patient_body("Warm" + uuid.uuid4().hex[:8]))["id"]
    for kind in TYPES:
        created = _create(api, kind, pid)
        r = api.http.get(f"{BASE}/{kind}/{created['id']}", headers=_headers(api, kind))
        assert r.status_code == 200
    return pid


def test_every_registered_type_is_counted_here_or_with_its_workflow():
    assert {t.name for t in fhir_types()} == set(TYPES) | set(WORKFLOW_COUNTED)


@pytest.mark.parametrize("kind", TYPES)
def test_a_warm_read_is_one_get_and_one_audit_put(api, moto, warm, kind):
    created = _create(api, kind, warm)
    calls, r = _calls(
        moto, lambda: api.http.get(f"{BASE}/{kind}/{created['id']}", headers=_headers(api, kind))
    )
    assert r.status_code == 200
    assert calls == Counter({"dynamodb.GetItem": 1, "dynamodb.PutItem": 1})


@pytest.mark.parametrize("kind", TYPES)
def test_a_warm_create_is_one_transaction(api, moto, warm, kind):
    body = json.dumps(_body(kind, warm))
    calls, r = _calls(
        moto, lambda: api.http.post(f"{BASE}/{kind}", headers=_headers(api, kind), body=body)
    )
    assert r.status_code == 201, r.body
    assert calls == Counter({"dynamodb.TransactWriteItems": 1})


@pytest.mark.parametrize("kind", TYPES)
def test_an_update_with_if_match_is_one_transaction(api, moto, warm, kind):
    created = _create(api, kind, warm)
    body = json.dumps({**created, "language": "en"})
    calls, r = _calls(
        moto,
        lambda: api.http.put(
            f"{BASE}/{kind}/{created['id']}",
            headers=_headers(api, kind, If_Match='W/"1"'),
            body=body,
        ),
    )
    assert r.status_code == 200, r.body
    # An order's change is checked against the stored order (it may not be ended by an
    # update, and it must not conflict with itself): one GetItem first.
    # A finished Encounter reads its previous version (one GetItem) to tell the update
    # that finishes it (encounter.finished) from a correction (functions/encounters/events.py).
    read_first = {"dynamodb.GetItem": 1} if kind in ("MedicationRequest", "Encounter") else {}
    assert calls == Counter({"dynamodb.TransactWriteItems": 1, **read_first})


@pytest.mark.parametrize("kind", TYPES)
def test_an_update_without_if_match_is_one_get_and_one_transaction(api, moto, warm, kind):
    created = _create(api, kind, warm)
    body = json.dumps({**created, "language": "en"})
    calls, r = _calls(
        moto,
        lambda: api.http.put(
            f"{BASE}/{kind}/{created['id']}", headers=_headers(api, kind), body=body
        ),
    )
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["meta"]["versionId"] == "2"
    reads = 2 if kind == "Encounter" else 1  # the finished Encounter's previous version
    assert calls == Counter({"dynamodb.GetItem": reads, "dynamodb.TransactWriteItems": 1})


@pytest.mark.parametrize("kind", CHART_TYPES)
def test_a_search_by_patient_is_one_query_and_the_audit_write(api, moto, warm, kind):
    """The audit record goes to the searched patient's trail: one PutItem (no copy
    is needed when every result is that patient's)."""
    pid = api.create(patient_body("Trip" + uuid.uuid4().hex[:8]))["id"]
    created = _create(api, kind, pid)
    calls, r = _calls(
        moto, lambda: api.http.get(f"{BASE}/{kind}?patient={pid}", headers=_headers(api, kind))
    )
    assert [e["resource"]["id"] for e in json.loads(r.body)["entry"]] == [created["id"]]
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 1})


@pytest.mark.parametrize("kind", CHART_TYPES)
def test_a_search_of_an_empty_chart_is_one_query_and_one_audit_put(api, moto, warm, kind):
    pid = api.create(patient_body("Trip" + uuid.uuid4().hex[:8]))["id"]
    calls, r = _calls(
        moto, lambda: api.http.get(f"{BASE}/{kind}?patient={pid}", headers=_headers(api, kind))
    )
    assert json.loads(r.body)["entry"] == []
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 1})


@pytest.mark.parametrize("kind", TYPES)
def test_a_conditional_create_that_finds_its_match_is_one_query(api, moto, warm, kind):
    pid = api.create(patient_body("Trip" + uuid.uuid4().hex[:8]))["id"]
    body = _body(kind, pid)
    first = api.http.post(f"{BASE}/{kind}", headers=_headers(api, kind), body=json.dumps(body))
    assert first.status_code == 201
    criteria = _criteria(kind, body, pid)
    calls, r = _calls(
        moto,
        lambda: api.http.post(
            f"{BASE}/{kind}",
            headers=_headers(api, kind, If_None_Exist=criteria),
            body=json.dumps(body),
        ),
    )
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["id"] == json.loads(first.body)["id"]
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 1})


@pytest.mark.parametrize("kind", TYPES)
def test_a_conditional_create_without_a_match_is_one_query_and_one_transaction(
    api, moto, warm, kind
):
    pid = api.create(patient_body("Trip" + uuid.uuid4().hex[:8]))["id"]
    body = _body(kind, pid)
    criteria = _criteria(kind, body, pid)
    calls, r = _calls(
        moto,
        lambda: api.http.post(
            f"{BASE}/{kind}",
            headers=_headers(api, kind, If_None_Exist=criteria),
            body=json.dumps(body),
        ),
    )
    assert r.status_code == 201, r.body
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1})
