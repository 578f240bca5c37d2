"""Read overhead: the API's read against the irreducible I/O of the same read.

The I/O is what `read_patient` must do on DynamoDB: one consistent GetItem of
the patient's current item, then a conditional PutItem of an audit record of the
same shape as the app's, one after the other, on one reused botocore client
configured like PynamoDB's own. Samples are interleaved (A B A B ...) so a drift
of the machine's speed affects both sides of a pair alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.api import HttpApi, InProcessApi, LambdaContext
from bench.stack import ROLE, TENANT

WARMUP = 20
T = TypeVar("T")


@dataclass(frozen=True)
class PairedTimes:
    """Per-pair times (ms) of the measured side (a) and the raw I/O side (b)."""

    a_ms: list[float]
    b_ms: list[float]

    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.a_ms, self.b_ms, strict=True)]

    def summary(self) -> dict[str, float | int]:
        a, b = statistics.median(self.a_ms), statistics.median(self.b_ms)
        return {
            "pairs": len(self.a_ms),
            "median_of_pair_ratios": round(statistics.median(self.ratios()), 3),
            "ratio_of_medians": round(a / b, 3),
            "api_median_ms": round(a, 3),
            "raw_io_median_ms": round(b, 3),
            "api_p90_ms": round(_quantile(self.a_ms, 0.9), 3),
            "raw_io_p90_ms": round(_quantile(self.b_ms, 0.9), 3),
        }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RawRead:
    """GetItem (consistent) + audit PutItem, issued the way the app issues them."""

    def __init__(self, table: str, route: str = "/fhir/R4/Patient/{resource_id}") -> None:
        import botocore.session
        from botocore.config import Config

        from models.items import TableItem

        meta = TableItem.Meta
        config = Config(  # what pynamodb.connection.base builds from the model's Meta
            parameter_validation=False,
            connect_timeout=meta.connect_timeout_seconds,
            read_timeout=meta.read_timeout_seconds,
            max_pool_connections=10,
            retries={"total_max_attempts": 1 + meta.max_retry_attempts, "mode": "standard"},
        )
        self._client: Any = botocore.session.get_session().create_client(
            "dynamodb", meta.region, config=config
        )
        self._table = table
        self._audit = _audit_template(route)

    def __call__(self, patient_id: str) -> None:
        from models import keys
        from models.clock import iso, new_id, now

        pk = keys.patient_pk(TENANT, patient_id)
        self._client.get_item(
            TableName=self._table,
            ConsistentRead=True,
            Key={"pk": {"S": pk}, "sk": {"S": keys.resource_sk("Patient", patient_id)}},
        )
        audit_id, at = new_id(), iso(now())
        item = {
            **self._audit,
            "pk": {"S": keys.audit_patient_pk(TENANT, patient_id)},
            "sk": {"S": keys.audit_sk(at, audit_id)},
            "audit_id": {"S": audit_id},
            "at": {"S": at},
            "resource_id": {"S": patient_id},
            "patient_id": {"S": patient_id},
        }
        self._client.put_item(
            TableName=self._table,
            Item=item,
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": "pk"},
        )


def _audit_template(route: str) -> dict[str, Any]:
    """The attributes of a successful read's audit record, as the app stores it
    (`route`: the read's route template, as the app records it)."""
    from models.audit import AuditRecord, to_item
    from models.clock import iso, new_id, now

    record = AuditRecord(
        tenant=TENANT,
        actor="00000000-0000-0000-0000-000000000000",
        actor_name=f"{ROLE}@{TENANT}.example",
        roles=[ROLE],
        action="patient.read",
        outcome="success",
        status=200,
        request_id=new_id(),
        at=iso(now()),
        source_ip="127.0.0.1",
        route=route,
        resource_type="Patient",
        resource_id="x",
        patient_id="x",
        version=1,
    )
    serialized: dict[str, Any] = to_item(record).serialize()
    return serialized


def _timed_ms(call: Callable[[T], object], arg: T) -> float:
    started = time.perf_counter()
    call(arg)
    return (time.perf_counter() - started) * 1000


def _interleave(
    prepare: Callable[[str], T],
    measured: Callable[[T], object],
    raw: RawRead,
    ids: list[str],
    pairs: int,
) -> PairedTimes:
    """A (the API) then B (the raw I/O) on the same patient, pair after pair; what
    `prepare` builds for A is built before A's clock starts."""
    for i in range(WARMUP):
        measured(prepare(ids[i % len(ids)]))
        raw(ids[i % len(ids)])
    a_ms, b_ms = [], []
    for i in range(pairs):
        pid = ids[i % len(ids)]
        a_ms.append(_timed_ms(measured, prepare(pid)))
        b_ms.append(_timed_ms(raw, pid))
    return PairedTimes(a_ms, b_ms)


def over_http(api: HttpApi, raw: RawRead, ids: list[str], pairs: int) -> PairedTimes:
    def read(pid: str) -> None:
        reply = api.read(pid)
        if reply.status != 200:
            raise RuntimeError(f"read answered {reply.status}")

    return _interleave(str, read, raw, ids, pairs)


def in_process(api: InProcessApi, raw: RawRead, ids: list[str], pairs: int) -> PairedTimes:
    """Through the Lambda entry point; the event and context are built before the
    clock starts, as the Lambda runtime hands them over ready-made."""

    def prepare(pid: str) -> tuple[dict[str, Any], LambdaContext]:
        return api.event(pid), LambdaContext()

    def read(prepared: tuple[dict[str, Any], LambdaContext]) -> None:
        if api.invoke(*prepared) != 200:
            raise RuntimeError("in-process read did not answer 200")

    return _interleave(prepare, read, raw, ids, pairs)
