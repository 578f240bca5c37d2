"""Note templates per clinic: built-ins plus the clinic's own; read by the roles that
write notes (and admin), written by supervisor and admin; one clinic's templates
are invisible to another."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from functions.notes.templates import BUILT_IN_KEYS

TENANTS = ("demo-clinic", "other-clinic")
READERS = {"clinician", "prescriber", "supervisor", "admin"}
WRITERS = {"supervisor", "admin"}
ROLES = ("clinician", "prescriber", "supervisor", "front_desk", "biller", "care_coordinator",
         "admin", "compliance")  # fmt: skip


def _template(key: str) -> dict[str, Any]:
    return {"key": key, "title": "Group therapy note",
            "sections": [{"heading": "Attendance", "prompt": "Who attended."},
                         {"heading": "Plan"}]}  # fmt: skip


def _put(api, key: str, body: Any, role: str = "supervisor", tenant: str = "demo-clinic"):  # type: ignore[no-untyped-def]
    return api.http.put(f"/notes/templates/{key}", body=json.dumps(body),
                        headers=api.headers(role, tenant))  # fmt: skip


def _keys(api, role: str = "clinician", tenant: str = "demo-clinic") -> list[str]:  # type: ignore[no-untyped-def]
    r = api.http.get("/notes/templates", headers=api.headers(role, tenant))
    assert r.status_code == 200, r.body
    return [t["key"] for t in json.loads(r.body)["templates"]]


@pytest.fixture
def key() -> str:
    return "group-" + uuid.uuid4().hex[:8]


def test_the_list_holds_the_built_ins_and_the_clinics_own_only(api, key):
    assert set(_keys(api)) >= BUILT_IN_KEYS
    r = _put(api, key, _template(key))
    assert r.status_code == 200, r.body
    saved = json.loads(r.body)
    assert saved["builtIn"] is False and saved["type"]["code"] == key
    assert saved["draft"].startswith("Group therapy note\n")
    assert key in _keys(api)
    assert key not in _keys(api, tenant="other-clinic")
    assert api.http.get(f"/notes/templates/{key}",
                        headers=api.headers("clinician", "other-clinic")).status_code == 404


def test_a_template_is_read_with_its_draft_text(api):
    r = api.http.get("/notes/templates/progress-soap", headers=api.headers("prescriber"))
    assert r.status_code == 200, r.body
    body = json.loads(r.body)
    assert body["builtIn"] is True and "Subjective" in body["draft"]
    assert body["type"]["code"] == "11506-3"


def test_a_saved_template_is_replaced_and_deleted(api, key):
    assert _put(api, key, _template(key)).status_code == 200
    changed = {**_template(key), "title": "Group session"}
    assert _put(api, key, changed, role="admin").status_code == 200
    r = api.http.get(f"/notes/templates/{key}", headers=api.headers())
    assert json.loads(r.body)["title"] == "Group session"
    r = api.http.delete(f"/notes/templates/{key}", headers=api.headers("supervisor"))
    assert r.status_code == 204
    assert api.http.get(f"/notes/templates/{key}", headers=api.headers()).status_code == 404
    r = api.http.delete(f"/notes/templates/{key}", headers=api.headers("supervisor"))
    assert r.status_code == 404


def test_built_in_templates_cannot_be_replaced_or_deleted(api):
    for key in ("progress-soap", "crisis"):
        assert _put(api, key, _template(key)).status_code == 409
        r = api.http.delete(f"/notes/templates/{key}", headers=api.headers("admin"))
        assert r.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"key": "x", "title": "T", "sections": [{"heading": "H"}]},
        {"title": "", "sections": []},
        {"title": "T", "sections": [{"heading": "H", "colour": "red"}]},
        {"title": "T\u0000", "sections": [{"heading": "H"}]},
        ["not", "an", "object"],
    ],
)
def test_a_bad_template_is_400_and_nothing_is_saved(api, key, body):
    if isinstance(body, dict) and body.get("key") == "x":
        body = {**body, "key": "another-key"}
    r = _put(api, key, body)
    assert r.status_code == 400, r.body
    assert api.http.get(f"/notes/templates/{key}", headers=api.headers()).status_code == 404


def test_a_bad_key_in_the_path_is_refused(api):
    assert _put(api, "Bad_Key", _template("Bad_Key")).status_code == 400
    r = api.http.get("/notes/templates/Bad_Key", headers=api.headers())
    assert r.status_code == 404


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", ROLES)
def test_who_reads_and_writes_templates(api, role, tenant):
    key = "authz-" + uuid.uuid4().hex[:8]
    r = api.http.get("/notes/templates", headers=api.headers(role, tenant))
    assert r.status_code == (200 if role in READERS else 403), (role, r.body)
    r = _put(api, key, _template(key), role=role, tenant=tenant)
    assert r.status_code == (200 if role in WRITERS else 403), (role, r.body)
    if role not in WRITERS:
        assert _put(api, key, _template(key), tenant=tenant).status_code == 200
    r = api.http.delete(f"/notes/templates/{key}", headers=api.headers(role, tenant))
    assert r.status_code == (204 if role in WRITERS else 403), (role, r.body)
