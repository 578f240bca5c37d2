"""The measures declarations' pure hooks: response rules, the finality guard, the
flag's chart entry, the `$resolve` parameters and the trend as FHIR Parameters."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.errors import Conflict, Invalid
from functions.measures.declarations import FLAG_STATES, RESOLVE, flag_chart
from functions.measures.service import (
    baseline_key,
    parse_resolution,
    refuse_response_change,
    response_rules,
    score_ring,
)
from functions.measures.trends import as_parameters
from models.resources import Address, Stored

URL = "https://emr.example/fhir/Questionnaire/phq-9"


def _response(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "QuestionnaireResponse", "questionnaire": URL, "status": "completed",
            "authored": "2026-11-26", "item": [], **extra}  # fmt: skip


def test_an_unknown_or_missing_questionnaire_is_named() -> None:
    for value in ("https://emr.example/fhir/Questionnaire/bdi", 7, None):
        issues = response_rules(_response(questionnaire=value))
        assert [i.expression for i in issues] == [["QuestionnaireResponse.questionnaire"]]


def test_a_known_questionnaire_is_checked_item_by_item() -> None:
    issues = response_rules(_response())
    assert len(issues) == 9 and all(i.code == "required" for i in issues)


def test_a_stored_response_refuses_any_update_but_not_a_delete() -> None:
    stored = Stored(Address("t1", "QuestionnaireResponse", "p.x", "p"), 1, "", _response())
    with pytest.raises(Conflict):
        refuse_response_change(stored, _response())
    refuse_response_change(stored, None)
    refuse_response_change(None, _response())


def test_only_an_active_flag_is_in_the_chart() -> None:
    flag = {"status": "active", "period": {"start": "2026-11-26"},
            "code": {"coding": [{"code": "suicide-risk", "display": "Suicide risk"}]}}  # fmt: skip
    (entry,) = flag_chart("p.F", flag)
    assert entry.key == "1#Flag#p.F"
    assert entry.summary == {"resourceType": "Flag", "id": "p.F", "code": "suicide-risk",
                             "display": "Suicide risk", "start": "2026-11-26",
                             "status": "active"}  # fmt: skip
    for gone in ({**flag, "status": "inactive"}, {**flag, "status": "entered-in-error"}, None):
        assert flag_chart("p.F", gone)[0].summary is None


def test_a_flag_becomes_inactive_only_through_resolve() -> None:
    assert FLAG_STATES.predecessors("inactive") == frozenset()
    assert (RESOLVE.start, RESOLVE.to) == (frozenset({"active"}), "inactive")
    assert FLAG_STATES.deletable == frozenset({"entered-in-error"})


def test_the_score_ring_and_its_baseline_keys() -> None:
    ring = score_ring("phq-9")
    assert (ring.name, ring.slot_key(13), baseline_key("phq-9")) == (
        "scores.phq-9", "2#phq-9#01", "2#phq-9#base"
    )  # fmt: skip


def test_resolution_parameters_are_read_strictly() -> None:
    note = {"name": "note", "valueReference": {"reference": "DocumentReference/p.N"}}
    reason = {"name": "reason", "valueString": "Assessed."}
    body = {"resourceType": "Parameters", "parameter": [note, reason]}
    assert parse_resolution(body) == ("p.N", "Assessed.")
    assert parse_resolution({**body, "parameter": [note]}) == ("p.N", None)
    for bad in ([note, note], [reason], [{**note, "valueString": "x"}], [note, reason, reason]):
        with pytest.raises(Invalid):
            parse_resolution({**body, "parameter": bad})


def test_the_trend_parameters_of_chart_summaries() -> None:
    scores = [{"id": "p.A", "date": "2026-01-01", "total": 20},
              {"id": "p.B", "date": "2026-02-01", "total": 4}]  # fmt: skip
    out = as_parameters("phq-9", scores)
    named = {p["name"]: p for p in out["parameter"]}
    assert named["percentChange"]["valueDecimal"] == -80.0
    assert named["response"]["valueBoolean"] is True
    assert [p["name"] for p in out["parameter"]].count("point") == 2
    assert named["baseline"]["part"][-1]["valueReference"] == {"reference": "Observation/p.A"}
    assert as_parameters("gad-7", [])["parameter"][1] == {"name": "count", "valueInteger": 0}
