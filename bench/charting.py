"""Charting figures: the chart in one Query at 10 and 1,000 signed 20 KB notes, what
signing a note and submitting a questionnaire cost, and the chart's overhead
through the API over its raw Query.

Read units are computed from the bytes each chart Query returned, by DynamoDB's
published rule for consistent reads (one unit per 4 KB of the items read, rounded
up): moto's own ConsumedCapacity is a constant.
"""

from __future__ import annotations

import base64
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench import counts
from bench.api import BASE, HttpApi, patient_body
from bench.report import Figure, at_most, exactly
from bench.stack import HOST, TENANT, BenchStack

NOTE_BYTES = 20 * 1024
SMALL, LARGE = 10, 1000
TIMED = 30  # chart reads timed through the API and raw, interleaved
SIGNER = "supervisor"  # signs final (a trainee's note would await co-signature)
LOINC = "http://loinc.org"
PARAGRAPH = (
    "Patient reports improved sleep and fewer intrusive thoughts since the last session; "
    "reviewed the thought record, practised cognitive restructuring and paced breathing. "
    "Mood described as six out of ten, affect congruent, no psychomotor changes noted. "
)


def note_text(i: int) -> str:
    """About 20 KB of clinical prose, different per note."""
    head = f"Session note {i}.\n"
    body = PARAGRAPH * (NOTE_BYTES // len(PARAGRAPH) + 1)
    return (head + body)[:NOTE_BYTES]


def note_body(patient: str, author: str, i: int) -> dict[str, Any]:
    data = base64.b64encode(note_text(i).encode()).decode()
    return {
        "resourceType": "DocumentReference", "status": "current", "docStatus": "preliminary",
        "type": {"coding": [{"system": LOINC, "code": "11506-3"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "author": [{"reference": f"Practitioner/{author}"}],
        "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": data}}],
    }  # fmt: skip


def phq9(patient: str, item9: int = 0) -> dict[str, Any]:
    answers = [1, 1, 1, 1, 0, 0, 0, 0, item9]
    codes = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
    return {
        "resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": "https://emr.example/fhir/Questionnaire/phq-9",
        "subject": {"reference": f"Patient/{patient}"}, "authored": "2026-09-15T10:00:00Z",
        "item": [{"linkId": f"phq9-{n}", "answer": [{"valueCoding": {
            "system": LOINC, "code": codes[a]}}]} for n, a in enumerate(answers, 1)],
    }  # fmt: skip


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
PROBLEMS = ("F33.1", "F41.1", "G47.00")
MEDICATIONS = ("36437", "42347")  # sertraline, bupropion: no conflict between them
SECTIONS = ("warning-signs", "internal-coping", "social-distraction", "help-contacts",
            "professional-contacts", "environment-safety")  # fmt: skip


def _ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


def gad7(patient: str, when: str) -> dict[str, Any]:
    codes = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
    return {
        "resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": "https://emr.example/fhir/Questionnaire/gad-7",
        "subject": _ref("Patient", patient), "authored": when,
        "item": [{"linkId": f"gad7-{n}", "answer": [{"valueCoding": {
            "system": LOINC, "code": codes[n % 3]}}]} for n in range(1, 8)],
    }  # fmt: skip


def _background(apis: dict[str, HttpApi], patient: str, staff: dict[str, str]) -> None:
    """What a patient in long-term care has in the chart besides notes: problems, an
    allergy, medications, 12+ PHQ-9 and GAD-7 scores (one flags), a safety plan. The
    10- and 1,000-note patients get the same, so they differ by their notes only."""
    for code in PROBLEMS:
        _ok(apis["supervisor"].call("POST", f"{BASE}/Condition", {
            "resourceType": "Condition", "subject": _ref("Patient", patient),
            "code": {"coding": [{"system": ICD10, "code": code}]}}), "condition")  # fmt: skip
    _ok(apis["supervisor"].call("POST", f"{BASE}/AllergyIntolerance", {
        "resourceType": "AllergyIntolerance", "patient": _ref("Patient", patient),
        "code": {"coding": [{"system": RXNORM, "code": "7980", "display": "penicillin G"}]},
        "criticality": "high"}), "allergy")  # fmt: skip
    for rxcui in MEDICATIONS:
        _ok(apis["prescriber"].call("POST", f"{BASE}/MedicationRequest", {
            "resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "subject": _ref("Patient", patient), "authoredOn": "2026-01-05",
            "requester": _ref("Practitioner", staff["prescriber"]),
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}]},
            "dosageInstruction": [{"text": "once daily"}]}), "medication")  # fmt: skip
    for month in range(1, 14):
        when = f"2025-{month:02d}-15T10:00:00Z" if month <= 12 else "2026-01-15T10:00:00Z"
        _ok(apis["supervisor"].call("POST", f"{BASE}/QuestionnaireResponse",
                                    {**phq9(patient, 1 if month == 3 else 0), "authored": when}),
            "phq-9")  # fmt: skip
        _ok(apis["supervisor"].call("POST", f"{BASE}/QuestionnaireResponse", gad7(patient, when)),
            "gad-7")  # fmt: skip
    plan = _ok(apis["supervisor"].call("POST", f"{BASE}/CarePlan", {
        "resourceType": "CarePlan", "status": "draft", "intent": "plan", "title": "Safety plan",
        "category": [{"coding": [{"system": "https://emr.example/fhir/CodeSystem/"
                                  "care-plan-category", "code": "safety-plan"}]}],
        "subject": _ref("Patient", patient), "author": _ref("Practitioner", staff["supervisor"]),
        "activity": [{"detail": {"code": {"coding": [{"system": "https://emr.example/fhir/"
                                                      "CodeSystem/safety-plan-section",
                                                      "code": code}]},
                                 "status": "in-progress",
                                 "description": "Call or text 988 any time; " + code * 4}}
                     for code in SECTIONS]}), "plan")  # fmt: skip
    _ok(apis["supervisor"].call("POST", f"{BASE}/CarePlan/{plan['id']}/$sign", {}), "plan sign")


def _ok(reply: Any, what: str) -> dict[str, Any]:
    if reply.status not in (200, 201):
        raise RuntimeError(f"{what}: {reply.status} {str(reply.body)[:300]}")
    body: dict[str, Any] = reply.body
    return body


def _signed_notes(api: HttpApi, patient: str, author: str, n: int, start: int) -> None:
    for i in range(start, start + n):
        note = _ok(api.call("POST", f"{BASE}/DocumentReference", note_body(patient, author, i)),
                   "note")  # fmt: skip
        _ok(api.call("POST", f"{BASE}/DocumentReference/{note['id']}/$sign", {}), "sign")


def _staff() -> dict[str, str]:
    """The demo users' Practitioners (the signer, the prescriber), made if missing."""
    from devstack import seed
    from devstack.importer import existing_id
    from functions.engine.directory import USER_SYSTEM

    seed.seed_practitioners()
    found = {}
    for role in (SIGNER, "prescriber"):
        rid = existing_id(TENANT, "Practitioner", f"{USER_SYSTEM}|{seed.username(role, TENANT)}")
        assert rid is not None
        found[role] = rid
    return found


def _read_units(patient: str) -> tuple[int, int, int]:
    """(read units, bytes, pages) of the chart's Query, from the bytes it returned."""
    from models import chart

    read = chart.read(TENANT, patient)
    return math.ceil(read.bytes_read / 4096), read.bytes_read, read.pages


def _chart_ops(stack: BenchStack, api: HttpApi, patient: str) -> Counter[str]:
    reply, ops = counts.measured(stack, lambda: api.call("GET", f"{BASE}/Patient/{patient}/$chart"))
    _ok(reply, "chart")
    return counts.dynamodb_ops(ops)


def _reads(ops: Counter[str]) -> int:
    """Round trips of a read, less its audit record (a PutItem)."""
    return sum(v for k, v in ops.items() if k != "dynamodb.PutItem")


def _median_ms(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _overhead(api: HttpApi, patient: str) -> tuple[float, float]:
    from models import chart

    api_ms, raw_ms = [], []
    for _ in range(TIMED):  # interleaved, so both see the same machine
        api_ms.append(_median_ms(lambda: api.call("GET", f"{BASE}/Patient/{patient}/$chart"), 1))
        raw_ms.append(_median_ms(lambda: chart.read(TENANT, patient), 1))
    return statistics.median(api_ms), statistics.median(raw_ms)


def run(stack: BenchStack, say: Callable[[str], None]) -> dict[str, Any]:
    staff = _staff()
    author = staff[SIGNER]
    apis = {role: HttpApi(HOST, stack.api_port, stack.token_for(role))
            for role in (SIGNER, "prescriber")}  # fmt: skip
    api = apis[SIGNER]
    try:
        small = _ok(api.call("POST", f"{BASE}/Patient", patient_body(900001)), "patient")["id"]
        large = _ok(api.call("POST", f"{BASE}/Patient", patient_body(900002)), "patient")["id"]
        say(f"Charting: two charts alike (problems, medications, 13 PHQ-9 and GAD-7 scores, a "
            f"safety plan), with {SMALL} and {LARGE} signed notes of {NOTE_BYTES // 1024} KB ...")
        for patient in (small, large):
            _background(apis, patient, staff)
        _signed_notes(api, small, author, SMALL, 0)
        started = time.perf_counter()
        _signed_notes(api, large, author, 20, SMALL)
        units_at_20 = _read_units(large)
        _signed_notes(api, large, author, LARGE - 20, SMALL + 20)
        fill_s = time.perf_counter() - started
        _chart_ops(stack, api, small), _chart_ops(stack, api, large)  # warm
        ops_small, ops_large = _chart_ops(stack, api, small), _chart_ops(stack, api, large)
        units_small, units_large = _read_units(small), _read_units(large)
        note = _ok(api.call("POST", f"{BASE}/DocumentReference", note_body(small, author, -1)),
                   "note")  # fmt: skip
        signed, sign_ops = counts.measured(
            stack, lambda: api.call("POST", f"{BASE}/DocumentReference/{note['id']}/$sign", {}))
        _ok(signed, "sign")
        submitted, submit_ops = counts.measured(
            stack, lambda: api.call("POST", f"{BASE}/QuestionnaireResponse", phq9(small)))
        _ok(submitted, "questionnaire")
        api_ms, raw_ms = _overhead(api, small)
        api_ms_large, raw_ms_large = _overhead(api, large)
    finally:
        for one in apis.values():
            one.close()
    return {
        "chart_ops_10": dict(ops_small), "chart_ops_1000": dict(ops_large),
        "read_units": {"10": units_small, "1000": units_large, "1000_after_20": units_at_20},
        "sign_ops": dict(counts.dynamodb_ops(sign_ops)),
        "submit_ops": dict(counts.dynamodb_ops(submit_ops)),
        "chart_ms": {"api": api_ms, "raw_query": raw_ms},
        "chart_ms_1000": {"api": api_ms_large, "raw_query": raw_ms_large},
        "fill_s": fill_s,
    }  # fmt: skip


def notes(c: dict[str, Any]) -> list[str]:
    units = c["read_units"]
    big = c["chart_ms_1000"]
    return [
        f"chart Query bytes: {units['10'][1]:,} with 10 notes, {units['1000_after_20'][1]:,} "
        f"after 20, {units['1000'][1]:,} with 1,000 (read units {units['10'][0]}, "
        f"{units['1000_after_20'][0]}, {units['1000'][0]}): the note headers are the only "
        "part that grows, and only until the 20 latest are in",
        f"chart at 1,000 notes: API {big['api']:.1f} ms vs raw Query {big['raw_query']:.1f} ms "
        "(medians); the local Query's time grows with the partition (moto reads it whole), "
        "DynamoDB's does not: the overhead ratio is taken on the 10-note chart",
    ]


def _tx(ops: dict[str, int]) -> int:
    return ops.get("dynamodb.TransactWriteItems", 0)


def figures(c: dict[str, Any]) -> list[Figure]:
    units = c["read_units"]
    ratio = units["1000"][0] / units["10"][0] if units["10"][0] else None
    overhead = c["chart_ms"]["api"] / c["chart_ms"]["raw_query"]
    return [
        Figure("chart_round_trips_10_notes", "chart round trips, 10 notes (less audit)",
               _reads(Counter(c["chart_ops_10"])), "1", exactly(1)),
        Figure("chart_round_trips_1000_notes", "chart round trips, 1,000 notes (less audit)",
               _reads(Counter(c["chart_ops_1000"])), "1", exactly(1)),
        Figure("chart_read_units_ratio_1000_vs_10",
               "chart Query read units, 1,000 / 10 notes (charts alike otherwise)",
               ratio, "<= 1.2", at_most(1.2), "{:.2f}"),
        Figure("note_sign_round_trips", "$sign: TransactWriteItems", _tx(c["sign_ops"]), "1",
               exactly(1)),
        Figure("note_sign_round_trips_total", "$sign: all DynamoDB round trips",
               sum(c["sign_ops"].values()), "", None),
        Figure("questionnaire_submit_round_trips", "PHQ-9 submit: TransactWriteItems",
               _tx(c["submit_ops"]), "1", exactly(1)),
        Figure("questionnaire_submit_round_trips_total", "PHQ-9 submit: all DynamoDB round trips",
               sum(c["submit_ops"].values()), "", None),
        Figure("chart_overhead_ratio", "chart via API / raw chart Query (medians, 10 notes)",
               overhead,
               "<= 1.3", at_most(1.3), "{:.2f}"),
    ]  # fmt: skip
