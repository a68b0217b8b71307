"""`autosys trace ...`: record, generate, inspect and simulate page-access traces.

Mounted by the core CLI as the `trace` group (entry point
`trace = "autosys_adapters.pagecache.cli:app"`). The output format follows the file
suffix: .oracleGeneral/.bin (libCacheSim's binary), .npy, anything else text.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

app = typer.Typer(help="Page-access traces: record real SQLite traces, generate synthetic ones, simulate policies.",
                  no_args_is_help=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _check_numbers(**flags: tuple[float, float]) -> None:
    """Each flag's value must be finite and at least its minimum: {name: (value, minimum)}; one line otherwise."""
    for name, (value, minimum) in flags.items():
        if not math.isfinite(value) or value < minimum:
            _fail(f"--{name.replace('_', '-')} must be a finite number of at least {minimum:g}, not {value}")


@app.command()
def record(
    engine: str = typer.Argument("sqlite", help="what to record (only 'sqlite' for now)"),
    workload: str = typer.Option("ycsb", help="ycsb, tpcc or scan"),
    out: Path = typer.Option(..., help="trace file to write (.oracleGeneral, .npy or text)"),
    ops: int = typer.Option(20_000, help="workload operations in the recorded run phase"),
    seed: int = typer.Option(0, help="workload seed: the same seed replays the same page sequence"),
    scale: int = typer.Option(1, help="table size multiplier"),
    page_size: int = typer.Option(4096, help="SQLite page size in bytes"),
    sqlite_cache_pages: int = typer.Option(16, help="SQLite's own page cache; the trace is what misses it"),
) -> None:
    """Run a real workload through a logging SQLite VFS and write its page trace."""
    from autosys_adapters.pagecache.recorder import record_sqlite
    from autosys_adapters.pagecache.traces import write_trace

    if engine != "sqlite":
        _fail(f"cannot record {engine!r}: only 'sqlite' is supported")
    try:
        trace = record_sqlite(workload, ops=ops, seed=seed, scale=scale, page_size=page_size,
                              sqlite_cache_pages=sqlite_cache_pages)
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc))
    write_trace(trace, out)
    writes = float(trace.writes.mean()) if trace.writes is not None else 0.0
    typer.echo(f"wrote {out}: {len(trace)} page accesses, {trace.footprint} distinct pages, {writes:.1%} writes")


@app.command()
def generate(
    kind: str = typer.Argument(..., help="zipf, scan_loop_hot, loop or scan"),
    out: Path = typer.Option(..., help="trace file to write"),
    requests: int = typer.Option(200_000),
    pages: int = typer.Option(20_000, help="distinct pages (zipf, loop)"),
    alpha: float = typer.Option(0.8, help="zipf skew"),
    seed: int = typer.Option(0),
) -> None:
    """Write a seeded synthetic trace."""
    from autosys_adapters.pagecache.traces import generate as gen
    from autosys_adapters.pagecache.traces import write_trace

    _check_numbers(requests=(requests, 1), pages=(pages, 1), alpha=(alpha, 0), seed=(seed, 0))
    try:
        trace = gen(kind, requests, pages, alpha, seed)
    except ValueError as exc:
        _fail(str(exc))
    write_trace(trace, out)
    typer.echo(f"wrote {out}: {len(trace)} requests, {trace.footprint} distinct pages")


@app.command()
def simulate(
    trace: Path = typer.Argument(..., help="trace file"),
    cache_size: float = typer.Option(0.1, help="fraction of the footprint if < 1, else pages"),
    policies: str = typer.Option("lru,fifo,clock,lfu,arc,2q,s3fifo,sieve,tinylfu,lecar,belady", help="comma-separated"),
    fmt: str = typer.Option("auto", "--format", help="auto, text, csv, npy or oracleGeneral"),
    column: str = typer.Option("0", help="CSV column (name or index)"),
) -> None:
    """Miss ratios of policies on a trace, with the share of the LRU-to-Belady gap closed."""
    _check_numbers(cache_size=(cache_size, 1e-12))
    from rich.console import Console
    from rich.table import Table

    from autosys_adapters.pagecache.simulator import PreparedTrace, capacity_of, gap_closed
    from autosys_adapters.pagecache.simulator import simulate as sim
    from autosys_adapters.pagecache.traces import TraceError, read_trace

    try:
        tr = PreparedTrace.of(read_trace(trace, fmt, int(column) if column.isdigit() else column))
    except TraceError as exc:
        _fail(str(exc))
    cap = capacity_of(cache_size, tr.n_obj)
    lru = sim(tr, cap, "lru").miss_ratio
    opt = sim(tr, cap, "belady").miss_ratio
    table = Table(title=f"{trace.name}: {len(tr)} requests, {tr.n_obj} pages, cache {cap} pages")
    for col in ("policy", "miss ratio", "byte miss ratio", "gap closed", "Mreq/s"):
        table.add_column(col)
    for name in [p.strip() for p in policies.split(",") if p.strip()]:
        try:
            r = sim(tr, cap, name)
        except ValueError as exc:
            _fail(str(exc))
        table.add_row(name, f"{r.miss_ratio:.4f}", f"{r.byte_miss_ratio:.4f}",
                      f"{gap_closed(r.miss_ratio, lru, opt):.1%}", f"{r.requests_per_second / 1e6:.1f}")
    Console().print(table)


@app.command()
def info(
    trace: Path = typer.Argument(..., help="trace file"),
    fmt: str = typer.Option("auto", "--format"),
    column: str = typer.Option("0"),
) -> None:
    """Length, footprint and write share of a trace (and a clear error if it is malformed)."""
    from autosys_adapters.pagecache.traces import TraceError, read_trace

    try:
        t = read_trace(trace, fmt, int(column) if column.isdigit() else column)
    except TraceError as exc:
        _fail(str(exc))
    writes = "n/a" if t.writes is None else f"{t.writes.mean():.1%}"
    typer.echo(f"{trace}: {len(t)} requests, {t.footprint} distinct pages, writes {writes}")
