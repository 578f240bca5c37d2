"""Who may create, read and search each clinical type, over HTTP, in two tenants.

The expected table is typed out here by hand from the access policy (docs/security.md,
"Roles"), deliberately NOT derived from functions/common/authz.py: a wrong grant
there must fail here. r = read and search, w = create (and update)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from models import keys
from models.clock import iso, now
from tests.conftest import patient_body

BASE = "/fhir/R4"
TENANTS = ("demo-clinic", "other-clinic")
ROLES = (
    "clinician",
    "prescriber",
    "supervisor",
    "front_desk",
    "biller",
    "care_coordinator",
    "admin",
    "compliance",
)

EXPECTED: dict[str, dict[str, set[str]]] = {
    "Encounter": {
        "r": {"clinician", "prescriber", "supervisor", "front_desk", "biller", "care_coordinator"},
        "w": {"clinician", "prescriber", "supervisor", "front_desk"},
    },
    "Condition": {
        "r": {"clinician", "prescriber", "supervisor", "biller", "care_coordinator"},
        "w": {"clinician", "prescriber", "supervisor"},
    },
    "AllergyIntolerance": {
        "r": {"clinician", "prescriber", "supervisor", "care_coordinator"},
        "w": {"clinician", "prescriber", "supervisor"},
    },
    "Observation": {
        "r": {"clinician", "prescriber", "supervisor", "care_coordinator"},
        "w": {"clinician", "prescriber", "supervisor"},
    },
    "MedicationRequest": {
        "r": {"clinician", "prescriber", "supervisor", "care_coordinator"},
        "w": {"prescriber"},
    },
}


def _body(kind: str, pid: str) -> dict[str, Any]:
    ref = {"reference": f"Patient/{pid}"}
    snomed = "http://snomed.info/sct"
    return {
        "Encounter": {
            "resourceType": "Encounter",
            "status": "planned",
            "subject": ref,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        },
        "Condition": {
            "resourceType": "Condition",
            "subject": ref,
            "code": {"coding": [{"system": snomed, "code": "35489007"}]},
        },
        "AllergyIntolerance": {
            "resourceType": "AllergyIntolerance",
            "patient": ref,
            "code": {"coding": [{"system": snomed, "code": "91936005"}]},
        },
        "Observation": {
            "resourceType": "Observation",
            "status": "final",
            "subject": ref,
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        },
        "MedicationRequest": {
            "resourceType": "MedicationRequest",
            # a reported record (history from elsewhere): what is exercised here is the engine,
            # not the prescribing rules (tests/api/test_medications_*.py)
            "reportedBoolean": True,
            "status": "active",
            "intent": "order",
            "subject": ref,
            "medicationCodeableConcept": {
                "coding": [
                    {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}
                ]
            },
        },
    }[kind]


def _writer(kind: str) -> str:
    return "prescriber" if kind == "MedicationRequest" else "clinician"


@pytest.fixture(scope="module")
def charts(api) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Per tenant: a patient with one resource of each type."""
    out: dict[str, dict[str, Any]] = {}
    for tenant in TENANTS:
        pid = api.create(patient_body("Authz" + uuid.uuid4().hex[:8]), tenant=tenant)["id"]
        made = {}
        for kind in EXPECTED:
            r = api.http.post(
                f"{BASE}/{kind}",
                headers=api.headers(_writer(kind), tenant),
                body=json.dumps(_body(kind, pid)),
            )
            assert r.status_code == 201, r.body
            made[kind] = json.loads(r.body)
        out[tenant] = {"patient": pid, "resources": made}
    return out


def test_the_table_names_every_role():
    granted = {role for row in EXPECTED.values() for roles in row.values() for role in roles}
    assert granted <= set(ROLES)
    for row in EXPECTED.values():
        assert row["w"] <= row["r"]
        assert not ({"admin", "compliance"} & (row["r"] | row["w"]))


def _refused(r) -> bool:  # type: ignore[no-untyped-def]
    if r.status_code != 403:
        return False
    issue = json.loads(r.body)["issue"][0]
    return bool(issue["code"] == "forbidden")


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_create_read_and_search_are_allowed_exactly_as_the_table_says(
    api, charts, kind, role, tenant
):
    chart = charts[tenant]
    pid, existing = chart["patient"], chart["resources"][kind]
    headers = api.headers(role, tenant)
    may_read, may_write = role in EXPECTED[kind]["r"], role in EXPECTED[kind]["w"]

    created = api.http.post(f"{BASE}/{kind}", headers=headers, body=json.dumps(_body(kind, pid)))
    if may_write:
        assert created.status_code == 201, (kind, role, created.status_code, created.body)
    else:
        assert _refused(created), (kind, role, created.status_code)

    read = api.http.get(f"{BASE}/{kind}/{existing['id']}", headers=headers)
    if may_read:
        assert read.status_code == 200, (kind, role, read.status_code)
        assert json.loads(read.body) == existing
    else:
        assert _refused(read), (kind, role, read.status_code)
        assert existing["id"].encode() not in read.body

    found = api.http.get(f"{BASE}/{kind}?patient={pid}", headers=headers)
    if may_read:
        assert found.status_code == 200, (kind, role, found.status_code)
        ids = {e["resource"]["id"] for e in json.loads(found.body)["entry"]}
        assert existing["id"] in ids
        if may_write:
            assert json.loads(created.body)["id"] in ids
    else:
        assert _refused(found), (kind, role, found.status_code)
        assert existing["id"].encode() not in found.body

    posted = api.http.post(
        f"{BASE}/{kind}/_search",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        body=f"patient={pid}",
    )
    if may_read:
        assert posted.status_code == 200, (kind, role, posted.status_code)
    else:
        assert _refused(posted), (kind, role, posted.status_code)

    if may_write:  # update is the other half of "w"
        current = json.loads(created.body)
        updated = api.http.put(
            f"{BASE}/{kind}/{current['id']}",
            headers=api.headers(role, tenant, If_Match='W/"1"'),
            body=json.dumps({**current, "language": "en"}),
        )
        assert updated.status_code == 200, (kind, role, updated.body)
    else:
        refused = api.http.put(
            f"{BASE}/{kind}/{existing['id']}",
            headers=api.headers(role, tenant, If_Match='W/"1"'),
            body=json.dumps({**existing, "language": "en"}),
        )
        assert _refused(refused), (kind, role, refused.status_code)


def _trail(api, tenant: str, pid: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    r = api.http.get(
        f"{BASE}/AuditEvent?patient={pid}&_count=99", headers=api.headers("compliance", tenant)
    )
    assert r.status_code == 200, r.body
    return [e["resource"] for e in json.loads(r.body)["entry"]]


@pytest.mark.parametrize(
    ("kind", "role"),
    [
        ("AllergyIntolerance", "biller"),
        ("MedicationRequest", "front_desk"),
        ("Condition", "admin"),
        ("Observation", "compliance"),
        ("Encounter", "admin"),
    ],
)
def test_a_refused_read_is_audited_in_the_patients_trail(api, kind, role):
    tenant = "demo-clinic"
    pid = api.create(patient_body("Trail" + uuid.uuid4().hex[:8]), tenant=tenant)["id"]
    made = api.http.post(
        f"{BASE}/{kind}",
        headers=api.headers(_writer(kind), tenant),
        body=json.dumps(_body(kind, pid)),
    )
    rid = json.loads(made.body)["id"]
    refused = api.http.get(f"{BASE}/{kind}/{rid}", headers=api.headers(role, tenant))
    assert _refused(refused)

    denied = [
        e
        for e in _trail(api, tenant, pid)
        if e["subtype"][0]["code"] == f"{kind.lower()}.read" and e["outcome"] == "8"
    ]
    assert len(denied) == 1, denied
    event = denied[0]
    assert event["outcomeDesc"] == "denied (403)"
    assert [r["text"] for r in event["agent"][0]["role"]] == [role]
    references = {e["what"]["reference"] for e in event["entity"]}
    assert {f"Patient/{pid}", f"{kind}/{rid}"} <= references


@pytest.mark.parametrize("suffix", ["", "/_history", "/_history/1"])
def test_another_tenants_encounter_reads_like_an_absent_one(api, charts, suffix):
    theirs = charts["demo-clinic"]["resources"]["Encounter"]
    for role in ("clinician", "supervisor", "biller"):
        r = api.http.get(
            f"{BASE}/Encounter/{theirs['id']}{suffix}", headers=api.headers(role, "other-clinic")
        )
        assert r.status_code == 404, (role, r.status_code)
        assert json.loads(r.body)["resourceType"] == "OperationOutcome"
        assert b"AMB" not in r.body and b"planned" not in r.body
    own = api.http.get(f"{BASE}/Encounter/{theirs['id']}", headers=api.headers())
    assert json.loads(own.body) == theirs


def test_another_tenant_cannot_update_or_delete_an_encounter(api, charts):
    theirs = charts["demo-clinic"]["resources"]["Encounter"]
    url = f"{BASE}/Encounter/{theirs['id']}"
    put = api.http.put(
        url,
        headers=api.headers("clinician", "other-clinic", If_Match='W/"1"'),
        body=json.dumps({**theirs, "status": "cancelled"}),
    )
    assert put.status_code in (400, 404), put.body
    gone = api.http.delete(url, headers=api.headers("supervisor", "other-clinic"))
    assert gone.status_code == 404
    assert json.loads(api.http.get(url, headers=api.headers()).body) == theirs


def _tenant_records(stack, tenant: str, since: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every audit record of the tenant's day since `since`, whichever trail it is in
    (the day index, gsi1; raw DynamoDB)."""
    ddb = boto3.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": stack.table_name,
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk >= :since",
        "ExpressionAttributeValues": {
            ":pk": {"S": keys.audit_day_gsi(tenant, since[:10])},
            ":since": {"S": since},
        },
    }
    items: list[dict[str, Any]] = []
    while True:
        page = ddb.query(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.mark.parametrize(
    ("kind", "role"),
    [("AllergyIntolerance", "biller"), ("MedicationRequest", "clinician"), ("Encounter", "admin")],
)
def test_a_refused_search_or_create_is_audited_for_the_tenant(api, stack, kind, role):
    """A refused create is refused before its body is read: its record is the
    tenant's. A refused search by patient is in that patient's trail."""
    tenant = "demo-clinic"
    since = iso(now())
    pid = api.create(patient_body("Denied" + uuid.uuid4().hex[:8]), tenant=tenant)["id"]
    headers = api.headers(role, tenant)
    if role not in EXPECTED[kind]["w"]:
        created = api.http.post(
            f"{BASE}/{kind}", headers=headers, body=json.dumps(_body(kind, pid))
        )
        assert _refused(created)
    searched = api.http.get(f"{BASE}/{kind}?patient={pid}", headers=headers)
    expect_search_refused = role not in EXPECTED[kind]["r"]
    assert _refused(searched) == expect_search_refused
    records = [
        (r["action"]["S"], r["outcome"]["S"], int(r["status"]["N"]))
        for r in _tenant_records(stack, tenant, since)
        if [x["S"] for x in r.get("roles", {}).get("L", [])] == [role]
    ]
    noun = kind.lower()
    if role not in EXPECTED[kind]["w"]:
        assert (f"{noun}.create", "denied", 403) in records, records
    if expect_search_refused:
        assert (f"{noun}.search", "denied", 403) in records, records
        trail = boto3.client("dynamodb").query(
            TableName=stack.table_name,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": keys.audit_patient_pk(tenant, pid)}},
            ConsistentRead=True,
        )["Items"]
        assert any(
            r["action"]["S"] == f"{noun}.search" and r["outcome"]["S"] == "denied" for r in trail
        ), trail
