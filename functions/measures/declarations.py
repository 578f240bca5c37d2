"""Declarations of measurement-based care: questionnaire responses (PHQ-9, GAD-7,
C-SSRS screener; functions/measures/instruments.py) and safety flags. Scores are
Observations (functions/engine/types.py), written with their response."""

from __future__ import annotations

from functions.engine import values as v
from functions.engine.registry import (
    SPEC,
    Compartment,
    ParamType,
    ResourceType,
    SearchParam,
    register,
)
from functions.engine.types import DATE, TOKEN, _generic_events, _patient_ref

T, D, R = ParamType.TOKEN, ParamType.DATE, ParamType.REFERENCE
OURS = "https://emr.example/fhir/SearchParameter/"

QUESTIONNAIRE_RESPONSE = register(
    ResourceType(
        "QuestionnaireResponse",
        data_class="phi",
        source="emr.measures",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/QuestionnaireResponse",
        events=_generic_events("emr.measures", "questionnaireresponse"),
        documentation="A completed PHQ-9, GAD-7 or C-SSRS screener, validated against its "
        "Questionnaire and scored into an Observation in the same transaction.",
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
        documentation="A safety flag on the patient (e.g. suicide risk from a PHQ-9 item 9 "
        "or a positive C-SSRS screen); active until a clinician resolves it with a note.",
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
