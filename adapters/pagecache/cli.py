"""`autosys trace ...`: record, generate, inspect and simulate page-access traces.

Mounted by the core CLI as the `trace` group (entry point
`trace = "autosys_adapters.pagecache.cli:app"`). The output format follows the file
suffix: .oracleGeneral/.bin (libCacheSim's binary), .npy, anything else text.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

app = typer.Typer(help="Page-access traces: record real SQLite and server traces, generate synthetic ones, simulate policies.",
                  no_args_is_help=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _check_numbers(**flags: tuple[float, float]) -> None:
    """Each flag's value must be finite and at least its minimum: {name: (value, minimum)}; one line otherwise."""
    for name, (value, minimum) in flags.items():
        if not math.isfinite(value) or value < minimum:
            _fail(f"--{name.replace('_', '-')} must be a finite number of at least {minimum:g}, not {value}")


_RECORD_DEFAULTS = {"sqlite": "ycsb", "postgres": "mixed", "mariadb": "oltp_read_only", "rocksdb": "zipf"}


@app.command()
def record(
    engine: str = typer.Argument("sqlite", help="what to record: sqlite, postgres, mariadb or rocksdb"),
    workload: str = typer.Option(None, help="sqlite: ycsb, tpcc, scan; postgres: mixed, select, tpcb; "
                                            "mariadb: oltp_read_only, oltp_point_select, oltp_read_write "
                                            "[default: sqlite ycsb, postgres mixed, mariadb oltp_read_only, rocksdb zipf]"),
    out: Path = typer.Option(..., help="trace file to write (.oracleGeneral, .npy or text); a .json description "
                                       "is written next to it"),
    ops: int = typer.Option(20_000, help="sqlite/rocksdb: operations in the recorded run phase"),
    seed: int = typer.Option(0, help="workload seed: the same seed replays the same sequence (sqlite, rocksdb)"),
    scale: int = typer.Option(1, help="sqlite: table size multiplier; postgres: pgbench scale if the database is made"),
    page_size: int = typer.Option(4096, help="SQLite page size in bytes"),
    sqlite_cache_pages: int = typer.Option(16, help="SQLite's own page cache; the trace is what misses it"),
    duration: float = typer.Option(30.0, help="postgres/mariadb: seconds of benchmark traced"),
    clients: int = typer.Option(4, help="postgres/mariadb: benchmark clients (threads)"),
    database: str = typer.Option(None, help="postgres/mariadb: database to run in (made, and dropped after, if missing) [default: autosys_trace_pg, autosys_trace_my]"),
    keep_db: bool = typer.Option(False, help="keep a database this command made"),
    table_size: int = typer.Option(1_000_000, help="mariadb: rows per sysbench table (4 tables) if prepared"),
    keys: int = typer.Option(1_000_000, help="rocksdb: keys loaded"),
    block_cache_mb: int = typer.Option(8, help="rocksdb: block cache; the trace is what misses it"),
    db_path: Path = typer.Option(None, help="rocksdb: database directory to reuse (made if empty) [default: a temporary directory]"),
) -> None:
    """Record a real page-read trace: SQLite through a logging VFS, or a server's reads with strace."""
    from autosys_adapters.pagecache.traces import write_trace

    if engine not in _RECORD_DEFAULTS:
        _fail(f"cannot record {engine!r}: choose one of {', '.join(_RECORD_DEFAULTS)}")
    workload = workload or _RECORD_DEFAULTS[engine]
    if engine == "sqlite":
        from autosys_adapters.pagecache.recorder import record_sqlite
        from autosys_adapters.pagecache.server_traces import write_description

        try:
            trace = record_sqlite(workload, ops=ops, seed=seed, scale=scale, page_size=page_size,
                                  sqlite_cache_pages=sqlite_cache_pages)
        except (ValueError, RuntimeError) as exc:
            _fail(str(exc))
        write_trace(trace, out)
        write_description(out, {"recorded_by": "autosys trace record", "source": "SQLite (apsw logging VFS)",
                                "requests": len(trace), "distinct_objects": trace.footprint, "page_size": page_size,
                                "what": "xRead/xWrite of the main database file below SQLite's own cache",
                                **trace.meta})
        writes = float(trace.writes.mean()) if trace.writes is not None else 0.0
        typer.echo(f"wrote {out}: {len(trace)} page accesses, {trace.footprint} distinct pages, {writes:.1%} writes")
        return
    from autosys_adapters.pagecache import server_traces as S
    from autosys_adapters.pagecache.strace_log import TraceRecordingError

    try:
        if engine == "postgres":
            rec = S.record_postgres(workload, duration=duration, clients=clients, scale=max(scale, 1),
                                    database=database or "autosys_trace_pg", seed=seed or 42, keep=keep_db)
        elif engine == "mariadb":
            rec = S.record_mariadb(workload, duration=duration, threads=clients, table_size=table_size,
                                   database=database or "autosys_trace_my", seed=seed or 42, keep=keep_db)
        else:
            rec = S.record_rocksdb(ops=ops, keys=keys, block_cache_mb=block_cache_mb, seed=seed, db_path=db_path)
    except (ValueError, TraceRecordingError) as exc:
        _fail(str(exc))
    paths = S.save_recording(rec, out)
    d = rec.description
    typer.echo(f"wrote {out}: {d['requests']} requests, {d['distinct_objects']} distinct objects, "
               f"{d['bytes_read'] / 1e6:.1f} MB read in {d['duration_s']} s; description {paths['description']}")


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


@app.command()
def convert(
    src: Path = typer.Argument(..., help="trace to read (oracleGeneral, csv with an obj_id header, or txt)"),
    dst: Path = typer.Argument(..., help="trace to write; the format follows the suffix (.oracleGeneral, .csv, else txt)"),
    chunk: int = typer.Option(1 << 20, help="requests per chunk held in memory"),
) -> None:
    """Convert between libCacheSim's oracleGeneral, csv and txt formats in bounded memory."""
    from autosys_adapters.pagecache.formats import convert as conv
    from autosys_adapters.pagecache.traces import TraceError

    _check_numbers(chunk=(chunk, 1))
    try:
        conv(src, dst, chunk=chunk)
    except TraceError as exc:
        _fail(str(exc))
    typer.echo(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB)")


@app.command()
def stream(
    trace: Path = typer.Argument(..., help="trace file (oracleGeneral, csv or txt), read in chunks"),
    cache_size: float = typer.Option(0.1, help="fraction of the footprint in bytes if < 1, else bytes"),
    policies: str = typer.Option("lru,fifo,sieve,s3fifo,belady", help="comma-separated sized policies"),
    chunk: int = typer.Option(1 << 20, help="requests per chunk held in memory"),
) -> None:
    """Miss and byte miss ratios of sized policies (byte capacity), streaming the trace from disk in one pass."""
    _check_numbers(cache_size=(cache_size, 1e-12), chunk=(chunk, 1))
    from autosys_adapters.pagecache.formats import simulate_stream, trace_stats
    from autosys_adapters.pagecache.traces import TraceError

    names = [p.strip() for p in policies.split(",") if p.strip()]
    try:
        stats = trace_stats(trace, chunk=chunk)
        if not stats.has_next and "belady" in names:
            names.remove("belady")
            typer.echo("note: belady skipped (the trace has no next-access times; convert it to oracleGeneral)")
        states = simulate_stream(trace, cache_size, names, chunk=chunk, stats=stats)
    except (TraceError, ValueError) as exc:
        _fail(str(exc))
    cap = next(iter(states.values())).capacity
    typer.echo(f"{trace.name}: {stats.requests} requests, {stats.footprint} objects, "
               f"{stats.footprint_bytes / 1e6:.1f} MB footprint, cache {cap / 1e6:.2f} MB")
    for name, s in states.items():
        typer.echo(f"  {name:8s} miss ratio {s.miss_ratio:.4f}  byte miss ratio {s.byte_miss_ratio:.4f}")
