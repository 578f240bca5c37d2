"""What each role sees of a clinical note, in two tenants: billers see signed notes
without their text (tagged SUBSETTED) and no drafts at all; care coordinators see
whole notes; the front desk sees no note (403)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from tests.conftest import patient_body
from tests.security.test_psychotherapy_notes import make_practitioner, make_user

BASE = "/fhir/R4"
TENANTS = ("demo-clinic", "other-clinic")
TEXT = "Progress note: discussed sleep and work stress."
SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}


def _note(pid: str, author: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "preliminary",
        "subject": {"reference": f"Patient/{pid}"},
        "author": [{"reference": f"Practitioner/{author}"}],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(TEXT.encode()).decode(),
                }
            }
        ],
    }


@pytest.fixture(scope="module")
def charts(api: Any, stack: Any) -> dict[str, dict[str, str]]:
    """Per tenant: a patient with a signed note and a draft, by a fresh clinician."""
    out = {}
    for tenant in TENANTS:
        name, token = make_user(stack, "clinician", tenant)
        author = make_practitioner(api, name, tenant)
        pid = api.create(patient_body("Views" + uuid.uuid4().hex[:8]), tenant=tenant)["id"]
        made = {}
        for kind in ("signed", "draft"):
            r = api.http.post(
                f"{BASE}/DocumentReference",
                body=json.dumps(_note(pid, author)),
                headers=_bearer(token),
            )
            assert r.status_code == 201, r.body
            made[kind] = json.loads(r.body)["id"]
        r = api.http.post(
            f"{BASE}/DocumentReference/{made['signed']}/$sign", body="", headers=_bearer(token)
        )
        assert r.status_code == 200, r.body
        assert json.loads(r.body)["docStatus"] == "final"
        out[tenant] = {"patient": pid, **made}
    return out


def _read(api: Any, role: str, tenant: str, note_id: str) -> Any:
    return api.http.get(f"{BASE}/DocumentReference/{note_id}", headers=api.headers(role, tenant))


def _search(api: Any, role: str, tenant: str, pid: str) -> Any:
    return api.http.get(
        f"{BASE}/DocumentReference?patient={pid}", headers=api.headers(role, tenant)
    )


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_biller_sees_a_signed_note_without_its_text(api, charts, tenant):
    chart = charts[tenant]
    r = _read(api, "biller", tenant, chart["signed"])
    assert r.status_code == 200, r.body
    note = json.loads(r.body)
    assert TEXT not in r.body.decode() and base64.b64encode(TEXT.encode()) not in r.body
    assert all("data" not in c["attachment"] for c in note["content"])
    assert note["content"][0]["attachment"]["contentType"].startswith("text/plain")
    tags = [(t["system"], t["code"]) for t in note["meta"]["tag"]]
    assert tags.count(SUBSETTED) == 1
    assert note["docStatus"] == "final" and note["subject"]["reference"].endswith(chart["patient"])


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_biller_never_sees_a_draft(api, charts, tenant):
    chart = charts[tenant]
    assert _read(api, "biller", tenant, chart["draft"]).status_code == 404
    r = _search(api, "biller", tenant, chart["patient"])
    assert r.status_code == 200, r.body
    found = [e["resource"] for e in json.loads(r.body).get("entry", [])]
    assert [n["id"] for n in found] == [chart["signed"]]
    assert TEXT not in r.body.decode()
    assert all("data" not in c["attachment"] for n in found for c in n["content"])


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", ["care_coordinator", "clinician", "supervisor"])
def test_care_and_coordination_see_whole_notes_drafts_included(api, charts, tenant, role):
    chart = charts[tenant]
    for kind in ("signed", "draft"):
        r = _read(api, role, tenant, chart[kind])
        assert r.status_code == 200, r.body
        note = json.loads(r.body)
        assert base64.b64decode(note["content"][0]["attachment"]["data"]).decode() == TEXT
        assert SUBSETTED not in [(t["system"], t["code"]) for t in note["meta"].get("tag", [])]
    found = json.loads(_search(api, role, tenant, chart["patient"]).body)["entry"]
    assert {e["resource"]["id"] for e in found} == {chart["signed"], chart["draft"]}


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_front_desk_sees_no_note(api, charts, tenant):
    chart = charts[tenant]
    for kind in ("signed", "draft"):
        assert _read(api, "front_desk", tenant, chart[kind]).status_code == 403
    assert _search(api, "front_desk", tenant, chart["patient"]).status_code == 403


@pytest.mark.parametrize("tenant", TENANTS)
def test_another_tenants_biller_sees_nothing(api, charts, tenant):
    other = TENANTS[1] if tenant == TENANTS[0] else TENANTS[0]
    chart = charts[tenant]
    assert _read(api, "biller", other, chart["signed"]).status_code == 404
    r = _search(api, "biller", other, chart["patient"])
    assert r.status_code == 200 and json.loads(r.body).get("entry", []) == []


def test_the_stored_note_keeps_its_text(api, charts):
    """The view trims the answer, never the record."""
    chart = charts[TENANTS[0]]
    r = _read(api, "biller", TENANTS[0], chart["signed"])
    assert "data" not in json.loads(r.body)["content"][0]["attachment"]
    r = _read(api, "clinician", TENANTS[0], chart["signed"])
    assert json.loads(r.body)["content"][0]["attachment"]["data"]
