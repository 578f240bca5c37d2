"""The Patient API as a FHIR client sees it, through Chalice's local gateway."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import pytest

from tests.conftest import next_path, patient_body


def _unique(prefix: str = "Crud") -> str:
    return prefix + uuid.uuid4().hex[:8]


def test_create_returns_201_with_server_id_location_and_etag(api):
    r = api.http.post(
        "/fhir/R4/Patient",
        headers=api.headers(),
        body=json.dumps({**patient_body(_unique()), "id": "client-chosen"}),
    )
    assert r.status_code == 201
    body = json.loads(r.body)
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Location"].endswith(f"/fhir/R4/Patient/{body['id']}/_history/1")
    assert r.headers["Content-Type"].startswith("application/fhir+json")


def test_read_returns_what_was_created(api):
    created = api.create(patient_body(_unique(), given="Read"))
    r = api.http.get(f"/fhir/R4/Patient/{created['id']}", headers=api.headers())
    assert r.status_code == 200
    assert json.loads(r.body) == created
    assert r.headers["ETag"] == 'W/"1"'


def test_update_with_if_match_increments_version(api):
    created = api.create(patient_body(_unique()))
    changed = {**created, "gender": "female"}
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}",
        body=json.dumps(changed),
        headers=api.headers(If_Match='W/"1"'),
    )
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["meta"]["versionId"] == "2"
    assert r.headers["ETag"] == 'W/"2"'
    again = api.http.get(f"/fhir/R4/Patient/{created['id']}", headers=api.headers())
    assert json.loads(again.body)["gender"] == "female"


def test_update_with_stale_version_is_412_and_changes_nothing(api):
    created = api.create(patient_body(_unique()))
    url = f"/fhir/R4/Patient/{created['id']}"
    first = api.http.put(
        url, body=json.dumps({**created, "gender": "male"}), headers=api.headers(If_Match='W/"1"')
    )
    assert first.status_code == 200
    stale = api.http.put(
        url, body=json.dumps({**created, "gender": "other"}), headers=api.headers(If_Match='W/"1"')
    )
    assert stale.status_code == 412
    assert json.loads(stale.body)["issue"][0]["expression"] == ["If-Match"]
    current = json.loads(api.http.get(url, headers=api.headers()).body)
    assert current["gender"] == "male" and current["meta"]["versionId"] == "2"


def test_update_without_if_match_makes_a_new_version(api):
    created = api.create(patient_body(_unique()))
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}",
        body=json.dumps({**created, "gender": "other"}),
        headers=api.headers(),
    )
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["meta"]["versionId"] == "2" and r.headers["ETag"] == 'W/"2"'
    stale = api.http.put(
        f"/fhir/R4/Patient/{created['id']}",
        body=json.dumps(created),
        headers=api.headers(If_Match='W/"1"'),
    )
    assert stale.status_code == 412


def test_a_tenant_can_require_if_match(api, monkeypatch):
    from functions.common.settings import api_settings

    created = api.create(patient_body(_unique()))
    monkeypatch.setenv("EMR_IF_MATCH_REQUIRED_TENANTS", "other-clinic, demo-clinic")
    api_settings.cache_clear()
    try:
        r = api.http.put(
            f"/fhir/R4/Patient/{created['id']}", body=json.dumps(created), headers=api.headers()
        )
        assert r.status_code == 428
        assert json.loads(r.body)["issue"][0]["expression"] == ["If-Match"]
        ok = api.http.put(
            f"/fhir/R4/Patient/{created['id']}",
            body=json.dumps(created),
            headers=api.headers(If_Match='W/"1"'),
        )
        assert ok.status_code == 200
    finally:
        monkeypatch.delenv("EMR_IF_MATCH_REQUIRED_TENANTS")
        api_settings.cache_clear()


def test_update_of_unknown_patient_is_404(api):
    body = {**patient_body(_unique()), "id": "01NOTTHERE0000000000000000"}
    r = api.http.put(
        "/fhir/R4/Patient/01NOTTHERE0000000000000000",
        body=json.dumps(body),
        headers=api.headers(If_Match='W/"1"'),
    )
    assert r.status_code == 404


def test_update_body_id_must_match_url(api):
    created = api.create(patient_body(_unique()))
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}",
        body=json.dumps({**created, "id": "x"}),
        headers=api.headers(If_Match='W/"1"'),
    )
    assert r.status_code == 400
    assert json.loads(r.body)["issue"][0]["expression"] == ["Patient.id"]


def test_delete_then_read_is_410_and_delete_is_idempotent(api):
    created = api.create(patient_body(_unique()))
    url = f"/fhir/R4/Patient/{created['id']}"
    assert api.http.delete(url, headers=api.headers("supervisor")).status_code == 204
    assert api.http.get(url, headers=api.headers()).status_code == 410
    assert api.http.delete(url, headers=api.headers("supervisor")).status_code == 204
    r = api.http.put(url, body=json.dumps(created), headers=api.headers(If_Match='W/"2"'))
    assert r.status_code == 410


def test_vread_and_history_newest_first(api):
    created = api.create(patient_body(_unique()))
    url = f"/fhir/R4/Patient/{created['id']}"
    api.http.put(
        url, body=json.dumps({**created, "gender": "male"}), headers=api.headers(If_Match='W/"1"')
    )
    v1 = api.http.get(f"{url}/_history/1", headers=api.headers())
    assert v1.status_code == 200 and json.loads(v1.body)["gender"] == "unknown"
    assert api.http.get(f"{url}/_history/9", headers=api.headers()).status_code == 404
    hist = json.loads(api.http.get(f"{url}/_history", headers=api.headers()).body)
    assert hist["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in hist["entry"]] == ["2", "1"]


def test_history_pages_with_next_links(api):
    created = api.create(patient_body(_unique()))
    url = f"/fhir/R4/Patient/{created['id']}"
    for version in range(1, 4):
        r = api.http.put(
            url,
            body=json.dumps({**created, "gender": "male"}),
            headers=api.headers(If_Match=f'W/"{version}"'),
        )
        assert r.status_code == 200
    seen, next_url = [], f"{url}/_history?_count=2"
    while next_url:
        page = json.loads(api.http.get(next_url, headers=api.headers()).body)
        seen += [e["response"]["etag"] for e in page["entry"]]
        next_url = next_path(page)
    assert seen == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']


def test_deleted_version_appears_in_history(api):
    created = api.create(patient_body(_unique()))
    url = f"/fhir/R4/Patient/{created['id']}"
    api.http.delete(url, headers=api.headers("supervisor"))
    hist = json.loads(api.http.get(f"{url}/_history", headers=api.headers()).body)
    assert hist["entry"][0]["request"]["method"] == "DELETE"
    assert "resource" not in hist["entry"][0]


def test_metadata_states_what_is_supported(api):
    r = api.http.get("/fhir/R4/metadata")
    assert r.status_code == 200
    cap = json.loads(r.body)
    assert cap["resourceType"] == "CapabilityStatement" and cap["fhirVersion"] == "4.0.1"
    (patient,) = [res for res in cap["rest"][0]["resource"] if res["type"] == "Patient"]
    assert {i["code"] for i in patient["interaction"]} == {
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "create",
        "search-type",
    }
    assert {p["name"] for p in patient["searchParam"]} == {
        "family",
        "given",
        "name",
        "birthdate",
        "identifier",
        "gender",
        "_id",
        "_lastUpdated",
        "_count",
        "_sort",
        "_total",
        "_summary",
    }
    by_name = {p["name"]: p for p in patient["searchParam"]}
    assert by_name["birthdate"]["definition"] == (
        "http://hl7.org/fhir/SearchParameter/individual-birthdate"
    )
    assert patient["conditionalCreate"] is True
    assert sorted(r["type"] for r in cap["rest"][0]["resource"]) == sorted([
        "Patient",
        "Practitioner",
        "Encounter",
        "Condition",
        "AllergyIntolerance",
        "Observation",
        "QuestionnaireResponse",
        "Flag",
        "MedicationRequest",
        "DocumentReference",
        "Provenance",
        "CarePlan",
        "Goal",
        "Questionnaire",
        "AuditEvent",
        "ChargeItem",
        "Claim",
    ])
    # psychotherapy notes are served as DocumentReference, never as a type of their own
    assert "PsychotherapyNote" not in json.dumps(cap)


def test_capability_statement_is_valid_fhir(api):
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    CapabilityStatement.model_validate(json.loads(api.http.get("/fhir/R4/metadata").body))


def test_meta_tags_and_security_labels_are_kept_but_version_is_the_servers(api):
    body = {
        **patient_body(_unique()),
        "meta": {
            "versionId": "42",
            "lastUpdated": "2001-01-01T00:00:00Z",
            "tag": [{"system": "urn:emr:test", "code": "demo"}],
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ],
        },
    }
    created = api.create(body)
    assert created["meta"]["versionId"] == "1"
    assert created["meta"]["lastUpdated"] != "2001-01-01T00:00:00Z"
    assert created["meta"]["tag"] == body["meta"]["tag"]
    assert created["meta"]["security"] == body["meta"]["security"]


# --- HTTP details -------------------------------------------------------------------------

HTTP_DATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$"
)


def test_every_response_on_phi_says_no_store_errors_included(api):
    created = api.create(patient_body(_unique()))
    url = f"/fhir/R4/Patient/{created['id']}"
    with_body = {"body": json.dumps(created)}
    responses = {
        "read": api.http.get(url, headers=api.headers()),
        "vread": api.http.get(f"{url}/_history/1", headers=api.headers()),
        "history": api.http.get(f"{url}/_history", headers=api.headers()),
        "search": api.http.get("/fhir/R4/Patient?family=zz", headers=api.headers()),
        "audit": api.http.get(
            f"/fhir/R4/AuditEvent?patient={created['id']}", headers=api.headers("compliance")
        ),
        "create": api.http.post("/fhir/R4/Patient", headers=api.headers(), **with_body),
        "update": api.http.put(url, headers=api.headers(If_Match='W/"1"'), **with_body),
        "stale update": api.http.put(url, headers=api.headers(If_Match='W/"1"'), **with_body),
        "unknown": api.http.get(
            "/fhir/R4/Patient/01NOTTHERE0000000000000000", headers=api.headers()
        ),
        "bad search": api.http.get("/fhir/R4/Patient?bogus=1", headers=api.headers()),
        "forbidden": api.http.get(url, headers=api.headers("compliance")),
        "no token": api.http.get(url),
        "delete": api.http.delete(url, headers=api.headers("supervisor")),
    }
    assert {k: r.status_code for k, r in responses.items()} == {
        "read": 200,
        "vread": 200,
        "history": 200,
        "search": 200,
        "audit": 200,
        "create": 201,
        "update": 200,
        "stale update": 412,
        "unknown": 404,
        "bad search": 400,
        "forbidden": 403,
        "no token": 401,
        "delete": 204,
    }
    for name, r in responses.items():
        assert r.headers.get("Cache-Control") == "no-store", name
    assert "no-store" not in api.http.get("/fhir/R4/metadata").headers.get("Cache-Control", "")


def test_last_modified_is_an_http_date_of_the_versions_instant(api):
    created = api.create(patient_body(_unique()))
    url = f"/fhir/R4/Patient/{created['id']}"
    for r in (
        api.http.get(url, headers=api.headers()),
        api.http.get(f"{url}/_history/1", headers=api.headers()),
        api.http.put(url, body=json.dumps(created), headers=api.headers(If_Match='W/"1"')),
    ):
        assert r.status_code == 200
        value = r.headers["Last-Modified"]
        assert HTTP_DATE.match(value), value
        instant = datetime.fromisoformat(json.loads(r.body)["meta"]["lastUpdated"])
        assert parsedate_to_datetime(value) == instant.replace(microsecond=0)


def _versions(api, path: str) -> list[str]:  # type: ignore[no-untyped-def]
    seen, url = [], path
    while url:
        r = api.http.get(url, headers=api.headers())
        assert r.status_code == 200, r.body
        page = json.loads(r.body)
        seen += [e["response"]["etag"] for e in page["entry"]]
        url = next_path(page)
    return seen


def test_history_since_keeps_versions_updated_at_or_after_it_and_pages(api):
    created = api.create(patient_body(_unique()))
    url = f"/fhir/R4/Patient/{created['id']}"
    stamps = [created["meta"]["lastUpdated"]]
    for version in range(1, 5):
        r = api.http.put(
            url,
            body=json.dumps({**created, "gender": "male"}),
            headers=api.headers(If_Match=f'W/"{version}"'),
        )
        stamps.append(json.loads(r.body)["meta"]["lastUpdated"])
    since = quote(stamps[2])  # version 3's instant
    assert _versions(api, f"{url}/_history?_since={since}") == ['W/"5"', 'W/"4"', 'W/"3"']
    assert _versions(api, f"{url}/_history?_since={since}&_count=1") == ['W/"5"', 'W/"4"', 'W/"3"']
    first = json.loads(
        api.http.get(f"{url}/_history?_since={since}&_count=1", headers=api.headers()).body
    )
    assert all("_since=" in link["url"] for link in first["link"])
    offset = datetime.fromisoformat(stamps[2]).astimezone(timezone(timedelta(hours=-5)))
    assert _versions(api, f"{url}/_history?_since={quote(offset.isoformat())}")[-1] == 'W/"3"'
    assert _versions(api, f"{url}/_history?_since=2999-01-01T00:00:00Z") == []


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-01-01", "2026-01-01T10:00:00", "2026-13-01T00:00:00Z"]
)
def test_history_since_that_is_not_an_instant_is_400_naming_it(api, value):
    created = api.create(patient_body(_unique()))
    r = api.http.get(
        f"/fhir/R4/Patient/{created['id']}/_history?_since={quote(value)}", headers=api.headers()
    )
    assert r.status_code == 400
    (issue,) = json.loads(r.body)["issue"]
    assert "_since" in issue["diagnostics"] and issue["expression"] == ["Patient.history._since"]


class _Sent:
    """Stands in for the local server's socket: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, dict, bytes]] = []  # type: ignore[type-arg]

    def __call__(self, code, headers, body):  # type: ignore[no-untyped-def]
        self.sent.append((code, dict(headers), body))


@pytest.mark.parametrize("authorization", [None, "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"])
def test_the_local_server_answers_an_unknown_route_with_a_fhir_404(api, authorization):
    """What Chalice's local gateway raises for an unknown route (403 Missing
    Authentication Token, or with an Authorization header API Gateway's
    IncompleteSignature message echoing the header) becomes the FHIR 404."""
    from chalice.config import Config
    from chalice.local import LocalGateway, LocalGatewayException

    import app as app_module
    from devstack.server import EmrRequestHandler

    config = Config.create(chalice_stage="local", app_name="emr", chalice_app=app_module.app)
    headers = {"authorization": authorization} if authorization else {}
    with pytest.raises(LocalGatewayException) as raised:
        LocalGateway(app_module.app, config).handle_request("GET", "/nope", headers, b"")
    assert raised.value.CODE == 403
    handler = EmrRequestHandler.__new__(EmrRequestHandler)
    sent = _Sent()
    handler._send_http_response = sent  # type: ignore[method-assign]
    handler._send_error_response(raised.value)
    ((code, sent_headers, body),) = sent.sent
    assert code == 404
    assert sent_headers["Content-Type"] == "application/fhir+json"
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"
    assert b"eyJ" not in body  # the token is never echoed
