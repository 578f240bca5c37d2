"""ULIDs as the spec writes them (https://github.com/ulid/spec)."""

from __future__ import annotations

import time

import pytest

from models.clock import CROCKFORD, new_id, ulid

SPEC_EXAMPLE = "01ARZ3NDEKTSV4RRFFQ69G5FAV"  # the spec's example (2016-07-30)


def _decode(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 32 + CROCKFORD.index(ch)
    return value


def test_the_specs_example_round_trips():
    value = _decode(SPEC_EXAMPLE)
    millis, randomness = value >> 80, value & ((1 << 80) - 1)
    assert millis == 1469922850259
    assert ulid(millis, randomness) == SPEC_EXAMPLE


def test_extremes_and_limits():
    assert ulid(0, 0) == "0" * 26
    assert ulid((1 << 48) - 1, (1 << 80) - 1) == "7" + "Z" * 25
    for bad in ((1 << 48, 0), (0, 1 << 80), (-1, 0)):
        with pytest.raises(ValueError):
            ulid(*bad)


def test_new_ids_are_26_crockford_characters_and_sort_by_time():
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert len(first) == len(second) == 26
    assert set(first + second) <= set(CROCKFORD)
    assert first < second
    assert len({new_id() for _ in range(1000)}) == 1000
