"""Each signed-in user resolves to their Practitioner, within their own tenant."""

from __future__ import annotations

import json
import uuid

import pytest

from functions.common.audit import AuditDraft
from functions.common.caller import Caller
from functions.common.errors import Conflict
from functions.common.principal import Principal
from functions.engine.directory import USER_SYSTEM, practitioner_for


def _caller(tenant: str, username: str | None) -> Caller:
    draft = AuditDraft("test", uuid.uuid4().hex, "test", None, tenant=tenant, actor="t")
    principal = Principal("sub-" + uuid.uuid4().hex, username, tenant, frozenset({"clinician"}))
    return Caller(principal, draft.request_id, draft)


def _practitioner(api, username: str, tenant: str) -> str:  # type: ignore[no-untyped-def]
    body = {
        "resourceType": "Practitioner",
        "identifier": [{"system": USER_SYSTEM, "value": username}],
        "name": [{"family": "Directory", "given": ["Test"]}],
    }
    r = api.http.post(
        "/fhir/R4/Practitioner", body=json.dumps(body), headers=api.headers("admin", tenant)
    )
    assert r.status_code == 201, r.body
    return str(json.loads(r.body)["id"])


def test_a_user_resolves_to_their_practitioner_in_their_tenant_only(api):  # type: ignore[no-untyped-def]
    username = f"dr-{uuid.uuid4().hex[:8]}@demo-clinic.example"
    pid = _practitioner(api, username, "demo-clinic")
    caller = _caller("demo-clinic", username)
    found = practitioner_for(caller)
    assert found is not None and found.address.resource_id == pid
    assert caller.audit.resource_type is None  # the lookup adds nothing to the request's record
    assert practitioner_for(_caller("other-clinic", username)) is None
    assert practitioner_for(_caller("demo-clinic", "nobody@demo-clinic.example")) is None
    assert practitioner_for(_caller("demo-clinic", None)) is None
    r = api.http.get(
        f"/fhir/R4/Practitioner?identifier={USER_SYSTEM}|{username}", headers=api.headers()
    )
    assert [e["resource"]["id"] for e in json.loads(r.body)["entry"]] == [pid]


def test_two_practitioners_claiming_one_user_is_a_conflict(api):  # type: ignore[no-untyped-def]
    username = f"dup-{uuid.uuid4().hex[:8]}@demo-clinic.example"
    _practitioner(api, username, "demo-clinic")
    _practitioner(api, username, "demo-clinic")
    with pytest.raises(Conflict):
        practitioner_for(_caller("demo-clinic", username))
