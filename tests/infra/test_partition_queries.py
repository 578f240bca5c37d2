"""Partition-scoped queries (devstack/moto_server.py) answer exactly what moto's
own full-table Query answers: same items, order, pages, LastEvaluatedKeys and
counts, for the base table and gsi1, and still after updates, deletes and
rolled-back transactions."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack import moto_server


@pytest.fixture(scope="module")
def data(stack) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Two partitions and two index partitions, with ties on gsi1sk, items without
    gsi1sk (not in the index), and attributes to filter and project on."""
    ddb = boto3.client("dynamodb")
    run = uuid.uuid4().hex[:8]
    names = {
        "a": f"TEST#q#{run}#A",
        "b": f"TEST#q#{run}#B",
        "g1": f"TEST#q#{run}#G1",
        "g2": f"TEST#q#{run}#G2",
    }
    for i in range(30):
        for part in ("a", "b"):
            item: dict[str, Any] = {
                "pk": {"S": names[part]},
                "sk": {"S": f"s{i:03d}"},
                "n": {"N": str(i % 7)},
                "tag": {"S": "even" if i % 2 == 0 else "odd"},
            }
            if i % 5 != 4:
                item["gsi1pk"] = {"S": names["g1"] if i % 3 else names["g2"]}
                if i % 10 != 9:
                    item["gsi1sk"] = {"S": f"k{i % 4}"}  # ties: ordered by the table key
            ddb.put_item(TableName=stack.table_name, Item=item)
    return names


def _pages(stack, **query: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every page of a Query, keeping what moto answered page by page."""
    ddb = boto3.client("dynamodb")
    pages, start = [], None
    while True:
        kwargs = dict(query, TableName=stack.table_name)
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        page = ddb.query(**kwargs)
        pages.append(
            {k: page.get(k) for k in ("Items", "Count", "ScannedCount", "LastEvaluatedKey")}
        )
        start = page.get("LastEvaluatedKey")
        if start is None or len(pages) > 100:
            return pages


def _both(stack, monkeypatch, **query: Any) -> tuple[Any, Any]:  # type: ignore[no-untyped-def]
    scoped = _pages(stack, **query)
    monkeypatch.setattr(moto_server, "SCOPED_QUERIES", False)
    try:
        full = _pages(stack, **query)
    finally:
        monkeypatch.setattr(moto_server, "SCOPED_QUERIES", True)
    return scoped, full


def _queries(names: dict[str, str]) -> list[dict[str, Any]]:
    base = {
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": names["a"]}},
    }
    g1 = {
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :g",
        "ExpressionAttributeValues": {":g": {"S": names["g1"]}},
    }
    return [
        base,
        {**base, "ScanIndexForward": False},
        {**base, "Limit": 7},
        {**base, "Limit": 7, "ScanIndexForward": False},
        {**base, "ConsistentRead": True, "Limit": 4},
        {
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": {"S": names["b"]}, ":s": {"S": "s01"}},
        },
        {
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :x AND :y",
            "ExpressionAttributeValues": {
                ":p": {"S": names["a"]},
                ":x": {"S": "s005"},
                ":y": {"S": "s020"},
            },
            "Limit": 3,
            "ScanIndexForward": False,
        },
        {
            **base,
            "FilterExpression": "tag = :t AND n > :n",
            "ExpressionAttributeValues": {
                ":p": {"S": names["a"]},
                ":t": {"S": "even"},
                ":n": {"N": "2"},
            },
            "Limit": 6,
        },
        {**base, "ProjectionExpression": "sk, n", "Limit": 9},
        {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "TEST#q#nothing-here"}},
        },
        g1,
        {**g1, "ScanIndexForward": False},
        {**g1, "Limit": 5},
        {**g1, "Limit": 4, "ScanIndexForward": False},
        {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :g AND begins_with(gsi1sk, :k)",
            "ExpressionAttributeValues": {":g": {"S": names["g1"]}, ":k": {"S": "k1"}},
            "Limit": 3,
        },
        {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :g AND gsi1sk > :k",
            "FilterExpression": "tag = :t",
            "ExpressionAttributeValues": {
                ":g": {"S": names["g2"]},
                ":k": {"S": "k0"},
                ":t": {"S": "odd"},
            },
        },
        {
            **g1,
            "FilterExpression": "n < :n",
            "ExpressionAttributeValues": {":g": {"S": names["g1"]}, ":n": {"N": "3"}},
            "Limit": 6,
        },
        {**g1, "ExpressionAttributeValues": {":g": {"S": "TEST#q#no-such-index-value"}}},
    ]


def _check_all(stack, monkeypatch, names: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    for query in _queries(names):
        scoped, full = _both(stack, monkeypatch, **query)
        assert scoped == full, query


def test_queries_answer_what_moto_answers(stack, data, monkeypatch):
    _check_all(stack, monkeypatch, data)
    scoped, _ = _both(stack, monkeypatch, **_queries(data)[2])
    assert len(scoped) > 1  # pagination was exercised


def test_the_index_follows_updates_deletes_and_rolled_back_transactions(stack, data, monkeypatch):
    ddb = boto3.client("dynamodb")
    t = stack.table_name
    a, g1, g2 = data["a"], data["g1"], data["g2"]
    ddb.update_item(  # moves an item from g1 to g2 in place
        TableName=t,
        Key={"pk": {"S": a}, "sk": {"S": "s001"}},
        UpdateExpression="SET gsi1pk = :g, gsi1sk = :k",
        ExpressionAttributeValues={":g": {"S": g2}, ":k": {"S": "k9"}},
    )
    ddb.update_item(  # an item that was in no index partition joins g1
        TableName=t,
        Key={"pk": {"S": a}, "sk": {"S": "s004"}},
        UpdateExpression="SET gsi1pk = :g, gsi1sk = :k",
        ExpressionAttributeValues={":g": {"S": g1}, ":k": {"S": "k0"}},
    )
    ddb.update_item(  # an upsert of a new item straight into g1
        TableName=t,
        Key={"pk": {"S": a}, "sk": {"S": "s100"}},
        UpdateExpression="SET gsi1pk = :g, gsi1sk = :k",
        ExpressionAttributeValues={":g": {"S": g1}, ":k": {"S": "k2"}},
    )
    ddb.update_item(  # leaves the index
        TableName=t,
        Key={"pk": {"S": a}, "sk": {"S": "s002"}},
        UpdateExpression="REMOVE gsi1pk",
    )
    ddb.delete_item(TableName=t, Key={"pk": {"S": a}, "sk": {"S": "s005"}})
    ddb.put_item(  # a put that replaces an item with one in another index partition
        TableName=t,
        Item={"pk": {"S": a}, "sk": {"S": "s007"}, "gsi1pk": {"S": g2}, "gsi1sk": {"S": "k1"}},
    )
    with pytest.raises(ClientError):
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": t,
                        "Item": {
                            "pk": {"S": a},
                            "sk": {"S": "s200"},
                            "gsi1pk": {"S": g1},
                            "gsi1sk": {"S": "k0"},
                        },
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": t,
                        "Key": {"pk": {"S": a}, "sk": {"S": "missing"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    _check_all(stack, monkeypatch, data)
    keys = [
        i["sk"]["S"]
        for page in _pages(
            stack,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :g",
            ExpressionAttributeValues={":g": {"S": g1}},
        )
        for i in page["Items"]
        if i["pk"]["S"] == a
    ]
    assert "s004" in keys and "s100" in keys
    assert not {"s001", "s002", "s005", "s007", "s200"} & set(keys)


def test_a_base_table_query_reads_only_its_partition(stack, data, monkeypatch):
    table = moto_server.find_table(stack.table_name)
    calls: list[int] = []
    real = type(table).all_items

    def counting(self: Any) -> list[Any]:
        items: list[Any] = real(self)
        calls.append(len(items))
        return items

    monkeypatch.setattr(type(table), "all_items", counting)
    _pages(
        stack,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": data["a"]}},
    )
    _pages(
        stack,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :g",
        ExpressionAttributeValues={":g": {"S": data["g2"]}},
    )
    assert calls and max(calls) <= 30 < len(table)
