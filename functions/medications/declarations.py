"""The MedicationRequest declaration: prescribing, changing and discontinuing
orders (functions/medications/rules.py has the rules, docs/medications.md the
formulary and its sources).

Prescribe is a create (status active), change an update, discontinue the
`$discontinue` operation (functions/medications/routes.py). The order's own
rules run with validation; the requester, the DEA registration and conflicts
need the caller and a read, and run as the precheck (functions/medications/
service.py), which also puts the order's row in the chart while it is active.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.engine import values as v
from functions.engine.registry import (
    SPEC,
    CheckedReference,
    Compartment,
    ParamType,
    ResourceType,
    SearchParam,
    register,
)
from functions.engine.types import DATE, TOKEN, _generic_events, _patient_ref
from functions.medications.rules import STATES

if TYPE_CHECKING:
    from functions.common.caller import Caller
    from functions.engine.registry import Change, ChartEntry
    from models.resources import Stored
    from models.uow import UnitOfWork

T, D = ParamType.TOKEN, ParamType.DATE


def _rules(body: dict[str, Any]) -> list[Any]:
    from functions.medications.rules import order_rules, override_issues

    return order_rules(body) + override_issues(body)


def _precheck(caller: Caller, stored: Stored | None, body: dict[str, Any]) -> None:
    from functions.medications.service import precheck

    precheck(caller, stored, body)


def _guard(stored: Stored | None, body: dict[str, Any] | None) -> None:
    from functions.medications.service import plain_update_guard

    plain_update_guard(stored, body)


def _chart(resource_id: str, body: dict[str, Any] | None) -> list[ChartEntry]:
    from functions.medications.service import chart_entries

    return chart_entries(resource_id, body)


def _companions(uow: UnitOfWork, caller: Caller, stored: Stored, change: Change) -> None:
    from functions.medications.service import prescribed

    prescribed(uow, caller, stored, change)


_DOC = (
    "Prescribe (create, status active), change (update), discontinue ($discontinue). The "
    "drug is an RxNorm ingredient of the formulary; refills follow its DEA schedule; the "
    "requester is the prescriber's own Practitioner, with a valid DEA registration for a "
    "controlled substance; a duplicate ingredient, duplicate drug class or allergy is 409 "
    "unless the order gives an override reason (docs/medications.md)."
)

MEDICATION_REQUEST = register(
    ResourceType(
        "MedicationRequest",
        data_class="phi",
        source="emr.medications",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/MedicationRequest",
        references=(CheckedReference("requester", "Practitioner"),),
        events=_generic_events("emr.medications", "medicationrequest"),
        rules=_rules,
        guards=(_guard,),
        states=STATES,
        precheck=_precheck,
        chart=_chart,
        companions=_companions,
        documentation=_DOC,
        params=(
            _patient_ref("patient", "subject", "MedicationRequest"),
            _patient_ref("subject", "subject", "MedicationRequest"),
            SearchParam("status", T, v.codes("status"), SPEC + "medications-status", TOKEN),
            SearchParam("intent", T, v.codes("intent"), SPEC + "MedicationRequest-intent",
                        TOKEN),
            SearchParam("authoredon", D, v.dates("authoredOn"),
                        SPEC + "MedicationRequest-authoredon", DATE, sortable=True),
            SearchParam("code", T, v.codings("medicationCodeableConcept"),
                        SPEC + "medications-code", TOKEN, entry=True),
        ),
    )
)  # fmt: skip
