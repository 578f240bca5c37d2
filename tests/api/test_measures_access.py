"""Who reads measurement-based care, in two tenants: responses, scores and flags are
care's and coordination's (front desk and billing get 403); another organisation
never finds them; the Questionnaires themselves are no PHI and every role reads them."""

from __future__ import annotations

import json

import pytest

from tests.api.test_measures_submit import (
    BASE,
    OTHER,
    PHQ9_TOTAL,
    TENANT,
    new_patient,
    response,
    search,
    submitted,
)

TENANTS = (TENANT, OTHER)
ROLES = ("clinician", "prescriber", "supervisor", "front_desk", "biller", "care_coordinator",
         "admin", "compliance")  # fmt: skip
READERS = {"clinician", "prescriber", "supervisor", "care_coordinator"}


@pytest.fixture(scope="module")
def charts(api) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """In each tenant: a patient with a flagged PHQ-9, its score and its flag."""
    out = {}
    for tenant in TENANTS:
        pid = new_patient(api, tenant)
        created = submitted(api, response(pid, "phq-9", [1] * 9), tenant=tenant)
        (obs,) = search(api, f"Observation?patient={pid}&code={PHQ9_TOTAL}", tenant=tenant)
        (flag,) = search(api, f"Flag?patient={pid}", tenant=tenant)
        out[tenant] = {"pid": pid, "QuestionnaireResponse": created["id"],
                       "Observation": obs["id"], "Flag": flag["id"]}  # fmt: skip
    return out


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", ["QuestionnaireResponse", "Observation", "Flag"])
def test_reads_and_searches_follow_the_policy(api, charts, tenant, role, kind):
    mine = charts[tenant]
    headers = api.headers(role, tenant)
    read = api.http.get(f"{BASE}/{kind}/{mine[kind]}", headers=headers)
    found = api.http.get(f"{BASE}/{kind}?patient={mine['pid']}", headers=headers)
    if role in READERS:
        assert (read.status_code, found.status_code) == (200, 200), read.body
        assert mine[kind] in {e["resource"]["id"] for e in json.loads(found.body)["entry"]}
    else:
        assert (read.status_code, found.status_code) == (403, 403), (role, read.body)


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("kind", ["QuestionnaireResponse", "Observation", "Flag"])
def test_another_tenant_never_finds_them(api, charts, tenant, kind):
    theirs = charts[OTHER if tenant == TENANT else TENANT]
    headers = api.headers("clinician", tenant)
    assert api.http.get(f"{BASE}/{kind}/{theirs[kind]}", headers=headers).status_code == 404
    r = api.http.get(f"{BASE}/{kind}?patient={theirs['pid']}", headers=headers)
    assert r.status_code == 200 and json.loads(r.body)["entry"] == []


@pytest.mark.parametrize("tenant", TENANTS)
def test_front_desk_and_billing_cannot_submit_responses(api, charts, tenant):
    for role in ("front_desk", "biller", "admin", "compliance"):
        r = api.http.post(
            f"{BASE}/QuestionnaireResponse",
            headers=api.headers(role, tenant),
            body=json.dumps(response(charts[tenant]["pid"], "phq-9", [0] * 9)),
        )
        assert r.status_code == 403, role  # fmt: skip


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_response_cannot_be_submitted_into_another_tenants_chart(api, charts, tenant):
    theirs = charts[OTHER if tenant == TENANT else TENANT]["pid"]
    r = api.http.post(f"{BASE}/QuestionnaireResponse", headers=api.headers("clinician", tenant),
                      body=json.dumps(response(theirs, "phq-9", [0] * 9)))  # fmt: skip
    assert r.status_code == 400
