"""libCacheSim trace formats read and written in chunks, and simulation that streams a trace from disk.

Formats (libCacheSim's names):
- oracleGeneral: 24-byte little-endian records `<u4 time, u8 obj_id, u4 obj_size, i8 next_access_vtime>`
  (next = 1-based index of the next request to the object, -1 if none). Read with plain chunked reads.
- csv: a header row and columns `time,obj_id,obj_size[,next_access_vtime]`; libCacheSim reads it with
  `csv_reader_params()` (1-based columns, has_header).
- txt: one object id per line (libCacheSim's plain text); every object has `default_size` bytes.

Memory stays bounded by the chunk and the number of distinct objects, not the trace's length:
`trace_stats` makes one pass to learn the distinct ids (sorted) and their sizes; `dense_chunks`
replays the file mapping ids to 0..n-1 with a binary search; `simulate_stream` feeds every chunk to
several sized policies (autosys_adapters.pagecache.sized) in one pass. Next-access indices for
Belady come from the oracleGeneral file itself, or from `write_oracle_stream`, which writes them in a
backward pass over the file it wrote.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from autosys_adapters.pagecache.sized import SizedState, byte_capacity
from autosys_adapters.pagecache.traces import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_ID,
    ORACLE_DTYPE,
    ORACLE_SUFFIXES,
    TraceError,
)

DEFAULT_CHUNK = 1 << 20
CSV_COLUMNS = ("time", "obj_id", "obj_size", "next_access_vtime")


def format_of(path: str | Path, fmt: str = "auto") -> str:
    """oracleGeneral, csv or txt, from `fmt` or the file's suffix."""
    fmt = fmt.lower()
    if fmt == "auto":
        suffix = Path(path).suffix.lower()
        if suffix in ORACLE_SUFFIXES:
            return "oracleGeneral"
        return "csv" if suffix == ".csv" else "txt"
    if fmt in ("oraclegeneral", "oracle"):
        return "oracleGeneral"
    if fmt in ("csv", "txt", "text"):
        return "txt" if fmt == "text" else fmt
    raise TraceError(f"unknown streamed trace format {fmt!r}: use oracleGeneral, csv or txt")


# --------------------------------------------------------------------------- readers


@dataclass
class Chunk:
    """Requests `start`..`start+len-1` of a trace: raw ids, sizes and next-access vtimes (None if the format lacks them)."""

    start: int
    ids: np.ndarray
    sizes: np.ndarray
    nxt: np.ndarray | None

    def __len__(self) -> int:
        return len(self.ids)


def _oracle_records(path: Path) -> int:
    nbytes = path.stat().st_size
    if nbytes == 0:
        raise TraceError(f"{path}: the trace is empty")
    if nbytes % ORACLE_DTYPE.itemsize:
        raise TraceError(f"{path}: {nbytes} bytes is not a whole number of {ORACLE_DTYPE.itemsize}-byte oracleGeneral "
                         f"records (record {nbytes // ORACLE_DTYPE.itemsize} is truncated)")
    return nbytes // ORACLE_DTYPE.itemsize


def _oracle_chunks(path: Path, chunk: int) -> Iterator[Chunk]:
    """Plain reads of `chunk` records (not a memory map: mapped file pages would count in the RSS and grow with it)."""
    n = _oracle_records(path)
    with open(path, "rb") as fh:
        for i in range(0, n, chunk):
            rec = np.fromfile(fh, dtype=ORACLE_DTYPE, count=min(chunk, n - i))
            ids = rec["id"]
            if ids.max() > MAX_PAGE_ID:
                raise TraceError(f"{path}: record {i + int(np.argmax(ids > MAX_PAGE_ID))} has an id above 2^63-1")
            yield Chunk(i, ids.astype(np.int64), rec["size"].astype(np.int64), rec["next"].astype(np.int64))


def _csv_chunks(path: Path, chunk: int, default_size: int) -> Iterator[Chunk]:
    import pandas as pd

    with open(path, encoding="utf-8") as fh:
        header = [c.strip() for c in fh.readline().split(",")]
    if "obj_id" not in header:
        raise TraceError(f"{path}: a csv trace needs a header with an obj_id column (got {header})")
    cols = [c for c in ("obj_id", "obj_size", "next_access_vtime") if c in header]
    start = 0
    try:
        for frame in pd.read_csv(path, usecols=cols, chunksize=chunk, dtype={c: "int64" for c in cols}):
            ids = frame["obj_id"].to_numpy(np.int64)
            if ids.size and ids.min() < 0:
                raise TraceError(f"{path}: row {start + int(np.argmin(ids)) + 2} has a negative obj_id")
            sizes = frame["obj_size"].to_numpy(np.int64) if "obj_size" in frame else np.full(len(ids), default_size, np.int64)
            nxt = frame["next_access_vtime"].to_numpy(np.int64) if "next_access_vtime" in frame else None
            yield Chunk(start, ids, sizes, nxt)
            start += len(ids)
    except ValueError as exc:
        raise TraceError(f"{path}: not a csv trace of integers ({exc})") from None


def _txt_chunks(path: Path, chunk: int, default_size: int) -> Iterator[Chunk]:
    start = 0
    with open(path, encoding="utf-8") as fh:
        while True:
            lines = list(itertools.islice(fh, chunk))
            if not lines:
                break
            try:
                ids = np.array([int(s) for s in (line.split("#", 1)[0].strip() for line in lines) if s], dtype=np.int64)
            except ValueError:
                raise TraceError(f"{path}: a txt trace holds one integer object id per line") from None
            if ids.size and ids.min() < 0:
                raise TraceError(f"{path}: a negative object id near request {start + int(np.argmin(ids))}")
            if ids.size:
                yield Chunk(start, ids, np.full(len(ids), default_size, np.int64), None)
                start += len(ids)


def iter_chunks(path: str | Path, fmt: str = "auto", chunk: int = DEFAULT_CHUNK,
                default_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Chunk]:
    """The trace's requests in chunks of at most `chunk` (raw ids, sizes, next-access vtimes if stored)."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: no such trace file")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    kind = format_of(path, fmt)
    if kind == "oracleGeneral":
        return _oracle_chunks(path, chunk)
    if kind == "csv":
        return _csv_chunks(path, chunk, default_size)
    return _txt_chunks(path, chunk, default_size)


# --------------------------------------------------------------------------- writers


def _next_from_ids(path: Path, n: int, uniq: np.ndarray, chunk: int) -> None:
    """Fill the next_access_vtime field of an oracleGeneral file in one backward pass (memory: one int64 per object)."""
    mm = np.memmap(path, dtype=ORACLE_DTYPE, mode="r+")
    last = np.full(len(uniq), -1, np.int64)  # 1-based index of the next request seen so far, per object
    for hi in range(n, 0, -chunk):
        lo = max(0, hi - chunk)
        dense = np.searchsorted(uniq, mm["id"][lo:hi].astype(np.int64))
        pos = np.arange(lo + 1, hi + 1, dtype=np.int64)  # 1-based vtimes
        nxt = np.empty(hi - lo, np.int64)
        # within the chunk: the next request to the same object, else the one after the chunk (or -1)
        order = np.lexsort((pos, dense))
        d, p = dense[order], pos[order]
        same = np.empty(len(d), bool)
        same[:-1] = d[1:] == d[:-1]
        same[-1] = False
        nxt[order[:-1][same[:-1]]] = p[1:][same[:-1]]
        tail = ~same  # the last request to each object within the chunk
        nxt[order[tail]] = last[d[tail]]
        first = np.ones(len(d), bool)
        first[1:] = d[1:] != d[:-1]
        last[d[first]] = p[first]
        mm["next"][lo:hi] = nxt
    mm.flush()
    del mm


def write_oracle_stream(chunks: Iterable[tuple[np.ndarray, np.ndarray]], path: str | Path,
                        chunk: int = DEFAULT_CHUNK) -> Path:
    """Write (ids, sizes) chunks as oracleGeneral, then fill next-access vtimes in a backward pass over the file."""
    path = Path(path)
    n = 0
    uniq = np.empty(0, np.int64)
    with open(path, "wb") as fh:
        for ids, sizes in chunks:
            ids = np.asarray(ids, dtype=np.int64)
            if len(ids) == 0:
                continue
            if ids.min() < 0:
                raise TraceError(f"{path}: negative object id in the chunk at request {n}")
            sizes = np.broadcast_to(np.asarray(sizes, dtype=np.int64), ids.shape)
            if sizes.min() < 0 or sizes.max() > np.iinfo(np.uint32).max:
                raise TraceError(f"{path}: object sizes must fit u32 (chunk at request {n})")
            rec = np.zeros(len(ids), ORACLE_DTYPE)
            rec["time"] = (np.arange(n + 1, n + len(ids) + 1) & 0xFFFFFFFF).astype(np.uint32)
            rec["id"] = ids.astype(np.uint64)
            rec["size"] = sizes.astype(np.uint32)
            rec["next"] = -1
            rec.tofile(fh)
            uniq = np.union1d(uniq, ids)
            n += len(ids)
    if n == 0:
        raise TraceError(f"{path}: nothing to write (no requests)")
    _next_from_ids(path, n, uniq, chunk)
    return path


def write_csv_stream(chunks: Iterable[tuple[np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """Write (ids, sizes) chunks as libCacheSim csv: header `time,obj_id,obj_size`, time = 1-based request index."""
    path = Path(path)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("time,obj_id,obj_size\n")
        for ids, sizes in chunks:
            ids = np.asarray(ids, dtype=np.int64)
            sizes = np.broadcast_to(np.asarray(sizes, dtype=np.int64), ids.shape)
            table = np.column_stack([np.arange(n + 1, n + len(ids) + 1), ids, sizes])
            np.savetxt(fh, table, fmt="%d", delimiter=",")
            n += len(ids)
    return path


def write_txt_stream(chunks: Iterable[tuple[np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """Write ids one per line (libCacheSim's plain text; sizes are dropped)."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for ids, _ in chunks:
            np.savetxt(fh, np.asarray(ids, dtype=np.int64), fmt="%d")
    return path


def convert(src: str | Path, dst: str | Path, src_fmt: str = "auto", dst_fmt: str = "auto",
            chunk: int = DEFAULT_CHUNK) -> Path:
    """Copy a trace between oracleGeneral, csv and txt in chunks."""
    pairs = ((c.ids, c.sizes) for c in iter_chunks(src, src_fmt, chunk))
    kind = format_of(dst, dst_fmt)
    if kind == "oracleGeneral":
        return write_oracle_stream(pairs, dst, chunk)
    if kind == "csv":
        return write_csv_stream(pairs, dst)
    return write_txt_stream(pairs, dst)


def csv_reader_params(with_next: bool = False):
    """libCacheSim ReaderInitParam for the csv written by `write_csv_stream` (1-based columns, a header)."""
    import libcachesim as lcs

    params = lcs.ReaderInitParam(has_header=True, has_header_set=True, delimiter=",")
    params.time_field, params.obj_id_field, params.obj_size_field = 1, 2, 3
    if with_next:
        params.next_access_vtime_field = 4
    return params


# --------------------------------------------------------------------------- streamed simulation


@dataclass
class TraceStats:
    """What one pass over a trace learns: length, sorted distinct ids, each one's first size, total bytes."""

    requests: int
    uniq: np.ndarray
    first_size: np.ndarray
    bytes_requested: int
    has_next: bool

    @property
    def footprint(self) -> int:
        return len(self.uniq)

    @property
    def footprint_bytes(self) -> int:
        return int(self.first_size.sum())


def trace_stats(path: str | Path, fmt: str = "auto", chunk: int = DEFAULT_CHUNK,
                default_size: int = DEFAULT_PAGE_SIZE) -> TraceStats:
    n = 0
    total = 0
    has_next = True
    uniq = np.empty(0, np.int64)
    first = np.empty(0, np.int64)
    for c in iter_chunks(path, fmt, chunk, default_size):
        u, idx = np.unique(c.ids, return_index=True)
        new = ~np.isin(u, uniq, assume_unique=True)
        if new.any():
            merged = np.concatenate([uniq, u[new]])
            order = np.argsort(merged, kind="stable")
            uniq = merged[order]
            first = np.concatenate([first, c.sizes[idx[new]]])[order]
        n += len(c)
        total += int(c.sizes.sum())
        has_next = has_next and c.nxt is not None
    if n == 0:
        raise TraceError(f"{path}: the trace is empty")
    return TraceStats(n, uniq, first, total, has_next)


def dense_chunks(path: str | Path, stats: TraceStats, fmt: str = "auto", chunk: int = DEFAULT_CHUNK,
                 default_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Chunk]:
    """The trace's chunks with ids mapped to 0..footprint-1 (int32) by binary search in `stats.uniq`."""
    if stats.footprint > np.iinfo(np.int32).max:
        raise TraceError(f"{path}: {stats.footprint} distinct objects exceed the simulator's int32 ids")
    for c in iter_chunks(path, fmt, chunk, default_size):
        yield Chunk(c.start, np.searchsorted(stats.uniq, c.ids).astype(np.int32), c.sizes, c.nxt)


def simulate_stream(path: str | Path, cache_size: float, policies: Iterable[str] = ("lru", "fifo", "sieve", "s3fifo"),
                    fmt: str = "auto", chunk: int = DEFAULT_CHUNK, default_size: int = DEFAULT_PAGE_SIZE,
                    stats: TraceStats | None = None, **knobs: Any) -> dict[str, SizedState]:
    """Run sized policies over a trace on disk in one pass of `chunk`-request reads.

    `cache_size` is a fraction of the footprint in bytes if < 1, else bytes. Belady needs next-access
    vtimes in the file (oracleGeneral). `knobs` go to s3fifo.
    """
    policies = list(policies)
    stats = stats or trace_stats(path, fmt, chunk, default_size)
    if "belady" in policies and not stats.has_next:
        raise TraceError(f"{path}: belady needs next-access times; convert the trace to oracleGeneral first")
    cap = byte_capacity(cache_size, stats.footprint_bytes)
    states = {p: SizedState.new(p, stats.footprint, cap, **(knobs if p == "s3fifo" else {})) for p in policies}
    for c in dense_chunks(path, stats, fmt, chunk, default_size):
        for state in states.values():
            state.feed(c.ids, c.sizes, c.nxt)
    return states


def _status_kib(field: str) -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux VmHWM; reset it by writing 5 to /proc/self/clear_refs)."""
    kib = _status_kib("VmHWM")
    if kib < 0:
        import resource

        kib = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return kib * 1024


def current_rss_bytes() -> int:
    """This process's resident set size now (Linux VmRSS; -1024 where /proc is missing)."""
    return _status_kib("VmRSS") * 1024
