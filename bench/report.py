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


def write(figures: list[Figure], extra: dict[str, Any]) -> Path:
    data: dict[str, Any] = {f.key: f.value for f in figures}
    data.update(extra)
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return RESULTS
