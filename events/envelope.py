"""The shape every domain event shares.

Events are small, versioned pydantic models with ids and codes - never PHI.
`source` names the producing workflow (`emr.<workflow>`), `detail_type` the
event (`<noun>.<verb>`), `version` its schema version; consumers route on
source/detail-type and must accept every version they declare.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from models.clock import iso, new_id, now


class DomainEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: ClassVar[str]
    detail_type: ClassVar[str]

    version: int = 1
    event_id: str = Field(default_factory=new_id)
    tenant: str
    occurred_at: str = Field(default_factory=lambda: iso(now()))
    actor: str
    request_id: str
