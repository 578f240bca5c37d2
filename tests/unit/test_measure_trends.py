"""Trends of PHQ-9 and GAD-7 totals: change from baseline, response and remission."""

from __future__ import annotations

import pytest

from functions.measures.trends import trend


def test_a_halved_series_below_five_is_response_and_remission() -> None:
    points = [("2024-01-01", 20), ("2024-01-29", 15), ("2024-02-26", 9), ("2024-03-25", 4)]
    result = trend(points, "phq-9")
    assert (result.baseline.date, result.baseline.total) == ("2024-01-01", 20)
    assert (result.latest.date, result.latest.total) == ("2024-03-25", 4)
    assert result.change == -16
    assert result.percent_change == -80.0
    assert result.response is True
    assert result.remission is True
    assert [p.change for p in result.points] == [0, -5, -11, -16]


def test_a_drop_short_of_half_is_no_response() -> None:
    result = trend([("2024-01-01", 12), ("2024-02-01", 10), ("2024-03-01", 8)], "gad-7")
    assert result.change == -4
    assert result.percent_change == -33.3
    assert result.response is False
    assert result.remission is False


def test_exactly_half_is_a_response() -> None:
    result = trend([("2024-01-01", 11), ("2024-02-01", 6)], "phq-9")
    assert result.response is False  # 6 > 5.5
    assert trend([("2024-01-01", 12), ("2024-02-01", 6)], "phq-9").response is True


def test_remission_is_below_five() -> None:
    assert trend([("2024-01-01", 8), ("2024-02-01", 5)], "phq-9").remission is False
    assert trend([("2024-01-01", 8), ("2024-02-01", 4)], "gad-7").remission is True


def test_a_baseline_of_zero_has_no_response_and_no_percentage() -> None:
    result = trend([("2024-01-01", 0), ("2024-02-01", 0), ("2024-03-01", 3)], "phq-9")
    assert result.response is False
    assert result.percent_change is None
    assert result.change == 3
    assert result.remission is True


def test_a_worsening_series_has_a_positive_change() -> None:
    result = trend([("2024-01-01", 6), ("2024-02-01", 15)], "gad-7")
    assert (result.change, result.percent_change, result.response) == (9, 150.0, False)


def test_one_point_is_its_own_baseline() -> None:
    result = trend([("2024-01-01", 7)], "phq-9")
    assert result.baseline == result.latest
    assert (result.change, result.percent_change, result.response) == (0, 0.0, False)


def test_no_points_or_no_total_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one point"):
        trend([], "phq-9")
    with pytest.raises(ValueError, match="no total"):
        trend([("2024-01-01", 1)], "c-ssrs-screener")
