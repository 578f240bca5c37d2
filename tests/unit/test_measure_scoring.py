"""PHQ-9, GAD-7 and C-SSRS screener: Questionnaires, validation, scoring and safety rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.common.errors import Invalid, Issue
from functions.measures import instruments
from functions.measures.instruments import CSSRS, GAD7, PHQ9, Instrument, questionnaire
from functions.measures.scoring import score, validate

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fhir-examples"
SUBJECT = {"reference": "Patient/p1"}
REFERENCE = "QuestionnaireResponse/qr1"
AUTHORED = "2024-03-01T10:00:00Z"
YES, NO = "LA33-6", "LA32-8"


def _option(instrument: Instrument, link_id: str, ordinal: int) -> dict[str, Any]:
    question = next(q for q in instrument.questionnaire["item"] if q["linkId"] == link_id)
    option = next(
        o for o in question["answerOption"] if o["extension"][0]["valueDecimal"] == ordinal
    )
    return dict(option["valueCoding"])


def _response(instrument: Instrument, answers: dict[str, int], **extra: Any) -> dict[str, Any]:
    """A completed response; answers are linkId -> ordinal (C-SSRS: 1 yes, 0 no)."""
    items = [
        {"linkId": k, "answer": [{"valueCoding": _option(instrument, k, v)}]}
        for k, v in answers.items()
    ]
    body = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": instrument.url,
        "status": "completed",
        "subject": SUBJECT,
        "authored": AUTHORED,
        "item": items,
    }
    return {**body, **extra}


def _spread(instrument: Instrument, total: int, last: int = 0) -> dict[str, int]:
    """Ordinals summing to total, the last item fixed to `last` and the others filled first."""
    link_ids = [q["linkId"] for q in instrument.questionnaire["item"]]
    left = total - last
    answers = {}
    for link_id in link_ids[:-1]:
        answers[link_id] = min(3, left)
        left -= answers[link_id]
    assert left == 0, "total out of reach"
    answers[link_ids[-1]] = last
    return answers


def _cssrs(**yes: int) -> dict[str, int]:
    """C-SSRS answers: q1, q2 and q6 default to no; q3-q5 and q6a only when given."""
    answers = {"cssrs-1": 0, "cssrs-2": 0, "cssrs-6": 0}
    answers.update({f"cssrs-{k[1:]}": v for k, v in yes.items()})
    return answers


def _where(issues: list[Issue]) -> list[tuple[str, str]]:
    return [(i.code, e) for i in issues for e in i.expression]


def _at(link_id: str) -> str:
    return f"QuestionnaireResponse.item.where(linkId='{link_id}')"


# --- the Questionnaires ------------------------------------------------------------------------


def test_phq9_matches_the_loinc_questionnaire() -> None:
    path = EXAMPLES / "lforms-phq9.json"
    assert path.is_file(), f"The reference PHQ-9 Questionnaire is missing: {path}"
    reference = json.loads(path.read_text(encoding="utf-8"))
    assert reference["code"][0]["code"] == "44249-1" == PHQ9.questionnaire["code"][0]["code"]
    theirs = reference["item"][:9]
    ours = PHQ9.questionnaire["item"]
    assert [i["code"][0]["code"] for i in ours] == [i["code"][0]["code"] for i in theirs]
    assert reference["item"][9]["code"][0]["code"] == PHQ9.total_loinc == "44261-6"

    def scale(item: dict[str, Any]) -> list[tuple[str, str, float]]:
        return [
            (
                o["valueCoding"]["system"],
                o["valueCoding"]["code"],
                next(e["valueDecimal"] for e in o["extension"] if e["url"] == instruments.ORDINAL),
            )
            for o in item["answerOption"]
        ]

    for mine, real in zip(ours, theirs, strict=True):
        assert scale(mine) == scale(real), mine["linkId"]


def test_argonaut_phq9_has_the_same_item_order() -> None:
    path = EXAMPLES / "lforms-argonaut-phq9-ish.json"
    assert path.is_file(), f"The reference PHQ-9 Questionnaire is missing: {path}"
    group = json.loads(path.read_text(encoding="utf-8"))["item"][0]["item"]
    theirs = [i["code"][0]["code"] for i in group if i.get("type") == "choice"]
    assert [i["code"][0]["code"] for i in PHQ9.questionnaire["item"]] == theirs


@pytest.mark.parametrize("instrument", [PHQ9, GAD7, CSSRS], ids=lambda i: i.key)
def test_questionnaires_are_valid_r4b(instrument: Instrument) -> None:
    from fhir.resources.R4B.questionnaire import Questionnaire

    parsed = Questionnaire.model_validate(instrument.questionnaire)
    assert parsed.url == instrument.url
    assert parsed.status == "active"
    assert instrument.questionnaire["version"]


def test_gad7_codes() -> None:
    codes = [i["code"][0]["code"] for i in GAD7.questionnaire["item"]]
    assert codes == ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
    assert GAD7.questionnaire["code"][0]["code"] == "69737-5"
    assert GAD7.total_loinc == "70274-6"


def test_link_ids_are_simple_and_stable() -> None:
    assert [i["linkId"] for i in PHQ9.questionnaire["item"]] == [f"phq9-{n}" for n in range(1, 10)]
    assert [i["linkId"] for i in GAD7.questionnaire["item"]] == [f"gad7-{n}" for n in range(1, 8)]
    expected = ["cssrs-1", "cssrs-2", "cssrs-3", "cssrs-4", "cssrs-5", "cssrs-6", "cssrs-6a"]
    assert [i["linkId"] for i in CSSRS.questionnaire["item"]] == expected


def test_lookup_by_canonical_url() -> None:
    base = "https://emr.example/fhir/Questionnaire/"
    assert questionnaire(base + "phq-9") is PHQ9
    assert questionnaire(base + "gad-7|" + instruments.VERSION) is GAD7
    assert questionnaire(base + "c-ssrs-screener") is CSSRS
    assert questionnaire(base + "phq-9|0.0.1") is None
    assert questionnaire(base + "phq-2") is None
    assert instruments.by_key("gad-7") is GAD7


# --- bands -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately-severe"),
        (19, "moderately-severe"),
        (20, "severe"),
        (24, "severe"),
    ],
)
def test_phq9_bands_follow_kroenke_2001(total: int, band: str) -> None:
    scored = score(PHQ9, _response(PHQ9, _spread(PHQ9, total)), SUBJECT, REFERENCE)
    assert scored.total == total
    assert scored.band.code == band
    assert scored.observation["valueInteger"] == total
    assert scored.observation["interpretation"][0]["coding"][0]["code"] == band
    assert scored.safety is None


def test_phq9_maximum_is_severe_and_flags_item_9() -> None:
    scored = score(PHQ9, _response(PHQ9, _spread(PHQ9, 27, last=3)), SUBJECT, REFERENCE)
    assert (scored.total, scored.band.code) == (27, "severe")
    assert scored.safety is not None


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_bands_follow_spitzer_2006(total: int, band: str) -> None:
    scored = score(
        GAD7, _response(GAD7, _spread(GAD7, total, last=min(3, total))), SUBJECT, REFERENCE
    )
    assert (scored.total, scored.band.code) == (total, band)
    assert scored.safety is None


# --- the Observation -----------------------------------------------------------------------------


def test_observation_carries_total_components_and_provenance() -> None:
    answers = {f"phq9-{n}": n % 4 for n in range(1, 10)}  # 1,2,3,0,1,2,3,0,1 = 13
    scored = score(PHQ9, _response(PHQ9, answers), SUBJECT, REFERENCE)
    obs = scored.observation
    assert scored.total == 13 and obs["valueInteger"] == 13
    assert obs["status"] == "final"
    assert obs["category"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "survey",
        "display": "Survey",
    }
    assert obs["code"]["coding"][0]["code"] == "44261-6"
    assert obs["code"]["coding"][0]["system"] == "http://loinc.org"
    assert obs["subject"] == SUBJECT and obs["subject"] is not SUBJECT
    assert obs["effectiveDateTime"] == AUTHORED
    assert obs["derivedFrom"] == [{"reference": REFERENCE}]
    band = obs["interpretation"][0]["coding"][0]
    assert band["system"] == "https://emr.example/fhir/CodeSystem/severity-band"
    assert [c["code"]["coding"][0]["code"] for c in obs["component"]] == [
        "44250-9",
        "44255-8",
        "44259-0",
        "44254-1",
        "44251-7",
        "44258-2",
        "44252-5",
        "44253-3",
        "44260-8",
    ]
    assert [c["valueInteger"] for c in obs["component"]] == [1, 2, 3, 0, 1, 2, 3, 0, 1]


def test_observation_and_flag_are_valid_r4b() -> None:
    from fhir.resources.R4B.flag import Flag
    from fhir.resources.R4B.observation import Observation

    answers = {**_spread(PHQ9, 8, last=2)}
    scored = score(PHQ9, _response(PHQ9, answers), SUBJECT, REFERENCE)
    assert scored.safety is not None
    Observation.model_validate(scored.observation)
    Flag.model_validate(scored.safety.flag)
    cssrs = score(CSSRS, _response(CSSRS, _cssrs(q2=1, q3=1, q4=0, q5=0)), SUBJECT, REFERENCE)
    assert cssrs.safety is not None
    Observation.model_validate(cssrs.observation)
    Flag.model_validate(cssrs.safety.flag)


def test_gad7_observation_uses_the_gad7_total_code() -> None:
    scored = score(GAD7, _response(GAD7, _spread(GAD7, 7)), SUBJECT, REFERENCE)
    assert scored.observation["code"]["coding"][0]["code"] == "70274-6"
    assert len(scored.observation["component"]) == 7


# --- PHQ-9 item 9 ------------------------------------------------------------------------------


@pytest.mark.parametrize("item9", [1, 2, 3])
def test_phq9_item9_above_zero_raises_a_suicide_risk_flag(item9: int) -> None:
    scored = score(PHQ9, _response(PHQ9, _spread(PHQ9, item9, last=item9)), SUBJECT, REFERENCE)
    assert scored.safety is not None
    assert scored.safety.reason == "phq9-item9-positive"
    flag = scored.safety.flag
    assert flag["resourceType"] == "Flag" and flag["status"] == "active"
    assert flag["category"][0]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/flag-category"
    )
    assert flag["category"][0]["coding"][0]["code"] == "clinical"
    assert flag["code"]["coding"][0] == {
        "system": "https://emr.example/fhir/CodeSystem/safety-flag",
        "code": "suicide-risk",
        "display": "Suicide risk",
    }
    assert flag["subject"] == SUBJECT
    assert flag["period"] == {"start": AUTHORED}
    assert flag["extension"][0]["valueReference"] == {"reference": REFERENCE}


def test_phq9_item9_zero_raises_no_flag_even_when_severe() -> None:
    scored = score(PHQ9, _response(PHQ9, _spread(PHQ9, 24)), SUBJECT, REFERENCE)
    assert scored.band.code == "severe"
    assert scored.safety is None


# --- C-SSRS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "level"),
    [
        (_cssrs(q2=1, q3=1, q4=0, q5=0), "risk-moderate"),
        (_cssrs(q2=1, q3=0, q4=1, q5=0), "risk-high"),
        (_cssrs(q2=1, q3=0, q4=0, q5=1), "risk-high"),
        (_cssrs(q6=1, q6a=1), "risk-high"),
    ],
    ids=["q3", "q4", "q5", "q6-recent"],
)
def test_cssrs_positive_screens(answers: dict[str, int], level: str) -> None:
    scored = score(CSSRS, _response(CSSRS, answers), SUBJECT, REFERENCE)
    assert scored.total is None
    assert scored.band.code == level
    assert scored.safety is not None and scored.safety.reason == "cssrs-positive-screen"
    value = scored.observation["valueCodeableConcept"]["coding"][0]
    assert value["code"] == level
    assert scored.observation["code"]["coding"][0] == {
        "system": "https://emr.example/fhir/CodeSystem/c-ssrs-screener",
        "code": "screen-result",
        "display": "C-SSRS screen risk level",
    }
    assert "valueInteger" not in scored.observation


@pytest.mark.parametrize(
    ("answers", "level"),
    [
        (_cssrs(), "risk-none"),
        (_cssrs(q1=1), "risk-low"),
        (_cssrs(q1=1, q2=1, q3=0, q4=0, q5=0), "risk-low"),
        (_cssrs(q6=1, q6a=0), "risk-moderate"),
    ],
    ids=["all-no", "wish-only", "thoughts-only", "behaviour-long-ago"],
)
def test_cssrs_negative_screens(answers: dict[str, int], level: str) -> None:
    scored = score(CSSRS, _response(CSSRS, answers), SUBJECT, REFERENCE)
    assert scored.band.code == level
    assert scored.safety is None


def test_cssrs_components_are_booleans_of_the_answered_items() -> None:
    scored = score(CSSRS, _response(CSSRS, _cssrs(q1=1, q6=1, q6a=0)), SUBJECT, REFERENCE)
    components = {
        c["code"]["coding"][0]["code"]: c["valueBoolean"] for c in scored.observation["component"]
    }
    assert components == {
        "wish-to-be-dead": True,
        "suicidal-thoughts": False,
        "suicidal-behavior": True,
        "suicidal-behavior-past-3-months": False,
    }


# --- validation --------------------------------------------------------------------------------


def test_a_complete_response_is_valid() -> None:
    assert validate(PHQ9, _response(PHQ9, _spread(PHQ9, 10))) == []
    versioned = _response(GAD7, _spread(GAD7, 3), questionnaire=f"{GAD7.url}|1.0.0")
    assert validate(GAD7, versioned) == []
    assert validate(GAD7, _response(GAD7, _spread(GAD7, 3), status="amended")) == []


def test_cssrs_q3_to_q5_answered_after_no_to_q2_are_refused() -> None:
    issues = validate(CSSRS, _response(CSSRS, _cssrs(q3=0, q4=1, q5=0)))
    assert _where(issues) == [
        ("structure", _at("cssrs-3")),
        ("structure", _at("cssrs-4")),
        ("structure", _at("cssrs-5")),
    ]


def test_cssrs_q3_to_q5_are_required_after_yes_to_q2() -> None:
    issues = validate(CSSRS, _response(CSSRS, _cssrs(q2=1, q4=0)))
    assert _where(issues) == [("required", _at("cssrs-3")), ("required", _at("cssrs-5"))]


def test_cssrs_q6a_follows_q6() -> None:
    missing = validate(CSSRS, _response(CSSRS, _cssrs(q6=1)))
    assert _where(missing) == [("required", _at("cssrs-6a"))]
    extra = validate(CSSRS, _response(CSSRS, _cssrs(q6=0, q6a=1)))
    assert _where(extra) == [("structure", _at("cssrs-6a"))]


def test_cssrs_unanswered_q3_items_after_no_are_accepted() -> None:
    body = _response(CSSRS, _cssrs())
    body["item"].append({"linkId": "cssrs-3"})
    assert validate(CSSRS, body) == []


def test_a_missing_item_is_required() -> None:
    answers = _spread(PHQ9, 5)
    del answers["phq9-3"]
    assert _where(validate(PHQ9, _response(PHQ9, answers))) == [("required", _at("phq9-3"))]


def test_an_item_without_answer_is_missing() -> None:
    body = _response(GAD7, _spread(GAD7, 2))
    body["item"][1] = {"linkId": "gad7-2", "answer": []}
    assert _where(validate(GAD7, body)) == [("required", _at("gad7-2"))]


@pytest.mark.parametrize(
    "answer",
    [
        {"valueCoding": {"system": "http://loinc.org", "code": "LA6572-7"}},
        {"valueCoding": {"system": "http://example.org", "code": "LA6571-9"}},
        {"valueCoding": {"code": "LA6571-9"}},
        {"valueInteger": 4},
        {"valueCoding": {"system": "http://loinc.org", "code": "LA6571-9"}, "valueInteger": 3},
        "LA6571-9",
    ],
)
def test_an_answer_outside_the_options_is_refused(answer: Any) -> None:
    body = _response(PHQ9, _spread(PHQ9, 0))
    body["item"][2]["answer"] = [answer]
    issues = validate(PHQ9, body)
    assert _where(issues) == [("value", _at("phq9-3"))]
    assert "LA6571-9" in issues[0].diagnostics  # the allowed codes are named
    for value in ("LA6572-7", "example.org", "4"):
        assert value not in issues[0].diagnostics


def test_an_unknown_link_id_is_refused_without_repeating_it() -> None:
    body = _response(PHQ9, _spread(PHQ9, 0))
    body["item"].append({"linkId": "my-secret-note", "answer": [{"valueString": "x"}]})
    issues = validate(PHQ9, body)
    assert _where(issues) == [("structure", "QuestionnaireResponse.item[9]")]
    assert "my-secret-note" not in issues[0].diagnostics


def test_an_item_answered_twice_is_refused() -> None:
    body = _response(PHQ9, _spread(PHQ9, 0))
    body["item"].append(dict(body["item"][0]))
    assert _where(validate(PHQ9, body)) == [("structure", _at("phq9-1"))]
    two = _response(PHQ9, _spread(PHQ9, 0))
    two["item"][0]["answer"] = two["item"][0]["answer"] * 2
    assert _where(validate(PHQ9, two)) == [("structure", _at("phq9-1"))]


@pytest.mark.parametrize("item", [None, {}, {"linkId": 3}, {"linkId": ["phq9-1"]}])
def test_an_item_without_a_link_id_is_refused(item: Any) -> None:
    body = _response(PHQ9, _spread(PHQ9, 0))
    body["item"].insert(0, item)
    assert _where(validate(PHQ9, body)) == [("structure", "QuestionnaireResponse.item[0]")]


@pytest.mark.parametrize(
    "url",
    [
        "https://emr.example/fhir/Questionnaire/gad-7",
        "https://emr.example/fhir/Questionnaire/phq-9|9.9.9",
        "http://loinc.org/q/44249-1",
        None,
    ],
)
def test_a_response_to_another_questionnaire_is_refused(url: str | None) -> None:
    body = _response(PHQ9, _spread(PHQ9, 0), questionnaire=url)
    assert _where(validate(PHQ9, body)) == [("value", "QuestionnaireResponse.questionnaire")]


@pytest.mark.parametrize(("status", "code"), [("in-progress", "value"), (None, "required")])
def test_only_completed_or_amended_responses_are_scored(status: str | None, code: str) -> None:
    body = _response(PHQ9, _spread(PHQ9, 0), status=status)
    assert _where(validate(PHQ9, body)) == [(code, "QuestionnaireResponse.status")]


def test_authored_is_required() -> None:
    body = _response(PHQ9, _spread(PHQ9, 0))
    del body["authored"]
    assert _where(validate(PHQ9, body)) == [("required", "QuestionnaireResponse.authored")]


def test_another_resource_type_is_refused() -> None:
    issues = validate(PHQ9, {"resourceType": "Observation"})
    assert _where(issues) == [("structure", "QuestionnaireResponse.resourceType")]


def test_diagnostics_never_carry_answers() -> None:
    body = _response(CSSRS, _cssrs(q3=1))
    body["item"][0]["answer"] = [{"valueCoding": {"system": "s", "code": "I want to die"}}]
    issues = validate(CSSRS, body)
    assert issues
    assert not any("want" in i.diagnostics for i in issues)


def test_score_refuses_an_invalid_response() -> None:
    answers = _spread(PHQ9, 5)
    del answers["phq9-9"]
    with pytest.raises(Invalid) as raised:
        score(PHQ9, _response(PHQ9, answers), SUBJECT, REFERENCE)
    assert _where(raised.value.issues) == [("required", _at("phq9-9"))]
