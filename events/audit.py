"""`PhiAccessed`: an audit record (models/audit.py) as an event on the bus.

The API writes an audit record for every request on PHI; the stream publisher
(events/stream.py) turns each INSERT of an `audit` or `audit-search` item into
one `phi.accessed` event (a search's `audit-copy` trail copies are not events:
the record itself names every patient). The event id is the audit id, so a
record published twice is one event to its consumers.

Ids and codes only: the actor's id (never `actor_name`), roles, action and
outcome codes, resource and patient ids, purpose and override codes, counts.
Never the query's values (`query_params` stays in the table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from events.envelope import DomainEvent

AUDIT_TYPES = frozenset({"audit", "audit-search"})


class PhiAccessed(DomainEvent):
    """A request read, wrote or was refused PHI (one audit record)."""

    source: ClassVar[str] = "emr.audit"
    detail_type: ClassVar[str] = "phi.accessed"

    audit_id: str
    roles: list[str] = []
    action: str  # e.g. "patient.read", "encounter.search"
    outcome: str  # FHIR AuditEvent outcome code: "0" success, "4", "8", "12"
    status: int  # HTTP status of the request
    at: str  # when the record was made (ISO-8601 UTC)
    source_ip: str | None = None
    route: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    patient_id: str | None = None
    patient_ids: list[str] | None = None  # every patient a search returned
    resource_version: int | None = None  # the audited record's `version`
    purpose: str | None = None  # v3 PurposeOfUse code
    overrides: list[str] | None = None  # kinds of rule overridden (never the reason)
    result_count: int | None = None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _strings(value: Any) -> list[str] | None:
    return None if value is None else [str(v) for v in value]


def phi_accessed(image: Mapping[str, Any]) -> PhiAccessed:
    """The event of an audit item, from its stream image (deserialized: numbers may
    be Decimal). Raises KeyError/ValueError when the image is not an audit record."""
    return PhiAccessed(
        event_id=str(image["audit_id"]),
        tenant=str(image["tenant"]),
        occurred_at=str(image["at"]),
        actor=str(image["actor"]),
        request_id=str(image["request_id"]),
        audit_id=str(image["audit_id"]),
        roles=_strings(image.get("roles")) or [],
        action=str(image["action"]),
        outcome=str(image["outcome"]),
        status=int(image["status"]),
        at=str(image["at"]),
        source_ip=image.get("source_ip"),
        route=image.get("route"),
        resource_type=image.get("resource_type"),
        resource_id=image.get("resource_id"),
        patient_id=image.get("patient_id"),
        patient_ids=_strings(image.get("patient_ids")),
        resource_version=_int(image.get("version")),
        purpose=image.get("purpose"),
        overrides=_strings(image.get("overrides")),
        result_count=_int(image.get("result_count")),
    )
