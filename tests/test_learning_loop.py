"""The learning loop: models trained from the knowledge base, versioned, retrained when a study lands, served by name."""

from __future__ import annotations

import numpy as np
import pytest

from autosys.learn.knowledge import StoredStudy, StoredTrial, add_study, open_knowledge_base
from autosys.learn.loop import Learner, LearningLoop, NoTrainingData
from autosys.run.study import Study


class MeanValue(Learner):
    """A toy learner: the mean value of every complete trial of `toy` studies."""

    name = "mean-value"
    systems = ("toy",)

    def rows(self, study):
        return [t.value for t in study.trials if t.state == "complete" and t.value is not None]

    def fit(self, rows):
        return sum(rows) / len(rows)


def _entry(uid: str, values: list[float], system: str = "toy") -> StoredStudy:
    trials = [StoredTrial(number=i, state="complete", config={"x": i}, value=v, feasible=True) for i, v in enumerate(values)]
    return StoredStudy(uid=uid, system=system, name=uid, origin="test", direction="maximize", metric="v", host={},
                       signature={"options": {}}, space={}, objective={}, trials=trials, n_trials=len(trials))


def test_a_model_is_retrained_exactly_when_its_studies_change(tmp_path):
    with open_knowledge_base(tmp_path / "kb.db") as kb:
        loop = LearningLoop(kb, [MeanValue()])
        with pytest.raises(NoTrainingData, match="toy"):
            loop.model("mean-value")
        kb.add(_entry("a", [1.0, 3.0]))
        kb.add(_entry("other", [100.0], system="not-toy"))  # another system's study: not read
        first = loop.model("mean-value")
        assert first.model == 2.0 and first.studies == 1 and first.rows == 2
        assert loop.model("mean-value") is first and loop.trainings == 1  # nothing new: served as it was
        kb.add(_entry("b", [5.0]))
        second = loop.model("mean-value")
        assert second.model == 3.0 and second.version != first.version and loop.trainings == 2
        assert loop.model("mean-value", exclude=["b"]).model == 2.0  # leave-one-out: its own version
        kb.add(_entry("b", [5.0, 7.0]))  # a study re-added with more trials is new data
        assert loop.model("mean-value").model == 4.0
        kb.forget(kb.studies("toy")[0].id)
        assert loop.model("mean-value").model == 6.0
        # a second loop on the same base trains the same version (the version is of the data, not of the loop)
        assert LearningLoop(kb, [MeanValue()]).model("mean-value").version == loop.model("mean-value").version
    with pytest.raises(KeyError, match="mean-value"):
        loop.model("nope")


def test_learners_need_a_name_and_systems_and_names_are_unique():
    class Nameless(MeanValue):
        name = ""

    class Other(MeanValue):
        pass

    loop = LearningLoop(kb=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        loop.register(Nameless())
    loop.register(MeanValue())
    with pytest.raises(ValueError, match="two learners"):
        loop.register(Other())


def test_the_kv_recommender_is_served_by_the_loop_from_stored_kv_studies(tmp_path):
    from autosys_adapters.kv.recommender import KVRecommender, rows_from_studies
    from autosys_adapters.kv.system import KVSelect

    kb = open_knowledge_base(tmp_path / "kb.db")
    for i, workload in enumerate(("ycsb-a", "ycsb-c")):
        system = KVSelect(workload=workload, records=400, operations=800, engines="dict,sorteddict,sqlite")
        study = Study.create(tmp_path / "studies" / workload, system, tuner="random", budget=5, seed=i, intensify=False)
        study.run()
        add_study(study, kb)
        study.close()
    loop = LearningLoop(kb)
    assert loop.register_system("kv") == ["kv-recommender"]  # KVSelect.learners() names it
    served = loop.model("kv-recommender")
    assert isinstance(served.model, KVRecommender) and served.studies == 2
    # the same rows as reading the study folders (the old training path), so both train the same model
    from_folders = rows_from_studies(tmp_path / "studies")
    assert served.rows == len(from_folders) > 0
    target = KVSelect(workload="ycsb-b", records=400, operations=800, engines="dict,sorteddict,sqlite")
    recommendation = served.model.recommend(target.kv_workload, target.space(), k=1)[0]
    assert recommendation["config"]["engine"] in ("dict", "sorteddict", "sqlite")
    kb.close()
    # the CLI: the recommender served from the knowledge base, and the loop's models listed with their versions
    from typer.testing import CliRunner

    from autosys.cli.kb import app as kb_app
    from autosys_adapters.kv.cli import recommend_app

    where = str(tmp_path / "kb.db")
    result = CliRunner().invoke(recommend_app, ["kv", "--workload", "ycsb-b", "--training", "kb", "--kb", where])
    assert result.exit_code == 0, result.output
    assert f"version {served.version}" in result.output and "2 kv studies" in result.output
    result = CliRunner().invoke(kb_app, ["models", "--train", "--kb", where])
    assert result.exit_code == 0 and "kv-recommender" in result.output and served.version in result.output, result.output
    missing = CliRunner().invoke(recommend_app, ["kv", "--workload", "ycsb-b", "--training", "kb", "--kb",
                                       str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no knowledge base" in missing.output


def test_the_kernel_cost_model_is_served_by_the_loop_and_predicts_for_the_kernel_system():
    from autosys_adapters.kernels.cost_model import KernelCostModel
    from autosys_adapters.kernels.system import KernelSchedule

    system = KernelSchedule(op="matmul", shape="64,64,64")
    configs = [system.space().sample(np.random.default_rng(i)) for i in range(12)]
    entry = _entry("mm", [1.0 + (c.get("unroll", 1) or 1) for c in configs], system="kernel")
    for trial, config in zip(entry.trials, configs):
        trial.config = dict(config)
        trial.metrics = {"gflops": trial.value}
    entry.signature = {"options": {"op": "matmul", "shape": "64,64,64", "threads": 1}}

    class Base:  # a knowledge base of one study, held in memory
        def studies(self, system):
            return [entry] if system == "kernel" else []

        def get(self, study_id):
            return entry

    loop = LearningLoop(Base())  # type: ignore[arg-type]
    assert loop.register_system("kernel") == ["kernel-cost-model"]
    served = loop.model("kernel-cost-model")
    assert isinstance(served.model, KernelCostModel) and served.rows == 12
    system.use_cost_model(served.model)
    predict = system.predictor()
    assert predict is not None and predict(configs[0]) > 0
