"""Bad input gets a clear FHIR OperationOutcome naming the field, the right 4xx,
and changes nothing."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import patient_body


def _outcome(r):  # type: ignore[no-untyped-def]
    body = json.loads(r.body)
    assert body["resourceType"] == "OperationOutcome", body
    assert r.headers["Content-Type"].startswith("application/fhir+json")
    return body["issue"]


def _count_named(api, family: str) -> int:  # type: ignore[no-untyped-def]
    r = api.http.get(f"/fhir/R4/Patient?family={family}", headers=api.headers())
    return len(json.loads(r.body)["entry"])


@pytest.mark.parametrize(
    ("body", "status", "expression"),
    [
        ('{"resourceType": "Patient", "name": [', 400, None),
        ("[1, 2]", 400, None),
        ('{"resourceType": "Observation", "status": "final"}', 400, "Patient.resourceType"),
        ('{"name": [{"family": "X"}], "birthDate": "1990-01-01"}', 400, "Patient.resourceType"),
        (
            '{"resourceType": "Patient", "name": [{"family": "Bad"}], "birthDate": "1990-13-45"}',
            400,
            "Patient.birthDate",
        ),
        (
            '{"resourceType": "Patient", "name": [{"family": 7}], "birthDate": "1990-01-01"}',
            400,
            "Patient.name[0].family",
        ),
        (
            '{"resourceType": "Patient", "name": [{"family": "U"}], "birthDate": "1990-01-01", '
            '"favouriteColour": "blue"}',
            400,
            "Patient.favouriteColour",
        ),
        ('{"resourceType": "Patient", "birthDate": "1990-01-01"}', 400, "Patient.name"),
        ('{"resourceType": "Patient", "name": [{"family": "NoBirth"}]}', 400, "Patient.birthDate"),
        (
            '{"resourceType": "Patient", "name": [{"family": "G"}], "birthDate": "1990-01-01", '
            '"gender": "robot"}',
            400,
            "Patient.gender",
        ),
        (
            '{"resourceType": "Patient", "name": [{"family": "G"}], "birthDate": "1990-01-01", '
            '"active": "yes"}',
            400,
            "Patient.active",
        ),
        ("", 400, None),
        (
            '{"resourceType": "Patient", "name": [{"family": "   "}], "birthDate": "1990-01-01"}',
            400,
            "Patient.name",
        ),
        (
            '{"resourceType": "Patient", "name": [{"family": "F"}], "birthDate": "1990-01-01", '
            '"text": {"status": "generated", "div": "<div xmlns=\\"http://www.w3.org/1999/xhtml\\">'
            '<img src=x onerror=alert(1)></div>"}}',
            400,
            "Patient.text.div",
        ),
        (
            '{"resourceType": "Patient", "name": [{"family": "F"}], "birthDate": "1990-01-01", '
            '"multipleBirthInteger": NaN}',
            400,
            "Patient.multipleBirthInteger",
        ),
        ('{"resourceType": "Patient", "x": ' + "[" * 5000 + "]" * 5000 + "}", 400, None),
    ],
)
def test_invalid_create_is_400_naming_the_field(api, body, status, expression):
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=body)
    assert r.status_code == status, r.body
    issues = _outcome(r)
    if expression:
        assert expression in [e for i in issues for e in i.get("expression", [])]


def test_error_messages_do_not_echo_submitted_values(api):
    secret = "Zq" + uuid.uuid4().hex[:10]
    body = {**patient_body(), "birthDate": secret}
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=json.dumps(body))
    assert r.status_code == 400
    assert secret not in r.body.decode()


def test_rejected_create_writes_nothing(api):
    family = "Nothing" + uuid.uuid4().hex[:8]
    body = {**patient_body(family), "unknownElement": True}
    assert (
        api.http.post("/fhir/R4/Patient", headers=api.headers(), body=json.dumps(body)).status_code
        == 400
    )
    assert _count_named(api, family) == 0


def test_wrong_content_type_is_415(api):
    headers = {**api.headers(), "Content-Type": "application/xml"}
    r = api.http.post("/fhir/R4/Patient", headers=headers, body="<Patient/>")
    assert r.status_code == 415
    assert _outcome(r)[0]["code"] == "not-supported"


def test_missing_content_type_is_415(api):
    headers = {"Authorization": api.headers()["Authorization"]}
    r = api.http.post("/fhir/R4/Patient", headers=headers, body=json.dumps(patient_body()))
    assert r.status_code == 415


def test_plain_json_content_type_is_accepted(api):
    headers = {**api.headers(), "Content-Type": "application/json; charset=utf-8"}
    body = json.dumps(patient_body("Plain" + uuid.uuid4().hex[:6]))
    assert api.http.post("/fhir/R4/Patient", headers=headers, body=body).status_code == 201


def test_body_over_the_limit_is_413_and_nothing_is_written(api):
    family = "Huge" + uuid.uuid4().hex[:8]
    body = {
        **patient_body(family),
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">' + "x" * 300_000 + "</div>",
        },
    }
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=json.dumps(body))
    assert r.status_code == 413
    assert _outcome(r)[0]["code"] == "too-costly"
    assert _count_named(api, family) == 0


def test_unknown_resource_type_is_404(api):
    for path in ("/fhir/R4/Observation", "/fhir/R4/Observation/123"):
        r = api.http.get(path, headers=api.headers())
        assert r.status_code == 404
        assert _outcome(r)[0]["code"] == "not-supported"


def test_unknown_patient_is_404_and_malformed_id_too(api):
    for pid in ("01ABSENT000000000000000000", "bad$id"):
        r = api.http.get(f"/fhir/R4/Patient/{pid}", headers=api.headers())
        assert r.status_code == 404
        assert _outcome(r)[0]["code"] == "not-found"


@pytest.mark.parametrize("if_match", ['"abc"', "W/x", 'W/"-1"'])
def test_malformed_if_match_is_400(api, if_match):
    created = api.create(patient_body("Etag" + uuid.uuid4().hex[:6]))
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}",
        body=json.dumps(created),
        headers=api.headers(If_Match=if_match),
    )
    assert r.status_code == 400
    assert _outcome(r)[0]["expression"] == ["If-Match"]


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("bogus=1", "Patient.search.bogus"),
        ("family:contains=ab", "Patient.search.family:contains"),
        ("family=a", "Patient.search.family"),
        ("family=ab,cd", "Patient.search.family"),
        ("birthdate=ge1990", "Patient.search.birthdate"),
        ("birthdate=1990-1-1", "Patient.search.birthdate"),
        ("_count=0", "Patient.search._count"),
        ("_count=1000", "Patient.search._count"),
        ("_count=ten", "Patient.search._count"),
        ("identifier=sys|", "Patient.search.identifier"),
        ("_cursor=bad$cursor", "Patient.search._cursor"),
    ],
)
def test_bad_search_is_400_naming_the_parameter(api, query, expression):
    r = api.http.get(f"/fhir/R4/Patient?{query}", headers=api.headers())
    assert r.status_code == 400, r.body
    assert _outcome(r)[0]["expression"] == [expression]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("patch", "/fhir/R4/Patient/01ANY0000000000000000000000", "GET, PUT, DELETE"),
        ("post", "/fhir/R4/Patient/01ANY0000000000000000000000", "GET, PUT, DELETE"),
        ("put", "/fhir/R4/Patient", "GET, POST"),
        ("delete", "/fhir/R4/Patient", "GET, POST"),
    ],
)
def test_unsupported_method_is_405_with_allow(api, method, path, allowed):
    r = getattr(api.http, method)(path, headers=api.headers(), body="{}")
    assert r.status_code == 405
    assert r.headers["Allow"] == allowed
    assert _outcome(r)[0]["code"] == "not-supported"


def test_format_json_is_accepted_and_xml_is_refused(api):
    assert (
        api.http.get(
            "/fhir/R4/Patient?family=zz&_format=json&_pretty=true", headers=api.headers()
        ).status_code
        == 200
    )
    r = api.http.get("/fhir/R4/Patient?family=zz&_format=xml", headers=api.headers())
    assert r.status_code == 400
    assert _outcome(r)[0]["expression"] == ["Patient.search._format"]
