"""experiments/db_servers.py's headroom table: autosys judged against the expert arm by paired rounds."""

import math

import pandas as pd
import pytest

from tests.experiment_modules import experiment_module


@pytest.fixture(scope="module")
def db_servers():
    yield from experiment_module("db_servers")


def arm_row(name, tput, p99, vs_expert=None):
    """One arm's row as run_pair writes it: gains over the default (ratio, low, high), and over the expert."""
    row = {"server": "postgres", "cluster": "shared", "workload": "analytic", "arm": name,
           **{f"tput_{k}": v for k, v in zip(("ratio", "low", "high"), tput)},
           **{f"p99_{k}": v for k, v in zip(("ratio", "low", "high"), p99)}}
    if vs_expert is not None:
        row.update({f"tput_vs_expert_{k}": v for k, v in zip(("ratio", "low", "high"), vs_expert[0])})
        row.update({f"p99_vs_expert_{k}": v for k, v in zip(("ratio", "low", "high"), vs_expert[1])})
    return row


def test_autosys_is_judged_against_the_expert_by_its_paired_interval(db_servers):
    frame = pd.DataFrame([
        arm_row("default", (1, 1, 1), (1, 1, 1), ((0.7, 0.6, 0.8), (0.8, 0.7, 0.9))),
        arm_row("expert", (1.4, 1.28, 1.55), (1.29, 1.2, 1.39), ((1, 1, 1), (1, 1, 1))),
        # throughput level with the expert; p99 significantly worse (its interval lies below 1.0)
        arm_row("autosys", (1.33, 1.18, 1.49), (1.14, 1.01, 1.3), ((0.95, 0.85, 1.06), (0.88, 0.78, 0.99))),
        arm_row("non-durable", (1.5, 1.3, 1.7), (1.4, 1.2, 1.6), ((1.07, 1.0, 1.15), (1.08, 1.0, 1.17))),
    ])
    room = db_servers.headroom(frame).iloc[0]
    assert room["tput_best_arm"] == "expert" and room["tput_headroom_significant"]  # non-durable is not a durable best
    assert room["tput_taken"] == pytest.approx(math.log(1.33) / math.log(1.4))
    assert not room["tput_autosys_below_expert"]
    assert room["p99_autosys_below_expert"]
    assert room["p99_autosys_vs_expert_high"] == pytest.approx(0.99)


def test_a_run_without_an_expert_arm_has_no_expert_columns(db_servers):
    frame = pd.DataFrame([arm_row("default", (1, 1, 1), (1, 1, 1)), arm_row("autosys", (1.1, 0.9, 1.3), (1.0, 0.9, 1.1))])
    room = db_servers.headroom(frame).iloc[0]
    assert not room["tput_headroom_significant"]
    assert "tput_autosys_vs_expert" not in room
