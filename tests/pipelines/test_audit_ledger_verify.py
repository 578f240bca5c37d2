"""$verify on the local stack finds every edit, rewrite and deletion made directly in
the table (functions/audit/verify.py); the walk itself is unit-tested in
tests/unit/test_ledger_chain.py."""

from __future__ import annotations

import uuid

import pytest

from functions.audit.ledger import append
from functions.audit.verify import verify
from models import keys
from models import ledger as store
from tests.pipelines.test_audit_ledger import phi_event, table


@pytest.fixture
def tenant(stack) -> str:  # type: ignore[no-untyped-def]
    return f"lv-{uuid.uuid4().hex[:12]}"


def _key(tenant: str, seq: int) -> dict[str, str]:
    return {"pk": keys.ledger_pk(tenant), "sk": keys.ledger_entry_sk(seq)}


def test_verify_finds_an_entry_edited_in_the_table(stack, tenant):
    append(tenant, [phi_event(tenant) for _ in range(5)])
    item = table(stack).get_item(Key=_key(tenant, 3), ConsistentRead=True)["Item"]
    edited = str(item["entry"]).replace('"actor":"user-1"', '"actor":"someone-else"')
    assert edited != item["entry"]
    table(stack).update_item(
        Key=_key(tenant, 3),
        UpdateExpression="SET #e = :e",
        ExpressionAttributeNames={"#e": "entry"},
        ExpressionAttributeValues={":e": edited},
    )
    report = verify(tenant).to_json()
    assert report["verified"] is False
    assert report["first_broken"] == {"seq": 3, "reason": "hash-mismatch"}


def test_verify_finds_an_entry_rewritten_with_its_hash(stack, tenant):
    append(tenant, [phi_event(tenant) for _ in range(4)])
    item = table(stack).get_item(Key=_key(tenant, 2), ConsistentRead=True)["Item"]
    edited = str(item["entry"]).replace('"patient.read"', '"patient.search"')
    table(stack).update_item(
        Key=_key(tenant, 2),
        UpdateExpression="SET #e = :e, #h = :h",
        ExpressionAttributeNames={"#e": "entry", "#h": "hash"},
        ExpressionAttributeValues={":e": edited, ":h": store.digest(edited)},
    )
    assert verify(tenant).to_json()["first_broken"] == {"seq": 3, "reason": "prev-mismatch"}


@pytest.mark.parametrize("deleted", [1, 3, 5])
def test_verify_finds_a_deleted_entry(stack, tenant, deleted):
    append(tenant, [phi_event(tenant) for _ in range(5)])
    table(stack).delete_item(Key=_key(tenant, deleted))
    report = verify(tenant).to_json()
    assert report["verified"] is False
    assert report["first_broken"] == {"seq": deleted, "reason": "missing"}


def test_verify_finds_a_head_that_does_not_name_the_last_entry(stack, tenant):
    append(tenant, [phi_event(tenant) for _ in range(3)])
    key = {"pk": keys.ledger_pk(tenant), "sk": keys.LEDGER_HEAD_SK}
    table(stack).update_item(
        Key=key, UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "seq"},
        ExpressionAttributeValues={":s": 2},
    )  # fmt: skip
    assert verify(tenant).to_json()["first_broken"] == {"seq": 2, "reason": "head-mismatch"}


def test_an_empty_ledger_verifies(tenant):
    report = verify(tenant).to_json()
    assert report == {
        "tenant": tenant, "verified": True, "entries": 0,
        "head": {"seq": 0, "hash": store.GENESIS}, "first_broken": None,
    }  # fmt: skip
