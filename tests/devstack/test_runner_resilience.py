"""The stream runner says when it stops making progress and copes with a stream
that changes under it (devstack/runner.py). A small fake of DynamoDB Streams
drives the cases moto cannot produce on demand; its log lines are read with
caplog (the app logger propagates)."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.runner import StreamRunner

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
SECRET = "Zyxwvutsrq"  # stands for PHI in a record: must never reach a log line


def _record(seq: int) -> dict[str, Any]:
    return {
        "eventName": "INSERT",
        "dynamodb": {
            "SequenceNumber": str(seq),
            "Keys": {"pk": {"S": f"K{seq}"}},
            "NewImage": {"type": {"S": "outbox"}, "detail": {"S": SECRET}},
        },
    }


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}}, "GetRecords")


class FakeStreams:
    """Shards of records with absolute sequence numbers; iterators are positions."""

    def __init__(self) -> None:
        self.arn = ARN
        self.shards: dict[str, list[dict[str, Any]]] = {"shard-1": []}
        self.oldest: dict[str, int] = {"shard-1": 1}
        self._seq = itertools.count(1)
        self._ids = itertools.count()
        self.iterators: dict[str, tuple[str, int]] = {}
        self.dead: set[str] = set()  # iterators that answer nothing (an orphaned shard)
        self.raise_next: list[str] = []

    def add(self, shard: str = "shard-1", n: int = 1) -> list[int]:
        seqs = [next(self._seq) for _ in range(n)]
        self.shards[shard].extend(_record(s) for s in seqs)
        return seqs

    def trim(self, shard: str, keep: int) -> None:
        drop = len(self.shards[shard]) - keep
        self.oldest[shard] += drop
        del self.shards[shard][:drop]

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        assert StreamArn == self.arn
        return {"StreamDescription": {"Shards": [{"ShardId": s} for s in self.shards]}}

    def list_streams(self, TableName: str) -> dict[str, Any]:
        return {"Streams": [{"StreamArn": self.arn, "TableName": TableName}]}

    def get_shard_iterator(
        self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str = ""
    ) -> dict[str, str]:
        records = self.shards[ShardId]
        end = self.oldest[ShardId] + len(records)
        position = {
            "TRIM_HORIZON": self.oldest[ShardId],
            "LATEST": end,
            "AT_SEQUENCE_NUMBER": int(SequenceNumber or 0),
            "AFTER_SEQUENCE_NUMBER": int(SequenceNumber or 0) + 1,
        }[ShardIteratorType]
        return {"ShardIterator": self._mint(ShardId, position)}

    def _mint(self, shard: str, position: int) -> str:
        name = f"it-{next(self._ids)}"
        self.iterators[name] = (shard, position)
        return name

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if self.raise_next:
            raise _error(self.raise_next.pop(0))
        shard, position = self.iterators[ShardIterator]
        if ShardIterator in self.dead:
            return {"Records": [], "NextShardIterator": ShardIterator}
        index = position - self.oldest[shard]
        if index < 0:
            raise _error("TrimmedDataAccessException")
        records = self.shards[shard][index : index + Limit]
        return {"Records": records, "NextShardIterator": self._mint(shard, position + len(records))}


class Recorder:
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.fail = False

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError(f"handler down {SECRET}")
        self.seen += [int(r["dynamodb"]["SequenceNumber"]) for r in event["Records"]]
        return {"batchItemFailures": []}


def _runner(fake: FakeStreams, handler: Recorder, **kwargs: Any) -> StreamRunner:
    return StreamRunner(fake, fake.arn, handler, batch_size=10, **kwargs)


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("stream runner")]


def _no_phi(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.__dict__)


@pytest.fixture
def fake() -> FakeStreams:
    return FakeStreams()


def test_a_handler_that_keeps_failing_is_reported_once_then_its_recovery(fake, caplog):
    caplog.set_level(logging.INFO)
    handler = Recorder()
    runner = _runner(fake, handler, watchdog_polls=3)
    fake.add(n=5)
    handler.fail = True
    for _ in range(6):
        assert runner.poll_once() == 0
    stuck = [r for r in _lines(caplog) if "nothing was delivered" in r.getMessage()]
    assert len(stuck) == 1
    assert stuck[0].levelno == logging.WARNING
    assert stuck[0].shard == "shard-1"  # type: ignore[attr-defined]
    assert stuck[0].polls == 3 and stuck[0].stuck_s >= 0  # type: ignore[attr-defined]
    raised = [r for r in _lines(caplog) if "handler raised" in r.getMessage()]
    assert len(raised) == 6 and raised[0].error == "RuntimeError"  # type: ignore[attr-defined]
    handler.fail = False
    assert runner.poll_once() == 5
    assert handler.seen == [1, 2, 3, 4, 5]
    assert any("delivering again" in r.getMessage() for r in _lines(caplog))
    _no_phi(caplog)


def test_an_iterator_that_answers_nothing_while_records_wait_is_reported_and_replaced(fake, caplog):
    caplog.set_level(logging.INFO)
    handler = Recorder()
    runner = _runner(fake, handler, peek_every=3)
    fake.add(n=2)
    runner.drain()
    assert handler.seen == [1, 2]
    fake.dead.update(fake.iterators)  # every iterator handed out so far is orphaned
    fake.add(n=3)
    done = [runner.poll_once() for _ in range(4)]
    assert done[:2] == [0, 0]
    warned = [r for r in _lines(caplog) if "returned none" in r.getMessage()]
    assert len(warned) == 1 and warned[0].shard == "shard-1"  # type: ignore[attr-defined]
    assert warned[0].done_up_to == 2  # type: ignore[attr-defined]
    assert handler.seen == [1, 2, 3, 4, 5]
    _no_phi(caplog)


def test_an_expired_iterator_is_reopened_after_the_last_record_done(fake, caplog):
    caplog.set_level(logging.INFO)
    handler = Recorder()
    runner = _runner(fake, handler)
    fake.add(n=3)
    runner.drain()
    fake.add(n=2)
    fake.raise_next = ["ExpiredIteratorException"]
    runner.drain()
    assert handler.seen == [1, 2, 3, 4, 5]  # nothing lost, nothing twice
    (line,) = [r for r in _lines(caplog) if "no longer valid" in r.getMessage()]
    assert line.error == "ExpiredIteratorException"  # type: ignore[attr-defined]
    assert line.done_up_to == 3  # type: ignore[attr-defined]


def test_reading_beyond_the_trim_horizon_continues_from_the_oldest_record(fake, caplog):
    caplog.set_level(logging.INFO)
    handler = Recorder()
    runner = _runner(fake, handler)
    fake.add(n=2)
    runner.drain()
    fake.add(n=8)
    fake.trim("shard-1", keep=4)  # records 3..6 are gone before the runner read them
    runner.drain()
    assert handler.seen == [1, 2, 7, 8, 9, 10]
    assert any(
        "no longer valid" in r.getMessage() and r.error == "TrimmedDataAccessException"  # type: ignore[attr-defined]
        for r in _lines(caplog)
    )


def test_shards_that_go_and_come_are_logged_and_followed(fake, caplog):
    caplog.set_level(logging.INFO)
    handler = Recorder()
    runner = _runner(fake, handler)
    fake.add(n=2)
    runner.drain()
    fake.shards["shard-2"] = []
    fake.oldest["shard-2"] = 100
    del fake.shards["shard-1"]
    fake.add("shard-2", n=2)
    runner.drain()
    assert handler.seen == [1, 2, 3, 4]
    messages = [(r.getMessage(), getattr(r, "shard", None)) for r in _lines(caplog)]
    assert ("stream runner: shard gone; its iterator is dropped", "shard-1") in messages
    assert ("stream runner: reading shard", "shard-2") in messages


def test_a_new_stream_of_the_table_is_followed_and_logged(fake, caplog):
    caplog.set_level(logging.INFO)
    handler = Recorder()
    runner = _runner(fake, handler, rediscover_every=1)
    fake.add(n=2)
    runner.drain()
    fake.arn = ARN.replace("2026-01-01", "2026-02-02")
    fake.shards = {"shard-9": []}
    fake.oldest["shard-9"] = 50
    fake.add("shard-9", n=1)
    runner.drain()
    assert runner.stream_arn == fake.arn
    assert handler.seen == [1, 2, 3]
    (line,) = [r for r in _lines(caplog) if "stream changed" in r.getMessage()]
    assert line.old_stream == ARN and line.new_stream == fake.arn  # type: ignore[attr-defined]


def test_a_record_given_up_is_logged_without_its_contents(fake, caplog):
    caplog.set_level(logging.INFO)

    def poisoned(event: dict[str, Any]) -> dict[str, Any]:
        first = event["Records"][0]["dynamodb"]["SequenceNumber"]
        return {"batchItemFailures": [{"itemIdentifier": first}] if first == "1" else []}

    runner = StreamRunner(fake, fake.arn, poisoned, max_retries=2)
    fake.add(n=3)
    runner.drain()
    assert runner.given_up == ["1"]
    (line,) = [r for r in _lines(caplog) if "giving up" in r.getMessage()]
    assert line.levelno == logging.ERROR
    assert (line.shard, line.sequence, line.retries) == ("shard-1", "1", 2)  # type: ignore[attr-defined]
    _no_phi(caplog)


def test_run_forever_logs_a_failed_poll_and_carries_on(fake, caplog):
    caplog.set_level(logging.INFO)
    handler = Recorder()
    runner = _runner(fake, handler)
    calls = itertools.count()
    real = fake.describe_stream

    def flaky(StreamArn: str) -> dict[str, Any]:
        n = next(calls)
        if n == 0:
            raise _error("InternalServerError")
        if n >= 3:
            runner.stop()
        return real(StreamArn)

    fake.describe_stream = flaky  # type: ignore[method-assign]
    fake.add(n=1)
    runner.run_forever(interval_s=0.01)
    assert handler.seen == [1]
    (line,) = [r for r in _lines(caplog) if "poll failed" in r.getMessage()]
    assert line.error == "InternalServerError"  # type: ignore[attr-defined]
