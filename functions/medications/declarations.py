"""The MedicationRequest declaration: prescribing, changing and discontinuing
orders (functions/medications/rules.py has the rules, docs/medications.md the
formulary and its sources)."""

from __future__ import annotations

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

T, D = ParamType.TOKEN, ParamType.DATE

MEDICATION_REQUEST = register(
    ResourceType(
        "MedicationRequest",
        data_class="phi",
        source="emr.medications",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/MedicationRequest",
        references=(CheckedReference("requester", "Practitioner"),),
        events=_generic_events("emr.medications", "medicationrequest"),
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


