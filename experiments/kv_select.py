"""Key-value engine selection: oracle vs tuner (30 trials) vs learned recommender (no trials).

For each workload this runs, as stored autosys studies:
  * the oracle: one study per engine with the engine pinned (its knobs tuned);
  * the tuners: random search and forest-based BO (bo-rf) over the whole
    conditional space, and `cash` (a bandit over the engines with a bo-rf
    per engine, autosys/tuners/conditional.py), 30 trials each (--tuners), the
    last 5 of them re-measuring the study's leading configs (--confirm; a
    tuner's answer is the config with the best median, never one that broke
    the memory cap in any run: autosys/selection.py);
  * a short study seeded with the recommender's top configs (10 trials).
The training rows for the recommender are read back from those stored studies
(`rows_from_studies`, the same code as experiments/kv_training_data.py), plus
a corpus of random workloads (`sample_workloads`, every engine studied on
each; --corpus, kept in <out>/kv_studies_corpus between runs). The
recommender is evaluated leave-one-out: for each workload it is fitted on the
other workloads' rows (every variant of the same mix held out too:
ycsb-b@mem3 is not trained on ycsb-b) and the corpus, and picks a config from
the workload's features, with no trial on it. The table also shows the pick of
a recommender trained on the other workloads alone, without the corpus.

Noise: throughput is counted per second of wall time less the time the
thread waited for a CPU taken by other jobs (Linux schedstat; see
adapters/kv/replay.py), which cut the spread of repeated runs from ~25% to
~5-15% on the shared 2-core hosts. The best of many noisy trials is still
biased upward, so the final numbers
re-measure the candidates (each engine's best, the tuner's best, the
recommendation, the seeded study's best) in 9 interleaved rounds on fresh stores
and take medians. The oracle is the best re-measured feasible candidate, and
every other column is a throughput ratio to it, measured in the same run.

    .venv/bin/python experiments/kv_select.py            # 13 workloads, ~10 min
    .venv/bin/python experiments/kv_select.py --quick    # 8 workloads, smaller oracle budgets
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from adapters.kv.recommender import KVRecommender, rows_from_studies  # noqa: E402
from adapters.kv.training import ENGINE_BUDGETS, SMALL_ENGINE_BUDGETS, build_corpus, study_each_engine  # noqa: E402
from adapters.kv.system import KVSelect  # noqa: E402
from autosys.run.selection import best_trial  # noqa: E402
from autosys.run.study import Study, open_study  # noqa: E402
from autosys.core.system import Objective  # noqa: E402

# label -> KVSelect options (beyond the common ones)
WORKLOADS: dict[str, dict] = {
    "ycsb-a": {"workload": "ycsb-a"},
    "ycsb-b": {"workload": "ycsb-b"},
    "ycsb-c": {"workload": "ycsb-c"},
    "ycsb-d": {"workload": "ycsb-d"},
    "ycsb-e": {"workload": "ycsb-e"},
    "ycsb-f": {"workload": "ycsb-f"},
    "scan-heavy": {"workload": "scan-heavy"},
    "insert-heavy": {"workload": "insert-heavy"},
    "absent-reads": {"workload": "absent-reads"},
    "delete-heavy": {"workload": "delete-heavy"},
    "ycsb-b@mem3": {"workload": "ycsb-b", "memory_cap_mb": 3.0},
    "scan-heavy@mem3": {"workload": "scan-heavy", "memory_cap_mb": 3.0},
    "insert-heavy@mem4": {"workload": "insert-heavy", "memory_cap_mb": 4.0},
}
QUICK = ["ycsb-a", "ycsb-c", "ycsb-e", "scan-heavy", "insert-heavy", "absent-reads", "ycsb-b@mem3", "scan-heavy@mem3"]


def make_system(label: str, args) -> KVSelect:
    # isolate: every run in a forked child (this process never opens an engine itself)
    return KVSelect(**WORKLOADS[label], seconds=args.seconds, seed=args.seed, isolate=True)


def run_studies(label: str, root: Path, args) -> None:
    """The oracle's per-engine studies and the tuner's study for one workload."""
    budgets = SMALL_ENGINE_BUDGETS if args.quick else ENGINE_BUDGETS
    study_each_engine(root / label, lambda: make_system(label, args), budgets, args.seed)
    for tuner in args.tuners:
        path = root / label / f"tuner-{tuner}"
        if (path / "study.sqlite").exists():  # --reuse: finish what is there
            Study.resume(path, system=make_system(label, args)).run().close()
            continue
        Study.create(path, make_system(label, args), tuner=tuner, budget=args.budget, seed=args.seed,
                     confirm=args.confirm).run().close()


def best_configs(rows: pd.DataFrame, label: str, root: Path) -> dict[str, dict]:
    """Per source the config to re-measure: a tuner's own answer (`Study.best`: the median of a
    config's runs, its confirmation runs included), else the best feasible stored trial (the
    oracle's per-engine studies, the seeded study: the strongest candidates for the oracle)."""
    from adapters.kv.recommender import configs_of

    out = {}
    mine = rows[rows["label"] == label]
    for source, group in mine.groupby("source"):
        if source.startswith("tuner-"):
            storage, spec = open_study(root / label / source)
            try:
                answer = best_trial(storage.trials(), Objective.from_json(spec["objective"]))
            finally:
                storage.close()
            if answer is not None:
                out[source] = answer.config
            continue
        feasible = group[group["feasible"]]
        if feasible.empty:
            continue
        best = feasible.loc[[feasible["throughput"].idxmax()]]
        out[source] = configs_of(best)[0]
    return out


def remeasure(label: str, candidates: dict[str, dict], args) -> dict[str, dict]:
    """Interleaved rounds on fresh stores; median throughput, worst-case memory and disk."""
    system = make_system(label, args)
    system.setup()
    space = system.space()
    # one config is measured once (validate first: a stored 200.0 and a recommended 200 are one config)
    candidates = {name: space.validate(c) for name, c in candidates.items()}
    unique = {space.config_key(c): c for c in candidates.values()}
    samples: dict[str, list] = {key: [] for key in unique}
    order = list(unique.items())
    try:
        system.evaluate({"engine": "dict"})  # warm-up: the first run of a process is slow
        for round_ in range(args.rounds):
            # rotate the order each round, so no config always follows the same one (RocksDB's
            # background threads, a freed block cache) or always runs at the end of a round
            shift = round_ % len(order)
            for key, config in order[shift:] + order[:shift]:
                try:
                    samples[key].append(system.evaluate(config).metrics)
                except Exception as exc:  # a recommended config may fail for real: record it
                    samples[key].append({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        system.teardown()
    out = {}
    limits = system.objective.limits
    for name, config in candidates.items():
        runs = samples[space.config_key(config)]
        ok = [r for r in runs if "error" not in r]
        if not ok:
            out[name] = {"throughput": 0.0, "feasible": False, "error": runs[0]["error"]}
            continue
        worst = {"memory_bytes": max(r["memory_bytes"] for r in ok), "disk_bytes": max(r["disk_bytes"] for r in ok)}
        feasible = all(limit.violated_by({**ok[0], **worst}) is None for limit in limits)
        out[name] = {"throughput": statistics.median(r["throughput"] for r in ok), "feasible": feasible, **worst}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 workloads, smaller oracle budgets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=30, help="trials of the tuner's study (default's included)")
    parser.add_argument("--tuners", default="random,bo-rf,cash", help="comma-separated tuners of the 30-trial studies")
    parser.add_argument("--seconds", type=float, default=0.5, help="cap on each timed replay")
    parser.add_argument("--rounds", type=int, default=None, help="re-measurement rounds (default 9: steadier medians than 5, whose run-to-run shifts were near the 10%% target)")
    parser.add_argument("--confirm", type=int, default=5,
                        help="of each tuner's budget, trials spent re-measuring its leading configs (0: none)")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    parser.add_argument("--reuse", action="store_true", help="reuse stored studies from an earlier run")
    parser.add_argument("--corpus", type=int, default=24,
                        help="random training workloads (every engine studied on each) added to the recommender's data")
    parser.add_argument("--corpus-dir", type=Path, default=None,
                        help="where the corpus studies live (default: <out>/kv_studies_corpus; kept between runs)")
    args = parser.parse_args()
    args.rounds = args.rounds or 9
    args.tuners = [t.strip() for t in args.tuners.split(",") if t.strip()]
    _register_tuners(args.tuners)
    labels = QUICK if args.quick else list(WORKLOADS)
    args.out.mkdir(parents=True, exist_ok=True)
    root = args.out / ("kv_studies_quick" if args.quick else "kv_studies")
    tag = "kv_select_quick" if args.quick else "kv_select"
    start = time.time()

    # 1. studies: oracle per engine and the tuner
    if not args.reuse:
        shutil.rmtree(root, ignore_errors=True)
    for i, label in enumerate(labels):
        if args.reuse and (root / label / f"tuner-{args.tuners[-1]}").exists():
            continue
        t0 = time.time()
        run_studies(label, root, args)
        print(f"[{i + 1}/{len(labels)}] {label}: studies done in {time.time() - t0:.0f}s", flush=True)

    # 2. training rows, read back from the stored studies; the random corpus is never an evaluation workload
    corpus_dir = args.corpus_dir or args.out / "kv_studies_corpus"
    corpus = pd.DataFrame()
    if args.corpus:
        t0 = time.time()
        build_corpus(corpus_dir, args.corpus, seed=args.seed, seconds=args.seconds, isolate=True,
                     progress=lambda line: print("  " + line, flush=True))
        corpus = rows_from_studies(corpus_dir)
        corpus = corpus[corpus["workload"].isin([f"corpus-{i:02d}" for i in range(args.corpus)])]
        corpus["label"], corpus["source"] = corpus["workload"], [Path(s).name for s in corpus["study"]]
        print(f"corpus: {len(corpus)} rows from {corpus['workload'].nunique()} random workloads "
              f"({time.time() - t0:.0f}s)", flush=True)
    rows = rows_from_studies(root)
    rows["label"] = [Path(s).parent.name for s in rows["study"]]
    rows["source"] = [Path(s).name for s in rows["study"]]
    rows.to_csv(args.out / f"{tag}_training.csv", index=False)

    # 3. leave-one-out recommendations, and a short study seeded by them
    recs: dict[str, dict] = {}
    recs_presets: dict[str, dict] = {}
    for label in labels:
        # strict leave-one-out: hold out every variant of the workload (e.g. ycsb-b and ycsb-b@mem3)
        base = label.split("@")[0]
        train = rows[(rows["label"].str.split("@").str[0] != base) & (rows["source"] != "seeded")]
        system = make_system(label, args)
        presets_only = KVRecommender(random_state=args.seed).fit(train)
        recs_presets[label] = presets_only.recommend(system.kv_workload, system.space(), k=1, seed=args.seed)[0]
        model = KVRecommender(random_state=args.seed).fit(pd.concat([train, corpus], ignore_index=True))
        top = model.recommend(system.kv_workload, system.space(), k=3, seed=args.seed)
        recs[label] = top[0]
        seeded_dir = root / label / "seeded"
        if not (args.reuse and seeded_dir.exists()):
            shutil.rmtree(seeded_dir, ignore_errors=True)
            study = Study.create(seeded_dir, system, tuner="random", budget=10, seed=args.seed, evaluate_default=False)
            for r in top:
                study.tuner.enqueue(r["config"], source="recommended")
            study.run().close()
    rows = rows_from_studies(root)
    rows["label"] = [Path(s).parent.name for s in rows["study"]]
    rows["source"] = [Path(s).name for s in rows["study"]]

    # 4. re-measure the candidates side by side; ratios to the oracle
    table = []
    for label in labels:
        best = best_configs(rows, label, root)
        candidates = {k: v for k, v in best.items()}
        candidates["recommended"] = recs[label]["config"]
        candidates["recommended-presets"] = recs_presets[label]["config"]
        measured = remeasure(label, candidates, args)
        oracle_name = max(
            (n for n in measured if measured[n]["feasible"]), key=lambda n: measured[n]["throughput"], default=None
        )
        oracle = measured[oracle_name]["throughput"] if oracle_name else float("nan")

        def ratio(name: str) -> float:
            m = measured.get(name)
            if m is None or not m["feasible"]:
                return 0.0
            return m["throughput"] / oracle

        oracle_config = candidates[oracle_name] if oracle_name else {}
        entry = {"workload": label, "oracle_engine": oracle_config.get("engine"), "oracle_ops_s": oracle}
        for tuner in args.tuners:
            entry[f"{tuner}_engine"] = candidates.get(f"tuner-{tuner}", {}).get("engine")
            entry[f"{tuner}_ratio"] = ratio(f"tuner-{tuner}")
        table.append(
            {
                **entry,
                "recommended_engine": recs[label]["config"]["engine"],
                "recommended_ratio": ratio("recommended"),
                "recommended_presets_engine": recs_presets[label]["config"]["engine"],
                "recommended_presets_ratio": ratio("recommended-presets"),
                "seeded10_ratio": ratio("seeded"),
                "default_engine_ops_s": None,
                "per_engine": json.dumps({n: round(m["throughput"]) for n, m in measured.items() if m["feasible"]}),
                "oracle_config": json.dumps(oracle_config),
                "recommended_config": json.dumps(recs[label]["config"]),
            }
        )
        tuned = ", ".join(f"{t} {ratio(f'tuner-{t}'):.2f}" for t in args.tuners)
        print(f"  {label}: oracle {oracle_name} {oracle:,.0f} ops/s; {tuned}; "
              f"recommended {recs[label]['config']['engine']} {ratio('recommended'):.2f}", flush=True)
    frame = pd.DataFrame(table).drop(columns=["default_engine_ops_s"])
    frame.to_csv(args.out / f"{tag}.csv", index=False)

    # 5. the table, the targets, a plot
    pd.set_option("display.width", 200)
    print()
    tuner_cols = [c for t in args.tuners for c in (f"{t}_engine", f"{t}_ratio")]
    print(frame[["workload", "oracle_engine", "oracle_ops_s", *tuner_cols, "recommended_engine",
                 "recommended_ratio", "recommended_presets_ratio", "seeded10_ratio"]].to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print()
    for tuner in args.tuners:
        ratios = frame[f"{tuner}_ratio"]
        print(f"tuner {tuner} ({args.budget} trials) within 10% of the oracle on every workload: {(ratios >= 0.9).all()} "
              f"({(ratios >= 0.9).sum()}/{len(ratios)}, worst {ratios.min():.2f}, median {ratios.median():.2f})")
    rec_share = float((frame["recommended_ratio"] >= 0.8).mean())
    presets_share = float((frame["recommended_presets_ratio"] >= 0.8).mean())
    print(f"recommender trained on the other workloads only: within 20% of the oracle on {presets_share:.0%}")
    print(f"recommender trained on the other workloads + {args.corpus} random ones: within 20% of the oracle on "
          f"{rec_share:.0%} of held-out workloads (target >= 75%): {rec_share >= 0.75}")
    print(f"{len(labels)} workloads, {len(rows)} stored trials, {time.time() - start:.0f}s")
    _plot(frame, args.out / f"{tag}.png", args.tuners)
    return 0


def _register_tuners(names: list[str]) -> None:
    """Tuners this experiment knows how to import when the core registry does not list them yet."""
    from autosys.tuners import TUNERS

    known = {"bo-rf": "autosys.tuners.bayes:ForestBayesOpt", "bo": "autosys.tuners.bayes:BayesOpt"}
    for name in names:
        if name not in TUNERS:
            if name not in known:
                raise SystemExit(f"unknown tuner {name!r}; registered: {', '.join(TUNERS)}")
            TUNERS[name] = known[name]
            print(f"note: tuner {name!r} is not in autosys.tuners.TUNERS yet; using {known[name]}")


def _plot(frame: pd.DataFrame, path: Path, tuners: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(frame))
    fig, ax = plt.subplots(figsize=(max(8, len(frame) * 0.8), 4))
    series = [(f"{t}_ratio", f"{t}, 30 trials") for t in tuners]
    series += [("recommended_ratio", "recommender, no trials (leave-one-out, + random corpus)"),
               ("recommended_presets_ratio", "recommender trained on the other workloads only"),
               ("seeded10_ratio", "recommender-seeded random, 10 trials")]
    width = 0.8 / len(series)
    for i, (column, label) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, frame[column], width, label=label)
    ax.axhline(0.9, color="k", lw=0.8, ls="--")
    ax.axhline(0.8, color="grey", lw=0.8, ls=":")
    ax.set_xticks(x, [f"{w}\n({e})" for w, e in zip(frame["workload"], frame["oracle_engine"])], fontsize=7)
    ax.set_ylabel("throughput / oracle")
    ax.set_ylim(0, 1.15)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("key-value engine selection (oracle engine in brackets)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
