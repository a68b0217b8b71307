"""Demo (b): the agent adapts an application page cache's replacement policy online.

The access pattern shifts through phases — zipf popularity (frequency wins),
a loop larger than the cache (MRU wins, LRU gets nothing), a drifting hot set
(recency wins), zipf again. The cache calls the agent every `window` requests
(the callback-driven form: the running system calls the agent). We compare
hit ratio over time with the agent against every fixed policy, and, per phase,
the agent after it adapted against that phase's best fixed policy.

    python experiments/agent_page_cache.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autosys_adapters.pagecache.app import POLICIES, AdaptiveCache, PageCacheApp, ShadowPolicy  # noqa: E402
from autosys_adapters.pagecache import traces  # noqa: E402
from autosys.online.agent import Agent, ChangeDetector, Guardrails  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def drifting_hot_set(n: int, hot: int, drift_every: int, seed: int, base: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    starts = base + np.arange(n) // drift_every
    return starts + rng.integers(0, hot, size=n)


def make_phases(per_phase: int, seed: int) -> list[tuple[str, np.ndarray]]:
    return [
        ("zipf", traces.zipf(per_phase, 20_000, alpha=0.9, seed=seed).ids),
        ("loop", traces.loop(per_phase, loop_pages=1_500).ids + 100_000),
        ("drifting hot set", drifting_hot_set(per_phase, hot=700, drift_every=40, seed=seed, base=200_000)),
        ("zipf again", traces.zipf(per_phase, 20_000, alpha=0.9, seed=seed + 1).ids + 300_000),
    ]


def run_fixed(policy: str, phases, capacity: int, window: int) -> list[dict]:
    cache = AdaptiveCache(capacity, policy)
    rows = []
    for index, (name, pages) in enumerate(phases):
        for start in range(0, len(pages), window):
            for page in pages[start:start + window].tolist():
                cache.access(page)
            rows.append({"phase": index, "hit_ratio": cache.window_reading()["hit_ratio"]})
    return rows


def run_agent(phases, capacity: int, window: int, seed: int):
    app = PageCacheApp(capacity)
    policy = ShadowPolicy(app.cache)
    agent = Agent(app, policy, guardrails=Guardrails(change_budget=1000, noise_sigmas=2.0, min_relative_gain=0.02, settle_windows=1),
                  detector=ChangeDetector(threshold=0.1, z=4.0), context_features=["new_page_fraction", "top1pct_fraction"],
                  baseline_windows=2, explore_every=5)
    rows = []
    for index, (name, pages) in enumerate(phases):
        for start in range(0, len(pages), window):
            for page in pages[start:start + window].tolist():
                app.cache.access(page)
            decision = agent.step()  # the cache calls the agent at the end of each window
            rows.append({"phase": index, "hit_ratio": decision.value, "policy": app.cache.policy,
                         "action": decision.action, "reason": decision.reason})
    return rows, agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--capacity", type=int, default=1_000)
    parser.add_argument("--window", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    per_phase = 60_000 if args.quick else 200_000
    phases = make_phases(per_phase, args.seed)

    timelines = {p: pd.DataFrame(run_fixed(p, phases, args.capacity, args.window)) for p in POLICIES}
    agent_rows, agent = run_agent(phases, args.capacity, args.window, args.seed)
    timelines["agent"] = pd.DataFrame(agent_rows)

    overall = {name: tl["hit_ratio"].mean() for name, tl in timelines.items()}
    best_fixed = max(POLICIES, key=lambda p: overall[p])
    rows = []
    for index, (name, _) in enumerate(phases):
        per = {p: timelines[p][timelines[p]["phase"] == index]["hit_ratio"] for p in timelines}
        agent_phase = timelines["agent"][timelines["agent"]["phase"] == index]
        # "after adapting": from the end of the first round of exploration in this phase to the phase's end
        done = agent_phase.index[agent_phase["reason"].str.startswith("done exploring")]
        settled_from = done.min() if len(done) else agent_phase.index.max()
        settled = agent_phase.loc[settled_from:]
        settled_windows = settled.index - agent_phase.index.min()
        phase_best = max(POLICIES, key=lambda p: per[p].mean())
        best_after = per[phase_best].iloc[settled_windows].mean() if len(settled) else float("nan")
        agent_after = settled["hit_ratio"].mean() if len(settled) else float("nan")
        rows.append({
            "phase": name,
            **{p: round(per[p].mean(), 4) for p in POLICIES},
            "agent": round(per["agent"].mean(), 4),
            "phase_best": phase_best,
            "agent_policy_at_end": agent_phase["policy"].iloc[-1],
            "windows_to_adapt": int(settled_from - agent_phase.index.min()),
            "agent_after_adapting_vs_best": round(agent_after / best_after, 3) if best_after else float("nan"),
        })
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print()
    print("whole run, mean hit ratio: " + ", ".join(f"{k}={v:.4f}" for k, v in overall.items()))
    print(f"agent vs best single fixed policy ({best_fixed}): {overall['agent'] / overall[best_fixed]:.3f}x; "
          f"decisions: {agent.counts()}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "agent_page_cache.csv", index=False)
    plot(timelines, phases, args.window, RESULTS / "agent_page_cache.png")
    print(f"wrote {RESULTS / 'agent_page_cache.csv'} and .png")


def plot(timelines, phases, window, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for name, tl in timelines.items():
        style = {"lw": 2.2, "color": "black"} if name == "agent" else {"lw": 1, "alpha": 0.7}
        ax.plot(np.arange(len(tl)) * window / 1000, tl["hit_ratio"], label=name, **style)
    position = 0
    for name, pages in phases:
        ax.axvline(position / 1000, color="grey", lw=0.5)
        ax.text(position / 1000 + 2, 0.98, name, fontsize=8, va="top")
        position += len(pages)
    ax.set_ylim(0, 1)
    ax.set_xlabel("thousands of requests")
    ax.set_ylabel("hit ratio per window")
    ax.set_title("page cache: agent-adapted policy vs fixed policies")
    ax.legend(fontsize=8, ncol=5, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
