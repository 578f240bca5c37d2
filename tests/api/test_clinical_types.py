"""The clinical resource types served by the generic engine (Encounter, Condition,
AllergyIntolerance, Observation, MedicationRequest) and the tenant-level
Practitioner, as a FHIR client sees them through Chalice's local gateway."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from models import keys
from tests.conftest import patient_body

BASE = "/fhir/R4"
USER_SYSTEM = "https://emr.example/fhir/sid/user"


def _subject(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def _encounter(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "planned",  # a planned encounter may still be deleted
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": _subject(pid),
        "period": {"start": "2024-02-01T09:00:00Z", "end": "2024-02-01T09:50:00Z"},
    }


def _condition(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "subject": _subject(pid),
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]},
    }


def _allergy(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "patient": _subject(pid),
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]},
    }


def _observation(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": _subject(pid),
        "effectiveDateTime": "2024-02-01T09:10:00Z",
        "valueQuantity": {
            "value": 72,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def _medication_request(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        # a reported record (history from elsewhere): what is exercised here is the engine,
        # not the prescribing rules (tests/api/test_medications_*.py)
        "reportedBoolean": True,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]
        },
        "subject": _subject(pid),
        "authoredOn": "2024-02-01",
    }


@dataclass(frozen=True)
class Kind:
    name: str
    element: str  # the element naming the patient
    writer: str  # a role that may create and update it
    make: Callable[[str], dict[str, Any]]
    params: tuple[str, ...]  # the search parameters that name the patient

    def __str__(self) -> str:
        return self.name


KINDS = [
    Kind("Encounter", "subject", "clinician", _encounter, ("patient", "subject")),
    Kind("Condition", "subject", "clinician", _condition, ("patient", "subject")),
    Kind("AllergyIntolerance", "patient", "clinician", _allergy, ("patient",)),
    Kind("Observation", "subject", "clinician", _observation, ("patient", "subject")),
    Kind("MedicationRequest", "subject", "prescriber", _medication_request, ("patient", "subject")),
]
BY_NAME = {k.name: k for k in KINDS}


def _unique(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:10]


def _post(
    api, kind: Kind, body: dict[str, Any], role: str | None = None, tenant: str = "demo-clinic"
):  # type: ignore[no-untyped-def]
    return api.http.post(
        f"{BASE}/{kind.name}",
        headers=api.headers(role or kind.writer, tenant),
        body=json.dumps(body),
    )


def _create(api, kind: Kind, pid: str, tenant: str = "demo-clinic") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = _post(api, kind, kind.make(pid), tenant=tenant)
    assert r.status_code == 201, r.body
    created: dict[str, Any] = json.loads(r.body)
    return created


def _ids(
    api, kind: Kind, query: str, role: str | None = None, tenant: str = "demo-clinic"
) -> list[str]:  # type: ignore[no-untyped-def]
    r = api.http.get(
        f"{BASE}/{kind.name}?{query}", headers=api.headers(role or kind.writer, tenant)
    )
    assert r.status_code == 200, r.body
    bundle = json.loads(r.body)
    assert bundle["type"] == "searchset"
    return [e["resource"]["id"] for e in bundle["entry"]]


def _expression(r) -> list[str]:  # type: ignore[no-untyped-def]
    outcome = json.loads(r.body)
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return [e for issue in outcome["issue"] for e in issue.get("expression", [])]


def _chart_items(stack, tenant: str, pid: str, prefix: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Raw items of the patient's partition whose sort key starts with `prefix`."""
    page = boto3.client("dynamodb").query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={
            ":pk": {"S": keys.patient_pk(tenant, pid)},
            ":p": {"S": prefix},
        },
        ConsistentRead=True,
    )
    items: list[dict[str, Any]] = page["Items"]
    return items


def _type_count(stack, tenant: str, resource_type: str) -> int:  # type: ignore[no-untyped-def]
    """How many current resources of the type the tenant's list (gsi1) holds."""
    ddb = boto3.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": stack.table_name,
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": keys.type_list_pk(tenant, resource_type)}},
        "Select": "COUNT",
    }
    total = 0
    while True:
        page = ddb.query(**kwargs)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture(scope="module")
def patients(api):  # type: ignore[no-untyped-def]
    """Two live patients of demo-clinic, one of other-clinic, one deleted of demo-clinic."""
    mine = api.create(patient_body(_unique("Chart")))
    neighbour = api.create(patient_body(_unique("Chart")))
    theirs = api.create(patient_body(_unique("Other")), tenant="other-clinic")
    gone = api.create(patient_body(_unique("Gone")))
    r = api.http.delete(f"{BASE}/Patient/{gone['id']}", headers=api.headers("supervisor"))
    assert r.status_code == 204
    return {
        "mine": mine["id"],
        "neighbour": neighbour["id"],
        "theirs": theirs["id"],
        "gone": gone["id"],
    }


# --- the whole life of each type ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_create_read_update_vread_history_delete(api, kind):
    pid = api.create(patient_body(_unique("Life")))["id"]
    r = _post(api, kind, kind.make(pid))
    assert r.status_code == 201, r.body
    created = json.loads(r.body)
    rid = created["id"]
    assert created["resourceType"] == kind.name
    assert rid.startswith(f"{pid}.") and len(rid) == len(pid) + 27
    assert created[kind.element] == {"reference": f"Patient/{pid}"}
    assert created["meta"]["versionId"] == "1"
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Location"].endswith(f"/fhir/R4/{kind.name}/{rid}/_history/1")
    url = f"{BASE}/{kind.name}/{rid}"
    headers = api.headers(kind.writer)

    read = api.http.get(url, headers=headers)
    assert read.status_code == 200 and json.loads(read.body) == created
    assert read.headers["ETag"] == 'W/"1"'

    v2 = api.http.put(
        url,
        headers=api.headers(kind.writer, If_Match='W/"1"'),
        body=json.dumps({**created, "language": "en"}),
    )
    assert v2.status_code == 200, v2.body
    assert json.loads(v2.body)["meta"]["versionId"] == "2" and v2.headers["ETag"] == 'W/"2"'
    # an order is deleted only once marked entered-in-error (functions/medications/rules.py)
    last = {"status": "entered-in-error"} if kind.name == "MedicationRequest" else {}
    v3 = api.http.put(url, headers=headers, body=json.dumps({**created, "language": "fr",
                                                              **last}))  # fmt: skip
    assert v3.status_code == 200, v3.body
    assert json.loads(v3.body)["meta"]["versionId"] == "3" and v3.headers["ETag"] == 'W/"3"'
    current = json.loads(api.http.get(url, headers=headers).body)
    assert current["language"] == "fr" and current["meta"]["versionId"] == "3"

    old = api.http.get(f"{url}/_history/1", headers=headers)
    assert old.status_code == 200 and json.loads(old.body) == created
    second = api.http.get(f"{url}/_history/2", headers=headers)
    assert json.loads(second.body)["language"] == "en"

    gone = api.http.delete(url, headers=api.headers("supervisor"))
    assert gone.status_code == 204, gone.body
    assert api.http.get(url, headers=headers).status_code == 410

    assert api.http.get(f"{url}/_history/4", headers=headers).status_code == 410
    assert api.http.get(f"{url}/_history/5", headers=headers).status_code == 404
    again = api.http.put(url, headers=headers, body=json.dumps(current))
    assert again.status_code == 410, again.body
    history = json.loads(api.http.get(f"{url}/_history", headers=headers).body)
    assert history["resourceType"] == "Bundle" and history["type"] == "history"
    entries = history["entry"]
    assert [e["response"]["etag"] for e in entries] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
    for e in entries:
        assert e["fullUrl"].endswith(f"/fhir/R4/{kind.name}/{rid}")
        assert "_history" not in e["fullUrl"]
    assert [e["request"] for e in entries] == [
        {"method": "DELETE", "url": f"{kind.name}/{rid}"},
        {"method": "PUT", "url": f"{kind.name}/{rid}"},
        {"method": "PUT", "url": f"{kind.name}/{rid}"},
        {"method": "POST", "url": kind.name},
    ]
    assert [e["response"]["status"] for e in entries] == ["204", "200", "200", "201"]
    assert "resource" not in entries[0]
    assert entries[3]["resource"] == created


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_search_by_patient_returns_exactly_that_patients_resources(api, patients, kind):
    pid = api.create(patient_body(_unique("Search")))["id"]
    other = api.create(patient_body(_unique("Search")))["id"]
    mine = {_create(api, kind, pid)["id"], _create(api, kind, pid)["id"]}
    theirs = {_create(api, kind, other)["id"]}
    for name in kind.params:
        for value in (pid, f"Patient/{pid}"):
            found = _ids(api, kind, f"{name}={value}")
            assert sorted(found) == sorted(mine), (name, value)
        assert set(_ids(api, kind, f"{name}={other}")) == theirs
    assert _ids(api, kind, f"patient={patients['gone']}") == []
    assert _ids(api, kind, f"patient={pid},{other}&_count=99") != []
    for name in {"patient", "subject"} - set(kind.params):  # R4 defines no such parameter
        r = api.http.get(f"{BASE}/{kind.name}?{name}={pid}", headers=api.headers(kind.writer))
        assert r.status_code == 400 and _expression(r) == [f"{kind.name}.search.{name}"]


# --- what may not be written ----------------------------------------------------------------

BAD_TARGETS = ["other tenant", "deleted", "unknown", "practitioner", "missing", "other server"]


def _reference(patients: dict[str, str], target: str) -> dict[str, str] | None:
    return {
        "other tenant": {"reference": f"Patient/{patients['theirs']}"},
        "deleted": {"reference": f"Patient/{patients['gone']}"},
        "unknown": {"reference": "Patient/01UNKNOWN00000000000000000"},
        "practitioner": {"reference": f"Practitioner/{uuid.uuid4().hex}"},
        "missing": None,
        # our own live patient's id, on another server: not ours to write into
        "other server": {"reference": f"https://other.example/fhir/Patient/{patients['mine']}"},
    }[target]


@pytest.mark.parametrize("target", BAD_TARGETS)
@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_a_patient_reference_that_names_no_live_patient_of_the_tenant_is_400(
    api, stack, patients, kind, target
):
    body = kind.make(patients["mine"])
    ref = _reference(patients, target)
    if ref is None:
        del body[kind.element]
    else:
        body[kind.element] = ref
    before = _type_count(stack, "demo-clinic", kind.name)
    r = _post(api, kind, body)
    assert r.status_code == 400, (target, r.status_code, r.body)
    assert _expression(r) == [f"{kind.name}.{kind.element}"], target
    assert _type_count(stack, "demo-clinic", kind.name) == before
    for tenant, key in (
        ("demo-clinic", "theirs"),
        ("demo-clinic", "gone"),
        ("other-clinic", "theirs"),
    ):
        assert _chart_items(stack, tenant, patients[key], f"R#{kind.name}#") == []
    assert _ids(api, kind, f"patient={patients['theirs']}") == []
    assert _ids(api, kind, f"patient={patients['gone']}") == []
    assert _ids(api, kind, "patient=01UNKNOWN00000000000000000") == []


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_a_body_of_another_type_is_400_at_the_endpoints_resource_type(api, patients, kind):
    wrong = next(k for k in KINDS if k.name != kind.name)
    r = _post(api, kind, wrong.make(patients["mine"]), role="prescriber")
    assert r.status_code == 400, r.body
    assert _expression(r) == [f"{kind.name}.resourceType"]


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_an_update_may_not_move_the_resource_to_another_patient(api, stack, patients, kind):
    created = _create(api, kind, patients["mine"])
    url = f"{BASE}/{kind.name}/{created['id']}"
    moved = {**created, kind.element: {"reference": f"Patient/{patients['neighbour']}"}}
    for extra in ({"If_Match": 'W/"1"'}, {}):
        r = api.http.put(url, headers=api.headers(kind.writer, **extra), body=json.dumps(moved))
        assert r.status_code == 400, r.body
        assert _expression(r) == [f"{kind.name}.{kind.element}"]
    assert json.loads(api.http.get(url, headers=api.headers(kind.writer)).body) == created
    assert _chart_items(stack, "demo-clinic", patients["neighbour"], f"R#{kind.name}#") == []


@pytest.mark.parametrize(
    "garbage",
    ["nope", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "x.01ARZ3NDEKTSV4RRFFQ69G5FAV", "a" * 70, "Patient.1"],
)
def test_reading_an_encounter_id_that_cannot_exist_is_404(api, garbage):
    r = api.http.get(f"{BASE}/Encounter/{garbage}", headers=api.headers())
    assert r.status_code == 404, (garbage, r.body)
    assert json.loads(r.body)["issue"][0]["code"] == "not-found"


def test_reading_an_unknown_encounter_of_a_known_patient_is_404(api, patients):
    r = api.http.get(
        f"{BASE}/Encounter/{patients['mine']}.01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=api.headers()
    )
    assert r.status_code == 404, r.body


# --- Practitioner ---------------------------------------------------------------------------


def _practitioner(system: str, value: str) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": system, "value": value}],
        "active": True,
        "name": [{"family": _unique("Doc"), "given": ["Demo"]}],
    }


def test_practitioner_is_tenant_level_created_by_admin_and_found_by_identifier(api):
    system, value = "urn:test:" + uuid.uuid4().hex[:8], _unique("npi")
    r = api.http.post(
        f"{BASE}/Practitioner",
        headers=api.headers("admin"),
        body=json.dumps(_practitioner(system, value)),
    )
    assert r.status_code == 201, r.body
    created = json.loads(r.body)
    assert "." not in created["id"]
    assert r.headers["Location"].endswith(f"/fhir/R4/Practitioner/{created['id']}/_history/1")
    found = api.http.get(
        f"{BASE}/Practitioner?identifier={system}|{value}", headers=api.headers("clinician")
    )
    assert found.status_code == 200
    assert [e["resource"] for e in json.loads(found.body)["entry"]] == [created]
    other = api.http.get(
        f"{BASE}/Practitioner?identifier={system}|{value}",
        headers=api.headers("clinician", "other-clinic"),
    )
    assert json.loads(other.body)["entry"] == []
    read = api.http.get(f"{BASE}/Practitioner/{created['id']}", headers=api.headers("biller"))
    assert read.status_code == 200 and json.loads(read.body) == created


def test_a_clinician_cannot_create_a_practitioner(api):
    system, value = "urn:test:" + uuid.uuid4().hex[:8], _unique("npi")
    r = api.http.post(
        f"{BASE}/Practitioner",
        headers=api.headers("clinician"),
        body=json.dumps(_practitioner(system, value)),
    )
    assert r.status_code == 403
    assert json.loads(r.body)["issue"][0]["code"] == "forbidden"
    found = api.http.get(
        f"{BASE}/Practitioner?identifier={system}|{value}", headers=api.headers("clinician")
    )
    assert json.loads(found.body)["entry"] == []


def test_a_users_practitioner_is_found_by_the_user_identifier(api):
    """The demo user's Practitioner (as seeding makes it), created here rather than
    relying on seeding having run; seeding may have made another with the same
    identifier, so every match must carry it and ours must be among them."""
    username = "clinician@demo-clinic.example"
    r = api.http.post(
        f"{BASE}/Practitioner",
        headers=api.headers("admin"),
        body=json.dumps(_practitioner(USER_SYSTEM, username)),
    )
    assert r.status_code == 201, r.body
    pid = json.loads(r.body)["id"]
    found = api.http.get(
        f"{BASE}/Practitioner?identifier={USER_SYSTEM}|{username}", headers=api.headers("clinician")
    )
    assert found.status_code == 200
    resources = [e["resource"] for e in json.loads(found.body)["entry"]]
    assert pid in {p["id"] for p in resources}
    for p in resources:
        assert {"system": USER_SYSTEM, "value": username} in p["identifier"]


def test_an_absolute_reference_to_this_server_is_accepted(api, patients):  # type: ignore[no-untyped-def]
    from functions.common.settings import api_settings

    kind = KINDS[0]
    body = kind.make(patients["mine"])
    body[kind.element] = {
        "reference": f"{api_settings().public_base_url}/Patient/{patients['mine']}"
    }
    r = _post(api, kind, body)
    assert r.status_code == 201, r.body


def test_a_search_by_patient_is_in_that_patients_trail_matched_empty_or_refused(api, stack):  # type: ignore[no-untyped-def]
    pid = api.create(patient_body(_unique("Trail")))["id"]
    kind = KINDS[0]
    _create(api, kind, pid)
    for role, query in (("clinician", kind.name), ("clinician", "Observation"),
                        ("admin", "Observation")):  # fmt: skip
        api.http.get(f"{BASE}/{query}?patient={pid}", headers=api.headers(role))
    items = boto3.client("dynamodb").query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": keys.audit_patient_pk("demo-clinic", pid)}},
        ConsistentRead=True,
    )["Items"]
    searches = sorted(
        (i["action"]["S"], i["outcome"]["S"], i.get("result_count", {}).get("N"))
        for i in items
        if i["action"]["S"].endswith(".search")
    )
    assert searches == sorted(
        [
            (f"{kind.name.lower()}.search", "success", "1"),  # one match: no second copy
            ("observation.search", "success", "0"),  # no match: still in the trail
            ("observation.search", "denied", None),  # refused: still in the trail
        ]
    ), searches


def _new_practitioner(api, tenant: str = "demo-clinic") -> str:  # type: ignore[no-untyped-def]
    body = {"resourceType": "Practitioner", "name": [{"family": "Checked", "given": ["Ref"]}]}
    r = api.http.post(
        f"{BASE}/Practitioner", body=json.dumps(body), headers=api.headers("admin", tenant)
    )
    assert r.status_code == 201, r.body
    return str(json.loads(r.body)["id"])


@pytest.mark.parametrize("target", ["unknown", "other tenant", "deleted", "malformed"])
def test_an_encounter_naming_no_live_practitioner_of_the_tenant_is_400(api, patients, target):  # type: ignore[no-untyped-def]
    if target == "unknown":
        ref = "Practitioner/01UNKNOWN00000000000000000"
    elif target == "other tenant":
        ref = f"Practitioner/{_new_practitioner(api, 'other-clinic')}"
    elif target == "deleted":
        gone = _new_practitioner(api)
        assert (
            api.http.delete(f"{BASE}/Practitioner/{gone}", headers=api.headers("admin")).status_code
            == 204
        )
        ref = f"Practitioner/{gone}"
    else:
        ref = "Practitioner/not#an-id"
    body = {**_encounter(patients["mine"]), "participant": [{"individual": {"reference": ref}}]}
    before = len(_ids(api, KINDS[0], f"patient={patients['mine']}&_count=99"))
    r = api.http.post(f"{BASE}/Encounter", body=json.dumps(body), headers=api.headers())
    assert r.status_code == 400, r.body
    assert _expression(r) == ["Encounter.participant.individual"]
    assert len(_ids(api, KINDS[0], f"patient={patients['mine']}&_count=99")) == before


def test_an_encounter_and_a_prescription_naming_live_practitioners_are_stored(api, patients):  # type: ignore[no-untyped-def]
    doctor = _new_practitioner(api)
    body = {
        **_encounter(patients["mine"]),
        "participant": [{"individual": {"reference": f"Practitioner/{doctor}"}}],
    }
    assert (
        api.http.post(f"{BASE}/Encounter", body=json.dumps(body), headers=api.headers()).status_code
        == 201
    )
    order = {
        **_medication_request(patients["mine"]),
        "requester": {"reference": "Practitioner/01UNKNOWN00000000000000000"},
    }
    r = api.http.post(
        f"{BASE}/MedicationRequest", body=json.dumps(order), headers=api.headers("prescriber")
    )
    assert r.status_code == 400 and _expression(r) == ["MedicationRequest.requester"], r.body
    order["requester"] = {"reference": f"Practitioner/{doctor}"}
    r = api.http.post(
        f"{BASE}/MedicationRequest", body=json.dumps(order), headers=api.headers("prescriber")
    )
    assert r.status_code == 201, r.body
