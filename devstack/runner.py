"""The local event pipeline: polls the table's stream on moto and calls the very
same handler that Lambda calls in AWS, with Lambda-shaped batches.

It behaves like the deployed event source mapping (infra/template.json):
iterators start at TRIM_HORIZON; records the mapping's filter would drop are not
delivered; a batch that reports failed records is retried from the first one,
and after `max_retries` retries that record is given up (in AWS it would go to
`EmrStreamDLQ`; here it is logged) and delivery moves past it.

It also says when it stops making progress, and copes with a stream that
changes under it:

- the shard list is described on every poll: iterators of shards that are gone
  are dropped, new shards are read from TRIM_HORIZON (both logged); every
  `rediscover_every` polls the table's current stream is looked up, and a new
  stream ARN is followed (logged);
- an iterator that has expired is re-opened after the last record done; one
  beyond the trim horizon (or whose last record was trimmed) from the oldest
  record still held, and the gap is logged;
- a watchdog: when records wait on a shard and nothing is delivered for
  `watchdog_polls` polls, a warning names the shard and how long it has been
  stuck. A shard whose iterator keeps answering nothing is checked every
  `peek_every` polls with a fresh iterator after the last record done; if that
  one sees records, the runner warns and continues from it.

Log lines carry shard ids, sequence numbers, counts and error codes only,
never record contents.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from functions.common.observability import logger
from models.aws import error_code

Handler = Callable[[dict[str, Any]], dict[str, Any]]

# The mapping's FilterCriteria: INSERT of outbox and audit items (not the trail
# copies of a search's record), MODIFY of resource items.
DELIVERED = {
    ("INSERT", "outbox"),
    ("INSERT", "audit"),
    ("INSERT", "audit-search"),
    ("MODIFY", "resource"),
}

EXPIRED = "ExpiredIteratorException"
TRIMMED = "TrimmedDataAccessException"


def wanted(record: dict[str, Any]) -> bool:
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    kind = (image.get("type") or {}).get("S")
    return (record.get("eventName"), kind) in DELIVERED


def _sequence(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def _table_of(stream_arn: str) -> str:
    """arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label> -> <name>."""
    return stream_arn.split(":table/", 1)[-1].split("/", 1)[0]


@dataclass
class ShardState:
    """Where the runner is on one shard, and how long it has been stuck."""

    iterator: str | None
    done_up_to: int | None = None  # sequence number of the last record done
    stuck_polls: int = 0
    empty_polls: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    warned: bool = False


class StreamRunner:
    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Handler,
        batch_size: int = 100,
        max_retries: int = 10,
        watchdog_polls: int = 20,
        peek_every: int = 10,
        rediscover_every: int = 20,
    ) -> None:
        self._streams = streams
        self._arn = stream_arn
        self._handler = handler
        self._batch = batch_size
        self._max_retries = max_retries
        self._watchdog_polls = watchdog_polls
        self._peek_every = peek_every
        self._rediscover_every = rediscover_every
        self._shards: dict[str, ShardState] = {}
        self._retries: dict[str, tuple[str, int]] = {}  # shard -> (sequence, attempts)
        self._polls = 0
        self.delivered = 0
        self.given_up: list[str] = []
        self._stop = threading.Event()

    @property
    def stream_arn(self) -> str:
        return self._arn

    def position(self, shard: str) -> int:
        """Sequence number of the next record the runner reads on `shard` (0 if none yet)."""
        state = self._shards.get(shard)
        return 0 if state is None or state.done_up_to is None else state.done_up_to + 1

    # --- iterators and shards ---------------------------------------------------------

    def _iterator(self, shard: str, kind: str, sequence: str | int | None = None) -> str:
        kwargs: dict[str, Any] = {
            "StreamArn": self._arn,
            "ShardId": shard,
            "ShardIteratorType": kind,
        }
        if sequence is not None:
            kwargs["SequenceNumber"] = str(sequence)
        return str(self._streams.get_shard_iterator(**kwargs)["ShardIterator"])

    def _resume_iterator(self, shard: str, state: ShardState) -> str:
        """An iterator just after the last record done, or at the oldest record held."""
        if state.done_up_to is not None:
            try:
                return self._iterator(shard, "AFTER_SEQUENCE_NUMBER", state.done_up_to)
            except Exception as exc:
                if error_code(exc) != TRIMMED:
                    raise
                logger.warning(
                    "stream runner: records after the last one done were trimmed; "
                    "continuing from the oldest record held",
                    extra={"shard": shard, "done_up_to": state.done_up_to},
                )
        return self._iterator(shard, "TRIM_HORIZON")

    def skip_to_latest(self) -> None:
        """Start every shard after its newest record: what the stream already holds is
        not delivered. For tests that watch their own writes on a stream that earlier
        tests filled (the deployed mapping starts at TRIM_HORIZON, as `run` does)."""
        desc = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]
        for shard in desc.get("Shards", []):
            self._shards[shard["ShardId"]] = ShardState(self._iterator(shard["ShardId"], "LATEST"))

    def _rediscover(self) -> None:
        """Follow the table's current stream if it is no longer the one being read."""
        streams = self._streams.list_streams(TableName=_table_of(self._arn)).get("Streams", [])
        arns = [s["StreamArn"] for s in streams]
        if not arns or self._arn in arns:
            return
        logger.warning(
            "stream runner: the table's stream changed; reading the new one from TRIM_HORIZON",
            extra={"old_stream": self._arn, "new_stream": arns[-1]},
        )
        self._arn = arns[-1]
        self._shards.clear()
        self._retries.clear()

    def _refresh_shards(self) -> None:
        if self._rediscover_every and self._polls % self._rediscover_every == 0:
            self._rediscover()
        desc = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]
        current = [shard["ShardId"] for shard in desc.get("Shards", [])]
        for gone in [s for s in self._shards if s not in current]:
            logger.warning(
                "stream runner: shard gone; its iterator is dropped", extra={"shard": gone}
            )
            del self._shards[gone]
            self._retries.pop(gone, None)
        for shard in current:
            if shard not in self._shards:
                self._shards[shard] = ShardState(self._iterator(shard, "TRIM_HORIZON"))
                logger.info(
                    "stream runner: reading shard", extra={"shard": shard, "stream": self._arn}
                )

    # --- delivery ---------------------------------------------------------------------

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
            logger.error(
                "stream runner: giving up a record after the retry limit",
                extra={"shard": shard, "sequence": first, "retries": self._max_retries},
            )
            self.given_up.append(first)
            self._retries.pop(shard, None)
            done = sum(1 for r in records if _sequence(r) <= int(first))
            return done, self._iterator(shard, "AFTER_SEQUENCE_NUMBER", first)
        self._retries[shard] = (first, attempts)
        done = sum(1 for r in records if _sequence(r) < int(first))
        return done, self._iterator(shard, "AT_SEQUENCE_NUMBER", first)

    def _read(self, shard: str, state: ShardState) -> dict[str, Any]:
        """GetRecords, re-opening an expired or trimmed iterator once."""
        try:
            return dict(self._streams.get_records(ShardIterator=state.iterator, Limit=self._batch))
        except Exception as exc:
            code = error_code(exc)
            if code not in (EXPIRED, TRIMMED):
                raise
            logger.warning(
                "stream runner: shard iterator no longer valid; re-opened",
                extra={"shard": shard, "error": code, "done_up_to": state.done_up_to},
            )
            if code == TRIMMED:
                state.iterator = self._iterator(shard, "TRIM_HORIZON")
            else:
                state.iterator = self._resume_iterator(shard, state)
            return dict(self._streams.get_records(ShardIterator=state.iterator, Limit=self._batch))

    def _poll_shard(self, shard: str, state: ShardState) -> tuple[int, bool]:
        """Read and deliver one batch. Returns (records done, records left waiting)."""
        resp = self._read(shard, state)
        records = resp.get("Records", [])
        if not records:
            state.iterator = resp.get("NextShardIterator") or state.iterator
            return 0, self._peek(shard, state)
        state.empty_polls = 0
        try:
            done, resume = self._deliver(shard, records)
        except Exception as exc:  # the batch is read again at the next poll
            logger.error(
                "stream runner: the handler raised; the batch will be retried",
                extra={"shard": shard, "error": error_code(exc), "records": len(records)},
            )
            return 0, True
        if done:
            state.done_up_to = _sequence(records[done - 1])
        state.iterator = resume or resp.get("NextShardIterator") or state.iterator
        return done, done < len(records)

    def _peek(self, shard: str, state: ShardState) -> bool:
        """Every `peek_every` empty reads, look with a fresh iterator: records it sees
        are waiting although the iterator in use answers nothing."""
        state.empty_polls += 1
        if not self._peek_every or state.empty_polls % self._peek_every:
            return False
        fresh = self._resume_iterator(shard, state)
        records = self._streams.get_records(ShardIterator=fresh, Limit=1).get("Records", [])
        if not records:
            return False
        logger.warning(
            "stream runner: records are waiting but the shard iterator returned none; "
            "continuing from a fresh iterator",
            extra={
                "shard": shard,
                "done_up_to": state.done_up_to,
                "stuck_s": round(time.monotonic() - state.last_progress, 1),
            },
        )
        state.iterator = fresh
        return True

    def _watch(self, shard: str, state: ShardState, done: int, waiting: bool) -> None:
        now = time.monotonic()
        if done:
            if state.warned:
                logger.info("stream runner: shard delivering again", extra={"shard": shard})
            state.stuck_polls, state.last_progress, state.warned = 0, now, False
            return
        if not waiting:
            state.stuck_polls, state.last_progress = 0, now
            return
        state.stuck_polls += 1
        if state.stuck_polls >= self._watchdog_polls and not state.warned:
            state.warned = True
            logger.warning(
                "stream runner: records are waiting on a shard and nothing was delivered",
                extra={
                    "shard": shard,
                    "polls": state.stuck_polls,
                    "stuck_s": round(now - state.last_progress, 1),
                    "done_up_to": state.done_up_to,
                },
            )

    def poll_once(self) -> int:
        """Deliver what is waiting on every shard; returns records newly done."""
        self._refresh_shards()
        self._polls += 1
        done_total = 0
        for shard, state in list(self._shards.items()):
            done, waiting = self._poll_shard(shard, state)
            self._watch(shard, state, done, waiting)
            done_total += done
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
                if self._stop.is_set():
                    return
                logger.warning("stream runner: poll failed", extra={"error": error_code(exc)})

    def stop(self) -> None:
        self._stop.set()
