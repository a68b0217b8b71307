"""Page replacement as a tuning problem: choose a policy and its knobs for a trace.

`PagePolicySystem(trace="pages.oracleGeneral", cache_size=0.1)` simulates each
config on the trace (a file, or a seeded synthetic trace when none is given)
and reports the miss ratio (minimized), the byte miss ratio and the simulation
speed. LRU and Belady's MIN on the same trace are always reported alongside,
with the share of the LRU-to-Belady gap each config closes.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from autosys.core.space import Bool, Categorical, Condition, Config, Float, Int, InvalidConfig, Space
from autosys.core.system import Measurement, Objective, System, SystemUnavailable

#: policies the tuner may pick (Belady is the offline bound, never a choice)
CHOICES = ("lru", "fifo", "clock", "lfu", "arc", "2q", "s3fifo", "sieve", "tinylfu", "lecar", "lrb")
LECAR_EXPERTS = ("lru,lfu", "lru,lfu,fifo", "lru,lfu,mru", "lru,lfu,fifo,mru", "lru,mru,fifo")


def _when(policy: str) -> Condition:
    return Condition("policy", (policy,))


def policy_space(choices: tuple[str, ...] = CHOICES) -> Space:
    """The policy choice and each policy's knobs, active only under that policy."""
    return Space(
        [
            Categorical("policy", choices, default="lru"),
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
            Int("lrb_sample", 8, 128, log=True, default=32, condition=_when("lrb")),
            Int("lrb_retrain", 5_000, 100_000, log=True, default=20_000, condition=_when("lrb")),
            Int("lrb_trees", 10, 100, log=True, default=30, condition=_when("lrb")),
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
    "lrb": {"lrb_sample": "sample", "lrb_retrain": "retrain", "lrb_trees": "trees"},
}


def simulator_args(config: Config) -> tuple[str, dict[str, Any]]:
    """(policy, simulator keywords) for a validated config."""
    policy = config["policy"]
    knobs = {kw: config[key] for key, kw in _KNOBS.get(policy, {}).items() if key in config}
    if policy == "lecar" and "experts" in knobs:
        knobs["experts"] = tuple(knobs["experts"].split(","))
    return policy, knobs


def _tiny_trace():
    from adapters.pagecache.simulator import PreparedTrace
    from adapters.pagecache.traces import Trace

    return PreparedTrace.of(Trace([0, 1, 2, 0, 3, 1, 4, 0, 2, 5, 1, 0]))


class PagePolicySystem(System):
    """A page cache simulated over a trace; the tuner picks the replacement policy and its knobs."""

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
    ):
        if not cache_size > 0:
            raise ValueError(f"cache_size must be positive (a fraction < 1 of the footprint, or pages), got {cache_size}")
        if importlib.util.find_spec("numba") is None:  # say so now, not as an ImportError in the first trial
            raise SystemUnavailable("the page-policy simulator compiles its kernels with numba: pip install 'autosys[compiled]'")
        self._settings = dict(
            trace=trace, cache_size=cache_size, trace_format=trace_format, column=column, generator=generator,
            requests=requests, pages=pages, alpha=alpha, seed=seed, max_requests=max_requests,
        )
        self._prepared = None
        self._baselines: dict[str, dict[str, float]] | None = None
        if trace:
            self._load()  # a bad trace file is one clear error here, before any study is created

    # ------------------------------------------------------------------ the trace
    def _load(self):
        if self._prepared is None:
            from adapters.pagecache.simulator import PreparedTrace, capacity_of
            from adapters.pagecache.traces import generate, read_trace

            o = self._settings
            if o["trace"]:
                column: str | int = int(o["column"]) if str(o["column"]).isdigit() else o["column"]
                trace = read_trace(o["trace"], o["trace_format"], column)
            else:
                trace = generate(o["generator"], int(o["requests"]), int(o["pages"]), float(o["alpha"]), int(o["seed"]))
            if o["max_requests"]:
                trace = trace.head(int(o["max_requests"]))
            self._prepared = PreparedTrace.of(trace)
            self.capacity = capacity_of(float(o["cache_size"]), self._prepared.n_obj)
        return self._prepared

    def setup(self) -> None:
        self._load()

    # ------------------------------------------------------------------ the contract
    def space(self) -> Space:
        return policy_space()

    @property
    def objective(self) -> Objective:
        return Objective("miss_ratio", "minimize", others=(("requests_per_second", "maximize"),))

    def baselines(self) -> dict[str, dict[str, float]]:
        """LRU and Belady's MIN on the same trace and cache size (computed once)."""
        if self._baselines is None:
            from adapters.pagecache.simulator import simulate

            tr = self._load()
            self._baselines = {}
            for policy in ("lru", "belady"):
                r = simulate(tr, self.capacity, policy)
                self._baselines[policy] = {
                    "miss_ratio": r.miss_ratio,
                    "byte_miss_ratio": r.byte_miss_ratio,
                    "requests_per_second": r.requests_per_second,
                    "gap_closed": 0.0 if policy == "lru" else 1.0,
                }
        return self._baselines

    def evaluate(self, config: Config) -> Measurement:
        from adapters.pagecache.simulator import gap_closed, simulate

        config = self.space().validate(config)
        policy, knobs = simulator_args(config)
        tr = self._load()
        try:
            simulate(_tiny_trace(), 2, policy, **knobs)  # load the compiled kernel so the timing below is the run's
            r = simulate(tr, self.capacity, policy, **knobs)
        except ValueError as exc:
            raise InvalidConfig(f"{policy}: {exc}") from exc
        base = self.baselines()
        lru, opt = base["lru"]["miss_ratio"], base["belady"]["miss_ratio"]
        metrics = {
            "miss_ratio": r.miss_ratio,
            "byte_miss_ratio": r.byte_miss_ratio,
            "requests_per_second": r.requests_per_second,
            "gap_closed": gap_closed(r.miss_ratio, lru, opt),
            "lru_miss_ratio": lru,
            "belady_miss_ratio": opt,
        }
        info = {"policy": policy, "knobs": knobs, "capacity_pages": self.capacity, "footprint_pages": tr.n_obj,
                "requests": len(tr), "trace": tr.name, "seconds": r.seconds}
        return Measurement(metrics, {"seconds": [r.seconds]}, info)
