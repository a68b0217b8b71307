"""Reports: one self-contained, interactive HTML page for one or several studies.

The page draws the views of `autosys.analysis.figures` with plotly (optimization
history, parallel coordinates, slice, contour and partial-dependence plots,
knob importance, Pareto front, a sortable trial table, the agent's decision
timeline; for several studies a comparison by tuner), says why any view is
missing, and works offline: plotly.js is inlined once and the figures travel
as JSON inside the page. The live dashboard (`autosys dashboard`,
autosys/cli/dashboard.py) serves the same page, fed by `report_payload` and
refreshed as trials land; it reads studies with `autosys.analysis.studydata.load_study(..., read_only=True)`.

`plot_pareto` and `plot_comparison` still draw PNGs with matplotlib for
`autosys show` and the notebooks.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from autosys.analysis.figures import comparison_view, median_band, pareto_front, study_views
from autosys.analysis.studydata import ReadOnlySQLiteStorage, StudyData, load_study, study_signature
from autosys.run.intervals import describe


# ----------------------------------------------------------------------------- PNG plots (show, notebooks)


def _figure(width: float, height: float):
    """A figure and its axes drawn without pyplot, so a notebook's own backend is left alone."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


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
        median, q1, q3 = median_band(curves)
        x = np.arange(len(median))
        ax.plot(x, median, lw=2, label=f"{label} (n={len(curves)})")
        if len(curves) > 1:
            ax.fill_between(x, q1, q3, alpha=0.2)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"best {studies[0].metric} so far")
    ax.set_title("comparison (median, band = interquartile range over studies)")
    ax.legend(fontsize=8)
    return _save(fig, path)


# ----------------------------------------------------------------------------- the page


def _summary_html(study: StudyData) -> str:
    """Counts, the objective, the gain over the default and the default vs the answer, as escaped HTML."""
    df = study.trials
    if df.empty:
        return "<p>No trials.</p>"
    default = df[df["source"] == "default"]
    feasible = df[df["feasible"].astype(bool)]
    best = None
    answer = df[df["number"] == study.best_number] if study.best_number is not None else df.iloc[0:0]
    if not answer.empty:
        best = answer.iloc[0]
    elif not feasible.empty:
        idx = feasible["value"].astype(float).idxmax() if study.maximize else feasible["value"].astype(float).idxmin()
        best = feasible.loc[idx]
    rows = []
    for column in [c for c in df.columns if c.startswith("metrics.") or c.startswith("config.")]:
        d = default[column].iloc[0] if not default.empty else None
        b = best[column] if best is not None else None
        if pd.isna(d) and pd.isna(b):
            continue  # a knob of a conditional branch neither config uses
        rows.append((column, d, b))
    table = pd.DataFrame(rows, columns=["", "default", "answer"])
    counts = df["state"].value_counts().to_dict()
    direction = study.spec["objective"]["direction"]
    head = (
        f"<p>{len(df)} trials: " + ", ".join(f"{n} {html.escape(str(s))}" for s, n in counts.items())
        + f". Objective: {html.escape(direction)} <b>{html.escape(study.metric)}</b>"
        + f" ({'higher' if study.maximize else 'lower'} is better).</p>"
    )
    if best is not None and not default.empty:
        head += f"<p class=\"gain\">{html.escape(describe(study.vs_default, study.metric))}.</p>"
    return head + table.to_html(index=False, na_rep="-", escape=True, float_format=lambda v: f"{v:.4g}", classes="summary")


def report_payload(studies: Sequence[StudyData], signature: Any = None) -> dict:
    """The page's content as JSON: one section per study (and a comparison first for several)."""
    sections = []
    tuned = [s for s in studies if not s.trials.empty]  # an agent's directory has decisions, no trials to compare
    if len(tuned) > 1:
        sections.append({"id": "comparison", "heading": "Comparison", "subheading": f"{len(tuned)} studies",
                         "summary_html": "", "views": [comparison_view(tuned).to_json()]})
    for i, study in enumerate(studies):
        sections.append({
            "id": f"study{i}",
            "heading": study.label,
            "subheading": str(study.directory),
            "summary_html": _summary_html(study),
            "views": [v.to_json() for v in study_views(study)],
        })
    return {"title": "autosys report", "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "signature": signature,
            "sections": sections}


def error_section(directory: str | Path, message: str) -> dict:
    """A section that says why a directory could not be read (the dashboard keeps serving the others)."""
    return {"id": f"error-{directory}", "heading": str(directory), "subheading": "", "error": message, "views": []}


def _script_json(value: Any) -> str:
    """JSON to embed in a <script> element: no '<' can close the element or open a comment."""
    return json.dumps(value, allow_nan=False, default=str).replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 2px solid #ddd; } h2 small { color: #777; font-weight: normal; }
#status { color: #555; font-size: 0.9em; }
.view { border: 1px solid #e3e3e3; border-radius: 6px; padding: 0.4em 0.8em; margin: 0.8em 0; }
.view h3 { margin: 0.2em 0; font-size: 1.05em; } .note { color: #555; font-size: 0.85em; margin: 0.2em 0; }
.missing { color: #8a5a00; background: #fff7e0; padding: 0.4em 0.6em; border-radius: 4px; }
.error { color: #a00; background: #fde8e8; padding: 0.4em 0.6em; border-radius: 4px; }
table { border-collapse: collapse; font-size: 0.82em; } td, th { border: 1px solid #ccc; padding: 2px 6px; }
.trials-wrap { max-height: 28em; overflow: auto; }
.trials th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; user-select: none; }
.trials th[data-order="asc"]::after { content: " ▲"; } .trials th[data-order="desc"]::after { content: " ▼"; }
.trials td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

#: draws a payload; in dashboard mode it polls api/state and redraws when the studies change
_APP_JS = r"""
(function () {
  "use strict";
  var content = document.getElementById("content");
  var statusLine = document.getElementById("status");
  var live = document.body.getAttribute("data-mode") === "dashboard";
  var shown = {};       // view key -> {box, plot}
  var layoutKey = null; // which sections and views are on the page
  var refreshes = 0;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function traceLength(t) {
    if (typeof t._length === "number") return t._length;
    if (t.type === "parcoords") return t.dimensions && t.dimensions.length ? t.dimensions[0].values.length : 0;
    if (t.z && t.z.length) return t.z.length * (t.z[0] && t.z[0].length ? t.z[0].length : 1);
    return t.x ? t.x.length : (t.y ? t.y.length : 0);
  }

  function countPoints(gd) {
    return (gd._fullData || []).reduce(function (n, t) { return n + (t.visible === false ? 0 : traceLength(t)); }, 0);
  }

  function countMarks(gd) {  // SVG and canvas marks plotly drew for the data
    return gd.querySelectorAll(".scatterlayer .point, .scatterlayer .js-line, .barlayer .point, .contourlayer path, .contourlayer image, .parcoords .axis, .parcoords canvas").length;
  }

  function cellText(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") {
      if (Math.abs(v) >= 1e5 && Math.abs(v) < 1e15) return Math.round(v).toLocaleString("en-US");
      return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(5)));
    }
    return String(v);
  }

  function compare(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return 1;
    if (b === null || b === undefined) return -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }

  function fillTable(table, spec, column, order) {
    var rows = spec.rows.slice();
    if (column !== null) {
      rows.sort(function (r1, r2) { var c = compare(r1[column], r2[column]); return order === "desc" ? -c : c; });
      if (order === "desc") {  // empty cells stay last either way
        var filled = rows.filter(function (r) { return r[column] !== null; });
        rows = filled.concat(rows.filter(function (r) { return r[column] === null; }));
      }
    }
    var body = el("tbody");
    rows.forEach(function (r) {
      var tr = el("tr");
      r.forEach(function (v) { tr.appendChild(el("td", typeof v === "number" ? {"class": "num"} : {}, cellText(v))); });
      body.appendChild(tr);
    });
    var old = table.querySelector("tbody");
    if (old) table.replaceChild(body, old); else table.appendChild(body);
  }

  function makeTable(spec, box) {
    var wrap = el("div", {"class": "trials-wrap"});
    var table = el("table", {"class": "trials"});
    var head = el("tr");
    spec.columns.forEach(function (name, i) {
      var th = el("th", {"data-column": String(i)}, name);
      th.addEventListener("click", function () {
        var order = th.getAttribute("data-order") === "asc" ? "desc" : "asc";
        head.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-order"); });
        th.setAttribute("data-order", order);
        box.setAttribute("data-sorted", name + " " + order);
        fillTable(table, spec, i, order);
      });
      head.appendChild(th);
    });
    var thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
    fillTable(table, spec, null, null);
    wrap.appendChild(table);
    box.setAttribute("data-points", String(spec.rows.length));
    box.setAttribute("data-rendered", "table");
    return wrap;
  }

  function keyOf(payload) {
    return JSON.stringify(payload.sections.map(function (s) {
      return [s.id, s.error || "", s.views.map(function (v) { return [v.view, v.missing ? "missing" : v.table ? "table" : "plot"]; })];
    }));
  }

  function plot(entry, figure) {
    var box = entry.box, drawn;
    try {
      drawn = Plotly.react(entry.plot, figure.data, figure.layout, {responsive: true, displaylogo: false});
    } catch (err) {  // one broken figure must not stop the others
      drawn = Promise.reject(err);
    }
    return drawn.then(function (gd) {
      box.setAttribute("data-points", String(countPoints(gd)));
      box.setAttribute("data-marks", String(countMarks(gd)));
      box.setAttribute("data-rendered", "plotly");
    }, function (err) {
      box.setAttribute("data-error", String(err));
      box.appendChild(el("p", {"class": "error"}, "This plot failed to draw: " + err));
    });
  }

  function build(payload) {
    Object.keys(shown).forEach(function (k) { if (shown[k].plot) Plotly.purge(shown[k].plot); });
    shown = {};
    content.textContent = "";
    var jobs = [];
    payload.sections.forEach(function (s) {
      var section = el("section", {"class": "study", "data-section": s.id});
      var h2 = el("h2", {}, s.heading + " ");
      h2.appendChild(el("small", {}, s.subheading ? "(" + s.subheading + ")" : ""));
      section.appendChild(h2);
      if (s.error) section.appendChild(el("p", {"class": "error"}, s.error));
      var summary = el("div", {"class": "summary"});
      summary.innerHTML = s.summary_html || "";  // escaped on the server
      section.appendChild(summary);
      s.views.forEach(function (v) {
        var key = s.id + "/" + v.view;
        var box = el("div", {"class": "view", "data-view": v.view, "data-section": s.id, "data-points": "0"});
        box.appendChild(el("h3", {}, v.title));
        var note = el("p", {"class": "note"}, v.note || "");
        box.appendChild(note);
        var entry = {box: box, note: note, plot: null, table: null};
        if (v.missing) {
          box.setAttribute("data-missing", v.missing);
          box.appendChild(el("p", {"class": "missing"}, "Not drawn: " + v.missing));
        } else if (v.table) {
          entry.table = makeTable(v.table, box);
          box.appendChild(entry.table);
        } else {
          entry.plot = el("div", {"class": "plot"});
          box.appendChild(entry.plot);
        }
        section.appendChild(box);
        shown[key] = entry;
      });
      content.appendChild(section);
    });
    payload.sections.forEach(function (s) {
      s.views.forEach(function (v) { if (v.figure) jobs.push(plot(shown[s.id + "/" + v.view], v.figure)); });
    });
    return Promise.all(jobs);
  }

  function update(payload) {  // same views as before: redraw in place (the reader's zoom is kept)
    var jobs = [];
    payload.sections.forEach(function (s) {
      var section = content.querySelector('[data-section="' + CSS.escape(s.id) + '"] .summary');
      if (section) section.innerHTML = s.summary_html || "";
      s.views.forEach(function (v) {
        var entry = shown[s.id + "/" + v.view];
        entry.note.textContent = v.note || "";
        if (v.figure) jobs.push(plot(entry, v.figure));
        if (v.table) {
          var fresh = makeTable(v.table, entry.box);
          entry.box.replaceChild(fresh, entry.table);
          entry.table = fresh;
        }
      });
    });
    return Promise.all(jobs);
  }

  function show(payload) {
    var key = keyOf(payload);
    var done = key === layoutKey ? update(payload) : build(payload);
    layoutKey = key;
    return done.then(function () {
      refreshes += 1;
      document.body.setAttribute("data-refreshes", String(refreshes));
      document.body.setAttribute("data-views", String(document.querySelectorAll(".view").length));
      document.body.setAttribute("data-drawn", String(document.querySelectorAll('.view[data-rendered]').length));
      statusLine.textContent = (live ? "live, updated " + new Date().toLocaleTimeString() : "written " + payload.generated)
        + " \u00b7 " + payload.sections.length + " section(s)";
    });
  }

  if (!live) {
    show(JSON.parse(document.getElementById("payload").textContent));
    return;
  }
  var signature = null;
  function poll() {
    fetch("api/state", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (state) {
      if (JSON.stringify(state.signature) === JSON.stringify(signature)) return null;
      return fetch("api/views", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (payload) {
        signature = payload.signature;
        return show(payload);
      });
    }).catch(function (err) {
      statusLine.textContent = "cannot reach the dashboard: " + err;
    }).then(function () { setTimeout(poll, POLL_MS); });
  }
  var POLL_MS = Number(document.body.getAttribute("data-poll-ms")) || 2000;
  poll();
})();
"""

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
{plotly}
</head>
<body data-mode="{mode}" data-poll-ms="{poll_ms}">
<h1>{title}</h1>
<p id="status"></p>
<div id="content"></div>
{payload}
<script>{app}</script>
</body></html>
"""


def render_page(payload: dict | None = None, *, plotly_src: str | None = None, poll_ms: int = 2000) -> str:
    """The HTML page: with a payload, a self-contained report (plotly.js inlined); without one,
    the live dashboard's page, which loads plotly.js from `plotly_src` and polls for its views."""
    if payload is not None:
        from plotly.offline import get_plotlyjs

        plotly = f"<script>{get_plotlyjs()}</script>"
        data = f'<script type="application/json" id="payload">{_script_json(payload)}</script>'
        mode, title = "report", payload.get("title", "autosys report")
    else:
        plotly = f'<script src="{html.escape(plotly_src or "plotly.min.js")}"></script>'
        data, mode, title = "", "dashboard", "autosys dashboard"
    return _PAGE.format(title=html.escape(title), style=_STYLE, plotly=plotly, mode=mode, poll_ms=int(poll_ms),
                        payload=data, app=_APP_JS)


def write_report(directories: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write a self-contained interactive index.html for the given study directories; returns its path."""
    if not directories:
        raise ValueError("name at least one study directory")
    studies = [load_study(d) for d in directories]
    out_dir = Path(out) if out is not None else Path(directories[0]) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "index.html"
    page.write_text(render_page(report_payload(studies)), encoding="utf-8")
    return page


__all__ = ["StudyData", "ReadOnlySQLiteStorage", "load_study", "study_signature", "report_payload", "render_page",
           "error_section", "write_report", "pareto_front", "pareto_rows", "plot_pareto", "plot_comparison"]
