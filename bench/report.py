"""The printed table and bench/results.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    value: float | int | None
    target: str
    met: Callable[[float], bool] | None  # None: no target
    fmt: str = "{:g}"

    def verdict(self) -> str:
        if self.met is None:
            return ""
        if self.value is None:
            return "n/a"
        return "ok" if self.met(self.value) else "MISS"

    def shown(self) -> str:
        return "null" if self.value is None else self.fmt.format(self.value)


def exactly(n: int) -> Callable[[float], bool]:
    return lambda v: v == n


def at_most(n: float) -> Callable[[float], bool]:
    return lambda v: v <= n


def below(n: float) -> Callable[[float], bool]:
    return lambda v: v < n


def table(figures: list[Figure]) -> str:
    rows = [
        ("figure", "value", "target", ""),
        *((f.label, f.shown(), f.target, f.verdict()) for f in figures),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def matrix(title: str, rows: list[tuple[str, list[Figure | None]]], columns: list[str]) -> str:
    """A table of figures, one row per subject (e.g. a FHIR type), one column per
    kind: each cell its value, followed by MISS when it misses its target."""

    def cell(f: Figure | None) -> str:
        if f is None:
            return "-"
        verdict = f.verdict()
        return f.shown() + (f" {verdict}" if verdict not in ("", "ok") else "")

    table_rows = [(title, *columns), *((name, *(cell(f) for f in figs)) for name, figs in rows)]
    widths = [max(len(r[i]) for r in table_rows) for i in range(len(table_rows[0]))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table_rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def nested(figures: list[Figure]) -> dict[str, Any]:
    """Figure values by key; a dotted key (`round_trips.Encounter.read`) is nested
    (`{"round_trips": {"Encounter": {"read": ...}}}`)."""
    data: dict[str, Any] = {}
    for f in figures:
        *path, last = f.key.split(".")
        node = data
        for part in path:
            node = node.setdefault(part, {})
        node[last] = f.value
    return data


def write(figures: list[Figure], extra: dict[str, Any]) -> Path:
    data = nested(figures)
    data.update(extra)
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return RESULTS
