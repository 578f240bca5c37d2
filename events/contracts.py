"""The registry of event contracts: every event name, its major versions and the
model of each.

On the wire (EventBridge `DetailType`) an event is named `<name>.v<major>`, e.g.
`note.signed.v1`; the detail keeps `version` (the major) as well. A change that
only adds optional fields keeps the major; anything else is a new major with its
own model, and producers and consumers move to it on their own schedule.
Consumers look a received event up here (`parse_detail_type`, `model_for`): an
unknown name or major is a contract they do not hold (their DLQ, with the reason).

The registry is built on first use (it imports every event module), so the
publisher and the API pay nothing for it at cold start.
"""

from __future__ import annotations

import functools
import re

from events.envelope import DomainEvent

WIRE = re.compile(r"(?P<name>[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)+)\.v(?P<major>[1-9][0-9]{0,3})")

Registry = dict[str, dict[int, type[DomainEvent]]]


def parse_detail_type(detail_type: str) -> tuple[str, int]:
    """`"note.signed.v1"` -> `("note.signed", 1)`; ValueError when not `<name>.v<major>`."""
    match = WIRE.fullmatch(detail_type) if isinstance(detail_type, str) else None
    if match is None:
        raise ValueError("detail-type is not <name>.v<major>")
    return match["name"], int(match["major"])


def major_of(cls: type[DomainEvent]) -> int:
    """The model's major version: the default of its `version` field."""
    default = cls.model_fields["version"].default
    if not isinstance(default, int) or default < 1:
        raise TypeError(f"{cls.__name__}: version must default to a major >= 1")
    return default


def wire_detail_type(event: DomainEvent | type[DomainEvent]) -> str:
    """The `DetailType` an event (or event class) is published with."""
    cls = event if isinstance(event, type) else type(event)
    return f"{cls.detail_type}.v{major_of(cls)}"


def _static() -> list[type[DomainEvent]]:
    from events.audit import PhiAccessed
    from events.encounters import EncounterFinished
    from events.measures import SafetyRiskIdentified, ScoreRecorded
    from events.medications import MedicationDiscontinued, MedicationPrescribed
    from events.notes import NoteCosigned, NoteSigned
    from events.patients import PatientCreated, PatientDeleted, PatientUpdated
    from events.plans import PlanSigned

    return [
        PatientCreated,
        PatientUpdated,
        PatientDeleted,
        EncounterFinished,
        NoteSigned,
        NoteCosigned,
        ScoreRecorded,
        SafetyRiskIdentified,
        MedicationPrescribed,
        MedicationDiscontinued,
        PlanSigned,
        PhiAccessed,
    ]


def _generic() -> list[type[DomainEvent]]:
    from events.resources import CHANGES, RESOURCE_SOURCES, event_class

    return [
        event_class(source, f"{noun}.{change}")
        for noun, source in RESOURCE_SOURCES.items()
        for change in CHANGES
    ]


@functools.cache
def _registry() -> Registry:
    registry: Registry = {}
    for cls in [*_static(), *_generic()]:
        majors = registry.setdefault(cls.detail_type, {})
        major = major_of(cls)
        if major in majors:
            raise TypeError(f"two models for {wire_detail_type(cls)}")
        majors[major] = cls
    return registry


def model_for(name: str, major: int) -> type[DomainEvent] | None:
    """The model of `<name>.v<major>`; None when that contract is unknown."""
    return _registry().get(name, {}).get(major)


def majors_of(name: str) -> list[int]:
    """The majors known for a name (empty when the name is unknown)."""
    return sorted(_registry().get(name, {}))


def all_contracts() -> list[tuple[str, int, type[DomainEvent]]]:
    """Every (name, major, model), sorted by name and major."""
    return sorted(
        (
            (name, major, cls)
            for name, majors in _registry().items()
            for major, cls in majors.items()
        ),
        key=lambda row: (row[0], row[1]),
    )
