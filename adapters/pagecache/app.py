"""An application-level page cache whose replacement policy can change while it serves.

The host for the agent's second demo. `AdaptiveCache.access(page)` serves a
request (a hit, or a miss that loads the page and may evict one); the policy
is LRU, LFU (with aging), FIFO or random eviction and can be switched live: the resident
pages stay, and the new policy rebuilds its order from them. The cache
reports hit ratio and two workload features per window (how many requests go
to pages not seen in the recent past, and how concentrated the requests are),
which is what the agent's change test watches. With a `change_test` (a
`RateJumpTest` on misses) and a `novelty_test` (one on requests for pages
not seen recently) it also tests every request: when either rate jumps (a
new working set), `alarm` is set and the window's reading says so, so the
application can call the agent at once instead of at the window's end.

The batch simulator in `autosys_adapters.pagecache` measures policies offline on whole
traces; this one is the online counterpart, one request at a time.
"""

from __future__ import annotations

import collections
import heapq
import random
from typing import Iterable, Mapping, Sequence

from autosys.online.agent import Agent, Policy
from autosys.online.change import RateJumpTest
from autosys.online.monitor import Monitor
from autosys.core.fidelity import Fidelity, stamp
from autosys.core.space import Categorical, Config, Space
from autosys.core.system import Measurement, Objective, System

POLICIES = ("lru", "lfu", "fifo", "random")


class AdaptiveCache:
    """A fixed-capacity cache of page ids with a switchable eviction policy."""

    def __init__(self, capacity: int, policy: str = "lru", recent: int = 50_000, seed: int = 0, aging_period: int = 10,
                 change_test: RateJumpTest | None = None, novelty_test: RateJumpTest | None = None):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
        self.capacity = capacity
        self.policy = policy
        self.aging_period = aging_period  # LFU halves all counts every aging_period * capacity evictions
        self.order: collections.OrderedDict[int, None] = collections.OrderedDict()  # LRU/FIFO order
        self._slots: list[int] = []  # resident pages, for O(1) random eviction
        self._slot_of: dict[int, int] = {}
        self._rng = random.Random(seed)
        self.freq: dict[int, int] = {}
        self._heap: list[tuple[int, int, int]] = []  # LFU: (count, tick, page), stale entries skipped
        self._tick = 0
        self._aging_clock = 0
        self.hits = self.misses = self.evictions = 0
        # workload features over the current window
        self._recent: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._recent_cap = recent
        self._window_new = 0
        self._window_counts: collections.Counter[int] = collections.Counter()
        self.history: collections.deque[int] = collections.deque(maxlen=max(40 * capacity, 20_000))
        #: tests each request's miss against the recent miss rate (None: no per-request test)
        self.change_test = change_test
        #: tests each request's novelty (a page not in the recent past) against the recent rate: a workload-only
        #: signal, which a switch of policy does not move (None: no such test)
        self.novelty_test = novelty_test
        #: the miss rate jumped during this window (set by `change_test`, cleared by `window_reading`)
        self.alarm = False

    def __contains__(self, page: int) -> bool:
        return page in self.freq

    def __len__(self) -> int:
        return len(self.freq)

    def set_policy(self, policy: str) -> None:
        """Switch policy; resident pages stay, ordered by their last access. The change test re-learns the miss
        rate (a new policy has its own)."""
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
        if self.change_test is not None and policy != self.policy:
            self.change_test.reset()
        self.policy = policy
        if policy == "lfu":
            self._heap = [(count, i, page) for i, (page, count) in enumerate(self.freq.items())]
            heapq.heapify(self._heap)

    def access(self, page: int) -> bool:
        """Serve one request; True on a hit."""
        self._tick += 1
        self.history.append(page)
        self._window_counts[page] += 1
        novel = page not in self._recent
        if self.novelty_test is not None and self.novelty_test.update(novel):
            self.alarm = True
        if novel:
            self._window_new += 1
        else:
            self._recent.move_to_end(page)
        self._recent[page] = None
        if len(self._recent) > self._recent_cap:
            self._recent.popitem(last=False)
        if self.change_test is not None and self.change_test.update(page not in self.freq):
            self.alarm = True
        if page in self.freq:
            self.hits += 1
            self.freq[page] += 1
            if self.policy == "lru":
                self.order.move_to_end(page)
            elif self.policy == "lfu":
                heapq.heappush(self._heap, (self.freq[page], self._tick, page))
            return True
        self.misses += 1
        if len(self.freq) >= self.capacity:
            self._evict()
        self.freq[page] = 1
        self.order[page] = None
        self._slot_of[page] = len(self._slots)
        self._slots.append(page)
        if self.policy == "lfu":
            heapq.heappush(self._heap, (1, self._tick, page))
        return False

    def _evict(self) -> None:
        if self.policy == "lfu":
            while True:
                count, _, page = heapq.heappop(self._heap)
                if page in self.freq and self.freq[page] == count:
                    break
            if len(self._heap) > 4 * self.capacity:  # drop stale entries now and then
                self._heap = [e for e in self._heap if e[2] in self.freq and self.freq[e[2]] == e[0]]
                heapq.heapify(self._heap)
            self.order.pop(page, None)
        elif self.policy == "random":
            page = self._slots[self._rng.randrange(len(self._slots))]
            self.order.pop(page)
        else:  # lru and fifo both evict the oldest in `order` (fifo never reorders on a hit)
            page, _ = self.order.popitem(last=False)
        del self.freq[page]
        last = self._slots.pop()  # swap-remove from the slot list
        if last != page:
            index = self._slot_of[page]
            self._slots[index] = last
            self._slot_of[last] = index
        del self._slot_of[page]
        self.evictions += 1
        self._aging_clock += 1  # not reset by `window_reading`: aging must not depend on how often it is read
        if self.policy == "lfu" and self._aging_clock % (self.aging_period * self.capacity) == 0:
            self._age()

    def _age(self) -> None:
        """Halve every count so that old popularity fades (LFU with aging)."""
        for page in self.freq:
            self.freq[page] = max(self.freq[page] // 2, 1)
        self._heap = [(count, i, page) for i, (page, count) in enumerate(self.freq.items())]
        heapq.heapify(self._heap)

    def window_reading(self) -> dict[str, float]:
        """Hit ratio and workload features since the previous call."""
        total = self.hits + self.misses
        counts = self._window_counts
        top = sum(c for _, c in counts.most_common(max(len(counts) // 100, 1)))
        reading = {
            "hit_ratio": self.hits / total if total else float("nan"),
            "requests": float(total),
            "evictions": float(self.evictions),
            "new_page_fraction": self._window_new / total if total else 0.0,
            "top1pct_fraction": top / total if total else 0.0,
        }
        if self.change_test is not None or self.novelty_test is not None:
            reading[Agent.ALARM] = 1.0 if self.alarm else 0.0
        self.alarm = False
        self.hits = self.misses = self.evictions = self._window_new = 0
        self._window_counts = collections.Counter()
        return reading


def shadow_hit_ratios(pages: Sequence[int], capacity: int, policies: Sequence[str] = POLICIES) -> dict[str, float]:
    """Replay recent requests through a fresh cache per policy (miniature simulation).

    The first half warms each shadow cache up; the hit ratio is measured on the second half.
    """
    pages = list(pages)
    half = len(pages) // 2
    out = {}
    for policy in policies:
        cache = AdaptiveCache(capacity, policy)
        for page in pages[:half]:
            cache.access(page)
        cache.window_reading()
        for page in pages[half:]:
            cache.access(page)
        out[policy] = cache.window_reading()["hit_ratio"]
    return out


class ShadowPolicy(Policy):
    """Proposes the policy that wins a shadow replay of the cache's recent requests.

    Trying policies on the live cache is slow to judge (a switch inherits the
    previous policy's contents for several windows); replaying the recent
    requests through small shadow caches ranks them in milliseconds, and the
    agent then verifies the winner live before keeping it.
    """

    def __init__(self, cache: AdaptiveCache, margin: float = 0.01):
        self.cache, self.margin = cache, margin
        self.last_scores: dict[str, float] = {}

    def propose(self, context: Mapping[str, float], incumbent: Config) -> Config | None:
        if len(self.cache.history) < 4 * self.cache.capacity:
            return None
        self.last_scores = shadow_hit_ratios(self.cache.history, self.cache.capacity)
        best = max(self.last_scores, key=self.last_scores.get)
        if best == incumbent["policy"] or self.last_scores[best] < self.last_scores[incumbent["policy"]] + self.margin:
            return None
        return {"policy": best}


class CacheMonitor(Monitor):
    """Reads an AdaptiveCache's window: hit ratio, evictions and workload features."""

    name = "page-cache"

    def __init__(self, cache: AdaptiveCache):
        self.cache = cache

    def sample(self) -> dict[str, float]:
        return self.cache.window_reading()


class PageCacheApp(System):
    """The cache as a tunable system: the policy is the knob, hit ratio the objective.

    `evaluate` replays a list of page ids through a fresh cache (offline use);
    `apply` switches the live cache's policy (online use by the agent).

    Args:
        capacity: cache size in pages.
        trace: a trace file whose pages `evaluate` replays.
        pages: the pages to replay, when no trace is given (from Python).
    """

    name = "page-cache-app"

    def __init__(self, capacity: int = 1000, trace: str | None = None, pages: Iterable[int] | None = None):
        self.cache = AdaptiveCache(capacity)
        if trace is not None:
            from autosys_adapters.pagecache.traces import read_trace

            pages = read_trace(trace).ids.tolist()
        self.pages = list(pages) if pages is not None else []

    def space(self) -> Space:
        return Space([Categorical("policy", POLICIES, default="lru")])

    @property
    def objective(self) -> Objective:
        return Objective("hit_ratio", "maximize")

    def fidelity(self) -> Fidelity | None:
        """The fraction of the pages replayed, from their start (None until there are pages)."""
        if not self.pages:
            return None
        return Fidelity("trace_fraction", "trace_prefix", min(1.0, max(0.01, 100 / len(self.pages))), 1.0,
                        unit="of the requests", integer=False)

    def evaluate(self, config: Config, fidelity: float | None = None) -> Measurement:
        if not self.pages:
            raise ValueError("no pages to replay: pass pages=[...]")
        value = self.resolve_fidelity(fidelity)
        pages = self.pages[: max(1, int(round(value * len(self.pages))))]
        cache = AdaptiveCache(self.cache.capacity, config["policy"])
        for page in pages:
            cache.access(page)
        return Measurement({"hit_ratio": cache.window_reading()["hit_ratio"]},
                           info=stamp({}, self.fidelity(), value, len(pages)))

    def apply(self, config: Config) -> None:
        self.cache.set_policy(self.space().validate(config)["policy"])

    def current(self) -> Config:
        return {"policy": self.cache.policy}

    def monitors(self) -> list[Monitor]:
        return [CacheMonitor(self.cache)]
