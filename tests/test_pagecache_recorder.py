"""The SQLite page recorder and the `autosys trace` commands."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("apsw", reason="recording SQLite page traces needs apsw (pip install autosys-toolkit[pagecache])")

from typer.testing import CliRunner  # noqa: E402

from autosys_adapters.pagecache import traces as T  # noqa: E402
from autosys_adapters.pagecache.cli import app  # noqa: E402
from autosys_adapters.pagecache.recorder import record_sqlite  # noqa: E402


@pytest.mark.parametrize("workload", ["ycsb", "tpcc", "scan"])
def test_same_workload_twice_replays_the_same_pages(workload):
    a = record_sqlite(workload, ops=300, seed=5)
    b = record_sqlite(workload, ops=300, seed=5)
    assert len(a) > 100
    assert np.array_equal(a.ids, b.ids)
    assert np.array_equal(a.writes, b.writes)
    assert a.footprint > 20 and (a.ids >= 0).all()


def test_different_seeds_and_workloads_differ():
    a = record_sqlite("ycsb", ops=300, seed=1)
    assert not np.array_equal(a.ids, record_sqlite("ycsb", ops=300, seed=2).ids[: len(a)])
    tpcc = record_sqlite("tpcc", ops=300, seed=1)
    assert tpcc.writes.any() and a.writes.any()
    scan = record_sqlite("scan", ops=300, seed=1)
    assert not scan.writes.any()  # read-only workload


def test_unknown_workload():
    with pytest.raises(ValueError, match="unknown SQLite workload 'nope'"):
        record_sqlite("nope")


def test_cli_record_writes_a_readable_oracle_general_trace(tmp_path):
    out = tmp_path / "ycsb.oracleGeneral"
    result = CliRunner().invoke(app, ["record", "sqlite", "--workload", "ycsb", "--ops", "300", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "page accesses" in result.output
    trace = T.read_trace(out)
    assert np.array_equal(trace.ids, record_sqlite("ycsb", ops=300, seed=0).ids)
    assert (trace.sizes == 4096).all()


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nfoo\n")
    result = runner.invoke(app, ["info", str(bad)])
    assert result.exit_code == 2 and "bad.txt:2: page id 'foo' is not an integer" in result.output
    result = runner.invoke(app, ["record", "oracle", "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == 2 and "choose one of" in result.output


def test_cli_generate_and_simulate(tmp_path):
    out = tmp_path / "z.npy"
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "zipf", "--out", str(out), "--requests", "5000", "--pages", "500"]).exit_code == 0
    result = runner.invoke(app, ["simulate", str(out), "--policies", "lru,arc,belady"])
    assert result.exit_code == 0, result.output
    assert "belady" in result.output and "100.0%" in result.output
