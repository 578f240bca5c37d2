"""Declarations of treatment plans and safety plans (CarePlan, with their Goals);
functions/plans/rules.py has what each kind needs, docs/plans.md the workflow.

A plan is written as a `draft` and edited freely (If-Match); only `$sign`
(functions/plans/service.py) makes it `active`. An active plan is locked: a
plain update may only end it (`revoked`, `completed`) or mark it
`entered-in-error`; anything else is a 409, checked in the write's own
transaction. A revision is a new plan whose `replaces` names the old one; signing
it revokes the old one in the same transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.engine import values as v
from functions.engine.registry import (
    SPEC,
    ChartEntry,
    CheckedReference,
    Compartment,
    ParamType,
    ResourceType,
    SearchParam,
    StateMachine,
    register,
)
from functions.engine.types import DATE, TOKEN, _generic_events, _patient_ref

if TYPE_CHECKING:
    from models.resources import Stored

T, D, R = ParamType.TOKEN, ParamType.DATE, ParamType.REFERENCE
ENDED = frozenset({"revoked", "completed", "entered-in-error"})

PLAN_STATES = StateMachine(
    element="status",
    transitions={
        "draft": frozenset({"draft", "entered-in-error"}),
        "active": ENDED,
        "revoked": frozenset(),
        "completed": frozenset(),
        "entered-in-error": frozenset(),
    },
    initial=frozenset({"draft"}),
    deletable=frozenset({"draft"}),
)
SIGN = PLAN_STATES.operation("$sign", frozenset({"draft"}), "active")
# Signing a revision ends the plan it replaces (in the signature's transaction).
REVOKE = PLAN_STATES.operation("$sign (replaces)", frozenset({"active"}), "revoked")


def _care_plan_rules(body: dict[str, Any]) -> list[Any]:
    from functions.plans.links import link_issues
    from functions.plans.rules import care_plan_rules

    return care_plan_rules(body) + link_issues(body)


def _goal_rules(body: dict[str, Any]) -> list[Any]:
    from functions.plans.rules import goal_rules

    return goal_rules(body)


def _locked_once_signed(stored: Stored | None, body: dict[str, Any] | None) -> None:
    """An active plan's update may change its status only (the state machine says
    to what): what was signed is not rewritten on the way out."""
    from functions.plans.signing import check_unchanged

    check_unchanged(stored.resource if stored is not None else None, body)


def _chart(plan_id: str, body: dict[str, Any] | None) -> list[ChartEntry]:
    from functions.plans.chart import chart_entries

    return chart_entries(plan_id, body)


CARE_PLAN = register(
    ResourceType(
        "CarePlan",
        data_class="phi",
        source="emr.plans",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/CarePlan",
        events=_generic_events("emr.plans", "careplan"),
        rules=_care_plan_rules,
        states=PLAN_STATES,
        guards=(_locked_once_signed,),
        references=(CheckedReference("goal", "Goal"),),
        chart=_chart,
        documentation="A treatment plan (goals, interventions, review date) or a safety "
        "plan (the six Stanley-Brown sections, 988 among the crisis contacts). Written as "
        "draft, made active only by $sign (409 on any later edit but revoked, completed or "
        "entered-in-error); a revision replaces the old plan; docs/plans.md.",
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
            SearchParam("replaces", R, v.references("replaces"), SPEC + "CarePlan-replaces",
                        "[CarePlan/]id: the revisions of a plan.", targets=("CarePlan",)),
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
        rules=_goal_rules,
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
