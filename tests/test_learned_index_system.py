"""The learned-index system: real builds and timed lookups, study and CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autosys_adapters.learned_index import compiled
from autosys_adapters.learned_index.pareto import best_under_cap, pareto_front, plot_pareto
from autosys_adapters.learned_index.system import LearnedIndexSystem, optional_baselines
from autosys.core.registry import make_system
from autosys.core.space import InvalidConfig

ROOT = Path(__file__).resolve().parents[1]


def small(**options) -> LearnedIndexSystem:
    return LearnedIndexSystem(**{"n_keys": 30_000, "queries": 4_000, "repeats": 2, **options})


def test_default_config_builds_and_reports_all_metrics():
    system = small()
    m = system.evaluate(system.default())
    for name in ("ns_per_lookup", "build_seconds", "index_bytes", "searchsorted_ns", "speedup"):
        assert np.isfinite(m.metrics[name]) and m.metrics[name] > 0, name
    assert m.metrics["index_bytes"] <= system.cap_bytes  # the default must respect its own cap
    assert len(m.samples["ns_per_lookup"]) == 2
    assert m.metrics["ns_per_lookup"] == pytest.approx(np.median(m.samples["ns_per_lookup"]))
    assert m.info["index"]["n_leaves"] >= 1


def test_objective_caps_index_bytes_at_the_fraction_of_key_bytes():
    system = small(size_cap=0.02)
    objective = system.objective
    assert objective.metric == "ns_per_lookup" and objective.direction == "minimize"
    (limit,) = objective.limits
    assert limit.metric == "index_bytes" and limit.max == pytest.approx(0.02 * 30_000 * 8)
    assert ("index_bytes", "minimize") in objective.others


@pytest.mark.parametrize("backend", ["numpy"] + (["numba"] if compiled.available() else []))
def test_sampled_configs_all_answer_exactly(backend):
    """evaluate() raises if any lookup differs from searchsorted; sample the whole space."""
    system = small(distribution="osm", backend=backend, repeats=1)
    rng = np.random.default_rng(4)
    kinds = set()
    for _ in range(12):
        config = system.space().sample(rng)
        kinds.add(config["kind"])
        m = system.evaluate(config)
        assert m.metrics["ns_per_lookup"] > 0
    assert kinds == {"rmi", "pgm"}


def test_bad_config_and_options_are_rejected():
    system = small()
    with pytest.raises(InvalidConfig):
        system.evaluate({**system.default(), "root": "quadratic"})
    with pytest.raises(ValueError, match="distribution"):
        LearnedIndexSystem(distribution="zipf")
    with pytest.raises(ValueError, match="size_cap"):
        LearnedIndexSystem(size_cap=0)


def test_keys_file_unsorted_with_duplicates(tmp_path):
    path = tmp_path / "keys.txt"
    rng = np.random.default_rng(0)
    values = rng.integers(0, 10**12, 5_000)
    values = np.concatenate([values, values[:500]])
    path.write_text("\n".join(str(v) for v in rng.permutation(values)) + "\n")
    system = LearnedIndexSystem(keys=str(path), queries=2_000, repeats=1)
    assert system.keys.size == 5_500 and bool(np.all(system.keys[1:] >= system.keys[:-1]))
    m = system.evaluate(system.default())
    assert m.info["n_keys"] == 5_500
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\nNaN\n")
    with pytest.raises(ValueError, match="line 3"):
        LearnedIndexSystem(keys=str(bad)).evaluate({"kind": "pgm", "search": "binary", "epsilon": 8, "epsilon_recursive": 2})


def test_baselines_include_searchsorted_and_skip_absent_packages():
    system = small()
    base = system.baselines()
    assert base["searchsorted"]["ns_per_lookup"] > 0
    if compiled.available():
        assert base["compiled-binary-search-batch1"]["ns_per_lookup"] > 0
        assert base["compiled-binary-search-batch16"]["ns_per_lookup"] > 0
    optional = optional_baselines(system.keys, system.queries[:100])
    for name, module in (("pygm", "pygm"), ("btrees", "BTrees")):
        try:
            __import__(module)
        except ImportError:
            assert name not in optional
        else:
            assert optional[name]["ns_per_lookup"] > 0


def test_btrees_baseline_when_installed():
    pytest.importorskip("BTrees", reason="BTrees is an optional baseline (pip install 'autosys-toolkit[index]')")
    system = small()
    assert optional_baselines(system.keys, system.queries[:200])["btrees"]["ns_per_lookup"] > 0


def test_registry_finds_the_system():
    system = make_system("learned-index", {"n_keys": 1_000, "queries": 100})
    assert isinstance(system, LearnedIndexSystem) and system.name == "learned-index"


def test_pareto_front_and_plot(tmp_path):
    df = pd.DataFrame(
        {
            "state": ["complete"] * 5 + ["failed"],
            "metrics.index_bytes": [100.0, 200.0, 150.0, 400.0, 50.0, np.nan],
            "metrics.ns_per_lookup": [90.0, 60.0, 95.0, 55.0, 200.0, np.nan],
        }
    )
    front = pareto_front(df)
    assert front["metrics.index_bytes"].tolist() == [50.0, 100.0, 200.0, 400.0]  # 150 B is dominated by 100 B
    assert best_under_cap(df, 250.0)["metrics.ns_per_lookup"] == 60.0
    assert best_under_cap(df, 10.0) is None
    png = plot_pareto(df, tmp_path / "p.png", cap_bytes=250.0, baseline_ns=300.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_runs_and_summary_reports_baselines(tmp_path):
    from autosys.run.study import Study

    study = Study.create(
        tmp_path / "s", "learned-index", system_options={"n_keys": 20_000, "queries": 2_000, "repeats": 1}, budget=4
    )
    study.run()
    summary = study.summary()
    assert summary["trials"]["complete"] + summary["trials"]["failed"] == 4
    assert summary["best"]["metrics"]["index_bytes"] <= 0.01 * 20_000 * 8
    assert summary["baselines"]["searchsorted"]["ns_per_lookup"] > 0
    assert not pareto_front(study.dataframe()).empty
    study.close()


@pytest.mark.slow
def test_cli_tune_with_keys_file_writes_json(tmp_path):
    keys = tmp_path / "keys.npy"
    np.save(keys, np.random.default_rng(1).lognormal(0, 2, 40_000) * 1e6)
    out = tmp_path / "out.json"
    run = subprocess.run(
        [sys.executable, "-m", "autosys", "tune", "learned-index", "--keys", str(keys), "--budget", "4",
         "--dir", str(tmp_path / "s"), "--json", str(out), "--quiet", "--queries", "3000", "--repeats", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert data["system"] == "learned-index"
    assert data["best"]["metrics"]["ns_per_lookup"] > 0 and data["default"]["metrics"]["ns_per_lookup"] > 0
    assert data["baselines"]["searchsorted"]["ns_per_lookup"] > 0


def test_measuring_a_config_again_reuses_its_built_index_and_stays_exact(monkeypatch):
    """A race or a promotion re-measures a config: its index is not rebuilt, and a different config gets its own."""
    from autosys_adapters.learned_index import system as system_module

    builds = []
    real_build = system_module.build_index
    monkeypatch.setattr(system_module, "build_index", lambda keys, config, backend="auto": builds.append(dict(config))
                        or real_build(keys, config, backend))
    system = small()
    default = system.default()
    other = system.space().validate({**default, "leaves": 64, "bounds": "global"})
    first = system.evaluate(default)
    system.evaluate(default, fidelity=system.fidelity().min)  # a lower rung: same index, fewer queries
    system.evaluate(other)
    again = system.evaluate(default)
    assert len(builds) == 2 and builds[0] != builds[1]  # one build per distinct config
    assert again.info["index"] == first.info["index"]  # the same structure answers (evaluate checks every answer)
    for i in range(LearnedIndexSystem.BUILT_KEPT + 1):  # the cache is bounded: the oldest index is dropped
        system.evaluate(system.space().validate({**default, "leaves": 40 + i}))  # none is the default's 32
    system.evaluate(default)
    assert len(builds) == 2 + LearnedIndexSystem.BUILT_KEPT + 2
