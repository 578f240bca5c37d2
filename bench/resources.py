"""Round trips of every registered FHIR type (functions.engine.registry), counted
as bench/counts.py counts the Patient figures: one warm request at a time, the
moto server's counter read before and after.

Per type: create, update with If-Match, read, and a search - by patient
(`?patient=<id>`, one Query on the chart) for the types in a patient's chart, by
identifier for Patient and Practitioner. For Patient also: updates without
If-Match, and conditional creates (`If-None-Exist: identifier=...`) that find
their match or create.

Each type is written with a role that may write it (MedicationRequest: prescriber;
Practitioner: admin; the rest: clinician), and read and searched with the same one.
The bodies are small valid R4B resources built here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlencode

from bench.api import BASE, HttpApi, Reply
from bench.counts import Kind, measured
from bench.stack import HOST, BenchStack

MRN = "https://bench.example/fhir/sid/mrn"  # Patient.identifier system of the bench
STAFF = "https://bench.example/fhir/sid/staff"  # Practitioner.identifier system
CHART_PATIENTS = 4  # chart resources are spread over this many patients
WRITER = {"MedicationRequest": "prescriber", "Practitioner": "admin"}  # else clinician
DEFAULT_WRITER = "clinician"
SEARCH_BY_IDENTIFIER = ("Patient", "Practitioner")

TX, GET, PUT, QUERY = (
    "dynamodb.TransactWriteItems",
    "dynamodb.GetItem",
    "dynamodb.PutItem",
    "dynamodb.Query",
)


def _ref(patient_id: str) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"}


def _coded(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def mrn(i: int) -> str:
    return f"BT-{i:04d}"


def patient(i: int, pid: str | None = None, rev: int = 0) -> dict[str, Any]:
    """Short names, as bench/api.py's patients, plus an MRN to search and match by.
    A revision changes the given name, never the MRN."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn(i)}],
        "name": [{"family": f"Typ{i:02d}", "given": [f"A{rev}"]}],
        "birthDate": f"19{50 + i % 50:02d}-0{1 + i % 9}-1{i % 10}",
        "gender": "unknown",
    }


def practitioner(i: int, pid: str | None = None, rev: int = 0) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": STAFF, "value": f"PR-{i:04d}"}],
        "name": [{"family": f"Prac{i:02d}", "given": [f"A{rev}"]}],
    }


def encounter(i: int, pid: str | None = None, rev: int = 0) -> dict[str, Any]:
    assert pid is not None
    day = f"2026-01-{1 + i % 28:02d}"
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory",
        },
        "subject": _ref(pid),
        "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T09:{10 + (i + rev) % 50:02d}:00Z"},
    }


def condition(i: int, pid: str | None = None, rev: int = 0) -> dict[str, Any]:
    assert pid is not None
    return {
        "resourceType": "Condition",
        "clinicalStatus": _coded(
            "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "active" if rev % 2 == 0 else "recurrence",
            "Active" if rev % 2 == 0 else "Recurrence",
        ),
        "code": _coded("http://snomed.info/sct", "38341003", "Hypertensive disorder"),
        "subject": _ref(pid),
    }


def allergy(i: int, pid: str | None = None, rev: int = 0) -> dict[str, Any]:
    assert pid is not None
    return {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": _coded(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "active" if rev % 2 == 0 else "inactive",
            "Active" if rev % 2 == 0 else "Inactive",
        ),
        "code": _coded("http://snomed.info/sct", "227493005", "Cashew nuts"),
        "patient": _ref(pid),
    }


def observation(i: int, pid: str | None = None, rev: int = 0) -> dict[str, Any]:
    assert pid is not None
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": _coded("http://loinc.org", "8867-4", "Heart rate"),
        "subject": _ref(pid),
        "effectiveDateTime": f"2026-01-{1 + i % 28:02d}T09:30:00Z",
        "valueQuantity": {
            "value": 60 + (i + rev) % 40,
            "unit": "beats/minute",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def medication_request(i: int, pid: str | None = None, rev: int = 0) -> dict[str, Any]:
    assert pid is not None
    return {
        "resourceType": "MedicationRequest",
        # a reported record (history from elsewhere): what is exercised here is the engine,
        # not the prescribing rules (tests/api/test_medications_*.py)
        "reportedBoolean": True,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": _coded(
            "http://www.nlm.nih.gov/research/umls/rxnorm", "312940", "sertraline 50 MG Oral Tablet"
        ),
        "subject": _ref(pid),
        "authoredOn": f"2026-01-{1 + (i + rev) % 28:02d}",
    }


# (ordinal, patient id of a chart resource, revision) -> body; a revision changes
# one element and keeps what the resource is searched and matched by.
Body = Callable[[int, str | None, int], dict[str, Any]]
BODIES: dict[str, Body] = {
    "Patient": patient,
    "Practitioner": practitioner,
    "Encounter": encounter,
    "Condition": condition,
    "AllergyIntolerance": allergy,
    "Observation": observation,
    "MedicationRequest": medication_request,
}


def search_kind(type_name: str) -> str:
    return "search" if type_name in SEARCH_BY_IDENTIFIER else "search_by_patient"


def expected(type_name: str, kind: str) -> Counter[str]:
    """What one warm request of a kind should send (anything else becomes a note)."""
    if kind in ("create", "update"):
        return Counter({TX: 1})  # the audit record is inside the transaction
    if kind == "read":
        return Counter({GET: 1, PUT: 1})  # the audit PutItem
    if type_name == "Patient":
        # a search that returned patients: its audit record and their trail copies,
        # one transaction
        return Counter({QUERY: 1, TX: 1})
    # Practitioner: a search returning no patient; a chart search (`?patient=`): the
    # record is stored in that patient's trail, so no copy is needed. A PutItem both.
    return Counter({QUERY: 1, PUT: 1})


PATIENT_EXTRAS: dict[str, Counter[str]] = {
    "update_without_if_match": Counter({GET: 1, TX: 1}),
    "conditional_create_found": Counter({QUERY: 1, PUT: 1}),
    "conditional_create_created": Counter({QUERY: 1, TX: 1}),
}


@dataclass
class TypeRun:
    """The counted requests of one type, by kind (`read`, `create`, `update`,
    `search` or `search_by_patient`), with what each kind should send."""

    name: str
    role: str
    kinds: dict[str, Kind] = field(default_factory=dict)
    expected: dict[str, Counter[str]] = field(default_factory=dict)
    skipped: str | None = None  # why the type was not measured
    search_matches: tuple[int, int] | None = None  # fewest and most entries a search returned


@dataclass
class Writer:
    """One type's requests on one keep-alive connection, and the versions seen."""

    api: HttpApi
    type_name: str
    etags: dict[str, str] = field(default_factory=dict)
    matches: list[int] = field(default_factory=list)  # entries each search returned

    def path(self, rid: str | None = None) -> str:
        return f"{BASE}/{self.type_name}" + (f"/{rid}" if rid else "")

    def create(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
        reply = self.api.call("POST", self.path(), body, headers)
        if reply.status in (200, 201) and reply.body is not None:
            self.etags[str(reply.body["id"])] = reply.headers.get("etag", 'W/"1"')
        return reply

    def update(self, rid: str, body: dict[str, Any], if_match: bool = True) -> Reply:
        headers = {"If-Match": self.etags[rid]} if if_match else None
        reply = self.api.call("PUT", self.path(rid), {**body, "id": rid}, headers)
        if reply.status == 200:
            self.etags[rid] = reply.headers.get("etag", self.etags[rid])
        return reply

    def read(self, rid: str) -> Reply:
        return self.api.call("GET", self.path(rid))

    def search(self, criteria: dict[str, str]) -> Reply:
        reply = self.api.call("GET", f"{self.path()}?{urlencode(criteria)}")
        self.matches.append(len((reply.body or {}).get("entry") or []))
        return reply


def _id(reply: Reply, what: str) -> str:
    if reply.status != 201 or reply.body is None:
        raise RuntimeError(f"{what} create answered {reply.status}: {reply.body}")
    return str(reply.body["id"])


def _counted(stack: BenchStack, name: str, requests: Sequence[Callable[[], Reply]]) -> Kind:
    """The first request is the warm-up of its kind; each of the others is counted."""
    requests[0]()
    kind = Kind(name)
    for request in requests[1:]:
        kind.add(*measured(stack, request))
    return kind


def measure_type(
    stack: BenchStack, w: Writer, body: Body, n: int, chart: list[str]
) -> tuple[dict[str, Kind], list[str]]:
    """Creates, updates (If-Match), reads, searches: n + 1 of each, the first not
    counted. Returns the kinds and the ids created."""
    t = w.type_name
    owner = [chart[i % len(chart)] if chart else None for i in range(n + 1)]
    ids: list[str] = []

    def create(i: int) -> Reply:
        reply = w.create(body(i, owner[i], 0))
        ids.append(_id(reply, t))
        return reply

    kinds = {"create": _counted(stack, f"{t}.create", [partial(create, i) for i in range(n + 1)])}
    kinds["update"] = _counted(
        stack,
        f"{t}.update",
        [partial(w.update, ids[i], body(i, owner[i], 1)) for i in range(n + 1)],
    )
    kinds["read"] = _counted(stack, f"{t}.read", [partial(w.read, rid) for rid in ids])
    kind = search_kind(t)
    if kind == "search":
        values = [body(i, None, 0)["identifier"][0] for i in range(n + 1)]
        criteria = [{"identifier": f"{v['system']}|{v['value']}"} for v in values]
    else:
        criteria = [{"patient": owner[i] or ""} for i in range(n + 1)]
    kinds[kind] = _counted(stack, f"{t}.{kind}", [partial(w.search, c) for c in criteria])
    return kinds, ids


def patient_extras(stack: BenchStack, w: Writer, ids: list[str], n: int) -> dict[str, Kind]:
    """Updates without If-Match (a GetItem, then the transaction), and conditional
    creates: n + 1 that find the patient of an existing MRN, n + 1 with a new MRN."""
    found = [
        partial(
            w.create,
            patient(i),
            {"If-None-Exist": urlencode({"identifier": f"{MRN}|{mrn(i)}"})},
        )
        for i in range(n + 1)
    ]
    fresh = [
        partial(
            w.create,
            patient(2_000 + i),
            {"If-None-Exist": urlencode({"identifier": f"{MRN}|{mrn(2_000 + i)}"})},
        )
        for i in range(n + 1)
    ]
    blind = [partial(w.update, rid, patient(i, None, 2), False) for i, rid in enumerate(ids)]
    return {
        "update_without_if_match": _counted(stack, "update_without_if_match", blind[: n + 1]),
        "conditional_create_found": _counted(stack, "conditional_create_found", found),
        "conditional_create_created": _counted(stack, "conditional_create_created", fresh),
    }


def run(
    stack: BenchStack, type_names: list[str], n: int, say: Callable[[str], None] = print
) -> tuple[list[TypeRun], dict[str, Kind]]:
    """Every registered type, Patient first (its patients hold the others' charts)."""
    ordered = sorted(type_names, key=lambda t: (t != "Patient", type_names.index(t)))
    apis: dict[str, HttpApi] = {}
    runs: list[TypeRun] = []
    extras: dict[str, Kind] = {}
    chart: list[str] = []
    try:
        for t in ordered:
            role = WRITER.get(t, DEFAULT_WRITER)
            run_ = TypeRun(t, role)
            runs.append(run_)
            body = BODIES.get(t)
            if body is None:
                run_.skipped = f"no bench body for {t}: add one to bench/resources.py"
                continue
            if role not in apis:
                apis[role] = HttpApi(HOST, stack.api_port, stack.token_for(role))
            w = Writer(apis[role], t)
            say(f"  {t} (as {role}) ...")
            run_.kinds, ids = measure_type(stack, w, body, n, chart if t != "Patient" else [])
            run_.expected = {k: expected(t, k) for k in run_.kinds}
            run_.search_matches = (min(w.matches), max(w.matches))
            if t == "Patient":
                chart = ids[:CHART_PATIENTS]
                extras = patient_extras(stack, w, ids, n)
    finally:
        for api in apis.values():
            api.close()
    return runs, extras
