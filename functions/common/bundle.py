"""FHIR Bundle shapes shared by search and history responses."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from models.clock import iso, now


def link(base: str, path: str, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return f"{base}/{path}" + (f"?{query}" if query else "")


def bundle(kind: str, entries: list[dict[str, Any]], links: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "timestamp": iso(now()),
        "link": [{"relation": rel, "url": url} for rel, url in links.items()],
        "entry": entries,
    }
