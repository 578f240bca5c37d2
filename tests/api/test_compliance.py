"""The compliance API over the audit ledger: query by patient, user and time, export,
$verify; compliance only, each tenant its own ledger; bad parameters named."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import boto3
import pytest

from devstack.seed import ROLES, TENANTS
from functions.audit.export import CSV_COLUMNS
from functions.audit.ledger import LedgerEvent, append
from models import keys
from tests.conftest import outcome_issues

ROUTES = ("/audit/AuditEvent?patient=p-1", "/audit/$export?start=2001&end=2001", "/audit/$verify")


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def event(
    tenant: str, at: str, patient: str | None = None, actor: str = "user-1", **extra: Any
) -> LedgerEvent:
    event_id = uid("ev")
    detail = {
        "event_id": event_id, "tenant": tenant, "occurred_at": at, "actor": actor,
        "request_id": event_id, "version": 1, "audit_id": event_id, "roles": ["clinician"],
        "action": "patient.read", "outcome": "success", "status": 200, "at": at,
        "patient_id": patient, **extra,
    }  # fmt: skip
    return LedgerEvent(event_id, tenant, "emr.audit", "phi.accessed.v1", at, detail)


def get(api, path: str, role: str = "compliance", tenant: str = "demo-clinic"):  # type: ignore[no-untyped-def]
    return api.http.get(path, headers=api.headers(role, tenant))


def events_of(response) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.body
    return [e["resource"] for e in json.loads(response.body)["entry"]]


def next_of(response) -> str | None:  # type: ignore[no-untyped-def]
    links = {link["relation"]: link["url"] for link in json.loads(response.body)["link"]}
    return "/audit/" + links["next"].split("/audit/", 1)[1] if "next" in links else None


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", [r for r in ROLES if r != "compliance"])
def test_every_other_role_is_refused_in_both_tenants(api, role, tenant):
    for path in ROUTES:
        response = get(api, path, role, tenant)
        assert response.status_code == 403, (path, response.body)
        assert outcome_issues(response)[0]["code"] == "forbidden"


@pytest.mark.parametrize("tenant", TENANTS)
def test_compliance_may_use_every_ledger_route(api, tenant):
    for path in ROUTES:
        assert get(api, path, tenant=tenant).status_code == 200, path


def test_each_tenant_sees_only_its_own_ledger(api):
    patient = uid("p")
    append("demo-clinic", [event("demo-clinic", "2001-02-03T04:05:06.000Z", patient)])
    mine = events_of(get(api, f"/audit/AuditEvent?patient={patient}"))
    theirs = events_of(get(api, f"/audit/AuditEvent?patient={patient}", tenant="other-clinic"))
    assert len(mine) == 1 and theirs == []
    verified = json.loads(get(api, "/audit/$verify", tenant="other-clinic").body)
    assert verified["tenant"] == "other-clinic"


def test_a_patients_entries_come_newest_first_in_pages(api):
    patient = uid("p")
    times = [f"2002-03-0{d}T10:00:00.000Z" for d in range(1, 6)]
    sent = [event("demo-clinic", at, patient) for at in times]
    append("demo-clinic", sent)
    seen: list[dict[str, Any]] = []
    path: str | None = f"/audit/AuditEvent?patient=Patient/{patient}&_count=2"
    while path:
        response = get(api, path)
        page = events_of(response)
        assert len(page) <= 2
        seen += page
        path = next_of(response)
    assert [e["id"] for e in seen] == [e.event_id for e in reversed(sent)]
    first = seen[0]
    assert first["resourceType"] == "AuditEvent" and first["period"]["start"] == times[-1]
    assert {"what": {"reference": f"Patient/{patient}"}} | first["entity"][0] == first["entity"][0]
    urls = {x["url"] for x in first["extension"]}
    assert {"urn:emr:ledger-seq", "urn:emr:ledger-hash", "urn:emr:request-id"} <= urls


def test_a_patients_last_100_entries_are_one_query(api, moto):
    patient = uid("p")
    append("demo-clinic", [event("demo-clinic", f"2003-01-01T00:{m // 60:02d}:{m % 60:02d}.000Z",
                                 patient) for m in range(120)])  # fmt: skip
    before = moto.counter.snapshot()
    response = get(api, f"/audit/AuditEvent?patient={patient}&_count=100")
    calls = moto.counter.snapshot() - before
    assert len(events_of(response)) == 100
    assert calls["dynamodb.Query"] == 1, calls


def test_query_by_user_and_time_range(api):
    actor, other = uid("u"), uid("u")
    sent = [
        event("demo-clinic", "2004-05-01T09:00:00.000Z", uid("p"), actor),
        event("demo-clinic", "2004-05-02T09:00:00.000Z", uid("p"), actor),
        event("demo-clinic", "2004-05-03T09:00:00.000Z", uid("p"), actor),
        event("demo-clinic", "2004-05-02T12:00:00.000Z", uid("p"), other),
    ]
    append("demo-clinic", sent)
    by_user = events_of(get(api, f"/audit/AuditEvent?agent={actor}"))
    assert [e["id"] for e in by_user] == [sent[2].event_id, sent[1].event_id, sent[0].event_id]
    ranged = events_of(
        get(api, f"/audit/AuditEvent?agent={actor}&date=ge2004-05-02&date=lt2004-05-03")
    )
    assert [e["id"] for e in ranged] == [sent[1].event_id]
    by_time = events_of(get(api, "/audit/AuditEvent?date=2004-05-02"))
    assert [e["id"] for e in by_time] == [sent[3].event_id, sent[1].event_id]


def test_all_access_to_one_patient_by_one_user(api):
    patient, actor = uid("p"), uid("u")
    sent = [
        event("demo-clinic", "2005-01-01T08:00:00.000Z", patient, actor),
        event("demo-clinic", "2005-01-01T09:00:00.000Z", patient, uid("u")),
        event("demo-clinic", "2005-01-01T10:00:00.000Z", None, actor, patient_ids=[patient, "x"]),
    ]
    append("demo-clinic", sent)
    found = events_of(get(api, f"/audit/AuditEvent?patient={patient}&agent={actor}"))
    assert [e["id"] for e in found] == [sent[2].event_id, sent[0].event_id]


def _export(api, query: str):  # type: ignore[no-untyped-def]
    response = get(api, f"/audit/$export?{query}")
    assert response.status_code == 200, response.body
    return response


def test_export_a_range_as_a_bundle_and_as_csv(api):
    patient = uid("p")
    sent = [event("demo-clinic", f"2006-07-0{d}T12:00:00.000Z", patient) for d in (1, 2, 3, 4)]
    append("demo-clinic", sent)
    bundle = json.loads(_export(api, "start=2006-07-02&end=2006-07-03").body)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert [e["resource"]["id"] for e in bundle["entry"]] == [sent[1].event_id, sent[2].event_id]
    response = _export(api, "start=2006-07-02&end=2006-07-03&_format=csv")
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.body.decode() if isinstance(response.body, bytes)
                                       else response.body)))  # fmt: skip
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[CSV_COLUMNS.index("event_id")] for r in rows[1:]] == [
        sent[1].event_id, sent[2].event_id,
    ]  # fmt: skip
    assert {r[CSV_COLUMNS.index("patient_ids")] for r in rows[1:]} == {patient}


BAD = [
    ("/audit/AuditEvent", "AuditEvent.search"),
    ("/audit/AuditEvent?name=x", "AuditEvent.search.name"),
    ("/audit/AuditEvent?patient=a%23b", "AuditEvent.search.patient"),
    ("/audit/AuditEvent?agent=", "AuditEvent.search.agent"),
    ("/audit/AuditEvent?date=ap2020", "AuditEvent.search.date"),
    ("/audit/AuditEvent?date=yesterday", "AuditEvent.search.date"),
    ("/audit/AuditEvent?patient=p1&_count=0", "AuditEvent.search._count"),
    ("/audit/AuditEvent?patient=p1&_count=ten", "AuditEvent.search._count"),
    ("/audit/AuditEvent?patient=p1&_cursor=bm90LWEtY3Vyc29y", "AuditEvent.search._cursor"),
    ("/audit/AuditEvent?patient=p1&patient=p2", "AuditEvent.search.patient"),
    ("/audit/$export?end=2020", "audit.export.start"),
    ("/audit/$export?start=2020", "audit.export.end"),
    ("/audit/$export?start=2020-13&end=2021", "audit.export.start"),
    ("/audit/$export?start=2021&end=2020", "audit.export.end"),
    ("/audit/$export?start=2020&end=2020&_format=xml", "audit.export._format"),
    ("/audit/$export?start=2020&end=2020&patient=p1", "audit.export.patient"),
    ("/audit/$verify?tenant=other-clinic", "audit.verify.tenant"),
]


@pytest.mark.parametrize(("path", "expression"), BAD)
def test_bad_parameters_are_400_naming_the_parameter(api, path, expression):
    response = get(api, path)
    assert response.status_code == 400, response.body
    assert outcome_issues(response)[0]["expression"] == [expression]


def test_verify_through_the_api_reports_a_broken_link(api, stack):
    tenant = "other-clinic"
    append(tenant, [event(tenant, "2007-01-01T00:00:00.000Z", uid("p")) for _ in range(2)])
    head = json.loads(get(api, "/audit/$verify", tenant=tenant).body)
    assert head["verified"] is True, head
    seq = head["head"]["seq"]
    table = boto3.resource("dynamodb").Table(stack.table_name)
    key = {"pk": keys.ledger_pk(tenant), "sk": keys.ledger_entry_sk(seq)}
    original = table.get_item(Key=key, ConsistentRead=True)["Item"]
    table.put_item(Item={**original, "entry": str(original["entry"]).replace("2007", "2008")})
    try:
        report = json.loads(get(api, "/audit/$verify", tenant=tenant).body)
    finally:
        table.put_item(Item=original)
    assert report["verified"] is False
    assert report["first_broken"] == {"seq": seq, "reason": "hash-mismatch"}
