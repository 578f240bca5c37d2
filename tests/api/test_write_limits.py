"""The largest Patient the API accepts fits DynamoDB's real limits (moto enforces
none of them), is found by search, and anything larger is refused with 413."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from models import keys
from models.item_size import ITEM_MAX, TRANSACTION_MAX, item_size
from models.resources import ENTRY_BODY_MAX
from tests.conftest import patient_body

TENANT = "demo-clinic"


def _partition(stack, patient_id: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    ddb = boto3.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": stack.table_name,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": keys.patient_pk(TENANT, patient_id)}},
        "ConsistentRead": True,
    }
    items: list[dict[str, Any]] = []
    while True:
        page = ddb.query(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _big_patient(narrative_bytes: int) -> tuple[dict[str, Any], str]:
    """Long names (close to the most search entries allowed) and a long narrative."""
    tag = uuid.uuid4().hex[:8]
    words = [f"{c * 16}{tag}" for c in "bcdf"]  # 4 words of 24 letters: 19 prefixes each
    body = patient_body(words[0], words[1], mrn=f"MRN-{tag}")
    body["name"][0]["given"] += words[2:]
    text = "x" * narrative_bytes
    body["text"] = {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{text}</p></div>',
    }
    return body, f"MRN-{tag}"


@pytest.fixture(scope="module")
def largest(api, stack):  # type: ignore[no-untyped-def]
    limit = 256 * 1024
    body, mrn = _big_patient(limit - 2_000)
    assert limit - 4_000 < len(json.dumps(body)) <= limit
    return api.create(body), mrn


def test_the_largest_accepted_patient_fits_dynamodbs_limits(api, stack, largest):  # type: ignore[no-untyped-def]
    created, _ = largest
    items = _partition(stack, created["id"])
    entries = [i for i in items if i["sk"]["S"].startswith("S#")]
    assert len(entries) >= 75, "the body should be near the most search entries allowed"
    sizes = [item_size(i) for i in items]
    assert max(sizes) <= ITEM_MAX
    assert sum(sizes) <= TRANSACTION_MAX  # all were written by one transaction
    assert all("body" not in e for e in entries), "a body this large is not copied into entries"


def test_the_largest_patient_is_found_by_search_with_its_whole_body(api, stack, largest, moto):  # type: ignore[no-untyped-def]
    created, mrn = largest
    before = moto.counter.snapshot()
    r = api.http.get(f"/fhir/R4/Patient?identifier={mrn}", headers=api.headers())
    assert r.status_code == 200, r.body
    found = [e["resource"] for e in json.loads(r.body)["entry"]]
    assert found == [created]
    spent = moto.counter.snapshot() - before
    assert spent["dynamodb.Query"] == 1
    assert spent["dynamodb.BatchGetItem"] == 1  # the bodies of entries that carry none


def test_a_small_patient_is_still_found_in_one_query(api, stack, moto):  # type: ignore[no-untyped-def]
    mrn = "MRN-" + uuid.uuid4().hex[:8]
    created = api.create(patient_body("Smallbody" + uuid.uuid4().hex[:6], mrn=mrn))
    entries = [i for i in _partition(stack, created["id"]) if i["sk"]["S"].startswith("S#")]
    assert all(len(e["body"]["B"]) <= ENTRY_BODY_MAX for e in entries)
    before = moto.counter.snapshot()
    r = api.http.get(f"/fhir/R4/Patient?identifier={mrn}", headers=api.headers())
    assert [e["resource"] for e in json.loads(r.body)["entry"]] == [created]
    spent = moto.counter.snapshot() - before
    assert spent["dynamodb.Query"] == 1 and spent["dynamodb.BatchGetItem"] == 0


def test_an_update_that_drops_a_large_patients_token_hides_the_stale_entry(api, stack, largest):  # type: ignore[no-untyped-def]
    """Entries without a body resolve to the current version, which must still hold
    the searched token: a name an update removed is not a match any more, even
    before the stream tidies the entry."""
    body, _ = _big_patient(10_000)
    created = api.create(body)
    old_family = created["name"][0]["family"]
    changed = {**created, "name": [{"family": "Renamed" + uuid.uuid4().hex[:6], "given": ["A"]}]}
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}",
        body=json.dumps(changed),
        headers=api.headers(If_Match='W/"1"'),
    )
    assert r.status_code == 200, r.body
    r = api.http.get(f"/fhir/R4/Patient?family={old_family}", headers=api.headers())
    assert json.loads(r.body).get("entry", []) == []


def test_a_body_over_the_item_limit_is_refused_with_413_and_nothing_is_written(api, stack):  # type: ignore[no-untyped-def]
    """Larger than the HTTP body limit allows, so called below HTTP: the domain
    refuses it as too large rather than sending a write AWS would fail."""
    from functions.common.caller import system_caller
    from functions.common.errors import PayloadTooLarge
    from functions.engine import registry, service

    body, mrn = _big_patient(ITEM_MAX)
    caller = system_caller(TENANT, "system:test", "test", uuid.uuid4().hex, "patient.create")
    with pytest.raises(PayloadTooLarge) as caught:
        service.create(caller, registry.require("Patient"), body)
    assert caught.value.status == 413
    assert caught.value.issues[0].expression == ["Patient"]
    r = api.http.get(f"/fhir/R4/Patient?identifier={mrn}", headers=api.headers())
    assert json.loads(r.body).get("entry", []) == []
