"""Shared fixtures: one embedded moto server (real HTTP on 127.0.0.1) per test
worker, provisioned from infra/template.json exactly as `make run` does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.moto_server import EmbeddedMotoServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def moto() -> Iterator[EmbeddedMotoServer]:
    server = EmbeddedMotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(moto: EmbeddedMotoServer):  # type: ignore[no-untyped-def]
    from devstack.provision import provision

    local = provision(moto.endpoint)
    os.environ.update(local.env())
    return local


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Third-party test material kept beside the repository. Missing data is a
    failure, never a skip: CI must not pass silently without it."""
    if not (SHARED_DATA / "synthea").is_dir():
        pytest.fail(f"test data folder missing: {SHARED_DATA} (see README, 'Test data')")
    return SHARED_DATA


class Api:
    """Chalice's test client (the local gateway, in process) plus demo tokens."""

    def __init__(self, stack) -> None:  # type: ignore[no-untyped-def]
        import boto3
        from chalice.test import Client

        import app as app_module
        from devstack import seed

        self._seed = seed
        self._stack = stack
        self._cognito = boto3.client("cognito-idp")
        seed.ensure_users(self._cognito, stack.user_pool_id)
        self._tokens: dict[tuple[str, str], str] = {}
        self.client = Client(app_module.app)
        self.http = self.client.http

    def token(self, role: str = "clinician", tenant: str = "demo-clinic") -> str:
        if (role, tenant) not in self._tokens:
            self._tokens[(role, tenant)] = self._seed.id_token(
                self._cognito, self._stack.user_pool_id, self._stack.app_client_id, role, tenant
            )
        return self._tokens[(role, tenant)]

    def headers(self, role: str = "clinician", tenant: str = "demo-clinic", **extra: str):  # type: ignore[no-untyped-def]
        h = {
            "Authorization": f"Bearer {self.token(role, tenant)}",
            "Content-Type": "application/fhir+json",
        }
        h.update({k.replace("_", "-"): v for k, v in extra.items()})
        return h

    def post(self, kind: str, body: dict, role: str = "clinician",  # type: ignore[type-arg]
             tenant: str = "demo-clinic"):  # type: ignore[no-untyped-def]  # fmt: skip
        """POST a resource of `kind`; the response, whatever its status."""
        import json

        return self.http.post(
            f"/fhir/R4/{kind}", headers=self.headers(role, tenant), body=json.dumps(body)
        )

    def search(self, kind: str, query: str, role: str = "clinician",
               tenant: str = "demo-clinic") -> list[dict]:  # type: ignore[type-arg]  # fmt: skip
        """The resources a search of `kind` returns (its status must be 200)."""
        import json

        r = self.http.get(f"/fhir/R4/{kind}?{query}", headers=self.headers(role, tenant))
        assert r.status_code == 200, r.body
        return [e["resource"] for e in json.loads(r.body).get("entry", [])]

    def create(self, body: dict, role: str = "clinician", tenant: str = "demo-clinic") -> dict:  # type: ignore[type-arg]
        import json

        r = self.http.post(
            "/fhir/R4/Patient", headers=self.headers(role, tenant), body=json.dumps(body)
        )
        assert r.status_code == 201, r.body
        return json.loads(r.body)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def api(stack) -> Api:  # type: ignore[no-untyped-def]
    return Api(stack)


def patient_body(
    family: str = "Testperson",
    given: str = "Alex",
    birth: str = "1985-06-15",
    mrn: str | None = None,
) -> dict:  # type: ignore[type-arg]
    body = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        "gender": "unknown",
    }
    if mrn:
        body["identifier"] = [{"system": "urn:emr:mrn", "value": mrn}]
    return body


def outcome_issues(response) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    """The issues of an OperationOutcome response."""
    import json

    outcome = json.loads(response.body)
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"]  # type: ignore[no-any-return]


def next_path(bundle: dict) -> str | None:  # type: ignore[type-arg]
    """The path of a Bundle's `next` link, for the test client (which takes paths)."""
    urls = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    return "/fhir/R4" + urls[0].split("/fhir/R4", 1)[1] if urls else None
