"""Security labels (meta.security): only roles with `patient.label` change them; an
update by anyone else keeps the stored labels; labels are never stored in clear.
Every test here runs in two tenants."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import boto3
import pytest

from models import keys
from tests.conftest import patient_body

TENANTS = ["demo-clinic", "other-clinic"]


def _label(code: str) -> dict[str, str]:
    return {"system": f"urn:emr:test-label:{code}", "code": code}


@pytest.fixture
def labelled(api, request):  # type: ignore[no-untyped-def]
    """A patient a clinician labelled, in the test's tenant, and a distinctive label."""
    tenant = request.node.callspec.params["tenant"]
    secret = "Sud" + uuid.uuid4().hex[:10]
    body = {**patient_body("Label" + uuid.uuid4().hex[:6]), "meta": {"security": [_label(secret)]}}
    return api.create(body, tenant=tenant), secret


def _put(api, role, tenant, current, **changes):  # type: ignore[no-untyped-def]
    version = current["meta"]["versionId"]
    return api.http.put(
        f"/fhir/R4/Patient/{current['id']}",
        body=json.dumps({**current, **changes}),
        headers=api.headers(role, tenant, If_Match=f'W/"{version}"'),
    )


def _read(api, tenant, pid):  # type: ignore[no-untyped-def]
    r = api.http.get(f"/fhir/R4/Patient/{pid}", headers=api.headers("clinician", tenant))
    return json.loads(r.body)


def _calls(moto, request):  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()
    result = request()
    after = moto.counter.snapshot()
    changed = {k: after[k] - before[k] for k in after if k.startswith("dynamodb.")}
    return result, Counter({k: n for k, n in changed.items() if n})


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", ["front_desk", "care_coordinator"])
def test_an_update_without_the_label_permission_keeps_the_stored_labels(
    api, labelled, role, tenant
):
    current, secret = labelled
    stripped = {k: v for k, v in current["meta"].items() if k != "security"}
    r = _put(api, role, tenant, current, meta=stripped, gender="female")
    assert r.status_code == 200, r.body
    after = _read(api, tenant, current["id"])
    assert after["gender"] == "female" and after["meta"]["versionId"] == "2"
    assert after["meta"]["security"] == [_label(secret)]
    assert json.loads(r.body)["meta"]["security"] == [_label(secret)]
    changed = {**after["meta"], "security": [_label("other")]}
    r = _put(api, role, tenant, after, meta=changed)
    assert r.status_code == 200
    assert _read(api, tenant, current["id"])["meta"]["security"] == [_label(secret)]


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize("role", ["clinician", "prescriber", "supervisor"])
def test_roles_with_the_label_permission_change_and_remove_labels(api, labelled, role, tenant):
    current, secret = labelled
    more = {**current["meta"], "security": [_label(secret), _label("more")]}
    r = _put(api, role, tenant, current, meta=more)
    assert r.status_code == 200
    after = _read(api, tenant, current["id"])
    assert after["meta"]["security"] == [_label(secret), _label("more")]
    none = {k: v for k, v in after["meta"].items() if k != "security"}
    assert _put(api, role, tenant, after, meta=none).status_code == 200
    assert "security" not in _read(api, tenant, current["id"])["meta"]


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_create_without_the_label_permission_stores_no_labels(api, tenant):
    body = {**patient_body("Label" + uuid.uuid4().hex[:6]), "meta": {"security": [_label("x")]}}
    created = api.create(body, role="front_desk", tenant=tenant)
    assert "security" not in created["meta"]
    assert "security" not in _read(api, tenant, created["id"])["meta"]
    r = _put(api, "front_desk", tenant, created, meta={"security": [_label("y")]})
    assert r.status_code == 200
    assert "security" not in _read(api, tenant, created["id"])["meta"]


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_stale_update_with_other_labels_is_still_412(api, labelled, tenant):
    current, _ = labelled
    assert _put(api, "clinician", tenant, current, gender="male").status_code == 200
    r = _put(api, "front_desk", tenant, current, meta={"security": []})
    assert r.status_code == 412
    assert json.loads(r.body)["issue"][0]["expression"] == ["If-Match"]


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_plain_update_stays_one_round_trip(api, moto, labelled, tenant):
    current, _ = labelled
    r, calls = _calls(moto, lambda: _put(api, "front_desk", tenant, current, gender="male"))
    assert r.status_code == 200
    assert calls == Counter({"dynamodb.TransactWriteItems": 1})
    after = json.loads(r.body)
    stripped = {k: v for k, v in after["meta"].items() if k != "security"}
    r, calls = _calls(moto, lambda: _put(api, "front_desk", tenant, after, meta=stripped))
    assert r.status_code == 200
    assert calls == Counter({"dynamodb.TransactWriteItems": 2, "dynamodb.GetItem": 1})


@pytest.mark.parametrize("tenant", TENANTS)
def test_labels_are_not_stored_in_clear_and_say_nothing_across_patients(
    api, stack, labelled, tenant
):
    current, secret = labelled
    twin = {**patient_body("Twin" + uuid.uuid4().hex[:6]), "meta": {"security": [_label(secret)]}}
    other = api.create(twin, tenant=tenant)
    plain = api.create(patient_body("Plain" + uuid.uuid4().hex[:6]), tenant=tenant)
    ddb = boto3.client("dynamodb")
    items, start = [], None
    while True:
        kwargs = {"TableName": stack.table_name, **({"ExclusiveStartKey": start} if start else {})}
        page = ddb.scan(**kwargs)
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    text = json.dumps(items, default=lambda raw: bytes(raw).decode("latin-1"))
    assert secret not in text and secret.lower() not in text.lower()
    macs = {}
    for patient in (current, other, plain):
        key = {
            "pk": {"S": keys.patient_pk(tenant, patient["id"])},
            "sk": {"S": keys.labels_sk("Patient", patient["id"])},
        }
        item = ddb.get_item(TableName=stack.table_name, Key=key, ConsistentRead=True)["Item"]
        assert set(item) == {"pk", "sk", "type", "tenant", "resource_type", "resource_id", "mac"}
        macs[patient["id"]] = item["mac"]["S"]
    assert len(set(macs.values())) == 3  # same labels, different patients: unrelated MACs


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_patient_stored_before_labels_had_their_item_keeps_its_labels(
    api, stack, labelled, tenant
):
    current, secret = labelled
    key = {
        "pk": {"S": keys.patient_pk(tenant, current["id"])},
        "sk": {"S": keys.labels_sk("Patient", current["id"])},
    }
    ddb = boto3.client("dynamodb")
    ddb.delete_item(TableName=stack.table_name, Key=key)
    stripped = {k: v for k, v in current["meta"].items() if k != "security"}
    r = _put(api, "front_desk", tenant, current, meta=stripped)
    assert r.status_code == 200
    assert _read(api, tenant, current["id"])["meta"]["security"] == [_label(secret)]
    assert "Item" in ddb.get_item(TableName=stack.table_name, Key=key, ConsistentRead=True)
