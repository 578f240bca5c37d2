"""The caller, as established from a verified token (never from path or body)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    sub: str
    username: str | None
    tenant: str
    roles: frozenset[str]
