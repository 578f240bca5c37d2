"""Every request on PHI leaves exactly one audit record, whatever its outcome;
compliance reads a patient's trail as AuditEvent resources."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter

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
        ("clinician", "get", "/_history/1", "patient.history", "success", 200),
        ("clinician", "get", "/_history/7", "patient.history", "not-found", 404),
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


def _dynamodb_calls(moto, request) -> Counter[str]:  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()
    request()
    after = moto.counter.snapshot()
    changed = {k: after[k] - before[k] for k in after if k.startswith("dynamodb.")}
    return Counter({k: n for k, n in changed.items() if n})


def test_requests_without_a_valid_token_write_nothing_and_are_logged_and_counted(
    api, moto, caplog, capsys
):
    capsys.readouterr()
    caplog.set_level(logging.INFO)

    def attempts() -> None:
        for n in range(30):
            url = f"/fhir/R4/Patient/01ANYONE0000000000000000{n:02d}"
            headers = {"Authorization": "Bearer not.a.jwt"} if n % 2 else {}
            assert api.http.get(url, headers=headers).status_code == 401
        assert api.http.post("/fhir/R4/Patient", body="{}").status_code == 401

    assert _dynamodb_calls(moto, attempts) == Counter()
    logged = [r.__dict__ for r in caplog.records if r.getMessage() == "unauthenticated request"]
    assert len(logged) == 31
    assert {x["reason"] for x in logged} == {"missing-token", "invalid-token"}
    assert all(x["request_id"] and x["source_ip"] for x in logged)
    assert {(x["method"], x["route"]) for x in logged} == {
        ("GET", "/fhir/R4/Patient/{resource_id}"),
        ("POST", "/fhir/R4/Patient"),
    }
    assert all("01ANYONE" not in json.dumps(x, default=str) for x in logged)  # no path values
    out, _ = capsys.readouterr()
    metrics = [json.loads(x) for x in out.splitlines() if "UnauthenticatedRequests" in x]
    assert len(metrics) == 31
    (definition,) = metrics[0]["_aws"]["CloudWatchMetrics"]
    assert definition["Namespace"] == "emr"
    assert definition["Metrics"] == [{"Name": "UnauthenticatedRequests", "Unit": "Count"}]
    assert {m["reason"] for m in metrics} == {"missing-token", "invalid-token"}


def _search_records(tenant: str, request_id: str) -> list[AuditItem]:
    from models.clock import iso, now

    day = iso(now())[:10]
    items = AuditItem.query(keys.audit_tenant_pk(tenant, day), consistent_read=True)
    return [i for i in items if i.request_id == request_id]


def _trail(api, tenant: str, patient_id: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    r = api.http.get(
        f"/fhir/R4/AuditEvent?patient={patient_id}&_count=99",
        headers=api.headers("compliance", tenant),
    )
    assert r.status_code == 200, r.body
    return [e["resource"] for e in json.loads(r.body)["entry"]]


def _request_id(event: dict) -> str:  # type: ignore[type-arg]
    (value,) = [x["valueString"] for x in event["extension"] if x["url"] == "urn:emr:request-id"]
    return str(value)


@pytest.mark.parametrize("tenant", ["demo-clinic", "other-clinic"])
def test_a_search_is_one_record_naming_each_patient_it_returned_and_in_each_trail(api, tenant):
    family = "Paged" + uuid.uuid4().hex[:6]
    ids = [api.create(patient_body(family, given=g), tenant=tenant)["id"] for g in "ABC"]
    url, pages = f"/fhir/R4/Patient?family={family}&_count=2", []
    while url:
        r = api.http.get(url, headers=api.headers("biller", tenant))
        page = json.loads(r.body)
        pages.append([e["resource"]["id"] for e in page["entry"]])
        url = next_path(page)
    assert sorted(pid for page in pages for pid in page) == sorted(ids) and len(pages) == 2
    searches = {}
    for pid in ids:
        trail = _trail(api, tenant, pid)
        (event,) = [e for e in trail if e["subtype"][0]["code"] == "patient.search"]
        assert {"reference": f"Patient/{pid}"} in [x["what"] for x in event["entity"]]
        assert event["agent"][0]["role"] == [{"text": "biller"}]
        searches.setdefault(_request_id(event), set()).add(pid)
    assert sorted(sorted(p) for p in searches.values()) == sorted(sorted(p) for p in pages)
    for request_id, returned in searches.items():
        (record,) = _search_records(tenant, request_id)  # one record per request
        assert sorted(record.patient_ids) == sorted(returned)
        assert int(record.result_count) == len(returned)
        assert record.action == "patient.search"
        assert record.query_params in (["_count", "family"], ["_count", "_cursor", "family"])


def test_a_read_whose_audit_answer_is_lost_is_served_once_and_recorded_once(api, moto, patient):
    moto.inject("dynamodb.PutItem", "after")
    try:
        r = api.http.get(f"/fhir/R4/Patient/{patient['id']}", headers=api.headers())
    finally:
        moto.clear_faults()
    assert r.status_code == 200, r.body
    reads = [i for i in _records("demo-clinic", patient["id"]) if i.action == "patient.read"]
    assert [(i.outcome, int(i.status)) for i in reads] == [("success", 200)]


def test_a_create_whose_answer_is_lost_creates_once_and_records_once(api, moto):
    family = "Lost" + uuid.uuid4().hex[:6]
    moto.inject("dynamodb.TransactWriteItems", "after")
    try:
        r = api.http.post(
            "/fhir/R4/Patient", headers=api.headers(), body=json.dumps(patient_body(family))
        )
    finally:
        moto.clear_faults()
    assert r.status_code == 201, r.body
    found = api.http.get(f"/fhir/R4/Patient?family={family}", headers=api.headers())
    created = json.loads(r.body)["id"]
    assert [e["resource"]["id"] for e in json.loads(found.body)["entry"]] == [created]
    records = [i for i in _records("demo-clinic", created) if i.action == "patient.create"]
    assert [int(i.status) for i in records] == [201]


def test_an_update_whose_answer_is_lost_is_one_version(api, moto, patient):
    moto.inject("dynamodb.TransactWriteItems", "after")
    try:
        r = api.http.put(
            f"/fhir/R4/Patient/{patient['id']}",
            headers=api.headers(If_Match='W/"1"'),
            body=json.dumps({**patient, "gender": "male"}),
        )
    finally:
        moto.clear_faults()
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["meta"]["versionId"] == "2"
    history = api.http.get(f"/fhir/R4/Patient/{patient['id']}/_history", headers=api.headers())
    assert len(json.loads(history.body)["entry"]) == 2
    updates = [i for i in _records("demo-clinic", patient["id"]) if i.action == "patient.update"]
    assert [int(i.status) for i in updates] == [200]


def test_every_write_transaction_carries_a_token_derived_from_its_request_id(
    api, monkeypatch, patient
):
    """The ClientRequestToken of a request's first transaction is a function of its
    request id: a call retried after a lost answer, by the SDK or by anything that
    runs the request again under the same id, is applied once."""
    from functions.common.audit import TOKEN_NAMESPACE
    from models.uow import UnitOfWork

    sent: list[str | None] = []
    commit = UnitOfWork.commit

    def recording(self, token=None):  # type: ignore[no-untyped-def]
        sent.append(token)
        return commit(self, token)

    monkeypatch.setattr(UnitOfWork, "commit", recording)
    url = f"/fhir/R4/Patient/{patient['id']}"
    body = json.dumps({**patient, "gender": "male"})
    assert api.http.put(url, headers=api.headers(If_Match='W/"1"'), body=body).status_code == 200
    assert api.http.delete(url, headers=api.headers("supervisor")).status_code == 204
    created = api.create(patient_body("Token" + uuid.uuid4().hex[:6]))
    records = _records("demo-clinic", patient["id"]) + _records("demo-clinic", created["id"])
    writes = sorted(
        (i for i in records if i.action in ("patient.update", "patient.delete", "patient.create")),
        key=lambda i: i.sk,
    )
    expected = [str(uuid.uuid5(TOKEN_NAMESPACE, f"{i.request_id}|1")) for i in writes[1:]]
    assert sorted(t for t in sent if t) == sorted(expected) and len(sent) == 3


def test_a_search_whose_audit_answer_is_lost_is_served_and_recorded_once(api, moto, patient):
    family = patient["name"][0]["family"]
    moto.inject("dynamodb.TransactWriteItems", "after")
    try:
        r = api.http.get(f"/fhir/R4/Patient?family={family}", headers=api.headers())
    finally:
        moto.clear_faults()
    assert r.status_code == 200, r.body
    events = [e for e in _trail(api, "demo-clinic", patient["id"]) if e["action"] == "E"]
    assert len(events) == 1
    (record,) = _search_records("demo-clinic", _request_id(events[0]))
    assert int(record.status) == 200 and record.patient_ids == [patient["id"]]


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
