"""No PHI in any event: the demo patients are loaded through the importer, charted
through the API (a visit, signed, co-signed and addended notes, PHQ-9 and GAD-7
series with a safety flag, a prescription, a signed safety plan, searches and
reads), the stream is drained through the Chalice-registered publisher, and EVERY
PutEvents entry sent is captured (a botocore hook on the publisher's own client).
None may hold a demo patient's name part, birth date, identifier, address or phone,
nor any text written in a note, plan or order.

The data goes into a tenant of its own, so the test sees its own writes whatever
other tests did to the demo tenants."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack import demo_charting, seed
from devstack.importer import LOADED, import_folder
from functions.common.caller import system_caller
from functions.engine import registry, service
from functions.engine.directory import USER_SYSTEM
from functions.notes.signing import SUPERVISOR_URL
from models.aws import client
from models.clock import new_id
from tests.pipelines.conftest import RecordingRunner

BASE = "/fhir/R4"
ROLES = ("clinician", "supervisor", "prescriber", "admin")
LOINC, RXNORM = "http://loinc.org", "http://www.nlm.nih.gov/research/umls/rxnorm"
FREQUENCY = demo_charting.FREQUENCY
SOAP = ("S: Sleep improving, mood 6/10, grief about her brother's death.\n"
        "O: Calm, engaged, linear thought.\nA: MDD, moderate, improving.\n"
        "P: Continue weekly CBT; PHQ-9 monthly.")  # fmt: skip
TRAINEE = "D: Reports less worry about the eviction.\nA: GAD, improving.\nP: Exposure work."
ADDENDUM = "Addendum: patient called after the session; safety plan reviewed."
DOSAGE = "50 mg by mouth once daily with breakfast"


# --- setup --------------------------------------------------------------------------------


def _users(stack: Any, tenant: str) -> dict[str, str]:
    """One user per role in the tenant (as seed.ensure_users does for the demo ones)
    and their Practitioners; the clinician is the supervisor's trainee."""
    cognito = boto3.client("cognito-idp")
    decl = registry.require("Practitioner")
    ids: dict[str, str] = {}
    for role in ("supervisor", "clinician", "prescriber", "admin"):
        name = seed.username(role, tenant)
        cognito.admin_create_user(
            UserPoolId=stack.user_pool_id, Username=name, MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": name},
                            {"Name": "custom:tenant", "Value": tenant}],
        )  # fmt: skip
        cognito.admin_set_user_password(UserPoolId=stack.user_pool_id, Username=name,
                                        Password=seed.DEMO_PASSWORD, Permanent=True)  # fmt: skip
        cognito.admin_add_user_to_group(UserPoolId=stack.user_pool_id, Username=name,
                                        GroupName=role)  # fmt: skip
        body: dict[str, Any] = {
            "resourceType": "Practitioner", "active": True,
            "identifier": [{"system": USER_SYSTEM, "value": name}],
            "name": [{"family": "Demo", "given": [role]}],
        }  # fmt: skip
        if role == "clinician":
            body["extension"] = [{"url": SUPERVISOR_URL, "valueReference": {
                "reference": f"Practitioner/{ids['supervisor']}"}}]  # fmt: skip
        caller = system_caller(tenant, "system:seed", "seed", new_id(), "practitioner.create")
        ids[role] = service.create(caller, decl, body, may_label=False).stored.address.resource_id
    return ids


class Chart:
    """The API as the tenant's users."""

    def __init__(self, api: Any, tenant: str, staff: dict[str, str]) -> None:
        self.api, self.tenant, self.staff = api, tenant, staff

    def call(self, role: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        headers = self.api.headers(role, self.tenant)
        sent = json.dumps(body) if body is not None else None
        r = getattr(self.api.http, method)(f"{BASE}{path}", headers=headers, body=sent)
        assert r.status_code in (200, 201), (method, path, r.status_code, r.body)
        return json.loads(r.body) if r.body else {}

    def note(self, patient: str, encounter: str, role: str, text: str) -> str:
        body = {
            "resourceType": "DocumentReference", "status": "current",
            "docStatus": "preliminary",
            "type": {"coding": [{"system": LOINC, "code": "11506-3"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "author": [{"reference": f"Practitioner/{self.staff[role]}"}],
            "context": {"encounter": [{"reference": f"Encounter/{encounter}"}]},
            "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                        "data": base64.b64encode(text.encode()).decode()}}],
        }  # fmt: skip
        note_id = str(self.call(role, "post", "/DocumentReference", body)["id"])
        self.call(role, "post", f"/DocumentReference/{note_id}/$sign", {})
        return note_id

    def response(self, patient: str, instrument: str, when: str, answers: tuple[int, ...]) -> None:
        prefix = instrument.replace("-", "")
        items = [{"linkId": f"{prefix}-{i}", "answer": [{"valueCoding": {
                  "system": LOINC, "code": FREQUENCY[a]}}]}
                 for i, a in enumerate(answers, 1)]  # fmt: skip
        self.call("clinician", "post", "/QuestionnaireResponse", {
            "resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": f"https://emr.example/fhir/Questionnaire/{instrument}",
            "subject": {"reference": f"Patient/{patient}"}, "authored": when, "item": items,
        })  # fmt: skip


def _chart(chart: Chart, patient: str, family: str) -> None:
    visit = chart.call("supervisor", "post", "/Encounter", {
        "resourceType": "Encounter", "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient}"},
        "period": {"start": "2026-09-15T10:00:00Z"},
    })  # fmt: skip
    period = {"start": "2026-09-15T10:00:00Z", "end": "2026-09-15T10:55:00Z"}
    finished = {**visit, "status": "finished", "period": period}
    finished.pop("meta")
    chart.call("supervisor", "put", f"/Encounter/{visit['id']}", finished)
    signed = chart.note(patient, visit["id"], "supervisor", SOAP)
    addendum_id = chart.note(patient, visit["id"], "supervisor", ADDENDUM)
    assert signed != addendum_id
    trainee = chart.note(patient, visit["id"], "clinician", TRAINEE)
    chart.call("supervisor", "post", f"/DocumentReference/{trainee}/$cosign", {})
    for when, answers in demo_charting.PHQ9_SERIES[:2]:  # the second has item 9 > 0
        chart.response(patient, "phq-9", when, answers)
    when, answers = demo_charting.GAD7_SERIES[0]
    chart.response(patient, "gad-7", when, answers)
    plan = chart.call("supervisor", "post", "/CarePlan", {
        "resourceType": "CarePlan", "status": "draft", "intent": "plan", "title": "Safety plan",
        "category": [{"coding": [{"system": demo_charting.PLAN_CATEGORY, "code": "safety-plan"}]}],
        "subject": {"reference": f"Patient/{patient}"}, "period": {"start": "2026-07-07"},
        "author": {"reference": f"Practitioner/{chart.staff['supervisor']}"},
        "activity": [{"detail": {"code": {"coding": [{"system": demo_charting.SECTION_SYSTEM,
                                                      "code": code}]},
                                 "status": "in-progress", "description": words}}
                     for code, words in demo_charting.SAFETY_PLAN.items()],
    })  # fmt: skip
    chart.call("supervisor", "post", f"/CarePlan/{plan['id']}/$sign", {})
    chart.call("prescriber", "post", "/MedicationRequest", {
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "subject": {"reference": f"Patient/{patient}"}, "authoredOn": "2026-06-02",
        "requester": {"reference": f"Practitioner/{chart.staff['prescriber']}"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "36437"}]},
        "dosageInstruction": [{"text": DOSAGE}],
    })  # fmt: skip
    chart.call("clinician", "get", f"/Patient?family={family}")  # a search: audit-search
    chart.call("clinician", "get", f"/Patient/{patient}/$chart")
    chart.call("clinician", "get", f"/DocumentReference/{signed}")


# --- what may not leak ----------------------------------------------------------------------


def _patients() -> list[dict[str, Any]]:
    found = []
    for path in sorted(Path(seed.DEMO_DIR).glob("*.json")):
        bundle = json.loads(path.read_text())
        found += [e["resource"] for e in bundle["entry"]
                  if e["resource"]["resourceType"] == "Patient"]  # fmt: skip
    return found


def _patient_values(patient: dict[str, Any]) -> Iterator[str]:
    for name in patient.get("name", []):
        yield from [name.get("family", ""), *name.get("given", [])]
    yield patient.get("birthDate", "")
    for address in patient.get("address", []):
        yield from [*address.get("line", []), address.get("postalCode", "")]
    for contact in patient.get("telecom", []):
        yield contact.get("value", "")
    for ident in patient.get("identifier", []):
        yield ident.get("value", "")


def forbidden() -> set[str]:
    texts = [SOAP, TRAINEE, ADDENDUM, DOSAGE, *demo_charting.SAFETY_PLAN.values()]
    lines = {line.strip() for text in texts for line in text.split("\n")}
    values = {v for p in _patients() for v in _patient_values(p)}
    return {v.lower() for v in lines | values if len(v.strip()) >= 4}


ULID = re.compile(r"(?<![0-9a-z])[0-9a-hjkmnp-tv-z]{26}(?![0-9a-z])")


def leaks(entry: dict[str, Any], words: set[str]) -> list[str]:
    detail = str(entry.get("Detail", ""))
    try:
        decoded = json.dumps(json.loads(detail), ensure_ascii=False)
    except ValueError:
        decoded = detail
    text = " ".join([str(entry.get("Source")), str(entry.get("DetailType")), detail, decoded])
    # ids the server generated (ULIDs, Crockford base32) are random letters: a short name
    # can turn up inside one ("...CARY..."), which is chance, not a leak
    text = ULID.sub(" ", text.lower())
    return sorted(w for w in words if w in text)


# --- the scan -------------------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[list[dict[str, Any]]]:
    """Every entry of every PutEvents call the publisher's client makes meanwhile."""
    entries: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        entries.extend(dict(e) for e in params.get("Entries", []))

    events = client("events")
    events.meta.events.register("provide-client-params.events.PutEvents", record)
    try:
        yield entries
    finally:
        events.meta.events.unregister("provide-client-params.events.PutEvents", record)


def test_the_scan_finds_a_planted_value():
    words = forbidden()
    assert {"cary", "o'hara", "1963-04-02", "a: gad, improving."} <= words
    planted = {"Source": "emr.test", "DetailType": "x.v1", "Detail": '{"who": "Cary O\'Hara"}'}
    assert leaks(planted, words) == ["cary", "o'hara"]


def test_no_event_of_the_demo_data_holds_phi(api, stack, captured):
    tenant = "phi-scan-" + uuid.uuid4().hex[:8]
    runner = RecordingRunner(stack.stream_arn)
    # every demo bundle; the Observations (hundreds, all alike) of the first one only
    first = import_folder(seed.DEMO_DIR, tenant, limit=1)
    rest = import_folder(
        seed.DEMO_DIR, tenant, types=tuple(t for t in LOADED if t != "Observation")
    )
    created = first.created + rest.created
    assert len(created) == len(_patients()) and not first.refused + rest.refused
    chart = Chart(api, tenant, _users(stack, tenant))
    _chart(chart, created[0], _patients()[0]["name"][0]["family"])

    runner.drain(timeout=600)
    assert captured, "no PutEvents entry was captured: the scan would prove nothing"
    assert all(not r["batchItemFailures"] for _, r in runner.calls)
    kinds = {e["DetailType"] for e in captured}
    assert {
        "patient.created.v1", "encounter.created.v1", "condition.created.v1",
        "observation.created.v1", "encounter.finished.v1", "note.signed.v1",
        "note.cosigned.v1", "score.recorded.v1", "safety.risk-identified.v1",
        "careplan.signed.v1", "medication.prescribed.v1", "phi.accessed.v1",
    } <= kinds  # fmt: skip
    ours = [e for e in captured if json.loads(e["Detail"]).get("tenant") == tenant]
    assert len(ours) > 100
    words = forbidden()
    leaked = {e["DetailType"]: found for e in captured if (found := leaks(e, words))}
    assert leaked == {}, f"PHI in events: {leaked}"
