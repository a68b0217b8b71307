"""The online page cache agrees with the batch simulator and switches policy live."""

import numpy as np
import pytest

# the batch simulator this test compares against compiles its kernels with numba
pytest.importorskip("numba", reason="the page-cache simulator compiles its kernels with numba (pip install autosys-toolkit[compiled])")

from autosys_adapters.pagecache.app import POLICIES, AdaptiveCache, PageCacheApp  # noqa: E402
from autosys_adapters.pagecache import traces  # noqa: E402
from autosys_adapters.pagecache.simulator import simulate  # noqa: E402


@pytest.mark.parametrize("policy", ["lru", "fifo"])
def test_online_cache_matches_the_batch_simulator(policy):
    trace = traces.zipf(20_000, 2_000, alpha=0.8, seed=3)
    cache = AdaptiveCache(200, policy)
    hits = sum(cache.access(int(p)) for p in trace.ids)
    assert 1 - hits / len(trace.ids) == pytest.approx(simulate(trace, 200, policy).miss_ratio, abs=1e-12)


def test_every_policy_keeps_capacity_and_counts_requests():
    rng = np.random.default_rng(0)
    pages = rng.integers(0, 500, size=5000)
    for policy in POLICIES:
        cache = AdaptiveCache(50, policy)
        for i, page in enumerate(pages):
            cache.access(int(page))
            if i % 1000 == 500:
                cache.set_policy(POLICIES[(POLICIES.index(policy) + 1) % len(POLICIES)])
            assert len(cache) <= 50
        reading = cache.window_reading()
        assert reading["requests"] == 5000 and 0 <= reading["hit_ratio"] <= 1


def test_policies_win_where_they_should():
    loop = traces.loop(30_000, loop_pages=150).ids
    def hit_ratio(policy, pages):
        cache = AdaptiveCache(100, policy)
        return sum(cache.access(int(p)) for p in pages) / len(pages)
    assert hit_ratio("lru", loop) == 0.0 and hit_ratio("random", loop) > 0.3
    zipf = traces.zipf(50_000, 5_000, alpha=1.0, seed=1).ids
    assert hit_ratio("lfu", zipf) > hit_ratio("fifo", zipf)


def test_system_apply_switches_the_live_policy_and_rejects_unknown():
    app = PageCacheApp(capacity=10, pages=list(range(30)) * 3)
    app.apply({"policy": "lfu"})
    assert app.current() == {"policy": "lfu"} and app.cache.policy == "lfu"
    with pytest.raises(Exception, match="policy"):
        app.apply({"policy": "belady"})
    assert app.evaluate({"policy": "lru"}).metrics["hit_ratio"] == 0.0
