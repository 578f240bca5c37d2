"""Event contracts: versioned detail-types on the wire, one model per (name, major),
round trips through JSON, no field that could carry PHI, the engine's declarations
covered, and docs/events generated from the models."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import pytest
from pydantic import ValidationError

from events import contracts, schemas
from events.audit import PhiAccessed, phi_accessed
from events.encounters import EncounterFinished
from events.envelope import DomainEvent
from events.notes import NoteCosigned, NoteSigned
from events.resources import RESOURCE_SOURCES
from functions.engine import registry
from functions.engine.registry import Change

CONTRACTS = contracts.all_contracts()
ENVELOPE = {"version", "event_id", "tenant", "occurred_at", "actor", "request_id"}
# Words a field of free text or identity would be named with: never in an event.
PHI_WORDS = ("name", "text", "birth", "address", "phone", "email", "display", "content",
             "title", "note_text", "answer", "dosage", "comment", "description")  # fmt: skip


def _sample(annotation: Any, field: str) -> Any:
    """A value of the annotation's type (the first non-None member of a union)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is list:
        return [f"{field}-1", f"{field}-2"]
    return {int: 3, bool: True, str: f"{field}-value"}[annotation]


def example(cls: type[DomainEvent]) -> DomainEvent:
    """An instance with every field set, defaults included."""
    values = {
        name: _sample(info.annotation, name)
        for name, info in cls.model_fields.items()
        if name not in ("version", "event_id", "occurred_at")
    }
    return cls(**values)


# --- detail-types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "parsed"),
    [
        ("note.signed.v1", ("note.signed", 1)),
        ("safety.risk-identified.v1", ("safety.risk-identified", 1)),
        ("encounter.finished.v2", ("encounter.finished", 2)),
        ("psychotherapyprovenance.deleted.v12", ("psychotherapyprovenance.deleted", 12)),
    ],
)
def test_a_versioned_detail_type_is_parsed_into_name_and_major(wire, parsed):
    assert contracts.parse_detail_type(wire) == parsed


@pytest.mark.parametrize(
    "wire",
    ["note.signed", "note.signed.v0", "note.signed.v", "note.signed.V1", "Note.signed.v1",
     "note.v1", ".signed.v1", "note..signed.v1", "note.signed.v1\n", " note.signed.v1",
     "note.signed.v01", "note.signed.vone", "", "note.signed.v1.v", "note#x.signed.v1"],
)  # fmt: skip
def test_a_malformed_detail_type_is_refused(wire):
    with pytest.raises(ValueError):
        contracts.parse_detail_type(wire)


def test_the_wire_detail_type_carries_the_major_of_the_model():
    assert contracts.wire_detail_type(NoteSigned) == "note.signed.v1"
    assert contracts.wire_detail_type(example(EncounterFinished)) == "encounter.finished.v1"
    assert contracts.wire_detail_type(PhiAccessed) == "phi.accessed.v1"


def test_known_contracts_are_found_and_unknown_ones_are_not():
    assert contracts.model_for("note.signed", 1) is NoteSigned
    assert contracts.model_for("note.cosigned", 1) is NoteCosigned
    assert contracts.model_for("encounter.finished", 1) is EncounterFinished
    assert contracts.model_for("phi.accessed", 1) is PhiAccessed
    created = contracts.model_for("encounter.created", 1)
    assert created is not None and created.source == "emr.encounters"
    assert contracts.model_for("note.signed", 2) is None  # unknown major
    assert contracts.model_for("note.shredded", 1) is None  # unknown name
    assert contracts.model_for("spaceship.created", 1) is None  # not a declared type
    assert contracts.majors_of("note.signed") == [1]
    assert contracts.majors_of("note.shredded") == []


def test_every_contract_is_listed_once_with_a_source_of_the_emr():
    names = [(name, major) for name, major, _ in CONTRACTS]
    assert len(names) == len(set(names))
    assert names == sorted(names)
    for name, major, cls in CONTRACTS:
        assert cls.source.startswith("emr.")
        assert cls.detail_type == name
        assert contracts.wire_detail_type(cls) == f"{name}.v{major}"
        assert contracts.parse_detail_type(f"{name}.v{major}") == (name, major)


# --- models ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "major", "cls"), CONTRACTS, ids=lambda v: str(v))
def test_every_event_survives_a_json_round_trip(name, major, cls):
    event = example(cls)
    wire = json.loads(event.model_dump_json())
    assert set(wire) >= ENVELOPE
    assert wire["version"] == major
    assert cls.model_validate(wire) == event
    found = contracts.model_for(*contracts.parse_detail_type(contracts.wire_detail_type(event)))
    assert found is cls


@pytest.mark.parametrize(("name", "major", "cls"), CONTRACTS, ids=lambda v: str(v))
def test_no_event_has_a_field_for_free_text_or_identity(name, major, cls):
    for field in cls.model_fields:
        assert not any(word in field for word in PHI_WORDS), f"{name}: {field}"


def test_an_event_refuses_fields_it_does_not_declare():
    wire = json.loads(example(EncounterFinished).model_dump_json())
    with pytest.raises(ValidationError):
        EncounterFinished.model_validate({**wire, "family_name": "Doe"})


def test_note_events_name_their_encounter_when_there_is_one():
    event = example(NoteSigned)
    assert event.encounter_id == "encounter_id-value"
    without = {k: v for k, v in json.loads(event.model_dump_json()).items() if k != "encounter_id"}
    assert NoteSigned.model_validate(without).encounter_id is None  # an older v1 detail


def test_phi_accessed_is_built_from_an_audit_image_without_the_actor_name():
    image = {
        "type": "audit-search", "audit_id": "01AUDIT", "tenant": "demo-clinic",
        "at": "2026-05-01T10:00:00.000Z", "actor": "user-1", "actor_name": "Dr. Jane Roe",
        "roles": ["clinician"], "action": "patient.search", "outcome": "0",
        "status": 200, "request_id": "req-1", "route": "/fhir/R4/Patient",
        "query_params": ["family"], "patient_ids": ["p1", "p2"], "result_count": 2,
        "version": None, "purpose": "TREAT", "overrides": None,
    }  # fmt: skip
    event = phi_accessed(image)
    assert (event.event_id, event.audit_id, event.occurred_at) == (
        "01AUDIT", "01AUDIT", "2026-05-01T10:00:00.000Z")  # fmt: skip
    assert event.patient_ids == ["p1", "p2"] and event.result_count == 2
    wire = event.model_dump_json()
    assert "Jane" not in wire and "Roe" not in wire and "query_params" not in wire


# --- the engine's declarations --------------------------------------------------------------


def _declared_event(decl: registry.ResourceType, change: Change) -> DomainEvent:
    assert decl.events is not None
    fields = {"tenant": "demo-clinic", "actor": "a", "request_id": "r", "resource_id": "x",
              "resource_type": decl.name, "patient_id": "p", "resource_version": 1}  # fmt: skip
    event: DomainEvent = decl.events(change, fields)
    return event


@pytest.mark.parametrize("change", list(Change))
def test_every_event_a_declared_type_emits_is_a_registered_contract(change):
    for decl in registry.all_types():
        if decl.events is None:
            continue
        event = _declared_event(decl, change)
        name, major = contracts.parse_detail_type(contracts.wire_detail_type(event))
        found = contracts.model_for(name, major)
        assert found is not None, f"{decl.name}: {name} is not in events/resources.py"
        assert found.source == event.source == decl.source, decl.name
        assert found.model_validate(json.loads(event.model_dump_json())) == event


def test_every_listed_resource_noun_is_a_declared_type():
    declared = {
        _declared_event(d, Change.CREATED).detail_type.split(".")[0]
        for d in registry.all_types()
        if d.events is not None
    }
    assert set(RESOURCE_SOURCES) <= declared


# --- JSON Schemas ---------------------------------------------------------------------------


def test_docs_events_holds_the_schemas_of_the_current_models():
    stale = schemas.differences()
    assert stale == [], f"run `python -m events.schemas`; out of date: {stale}"


def test_every_schema_names_its_detail_type_and_accepts_its_example():
    rendered = schemas.render()
    for name, major, cls in CONTRACTS:
        schema = json.loads(rendered[f"{name}.v{major}.json"])
        assert schema["x-detail-type"] == schema["title"] == f"{name}.v{major}"
        assert schema["x-source"] == cls.source and schema["description"]
        assert set(schema["required"]) <= set(schema["properties"])
        assert set(json.loads(example(cls).model_dump_json())) <= set(schema["properties"])
        assert f"`{name}.v{major}`" in rendered["README.md"]
