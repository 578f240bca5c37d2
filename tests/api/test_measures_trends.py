"""`GET /Patient/{id}/$trend?instrument=...`: the patient's totals from the chart's
score ring (one bounded Query), with the baseline kept in its own chart entry once
the ring of 12 has wrapped; the trend rules are functions/measures/trends.py's."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.api.test_measures_submit import (
    BASE,
    OTHER,
    TENANT,
    calls,
    chart_keys,
    issue,
    new_patient,
    response,
    submitted,
    with_total,
)


def _trend(api, pid: str, instrument: str = "phq-9", tenant: str = TENANT,  # type: ignore[no-untyped-def]
           role: str = "clinician"):  # fmt: skip
    return api.http.get(f"{BASE}/Patient/{pid}/$trend?instrument={instrument}",
                        headers=api.headers(role, tenant))  # fmt: skip


def _named(parameters: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in parameters["parameter"]:
        value = {q["name"]: next(v for k, v in q.items() if k.startswith("value"))
                 for q in p["part"]} if "part" in p else next(
            v for k, v in p.items() if k.startswith("value"))  # fmt: skip
        out.setdefault(p["name"], []).append(value)
    return {k: v[0] if len(v) == 1 and k != "point" else v for k, v in out.items()}


def _series(api, pid: str, totals: list[int], key: str = "phq-9") -> None:  # type: ignore[no-untyped-def]
    items = 9 if key == "phq-9" else 7
    for day, total in enumerate(totals, start=1):
        authored = f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T09:00:00Z"
        submitted(api, response(pid, key, with_total(total, items), authored))


def test_a_phq9_series_20_15_9_4_is_a_response_and_a_remission(api, moto):
    pid = new_patient(api)
    _series(api, pid, [20, 15, 9, 4])
    counted, r = calls(moto, lambda: _trend(api, pid))
    assert r.status_code == 200, r.body
    got = _named(json.loads(r.body))
    assert got["instrument"] == "phq-9" and got["count"] == 4
    assert got["baseline"]["total"] == 20 and got["latest"]["total"] == 4
    assert got["change"] == -16 and got["percentChange"] == -80.0
    assert got["response"] is True and got["remission"] is True
    assert [p["total"] for p in got["point"]] == [20, 15, 9, 4]
    assert [p["change"] for p in got["point"]] == [0, -5, -11, -16]
    assert all(p["observation"]["reference"].startswith(f"Observation/{pid}.")
               for p in got["point"])  # fmt: skip
    assert counted == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 1})  # chart + audit


def test_a_gad7_series_12_10_8_is_neither_response_nor_remission(api):
    pid = new_patient(api)
    _series(api, pid, [12, 10, 8], "gad-7")
    _series(api, pid, [3])  # a PHQ-9 score is not in the GAD-7 trend
    got = _named(json.loads(_trend(api, pid, "gad-7").body))
    assert (got["count"], got["change"], got["percentChange"]) == (3, -4, -33.3)
    assert got["response"] is False and got["remission"] is False


def test_thirteen_scores_keep_twelve_ring_entries_and_the_baseline(api, stack):
    pid = new_patient(api)
    totals = [22, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9]
    _series(api, pid, totals)
    ring = {k for k in chart_keys(stack, pid) if k.startswith("2#phq-9#")}
    assert ring == {f"2#phq-9#{n:02d}" for n in range(12)} | {"2#phq-9#base"}
    got = _named(json.loads(_trend(api, pid).body))
    assert got["count"] == 13  # the baseline, then the 12 the ring holds
    assert got["baseline"]["total"] == 22 and got["latest"]["total"] == 9
    assert [p["total"] for p in got["point"]] == totals
    assert got["response"] is True and got["remission"] is False


def test_a_baseline_of_zero_has_no_percent_change_and_no_response(api):
    pid = new_patient(api)
    _series(api, pid, [0, 3])
    got = _named(json.loads(_trend(api, pid).body))
    assert "percentChange" not in got and got["response"] is False and got["remission"] is True


def test_a_patient_without_scores_has_an_empty_trend(api):
    got = _named(json.loads(_trend(api, new_patient(api)).body))
    assert got == {"instrument": "phq-9", "count": 0}


@pytest.mark.parametrize("instrument", ["c-ssrs-screener", "bdi-ii", "", "phq-9&instrument=gad-7"])
def test_an_instrument_without_a_total_or_unknown_is_400(api, instrument):
    r = _trend(api, new_patient(api), instrument)
    assert r.status_code == 400 and issue(r)[1] == ["Patient.$trend.instrument"]


def test_another_tenant_sees_no_trend_and_front_desk_none_at_all(api):
    pid = new_patient(api)
    _series(api, pid, [10])
    got = _named(json.loads(_trend(api, pid, tenant=OTHER).body))
    assert got["count"] == 0
    for tenant in (TENANT, OTHER):
        for role in ("front_desk", "biller", "admin", "compliance"):
            assert _trend(api, pid, tenant=tenant, role=role).status_code == 403, (tenant, role)
