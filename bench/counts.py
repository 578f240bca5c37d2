"""Round trips as the moto server counts them, one warm request at a time.

The client makes a request and waits for the API's response; by then the API
has sent every AWS call of that request, and the server counted each one as it
arrived. The difference between two snapshots of the server's counter is
therefore exactly the calls of that request.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bench.api import FAMILY_PREFIX, HttpApi, Reply
from bench.stack import BenchStack

DYNAMODB = "dynamodb."
KMS = "kms."


def delta(before: Counter[str], after: Counter[str]) -> Counter[str]:
    return Counter({k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)})


def measured(stack: BenchStack, request: Callable[[], Reply]) -> tuple[Reply, Counter[str]]:
    before = stack.ops()
    reply = request()
    return reply, delta(before, stack.ops())


def dynamodb_ops(ops: Counter[str]) -> Counter[str]:
    return Counter({k: v for k, v in ops.items() if k.startswith(DYNAMODB)})


def without_audit_put(ops: Counter[str]) -> int:
    """DynamoDB data operations of a request, less its one audit PutItem."""
    ddb = dynamodb_ops(ops)
    return sum(ddb.values()) - min(ddb.get("dynamodb.PutItem", 0), 1)


def without_audit_write(ops: Counter[str]) -> int:
    """DynamoDB data operations of a search, less its one audit write: a PutItem,
    or, when it returned patients whose trails need a copy, the TransactWriteItems
    that writes the audit record and those copies. (A chart search's record is
    stored in that patient's trail itself: a PutItem.)"""
    ddb = dynamodb_ops(ops)
    audit = "dynamodb.PutItem" if ddb.get("dynamodb.PutItem") else "dynamodb.TransactWriteItems"
    return sum(ddb.values()) - min(ddb.get(audit, 0), 1)


@dataclass
class Kind:
    """The counts of N warm requests of one kind."""

    name: str
    per_request: list[Counter[str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def add(self, reply: Reply, ops: Counter[str]) -> None:
        self.statuses.append(reply.status)
        self.per_request.append(ops)

    def median(self, figure: Callable[[Counter[str]], int]) -> float:
        return float(statistics.median(figure(ops) for ops in self.per_request))

    def spread(self, figure: Callable[[Counter[str]], int]) -> tuple[int, int]:
        values = [figure(ops) for ops in self.per_request]
        return min(values), max(values)

    def summary(self) -> dict[str, Any]:
        """Median of every operation seen (dynamodb, kms, http) and the statuses."""
        names = sorted({name for ops in self.per_request for name in ops})
        return {
            "requests": len(self.per_request),
            "statuses": sorted(set(self.statuses)),
            "median_ops": {
                n: statistics.median(o.get(n, 0) for o in self.per_request) for n in names
            },
            "max_ops": {n: max(o.get(n, 0) for o in self.per_request) for n in names},
        }


def create_patients(stack: BenchStack, api: HttpApi, n: int) -> tuple[Kind, list[str]]:
    """One cold create (not counted), then `n` warm creates, each counted."""
    first = api.create(0)
    ids = [_created_id(first)]
    kind = Kind("create")
    for i in range(1, n + 1):
        reply, ops = measured(stack, partial(api.create, i))
        kind.add(reply, ops)
        ids.append(_created_id(reply))
    return kind, ids


def _created_id(reply: Reply) -> str:
    if reply.status != 201 or reply.body is None:
        raise RuntimeError(f"create answered {reply.status}: {reply.body}")
    return str(reply.body["id"])


def reads(stack: BenchStack, api: HttpApi, ids: list[str], n: int) -> Kind:
    api.read(ids[0])  # warm-up of this kind
    kind = Kind("read")
    for i in range(n):
        kind.add(*measured(stack, partial(api.read, ids[i % len(ids)])))
    return kind


def updates(stack: BenchStack, api: HttpApi, ids: list[str], n: int) -> Kind:
    """PUT with If-Match on the current version; the first update is the warm-up."""
    etags = {pid: 'W/"1"' for pid in ids}

    def put(pid: str, i: int) -> Reply:
        reply = api.update(pid, i, etags[pid])
        etags[pid] = reply.headers.get("etag", etags[pid])
        return reply

    put(ids[0], 0)
    kind = Kind("update")
    for i in range(n):
        pid = ids[(i + 1) % len(ids)]
        kind.add(*measured(stack, partial(put, pid, i)))
    return kind


def searches(stack: BenchStack, api: HttpApi, n: int) -> Kind:
    api.search_family(FAMILY_PREFIX)  # warm-up of this kind
    kind = Kind("search")
    for _ in range(n):
        kind.add(*measured(stack, partial(api.search_family, FAMILY_PREFIX)))
    return kind


def kms_per_reads(stack: BenchStack, api: HttpApi, ids: list[str], n: int) -> tuple[int, int]:
    """KMS operations during `n` reads spread over every patient, after one warm-up
    read of one patient only (so a per-patient key miss would show); (kms, non-200)."""
    api.read(ids[0])
    before = stack.ops()
    failed = sum(api.read(ids[i % len(ids)]).status != 200 for i in range(n))
    ops = delta(before, stack.ops())
    return sum(v for k, v in ops.items() if k.startswith(KMS)), failed
