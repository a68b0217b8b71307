"""Page-access traces: read, write and generate them.

A trace is a sequence of page ids, optionally with a write flag and an object
size per request. Readers cover one-id-per-line text, CSV (a chosen column),
`.npy` arrays and libCacheSim's oracleGeneral binary format; the writer emits
oracleGeneral (with next-access times, which libCacheSim's Belady needs).
Generators (zipf, scan, loop, mixtures with phase changes) are seeded.
`spatial_sample` keeps a SHARDS-style spatial sample (every request to a
hashed subset of the pages), the cheap fidelity of the page-policy system.
Bad files raise `TraceError` naming the file and, for text, the line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

#: oracleGeneral record: u32 clock time, u64 object id, u32 size, i64 next access (vtime, -1 = never)
ORACLE_DTYPE = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
ORACLE_SUFFIXES = (".oraclegeneral", ".oracle", ".bin")
DEFAULT_PAGE_SIZE = 4096
#: page ids are held as int64: anything from 0 to this fits
MAX_PAGE_ID = int(np.iinfo(np.int64).max)


class TraceError(ValueError):
    """A trace file that cannot be read (wrong format, empty, non-integer ids)."""


@dataclass
class Trace:
    """A page-access trace: ids (int64), optional write flags and sizes (bytes)."""

    ids: np.ndarray
    writes: np.ndarray | None = None
    sizes: np.ndarray | None = None
    name: str = "trace"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.ids = _as_ids(self.ids, self.name)
        if self.ids.ndim != 1:
            raise TraceError(f"{self.name}: page ids must be one-dimensional, got shape {self.ids.shape}")
        if len(self.ids) == 0:
            raise TraceError(f"{self.name}: the trace is empty")
        for attr in ("writes", "sizes"):
            value = getattr(self, attr)
            if value is not None and len(value) != len(self.ids):
                raise TraceError(f"{self.name}: {attr} has {len(value)} entries for {len(self.ids)} requests")
        if self.writes is not None:
            self.writes = np.asarray(self.writes, dtype=bool)
        if self.sizes is not None:
            self.sizes = np.asarray(self.sizes, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def footprint(self) -> int:
        """Number of distinct pages."""
        return int(len(np.unique(self.ids)))

    def dense(self) -> tuple[np.ndarray, int]:
        """Ids renumbered 0..n_unique-1 (int32, in order of first appearance is not promised) and n_unique."""
        uniq, inverse = np.unique(self.ids, return_inverse=True)
        return inverse.astype(np.int32), len(uniq)

    def size_array(self) -> np.ndarray:
        return self.sizes if self.sizes is not None else np.full(len(self.ids), DEFAULT_PAGE_SIZE, dtype=np.int64)

    def head(self, n: int) -> "Trace":
        return Trace(
            self.ids[:n],
            None if self.writes is None else self.writes[:n],
            None if self.sizes is None else self.sizes[:n],
            name=self.name,
            meta=dict(self.meta),
        )


def _as_ids(values, name: str) -> np.ndarray:
    """Page ids as int64, refusing non-integers, NaN, negatives and values beyond int64 with a TraceError."""
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        try:
            arr = np.asarray(values, dtype=np.int64)
        except (OverflowError, ValueError, TypeError):
            raise TraceError(f"{name}: page ids must be integers from 0 to 2^63-1") from None
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr >= 2.0**63)
        if bad.any():
            i = int(np.argmax(bad))
            raise TraceError(f"{name}: element {i} is not an integer page id from 0 to 2^63-1 ({arr.flat[i]})")
    elif arr.dtype.kind == "u" and arr.size and arr.max() > MAX_PAGE_ID:
        raise TraceError(f"{name}: element {int(np.argmax(arr > MAX_PAGE_ID))} is a page id above 2^63-1")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise TraceError(f"{name}: element {int(np.argmax(arr < 0))} is a negative page id")
    return arr


# --------------------------------------------------------------------------- next access


def next_access(ids: np.ndarray) -> np.ndarray:
    """For each request i, the index of the next request to the same id, or len(ids) if none (vectorized)."""
    ids = np.asarray(ids)
    n = len(ids)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    nxt = np.full(n, n, dtype=np.int64)
    same = sorted_ids[1:] == sorted_ids[:-1]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


# --------------------------------------------------------------------------- readers


def _int_token(token: str, path: Path, line_no: int, what: str = "page id") -> int:
    token = token.strip()
    try:
        value = int(token, 0) if token.lower().startswith(("0x", "0o", "0b")) else int(token)
    except ValueError:
        raise TraceError(f"{path}:{line_no}: {what} {token!r} is not an integer") from None
    if value < 0:
        raise TraceError(f"{path}:{line_no}: {what} {value} is negative")
    if value > MAX_PAGE_ID:
        raise TraceError(f"{path}:{line_no}: {what} {value} is out of range (above 2^63-1)")
    return value


def read_text(path: str | Path) -> Trace:
    """One page id per line; optional second field r/w (or R/W, 0/1). Blank lines and '#' comments are skipped."""
    path = Path(path)
    ids: list[int] = []
    writes: list[bool] = []
    any_flag = False
    with open(path, encoding="utf-8", errors="strict") as fh:
        try:
            for line_no, line in enumerate(fh, start=1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.replace(",", " ").split()
                ids.append(_int_token(parts[0], path, line_no))
                if len(parts) > 1:
                    any_flag = True
                    flag = parts[1].lower()
                    if flag not in ("r", "w", "0", "1", "read", "write"):
                        raise TraceError(f"{path}:{line_no}: access flag {parts[1]!r} is not r/w/0/1")
                    writes.append(flag in ("w", "1", "write"))
                else:
                    writes.append(False)
        except UnicodeDecodeError as exc:
            raise TraceError(f"{path}: not a text trace ({exc.reason}); binary traces need the .oracleGeneral/.npy suffix") from None
    if not ids:
        raise TraceError(f"{path}: the trace is empty (no page ids)")
    return Trace(np.array(ids, dtype=np.int64), np.array(writes) if any_flag else None, name=path.stem)


def read_csv(path: str | Path, column: str | int = 0, has_header: bool | None = None) -> Trace:
    """Page ids from one CSV column (name or 0-based index). A header row is detected when `column` is a name."""
    path = Path(path)
    ids: list[int] = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        index = column if isinstance(column, int) else None
        header = has_header if has_header is not None else not isinstance(column, int)
        for line_no, row in enumerate(reader, start=1):
            if not row or not any(cell.strip() for cell in row):
                continue
            if header and index is None:
                names = [cell.strip() for cell in row]
                if str(column) not in names:
                    raise TraceError(f"{path}:{line_no}: no column {column!r} in header {names}")
                index = names.index(str(column))
                header = False
                continue
            if header:
                header = False
                continue
            if index >= len(row):
                raise TraceError(f"{path}:{line_no}: row has {len(row)} columns, need column {index}")
            ids.append(_int_token(row[index], path, line_no))
    if not ids:
        raise TraceError(f"{path}: the trace is empty (no rows)")
    return Trace(np.array(ids, dtype=np.int64), name=path.stem)


def read_npy(path: str | Path) -> Trace:
    """A 1-D integer `.npy` array of page ids."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise TraceError(f"{path}: not a valid .npy file ({exc})") from None
    if arr.ndim != 1:
        raise TraceError(f"{path}: expected a 1-D array of page ids, got shape {arr.shape}")
    if arr.size == 0:
        raise TraceError(f"{path}: the trace is empty")
    if arr.dtype.kind not in "iuf":
        raise TraceError(f"{path}: page ids must be integers, not dtype {arr.dtype}")
    return Trace(_as_ids(arr, str(path)), name=path.stem)


def read_oracle_general(path: str | Path) -> Trace:
    """libCacheSim's oracleGeneral binary format (24-byte little-endian records)."""
    path = Path(path)
    nbytes = path.stat().st_size
    if nbytes == 0:
        raise TraceError(f"{path}: the trace is empty")
    if nbytes % ORACLE_DTYPE.itemsize:
        raise TraceError(
            f"{path}: {nbytes} bytes is not a whole number of {ORACLE_DTYPE.itemsize}-byte oracleGeneral records "
            f"(record {nbytes // ORACLE_DTYPE.itemsize} is truncated)"
        )
    rec = np.fromfile(path, dtype=ORACLE_DTYPE)
    if (rec["id"] > MAX_PAGE_ID).any():
        raise TraceError(f"{path}: record {int(np.argmax(rec['id'] > MAX_PAGE_ID))} has an id above 2^63-1")
    return Trace(rec["id"].astype(np.int64), sizes=rec["size"].astype(np.int64), name=path.stem)


def read_trace(path: str | Path, fmt: str = "auto", column: str | int = 0) -> Trace:
    """Read a trace; `fmt` is auto (by suffix), text, csv, npy or oracleGeneral."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: no such trace file")
    fmt = fmt.lower()
    if fmt == "auto":
        suffix = path.suffix.lower()
        fmt = {".npy": "npy", ".csv": "csv"}.get(suffix, "oraclegeneral" if suffix in ORACLE_SUFFIXES else "text")
    if fmt == "npy":
        return read_npy(path)
    if fmt == "csv":
        return read_csv(path, column)
    if fmt in ("oraclegeneral", "oracle"):
        return read_oracle_general(path)
    if fmt in ("text", "txt"):
        return read_text(path)
    raise TraceError(f"unknown trace format {fmt!r}: use text, csv, npy or oracleGeneral")


# --------------------------------------------------------------------------- writers


def write_oracle_general(trace: Trace, path: str | Path) -> Path:
    """Write `trace` as oracleGeneral records with next-access vtimes (what libCacheSim's Belady reads)."""
    path = Path(path)
    n = len(trace)
    rec = np.zeros(n, dtype=ORACLE_DTYPE)
    rec["time"] = np.arange(1, n + 1, dtype=np.uint32)
    rec["id"] = trace.ids.astype(np.uint64)
    rec["size"] = trace.size_array().astype(np.uint32)
    nxt = next_access(trace.ids)
    rec["next"] = np.where(nxt >= n, -1, nxt + 1)  # 1-based index of the next request, -1 if none
    rec.tofile(path)
    return path


def write_text(trace: Trace, path: str | Path) -> Path:
    path = Path(path)
    if trace.writes is None:
        np.savetxt(path, trace.ids, fmt="%d")
    else:
        with open(path, "w") as fh:
            fh.writelines(f"{i} {'w' if w else 'r'}\n" for i, w in zip(trace.ids.tolist(), trace.writes.tolist()))
    return path


def write_trace(trace: Trace, path: str | Path) -> Path:
    """Write by suffix: .npy, oracleGeneral (.oracleGeneral/.bin) or text (anything else)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, trace.ids)
        return path
    if suffix in ORACLE_SUFFIXES:
        return write_oracle_general(trace, path)
    return write_text(trace, path)


# --------------------------------------------------------------------------- generators


#: SHARDS modulus: a page is sampled when hash(id) mod SAMPLE_MODULUS < threshold
SAMPLE_MODULUS = 1 << 24


def _mix64(ids: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of each id (plus the seed): a stable hash, the same in every process."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (seed + 1)) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def sample_threshold(rate: float) -> int:
    """The SHARDS threshold T for a sampling rate R = T / SAMPLE_MODULUS (at least 1)."""
    if not 0 < rate <= 1:
        raise ValueError(f"a sampling rate is in (0, 1], got {rate}")
    return max(1, int(round(rate * SAMPLE_MODULUS)))


def spatial_sample(trace: Trace, rate: float, seed: int = 0) -> Trace:
    """Every request to the pages whose hash(id) mod P < T, with T / P = `rate` (SHARDS, fixed rate).

    A page is either always or never sampled, so reuse distances within the
    sample are the full trace's scaled by `rate`: simulate the sample with the
    cache size scaled by the same rate and its miss ratio estimates the full
    trace's. The rate actually used (T / P) is in `meta["sample_rate"]`.
    """
    threshold = sample_threshold(rate)
    if threshold >= SAMPLE_MODULUS:
        return trace
    keep = (_mix64(trace.ids, seed) % np.uint64(SAMPLE_MODULUS)) < np.uint64(threshold)
    if not keep.any():
        raise TraceError(f"{trace.name}: a {rate:g} spatial sample keeps no page; raise the rate")
    meta = {**trace.meta, "sample_rate": threshold / SAMPLE_MODULUS}
    return Trace(
        trace.ids[keep],
        None if trace.writes is None else trace.writes[keep],
        None if trace.sizes is None else trace.sizes[keep],
        name=trace.name,
        meta=meta,
    )


def _zipf_probs(n_pages: int, alpha: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n_pages + 1, dtype=np.float64) ** alpha
    return p / p.sum()


def zipf(n_requests: int, n_pages: int, alpha: float = 0.8, seed: int = 0, offset: int = 0) -> Trace:
    """Independent requests with P(rank k) ~ 1/k^alpha over a shuffled id space."""
    rng = np.random.default_rng(seed)
    ranks = rng.choice(n_pages, size=n_requests, p=_zipf_probs(n_pages, alpha))
    perm = rng.permutation(n_pages)
    return Trace(perm[ranks] + offset, name=f"zipf{alpha:g}")


def scan(n_requests: int, start: int = 0, **_: object) -> Trace:
    """A one-pass sequential scan of never-repeating pages."""
    return Trace(np.arange(start, start + n_requests, dtype=np.int64), name="scan")


def loop(n_requests: int, loop_pages: int, start: int = 0, **_: object) -> Trace:
    """A cyclic loop over `loop_pages` pages (LRU's worst case when the loop exceeds the cache)."""
    return Trace(start + np.arange(n_requests, dtype=np.int64) % loop_pages, name="loop")


def mixture(phases: Sequence[dict], seed: int = 0, name: str = "mixture") -> Trace:
    """Concatenate phases; a phase may interleave several components by weight.

    Each phase is {"n": requests, "parts": [(weight, kind, kwargs), ...]} with kind
    zipf/scan/loop/hot; each component draws ids from its own disjoint range
    (kwargs "base") so a scan never pollutes the hot set's ids.
    """
    rng = np.random.default_rng(seed)
    chunks = []
    scan_pos: dict[int, int] = {}
    for phase in phases:
        n = int(phase["n"])
        parts = phase["parts"]
        weights = np.array([w for w, _, _ in parts], dtype=float)
        which = rng.choice(len(parts), size=n, p=weights / weights.sum())
        out = np.empty(n, dtype=np.int64)
        for k, (_, kind, kw) in enumerate(parts):
            mask = which == k
            m = int(mask.sum())
            if m == 0:
                continue
            base = int(kw.get("base", 0))
            if kind in ("zipf", "hot"):
                pages = int(kw["pages"])
                alpha = float(kw.get("alpha", 0.8 if kind == "zipf" else 0.0))
                out[mask] = base + rng.choice(pages, size=m, p=_zipf_probs(pages, alpha))
            elif kind == "scan":
                pos = scan_pos.get(base, 0)
                out[mask] = base + pos + np.arange(m)
                scan_pos[base] = pos + m
            elif kind == "loop":
                pages = int(kw["pages"])
                pos = scan_pos.get(base, 0)
                out[mask] = base + (pos + np.arange(m)) % pages
                scan_pos[base] = pos + m
            else:
                raise ValueError(f"unknown mixture component {kind!r}: use zipf, hot, scan or loop")
        chunks.append(out)
    return Trace(np.concatenate(chunks), name=name)


def scan_loop_hot(n_requests: int = 200_000, seed: int = 0) -> Trace:
    """The standard mixture: a hot set, a loop slightly larger than a small cache and one-off scans, in phases."""
    q = n_requests // 4
    hot = ("hot", {"pages": 2_000, "alpha": 0.6, "base": 0})
    phases = [
        {"n": q, "parts": [(0.7, *hot), (0.3, "scan", {"base": 10_000_000})]},
        {"n": q, "parts": [(0.5, *hot), (0.5, "loop", {"pages": 3_000, "base": 1_000_000})]},
        {"n": q, "parts": [(0.4, *hot), (0.3, "loop", {"pages": 3_000, "base": 1_000_000}), (0.3, "scan", {"base": 10_000_000})]},
        {"n": n_requests - 3 * q, "parts": [(0.8, "hot", {"pages": 4_000, "alpha": 0.9, "base": 0}), (0.2, "scan", {"base": 10_000_000})]},
    ]
    return mixture(phases, seed=seed, name="scan_loop_hot")


GENERATORS = {"zipf": zipf, "scan_loop_hot": scan_loop_hot, "loop": loop, "scan": scan}


def generate(kind: str, n_requests: int, n_pages: int = 10_000, alpha: float = 0.8, seed: int = 0) -> Trace:
    """Build a synthetic trace by generator name (zipf, scan_loop_hot, loop, scan)."""
    if kind == "zipf":
        return zipf(n_requests, n_pages, alpha, seed)
    if kind in ("scan_loop_hot", "mixture"):
        return scan_loop_hot(n_requests, seed)
    if kind == "loop":
        return loop(n_requests, n_pages)
    if kind == "scan":
        return scan(n_requests)
    raise ValueError(f"unknown generator {kind!r}: choose one of zipf, scan_loop_hot, loop, scan")


@dataclass
class PreparedTrace:
    """Dense ids (0..n_obj-1), next-access indices and sizes of a trace."""

    ids: np.ndarray
    n_obj: int
    nxt: np.ndarray
    sizes: np.ndarray
    name: str = "trace"

    @classmethod
    def of(cls, trace: Trace) -> "PreparedTrace":
        ids, n_obj = trace.dense()
        return cls(ids, n_obj, next_access(ids), trace.size_array(), trace.name)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def footprint(self) -> int:
        return self.n_obj
