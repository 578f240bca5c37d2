"""Psychotherapy notes (45 CFR 164.501): only their author and the roles the clinic
grants see them, every read says why, and they are sealed under their own key.

Each tenant gets its own users (made here, so that no other test's directory entries
interfere): clinician A writes the note (author = A's Practitioner), clinician B is
another clinician with a Practitioner, and a third clinician has none. The front
desk is refused with 403 by the route itself (it may read no DocumentReference at
all, so the answer says nothing about psychotherapy notes); billers and care
coordinators pass that door and are then told 404 by the psychotherapy policy row,
as is every care role that is neither the author nor granted.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.seed import DEMO_PASSWORD
from functions.engine.directory import USER_SYSTEM
from models import keys
from models.audit import AuditItem
from models.crypto import DecryptionError, envelope
from models.items import ResourceItem
from models.resources import aad
from tests.conftest import patient_body

BASE = "/fhir/R4"
TENANTS = ("demo-clinic", "other-clinic")
CATEGORY = "https://emr.example/fhir/CodeSystem/note-class|psychotherapy-note"
PURPOSE = "X-Purpose-Of-Use"
TEXT = "Session 4: process notes, not for the chart."


@dataclass(frozen=True)
class Chart:
    tenant: str
    patient: str
    note: str  # the psychotherapy note
    clinical_note: str
    tokens: dict[str, str]  # author, other, unlisted -> bearer token


def make_user(stack: Any, role: str, tenant: str) -> tuple[str, str]:
    """A fresh user of `role` in `tenant`: (username, id token)."""
    cognito = boto3.client("cognito-idp")
    name = f"psy-{uuid.uuid4().hex[:10]}@{tenant}.example"
    pool = stack.user_pool_id
    cognito.admin_create_user(
        UserPoolId=pool,
        Username=name,
        MessageAction="SUPPRESS",
        UserAttributes=[
            {"Name": "email", "Value": name},
            {"Name": "custom:tenant", "Value": tenant},
        ],
    )
    cognito.admin_set_user_password(
        UserPoolId=pool, Username=name, Password=DEMO_PASSWORD, Permanent=True
    )
    cognito.admin_add_user_to_group(UserPoolId=pool, Username=name, GroupName=role)
    auth = cognito.admin_initiate_auth(
        UserPoolId=pool,
        ClientId=stack.app_client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": name, "PASSWORD": DEMO_PASSWORD},
    )
    return name, str(auth["AuthenticationResult"]["IdToken"])


def make_practitioner(api: Any, username: str, tenant: str) -> str:
    body = {
        "resourceType": "Practitioner",
        "identifier": [{"system": USER_SYSTEM, "value": username}],
        "name": [{"family": "Therapist", "given": ["Test"]}],
    }
    r = api.http.post(
        f"{BASE}/Practitioner", body=json.dumps(body), headers=api.headers("admin", tenant)
    )
    assert r.status_code == 201, r.body
    return str(json.loads(r.body)["id"])


def _note(pid: str, author: str, psychotherapy: bool) -> dict[str, Any]:
    code = "psychotherapy-note" if psychotherapy else "clinical-note"
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "preliminary",
        "category": [
            {"coding": [{"system": "https://emr.example/fhir/CodeSystem/note-class", "code": code}]}
        ],
        "subject": {"reference": f"Patient/{pid}"},
        "author": [{"reference": f"Practitioner/{author}"}],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(TEXT.encode()).decode(),
                }
            }
        ],
    }


def _bearer(token: str, purpose: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    return {**headers, PURPOSE: purpose} if purpose else headers


def _demo(api: Any, role: str, tenant: str, purpose: str | None = "TREAT") -> dict[str, str]:
    return _bearer(api.token(role, tenant), purpose)


@pytest.fixture(scope="module")
def charts(api: Any, stack: Any) -> dict[str, Chart]:
    out: dict[str, Chart] = {}
    for tenant in TENANTS:
        tokens: dict[str, str] = {}
        practitioners: dict[str, str] = {}
        for who in ("author", "other", "unlisted"):
            name, tokens[who] = make_user(stack, "clinician", tenant)
            if who != "unlisted":
                practitioners[who] = make_practitioner(api, name, tenant)
        pid = api.create(patient_body("Psy" + uuid.uuid4().hex[:8]), tenant=tenant)["id"]
        made = {}
        for kind, psychotherapy in (("note", True), ("clinical_note", False)):
            body = _note(pid, practitioners["author"], psychotherapy)
            r = api.http.post(
                f"{BASE}/DocumentReference",
                body=json.dumps(body),
                headers=_bearer(tokens["author"]),
            )
            assert r.status_code == 201, r.body
            made[kind] = json.loads(r.body)["id"]
        assert keys.marker_of(made["note"]) == "p" and keys.marker_of(made["clinical_note"]) == ""
        out[tenant] = Chart(tenant, pid, made["note"], made["clinical_note"], tokens)
    return out


def _other(tenant: str) -> str:
    return TENANTS[1] if tenant == TENANTS[0] else TENANTS[0]


def _grant(api: Any, tenant: str, roles: list[str]) -> None:
    body = {"unsignedNoteDays": 3, "psychotherapyRoles": roles}
    r = api.http.put("/admin/settings", body=json.dumps(body), headers=api.headers("admin", tenant))
    assert r.status_code == 200, r.body


# ----------------------------------------------------------------- reads by id


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_author_reads_the_note_with_a_purpose(api, charts, tenant):
    chart = charts[tenant]
    r = api.http.get(
        f"{BASE}/DocumentReference/{chart.note}", headers=_bearer(chart.tokens["author"], "TREAT")
    )
    assert r.status_code == 200, r.body
    body = json.loads(r.body)
    assert body["id"] == chart.note
    assert base64.b64decode(body["content"][0]["attachment"]["data"]).decode() == TEXT
    for suffix in ("/_history", "/_history/1"):
        r = api.http.get(
            f"{BASE}/DocumentReference/{chart.note}{suffix}",
            headers=_bearer(chart.tokens["author"], "TREAT"),
        )
        assert r.status_code == 200, (suffix, r.body)


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("who", ["other", "unlisted"])
def test_another_clinician_is_told_the_note_does_not_exist(api, charts, tenant, who):
    chart = charts[tenant]
    for suffix in ("", "/_history", "/_history/1"):
        r = api.http.get(
            f"{BASE}/DocumentReference/{chart.note}{suffix}",
            headers=_bearer(chart.tokens[who], "TREAT"),
        )
        assert r.status_code == 404, (suffix, r.body)
        assert TEXT not in r.body.decode()
    # without a purpose as well: a 400 would say the note exists
    r = api.http.get(f"{BASE}/DocumentReference/{chart.note}", headers=_bearer(chart.tokens[who]))
    assert r.status_code == 404


# Roles other than the author's. The prescriber is left out: tests/api/test_tenant_settings.py
# grants it in other-clinic while it runs; this module changes demo-clinic's settings only.
@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize(
    ("role", "status"),
    [("care_coordinator", 404), ("biller", 404), ("front_desk", 403), ("supervisor", 404),
     ("admin", 403), ("compliance", 403)],
)  # fmt: skip
def test_other_roles_never_see_the_note(api, charts, tenant, role, status):
    chart = charts[tenant]
    r = api.http.get(f"{BASE}/DocumentReference/{chart.note}", headers=_demo(api, role, tenant))
    assert r.status_code == status, r.body
    assert TEXT not in r.body.decode()


@pytest.mark.parametrize("tenant", TENANTS)
def test_another_tenants_clinician_is_told_404(api, charts, tenant):
    chart = charts[tenant]
    other = _other(tenant)
    for role in ("clinician", "supervisor"):
        r = api.http.get(f"{BASE}/DocumentReference/{chart.note}", headers=_demo(api, role, other))
        assert r.status_code == 404, r.body
    # the author's own token cannot cross either: the tenant is the token's
    other_chart = charts[other]
    r = api.http.get(
        f"{BASE}/DocumentReference/{other_chart.note}",
        headers=_bearer(chart.tokens["author"], "TREAT"),
    )
    assert r.status_code == 404


def test_a_role_the_clinic_grants_reads_every_note_of_that_clinic_only(api, charts):
    granting, other = TENANTS
    url = f"{BASE}/DocumentReference/{charts[granting].note}"
    other_url = f"{BASE}/DocumentReference/{charts[other].note}"
    _grant(api, granting, ["supervisor"])
    try:
        r = api.http.get(url, headers=_demo(api, "supervisor", granting, "HOPERAT"))
        assert r.status_code == 200, r.body
        # the grant is the clinic's own: the other clinic's supervisor sees nothing,
        # neither there nor here
        for tenant in (granting, other):
            r = api.http.get(other_url, headers=_demo(api, "supervisor", tenant, "HOPERAT"))
            assert r.status_code == 404, tenant
        r = api.http.get(url, headers=_demo(api, "supervisor", other, "HOPERAT"))
        assert r.status_code == 404
        # and it grants no role beyond those named
        r = api.http.get(url, headers=_bearer(charts[granting].tokens["other"], "TREAT"))
        assert r.status_code == 404
        # a granted reader must say why, too
        r = api.http.get(url, headers=_demo(api, "supervisor", granting, None))
        assert r.status_code == 400
    finally:
        _grant(api, granting, [])
    r = api.http.get(url, headers=_demo(api, "supervisor", granting, "HOPERAT"))
    assert r.status_code == 404  # revoked: at once in the process that changed it


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_read_without_a_purpose_is_refused_naming_the_header(api, charts, tenant):
    chart = charts[tenant]
    for suffix in ("", "/_history", "/_history/1"):
        r = api.http.get(
            f"{BASE}/DocumentReference/{chart.note}{suffix}",
            headers=_bearer(chart.tokens["author"]),
        )
        assert r.status_code == 400, (suffix, r.body)
        issue = json.loads(r.body)["issue"][0]
        assert issue["expression"] == [PURPOSE] and TEXT not in r.body.decode()


@pytest.mark.parametrize("value", ["treat", "FOO", "", "TREAT,HPAYMT"])
def test_an_unknown_purpose_is_refused_without_echoing_it(api, charts, value):
    chart = charts[TENANTS[0]]
    r = api.http.get(
        f"{BASE}/DocumentReference/{chart.note}",
        headers={**_bearer(chart.tokens["author"]), PURPOSE: value},
    )
    assert r.status_code == 400
    issue = json.loads(r.body)["issue"][0]
    assert issue["expression"] == [PURPOSE]
    if value.isalpha():
        assert value not in issue["diagnostics"]


def test_ordinary_notes_need_no_purpose(api, charts):
    chart = charts[TENANTS[0]]
    r = api.http.get(
        f"{BASE}/DocumentReference/{chart.clinical_note}", headers=_bearer(chart.tokens["other"])
    )
    assert r.status_code == 200, r.body


# ----------------------------------------------------------------- searches


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.body
    return [e["resource"]["id"] for e in json.loads(response.body).get("entry", [])]


@pytest.mark.parametrize("tenant", TENANTS)
def test_an_ordinary_search_never_returns_the_note(api, charts, tenant):
    chart = charts[tenant]
    url = f"{BASE}/DocumentReference?patient={chart.patient}"
    for headers in (
        _bearer(chart.tokens["author"], "TREAT"),
        _demo(api, "care_coordinator", tenant),
    ):
        assert _ids(api.http.get(url, headers=headers)) == [chart.clinical_note]


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_search_naming_the_category_returns_the_note_to_its_author_only(api, charts, tenant):
    chart = charts[tenant]
    url = f"{BASE}/DocumentReference?patient={chart.patient}&category={CATEGORY}"
    assert _ids(api.http.get(url, headers=_bearer(chart.tokens["author"], "TREAT"))) == [chart.note]
    for who in ("other", "unlisted"):
        r = api.http.get(url, headers=_bearer(chart.tokens[who], "TREAT"))
        assert _ids(r) == [] and TEXT not in r.body.decode()
    for role in ("care_coordinator", "biller", "front_desk"):
        r = api.http.get(url, headers=_demo(api, role, tenant))
        assert r.status_code == 403, (role, r.body)
    r = api.http.get(url, headers=_demo(api, "clinician", _other(tenant)))
    assert _ids(r) == []
    r = api.http.get(url, headers=_bearer(chart.tokens["author"]))
    assert r.status_code == 400 and json.loads(r.body)["issue"][0]["expression"] == [PURPOSE]


def test_a_hidden_note_is_not_counted_in_the_total(api, charts):
    chart = charts[TENANTS[0]]
    url = f"{BASE}/DocumentReference?patient={chart.patient}&category={CATEGORY}"
    r = api.http.get(url, headers=_bearer(chart.tokens["other"], "TREAT"))
    assert _ids(r) == []
    assert json.loads(r.body).get("total", 0) == 0


# ----------------------------------------------------------------- storage


def _stored_blob(chart: Chart) -> tuple[bytes, bytes]:
    pk = keys.patient_pk(chart.tenant, chart.patient)
    item = ResourceItem.get(
        pk, keys.resource_sk("PsychotherapyNote", chart.note), consistent_read=True
    )
    assert int(item.version) == 1 and item.data_class == "psychotherapy"
    return bytes(item.body), aad(pk, "PsychotherapyNote", chart.note, 1)


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_stored_body_opens_only_as_a_psychotherapy_note(charts, tenant):
    chart = charts[tenant]
    blob, binding = _stored_blob(chart)
    assert TEXT.encode() not in blob
    with pytest.raises(DecryptionError):
        envelope().open(blob, tenant=tenant, data_class="clinical-note", aad=binding)
    with pytest.raises(DecryptionError):
        envelope().open(blob, tenant=_other(tenant), data_class="psychotherapy", aad=binding)
    opened = json.loads(
        envelope().open(blob, tenant=tenant, data_class="psychotherapy", aad=binding)
    )
    assert opened["id"] == chart.note


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_body_is_sealed_under_the_psychotherapy_key(charts, stack, tenant):
    blob, _ = _stored_blob(charts[tenant])
    (length,) = struct.unpack(">H", blob[2:4])
    data_key = blob[4 : 4 + length]
    kms = boto3.client("kms")
    context = {"tenant": tenant, "class": "psychotherapy"}
    answer = kms.decrypt(CiphertextBlob=data_key, EncryptionContext=context)
    assert answer["KeyId"] == stack.psychotherapy_key_id != stack.data_key_id
    with pytest.raises(ClientError):  # the ordinary data key does not open it
        kms.decrypt(CiphertextBlob=data_key, EncryptionContext=context, KeyId=stack.data_key_id)


# ----------------------------------------------------------------- audit


def _records(tenant: str, patient_id: str) -> list[AuditItem]:
    return list(AuditItem.query(keys.audit_patient_pk(tenant, patient_id), consistent_read=True))


@pytest.mark.parametrize("tenant", TENANTS)
def test_each_read_lands_in_the_trail_with_its_purpose(api, charts, tenant):
    chart = charts[tenant]
    url = f"{BASE}/DocumentReference/{chart.note}"
    before = {r.audit_id for r in _records(tenant, chart.patient)}
    reads = [
        (_bearer(chart.tokens["author"], "TREAT"), 200, "TREAT"),
        (_bearer(chart.tokens["author"], "HLEGAL"), 200, "HLEGAL"),
        (_bearer(chart.tokens["author"]), 400, None),
        (_bearer(chart.tokens["other"], "COC"), 404, "COC"),
    ]
    for headers, status, _ in reads:
        assert api.http.get(url, headers=headers).status_code == status
    new = sorted(
        (r for r in _records(tenant, chart.patient) if r.audit_id not in before), key=lambda r: r.sk
    )
    assert [(r.action, int(r.status), r.purpose, r.resource_id) for r in new] == [
        ("documentreference.read", status, purpose, chart.note) for _, status, purpose in reads
    ]


def test_another_clinician_cannot_change_or_delete_the_note(api, charts):
    chart = charts[TENANTS[0]]
    r = api.http.get(
        f"{BASE}/DocumentReference/{chart.note}", headers=_bearer(chart.tokens["author"], "TREAT")
    )
    author = json.loads(r.body)["author"][0]["reference"].partition("/")[2]
    body = json.dumps(_note(chart.patient, author, psychotherapy=True))
    r = api.http.post(
        f"{BASE}/DocumentReference", body=body, headers=_bearer(chart.tokens["author"])
    )
    assert r.status_code == 201, r.body
    copy = json.loads(r.body)
    url = f"{BASE}/DocumentReference/{copy['id']}"
    r = api.http.put(url, body=json.dumps(copy), headers=_bearer(chart.tokens["other"], "TREAT"))
    assert r.status_code == 404
    r = api.http.delete(url, headers=_bearer(chart.tokens["other"], "TREAT"))
    assert r.status_code == 404


def test_compliance_sees_the_purpose_of_each_read(api, charts):
    chart = charts[TENANTS[0]]
    r = api.http.get(f"{BASE}/DocumentReference/{chart.note}",
                     headers=_bearer(chart.tokens["author"], "HOPERAT"))  # fmt: skip
    assert r.status_code == 200
    trail = api.http.get(f"{BASE}/AuditEvent?patient={chart.patient}",
                         headers=_demo(api, "compliance", TENANTS[0], None))  # fmt: skip
    events = [e["resource"] for e in json.loads(trail.body)["entry"]]
    purposes = [c["code"] for e in events for p in e.get("purposeOfEvent", [])
                for c in p["coding"]]  # fmt: skip
    assert "HOPERAT" in purposes


def test_the_chart_and_everything_never_hold_psychotherapy_notes(api, charts):
    chart = charts[TENANTS[1]]
    author = _bearer(chart.tokens["author"], "TREAT")
    for note in (chart.note, chart.clinical_note):  # both signed: each may take a header
        r = api.http.post(f"{BASE}/DocumentReference/{note}/$sign", body="{}", headers=author)
        assert r.status_code == 200, r.body
    r = api.http.get(f"{BASE}/Patient/{chart.patient}/$chart", headers=author)
    assert r.status_code == 200, r.body
    assert [n["id"] for n in json.loads(r.body)["notes"]] == [chart.clinical_note]
    assert chart.note not in r.body.decode()
    r = api.http.get(f"{BASE}/Patient/{chart.patient}/$everything?_count=100", headers=author)
    assert r.status_code == 200, r.body
    found = {e["resource"]["id"] for e in json.loads(r.body)["entry"]}
    assert chart.clinical_note in found and chart.note not in found
    assert chart.note not in r.body.decode()  # nor its signature (a Provenance naming it)
