"""Property-based fuzzing of every route through Chalice's local gateway.

Whatever arrives - random or mutated JSON, text that is not JSON or not UTF-8,
random query strings, If-Match headers, path ids, methods and roles - the API
answers below 500, every refusal is an OperationOutcome that never repeats a
submitted value, and a refused write changes nothing: the tenant's Patient list
and the partition of the patient the fuzzer updates are counted before and after.

Deterministic (derandomized, no example database) and bounded, so it runs in
seconds and the same way in CI. EMR_FUZZ_SCALE=10 digs ten times deeper.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from models import keys
from tests.conftest import patient_body

TENANT = "demo-clinic"
SECRET = "Zq7Fuzz" + "Secret"  # planted in submitted values; never in a refusal
PID = "<fuzzed>"  # stands for the fuzzed patient's id until a request is sent
SCALE = int(os.environ.get("EMR_FUZZ_SCALE", "1"))
# No example database (database=None below), and Hypothesis's caches go to the
# temporary folder: the fuzz test writes nothing into the checkout.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "emr-hypothesis"))


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples * SCALE,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- values -----------------------------------------------------------------------------------

NASTY = [
    "\x00", "\x07", "\x1b", "\x7f", "\x85", "\u202e", "\u2066", "\ufeff", "\u00b2", "\u0663",
    "\uff11", "\t", "\r\n", "<", "&", '"', "\\", "%", "#", "/", "..", "'", "\U0001f600",
]  # fmt: skip
UNICODE_DIGITS = [
    "\u00b2",
    "\u0663",
    "\uff11",
    "\U0001d7d7",
    "\u2468",
]  # superscript 2, Arabic-Indic 3, fullwidth 1, bold 9, circled 9
names = st.one_of(  # element and parameter names: a refusal names these, by design
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(NASTY),
    st.lists(st.sampled_from([*NASTY, "a", "1"]), max_size=6).map("".join),
)
text = st.one_of(  # values: a refusal never repeats these
    names,
    st.just(SECRET),
    st.lists(st.sampled_from([*NASTY, "a", "1", SECRET]), max_size=6).map("".join),
)
numbers = st.one_of(
    st.integers(-(2**31), 2**31),
    st.integers(-(10**60), 10**60),
    st.floats(allow_nan=True, allow_infinity=True),
)
numerals = st.one_of(  # what a client might send where a whole number is wanted
    st.sampled_from([*UNICODE_DIGITS, "", "0", "-1", "+1", "1e3", "1.0", " 1", "9" * 12]),
    st.integers(-2, 10**12).map(str),
    st.lists(st.sampled_from([*UNICODE_DIGITS, "1", "0"]), min_size=1, max_size=4).map("".join),
    text,
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
PATIENT_ELEMENTS = [
    "resourceType", "id", "meta", "text", "extension", "identifier", "active", "name",
    "telecom", "gender", "birthDate", "_birthDate", "deceasedBoolean", "deceasedDateTime",
    "address", "maritalStatus", "multipleBirthBoolean", "multipleBirthInteger", "photo",
    "contact", "communication", "generalPractitioner", "managingOrganization", "link",
    "family", "given", "url", "valueString", "valueInteger", "div", "status", "system",
    "value", "period", "start", "size", "language", "preferred",
]  # fmt: skip
element_keys = st.one_of(st.sampled_from(PATIENT_ELEMENTS), names)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(element_keys, inner, max_size=4)
    ),
    max_leaves=12,
)
XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">'
narratives = st.one_of(
    st.sampled_from(
        [
            XHTML + "ok</div>",
            XHTML + '<a href="jav&#x61;script:alert(1)">x</a></div>',
            XHTML + "<div>",
            "<svg/onload=alert(1)>",
            XHTML + '<img src="https://e.org/x.png" onerror="x"/></div>',
            XHTML + '<p style="color:red">' + SECRET + "</p></div>",
        ]
    ),
    st.lists(st.sampled_from(["<b>", "</b>", "<p>", "</p>", "&amp;", "&x;", "<br/>", SECRET])).map(
        lambda parts: XHTML + "".join(parts) + "</div>"
    ),
    text,
)
dates = st.one_of(
    st.sampled_from(
        ["1990", "1990-01", "1990-01-31", "2001-02-29", "2001-02-30", "2001-13", "2001-00",
         "0000", "0001", "9999-12-31", "2999", "eq1990", "ge1990", "1990-1-1", "\u0661\u0669"]
    ),
    text,
)  # fmt: skip


def _family() -> str:
    return "Fuzzmark" + uuid.uuid4().hex[:8]


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def mutated_patient(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Patient (marked by its family name) with a few random changes."""
    body: dict[str, Any] = patient_body(_family(), "Alex", "1985-06-15", mrn="MRN-1")
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "drop", "given", "narrative", "nest", "date"]))
        if action == "set":
            body[draw(element_keys)] = draw(json_values)
        elif action == "drop" and body:
            body.pop(draw(st.sampled_from(sorted(body))))
        elif action == "given":
            body["name"] = [{"family": _family(), "given": [draw(text)]}]
        elif action == "narrative":
            body["text"] = {"status": "generated", "div": draw(narratives)}
        elif action == "date":
            element = draw(st.sampled_from(["birthDate", "deceasedDateTime"]))
            body[element] = draw(dates)
        else:
            nested: Any = draw(scalars)
            for _ in range(draw(st.sampled_from([400, 150, 40, 20, 1]))):
                nested = {"url": "http://e.org/x", "extension": [nested]}
            body["extension"] = [nested]
    return body


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """Text that JSON parsers get wrong: duplicates, huge numbers, deep nesting,
    broken or non-UTF-8 encodings, or just bytes."""
    kind = draw(st.sampled_from(["duplicate", "number", "deep", "encoding", "cut", "bytes"]))
    valid = _dumps(patient_body(_family())).decode()
    if kind == "duplicate":
        key = draw(st.sampled_from(["resourceType", "birthDate", "active", "name"]))
        return ("{" + f'"{key}": ' + _dumps(draw(json_values)).decode() + ", " + valid[1:]).encode()
    if kind == "number":
        digits = draw(st.sampled_from([6000, 4301, 4300, 33, 11]))
        return (valid[:-1] + f', "multipleBirthInteger": {"9" * digits}}}').encode()
    if kind == "deep":
        depth = draw(st.sampled_from([3000, 990, 150, 64, 63, 62]))
        return (valid[:-1] + ', "extension": ' + "[" * depth + "]" * depth + "}").encode()
    if kind == "encoding":
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]))
        return (valid[:-1] + ', "address": [{"city": "Zürich"}]}').encode(codec)
    if kind == "cut":
        return valid.encode()[: draw(st.integers(0, len(valid) - 1))]
    return draw(st.binary(max_size=64))


bodies = st.one_of(
    mutated_patient().map(_dumps),
    raw_bodies(),
    mutated_patient().map(_dumps),
    raw_bodies(),
    json_values.map(_dumps),
)
content_types = st.sampled_from(
    ["application/fhir+json"] * 4
    + ["application/json; charset=utf-8", "application/json; charset=iso-8859-1", "text/plain"]
)
roles = st.sampled_from(["clinician"] * 6 + ["front_desk", "biller", "supervisor"])
if_matches = st.one_of(
    st.none(),
    numerals.map(lambda n: f'W/"{n}"'),
    st.integers(0, 3).map(lambda n: f'W/"{n}"'),
    st.sampled_from(["W/", '""', "*", 'W/"1", W/"2"']),
    text,
)
random_ids = st.one_of(
    st.text(st.sampled_from("ABCXYZ0129-._~%$ é/\u00b2"), max_size=70),
    st.just("01ABSENT000000000000000000"),
).map(lambda s: quote(s, safe=""))


# --- query strings ----------------------------------------------------------------------------

PARAMETERS: dict[str, st.SearchStrategy[str]] = {
    "_count": numerals,
    "_before_version": numerals,
    "birthdate": dates,
    "family": text,
    "given": text,
    "name": text,
    "identifier": st.one_of(text, st.sampled_from(["sys|", "|x", "urn:emr:mrn|MRN-1", "a|b|"])),
    "_cursor": st.one_of(text, random_ids),
    "_format": st.sampled_from(["json", "xml", "application/fhir+json", ""]),
    "patient": st.one_of(st.just(PID), random_ids, text),
    "subject": st.one_of(st.just(f"Patient/{PID}"), random_ids, text),
    "date": st.one_of(
        st.tuples(
            st.sampled_from(["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "xx"]), dates
        ).map("".join),
        text,
    ),
    "_lastUpdated": st.tuples(st.sampled_from(["ge", "lt", ""]), dates).map("".join),
    "_sort": st.one_of(
        st.sampled_from(["date", "-date", "_lastUpdated", "-birthdate", "family", "a,-b"]), text
    ),
    "_total": st.one_of(st.sampled_from(["accurate", "none", "estimate"]), text),
    "_totalMethod": st.sampled_from(["count", "x"]),
    "_summary": st.one_of(st.sampled_from(["count", "true", "false"]), text),
    "_id": st.one_of(random_ids, st.just(f"{PID},x")),
    "_offset": numerals,
    "code": st.one_of(text, st.sampled_from(["http://loinc.org|8302-2", "|x", "x,y", "s|", "|"])),
    "status": st.one_of(text, st.sampled_from(["finished,planned", "final"])),
    "value-quantity": st.one_of(
        text, st.sampled_from(["gt5", "le5.5|http://unitsofmeasure.org|cm", "ap1", "1e999", "|"])
    ),
}


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    """One known parameter with a value of its kind, and up to two random pairs."""
    name = draw(st.sampled_from(sorted(PARAMETERS)))
    pairs = [(name, draw(PARAMETERS[name])), *draw(st.lists(st.tuples(names, text), max_size=2))]
    return urlencode(draw(st.permutations(pairs)), quote_via=quote)


# --- requests ---------------------------------------------------------------------------------


def _request(method: str, path: str, role: str, **extra: Any) -> dict[str, Any]:
    return {"method": method, "path": path, "role": role, "headers": {}, "body": b"", **extra}


@st.composite
def write_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Create or update of the fuzzed patient, with a fuzzed body and headers."""
    update = draw(st.booleans())
    path = f"/fhir/R4/Patient/{PID}" if update else "/fhir/R4/Patient"
    request = _request("PUT" if update else "POST", path, draw(roles), body=draw(bodies))
    request["headers"]["Content-Type"] = draw(content_types)
    if update:
        request["body_id"] = draw(st.booleans())
        if (if_match := draw(if_matches)) is not None:
            request["headers"]["If-Match"] = if_match
    return request


READ_PATHS = [
    "/fhir/R4/Patient?{q}",
    "/fhir/R4/Patient?{q}",
    "/fhir/R4/Encounter?{q}",
    "/fhir/R4/Observation?{q}",
    "/fhir/R4/Condition?{q}",
    "/fhir/R4/MedicationRequest?{q}",
    "/fhir/R4/Practitioner?{q}",
    "/fhir/R4/Patient/{pid}/_history?{q}",
    "/fhir/R4/Patient/{pid}/_history?{q}",
    "/fhir/R4/Patient/{pid}/_history/{v}",
    "/fhir/R4/AuditEvent?{q}",
    "/fhir/R4/metadata?{q}",
]


@st.composite
def read_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Search, history, vread, audit trail and metadata with fuzzed parameters."""
    template = draw(st.sampled_from(READ_PATHS))
    path = template.format(pid=PID, q=draw(query_strings()), v=quote(draw(numerals), safe=""))
    role = "compliance" if "AuditEvent" in path else draw(roles)
    return _request("GET", path, role)


@st.composite
def path_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Random ids in every path, and methods the routes do not have."""
    method = draw(st.sampled_from(["GET", "PUT", "DELETE", "POST", "PATCH"]))
    suffix = draw(st.sampled_from(["", "/_history", "/_history/1"]))
    kind = draw(st.sampled_from(["Patient", "Patient", "Encounter", "Observation", "Practitioner"]))
    ident = draw(st.one_of(random_ids, random_ids.map(lambda r: f"{PID}.{r}")))
    path = f"/fhir/R4/{kind}/{ident}{suffix}"
    role = "supervisor" if method == "DELETE" else draw(roles)
    request = _request(method, path, role)
    if method in ("PUT", "POST", "PATCH"):
        request["body"] = _dumps(patient_body(_family()))
        request["headers"].update({"Content-Type": "application/fhir+json", "If-Match": 'W/"1"'})
    return request


# --- checking ---------------------------------------------------------------------------------


class Table:
    """Counts that any write moves: the tenant's current Patients, and the items
    of the fuzzed patient's partition (each version adds one)."""

    def __init__(self, patient_id: str) -> None:
        self._client = boto3.client("dynamodb")
        self._name = os.environ["EMR_TABLE_NAME"]
        self._patient_id = patient_id

    def _count(self, **query: Any) -> int:
        total, start = 0, None
        while True:
            more = {"ExclusiveStartKey": start} if start else {}
            page = self._client.query(TableName=self._name, Select="COUNT", **query, **more)
            total += page["Count"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return total

    def fingerprint(self) -> tuple[int, int]:
        patients = self._count(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": keys.type_list_pk(TENANT, "Patient")}},
        )
        partition = self._count(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": keys.patient_pk(TENANT, self._patient_id)}},
        )
        return patients, partition


@pytest.fixture(scope="module")
def fuzzed(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    created = api.create(patient_body(_family(), mrn="MRN-FUZZ"))
    return {"id": created["id"], "table": Table(created["id"])}


def _send(api, fuzzed: dict[str, Any], request: dict[str, Any]):  # type: ignore[no-untyped-def]
    pid = fuzzed["id"]
    body = request["body"]
    if request.get("body_id") and body.startswith(b"{"):  # the body names the URL's id
        body = b'{"id": "' + pid.encode() + b'", ' + body[1:]
    headers = {**api.headers(request["role"], TENANT), **request["headers"]}
    call: Callable[..., Any] = getattr(api.http, request["method"].lower())
    path = request["path"].replace(PID, pid).replace(quote(PID, safe=""), pid)
    response = call(path, headers=headers, body=body)
    event(f"{request['method']} {_route(request['path'])}: {response.status_code}")
    assert response.status_code < 500, (request, response.body[:500])
    if response.status_code >= 400:
        _check_refusal(response, request)
    return response


def _route(path: str) -> str:
    parts = path.split("?")[0].split("/")[3:]
    return "/".join(
        p
        if p
        in (
            "Patient",
            "Encounter",
            "Observation",
            "Condition",
            "MedicationRequest",
            "Practitioner",
            "_history",
            "AuditEvent",
            "metadata",
        )
        else "*"
        for p in parts
    )


def _check_refusal(response, request: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    assert SECRET not in response.body.decode("utf-8", "replace")
    if response.status_code == 405:
        assert response.headers.get("Allow"), response.headers
    outcome = json.loads(response.body)
    assert outcome["resourceType"] == "OperationOutcome", outcome
    assert outcome["issue"], outcome
    if response.status_code in (400, 413, 415) and "/AuditEvent" not in request["path"]:
        assert all(issue.get("expression") for issue in outcome["issue"]), outcome


# --- the properties ---------------------------------------------------------------------------


@fuzz(100)
@given(request=write_requests())
def test_fuzzed_writes_never_5xx_and_refusals_write_nothing(api, fuzzed, request):
    before = fuzzed["table"].fingerprint()
    response = _send(api, fuzzed, request)
    if response.status_code >= 400:
        assert fuzzed["table"].fingerprint() == before, request


@fuzz(150)
@given(request=read_requests())
def test_fuzzed_parameters_never_5xx(api, fuzzed, request):
    _send(api, fuzzed, request)


@fuzz(30)
@given(request=path_requests())
def test_fuzzed_paths_and_methods_never_5xx_and_write_nothing(api, fuzzed, request):
    before = fuzzed["table"].fingerprint()
    response = _send(api, fuzzed, request)
    if response.status_code >= 400:
        assert fuzzed["table"].fingerprint() == before, request
