"""Two ways to call the API: over HTTP with one keep-alive connection (what a
client sees), and in-process through the Lambda entry point (what Lambda runs:
`app.app(api_gateway_proxy_event, context)`)."""

from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

BASE = "/fhir/R4"
FAMILY_PREFIX = "bench"  # every bench patient's family name starts with this
FHIR_JSON = "application/fhir+json"


def patient_body(i: int, patient_id: str | None = None) -> dict[str, Any]:
    """Short names: each name prefix is a search entry written in the create's
    transaction, and the round-trip counts do not depend on how many entries a
    write carries."""
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": f"Bench{i:02d}", "given": ["Al"]}],
        "birthDate": f"19{50 + i % 50:02d}-0{1 + i % 9}-1{i % 10}",
        "gender": "unknown",
    }
    if patient_id is not None:
        body["id"] = patient_id
    return body


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None


class HttpApi:
    """One persistent HTTP/1.1 connection to the local API."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self._conn = http.client.HTTPConnection(host, port, timeout=30)
        self._auth = f"Bearer {token}"

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = {"Authorization": self._auth, "Accept": FHIR_JSON, **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = FHIR_JSON
        self._conn.request(method, path, body=payload, headers=all_headers)
        resp = self._conn.getresponse()
        raw = resp.read()
        parsed = json.loads(raw) if raw else None
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed)

    def create(self, i: int) -> Reply:
        return self.call("POST", f"{BASE}/Patient", patient_body(i))

    def read(self, patient_id: str) -> Reply:
        return self.call("GET", f"{BASE}/Patient/{patient_id}")

    def update(self, patient_id: str, i: int, etag: str) -> Reply:
        body = patient_body(i, patient_id)
        return self.call("PUT", f"{BASE}/Patient/{patient_id}", body, {"If-Match": etag})

    def search_family(self, prefix: str) -> Reply:
        return self.call("GET", f"{BASE}/Patient?family={prefix}")

    def close(self) -> None:
        self._conn.close()


@dataclass
class LambdaContext:
    """The attributes of the Lambda runtime's context object that code may read."""

    function_name: str = "emr-dev"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:emr-dev"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def read_route(app: Any) -> tuple[str, str]:
    """The app's route template of GET /fhir/R4/Patient/{id} and the name of its
    path parameter (today `{resource_id}`, from functions/engine/routes.py), looked
    up in the Chalice app's routing table so the event matches what API Gateway
    would send for the deployed route."""
    prefix = f"{BASE}/Patient/{{"
    for path, methods in app.routes.items():
        if path.startswith(prefix) and path.endswith("}") and path.count("/") == 4:
            entry = methods.get("GET")
            if entry is not None and len(entry.view_args) == 1:
                return path, str(entry.view_args[0])
    raise LookupError(f"the app has no GET {BASE}/Patient/{{id}} route")


def read_event(
    patient_id: str,
    token: str,
    route: tuple[str, str] = (f"{BASE}/Patient/{{resource_id}}", "resource_id"),
) -> dict[str, Any]:
    """An API Gateway (REST, proxy) event for GET /fhir/R4/Patient/{id}."""
    resource, param = route
    path = f"{BASE}/Patient/{patient_id}"
    headers = {
        "accept": FHIR_JSON,
        "authorization": f"Bearer {token}",
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "x-forwarded-proto": "https",
    }
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {param: patient_id},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": "GET",
            "path": f"/api{path}",
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


class InProcessApi:
    """Invokes the Chalice app object the way the Lambda runtime does."""

    def __init__(self, app: Any, token: str) -> None:
        self._app = app
        self._token = token
        self._route = read_route(app)

    def event(self, patient_id: str) -> dict[str, Any]:
        return read_event(patient_id, self._token, self._route)

    def invoke(self, event: dict[str, Any], context: LambdaContext) -> int:
        response: dict[str, Any] = self._app(event, context)
        return int(response["statusCode"])
