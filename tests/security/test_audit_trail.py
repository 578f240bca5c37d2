"""Every request on PHI leaves exactly one audit record, whatever its outcome;
compliance reads a patient's trail as AuditEvent resources."""

from __future__ import annotations

import json
import uuid

import pytest

from models import keys
from models.items import AuditItem
from tests.conftest import next_path, patient_body


def _records(tenant: str, patient_id: str) -> list[AuditItem]:
    return list(AuditItem.query(keys.audit_patient_pk(tenant, patient_id), consistent_read=True))


@pytest.fixture
def patient(api):  # type: ignore[no-untyped-def]
    return api.create(patient_body("Audited" + uuid.uuid4().hex[:6]))


def test_create_writes_one_record_in_its_transaction(api, patient):
    (record,) = _records("demo-clinic", patient["id"])
    assert (record.action, record.outcome, int(record.status)) == ("patient.create", "success", 201)
    assert record.resource_type == "Patient" and record.resource_id == patient["id"]
    assert "clinician" in record.roles and record.request_id and record.source_ip
    assert record.actor and record.tenant == "demo-clinic" and int(record.version) == 1


@pytest.mark.parametrize(
    ("role", "method", "suffix", "action", "outcome", "status"),
    [
        ("clinician", "get", "", "patient.read", "success", 200),
        ("clinician", "get", "/_history", "patient.history", "success", 200),
        ("clinician", "get", "/_history/1", "patient.read", "success", 200),
        ("clinician", "get", "/_history/7", "patient.read", "not-found", 404),
        ("compliance", "get", "", "patient.read", "denied", 403),
        ("biller", "put", "", "patient.update", "denied", 403),
        ("clinician", "put", "", "patient.update", "success", 200),
        ("front_desk", "delete", "", "patient.delete", "denied", 403),
        ("supervisor", "delete", "", "patient.delete", "success", 204),
    ],
)
def test_each_request_writes_exactly_one_record(
    api, patient, role, method, suffix, action, outcome, status
):
    before = len(_records("demo-clinic", patient["id"]))
    kwargs = {"headers": api.headers(role, If_Match='W/"1"')}
    if method == "put":
        kwargs["body"] = json.dumps(patient)
    r = getattr(api.http, method)(f"/fhir/R4/Patient/{patient['id']}{suffix}", **kwargs)
    assert r.status_code == status
    after = sorted(_records("demo-clinic", patient["id"]), key=lambda i: i.sk)
    assert len(after) == before + 1
    newest = after[-1]
    assert (newest.action, newest.outcome, int(newest.status)) == (action, outcome, status)


def test_stale_update_is_audited_once_as_conflict(api, patient):
    url = f"/fhir/R4/Patient/{patient['id']}"
    api.http.put(url, body=json.dumps(patient), headers=api.headers(If_Match='W/"1"'))
    before = len(_records("demo-clinic", patient["id"]))
    r = api.http.put(url, body=json.dumps(patient), headers=api.headers(If_Match='W/"1"'))
    assert r.status_code == 412
    records = sorted(_records("demo-clinic", patient["id"]), key=lambda i: i.sk)
    assert len(records) == before + 1 and records[-1].outcome == "conflict"


def test_search_is_audited_without_the_searched_values(api):
    family = "Searched" + uuid.uuid4().hex[:6]
    api.http.get(f"/fhir/R4/Patient?family={family}&_count=5", headers=api.headers())
    from models.clock import iso, now

    day = iso(now())[:10]
    items = list(AuditItem.query(keys.audit_tenant_pk("demo-clinic", day), consistent_read=True))
    mine = [
        i for i in items if i.action == "patient.search" and i.query_params == ["_count", "family"]
    ]
    assert mine
    assert all(
        family.lower() not in json.dumps(i.attribute_values, default=str).lower() for i in items
    )


def test_unauthenticated_attempt_is_audited_outside_any_tenant(api):
    from models.clock import iso, now

    r = api.http.get("/fhir/R4/Patient/01ANYONE000000000000000000")
    assert r.status_code == 401
    day = iso(now())[:10]
    items = list(AuditItem.query(keys.audit_unauthenticated_pk(day), consistent_read=True))
    assert any(i.outcome == "unauthenticated" and i.tenant == "-" for i in items)


def test_compliance_lists_a_patients_audit_events_newest_first(api, patient):
    api.http.get(f"/fhir/R4/Patient/{patient['id']}", headers=api.headers())
    url = f"/fhir/R4/AuditEvent?patient={patient['id']}&_count=1"
    seen = []
    while url:
        r = api.http.get(url, headers=api.headers("compliance"))
        assert r.status_code == 200, r.body
        page = json.loads(r.body)
        seen += [e["resource"] for e in page["entry"]]
        url = next_path(page)
    subtypes = [e["subtype"][0]["code"] for e in seen]
    assert subtypes[-2:] == ["patient.read", "patient.create"]
    assert all(e["resourceType"] == "AuditEvent" for e in seen)
    assert seen == sorted(seen, key=lambda e: e["recorded"], reverse=True)
    from fhir.resources.R4B.auditevent import AuditEvent

    for event in seen:
        AuditEvent.model_validate(event)


def test_audit_events_of_another_tenants_patient_are_not_visible(api):
    theirs = api.create(patient_body("Foreign" + uuid.uuid4().hex[:6]), tenant="other-clinic")
    r = api.http.get(
        f"/fhir/R4/AuditEvent?patient={theirs['id']}",
        headers=api.headers("compliance", "demo-clinic"),
    )
    assert r.status_code == 200 and json.loads(r.body)["entry"] == []
    r = api.http.get(
        f"/fhir/R4/AuditEvent?patient={theirs['id']}",
        headers=api.headers("compliance", "other-clinic"),
    )
    assert len(json.loads(r.body)["entry"]) >= 1


@pytest.mark.parametrize("query", ["", "patient=", "patient=x&bogus=1"])
def test_audit_search_needs_a_patient(api, query):
    r = api.http.get(f"/fhir/R4/AuditEvent?{query}", headers=api.headers("compliance"))
    assert r.status_code == 400
