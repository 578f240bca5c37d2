"""Links (Location, fullUrl, Bundle links, the CapabilityStatement's url) come from
configuration only: Host and X-Forwarded-* headers never reach a response."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from functions.common.settings import api_settings
from tests.conftest import patient_body

HOSTILE = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "javascript",
    "X-Forwarded-Port": "6666",
    "Forwarded": "host=evil.example;proto=javascript",
}
LOCAL_BASE = "http://127.0.0.1:8000/fhir/R4"


def _hostile(api, role: str = "clinician", **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {**api.headers(role, **extra), **HOSTILE}


def _text(r) -> str:  # type: ignore[no-untyped-def]
    return json.dumps(dict(r.headers)) + r.body.decode()


def _links(r) -> list[str]:  # type: ignore[no-untyped-def]
    found = [r.headers["Location"]] if "Location" in r.headers else []
    body = json.loads(r.body) if r.body else {}
    found += [link["url"] for link in body.get("link", [])]
    found += [e["fullUrl"] for e in body.get("entry", [])]
    if body.get("resourceType") == "CapabilityStatement":
        found.append(body["implementation"]["url"])
    return found


@pytest.fixture
def settings_env(monkeypatch) -> Iterator[pytest.MonkeyPatch]:  # type: ignore[no-untyped-def]
    api_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    api_settings.cache_clear()


def test_hostile_forwarding_headers_never_appear_in_any_response(api):
    family = "Linked" + uuid.uuid4().hex[:6]
    create = api.http.post(
        "/fhir/R4/Patient", headers=_hostile(api), body=json.dumps(patient_body(family))
    )
    assert create.status_code == 201
    created = json.loads(create.body)
    url = f"/fhir/R4/Patient/{created['id']}"
    api.create(patient_body(family))
    responses = [
        create,
        api.http.get(url, headers=_hostile(api)),
        api.http.put(url, headers=_hostile(api, If_Match='W/"1"'), body=json.dumps(created)),
        api.http.get(f"{url}/_history/1", headers=_hostile(api)),
        api.http.get(f"{url}/_history?_count=1", headers=_hostile(api)),
        api.http.get(f"/fhir/R4/Patient?family={family}&_count=1", headers=_hostile(api)),
        api.http.get(
            f"/fhir/R4/AuditEvent?patient={created['id']}&_count=1",
            headers=_hostile(api, "compliance"),
        ),
        api.http.get("/fhir/R4/metadata", headers=HOSTILE),
        api.http.get("/fhir/R4/Patient/01NOTTHERE0000000000000000", headers=_hostile(api)),
        api.http.get(url, headers=HOSTILE),
    ]
    links = [link for r in responses for link in _links(r)]
    assert len(links) >= 10
    assert all(link.startswith(LOCAL_BASE + "/") or link == LOCAL_BASE for link in links), links
    for r in responses:
        text = _text(r).lower()
        for value in ("evil.example", "javascript", "6666"):
            assert value not in text, (value, r.status_code)


def test_links_use_the_configured_public_base_url(api, settings_env):
    settings_env.setenv("EMR_PUBLIC_BASE_URL", "https://api.example.org/fhir/R4/")
    r = api.http.post(
        "/fhir/R4/Patient", headers=_hostile(api), body=json.dumps(patient_body("Based"))
    )
    assert r.status_code == 201
    pid = json.loads(r.body)["id"]
    assert r.headers["Location"] == f"https://api.example.org/fhir/R4/Patient/{pid}/_history/1"
    metadata = json.loads(api.http.get("/fhir/R4/metadata", headers=HOSTILE).body)
    assert metadata["implementation"]["url"] == "https://api.example.org/fhir/R4"


def test_the_local_base_url_follows_the_api_port(settings_env):
    settings_env.delenv("EMR_PUBLIC_BASE_URL", raising=False)
    settings_env.setenv("EMR_API_PORT", "8123")
    assert api_settings().public_base_url == "http://127.0.0.1:8123/fhir/R4"


@pytest.mark.parametrize(
    "value",
    [
        "javascript://evil.example/%0aalert(1)",
        "//evil.example/fhir/R4",
        "/fhir/R4",
        "ftp://api.example.org/fhir/R4",
        "https://user:pw@api.example.org/fhir/R4",
        "https://api.example.org/fhir/R4?x=1",
        "https://api.example.org/fhir/R4#x",
        "https://api.example.org/fhir/R4\r\nSet-Cookie: x=1",
        "https://api.example.org:port/fhir/R4",
        "https:///fhir/R4",
    ],
)
def test_a_public_base_url_that_is_not_an_absolute_http_url_is_refused_at_load(settings_env, value):
    settings_env.setenv("EMR_PUBLIC_BASE_URL", value)
    with pytest.raises(ValueError, match="EMR_PUBLIC_BASE_URL"):
        api_settings()
