"""Validate a QuestionnaireResponse against an instrument and score it.

`validate` lists what is wrong (issues name the item by FHIRPath, e.g.
`QuestionnaireResponse.item.where(linkId='phq9-3')`, and never repeat an answer);
`score` turns a valid response into an Observation (total, band, one component per answered
item) and, when a safety rule fires, an active suicide-risk Flag. The rules are the
instruments' (`instruments.py`); docs/measures.md gives their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.common.errors import Invalid, Issue
from functions.measures.instruments import BASE, LOINC, ORDINAL, Band, Instrument

ROOT = "QuestionnaireResponse"
STATUSES = ("completed", "amended")
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
FLAG_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/flag-category"
FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"
SAFETY_SYSTEM = f"{BASE}/CodeSystem/safety-flag"
YES = "LA33-6"


@dataclass(frozen=True)
class Safety:
    """A safety rule that fired: its reason code and the Flag to raise."""

    reason: str
    flag: dict[str, Any]


@dataclass(frozen=True)
class Scored:
    """A scored response: total (None for the C-SSRS), band, Observation, safety or None."""

    instrument: str
    total: int | None
    band: Band
    observation: dict[str, Any]
    safety: Safety | None


@dataclass
class _Reading:
    chosen: dict[str, dict[str, Any]]  # linkId -> the answerOption chosen (valid answers)
    answered: set[str]  # linkIds carrying an answer, valid or not
    seen: set[str]  # linkIds read so far
    issues: list[Issue]


def _at(link_id: str) -> str:
    return f"{ROOT}.item.where(linkId='{link_id}')"


def _header_issues(instrument: Instrument, response: dict[str, Any]) -> list[Issue]:
    if response.get("resourceType") != ROOT:
        return [Issue("structure", f"resourceType must be '{ROOT}'.", [f"{ROOT}.resourceType"])]
    issues = []
    canonical = (instrument.url, f"{instrument.url}|{instrument.questionnaire['version']}")
    if response.get("questionnaire") not in canonical:
        message = f"questionnaire must be {instrument.url} (optionally with |version)."
        issues.append(Issue("value", message, [f"{ROOT}.questionnaire"]))
    status = response.get("status")
    if status not in STATUSES:
        message = f"status must be one of: {', '.join(STATUSES)}."
        issues.append(Issue("required" if status is None else "value", message, [f"{ROOT}.status"]))
    if not isinstance(response.get("authored"), str):
        message = "authored (when the answers were given) is required."
        issues.append(Issue("required", message, [f"{ROOT}.authored"]))
    return issues


def _matching_option(question: dict[str, Any], answer: Any) -> dict[str, Any] | None:
    coding = answer.get("valueCoding") if isinstance(answer, dict) else None
    if not isinstance(coding, dict) or set(answer) != {"valueCoding"}:
        return None
    for option in question["answerOption"]:
        wanted = option["valueCoding"]
        if (coding.get("system"), coding.get("code")) == (wanted["system"], wanted["code"]):
            return option
    return None


def _item_problem(item: Any, questions: dict[str, Any], seen: set[str]) -> str | None:
    """Why an item cannot be read (diagnostic text), or None."""
    if not isinstance(item, dict) or not isinstance(item.get("linkId"), str):
        return "Each item needs a linkId."
    if item["linkId"] not in questions:
        return f"Unknown linkId; the items are: {', '.join(questions)}."
    if item["linkId"] in seen:
        return "The item appears more than once."
    if "item" in item:
        return "Nested items are not supported: every item is at the top level."
    answers = item.get("answer", [])
    if not isinstance(answers, list) or len(answers) > 1:
        return "An item takes exactly one answer."
    return None


def _answer_issue(question: dict[str, Any]) -> Issue:
    codes = ", ".join(o["valueCoding"]["code"] for o in question["answerOption"])
    message = f"The answer must be a valueCoding of {LOINC} with one of: {codes}."
    return Issue("value", message, [_at(question["linkId"])])


def _known(item: Any, questions: dict[str, Any]) -> str | None:
    """The item's linkId when it is one of ours, else None."""
    link_id = item.get("linkId") if isinstance(item, dict) else None
    return link_id if isinstance(link_id, str) and link_id in questions else None


def _read(instrument: Instrument, items: list[Any]) -> _Reading:
    questions = {q["linkId"]: q for q in instrument.questionnaire["item"]}
    reading = _Reading({}, set(), set(), [])
    for i, item in enumerate(items):
        problem = _item_problem(item, questions, reading.seen)
        if problem:
            known = _known(item, questions)
            where = _at(known) if known else f"{ROOT}.item[{i}]"
            reading.issues.append(Issue("structure", problem, [where]))
            if known:  # one issue per item
                reading.seen.add(known)
                reading.answered.add(known)
            continue
        link_id: str = item["linkId"]
        reading.seen.add(link_id)
        if not item.get("answer"):
            continue
        reading.answered.add(link_id)
        option = _matching_option(questions[link_id], item["answer"][0])
        if option is None:
            reading.issues.append(_answer_issue(questions[link_id]))
        else:
            reading.chosen[link_id] = option
    return reading


def _enabled(question: dict[str, Any], chosen: dict[str, dict[str, Any]]) -> bool | None:
    """Whether `enableWhen` holds (all conditions, operator '='); None when undecidable."""
    results = []
    for condition in question.get("enableWhen", []):
        option = chosen.get(condition["question"])
        if option is None:
            return None
        wanted = condition["answerCoding"]
        got = option["valueCoding"]
        results.append((got["system"], got["code"]) == (wanted["system"], wanted["code"]))
    return all(results)


def _presence_issues(instrument: Instrument, reading: _Reading) -> list[Issue]:
    issues = []
    for question in instrument.questionnaire["item"]:
        link_id = question["linkId"]
        enabled = _enabled(question, reading.chosen)
        if enabled and question.get("required") and link_id not in reading.answered:
            issues.append(Issue("required", "The item must be answered.", [_at(link_id)]))
        elif enabled is False and link_id in reading.answered:
            trigger = question["enableWhen"][0]["question"]
            message = f"The item is asked only when {trigger} is answered Yes; leave it out."
            issues.append(Issue("structure", message, [_at(link_id)]))
    return issues


def validate(instrument: Instrument, response: dict[str, Any]) -> list[Issue]:
    """Everything that keeps a QuestionnaireResponse from being scored ([] when valid)."""
    issues = _header_issues(instrument, response)
    if issues and issues[0].expression == [f"{ROOT}.resourceType"]:
        return issues
    items = response.get("item", [])
    if not isinstance(items, list):
        return [*issues, Issue("structure", "item must be a list.", [f"{ROOT}.item"])]
    reading = _read(instrument, items)
    return issues + reading.issues + _presence_issues(instrument, reading)


def _ordinals(instrument: Instrument, response: dict[str, Any]) -> dict[str, int]:
    """linkId -> ordinal of each answered item, in the Questionnaire's order."""
    reading = _read(instrument, response.get("item", []))
    out = {}
    for question in instrument.questionnaire["item"]:
        option = reading.chosen.get(question["linkId"])
        if option is not None:
            ordinal = next(e["valueDecimal"] for e in option["extension"] if e["url"] == ORDINAL)
            out[question["linkId"]] = int(ordinal)
    return out


def _component(instrument: Instrument, link_id: str, ordinal: int) -> dict[str, Any]:
    question = next(q for q in instrument.questionnaire["item"] if q["linkId"] == link_id)
    value: dict[str, Any] = (
        {"valueBoolean": ordinal == 1} if instrument.yes_no else {"valueInteger": ordinal}
    )
    return {"code": {"coding": [dict(question["code"][0])]}, **value}


def _observation(
    instrument: Instrument,
    response: dict[str, Any],
    subject: dict[str, Any],
    reference: str,
    total: int | None,
    band: Band,
) -> dict[str, Any]:
    ordinals = _ordinals(instrument, response)
    value: dict[str, Any] = (
        {"valueInteger": total}
        if total is not None
        else {"valueCodeableConcept": {"coding": [band.coding()], "text": band.display}}
    )
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {"coding": [{"system": CATEGORY_SYSTEM, "code": "survey", "display": "Survey"}]}
        ],
        "code": {"coding": [dict(instrument.result_code)]},
        "subject": dict(subject),
        "effectiveDateTime": response["authored"],
        **value,
        "interpretation": [{"coding": [band.coding()], "text": band.display}],
        "derivedFrom": [{"reference": reference}],
        "component": [_component(instrument, k, v) for k, v in ordinals.items()],
    }


def _flag(response: dict[str, Any], subject: dict[str, Any], reference: str) -> dict[str, Any]:
    return {
        "resourceType": "Flag",
        "extension": [{"url": FLAG_DETAIL, "valueReference": {"reference": reference}}],
        "status": "active",
        "category": [
            {
                "coding": [
                    {"system": FLAG_CATEGORY_SYSTEM, "code": "clinical", "display": "Clinical"}
                ]
            }
        ],
        "code": {
            "coding": [{"system": SAFETY_SYSTEM, "code": "suicide-risk", "display": "Suicide risk"}]
        },
        "subject": dict(subject),
        "period": {"start": response["authored"]},
    }


def score(
    instrument: Instrument,
    response: dict[str, Any],
    observation_subject: dict[str, Any],
    response_reference: str,
) -> Scored:
    """Score a response; raises Invalid (the `validate` issues) when it cannot be scored."""
    issues = validate(instrument, response)
    if issues:
        raise Invalid(issues)
    outcome = instrument.scorer(_ordinals(instrument, response))
    observation = _observation(
        instrument, response, observation_subject, response_reference, outcome.total, outcome.band
    )
    safety = None
    if outcome.safety is not None:
        flag = _flag(response, observation_subject, response_reference)
        safety = Safety(outcome.safety, flag)
    return Scored(instrument.key, outcome.total, outcome.band, observation, safety)
