"""Prescribing over HTTP, one rule at a time: who may prescribe, under whose name,
refills by DEA schedule and the prescriber's DEA registration (docs/medications.md).

The demo prescriber of each tenant resolves to the Practitioner whose identifier
is `USER_SYSTEM|<username>`; `prescriber` (below) finds or makes it and sets its
DEA registrations, so each test states the registration it relies on."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from devstack.seed import username
from functions.engine.directory import USER_SYSTEM
from functions.medications.formulary import RXNORM
from functions.medications.rules import DEA_SYSTEM, OVERRIDE_URL
from models import keys
from tests.conftest import patient_body

BASE = "/fhir/R4"
TENANTS = ("demo-clinic", "other-clinic")
SERTRALINE, ESCITALOPRAM, QUETIAPINE, BUPROPION = "36437", "321988", "51272", "42347"
METHYLPHENIDATE, CLONAZEPAM = "6901", "2598"
VALID_DEA = "AB1234563"  # (1 + 3 + 5) + 2 * (2 + 4 + 6) = 33: check digit 3


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def dea(value: str = VALID_DEA, end: str | None = None) -> dict[str, Any]:
    ident: dict[str, Any] = {"system": DEA_SYSTEM, "value": value}
    if end is not None:
        ident["period"] = {"end": end}
    return ident


def prescriber(api, tenant: str = "demo-clinic", *registrations: dict[str, Any]) -> str:  # type: ignore[no-untyped-def]
    """The id of the tenant's demo prescriber's Practitioner, with exactly these
    DEA registrations (found by its user identifier and updated, or created)."""
    user = {"system": USER_SYSTEM, "value": username("prescriber", tenant)}
    body: dict[str, Any] = {
        "resourceType": "Practitioner",
        "name": [{"family": "Prescriber", "given": ["Demo"]}],
        "identifier": [user, *registrations],
    }
    admin = api.headers("admin", tenant)
    found = api.http.get(f"{BASE}/Practitioner?identifier={USER_SYSTEM}|{user['value']}",
                         headers=admin)  # fmt: skip
    entries = json.loads(found.body)["entry"]
    assert len(entries) <= 1, "two Practitioners claim the demo prescriber"
    if not entries:
        r = api.http.post(f"{BASE}/Practitioner", headers=admin, body=json.dumps(body))
        assert r.status_code == 201, r.body
        return str(json.loads(r.body)["id"])
    pid = entries[0]["resource"]["id"]
    r = api.http.put(f"{BASE}/Practitioner/{pid}", headers=admin,
                     body=json.dumps({**body, "id": pid}))  # fmt: skip
    assert r.status_code == 200, r.body
    return str(pid)


def order(pid: str, rxcui: str, requester: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "requester": {"reference": f"Practitioner/{requester}"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}]},
        "authoredOn": today(),
        "dosageInstruction": [{"text": "one tablet by mouth daily"}],
    }
    body.update(extra)
    return body


def override(reason: str) -> list[dict[str, Any]]:
    return [{"url": OVERRIDE_URL, "valueString": reason}]


def post(api, body: dict[str, Any], role: str = "prescriber", tenant: str = "demo-clinic"):  # type: ignore[no-untyped-def]
    return api.http.post(f"{BASE}/MedicationRequest", headers=api.headers(role, tenant),
                         body=json.dumps(body))  # fmt: skip


def new_patient(api, tenant: str = "demo-clinic") -> str:  # type: ignore[no-untyped-def]
    return str(api.create(patient_body("Rx" + uuid.uuid4().hex[:8]), tenant=tenant)["id"])


def issues(r) -> list[tuple[str, list[str]]]:  # type: ignore[no-untyped-def]
    return [(i["code"], i.get("expression", [])) for i in json.loads(r.body)["issue"]]


def chart_items(stack, tenant: str, pid: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Sort keys of everything the patient's item collection holds."""
    items = boto3.client("dynamodb").query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": keys.patient_pk(tenant, pid)}},
        ConsistentRead=True,
    )["Items"]
    return [i["sk"]["S"] for i in items]


@pytest.fixture
def pid(api) -> str:  # type: ignore[no-untyped-def]
    return new_patient(api)


# --- who prescribes ---------------------------------------------------------------


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", ["clinician", "supervisor", "care_coordinator", "front_desk"])
def test_only_the_prescriber_role_prescribes(api, tenant, role):  # type: ignore[no-untyped-def]
    patient = new_patient(api, tenant)
    doctor = prescriber(api, tenant)
    r = post(api, order(patient, SERTRALINE, doctor), role=role, tenant=tenant)
    assert r.status_code == 403, r.body
    assert post(api, order(patient, SERTRALINE, doctor), tenant=tenant).status_code == 201


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_prescriber_orders_a_drug_that_is_not_controlled_without_a_dea_registration(api, tenant):  # type: ignore[no-untyped-def]
    patient = new_patient(api, tenant)
    doctor = prescriber(api, tenant)
    r = post(api, order(patient, SERTRALINE, doctor), tenant=tenant)
    assert r.status_code == 201, r.body
    stored = json.loads(r.body)
    assert stored["requester"] == {"reference": f"Practitioner/{doctor}"}
    assert stored["status"] == "active"


def test_the_requester_must_be_the_prescribers_own_practitioner(api, stack, pid):  # type: ignore[no-untyped-def]
    doctor = prescriber(api)
    colleague = api.http.post(
        f"{BASE}/Practitioner", headers=api.headers("admin"),
        body=json.dumps({"resourceType": "Practitioner", "name": [{"family": "Colleague"}]}),
    )  # fmt: skip
    other = json.loads(colleague.body)["id"]
    r = post(api, order(pid, SERTRALINE, other))
    assert r.status_code == 403 and issues(r) == [("forbidden", ["MedicationRequest.requester"])]
    body = order(pid, SERTRALINE, doctor)
    del body["requester"]
    r = post(api, body)
    assert r.status_code == 400 and issues(r) == [("required", ["MedicationRequest.requester"])]
    foreign = prescriber(api, "other-clinic")  # the same user name's Practitioner elsewhere
    r = post(api, order(pid, SERTRALINE, foreign))
    assert r.status_code == 403, r.body
    assert not [sk for sk in chart_items(stack, "demo-clinic", pid) if "MedicationRequest" in sk]


def test_an_order_outside_the_formulary_is_refused(api, pid):  # type: ignore[no-untyped-def]
    r = post(api, order(pid, "197361", prescriber(api)))
    assert r.status_code == 400
    assert issues(r) == [("code-invalid", ["MedicationRequest.medicationCodeableConcept"])]


# --- refills by schedule ------------------------------------------------------------


def test_a_schedule_ii_order_with_refills_is_refused(api, pid):  # type: ignore[no-untyped-def]
    doctor = prescriber(api, "demo-clinic", dea())
    body = order(pid, METHYLPHENIDATE, doctor, dispenseRequest={"numberOfRepeatsAllowed": 1})
    r = post(api, body)
    assert r.status_code == 400
    assert issues(r) == [
        ("business-rule", ["MedicationRequest.dispenseRequest.numberOfRepeatsAllowed"])
    ]
    body["dispenseRequest"] = {"numberOfRepeatsAllowed": 0}
    assert post(api, body).status_code == 201


def test_a_schedule_iv_order_with_six_refills_is_refused(api, pid):  # type: ignore[no-untyped-def]
    doctor = prescriber(api, "demo-clinic", dea())
    body = order(pid, CLONAZEPAM, doctor, dispenseRequest={"numberOfRepeatsAllowed": 6})
    r = post(api, body)
    assert r.status_code == 400
    assert issues(r) == [
        ("business-rule", ["MedicationRequest.dispenseRequest.numberOfRepeatsAllowed"])
    ]
    body["dispenseRequest"] = {"numberOfRepeatsAllowed": 5}
    assert post(api, body).status_code == 201


# --- the DEA registration ---------------------------------------------------------------


def test_a_controlled_drug_needs_the_prescribers_dea_registration(api, pid):  # type: ignore[no-untyped-def]
    doctor = prescriber(api)
    r = post(api, order(pid, CLONAZEPAM, doctor))
    assert r.status_code == 400 and issues(r) == [("business-rule", ["Practitioner.identifier"])]
    prescriber(api, "demo-clinic", dea("AB1234564"))  # wrong check digit
    r = post(api, order(pid, CLONAZEPAM, doctor))
    assert r.status_code == 400 and issues(r) == [("business-rule", ["Practitioner.identifier"])]
    assert b"AB1234564" not in r.body
    prescriber(api, "demo-clinic", dea())
    r = post(api, order(pid, CLONAZEPAM, doctor))
    assert r.status_code == 201, r.body


def test_an_expired_dea_registration_is_refused(api, pid):  # type: ignore[no-untyped-def]
    doctor = prescriber(api, "demo-clinic", dea(end="2020-12-31"))
    r = post(api, order(pid, METHYLPHENIDATE, doctor))
    assert r.status_code == 400 and issues(r) == [("business-rule", ["Practitioner.identifier"])]
    assert "expired" in json.loads(r.body)["issue"][0]["diagnostics"]


def test_backdating_an_order_does_not_revive_an_expired_registration(api, pid):  # type: ignore[no-untyped-def]
    doctor = prescriber(api, "demo-clinic", dea(end="2020-12-31"))
    r = post(api, order(pid, CLONAZEPAM, doctor, authoredOn="2020-06-01"))
    assert r.status_code == 400 and issues(r) == [("business-rule", ["Practitioner.identifier"])]


def test_another_tenants_registration_does_not_count(api):  # type: ignore[no-untyped-def]
    prescriber(api, "other-clinic", dea())
    doctor = prescriber(api, "demo-clinic")
    patient = new_patient(api)
    r = post(api, order(patient, CLONAZEPAM, doctor))
    assert r.status_code == 400 and issues(r) == [("business-rule", ["Practitioner.identifier"])]
    other = new_patient(api, "other-clinic")
    foreign = prescriber(api, "other-clinic", dea())
    assert post(api, order(other, CLONAZEPAM, foreign), tenant="other-clinic").status_code == 201
