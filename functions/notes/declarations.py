"""Declarations of clinical notes, psychotherapy notes and their signatures.

A note is a `DocumentReference` (functions/notes/documents.py has its shape).
Psychotherapy notes (45 CFR 164.501) are a *variant*: the same FHIR type on the
same routes, stored apart under their own name, data class (own KMS key and
encryption context), key range, search tokens and policy row, with ids marked
`p` (`<patient>.p<ulid>`); see functions/engine/registry.py `Variant`. A search
reaches them only when it names their category; nothing else (the chart, other
note searches, `$everything`) reads their range.

Signatures are `Provenance` resources in the patient's chart, made only by
`$sign`/`$cosign`; those of psychotherapy notes are a variant too.
"""

from __future__ import annotations

from typing import Any

from functions.engine import values as v
from functions.engine.registry import (
    SPEC,
    CheckedReference,
    Compartment,
    ParamType,
    ResourceType,
    SearchParam,
    StateMachine,
    Variant,
    register,
)
from functions.engine.types import DATE, TOKEN, _generic_events, _patient_ref

S, T, D, R = ParamType.STRING, ParamType.TOKEN, ParamType.DATE, ParamType.REFERENCE
OURS = "https://emr.example/fhir/SearchParameter/"
NOTE_CLASS_SYSTEM = "https://emr.example/fhir/CodeSystem/note-class"
PSYCHOTHERAPY = "psychotherapy-note"
AWAITING_COSIGN_URL = "https://emr.example/fhir/StructureDefinition/awaiting-cosign"
MARKER = "p"

# docStatus: a plain update keeps a draft a draft; only $sign makes it final and
# only $cosign touches a final note (functions/notes/service.py). A signed note
# can be neither updated nor deleted: 409, checked in the write's own transaction.
NOTE_STATES = StateMachine(
    element="docStatus",
    transitions={
        "preliminary": frozenset({"preliminary"}),
        "final": frozenset(),
        "amended": frozenset(),
    },
    initial=frozenset({"preliminary"}),
    deletable=frozenset({"preliminary"}),
)
SIGN = NOTE_STATES.operation("$sign", frozenset({"preliminary"}), "final")
COSIGN = NOTE_STATES.operation("$cosign", frozenset({"final"}), "final")


def _note_rules(body: dict[str, Any]) -> list[Any]:
    from functions.notes.documents import note_rules

    return note_rules(body)


def _note_precheck(caller: Any, stored: Any, body: dict[str, Any]) -> None:
    """The author is the writer's own Practitioner; an addendum appends to a signed
    note of the same patient (functions/notes/service.py, imported with the first write)."""
    from functions.notes.service import note_precheck

    note_precheck(caller, stored, body)


def _extension_references(url: str) -> v.Extract:
    def extract(resource: dict[str, Any]) -> list[Any]:
        found = [e for e in resource.get("extension") or [] if isinstance(e, dict)
                 and e.get("url") == url]  # fmt: skip
        return v.references("valueReference")({"valueReference": [e.get("valueReference")
                                                                  for e in found]})  # fmt: skip

    return extract


def _is_psychotherapy(body: dict[str, Any]) -> bool:
    return (NOTE_CLASS_SYSTEM, PSYCHOTHERAPY) in v.codings("category")(body)


def _names_psychotherapy(params: dict[str, list[str]]) -> bool:
    return any(
        value.split(",").count(f"{NOTE_CLASS_SYSTEM}|{PSYCHOTHERAPY}") > 0
        for value in params.get("category", [])
    )


def _note_params(name: str) -> tuple[SearchParam, ...]:
    return (
        _patient_ref("patient", "subject", "DocumentReference"),
        _patient_ref("subject", "subject", "DocumentReference"),
        SearchParam("status", T, v.codes("status"), SPEC + "DocumentReference-status", TOKEN),
        SearchParam("doc-status", T, v.codes("docStatus"), OURS + f"{name}-doc-status",
                    "preliminary | final | amended (docStatus)."),
        SearchParam("type", T, v.codings("type"), SPEC + "clinical-type", TOKEN),
        SearchParam("category", T, v.codings("category"), SPEC + "DocumentReference-category",
                    TOKEN + f" {NOTE_CLASS_SYSTEM}|{PSYCHOTHERAPY} selects psychotherapy "
                    "notes (for their author and the roles the organisation grants)."),
        SearchParam("date", D, v.dates("date"), SPEC + "DocumentReference-date", DATE,
                    sortable=True),
        SearchParam("author", R, v.references("author"), SPEC + "DocumentReference-author",
                    "[Practitioner/]id.", entry=True, targets=("Practitioner",)),
        SearchParam("encounter", R, v.references("context.encounter"),
                    SPEC + "clinical-encounter", "[Encounter/]id.", targets=("Encounter",)),
        SearchParam("relatesto", R, v.references("relatesTo.target"),
                    SPEC + "DocumentReference-relatesto", "The note an addendum appends to.",
                    targets=("DocumentReference",)),
        SearchParam("awaiting-cosign", R, _extension_references(AWAITING_COSIGN_URL),
                    OURS + f"{name}-awaiting-cosign",
                    "[Practitioner/]id: signed notes of that supervisor's trainees awaiting "
                    "co-signature.", entry=True, targets=("Practitioner",)),
    )  # fmt: skip


_NOTE_DOC = (
    "A clinical note: text in content[0].attachment (text/plain; charset=utf-8, base64 "
    "data, at most 100,000 characters and 190,000 bytes of UTF-8: 413 beyond), subject, "
    "context.encounter, author (the writer's own Practitioner). "
    "Saved as docStatus preliminary, edited with If-Match, locked by $sign (409 on any "
    "later update or delete); corrections are addenda (relatesTo appends)."
)

DOCUMENT_REFERENCE = register(
    ResourceType(
        "DocumentReference",
        data_class="clinical-note",
        source="emr.notes",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/DocumentReference",
        events=_generic_events("emr.notes", "note"),
        rules=_note_rules,
        states=NOTE_STATES,
        references=(CheckedReference("author", "Practitioner"),),
        precheck=_note_precheck,
        documentation=_NOTE_DOC,
        params=_note_params("DocumentReference"),
    )
)

PSYCHOTHERAPY_NOTE = register(
    ResourceType(
        "PsychotherapyNote",
        data_class="psychotherapy",
        source="emr.notes",
        compartment=Compartment("subject", ("patient", "subject")),
        profile="http://hl7.org/fhir/StructureDefinition/DocumentReference",
        events=_generic_events("emr.notes", "psychotherapynote"),
        rules=_note_rules,
        states=NOTE_STATES,
        references=(CheckedReference("author", "Practitioner"),),
        precheck=_note_precheck,
        variant=Variant("DocumentReference", MARKER, _is_psychotherapy, _names_psychotherapy),
        documentation=_NOTE_DOC,
        params=_note_params("PsychotherapyNote"),
    )
)


def _targets_psychotherapy(body: dict[str, Any]) -> bool:
    from models import keys

    targets = v.references("target")(body)
    return any(keys.marker_of(t.partition("/")[2]) == MARKER for t in targets)


def _names_psychotherapy_target(params: dict[str, list[str]]) -> bool:
    from models import keys

    values = [x for value in params.get("target", []) for x in value.split(",")]
    return any(keys.marker_of(x.rpartition("/")[2]) == MARKER for x in values)


def _target_patients(body: dict[str, Any]) -> list[Any]:
    """`Patient/<id>` of the chart the targets live in (compound ids name it)."""
    from models import keys

    found = {keys.patient_of(t.partition("/")[2]) for t in v.references("target")(body)}
    return [f"Patient/{p}" for p in sorted(x for x in found if x)]


def _provenance_params() -> tuple[SearchParam, ...]:
    return (
        SearchParam("patient", R, _target_patients, SPEC + "Provenance-patient",
                    "The patient ([Patient/]id) whose chart holds the signed resource: a "
                    "Query on the chart (consistent).", targets=("Patient",)),
        SearchParam("target", R, v.references("target"), SPEC + "Provenance-target",
                    "The signed resource ([Type/]id, version ignored).", entry=True,
                    targets=("DocumentReference", "CarePlan")),
        SearchParam("recorded", D, v.dates("recorded"), SPEC + "Provenance-recorded", DATE,
                    sortable=True),
        SearchParam("agent", R, v.references("agent.who"), SPEC + "Provenance-agent",
                    "[Practitioner/]id.", targets=("Practitioner",)),
    )  # fmt: skip


PROVENANCE = register(
    ResourceType(
        "Provenance",
        data_class="phi",
        source="emr.notes",
        compartment=Compartment("target", ("patient",), through=True),
        profile="http://hl7.org/fhir/StructureDefinition/Provenance",
        events=_generic_events("emr.notes", "provenance"),
        documentation="Signatures: who signed (author) or co-signed (verifier) which version "
        "of a note or plan, when, and the SHA-256 of what was signed. Made only by $sign and "
        "$cosign; read and searched (by target or patient), never written directly.",
        params=_provenance_params(),
    )
)

PSYCHOTHERAPY_PROVENANCE = register(
    ResourceType(
        "PsychotherapyProvenance",
        data_class="psychotherapy",
        source="emr.notes",
        compartment=Compartment("target", ("patient",), through=True),
        profile="http://hl7.org/fhir/StructureDefinition/Provenance",
        events=_generic_events("emr.notes", "psychotherapyprovenance"),
        variant=Variant("Provenance", MARKER, _targets_psychotherapy,
                        _names_psychotherapy_target),
        params=_provenance_params(),
    )
)  # fmt: skip


import functions.notes.access  # noqa: E402, F401  (registers the note checks and views)
