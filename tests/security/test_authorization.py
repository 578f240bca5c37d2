"""Roles and tenants: the role x action table decides, the tenant comes only from
the token, and another tenant's patient is indistinguishable from no patient.
Every test here uses two tenants."""

from __future__ import annotations

import json
import uuid

import pytest

from functions.common.authz import (
    AUDIT_READ,
    POLICY,
    Op,
    Permission,
    Role,
    allowed,
    authorize,
)
from functions.common.errors import Forbidden
from functions.common.principal import Principal
from tests.conftest import next_path, patient_body

ABSENT = "01ABSENT000000000000000000"


@pytest.fixture(scope="module")
def two_patients(api):  # type: ignore[no-untyped-def]
    mine = api.create(patient_body("Mine" + uuid.uuid4().hex[:6]), tenant="demo-clinic")
    theirs = api.create(patient_body("Theirs" + uuid.uuid4().hex[:6]), tenant="other-clinic")
    return mine, theirs


def _shape(r):  # type: ignore[no-untyped-def]
    body = json.loads(r.body)
    for issue in body.get("issue", []):
        issue["diagnostics"] = issue["diagnostics"].replace(ABSENT, "<id>")
    return r.status_code, body


def _swap(r, pid):  # type: ignore[no-untyped-def]
    body = json.loads(r.body)
    for issue in body.get("issue", []):
        issue["diagnostics"] = issue["diagnostics"].replace(pid, "<id>")
    return r.status_code, body


@pytest.mark.parametrize("suffix", ["", "/_history", "/_history/1"])
def test_other_tenants_patient_reads_like_an_absent_one(api, two_patients, suffix):
    _, theirs = two_patients
    other = api.http.get(f"/fhir/R4/Patient/{theirs['id']}{suffix}", headers=api.headers())
    absent = api.http.get(f"/fhir/R4/Patient/{ABSENT}{suffix}", headers=api.headers())
    assert other.status_code == 404
    assert _swap(other, theirs["id"]) == _shape(absent)


def test_other_tenants_patient_cannot_be_updated_or_deleted(api, two_patients):
    _, theirs = two_patients
    url = f"/fhir/R4/Patient/{theirs['id']}"
    put = api.http.put(url, body=json.dumps(theirs), headers=api.headers(If_Match='W/"1"'))
    assert put.status_code == 404
    assert api.http.delete(url, headers=api.headers("supervisor")).status_code == 404
    still = api.http.get(url, headers=api.headers(tenant="other-clinic"))
    assert json.loads(still.body) == theirs


def test_search_never_crosses_tenants(api, two_patients):
    mine, theirs = two_patients
    for tenant, own, foreign in (("demo-clinic", mine, theirs), ("other-clinic", theirs, mine)):

        def ids(family, tenant=tenant):  # type: ignore[no-untyped-def]
            r = api.http.get(
                f"/fhir/R4/Patient?family={family}", headers=api.headers(tenant=tenant)
            )
            return {e["resource"]["id"] for e in json.loads(r.body)["entry"]}

        assert ids(own["name"][0]["family"]) == {own["id"]}
        assert ids(foreign["name"][0]["family"]) == set()


def test_listing_shows_only_own_tenant(api, two_patients):
    mine, theirs = two_patients
    seen, url = set(), "/fhir/R4/Patient?_count=99"
    while url:
        page = json.loads(api.http.get(url, headers=api.headers()).body)
        seen |= {e["resource"]["id"] for e in page["entry"]}
        url = next_path(page)
    assert mine["id"] in seen and theirs["id"] not in seen


# The access policy, typed out by hand (docs/security.md, "Roles"). It is deliberately
# NOT derived from functions/common/authz.py: a wrong grant there must fail here.
# "label" is changing meta.security on an update; "vread" is reading one old version.
EVERYTHING = ("search", "read", "vread", "history", "update", "label", "audit", "create", "delete")
CARE = {"create", "search", "read", "vread", "history", "update"}
ALLOWED: dict[str, set[str]] = {
    "clinician": CARE | {"label"},
    "prescriber": CARE | {"label"},
    "supervisor": CARE | {"label", "delete"},
    "front_desk": set(CARE),
    "care_coordinator": set(CARE),
    "biller": {"search", "read"},
    "admin": {"delete"},
    "compliance": {"audit"},
}
# The same table as role -> permission names of the API, for the comparison below.
PERMISSION = {
    "search": "patient.search",
    "read": "patient.read",
    "vread": "patient.history",
    "history": "patient.history",
    "update": "patient.update",
    "label": "patient.label",
    "audit": "auditevent.search",
    "create": "patient.create",
    "delete": "patient.delete",
}
LABEL = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
EXTRA = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}


def _who(*roles: str) -> Principal:
    return Principal(sub="s", username=None, tenant="demo-clinic", roles=frozenset(roles))


# What the routes above reach: every Patient operation, and the audit trail's search.
ROUTED = [Permission("Patient", "phi", op) for op in Op] + [AUDIT_READ]


def test_the_written_table_covers_every_role_and_matches_the_policy():
    assert set(ALLOWED) == {r.value for r in Role}
    for role, names in ALLOWED.items():
        granted = {p.name for p in ROUTED if allowed(_who(role), p)}
        assert granted == {PERMISSION[name] for name in names}, role


def test_permission_names():
    assert Permission("Patient", "phi", Op.READ).name == "patient.read"
    assert Permission("MedicationRequest", "phi", Op.CREATE).name == "medicationrequest.create"
    assert AUDIT_READ.name == "auditevent.search"
    assert ("AuditEvent", "audit") in POLICY and Op.READ in POLICY["AuditEvent", "audit"]


def test_authorize_refuses_with_the_permission_name():
    authorize(_who("clinician"), Permission("Patient", "phi", Op.READ))
    with pytest.raises(Forbidden) as refused:
        authorize(_who("biller"), Permission("Observation", "phi", Op.READ))
    assert refused.value.status == 403
    assert [i.to_fhir() for i in refused.value.issues] == [
        {
            "severity": "error",
            "code": "forbidden",
            "diagnostics": "Your roles do not allow observation.read.",
        }
    ]


def _labels(api, tenant, pid):  # type: ignore[no-untyped-def]
    r = api.http.get(f"/fhir/R4/Patient/{pid}", headers=api.headers("clinician", tenant))
    return json.loads(r.body)["meta"].get("security", [])


def _attempt(api, role, tenant, name, current):  # type: ignore[no-untyped-def]
    """One request of `name` by `role` on `current` (the target's latest version)."""
    pid, version = current["id"], current["meta"]["versionId"]
    headers = api.headers(role, tenant, If_Match=f'W/"{version}"')
    url = f"/fhir/R4/Patient/{pid}"
    if name == "update":
        return api.http.put(url, headers=headers, body=json.dumps({**current, "gender": "male"}))
    if name == "label":
        meta = {**current["meta"], "security": [LABEL, EXTRA]}
        return api.http.put(url, headers=headers, body=json.dumps({**current, "meta": meta}))
    if name == "create":
        return api.http.post("/fhir/R4/Patient", headers=headers, body=json.dumps(patient_body()))
    paths = {
        "search": "/fhir/R4/Patient?family=zz",
        "read": url,
        "vread": f"{url}/_history/1",
        "history": f"{url}/_history",
        "audit": f"/fhir/R4/AuditEvent?patient={pid}",
        "delete": url,
    }
    method = api.http.delete if name == "delete" else api.http.get
    return method(paths[name], headers=headers)


@pytest.mark.parametrize("tenant", ["demo-clinic", "other-clinic"])
@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_role_table_is_what_the_api_enforces(api, role, tenant):
    labelled = {**patient_body("Role" + uuid.uuid4().hex[:6]), "meta": {"security": [LABEL]}}
    current = api.create(labelled, tenant=tenant)
    for name in EVERYTHING:
        r = _attempt(api, role, tenant, name, current)
        may_label = "label" in ALLOWED[role]
        if name in ALLOWED[role] or (name == "label" and "update" in ALLOWED[role]):
            assert r.status_code < 400, (role, name, r.status_code, r.body)
        else:
            assert r.status_code == 403, (role, name, r.status_code)
            assert json.loads(r.body)["issue"][0]["code"] == "forbidden"
        if name in ("update", "label") and r.status_code == 200:
            current = json.loads(r.body)
            expected = [LABEL, EXTRA] if name == "label" and may_label else [LABEL]
            assert current["meta"].get("security") == expected, (role, name)
            assert _labels(api, tenant, current["id"]) == expected, (role, name)


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_delete_is_limited_to_supervisor_and_admin(api, role):
    target = api.create(patient_body("Del" + uuid.uuid4().hex[:6]))
    r = api.http.delete(f"/fhir/R4/Patient/{target['id']}", headers=api.headers(role))
    assert r.status_code == (204 if role in ("supervisor", "admin") else 403)


def test_tenant_in_path_or_body_is_ignored(api):
    body = {
        **patient_body("Pathy" + uuid.uuid4().hex[:6]),
        "meta": {"tag": [{"system": "urn:emr:tenant", "code": "other-clinic"}]},
    }
    created = api.create(body, tenant="demo-clinic")
    r = api.http.get(
        f"/fhir/R4/Patient/{created['id']}", headers=api.headers(tenant="other-clinic")
    )
    assert r.status_code == 404
    r = api.http.get(f"/fhir/R4/Patient/{created['id']}", headers=api.headers(tenant="demo-clinic"))
    assert r.status_code == 200
