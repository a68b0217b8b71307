"""Demo (a): the embedded agent keeps a live SQLite key-value service tuned as its workload shifts.

Three runs over the same phase sequence (read-heavy, write-heavy, scan-heavy,
read-heavy), each on a fresh copy of the same database, side by side (one client
thread each, the same seeded operations), so load from elsewhere hits all three:
  static default   - SQLite's defaults all along
  static offline   - the config a short offline study tuned for phase one only
  agent            - the default, with the agent embedded and adapting online
It prints and writes (CSV, PNG) total and per-phase operations, the agent's
time to adapt after each change, and its rollbacks.

    python experiments/agent_kv_service.py            # 20 s phases
    python experiments/agent_kv_service.py --quick    # 6 s phases
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autosys_adapters.sqlite.service import PHASES, SQLiteService  # noqa: E402
from autosys.online.agent import Agent, Guardrails, TunerPolicy  # noqa: E402
from autosys.storage import SQLiteStorage  # noqa: E402
from autosys.run.study import Study  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SEQUENCE = ["read-heavy", "write-heavy", "scan-heavy", "read-heavy"]


def drive(service: SQLiteService, phase_seconds: float, seed: int, bucket: float = 0.5):
    """Run the phase sequence against the service; returns per-bucket op counts."""
    rng = np.random.default_rng(seed)
    rows = []
    start = time.monotonic()
    for index, phase in enumerate(SEQUENCE):
        phase_start = time.monotonic()
        while time.monotonic() - phase_start < phase_seconds:
            bucket_start = time.monotonic()
            done = 0
            while time.monotonic() - bucket_start < bucket:
                service.run_ops(PHASES[phase], rng, 20)
                done += 20
            rows.append({"t": time.monotonic() - start, "phase_index": index, "phase": phase,
                         "ops": done, "ops_per_s": done / (time.monotonic() - bucket_start)})
    return pd.DataFrame(rows)


def fresh_service(base: Path, work: Path, name: str, **options) -> SQLiteService:
    """A copy of the base database behind a live service (`options`: SQLiteService's)."""
    path = work / f"{name}.db"
    shutil.copyfile(base, path)
    service = SQLiteService(path=str(path), **options)
    service.setup()
    return service


def offline_config(base: Path, work: Path, budget: int, seed: int) -> dict:
    service = fresh_service(base, work, "offline")
    service.seconds = 1.0
    study = Study.create(work / "offline-study", service, tuner="random", budget=budget, seed=seed).run()
    best = study.best.config
    study.close()
    return best


def time_to_adapt(timeline: pd.DataFrame, decisions) -> list[float]:
    """Seconds from each phase change until throughput first reaches 90% of that phase's last-third level."""
    out = []
    for index in sorted(timeline["phase_index"].unique())[1:]:
        phase = timeline[timeline["phase_index"] == index]
        settled = phase["ops_per_s"].iloc[-max(len(phase) // 3, 1):].median()
        reached = phase[phase["ops_per_s"] >= 0.9 * settled]
        out.append(float(reached["t"].iloc[0] - phase["t"].iloc[0]) if not reached.empty else float("nan"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--phase-seconds", type=float, default=None)
    parser.add_argument("--window", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    phase_seconds = args.phase_seconds or (6.0 if args.quick else 20.0)
    RESULTS.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="autosys-agent-demo-", dir=str(RESULTS.parent)))
    try:
        base_service = SQLiteService(path=str(work / "base.db"))
        base_service.setup()
        base_service.teardown()
        base = work / "base.db"

        print(f"offline study for phase one ({SEQUENCE[0]}) ...", flush=True)
        offline = offline_config(base, work, budget=8 if args.quick else 15, seed=args.seed)
        print(f"  offline-tuned config: {offline}")

        # The three runs go side by side, one client thread each, so that whatever else the machine is
        # doing slows them alike (sequential runs on a shared host differed by 10x in load).
        names = ("static default", "static offline", "agent")
        services = {name: fresh_service(base, work, name.replace(" ", "-")) for name in names}
        services["static offline"].apply(offline)
        storage = SQLiteStorage(work / "agent-store")
        policy = TunerPolicy(services["agent"].space(), "maximize", tuner="random", seed=args.seed, tries_per_regime=6)
        agent = Agent(services["agent"], policy, guardrails=Guardrails(change_budget=60, noise_sigmas=2.0),
                      window=args.window, storage=storage, explore_every=None)
        runs: dict[str, pd.DataFrame] = {}

        def client(name: str) -> None:
            runs[name] = drive(services[name], phase_seconds, args.seed)

        print(f"running {', '.join(names)} side by side, {len(SEQUENCE)} phases of {phase_seconds:g} s ...", flush=True)
        threads = [threading.Thread(target=client, args=(name,), name=name) for name in names]
        agent.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        agent.stop()
        agent_info = {"decisions": agent.decisions, "counts": agent.counts(), "final": services["agent"].current()}
        for service in services.values():
            service.teardown()

        rows = []
        for name, tl in runs.items():
            per_phase = tl.groupby("phase_index")["ops"].sum()
            rows.append({"run": name, "total_ops": int(tl["ops"].sum()),
                         **{f"phase{i}_{SEQUENCE[i]}": int(per_phase.get(i, 0)) for i in range(len(SEQUENCE))}})
        table = pd.DataFrame(rows).set_index("run")
        default_total = table.loc["static default", "total_ops"]
        table["vs_default"] = (table["total_ops"] / default_total).round(2)
        adapt = time_to_adapt(runs["agent"], agent_info.get("decisions", []))
        counts = agent_info.get("counts", {})
        print()
        print(table.to_string())
        print()
        # how each phase ends: median ops/s over its last quarter (after the agent has had time to adapt)
        ends = pd.DataFrame({name: [tl[tl["phase_index"] == i]["ops_per_s"].iloc[-max(len(tl[tl["phase_index"] == i]) // 4, 1):].median()
                                    for i in range(len(SEQUENCE))] for name, tl in runs.items()},
                            index=[f"phase{i}_{p}" for i, p in enumerate(SEQUENCE)]).round(0)
        print("ops/s over the last quarter of each phase:")
        print(ends.to_string())
        worse = [p for p in ends.index if ends.loc[p, "agent"] < ends.loc[p, "static default"]]
        print(f"agent vs static default: {table.loc['agent', 'vs_default']:.2f}x total operations; "
              f"phases that ended with the agent below the default: {worse or 'none'}")
        ends.to_csv(RESULTS / "agent_kv_service_phase_ends.csv")
        print(f"agent time to adapt after each change (s): {[round(a, 1) for a in adapt]}")
        print(f"agent decisions: {counts}; rollbacks: {counts.get('rollback', 0)}; final config: {agent_info.get('final')}")
        table.to_csv(RESULTS / "agent_kv_service.csv")
        pd.DataFrame([{"window": d.window, "time": d.time, "action": d.action, "value": d.value,
                       "incumbent_value": d.incumbent_value, "reason": d.reason, "config": d.config}
                      for d in agent_info.get("decisions", [])]).to_csv(RESULTS / "agent_kv_service_decisions.csv", index=False)
        plot(runs, RESULTS / "agent_kv_service.png", phase_seconds)
        print(f"wrote {RESULTS / 'agent_kv_service.csv'} and .png")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def plot(runs: dict[str, pd.DataFrame], path: Path, phase_seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for name, tl in runs.items():
        ax.plot(tl["t"], tl["ops_per_s"].rolling(3, min_periods=1).mean(), label=name)
    for i, phase in enumerate(SEQUENCE):
        ax.axvline(i * phase_seconds, color="grey", lw=0.5)
        ax.text(i * phase_seconds + 0.3, ax.get_ylim()[1] * 0.95, phase, fontsize=8, va="top")
    ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("operations / s (log)")
    ax.set_title("live SQLite service: agent vs static configs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
