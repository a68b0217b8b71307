"""The report's views as plotly figures: what the HTML report and the live dashboard both draw.

One function per view, each taking a `StudyData` (autosys.analysis.report) and
returning a `View`: a plotly figure as plain JSON, a table, or the reason it is
missing (too few trials, a single-metric objective, no agent decisions...), so
the page always says why a plot is absent. The views:

- history: every trial, the best so far and the default's level; a log axis
  when the feasible values are positive and span more than 10x
- parallel: parallel coordinates of the knobs and the objective
- slice: the objective against each knob
- contour: the objective interpolated over pairs of the most important numeric knobs
- dependence: partial dependence from the study's surrogate (the BO tuner's GP,
  or its forest for bo-rf), drawn as scikit-optimize's `plot_objective` draws it:
  1-D curves on the diagonal, 2-D contours below it, trials as dots, the answer as a star
- importance: forest permutation importance of each knob (autosys.analysis.importance)
- pareto: the trade-off front of the objective and its first other metric
- table: every trial, sortable in the page
- timeline: the agent's decisions (autosys.online.agent) over time
- comparison (several studies): best so far per tuner, median and interquartile band

Nothing here runs code read from a study: figures are built from its values only.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from autosys.analysis.studydata import StudyData

#: fewer feasible trials than this and the model-based views (importance, dependence, contour) are left out
MIN_TRIALS_FOR_MODELS = 8
#: at most this many knobs in the slice, contour and dependence views (the most important first)
MAX_KNOBS = 4

VIEW_TITLES = {
    "history": "optimization history",
    "parallel": "parallel coordinates",
    "slice": "slice plots",
    "contour": "contour plots",
    "dependence": "partial dependence (surrogate model)",
    "importance": "knob importance",
    "pareto": "Pareto front",
    "table": "trials",
    "timeline": "agent decision timeline",
    "comparison": "comparison of studies",
}


@dataclass
class View:
    """One view of a study: a plotly figure (JSON), a table, or the reason it is missing."""

    name: str
    figure: dict | None = None
    table: dict | None = None
    missing: str | None = None
    note: str | None = None
    points: int = 0  # how many data points the view holds (checked against what the browser draws)
    title: str = field(default="")

    def __post_init__(self) -> None:
        self.title = self.title or VIEW_TITLES.get(self.name, self.name)

    def to_json(self) -> dict:
        return {"view": self.name, "title": self.title, "figure": self.figure, "table": self.table,
                "missing": self.missing, "note": self.note, "points": self.points}


#: a small look of our own: plotly's named templates are deep-copied into every figure, which costs seconds
_LOOK = {
    "paper_bgcolor": "white", "plot_bgcolor": "white", "font": {"size": 12},
    "colorway": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"],
    "xaxis": {"gridcolor": "#ebebeb", "zerolinecolor": "#d0d0d0", "linecolor": "#999", "automargin": True},
    "yaxis": {"gridcolor": "#ebebeb", "zerolinecolor": "#d0d0d0", "linecolor": "#999", "automargin": True},
    "hovermode": "closest",
}


def _figure_json(fig) -> dict:
    """Plain JSON of a figure (numpy arrays become plotly's typed-array encoding), with the shared look."""
    out = json.loads(fig.to_json())
    layout = out.setdefault("layout", {})
    layout.pop("template", None)
    for key, value in _LOOK.items():
        if isinstance(value, dict):
            for axis in [k for k in layout if k.startswith(key)] or [key]:
                layout[axis] = {**value, **layout.get(axis, {})}
        else:
            layout.setdefault(key, value)
    layout.setdefault("margin", {"l": 60, "r": 20, "t": 40, "b": 50})
    layout["uirevision"] = "keep"  # a dashboard refresh keeps the reader's zoom
    return out


def _text(value: Any) -> str:
    """A stored string made safe for plotly's HTML-like labels."""
    return html.escape(str(value), quote=False)


# ----------------------------------------------------------------------------- what the views read


def feasible_trials(study: StudyData) -> pd.DataFrame:
    df = study.trials
    if df.empty:
        return df
    ok = df[df["feasible"].astype(bool) & df["value"].notna()].copy()
    ok["value"] = ok["value"].astype(float)
    return ok[np.isfinite(ok["value"])]


def knob_names(study: StudyData) -> list[str]:
    """The study's knobs in space order, then any other config column (a knob of an older space)."""
    names = [p["name"] for p in (study.spec.get("space") or {}).get("params", [])]
    extra = [c[len("config."):] for c in study.trials.columns if c.startswith("config.") and c[len("config."):] not in names]
    return [n for n in names + extra if f"config.{n}" in study.trials.columns]


def _param(study: StudyData, knob: str) -> dict:
    for p in (study.spec.get("space") or {}).get("params", []):
        if p["name"] == knob:
            return p
    return {"name": knob, "kind": "unknown"}


def _is_numeric(study: StudyData, knob: str, column: pd.Series) -> bool:
    kind = _param(study, knob).get("kind")
    if kind in ("int", "float"):
        return True
    if kind in ("categorical", "ordinal", "bool"):
        return False
    values = column.dropna()
    return bool(len(values)) and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)


INACTIVE = "(inactive)"


def _names(knobs: Sequence[str], shown: int = 4) -> str:
    """A short list of knob names: the first few, then how many more."""
    head = ", ".join(knobs[:shown])
    return head + (f" and {len(knobs) - shown} more" if len(knobs) > shown else "")


def as_text(column: pd.Series) -> pd.Series:
    """A knob's values as labels; a conditional knob where it is inactive (no value) as INACTIVE."""
    return column.map(lambda v: INACTIVE if v is None or (isinstance(v, float) and math.isnan(v)) else str(_plain(v)))


def _varying(ok: pd.DataFrame, knobs: Sequence[str]) -> list[str]:
    """Knobs that take more than one value among the trials (a pinned knob tells nothing)."""
    return [k for k in knobs if as_text(ok[f"config.{k}"]).nunique() > 1]


def _axis_label(study: StudyData) -> str:
    return f"{study.metric} ({'higher' if study.maximize else 'lower'} is better)"


def wide_range(values: np.ndarray) -> bool:
    """Whether a log axis serves these values better: all positive and spanning more than 10x."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return len(values) > 1 and bool((values > 0).all()) and values.max() / values.min() > 10


# ----------------------------------------------------------------------------- the views


def history_view(study: StudyData) -> View:
    import plotly.graph_objects as go

    df = study.trials
    if df.empty:
        return View("history", missing="no trials yet")
    ok = feasible_trials(study)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ok["number"], y=ok["value"], mode="markers", name="trial",
                             marker=dict(size=7, color="#1f77b4", opacity=0.7)))
    best = study.best_so_far()
    fig.add_trace(go.Scatter(x=df["number"], y=best, mode="lines", name="best so far", line=dict(shape="hv", width=3, color="#2ca02c")))
    default = ok[ok["source"] == "default"]
    if not default.empty:
        fig.add_hline(y=float(default["value"].iloc[0]), line_dash="dash", line_color="grey",
                      annotation_text="default", annotation_position="top left")
    running = df["state"].isin(["running", "pending"])  # a live study's trials in flight are not failures
    bad = df[~df["number"].isin(ok["number"]) & ~running]
    log = wide_range(ok["value"].to_numpy())
    if not bad.empty:
        low = float(ok["value"].min()) if not ok.empty else 0.0
        reasons = [_text(e) if isinstance(e, str) else ("infeasible" if s == "complete" else s)
                   for e, s in zip(bad["error"], bad["state"])]
        fig.add_trace(go.Scatter(x=bad["number"], y=[low] * len(bad), mode="markers", name=f"failed / infeasible ({len(bad)})",
                                 marker=dict(symbol="x", size=9, color="#d62728"), text=reasons, hoverinfo="x+text"))
    fig.update_layout(xaxis_title="trial", yaxis_title=_axis_label(study), yaxis_type="log" if log else "linear",
                      legend=dict(orientation="h", y=1.08))
    note = "log axis: the values span more than 10x" if log else None
    return View("history", _figure_json(fig), points=len(df), note=note)


def _dimension(study: StudyData, knob: str, column: pd.Series) -> dict:
    """A parallel-coordinates axis; categorical values are placed at their index and labelled."""
    if _is_numeric(study, knob, column):
        values = column.astype(float)
        return dict(label=knob, values=values.to_numpy())
    text = as_text(column)
    labels = [str(_plain(v)) for v in (_param(study, knob).get("choices") or [])] or sorted(set(text) - {INACTIVE})
    if (text == INACTIVE).any():
        labels.append(INACTIVE)
    index = {v: i for i, v in enumerate(labels)}
    codes = text.map(lambda v: index.get(v, np.nan)).astype(float)
    return dict(label=knob, values=codes.to_numpy(), tickvals=list(range(len(labels))), ticktext=[_text(v) for v in labels],
                range=[-0.5, len(labels) - 0.5])


def parallel_view(study: StudyData, ranking: pd.DataFrame | None = None) -> View:
    import plotly.graph_objects as go

    ok = feasible_trials(study)
    if len(ok) < 2:
        return View("parallel", missing=f"needs at least 2 feasible trials, has {len(ok)}")
    ranked = ranked_knobs(study, ranking)
    if not ranked:
        return View("parallel", missing="no knob took more than one value")
    partial = [k for k in ranked if _is_numeric(study, k, ok[f"config.{k}"]) and ok[f"config.{k}"].isna().any()]
    knobs = [k for k in ranked if k not in partial][: 2 * MAX_KNOBS]
    if not knobs:
        return View("parallel", missing="every varying knob is a numeric knob of a conditional branch, unset in some trials")
    dims = [_dimension(study, k, ok[f"config.{k}"]) for k in knobs]
    dims.append(dict(label=study.metric, values=ok["value"].to_numpy()))
    fig = go.Figure(go.Parcoords(
        line=dict(color=ok["value"].to_numpy(), colorscale="Viridis", reversescale=not study.maximize, showscale=True,
                  colorbar=dict(title=_text(study.metric))),
        dimensions=dims))
    notes = []
    if len(ranked) - len(partial) > len(knobs):
        notes.append(f"the {len(knobs)} most important of {len(ranked)} knobs")
    if partial:
        notes.append(f"left out: {_names(partial)} (numeric knobs of a conditional branch, unset in some trials)")
    note = "; ".join(notes) or None
    return View("parallel", _figure_json(fig), points=len(ok), note=note)


def ranked_knobs(study: StudyData, ranking: pd.DataFrame | None) -> list[str]:
    """Varying knobs, the most important first when a ranking exists."""
    ok = feasible_trials(study)
    knobs = _varying(ok, knob_names(study)) if not ok.empty else []
    if ranking is not None:
        order = {k: i for i, k in enumerate(ranking["knob"])}
        knobs.sort(key=lambda k: order.get(k, len(order)))
    return knobs


def slice_view(study: StudyData, ranking: pd.DataFrame | None = None) -> View:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    ok = feasible_trials(study)
    if ok.empty:
        return View("slice", missing="no feasible trials yet")
    knobs = ranked_knobs(study, ranking)
    if not knobs:
        return View("slice", missing="no knob took more than one value")
    shown = knobs[: 2 * MAX_KNOBS]
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_text(k) for k in shown], shared_yaxes=True,
                        horizontal_spacing=0.06, vertical_spacing=0.18 if rows > 1 else 0.1)
    for i, knob in enumerate(shown):
        column = ok[f"config.{knob}"]
        numeric = _is_numeric(study, knob, column)
        x = pd.to_numeric(column, errors="coerce") if numeric else as_text(column)
        fig.add_trace(go.Scatter(x=x, y=ok["value"], mode="markers", showlegend=False, name=knob,
                                 marker=dict(size=7, color=ok["number"], colorscale="Blues", showscale=i == 0,
                                             colorbar=dict(title="trial"), line=dict(width=0.5, color="#555")),
                                 text=[f"trial {n}" for n in ok["number"]]),
                      row=i // cols + 1, col=i % cols + 1)
        if numeric and _param(study, knob).get("log"):
            fig.update_xaxes(type="log", row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(title_text=study.metric, col=1)
    if wide_range(ok["value"].to_numpy()):
        fig.update_yaxes(type="log")
    fig.update_layout(height=320 * rows)
    note = f"the {len(shown)} most important of {len(knobs)} knobs" if len(knobs) > len(shown) else None
    return View("slice", _figure_json(fig), points=len(ok) * len(shown), note=note)


def contour_view(study: StudyData, ranking: pd.DataFrame | None = None) -> View:
    """The objective linearly interpolated between the trials over pairs of numeric knobs (as Optuna's plot_contour)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    from scipy.interpolate import griddata

    ok = feasible_trials(study)
    if len(ok) < MIN_TRIALS_FOR_MODELS:
        return View("contour", missing=f"needs at least {MIN_TRIALS_FOR_MODELS} feasible trials, has {len(ok)}")
    numeric = [k for k in ranked_knobs(study, ranking) if _is_numeric(study, k, ok[f"config.{k}"])]
    if len(numeric) < 2:
        return View("contour", missing="needs two numeric knobs that vary; the study has "
                    + (f"only {numeric[0]!r}" if numeric else "none"))
    pairs = []
    for a, b in itertools.combinations(numeric, 2):
        both = ok[ok[f"config.{a}"].notna() & ok[f"config.{b}"].notna()]  # a conditional knob is unset in some trials
        if len(both) >= 4 and both[f"config.{a}"].nunique() > 1 and both[f"config.{b}"].nunique() > 1:
            pairs.append((a, b, both))
        if len(pairs) == 3:  # the most important pairs
            break
    if not pairs:
        return View("contour", missing="no two numeric knobs vary together in 4 or more feasible trials")
    fig = make_subplots(rows=1, cols=len(pairs), horizontal_spacing=0.1)  # the axis titles name each pair
    points = 0
    for i, (a, b, both) in enumerate(pairs):
        x, y, z = both[f"config.{a}"].astype(float).to_numpy(), both[f"config.{b}"].astype(float).to_numpy(), both["value"].to_numpy()
        lx, ly = bool(_param(study, a).get("log")), bool(_param(study, b).get("log"))
        tx, ty = (np.log10(x) if lx else x), (np.log10(y) if ly else y)
        gx, gy = np.linspace(tx.min(), tx.max(), 40), np.linspace(ty.min(), ty.max(), 40)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                grid = griddata((tx, ty), z, tuple(np.meshgrid(gx, gy)), method="linear")
            except Exception:  # collinear points (QhullError): nearest neighbour still draws the trend
                grid = griddata((tx, ty), z, tuple(np.meshgrid(gx, gy)), method="nearest")
        fig.add_trace(go.Contour(x=10 ** gx if lx else gx, y=10 ** gy if ly else gy, z=grid, colorscale="Viridis",
                                 reversescale=not study.maximize, showscale=i == 0, connectgaps=False,
                                 colorbar=dict(title=_text(study.metric)), contours=dict(coloring="heatmap")),
                      row=1, col=i + 1)
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", showlegend=False, marker=dict(size=5, color="black"),
                                 text=[f"trial {n}: {v:.4g}" for n, v in zip(both["number"], z)], hoverinfo="text"),
                      row=1, col=i + 1)
        fig.update_xaxes(title_text=a, type="log" if lx else "linear", row=1, col=i + 1)
        fig.update_yaxes(title_text=b, type="log" if ly else "linear", row=1, col=i + 1)
        points += len(both)
    fig.update_layout(height=400)
    return View("contour", _figure_json(fig), points=points)


# ----------------------------------------------------------------------------- partial dependence


def _surrogate(study: StudyData):
    """The surrogate kind the study's tuner would fit: a forest for bo-rf/bo-et, the GP otherwise."""
    from autosys.learn.surrogates import make_surrogate

    tuner = str(study.spec.get("tuner", ""))
    kind = (study.spec.get("tuner_options") or {}).get("surrogate")
    if kind not in ("gp", "rf", "et"):
        kind = {"bo-rf": "rf", "bo-et": "et"}.get(tuner, "gp")
    return make_surrogate(kind), kind


def partial_dependence(study: StudyData, knobs: Sequence[str], *, samples: int = 120, resolution: int = 30,
                       seed: int = 0) -> dict[str, Any]:
    """Partial dependence of the objective on each knob and each pair, from a surrogate fitted to the trials.

    As scikit-optimize's `partial_dependence_1D/2D`: the model's prediction averaged over random points
    of the space with the knob(s) held at each grid value. Returns {"1d": {knob: (x, y)},
    "2d": {(a, b): (x, y, z)}, "model": kind}; values are in the objective's own units.
    """
    from autosys.core.space import Space
    from autosys.learn.surrogates import standardize
    from autosys.tuners.bayes import SpaceEncoder

    ok = feasible_trials(study)
    space_json = study.spec.get("space") or {}
    space = Space.from_json({"params": space_json.get("params", []), "constraints": []})
    encoder = SpaceEncoder(space)
    names = space.names
    configs = [{k: _plain(row[f"config.{k}"]) for k in names if f"config.{k}" in row and pd.notna(row[f"config.{k}"])}
               for _, row in ok.iterrows()]
    U = encoder.snap(np.array([space.encode(c) for c in configs]))
    z, mean, std = standardize(ok["value"].to_numpy(), warp=False)
    rng = np.random.default_rng(seed)
    model, kind = _surrogate(study)
    model = model.fit(encoder.features(U), z, rng)
    base = encoder.snap(rng.random((samples, len(names))))

    def predict(U_: np.ndarray) -> np.ndarray:
        mu, _ = model.predict(encoder.features(encoder.snap(U_)))
        return mu * (std or 1.0) + mean

    def grid(knob: str, n: int) -> tuple[np.ndarray, list]:
        j = names.index(knob)
        param = space[knob]
        units = np.unique(encoder.snap(np.tile(np.linspace(0, 1, n), (len(names), 1)).T)[:, j])
        return units, [param.from_unit(u) for u in units]

    out: dict[str, Any] = {"1d": {}, "2d": {}, "model": kind}
    for knob in knobs:
        j = names.index(knob)
        units, values = grid(knob, resolution)
        stacked = np.repeat(base[None], len(units), axis=0)  # (grid, samples, dims)
        stacked[:, :, j] = units[:, None]
        ys = predict(stacked.reshape(-1, len(names))).reshape(len(units), samples).mean(axis=1)
        out["1d"][knob] = (values, [float(y) for y in ys])
    for a, b in itertools.combinations(knobs, 2):
        ja, jb = names.index(a), names.index(b)
        ua, va = grid(a, 15)
        ub, vb = grid(b, 15)
        stacked = np.repeat(np.repeat(base[None, None], len(ub), axis=0), len(ua), axis=1)  # (b, a, samples, dims)
        stacked[:, :, :, ja] = ua[None, :, None]
        stacked[:, :, :, jb] = ub[:, None, None]
        zz = predict(stacked.reshape(-1, len(names))).reshape(len(ub), len(ua), samples).mean(axis=2)
        out["2d"][(a, b)] = (va, vb, zz)
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _axis(study: StudyData, knob: str):
    """(value -> coordinate, axis settings) for a knob: numbers as they are, choices at their index, labelled."""
    param = _param(study, knob)
    if param.get("kind") in ("int", "float"):
        def coord(v: Any) -> float | None:
            v = _plain(v)
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        return coord, {"type": "log" if param.get("log") else "linear"}
    choices = [_plain(c) for c in param.get("choices") or []]
    index = {str(c): i for i, c in enumerate(choices)}

    def coord(v: Any) -> float | None:  # type: ignore[no-redef]
        v = _plain(v)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else index.get(str(v))
    return coord, {"type": "linear", "tickvals": list(range(len(choices))), "ticktext": [_text(c) for c in choices],
                   "range": [-0.5, len(choices) - 0.5]}


def dependence_view(study: StudyData, ranking: pd.DataFrame | None = None) -> View:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    ok = feasible_trials(study)
    if len(ok) < MIN_TRIALS_FOR_MODELS:
        return View("dependence", missing=f"needs at least {MIN_TRIALS_FOR_MODELS} feasible trials to fit a surrogate, has {len(ok)}")
    params = (study.spec.get("space") or {}).get("params") or []
    if not params:
        return View("dependence", missing="the study stores no space to sample the surrogate over")
    # a conditional knob is unset (held at its default) in most random configs: its average would mislead
    unconditional = {p["name"] for p in params if not p.get("when")}
    candidates = [k for k in ranked_knobs(study, ranking) if k in {p["name"] for p in params}]
    knobs = [k for k in candidates if k in unconditional][:MAX_KNOBS]
    left_out = [k for k in candidates if k not in unconditional]
    if not knobs:
        return View("dependence", missing="no unconditional knob of the space took more than one value")
    try:
        pd_ = partial_dependence(study, knobs)
    except (ValueError, KeyError, np.linalg.LinAlgError) as exc:
        return View("dependence", missing=f"the surrogate could not be fitted: {exc}")
    n = len(knobs)
    axes = {k: _axis(study, k) for k in knobs}
    fig = make_subplots(rows=n, cols=n, horizontal_spacing=0.06, vertical_spacing=0.06)
    answer = ok[ok["number"] == study.best_number] if study.best_number is not None else ok.iloc[0:0]
    if answer.empty:
        answer = ok.loc[[ok["value"].idxmax() if study.maximize else ok["value"].idxmin()]]
    best = {k: axes[k][0](answer[f"config.{k}"].iloc[0]) for k in knobs}
    points = 0
    for i, a in enumerate(knobs):
        for j, b in enumerate(knobs):
            if j > i:
                continue
            cell = dict(row=i + 1, col=j + 1)
            if i == j:
                x, y = pd_["1d"][a]
                xs = [axes[a][0](v) for v in x]
                fig.add_trace(go.Scatter(x=xs, y=y, mode="lines+markers" if len(x) < 12 else "lines",
                                         line=dict(color="#1f77b4", width=2), showlegend=False, name=a,
                                         text=[_text(v) for v in x],
                                         hovertemplate=f"{_text(a)}=%{{text}}<br>partial dependence %{{y:.4g}}<extra></extra>"), **cell)
                if best[a] is not None:
                    fig.add_vline(x=best[a], line_dash="dash", line_color="#d62728", **cell)
                fig.update_xaxes(**axes[a][1], **cell)
                points += len(x)
            else:
                xb, xa, zz = pd_["2d"][(b, a)] if (b, a) in pd_["2d"] else (None, None, None)
                if zz is None:  # pairs are computed in ranking order: (a, b) holds z over (a, b) transposed
                    xa, xb, zz = pd_["2d"][(a, b)]
                    zz = zz.T
                fig.add_trace(go.Contour(x=[axes[b][0](v) for v in xb], y=[axes[a][0](v) for v in xa], z=zz,
                                         colorscale="Viridis", reversescale=not study.maximize, showscale=False,
                                         contours=dict(coloring="heatmap"), hoverinfo="z"), **cell)
                fig.add_trace(go.Scatter(x=[axes[b][0](v) for v in ok[f"config.{b}"]], y=[axes[a][0](v) for v in ok[f"config.{a}"]],
                                         mode="markers", marker=dict(size=4, color="black"), showlegend=False, hoverinfo="skip"), **cell)
                if best[a] is not None and best[b] is not None:
                    fig.add_trace(go.Scatter(x=[best[b]], y=[best[a]], mode="markers", showlegend=False, hoverinfo="skip",
                                             marker=dict(symbol="star", size=13, color="#d62728")), **cell)
                fig.update_xaxes(**axes[b][1], **cell)
                fig.update_yaxes(**axes[a][1], **cell)
                points += zz.size
            if i == n - 1:
                fig.update_xaxes(title_text=_text(b), **cell)
            if j == 0:
                fig.update_yaxes(title_text=_text(a) if i else f"partial dependence<br>of {_text(study.metric)}", **cell)
    fig.update_layout(height=max(340, 260 * n))
    note = (f"{pd_['model'].upper()} surrogate fitted to {len(ok)} feasible trials; each curve averages its predictions "
            "over random configs with the knob(s) held fixed; red: the study's answer")
    if left_out:
        note += f"; conditional knobs left out (unset in most random configs): {_names(left_out)}"
    return View("dependence", _figure_json(fig), points=points, note=note)


# ----------------------------------------------------------------------------- importance, Pareto, table, timeline


def knob_ranking(study: StudyData) -> pd.DataFrame | None:
    """Forest permutation importance over the feasible trials; None with fewer than MIN_TRIALS_FOR_MODELS."""
    from autosys.analysis.importance import forest_importance, trials_frame

    if len(feasible_trials(study)) < MIN_TRIALS_FOR_MODELS:
        return None
    configs, _, _ = trials_frame(study.trials)
    if configs.shape[1] < 2:
        return None
    return forest_importance(configs, study.spec["objective"]["direction"], seed=0, repeats=3)


def importance_view(study: StudyData, ranking: pd.DataFrame | None) -> View:
    import plotly.graph_objects as go

    n = len(feasible_trials(study))
    if ranking is None:
        return View("importance", missing=f"needs at least {MIN_TRIALS_FOR_MODELS} feasible trials, has {n}")
    shown = ranking.iloc[::-1]
    fig = go.Figure(go.Bar(x=shown["importance"], y=[_text(k) for k in shown["knob"]], orientation="h",
                           error_x=dict(type="data", array=shown["std"].to_numpy(), visible=True), marker_color="#1f77b4"))
    fig.update_layout(xaxis_title="drop in forest R² when the knob is shuffled", height=max(260, 60 + 36 * len(shown)))
    return View("importance", _figure_json(fig), points=len(shown),
                note=f"random-forest permutation importance over {n} feasible trials (bars: ± one standard deviation)")


def pareto_view(study: StudyData) -> View:
    import plotly.graph_objects as go

    others = study.spec["objective"].get("others") or []
    if not others:
        return View("pareto", missing=f"the objective has one metric ({study.metric}): no trade-off to draw")
    second, second_dir = others[0]
    ok = feasible_trials(study)
    column = f"metrics.{second}"
    if ok.empty or column not in ok:
        return View("pareto", missing=f"no feasible trial measured {second!r} yet")
    pts = np.column_stack([ok["value"].to_numpy(float), ok[column].astype(float).to_numpy()])
    finite = np.all(np.isfinite(pts), axis=1)
    ok, pts = ok[finite], pts[finite]
    mask = pareto_front(pts, [study.maximize, second_dir == "maximize"])
    order = np.argsort(pts[mask][:, 0])
    front, numbers = pts[mask][order], ok["number"].to_numpy()[mask][order]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name="trials", marker=dict(color="lightgrey", size=7),
                             text=[f"trial {n}" for n in ok["number"]]))
    fig.add_trace(go.Scatter(x=front[:, 0], y=front[:, 1], mode="lines+markers", name="Pareto front",
                             line=dict(shape="hv"), marker=dict(color="#ff7f0e", size=9), text=[f"trial {n}" for n in numbers]))
    fig.update_layout(xaxis_title=_axis_label(study), xaxis_type="log" if wide_range(pts[:, 0]) else "linear",
                      yaxis_title=f"{second} ({'higher' if second_dir == 'maximize' else 'lower'} is better)",
                      yaxis_type="log" if wide_range(pts[:, 1]) else "linear")
    return View("pareto", _figure_json(fig), points=len(pts), note=f"{int(mask.sum())} of {len(pts)} feasible trials on the front")


def pareto_front(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of non-dominated rows of `points` (each column in its own direction)."""
    signed = np.where(np.asarray(maximize), -points, points)  # now lower is better everywhere
    mask = np.ones(len(points), dtype=bool)
    for i in range(len(points)):
        dominated_by = np.all(signed <= signed[i], axis=1) & np.any(signed < signed[i], axis=1)
        mask[i] = not dominated_by.any()
    return mask


def _cell(value: Any) -> Any:
    value = _plain(value) if value is not None else None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return str(value)


def table_view(study: StudyData) -> View:
    df = study.trials
    if df.empty:
        return View("table", missing="no trials yet")
    metrics = [c for c in df.columns if c.startswith("metrics.")]
    knobs = [f"config.{k}" for k in knob_names(study)]
    columns = ["number", "state", "source", "value", *metrics, *knobs, "error"]
    frame = df[[c for c in columns if c in df]].astype(object).where(df[[c for c in columns if c in df]].notna(), None)
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    header = [c.split(".", 1)[1] if "." in c else c for c in frame.columns]
    return View("table", table={"columns": header, "rows": rows}, points=len(rows),
                note="click a column's header to sort by it")


def timeline_view(study: StudyData) -> View:
    import plotly.graph_objects as go

    events = study.agent_events
    if not events:
        return View("timeline", missing="no agent decisions logged here (`autosys agent --dir DIR` writes them)")
    frame = pd.DataFrame([{"time": t, **body} for t, body in events])
    frame["when"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    fig = go.Figure()
    if "incumbent_value" in frame and frame["incumbent_value"].notna().any():
        fig.add_trace(go.Scatter(x=frame["when"], y=frame["incumbent_value"], mode="lines", name="incumbent",
                                 line=dict(shape="hv", color="grey", dash="dot")))
    markers = {"keep": ("circle", "#2ca02c"), "rollback": ("x", "#d62728"), "explore": ("diamond", "#1f77b4"),
               "measure": ("circle-open", "#7f7f7f"), "workload-change": ("triangle-up", "#ff7f0e")}
    points = 0
    for action, group in frame.groupby("action", sort=False):
        symbol, color = markers.get(str(action), ("square", "#9467bd"))
        y = group["value"] if "value" in group else pd.Series([None] * len(group))
        fig.add_trace(go.Scatter(x=group["when"], y=y.astype(float), mode="markers", name=_text(action),
                                 marker=dict(symbol=symbol, size=9, color=color),
                                 text=[_text(r) for r in group.get("reason", [""] * len(group))],
                                 hovertemplate="%{x}<br>%{y:.4g}<br>%{text}<extra>" + _text(action) + "</extra>"))
        points += len(group)
    fig.update_layout(xaxis_title="time (UTC)", yaxis_title="objective in the window", legend=dict(orientation="h", y=1.1))
    counts = frame["action"].value_counts().to_dict()
    return View("timeline", _figure_json(fig), points=points, note=", ".join(f"{n} {a}" for a, n in counts.items()))


def median_band(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and quartiles per step of best-so-far curves of unequal length (each padded with its last value)."""
    n = max(len(c) for c in curves)
    padded = np.array([np.pad(c, (0, n - len(c)), mode="edge") for c in curves], dtype=float)
    with warnings.catch_warnings():  # leading all-NaN columns: no success yet in any study
        warnings.simplefilter("ignore", RuntimeWarning)
        return (np.nanmedian(padded, axis=0), np.nanpercentile(padded, 25, axis=0),
                np.nanpercentile(padded, 75, axis=0))


def comparison_view(studies: Sequence[StudyData]) -> View:
    """Best so far per group (system / tuner), median and interquartile band over its studies."""
    import plotly.graph_objects as go

    metrics = {s.metric for s in studies if s.spec}
    if len(metrics) != 1:
        return View("comparison", missing=f"the studies optimize different metrics ({', '.join(sorted(metrics))})")
    groups: dict[str, list[np.ndarray]] = {}
    for s in studies:
        if not s.trials.empty:
            groups.setdefault(s.label, []).append(s.best_so_far())
    if not groups:
        return View("comparison", missing="no trials yet")
    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    points = 0
    values = []
    for i, (label, curves) in enumerate(groups.items()):
        median, q1, q3 = median_band(curves)
        n = len(median)
        x = np.arange(n)
        color = palette[i % len(palette)]
        if len(curves) > 1:
            fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([q3, q1[::-1]]), fill="toself",
                                     line=dict(width=0), fillcolor=color, opacity=0.2, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=median, mode="lines", name=f"{_text(label)} (n={len(curves)})", line=dict(color=color, width=3)))
        points += n
        values.append(median)
    log = wide_range(np.concatenate(values))
    fig.update_layout(xaxis_title="trial", yaxis_title=f"best {_text(next(iter(metrics)))} so far",
                      yaxis_type="log" if log else "linear")
    return View("comparison", _figure_json(fig), points=points, note="median over the studies of each tuner; band: interquartile range")


def study_views(study: StudyData) -> list[View]:
    """Every view of one study, in the page's order."""
    has_trials = not study.trials.empty
    ranking = knob_ranking(study) if has_trials else None
    if not has_trials and study.agent_events:
        reason = "this directory holds an agent's decisions, no tuning trials"
        views = [View(name, missing=reason) for name in
                 ("history", "parallel", "slice", "contour", "dependence", "importance", "pareto", "table")]
    else:
        views = [history_view(study), parallel_view(study, ranking), slice_view(study, ranking), contour_view(study, ranking),
                 dependence_view(study, ranking), importance_view(study, ranking), pareto_view(study), table_view(study)]
    return views + [timeline_view(study)]


__all__ = ["View", "VIEW_TITLES", "study_views", "comparison_view", "partial_dependence", "wide_range",
           "history_view", "parallel_view", "slice_view", "contour_view", "dependence_view", "importance_view",
           "pareto_view", "table_view", "timeline_view", "knob_ranking", "pareto_front"]
