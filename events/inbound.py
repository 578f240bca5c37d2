"""Inbound events: an SQS message body (an EventBridge event) checked against the
event contracts (events/contracts.py) and turned into what a handler receives.

Anything that is not a known, valid event raises `DeadLetter` with a short reason
that names field locations, error types and event names only, never a value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from events.contracts import majors_of, model_for, parse_detail_type

REASON_LIMIT = 200
_NAME = re.compile(r"[A-Za-z0-9.\-]{1,80}")


@dataclass(frozen=True)
class Received:
    """One validated event, as a handler sees it."""

    event_id: str
    tenant: str
    source: str
    name: str  # the detail-type without its version: "note.signed"
    major: int
    detail: dict[str, Any]
    occurred_at: str


class DeadLetter(Exception):
    """The message can never be processed; `reason` says why (no PHI)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:REASON_LIMIT]


def _quoted(value: str) -> str:
    """A detail-type or source as it may appear in a reason: a name, or nothing of it."""
    return value if _NAME.fullmatch(value) else "(not a name)"


def _invalid(error: ValidationError) -> str:
    """Field locations and error types only: pydantic's own message quotes the input."""
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}:{e['type']}" for e in error.errors()
    ]
    return "invalid detail: " + ", ".join(parts[:5])


def parse(body: str) -> Received:
    """An SQS message body (an EventBridge event) -> Received, or DeadLetter."""
    try:
        envelope = json.loads(body)
    except ValueError:
        raise DeadLetter("malformed JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("detail"), dict):
        raise DeadLetter("not an EventBridge event")
    detail_type, source = envelope.get("detail-type"), envelope.get("source")
    if not isinstance(detail_type, str) or not isinstance(source, str):
        raise DeadLetter("not an EventBridge event")
    try:
        name, major = parse_detail_type(detail_type)
    except (ValueError, TypeError):
        raise DeadLetter(f"unversioned detail-type: {_quoted(detail_type)}") from None
    model = model_for(name, major)
    if model is None:
        known = majors_of(name)
        if known:
            raise DeadLetter(f"unknown major version {major} of {name} (known: {known})")
        raise DeadLetter(f"unknown detail-type: {_quoted(detail_type)}")
    if getattr(model, "source", source) != source:
        raise DeadLetter(f"source {_quoted(source)} does not publish {detail_type}")
    try:
        event = model.model_validate(envelope["detail"])
    except ValidationError as error:
        raise DeadLetter(_invalid(error)) from None
    return Received(
        event_id=event.event_id,
        tenant=event.tenant,
        source=source,
        name=name,
        major=major,
        detail=event.model_dump(mode="json"),
        occurred_at=event.occurred_at,
    )
