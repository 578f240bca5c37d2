"""Bad input gets a clear FHIR OperationOutcome naming the field, the right 4xx,
and changes nothing."""

from __future__ import annotations

import datetime
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
    for path in ("/fhir/R4/Substance", "/fhir/R4/Substance/123"):
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
        ("family=ab,c", "Patient.search.family"),
        ("family=ab,", "Patient.search.family"),
        ("birthdate=ap1990", "Patient.search.birthdate"),
        ("birthdate=1990-1-1", "Patient.search.birthdate"),
        ("birthdate=ge1990-02-30", "Patient.search.birthdate"),
        ("_count=ten", "Patient.search._count"),
        ("_count=-1", "Patient.search._count"),
        ("identifier=|", "Patient.search.identifier"),
        ("identifier:text=x", "Patient.search.identifier:text"),
        ("general-practitioner=x", "Patient.search.general-practitioner"),
        ("name.family=x", "Patient.search.name.family"),
        ("_summary=text", "Patient.search._summary"),
        ("_sort=family", "Patient.search._sort"),
        ("_total=all", "Patient.search._total"),
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
        ("post", "/fhir/R4/Patient/01ANY0000000000000000000000/_history", "GET"),
        ("delete", "/fhir/R4/Patient/01ANY0000000000000000000000/_history", "GET"),
        ("put", "/fhir/R4/Patient/01ANY0000000000000000000000/_history/1", "GET"),
        ("patch", "/fhir/R4/Patient/01ANY0000000000000000000000/_history/1", "GET"),
        ("post", "/fhir/R4/AuditEvent", "GET"),
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
    assert r.status_code == 406
    assert _outcome(r)[0]["expression"] == ["_format"]
    r = api.http.get("/fhir/R4/Patient?family=zz&_format=text/csv", headers=api.headers())
    assert r.status_code == 400
    assert _outcome(r)[0]["expression"] == ["Patient.search._format"]
    r = api.http.get(
        "/fhir/R4/Patient?family=zz", headers=api.headers(Accept="application/fhir+xml")
    )
    assert r.status_code == 406
    assert _outcome(r)[0]["expression"] == ["Accept"]
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # a browser
    assert (
        api.http.get("/fhir/R4/Patient?family=zz", headers=api.headers(Accept=accept)).status_code
        == 200
    )


# --- parser limits: what used to reach a 500 -------------------------------------------


def _nested_extensions(depth: int) -> str:
    """JSON text of an extension with `depth` extensions nested inside (built as
    text: json.dumps itself stops at Python's recursion limit)."""
    leaf = '{"url": "http://example.org/leaf", "valueString": "x"}'
    head = '{"url": "http://example.org/nest", "extension": ['
    return head * depth + leaf + "]}" * depth


def _with(family: str, extra: str) -> str:
    """A valid Patient's JSON text with `extra` (raw JSON members) appended."""
    return json.dumps(patient_body(family))[:-1] + ", " + extra + "}"


def _expressions(r) -> list[str]:  # type: ignore[no-untyped-def]
    return [e for i in _outcome(r) for e in i.get("expression", [])]


@pytest.mark.parametrize("depth", [40, 150, 990])
def test_deeply_nested_extensions_are_a_short_400(api, capfd, depth):
    family = "Deep" + uuid.uuid4().hex[:8]
    body = _with(family, f'"extension": [{_nested_extensions(depth)}]')
    capfd.readouterr()
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=body)
    assert r.status_code == 400, r.body[:300]
    assert len(r.body) < 1000
    assert _expressions(r) == ["Patient.extension"]
    out, err = capfd.readouterr()
    assert "unhandled error" not in out + err
    assert max((len(line) for line in (out + err).splitlines()), default=0) < 4000
    assert _count_named(api, family) == 0


def test_nesting_up_to_the_limit_is_accepted(api):
    body = _with("Nest" + uuid.uuid4().hex[:8], f'"extension": [{_nested_extensions(20)}]')
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=body)
    assert r.status_code == 201, r.body


def test_a_five_thousand_digit_integer_is_400(api):
    family = "Digits" + uuid.uuid4().hex[:8]
    text = json.dumps(patient_body(family))[:-1] + ', "multipleBirthInteger": ' + "9" * 5000 + "}"
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=text)
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.multipleBirthInteger"]
    assert "9999" not in r.body.decode()
    assert _count_named(api, family) == 0


def test_count_errors_name_the_interaction_they_belong_to(api):
    created = api.create(patient_body("Countname" + uuid.uuid4().hex[:6]))
    r = api.http.get(f"/fhir/R4/Patient/{created['id']}/_history?_count=0", headers=api.headers())
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.history._count"]
    r = api.http.get(
        f"/fhir/R4/AuditEvent?patient={created['id']}&_count=\u00b2",
        headers=api.headers("compliance"),
    )
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["AuditEvent.search._count"]


@pytest.mark.parametrize("digit", ["\u00b2", "\u0663", "\u0661\u0660"])
def test_unicode_digits_in_count_are_400(api, digit):
    r = api.http.get(f"/fhir/R4/Patient?family=zz&_count={digit}", headers=api.headers())
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.search._count"]


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "x", "-1", "0", "1" * 12])
def test_bad_before_version_in_history_is_400(api, value):
    created = api.create(patient_body("Hist" + uuid.uuid4().hex[:6]))
    r = api.http.get(
        f"/fhir/R4/Patient/{created['id']}/_history?_before_version={value}",
        headers=api.headers(),
    )
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.history._before_version"]


@pytest.mark.parametrize("tag", ['W/"\u00b2"', 'W/"\u0663"', "\u00b2", 'W/"' + "1" * 12 + '"'])
def test_unicode_digits_in_if_match_are_400(api, tag):
    created = api.create(patient_body("Uni" + uuid.uuid4().hex[:6]))
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}",
        body=json.dumps(created),
        headers=api.headers(If_Match=tag),
    )
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["If-Match"]


@pytest.mark.parametrize("version", ["\u00b2", "\u0663", "1" * 40])
def test_unicode_digits_in_vread_are_404(api, version):
    created = api.create(patient_body("Vread" + uuid.uuid4().hex[:6]))
    r = api.http.get(f"/fhir/R4/Patient/{created['id']}/_history/{version}", headers=api.headers())
    assert r.status_code == 404, r.body


# --- bodies that used to be accepted -----------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expression"),
    [
        ('"resourceType": "Patient"', "Patient.resourceType"),
        ('"gender": "male"', "Patient.gender"),
        ('"contact": [{"gender": "male", "gender": "female"}]', "Patient.contact[0].gender"),
        ('"active": 1', "Patient.active"),
        ('"active": 0', "Patient.active"),
        ('"multipleBirthInteger": true', "Patient.multipleBirthInteger"),
        ('"multipleBirthBoolean": 1', "Patient.multipleBirthBoolean"),
        ('"photo": [{"size": true}]', "Patient.photo[0].size"),
        ('"photo": [{"size": 12.0}]', "Patient.photo[0].size"),
        ('"extension": [{"url": "http://x.org/e", "valueBoolean": 1}]', None),
        ('"extension": [{"url": "http://x.org/e", "valueDecimal": false}]', None),
        ('"multipleBirthInteger": Infinity', "Patient.multipleBirthInteger"),
        ('"multipleBirthInteger": 1e400', "Patient.multipleBirthInteger"),
        ('"deceasedDateTime": "2001-02-30"', "Patient.deceasedDateTime"),
        ('"deceasedDateTime": "2001-02-28T24:30:00Z"', "Patient.deceasedDateTime"),
        ('"name": [{"family": "Ok", "period": {"start": "2001-13-01"}}]', None),
        ('"extension": [{"url": "http://x.org/e", "valueDate": "1999-02-29"}]', None),
    ],
)
def test_lax_json_is_400_naming_the_element(api, extra, expression):
    family = "Lax" + uuid.uuid4().hex[:8]
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=_with(family, extra))
    assert r.status_code == 400, r.body
    if expression:
        assert expression in _expressions(r)
    assert _count_named(api, family) == 0


def test_duplicate_resource_type_is_400(api):
    body = (
        '{"resourceType": "Observation", "resourceType": "Patient", '
        '"name": [{"family": "Dup"}], "birthDate": "1990-01-01"}'
    )
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=body)
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.resourceType"]


@pytest.mark.parametrize(
    ("member", "value", "expression"),
    [
        ("family", "Nul\u0000l", "Patient.name[0].family"),
        ("family", "Bell\u0007", "Patient.name[0].family"),
        ("family", "Esc\u001b[31m", "Patient.name[0].family"),
        ("family", "Del\u007f", "Patient.name[0].family"),
        ("family", "C1\u0085", "Patient.name[0].family"),
        ("family", "Rlo\u202etxt.exe", "Patient.name[0].family"),
        ("given", "Iso\u2066late", "Patient.name[0].given[0]"),
        ("given", "Pdi\u2069", "Patient.name[0].given[0]"),
        ("given", "Lre\u202a", "Patient.name[0].given[0]"),
    ],
)
def test_control_and_bidi_characters_are_400(api, member, value, expression):
    family = "Ctl" + uuid.uuid4().hex[:8]
    body = patient_body(family)
    if member == "family":
        body["name"][0]["family"] = family + value
    else:
        body["name"][0]["given"] = [value]
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=json.dumps(body))
    assert r.status_code == 400, r.body
    assert _expressions(r) == [expression]
    assert value not in r.body.decode()
    assert _count_named(api, family) == 0


def test_control_characters_anywhere_are_400(api):
    family = "Ctl" + uuid.uuid4().hex[:8]
    body = {**patient_body(family), "address": [{"line": ["1 Main\u0001St"], "city": "Town"}]}
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=json.dumps(body))
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.address[0].line[0]"]


def test_tab_and_newlines_are_allowed_in_strings(api):
    family = "Tab" + uuid.uuid4().hex[:8]
    body = {**patient_body(family), "address": [{"text": "1 Main St\r\n\tFlat 2"}]}
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=json.dumps(body))
    assert r.status_code == 201, r.body


def test_a_lone_surrogate_escape_is_400(api):
    family = "Sur" + uuid.uuid4().hex[:8]
    r = api.http.post(
        "/fhir/R4/Patient",
        headers=api.headers(),
        body=_with(family, '"address": [{"city": "a\\ud800b"}]'),
    )
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.address[0].city"]
    assert _count_named(api, family) == 0


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "utf-16-le", "utf-32", "cp1252"])
def test_a_body_that_is_not_utf8_is_400(api, encoding):
    family = "Enc" + uuid.uuid4().hex[:8]
    text = json.dumps({**patient_body(family), "address": [{"city": "Zürich"}]}, ensure_ascii=False)
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=text.encode(encoding))
    assert r.status_code == 400, r.body
    assert _count_named(api, family) == 0


def test_a_utf8_body_with_byte_order_mark_is_accepted(api):
    family = "Bom" + uuid.uuid4().hex[:8]
    text = json.dumps({**patient_body(family), "address": [{"city": "Zürich"}]}, ensure_ascii=False)
    r = api.http.post(
        "/fhir/R4/Patient", headers=api.headers(), body=b"\xef\xbb\xbf" + text.encode()
    )
    assert r.status_code == 201, r.body


@pytest.mark.parametrize("charset", ["iso-8859-1", "utf-16", '"latin1"', "ascii"])
def test_a_charset_other_than_utf8_is_415(api, charset):
    family = "Cs" + uuid.uuid4().hex[:8]
    headers = {**api.headers(), "Content-Type": f"application/fhir+json; charset={charset}"}
    r = api.http.post("/fhir/R4/Patient", headers=headers, body=json.dumps(patient_body(family)))
    assert r.status_code == 415, r.body
    assert _expressions(r) == ["Content-Type"]
    assert _count_named(api, family) == 0


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"'])
def test_charset_utf8_in_any_spelling_is_accepted(api, charset):
    headers = {**api.headers(), "Content-Type": f"application/fhir+json;charset={charset}"}
    body = json.dumps(patient_body("Cs" + uuid.uuid4().hex[:8]))
    assert api.http.post("/fhir/R4/Patient", headers=headers, body=body).status_code == 201


def _shifted(days: int) -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=days)


@pytest.mark.parametrize(
    "birth",
    [
        lambda: str(_shifted(0).year + 1),
        lambda: f"{_shifted(0).year + 1}-01",
        lambda: _shifted(2).isoformat(),
        lambda: "2999-12-31",
    ],
)
def test_a_birth_date_in_the_future_is_400(api, birth):
    family = "Future" + uuid.uuid4().hex[:8]
    body = patient_body(family, birth=birth())
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=json.dumps(body))
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.birthDate"]
    assert _count_named(api, family) == 0


@pytest.mark.parametrize(
    "birth",
    [
        lambda: _shifted(0).isoformat(),
        lambda: _shifted(0).isoformat()[:7],
        lambda: str(_shifted(0).year),
        lambda: "1900-02-28",
    ],
)
def test_a_birth_date_up_to_today_is_accepted(api, birth):
    body = patient_body("Today" + uuid.uuid4().hex[:8], birth=birth())
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=json.dumps(body))
    assert r.status_code == 201, r.body


@pytest.mark.parametrize(
    "value",
    [
        "2001-02-30",
        "2001-02-29",
        "2001-13",
        "2001-00",
        "2001-04-31",
        "0000",
        "0000-01-01",
        "eq2001-02-30",
        "\u0662\u0660\u0660\u0661",
    ],
)
def test_impossible_search_dates_are_400(api, value):
    r = api.http.get(f"/fhir/R4/Patient?birthdate={value}", headers=api.headers())
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.search.birthdate"]


@pytest.mark.parametrize("value", ["2000-02-29", "2001-12", "0001", "eq1990-01-31"])
def test_real_search_dates_are_accepted(api, value):
    r = api.http.get(f"/fhir/R4/Patient?birthdate={value}", headers=api.headers())
    assert r.status_code == 200, r.body


# --- narratives ---------------------------------------------------------------------------

XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">'


def _narrative(family: str, div: str) -> str:
    body = {**patient_body(family), "text": {"status": "generated", "div": div}}
    return json.dumps(body)


@pytest.mark.parametrize(
    "div",
    [
        "<svg/onload=alert(1)>",
        XHTML + "<svg/onload=alert(1)></div>",
        XHTML + "<img/src=x/onerror=alert(1)></div>",
        XHTML + '<img src="x" onerror="alert(1)"/></div>',
        XHTML + '<p onclick="alert(1)">x</p></div>',
        XHTML + '<a href="jav&#x61;script:alert(1)">x</a></div>',
        XHTML + '<a href="java&#9;script:alert(1)">x</a></div>',
        XHTML + '<a href="java\tscript:alert(1)">x</a></div>',
        XHTML + '<a href=" JavaScript:alert(1)">x</a></div>',
        XHTML + '<a href="vbscript:msgbox(1)">x</a></div>',
        XHTML + "<style>p { color: red }</style></div>",
        XHTML + '<meta http-equiv="refresh" content="0;url=https://evil.example"/></div>',
        XHTML + '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a></div>',
        XHTML + '<img src="data:image/png;base64,iVBORw0KGgo="/></div>',
        XHTML + '<base href="https://evil.example/"/></div>',
        XHTML + '<link rel="stylesheet" href="https://evil.example/x.css"/></div>',
        XHTML + "<div>",
        XHTML + "<p>unclosed</div>",
        XHTML + "<script>alert(1)</script></div>",
        XHTML + "<SCRIPT>alert(1)</SCRIPT></div>",
        XHTML + '<iframe src="https://evil.example"></iframe></div>',
        XHTML + '<object data="x"></object></div>',
        XHTML + '<form action="https://evil.example"><input/></form></div>',
        XHTML + '<a href="//evil.example/x">x</a></div>',
        XHTML + '<img src="mailto:a@b.example"/></div>',
        XHTML + '<span style="background-image: url(https://evil.example/t.png)">x</span></div>',
        XHTML + '<span style="position: fixed">x</span></div>',
        XHTML + "<!--[if IE]><script>alert(1)</script><![endif]--></div>",
        XHTML + "<![CDATA[<script>alert(1)</script>]]></div>",
        '<!DOCTYPE div [<!ENTITY x "y">]>' + XHTML + "&x;</div>",
        XHTML + "&nbsp;</div>",
        '<div xmlns="http://www.w3.org/2000/svg">x</div>',
        "<div>no namespace</div>",
        '<p xmlns="http://www.w3.org/1999/xhtml">not a div</p>',
        XHTML + "x</div><div>second root</div>",
        XHTML + '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg></div>',
        XHTML + '<a xmlns:x="http://www.w3.org/1999/xlink" x:href="javascript:1">x</a></div>',
        XHTML + "<blink>x</blink></div>",
        XHTML + "<p><div>block in p</div></p></div>",
        "plain text",
    ],
)
def test_unsafe_or_malformed_narrative_is_400(api, div):
    family = "Narr" + uuid.uuid4().hex[:8]
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=_narrative(family, div))
    assert r.status_code == 400, r.body
    assert _expressions(r) == ["Patient.text.div"]
    assert _count_named(api, family) == 0


@pytest.mark.parametrize(
    "div",
    [
        XHTML + "Generated by Synthea.</div>",
        XHTML + "<p>Ana &amp; Bea &lt;3 &#160; caf&#xe9;</p></div>",
        XHTML
        + '<table class="grid"><tr><th>Name</th></tr><tr><td colspan="2">Ana</td></tr></table>'
        + "</div>",
        XHTML + "<table>\n  <tbody>\n    <tr><td>x</td></tr>\n  </tbody>\n</table>\n</div>",
        XHTML
        + '<a href="https://example.org/a?b=1&amp;c=2">web</a> <a href="mailto:x@example.org">m</a>'
        + ' <a href="#part">here</a> <a name="part">anchor</a></div>',
        XHTML + '<img src="https://example.org/i.png" alt="i"/><img src="#photo"/></div>',
        XHTML + '<span style="color: red; font-weight: bold">x</span></div>',
        XHTML + "<ul><li>one</li><li>two<br/>lines</li></ul><hr/></div>",
        XHTML + '<p id="p1" title="t" lang="en" xml:lang="en">x</p></div>',
        XHTML + "<pre>a\n  b</pre><h1>h</h1><blockquote>q</blockquote></div>",
        XHTML + "<p></p><span/><b></b></div>",
    ],
)
def test_safe_narrative_is_accepted_as_sent(api, div):
    family = "Safe" + uuid.uuid4().hex[:8]
    r = api.http.post("/fhir/R4/Patient", headers=api.headers(), body=_narrative(family, div))
    assert r.status_code == 201, r.body
    assert json.loads(r.body)["text"]["div"] == div


@pytest.mark.parametrize(
    "extra",
    [
        '"active": 1',
        '"gender": "male", "gender": "female"',
        '"address": [{"city": "Bidi\\u202e"}]',
        '"text": {"status": "generated", "div": "<div xmlns=\\"http://www.w3.org/1999/xhtml\\">'
        '<a href=\\"jav&#x61;script:x\\">x</a></div>"}',
    ],
)
def test_a_refused_update_writes_no_version(api, extra):
    created = api.create(patient_body("Upd" + uuid.uuid4().hex[:8]))
    body = json.dumps({**created})[:-1] + ", " + extra + "}"
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}", body=body, headers=api.headers(If_Match='W/"1"')
    )
    assert r.status_code == 400, r.body
    history = api.http.get(f"/fhir/R4/Patient/{created['id']}/_history", headers=api.headers())
    assert [e["resource"]["meta"]["versionId"] for e in json.loads(history.body)["entry"]] == ["1"]
