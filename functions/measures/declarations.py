"""Declarations of measurement-based care: questionnaire responses (PHQ-9, GAD-7,
C-SSRS screener; functions/measures/instruments.py) and safety flags. Scores are
Observations (functions/engine/types.py), written with their response.

A response is validated against the instrument its `questionnaire` names (`rules`)
and, in its create's own transaction, scored (`companions`): the score Observation,
the chart's score ring entry and, when a safety rule fires, an active Flag and a
`safety.risk-identified` event (functions/measures/service.py). A submitted
response is final: it is never updated (a correction is a new response).

A Flag's status follows a table checked in the write's own transaction: an active
flag may be edited or marked entered-in-error, and becomes inactive only through
`$resolve`, which names the signed note documenting the assessment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.engine import values as v
from functions.engine.registry import (
    SPEC,
    Change,
    ChartEntry,
    Compartment,
    Operation,
    ParamType,
    ResourceType,
    SearchParam,
    StateMachine,
    active_key,
    register,
)
from functions.engine.types import DATE, TOKEN, _generic_events, _patient_ref

if TYPE_CHECKING:
    from functions.common.caller import Caller
    from functions.common.errors import Issue
    from models.resources import Stored
    from models.uow import UnitOfWork

T, D, R = ParamType.TOKEN, ParamType.DATE, ParamType.REFERENCE
OURS = "https://emr.example/fhir/SearchParameter/"

# Flag.status: a plain update keeps an active flag active (or marks it entered in
# error); only $resolve (with a signed note) makes it inactive; an inactive or
# entered-in-error flag is final. Only a flag entered in error may be deleted.
FLAG_STATES = StateMachine(
    element="status",
    transitions={
        "active": frozenset({"active", "entered-in-error"}),
        "inactive": frozenset(),
        "entered-in-error": frozenset(),
    },
    initial=frozenset({"active"}),
    deletable=frozenset({"entered-in-error"}),
)
RESOLVE = FLAG_STATES.operation("$resolve", frozenset({"active"}), "inactive")


def _response_rules(body: dict[str, Any]) -> list[Issue]:
    from functions.measures.service import response_rules

    return response_rules(body)


def _response_is_final(stored: Stored | None, body: dict[str, Any] | None) -> None:
    from functions.measures.service import refuse_response_change

    refuse_response_change(stored, body)


def _score_response(uow: UnitOfWork, caller: Caller, stored: Stored, change: Change) -> None:
    from functions.measures.service import stage_scoring

    stage_scoring(uow, caller, stored, change)


def flag_chart(resource_id: str, body: dict[str, Any] | None) -> list[ChartEntry]:
    """An active flag is listed in the chart (`1#Flag#<id>`); any other status, or a
    deletion, takes it away."""
    key = active_key("Flag", resource_id)
    if body is None or body.get("status") != "active":
        return [ChartEntry(key, None)]
    codings = (body.get("code") or {}).get("coding") or [{}]
    return [
        ChartEntry(
            key,
            {
                "resourceType": "Flag",
                "id": resource_id,
                "code": codings[0].get("code"),
                "display": codings[0].get("display") or (body.get("code") or {}).get("text"),
                "start": (body.get("period") or {}).get("start"),
                "status": "active",
            },
        )
    ]


QUESTIONNAIRE_RESPONSE = register(
    ResourceType(
        "QuestionnaireResponse",
        data_class="phi",
        source="emr.measures",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/QuestionnaireResponse",
        events=_generic_events("emr.measures", "questionnaireresponse"),
        rules=_response_rules,
        guards=(_response_is_final,),
        companions=_score_response,
        documentation="A completed PHQ-9, GAD-7 or C-SSRS screener, validated against the "
        "Questionnaire its questionnaire names (GET /Questionnaire) and scored in the same "
        "transaction: the score Observation (derivedFrom the response), the chart's score "
        "ring and, when a safety rule fires, an active suicide-risk Flag. A submitted "
        "response is final (updates are refused): a correction is a new response.",
        params=(
            _patient_ref("patient", "subject", "QuestionnaireResponse"),
            _patient_ref("subject", "subject", "QuestionnaireResponse"),
            SearchParam("questionnaire", T, v.codes("questionnaire"),
                        SPEC + "QuestionnaireResponse-questionnaire",
                        "The Questionnaire's canonical URL (exact)."),
            SearchParam("authored", D, v.dates("authored"),
                        SPEC + "QuestionnaireResponse-authored", DATE, sortable=True),
            SearchParam("status", T, v.codes("status"), SPEC + "QuestionnaireResponse-status",
                        TOKEN),
        ),
    )
)  # fmt: skip

FLAG = register(
    ResourceType(
        "Flag",
        data_class="phi",
        source="emr.measures",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/Flag",
        events=_generic_events("emr.measures", "flag"),
        states=FLAG_STATES,
        chart=flag_chart,
        operations=(
            Operation("resolve", "Parameters: note (Reference to a signed DocumentReference "
                      "of the patient, required), reason (string). 409 unless active."),
        ),
        documentation="A safety flag on the patient (e.g. suicide risk from a PHQ-9 item 9 "
        "or a positive C-SSRS screen). Status active -> active | entered-in-error by update; "
        "inactive only through POST Flag/{id}/$resolve with a signed note; other changes "
        "are 409. Deleted only when entered-in-error. Active flags are listed in the chart.",
        params=(
            _patient_ref("patient", "subject", "Flag"),
            _patient_ref("subject", "subject", "Flag"),
            SearchParam("status", T, v.codes("status"), OURS + "Flag-status",
                        "active | inactive | entered-in-error."),
            SearchParam("date", D, v.dates("period"), SPEC + "clinical-date", DATE,
                        sortable=True),
            SearchParam("category", T, v.codings("category"), OURS + "Flag-category", TOKEN),
        ),
    )
)  # fmt: skip
