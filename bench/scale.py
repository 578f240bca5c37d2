"""Scale: resident memory and create latency of the local stack as it fills up.

Patients are created through the real HTTP API of the bench's own local stack,
with the stream runner delivering the table's stream to the app's handler in a
thread (as `make run` does). Latency is timed one create at a time on one
keep-alive connection: a window of creates around the 100th patient, and the
last window before the 5,000th. The creates in between run from a few client
threads, only to get there sooner; they are not timed. Resident memory is
VmRSS of this process (it holds moto, the app and the API server), read from
/proc/self/status once the runner has caught up.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.api import BASE, HttpApi
from bench.stack import HOST, BenchStack
from devstack.moto_server import find_table, next_sequence

PATIENTS = 5000
EARLY_AT = 100
WINDOW = 100  # creates timed around each point
THREADS = 4  # client threads of the untimed creates
DRAIN_TIMEOUT_S = 120.0


def scale_body(i: int) -> dict[str, Any]:
    """A distinct short name per patient (its prefixes are the create's search entries)."""
    return {
        "resourceType": "Patient",
        "name": [{"family": f"Sc{i:04d}", "given": ["Al"]}],
        "birthDate": f"19{50 + i % 50:02d}-0{1 + i % 9}-1{i % 10}",
        "gender": "unknown",
    }


def proc_status_mb(field: str) -> float | None:
    """A memory figure of this process (VmRSS, VmHWM) in MiB, from /proc/self/status."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


@dataclass
class ScaleResult:
    patients: int
    rss_mb: float | None
    peak_rss_mb: float | None
    rss_mb_before: float | None
    create_ms_near_100: float
    create_ms_near_last: float
    early_window: tuple[int, int]
    late_window: tuple[int, int]
    create_statuses: dict[int, int]
    runner_delivered: int
    runner_caught_up: bool
    table_items: int | None
    stream_records_held: int | None
    seconds: float

    @property
    def ratio(self) -> float:
        return round(self.create_ms_near_last / self.create_ms_near_100, 3)

    def summary(self) -> dict[str, Any]:
        return {
            "patients": self.patients,
            "rss_mb": self.rss_mb,
            "peak_rss_mb": self.peak_rss_mb,
            "rss_mb_before": self.rss_mb_before,
            "create_median_ms_near_100": self.create_ms_near_100,
            "create_median_ms_near_last": self.create_ms_near_last,
            "create_ms_ratio": self.ratio,
            "early_window": list(self.early_window),
            "late_window": list(self.late_window),
            "create_statuses": {str(k): v for k, v in sorted(self.create_statuses.items())},
            "runner_delivered": self.runner_delivered,
            "runner_caught_up": self.runner_caught_up,
            "table_items": self.table_items,
            "stream_records_held": self.stream_records_held,
            "seconds": self.seconds,
        }


class Creator:
    """Creates the numbered scale patients; counts statuses (thread-safe)."""

    def __init__(self, stack: BenchStack) -> None:
        self._stack = stack
        self._lock = threading.Lock()
        self.statuses: dict[int, int] = {}
        self._local = threading.local()

    def _api(self) -> HttpApi:
        api = getattr(self._local, "api", None)
        if api is None:
            api = HttpApi(HOST, self._stack.api_port, self._stack.token)
            self._local.api = api
        return api

    def create(self, i: int) -> float:
        """Milliseconds one create took."""
        started = time.perf_counter()
        reply = self._api().call("POST", f"{BASE}/Patient", scale_body(i))
        took = (time.perf_counter() - started) * 1000
        with self._lock:
            self.statuses[reply.status] = self.statuses.get(reply.status, 0) + 1
        return took

    def timed(self, first: int, last: int) -> list[float]:
        """Creates `first`..`last` (1-based ordinals) one after the other."""
        return [self.create(i) for i in range(first, last + 1)]

    def untimed(self, first: int, last: int) -> None:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(self.create, range(first, last + 1), chunksize=50))


def _start_runner(stack: BenchStack) -> tuple[Any, threading.Thread]:
    import boto3

    from devstack.runner import StreamRunner

    app_module = stack.app_module

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = app_module.stream_publisher(event, None)
        return result

    runner = StreamRunner(boto3.client("dynamodbstreams"), stack.local.stream_arn, handler)
    thread = threading.Thread(target=runner.run_forever, args=(0.2,), daemon=True)
    thread.start()
    return runner, thread


def _caught_up(table: Any, runner: Any) -> Callable[[], bool]:
    """True once the runner has read up to the end of the stream."""

    def check() -> bool:
        shard = table.stream_shard if table is not None else None
        if shard is None:
            return True
        return bool(runner.position(shard.id) >= next_sequence(shard))

    return check


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def run(
    stack: BenchStack, patients: int = PATIENTS, say: Callable[[str], None] = print
) -> ScaleResult:
    started = time.perf_counter()
    gc.collect()
    before = proc_status_mb("VmRSS")
    table = find_table(stack.local.table_name)
    runner, thread = _start_runner(stack)
    creator = Creator(stack)
    early = (max(1, EARLY_AT - WINDOW // 2 + 1), EARLY_AT + WINDOW // 2)
    late = (max(early[1] + 1, patients - WINDOW + 1), patients)
    caught_up = _caught_up(table, runner)
    say(f"  timing creates {early[0]}-{early[1]} one at a time ...")
    creator.timed(1, early[0] - 1)
    _wait(caught_up, DRAIN_TIMEOUT_S)
    early_ms = creator.timed(*early)
    say(f"  creating patients {early[1] + 1}-{late[0] - 1} from {THREADS} client threads ...")
    creator.untimed(early[1] + 1, late[0] - 1)
    _wait(caught_up, DRAIN_TIMEOUT_S)  # both windows start with the runner caught up
    say(f"  timing creates {late[0]}-{late[1]} one at a time ...")
    late_ms = creator.timed(*late)
    drained = _wait(caught_up, DRAIN_TIMEOUT_S)
    runner.stop()
    thread.join(timeout=5)
    gc.collect()
    shard = table.stream_shard if table is not None else None
    return ScaleResult(
        patients=patients,
        rss_mb=proc_status_mb("VmRSS"),
        peak_rss_mb=proc_status_mb("VmHWM"),
        rss_mb_before=before,
        create_ms_near_100=round(statistics.median(early_ms), 2),
        create_ms_near_last=round(statistics.median(late_ms), 2),
        early_window=early,
        late_window=late,
        create_statuses=dict(creator.statuses),
        runner_delivered=runner.delivered,
        runner_caught_up=drained,
        table_items=len(table) if table is not None else None,
        stream_records_held=len(shard.items) if shard is not None else None,
        seconds=round(time.perf_counter() - started, 1),
    )
