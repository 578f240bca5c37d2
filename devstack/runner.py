"""The local event pipeline: polls the table's stream on moto and calls the very
same handler that Lambda calls in AWS, with Lambda-shaped batches.

It behaves like the deployed event source mapping (infra/template.json):
iterators start at TRIM_HORIZON; records the mapping's filter would drop are not
delivered; a batch that reports failed records is retried from the first one,
and after `max_retries` retries that record is given up (in AWS it would go to
`EmrStreamDLQ`; here it is printed) and delivery moves past it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]

# The mapping's FilterCriteria: INSERT of outbox items, MODIFY of resource items.
DELIVERED = {("INSERT", "outbox"), ("MODIFY", "resource")}


def wanted(record: dict[str, Any]) -> bool:
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    kind = (image.get("type") or {}).get("S")
    return (record.get("eventName"), kind) in DELIVERED


class StreamRunner:
    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Handler,
        batch_size: int = 100,
        max_retries: int = 10,
    ) -> None:
        self._streams = streams
        self._arn = stream_arn
        self._handler = handler
        self._batch = batch_size
        self._max_retries = max_retries
        self._iterators: dict[str, str] = {}
        self._retries: dict[str, tuple[str, int]] = {}  # shard -> (sequence, attempts)
        self.delivered = 0
        self.given_up: list[str] = []
        self._stop = threading.Event()

    def _iterator(self, shard: str, kind: str, sequence: str | None = None) -> str:
        kwargs: dict[str, Any] = {
            "StreamArn": self._arn,
            "ShardId": shard,
            "ShardIteratorType": kind,
        }
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        return str(self._streams.get_shard_iterator(**kwargs)["ShardIterator"])

    def _refresh_shards(self) -> None:
        desc = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]
        for shard in desc.get("Shards", []):
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self._iterator(shard["ShardId"], "TRIM_HORIZON")

    def _deliver(self, shard: str, records: list[dict[str, Any]]) -> tuple[int, str | None]:
        """Hand a batch to the handler. Returns (records newly done, the iterator to
        continue from, or None to continue after the batch)."""
        batch = [r for r in records if wanted(r)]
        failures = self._handler({"Records": batch}).get("batchItemFailures", []) if batch else []
        if not failures:
            self._retries.pop(shard, None)
            return len(records), None
        first = str(failures[0]["itemIdentifier"])
        seen, attempts = self._retries.get(shard, (first, 0))
        attempts = attempts + 1 if seen == first else 1
        if attempts > self._max_retries:
            print(f"stream runner: giving up record {first} after {self._max_retries} retries")
            self.given_up.append(first)
            self._retries.pop(shard, None)
            done = sum(1 for r in records if int(r["dynamodb"]["SequenceNumber"]) <= int(first))
            return done, self._iterator(shard, "AFTER_SEQUENCE_NUMBER", first)
        self._retries[shard] = (first, attempts)
        done = sum(1 for r in records if int(r["dynamodb"]["SequenceNumber"]) < int(first))
        return done, self._iterator(shard, "AT_SEQUENCE_NUMBER", first)

    def poll_once(self) -> int:
        """Deliver what is waiting on every shard; returns records newly done."""
        self._refresh_shards()
        done_total = 0
        for shard, iterator in list(self._iterators.items()):
            resp = self._streams.get_records(ShardIterator=iterator, Limit=self._batch)
            records = resp.get("Records", [])
            done, resume = self._deliver(shard, records) if records else (0, None)
            done_total += done
            if resume is not None:
                self._iterators[shard] = resume
            elif resp.get("NextShardIterator"):
                self._iterators[shard] = resp["NextShardIterator"]
        self.delivered += done_total
        return done_total

    def drain(self, max_polls: int = 1000) -> int:
        """Poll until a poll delivers nothing new (or `max_polls`)."""
        total = 0
        for _ in range(max_polls):
            done = self.poll_once()
            total += done
            if done == 0 and not self._retries:
                break
        return total

    def run_forever(self, interval_s: float = 0.5) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.poll_once()
            except Exception as exc:  # keep the pipeline alive; the error is visible
                print(f"stream runner: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._stop.set()
