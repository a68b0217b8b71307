"""The GPU path end to end, in under 5 minutes: tune a Triton matmul, compare with cuBLAS.

Builds `KernelSchedule(backend="triton")`, runs the default launch config and
then model-guided and random search for a small budget on each shape, checks
every result against torch (fp32 reference), and prints best TFLOP/s vs
torch.matmul measured in the same run. Without torch + CUDA + triton it says
why and exits 0 (nothing to check here).

    .venv/bin/python experiments/gpu_check.py [--budget 24] [--shapes 2048,2048,2048 4096,4096,1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autosys_adapters.kernels import triton_backend  # noqa: E402

RESULTS = ROOT / "experiments" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=24, help="trials per tuner per shape")
    parser.add_argument("--shapes", nargs="+", default=["2048,2048,2048", "4096,4096,1024", "1000,3000,777"])
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds of tuning in all (split evenly over runs)")
    args = parser.parse_args(argv)
    reason = triton_backend.why_not()
    if reason:
        print(f"GPU check skipped: {reason}")
        return 0

    import pandas as pd
    import torch

    from autosys_adapters.kernels.system import KernelSchedule
    from autosys.core.evaluation import evaluate_config
    from autosys.tuners.model_guided import ModelGuidedTuner
    from autosys.tuners.random_search import RandomSearch

    print(f"device: {torch.cuda.get_device_name(0)}", flush=True)
    start = time.perf_counter()
    rows = []
    for shape in args.shapes:
        system = KernelSchedule(op="matmul", shape=shape, backend="triton", repeats=5)
        base = system.baselines()["torch"]["gflops"]
        default = evaluate_config(system, system.default())
        print(f"{shape}: torch.matmul {base / 1e3:.1f} TFLOP/s; default launch "
              f"{(default.value or 0) / 1e3:.1f} TFLOP/s ({default.state.value})", flush=True)
        for name, tuner in [
            ("model", ModelGuidedTuner(system.space(), direction="maximize", seed=0, n_initial=6)),
            ("random", RandomSearch(system.space(), direction="maximize", seed=0)),
        ]:
            best, failed = 0.0, 0
            run_start, run_deadline = time.perf_counter(), args.deadline / (2 * len(args.shapes))
            for _ in range(args.budget):
                if time.perf_counter() - run_start > run_deadline:
                    break
                trial = tuner.ask()
                outcome = evaluate_config(system, trial.config)
                tuner.tell(trial, outcome.result)
                if outcome.result.ok:
                    best = max(best, outcome.value)
                else:
                    failed += 1
            rows.append(dict(shape=shape, tuner=name, trials=len(tuner.history), failed=failed,
                             best_tflops=best / 1e3, torch_tflops=base / 1e3, ratio=best / base))
            print(f"  {name:6s}: best {best / 1e3:.1f} TFLOP/s = {best / base:.0%} of torch "
                  f"({len(tuner.history)} trials, {failed} failed)", flush=True)
    df = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "gpu_check.csv", index=False)
    print(df.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print(f"total {time.perf_counter() - start:.0f} s; wrote {RESULTS / 'gpu_check.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
