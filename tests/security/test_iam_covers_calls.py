"""The API role's DynamoDB grants cover every call the API makes. moto does not
enforce IAM, so a missing action (BatchGetItem was one) would only fail in AWS:
here every DynamoDB operation the moto server sees during a representative
workload is checked against the template's ApiHandlerRole."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import patient_body

ROOT = Path(__file__).resolve().parents[2]
# IAM authorizes a transaction by the actions of its parts.
TRANSACTION_PARTS = {
    "TransactWriteItems": {"PutItem", "DeleteItem", "ConditionCheckItem", "UpdateItem"},
    "TransactGetItems": {"GetItem"},
}


def _granted() -> set[str]:
    template = json.loads((ROOT / "infra" / "template.json").read_text())
    role = template["Resources"]["ApiHandlerRole"]["Properties"]["Policies"][0]
    actions: set[str] = set()
    for statement in role["PolicyDocument"]["Statement"]:
        listed = statement["Action"]
        actions |= set(listed if isinstance(listed, list) else [listed])
    return {a.removeprefix("dynamodb:") for a in actions if a.startswith("dynamodb:")}


def _workload(api: Any) -> None:
    h = api.headers()
    family = "Iam" + uuid.uuid4().hex[:8]
    body = {**patient_body(family), "identifier": [{"system": "urn:iam", "value": family}]}
    created = json.loads(api.http.post("/fhir/R4/Patient", body=json.dumps(body), headers=h).body)
    pid = created["id"]
    criteria = f"identifier=urn:iam|{family}"
    api.http.post(f"/fhir/R4/Patient?{criteria}", body=json.dumps(body), headers=h)
    api.http.get(f"/fhir/R4/Patient/{pid}", headers=h)
    api.http.put(f"/fhir/R4/Patient/{pid}", body=json.dumps(created), headers=h)
    api.http.get(f"/fhir/R4/Patient/{pid}/_history", headers=h)
    api.http.get(f"/fhir/R4/Patient/{pid}/_history/1", headers=h)
    api.http.get(f"/fhir/R4/Patient?name={family}", headers=h)
    api.http.get(f"/fhir/R4/Patient?_id={pid}", headers=h)
    api.http.get(f"/fhir/R4/Patient?name={family}&_total=accurate&_sort=birthdate", headers=h)
    encounter = {
        "resourceType": "Encounter",
        "status": "planned",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
    }
    made = api.http.post("/fhir/R4/Encounter", body=json.dumps(encounter), headers=h)
    eid = json.loads(made.body)["id"]
    api.http.get(f"/fhir/R4/Encounter?patient={pid}", headers=h)
    api.http.delete(f"/fhir/R4/Encounter/{eid}", headers=api.headers("supervisor"))
    api.http.delete(f"/fhir/R4/Patient/{pid}", headers=api.headers("supervisor"))
    api.http.get(f"/fhir/R4/AuditEvent?patient={pid}", headers=api.headers("compliance"))


def test_every_dynamodb_call_of_the_api_is_granted_to_its_role(api, moto):  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()
    _workload(api)
    after = moto.counter.snapshot()
    used = {k.removeprefix("dynamodb.") for k in after if after[k] != before.get(k, 0)}
    used = {u for u in used if "." not in u}  # dynamodb operations only
    needed: set[str] = set()
    for op in used:
        needed |= TRANSACTION_PARTS.get(op, {op})
    assert {"BatchGetItem", "Query", "GetItem", "PutItem"} <= needed, used
    assert needed <= _granted(), sorted(needed - _granted())
