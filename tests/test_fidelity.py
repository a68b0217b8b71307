"""Fidelity is part of the system contract, every adapter honours its own, and knobs declare apply costs.

Each adapter test proves the lower fidelity by the measurement's own count
(`info["fidelity"]["work"]`: operations, requests, queries, repeats), never
by wall time.
"""

import json
import os
import socket

import numpy as np
import pytest

from autosys.checks.system import check_system
from autosys.core.fidelity import Fidelity, InvalidFidelity, evaluate_at, measured_at, stamp
from autosys.core.space import Bool, Float, Int, Ordinal, Space
from autosys.core.system import Measurement, Objective, System


# --------------------------------------------------------------------------- the contract


def test_fidelity_checks_its_range_and_type():
    f = Fidelity("operations", "operations", 10, 200, unit="operations")
    assert f.check(None) == 200 and f.check(10) == 10 and f.check(50.0) == 50
    for bad in (9, 201, 12.5, "50", float("nan"), True):
        with pytest.raises(InvalidFidelity):
            f.check(bad)
    with pytest.raises(ValueError, match="kind"):
        Fidelity("x", "epochs", 1, 2)
    with pytest.raises(ValueError, match="min <= max"):
        Fidelity("x", "repeats", 5, 2)
    assert Fidelity.from_json(json.loads(json.dumps(f.to_json()))) == f


def test_rungs_climb_geometrically_from_min_to_full():
    assert Fidelity("ops", "operations", 10, 270).rungs(eta=3) == [10, 30, 90, 270]
    rate = Fidelity("rate", "sampled_trace", 0.05, 1.0, integer=False).rungs(eta=3)
    assert rate[0] == 0.05 and rate[-1] == 1.0 and all(b / a <= 3.0 + 1e-9 for a, b in zip(rate, rate[1:]))


def _names(lines: list[str]) -> set[str]:
    return {line.split(":")[0] for line in lines}


class Counter(System):
    """A toy system whose fidelity is how many terms of a sum it adds; `honest=False` ignores it."""

    name = "counter"

    def __init__(self, honest: bool = True, refuses: bool = True):
        self.honest, self.refuses = honest, refuses

    def space(self):
        return Space([Float("x", 0.0, 1.0, default=0.5)])

    @property
    def objective(self):
        return Objective("y", "minimize")

    def fidelity(self):
        return Fidelity("terms", "operations", 10, 1000)

    def evaluate(self, config, fidelity=None):
        n = self.resolve_fidelity(fidelity) if self.refuses else int(fidelity or 1000)
        work = n if self.honest else 1000
        return Measurement({"y": (config["x"] - 0.3) ** 2}, info=stamp({}, self.fidelity(), n, work))


class Plain(System):
    """A third-party system written before fidelity existed: evaluate(config) only."""

    name = "plain"

    def space(self):
        return Space([Float("x", 0.0, 1.0, default=0.5)])

    @property
    def objective(self):
        return Objective("y", "minimize")

    def evaluate(self, config):
        return Measurement({"y": config["x"]})


def test_a_system_without_fidelity_still_works_and_refuses_a_fidelity():
    system = Plain()
    assert system.fidelity() is None and system.predictor() is None
    assert evaluate_at(system, {"x": 0.2}).metrics == {"y": 0.2}
    with pytest.raises(InvalidFidelity, match="declares no fidelity"):
        evaluate_at(system, {"x": 0.2}, fidelity=5)
    report = check_system(system, study_budget=0, samples=3)
    assert "fidelity" in _names(report.skipped)


def test_check_system_passes_an_honest_fidelity_and_catches_a_dishonest_one():
    report = check_system(Counter(), study_budget=0, samples=3)
    assert {"fidelity_lowest_evaluates", "fidelity_cheaper", "fidelity_out_of_range_refused"} <= set(report.passed)
    liar = check_system(Counter(honest=False), study_budget=0, samples=3, raise_on_failure=False)
    assert "fidelity_cheaper" in _names(liar.failed)
    lax = check_system(Counter(refuses=False), study_budget=0, samples=3, raise_on_failure=False)
    assert "fidelity_out_of_range_refused" in _names(lax.failed)


def test_evaluate_at_passes_the_checked_value_and_the_measurement_records_it():
    m = evaluate_at(Counter(), {"x": 0.3}, fidelity=40.0)
    assert measured_at(m) == {"name": "terms", "kind": "operations", "value": 40, "full": False, "work": 40.0}
    assert measured_at(Counter().evaluate({"x": 0.3}))["full"] is True
    with pytest.raises(InvalidFidelity, match="outside"):
        evaluate_at(Counter(), {"x": 0.3}, fidelity=5)


# --------------------------------------------------------------------------- apply costs in the space


def test_space_json_keeps_apply_cost_and_old_json_loads_as_none():
    space = Space([Int("a", 0, 10), Ordinal("page_size", (1024, 4096), default=4096, apply_cost="rebuild"),
                   Bool("b", default=True, apply_cost="reload")])
    again = Space.from_json(json.loads(json.dumps(space.to_json())))
    assert again.apply_costs() == {"a": "none", "page_size": "rebuild", "b": "reload"}
    old = {"params": [{"kind": "int", "name": "a", "low": 0, "high": 10, "log": False, "default": None}], "constraints": []}
    assert Space.from_json(old).apply_costs() == {"a": "none"}
    assert space.to_json()["params"][0] == old["params"][0]  # a default cost adds nothing to the stored form
    assert Int("x", 0, 5).low == 0  # apply_cost is keyword-only: positional arguments keep their meaning


def test_apply_cost_is_validated_and_change_cost_takes_the_costliest_change():
    with pytest.raises(ValueError, match="apply_cost"):
        Space([Int("a", 0, 1, apply_cost="reboot")])
    space = Space([Int("a", 0, 10), Int("r", 0, 10, apply_cost="restart"), Int("v", 0, 10, apply_cost="rebuild")])
    base = {"a": 1, "r": 1, "v": 1}
    assert space.change_cost(base, base) == "none"
    assert space.change_cost(base, {**base, "a": 2}) == "none"
    assert space.change_cost(base, {**base, "a": 2, "r": 2}) == "restart"
    assert space.change_cost(base, {**base, "v": 2}) == "rebuild"
    assert space.subspace({"v": 3}).apply_costs()["v"] == "rebuild"


# --------------------------------------------------------------------------- adapters


def _work(m: Measurement) -> float:
    return measured_at(m)["work"]


def test_sqlite_honours_operations_and_page_size_is_a_rebuild():
    from autosys_adapters.sqlite.knobs import SQLiteKnobs

    # a generous time cap (it shrinks with the fidelity) and a fast config: the operation counts bind
    system = SQLiteKnobs(records=300, operations=640, repeats=1, seconds=120.0)
    space = system.space()
    assert space["page_size"].apply_cost == "rebuild" and space["locking_mode"].apply_cost == "restart"
    assert space["synchronous"].apply_cost == "none"
    fid = system.fidelity()
    assert (fid.kind, fid.min, fid.max) == ("operations", 50, 640)
    config = {**system.default(), "journal_mode": "wal", "synchronous": "normal"}
    with system:
        low = system.evaluate(config, fidelity=fid.min)
        full = system.evaluate(config)
    assert _work(low) == 50 == low.metrics["operations_done"]
    assert _work(full) == 640 and measured_at(full)["full"]
    with pytest.raises(InvalidFidelity):
        system.evaluate(config, fidelity=641)


def test_sqlite_service_honours_its_duration():
    from autosys_adapters.sqlite.service import SQLiteService

    system = SQLiteService(records=300, seconds=0.4)
    with system:
        low = system.evaluate(system.default(), fidelity=0.025)
        full = system.evaluate(system.default())
    assert measured_at(low)["value"] == 0.025 and _work(low) < _work(full)


def test_kv_honours_operations_and_rebuilding_knobs_say_so():
    from autosys_adapters.kv.system import KVSelect

    system = KVSelect(records=300, operations=640, seconds=120.0, engines="dict,sqlite")
    space = system.space()
    assert space["engine"].apply_cost == "rebuild" and space["sqlite_page_size"].apply_cost == "rebuild"
    assert space["sqlite_synchronous"].apply_cost == "none"
    with system:
        assert system.fidelity().min == 640 // 9
        low = system.evaluate({"engine": "dict"}, fidelity=100)
        full = system.evaluate({"engine": "dict"})
    assert _work(low) == 100 == low.metrics["operations_done"] and _work(full) == 640


def test_page_policy_sampled_and_prefix_fidelities_simulate_fewer_requests():
    from autosys_adapters.pagecache.system import PagePolicySystem

    sampled = PagePolicySystem(requests=20_000, pages=5_000, seed=1)
    assert sampled.space()["policy"].apply_cost == "restart"
    fid = sampled.fidelity()
    assert fid.kind == "sampled_trace" and fid.min == pytest.approx(1_000 / sampled._load().n_obj)
    config = sampled.default()
    low, full = sampled.evaluate(config, fidelity=0.25), sampled.evaluate(config)
    assert _work(full) == 20_000 and 0.15 * 20_000 < _work(low) < 0.35 * 20_000
    assert low.info["capacity_pages"] == pytest.approx(0.25 * full.info["capacity_pages"], abs=1)
    prefix = PagePolicySystem(requests=20_000, pages=5_000, seed=1, fidelity_by="prefix")
    assert prefix.fidelity().kind == "trace_prefix"
    assert _work(prefix.evaluate(config, fidelity=0.1)) == 2_000


def test_shards_sampling_keeps_the_miss_ratio_within_its_stated_error():
    """On a zipf 0.8 trace (200k requests, 20k pages, cache 10%), a 10% spatial sample stays within 0.04.

    experiments/shards_sampling.py measured a mean absolute error of 0.013
    (max 0.027) there over 8 policies and 5 seeds.
    """
    from autosys_adapters.pagecache.system import PagePolicySystem

    system = PagePolicySystem(generator="zipf", requests=200_000, pages=20_000, cache_size=0.1, seed=0)
    space = system.space()
    for policy in ("lru", "s3fifo", "arc"):
        config = space.complete({"policy": policy})
        full = system.evaluate(config).metrics["miss_ratio"]
        low = system.evaluate(config, fidelity=0.1)
        assert abs(low.metrics["miss_ratio"] - full) < 0.04, policy
        assert _work(low) < 0.15 * 200_000


def test_spatial_sample_keeps_every_request_of_a_sampled_page():
    from autosys_adapters.pagecache.traces import spatial_sample, zipf

    trace = zipf(50_000, 5_000, seed=3)
    sample = spatial_sample(trace, 0.2)
    kept = np.unique(sample.ids)
    assert np.sum(np.isin(trace.ids, kept)) == len(sample)  # all or nothing per page
    assert 0.1 < len(kept) / trace.footprint < 0.3
    assert np.array_equal(spatial_sample(trace, 0.2).ids, sample.ids)  # stable across calls and processes


def test_learned_index_honours_its_query_sample_and_only_structure_is_a_rebuild():
    from autosys_adapters.learned_index.system import LearnedIndexSystem

    system = LearnedIndexSystem(n_keys=20_000, queries=6_400, repeats=2)
    space = system.space()
    assert space["leaves"].apply_cost == "rebuild" and space["search"].apply_cost == "none"
    low = system.evaluate(system.default(), fidelity=200)
    full = system.evaluate(system.default())
    assert low.info["queries"] == 200 and _work(low) == 400 and _work(full) == 12_800
    assert system.fidelity().min == 200


def test_page_cache_app_honours_a_prefix():
    from autosys_adapters.pagecache.app import PageCacheApp

    system = PageCacheApp(capacity=20, pages=list(range(50)) * 20)
    low = system.evaluate({"policy": "lru"}, fidelity=0.1)
    assert _work(low) == 100 and _work(system.evaluate({"policy": "lru"})) == 1000


def test_kernel_honours_repeats_and_its_cost_model_predicts(tmp_path):
    from autosys_adapters.kernels.cost_model import KernelCostModel, KernelRecord
    from autosys_adapters.kernels.system import KernelSchedule

    system = KernelSchedule(shape="32,32,32", repeats=3, cache_dir=str(tmp_path))
    assert set(system.space().apply_costs().values()) == {"rebuild"}
    assert system.predictor() is None
    low = system.evaluate(system.default(), fidelity=1)
    full = system.evaluate(system.default())
    assert _work(low) == 1 and _work(full) >= 2 and measured_at(full)["value"] == 3
    rng = np.random.default_rng(0)
    space = system.space()
    records = [KernelRecord("matmul", (64, 64, 64), c, float(rng.uniform(1, 20))) for c in (space.sample(rng) for _ in range(8))]
    system.use_cost_model(KernelCostModel(n_estimators=20, seed=0).fit(records))
    assert np.isfinite(system.predictor()(system.default()))
    assert "predictor" in check_system(system, study_budget=0, samples=2).passed


# --------------------------------------------------------------------------- servers (skipped without one)

PG_URL = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_postgres_apply_costs_come_from_pg_settings_context(tmp_path):
    if not _reachable(5432):
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432")
    pytest.importorskip("psycopg")
    from autosys_adapters.dbserver.postgres import PostgresKnobs

    # allow_restart only puts restart knobs in the space; reading the catalog changes nothing
    system = PostgresKnobs(url=PG_URL, allow_restart=True, restart_command="true", state_file=str(tmp_path / "s.json"),
                           knobs="shared_buffers,checkpoint_timeout,work_mem")
    try:
        costs = system.space().apply_costs()
    finally:
        system.teardown()
    assert costs == {"shared_buffers": "restart", "checkpoint_timeout": "reload", "work_mem": "none"}


def test_mysql_apply_costs_come_from_read_only_variables(tmp_path):
    if not _reachable(3306):
        pytest.skip("no MariaDB server at 127.0.0.1:3306")
    pytest.importorskip("pymysql")
    from autosys_adapters.dbserver.mysql import MySQLKnobs

    system = MySQLKnobs(allow_restart=True, restart_command="true", state_file=str(tmp_path / "s.json"),
                        knobs="innodb_log_buffer_size,innodb_io_capacity,sort_buffer_size")
    try:
        costs = system.space().apply_costs()
    finally:
        system.teardown()
    assert costs == {"innodb_log_buffer_size": "restart", "innodb_io_capacity": "reload", "sort_buffer_size": "none"}
