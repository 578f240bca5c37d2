"""The safety-alert work queue over HTTP: `GET /worklist` lists the signed-in user's open
alerts (newest first, one Query on their queue), `POST /worklist/{id}/$acknowledge`
closes one with a required note, once, audited; only the queue's owner (or the
queue it was escalated to) may acknowledge it, in every tenant.

Alerts are raised here by the alerts consumer's use case (`service.raise_alert`)
from a real risky PHQ-9 submitted through the API; the pipeline from the event
to the use case is tests/pipelines/test_safety_alerts.py's."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.alerts import service
from models import alerts
from models import audit as audit_store
from models.clock import iso, now
from tests.api.test_measures_submit import calls, response, search, submitted
from tests.api.test_notes_workflow import Staff, new_staff
from tests.conftest import outcome_issues, patient_body

TENANTS = ("demo-clinic", "other-clinic")
NOTE_WHERE = "Parameters.parameter.where(name='note')"
RISKY = [0, 0, 0, 0, 0, 0, 0, 0, 2]  # PHQ-9 item 9 answered: the safety rule fires


# ----------------------------------------------------------------- helpers (shared)


def risky_patient(api, tenant: str, family: str = "", **extra: Any) -> str:  # type: ignore[no-untyped-def]
    body = {**patient_body(family or "Alert" + uuid.uuid4().hex[:8]), **extra}
    return str(api.create(body, tenant=tenant)["id"])


def submit_risky(api, pid: str, tenant: str, author: Staff | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A PHQ-9 with item 9 positive (administered by `author`), through the API."""
    body = response(pid, "phq-9", RISKY)
    if author is not None:
        body["author"] = {"reference": author.ref}
    return submitted(api, body, tenant=tenant)


def signal_for(api, pid: str, tenant: str, occurred_at: str | None = None) -> service.Signal:  # type: ignore[no-untyped-def]
    """The SafetyRiskIdentified ids of the patient's (one) flag, as the event carries them."""
    (flag,) = search(api, f"Flag?patient={pid}", tenant=tenant)
    (observation,) = search(api, f"Observation?patient={pid}", tenant=tenant)
    (qr,) = search(api, f"QuestionnaireResponse?patient={pid}", tenant=tenant)
    return service.Signal(
        tenant=tenant, event_id=uuid.uuid4().hex, occurred_at=occurred_at or iso(now()),
        patient_id=pid, flag_id=flag["id"], response_id=qr["id"],
        observation_id=observation["id"], instrument="phq-9", reason="phq9-item9-positive",
    )  # fmt: skip


def raised(api, tenant: str, author: Staff | None = None, **patient: Any) -> service.Signal:  # type: ignore[no-untyped-def]
    pid = risky_patient(api, tenant, **patient)
    submit_risky(api, pid, tenant, author)
    signal = signal_for(api, pid, tenant)
    service.raise_alert(signal)
    return signal


def worklist(api, staff: Staff | None = None, role: str = "clinician",  # type: ignore[no-untyped-def]
             tenant: str = "demo-clinic"):  # fmt: skip
    headers = staff.headers() if staff is not None else api.headers(role, tenant)
    return api.http.get("/worklist", headers=headers)


def task_ids(api, staff: Staff) -> list[str]:  # type: ignore[no-untyped-def]
    r = worklist(api, staff)
    assert r.status_code == 200, r.body
    return [e["resource"]["id"] for e in json.loads(r.body)["entry"]]


def note(text: str | None = "Called the patient; safe, plan reviewed.") -> dict[str, Any]:
    parameter = [] if text is None else [{"name": "note", "valueString": text}]
    return {"resourceType": "Parameters", "parameter": parameter}


def acknowledge(api, alert_id: str, body: Any, staff: Staff | None = None,  # type: ignore[no-untyped-def]
                role: str = "clinician", tenant: str = "demo-clinic"):  # fmt: skip
    headers = staff.headers() if staff is not None else api.headers(role, tenant)
    text = body if isinstance(body, str) else json.dumps(body)
    return api.http.post(f"/worklist/{alert_id}/$acknowledge", body=text, headers=headers)


@pytest.fixture(scope="module")
def clinicians(api, stack) -> dict[str, Staff]:  # type: ignore[no-untyped-def]
    return {t: new_staff(api, stack, "clinician", t) for t in TENANTS}


# ----------------------------------------------------------------- listing


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_alert_is_listed_for_the_clinician_who_gave_the_screen(api, clinicians, tenant):
    mine = clinicians[tenant]
    signal = raised(api, tenant, author=mine)
    r = worklist(api, mine)
    assert r.status_code == 200, r.body
    assert r.headers["Cache-Control"] == "no-store"
    bundle = json.loads(r.body)
    (task,) = [e["resource"] for e in bundle["entry"] if e["resource"]["id"] == signal.flag_id]
    assert task["resourceType"] == "Task" and task["status"] == "requested"
    assert task["focus"] == {"reference": f"Flag/{signal.flag_id}"}
    assert task["for"] == {"reference": f"Patient/{signal.patient_id}"}
    assert task["owner"] == {"reference": mine.ref}
    assert task["code"]["coding"][0]["code"] == "safety-alert"
    assert task["reasonCode"]["coding"][0]["code"] == "phq9-item9-positive"


def test_the_patients_general_practitioner_answers_when_the_screen_names_nobody(api, stack):
    gp = new_staff(api, stack, "prescriber")
    signal = raised(api, "demo-clinic", generalPractitioner=[{"reference": gp.ref}])
    assert signal.flag_id in task_ids(api, gp)


def test_an_alert_without_a_responsible_clinician_goes_to_the_supervisors(api, stack, clinicians):
    signal = raised(api, "other-clinic")
    r = worklist(api, role="supervisor", tenant="other-clinic")
    listed = [e["resource"] for e in json.loads(r.body)["entry"]]
    (task,) = [t for t in listed if t["id"] == signal.flag_id]
    assert "owner" not in task
    assert signal.flag_id not in task_ids(api, clinicians["other-clinic"])
    other = worklist(api, role="supervisor", tenant="demo-clinic")
    assert signal.flag_id not in [e["resource"]["id"] for e in json.loads(other.body)["entry"]]


def test_newest_first_in_one_query_on_the_queue(api, moto, stack):
    mine = new_staff(api, stack, "clinician")
    ids = []
    start = datetime.now(UTC) - timedelta(minutes=3)
    for minute in range(3):
        pid = risky_patient(api, "demo-clinic")
        submit_risky(api, pid, "demo-clinic", mine)
        at = iso(start + timedelta(minutes=minute))
        signal = signal_for(api, pid, "demo-clinic", occurred_at=at)
        service.raise_alert(signal)
        ids.append(signal.flag_id)
    counted, r = calls(moto, lambda: worklist(api, mine))
    assert [e["resource"]["id"] for e in json.loads(r.body)["entry"]] == ids[::-1]
    # the user's Practitioner (directory), then their queue: one Query each
    assert counted["dynamodb.Query"] == 2, counted


def test_someone_elses_alert_is_not_listed(api, stack, clinicians):
    signal = raised(api, "demo-clinic", author=clinicians["demo-clinic"])
    colleague = new_staff(api, stack, "clinician")
    assert signal.flag_id not in task_ids(api, colleague)


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", ["front_desk", "biller", "care_coordinator", "admin",
                                  "compliance"])  # fmt: skip
def test_roles_outside_care_may_neither_list_nor_acknowledge(api, clinicians, role, tenant):
    signal = raised(api, tenant, author=clinicians[tenant])
    assert worklist(api, role=role, tenant=tenant).status_code == 403
    assert acknowledge(api, signal.flag_id, note(), role=role, tenant=tenant).status_code == 403
    assert signal.flag_id in task_ids(api, clinicians[tenant])


# ----------------------------------------------------------------- acknowledging


@pytest.mark.parametrize("tenant", TENANTS)
def test_acknowledging_with_a_note_closes_the_task_once_and_is_audited(api, clinicians, tenant):
    mine = clinicians[tenant]
    signal = raised(api, tenant, author=mine)
    r = acknowledge(api, signal.flag_id, note(), staff=mine)
    assert r.status_code == 200, r.body
    done = json.loads(r.body)
    assert done["status"] == "completed"
    (written,) = done["note"]
    assert written["text"].startswith("Called the patient")
    assert written["authorReference"] == {"reference": mine.ref}
    assert signal.flag_id not in task_ids(api, mine)
    again = acknowledge(api, signal.flag_id, note("Second try."), staff=mine)
    assert again.status_code == 409
    assert outcome_issues(again)[0]["expression"] == ["Task.status"]
    records, _ = audit_store.for_patient(tenant, signal.patient_id, 50, None)
    acks = sorted((r.status, r.resource_id) for r in records if r.action == "task.update")
    assert acks == [(200, signal.flag_id), (409, signal.flag_id)]


@pytest.mark.parametrize(
    "body",
    [note(None), note(""), note("   "), note("x" * 2001), note("bell\x07"),
     {"resourceType": "Parameters", "parameter": [{"name": "note", "valueInteger": 3}]},
     {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "x"}]},
     {"resourceType": "Basic"}],
)  # fmt: skip
def test_a_note_is_required(api, clinicians, body):
    mine = clinicians["demo-clinic"]
    signal = raised(api, "demo-clinic", author=mine)
    r = acknowledge(api, signal.flag_id, body, staff=mine)
    assert r.status_code == 400, r.body
    assert outcome_issues(r)[0]["expression"] == [NOTE_WHERE]
    assert signal.flag_id in task_ids(api, mine)


@pytest.mark.parametrize("tenant", TENANTS)
def test_only_the_assignee_may_acknowledge(api, stack, clinicians, tenant):
    mine = clinicians[tenant]
    signal = raised(api, tenant, author=mine)
    colleague = new_staff(api, stack, "clinician", tenant)
    elsewhere = clinicians["other-clinic" if tenant == "demo-clinic" else "demo-clinic"]
    for who in (colleague, elsewhere):
        r = acknowledge(api, signal.flag_id, note(), staff=who)
        assert r.status_code == 404, r.body
        assert outcome_issues(r)[0]["expression"] == ["Task.id"]
    other_id = signal.flag_id[:-1] + ("1" if signal.flag_id.endswith("0") else "0")
    unknown = acknowledge(api, other_id, note(), staff=colleague)
    assert unknown.status_code == 404
    assert json.loads(unknown.body) == json.loads(
        acknowledge(api, other_id, note(), staff=mine).body
    )
    assert acknowledge(api, signal.flag_id, note(), staff=mine).status_code == 200


def test_a_malformed_task_id_is_a_404(api, clinicians):
    r = acknowledge(api, "no_such!id", note(), staff=clinicians["demo-clinic"])
    assert r.status_code == 404


# ----------------------------------------------------------------- the setting


def test_escalation_minutes_are_a_clinic_setting(api):
    url = "/admin/settings"
    base = {"unsignedNoteDays": 3, "psychotherapyRoles": []}
    try:
        for bad in (4, 1441, 30.5, "30", True, None):
            body = json.dumps({**base, "alertEscalationMinutes": bad})
            r = api.http.put(url, body=body, headers=api.headers("admin", "other-clinic"))
            assert r.status_code == 400, bad
            assert outcome_issues(r)[0]["expression"] == ["alertEscalationMinutes"]
        body = json.dumps({**base, "alertEscalationMinutes": 10})
        r = api.http.put(url, body=body, headers=api.headers("admin", "other-clinic"))
        assert json.loads(r.body)["alertEscalationMinutes"] == 10
        demo = api.http.get(url, headers=api.headers("admin", "demo-clinic"))
        assert json.loads(demo.body)["alertEscalationMinutes"] == 30
    finally:
        api.http.put(url, body=json.dumps(base), headers=api.headers("admin", "other-clinic"))
    mine = json.loads(api.http.get(url, headers=api.headers("admin", "other-clinic")).body)
    assert mine["alertEscalationMinutes"] == 30


def test_an_alert_is_due_after_the_clinics_minutes(api, clinicians):
    signal = raised(api, "demo-clinic", author=clinicians["demo-clinic"])
    state = alerts.read("demo-clinic", signal.flag_id)
    assert state is not None
    raised_at = datetime.fromisoformat(state.alert.raised_at.replace("Z", "+00:00"))
    due_at = datetime.fromisoformat(state.alert.due_at.replace("Z", "+00:00"))
    assert due_at - raised_at == timedelta(minutes=30)
