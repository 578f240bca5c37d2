"""A clinic's settings (`GET`/`PUT /admin/settings`): administrators only, each clinic
its own, every field checked, every request audited.

Writes go to other-clinic only, and grant nothing but `prescriber` there
(tests/security/test_psychotherapy_notes.py changes demo-clinic's settings)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.common import tenant_settings
from models import keys
from models.audit import AuditItem
from models.clock import iso, now

URL = "/admin/settings"
TENANTS = ("demo-clinic", "other-clinic")
WRITTEN = "other-clinic"
ROLES = ("clinician", "prescriber", "supervisor", "front_desk", "biller",
         "care_coordinator", "compliance")  # fmt: skip


def _put(api: Any, body: Any, role: str = "admin", tenant: str = WRITTEN) -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    return api.http.put(URL, body=text, headers=api.headers(role, tenant))


def _get(api: Any, role: str = "admin", tenant: str = WRITTEN) -> Any:
    return api.http.get(URL, headers=api.headers(role, tenant))


@pytest.fixture
def restore(api: Any) -> Any:
    yield
    assert _put(api, {"unsignedNoteDays": 3, "psychotherapyRoles": []}).status_code == 200


def test_settings_round_trip_per_clinic(api, restore):
    wanted = {"unsignedNoteDays": 77, "psychotherapyRoles": ["prescriber"],
              "alertEscalationMinutes": 45,
              "feeSchedule": {"90785": 22.5, "90834": 120}}  # fmt: skip
    r = _put(api, wanted)
    assert r.status_code == 200, r.body
    assert json.loads(r.body) == wanted
    assert r.headers["Cache-Control"] == "no-store"
    assert json.loads(_get(api).body) == wanted
    # the other clinic keeps its own (demo-clinic's are only ever written with 3 days)
    demo = json.loads(_get(api, tenant="demo-clinic").body)
    assert demo["unsignedNoteDays"] == 3
    assert "prescriber" not in demo["psychotherapyRoles"]


def test_a_new_write_replaces_the_whole_set(api, restore):
    _put(api, {"unsignedNoteDays": 10, "psychotherapyRoles": ["prescriber"]})
    r = _put(api, {"unsignedNoteDays": 11, "psychotherapyRoles": []})
    whole = {"unsignedNoteDays": 11, "psychotherapyRoles": [], "alertEscalationMinutes": 30,
             "feeSchedule": {}}  # fmt: skip
    assert json.loads(r.body) == whole
    assert json.loads(_get(api).body) == whole


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", ROLES)
def test_only_administrators_read_or_change_settings(api, tenant, role):
    assert _get(api, role, tenant).status_code == 403
    body = {"unsignedNoteDays": 5, "psychotherapyRoles": ["clinician"]}
    r = _put(api, body, role, tenant)
    assert r.status_code == 403
    assert "clinician" not in json.loads(_get(api, "admin", tenant).body)["psychotherapyRoles"]


def test_no_token_no_settings(api):
    assert api.http.get(URL).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"unsignedNoteDays": 0, "psychotherapyRoles": []}, "unsignedNoteDays"),
        ({"unsignedNoteDays": 91, "psychotherapyRoles": []}, "unsignedNoteDays"),
        ({"unsignedNoteDays": 3.5, "psychotherapyRoles": []}, "unsignedNoteDays"),
        ({"unsignedNoteDays": "3", "psychotherapyRoles": []}, "unsignedNoteDays"),
        ({"unsignedNoteDays": True, "psychotherapyRoles": []}, "unsignedNoteDays"),
        ({"psychotherapyRoles": []}, "unsignedNoteDays"),
        ({"unsignedNoteDays": 3}, "psychotherapyRoles"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": ["biller"]}, "psychotherapyRoles"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": ["care_coordinator"]}, "psychotherapyRoles"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": ["admin"]}, "psychotherapyRoles"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": ["Clinician"]}, "psychotherapyRoles"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": "clinician"}, "psychotherapyRoles"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": [["clinician"]]}, "psychotherapyRoles"),
        (
            {"unsignedNoteDays": 3, "psychotherapyRoles": ["prescriber", "prescriber"]},
            "psychotherapyRoles",
        ),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": [], "extra": 1}, "extra"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": [], "feeSchedule": {"9083": 1}},
         "feeSchedule"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": [], "feeSchedule": {"90834": -1}},
         "feeSchedule"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": [], "feeSchedule": {"90834": 1.234}},
         "feeSchedule"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": [], "feeSchedule": {"90834": "120"}},
         "feeSchedule"),
        ({"unsignedNoteDays": 3, "psychotherapyRoles": [], "feeSchedule": [["90834", 1]]},
         "feeSchedule"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(api, body, field):
    before = json.loads(_get(api).body)
    r = _put(api, body)
    assert r.status_code == 400, r.body
    (issue,) = json.loads(r.body)["issue"]
    assert issue["expression"] == [field]
    assert json.loads(_get(api).body) == before  # nothing was written


@pytest.mark.parametrize("text", ["", "[]", "{", '{"unsignedNoteDays": 3, "unsignedNoteDays": 4}'])
def test_malformed_bodies_are_refused(api, text):
    assert _put(api, text).status_code == 400


def test_every_settings_request_is_audited_at_tenant_level(api):
    day = iso(now())[:10]

    def actions() -> list[tuple[str, str, int]]:
        items = AuditItem.query(keys.audit_tenant_pk(WRITTEN, day), consistent_read=True)
        return [(i.request_id, i.action, int(i.status)) for i in items]

    before = {r for r, _, _ in actions()}
    _get(api)
    _get(api, "clinician")
    _put(api, {"unsignedNoteDays": 0, "psychotherapyRoles": []})
    new = sorted((a, s) for r, a, s in actions() if r not in before)
    assert new == sorted(
        [("tenantsettings.read", 200), ("tenantsettings.read", 403), ("tenantsettings.update", 400)]
    )


def test_the_defaults_when_a_clinic_never_set_anything(stack):
    assert tenant_settings.read("never-configured") == tenant_settings.TenantSettings(
        3, frozenset()
    )
    assert {"clinician", "prescriber", "supervisor"} == tenant_settings.GRANTABLE_ROLES


def test_the_cache_serves_for_30_seconds_and_put_refreshes_it(stack, monkeypatch):
    tenant = "cache-check"
    clock = [1000.0]
    monkeypatch.setattr(tenant_settings, "clock", lambda: clock[0])
    tenant_settings.forget()
    tenant_settings.put(tenant, tenant_settings.TenantSettings(4, frozenset({"supervisor"})), "t")
    from models import tenant_settings as store

    store.write(tenant, store.StoredSettings(9, frozenset()), iso(now()), "elsewhere")
    assert tenant_settings.get(tenant).unsigned_note_days == 4  # another process's write
    clock[0] += tenant_settings.CACHE_SECONDS - 0.1
    assert tenant_settings.get(tenant).unsigned_note_days == 4
    clock[0] += 0.2
    assert tenant_settings.get(tenant).unsigned_note_days == 9  # read again after 30 s
    tenant_settings.put(tenant, tenant_settings.TenantSettings(5, frozenset()), "t")
    assert tenant_settings.get(tenant).unsigned_note_days == 5
