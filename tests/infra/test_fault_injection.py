"""EmbeddedMotoServer.inject: a request answered HTTP 500 after moto applied it
("after": a committed write whose response was lost) or before ("before")."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.moto_server import EmbeddedMotoServer, Faults


@pytest.fixture
def faults(moto: EmbeddedMotoServer) -> Iterator[EmbeddedMotoServer]:
    moto.clear_faults()
    yield moto
    moto.clear_faults()


def _client(retries: int) -> Any:
    return boto3.client("dynamodb", config=Config(retries={"total_max_attempts": retries}))


def _item(pk: str, sk: str = "x") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _exists(table: str, pk: str, sk: str = "x") -> bool:
    got = _client(1).get_item(TableName=table, Key=_item(pk, sk), ConsistentRead=True)
    return "Item" in got


def _raw(endpoint: str, target: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        endpoint,
        data=json.dumps(body).encode(),
        headers={
            "X-Amz-Target": f"DynamoDB_20120810.{target}",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/"
            "aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_after_applies_the_write_then_answers_the_dynamodb_500(faults, stack):
    pk = "TEST#fault#" + uuid.uuid4().hex
    faults.inject("dynamodb.PutItem", "after")
    status, body = _raw(
        faults.endpoint, "PutItem", {"TableName": stack.table_name, "Item": _item(pk)}
    )
    assert status == 500
    assert json.loads(body) == {
        "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
        "message": "injected fault",
    }
    assert _exists(stack.table_name, pk)


def test_before_answers_the_500_without_applying(faults, stack):
    pk = "TEST#fault#" + uuid.uuid4().hex
    faults.inject("dynamodb.PutItem", "before")
    with pytest.raises(ClientError) as caught:
        _client(1).put_item(TableName=stack.table_name, Item=_item(pk))
    assert caught.value.response["Error"]["Code"] == "InternalServerError"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert not _exists(stack.table_name, pk)


def test_botocore_retries_a_lost_answer_and_a_conditional_write_then_fails(faults, stack):
    """What the app must cope with: its conditional write was applied, the answer
    was lost, and botocore's retry finds the condition no longer true."""
    pk = "TEST#fault#" + uuid.uuid4().hex
    before = faults.counter.snapshot()["dynamodb.PutItem"]
    faults.inject("dynamodb.PutItem", "after")
    with pytest.raises(ClientError) as caught:
        _client(3).put_item(
            TableName=stack.table_name,
            Item=_item(pk),
            ConditionExpression="attribute_not_exists(pk)",
        )
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert faults.counter.snapshot()["dynamodb.PutItem"] - before == 2
    assert _exists(stack.table_name, pk)


def test_a_retried_transaction_with_its_token_is_applied_once(faults, stack):
    pk = "TEST#fault#" + uuid.uuid4().hex
    faults.inject("dynamodb.TransactWriteItems", "after")
    update = {
        "Update": {
            "TableName": stack.table_name,
            "Key": _item(pk),
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    _client(3).transact_write_items(TransactItems=[update])  # botocore adds the token
    got = _client(1).get_item(TableName=stack.table_name, Key=_item(pk), ConsistentRead=True)
    assert got["Item"]["n"] == {"N": "1"}


def test_times_counts_matching_requests_only_and_clear_removes_the_rest(faults, stack):
    pk = "TEST#fault#" + uuid.uuid4().hex
    client = _client(1)
    faults.inject("dynamodb.PutItem", "before", times=2)
    client.get_item(TableName=stack.table_name, Key=_item(pk))  # another operation: untouched
    for sk in ("a", "b"):
        with pytest.raises(ClientError):
            client.put_item(TableName=stack.table_name, Item=_item(pk, sk))
    client.put_item(TableName=stack.table_name, Item=_item(pk, "c"))
    faults.inject("dynamodb.PutItem", "before", times=5)
    faults.clear_faults()
    client.put_item(TableName=stack.table_name, Item=_item(pk, "d"))
    assert [_exists(stack.table_name, pk, sk) for sk in "abcd"] == [False, False, True, True]


def test_faults_are_consumed_exactly_once_across_threads():
    faults = Faults()
    faults.add("dynamodb.PutItem", "after", 500)
    faults.add("dynamodb.PutItem", "before", 500)
    taken: list[str | None] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(200):
            mode = faults.take("dynamodb.PutItem")
            with lock:
                taken.append(mode)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken.count("after") == 500 and taken.count("before") == 500
    assert taken.count(None) == 8 * 200 - 1000
    with pytest.raises(ValueError):
        faults.add("dynamodb.PutItem", "sometimes", 1)
