"""Submitting a QuestionnaireResponse: validated against the instrument its
`questionnaire` names and scored in the same TransactWriteItems - the response, its
score Observation, the chart's score ring entry, and when a safety rule fires an
active Flag and one `safety.risk-identified` event. Refused submissions write
nothing. (The helpers here are shared by the other tests/api/test_measures_* files.)"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from functions.measures.instruments import FREQUENCY, LOINC, YES_NO
from models import keys
from tests.conftest import patient_body

BASE = "/fhir/R4"
TENANT, OTHER = "demo-clinic", "other-clinic"
URL = "https://emr.example/fhir/Questionnaire/"
PHQ9_TOTAL = "http://loinc.org|44261-6"
LINKS = {
    "phq-9": [f"phq9-{n}" for n in range(1, 10)],
    "gad-7": [f"gad7-{n}" for n in range(1, 8)],
}


# ----------------------------------------------------------------- helpers


def new_patient(api, tenant: str = TENANT) -> str:  # type: ignore[no-untyped-def]
    body = patient_body("Measure" + uuid.uuid4().hex[:8])
    return str(api.create(body, tenant=tenant)["id"])


def _answer(code: str) -> list[dict[str, Any]]:
    return [{"valueCoding": {"system": LOINC, "code": code}}]


def response(
    pid: str, key: str, ordinals: list[int], authored: str = "2026-11-26T10:00:00Z"
) -> dict[str, Any]:
    """A PHQ-9 or GAD-7 response with these ordinals (0-3), item by item."""
    codes = {ordinal: code for code, _, ordinal in FREQUENCY}
    items = [{"linkId": link, "answer": _answer(codes[o])} for link, o in
             zip(LINKS[key], ordinals, strict=True)]  # fmt: skip
    return _envelope(pid, key, items, authored)


def cssrs(pid: str, yes: set[str]) -> dict[str, Any]:
    """A C-SSRS screener answered Yes to `yes` (linkId suffixes), No to the rest asked."""
    answer = {1: YES_NO[0][0], 0: YES_NO[1][0]}
    asked = ["1", "2"] + (["3", "4", "5"] if "2" in yes else []) + ["6"]
    asked += ["6a"] if "6" in yes else []
    items = [{"linkId": f"cssrs-{s}", "answer": _answer(answer[int(s in yes)])} for s in asked]
    return _envelope(pid, "c-ssrs-screener", items, "2026-11-26T10:00:00Z")


def _envelope(pid: str, key: str, items: list[Any], authored: str) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": URL + key,
        "status": "completed",
        "subject": {"reference": f"Patient/{pid}"},
        "authored": authored,
        "item": items,
    }


def with_total(total: int, items: int = 9) -> list[int]:
    """Ordinals adding up to `total`, the last item 0 (no PHQ-9 item 9 signal)."""
    out = []
    for _ in range(items - 1):
        out.append(min(3, total))
        total -= out[-1]
    assert total == 0
    return [*out, 0]


def submit(api, body: dict[str, Any], role: str = "clinician", tenant: str = TENANT):  # type: ignore[no-untyped-def]
    return api.http.post(
        f"{BASE}/QuestionnaireResponse", headers=api.headers(role, tenant), body=json.dumps(body)
    )


def submitted(api, body: dict[str, Any], tenant: str = TENANT) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = submit(api, body, tenant=tenant)
    assert r.status_code == 201, r.body
    created: dict[str, Any] = json.loads(r.body)
    return created


def search(api, query: str, role: str = "clinician", tenant: str = TENANT) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    r = api.http.get(f"{BASE}/{query}", headers=api.headers(role, tenant))
    assert r.status_code == 200, r.body
    return [e["resource"] for e in json.loads(r.body)["entry"]]


def partition(stack, pid: str, prefix: str = "", tenant: str = TENANT) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every item of the patient's collection whose sort key starts with `prefix`."""
    values = {":p": {"S": keys.patient_pk(tenant, pid)}, ":s": {"S": prefix or "!"}}
    pages = (
        boto3.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=stack.table_name,
            KeyConditionExpression="pk = :p AND sk >= :s",
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )
    )
    found = [i for page in pages for i in page["Items"]]
    return [i for i in found if i["sk"]["S"].startswith(prefix)]


def chart_keys(stack, pid: str, tenant: str = TENANT) -> set[str]:  # type: ignore[no-untyped-def]
    return {i["sk"]["S"][2:] for i in partition(stack, pid, "C#", tenant)}


def outbox(stack, name: str, tenant: str = TENANT) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The details of the tenant's outbox events of one name (major 1 on the wire)."""
    client = boto3.client("dynamodb")
    pages = client.get_paginator("scan").paginate(
        TableName=stack.table_name,
        FilterExpression="begins_with(pk, :p) AND detail_type = :d",
        ExpressionAttributeValues={
            ":p": {"S": f"TENANT#{tenant}#OUTBOX#"},
            ":d": {"S": f"{name}.v1"},
        },
    )
    return [json.loads(i["detail"]["S"]) for page in pages for i in page["Items"]]


def calls(moto, request: Callable[[], Any]) -> tuple[Counter[str], Any]:  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()
    result = request()
    after = moto.counter.snapshot()
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]}), result


def issue(r) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    first = json.loads(r.body)["issue"][0]
    return first["code"], first.get("expression", [])


def scores(api, pid: str, code: str = PHQ9_TOTAL) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return search(api, f"Observation?patient={pid}&code={code}")


# ----------------------------------------------------------------- tests


def test_a_phq9_is_stored_with_its_observation_and_chart_entry(api, stack):
    pid = new_patient(api)
    created = submitted(api, response(pid, "phq-9", [1, 2, 1, 2, 1, 1, 0, 1, 0]))
    (obs,) = scores(api, pid)
    assert obs["valueInteger"] == 9
    assert obs["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{created['id']}"}]
    assert obs["interpretation"][0]["coding"][0]["code"] == "mild"
    assert obs["effectiveDateTime"] == "2026-11-26T10:00:00Z"
    assert [c["valueInteger"] for c in obs["component"]] == [1, 2, 1, 2, 1, 1, 0, 1, 0]
    assert obs["component"][8]["code"]["coding"][0]["code"] == "44260-8"
    assert chart_keys(stack, pid) >= {"2#phq-9#00", "2#phq-9#base"}
    assert not any(k.startswith("1#Flag#") for k in chart_keys(stack, pid))
    assert search(api, f"Flag?patient={pid}") == []
    (event,) = [e for e in outbox(stack, "score.recorded") if e["patient_id"] == pid]
    assert event["observation_id"] == obs["id"] and event["response_id"] == created["id"]
    assert event["instrument"] == "phq-9"


def test_a_submission_is_one_counter_read_and_one_transaction(api, moto, stack):
    """Even the largest: a flagged PHQ-9 (response, Observation, ring entry, Flag, events)."""
    pid = new_patient(api)
    submitted(api, response(pid, "phq-9", with_total(12)))  # warm
    counted, r = calls(moto, lambda: submit(api, response(pid, "phq-9", [1] * 9)))
    assert r.status_code == 201, r.body
    assert counted == Counter({"dynamodb.BatchGetItem": 1, "dynamodb.TransactWriteItems": 1})
    assert len(scores(api, pid)) == 2
    assert [f["status"] for f in search(api, f"Flag?patient={pid}")] == ["active"]


def test_item_9_above_zero_raises_one_flag_and_one_safety_event(api, stack):
    pid = new_patient(api)
    created = submitted(api, response(pid, "phq-9", [0, 0, 0, 0, 0, 0, 0, 0, 1]))
    (flag,) = search(api, f"Flag?patient={pid}")
    assert flag["status"] == "active"
    assert flag["code"]["coding"][0]["code"] == "suicide-risk"
    assert flag["extension"][0]["valueReference"]["reference"].endswith(created["id"])
    assert f"1#Flag#{flag['id']}" in chart_keys(stack, pid)
    events = [e for e in outbox(stack, "safety.risk-identified") if e["patient_id"] == pid]
    assert len(events) == 1
    (obs,) = scores(api, pid)
    assert events[0]["flag_id"] == flag["id"] and events[0]["observation_id"] == obs["id"]
    assert events[0]["reason"] == "phq9-item9-positive"
    assert set(events[0]) >= {"event_id", "tenant", "actor", "request_id", "response_id"}
    assert "Xylo" not in json.dumps(events)  # ids and codes only


def test_a_positive_cssrs_screen_flags_and_a_negative_one_does_not(api, stack):
    pid = new_patient(api)
    submitted(api, cssrs(pid, {"1", "2"}))  # low risk: not a positive screen
    code = "https://emr.example/fhir/CodeSystem/c-ssrs-screener|screen-result"
    (low,) = scores(api, pid, code)
    assert low["valueCodeableConcept"]["coding"][0]["code"] == "risk-low"
    assert search(api, f"Flag?patient={pid}") == []
    submitted(api, cssrs(pid, {"1", "2", "4"}))
    (flag,) = search(api, f"Flag?patient={pid}")
    assert flag["status"] == "active"
    events = [e for e in outbox(stack, "safety.risk-identified") if e["patient_id"] == pid]
    assert [e["reason"] for e in events] == ["cssrs-positive-screen"]
    assert chart_keys(stack, pid) >= {"2#c-ssrs-screener#00", "2#c-ssrs-screener#01"}


@pytest.mark.parametrize(
    ("total", "band"),
    [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"),
     (14, "moderate"), (15, "severe"), (21, "severe")],
)  # fmt: skip
def test_gad7_totals_fall_in_spitzer_bands(api, total, band):
    pid = new_patient(api)
    ordinals = [min(3, max(0, total - 3 * i)) for i in range(7)]
    submitted(api, response(pid, "gad-7", ordinals))
    (obs,) = scores(api, pid, "http://loinc.org|70274-6")
    assert obs["valueInteger"] == total
    assert obs["interpretation"][0]["coding"][0]["code"] == band


def _refused(api, stack, pid: str, body: dict[str, Any]) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    before = partition(stack, pid)
    events = len(outbox(stack, "score.recorded")), len(outbox(stack, "safety.risk-identified"))
    r = submit(api, body)
    assert r.status_code == 400, r.body
    assert partition(stack, pid) == before  # nothing written: no response, score or chart item
    assert (len(outbox(stack, "score.recorded")),
            len(outbox(stack, "safety.risk-identified"))) == events  # fmt: skip
    return issue(r)


def test_a_missing_item_is_400_naming_it_and_writes_nothing(api, stack):
    pid = new_patient(api)
    body = response(pid, "phq-9", [3] * 9)
    body["item"] = body["item"][:8]  # item 9 left out
    code, where = _refused(api, stack, pid, body)
    assert (code, where) == ("required", ["QuestionnaireResponse.item.where(linkId='phq9-9')"])


def test_an_out_of_range_answer_is_400_naming_the_item_and_writes_nothing(api, stack):
    pid = new_patient(api)
    body = response(pid, "phq-9", [1] * 9)
    body["item"][2]["answer"] = _answer("LA33-6")  # a yes/no code on a frequency item
    code, where = _refused(api, stack, pid, body)
    assert (code, where) == ("value", ["QuestionnaireResponse.item.where(linkId='phq9-3')"])
    body["item"][2]["answer"] = [{"valueInteger": 4}]
    assert _refused(api, stack, pid, body)[1] == where


@pytest.mark.parametrize(
    "questionnaire",
    [URL + "bdi-ii", "http://example.org/Questionnaire/phq-9", URL + "phq-9|2.0.0", None],
)
def test_an_unknown_questionnaire_is_400_and_writes_nothing(api, stack, questionnaire):
    pid = new_patient(api)
    body = response(pid, "phq-9", [1] * 9)
    if questionnaire is None:
        del body["questionnaire"]
    else:
        body["questionnaire"] = questionnaire
    assert _refused(api, stack, pid, body)[1] == ["QuestionnaireResponse.questionnaire"]


def test_a_submitted_response_is_final(api):
    pid = new_patient(api)
    created = submitted(api, response(pid, "phq-9", [1] * 9))
    for role in ("clinician", "supervisor", "care_coordinator", "admin"):
        r = api.http.put(f"{BASE}/QuestionnaireResponse/{created['id']}",
                         headers=api.headers(role), body=json.dumps(created))  # fmt: skip
        assert r.status_code == 403, (role, r.body)
    assert len(scores(api, pid)) == 1


def test_a_response_for_an_unknown_patient_is_400_and_scores_nothing(api, stack):
    pid = new_patient(api, tenant=OTHER)  # exists, in the other organisation only
    r = submit(api, response(pid, "phq-9", [1] * 9))
    assert r.status_code == 400 and issue(r)[1] == ["QuestionnaireResponse.subject"]
    assert partition(stack, pid) == []


def test_two_concurrent_submissions_for_one_patient_both_land(api, stack):
    """The second submission takes the ring slot while the first is between reading the
    counter and committing: the first's transaction fails on the counter and the whole
    write runs again, in the next slot."""
    from models.uow import _shared_connection

    pid = new_patient(api)
    submitted(api, response(pid, "phq-9", with_total(20)))
    events = _shared_connection().client.meta.events
    raced: list[int] = []
    started = threading.Event()

    def race(**_: Any) -> None:
        if started.is_set():  # the racing submission's own transaction, or the retry
            return
        started.set()
        raced.append(submit(api, response(pid, "phq-9", with_total(10))).status_code)

    events.register("before-call.dynamodb.TransactWriteItems", race, unique_id="measures-race")
    try:
        first = submit(api, response(pid, "phq-9", with_total(15)))
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="measures-race")
    assert raced == [201] and first.status_code == 201, first.body
    assert sorted(o["valueInteger"] for o in scores(api, pid)) == [10, 15, 20]
    assert {k for k in chart_keys(stack, pid) if k.startswith("2#phq-9#")} == {
        "2#phq-9#00", "2#phq-9#01", "2#phq-9#02", "2#phq-9#base"
    }  # fmt: skip
