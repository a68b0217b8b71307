"""Which knobs matter: rank a study's knobs from its trials, and pin the rest.

Two rankings over the completed, feasible trials:

- `lasso`: as OtterTune does, standardize one-hot/log-scaled knob features,
  add their degree-2 polynomial terms, and walk the Lasso path from strong to
  weak regularization; a knob ranks by how early any feature involving it
  enters the path (ties broken by the size of its coefficients at the end).
- `forest`: permutation importance of each whole knob column for a random
  forest trained on the same data (scored on the training trials with
  repeats, which is what a study has; the spread is reported).

`top_k_fixed` turns a ranking into the `fixed=` mapping of `Study.create`,
pinning every knob outside the top k to the best trial's (or the default's)
value, so a new study tunes only the knobs that matter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

METHODS = ("lasso", "forest")


def trials_frame(source: Any) -> tuple[pd.DataFrame, str, str]:
    """(config columns + `value`, objective metric, direction) from a Study, a study directory or a DataFrame.

    A DataFrame must have `value` and `config.*` columns (as `Study.dataframe()`); it is taken as maximize.
    """
    direction, metric = "maximize", "value"
    if isinstance(source, pd.DataFrame):
        df = source
    elif hasattr(source, "dataframe") and hasattr(source, "objective"):
        df, metric, direction = source.dataframe(), source.objective.metric, source.objective.direction
    else:
        from autosys.run.study import open_study

        storage, spec = open_study(Path(source))
        try:
            rows = []
            for t in storage.trials():
                row = {"state": t.state.value, "value": t.value, "feasible": t.feasible}
                row.update({f"config.{k}": v for k, v in t.config.items()})
                rows.append(row)
            df = pd.DataFrame(rows)
        finally:
            storage.close()
        metric, direction = spec["objective"]["metric"], spec["objective"].get("direction", "maximize")
    if "value" not in df:
        raise ValueError("no 'value' column: not a study's trials")
    keep = df["value"].notna()
    if "state" in df:
        keep &= df["state"] == "complete"
    if "feasible" in df:
        keep &= df["feasible"].astype(bool)
    df = df[keep]
    configs = df[[c for c in df.columns if c.startswith("config.")]].rename(columns=lambda c: c[len("config."):])
    configs["value"] = df["value"].astype(float).to_numpy()
    return configs.reset_index(drop=True), metric, direction


def _design(configs: pd.DataFrame, knobs: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Numeric features (log-scaled where positive and wide-ranging) and one-hot categoricals; owner knob per column."""
    columns, owners = [], []
    for knob in knobs:
        col = configs[knob]
        numeric = pd.to_numeric(col, errors="coerce")
        if numeric.notna().all() and not col.map(lambda v: isinstance(v, (bool, np.bool_))).any():
            x = numeric.to_numpy(dtype=float)
            if (x > 0).all() and x.max() / max(x.min(), 1e-12) > 50:
                x = np.log(x)
            columns.append(x)
            owners.append(knob)
        else:
            text = col.astype(str).fillna("<inactive>")
            for level in sorted(text.unique())[1:] if text.nunique() > 1 else []:
                columns.append((text == level).to_numpy(dtype=float))
                owners.append(knob)
    if not columns:
        return np.zeros((len(configs), 0)), []
    X = np.column_stack(columns)
    std = X.std(axis=0)
    keep = std > 0
    X = (X[:, keep] - X[:, keep].mean(axis=0)) / std[keep]
    return X, [o for o, k in zip(owners, keep) if k]


def _target(configs: pd.DataFrame, direction: str) -> np.ndarray:
    y = configs["value"].to_numpy(dtype=float)
    if direction == "maximize":
        y = -y  # a loss: lower is better, signs mean the same in both directions
    if (configs["value"] > 0).all():
        y = np.sign(y) * np.log(np.abs(y))  # throughputs span orders of magnitude
    return (y - y.mean()) / (y.std() or 1.0)


def lasso_importance(configs: pd.DataFrame, direction: str = "maximize", degree: int = 2) -> pd.DataFrame:
    """OtterTune-style ranking: the order in which knobs enter the Lasso path."""
    from sklearn.linear_model import lasso_path
    from sklearn.preprocessing import PolynomialFeatures

    knobs = [c for c in configs.columns if c != "value"]
    X, owners = _design(configs, knobs)
    y = _target(configs, direction)
    scores = {k: 0.0 for k in knobs}
    entry = {k: 0.0 for k in knobs}
    if X.shape[1] and len(y) >= 3:
        poly = PolynomialFeatures(degree=degree, include_bias=False)
        P = poly.fit_transform(X)
        P_std = P.std(axis=0)
        P_std[P_std == 0] = 1.0
        P = (P - P.mean(axis=0)) / P_std
        involved = [{owners[i] for i, p in enumerate(powers) if p} for powers in poly.powers_]
        alpha_max = float(np.max(np.abs(P.T @ y)) / len(y)) or 1.0
        alphas, coefs, _ = lasso_path(P, y, alphas=np.geomspace(alpha_max, alpha_max * 1e-3, 60))
        for j, knobs_j in enumerate(involved):
            nonzero = np.flatnonzero(np.abs(coefs[j]) > 1e-10)
            if len(nonzero):
                first_alpha = float(alphas[nonzero[0]])
                for k in knobs_j:
                    entry[k] = max(entry[k], first_alpha)
            final = abs(float(coefs[j, -1]))
            for k in knobs_j:
                scores[k] += final / len(knobs_j)
    frame = pd.DataFrame({"knob": knobs, "entry_alpha": [entry[k] for k in knobs], "coef": [scores[k] for k in knobs]})
    top = frame["entry_alpha"].max() or 1.0
    frame["importance"] = frame["entry_alpha"] / top
    frame = frame.sort_values(["entry_alpha", "coef"], ascending=False).reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame[["rank", "knob", "importance", "entry_alpha", "coef"]]


def forest_importance(configs: pd.DataFrame, direction: str = "maximize", seed: int = 0, repeats: int = 10) -> pd.DataFrame:
    """Permutation importance of each knob for a random forest.

    Permutes a knob's one-hot columns together (sklearn's permutation_importance permutes single columns).
    """
    from sklearn.ensemble import RandomForestRegressor

    knobs = [c for c in configs.columns if c != "value"]
    y = _target(configs, direction)
    X, owners = _design(configs, knobs)
    means = {k: 0.0 for k in knobs}
    stds = {k: 0.0 for k in knobs}
    if X.shape[1] and len(y) >= 3:
        # permute whole knobs: group one-hot columns of a knob together
        groups = {k: [i for i, o in enumerate(owners) if o == k] for k in knobs}
        model = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed).fit(X, y)
        base = model.score(X, y)
        rng = np.random.default_rng(seed)
        for k, cols in groups.items():
            if not cols:
                continue
            drops = []
            for _ in range(repeats):
                Xp = X.copy()
                order = rng.permutation(len(X))
                Xp[:, cols] = X[order][:, cols]
                drops.append(base - model.score(Xp, y))
            means[k], stds[k] = float(np.mean(drops)), float(np.std(drops))
    frame = pd.DataFrame({"knob": knobs, "importance": [means[k] for k in knobs], "std": [stds[k] for k in knobs]})
    frame = frame.sort_values("importance", ascending=False).reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame[["rank", "knob", "importance", "std"]]


def knob_importance(source: Any, method: str = "both", seed: int = 0) -> pd.DataFrame:
    """A ranked DataFrame of knobs for a Study, a study directory, or a trials DataFrame.

    `method` is "lasso", "forest" or "both" (columns of both, ranked by their mean rank).
    """
    if method not in (*METHODS, "both"):
        raise ValueError(f"method must be one of lasso, forest, both, not {method!r}")
    configs, _metric, direction = trials_frame(source)
    knobs = [c for c in configs.columns if c != "value"]
    if len(configs) < 3:
        raise ValueError(f"need at least 3 completed trials to rank knobs, have {len(configs)}")
    if not knobs:
        raise ValueError("the trials have no knobs to rank")
    if method == "lasso":
        return lasso_importance(configs, direction)
    if method == "forest":
        return forest_importance(configs, direction, seed=seed)
    lasso = lasso_importance(configs, direction).set_index("knob")
    forest = forest_importance(configs, direction, seed=seed).set_index("knob")
    both = pd.DataFrame(
        {
            "lasso_rank": lasso["rank"],
            "lasso_importance": lasso["importance"],
            "forest_rank": forest["rank"],
            "forest_importance": forest["importance"],
            "forest_std": forest["std"],
        }
    )
    both["mean_rank"] = (both["lasso_rank"] + both["forest_rank"]) / 2
    both = both.sort_values(["mean_rank", "forest_importance"], ascending=[True, False]).reset_index().rename(columns={"index": "knob"})
    both.insert(0, "rank", np.arange(1, len(both) + 1))
    return both


def plot_importance(ranking: pd.DataFrame, path: str | Path, title: str = "knob importance") -> Path:
    """A horizontal bar plot of the ranking (forest and/or lasso importance) written to `path`."""
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend stays as it is

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in ("forest_importance", "lasso_importance", "importance") if c in ranking]
    fig = Figure(figsize=(4.5 * len(columns), 0.4 * len(ranking) + 1.5))
    axes = fig.subplots(1, len(columns), squeeze=False)
    order = ranking.iloc[::-1]
    for ax, column in zip(axes[0], columns):
        err = order["forest_std"] if column == "forest_importance" else order["std"] if column == "importance" and "std" in order else None
        ax.barh(order["knob"].astype(str), order[column], xerr=err, color="tab:blue")
        ax.set_xlabel(column.replace("_", " "))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def top_k_fixed(
    ranking: pd.DataFrame,
    k: int,
    *,
    base: Mapping[str, Any],
) -> dict[str, Any]:
    """The `fixed=` mapping for `Study.create` that leaves only the top-k knobs free.

    `base` gives the pinned values: the best trial's config, or the default.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    order = list(ranking["knob"])
    unknown = [knob for knob in order if knob not in base]
    free = set(order[:k])
    return {knob: base[knob] for knob in order if knob not in free and knob not in unknown}
