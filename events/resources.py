"""Events of resource types served by the generic engine (catalogue: events/README.md).

Every registered type emits `<type>.created`, `<type>.updated` and
`<type>.deleted` (type lower-cased) from its workflow's source; the detail names
the resource, its chart's patient and the version - ids only, never content.
The Patient keeps its own classes (events/patients.py), whose detail predates
this one.
"""

from __future__ import annotations

import functools

from events.envelope import DomainEvent

# The nouns whose `<noun>.created/.updated/.deleted` are contracts, with their source.
# tests/unit/test_event_contracts.py holds this list to the engine's declarations:
# declaring a type with generic events means adding its row here.
RESOURCE_SOURCES = {
    "practitioner": "emr.directory",
    "encounter": "emr.encounters",
    "condition": "emr.clinical",
    "allergyintolerance": "emr.clinical",
    "observation": "emr.clinical",
    "medicationrequest": "emr.medications",
    "note": "emr.notes",
    "psychotherapynote": "emr.notes",
    "provenance": "emr.notes",
    "psychotherapyprovenance": "emr.notes",
    "questionnaireresponse": "emr.measures",
    "flag": "emr.measures",
    "careplan": "emr.plans",
    "goal": "emr.plans",
    "chargeitem": "emr.billing",
    "claim": "emr.billing",
}
CHANGES = ("created", "updated", "deleted")


class ResourceChanged(DomainEvent):
    resource_type: str
    resource_id: str
    patient_id: str | None = None
    resource_version: int


@functools.cache
def event_class(source: str, detail_type: str) -> type[ResourceChanged]:
    """One subclass per (source, detail-type), made once."""
    name = "".join(part.title() for part in detail_type.replace(".", "_").split("_"))
    namespace = {"__module__": __name__, "source": source, "detail_type": detail_type}
    return type(name, (ResourceChanged,), namespace)
