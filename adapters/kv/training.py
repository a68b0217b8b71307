"""Training data for the kv recommender: every engine studied on a workload, stored by autosys.

`study_each_engine` runs one small random-search study per available engine
with the engine pinned (its knobs searched), so a workload's rows show how
every engine does there: what the recommender needs to learn which one wins.
`build_corpus` does that for a seeded set of random workloads
(`sample_workloads`), writing each workload as a JSON file beside its
studies so a study can always be read back (`rows_from_studies`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from autosys_adapters.kv.workloads import KVWorkload, sample_workloads, with_size

if TYPE_CHECKING:
    from autosys_adapters.kv.system import KVSelect

#: trials per engine: more where an engine has more knobs (dict has none)
ENGINE_BUDGETS: dict[str, int] = {"dict": 1, "sorteddict": 5, "sqlite": 10, "lmdb": 10, "rocksdb": 16}
SMALL_ENGINE_BUDGETS: dict[str, int] = {"dict": 1, "sorteddict": 3, "sqlite": 6, "lmdb": 6, "rocksdb": 8}


def study_each_engine(
    directory: Path, make_system: Callable[[], "KVSelect"], budgets: Mapping[str, int] = ENGINE_BUDGETS, seed: int = 0
) -> None:
    """One stored study per engine under `directory` (oracle-<engine>); a study already there is resumed."""
    from autosys.storage import SQLiteStorage
    from autosys.run.study import Study

    for engine in list(make_system().engines):
        path = Path(directory) / f"oracle-{engine}"
        if (path / SQLiteStorage.FILENAME).exists():  # resume: runs what is left of the budget, if anything
            Study.resume(path, system=make_system()).run().close()
            continue
        Study.create(
            path, make_system(), tuner="random", budget=budgets.get(engine, 5), seed=seed,
            fixed={"engine": engine}, evaluate_default=False,
        ).run().close()


def build_corpus(
    root: Path, count: int, seed: int = 0, seconds: float = 0.5, budgets: Mapping[str, int] = SMALL_ENGINE_BUDGETS,
    progress: Callable[[str], None] = print, records: int = 0, operations: int = 0, engines: str = "",
    isolate: bool = False,
) -> list[KVWorkload]:
    """Study every engine on `count` random workloads under `root` (resumes what is there).

    isolate: measure each run in a forked child (KVSelect's option).

    records / operations (0 = the sampled sizes) shrink the workloads, e.g. for a test.
    """
    from autosys_adapters.kv.system import KVSelect

    root = Path(root)
    workloads = [with_size(w, records, operations) for w in sample_workloads(count, seed)]
    for i, workload in enumerate(workloads):
        folder = root / workload.name
        folder.mkdir(parents=True, exist_ok=True)
        spec = folder / "workload.json"
        spec.write_text(json.dumps(workload.to_json(), indent=1))
        study_each_engine(
            folder, lambda: KVSelect(workload=str(spec), seconds=seconds, seed=seed, engines=engines, isolate=isolate),
            budgets, seed,
        )
        progress(f"corpus [{i + 1}/{count}] {workload.name}: {dict(workload.base.mix)}")
    return workloads


__all__ = ["ENGINE_BUDGETS", "SMALL_ENGINE_BUDGETS", "build_corpus", "study_each_engine"]
