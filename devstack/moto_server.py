"""The embedded AWS endpoint of the local stack: a moto server on 127.0.0.1.

It is moto's own WSGI application served over real HTTP, wrapped in a small
middleware that counts requests by service and operation. The counters are how
the benchmark proves round-trip figures (a client cannot hide a call from the
server it is calling).

The middleware also serializes DynamoDB and DynamoDB Streams requests (moto's
tables are plain dicts and lists, not safe to mutate from many threads) and can
inject faults for tests (`EmbeddedMotoServer.inject`).

`install_moto_patches()` (run by `EmbeddedMotoServer.start()`, idempotent)
changes a few things in moto so that the local stack holds thousands of patients
with flat latency and behaves like DynamoDB where the app depends on it; each is
explained in docs/local-stack.md:

- TransactWriteItems checks every condition first and only then writes, with
  no copy of the table; a failure while writing restores exactly the items it
  touched. It enforces DynamoDB's limits (100 items, 400 KB an item, 4 MB in
  all) and honours ClientRequestToken for 10 minutes.
- A base-table Query reads only its partition; a GSI Query reads only the items
  whose index hash key matches (a per-index map kept up to date at every write).
- A stream shard keeps a bounded number of records (the local stand-in for the
  24-hour retention of a DynamoDB stream), with correct sequence numbers; its
  records refer to item images instead of holding JSON copies, and GetRecords
  writes its JSON directly. Shard iterators expire after 15 minutes.
- Costs that grew with the data or repeated the same work: an item's size summed
  once per attribute, SQS counting every queued message on each send, JSONPath
  parsed per event, moto's package folder listed per request.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer

from models.item_size import ITEM_MAX, TRANSACTION_ITEMS_MAX, TRANSACTION_MAX, item_size

DEFAULT_ENDPOINT = "http://127.0.0.1:5055"
ENDPOINT_ENV = "EMR_AWS_ENDPOINT"
LISTEN_BACKLOG = 1024  # werkzeug's default (128) refuses bursts of parallel clients

# DynamoDB's limits on one TransactWriteItems call (one definition, in models/item_size.py).
MAX_TRANSACTION_ITEMS = TRANSACTION_ITEMS_MAX
MAX_ITEM_BYTES = ITEM_MAX
MAX_TRANSACTION_BYTES = TRANSACTION_MAX
ITEM_TOO_LARGE = "Item size has exceeded the maximum allowed size"
TRANSACTION_TOO_LARGE = "Transaction item size has exceeded the 4 MB limit"
TOKEN_MISMATCH = "The request uses the same client token as a previous, but different, request."
TOKEN_TTL_S = 600.0  # a ClientRequestToken is valid 10 minutes after its call
MAX_TOKENS = 100_000
MOTO_ITEM_LIMIT = 405_000  # moto's own item size limit (by its own measure)

# DynamoDB Streams: iterators expire after 15 minutes.
ITERATOR_TTL_S = 900.0
MAX_ITERATORS = 10_000

# The services whose moto backends must not be entered by two requests at once.
SERIALIZED = ("dynamodb.", "dynamodbstreams.")

FAULT_BODY = json.dumps(
    {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "injected fault"}
).encode()


class CallCounter:
    """Thread-safe counts of AWS operations seen by the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def _operation(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # JSON protocols: DynamoDB_20120810.GetItem, TrentService.Decrypt, ...
        prefix, _, op = target.partition(".")
        service = {
            "DynamoDB_20120810": "dynamodb",
            "DynamoDBStreams_20120810": "dynamodbstreams",
            "TrentService": "kms",
            "AWSCognitoIdentityProviderService": "cognito-idp",
            "AWSEvents": "events",
            "AmazonSQS": "sqs",
        }.get(prefix, prefix)
        return f"{service}.{op}"
    return f"http.{environ.get('REQUEST_METHOD', '?')}"


class Faults:
    """Thread-safe injected faults: operation name -> [mode, requests left] in order."""

    MODES = ("before", "after")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[list[Any]]] = {}

    def add(self, operation: str, mode: str, times: int) -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode is one of {self.MODES}, not {mode!r}")
        if times > 0:
            with self._lock:
                self._pending.setdefault(operation, []).append([mode, times])

    def take(self, operation: str) -> str | None:
        """The fault the next request of `operation` gets (consuming it), if any."""
        with self._lock:
            queue = self._pending.get(operation)
            if not queue:
                return None
            mode, _ = queue[0]
            queue[0][1] -= 1
            if queue[0][1] <= 0:
                queue.pop(0)
            if not queue:
                del self._pending[operation]
            return str(mode)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()


# One lock for the whole process: every EmbeddedMotoServer of a process shares
# moto's backends.
_BACKEND_LOCK = threading.Lock()


def _fault_response(start_response: Callable[..., Any]) -> list[bytes]:
    start_response(
        "500 Internal Server Error",
        [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("Content-Length", str(len(FAULT_BODY))),
        ],
    )
    return [FAULT_BODY]


def _drain(result: Iterable[bytes]) -> list[bytes]:
    try:
        return list(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


class _Counting:
    """Counts every request, serializes those of `SERIALIZED` services, injects faults."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], counter: CallCounter, faults: Faults
    ) -> None:
        self._app = app
        self._counter = counter
        self._faults = faults

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        operation = _operation(environ)
        self._counter.record(operation)
        fault = self._faults.take(operation)
        if fault == "before":
            return _fault_response(start_response)
        serialized = operation.startswith(SERIALIZED)
        with _BACKEND_LOCK if serialized else nullcontext():
            if fault == "after":
                _drain(self._app(environ, lambda *args: None))
                return _fault_response(start_response)
            result = self._app(environ, start_response)
            # Build the whole body while the backend cannot change under it.
            return _drain(result) if serialized else result


# Item sizes follow DynamoDB's rules in models/item_size.py (the unit of work checks the
# same limits before sending); `quick_size` below is a cheaper upper bound.


# --- TransactWriteItems without a table copy ------------------------------------------


@dataclass
class _Planned:
    """One checked operation of a transaction."""

    kind: str  # Put, Update, Delete or ConditionCheck
    op: dict[str, Any]
    table: Any  # moto Table
    key: dict[str, Any]  # the key as AttributeValues


def _key_of(table: Any, kind: str, op: dict[str, Any]) -> dict[str, Any]:
    if kind != "Put":
        return dict(op["Key"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _key_values(table: Any, key: dict[str, Any]) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = DynamoType(key[table.hash_key_attr])
    if table.range_key_attr is not None and table.range_key_attr in key:
        return hash_value, DynamoType(key[table.range_key_attr])
    return hash_value, None


def _plan(backend: Any, kind: str, op: dict[str, Any], seen: set[tuple[str, str]]) -> _Planned:
    from moto.dynamodb.exceptions import MultipleTransactionsException

    if kind not in {"ConditionCheck", "Put", "Delete", "Update"}:
        raise ValueError("Unsupported transaction operation")
    table = backend.get_table(op["TableName"])
    key = _key_of(table, kind, op)
    target = (str(op["TableName"]), str(dict(sorted(key.items()))))
    if target in seen:
        raise MultipleTransactionsException()
    seen.add(target)
    return _Planned(kind, op, table, key)


Reason = tuple[str, str, Any] | tuple[None, None, None]
NO_REASON: Reason = (None, None, None)


def _evaluate(backend: Any, planned: _Planned) -> Reason:
    """moto's condition check of one operation, against the current item."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    op = planned.op
    current = backend.get_item(op["TableName"], planned.key)
    expression = op.get("ConditionExpression")
    if expression is None:
        return NO_REASON
    condition = get_filter_expression(
        expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    )
    if condition.expr(current):
        return NO_REASON
    item = None
    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        item = current.to_json()["Attributes"]
    failed = ConditionalCheckFailed(item=item)
    return ("ConditionalCheckFailed", str(failed.message), item)


def _check_all(backend: Any, transact_items: list[dict[str, Any]]) -> list[_Planned]:
    """Phase 1: validate every operation and evaluate every condition; raise
    TransactionCanceledException (reasons as moto reports them) having changed nothing."""
    from moto.dynamodb.exceptions import (
        MockValidationException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if any(len(entry) > 1 for entry in transact_items):
        raise TransactWriteSingleOpException()
    seen: set[tuple[str, str]] = set()
    planned: list[_Planned] = []
    reasons: list[Reason] = []
    for entry in transact_items:
        kind, op = next(iter(entry.items()))
        try:
            one = _plan(backend, kind, op, seen)
            reasons.append(_evaluate(backend, one))
            planned.append(one)
        except MockValidationException:
            raise
        except Exception as exc:  # what moto reports as a cancellation reason
            reasons.append((type(exc).__name__, str(exc), None))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    return planned


def _validation(message: str) -> Exception:
    from moto.dynamodb.exceptions import MockValidationException

    return MockValidationException(message)


def _json_default(value: Any) -> str:
    return value.hex() if isinstance(value, bytes | bytearray) else str(value)


def quick_size(attributes: dict[str, Any]) -> int:
    """The length of the JSON text: never below `item_size`, and much faster."""
    return len(json.dumps(attributes, default=_json_default))


def _op_size(kind: str, op: dict[str, Any], size: Callable[[dict[str, Any]], int]) -> int:
    """What one operation adds to a transaction's size, before it runs: a put's
    item; for the others their key (and an update's values)."""
    if kind == "Put" and isinstance(op.get("Item"), dict):
        return size(op["Item"])
    if isinstance(op.get("Key"), dict):
        return size(op["Key"]) + size(op.get("ExpressionAttributeValues") or {})
    return 0


def _check_limits(transact_items: list[dict[str, Any]]) -> None:
    """DynamoDB's request limits, before anything is read or written. The quick
    bound decides when it is under a limit; the exact size when it is not."""
    from moto.dynamodb.exceptions import TooManyTransactionsException

    if len(transact_items) > MAX_TRANSACTION_ITEMS:
        raise TooManyTransactionsException()
    ops = [next(iter(entry.items())) for entry in transact_items]
    quick = [_op_size(kind, op, quick_size) for kind, op in ops]
    for (kind, op), bound in zip(ops, quick, strict=True):
        if (
            kind == "Put"
            and bound > MAX_ITEM_BYTES
            and _op_size(kind, op, item_size) > MAX_ITEM_BYTES
        ):
            raise _validation(ITEM_TOO_LARGE)
    over = sum(quick) > MAX_TRANSACTION_BYTES
    if over and sum(_op_size(kind, op, item_size) for kind, op in ops) > MAX_TRANSACTION_BYTES:
        raise _validation(TRANSACTION_TOO_LARGE)


def _current_item(table: Any, hash_value: Any, range_value: Any) -> Any:
    """The stored item, without creating an empty partition in moto's defaultdict."""
    partition = table.items.get(hash_value)
    if partition is None or table.range_key_attr is None:
        return partition
    return partition.get(range_value)


def _written_size(planned: list[_Planned]) -> int:
    """Aggregate size after the writes: items as written, keys of the others."""
    total = 0
    for one in planned:
        if one.kind in ("Put", "Update"):
            item = _current_item(one.table, *_key_values(one.table, one.key))
            total += item_size(item.to_json()["Attributes"]) if item is not None else 0
        else:
            total += item_size(one.key)
    return total


def oldest_sequence(shard: Any) -> int:
    """Sequence number of the oldest record a shard still holds."""
    return int(shard.starting_sequence_number) + int(shard.__dict__.get("_emr_trimmed", 0))


def next_sequence(shard: Any) -> int:
    """Sequence number the shard's next record gets."""
    return oldest_sequence(shard) + len(shard.items)


class _Undo:
    """Prior images of the items a transaction writes, and where each stream stood."""

    def __init__(self) -> None:
        self._priors: dict[tuple[int, Any, Any], tuple[Any, Any, Any, Any]] = {}
        self._streams: dict[int, tuple[Any, int]] = {}

    def remember(self, planned: _Planned) -> None:
        table = planned.table
        hash_value, range_value = _key_values(table, planned.key)
        slot = (id(table), hash_value, range_value)
        if slot not in self._priors:
            prior = _current_item(table, hash_value, range_value)
            if planned.kind == "Update":  # moto changes the stored item in place
                prior = copy.deepcopy(prior)
            self._priors[slot] = (table, hash_value, range_value, prior)
        shard = table.stream_shard
        if shard is not None and id(shard) not in self._streams:
            self._streams[id(shard)] = (shard, next_sequence(shard))

    def rollback(self) -> None:
        for table, hash_value, range_value, prior in reversed(list(self._priors.values())):
            _restore(table, hash_value, range_value, prior)
        for shard, mark in self._streams.values():
            keep = max(0, mark - oldest_sequence(shard))
            _forget_live(shard, shard.items[keep:])
            del shard.items[keep:]


def _restore(table: Any, hash_value: Any, range_value: Any, prior: Any) -> None:
    """Put back an item's prior image (or its absence), with no stream record."""
    if table.range_key_attr is None:
        if prior is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = prior
    else:
        partition = table.items.get(hash_value)
        if prior is not None:
            table.items[hash_value][range_value] = prior
        elif partition is not None:
            partition.pop(range_value, None)
            if not partition:
                del table.items[hash_value]
    _gsi_touch(table, hash_value, range_value)


def _write(backend: Any, planned: _Planned) -> None:
    """One write, as moto's own TransactWriteItems makes it, less the condition:
    phase 1 checked it against the same state (requests are serialized)."""
    op, name = planned.op, planned.op["TableName"]
    common = {
        "expression_attribute_names": op.get("ExpressionAttributeNames"),
        "expression_attribute_values": op.get("ExpressionAttributeValues"),
    }
    if planned.kind == "Put":
        backend.put_item(name, op["Item"], **common)
    elif planned.kind == "Delete":
        backend.delete_item(name, planned.key, **common)
    elif planned.kind == "Update":
        backend.update_item(name, planned.key, update_expression=op["UpdateExpression"], **common)


def _apply_all(backend: Any, planned: list[_Planned]) -> None:
    """Phase 2: the writes. Anything raised restores the touched items (and drops
    the stream records added) first; an error moto would report as a cancellation
    reason is raised as TransactionCanceledException."""
    from moto.dynamodb.exceptions import MockValidationException, TransactionCanceledException

    undo = _Undo()
    index = 0
    try:
        for index, one in enumerate(planned):  # noqa: B007 - index is read on failure
            if one.kind != "ConditionCheck":
                undo.remember(one)
                _write(backend, one)
        updates = any(one.kind == "Update" for one in planned)
        if updates and _written_size(planned) > MAX_TRANSACTION_BYTES:
            raise _validation(TRANSACTION_TOO_LARGE)
    except MockValidationException:
        undo.rollback()
        raise
    except Exception as exc:
        undo.rollback()
        reasons: list[Reason] = [NO_REASON] * len(planned)
        reasons[index] = (type(exc).__name__, str(exc), None)
        raise TransactionCanceledException(reasons) from exc
    except BaseException:
        undo.rollback()
        raise


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """DynamoDBBackend.transact_write_items without copying any table."""
    _check_limits(transact_items)
    planned = _check_all(self, transact_items)
    _apply_all(self, planned)


# --- ClientRequestToken ---------------------------------------------------------------


class RequestTokens:
    """Successful TransactWriteItems calls by token, for 10 minutes (bounded)."""

    def __init__(self, ttl_s: float = TOKEN_TTL_S, max_tokens: int = MAX_TOKENS) -> None:
        self.ttl_s = ttl_s
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, ...], tuple[str, float]] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._seen:
            _, (_, expires) = next(iter(self._seen.items()))
            if expires > now and len(self._seen) <= self.max_tokens:
                return
            self._seen.popitem(last=False)

    def replay(self, scope: tuple[str, ...], fingerprint: str) -> bool:
        """True if this exact call already succeeded; raises on the same token
        with different parameters."""
        with self._lock:
            self._expire(time.monotonic())
            seen = self._seen.get(scope)
        if seen is None:
            return False
        if seen[0] != fingerprint:
            from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException

            raise DynamodbException(
                ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException", TOKEN_MISMATCH
            )
        return True

    def remember(self, scope: tuple[str, ...], fingerprint: str) -> None:
        with self._lock:
            self._seen[scope] = (fingerprint, time.monotonic() + self.ttl_s)
            self._seen.move_to_end(scope)
            self._expire(time.monotonic())

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


REQUEST_TOKENS = RequestTokens()


def _fingerprint(body: dict[str, Any]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode()
        return str(value)

    params = {k: v for k, v in body.items() if k != "ClientRequestToken"}
    canonical = json.dumps(params, sort_keys=True, default=default)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _with_request_token(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return original(self)
        scope = (str(self.current_account), str(self.region), str(token))
        fingerprint = _fingerprint(self.body)
        if REQUEST_TOKENS.replay(scope, fingerprint):
            from moto.core.responses import ActionResult

            return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
        result = original(self)
        REQUEST_TOKENS.remember(scope, fingerprint)
        return result

    return transact_write_items


# --- partition-scoped queries ---------------------------------------------------------

_query_scope = threading.local()

# Off: every Query takes moto's own path over the whole table (tests compare both).
SCOPED_QUERIES = True


def _partition_items(table: Any, hash_value: Any) -> list[Any]:
    partition = table.items.get(hash_value)
    if partition is None:
        return []
    if table.range_key_attr is None:
        return [partition]
    return sorted(partition.values(), key=lambda item: item.range_key)


def _frozen(value: Any) -> Any:
    """A hashable snapshot of a DynamoType key value, or None."""
    try:
        key = (value.type, value.cast_value)
        hash(key)
    except (AttributeError, TypeError):
        return None
    return key


@dataclass
class _GsiMap:
    """Index hash value -> primary keys of the items holding it, for one GSI."""

    attr: str
    items_id: int
    by_value: dict[Any, set[tuple[Any, Any]]] = field(default_factory=dict)
    value_of: dict[tuple[Any, Any], Any] = field(default_factory=dict)

    def update(self, hash_value: Any, range_value: Any, item: Any) -> None:
        key = (hash_value, range_value)
        old = self.value_of.pop(key, None)
        if old is not None:
            holders = self.by_value.get(old)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self.by_value[old]
        new = _frozen(item.attrs.get(self.attr)) if item is not None else None
        if new is not None:
            self.value_of[key] = new
            self.by_value.setdefault(new, set()).add(key)


def _all_items(table: Any) -> Iterator[Any]:
    for partition in table.items.values():
        if table.range_key_attr is None:
            yield partition
        else:
            yield from partition.values()


def _gsi_map(table: Any, index_name: str, attr: str) -> _GsiMap:
    maps: dict[str, _GsiMap] = table.__dict__.setdefault("_emr_gsi", {})
    found = maps.get(index_name)
    if found is None or found.attr != attr or found.items_id != id(table.items):
        found = _GsiMap(attr, id(table.items))
        for item in _all_items(table):
            found.update(item.hash_key, item.range_key, item)
        maps[index_name] = found
    return found


def _gsi_touch(table: Any, hash_value: Any, range_value: Any) -> None:
    """Re-index one item (present or gone) in every GSI map built for its table."""
    maps: dict[str, _GsiMap] | None = table.__dict__.get("_emr_gsi")
    if not maps:
        return
    item = _current_item(table, hash_value, range_value if table.range_key_attr else None)
    for one in maps.values():
        if one.items_id == id(table.items):
            one.update(hash_value, range_value if table.range_key_attr else None, item)


def _gsi_candidates(table: Any, index_name: str, conditions: Any) -> list[Any] | None:
    from moto.dynamodb.models.table import GlobalSecondaryIndex

    index = {i.name: i for i in table.all_indexes()}.get(index_name)
    if not isinstance(index, GlobalSecondaryIndex):
        return None
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    wanted = dict(conditions or []).get(hashes[0]) if hashes else None
    frozen = _frozen(wanted) if wanted is not None else None
    if frozen is None:
        return None
    keys = _gsi_map(table, index_name, hashes[0]).by_value.get(frozen, ())
    found = (_current_item(table, h, r) for h, r in keys)
    return [item for item in found if item is not None]


def _with_scoped_items(original: Callable[..., Any], signature: Any) -> Callable[..., Any]:
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not SCOPED_QUERIES:
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs).arguments
        index_name = bound.get("index_name")
        if index_name:
            candidates = _gsi_candidates(self, index_name, bound.get("hash_key_conditions"))
        elif bound.get("hash_key") is not None:
            candidates = _partition_items(self, bound["hash_key"])
        else:
            candidates = None
        if candidates is None:
            return original(self, *args, **kwargs)
        _query_scope.items = (self, candidates)
        try:
            return original(self, *args, **kwargs)
        finally:
            _query_scope.items = None

    return query


def _scoped_all_items(original: Callable[[Any], list[Any]]) -> Callable[[Any], list[Any]]:
    def all_items(self: Any) -> list[Any]:
        scope = getattr(_query_scope, "items", None)
        if scope is not None and scope[0] is self:
            return list(scope[1])
        return original(self)

    return all_items


def _indexed_put(original: Callable[..., Any]) -> Callable[..., Any]:
    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = original(self, *args, **kwargs)
        _gsi_touch(self, item.hash_key, item.range_key)
        return item

    return put_item


def _indexed_delete(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        try:
            return original(self, hash_key, range_key)
        finally:
            _gsi_touch(self, hash_key, range_key)

    return delete_item


def _indexed_update(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kw: Any) -> Any:
        table = self.tables.get(table_name)
        known = table is not None and isinstance(key, dict) and table.hash_key_attr in key
        if known:
            _before_in_place_update(table, _current_item(table, *_key_values(table, key)))
        try:
            return original(self, table_name, key, *args, **kw)
        finally:  # moto updates the stored item in place, even when it then raises
            if known:
                _gsi_touch(table, *_key_values(table, key))

    return update_item


def _item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
    """moto's Item.__init__ checks the item's size once per attribute, summing every
    attribute each time (quadratic); this sums once, with the same limit and error."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    self.hash_key = hash_key
    self.range_key = range_key
    values = LimitedSizeDict.__new__(LimitedSizeDict)
    total = 0
    for key, value in attrs.items():
        typed = DynamoType(value)
        total += bytesize(key) + typed.size()
        if total > MOTO_ITEM_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(values, key, typed)
    self.attrs = values


# --- bounded streams ------------------------------------------------------------------


@dataclass
class StreamRetention:
    """How much a local stream shard keeps: the newest `max_records`, and none older
    than `max_age_s` (DynamoDB Streams keeps 24 hours)."""

    max_records: int = int(os.environ.get("EMR_STREAM_MAX_RECORDS", "100000"))
    max_age_s: float = float(os.environ.get("EMR_STREAM_RETENTION_S", str(24 * 3600)))


STREAM_RETENTION = StreamRetention()


def _streams_error(code: str, message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError(code, message)


class StreamRecord:
    """A stream record that keeps references to its images instead of moto's JSON
    copies of them (most of a record's memory), and builds moto's JSON when read.

    The images stay as they were when the record was made: an old image is an
    item no longer in the table (moto copies it before changing it in place), and
    a new image that is still the live item is copied before anything changes it
    in place (`_before_in_place_update`)."""

    __slots__ = ("created", "event_id", "event_name", "new", "old", "seq", "table", "view")

    def __init__(self, table: Any, view: str, event_name: str, old: Any, new: Any, seq: int):
        from moto.core.utils import utcnow
        from moto.moto_api._internal import mock_random

        self.table, self.view, self.event_name = table, view, event_name
        self.old, self.new, self.seq = old, new, seq
        self.event_id = mock_random.uuid4().hex
        self.created = utcnow()

    def _keys(self) -> dict[str, Any]:
        table, held = self.table, self.old if self.old is not None else self.new
        keys = {table.hash_key_attr: held.hash_key.to_json()}
        if table.range_key_attr is not None:
            keys[table.range_key_attr] = held.range_key.to_json()
        return keys

    def to_json(self) -> dict[str, Any]:
        """What moto's StreamRecord holds, built now from the images."""
        from moto.dynamodb.models.utilities import dynamo_json_dump

        dynamodb: dict[str, Any] = {
            "StreamViewType": self.view,
            "ApproximateCreationDateTime": self.created,
            "SequenceNumber": str(self.seq),
            "SizeBytes": 1,
            "Keys": self._keys(),
        }
        if self.view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and self.new is not None:
            dynamodb["NewImage"] = self.new.to_json()["Attributes"]
        if self.view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and self.old is not None:
            dynamodb["OldImage"] = self.old.to_json()["Attributes"]
        dynamodb["SizeBytes"] = len(dynamo_json_dump(dynamodb))
        return {
            "eventID": self.event_id,
            "eventName": self.event_name,
            "eventSource": "aws:dynamodb",
            "eventVersion": "1.0",
            "awsRegion": "us-east-1",
            "dynamodb": dynamodb,
        }


def _record_time(record: Any) -> Any:
    created = getattr(record, "created", None)
    return (
        created if created is not None else record.record["dynamodb"]["ApproximateCreationDateTime"]
    )


def _live_records(shard: Any) -> dict[int, tuple[Any, StreamRecord]]:
    """id(live item) -> (item, the record whose new image it is)."""
    live: dict[int, tuple[Any, StreamRecord]] = shard.__dict__.setdefault("_emr_live", {})
    return live


def _forget_live(shard: Any, records: list[Any]) -> None:
    """Records leaving the shard no longer need their live item copied first."""
    live = _live_records(shard)
    for record in records:
        new = getattr(record, "new", None)
        held = live.get(id(new))
        if held is not None and held[1] is record:
            del live[id(new)]


def _before_in_place_update(table: Any, item: Any) -> None:
    """moto's UpdateItem changes the stored item in place: a record whose new image
    is that item gets its own copy first."""
    shard = table.stream_shard
    if shard is None or item is None:
        return
    held = _live_records(shard).pop(id(item), None)
    if held is not None and held[0] is item:
        held[1].new = copy.deepcopy(item)


def trim_stream(shard: Any, now: Any = None) -> int:
    """Drop the records beyond the retention; returns how many were dropped."""
    from moto.core.utils import utcnow

    items = shard.items
    limit = max(1, STREAM_RETENTION.max_records)
    drop = len(items) - limit + limit // 20 if len(items) > limit else 0
    cutoff = (now or utcnow()) - timedelta(seconds=STREAM_RETENTION.max_age_s)
    while drop < len(items) and _record_time(items[drop]) < cutoff:
        drop += 1
    if drop:
        _forget_live(shard, items[:drop])
        del items[:drop]
        shard.__dict__["_emr_trimmed"] = int(shard.__dict__.get("_emr_trimmed", 0)) + drop
    return drop


def _shard_add(self: Any, old: Any, new: Any) -> None:
    """moto's StreamShard.add, with lighter records and sequence numbers that
    survive trimming."""
    view = self.table.stream_specification["StreamViewType"]
    event = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    record = StreamRecord(self.table, view, event, old, new, next_sequence(self))
    self.items.append(record)
    if new is not None:
        _live_records(self)[id(new)] = (new, record)
    if self.table.lambda_event_source_mappings:
        _send_to_mappings(self)
    trim_stream(self)


def _send_to_mappings(shard: Any) -> None:
    from moto.awslambda.utils import get_backend

    result = None
    for arn, esm in shard.table.lambda_event_source_mappings.items():
        region = arn.split(":")[3]
        result = get_backend(shard.account_id, region).send_dynamodb_items(
            arn, shard.items, esm.event_source_arn
        )
    if result:
        shard.__dict__["_emr_trimmed"] = int(shard.__dict__.get("_emr_trimmed", 0)) + len(
            shard.items
        )
        shard.items = []


def _shard_get(self: Any, start: int, quantity: int) -> list[dict[str, Any]]:
    index = int(start) - oldest_sequence(self)
    if index < 0:
        raise _streams_error(
            "TrimmedDataAccessException",
            f"The requested sequence number {start} is beyond the trim horizon of the shard",
        )
    return [record.to_json() for record in self.items[index : index + quantity]]


def _iterator_init(original: Callable[..., None]) -> Callable[..., None]:
    def __init__(self: Any, backend: Any, shard: Any, kind: str, sequence: Any = None) -> None:
        original(self, backend, shard, kind, sequence)
        if kind == "TRIM_HORIZON":
            self.sequence_number = oldest_sequence(shard)
        elif kind == "LATEST":
            self.sequence_number = next_sequence(shard)
        self.__dict__["_emr_created"] = time.monotonic()

    return __init__


class _Iterators(OrderedDict[str, Any]):
    """moto keeps every shard iterator it ever made; this keeps those of the last
    15 minutes, at most MAX_ITERATORS."""

    def __setitem__(self, key: str, value: Any) -> None:
        now = time.monotonic()
        value.__dict__.setdefault("_emr_created", now)
        super().__setitem__(key, value)
        self.move_to_end(key)
        horizon = now - ITERATOR_TTL_S
        while self and (
            len(self) > MAX_ITERATORS
            or next(iter(self.values())).__dict__.get("_emr_created", 0) < horizon
        ):
            self.popitem(last=False)


def _iterators(backend: Any) -> _Iterators:
    store = backend.shard_iterators
    if not isinstance(store, _Iterators):
        store = _Iterators(store)
        backend.shard_iterators = store
    return store


def _get_shard_iterator(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_shard_iterator(self: Any, arn: str, shard_id: str, *args: Any) -> Any:
        _iterators(self)
        table = self._get_table_from_arn(arn)
        if table.stream_shard is None or table.stream_shard.id != shard_id:
            raise _streams_error(
                "ResourceNotFoundException", f"Requested resource not found: Shard {shard_id}"
            )
        return original(self, arn, shard_id, *args)

    return get_shard_iterator


def _get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
    iterator = _iterators(self).get(iterator_arn)
    if iterator is None:
        raise _streams_error(
            "ExpiredIteratorException", "Iterator expired or unknown; get a new shard iterator"
        )
    result: dict[str, Any] = iterator.get(limit)
    return result


def find_table(name: str) -> Any:
    """The moto Table object called `name` in this process (any account, region), or None."""
    from moto.dynamodb.models import dynamodb_backends

    for regions in list(dynamodb_backends.values()):
        for backend in list(regions.values()):
            table = backend.tables.get(name)
            if table is not None:
                return table
    return None


def find_backend(name: str) -> Any:
    """The moto DynamoDB backend holding the table called `name`, or None."""
    from moto.dynamodb.models import dynamodb_backends

    for regions in list(dynamodb_backends.values()):
        for backend in list(regions.values()):
            if name in backend.tables:
                return backend
    return None


# Off: GetRecords answers through moto's own serializer (tests compare both).
DIRECT_RECORDS_JSON = True


def _records_as_json(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """GetRecords without moto's shape-driven serializer, which takes milliseconds
    per record (every AttributeValue is a structure it walks member by member):
    the same JSON, written directly."""

    def get_records(self: Any) -> Any:
        if not DIRECT_RECORDS_JSON:
            return original(self)
        from moto.core.utils import unix_time
        from moto.dynamodb.models.utilities import dynamo_json_dump

        limit = self._get_param("Limit")
        result = self.backend.get_records(self._get_param("ShardIterator"), limit or 1000)
        for record in result["Records"]:  # epoch seconds, to the millisecond, as moto writes
            dynamodb = record["dynamodb"] = dict(record["dynamodb"])
            created = unix_time(dynamodb["ApproximateCreationDateTime"])
            dynamodb["ApproximateCreationDateTime"] = math.floor(created * 1000) / 1000
        return dynamo_json_dump(result), {"Content-Type": "application/x-amz-json-1.0"}

    return get_records


# --- SQS --------------------------------------------------------------------------------

_sending = threading.local()


def _sending_message(original: Callable[..., Any]) -> Callable[..., Any]:
    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        _sending.active = True
        try:
            return original(self, *args, **kwargs)
        finally:
            _sending.active = False

    return send_message


def _queue_attributes(original: Any) -> property:
    """moto's SendMessage reads the queue's ContentBasedDeduplication through
    `Queue.attributes`, which also counts every message in the queue (twice, with
    the time of day for each), so each send costs more as the queue fills. Local
    queues have no consumer yet and only fill. A standard queue has no such
    attribute, so while a message is being sent to one, it gets none."""

    def attributes(self: Any) -> dict[str, Any]:
        if getattr(_sending, "active", False) and not self.fifo_queue:
            return {}
        result: dict[str, Any] = original.fget(self)
        return result

    return property(attributes)


PARSED_PATHS: Any = None  # the JSONPath cache, once installed


def _patch_events() -> None:
    """moto's PutEvents parses the same eight JSONPath expressions again for every
    event and target (most of its time); parsed expressions are kept instead."""
    from jsonpath_ng import ext

    original = ext.parse

    @functools.lru_cache(maxsize=256)
    def cached(path: str) -> Any:
        return original(path)

    global PARSED_PATHS
    PARSED_PATHS = cached

    def parse(path: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or not isinstance(path, str):
            return original(path, *args, **kwargs)
        return cached(path)

    ext.parse = parse


def _patch_dispatch() -> None:
    """moto's server finds the service of every request by listing its own package
    folder (and a stat per entry), under a lock all requests share; the list of
    moto's modules does not change while it runs."""
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    setattr(backends, "list_of_moto_modules", lambda: modules)  # noqa: B010


# --- installation ---------------------------------------------------------------------

_install_lock = threading.Lock()


def _patch_dynamodb() -> None:
    import inspect

    from moto.dynamodb import models, responses
    from moto.dynamodb.models import table

    backend, handler, table_cls = models.DynamoDBBackend, responses.DynamoHandler, table.Table
    item_cls = models.Item
    signature = inspect.signature(table_cls.query)
    patches: list[tuple[Any, str, Any]] = [
        (backend, "transact_write_items", transact_write_items),
        (backend, "update_item", _indexed_update(backend.update_item)),
        (handler, "transact_write_items", _with_request_token(handler.transact_write_items)),
        (table_cls, "query", _with_scoped_items(table_cls.query, signature)),
        (table_cls, "all_items", _scoped_all_items(table_cls.all_items)),
        (table_cls, "put_item", _indexed_put(table_cls.put_item)),
        (table_cls, "delete_item", _indexed_delete(table_cls.delete_item)),
        (item_cls, "__init__", _item_init),
    ]
    for owner, name, value in patches:
        setattr(owner, name, value)


def _patch_streams() -> None:
    from moto.dynamodb.models import table
    from moto.dynamodbstreams import models as streams
    from moto.dynamodbstreams import responses

    shard, iterator = table.StreamShard, streams.ShardIterator
    backend, handler = streams.DynamoDBStreamsBackend, responses.DynamoDBStreamsHandler
    patches: list[tuple[Any, str, Any]] = [
        (shard, "add", _shard_add),
        (shard, "get", _shard_get),
        (iterator, "__init__", _iterator_init(iterator.__init__)),
        (backend, "get_shard_iterator", _get_shard_iterator(backend.get_shard_iterator)),
        (backend, "get_records", _get_records),
        (handler, "get_records", _records_as_json(handler.get_records)),
    ]
    for owner, name, value in patches:
        setattr(owner, name, value)


def _patch_sqs() -> None:
    from moto.sqs import models

    setattr(models.SQSBackend, "send_message", _sending_message(models.SQSBackend.send_message))  # noqa: B010
    setattr(models.Queue, "attributes", _queue_attributes(models.Queue.attributes))  # noqa: B010


def install_moto_patches() -> None:
    """Install the local stack's changes to moto (idempotent)."""
    from moto.dynamodb import models

    with _install_lock:
        if getattr(models.DynamoDBBackend, "_emr_patched", False):
            return
        _patch_dynamodb()
        _patch_streams()
        _patch_sqs()
        _patch_events()
        _patch_dispatch()
        setattr(models.DynamoDBBackend, "_emr_patched", True)  # noqa: B010


class _Server(ThreadedWSGIServer):
    request_queue_size = LISTEN_BACKLOG


class EmbeddedMotoServer:
    """moto over HTTP on a loopback port, in a daemon thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.counter = CallCounter()
        self.faults = Faults()
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        install_moto_patches()
        app = _Counting(DomainDispatcherApplication(create_backend_app), self.counter, self.faults)
        self._server = _Server(self._host, self._port, app, handler=MotoRequestHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="moto-server", daemon=True
        )
        self._thread.start()
        return self.endpoint

    def inject(self, operation: str, mode: str = "after", times: int = 1) -> None:
        """The next `times` requests of `operation` (e.g. "dynamodb.PutItem") answer
        HTTP 500 InternalServerError: "after" once moto has processed them (the write
        is applied, its response lost), "before" without processing them."""
        self.faults.add(operation, mode, times)

    def clear_faults(self) -> None:
        self.faults.clear()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
