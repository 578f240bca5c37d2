"""Bodies are bound to their item and tenant: a body copied elsewhere does not open."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from models import keys
from models.crypto import DecryptionError
from models.items import ResourceItem
from models.resources import open_body
from tests.conftest import patient_body


def _raw(stack, tenant: str, pid: str) -> dict:  # type: ignore[type-arg]
    key = {"pk": {"S": keys.patient_pk(tenant, pid)}, "sk": {"S": keys.resource_sk("Patient", pid)}}
    return boto3.client("dynamodb").get_item(
        TableName=stack.table_name, Key=key, ConsistentRead=True
    )["Item"]


def _copy_body(stack, src: dict, dst: dict) -> None:  # type: ignore[type-arg]
    boto3.client("dynamodb").update_item(
        TableName=stack.table_name,
        Key={"pk": dst["pk"], "sk": dst["sk"]},
        UpdateExpression="SET body = :b",
        ExpressionAttributeValues={":b": src["body"]},
    )


@pytest.fixture
def pair(api):  # type: ignore[no-untyped-def]
    a = api.create(patient_body("Envelope" + uuid.uuid4().hex[:6]))
    b = api.create(patient_body("Envelope" + uuid.uuid4().hex[:6]))
    return a, b


def test_the_stored_body_opens_for_its_own_item(api, stack, pair):
    a, _ = pair
    item = ResourceItem.get(
        keys.patient_pk("demo-clinic", a["id"]), keys.resource_sk("Patient", a["id"])
    )
    assert open_body(item) == a


def test_a_body_copied_to_another_patient_does_not_open(api, stack, pair):
    a, b = pair
    _copy_body(stack, _raw(stack, "demo-clinic", a["id"]), _raw(stack, "demo-clinic", b["id"]))
    item = ResourceItem.get(
        keys.patient_pk("demo-clinic", b["id"]), keys.resource_sk("Patient", b["id"])
    )
    with pytest.raises(DecryptionError):
        open_body(item)
    r = api.http.get(f"/fhir/R4/Patient/{b['id']}", headers=api.headers())
    assert r.status_code == 500
    assert a["name"][0]["family"] not in r.body.decode()


def test_a_body_copied_to_another_tenant_does_not_open(api, stack):
    mine = api.create(patient_body("Tenanted" + uuid.uuid4().hex[:6]))
    theirs = api.create(patient_body("Tenanted" + uuid.uuid4().hex[:6]), tenant="other-clinic")
    _copy_body(
        stack, _raw(stack, "demo-clinic", mine["id"]), _raw(stack, "other-clinic", theirs["id"])
    )
    item = ResourceItem.get(
        keys.patient_pk("other-clinic", theirs["id"]), keys.resource_sk("Patient", theirs["id"])
    )
    with pytest.raises(DecryptionError):
        open_body(item)


def test_a_body_moved_to_another_version_does_not_open(api, stack):
    created = api.create(patient_body("Versioned" + uuid.uuid4().hex[:6]))
    url = f"/fhir/R4/Patient/{created['id']}"
    api.http.put(
        url, body=json.dumps({**created, "gender": "male"}), headers=api.headers(If_Match='W/"1"')
    )
    item = ResourceItem.get(
        keys.patient_pk("demo-clinic", created["id"]), keys.resource_sk("Patient", created["id"])
    )
    item.version = 1  # pretend the v2 body is v1
    with pytest.raises(DecryptionError):
        open_body(item)


def test_kms_refuses_the_data_key_under_another_tenants_context(api, stack, pair):
    a, _ = pair
    blob = _raw(stack, "demo-clinic", a["id"])["body"]["B"]
    edk_len = int.from_bytes(blob[2:4], "big")
    edk = blob[4 : 4 + edk_len]
    kms = boto3.client("kms")
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(
            CiphertextBlob=edk, EncryptionContext={"tenant": "other-clinic", "class": "phi"}
        )
    ok = kms.decrypt(
        CiphertextBlob=edk, EncryptionContext={"tenant": "demo-clinic", "class": "phi"}
    )
    assert len(ok["Plaintext"]) == 32
