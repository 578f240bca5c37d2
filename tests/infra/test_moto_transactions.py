"""The local stack's one-backup-per-table fix keeps moto's transaction rollback."""

from __future__ import annotations

import boto3
import pytest


def test_a_cancelled_transaction_writes_nothing(stack):
    ddb = boto3.client("dynamodb")
    t = stack.table_name
    ddb.put_item(TableName=t, Item={"pk": {"S": "TEST#tx"}, "sk": {"S": "existing"}})
    items = [
        {"Put": {"TableName": t, "Item": {"pk": {"S": "TEST#tx"}, "sk": {"S": f"new{i}"}}}}
        for i in range(5)
    ]
    items.append(
        {
            "Put": {
                "TableName": t,
                "Item": {"pk": {"S": "TEST#tx"}, "sk": {"S": "existing"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
    )
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=items)
    left = ddb.query(
        TableName=t,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "TEST#tx"}},
    )["Items"]
    assert [i["sk"]["S"] for i in left] == ["existing"]
    ddb.transact_write_items(TransactItems=items[:5])
    left = ddb.query(
        TableName=t,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "TEST#tx"}},
    )["Items"]
    assert len(left) == 6
