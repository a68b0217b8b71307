"""The page-policy system: space, evaluation against LRU and Belady, the tune CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("numba", reason="the page-cache simulator compiles its kernels with numba (pip install autosys-toolkit[compiled])")

from autosys_adapters.pagecache.system import PagePolicySystem, simulator_args  # noqa: E402
from autosys_adapters.pagecache import traces as T  # noqa: E402
from autosys.core.space import InvalidConfig  # noqa: E402
from autosys.tuners import make_tuner  # noqa: E402


@pytest.fixture(scope="module")
def system():
    return PagePolicySystem(generator="scan_loop_hot", requests=30_000, cache_size=0.1)


def test_default_is_lru_and_matches_the_baseline(system):
    assert system.default() == {"policy": "lru"}
    m = system.evaluate(system.default())
    base = system.baselines()
    assert m.metrics["miss_ratio"] == base["lru"]["miss_ratio"]
    assert m.metrics["gap_closed"] == 0.0
    assert base["belady"]["miss_ratio"] < base["lru"]["miss_ratio"]
    assert system.objective.metric == "miss_ratio" and system.objective.direction == "minimize"


def test_conditional_knobs_reach_the_simulator(system):
    space = system.space()
    config = space.validate({"policy": "s3fifo", "s3fifo_small_ratio": 0.2, "s3fifo_ghost_ratio": 1.0,
                             "s3fifo_move_threshold": 2, "s3fifo_max_freq": 3})
    policy, knobs = simulator_args(config)
    assert policy == "s3fifo" and knobs["small_ratio"] == 0.2 and knobs["move_threshold"] == 2
    policy, knobs = simulator_args(space.validate({"policy": "lecar", "lecar_learning_rate": 0.3,
                                                   "lecar_experts": "lru,lfu,mru", "lecar_history": 1.0}))
    assert knobs["experts"] == ("lru", "lfu", "mru")
    with pytest.raises(InvalidConfig):
        system.evaluate({"policy": "belady"})  # the oracle is a bound, not a choice
    with pytest.raises(InvalidConfig):
        system.evaluate({"policy": "s3fifo", "s3fifo_small_ratio": 5.0})


def test_random_search_improves_on_lru(system):
    tuner = make_tuner("random", system.space(), direction="minimize", seed=0)
    best = 1.0
    for _ in range(8):
        trial = tuner.ask()
        if trial.config["policy"] == "lrb":
            continue
        best = min(best, system.evaluate(trial.config).metrics["miss_ratio"])
    assert best < system.baselines()["lru"]["miss_ratio"]


def test_trace_file_and_page_count_cache(tmp_path):
    path = T.write_oracle_general(T.zipf(10_000, 1_000, seed=1), tmp_path / "z.oracleGeneral")
    sys_ = PagePolicySystem(trace=str(path), cache_size=50)
    m = sys_.evaluate({"policy": "arc"})
    assert m.info["capacity_pages"] == 50 and m.info["requests"] == 10_000
    assert 0 < m.metrics["belady_miss_ratio"] <= m.metrics["miss_ratio"] <= 1
    with pytest.raises(ValueError, match="cache_size must be positive"):
        PagePolicySystem(cache_size=0)
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\nzz\n")
    with pytest.raises(T.TraceError, match=":3:"):
        PagePolicySystem(trace=str(bad)).evaluate({"policy": "lru"})


def test_autosys_tune_cli_reports_best_lru_and_belady(tmp_path):
    cli = pytest.importorskip("autosys.cli.main")
    path = T.write_trace(T.scan_loop_hot(20_000, seed=4), tmp_path / "mix.txt")
    out = tmp_path / "out.json"
    from typer.testing import CliRunner

    cli._mount_command_groups()
    result = CliRunner().invoke(cli.app, ["tune", "page-policy", "--trace", str(path), "--cache-size", "0.1",
                                          "--budget", "6", "--dir", str(tmp_path / "study"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["system"] == "page-policy"
    lru, opt = data["baselines"]["lru"]["miss_ratio"], data["baselines"]["belady"]["miss_ratio"]
    best = data["best"]["metrics"]["miss_ratio"]
    assert opt <= best <= lru
    assert np.isclose(data["default"]["metrics"]["miss_ratio"], lru)
