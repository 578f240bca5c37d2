"""A local stream shard keeps a bounded number of records (the local stand-in for
a DynamoDB stream's 24-hour retention), with sequence numbers that stay correct
and iterators that behave like DynamoDB Streams' at the trim horizon."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack import moto_server


@pytest.fixture
def table(stack) -> Iterator[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """A table of its own with a stream: (name, stream arn, shard id)."""
    ddb = boto3.client("dynamodb")
    name = "retention-" + uuid.uuid4().hex[:8]
    described = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    arn = described["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    yield name, arn, shard
    ddb.delete_table(TableName=name)


def _put(name: str, count: int, prefix: str = "i") -> None:
    ddb = boto3.client("dynamodb")
    for i in range(count):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"{prefix}{i:04d}"}})


def _iterator(arn: str, shard: str, kind: str, sequence: int | None = None) -> str:
    kwargs: dict[str, Any] = {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": kind}
    if sequence is not None:
        kwargs["SequenceNumber"] = str(sequence)
    return str(boto3.client("dynamodbstreams").get_shard_iterator(**kwargs)["ShardIterator"])


def _read_all(iterator: str) -> list[dict[str, Any]]:
    streams = boto3.client("dynamodbstreams")
    records: list[dict[str, Any]] = []
    while True:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        if not page["Records"]:
            return records
        records += page["Records"]
        iterator = page["NextShardIterator"]


def _seqs(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["dynamodb"]["SequenceNumber"]) for r in records]


def test_the_shard_keeps_at_most_max_records_with_contiguous_sequence_numbers(table, monkeypatch):
    monkeypatch.setattr(moto_server.STREAM_RETENTION, "max_records", 50)
    name, arn, shard = table
    first = _read_all(_iterator(arn, shard, "TRIM_HORIZON"))
    assert first == []
    _put(name, 10)
    start = _seqs(_read_all(_iterator(arn, shard, "TRIM_HORIZON")))[0]
    _put(name, 290, prefix="j")

    held = moto_server.find_table(name).stream_shard.items
    assert 0 < len(held) <= 50
    records = _read_all(_iterator(arn, shard, "TRIM_HORIZON"))
    seqs = _seqs(records)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # contiguous, increasing
    assert seqs[-1] == start + 299  # numbering unaffected by the trimming
    assert records[-1]["dynamodb"]["Keys"]["pk"]["S"] == "j0289"


def test_iterators_at_the_trim_horizon_behave_like_dynamodb_streams(table, monkeypatch):
    monkeypatch.setattr(moto_server.STREAM_RETENTION, "max_records", 40)
    name, arn, shard = table
    streams = boto3.client("dynamodbstreams")
    _put(name, 5)
    oldest = _seqs(_read_all(_iterator(arn, shard, "TRIM_HORIZON")))[0]
    early = _iterator(arn, shard, "TRIM_HORIZON")
    latest = _iterator(arn, shard, "LATEST")
    _put(name, 100, prefix="k")

    kept = _seqs(_read_all(_iterator(arn, shard, "TRIM_HORIZON")))
    assert kept[0] > oldest
    for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        stale = _iterator(arn, shard, kind, oldest)
        with pytest.raises(ClientError) as caught:
            streams.get_records(ShardIterator=stale)
        assert caught.value.response["Error"]["Code"] == "TrimmedDataAccessException"
    with pytest.raises(ClientError) as caught:
        streams.get_records(ShardIterator=early)  # opened before its records were trimmed
    assert caught.value.response["Error"]["Code"] == "TrimmedDataAccessException"
    with pytest.raises(ClientError) as caught:
        streams.get_records(ShardIterator=latest)
    assert caught.value.response["Error"]["Code"] == "TrimmedDataAccessException"

    after = _read_all(_iterator(arn, shard, "AFTER_SEQUENCE_NUMBER", kept[10]))
    assert _seqs(after) == kept[11:]
    assert _seqs(_read_all(_iterator(arn, shard, "AT_SEQUENCE_NUMBER", kept[10]))) == kept[10:]
    new_latest = _iterator(arn, shard, "LATEST")
    _put(name, 2, prefix="m")
    assert _seqs(_read_all(new_latest)) == [kept[-1] + 1, kept[-1] + 2]


def test_records_older_than_the_retention_are_dropped(table, monkeypatch):
    name, arn, shard = table
    _put(name, 20)
    monkeypatch.setattr(moto_server.STREAM_RETENTION, "max_age_s", 0.5)
    time.sleep(0.6)
    _put(name, 3, prefix="n")
    records = _read_all(_iterator(arn, shard, "TRIM_HORIZON"))
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["n0000", "n0001", "n0002"]


def test_an_unknown_or_expired_iterator_is_expired_iterator_exception(table):
    _, arn, shard = table
    streams = boto3.client("dynamodbstreams")
    real = _iterator(arn, shard, "TRIM_HORIZON")
    with pytest.raises(ClientError) as caught:
        streams.get_records(ShardIterator=real[:-8] + "AAAAAAAA")
    assert caught.value.response["Error"]["Code"] == "ExpiredIteratorException"
    with pytest.raises(ClientError) as caught:
        streams.get_shard_iterator(
            StreamArn=arn,
            ShardId="shardId-00000000000000000000-00000000",
            ShardIteratorType="TRIM_HORIZON",
        )
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_iterator_store_is_bounded(monkeypatch):
    monkeypatch.setattr(moto_server, "MAX_ITERATORS", 5)
    store = moto_server._Iterators()

    class It:
        pass

    for i in range(20):
        store[str(i)] = It()
    assert list(store) == ["15", "16", "17", "18", "19"]


# --- records as read ------------------------------------------------------------------------

EVERY_TYPE: dict[str, Any] = {
    "s": {"S": "héllo"},
    "n": {"N": "-12.5"},
    "b": {"B": b"\x00\x01binary"},
    "t": {"BOOL": True},
    "z": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"y"]},
    "l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"k": {"B": b"\xff"}}}]},
    "m": {"M": {"inner": {"L": [{"BOOL": False}]}, "e": {"S": ""}}},
}


def _comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records as botocore parsed them, sets made comparable."""

    def fix(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    out = []
    for record in records:
        image = fix(record)
        for side in ("NewImage", "OldImage"):
            for attrs in [image["dynamodb"].get(side) or {}]:
                for key in ("ss", "ns", "bs"):
                    if key in attrs:
                        attrs[key] = {t: sorted(v) for t, v in attrs[key].items()}
        out.append(image)
    return out


def test_records_read_are_what_moto_s_own_serializer_answers(table, monkeypatch):
    name, arn, shard = table
    ddb = boto3.client("dynamodb")
    ddb.put_item(TableName=name, Item={"pk": {"S": "every"}, **EVERY_TYPE})
    ddb.update_item(
        TableName=name,
        Key={"pk": {"S": "every"}},
        UpdateExpression="SET s = :s ADD ss :more REMOVE z",
        ExpressionAttributeValues={":s": {"S": "changed"}, ":more": {"SS": ["c"]}},
    )
    ddb.put_item(TableName=name, Item={"pk": {"S": "other"}, "n": {"N": "1"}})
    ddb.delete_item(TableName=name, Key={"pk": {"S": "every"}})

    direct = _read_all(_iterator(arn, shard, "TRIM_HORIZON"))
    monkeypatch.setattr(moto_server, "DIRECT_RECORDS_JSON", False)
    serialized = _read_all(_iterator(arn, shard, "TRIM_HORIZON"))
    assert _comparable(direct) == _comparable(serialized)

    assert [r["eventName"] for r in direct] == ["INSERT", "MODIFY", "INSERT", "REMOVE"]
    put, update, _, delete = direct
    got = put["dynamodb"]["NewImage"]
    assert got["b"] == {"B": b"\x00\x01binary"} and got["m"] == EVERY_TYPE["m"]
    assert update["dynamodb"]["OldImage"]["s"] == {"S": "héllo"}
    assert update["dynamodb"]["NewImage"]["s"] == {"S": "changed"}
    assert "z" not in update["dynamodb"]["NewImage"]
    assert sorted(update["dynamodb"]["NewImage"]["ss"]["SS"]) == ["a", "b", "c"]
    assert delete["dynamodb"]["OldImage"]["s"] == {"S": "changed"}
    assert "NewImage" not in delete["dynamodb"]
    assert all(r["dynamodb"]["SizeBytes"] > 0 for r in direct)


def test_a_record_keeps_its_image_when_the_item_is_later_changed_in_place(table):
    name, arn, shard = table
    ddb = boto3.client("dynamodb")
    ddb.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "1"}, "l": {"L": []}})
    for i in range(3):
        ddb.update_item(
            TableName=name,
            Key={"pk": {"S": "k"}},
            UpdateExpression="ADD v :one SET l = list_append(l, :x)",
            ExpressionAttributeValues={":one": {"N": "1"}, ":x": {"L": [{"N": str(i)}]}},
        )
    records = _read_all(_iterator(arn, shard, "TRIM_HORIZON"))
    news = [
        (r["dynamodb"]["NewImage"]["v"]["N"], len(r["dynamodb"]["NewImage"]["l"]["L"]))
        for r in records
    ]
    assert news == [("1", 0), ("2", 1), ("3", 2), ("4", 3)]
    olds = [r["dynamodb"]["OldImage"]["v"]["N"] for r in records[1:]]
    assert olds == ["1", "2", "3"]
