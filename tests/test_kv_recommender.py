"""The learned recommender: training rows from stored studies, recommendations, seeding, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from autosys_adapters.kv.cli import recommend_app
from autosys_adapters.kv.features import config_features, workload_features
from autosys_adapters.kv.recommender import KVRecommender, configs_of, rows_from_studies
from autosys_adapters.kv.workloads import load_kv_workload
from autosys_adapters.kv.system import KVSelect
from autosys.run.study import Study
from autosys.tuners import make_tuner

SMALL = dict(records=400, operations=400, seconds=2.0)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Three small stored studies, as `autosys tune kv` would leave them."""
    root = tmp_path_factory.mktemp("kv-studies")
    for workload in ("ycsb-c", "scan-heavy", "insert-heavy"):
        system = KVSelect(workload=workload, engines="dict,sorteddict,sqlite", **SMALL)
        Study.create(root / workload, system, tuner="random", budget=8, seed=1).run().close()
    return root


def test_rows_from_studies(studies):
    rows = rows_from_studies(studies)
    assert set(rows["workload"]) == {"ycsb-c", "scan-heavy", "insert-heavy"}
    assert len(rows) >= 20
    assert (rows["throughput"] > 0).all()
    assert any(c.startswith("wf_") for c in rows.columns) and "config.engine" in rows.columns
    configs = configs_of(rows)
    space = KVSelect(engines="dict,sorteddict,sqlite", **SMALL).space()
    for config in configs:
        assert space.validate(config) == config  # NaN columns of other engines are dropped


def test_recommend_without_trials_and_seed_a_study(studies, tmp_path):
    rows = rows_from_studies(studies)
    model = KVRecommender(n_estimators=30, n_candidates=50).fit(rows)
    system = KVSelect(workload="ycsb-b", **SMALL)
    space = system.space()
    recs = model.recommend(system.kv_workload, space, k=3)
    assert len(recs) == 3
    assert len({json.dumps(r["config"], sort_keys=True) for r in recs}) == 3
    for r in recs:
        space.validate(r["config"])
        assert r["predicted"]["throughput"] > 0
    preds = [r["predicted"]["share_of_best"] for r in recs]
    assert preds == sorted(preds, reverse=True)
    # a cap far below any measured footprint: nothing is predicted feasible, and it says so
    tight = load_kv_workload("ycsb-b", records=400, operations=400, memory_cap_mb=1e-6)
    assert model.recommend(tight, space, k=1)[0]["feasible"] is False
    # seeding a short study: the recommendations are asked first
    tuner = make_tuner("random", space, direction="maximize", seed=0)
    seeded = model.seed_tuner(tuner, system.kv_workload, k=2)
    assert [tuner.ask().config for _ in range(2)] == seeded


def test_memory_model_separates_in_memory_from_disk_engines(studies):
    rows = rows_from_studies(studies)
    model = KVRecommender(n_estimators=30).fit(rows)
    w = load_kv_workload("ycsb-c", records=400, operations=400)
    space = KVSelect(engines="dict,sqlite", **SMALL).space()
    pred = model.predict(w, [{"engine": "dict"}, space.complete({"engine": "sqlite", "sqlite_cache_kib": 64})])
    assert pred["disk_bytes"][0] < pred["disk_bytes"][1]  # a dict writes nothing to disk


def test_features_are_finite_and_distinguish_workloads():
    a = workload_features(load_kv_workload("ycsb-a", records=500, operations=500))
    e = workload_features(load_kv_workload("ycsb-e", records=500, operations=500))
    assert all(np.isfinite(v) for v in a.values())
    assert a["wf_scan"] == 0 and e["wf_scan"] > 0.9
    f = config_features({"engine": "dict"})
    assert f["cf_engine_dict"] == 1.0 and f["cf_rocksdb_bloom_bits"] == -1.0


def test_empty_training_is_a_clear_error():
    with pytest.raises(ValueError, match="no training rows"):
        KVRecommender().fit(pd.DataFrame())


def test_cli_recommend_kv(studies, tmp_path):
    workload = tmp_path / "w.json"
    workload.write_text(json.dumps({"mix": {"read": 0.9, "update": 0.1}, "records": 400, "operations": 400}))
    out = tmp_path / "rec.json"
    result = CliRunner().invoke(
        recommend_app, ["kv", "--workload", str(workload), "--training", str(studies), "--top", "2", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "predicted" in result.output
    recs = json.loads(out.read_text())["recommendations"]
    assert len(recs) == 2 and recs[0]["config"]["engine"] in ("dict", "sorteddict", "sqlite", "lmdb", "rocksdb")
    missing = CliRunner().invoke(recommend_app, ["kv", "--workload", str(workload), "--training", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no training data" in missing.output


def test_sample_workloads_cover_the_space_and_are_seeded():
    from autosys_adapters.kv.workloads import sample_workloads

    first, again, other = sample_workloads(30, seed=3), sample_workloads(30, seed=3), sample_workloads(30, seed=4)
    assert [w.to_json() for w in first] == [w.to_json() for w in again]
    assert [w.to_json() for w in first] != [w.to_json() for w in other]
    assert len({w.name for w in first}) == 30
    with_scans = sum("scan" in w.base.mix for w in first)
    assert 0 < with_scans < 30  # some scan mixes, not only
    assert any(w.memory_cap_mb > 0 for w in first) and any(w.memory_cap_mb == 0 for w in first)
    assert {w.base.distribution for w in first} == {"zipfian", "uniform", "latest"}
    for w in first:
        assert load_kv_workload(w.to_json()).to_json() == w.to_json()  # a valid, round-trippable spec


def test_build_corpus_studies_every_engine_and_resumes(tmp_path):
    from autosys_adapters.kv.training import build_corpus

    budgets = {"dict": 1, "sorteddict": 2}
    kw = dict(seconds=0.2, budgets=budgets, progress=lambda line: None, records=300, operations=300,
              engines="dict,sorteddict")
    build_corpus(tmp_path, 2, seed=1, **kw)
    rows = rows_from_studies(tmp_path)
    assert set(rows["workload"]) == {"corpus-00", "corpus-01"}
    per_engine = rows.groupby(["workload", "config.engine"]).size().to_dict()
    assert per_engine == {(w, e): n for w in ("corpus-00", "corpus-01") for e, n in budgets.items()}
    build_corpus(tmp_path, 2, seed=1, **kw)  # complete studies are resumed, not repeated
    assert len(rows_from_studies(tmp_path)) == len(rows)
