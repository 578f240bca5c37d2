"""The medication workflow over HTTP: conflicts with the patient's active orders and
allergies (409 unless overridden with a reason), the medication list, changing and
discontinuing an order, what a refused write leaves, other tenants, round trips."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from fhir.resources.R4B.list import List as FhirList

from functions.medications.formulary import RXNORM
from functions.medications.listing import ROW_URL
from tests.api.test_medications_prescribing import (
    BASE,
    BUPROPION,
    ESCITALOPRAM,
    QUETIAPINE,
    SERTRALINE,
    chart_items,
    issues,
    new_patient,
    order,
    override,
    post,
    prescriber,
)

DRUG = "MedicationRequest.medicationCodeableConcept"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"


def _prescribe(
    api, pid: str, rxcui: str, tenant: str = "demo-clinic", **extra: Any
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = post(api, order(pid, rxcui, prescriber(api, tenant), **extra), tenant=tenant)
    assert r.status_code == 201, r.body
    created: dict[str, Any] = json.loads(r.body)
    return created


def _medications(api, pid: str, role: str = "prescriber", tenant: str = "demo-clinic"):  # type: ignore[no-untyped-def]
    return api.http.get(f"{BASE}/Patient/{pid}/$medications", headers=api.headers(role, tenant))


def _rows(api, pid: str) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The list view's rows by order id, each as {sub-extension url: value}."""
    r = _medications(api, pid)
    assert r.status_code == 200, r.body
    found = json.loads(r.body)
    FhirList.model_validate(found)
    rows = {}
    for entry in found.get("entry", []):
        [row] = [e for e in entry["extension"] if e["url"] == ROW_URL]
        values = {x["url"]: next(v for k, v in x.items() if k.startswith("value"))
                  for x in row["extension"]}  # fmt: skip
        rows[entry["item"]["reference"].removeprefix("MedicationRequest/")] = values
    return rows


def _discontinue(api, rid: str, reason: str | None = "Side effects.", tenant: str = "demo-clinic",
                 **params: str):  # type: ignore[no-untyped-def]  # fmt: skip
    parameter = [{"name": "reason", "valueString": reason}] if reason is not None else []
    parameter += [{"name": k, "valueCode": v} for k, v in params.items()]
    return api.http.post(
        f"{BASE}/MedicationRequest/{rid}/$discontinue",
        headers=api.headers("prescriber", tenant),
        body=json.dumps({"resourceType": "Parameters", "parameter": parameter}),
    )


def _allergy(api, pid: str, rxcui: str, status: str = "active") -> str:  # type: ignore[no-untyped-def]
    body = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": status}]},
        "code": {"coding": [{"system": RXNORM, "code": rxcui}]},
    }
    r = api.http.post(f"{BASE}/AllergyIntolerance", headers=api.headers(), body=json.dumps(body))
    assert r.status_code == 201, r.body
    return str(json.loads(r.body)["id"])


def _diagnostics(r) -> str:  # type: ignore[no-untyped-def]
    return " ".join(i["diagnostics"] for i in json.loads(r.body)["issue"])


# --- conflicts ---------------------------------------------------------------------


def test_a_duplicate_ingredient_is_409_naming_the_conflicting_order(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    first = _prescribe(api, pid, SERTRALINE)
    r = post(api, order(pid, SERTRALINE, prescriber(api)))
    assert r.status_code == 409 and issues(r) == [("business-rule", [DRUG])]
    assert f"MedicationRequest/{first['id']}" in _diagnostics(r)
    assert "duplicate-ingredient" in _diagnostics(r)


def test_a_second_drug_of_the_same_class_is_409(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    first = _prescribe(api, pid, SERTRALINE)
    r = post(api, order(pid, ESCITALOPRAM, prescriber(api)))
    assert r.status_code == 409 and "duplicate-class" in _diagnostics(r)
    assert f"MedicationRequest/{first['id']}" in _diagnostics(r)
    _prescribe(api, pid, BUPROPION)  # another class: no conflict


def test_an_allergy_to_the_ingredient_is_409_naming_the_allergy(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    allergy = _allergy(api, pid, QUETIAPINE)
    _allergy(api, pid, SERTRALINE, status="resolved")  # no longer applies
    r = post(api, order(pid, QUETIAPINE, prescriber(api)))
    assert r.status_code == 409 and "allergy" in _diagnostics(r)
    assert f"AllergyIntolerance/{allergy}" in _diagnostics(r)
    _prescribe(api, pid, SERTRALINE)


def test_each_conflict_with_an_override_reason_is_stored_and_listed_with_it(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    _allergy(api, pid, QUETIAPINE)
    first = _prescribe(api, pid, SERTRALINE)
    reasons = {
        SERTRALINE: "Second strength while titrating.",
        ESCITALOPRAM: "Cross-taper over two weeks.",
        QUETIAPINE: "Rash was mild; benefit outweighs the risk.",
    }
    made = {}
    for rxcui, reason in reasons.items():
        assert post(api, order(pid, rxcui, prescriber(api))).status_code == 409
        created = _prescribe(api, pid, rxcui, extension=override(reason))
        assert created["extension"] == override(reason)
        stored = api.http.get(f"{BASE}/MedicationRequest/{created['id']}",
                              headers=api.headers("clinician"))  # fmt: skip
        assert json.loads(stored.body)["extension"] == override(reason)
        made[created["id"]] = reason
    rows = _rows(api, pid)
    assert set(rows) == {first["id"], *made}
    for rid, reason in made.items():
        assert rows[rid]["overrideReason"] == reason
    assert "overrideReason" not in rows[first["id"]]


def test_an_override_reason_that_is_empty_or_too_long_is_400(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    doctor = prescriber(api)
    for reason in ("   ", "x" * 1001):
        r = post(api, order(pid, SERTRALINE, doctor, extension=override(reason)))
        assert r.status_code == 400
        assert issues(r) == [("value", ["MedicationRequest.extension[0].valueString"])]


# --- the list, changes and discontinuing ---------------------------------------------


def test_the_medication_list_is_a_valid_fhir_list_with_every_column(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    assert "entry" not in json.loads(_medications(api, pid).body)
    created = _prescribe(api, pid, SERTRALINE, dispenseRequest={"numberOfRepeatsAllowed": 2})
    r = _medications(api, pid, role="care_coordinator")
    assert r.status_code == 200, r.body
    found = json.loads(r.body)
    FhirList.model_validate(found)
    assert found["code"]["coding"][0]["code"] == "10160-0"
    assert found["subject"] == {"reference": f"Patient/{pid}"}
    [entry] = found["entry"]
    assert entry["item"] == {"reference": f"MedicationRequest/{created['id']}",
                             "display": "sertraline"}  # fmt: skip
    row = _rows(api, pid)[created["id"]]
    assert row == {
        "ingredient": {"system": RXNORM, "code": SERTRALINE, "display": "sertraline"},
        "drugClass": {"system": "https://emr.example/fhir/CodeSystem/drug-class", "code": "sri",
                      "display": "Serotonin Reuptake Inhibitor"},
        "dosage": "one tablet by mouth daily",
        "status": "active",
        "authoredOn": created["authoredOn"],
        "refills": 2,
    }  # fmt: skip


def test_roles_without_medication_search_do_not_get_the_list(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    for role in ("front_desk", "biller", "admin", "compliance"):
        assert _medications(api, pid, role=role).status_code == 403


def test_a_change_of_dose_is_not_a_duplicate_of_itself(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    created = _prescribe(api, pid, SERTRALINE)
    changed = {**created, "dosageInstruction": [{"text": "two tablets by mouth daily"}]}
    r = api.http.put(f"{BASE}/MedicationRequest/{created['id']}", body=json.dumps(changed),
                     headers=api.headers("prescriber", If_Match='W/"1"'))  # fmt: skip
    assert r.status_code == 200, r.body
    assert _rows(api, pid)[created["id"]]["dosage"] == "two tablets by mouth daily"


def test_a_change_into_a_conflict_is_409_and_changes_nothing(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    _prescribe(api, pid, SERTRALINE)
    other = _prescribe(api, pid, BUPROPION)
    drug = {"coding": [{"system": RXNORM, "code": ESCITALOPRAM}]}
    moved = {**other, "medicationCodeableConcept": drug}
    r = api.http.put(f"{BASE}/MedicationRequest/{other['id']}", body=json.dumps(moved),
                     headers=api.headers("prescriber"))  # fmt: skip
    assert r.status_code == 409 and "duplicate-class" in _diagnostics(r)
    assert _rows(api, pid)[other["id"]]["ingredient"]["code"] == BUPROPION


def test_discontinuing_takes_the_order_off_the_list_and_records_why(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    created = _prescribe(api, pid, SERTRALINE)
    r = _discontinue(api, created["id"], "Nausea.", status="cancelled")
    assert r.status_code == 200, r.body
    done = json.loads(r.body)
    assert (done["status"], done["statusReason"]) == ("cancelled", {"text": "Nausea."})
    assert done["meta"]["versionId"] == "2" and r.headers["ETag"] == 'W/"2"'
    assert _rows(api, pid) == {}
    assert _discontinue(api, created["id"]).status_code == 409  # already ended
    _prescribe(api, pid, SERTRALINE)  # no longer a duplicate


def test_a_plain_update_does_not_end_an_order(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    created = _prescribe(api, pid, SERTRALINE)
    r = api.http.put(f"{BASE}/MedicationRequest/{created['id']}",
                     body=json.dumps({**created, "status": "stopped"}),
                     headers=api.headers("prescriber"))  # fmt: skip
    assert r.status_code == 409 and issues(r) == [("business-rule", ["MedicationRequest.status"])]
    assert created["id"] in _rows(api, pid)


def test_discontinue_refuses_a_malformed_request(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    created = _prescribe(api, pid, SERTRALINE)
    assert _discontinue(api, created["id"], reason=None).status_code == 400
    assert _discontinue(api, created["id"], reason="  ").status_code == 400
    assert _discontinue(api, created["id"], reason="x" * 1001).status_code == 400
    assert _discontinue(api, created["id"], status="entered-in-error").status_code == 400
    r = api.http.post(f"{BASE}/MedicationRequest/{created['id']}/$discontinue",
                      headers=api.headers("prescriber"), body=json.dumps(created))  # fmt: skip
    assert r.status_code == 400
    assert _discontinue(api, "not-an-id").status_code == 404
    assert _discontinue(api, f"{pid}.01M8CCGKPYGCP65KSKV0HPYF5H").status_code == 404
    clinician = api.http.post(
        f"{BASE}/MedicationRequest/{created['id']}/$discontinue", headers=api.headers(),
        body=json.dumps({"resourceType": "Parameters",
                         "parameter": [{"name": "reason", "valueString": "x"}]}),
    )  # fmt: skip
    assert clinician.status_code == 403
    assert created["id"] in _rows(api, pid)


# --- what a refused write leaves, other tenants ------------------------------------------


def test_a_refused_prescription_leaves_nothing_in_the_chart(api, stack):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    _prescribe(api, pid, SERTRALINE)
    before = sorted(chart_items(stack, "demo-clinic", pid))
    assert post(api, order(pid, ESCITALOPRAM, prescriber(api))).status_code == 409
    assert post(api, order(pid, "6901", prescriber(api))).status_code == 400  # no DEA
    assert sorted(chart_items(stack, "demo-clinic", pid)) == before


def test_another_tenant_cannot_see_list_or_discontinue_an_order(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    created = _prescribe(api, pid, SERTRALINE)
    foreign = api.headers("prescriber", "other-clinic")
    assert api.http.get(f"{BASE}/MedicationRequest/{created['id']}",
                        headers=foreign).status_code == 404  # fmt: skip
    assert _discontinue(api, created["id"], tenant="other-clinic").status_code == 404
    assert _medications(api, pid, tenant="other-clinic").status_code == 404
    assert _medications(api, "01M8CCGKPYGCP65KSKV0HPYF5H").status_code == 404
    assert _medications(api, "not an id").status_code == 404
    # nor may its prescriber order for this tenant's patient
    other = prescriber(api, "other-clinic")
    assert post(api, order(pid, BUPROPION, other), tenant="other-clinic").status_code == 400
    assert set(_rows(api, pid)) == {created["id"]}
    assert json.loads(_discontinue(api, created["id"]).body)["status"] == "stopped"


def test_prescribing_is_one_transaction_after_two_queries(api, moto):  # type: ignore[no-untyped-def]
    """Warm: the caller's Practitioner (a Query) and the chart with its active
    orders and allergies (a Query); then one transaction."""
    pid = new_patient(api)
    _prescribe(api, pid, BUPROPION)  # warm
    body = json.dumps(order(pid, SERTRALINE, prescriber(api)))
    before = moto.counter.snapshot()
    r = api.http.post(f"{BASE}/MedicationRequest", headers=api.headers("prescriber"), body=body)
    after = moto.counter.snapshot()
    assert r.status_code == 201, r.body
    calls = Counter({k: after[k] - before[k] for k in after if after[k] != before[k]})
    print(f"prescribe round trips: {dict(calls)}")
    assert calls == Counter({"dynamodb.Query": 2, "dynamodb.TransactWriteItems": 1})
    discontinue = _count(moto, lambda: _discontinue(api, json.loads(r.body)["id"]))
    print(f"discontinue round trips: {dict(discontinue)}")
    assert discontinue == Counter({"dynamodb.GetItem": 1, "dynamodb.TransactWriteItems": 1})
    listed = _count(moto, lambda: _medications(api, pid))
    print(f"medication list round trips: {dict(listed)}")
    assert listed == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 1})


def _count(moto, request) -> Counter[str]:  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()
    request()
    after = moto.counter.snapshot()
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]})


def _events(stack, rid: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The outbox events of the medications workflow about one order."""
    import boto3

    pages = (
        boto3.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=stack.table_name,
            FilterExpression="#s = :s AND contains(detail, :rid)",
            ExpressionAttributeNames={"#s": "source"},
            ExpressionAttributeValues={":s": {"S": "emr.medications"}, ":rid": {"S": rid}},
        )
    )
    return [
        {"type": i["detail_type"]["S"], **json.loads(i["detail"]["S"])}
        for page in pages
        for i in page["Items"]
    ]


def test_prescribing_and_discontinuing_each_stage_their_event_with_ids_and_codes(api, stack):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    _prescribe(api, pid, SERTRALINE)
    created = _prescribe(api, pid, ESCITALOPRAM, extension=override("Cross-taper."))
    assert _discontinue(api, created["id"], "Nausea and headache.").status_code == 200
    found = {e["type"]: e for e in _events(stack, created["id"])}
    assert set(found) >= {"medication.prescribed.v1", "medication.discontinued.v1"}
    prescribed, ended = found["medication.prescribed.v1"], found["medication.discontinued.v1"]
    assert (prescribed["rxcui"], prescribed["schedule"], prescribed["overridden"]) == (
        ESCITALOPRAM, None, True)  # fmt: skip
    assert (prescribed["patient_id"], prescribed["resource_version"]) == (pid, 1)
    assert (ended["status"], ended["resource_version"]) == ("stopped", 2)
    text = json.dumps(list(found.values()))
    for phi in ("Cross-taper", "Nausea", "one tablet"):
        assert phi not in text


def test_an_overridden_conflict_is_in_the_audit_record(api):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    _prescribe(api, pid, SERTRALINE)
    created = _prescribe(api, pid, ESCITALOPRAM, extension=override("Cross-taper."))
    r = api.http.get(f"{BASE}/AuditEvent?patient={pid}", headers=api.headers("compliance"))
    events = [e["resource"] for e in json.loads(r.body)["entry"]]
    about = [e for e in events if any(x.get("what", {}).get("reference") ==
                                      f"MedicationRequest/{created['id']}" for x in e["entity"])]
    overridden = [x["valueString"] for e in about for x in e["extension"]
                  if x["url"] == "urn:emr:overridden-rules"]  # fmt: skip
    assert overridden == ["duplicate-class"]
    assert "Cross-taper" not in r.body.decode()  # the reason stays in the order, not the trail
