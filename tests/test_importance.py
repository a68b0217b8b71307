"""Knob importance: known structure is recovered by both methods; top-k pinning; the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from autosys.cli.importance import app
from autosys.analysis.importance import knob_importance, plot_importance, top_k_fixed
from autosys.core.space import Categorical, Float, Int, Space
from autosys.run.study import Study
from autosys.core.system import Measurement, Objective, System


def synthetic(n=60, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 1, n)
    b = rng.choice(["x", "y", "z"], n)
    c = rng.integers(1, 1000, n)
    noise = rng.normal(0, 0.01, n)
    value = 100 * (1 + 5 * a) * np.where(b == "y", 1.3, 1.0) + noise  # a >> b > c (c does nothing)
    return pd.DataFrame({"config.a": a, "config.b": b, "config.c": c, "value": value, "state": "complete"})


@pytest.mark.parametrize("method", ["lasso", "forest", "both"])
def test_recovers_known_importance(method):
    ranking = knob_importance(synthetic(), method=method)
    assert list(ranking["knob"]) == ["a", "b", "c"]
    assert list(ranking["rank"]) == [1, 2, 3]


def test_failed_trials_are_ignored_and_too_few_trials_rejected():
    df = synthetic(8)
    df.loc[:5, "state"] = "failed"
    with pytest.raises(ValueError, match="at least 3"):
        knob_importance(df)


def test_top_k_pins_everything_else_to_the_base():
    ranking = knob_importance(synthetic(), method="forest")
    fixed = top_k_fixed(ranking, 1, base={"a": 0.5, "b": "y", "c": 7})
    assert fixed == {"b": "y", "c": 7}
    with pytest.raises(ValueError):
        top_k_fixed(ranking, 0, base={})


class Toy(System):
    """Throughput depends on `fast` a lot, on `size` a little, on `color` not at all."""

    name = "toy"

    def space(self):
        return Space([Float("fast", 0.0, 1.0, default=0.0), Int("size", 1, 64, log=True, default=1), Categorical("color", ("r", "g", "b"))])

    @property
    def objective(self):
        return Objective("throughput", "maximize")

    def evaluate(self, config):
        return Measurement({"throughput": 10 + 100 * config["fast"] + 0.2 * np.log2(config["size"])})


def test_study_directory_cli_and_plot(tmp_path):
    study = Study.create(tmp_path / "s", Toy(), tuner="random", budget=25, seed=3).run()
    ranking = knob_importance(tmp_path / "s")
    assert ranking.iloc[0]["knob"] == "fast"
    assert ranking.iloc[-1]["knob"] in ("color", "size")
    png = plot_importance(ranking, tmp_path / "imp.png")
    assert png.stat().st_size > 1000
    # a top-1 study tunes `fast` only
    fixed = top_k_fixed(ranking, 1, base=study.best.config)
    sub = Study.create(tmp_path / "top1", Toy(), tuner="random", budget=4, seed=1, fixed=fixed).run()
    assert all(t.config["color"] == fixed["color"] for t in sub.trials() if t.source != "default")
    result = CliRunner().invoke(app, [str(tmp_path / "s"), "--csv", str(tmp_path / "r.csv")])
    assert result.exit_code == 0, result.output
    assert "fast" in result.output and (tmp_path / "s" / "importance.png").exists()
    assert pd.read_csv(tmp_path / "r.csv")["knob"].iloc[0] == "fast"
    bad = CliRunner().invoke(app, [str(tmp_path / "nothing-here")])
    assert bad.exit_code == 2
