"""DynamoDB's write limits, enforced by the unit of work before anything is sent:
100 items and 4 MB per transaction, 400 KB per item (moto enforces none)."""

from __future__ import annotations

import pytest

from models.item_size import ITEM_MAX, TRANSACTION_MAX, item_size, value_size
from models.items import HistoryItem
from models.uow import ItemTooLarge, TooManyItems, TransactionTooLarge, UnitOfWork, WriteTooLarge


def _item(n: int, body_bytes: int = 0) -> HistoryItem:
    return HistoryItem(
        "TEST#limits",
        f"H#{n:04d}",
        tenant="t",
        resource_type="Patient",
        resource_id="x",
        patient_id="x",
        version=1,
        last_updated="2026-01-01T00:00:00Z",
        data_class="phi",
        body=b"x" * body_bytes if body_bytes else None,
    )


def _body_for(total: int) -> int:
    """The body length that makes `_item` exactly `total` bytes in DynamoDB's terms."""
    return total - item_size(_item(0, 1).serialize()) + 1


def test_item_size_follows_dynamodbs_rules() -> None:
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"b": {"B": b"\x00" * 10}}) == 1 + 10
    assert item_size({"n": {"S": "é"}}) == 1 + 2  # UTF-8 bytes, not characters
    assert value_size({"BOOL": True}) == value_size({"NULL": True}) == 1
    assert value_size({"N": "12345"}) == 4  # (5 + 1) // 2 + 1
    assert value_size({"N": "1" * 38}) <= 21
    assert value_size({"SS": ["ab", "cde"]}) == 5
    assert value_size({"L": [{"S": "ab"}]}) == 3 + 1 + 2
    assert value_size({"M": {"k": {"S": "ab"}}}) == 3 + 1 + 1 + 2


def test_a_hundred_items_fit_and_a_hundred_and_one_do_not() -> None:
    uow = UnitOfWork()
    for n in range(100):
        uow.put("history", _item(n))
    uow.check_limits()
    uow.put("history", _item(100))
    with pytest.raises(TooManyItems):
        uow.check_limits()


def test_an_item_at_400_kb_fits_and_one_byte_more_does_not() -> None:
    uow = UnitOfWork()
    uow.put("history", _item(0, _body_for(ITEM_MAX)))
    assert uow.size() == ITEM_MAX
    uow.check_limits()
    over = UnitOfWork()
    over.put("history", _item(0, _body_for(ITEM_MAX + 1)))
    with pytest.raises(ItemTooLarge) as caught:
        over.check_limits()
    assert caught.value.size == ITEM_MAX + 1


def test_items_adding_up_to_more_than_4_mb_are_refused() -> None:
    per_item = ITEM_MAX - 1000
    fits = TRANSACTION_MAX // per_item
    uow = UnitOfWork()
    for n in range(fits):
        uow.put("history", _item(n, _body_for(per_item)))
    uow.check_limits()
    uow.put("history", _item(fits, _body_for(per_item)))
    with pytest.raises(TransactionTooLarge):
        uow.check_limits()


def test_every_limit_is_one_kind_of_error_with_a_message_naming_no_data() -> None:
    limits = (TooManyItems(101), ItemTooLarge("resource", 500_000), TransactionTooLarge(5_000_000))
    for exc in limits:
        assert isinstance(exc, WriteTooLarge)
        assert "DynamoDB" in exc.explain("Patient")


def test_commit_refuses_before_sending(moto, stack) -> None:  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()["dynamodb.TransactWriteItems"]
    uow = UnitOfWork()
    for n in range(101):
        uow.put("history", _item(n))
    with pytest.raises(TooManyItems):
        uow.commit()
    assert moto.counter.snapshot()["dynamodb.TransactWriteItems"] == before
