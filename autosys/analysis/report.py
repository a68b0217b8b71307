"""Reports: one self-contained HTML page plus PNGs for one or several studies.

For each study: best-so-far against trial number with the default's level,
every trial with failures marked, knob importance, knob-vs-metric scatter for
the top knobs, and the Pareto front when the objective has several metrics.
For several studies: a comparison of best-so-far curves grouped by tuner
(median and interquartile band over the studies of each group).
"""

from __future__ import annotations

import base64
import html
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from autosys.analysis.importance import knob_importance, plot_importance
from autosys.core.spec import redact_text
from autosys.core.system import Objective
from autosys.run.intervals import describe
from autosys.run.selection import best_trial, gain_over_default
from autosys.run.study import open_study


@dataclass
class StudyData:
    """What a report needs from one study directory, read without building its system."""

    directory: Path
    spec: dict[str, Any]
    trials: pd.DataFrame
    #: the study's answer (as `Study.best` picks it) and its gain over the default from paired runs
    best_number: int | None = None
    vs_default: dict | None = None

    @property
    def metric(self) -> str:
        return self.spec["objective"]["metric"]

    @property
    def maximize(self) -> bool:
        return self.spec["objective"]["direction"] == "maximize"

    @property
    def label(self) -> str:
        return f"{self.spec['system']} / {self.spec['tuner']}"

    def best_so_far(self) -> np.ndarray:
        """Best feasible value after each trial (NaN until the first success)."""
        values = self.trials["value"].where(self.trials["feasible"]).astype(float).to_numpy()
        out = np.full(len(values), np.nan)
        best = np.nan
        for i, v in enumerate(values):
            if not math.isnan(v) and (math.isnan(best) or (v > best if self.maximize else v < best)):
                best = v
            out[i] = best
        return out


def load_study(directory: str | Path, url: str | None = None) -> StudyData:
    """One study's spec and trials (url: its postgresql:// storage when it is kept there)."""
    storage, spec = open_study(directory, url)
    try:
        rows = []
        trials = storage.trials()
        objective = Objective.from_json(spec["objective"])
        budget = (spec.get("budget") or {}).get("trials")
        answer = best_trial(trials, objective, intensify=bool(spec.get("intensify", False)), budget=budget)
        vs_default = gain_over_default(trials, objective, answer, budget)
        for t in trials:
            row = {
                "number": t.number,
                "state": t.state.value,
                "source": t.source,
                "value": t.value,
                "error": None if t.error is None else redact_text(t.error),  # no URL password in a report
                "feasible": t.feasible,
            }
            row.update({f"config.{k}": v for k, v in t.config.items()})
            row.update({f"metrics.{k}": v for k, v in t.metrics.items()})
            rows.append(row)
    finally:
        storage.close()
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["number", "state", "source", "value", "error", "feasible"])
    return StudyData(Path(directory), spec, frame, None if answer is None else answer.number, vs_default)


# ----------------------------------------------------------------------------- plots


def _figure(width: float, height: float):
    """A figure and its axes drawn without pyplot, so a notebook's own backend is left alone."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_convergence(study: StudyData, path: Path) -> Path:
    fig, ax = _figure(7, 4)
    df = study.trials
    ok = df[df["feasible"]]
    ax.scatter(ok["number"], ok["value"].astype(float), s=14, color="tab:blue", alpha=0.6, label="trial")
    ax.step(df["number"], study.best_so_far(), where="post", color="tab:green", lw=2, label="best so far")
    default = df[(df["source"] == "default") & df["feasible"]]
    if not default.empty:
        ax.axhline(float(default["value"].iloc[0]), color="grey", ls="--", label="default")
    bad = df[~df["feasible"]]
    if not bad.empty:
        low = ax.get_ylim()[0]
        ax.scatter(bad["number"], [low] * len(bad), marker="x", color="tab:red", label=f"failed/infeasible ({len(bad)})")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{study.metric} ({'higher' if study.maximize else 'lower'} is better)")
    ax.set_title(f"{study.label}: convergence")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def _ranking(study: StudyData) -> pd.DataFrame | None:
    """Knob ranking by forest permutation importance (autosys.analysis.importance); None if too few trials."""
    if int(study.trials["feasible"].sum()) < 8:
        return None
    try:
        return knob_importance(study.directory, method="forest")
    except ValueError:
        return None


def plot_knob_scatter(study: StudyData, knob: str, path: Path) -> Path:
    fig, ax = _figure(5, 3.5)
    ok = study.trials[study.trials["feasible"]]
    x = ok[f"config.{knob}"]
    y = ok["value"].astype(float)
    if pd.api.types.is_numeric_dtype(x) and x.nunique() > 6:
        ax.scatter(x.astype(float), y, s=16, alpha=0.7)
    else:
        categories = sorted(x.astype(str).unique())
        positions = x.astype(str).map({c: i for i, c in enumerate(categories)})
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(positions))
        ax.scatter(positions + jitter, y, s=16, alpha=0.7)
        ax.set_xticks(range(len(categories)), categories, rotation=30, fontsize=8)
    ax.set_xlabel(knob)
    ax.set_ylabel(study.metric)
    ax.set_title(f"{knob} vs {study.metric}")
    return _save(fig, path)


def pareto_front(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of non-dominated rows of `points` (each column in its own direction)."""
    signed = np.where(np.asarray(maximize), -points, points)  # now lower is better everywhere
    mask = np.ones(len(points), dtype=bool)
    for i in range(len(points)):
        dominated_by = np.all(signed <= signed[i], axis=1) & np.any(signed < signed[i], axis=1)
        mask[i] = not dominated_by.any()
    return mask


def plot_pareto(study: StudyData, path: Path) -> Path | None:
    others = study.spec["objective"].get("others") or []
    if not others:
        return None
    second, second_dir = others[0]
    ok = study.trials[study.trials["feasible"]]
    column = f"metrics.{second}"
    if column not in ok or ok.empty:
        return None
    pts = np.column_stack([ok["value"].astype(float), ok[column].astype(float)])
    finite = np.all(np.isfinite(pts), axis=1)
    pts = pts[finite]
    mask = pareto_front(pts, [study.maximize, second_dir == "maximize"])
    fig, ax = _figure(5.5, 4)
    ax.scatter(pts[:, 0], pts[:, 1], s=14, color="lightgrey", label="trials")
    front = pts[mask][np.argsort(pts[mask][:, 0])]
    ax.plot(front[:, 0], front[:, 1], "o-", color="tab:orange", label="Pareto front")
    ax.set_xlabel(study.metric)
    ax.set_ylabel(second)
    ax.set_title(f"{study.label}: trade-off")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _plain(value: Any) -> Any:
    """A knob value read back from a frame: numpy scalars to Python, 32.0 (NaN-upcast ints) to 32."""
    if hasattr(value, "item"):
        value = value.item()
    return int(value) if isinstance(value, float) and value.is_integer() else value


def pareto_rows(study: StudyData) -> list[dict[str, Any]]:
    """The feasible trials on the front of the objective and its first other metric, best first."""
    others = study.spec["objective"].get("others") or []
    ok = study.trials[study.trials["feasible"]]
    if not others or ok.empty or f"metrics.{others[0][0]}" not in ok:
        return []
    second, second_dir = others[0]
    pts = np.column_stack([ok["value"].astype(float), ok[f"metrics.{second}"].astype(float)])
    finite = np.all(np.isfinite(pts), axis=1)
    ok, pts = ok[finite], pts[finite]
    on_front = ok[pareto_front(pts, [study.maximize, second_dir == "maximize"])]
    on_front = on_front.sort_values("value", ascending=not study.maximize)
    knobs = [c for c in on_front.columns if c.startswith("config.")]
    return [
        {"number": int(row["number"]), study.metric: float(row["value"]), second: float(row[f"metrics.{second}"]),
         "config": {k[len("config."):]: _plain(row[k]) for k in knobs if pd.notna(row[k])}}
        for _, row in on_front.iterrows()
    ]


def plot_comparison(studies: Sequence[StudyData], path: Path) -> Path:
    """Best-so-far per group of studies (same system and tuner): median and IQR over seeds."""
    fig, ax = _figure(7, 4)
    groups: dict[str, list[np.ndarray]] = {}
    for s in studies:
        groups.setdefault(s.label, []).append(s.best_so_far())
    for label, curves in groups.items():
        n = max(len(c) for c in curves)
        padded = np.array([np.pad(c, (0, n - len(c)), mode="edge") for c in curves], dtype=float)
        with warnings.catch_warnings():  # leading all-NaN columns: no success yet in any study
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(padded, axis=0)
            q1, q3 = np.nanpercentile(padded, 25, axis=0), np.nanpercentile(padded, 75, axis=0)
        x = np.arange(n)
        ax.plot(x, median, lw=2, label=f"{label} (n={len(curves)})")
        if len(curves) > 1:
            ax.fill_between(x, q1, q3, alpha=0.2)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"best {studies[0].metric} so far")
    ax.set_title("comparison (median, band = interquartile range over studies)")
    ax.legend(fontsize=8)
    return _save(fig, path)


# ----------------------------------------------------------------------------- HTML


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _summary_table(study: StudyData) -> str:
    df = study.trials
    default = df[df["source"] == "default"]
    feasible = df[df["feasible"]]
    best = None
    answer = df[df["number"] == study.best_number] if study.best_number is not None else df.iloc[0:0]
    if not answer.empty:
        best = answer.iloc[0]
    elif not feasible.empty:
        idx = feasible["value"].astype(float).idxmax() if study.maximize else feasible["value"].astype(float).idxmin()
        best = feasible.loc[idx]
    rows = []
    columns = [c for c in df.columns if c.startswith("metrics.") or c.startswith("config.")]
    for column in columns:
        d = default[column].iloc[0] if not default.empty else ""
        b = best[column] if best is not None else ""
        rows.append((column, d, b))
    table = pd.DataFrame(rows, columns=["", "default", "best"])
    counts = df["state"].value_counts().to_dict()
    head = (
        f"<p>{len(df)} trials: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + f". Objective: {study.spec['objective']['direction']} <b>{html.escape(study.metric)}</b>.</p>"
    )
    if best is not None and not default.empty:
        head += f"<p class=\"gain\">{html.escape(describe(study.vs_default, study.metric))}.</p>"
    return head + table.to_html(index=False, na_rep="-", escape=True, float_format=lambda v: f"{v:.4g}")


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>autosys report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; color: #222; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
img {{ max-width: 520px; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 0.85em; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; }}
</style></head>
<body data-images="{n_images}">
<h1>autosys report</h1>
{body}
<script>
window.addEventListener("load", function () {{
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
}});
</script>
</body></html>
"""


def write_report(directories: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write index.html and PNGs for the given study directories; returns the HTML path."""
    if not directories:
        raise ValueError("name at least one study directory")
    studies = [load_study(d) for d in directories]
    out_dir = Path(out) if out is not None else Path(directories[0]) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    n_images = 0
    if len(studies) > 1:
        metrics = {s.metric for s in studies}
        if len(metrics) == 1:
            path = plot_comparison(studies, out_dir / "comparison.png")
            sections.append("<h2>Comparison</h2>" + _img(path, "best so far by tuner"))
            n_images += 1
    for i, study in enumerate(studies):
        prefix = f"study{i}-" if len(studies) > 1 else ""
        parts = [f"<h2>{html.escape(study.label)} <small>({html.escape(str(study.directory))})</small></h2>"]
        parts.append(_summary_table(study))
        if study.trials.empty:
            parts.append("<p>No trials yet.</p>")
            sections.append("\n".join(parts))
            continue
        images = [_img(plot_convergence(study, out_dir / f"{prefix}convergence.png"), "convergence")]
        ranking = _ranking(study)
        if ranking is not None:
            path = plot_importance(ranking, out_dir / f"{prefix}importance.png", title=f"{study.label}: which knobs mattered")
            images.append(_img(path, "knob importance"))
            for knob in list(ranking["knob"][:3]):
                path = plot_knob_scatter(study, knob, out_dir / f"{prefix}knob-{knob}.png")
                images.append(_img(path, f"{knob} vs {study.metric}"))
        pareto = plot_pareto(study, out_dir / f"{prefix}pareto.png")
        if pareto is not None:
            images.append(_img(pareto, "Pareto front"))
        n_images += len(images)
        parts.extend(images)
        failures = study.trials[study.trials["error"].notna()][["number", "state", "error"]]
        if not failures.empty:
            parts.append("<h3>Failed or infeasible trials</h3>" + failures.to_html(index=False, escape=True))
        sections.append("\n".join(parts))
    page = out_dir / "index.html"
    page.write_text(_PAGE.format(body="\n".join(sections), n_images=n_images))
    return page


__all__ = ["StudyData", "load_study", "write_report", "pareto_front"]
