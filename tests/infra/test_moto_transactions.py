"""The local stack's TransactWriteItems (devstack/moto_server.py): no table copy,
conditions first, exact rollback, DynamoDB's limits and ClientRequestToken."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack import moto_server


@pytest.fixture
def ddb(stack):  # type: ignore[no-untyped-def]
    return boto3.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture
def pk() -> str:
    return "TEST#tx#" + uuid.uuid4().hex


def _item(pk: str, sk: str, **attrs: Any) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **attrs}


def _put(table: str, item: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"TableName": table, "Item": item}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def _items(ddb: Any, table: str, pk: str) -> list[dict[str, Any]]:
    pages = ddb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": pk}},
        ConsistentRead=True,
    )
    return [item for page in pages for item in page["Items"]]


def _sks(ddb: Any, table: str, pk: str) -> list[str]:
    return [i["sk"]["S"] for i in _items(ddb, table, pk)]


def _latest(stack) -> tuple[Any, str]:  # type: ignore[no-untyped-def]
    streams = boto3.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=stack.stream_arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=stack.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
    )["ShardIterator"]
    return streams, iterator


def _cancelled(ddb: Any, items: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=items, **kwargs)
    response: dict[str, Any] = caught.value.response
    return response


# --- cancellation -----------------------------------------------------------------------


def test_a_cancelled_transaction_writes_nothing_and_emits_no_stream_record(ddb, stack, pk):
    t = stack.table_name
    ddb.put_item(TableName=t, Item=_item(pk, "existing"))
    items = [_put(t, _item(pk, f"new{i}")) for i in range(5)]
    items.append(_put(t, _item(pk, "existing"), "attribute_not_exists(pk)"))
    streams, iterator = _latest(stack)

    reply = _cancelled(ddb, items)
    assert reply["Error"]["Code"] == "TransactionCanceledException"
    assert _sks(ddb, t, pk) == ["existing"]
    page = streams.get_records(ShardIterator=iterator)
    assert page["Records"] == []  # not even records of the puts before the failed check

    ddb.transact_write_items(TransactItems=items[:5])
    assert len(_sks(ddb, t, pk)) == 6
    # the same iterator (the same shard) sees the later write
    later = streams.get_records(ShardIterator=page["NextShardIterator"])["Records"]
    assert sorted(r["dynamodb"]["Keys"]["sk"]["S"] for r in later) == [f"new{i}" for i in range(5)]


def test_cancellation_reasons_are_moto_s_including_all_old(ddb, stack, pk):
    t = stack.table_name
    old = _item(pk, "a", n={"N": "1"})
    ddb.put_item(TableName=t, Item=old)
    reply = _cancelled(
        ddb,
        [
            _put(t, _item(pk, "b")),
            {
                "Put": {
                    "TableName": t,
                    "Item": _item(pk, "a", n={"N": "2"}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "ConditionCheck": {
                    "TableName": t,
                    "Key": {"pk": {"S": pk}, "sk": {"S": "missing"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
        ],
    )
    reasons = reply["CancellationReasons"]
    assert reasons[0] == {"Code": "None"}
    assert reasons[1]["Code"] == "ConditionalCheckFailed"
    assert reasons[1]["Message"] == "The conditional request failed"
    assert reasons[1]["Item"] == old
    assert reasons[2] == {
        "Code": "ConditionalCheckFailed",
        "Message": "The conditional request failed",
    }
    assert "[None, ConditionalCheckFailed, ConditionalCheckFailed]" in reply["Error"]["Message"]
    assert _sks(ddb, t, pk) == ["a"]


def test_two_operations_on_one_item_are_refused_before_anything_is_written(ddb, stack, pk):
    t = stack.table_name
    reply = _cancelled(ddb, [_put(t, _item(pk, "x")), _put(t, _item(pk, "x"))])
    assert reply["Error"]["Code"] == "ValidationException"
    assert "multiple operations on one item" in reply["Error"]["Message"]
    assert _sks(ddb, t, pk) == []


@pytest.fixture
def backend_table(stack) -> Iterator[tuple[Any, Any]]:  # type: ignore[no-untyped-def]
    from moto.dynamodb.models import dynamodb_backends

    (backend,) = [
        backend
        for regions in dynamodb_backends.values()
        for backend in regions.values()
        if stack.table_name in backend.tables
    ]
    yield backend, backend.tables[stack.table_name]


def test_an_item_another_writer_commits_during_a_cancelled_transaction_survives(
    ddb, stack, pk, backend_table
):
    """The other writer runs inside the transaction's condition checks (as another
    thread could with moto's own implementation); the cancellation must not undo it."""
    backend, table = backend_table
    t = stack.table_name
    ddb.put_item(TableName=t, Item=_item(pk, "existing"))
    real_get = table.get_item
    wrote: list[bool] = []

    def get_item_and_someone_else_writes(*args: Any, **kwargs: Any) -> Any:
        if not wrote:
            wrote.append(True)
            backend.put_item(t, _item(pk, "other-writer"))
        return real_get(*args, **kwargs)

    table.get_item = get_item_and_someone_else_writes
    try:
        with pytest.raises(Exception, match=r"TransactionCanceled|cancel"):
            backend.transact_write_items(
                [
                    _put(t, _item(pk, "mine")),
                    _put(t, _item(pk, "existing"), "attribute_not_exists(pk)"),
                ]
            )
    finally:
        del table.get_item
    assert wrote
    assert sorted(_sks(ddb, t, pk)) == ["existing", "other-writer"]


def test_a_failure_while_writing_restores_exactly_the_touched_items(ddb, stack, pk, backend_table):
    backend, table = backend_table
    t = stack.table_name
    ddb.put_item(TableName=t, Item=_item(pk, "kept", v={"S": "before"}))
    ddb.put_item(TableName=t, Item=_item(pk, "gone", v={"S": "before"}))
    streams, iterator = _latest(stack)
    shard = table.stream_shard
    mark = moto_server.next_sequence(shard)
    items = [
        {
            "Update": {
                "TableName": t,
                "Key": {"pk": {"S": pk}, "sk": {"S": "kept"}},
                "UpdateExpression": "SET v = :v",
                "ExpressionAttributeValues": {":v": {"S": "after"}},
            }
        },
        {"Delete": {"TableName": t, "Key": {"pk": {"S": pk}, "sk": {"S": "gone"}}}},
        _put(t, _item(pk, "new")),
        _put(t, _item(pk, "boom")),
    ]
    real_put = backend.put_item

    def fail_on_boom(name: str, attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if attrs["sk"]["S"] == "boom":
            raise RuntimeError("disk on fire")
        return real_put(name, attrs, *args, **kwargs)

    backend.put_item = fail_on_boom
    try:
        with pytest.raises(Exception, match="RuntimeError"):
            backend.transact_write_items(items)
    finally:
        del backend.put_item
    got = _items(ddb, t, pk)
    assert {i["sk"]["S"]: i["v"]["S"] for i in got} == {"kept": "before", "gone": "before"}
    assert moto_server.next_sequence(shard) == mark  # the records of the undone writes are gone
    assert streams.get_records(ShardIterator=iterator)["Records"] == []
    # the GSI map and the stream carry on from there
    ddb.transact_write_items(TransactItems=items[:3])
    assert sorted(_sks(ddb, t, pk)) == ["kept", "new"]
    assert moto_server.next_sequence(shard) == mark + 3


def test_writes_from_other_threads_survive_cancelled_transactions(ddb, stack, pk):
    t = stack.table_name
    ddb.put_item(TableName=t, Item=_item(pk, "existing"))
    failing = [_put(t, _item(pk, f"tx{i}")) for i in range(5)]
    failing.append(_put(t, _item(pk, "existing"), "attribute_not_exists(pk)"))
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        client = boto3.client("dynamodb")
        try:
            for i in range(40):
                client.put_item(TableName=t, Item=_item(pk, f"w{n}-{i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        _cancelled(ddb, failing)
    for thread in threads:
        thread.join()
    assert not errors
    written = set(_sks(ddb, t, pk))
    assert {f"w{n}-{i}" for n in range(4) for i in range(40)} <= written
    assert not any(sk.startswith("tx") for sk in written)


# --- limits -------------------------------------------------------------------------------


def test_one_hundred_items_are_accepted_and_one_hundred_and_one_refused(ddb, stack, pk):
    t = stack.table_name
    items = [_put(t, _item(pk, f"{i:03d}")) for i in range(101)]
    reply = _cancelled(ddb, items)
    assert reply["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 100" in reply["Error"]["Message"]
    assert _sks(ddb, t, pk) == []
    ddb.transact_write_items(TransactItems=items[:100])
    assert len(_sks(ddb, t, pk)) == 100


def test_an_item_over_400_kb_by_dynamodb_s_rules_is_refused(ddb, stack, pk):
    """210,000 NULLs in a list: 210 KB as moto counts, 420 KB as DynamoDB counts
    (one byte each plus one byte of list overhead each)."""
    t = stack.table_name
    big = _item(pk, "big", l={"L": [{"NULL": True}] * 210_000})
    assert moto_server.item_size(big) > 400 * 1024
    reply = _cancelled(ddb, [_put(t, big), _put(t, _item(pk, "small"))])
    assert reply["Error"]["Code"] == "ValidationException"
    assert reply["Error"]["Message"] == "Item size has exceeded the maximum allowed size"
    assert _sks(ddb, t, pk) == []


def test_a_transaction_over_4_mb_is_refused_and_one_just_under_is_accepted(ddb, stack, pk):
    t = stack.table_name
    blob = "x" * 390_000
    items = [_put(t, _item(pk, f"{i:02d}", v={"S": blob})) for i in range(11)]  # about 4.3 MB
    reply = _cancelled(ddb, items)
    assert reply["Error"]["Code"] == "ValidationException"
    assert "4 MB" in reply["Error"]["Message"]
    assert _sks(ddb, t, pk) == []
    ddb.transact_write_items(TransactItems=items[:10])  # about 3.9 MB
    assert len(_sks(ddb, t, pk)) == 10


def test_an_update_that_grows_the_transaction_over_4_mb_is_undone(ddb, stack, pk):
    t = stack.table_name
    blob = "y" * 390_000
    for i in range(11):
        ddb.put_item(TableName=t, Item=_item(pk, f"{i:02d}", v={"S": blob}))
    items = [
        {
            "Update": {
                "TableName": t,
                "Key": {"pk": {"S": pk}, "sk": {"S": f"{i:02d}"}},
                "UpdateExpression": "SET w = :w",
                "ExpressionAttributeValues": {":w": {"S": "z"}},
            }
        }
        for i in range(11)
    ]
    reply = _cancelled(ddb, items)
    assert reply["Error"]["Code"] == "ValidationException"
    got = _items(ddb, t, pk)
    assert len(got) == 11 and not any("w" in i for i in got)


def test_item_size_follows_dynamodb_s_rules():
    size = moto_server.item_size
    assert size({"ab": {"S": "héllo"}}) == 2 + 6
    assert size({"n": {"N": "123456"}}) >= 1 + 4  # 3 bytes of digits + 1, at least
    assert size({"b": {"BOOL": True}, "z": {"NULL": True}}) == 4
    assert size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert size({"ss": {"SS": ["a", "bc"]}}) == 2 + 3
    assert size({"b": {"B": b"\x00" * 10}}) == 1 + 10


@pytest.mark.parametrize(
    "item",
    [
        {"ab": {"S": "héllo wörld ✓"}},
        {"n": {"N": "-12345.678e-10"}, "z": {"N": "0"}},
        {"b": {"B": b"\xff" * 100}, "t": {"B": "AAECAw=="}},
        {"m": {"M": {"k": {"L": [{"NULL": True}, {"BOOL": False}, {"SS": ["a", "é"]}]}}}},
        {"l": {"L": [{"NULL": True}] * 1000}},
        {"ns": {"NS": ["1", "22", "333"]}, "bs": {"BS": [b"a", b"bc"]}},
    ],
)
def test_the_quick_bound_is_never_below_the_size(item):
    assert moto_server.quick_size(item) >= moto_server.item_size(item)


# --- ClientRequestToken -------------------------------------------------------------------


def _counter_update(t: str, pk: str) -> list[dict[str, Any]]:
    return [
        {
            "Update": {
                "TableName": t,
                "Key": {"pk": {"S": pk}, "sk": {"S": "counter"}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }
    ]


def _count(ddb: Any, t: str, pk: str) -> int:
    item = ddb.get_item(
        TableName=t, Key={"pk": {"S": pk}, "sk": {"S": "counter"}}, ConsistentRead=True
    ).get("Item")
    return int(item["n"]["N"]) if item else 0


def test_a_repeated_token_succeeds_without_applying_again(ddb, stack, pk):
    t = stack.table_name
    token = uuid.uuid4().hex
    ddb.transact_write_items(TransactItems=_counter_update(t, pk), ClientRequestToken=token)
    ddb.transact_write_items(TransactItems=_counter_update(t, pk), ClientRequestToken=token)
    assert _count(ddb, t, pk) == 1
    ddb.transact_write_items(TransactItems=_counter_update(t, pk))  # a new token: applied
    assert _count(ddb, t, pk) == 2


def test_the_same_token_with_other_items_is_a_parameter_mismatch(ddb, stack, pk):
    t = stack.table_name
    token = uuid.uuid4().hex
    ddb.transact_write_items(TransactItems=_counter_update(t, pk), ClientRequestToken=token)
    reply = _cancelled(ddb, _counter_update(t, pk + "-other"), ClientRequestToken=token)
    assert reply["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert _count(ddb, t, pk + "-other") == 0


def test_a_token_of_a_cancelled_call_can_be_retried(ddb, stack, pk):
    t = stack.table_name
    token = uuid.uuid4().hex
    guarded = _counter_update(t, pk)
    guarded[0]["Update"]["ConditionExpression"] = "attribute_exists(pk)"
    _cancelled(ddb, guarded, ClientRequestToken=token)
    ddb.put_item(TableName=t, Item=_item(pk, "counter", n={"N": "10"}))
    ddb.transact_write_items(TransactItems=guarded, ClientRequestToken=token)
    assert _count(ddb, t, pk) == 11


def test_a_token_is_forgotten_after_its_window(ddb, stack, pk, monkeypatch):
    monkeypatch.setattr(moto_server, "REQUEST_TOKENS", moto_server.RequestTokens(ttl_s=0.3))
    t = stack.table_name
    token = uuid.uuid4().hex
    ddb.transact_write_items(TransactItems=_counter_update(t, pk), ClientRequestToken=token)
    time.sleep(0.4)
    ddb.transact_write_items(TransactItems=_counter_update(t, pk), ClientRequestToken=token)
    assert _count(ddb, t, pk) == 2


def test_the_token_store_is_bounded():
    tokens = moto_server.RequestTokens(ttl_s=600, max_tokens=10)
    for i in range(50):
        tokens.remember(("a", "r", str(i)), "f")
    assert len(tokens._seen) == 10
    assert tokens.replay(("a", "r", "49"), "f")
    assert not tokens.replay(("a", "r", "0"), "f")
