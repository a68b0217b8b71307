"""Learned engine selection: predict throughput, memory and disk from (workload, config).

Training rows come from studies stored by autosys (`rows_from_studies`): every
completed trial of a `kv` study gives (workload features, config features) ->
measured throughput, memory_bytes, disk_bytes. Random forests learn log
throughput relative to the best measured on the same workload (what ranks
configs), log throughput itself (what is shown), and the log of memory and
disk per byte of data (what is checked against caps). `recommend` then
scores candidate configs (a portfolio: the best few feasible configs of each
training workload, optionally plus random samples of the space) for a new workload from its features alone, drops those predicted
to break the workload's caps, and returns the best: no trial is run.
`seed_tuner` enqueues the top recommendations so a short study starts there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from autosys_adapters.kv.features import config_features, workload_features
from autosys_adapters.kv.workloads import KVWorkload, load_kv_workload
from autosys.core.space import Config, InvalidConfig, Space
from autosys.learn.loop import Learner

MB = 1 << 20
CONFIG_PREFIX = "config."
#: names a KV study's system is stored under (the registry name, the class path, and older paths)
KV_SYSTEM_NAMES = ("kv", "autosys_adapters.kv.system:KVSelect", "adapters.kv.system:KVSelect",
                   "adapters.kv_select:KVSelect", "KVSelect")


# ----------------------------------------------------------------------------- training data


def rows_from_studies(root: str | Path, system_name: str = "kv") -> pd.DataFrame:
    """One row per completed trial of every `kv` study under `root` (searched recursively).

    Columns: study, workload, the `wf_*` workload features, `config.*` (the
    config), throughput, memory_bytes, disk_bytes, feasible.
    """
    from autosys.storage import SQLiteStorage
    from autosys.run.study import open_study
    from autosys.core.trial import TrialState

    rows: list[dict[str, Any]] = []
    for file in sorted(Path(root).rglob(SQLiteStorage.FILENAME)):
        storage, spec = open_study(file.parent)
        try:
            if spec.get("system") not in (system_name, *KV_SYSTEM_NAMES):
                continue
            trials = [(t.config, t.metrics, t.feasible) for t in storage.trials((TrialState.COMPLETE,))]
            rows += _rows(str(file.parent), spec.get("system_options", {}), trials)
        finally:
            storage.close()
    return pd.DataFrame(rows)


def rows_from_knowledge(study: Any) -> list[dict[str, Any]]:
    """The same rows from one knowledge-base study (`autosys.learn.knowledge.StoredStudy`, trials filled)."""
    trials = [(t.config, t.metrics, t.feasible) for t in study.trials if t.state == "complete"]
    return _rows(f"kb:{study.uid}", study.signature.get("options", {}), trials)


def _rows(study: str, options: Mapping[str, Any], trials: Iterable[tuple[Mapping, Mapping, bool]]) -> list[dict[str, Any]]:
    """Training rows of one study: its workload's features beside each measured config."""
    workload = workload_from_options(options)
    feats = workload_features(workload, int(options.get("seed", 0)))
    rows = []
    for config, metrics, feasible in trials:
        if not all(k in metrics for k in ("throughput", "memory_bytes", "disk_bytes")):
            continue
        row: dict[str, Any] = {"study": study, "workload": workload.name, **feats}
        row.update({CONFIG_PREFIX + k: v for k, v in config.items()})
        row.update(throughput=metrics["throughput"], memory_bytes=metrics["memory_bytes"],
                   disk_bytes=metrics["disk_bytes"], feasible=bool(feasible))
        rows.append(row)
    return rows


def workload_from_options(options: Mapping[str, Any]) -> KVWorkload:
    """Rebuild the KVWorkload a KVSelect was constructed with."""
    return load_kv_workload(
        options.get("workload", "ycsb-a"),
        records=options.get("records", 0),
        operations=options.get("operations", 0),
        value_size=options.get("value_size", 0),
        memory_cap_mb=options.get("memory_cap_mb", 0.0),
        disk_cap_mb=options.get("disk_cap_mb", 0.0),
    )


def configs_of(frame: pd.DataFrame) -> list[Config]:
    """The config of each row (NaN / missing columns dropped)."""
    cols = [c for c in frame.columns if c.startswith(CONFIG_PREFIX)]
    out = []
    for record in frame[cols].to_dict("records"):
        config = {}
        for key, value in record.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if isinstance(value, (np.integer,)):
                value = int(value)
            elif isinstance(value, (np.floating,)):
                value = float(value)
            elif isinstance(value, (np.bool_,)):
                value = bool(value)
            config[key[len(CONFIG_PREFIX):]] = value
        out.append(config)
    return out


# ----------------------------------------------------------------------------- the model


class KVRecommender:
    """Random forests over (workload features, config features); recommends with no trial runs."""

    def __init__(
        self,
        n_estimators: int = 200,
        portfolio: int = 5,
        n_candidates: int = 0,
        cap_margin: float = 0.9,
        max_features: float | str = 1.0,
        random_state: int = 0,
    ):
        if not 0 < cap_margin <= 1:
            raise ValueError("cap_margin must be in (0, 1]: the share of a cap a prediction may use")
        if portfolio < 0 or n_candidates < 0:
            raise ValueError("portfolio and n_candidates must be >= 0")
        self.n_estimators = n_estimators
        self.portfolio = portfolio
        self.max_features = max_features
        self.n_candidates = n_candidates
        self.cap_margin = cap_margin
        self.random_state = random_state
        self._models: dict[str, Any] = {}
        self._seen: list[Config] = []
        self._columns: list[str] = []

    # --- fitting
    def fit(self, rows: pd.DataFrame) -> "KVRecommender":
        """Learn from training rows (see `rows_from_studies`)."""
        from sklearn.ensemble import RandomForestRegressor

        if rows.empty:
            raise ValueError("no training rows: run some kv studies first (experiments/kv_training_data.py)")
        configs = configs_of(rows)
        wf_cols = [c for c in rows.columns if c.startswith("wf_")]
        X = self._matrix(rows[wf_cols].to_dict("records"), configs)
        data_bytes = 10 ** rows["wf_log_data_bytes"].to_numpy()
        log_tp = np.log(rows["throughput"].to_numpy())
        # ranking target: log throughput relative to the best measured on the same workload,
        # so the forest learns which config wins where, not how fast each workload is overall
        workload_key = rows[wf_cols].round(9).astype(str).agg("|".join, axis=1)
        best = pd.Series(log_tp).groupby(workload_key.to_numpy()).transform("max").to_numpy()
        targets = {
            "relative": log_tp - best,
            "throughput": log_tp,
            "memory": np.log1p(rows["memory_bytes"].to_numpy() / data_bytes),
            "disk": np.log1p(rows["disk_bytes"].to_numpy() / data_bytes),
        }
        for name, y in targets.items():
            model = RandomForestRegressor(
                n_estimators=self.n_estimators,
                min_samples_leaf=2,
                max_features=self.max_features,
                random_state=self.random_state,
                n_jobs=1,
            )
            self._models[name] = model.fit(X, y)
        # candidates: each training workload's best feasible configs (a portfolio), or every config seen
        order = np.argsort(-log_tp, kind="stable")
        feasible = rows["feasible"].astype(bool).to_numpy() if "feasible" in rows else np.ones(len(rows), bool)
        taken: dict[str, int] = {}
        unique: dict[str, Config] = {}
        for i in order:
            if self.portfolio:
                key = workload_key.iloc[i]
                if not feasible[i] or taken.get(key, 0) >= self.portfolio:
                    continue
                taken[key] = taken.get(key, 0) + 1
            unique.setdefault(json.dumps(configs[i], sort_keys=True, default=str), configs[i])
        self._seen = list(unique.values())
        return self

    def _matrix(self, workload_rows: list[Mapping[str, float]], configs: list[Config]) -> np.ndarray:
        records = [{**w, **config_features(c)} for w, c in zip(workload_rows, configs)]
        if not self._columns:
            self._columns = sorted(records[0])
        return np.array([[r.get(col, 0.0) for col in self._columns] for r in records], dtype=float)

    # --- predicting
    def predict(self, workload: KVWorkload, configs: list[Config], seed: int = 0) -> pd.DataFrame:
        """Predicted throughput, memory_bytes and disk_bytes of each config on `workload`."""
        if not self._models:
            raise RuntimeError("fit the recommender before predicting")
        feats = workload_features(workload, seed)
        X = self._matrix([feats] * len(configs), configs)
        data_bytes = 10 ** feats["wf_log_data_bytes"]
        return pd.DataFrame(
            {
                "relative": np.exp(self._models["relative"].predict(X)),
                "throughput": np.exp(self._models["throughput"].predict(X)),
                "memory_bytes": np.expm1(self._models["memory"].predict(X)) * data_bytes,
                "disk_bytes": np.expm1(self._models["disk"].predict(X)) * data_bytes,
            }
        )

    def candidates(self, space: Space) -> list[Config]:
        """The portfolio (or every config seen) that fits `space`, plus `n_candidates` random samples."""
        out = []
        for config in self._seen:
            try:
                out.append(space.validate(config))
            except InvalidConfig:
                continue  # an engine not installed here, or a knob that no longer exists
        rng = np.random.default_rng(self.random_state)
        out.extend(space.sample(rng) for _ in range(self.n_candidates))
        return out

    def rank(self, workload: KVWorkload, space: Space, seed: int = 0) -> pd.DataFrame:
        """Every candidate with its predictions, feasible ones first, best throughput first."""
        configs = self.candidates(space)
        table = self.predict(workload, configs, seed)
        table["config"] = configs
        over = np.zeros(len(table))
        if workload.memory_cap_mb > 0:
            over = np.maximum(over, table["memory_bytes"] / (workload.memory_cap_mb * MB * self.cap_margin))
        if workload.disk_cap_mb > 0:
            over = np.maximum(over, table["disk_bytes"] / (workload.disk_cap_mb * MB * self.cap_margin))
        table["cap_use"] = over
        table["feasible"] = over <= 1.0
        # infeasible candidates only as a last resort, least over their cap first
        table["_order"] = np.where(table["feasible"], -table["relative"], over * 1e18)
        return table.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)

    def recommend(self, workload: KVWorkload, space: Space, k: int = 1, seed: int = 0) -> list[dict[str, Any]]:
        """The top `k` configs for `workload`, each with its predicted metrics."""
        table = self.rank(workload, space, seed)
        out, keys = [], set()
        for row in table.itertuples(index=False):
            key = space.config_key(row.config)
            if key in keys:
                continue
            keys.add(key)
            out.append(
                {
                    "config": row.config,
                    "predicted": {
                        "throughput": float(row.throughput),
                        "share_of_best": float(row.relative),
                        "memory_bytes": float(row.memory_bytes),
                        "disk_bytes": float(row.disk_bytes),
                    },
                    "feasible": bool(row.feasible),
                }
            )
            if len(out) == k:
                break
        return out

    def seed_tuner(self, tuner, workload: KVWorkload, k: int = 3, seed: int = 0) -> list[Config]:
        """Enqueue the top `k` recommendations in `tuner` (its space decides what fits)."""
        configs = [r["config"] for r in self.recommend(workload, tuner.space, k=k, seed=seed)]
        for config in configs:
            tuner.enqueue(config, source="recommended")
        return configs


class KVRecommenderLearner(Learner):
    """The KV recommender as a model of the learning loop (autosys/learn/loop.py): trained on every
    `kv` study in the knowledge base, retrained when one lands."""

    name = "kv-recommender"
    systems = KV_SYSTEM_NAMES

    def __init__(self, **options: Any):
        self.options = options

    def rows(self, study: Any) -> list[dict[str, Any]]:
        return rows_from_knowledge(study)

    def fit(self, rows: list[dict[str, Any]]) -> KVRecommender:
        return KVRecommender(**self.options).fit(pd.DataFrame(rows))


def fit_from(training: str | Path | pd.DataFrame | Iterable[str | Path], **kwargs: Any) -> KVRecommender:
    """A recommender fitted on a CSV file, a DataFrame, or study directories."""
    if isinstance(training, pd.DataFrame):
        rows = training
    else:
        paths = [training] if isinstance(training, (str, Path)) else list(training)
        frames = []
        for path in map(Path, paths):
            if path.is_dir():
                frames.append(rows_from_studies(path))
            elif path.is_file():
                frames.append(pd.read_csv(path))
            else:
                raise ValueError(f"training data {path} is neither a CSV file nor a directory of studies")
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return KVRecommender(**kwargs).fit(rows)


__all__ = ["KV_SYSTEM_NAMES", "KVRecommender", "KVRecommenderLearner", "configs_of", "fit_from", "rows_from_knowledge",
           "rows_from_studies", "workload_from_options"]
