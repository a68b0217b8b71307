"""How far the page-policy system's cheap fidelities are from the full trace.

For a zipf 0.8 trace and the scan + loop + hot-set mixture (200,000 requests
each, 5 seeds: each seed draws a new trace and a new hash for the sample), at
cache sizes of 1% and 10% of the footprint, every listed policy's miss ratio
at a lower fidelity is compared with the same policy's on the full trace:
SHARDS-style spatial sampling (the default fidelity: pages kept when
hash(id) mod P < T, cache scaled by the rate, misses divided by the requests
the sample should hold) and, for comparison, a trace prefix of the same size.
The rank agreement (Kendall tau between policies) says whether a lower rung
orders configs as the full trace does, which is what a scheduler needs.

    .venv/bin/python experiments/shards_sampling.py            # about a minute on 2 cores

Prints a table; writes experiments/results/shards_sampling.csv and .png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autosys_adapters.pagecache.system import PagePolicySystem  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
POLICIES = ("lru", "fifo", "clock", "lfu", "arc", "2q", "s3fifo", "sieve")
RATES = (0.01, 0.02, 0.05, 0.1, 0.25)


def measure(generator: str, cache: float, seed: int, by: str, requests: int, pages: int) -> list[dict]:
    system = PagePolicySystem(generator=generator, cache_size=cache, requests=requests, pages=pages, seed=seed,
                              fidelity_by=by)
    space = system.space()
    full = {p: system.evaluate(space.complete({"policy": p})).metrics["miss_ratio"] for p in POLICIES}
    rows = []
    for rate in RATES:
        if rate < system.fidelity().min:
            continue
        for policy in POLICIES:
            m = system.evaluate(space.complete({"policy": policy}), fidelity=rate)
            rows.append({
                "trace": generator, "cache": cache, "seed": seed, "fidelity_by": by, "rate": rate, "policy": policy,
                "full_miss_ratio": full[policy], "miss_ratio": m.metrics["miss_ratio"],
                "abs_error": abs(m.metrics["miss_ratio"] - full[policy]),
                "requests": m.info["fidelity"]["work"], "full_requests": requests,
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    from scipy.stats import kendalltau

    rows = []
    for generator in ("zipf", "scan_loop_hot"):
        for cache in (0.01, 0.1):
            for seed in range(args.seeds):
                for by in ("sample", "prefix"):
                    rows += measure(generator, cache, seed, by, args.requests, args.pages)
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / "shards_sampling.csv", index=False)

    def tau(group: pd.DataFrame) -> float:
        return float(kendalltau(group["miss_ratio"], group["full_miss_ratio"]).statistic)

    taus = frame.groupby(["trace", "cache", "fidelity_by", "rate", "seed"]).apply(tau, include_groups=False)
    table = frame.groupby(["trace", "cache", "fidelity_by", "rate"]).agg(
        mean_abs_error=("abs_error", "mean"), p90_abs_error=("abs_error", lambda e: float(np.quantile(e, 0.9))),
        max_abs_error=("abs_error", "max"), share_of_requests=("requests", lambda r: float(np.mean(r)) / args.requests),
    )
    table["kendall_tau"] = taus.groupby(["trace", "cache", "fidelity_by", "rate"]).median()
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(table.round(4).to_string())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, generator in zip(axes, ("zipf", "scan_loop_hot")):
        for (cache, by), part in table.reset_index().query("trace == @generator").groupby(["cache", "fidelity_by"]):
            ax.plot(part["rate"], part["mean_abs_error"], marker="o", label=f"{by}, cache {cache:.0%}")
        ax.set_xscale("log")
        ax.set_title(generator)
        ax.set_xlabel("fidelity (sampling rate / prefix fraction)")
    axes[0].set_ylabel("mean |miss ratio - full trace's|")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "shards_sampling.png", dpi=120)
    print(f"wrote {RESULTS / 'shards_sampling.csv'} and .png")


if __name__ == "__main__":
    main()
