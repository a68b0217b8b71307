"""The agent that predicts before it tries (SafePolicy + a knowledge base), side by side with static configs.

Demo 1, the live SQLite key-value service (phases read-heavy, write-heavy,
scan-heavy, read-heavy). Short offline studies, one per phase mix, are added
to a fresh knowledge base (their workload signature is the op mix the trial
monitors saw). The top configs of every study are then measured on every
phase (a cross-evaluation matrix, the confirmation runs), which gives each
phase's best static config and the best single static config for the whole
run ("static offline"). The agent's prior is the knowledge base's studies
plus these confirmation runs (one source per phase mix). Then five runs go side by side on fresh copies of one
database, one client thread each, the same seeded operations, so load from elsewhere hits all five alike:
  static default            - SQLite's defaults all along
  static offline            - the config tuned offline for the whole run
  static offline (replica)  - the same config again: how far two identical arms drift apart in one run (the noise floor)
  agent (tuner)             - the old agent: random TunerPolicy, explores blind
  agent (safe+kb)           - SafePolicy with the knowledge base's studies as its prior
The host's load average is printed before and after the side-by-side run.

Demo 2, an application page cache whose phases need different eviction
policies (a hot set under a one-time stream: LFU; a drifting hot set: LRU;
a loop larger than the cache: random). Offline "studies" measure every
policy on traces of each phase (other seeds than the live run), which shows
each phase's best static policy; the live run replays the phases through every
static policy, the old agent and the agent with the prior. The cache calls
the agents every `--cache-window` requests (windows run on across phases:
nothing tells the cache or the agents where a phase starts), and at once when
its per-request change tests (a CUSUM on its miss rate and one on requests
for pages not seen recently, `autosys.online.change`) alarm; the agent then
runs its policy's safe fallback (the default here: LFU or random are known to
fall far below it on some past workload) until the new workload settles, so
a policy tuned for the last phase never serves a full window of the next
(`--no-alarms`: window-level change tests only). The agent
minimizes the miss ratio (a ratio of miss ratios is scale-free; a hit ratio
of 0, which a loop gives LRU, is not); the table counts hits. `--cache-sequence`
reorders the phases (hot, drift, loop, hot2), `--cache-window` sets the agent's window,
and `--cache-sweep` runs the cache demo over several phase orders and seeds.

Both demos print each arm's operations (hits) per phase as a ratio to the
default's in the same phase ("per phase vs default"), so a phase where an
arm falls below the default shows; the CSV has these as `phaseN_vs_default`.

    nice -n 10 python experiments/agent_safe.py            # 30 s phases, 150k-request cache phases
    nice -n 10 python experiments/agent_safe.py --quick    # 8 s phases, 60k-request cache phases
    nice -n 10 python experiments/agent_safe.py --demo cache --seed 1 --tag _seed1   # results with a suffix
    nice -n 10 python experiments/agent_safe.py --cache-sweep                        # 5 phase orders x 2 seeds
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autosys_adapters.pagecache import traces  # noqa: E402
from autosys_adapters.pagecache.app import POLICIES, AdaptiveCache, CacheMonitor, PageCacheApp  # noqa: E402
from autosys_adapters.sqlite.service import PHASES, SQLiteService  # noqa: E402
from autosys.core.space import config_key  # noqa: E402
from autosys.core.system import Objective  # noqa: E402
from autosys.learn.host import host_fingerprint  # noqa: E402
from autosys.learn.knowledge import entry_from_study, open_knowledge_base  # noqa: E402
from autosys.online.agent import Agent, ChangeDetector, Guardrails, TunerPolicy  # noqa: E402
from autosys.online.change import RateJumpTest  # noqa: E402
from autosys.online.safe_policy import PriorSource, SafePolicy, prior_from_knowledge_base  # noqa: E402
from autosys.run.study import Study  # noqa: E402
from agent_kv_service import SEQUENCE, drive, fresh_service  # noqa: E402  (the demo next door: same phases, same driver)

RESULTS = Path(__file__).resolve().parent / "results"


# ============================================================================ demo 1: the live SQLite service


def offline_studies(base: Path, work: Path, kb_path: Path, budget: int, seconds: float, seed: int) -> dict[str, list[dict]]:
    """One short study per phase mix, each added to the knowledge base; returns each study's configs, best first."""
    host = host_fingerprint(work).to_json()
    tops: dict[str, list[dict]] = {}
    with open_knowledge_base(kb_path) as kb:
        for phase in PHASES:
            service = fresh_service(base, work, f"offline-{phase}", workload=phase, seconds=seconds)
            directory = work / f"study-{phase}"
            study = Study.create(directory, service, tuner="random", budget=budget, seed=seed).run()
            trials = study.trials()
            entry = entry_from_study(study.spec, trials, host=host, name=f"offline-{phase}", origin=str(directory))
            kb.add(entry)
            tops[phase] = [t.config for t in entry.ranked()]
            study.close()
            service.teardown()
            print(f"  {phase}: {len(trials)} trials, best {entry.best_value:.0f} ops/s vs default {entry.default_value:.0f}; "
                  f"signature monitors: {sorted(k for k in entry.signature.get('monitors', {}) if k.endswith('_fraction'))}",
                  flush=True)
    return tops


def cross_evaluate(base: Path, work: Path, configs: list[dict], seconds: float, repeats: int, seed: int) -> pd.DataFrame:
    """Each config's throughput on each phase mix (median of `repeats`, interleaved)."""
    services = {phase: fresh_service(base, work, f"xeval-{phase}", workload=phase, seconds=seconds, seed=seed) for phase in PHASES}
    values: dict[tuple[int, str], list[float]] = {}
    order = [(i, p) for i in range(len(configs)) for p in PHASES]
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        for k in rng.permutation(len(order)):
            i, phase = order[k]
            values.setdefault((i, phase), []).append(services[phase].evaluate(configs[i]).metrics["throughput"])
    for service in services.values():
        service.teardown()
    return pd.DataFrame({phase: [float(np.median(values[(i, phase)])) for i in range(len(configs))] for phase in PHASES})


def demo_kv(args, work: Path) -> dict:
    phase_seconds = args.phase_seconds or (8.0 if args.quick else 30.0)
    base_service = SQLiteService(path=str(work / "base.db"))
    base_service.setup()
    base_service.teardown()
    base = work / "base.db"
    kb_path = work / "knowledge.db"

    budget = 8 if args.quick else 14
    print(f"[kv] offline studies ({budget} trials each) per phase mix, added to the knowledge base {kb_path.name} ...", flush=True)
    tops = offline_studies(base, work, kb_path, budget, 0.4 if args.quick else 0.6, args.seed)
    space = SQLiteService().space().safe()
    candidates = [space.default()]
    for phase in PHASES:
        for config in tops[phase][:2]:
            if config_key(config) not in {config_key(c) for c in candidates}:
                candidates.append(config)
    print(f"[kv] cross-evaluating {len(candidates)} configs (default + each study's top 2) on every phase mix ...", flush=True)
    matrix = cross_evaluate(base, work, candidates, 0.4 if args.quick else 0.6, 2, args.seed)
    whole_run = matrix[SEQUENCE].sum(axis=1)  # equal phase lengths: whole-run ops are proportional to this
    offline_index = int(whole_run.idxmax())
    offline = candidates[offline_index]
    phase_best = {phase: int(matrix[phase].idxmax()) for phase in PHASES}
    print(matrix.round(0).assign(whole_run=whole_run.round(0)).to_string())
    print(f"[kv] each phase's best static config: {phase_best}; the whole run's best single static config: #{offline_index} {offline}")

    prior = prior_from_knowledge_base("sqlite-service", location=str(kb_path), metric="throughput", direction="maximize")
    print(f"[kv] prior from the knowledge base: {len(prior)} sources; contexts: "
          f"{[{k.split('.')[-1]: round(v, 2) for k, v in s.context.items() if k.endswith('_fraction')} for s in prior]}")
    # the confirmation runs (the cross-evaluation) are offline knowledge too: one more source per phase mix,
    # with that phase's study's signature as its context (what the static offline arm was chosen from)
    for phase in PHASES:
        context = next((s.context for s in prior if s.name.endswith(f"offline-{phase}")), {})
        prior.append(PriorSource(f"confirmation runs {phase}", [(c, float(matrix.loc[i, phase])) for i, c in enumerate(candidates)],
                                 context, reference=float(matrix.loc[0, phase])))

    names = ("static default", "static offline", "static offline (replica)", "agent (tuner)", "agent (safe+kb)")
    services = {name: fresh_service(base, work, name.replace(" ", "-").replace("(", "").replace(")", "").replace("+", "")) for name in names}
    services["static offline"].apply(offline)
    services["static offline (replica)"].apply(offline)
    guard = dict(change_budget=60, noise_sigmas=2.0, settle_windows=1)  # a new journal mode or cache warms up for a window
    old = Agent(services["agent (tuner)"], TunerPolicy(services["agent (tuner)"].space().safe(), "maximize", tuner="random",
                                                       seed=args.seed, tries_per_regime=6),
                guardrails=Guardrails(**guard), window=args.window, explore_every=None)
    safe_policy = SafePolicy(services["agent (safe+kb)"].space().safe(), "maximize", prior, seed=args.seed, tries_per_regime=4)
    # operation fractions over a window of hundreds of operations or more are precise (binomial sd <= 0.03): one window
    # beyond the 0.15 threshold is a change, not noise, so it need not wait for a second to confirm it
    safe = Agent(services["agent (safe+kb)"], safe_policy, guardrails=Guardrails(**guard), window=args.window, explore_every=None,
                 detector=ChangeDetector(confirm=1))
    runs: dict[str, pd.DataFrame] = {}

    def client(name: str) -> None:
        runs[name] = drive(services[name], phase_seconds, args.seed)

    load_before = os.getloadavg()
    print(f"[kv] running {', '.join(names)} side by side, {len(SEQUENCE)} phases of {phase_seconds:g} s "
          f"(a shared 2-core host: load hits all five alike); load average {_load(load_before)} ...", flush=True)
    threads = [threading.Thread(target=client, args=(name,), name=name) for name in names]
    old.start()
    safe.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    old.stop()
    safe.stop()
    load_after = os.getloadavg()
    print(f"[kv] load average after the run: {_load(load_after)}", flush=True)
    for service in services.values():
        service.teardown()

    agents = {"agent (tuner)": old, "agent (safe+kb)": safe}
    rows = []
    for name, tl in runs.items():
        per_phase = tl.groupby("phase_index")["ops"].sum()
        counts = agents[name].counts() if name in agents else {}
        rows.append({"demo": "sqlite-service", "run": name, "total_ops": int(tl["ops"].sum()),
                     **{f"phase{i}_{SEQUENCE[i]}": int(per_phase.get(i, 0)) for i in range(len(SEQUENCE))},
                     "explorations": counts.get("explore", 0), "rollbacks": counts.get("rollback", 0)})
    table = pd.DataFrame(rows).set_index("run")
    table["vs_default"] = (table["total_ops"] / table.loc["static default", "total_ops"]).round(3)
    table["vs_offline"] = (table["total_ops"] / table.loc["static offline", "total_ops"]).round(3)
    phase_cols = [c for c in table.columns if c.startswith("phase")]
    ratios = per_phase_vs_default(table, phase_cols, "static default")
    table = table.join(ratios.add_suffix("_vs_default"))
    below = [c for c in phase_cols if table.loc["agent (safe+kb)", c] < table.loc["static default", c]]
    decisions = pd.DataFrame([{"agent": name, "window": d.window, "time": d.time, "action": d.action, "value": d.value,
                               "incumbent_value": d.incumbent_value, "reason": d.reason, "config": d.config}
                              for name, a in agents.items() for d in a.decisions])
    return {"table": table, "runs": runs, "phase_seconds": phase_seconds, "below_default": below, "decisions": decisions,
            "matrix": matrix.assign(config=[str(c) for c in candidates], whole_run=whole_run), "ratios": ratios,
            "load": (load_before, load_after)}


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load) + " (1 / 5 / 15 min)"


def per_phase_vs_default(table: pd.DataFrame, phase_cols: list[str], default: str) -> pd.DataFrame:
    """Each arm's operations (hits) in each phase over the default arm's in that phase, and the lowest of them."""
    values = table[phase_cols].astype(float)
    base = table.loc[default, phase_cols].astype(float)
    ratios = values.div(base.replace(0, np.nan), axis=1)
    # a phase where the default scores 0 (a loop larger than an LRU cache): inf above it, 1 level with it
    for column in phase_cols:
        if base[column] == 0:
            ratios[column] = np.where(values[column] > 0, np.inf, 1.0)
    ratios = ratios.round(3)
    ratios["min_phase"] = ratios.min(axis=1)
    return ratios


# ============================================================================ demo 2: the page cache


class MissRatioCache(PageCacheApp):
    """The page cache with its objective as the miss ratio to minimize (scale-free as a ratio, never 0 here)."""

    name = "page-cache-miss-ratio"

    @property
    def objective(self) -> Objective:
        return Objective("miss_ratio", "minimize")

    def monitors(self):
        return [MissMonitor(self.cache)]


class MissMonitor(CacheMonitor):
    def sample(self) -> dict[str, float]:
        reading = super().sample()
        reading["miss_ratio"] = 1.0 - reading["hit_ratio"] if math.isfinite(reading["hit_ratio"]) else math.nan
        return reading


def hot_stream(n: int, hot: int, p_hot: float, seed: int, base: int) -> np.ndarray:
    """A hot set hit `p_hot` of the time, else pages never seen again (LFU keeps the hot set, recency does not)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < p_hot, base + rng.integers(0, hot, n), base + 10**7 + np.arange(n))


def drifting_hot_set(n: int, hot: int, drift_every: int, seed: int, base: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return base + np.arange(n) // drift_every + rng.integers(0, hot, size=n)


#: the phase kinds a cache demo's sequence is made of (the prior holds offline runs of the first three)
CACHE_KINDS = ("hot", "drift", "loop", "hot2")
CACHE_SEQUENCE = "hot,drift,loop,hot2"


def cache_phases(per_phase: int, seed: int, sequence: str = CACHE_SEQUENCE) -> list[tuple[str, np.ndarray]]:
    """The phases named in `sequence` (comma-separated `CACHE_KINDS`), each on page ids of its own."""
    offset = 10**9 * (seed % 7 + 1)  # other page ids per seed; each phase 10**8 ids of its own: none reuses another's pages
    make = {
        "hot": lambda base: ("hot set + stream", hot_stream(per_phase, 700, 0.5, seed, base)),
        "drift": lambda base: ("drifting hot set", drifting_hot_set(per_phase, 700, 40, seed, base)),
        "loop": lambda base: ("loop > cache", traces.loop(per_phase, loop_pages=1_500).ids + base),
        "hot2": lambda base: ("hot set + stream again", hot_stream(per_phase, 900, 0.6, seed + 1, base)),
    }
    kinds = [k.strip() for k in sequence.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in make]
    if unknown:
        raise SystemExit(f"--cache-sequence: unknown phase kinds {unknown}; choose from {', '.join(CACHE_KINDS)}")
    return [make[kind](offset + index * 10**8) for index, kind in enumerate(kinds)]


FEATURES = ["new_page_fraction", "top1pct_fraction"]


def cache_prior(capacity: int, window: int, per_phase: int, seed: int) -> tuple[list[PriorSource], pd.DataFrame]:
    """Offline: every policy on each phase kind's own trace (another seed), and the phase's workload signature."""
    sources, rows = [], []
    for name, pages in cache_phases(per_phase, seed + 100, "hot,drift,loop"):
        app = PageCacheApp(capacity, pages=pages.tolist())
        miss = {p: 1.0 - app.evaluate({"policy": p}).metrics["hit_ratio"] for p in POLICIES}
        cache, feats = AdaptiveCache(capacity, "lru"), []
        for start in range(0, len(pages), window):
            for page in pages[start:start + window].tolist():
                cache.access(page)
            feats.append(cache.window_reading())
        context = {f"page-cache.{k}": float(np.mean([f[k] for f in feats])) for k in FEATURES}
        sources.append(PriorSource(f"offline {name}", [({"policy": p}, miss[p]) for p in POLICIES], context,
                                   reference=miss["lru"], direction="minimize"))
        rows.append({"phase kind": name, **{f"{p}_hit_ratio": round(1 - miss[p], 4) for p in POLICIES},
                     "best": min(miss, key=miss.get), **{k: round(v, 3) for k, v in context.items()}})
    return sources, pd.DataFrame(rows)


def _stream(phases):
    """Every request of the run in order, with its phase's index (the cache and the agent do not see the index)."""
    for index, (_, pages) in enumerate(phases):
        for page in pages.tolist():
            yield index, page


def run_static(policy: str, phases, capacity: int, window: int) -> list[dict]:
    """One policy all along; hits counted per request, in windows of `window` requests (rows: window, phase of its
    last request, hits, hits per phase)."""
    cache = AdaptiveCache(capacity, policy)
    rows, hits, per, n = [], 0, {}, 0
    for index, page in _stream(phases):
        hit = cache.access(page)
        hits += hit
        per[index] = per.get(index, 0) + hit
        n += 1
        if n == window:
            rows.append({"phase": index, "hits": hits, "requests": n, "policy": policy, "per_phase": per})
            hits, per, n = 0, {}, 0
    if n:
        rows.append({"phase": index, "hits": hits, "requests": n, "policy": policy, "per_phase": per})
    return rows


def run_cache_agent(policy_factory, phases, capacity: int, window: int, alarms: bool = True) -> tuple[list[dict], Agent]:
    """The cache calls the agent at the end of each window of `window` requests (windows run on across phases: the
    cache knows no phase), and, with `alarms`, at once when its per-request change test sees the miss rate jump
    (the window then ends early)."""
    app = MissRatioCache(capacity)
    if alarms:  # the cache tests each request: its miss rate (this policy's) and its novelty (the workload's)
        app.cache.change_test, app.cache.novelty_test = RateJumpTest(), RateJumpTest()
    agent = Agent(app, policy_factory(app), guardrails=Guardrails(change_budget=1000, noise_sigmas=2.0, min_relative_gain=0.02,
                                                                   settle_windows=1),
                  # a finer change test than the default: a loop and a drifting hot set differ by 0.025 in new-page fraction
                  detector=ChangeDetector(threshold=0.01, z=6.0, confirm=1), context_features=FEATURES, baseline_windows=1,
                  explore_every=None)
    rows, hits, per, n = [], 0, {}, 0
    for index, page in _stream(phases):
        hit = app.cache.access(page)
        hits += hit
        per[index] = per.get(index, 0) + hit
        n += 1
        if n == window or app.cache.alarm:
            policy = app.cache.policy  # the policy that served this window
            decision = agent.step()
            rows.append({"phase": index, "hits": hits, "requests": n, "policy": policy, "action": decision.action,
                         "per_phase": per})
            hits, per, n = 0, {}, 0
    if n:
        rows.append({"phase": index, "hits": hits, "requests": n, "policy": app.cache.policy, "action": "end", "per_phase": per})
    return rows, agent


def _per_phase(rows: list[dict]) -> dict[int, int]:
    out: dict[int, int] = {}
    for row in rows:
        for index, hits in row["per_phase"].items():
            out[index] = out.get(index, 0) + hits
    return out


def demo_cache(args) -> dict:
    per_phase = 60_000 if args.quick else 150_000
    capacity, window = 1_000, args.cache_window
    prior, offline = cache_prior(capacity, window, per_phase, args.seed)
    print("[cache] offline: each phase kind's hit ratio per policy (its best static policy differs by phase):")
    print(offline.to_string(index=False))
    phases = cache_phases(per_phase, args.seed, args.cache_sequence)
    raw = {f"static {p}": run_static(p, phases, capacity, window) for p in POLICIES}
    alarms = not args.no_alarms
    raw["agent (tuner)"], old = run_cache_agent(lambda app: TunerPolicy(app.space(), "minimize", tuner="random", seed=args.seed,
                                                                        tries_per_regime=3), phases, capacity, window, alarms)
    raw["agent (safe+kb)"], safe = run_cache_agent(lambda app: SafePolicy(app.space(), "minimize", prior, seed=args.seed,
                                                                          tries_per_regime=2, min_gain=0.02),
                                                   phases, capacity, window, alarms)
    timelines = {name: pd.DataFrame(r).drop(columns="per_phase") for name, r in raw.items()}
    agents = {"agent (tuner)": old, "agent (safe+kb)": safe}
    rows = []
    for name, r in raw.items():
        per = _per_phase(r)
        counts = agents[name].counts() if name in agents else {}
        rows.append({"demo": "page-cache", "run": name, "total_hits": int(sum(per.values())),
                     **{f"phase{i}_{phases[i][0]}": int(per.get(i, 0)) for i in range(len(phases))},
                     "explorations": counts.get("explore", 0), "rollbacks": counts.get("rollback", 0),
                     "fallbacks": counts.get("fallback", 0),
                     "alarms": sum(1 for d in agents[name].decisions if d.reason.startswith("a monitor's change test"))
                     if name in agents else 0})
    table = pd.DataFrame(rows).set_index("run")
    statics = [f"static {p}" for p in POLICIES]
    best_single = max(statics, key=lambda n: table.loc[n, "total_hits"])
    phase_cols = [c for c in table.columns if c.startswith("phase")]
    # each phase's best static policy, measured in this run (the per-phase oracle a single config cannot match)
    oracle = {c: max(table.loc[s, c] for s in statics) for c in phase_cols}
    table.loc["per-phase best static", phase_cols] = [oracle[c] for c in phase_cols]
    table.loc["per-phase best static", "total_hits"] = sum(oracle.values())
    table.loc["per-phase best static", "demo"] = "page-cache"
    table["vs_best_single_static"] = (table["total_hits"] / table.loc[best_single, "total_hits"]).round(3)
    table["vs_default"] = (table["total_hits"] / table.loc["static lru", "total_hits"]).round(3)
    ratios = per_phase_vs_default(table, phase_cols, "static lru")
    table = table.join(ratios.add_suffix("_vs_default"))
    below = [c for c in phase_cols if table.loc["agent (safe+kb)", c] < table.loc["static lru", c]]
    return {"table": table, "timelines": timelines, "phases": phases, "best_single": best_single, "below_default": below,
            "window": window, "offline": offline, "ratios": ratios}


#: phase orders the sweep runs: each kind first and last, LRU-best phases after LFU-, random- and LRU-best ones
SWEEP_SEQUENCES = ("hot,drift,loop,hot2", "drift,hot,loop,drift", "loop,hot,drift,hot2", "hot,loop,drift,hot2",
                   "drift,loop,hot,drift")


def cache_sweep(args) -> pd.DataFrame:
    """The cache demo over phase orders and seeds: the agent's ratios (a robustness check, not one lucky order)."""
    import contextlib
    import io

    rows = []
    for sequence in args.sweep_sequences.split(";"):
        for seed in [int(x) for x in args.sweep_seeds.split(",")]:
            run = argparse.Namespace(**{**vars(args), "cache_sequence": sequence, "seed": seed})
            with contextlib.redirect_stdout(io.StringIO()):
                result = demo_cache(run)
            t, ratios = result["table"], result["ratios"]
            phases = [c for c in ratios.columns if c != "min_phase"]
            rows.append({"sequence": sequence, "seed": seed, "best single static": result["best_single"],
                         "agent vs best single": t.loc["agent (safe+kb)", "vs_best_single_static"],
                         "per-phase oracle vs best single": t.loc["per-phase best static", "vs_best_single_static"],
                         "agent per phase vs default": " ".join(f"{ratios.loc['agent (safe+kb)', c]:.3f}" for c in phases),
                         "agent min phase vs default": ratios.loc["agent (safe+kb)", "min_phase"],
                         "agent phases below default (exact hits)": len(result["below_default"]),
                         "blind agent min phase vs default": ratios.loc["agent (tuner)", "min_phase"],
                         "explorations": int(t.loc["agent (safe+kb)", "explorations"]),
                         "rollbacks": int(t.loc["agent (safe+kb)", "rollbacks"]),
                         "fallbacks": int(t.loc["agent (safe+kb)", "fallbacks"]),
                         "alarms": int(t.loc["agent (safe+kb)", "alarms"])})
            print(f"  {sequence} seed {seed}: {rows[-1]['agent vs best single']:.3f}x best single static, per phase vs default "
                  f"{rows[-1]['agent per phase vs default']}", flush=True)
    return pd.DataFrame(rows)


# ============================================================================ output


def plot(kv: dict | None, cache: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (kv, cache) if p is not None]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 4 * len(panels)), squeeze=False)
    row = 0
    if kv is not None:
        ax = axes[row, 0]
        row += 1
        for name, tl in kv["runs"].items():
            style = {"lw": 2.0, "color": "black"} if name == "agent (safe+kb)" else {"lw": 1, "alpha": 0.8}
            ax.plot(tl["t"], tl["ops_per_s"].rolling(3, min_periods=1).mean(), label=name, **style)
        for i, phase in enumerate(SEQUENCE):
            ax.axvline(i * kv["phase_seconds"], color="grey", lw=0.5)
            ax.text(i * kv["phase_seconds"] + 0.3, 0.98, phase, fontsize=8, va="top", transform=ax.get_xaxis_transform())
        ax.set_yscale("log")
        ax.set_xlabel("seconds")
        ax.set_ylabel("operations / s (log)")
        ax.set_title("live SQLite service: agent with the knowledge base vs static configs and the blind agent")
        ax.legend(fontsize=8)
    if cache is not None:
        ax = axes[row, 0]
        for name, tl in cache["timelines"].items():
            style = {"lw": 2.0, "color": "black"} if name == "agent (safe+kb)" else {"lw": 1, "alpha": 0.7}
            ratio = tl["hits"].rolling(3, min_periods=1).sum() / tl["requests"].rolling(3, min_periods=1).sum()
            ax.plot(tl["requests"].cumsum() / 1000, ratio, label=name, **style)
        position = 0
        for name, pages in cache["phases"]:
            ax.axvline(position / 1000, color="grey", lw=0.5)
            ax.text(position / 1000 + 2, 0.98, name, fontsize=8, va="top", transform=ax.get_xaxis_transform())
            position += len(pages)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("thousands of requests")
        ax.set_ylabel("hit ratio per window")
        ax.set_title("page cache whose phases need different policies")
        ax.legend(fontsize=8, ncol=3, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--phase-seconds", type=float, default=None)
    parser.add_argument("--window", type=float, default=1.0, help="the agents' window in seconds (kv demo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demo", choices=("both", "kv", "cache"), default="both")
    parser.add_argument("--cache-sequence", default=CACHE_SEQUENCE,
                        help=f"the cache demo's phases, comma-separated from {', '.join(CACHE_KINDS)} (default %(default)s)")
    parser.add_argument("--cache-window", type=int, default=2_000, help="the cache agents' window in requests")
    parser.add_argument("--no-alarms", action="store_true",
                        help="the cache agents without the cache's per-request change test (window-level change tests only)")
    parser.add_argument("--tag", default="", help="a suffix for the result files (e.g. _seed1)")
    parser.add_argument("--cache-sweep", action="store_true",
                        help="only the cache demo, over --sweep-sequences x --sweep-seeds (writes agent_safe_cache_sweep.csv)")
    parser.add_argument("--sweep-sequences", default=";".join(SWEEP_SEQUENCES), help="semicolon-separated phase orders")
    parser.add_argument("--sweep-seeds", default="0,1")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = ("_quick" if args.quick else "") + args.tag
    if args.cache_sweep:
        print(f"[cache sweep] window {args.cache_window} requests, {'60k' if args.quick else '150k'} requests a phase", flush=True)
        sweep = cache_sweep(args)
        print(sweep.to_string(index=False))
        sweep.to_csv(RESULTS / f"agent_safe_cache_sweep{suffix}.csv", index=False)
        print(f"wrote {RESULTS / f'agent_safe_cache_sweep{suffix}.csv'}")
        return
    kv = cache = None
    tables = []
    if args.demo in ("both", "cache"):
        cache = demo_cache(args)
        t = cache["table"]
        ratio_cols = [c for c in t.columns if c.endswith("_vs_default") and c.startswith("phase")]
        print(f"\n[cache] hits per run and phase (sequence {args.cache_sequence}, window {args.cache_window} requests, seed {args.seed}):")
        print(t.drop(columns=["demo", *ratio_cols, "min_phase_vs_default"]).to_string())
        print("\n[cache] per phase vs default (static lru; a ratio below 1 is a phase below the default):")
        print(cache["ratios"].to_string())
        print(f"[cache] agent (safe+kb) vs best single static ({cache['best_single']}): {t.loc['agent (safe+kb)', 'vs_best_single_static']:.3f}x "
              f"(target >= 1.15); blind agent {t.loc['agent (tuner)', 'vs_best_single_static']:.3f}x; "
              f"phases below the default (lru): {cache['below_default'] or 'none'}\n", flush=True)
        tables.append(t.rename(columns={"total_hits": "total"}))
        cache["offline"].to_csv(RESULTS / f"agent_safe_cache_offline{suffix}.csv", index=False)
        cache["timelines"]["agent (safe+kb)"].to_csv(RESULTS / f"agent_safe_cache_decisions{suffix}.csv", index_label="window")
    if args.demo in ("both", "kv"):
        work = Path(tempfile.mkdtemp(prefix="autosys-agent-safe-", dir=str(RESULTS.parent)))
        try:
            kv = demo_kv(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        t = kv["table"]
        ratio_cols = [c for c in t.columns if c.endswith("_vs_default") and c.startswith("phase")]
        print(f"\n[kv] operations per run and phase (seed {args.seed}; load average before {_load(kv['load'][0])}, "
              f"after {_load(kv['load'][1])}):")
        print(t.drop(columns=["demo", *ratio_cols, "min_phase_vs_default"]).to_string())
        print("\n[kv] per phase vs default (a ratio below 1 is a phase below the default):")
        print(kv["ratios"].to_string())
        replica = t.loc["static offline (replica)", "vs_offline"]
        print(f"[kv] agent (safe+kb): {t.loc['agent (safe+kb)', 'vs_offline']:.3f}x the offline config (target >= 0.95; "
              f"its identical replica: {replica:.3f}x), {t.loc['agent (safe+kb)', 'vs_default']:.3f}x the default (target >= 3; "
              f"the offline config: {t.loc['static offline', 'vs_default']:.3f}x); blind agent "
              f"{t.loc['agent (tuner)', 'vs_offline']:.3f}x / {t.loc['agent (tuner)', 'vs_default']:.3f}x; "
              f"phases below the default: {kv['below_default'] or 'none'}")
        tables.append(t.rename(columns={"total_ops": "total"}))
        kv["decisions"].to_csv(RESULTS / f"agent_safe_kv_decisions{suffix}.csv", index=False)
        kv["matrix"].to_csv(RESULTS / f"agent_safe_kv_matrix{suffix}.csv", index=False)
    pd.concat(tables).to_csv(RESULTS / f"agent_safe{suffix}.csv")
    plot(kv, cache, RESULTS / f"agent_safe{suffix}.png")
    print(f"wrote {RESULTS / f'agent_safe{suffix}.csv'} and .png")


if __name__ == "__main__":
    main()
