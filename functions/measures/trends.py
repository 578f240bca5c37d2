"""Totals over time: change from baseline, response and remission.

Definitions used in measurement-based care for the PHQ-9 and GAD-7: the baseline is the
first total, the latest the last; response is a drop of at least 50 % from baseline
(latest <= baseline / 2, never with a baseline of 0); remission is a latest total below 5
(PHQ-9: Kroenke, Spitzer, Williams 2001 and the MacArthur Initiative's PHQ-9 toolkit;
GAD-7: the same "minimal" cut-off of Spitzer et al. 2006). The C-SSRS screener has no total
and no trend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REMISSION_BELOW = {"phq-9": 5, "gad-7": 5}


@dataclass(frozen=True)
class TrendPoint:
    """One total and its change from baseline."""

    date: str
    total: int
    change: int


@dataclass(frozen=True)
class Trend:
    """A series of totals summarised: baseline, latest, changes, response, remission."""

    instrument: str
    baseline: TrendPoint
    latest: TrendPoint
    change: int  # latest - baseline
    percent_change: float | None  # of baseline, one decimal; None when the baseline is 0
    response: bool
    remission: bool
    points: tuple[TrendPoint, ...]


def trend(points: list[tuple[str, int]], instrument_key: str) -> Trend:
    """Summarise (date, total) points given in time order; ValueError when there is none
    or the instrument has no total."""
    if instrument_key not in REMISSION_BELOW:
        raise ValueError(f"No trend for instrument {instrument_key!r}: it has no total.")
    if not points:
        raise ValueError("A trend needs at least one point.")
    base = points[0][1]
    series = tuple(TrendPoint(date, total, total - base) for date, total in points)
    latest = series[-1]
    percent = round(100 * latest.change / base, 1) if base else None
    return Trend(
        instrument=instrument_key,
        baseline=series[0],
        latest=latest,
        change=latest.change,
        percent_change=percent,
        response=base > 0 and 2 * latest.total <= base,
        remission=latest.total < REMISSION_BELOW[instrument_key],
        points=series,
    )


def _point_parts(point: TrendPoint, observation_id: str | None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"name": "date", "valueDateTime": point.date},
        {"name": "total", "valueInteger": point.total},
        {"name": "change", "valueInteger": point.change},
    ]
    if observation_id:
        parts.append(
            {
                "name": "observation",
                "valueReference": {"reference": f"Observation/{observation_id}"},
            }
        )
    return parts


def as_parameters(instrument_key: str, scores: list[dict[str, Any]]) -> dict[str, Any]:
    """A FHIR Parameters of the trend of chart score summaries (`{"id", "date",
    "total", ...}`, in time order): instrument, count, and when there is a score,
    baseline, latest, change, percentChange (none with a baseline of 0), response,
    remission and each point."""
    head: list[dict[str, Any]] = [
        {"name": "instrument", "valueCode": instrument_key},
        {"name": "count", "valueInteger": len(scores)},
    ]
    if not scores:
        return {"resourceType": "Parameters", "parameter": head}
    found = trend([(s["date"], s["total"]) for s in scores], instrument_key)
    ids = [s.get("id") for s in scores]
    body = [
        {"name": "baseline", "part": _point_parts(found.baseline, ids[0])},
        {"name": "latest", "part": _point_parts(found.latest, ids[-1])},
        {"name": "change", "valueInteger": found.change},
    ]
    if found.percent_change is not None:
        body.append({"name": "percentChange", "valueDecimal": found.percent_change})
    body += [
        {"name": "response", "valueBoolean": found.response},
        {"name": "remission", "valueBoolean": found.remission},
    ]
    body += [
        {"name": "point", "part": _point_parts(p, i)}
        for p, i in zip(found.points, ids, strict=True)
    ]
    return {"resourceType": "Parameters", "parameter": head + body}
