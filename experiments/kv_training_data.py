"""Build the kv recommender's training data from stored autosys studies.

Reads every `kv` study under the given directories (as written by
`autosys tune kv ... --dir DIR` or experiments/kv_select.py) and writes one
CSV row per completed trial: workload features (wf_*), config (config.*),
throughput, memory_bytes, disk_bytes, feasible. With --generate it first runs
small random-search studies over the kv presets to have something to learn
from; with --corpus N it studies every engine on N random workloads
(adapters/kv/training.py: the corpus experiments/kv_select.py trains on).

    .venv/bin/python experiments/kv_training_data.py --generate --studies experiments/results/kv_train_studies
    .venv/bin/python experiments/kv_training_data.py --corpus 24 --studies experiments/results/kv_studies_corpus
    .venv/bin/python experiments/kv_training_data.py --studies studies/ --out experiments/results/kv_select_training.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autosys_adapters.kv.recommender import rows_from_studies  # noqa: E402
from autosys_adapters.kv.workloads import KV_PRESETS  # noqa: E402


def generate(root: Path, budget: int, seed: int, seconds: float) -> None:
    """One random-search study per kv preset (and a memory-capped variant of each)."""
    from autosys_adapters.kv.system import KVSelect
    from autosys.run.study import Study

    for name in KV_PRESETS:
        for cap in (0.0, 3.0):
            directory = root / (name if not cap else f"{name}@mem{cap:g}")
            if directory.exists():
                continue
            system = KVSelect(workload=name, memory_cap_mb=cap, seconds=seconds, seed=seed)
            Study.create(directory, system, tuner="random", budget=budget, seed=seed).run().close()
            print(f"studied {directory.name}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=Path, nargs="+", required=True, help="directories holding kv studies")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "kv_select_training.csv")
    parser.add_argument("--generate", action="store_true", help="first run random-search studies into --studies[0]")
    parser.add_argument("--corpus", type=int, default=0, help="first study every engine on N random workloads")
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.generate:
        generate(args.studies[0], args.budget, args.seed, args.seconds)
    if args.corpus:
        from autosys_adapters.kv.training import build_corpus

        build_corpus(args.studies[0], args.corpus, seed=args.seed, seconds=args.seconds)
    frames = [rows_from_studies(path) for path in args.studies]
    import pandas as pd

    rows = pd.concat(frames, ignore_index=True)
    if rows.empty:
        print("no kv studies found under " + ", ".join(map(str, args.studies)), file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out, index=False)
    print(f"{len(rows)} rows from {rows['study'].nunique()} studies ({rows['workload'].nunique()} workloads) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
