"""The declarations of every FHIR resource type this server serves.

Adding a type: declare it here (or in its workflow's package, imported below)
with its data class, compartment, search parameters (R4's canonical URLs) and
events, and add its rows to the authorization table (functions/common/authz.py).
Routes, storage, search, history, audit and the CapabilityStatement follow.
"""

from __future__ import annotations

from typing import Any

from functions.encounters.workflow import SERVICE_TYPE_SYSTEM, SERVICE_TYPES
from functions.encounters.workflow import STATES as ENCOUNTER_STATES
from functions.engine import values as v
from functions.engine.registry import (
    SPEC,
    Change,
    ChartEntry,
    CheckedReference,
    Compartment,
    Operation,
    ParamType,
    ResourceType,
    SearchParam,
    register,
)

S, T, D, R, Q = (
    ParamType.STRING,
    ParamType.TOKEN,
    ParamType.DATE,
    ParamType.REFERENCE,
    ParamType.QUANTITY,
)
WORDS = (
    "Starts-with on each word; case-, accent- and punctuation-insensitive; at least 2 "
    "characters per word, compared on the first 20; several words must all match. "
    ":exact compares the whole value."
)
TOKEN = "[system]|[code]: 'code' any system, '|code' no system, 'system|' any code of it."  # noqa: S105
DATE = (
    "Prefixes eq ne gt lt ge le sa eb; precision from year to seconds; "
    "values without a time zone are UTC."
)


def _generic_events(source: str, noun: str) -> Any:
    def make(change: Change, fields: dict[str, Any]) -> Any:
        from events.resources import event_class  # pydantic: with the first write only

        return event_class(source, f"{noun}.{change.value}")(**fields)

    return make


def _patient_events(change: Change, fields: dict[str, Any]) -> Any:
    from events.patients import PatientCreated, PatientDeleted, PatientUpdated

    cls = {
        Change.CREATED: PatientCreated,
        Change.UPDATED: PatientUpdated,
        Change.DELETED: PatientDeleted,
    }[change]
    return cls(
        tenant=fields["tenant"],
        actor=fields["actor"],
        request_id=fields["request_id"],
        patient_id=fields["resource_id"],
        resource_version=fields["resource_version"],
    )


def _encounter_finished(uow: Any, caller: Any, stored: Any, change: Change) -> None:
    from functions.encounters.events import stage_finished

    stage_finished(uow, caller, stored, change)


def _patient_rules(body: dict[str, Any]) -> list[Any]:
    from functions.patients.validation import registration_rules

    return registration_rules(body)


def _encounter_rules(body: dict[str, Any]) -> list[Any]:
    from functions.encounters.workflow import rules

    return rules(body)


def _condition_rules(body: dict[str, Any]) -> list[Any]:
    from functions.problems.icd10 import condition_rules  # the code set: first use only

    return condition_rules(body)


def _allergy_rules(body: dict[str, Any]) -> list[Any]:
    from functions.allergies.rules import rules

    return rules(body)


def _patient_chart(resource_id: str, body: dict[str, Any] | None) -> list[ChartEntry]:
    from functions.charts.summaries import patient_entry

    return [patient_entry(resource_id, body)]


def _condition_chart(resource_id: str, body: dict[str, Any] | None) -> list[ChartEntry]:
    from functions.charts.summaries import condition_entry

    return [condition_entry(resource_id, body)]


def _allergy_chart(resource_id: str, body: dict[str, Any] | None) -> list[ChartEntry]:
    from functions.charts.summaries import allergy_entry

    return [allergy_entry(resource_id, body)]


def _patient_ref(name: str, element: str, resource: str) -> SearchParam:
    url = "clinical-patient" if name == "patient" else f"{resource}-{name}"
    return SearchParam(
        name,
        R,
        v.references(element),
        SPEC + url,
        "The patient ([Patient/]id): a Query on the patient's chart (consistent).",
        targets=("Patient",),
    )


def _in_chart(element: str, *names: str) -> Compartment:
    return Compartment(element, names)


PATIENT = register(
    ResourceType(
        "Patient",
        data_class="phi",
        source="emr.patients",
        compartment=None,
        is_patient=True,
        profile="http://hl7.org/fhir/StructureDefinition/Patient",
        rules=_patient_rules,
        events=_patient_events,
        chart=_patient_chart,
        operations=(
            Operation("chart", "The chart in one Query: demographics, active problems, "
                      "medications, allergies, flags and plans, the last 12 scores per "
                      "instrument and the 20 latest note headers (JSON view; sections the "
                      "role may not see are listed in withheld)."),
            Operation("everything", "The whole record as a paged searchset (_count, "
                      "_cursor); psychotherapy notes are never included."),
            Operation("trend", "instrument=phq-9|gad-7: Parameters with baseline, latest, "
                      "change, percentChange, response, remission and each point."),
            Operation("medications", "The active medication list (with override reasons)."),
        ),
        documentation="name (family or given, with letters or digits) and birthDate (not "
        "in the future) are required.",
        params=(
            SearchParam("name", S, v.strings("name.family", "name.given", "name.text"),
                        SPEC + "Patient-name", WORDS + " Family, given or text.", entry=True),
            SearchParam("family", S, v.strings("name.family"), SPEC + "individual-family", WORDS,
                        via="name"),
            SearchParam("given", S, v.strings("name.given"), SPEC + "individual-given", WORDS,
                        via="name"),
            SearchParam("birthdate", D, v.dates("birthDate"), SPEC + "individual-birthdate",
                        DATE + " eq at year, month or day leads a Query; other prefixes filter.",
                        entry=True, sortable=True),
            SearchParam("identifier", T, v.identifiers(), SPEC + "Patient-identifier", TOKEN,
                        entry=True),
            SearchParam("gender", T, v.codes("gender"), SPEC + "individual-gender",
                        "male | female | other | unknown."),
        ),
    )
)  # fmt: skip

PRACTITIONER = register(
    ResourceType(
        "Practitioner",
        data_class="staff",
        source="emr.directory",
        compartment=None,
        profile="http://hl7.org/fhir/StructureDefinition/Practitioner",
        events=_generic_events("emr.directory", "practitioner"),
        documentation="Tenant-level (no patient). Each signed-in user resolves to the "
        "Practitioner whose identifier is https://emr.example/fhir/sid/user|<username>.",
        params=(
            SearchParam("identifier", T, v.identifiers(), SPEC + "Practitioner-identifier",
                        TOKEN, entry=True),
            SearchParam("name", S, v.strings("name.family", "name.given", "name.text"),
                        SPEC + "Practitioner-name", WORDS, entry=True),
            SearchParam("family", S, v.strings("name.family"), SPEC + "individual-family", WORDS,
                        via="name"),
            SearchParam("given", S, v.strings("name.given"), SPEC + "individual-given", WORDS,
                        via="name"),
        ),
    )
)  # fmt: skip

ENCOUNTER = register(
    ResourceType(
        "Encounter",
        data_class="phi",
        source="emr.encounters",
        compartment=_in_chart("subject", "patient", "subject"),
        profile="http://hl7.org/fhir/StructureDefinition/Encounter",
        events=_generic_events("emr.encounters", "encounter"),
        companions=_encounter_finished,  # EncounterFinished, in the same transaction
        operations=(Operation("claim", "The encounter's one claim (billers): made from its "
                              "charges once it is finished and signed (docs/billing.md)."),),
        states=ENCOUNTER_STATES,
        references=(CheckedReference("participant.individual", "Practitioner"),),
        rules=_encounter_rules,
        documentation="Status planned -> arrived -> in-progress -> finished, or cancelled "
        "before finished; other changes are 409. in-progress needs period.start, finished "
        "needs period.start and period.end. Deleted only while planned or cancelled. "
        f"serviceType codes of {SERVICE_TYPE_SYSTEM}: {', '.join(SERVICE_TYPES)}.",
        params=(
            _patient_ref("patient", "subject", "Encounter"),
            _patient_ref("subject", "subject", "Encounter"),
            SearchParam("date", D, v.dates("period"), SPEC + "clinical-date",
                        DATE + " On Encounter.period.", entry=True, sortable=True),
            SearchParam("status", T, v.codes("status"), SPEC + "Encounter-status", TOKEN),
            SearchParam("practitioner", R, v.references("participant.individual"),
                        SPEC + "Encounter-practitioner", "[Practitioner/]id.", entry=True,
                        targets=("Practitioner",)),
            SearchParam("type", T, v.codings("type"), SPEC + "clinical-type", TOKEN),
            SearchParam("class", T, v.codings("class"), SPEC + "Encounter-class", TOKEN),
        ),
    )
)  # fmt: skip

CONDITION = register(
    ResourceType(
        "Condition",
        data_class="phi",
        source="emr.clinical",
        compartment=_in_chart("subject", "patient", "subject"),
        profile="http://hl7.org/fhir/StructureDefinition/Condition",
        events=_generic_events("emr.clinical", "condition"),
        rules=_condition_rules,
        chart=_condition_chart,
        documentation="ICD-10-CM codings (http://hl7.org/fhir/sid/icd-10-cm) of code must "
        "carry a billable code of the FY2026 code set, dotted (F32.1, not F321); category "
        "headers (F32) and unknown codes are 400. Other systems are not checked.",
        params=(
            _patient_ref("patient", "subject", "Condition"),
            _patient_ref("subject", "subject", "Condition"),
            SearchParam("clinical-status", T, v.codings("clinicalStatus"),
                        SPEC + "Condition-clinical-status", TOKEN),
            SearchParam("code", T, v.codings("code"), SPEC + "clinical-code", TOKEN, entry=True),
            SearchParam("onset-date", D, v.dates("onsetDateTime", "onsetPeriod"),
                        SPEC + "Condition-onset-date", DATE, sortable=True),
            SearchParam("category", T, v.codings("category"), SPEC + "Condition-category", TOKEN),
        ),
    )
)  # fmt: skip

ALLERGY = register(
    ResourceType(
        "AllergyIntolerance",
        data_class="phi",
        source="emr.clinical",
        compartment=_in_chart("patient", "patient"),
        profile="http://hl7.org/fhir/StructureDefinition/AllergyIntolerance",
        events=_generic_events("emr.clinical", "allergyintolerance"),
        rules=_allergy_rules,
        chart=_allergy_chart,
        documentation="code (the substance) is required; criticality low | high | "
        "unable-to-assess, reaction.severity mild | moderate | severe, each reaction needs a "
        "manifestation, and clinicalStatus and verificationStatus codings of their R4 code "
        "systems must use those systems' codes.",
        params=(
            _patient_ref("patient", "patient", "AllergyIntolerance"),
            SearchParam("clinical-status", T, v.codings("clinicalStatus"),
                        SPEC + "AllergyIntolerance-clinical-status", TOKEN),
            SearchParam("code", T, v.codings("code"), SPEC + "clinical-code", TOKEN, entry=True),
            SearchParam("criticality", T, v.codes("criticality"),
                        SPEC + "AllergyIntolerance-criticality", TOKEN),
        ),
    )
)  # fmt: skip

OBSERVATION = register(
    ResourceType(
        "Observation",
        data_class="phi",
        source="emr.clinical",
        compartment=_in_chart("subject", "patient", "subject"),
        profile="http://hl7.org/fhir/StructureDefinition/Observation",
        events=_generic_events("emr.clinical", "observation"),
        params=(
            _patient_ref("patient", "subject", "Observation"),
            _patient_ref("subject", "subject", "Observation"),
            SearchParam("code", T, v.codings("code"), SPEC + "clinical-code", TOKEN, entry=True),
            SearchParam("date", D,
                        v.dates("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
                        SPEC + "clinical-date", DATE, sortable=True),
            SearchParam("category", T, v.codings("category"), SPEC + "Observation-category",
                        TOKEN),
            SearchParam("status", T, v.codes("status"), SPEC + "Observation-status", TOKEN),
            SearchParam("value-quantity", Q, v.quantities("valueQuantity"),
                        SPEC + "Observation-value-quantity",
                        "[eq|ne|gt|lt|ge|le]number[|system|code]; compared exactly."),
        ),
    )
)  # fmt: skip

# Workflows declare their own types; importing them registers them.
import functions.billing.declarations  # noqa: E402
import functions.measures.declarations  # noqa: E402
import functions.medications.declarations  # noqa: E402
import functions.notes.declarations  # noqa: E402
import functions.plans.declarations  # noqa: E402, F401
