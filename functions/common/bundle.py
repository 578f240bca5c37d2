"""FHIR Bundle shapes shared by search and history responses."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from models.clock import iso, now


def link(base: str, path: str, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return f"{base}/{path}" + (f"?{query}" if query else "")


def history_entry(
    base: str, reference: str, version: int, last_updated: str, resource: dict[str, Any] | None
) -> dict[str, Any]:
    """One version in a history Bundle; `resource` None means the version is a deletion."""
    if resource is None:
        method, status = "DELETE", "204"
    else:
        method, status = ("POST", "201") if version == 1 else ("PUT", "200")
    entry: dict[str, Any] = {
        "fullUrl": f"{base}/{reference}/_history/{version}",
        "request": {"method": method, "url": reference},
        "response": {"status": status, "etag": f'W/"{version}"', "lastModified": last_updated},
    }
    if resource is not None:
        entry["resource"] = resource
    return entry


def bundle(kind: str, entries: list[dict[str, Any]], links: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "timestamp": iso(now()),
        "link": [{"relation": rel, "url": url} for rel, url in links.items()],
        "entry": entries,
    }
