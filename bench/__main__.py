"""`python -m bench` (`make bench`): figures of the Patient API on a local stack
started in this process; prints a table and writes bench/results.json.

The bench measures and reports; it never asserts and never fails on a figure.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench import charting, counts, latency, pipelines, report, resources, scale, static
from bench.api import HttpApi
from bench.report import Figure, at_most, below, exactly
from bench.stack import HOST, BenchStack, quiet_stderr, server_nodelay, start

CREATES, READS, UPDATES, SEARCHES = 20, 20, 20, 20
PER_TYPE = 20  # warm requests counted of each kind of each registered type
KMS_READS = 100
PAIRS = 200
COLD_RUNS = 5

# What one warm request of each kind is expected to send (anything else is reported).
EXPECTED: dict[str, Counter[str]] = {
    "create": Counter({"dynamodb.TransactWriteItems": 1}),
    "read": Counter({"dynamodb.GetItem": 1, "dynamodb.PutItem": 1}),
    "update": Counter({"dynamodb.TransactWriteItems": 1}),
    # the audit record and its copy in each returned patient's trail: one transaction
    "search": Counter({"dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1}),
}


def _say(message: str) -> None:
    print(message, flush=True)


def _total_dynamodb(ops: Counter[str]) -> int:
    return sum(counts.dynamodb_ops(ops).values())


def _puts(ops: Counter[str]) -> int:
    return ops.get("dynamodb.PutItem", 0)


def diagnose(kind: counts.Kind, expected: Counter[str] | None = None) -> list[str]:
    """Operations of a kind beyond what one warm request should send."""
    expected = EXPECTED[kind.name] if expected is None else expected
    notes = []
    names = sorted({n for ops in kind.per_request for n in ops})
    for name in names:
        over = [ops[name] - expected.get(name, 0) for ops in kind.per_request]
        hits = sum(1 for extra in over if extra > 0)
        if hits:
            notes.append(
                f"{kind.name}: {name} beyond the expected {expected.get(name, 0)} in "
                f"{hits}/{len(over)} warm requests (max {max(over)} extra)"
            )
    if any(s >= 400 for s in kind.statuses):
        notes.append(f"{kind.name}: error statuses {sorted(set(kind.statuses))}")
    return notes


class Phases:
    """Wall-clock seconds of each phase (reported, so a slow run can be explained)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._mark = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._mark, 1)
        self._mark = now


def count_phase(stack: BenchStack, api: HttpApi, phases: Phases) -> dict[str, Any]:
    """Creates and updates first, then reads and searches (which add audit records)."""
    _say(f"Creating {CREATES + 1} patients through the API ...")
    created, ids = counts.create_patients(stack, api, CREATES)
    phases.done("creates")
    _say("Counting round trips of updates, reads and searches ...")
    kinds = {"create": created, "update": counts.updates(stack, api, ids, UPDATES)}
    phases.done("updates")
    kinds["read"] = counts.reads(stack, api, ids, READS)
    kinds["search"] = counts.searches(stack, api, SEARCHES)
    kms, kms_failed = counts.kms_per_reads(stack, api, ids, KMS_READS)
    phases.done("reads_searches_kms")
    return {"kinds": kinds, "kms": kms, "kms_failed": kms_failed, "ids": ids}


def latency_phase(
    stack: BenchStack, api: HttpApi, ids: list[str], phases: Phases
) -> dict[str, Any]:
    from bench.api import InProcessApi

    _say(
        f"Timing {PAIRS} interleaved pairs each: over HTTP, over HTTP with TCP_NODELAY, "
        "in-process ..."
    )
    from bench.api import read_route

    raw = latency.RawRead(stack.local.table_name, read_route(stack.app_module.app)[0])
    http = latency.over_http(api, raw, ids, PAIRS)
    phases.done("pairs_http")
    with server_nodelay(stack):
        nodelay_api = HttpApi(HOST, stack.api_port, stack.token)  # a new connection
        nodelay = latency.over_http(nodelay_api, raw, ids, PAIRS)
        nodelay_api.close()
    phases.done("pairs_http_nodelay")
    inproc = latency.in_process(InProcessApi(stack.app_module.app, stack.token), raw, ids, PAIRS)
    phases.done("pairs_in_process")
    return {
        "http": http.summary(),
        "http_nodelay": nodelay.summary(),
        "in_process": inproc.summary(),
    }


def types_phase(stack: BenchStack, phases: Phases) -> dict[str, Any]:
    """After the Patient figures and the latency pairs (so they are measured on the
    table they always were), before the scale phase (so no stream runner is
    sending its own requests to the counted server)."""
    names = list(resources.BODIES)  # the plain FHIR types; workflow types: bench/charting.py
    _say(
        f"Counting round trips of every registered type ({len(names)}: {', '.join(names)}), "
        f"{PER_TYPE} warm requests of each kind ..."
    )
    runs, extras = resources.run(stack, names, PER_TYPE, _say)
    phases.done("types")
    return {"types": runs, "patient_extras": extras, "registered": names}


def run_api_phase(stack: BenchStack, phases: Phases) -> dict[str, Any]:
    api = HttpApi(HOST, stack.api_port, stack.token)
    try:
        with quiet_stderr():
            result = count_phase(stack, api, phases)
            result.update(latency_phase(stack, api, result["ids"], phases))
    finally:
        api.close()
    with quiet_stderr():
        result.update(types_phase(stack, phases))
    result["patients"] = len(result.pop("ids"))
    return result


def scale_phase(stack: BenchStack, phases: Phases) -> scale.ScaleResult:
    """Last, so the figures above are measured as before: a small table and no
    stream runner sending its own requests to the counted server."""
    _say(
        f"Creating {scale.PATIENTS} more patients through the API with the stream runner "
        "running (memory, create latency) ..."
    )
    with quiet_stderr():
        result = scale.run(stack, scale.PATIENTS, _say)
    phases.done("scale")
    return result


def scale_figures(grown: scale.ScaleResult) -> list[Figure]:
    n = grown.patients
    return [
        Figure(
            f"local_rss_mb_{n}_patients",
            f"local stack resident memory after {n:,} creates",
            grown.rss_mb,
            "<= 1000 MB",
            at_most(1000),
            "{:.0f} MB",
        ),
        Figure(
            f"create_ms_ratio_{n}_vs_{scale.EARLY_AT}",
            f"create latency near {n:,} / near {scale.EARLY_AT} patients (medians)",
            grown.ratio,
            "<= 1.5",
            at_most(1.5),
            "{:.2f}",
        ),
        Figure(
            f"create_ms_near_{scale.EARLY_AT}",
            f"  create latency near {scale.EARLY_AT} patients (median)",
            grown.create_ms_near_100,
            "(report)",
            None,
            "{:.1f} ms",
        ),
        Figure(
            f"create_ms_near_{n}",
            f"  create latency near {n:,} patients (median)",
            grown.create_ms_near_last,
            "(report)",
            None,
            "{:.1f} ms",
        ),
    ]


# How each kind's figure is counted, as the Patient figures above are: a read less
# its audit PutItem, a search less its audit write, a write's one transaction whole
# (the audit record is one of its items).
TYPE_KINDS: dict[str, tuple[str, Any]] = {
    "read": ("read", counts.without_audit_put),
    "create": ("create", _total_dynamodb),
    "update": ("update (If-Match)", _total_dynamodb),
    "search_by_patient": ("search ?patient= (excl. audit)", counts.without_audit_write),
    "search": ("search ?identifier= (excl. audit)", counts.without_audit_write),
}


def type_kinds(type_name: str) -> list[str]:
    return ["read", "create", "update", resources.search_kind(type_name)]


def type_figures(api: dict[str, Any]) -> list[Figure]:
    """`round_trips.<Type>.<kind>` for every registered type (null if not measured)."""
    out = []
    for run in api["types"]:
        for kind in type_kinds(run.name):
            label, figure = TYPE_KINDS[kind]
            counted = run.kinds.get(kind)
            out.append(
                Figure(
                    f"round_trips.{run.name}.{kind}",
                    f"{run.name} {label}: DynamoDB round trips",
                    counted.median(figure) if counted else None,
                    "1",
                    exactly(1),
                )
            )
    return out


def patient_extra_figures(api: dict[str, Any]) -> list[Figure]:
    k = api["patient_extras"]

    def median(name: str, figure: Any) -> float | None:
        return k[name].median(figure) if name in k else None

    return [
        Figure(
            "round_trips.update_without_if_match",
            "update without If-Match: DynamoDB round trips",
            median("update_without_if_match", _total_dynamodb),
            "2",
            exactly(2),
        ),
        Figure(
            "conditional_create_round_trips.found_match",
            "conditional create, match found (excl. audit)",
            median("conditional_create_found", counts.without_audit_put),
            "<= 2",
            at_most(2),
        ),
        Figure(
            "conditional_create_round_trips.created",
            "conditional create, no match: creates",
            median("conditional_create_created", counts.without_audit_put),
            "<= 2",
            at_most(2),
        ),
    ]


def figures(
    api: dict[str, Any], cold: dict[str, static.ColdRuns], package_mb: float | None
) -> list[Figure]:
    k, ratio = api["kinds"], "{:.2f}"
    return [
        Figure(
            "read_round_trips",
            "read: DynamoDB round trips (excl. audit)",
            k["read"].median(counts.without_audit_put),
            "1",
            exactly(1),
        ),
        Figure(
            "read_audit_writes",
            "read: audit PutItem",
            k["read"].median(_puts),
            "1 (audit)",
            exactly(1),
        ),
        Figure(
            "create_round_trips",
            "create: DynamoDB round trips",
            k["create"].median(_total_dynamodb),
            "1",
            exactly(1),
        ),
        Figure(
            "update_round_trips",
            "update (If-Match): DynamoDB round trips",
            k["update"].median(_total_dynamodb),
            "1",
            exactly(1),
        ),
        Figure(
            "search_round_trips",
            "search family=: DynamoDB round trips (excl. audit)",
            k["search"].median(counts.without_audit_write),
            "1",
            exactly(1),
        ),
        Figure(
            "kms_calls_per_100_warm_reads",
            "KMS calls per 100 warm reads",
            api["kms"],
            "<= 1",
            at_most(1),
        ),
        Figure(
            "read_overhead_ratio",
            "read overhead ratio, over HTTP (keep-alive)",
            api["http"]["median_of_pair_ratios"],
            "<= 1.3",
            at_most(1.3),
            ratio,
        ),
        Figure(
            "read_overhead_ratio_http_nodelay",
            "  diagnostic: same, local API socket TCP_NODELAY",
            api["http_nodelay"]["median_of_pair_ratios"],
            "<= 1.3",
            at_most(1.3),
            ratio,
        ),
        Figure(
            "read_overhead_ratio_in_process",
            "read overhead ratio, in-process Lambda handler",
            api["in_process"]["median_of_pair_ratios"],
            "<= 1.3",
            at_most(1.3),
            ratio,
        ),
        Figure(
            "cold_import_ms",
            f"cold `import app` (median of {COLD_RUNS} processes)",
            static.median(cold["as_checked_out"].ms),
            "< 1000 ms",
            below(1000),
            "{:.0f} ms",
        ),
        Figure(
            "cold_import_ms_lambda_like",
            "  same, from the unzipped package (Lambda-like)",
            static.median(cold["lambda_like"].ms) if cold["lambda_like"].ms else None,
            "< 1000 ms",
            below(1000),
            "{:.0f} ms",
        ),
        Figure(
            "package_mb", f"package size {static.ZIP}", package_mb, "(report)", None, "{:.2f} MB"
        ),
    ]


def extras(
    api: dict[str, Any],
    cold: dict[str, static.ColdRuns],
    package: static.PackageSize,
    fresh: static.FreshZip | None,
    notes: list[str],
    phases: Phases,
    grown: scale.ScaleResult,
) -> dict[str, Any]:
    return {
        "scale": grown.summary(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "samples": {
            "creates": CREATES,
            "reads": READS,
            "updates": UPDATES,
            "searches": SEARCHES,
            "kms_reads": KMS_READS,
            "latency_pairs": PAIRS,
            "in_process_pairs": PAIRS,
            "latency_warmup": latency.WARMUP,
            "cold_import_runs": COLD_RUNS,
            "patients": api["patients"],
            "per_type": PER_TYPE,
            "chart_patients": resources.CHART_PATIENTS,
        },
        "read_overhead": api["http"],
        "read_overhead_http_nodelay": api["http_nodelay"],
        "read_overhead_in_process": api["in_process"],
        "cold_import_runs_ms": {k: [round(v, 1) for v in runs.ms] for k, runs in cold.items()},
        "cold_import_registered_types": {k: runs.registered() for k, runs in cold.items()},
        "cold_import_env": {"PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE")},
        "package": {
            "path": str(static.ZIP),
            "bytes": package.size_bytes,
            "built_now": package.built_now,
            "build_s": package.build_s,
            # dist/deployment.zip was older than the sources: the Lambda-like import
            # ran from a current build in a temporary folder (dist/ left as it was)
            "fresh_build": fresh.summary() if fresh else None,
        },
        "requests": {
            **{name: kind.summary() for name, kind in api["kinds"].items()},
            **{name: kind.summary() for name, kind in api["patient_extras"].items()},
        },
        "requests_by_type": {
            run.name: {
                "role": run.role,
                "search_matches": list(run.search_matches) if run.search_matches else None,
                **{kind: counted.summary() for kind, counted in run.kinds.items()},
            }
            for run in api["types"]
        },
        "registered_types": api["registered"],
        "kms_reads_not_200": api["kms_failed"],
        "phase_s": phases.seconds,
        "runtime_s_excluding_packaging": round(
            sum(v for k, v in phases.seconds.items() if k != "package"), 1
        ),
        "notes": notes,
    }


def main() -> int:
    phases = Phases()
    _say("Starting a local stack (moto + provision + demo users + API) ...")
    stack = start()
    phases.done("stack")
    try:
        api = run_api_phase(stack, phases)
        with quiet_stderr():
            charted = charting.run(stack, _say)
        phases.done("charting")
        grown = scale_phase(stack, phases)
        # after the scale phase: its memory figure is taken before the pipelines' data
        with quiet_stderr():
            piped = pipelines.run(stack, _say)
        phases.done("pipelines")
    finally:
        stack.stop()
    package = static.package_size()
    with static.current_zip(package, _say) as (fresh, zip_note):
        phases.done("package")
        _say(
            f"Timing `import app` in {COLD_RUNS} fresh processes, as checked out and from "
            "the zip ..."
        )
        cold = {
            "as_checked_out": static.cold_import_ms(COLD_RUNS),
            "lambda_like": static.cold_import_lambda_like_ms(
                COLD_RUNS, fresh.path if fresh else None
            ),
        }
    phases.done("cold_import")
    notes = [n for kind in api["kinds"].values() for n in diagnose(kind)]
    notes += type_notes(api)
    notes += cold_notes(cold, api["registered"])
    notes += scale_notes(grown)
    notes += charting.notes(charted)
    notes += pipelines.notes(piped)
    if package.note:
        notes.append(package.note)
    if fresh is not None:
        notes.append(
            f"cold_import_ms_lambda_like: {static.ZIP} is older than the sources, so it was "
            f"measured from a current package built in a temporary folder "
            f"({fresh.summary()['mb']:.2f} MB, {fresh.build_s:.0f} s; dist/ left as it was)"
        )
    if zip_note:
        notes.append(zip_note)
    patient_figs, patient_extra = figures(api, cold, package.mb), patient_extra_figures(api)
    per_type, scale_figs = type_figures(api), scale_figures(grown)
    chart_figs = charting.figures(charted) + pipelines.figures(piped)
    data = {
        **extras(api, cold, package, fresh, notes, phases, grown),
        "charting": charted,
        "pipelines": piped,
    }
    path = report.write(patient_figs + per_type + patient_extra + chart_figs + scale_figs, data)
    _print(patient_figs + patient_extra + chart_figs + scale_figs, per_type, api, notes,
           path.name, grown)
    return 0


def type_notes(api: dict[str, Any]) -> list[str]:
    notes = []
    for run in api["types"]:
        if run.skipped:
            notes.append(f"{run.name}: not measured ({run.skipped})")
        for kind, counted in run.kinds.items():
            notes += diagnose(counted, run.expected[kind])
        if run.search_matches and run.search_matches[0] == 0:
            notes.append(f"{run.name}: a counted search returned no entry")
    wanted = {"conditional_create_found": 200, "conditional_create_created": 201}
    for name, counted in api["patient_extras"].items():
        notes += diagnose(counted, resources.PATIENT_EXTRAS[name])
        if name in wanted and set(counted.statuses) != {wanted[name]}:
            notes.append(f"{name}: statuses {sorted(set(counted.statuses))}, not {wanted[name]}")
    return notes


def cold_notes(cold: dict[str, static.ColdRuns], registered: list[str]) -> list[str]:
    """Every timed `import app` must have registered every type this process serves."""
    notes = []
    for name, runs in cold.items():
        if not runs.ms:
            continue
        seen = runs.registered()
        if seen is None or sorted(seen) != sorted(registered):
            notes.append(
                f"cold import ({name}): registered types {seen or runs.types}, "
                f"not every registered type {registered}"
            )
    return notes


def scale_notes(grown: scale.ScaleResult) -> list[str]:
    notes = []
    if set(grown.create_statuses) != {201}:
        notes.append(f"scale: create statuses {grown.create_statuses}")
    if not grown.runner_caught_up:
        notes.append("scale: the stream runner had not caught up when memory was read")
    return notes


LATENCY_LABELS = (
    ("over HTTP", "http"),
    ("over HTTP, TCP_NODELAY", "http_nodelay"),
    ("in-process handler", "in_process"),
)


TYPE_COLUMNS = ["read", "create", "update (If-Match)", "search"]


def _print(
    figs: list[Figure],
    per_type: list[Figure],
    api: dict[str, Any],
    notes: list[str],
    name: str,
    grown: scale.ScaleResult,
) -> None:
    _say("")
    _say(report.table(figs))
    _say("")
    by_key = {f.key: f for f in per_type}
    rows = [
        (run.name, [by_key.get(f"round_trips.{run.name}.{k}") for k in type_kinds(run.name)])
        for run in api["types"]
    ]
    _say(report.matrix("round trips per type", rows, TYPE_COLUMNS))
    _say(
        "  DynamoDB operations of one warm request (median of "
        f"{PER_TYPE}), audit write excluded as above; target 1 each. search: ?patient= "
        "for chart types, ?identifier= for Patient and Practitioner"
    )
    _say("")
    for label, key in LATENCY_LABELS:
        s = api[key]
        _say(
            f"{label:>23}: API read {s['api_median_ms']:.2f} ms vs raw I/O "
            f"{s['raw_io_median_ms']:.2f} ms (medians); median of pair ratios "
            f"{s['median_of_pair_ratios']:.2f}, ratio of medians {s['ratio_of_medians']:.2f}"
        )
    g = grown
    _say(
        f"{'scale':>23}: {g.patients:,} creates in {g.seconds:.0f} s; VmRSS {g.rss_mb} MB "
        f"(before {g.rss_mb_before}, peak {g.peak_rss_mb}); {g.table_items or 0:,} table "
        f"items, {g.stream_records_held or 0:,} stream records held; runner delivered "
        f"{g.runner_delivered:,}"
    )
    for note in notes:
        _say(f"note: {note}")
    _say(f"\nWrote bench/{name}")


if __name__ == "__main__":
    sys.exit(main())
