"""The local event pipeline: polls the table's stream on moto and calls the very
same handler that Lambda calls in AWS, with Lambda-shaped batches.

Shard iterators start at TRIM_HORIZON, as the deployed event source mapping
does; a batch whose records report failures is retried from the first failed
record (what ReportBatchItemFailures + bisect do in Lambda).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class StreamRunner:
    def __init__(self, streams: Any, stream_arn: str, handler: Handler, batch_size: int = 100):
        self._streams = streams
        self._arn = stream_arn
        self._handler = handler
        self._batch = batch_size
        self._iterators: dict[str, str] = {}
        self.delivered = 0
        self._stop = threading.Event()

    def _refresh_shards(self) -> None:
        desc = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]
        for shard in desc.get("Shards", []):
            sid = shard["ShardId"]
            if sid not in self._iterators:
                it = self._streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                self._iterators[sid] = it

    def poll_once(self) -> int:
        """Deliver what is waiting on every shard; returns records handled."""
        self._refresh_shards()
        handled = 0
        for sid, iterator in list(self._iterators.items()):
            resp = self._streams.get_records(ShardIterator=iterator, Limit=self._batch)
            records = resp.get("Records", [])
            if records:
                failures = self._handler({"Records": records}).get("batchItemFailures", [])
                if failures:
                    first = failures[0]["itemIdentifier"]
                    self._iterators[sid] = self._streams.get_shard_iterator(
                        StreamArn=self._arn,
                        ShardId=sid,
                        ShardIteratorType="AT_SEQUENCE_NUMBER",
                        SequenceNumber=first,
                    )["ShardIterator"]
                    handled += len(records) - len(failures)
                    continue
                handled += len(records)
            if resp.get("NextShardIterator"):
                self._iterators[sid] = resp["NextShardIterator"]
        self.delivered += handled
        return handled

    def drain(self, max_polls: int = 20) -> int:
        total = 0
        for _ in range(max_polls):
            n = self.poll_once()
            total += n
            if n == 0:
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
