"""The size/latency Pareto view of learned-index trials.

`pareto_front(df)` keeps the completed trials no other trial beats on both
index size and lookup time; `plot_pareto(df, path, cap_bytes=...)` draws every
trial, the front, the size cap and the best config under it, as a PNG. Both
read a Study's dataframe (`metrics.index_bytes`, `metrics.ns_per_lookup`
columns) or a plain frame with unprefixed column names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SIZE = "index_bytes"
LATENCY = "ns_per_lookup"


def _column(df: pd.DataFrame, name: str) -> str:
    for candidate in (name, f"metrics.{name}"):
        if candidate in df.columns:
            return candidate
    raise KeyError(f"no {name!r} (or 'metrics.{name}') column among {list(df.columns)}")


def _completed(df: pd.DataFrame) -> pd.DataFrame:
    size, latency = _column(df, SIZE), _column(df, LATENCY)
    done = df
    if "state" in df.columns:
        done = df[df["state"] == "complete"]
    values = done[[size, latency]].astype(float)
    return done[np.isfinite(values).all(axis=1)]


def pareto_front(df: pd.DataFrame) -> pd.DataFrame:
    """Rows not dominated in (index size, ns/lookup), both minimized; sorted by size."""
    done = _completed(df)
    size, latency = _column(df, SIZE), _column(df, LATENCY)
    ordered = done.sort_values([size, latency], kind="stable")
    keep, best = [], np.inf
    for label, value in zip(ordered.index, ordered[latency].astype(float)):
        if value < best:  # strictly faster than every smaller-or-equal index
            keep.append(label)
            best = value
    return ordered.loc[keep]


def best_under_cap(df: pd.DataFrame, cap_bytes: float | None) -> pd.Series | None:
    """The fastest completed trial whose index fits the cap (None if none does)."""
    done = _completed(df)
    size, latency = _column(df, SIZE), _column(df, LATENCY)
    if cap_bytes is not None:
        done = done[done[size].astype(float) <= cap_bytes]
    if done.empty:
        return None
    return done.loc[done[latency].astype(float).idxmin()]


def plot_pareto(
    df: pd.DataFrame,
    path: str | Path,
    cap_bytes: float | None = None,
    baseline_ns: float | None = None,
    title: str = "learned index: size vs lookup time",
) -> Path:
    """Draw all trials, the Pareto front, the size cap and a baseline's latency; write a PNG."""
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend stays as it is

    done = _completed(df)
    size, latency = _column(df, SIZE), _column(df, LATENCY)
    front = pareto_front(df)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.scatter(done[size].astype(float), done[latency].astype(float), s=14, color="lightgrey", label="trials")
    ax.step(front[size].astype(float), front[latency].astype(float), where="post", color="tab:orange", marker="o",
            label="Pareto front")
    if cap_bytes is not None:
        ax.axvline(cap_bytes, color="tab:red", linestyle="--", label="size cap")
    if baseline_ns is not None:
        ax.axhline(baseline_ns, color="tab:blue", linestyle=":", label="numpy.searchsorted")
    best = best_under_cap(df, cap_bytes)
    if best is not None:
        ax.scatter([float(best[size])], [float(best[latency])], s=80, marker="*", color="tab:green", zorder=3,
                   label="best under cap")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("index size (bytes)")
    ax.set_ylabel("ns per lookup")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
