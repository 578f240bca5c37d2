"""Billing over HTTP: charges of signed encounters, their corrections, claims and the
work queue. Billers only, each clinic its own (two tenants); generic writes of the
billing types are refused. Capture itself is called as the consumer calls it (the
event path is tests/pipelines/test_billing_pipeline.py).

The helpers here (a visit with its note, the fee schedule) are shared with the
pipeline tests."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.billing.service import Outcome, capture
from functions.encounters.workflow import (
    INTERACTIVE_COMPLEXITY_URL,
    MDM_URL,
    PSYCHOTHERAPY_MINUTES_URL,
    SERVICE_TYPE_SYSTEM,
)
from models import keys
from models.audit import AuditItem
from tests.api.test_notes_workflow import Staff, draft, new_patient, new_staff, operation

BASE = "/fhir/R4"
TENANTS = ("demo-clinic", "other-clinic")
FEES = {"90834": 120, "90785": 22.5, "90837": 160.25, "99214": 140, "90836": 95}  # not 90832
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NOT_BILLERS = ("clinician", "prescriber", "supervisor", "front_desk", "care_coordinator",
               "admin", "compliance")  # fmt: skip


def set_fees(api: Any, tenant: str) -> None:
    """The fee schedule, keeping the clinic's other settings."""
    current = json.loads(api.http.get("/admin/settings", headers=api.headers("admin", tenant)).body)
    body = {**current, "feeSchedule": FEES}
    r = api.http.put("/admin/settings", body=json.dumps(body), headers=api.headers("admin", tenant))
    assert r.status_code == 200, r.body


def post(api: Any, path: str, body: Any, role: str = "biller", tenant: str = "demo-clinic") -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    return api.http.post(f"{BASE}/{path}", body=text, headers=api.headers(role, tenant))


def read(api: Any, path: str, role: str = "biller", tenant: str = "demo-clinic") -> Any:
    return api.http.get(f"{BASE}/{path}", headers=api.headers(role, tenant))


def issues(r: Any) -> list[dict[str, Any]]:
    return json.loads(r.body)["issue"]  # type: ignore[no-any-return]


def condition(api: Any, staff: Staff, pid: str, code: str) -> str:
    body = {"resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": ICD10, "code": code}]}}  # fmt: skip
    r = api.http.post(f"{BASE}/Condition", body=json.dumps(body), headers=staff.headers())
    assert r.status_code == 201, r.body
    return str(json.loads(r.body)["id"])


def encounter(
    api: Any,
    staff: Staff,
    pid: str,
    *,
    status: str = "finished",
    minutes: int = 50,
    service: str = "psychotherapy-individual",
    performer: str | None = None,
    diagnoses: tuple[str, ...] = (),
    extension: list[Any] | None = None,
) -> str:
    end = (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {
        "resourceType": "Encounter", "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "serviceType": {"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": service}]},
        "subject": {"reference": f"Patient/{pid}"},
        "participant": [{"individual": {"reference": performer or staff.ref}}],
        "period": {"start": "2026-03-02T10:00:00Z", **({"end": end} if status == "finished"
                                                        else {})},
        "diagnosis": [{"condition": {"reference": f"Condition/{c}"}, "rank": len(diagnoses) - i}
                      for i, c in enumerate(diagnoses)],
    }  # fmt: skip
    if extension:
        body["extension"] = extension
    if not diagnoses:
        del body["diagnosis"]
    r = api.http.post(f"{BASE}/Encounter", body=json.dumps(body), headers=staff.headers())
    assert r.status_code == 201, r.body
    return str(json.loads(r.body)["id"])


def note(api: Any, staff: Staff, pid: str, eid: str, sign: bool = True) -> str:
    made = draft(api, staff, pid, context={"encounter": [{"reference": f"Encounter/{eid}"}]})
    if sign:
        assert operation(api, staff, made["id"]).status_code == 200
    return str(made["id"])


@dataclass(frozen=True)
class Visit:
    tenant: str
    patient_id: str
    encounter_id: str
    note_id: str
    diagnoses: tuple[str, ...]


def visit(api: Any, staff: Staff, minutes: int = 50, sign: bool = True, **kw: Any) -> Visit:
    """A finished visit of a new patient with two diagnoses and its note (signed)."""
    pid = new_patient(api, staff.tenant)
    dx = (condition(api, staff, pid, "F41.1"), condition(api, staff, pid, "F32.1"))
    eid = encounter(api, staff, pid, minutes=minutes, diagnoses=dx, **kw)
    return Visit(staff.tenant, pid, eid, note(api, staff, pid, eid, sign), dx)


def charges_of(api: Any, v: Visit) -> list[dict[str, Any]]:
    r = read(api, f"ChargeItem?context=Encounter/{v.encounter_id}", tenant=v.tenant)
    assert r.status_code == 200, r.body
    found = [e["resource"] for e in json.loads(r.body).get("entry", [])]
    return sorted(found, key=lambda c: c["code"]["coding"][0]["code"])


@pytest.fixture(scope="module")
def staff(api, stack) -> dict[str, Staff]:  # type: ignore[no-untyped-def]
    for tenant in TENANTS:
        set_fees(api, tenant)
    return {t: new_staff(api, stack, "clinician", tenant=t) for t in TENANTS}


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_signed_finished_visit_is_charged_once_with_codes_price_and_pointers(api, staff, tenant):
    ext = [{"url": INTERACTIVE_COMPLEXITY_URL, "valueBoolean": True},
           {"url": PSYCHOTHERAPY_MINUTES_URL, "valueInteger": 45}]  # fmt: skip
    v = visit(api, staff[tenant], minutes=55, extension=ext)
    assert capture(tenant, v.encounter_id) is Outcome.CAPTURED
    assert capture(tenant, v.encounter_id) is Outcome.ALREADY
    found = charges_of(api, v)
    assert [c["code"]["coding"][0]["code"] for c in found] == ["90785", "90834"]  # 45 minutes
    therapy = found[1]
    assert therapy["status"] == "billable" and therapy["quantity"] == {"value": 1}
    assert therapy["code"]["coding"][0]["system"] == "http://www.ama-assn.org/go/cpt"
    assert therapy["priceOverride"] == {"value": 120, "currency": "USD"}
    assert found[0]["priceOverride"] == {"value": 22.5, "currency": "USD"}
    assert therapy["subject"] == {"reference": f"Patient/{v.patient_id}"}
    assert therapy["context"] == {"reference": f"Encounter/{v.encounter_id}"}
    assert therapy["performer"] == [{"actor": {"reference": staff[tenant].ref}}]
    assert [r["coding"][0]["code"] for r in therapy["reason"]] == ["F32.1", "F41.1"]  # by rank
    assert therapy["supportingInformation"] == [{"reference": f"DocumentReference/{v.note_id}"}]
    by_patient = read(api, f"ChargeItem?patient={v.patient_id}", tenant=tenant)
    assert len(json.loads(by_patient.body)["entry"]) == 2
    other = TENANTS[1 - TENANTS.index(tenant)]
    assert read(api, f"ChargeItem/{therapy['id']}", tenant=other).status_code == 404


def test_an_unsigned_or_unfinished_visit_is_not_charged(api, staff):
    unsigned = visit(api, staff["demo-clinic"], sign=False)
    assert capture("demo-clinic", unsigned.encounter_id) is Outcome.NOT_READY
    assert charges_of(api, unsigned) == []
    assert capture("demo-clinic", "nobody.01ARZ3NDEKTSV4RRFFQ69G5FAV") is Outcome.UNKNOWN


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", NOT_BILLERS)
def test_billing_is_for_billers_only(api, staff, role, tenant):
    v = visit(api, staff[tenant])
    capture(tenant, v.encounter_id)
    charge = charges_of(api, v)[0]
    assert read(api, f"ChargeItem/{charge['id']}", role, tenant).status_code == 403
    assert read(api, f"ChargeItem?patient={v.patient_id}", role, tenant).status_code == 403
    fix = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueCode": "coding-error"},
            {"name": "quantity", "valueInteger": 2},
        ],
    }
    assert post(api, f"ChargeItem/{charge['id']}/$correct", fix, role, tenant).status_code == 403
    assert post(api, f"Encounter/{v.encounter_id}/$claim", {}, role, tenant).status_code == 403
    r = api.http.get("/billing/worklist", headers=api.headers(role, tenant))
    assert r.status_code == 403


def test_generic_writes_of_charges_and_claims_are_refused(api, staff):
    v = visit(api, staff["demo-clinic"])
    capture("demo-clinic", v.encounter_id)
    charge = charges_of(api, v)[0]
    put = api.http.put(f"{BASE}/ChargeItem/{charge['id']}", body=json.dumps(charge),
                       headers=api.headers("biller"))  # fmt: skip
    assert put.status_code == 405 and "$correct" in issues(put)[0]["diagnostics"]
    assert api.http.delete(f"{BASE}/ChargeItem/{charge['id']}",
                           headers=api.headers("biller")).status_code == 403  # fmt: skip
    assert post(api, "ChargeItem", {k: charge[k] for k in charge if k != "id"}).status_code == 403
    claim = json.loads(post(api, f"Encounter/{v.encounter_id}/$claim", {}).body)
    assert post(api, "Claim", {k: claim[k] for k in claim if k != "id"}).status_code == 405
    put = api.http.put(f"{BASE}/Claim/{claim['id']}", body=json.dumps(claim),
                       headers=api.headers("biller"))  # fmt: skip
    assert put.status_code == 405
    assert json.loads(read(api, f"ChargeItem/{charge['id']}").body)["meta"]["versionId"] == "1"


def _fix(*params: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(params)}


REASON = {"name": "reason", "valueCode": "coding-error"}


@pytest.mark.parametrize(
    ("body", "where"),
    [(_fix({"name": "quantity", "valueInteger": 2}), "Parameters.parameter.where(name='reason')"),
     (_fix({"name": "reason", "valueCode": "because"}, {"name": "quantity", "valueInteger": 2}),
      "Parameters.parameter.where(name='reason')"),
     (_fix(REASON), "Parameters.parameter"),
     (_fix(REASON, {"name": "code", "valueCode": "9083"}),
      "Parameters.parameter.where(name='code')"),
     (_fix(REASON, {"name": "quantity", "valueInteger": 0}),
      "Parameters.parameter.where(name='quantity')"),
     (_fix(REASON, {"name": "price", "valueMoney": {"value": 1.234, "currency": "USD"}}),
      "Parameters.parameter.where(name='price')"),
     (_fix(REASON, {"name": "price", "valueMoney": {"value": 10, "currency": "EUR"}}),
      "Parameters.parameter.where(name='price')"),
     (_fix(REASON, REASON), "Parameters.parameter[1]"),
     ({"resourceType": "Patient"}, "Parameters")],
)  # fmt: skip
def test_a_correction_without_a_reason_or_with_bad_values_is_400_naming_it(api, staff, body, where):
    v = visit(api, staff["demo-clinic"])
    capture("demo-clinic", v.encounter_id)
    charge = charges_of(api, v)[0]
    r = post(api, f"ChargeItem/{charge['id']}/$correct", body)
    assert r.status_code == 400, r.body
    assert issues(r)[0]["expression"] == [where]
    assert json.loads(read(api, f"ChargeItem/{charge['id']}").body)["meta"]["versionId"] == "1"


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_correction_keeps_history_and_is_audited_with_its_reason_kind(api, staff, tenant):
    v = visit(api, staff[tenant], minutes=20)  # 90832: no fee in the schedule
    capture(tenant, v.encounter_id)
    (charge,) = charges_of(api, v)
    assert "priceOverride" not in charge
    secret = f"Payer asked {uuid.uuid4().hex}"
    body = _fix({"name": "reason", "valueCode": "payer-requirement"},
                {"name": "code", "valueCode": "90834"}, {"name": "quantity", "valueInteger": 2},
                {"name": "price", "valueMoney": {"value": 99.5, "currency": "USD"}},
                {"name": "note", "valueString": secret})  # fmt: skip
    other = TENANTS[1 - TENANTS.index(tenant)]
    assert post(api, f"ChargeItem/{charge['id']}/$correct", body, tenant=other).status_code == 404
    r = post(api, f"ChargeItem/{charge['id']}/$correct", body, tenant=tenant)
    assert r.status_code == 200, r.body
    fixed = json.loads(r.body)
    assert fixed["meta"]["versionId"] == "2" and fixed["code"]["coding"][0]["code"] == "90834"
    assert fixed["quantity"] == {"value": 2}
    assert fixed["priceOverride"] == {"value": 199, "currency": "USD"}
    assert fixed["note"][0]["text"] == secret
    history = json.loads(read(api, f"ChargeItem/{charge['id']}/_history", tenant=tenant).body)
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    records = list(AuditItem.query(keys.audit_patient_pk(tenant, v.patient_id),
                                   consistent_read=True))  # fmt: skip
    (record,) = [i for i in records if i.action == "chargeitem.update" and i.status == 200]
    assert record.overrides == ["charge-correction:payer-requirement"]
    assert secret not in json.dumps([i.attribute_values for i in records], default=str)


def test_claim_is_refused_naming_what_is_missing(api, stack, staff):
    clinician = staff["demo-clinic"]
    unsigned = visit(api, clinician, sign=False)
    r = post(api, f"Encounter/{unsigned.encounter_id}/$claim", {})
    assert r.status_code == 409
    assert [i["expression"] for i in issues(r)] == [["DocumentReference.docStatus"]]

    pid = new_patient(api)
    running = encounter(api, clinician, pid, status="in-progress")
    note(api, clinician, pid, running)
    r = post(api, f"Encounter/{running}/$claim", {})
    assert r.status_code == 409 and "not finished" in issues(r)[0]["diagnostics"]

    supervisor = new_staff(api, stack, "supervisor")
    trainee = new_staff(api, stack, "clinician", supervisor=supervisor.ref)
    pending = visit(api, trainee)
    assert capture("demo-clinic", pending.encounter_id) is Outcome.NOT_READY
    r = post(api, f"Encounter/{pending.encounter_id}/$claim", {})
    assert r.status_code == 409
    assert [i["expression"] for i in issues(r)] == [["DocumentReference.authenticator"]]
    assert operation(api, supervisor, pending.note_id, "$cosign").status_code == 200
    r = post(api, f"Encounter/{pending.encounter_id}/$claim", {})  # ready, not yet captured
    assert r.status_code == 409 and issues(r)[0]["expression"] == ["ChargeItem"]
    assert capture("demo-clinic", pending.encounter_id) is Outcome.CAPTURED

    short = visit(api, clinician, minutes=12)
    assert capture("demo-clinic", short.encounter_id) is Outcome.CAPTURED  # no charge, a work item
    r = post(api, f"Encounter/{short.encounter_id}/$claim", {})
    assert r.status_code == 409 and "no charge" in issues(r)[0]["diagnostics"]
    assert post(api, "Encounter/nobody.01ARZ3NDEKTSV4RRFFQ69G5FAV/$claim", {}).status_code == 404


@pytest.mark.parametrize("tenant", TENANTS)
def test_one_claim_per_encounter_then_submitted_and_its_charges_billed(api, staff, tenant):
    v = visit(api, staff[tenant], minutes=60)
    capture(tenant, v.encounter_id)
    (charge,) = charges_of(api, v)
    other = TENANTS[1 - TENANTS.index(tenant)]
    assert post(api, f"Encounter/{v.encounter_id}/$claim", {}, tenant=other).status_code == 404
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: post(api, f"Encounter/{v.encounter_id}/$claim", {},
                                            tenant=tenant), range(2)))  # fmt: skip
    assert sorted(r.status_code for r in both) == [200, 201], [r.body for r in both]
    claim = json.loads(both[0].body)
    assert {json.loads(r.body)["id"] for r in both} == {claim["id"]}
    again = post(api, f"Encounter/{v.encounter_id}/$claim", {}, tenant=tenant)
    assert again.status_code == 200 and json.loads(again.body)["id"] == claim["id"]
    assert claim["status"] == "draft"
    assert claim["patient"] == {"reference": f"Patient/{v.patient_id}"}
    pointed = [d["diagnosisCodeableConcept"]["coding"][0]["code"] for d in claim["diagnosis"]]
    assert pointed == ["F32.1", "F41.1"]
    (item,) = claim["item"]
    assert item["productOrService"]["coding"][0]["code"] == "90837"
    assert item["diagnosisSequence"] == [1, 2]
    assert item["net"] == {"value": 160.25, "currency": "USD"}
    assert claim["total"] == {"value": 160.25, "currency": "USD"}
    found = read(api, f"Claim?encounter=Encounter/{v.encounter_id}", tenant=tenant)
    assert len(json.loads(found.body)["entry"]) == 1

    r = post(api, f"Claim/{claim['id']}/$submit", {}, tenant=tenant)
    assert r.status_code == 200, r.body
    sent = json.loads(r.body)
    assert sent["status"] == "active" and sent["meta"]["tag"][0]["code"] == "submitted"
    billed = json.loads(read(api, f"ChargeItem/{charge['id']}", tenant=tenant).body)
    assert billed["status"] == "billed"
    assert post(api, f"Claim/{claim['id']}/$submit", {}, tenant=tenant).status_code == 409
    fix = _fix(REASON, {"name": "quantity", "valueInteger": 2})
    assert post(api, f"ChargeItem/{charge['id']}/$correct", fix, tenant=tenant).status_code == 409


def test_a_correction_rebuilds_the_draft_claim(api, staff):
    v = visit(api, staff["demo-clinic"], minutes=45)
    capture("demo-clinic", v.encounter_id)
    (charge,) = charges_of(api, v)
    claim = json.loads(post(api, f"Encounter/{v.encounter_id}/$claim", {}).body)
    assert claim["total"]["value"] == 120
    fix = _fix({"name": "reason", "valueCode": "coding-error"},
               {"name": "code", "valueCode": "90837"})  # fmt: skip
    assert post(api, f"ChargeItem/{charge['id']}/$correct", fix).status_code == 200
    now = json.loads(read(api, f"Claim/{claim['id']}").body)
    assert now["meta"]["versionId"] == "2" and now["total"]["value"] == 120  # same unit price
    assert now["item"][0]["productOrService"]["coding"][0]["code"] == "90837"


def _worklist(api: Any, tenant: str, encounter_id: str) -> list[dict[str, Any]]:
    mine: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(100):
        headers = api.headers("biller", tenant)
        r = api.http.get(f"/billing/worklist?_count=99{cursor}", headers=headers)
        assert r.status_code == 200, r.body
        page = json.loads(r.body)
        mine += [i for i in page["items"] if i["encounter"] == f"Encounter/{encounter_id}"]
        if "next" not in page:
            return mine
        cursor = f"&_cursor={page['next']['_cursor']}"
    raise AssertionError("worklist did not end")


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_worklist_says_why_a_visit_was_not_charged(api, staff, tenant):
    short = visit(api, staff[tenant], minutes=15)
    capture(tenant, short.encounter_id)
    assert charges_of(api, short) == []
    (item,) = _worklist(api, tenant, short.encounter_id)
    assert item["reason"] == "psychotherapy-under-16-minutes"
    assert "16 minutes" in item["description"]
    assert item["patient"] == f"Patient/{short.patient_id}"
    unpriced = visit(api, staff[tenant], minutes=30)
    capture(tenant, unpriced.encounter_id)
    found = _worklist(api, tenant, unpriced.encounter_id)
    assert [(i["reason"], i.get("code")) for i in found] == [("fee-missing", "90832")]
    other = TENANTS[1 - TENANTS.index(tenant)]
    assert _worklist(api, other, short.encounter_id) == []
    bad = api.http.get("/billing/worklist?_cursor=x", headers=api.headers("biller", tenant))
    assert bad.status_code == 400


def _calls(moto: Any, request: Any) -> tuple[dict[str, int], Any]:
    before = moto.counter.snapshot()
    result = request()
    after = moto.counter.snapshot()
    changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    return {k: n for k, n in changed.items() if k.startswith("dynamodb.")}, result


def test_round_trips_of_capture_correction_and_claim(api, moto, staff):
    """models/README.md, B1-B5: what each step costs in DynamoDB calls."""
    v = visit(api, staff["demo-clinic"], minutes=40)
    calls, outcome = _calls(moto, lambda: capture("demo-clinic", v.encounter_id))
    assert outcome is Outcome.CAPTURED
    assert calls == {"dynamodb.Query": 2, "dynamodb.GetItem": 2, "dynamodb.BatchGetItem": 1,
                     "dynamodb.TransactWriteItems": 1}  # fmt: skip
    calls, outcome = _calls(moto, lambda: capture("demo-clinic", v.encounter_id))
    assert outcome is Outcome.ALREADY and calls == {"dynamodb.Query": 1}
    (charge,) = charges_of(api, v)
    fix = _fix(REASON, {"name": "quantity", "valueInteger": 2})
    calls, r = _calls(moto, lambda: post(api, f"ChargeItem/{charge['id']}/$correct", fix))
    assert r.status_code == 200
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1}
    calls, r = _calls(moto, lambda: post(api, f"Encounter/{v.encounter_id}/$claim", {}))
    assert r.status_code == 201
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.Query": 2, "dynamodb.BatchGetItem": 1,
                     "dynamodb.TransactWriteItems": 1}  # fmt: skip
    calls, r = _calls(moto, lambda: post(api, f"Encounter/{v.encounter_id}/$claim", {}))
    assert r.status_code == 200
    assert calls == {"dynamodb.GetItem": 2, "dynamodb.Query": 1, "dynamodb.PutItem": 1}
    claim_id = json.loads(r.body)["id"]
    calls, r = _calls(moto, lambda: post(api, f"Claim/{claim_id}/$submit", {}))
    assert r.status_code == 200
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.BatchGetItem": 1,
                     "dynamodb.TransactWriteItems": 1}  # fmt: skip


@pytest.mark.parametrize(
    ("extension", "where"),
    [([{"url": MDM_URL, "valueCode": "extreme"}], "Encounter.extension[0].valueCode"),
     ([{"url": MDM_URL, "valueString": "low"}], "Encounter.extension[0].valueCode"),
     ([{"url": PSYCHOTHERAPY_MINUTES_URL, "valueInteger": 0}],
      "Encounter.extension[0].valueInteger"),
     ([{"url": PSYCHOTHERAPY_MINUTES_URL, "valueInteger": 1441}],
      "Encounter.extension[0].valueInteger"),
     ([{"url": INTERACTIVE_COMPLEXITY_URL, "valueInteger": 1}],
      "Encounter.extension[0].valueBoolean"),
     ([{"url": MDM_URL, "valueCode": "low"}, {"url": MDM_URL, "valueCode": "high"}],
      "Encounter.extension[1]")],
)  # fmt: skip
def test_the_billing_extensions_of_an_encounter_are_validated(api, staff, extension, where):
    clinician = staff["demo-clinic"]
    body = {"resourceType": "Encounter", "status": "planned", "extension": extension,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{new_patient(api)}"}}  # fmt: skip
    r = api.http.post(f"{BASE}/Encounter", body=json.dumps(body), headers=clinician.headers())
    assert r.status_code == 400, r.body
    assert [i["expression"] for i in issues(r)] == [[where]]


def test_an_em_visit_with_psychotherapy_by_a_physician(api, staff):
    """90792 and E/M codes need a practitioner who provides medical services: here a
    Practitioner with an MD credential (HL7 v2 table 0360)."""
    degree = {"system": "http://terminology.hl7.org/CodeSystem/v2-0360", "code": "MD"}
    body = {"resourceType": "Practitioner", "name": [{"family": "Physician", "given": ["Test"]}],
            "qualification": [{"code": {"coding": [degree]}}]}  # fmt: skip
    r = api.http.post(f"{BASE}/Practitioner", body=json.dumps(body), headers=api.headers("admin"))
    assert r.status_code == 201, r.body
    physician = f"Practitioner/{json.loads(r.body)['id']}"
    ext = [{"url": MDM_URL, "valueCode": "moderate"},
           {"url": PSYCHOTHERAPY_MINUTES_URL, "valueInteger": 40}]  # fmt: skip
    v = visit(api, staff["demo-clinic"], minutes=60, service="medication-management",
              performer=physician, extension=ext)  # fmt: skip
    assert capture("demo-clinic", v.encounter_id) is Outcome.CAPTURED
    found = charges_of(api, v)
    assert [c["code"]["coding"][0]["code"] for c in found] == ["90836", "99214"]
    assert {c["performer"][0]["actor"]["reference"] for c in found} == {physician}
    intake = visit(api, staff["demo-clinic"], service="intake-evaluation", performer=physician)
    capture("demo-clinic", intake.encounter_id)
    assert [c["code"]["coding"][0]["code"] for c in charges_of(api, intake)] == ["90792"]
