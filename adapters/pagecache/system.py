"""Page replacement as a tuning problem: choose a policy and its knobs for a trace.

`PagePolicySystem(trace="pages.oracleGeneral", cache_size=0.1)` simulates each
config on the trace (a file, or a seeded synthetic trace when none is given)
and reports the miss ratio (minimized), the byte miss ratio and the simulation
speed. LRU and Belady's MIN on the same trace are always reported alongside,
with the share of the LRU-to-Belady gap each config closes.

Fidelity (`fidelity_by`): "sample" (default) simulates a SHARDS-style spatial
sample of the pages with the cache scaled by the sampling rate (the value is
the rate); "prefix" simulates the first fraction of the trace with the same
cache. LRU and Belady are measured at the same fidelity. Apply costs: a new
policy starts from a cold cache ("restart"); a policy's knobs change live.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from autosys.core.fidelity import Fidelity, stamp
from autosys.core.space import Bool, Categorical, Condition, Config, Float, Int, InvalidConfig, Space
from autosys.core.system import Measurement, Objective, System, SystemUnavailable
from autosys.core.monitor import Monitor, host_monitors
from autosys_adapters.pagecache.monitors import OSPageCacheMonitor

#: policies the tuner may pick (Belady is the offline bound, never a choice)
CHOICES = ("lru", "fifo", "clock", "lfu", "arc", "2q", "s3fifo", "sieve", "tinylfu", "lecar", "lrb", "cacheus", "glcache")
#: the policies with byte-capacity kernels (autosys_adapters.pagecache.sized), for sized=True
SIZED_CHOICES = ("lru", "fifo", "sieve", "s3fifo")
LECAR_EXPERTS = ("lru,lfu", "lru,lfu,fifo", "lru,lfu,mru", "lru,lfu,fifo,mru", "lru,mru,fifo")


def _when(policy: str) -> Condition:
    return Condition("policy", (policy,))


def policy_space(choices: tuple[str, ...] = CHOICES) -> Space:
    """The policy choice and each policy's knobs, active only under that policy."""
    return Space(
        [
            Categorical("policy", choices, default="lru", apply_cost="restart"),
            Int("clock_bits", 1, 4, default=1, condition=_when("clock")),
            Bool("lfu_aging", default=True, condition=_when("lfu")),
            Bool("lfu_history", default=False, condition=_when("lfu")),
            Float("twoq_kin", 0.05, 0.6, default=0.25, condition=_when("2q")),
            Float("twoq_kout", 0.1, 2.0, default=0.5, condition=_when("2q")),
            Float("s3fifo_small_ratio", 0.01, 0.5, log=True, default=0.1, condition=_when("s3fifo")),
            Float("s3fifo_ghost_ratio", 0.1, 3.0, default=0.9, condition=_when("s3fifo")),
            Int("s3fifo_move_threshold", 1, 3, default=2, condition=_when("s3fifo")),  # libCacheSim and the paper: freq > 1
            Int("s3fifo_max_freq", 1, 7, default=3, condition=_when("s3fifo")),
            Float("tinylfu_window", 0.005, 0.5, log=True, default=0.01, condition=_when("tinylfu")),
            Float("tinylfu_reset", 1.0, 1000.0, log=True, default=10.0, condition=_when("tinylfu")),
            Float("lecar_learning_rate", 0.01, 2.0, log=True, default=0.45, condition=_when("lecar")),
            Categorical("lecar_experts", LECAR_EXPERTS, default="lru,lfu", condition=_when("lecar")),
            Float("lecar_history", 0.25, 2.0, default=1.0, condition=_when("lecar")),
            Int("lrb_sample", 8, 128, log=True, default=64, condition=_when("lrb")),
            Int("lrb_retrain", 5_000, 200_000, log=True, default=20_000, condition=_when("lrb")),
            Int("lrb_trees", 4, 64, log=True, default=16, condition=_when("lrb")),
            Int("lrb_deltas", 1, 8, default=4, condition=_when("lrb")),
            Float("cacheus_ghost", 0.1, 2.0, log=True, default=0.5, condition=_when("cacheus")),
            Int("glcache_groups", 8, 128, log=True, default=32, condition=_when("glcache")),
        ]
    )


#: config key -> simulator keyword, per policy
_KNOBS = {
    "clock": {"clock_bits": "bits"},
    "lfu": {"lfu_aging": "aging", "lfu_history": "history"},
    "2q": {"twoq_kin": "kin", "twoq_kout": "kout"},
    "s3fifo": {
        "s3fifo_small_ratio": "small_ratio",
        "s3fifo_ghost_ratio": "ghost_ratio",
        "s3fifo_move_threshold": "move_threshold",
        "s3fifo_max_freq": "max_freq",
    },
    "tinylfu": {"tinylfu_window": "window_ratio", "tinylfu_reset": "reset"},
    "lecar": {"lecar_learning_rate": "learning_rate", "lecar_experts": "experts", "lecar_history": "history"},
    "lrb": {"lrb_sample": "sample", "lrb_retrain": "retrain", "lrb_trees": "trees", "lrb_deltas": "deltas"},
    "cacheus": {"cacheus_ghost": "ghost"},
    "glcache": {"glcache_groups": "groups"},
}


#: simulator keywords counted in requests, with the smallest value the simulator takes: on a spatially
#: sampled trace (rate R) a period of N requests of the full trace passes in about N x R sampled requests
#: (reuse distances and the cache shrink by R too); unscaled, LRB at a 1% sample of a 3M-request trace
#: retrained once or never, and ranked like LRU
REQUEST_KNOBS = {"lrb": {"retrain": 1_000}}


def sampled_knobs(policy: str, knobs: dict[str, Any], rate: float) -> dict[str, Any]:
    """`knobs` for a trace sampled at `rate`: periods counted in requests scaled by the rate."""
    floors = REQUEST_KNOBS.get(policy, {})
    if rate >= 1.0 or not floors:
        return knobs
    return {k: max(floors[k], int(round(v * rate))) if k in floors and v else v for k, v in knobs.items()}


def simulator_args(config: Config) -> tuple[str, dict[str, Any]]:
    """(policy, simulator keywords) for a validated config."""
    policy = config["policy"]
    knobs = {kw: config[key] for key, kw in _KNOBS.get(policy, {}).items() if key in config}
    if policy == "lecar" and "experts" in knobs:
        knobs["experts"] = tuple(knobs["experts"].split(","))
    return policy, knobs


def _simulate_sized(tr, capacity: int, policy: str, knobs: dict[str, Any]):
    """A SimResult from the byte-capacity kernels (sizes from the trace)."""
    import time

    from autosys_adapters.pagecache.simulator import SimResult
    from autosys_adapters.pagecache.sized import simulate_sized

    start = time.perf_counter()
    st = simulate_sized(tr.ids, tr.sizes, tr.n_obj, capacity, policy, nxt=tr.nxt, **knobs)
    return SimResult(policy, capacity, len(tr), st.misses, st.miss_ratio, st.byte_miss_ratio, time.perf_counter() - start)


def _tiny_trace():
    from autosys_adapters.pagecache.simulator import PreparedTrace
    from autosys_adapters.pagecache.traces import Trace

    return PreparedTrace.of(Trace([0, 1, 2, 0, 3, 1, 4, 0, 2, 5, 1, 0]))


class PagePolicySystem(System):
    """A page cache simulated over a trace; the tuner picks the replacement policy and its knobs.

    Args:
        trace: a trace file (.oracleGeneral, .npy, text or CSV); none = a seeded synthetic trace.
        cache_size: the cache, as a fraction of the trace's footprint if below 1, else in pages.
        trace_format: auto, text, csv, npy or oracleGeneral.
        column: the CSV column holding page ids (name or index).
        generator: the synthetic trace: zipf, scan_loop_hot, loop or scan.
        requests: the synthetic trace's length.
        pages: the synthetic trace's distinct pages.
        alpha: the zipf generator's skew.
        seed: seeds the synthetic trace.
        max_requests: replay only the first N requests (0 = all).
        fidelity_by: how a lower fidelity shrinks the work, sample (spatial sampling) or prefix.
        metric: the objective, miss_ratio or byte_miss_ratio (gap_closed is measured on it).
        sized: objects keep their trace sizes and the cache holds cache_size bytes (a fraction < 1 of the
            footprint in bytes, else bytes); the policies are then the sized kernels (lru, fifo, sieve, s3fifo).
    """

    name = "page-policy"

    def __init__(
        self,
        trace: str | None = None,
        cache_size: float = 0.1,
        trace_format: str = "auto",
        column: str = "0",
        generator: str = "zipf",
        requests: int = 200_000,
        pages: int = 20_000,
        alpha: float = 0.8,
        seed: int = 0,
        max_requests: int = 0,
        fidelity_by: str = "sample",
        metric: str = "miss_ratio",
        sized: bool = False,
    ):
        if fidelity_by not in ("sample", "prefix"):
            raise ValueError(f"fidelity_by must be 'sample' (spatial sampling) or 'prefix', not {fidelity_by!r}")
        if not cache_size > 0:
            raise ValueError(f"cache_size must be positive (a fraction < 1 of the footprint, or pages), got {cache_size}")
        if importlib.util.find_spec("numba") is None:  # say so now, not as an ImportError in the first trial
            raise SystemUnavailable("the page-policy simulator compiles its kernels with numba: pip install 'autosys-toolkit[compiled]'")
        self._settings = dict(
            trace=trace, cache_size=cache_size, trace_format=trace_format, column=column, generator=generator,
            requests=requests, pages=pages, alpha=alpha, seed=seed, max_requests=max_requests,
        )
        self.fidelity_by = fidelity_by
        if metric not in ("miss_ratio", "byte_miss_ratio"):
            raise ValueError(f"metric must be 'miss_ratio' or 'byte_miss_ratio', not {metric!r}")
        self.metric = metric
        self.sized = bool(sized)
        self._prepared = None
        self._trace = None
        self._reduced: dict[float, tuple[Any, int, float, float]] = {}  # fidelity -> trace_at(fidelity)
        self._baselines_by: dict[float, dict[str, dict[str, float]]] = {}
        if trace:
            self._load()  # a bad trace file is one clear error here, before any study is created

    # ------------------------------------------------------------------ the trace
    def _load(self):
        if self._prepared is None:
            from autosys_adapters.pagecache.simulator import PreparedTrace, capacity_of
            from autosys_adapters.pagecache.traces import generate, read_trace

            o = self._settings
            if o["trace"]:
                column: str | int = int(o["column"]) if str(o["column"]).isdigit() else o["column"]
                trace = read_trace(o["trace"], o["trace_format"], column)
            else:
                trace = generate(o["generator"], int(o["requests"]), int(o["pages"]), float(o["alpha"]), int(o["seed"]))
            if o["max_requests"]:
                trace = trace.head(int(o["max_requests"]))
            self._trace = trace
            self._prepared = PreparedTrace.of(trace)
            self.capacity = capacity_of(float(o["cache_size"]), self._prepared.n_obj)
            if self.sized:  # the capacity is in bytes from here on
                from autosys_adapters.pagecache.sized import byte_capacity, footprint_bytes

                p = self._prepared
                self.capacity = byte_capacity(float(o["cache_size"]), footprint_bytes(p.ids, p.sizes, p.n_obj))
        return self._prepared

    def setup(self) -> None:
        self._load()

    # ------------------------------------------------------------------ the contract
    def space(self) -> Space:
        return policy_space(SIZED_CHOICES if self.sized else CHOICES)

    @property
    def objective(self) -> Objective:
        return Objective(self.metric, "minimize", others=(("requests_per_second", "maximize"),))

    def fidelity(self) -> Fidelity:
        """The sampling rate of the pages (at least ~1,000 sampled), or the fraction of the trace replayed."""
        tr = self._load()
        if self.fidelity_by == "prefix":
            low = min(1.0, max(0.01, 1_000 / len(tr)))
            return Fidelity("trace_fraction", "trace_prefix", low, 1.0, unit="of the requests", integer=False)
        low = min(1.0, max(0.01, 1_000 / tr.n_obj))
        return Fidelity("sample_rate", "sampled_trace", low, 1.0, unit="of the pages", integer=False)

    def trace_at(self, fidelity: float | None = None) -> tuple[Any, int, float, float]:
        """(prepared trace, capacity in pages, request scale, byte scale) simulated at `fidelity` (None = full).

        The scales turn the reduced trace's miss ratios into estimates for the
        whole trace (1 for the full trace and for prefixes); reduced traces are cached.
        """
        from autosys_adapters.pagecache.simulator import PreparedTrace
        from autosys_adapters.pagecache.traces import SAMPLE_MODULUS, sample_threshold, spatial_sample

        value = self.resolve_fidelity(fidelity)
        full = self._load()
        if value >= 1.0:
            return full, self.capacity, 1.0, 1.0
        if value not in self._reduced:
            if self.fidelity_by == "prefix":
                prefix = PreparedTrace.of(self._trace.head(max(1, int(round(value * len(full))))))
                self._reduced[value] = (prefix, self.capacity, 1.0, 1.0)
            else:
                sample = PreparedTrace.of(spatial_sample(self._trace, value, seed=int(self._settings["seed"])))
                rate = sample_threshold(value) / SAMPLE_MODULUS
                # SHARDS_adj: divide misses by the requests a rate-R sample should hold, not the ones it
                # holds: the difference is mostly hot pages sampled or missed, which would be hits
                requests = len(sample) / (rate * len(full))
                nbytes = float(sample.sizes.sum()) / (rate * float(full.sizes.sum()))
                self._reduced[value] = (sample, max(1, int(round(self.capacity * rate))), requests, nbytes)
        return self._reduced[value]

    def _simulate(self, value: float, policy: str, knobs: dict[str, Any]) -> tuple[dict[str, float], Any]:
        from autosys_adapters.pagecache.simulator import simulate

        tr, capacity, requests, nbytes = self.trace_at(value)
        if self.fidelity_by == "sample" and value < 1.0:
            from autosys_adapters.pagecache.traces import SAMPLE_MODULUS, sample_threshold

            knobs = sampled_knobs(policy, knobs, sample_threshold(value) / SAMPLE_MODULUS)
        r = _simulate_sized(tr, capacity, policy, knobs) if self.sized else simulate(tr, capacity, policy, **knobs)
        return {
            "miss_ratio": min(1.0, r.miss_ratio * requests),
            "byte_miss_ratio": min(1.0, r.byte_miss_ratio * nbytes),
            "requests_per_second": r.requests_per_second,
        }, r

    def baselines(self, fidelity: float | None = None) -> dict[str, dict[str, float]]:
        """LRU and Belady's MIN on the same trace and cache size, at `fidelity` (computed once each)."""
        value = self.resolve_fidelity(fidelity)
        if value not in self._baselines_by:
            self._baselines_by[value] = {
                policy: {**self._simulate(value, policy, {})[0], "gap_closed": 0.0 if policy == "lru" else 1.0}
                for policy in ("lru", "belady")
            }
        return self._baselines_by[value]

    def monitors(self) -> list[Monitor]:
        """The host and this process (the simulator), and the host's own page cache (hits, misses, refaults)."""
        return [*host_monitors(), OSPageCacheMonitor()]

    def evaluate(self, config: Config, fidelity: float | None = None) -> Measurement:
        from autosys_adapters.pagecache.simulator import gap_closed, simulate

        value = self.resolve_fidelity(fidelity)
        config = self.space().validate(config)
        policy, knobs = simulator_args(config)
        tr, capacity, _, _ = self.trace_at(value)
        try:
            if self.sized:  # load the compiled kernel so the timing below is the run's
                _simulate_sized(_tiny_trace(), 2, policy, knobs)
            else:
                simulate(_tiny_trace(), 2, policy, **knobs)
            est, r = self._simulate(value, policy, knobs)
        except ValueError as exc:
            raise InvalidConfig(f"{policy}: {exc}") from exc
        base = self.baselines(value)
        lru, opt = base["lru"]["miss_ratio"], base["belady"]["miss_ratio"]
        metrics = {
            **est,
            "gap_closed": gap_closed(est[self.metric], base["lru"][self.metric], base["belady"][self.metric]),
            "lru_miss_ratio": lru,
            "belady_miss_ratio": opt,
            "lru_byte_miss_ratio": base["lru"]["byte_miss_ratio"],
            "belady_byte_miss_ratio": base["belady"]["byte_miss_ratio"],
        }
        info = {"policy": policy, "knobs": knobs, "capacity_pages": capacity, "footprint_pages": tr.n_obj,
                "capacity_unit": "bytes" if self.sized else "pages",
                "requests": len(tr), "trace": tr.name, "seconds": r.seconds}
        return Measurement(metrics, {"seconds": [r.seconds]}, stamp(info, self.fidelity(), value, len(tr)))
