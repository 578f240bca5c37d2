from __future__ import annotations

import time

from functions.common.auth import _VerifiedTokens


def test_a_cached_token_is_served_only_until_it_expires():
    cache = _VerifiedTokens()
    cache.put("t-live", {"exp": time.time() + 60})
    cache.put("t-dead", {"exp": time.time() - 60})
    assert cache.get("t-live", skew_s=0) is not None
    assert cache.get("t-dead", skew_s=0) is None
    assert cache.get("t-dead", skew_s=0) is None  # evicted, not resurrected


def test_only_the_exact_token_string_hits():
    cache = _VerifiedTokens()
    cache.put("abc.def.ghi", {"exp": time.time() + 60})
    assert cache.get("abc.def.ghj", skew_s=0) is None


def test_the_cache_is_bounded():
    cache = _VerifiedTokens(max_entries=3)
    for i in range(5):
        cache.put(f"t{i}", {"exp": time.time() + 60})
    assert cache.get("t0", skew_s=0) is None and cache.get("t4", skew_s=0) is not None
