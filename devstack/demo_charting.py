"""Demo charting for `make run`: one demo patient of demo-clinic gets a visit, notes
(signed, a draft, an addendum, one awaiting co-signature), a PHQ-9 and GAD-7 series
(one PHQ-9 with item 9 above 0, so a safety flag shows), a medication and a signed
safety plan.

Everything goes through the API itself (the Chalice app in process, with the demo
users' tokens), so the demo data is made by the very rules it shows: signing,
scoring, flags, the chart. Seeding twice adds nothing: a patient that already has
notes is left as it is.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from devstack import seed

TENANT = "demo-clinic"
BASE = "/fhir/R4"
SERVICE_TYPES = "https://emr.example/fhir/CodeSystem/service-type"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SUPERVISOR_URL = "https://emr.example/fhir/StructureDefinition/supervisor"
PLAN_CATEGORY = "https://emr.example/fhir/CodeSystem/care-plan-category"
SECTION_SYSTEM = "https://emr.example/fhir/CodeSystem/safety-plan-section"
FREQUENCY = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")  # 0..3

# (date, PHQ-9 answers 1..9), (date, GAD-7 answers 1..7): improving, one item 9 > 0
PHQ9_SERIES = (
    ("2026-06-02T10:00:00Z", (3, 2, 2, 2, 2, 2, 2, 1, 0)),
    ("2026-07-07T10:00:00Z", (2, 2, 2, 2, 1, 2, 1, 1, 1)),
    ("2026-08-11T10:00:00Z", (1, 1, 1, 1, 1, 1, 1, 0, 0)),
    ("2026-09-15T10:00:00Z", (1, 1, 0, 1, 0, 0, 0, 0, 0)),
)
GAD7_SERIES = (
    ("2026-06-02T10:05:00Z", (3, 2, 2, 2, 2, 2, 2)),
    ("2026-08-11T10:05:00Z", (2, 1, 1, 1, 1, 1, 1)),
    ("2026-09-15T10:05:00Z", (1, 1, 0, 1, 0, 0, 0)),
)
SAFETY_PLAN = {
    "warning-signs": "Not sleeping, staying in my room, thinking nothing will change.",
    "internal-coping": "Go for a walk, play guitar, take a shower.",
    "social-distraction": "The coffee shop on Main Street; visiting my cousin.",
    "help-contacts": "My sister; my friend from work.",
    "professional-contacts": "My therapist at the clinic during office hours; call or text "
    "988 (Suicide & Crisis Lifeline) any time; or the emergency room.",
    "environment-safety": "Medicines kept by my sister; no firearms at home.",
}


class _Client:
    """The app in process, as one demo user after another."""

    def __init__(self, cognito: Any, pool_id: str, client_id: str) -> None:
        from chalice.test import Client

        import app as app_module

        self._http = Client(app_module.app).http
        self._cognito, self._pool, self._client = cognito, pool_id, client_id
        self._tokens: dict[str, str] = {}

    def _headers(self, role: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        if role not in self._tokens:
            self._tokens[role] = seed.id_token(self._cognito, self._pool, self._client, role,
                                               TENANT)  # fmt: skip
        return {"Authorization": f"Bearer {self._tokens[role]}",
                "Content-Type": "application/fhir+json", **(extra or {})}  # fmt: skip

    def call(self, role: str, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        send = getattr(self._http, method.lower())
        data = json.dumps(body) if body is not None else None
        r = send(path, headers=self._headers(role, headers), body=data)
        if r.status_code not in (200, 201):
            raise RuntimeError(f"demo charting: {method} {path} as {role}: {r.status_code} "
                               f"{r.body[:400]!r}")  # fmt: skip
        return json.loads(r.body) if r.body else {}


def _ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


def demo_patient_id(index: int = 0) -> str | None:
    """The first (or `index`th) demo bundle's patient, found by its identifier."""
    from devstack.importer import existing_id

    first = sorted(seed.DEMO_DIR.glob("*.json"))[index]
    bundle = json.loads(Path(first).read_text())
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")  # fmt: skip
    ident = patient["identifier"][0]
    return existing_id(TENANT, "Patient", f"{ident['system']}|{ident['value']}")


def practitioner_of(role: str) -> str:
    from devstack.importer import existing_id
    from functions.engine.directory import USER_SYSTEM

    found = existing_id(TENANT, "Practitioner", f"{USER_SYSTEM}|{seed.username(role, TENANT)}")
    if found is None:
        raise RuntimeError(f"demo charting: no Practitioner for the {role} demo user")
    return found


def _make_trainee(api: _Client) -> None:
    """The demo clinician is a trainee supervised by the demo supervisor."""
    pid = practitioner_of("clinician")
    current = api.call("admin", "GET", f"{BASE}/Practitioner/{pid}")
    if any(e.get("url") == SUPERVISOR_URL for e in current.get("extension", [])):
        return
    body = {k: v for k, v in current.items() if k != "meta"}
    body["extension"] = [*current.get("extension", []), {
        "url": SUPERVISOR_URL, "valueReference": _ref("Practitioner", practitioner_of("supervisor"))
    }]  # fmt: skip
    api.call("admin", "PUT", f"{BASE}/Practitioner/{pid}", body,
             {"If-Match": f'W/"{current["meta"]["versionId"]}"'})  # fmt: skip


def _encounter(api: _Client, patient: str) -> str:
    body = {
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "serviceType": {"coding": [{"system": SERVICE_TYPES,
                                    "code": "psychotherapy-individual"}]},
        "subject": _ref("Patient", patient),
        "participant": [{"individual": _ref("Practitioner", practitioner_of("supervisor"))}],
        "period": {"start": "2026-09-15T10:00:00Z", "end": "2026-09-15T10:55:00Z"},
    }  # fmt: skip
    return str(api.call("supervisor", "POST", f"{BASE}/Encounter", body)["id"])


def _note(patient: str, encounter: str, author_role: str, text: str,
          appends: str | None = None) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current", "docStatus": "preliminary",
        "type": {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}]},
        "subject": _ref("Patient", patient),
        "author": [_ref("Practitioner", practitioner_of(author_role))],
        "context": {"encounter": [_ref("Encounter", encounter)]},
        "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                    "data": base64.b64encode(text.encode()).decode()}}],
    }  # fmt: skip
    if appends:
        body["relatesTo"] = [{"code": "appends", "target": _ref("DocumentReference", appends)}]
    return body


def _sign(api: _Client, role: str, note_id: str) -> None:
    api.call(role, "POST", f"{BASE}/DocumentReference/{note_id}/$sign", {})


def _notes(api: _Client, patient: str, encounter: str) -> None:
    soap = ("S: Sleep improving, mood 6/10.\nO: Calm, engaged, linear thought.\n"
            "A: MDD, moderate, improving.\nP: Continue weekly CBT; PHQ-9 monthly.")  # fmt: skip
    signed = api.call("supervisor", "POST", f"{BASE}/DocumentReference",
                      _note(patient, encounter, "supervisor", soap))["id"]  # fmt: skip
    _sign(api, "supervisor", signed)
    addendum = _note(patient, encounter, "supervisor",
                     "Addendum: patient called after the session; safety plan reviewed.", signed)
    _sign(api, "supervisor", api.call("supervisor", "POST", f"{BASE}/DocumentReference",
                                      addendum)["id"])  # fmt: skip
    trainee = api.call("clinician", "POST", f"{BASE}/DocumentReference",
                       _note(patient, encounter, "clinician", "D: Reports less worry.\n"
                             "A: GAD, improving.\nP: Continue exposure work."))["id"]  # fmt: skip
    _sign(api, "clinician", trainee)  # awaits the supervisor's co-signature
    api.call("clinician", "POST", f"{BASE}/DocumentReference",
             _note(patient, encounter, "clinician", "B: \nI: \nR: \nP: "))  # a draft


def _response(patient: str, instrument: str, prefix: str, when: str,
              answers: tuple[int, ...]) -> dict[str, Any]:  # fmt: skip
    return {
        "resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": f"https://emr.example/fhir/Questionnaire/{instrument}",
        "subject": _ref("Patient", patient), "authored": when,
        "item": [{"linkId": f"{prefix}-{i}", "answer": [{"valueCoding": {
            "system": LOINC, "code": FREQUENCY[a]}}]} for i, a in enumerate(answers, 1)],
    }  # fmt: skip


def _scores(api: _Client, patient: str) -> None:
    for when, phq in PHQ9_SERIES:
        api.call("clinician", "POST", f"{BASE}/QuestionnaireResponse",
                 _response(patient, "phq-9", "phq9", when, phq))  # fmt: skip
    for when, gad in GAD7_SERIES:
        api.call("clinician", "POST", f"{BASE}/QuestionnaireResponse",
                 _response(patient, "gad-7", "gad7", when, gad))  # fmt: skip


def _safety_plan(api: _Client, patient: str) -> None:
    body = {
        "resourceType": "CarePlan", "status": "draft", "intent": "plan", "title": "Safety plan",
        "category": [{"coding": [{"system": PLAN_CATEGORY, "code": "safety-plan"}]}],
        "subject": _ref("Patient", patient), "period": {"start": "2026-07-07"},
        "author": _ref("Practitioner", practitioner_of("supervisor")),
        "activity": [{"detail": {"code": {"coding": [{"system": SECTION_SYSTEM, "code": code}]},
                                 "status": "in-progress", "description": words}}
                     for code, words in SAFETY_PLAN.items()],
    }  # fmt: skip
    plan = api.call("supervisor", "POST", f"{BASE}/CarePlan", body)["id"]
    api.call("supervisor", "POST", f"{BASE}/CarePlan/{plan}/$sign", {})


def _medication(api: _Client, patient: str) -> None:
    body = {
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "subject": _ref("Patient", patient), "authoredOn": "2026-06-02",
        "requester": _ref("Practitioner", practitioner_of("prescriber")),
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "36437",
                                                  "display": "sertraline"}]},
        "dosageInstruction": [{"text": "50 mg by mouth once daily"}],
    }  # fmt: skip
    api.call("prescriber", "POST", f"{BASE}/MedicationRequest", body)


# The demo clinic's fee schedule (USD), set once when none is (docs/billing.md).
DEMO_FEES = {"90785": 20, "90791": 180, "90792": 210, "90832": 75, "90833": 70,
             "90834": 110, "90836": 95, "90837": 150, "90838": 125, "90839": 160,
             "90840": 80, "90846": 105, "90847": 110, "90853": 40, "99212": 60,
             "99213": 90, "99214": 130, "99215": 180}  # fmt: skip


def _billable_visit(api: _Client, patient: str) -> str:
    """The fee schedule, then a finished 55-minute psychotherapy visit with a diagnosis and
    its signed note: the billing pipeline charges it (90837) once the events are handled."""
    settings = api.call("admin", "GET", "/admin/settings")
    if not settings.get("feeSchedule"):
        api.call("admin", "PUT", "/admin/settings", {**settings, "feeSchedule": DEMO_FEES})
    condition = api.call("supervisor", "POST", f"{BASE}/Condition", {
        "resourceType": "Condition", "subject": _ref("Patient", patient),
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F33.1"}]},
    })["id"]  # fmt: skip
    body = {
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "serviceType": {"coding": [{"system": SERVICE_TYPES,
                                    "code": "psychotherapy-individual"}]},
        "subject": _ref("Patient", patient),
        "participant": [{"individual": _ref("Practitioner", practitioner_of("supervisor"))}],
        "period": {"start": "2026-10-06T10:00:00Z", "end": "2026-10-06T10:55:00Z"},
        "diagnosis": [{"condition": _ref("Condition", condition), "rank": 1}],
    }  # fmt: skip
    visit = str(api.call("supervisor", "POST", f"{BASE}/Encounter", body)["id"])
    note = api.call("supervisor", "POST", f"{BASE}/DocumentReference", _note(
        patient, visit, "supervisor", "S: Mood steadier.\nA: MDD, recurrent, moderate.\n"
        "P: Continue weekly CBT."))["id"]  # fmt: skip
    _sign(api, "supervisor", note)
    return visit


def seed_charting(cognito: Any, pool_id: str, client_id: str) -> str:
    """Seed the demo chart once; returns what was done, for the start-up banner."""
    patient = demo_patient_id()
    if patient is None:
        return "demo charting skipped: the demo patient is not loaded"
    api = _Client(cognito, pool_id, client_id)
    found = api.call("supervisor", "GET", f"{BASE}/DocumentReference?patient={patient}&_count=1")
    if found.get("entry"):
        return f"demo charting already in place (Patient/{patient})"
    _make_trainee(api)
    encounter = _encounter(api, patient)
    _notes(api, patient, encounter)
    _scores(api, patient)
    _safety_plan(api, patient)
    _medication(api, patient)
    other = demo_patient_id(1)  # a second demo patient: the first one's chart stays as listed
    billable = _billable_visit(api, other) if other is not None else None
    return (f"demo charting: Patient/{patient} has notes (signed, addendum, awaiting "
            "co-signature, draft), PHQ-9 and GAD-7 series with a safety flag, a medication "
            f"and a safety plan: GET /fhir/R4/Patient/{patient}/$chart"
            + (f"; Encounter/{billable} is signed and billable: GET /fhir/R4/ChargeItem?"
               f"context=Encounter/{billable} as the biller" if billable else ""))  # fmt: skip
