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
    """One version in a history Bundle (R4 3.1.0.11): `fullUrl` is the resource's
    URL (without `_history`), `request` the interaction that made the version,
    `response` its outcome; `resource` None means the version is a deletion."""
    url = reference
    if resource is None:
        method, status = "DELETE", "204"
    elif version == 1:
        method, status, url = "POST", "201", reference.partition("/")[0]
    else:
        method, status = "PUT", "200"
    entry: dict[str, Any] = {
        "fullUrl": f"{base}/{reference}",
        "request": {"method": method, "url": url},
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
