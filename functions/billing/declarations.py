"""Declarations of the billing types: `ChargeItem` (one per CPT line of a signed,
finished encounter) and `Claim` (one per encounter, assembled from its charges).

Both belong to the patient's chart and are PHI (data class `phi`). Neither is
written by the generic routes: charges are captured by the billing consumer and
changed by `$correct`; claims are made by `Encounter/{id}/$claim` and sent by
`$submit` (functions/billing/routes.py). A generic create, update or delete is
refused (the policy table grants no create or delete; the precheck refuses the
update the `$correct` permission would otherwise let through): 405 naming the
operation to use.
"""

from __future__ import annotations

from typing import Any

from functions.common.errors import Issue, MethodNotAllowed
from functions.engine import values as v
from functions.engine.registry import (
    SPEC,
    Compartment,
    Operation,
    ParamType,
    ResourceType,
    SearchParam,
    StateMachine,
    register,
)
from functions.engine.types import DATE, TOKEN, _generic_events, _patient_ref

T, D, R = ParamType.TOKEN, ParamType.DATE, ParamType.REFERENCE
SOURCE = "emr.billing"
WORKFLOW = "billing.workflow"  # caller.memo key: set only by the billing use cases
READ_ONLY = ("read", "vread", "history-instance", "search-type")

# A charge is billable until its claim is submitted, then billed; $correct keeps it
# billable (a new version), nothing changes a billed charge.
CHARGE_STATES = StateMachine(
    element="status",
    transitions={"billable": frozenset({"billable"}), "billed": frozenset()},
    initial=frozenset({"billable"}),
    deletable=frozenset(),
)
BILL = CHARGE_STATES.operation("$submit", frozenset({"billable"}), "billed")

# FHIR R4 Claim.status has no "submitted": a submitted claim is `active` with the
# submission tag (docs/billing.md). A draft is rebuilt when a charge is corrected.
CLAIM_STATES = StateMachine(
    element="status",
    transitions={"draft": frozenset({"draft"}), "active": frozenset()},
    initial=frozenset({"draft"}),
    deletable=frozenset(),
)
SUBMIT = CLAIM_STATES.operation("$submit", frozenset({"draft"}), "active")


def _workflow_only(operation: str) -> Any:
    def precheck(caller: Any, stored: Any, body: dict[str, Any]) -> None:
        if not caller.memo.get(WORKFLOW):
            raise MethodNotAllowed(
                Issue("not-supported", f"{body.get('resourceType')} is changed by {operation} "
                      "only.", [str(body.get("resourceType"))])
            )  # fmt: skip

    return precheck


CHARGE_ITEM = register(
    ResourceType(
        "ChargeItem",
        data_class="phi",
        source=SOURCE,
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/ChargeItem",
        events=_generic_events(SOURCE, "chargeitem"),
        states=CHARGE_STATES,
        precheck=_workflow_only("$correct"),
        interactions=READ_ONLY,
        operations=(
            Operation("correct", "Parameters code, quantity, price and reason (required): "
                      "a new version of a billable charge, audited with the reason kind."),
        ),
        documentation="One CPT line of a finished encounter whose note is signed, captured "
        "once per encounter by the billing pipeline (docs/billing.md). Read and searched by "
        "billers; changed by $correct only.",
        params=(
            _patient_ref("patient", "subject", "ChargeItem"),
            _patient_ref("subject", "subject", "ChargeItem"),
            SearchParam("context", R, v.references("context"), SPEC + "ChargeItem-context",
                        "[Encounter/]id: the charges of one encounter.", entry=True,
                        targets=("Encounter",)),
            SearchParam("code", T, v.codings("code"), SPEC + "ChargeItem-code", TOKEN),
            SearchParam("entered-date", D, v.dates("enteredDate"),
                        SPEC + "ChargeItem-entered-date", DATE, sortable=True),
        ),
    )
)  # fmt: skip

CLAIM = register(
    ResourceType(
        "Claim",
        data_class="phi",
        source=SOURCE,
        compartment=Compartment("patient", ("patient",)),
        profile="http://hl7.org/fhir/StructureDefinition/Claim",
        events=_generic_events(SOURCE, "claim"),
        states=CLAIM_STATES,
        precheck=_workflow_only("Encounter/{id}/$claim and $submit"),
        interactions=READ_ONLY,
        operations=(
            Operation("submit", "A draft claim becomes submitted (status active with the "
                      "submission tag); its charges become billed."),
        ),
        documentation="One professional claim per encounter, assembled from its charges by "
        "Encounter/{id}/$claim (draft), sent by $submit (docs/billing.md).",
        params=(
            _patient_ref("patient", "patient", "Claim"),
            SearchParam("encounter", R, v.references("item.encounter"), SPEC + "Claim-encounter",
                        "[Encounter/]id.", entry=True, targets=("Encounter",)),
            SearchParam("status", T, v.codes("status"), SPEC + "Claim-status", TOKEN),
            SearchParam("created", D, v.dates("created"), SPEC + "Claim-created", DATE,
                        sortable=True),
        ),
    )
)  # fmt: skip
