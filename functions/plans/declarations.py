"""Declarations of treatment plans and safety plans (CarePlan, with their Goals);
functions/plans/rules.py has what each kind needs."""

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

CARE_PLAN = register(
    ResourceType(
        "CarePlan",
        data_class="phi",
        source="emr.plans",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/CarePlan",
        events=_generic_events("emr.plans", "careplan"),
        documentation="A treatment plan (goals, interventions, review date) or a safety "
        "plan (the six Stanley-Brown sections, 988 among the crisis contacts); docs/plans.md.",
        params=(
            _patient_ref("patient", "subject", "CarePlan"),
            _patient_ref("subject", "subject", "CarePlan"),
            SearchParam("category", T, v.codings("category"), SPEC + "CarePlan-category",
                        TOKEN),
            SearchParam("status", T, v.codes("status"), SPEC + "CarePlan-status", TOKEN),
            SearchParam("intent", T, v.codes("intent"), SPEC + "CarePlan-intent", TOKEN),
            SearchParam("date", D, v.dates("period"), SPEC + "clinical-date", DATE,
                        sortable=True),
            SearchParam("goal", R, v.references("goal"), SPEC + "CarePlan-goal",
                        "[Goal/]id.", targets=("Goal",)),
        ),
    )
)  # fmt: skip

GOAL = register(
    ResourceType(
        "Goal",
        data_class="phi",
        source="emr.plans",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/Goal",
        events=_generic_events("emr.plans", "goal"),
        params=(
            _patient_ref("patient", "subject", "Goal"),
            _patient_ref("subject", "subject", "Goal"),
            SearchParam("lifecycle-status", T, v.codes("lifecycleStatus"),
                        SPEC + "Goal-lifecycle-status", TOKEN),
            SearchParam("target-date", D, v.dates("target.dueDate"), SPEC + "Goal-target-date",
                        DATE, sortable=True),
        ),
    )
)  # fmt: skip
