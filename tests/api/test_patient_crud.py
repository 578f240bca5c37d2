"""The Patient API as a FHIR client sees it, through Chalice's local gateway."""

from __future__ import annotations

import json
import uuid

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


def test_update_without_if_match_is_428(api):
    created = api.create(patient_body(_unique()))
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}", body=json.dumps(created), headers=api.headers()
    )
    assert r.status_code == 428


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
        "_count",
    }
    assert [r["type"] for r in cap["rest"][0]["resource"]] == ["Patient", "AuditEvent"]


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
