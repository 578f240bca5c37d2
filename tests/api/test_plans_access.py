"""Who may write, read and sign plans, in two tenants: care roles write and sign,
care coordinators read, the front desk and billers see no plan; another
organisation's plan is not found (404), whatever the role."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.test_plans_workflow import (
    BASE,
    created,
    new_goal,
    new_patient,
    post,
    put,
    read,
    sign,
    signer,
    treatment_plan,
)

TENANTS = ("demo-clinic", "other-clinic")


@pytest.fixture(params=TENANTS)
def tenant(request) -> str:  # type: ignore[no-untyped-def]
    return str(request.param)


@pytest.fixture
def plan(api, tenant) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    signer(api, "clinician", tenant)
    pid = new_patient(api, tenant)
    body = treatment_plan(pid, new_goal(api, pid, tenant))
    return created(post(api, "CarePlan", body, tenant=tenant))


def _other(tenant: str) -> str:
    return TENANTS[1 - TENANTS.index(tenant)]


def _search(api, plan, role: str, tenant: str):  # type: ignore[no-untyped-def]
    pid = plan["subject"]["reference"][8:]
    return api.http.get(f"{BASE}/CarePlan?patient={pid}", headers=api.headers(role, tenant))


@pytest.mark.parametrize("role", ["clinician", "supervisor", "care_coordinator"])
def test_another_organisations_plan_is_not_found(api, plan, tenant, role):
    other = _other(tenant)
    signer(api, "clinician", other)
    assert read(api, "CarePlan", plan["id"], role, other).status_code == 404
    assert sign(api, plan["id"], "clinician", other).status_code == 404
    goal_id = plan["goal"][0]["reference"][5:]
    assert read(api, "Goal", goal_id, role, other).status_code == 404
    assert json.loads(_search(api, plan, role, other).body)["entry"] == []
    assert json.loads(read(api, "CarePlan", plan["id"], "clinician", tenant).body)[
        "status"] == "draft"  # fmt: skip


@pytest.mark.parametrize("role", ["front_desk", "biller"])
def test_the_front_desk_and_billers_see_no_plan(api, plan, tenant, role):
    pid = plan["subject"]["reference"][8:]
    assert read(api, "CarePlan", plan["id"], role, tenant).status_code == 403
    assert read(api, "Goal", plan["goal"][0]["reference"][5:], role, tenant).status_code == 403
    assert _search(api, plan, role, tenant).status_code == 403
    body = treatment_plan(pid, plan["goal"][0]["reference"][5:])
    assert post(api, "CarePlan", body, role, tenant).status_code == 403
    assert sign(api, plan["id"], role, tenant).status_code == 403


def test_a_care_coordinator_reads_plans_but_does_not_write_or_sign_them(api, plan, tenant):
    role = "care_coordinator"
    signer(api, role, tenant)
    assert read(api, "CarePlan", plan["id"], role, tenant).status_code == 200
    assert _search(api, plan, role, tenant).status_code == 200
    r = api.http.put(f"{BASE}/CarePlan/{plan['id']}", body=json.dumps(plan),
                     headers=api.headers(role, tenant))  # fmt: skip
    assert r.status_code == 403
    assert sign(api, plan["id"], role, tenant).status_code == 403
    now = json.loads(read(api, "CarePlan", plan["id"], "clinician", tenant).body)
    assert now["status"] == "draft" and now["meta"]["versionId"] == "1"


def test_care_roles_sign_in_their_own_organisation(api, plan, tenant):
    signer(api, "supervisor", tenant)
    r = sign(api, plan["id"], "supervisor", tenant)
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["status"] == "active"
    signed = json.loads(r.body)
    assert put(api, signed, "supervisor", tenant=tenant, title="Changed").status_code == 409
