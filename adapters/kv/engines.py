"""Key-value engines behind one small interface, each with its real knobs.

Every engine stores bytes keys and bytes values and answers get, put, delete
and an ordered range scan. They span the design space the Design Continuum
line of work describes: a hash table (`dict`), an in-memory sorted structure
(`sortedcontainers.SortedDict`), an on-disk B-tree (SQLite table keyed by a
primary key), a memory-mapped B+tree (LMDB) and an LSM-tree (RocksDB through
rocksdict).

`ENGINES` maps a name to an `EngineSpec`: the engine class, the optional
package it needs, and its knobs as autosys parameters (named
``<engine>_<knob>``). `available_engines()` imports those packages at call
time, so an engine whose package is missing is left out with a note instead of
crashing the space.

`memory_bytes()` is the engine's own process memory for data and caches
(Python objects, SQLite page cache, RocksDB memtables, block cache and table
readers). The OS page cache is not counted, except what a memory map makes
part of the process: LMDB keeps no private cache (its
pages are the kernel's), so its figure is the resident part of its map,
read from /proc/self/smaps. `disk_bytes()` is the
space its files occupy on disk (allocated blocks, so sparse files count only
what they use).
"""

from __future__ import annotations

import heapq
import importlib
import os
import shutil
import sqlite3
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from autosys.core.space import Bool, Categorical, Condition, Config, Float, Int, Ordinal, Param

Item = tuple[bytes, bytes]


MAX_KEY_BYTES = 511  # LMDB's default limit; the contract for every engine


class KVEngine(ABC):
    """A key-value store over bytes keys and values. Use `open` / `close` (or `with`).

    Keys are non-empty, at most `MAX_KEY_BYTES` long; a scan may start at b"".
    """

    name: str = "engine"

    def __init__(self, **knobs: Any):
        self.knobs = dict(knobs)
        self.path: Path | None = None

    # --- lifecycle
    def open(self, path: str | Path | None = None) -> "KVEngine":
        """Open (creating) the store; disk engines keep their files under `path`."""
        if path is not None:
            self.path = Path(path)
            self.path.mkdir(parents=True, exist_ok=True)
        self._open()
        return self

    def _open(self) -> None:
        """Engine-specific opening (the default: nothing to do)."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; safe to call twice."""

    def __enter__(self) -> "KVEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- operations
    @abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""

    @abstractmethod
    def put(self, key: bytes, value: bytes) -> None:
        """Insert or overwrite `key`."""

    @abstractmethod
    def delete(self, key: bytes) -> None:
        """Remove `key` if present (absent keys are not an error)."""

    @abstractmethod
    def scan(self, start: bytes, limit: int) -> list[Item]:
        """Up to `limit` (key, value) pairs with key >= `start`, in ascending key order."""

    def load(self, items: Iterable[Item]) -> None:
        """Bulk-insert (engines override this with their batched path)."""
        for key, value in items:
            self.put(key, value)

    # --- footprint
    @abstractmethod
    def memory_bytes(self) -> int:
        """Process memory the engine holds for data and caches."""

    def memory_probe(self) -> Callable[[], int] | None:
        """A cheap `memory_bytes` reading to sample during a run, or None (the end reading is the peak).

        For engines whose memory rises and falls while they run (RocksDB's
        memtables fill, then a background flush frees them): the replay samples
        it every few hundred operations and reports the peak, so a memory cap
        judges what the engine held, not where a flush happened to leave it
        when the run ended (one RocksDB config read 3.3 MB on one run and
        5.7 MB on the next against a 4 MB cap, and the study's answer broke it
        on re-measurement).
        """
        return None

    def disk_bytes(self) -> int:
        """Bytes its files occupy on disk (0 for in-memory engines)."""
        return directory_bytes(self.path) if self.path is not None else 0


def directory_bytes(path: Path) -> int:
    """Allocated bytes of every file under `path` (st_blocks, so sparse files count honestly)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except FileNotFoundError:  # a compaction removed it while we walked
                continue
            total += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return total


def mapped_resident_bytes(path: Path) -> int:
    """Resident bytes of this process's memory maps of files under `path` (0 where /proc is absent)."""
    prefix = str(Path(path).resolve())
    total = 0
    inside = False
    try:
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):  # a mapping header: "addr-addr perms ... path"
                    parts = line.split()
                    inside = len(parts) >= 6 and parts[5].startswith(prefix)
                elif inside and first == "Rss:":
                    total += int(line.split()[1]) * 1024
    except OSError:
        return 0
    return total


# ----------------------------------------------------------------------------- in memory


class DictEngine(KVEngine):
    """A Python dict: O(1) point operations; a scan must look at every key (a hash has no order)."""

    name = "dict"

    def _open(self) -> None:
        self._d: dict[bytes, bytes] = {}

    def close(self) -> None:
        self._d = {}

    def get(self, key):
        return self._d.get(key)

    def put(self, key, value):
        self._d[key] = value

    def delete(self, key):
        self._d.pop(key, None)

    def scan(self, start, limit):
        if limit <= 0:
            return []
        d = self._d
        keys = heapq.nsmallest(limit, (k for k in d if k >= start))
        return [(k, d[k]) for k in keys]

    def load(self, items):
        self._d.update(items)

    def memory_bytes(self):
        return _python_bytes(self._d)


class SortedDictEngine(KVEngine):
    """sortedcontainers.SortedDict: a hash for point reads plus sorted sublists for order.

    Knob: `load` (the sublist load factor; the library's default is 1000).
    """

    name = "sorteddict"

    def _open(self) -> None:
        from sortedcontainers import SortedDict

        self._d = SortedDict()
        self._d._reset(int(self.knobs.get("load", 1000)))

    def close(self) -> None:
        self._d = None

    def get(self, key):
        return self._d.get(key)

    def put(self, key, value):
        self._d[key] = value

    def delete(self, key):
        self._d.pop(key, None)

    def scan(self, start, limit):
        if limit <= 0:
            return []
        d = self._d
        return [(k, d[k]) for k in islice(d.irange(minimum=start), limit)]

    def load(self, items):
        self._d.update(items)

    def memory_bytes(self):
        d = self._d
        # the hash part plus the sorted key lists (a pointer per key, a list per sublist)
        lists = sys.getsizeof(d._list._lists) + sum(sys.getsizeof(s) for s in d._list._lists)
        index = sys.getsizeof(d._list._index)
        return _python_bytes(d) + lists + index


def _python_bytes(d: Mapping[bytes, bytes]) -> int:
    """The dict table plus every key and value object it holds."""
    total = sys.getsizeof(d)
    for key, value in d.items():
        total += sys.getsizeof(key) + sys.getsizeof(value)
    return total


# ----------------------------------------------------------------------------- SQLite


class SQLiteEngine(KVEngine):
    """A SQLite table keyed by a primary key: an on-disk B-tree, one autocommit statement per op.

    Knobs: page_size, cache_kib (page cache), journal (wal or delete),
    synchronous (off / normal / full), without_rowid (cluster rows on the key).
    """

    name = "sqlite"

    def _open(self) -> None:
        if self.path is None:
            raise ValueError("the sqlite engine needs a directory: open(path)")
        k = self.knobs
        self._page_size = int(k.get("page_size", 4096))
        self._cache_kib = int(k.get("cache_kib", 2000))
        journal = k.get("journal", "delete")
        synchronous = k.get("synchronous", "full")
        if journal not in ("wal", "delete") or synchronous not in ("off", "normal", "full"):
            raise ValueError(f"sqlite: bad journal {journal!r} or synchronous {synchronous!r}")
        self._file = self.path / "kv.sqlite"
        conn = sqlite3.connect(self._file, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA page_size={self._page_size}")  # before the first table: takes effect
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA cache_size={-self._cache_kib}")
        suffix = " WITHOUT ROWID" if k.get("without_rowid", False) else ""
        conn.execute(f"CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL){suffix}")
        self._conn = conn
        self._get = "SELECT v FROM kv WHERE k=?"
        self._put = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        self._del = "DELETE FROM kv WHERE k=?"
        self._scan = "SELECT k, v FROM kv WHERE k>=? ORDER BY k LIMIT ?"

    def close(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
            self._conn = None

    def get(self, key):
        row = self._conn.execute(self._get, (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key, value):
        self._conn.execute(self._put, (key, value))

    def delete(self, key):
        self._conn.execute(self._del, (key,))

    def scan(self, start, limit):
        if limit <= 0:
            return []
        return self._conn.execute(self._scan, (start, limit)).fetchall()

    def load(self, items):
        conn = self._conn
        conn.execute("BEGIN")
        conn.executemany(self._put, items)
        conn.execute("COMMIT")

    def memory_bytes(self):
        # stdlib sqlite3 has no per-connection status call: the page cache holds at most
        # its configured size and never more than the file it caches
        cache = self._cache_kib * 1024
        return int(min(cache, self._file.stat().st_size) if self._file.exists() else 0)


# ----------------------------------------------------------------------------- LMDB


class LMDBEngine(KVEngine):
    """LMDB: a copy-on-write B+tree in a memory-mapped file; one write transaction per put.

    Knobs: map_size_mib, sync (fsync at commit), metasync, writemap (write
    through the map), map_async (with writemap: asynchronous flushes),
    readahead.
    """

    name = "lmdb"

    def _open(self) -> None:
        import lmdb

        if self.path is None:
            raise ValueError("the lmdb engine needs a directory: open(path)")
        k = self.knobs
        writemap = bool(k.get("writemap", False))
        self._env = lmdb.open(
            str(self.path),
            map_size=int(k.get("map_size_mib", 64)) << 20,
            sync=bool(k.get("sync", True)),
            metasync=bool(k.get("metasync", True)),
            writemap=writemap,
            map_async=writemap and bool(k.get("map_async", False)),
            readahead=bool(k.get("readahead", True)),
            lock=True,
        )

    def close(self) -> None:
        env = getattr(self, "_env", None)
        if env is not None:
            env.close()
            self._env = None

    def get(self, key):
        with self._env.begin(buffers=False) as txn:
            return txn.get(key)

    def put(self, key, value):
        with self._env.begin(write=True) as txn:
            txn.put(key, value)

    def delete(self, key):
        with self._env.begin(write=True) as txn:
            txn.delete(key)

    def scan(self, start, limit):
        if limit <= 0:
            return []
        with self._env.begin() as txn:
            cursor = txn.cursor()
            if not (cursor.set_range(start) if start else cursor.first()):
                return []
            return list(islice(cursor.iternext(keys=True, values=True), limit))

    def load(self, items):
        with self._env.begin(write=True) as txn:
            cursor = txn.cursor()
            cursor.putmulti(items)

    def memory_bytes(self):
        # no private cache: what it holds is the resident part of its map (Linux: /proc/self/smaps)
        return mapped_resident_bytes(self.path) if self.path is not None else 0


# ----------------------------------------------------------------------------- RocksDB


_ROCKSDB_PROCESS: int | None = None  # the process that opened RocksDB (its background threads live there)


def rocksdb_started_here() -> bool:
    """Whether this process has opened RocksDB: its background flush and compaction threads do not
    survive a fork, so a child forked from it waits forever for a flush (autosys/isolation.py)."""
    return _ROCKSDB_PROCESS == os.getpid()


class RocksDBEngine(KVEngine):
    """RocksDB (an LSM-tree) through rocksdict, with its write, compaction and read knobs."""

    name = "rocksdb"

    def _open(self) -> None:
        import rocksdict as r

        if self.path is None:
            raise ValueError("the rocksdb engine needs a directory: open(path)")
        k = self.knobs
        opts = r.Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_write_buffer_size(int(k.get("write_buffer_kib", 65536)) * 1024)
        opts.set_max_write_buffer_number(int(k.get("max_write_buffers", 2)))
        trigger = int(k.get("l0_compaction_trigger", 4))
        slowdown = max(int(k.get("l0_slowdown_trigger", 20)), trigger)
        opts.set_level_zero_file_num_compaction_trigger(trigger)
        opts.set_level_zero_slowdown_writes_trigger(slowdown)
        opts.set_level_zero_stop_writes_trigger(slowdown * 2)
        style = k.get("compaction", "level")
        if style == "universal":
            opts.set_compaction_style(r.DBCompactionStyle.universal())
        elif style == "level":
            opts.set_compaction_style(r.DBCompactionStyle.level())
            opts.set_max_bytes_for_level_multiplier(float(k.get("level_multiplier", 10.0)))
        else:
            raise ValueError(f"rocksdb: compaction must be 'level' or 'universal', not {style!r}")
        memtable = k.get("memtable", "skiplist")
        if memtable == "vector":
            opts.set_allow_concurrent_memtable_write(False)
            opts.set_memtable_factory(r.MemtableFactory.vector())
        elif memtable != "skiplist":
            raise ValueError(f"rocksdb: memtable must be 'skiplist' or 'vector', not {memtable!r}")
        table = r.BlockBasedOptions()
        self._cache = r.Cache(int(k.get("block_cache_kib", 8192)) * 1024)
        table.set_block_cache(self._cache)
        table.set_block_size(int(k.get("block_size", 4096)))
        bloom = int(k.get("bloom_bits", 0))
        if bloom > 0:
            table.set_bloom_filter(bloom, False)
        opts.set_block_based_table_factory(table)
        opts.set_max_background_jobs(2)
        self._db = r.Rdict(str(self.path), options=opts)
        global _ROCKSDB_PROCESS
        _ROCKSDB_PROCESS = os.getpid()

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            self._db = None

    def get(self, key):
        return self._db.get(key)

    def put(self, key, value):
        self._db.put(key, value)

    def delete(self, key):
        self._db.delete(key)

    def scan(self, start, limit):
        if limit <= 0:
            return []
        it = self._db.iter()
        it.seek(start)
        out = []
        while it.valid() and len(out) < limit:
            out.append((it.key(), it.value()))
            it.next()
        return out

    def load(self, items):
        import rocksdict as r

        batch = r.WriteBatch(raw_mode=True)
        for key, value in items:
            batch.put(key, value)
        self._db.write(batch)

    def memory_probe(self):
        return self.memory_bytes

    def memory_bytes(self):
        db = self._db
        memtables = db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
        readers = db.property_int_value("rocksdb.estimate-table-readers-mem") or 0
        return int(memtables + readers + self._cache.get_usage())


# ----------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class EngineSpec:
    """An engine class, the optional package it needs, and its knobs (unprefixed)."""

    name: str
    cls: type[KVEngine]
    requires: str | None
    knobs: tuple[Param, ...] = field(default_factory=tuple)
    about: str = ""

    def params(self, parent: str = "engine") -> list[Param]:
        """The knobs as parameters named `<engine>_<knob>`, active only when `parent` is this engine."""
        out = []
        own = Condition(parent, (self.name,))
        for knob in self.knobs:
            cond = knob.condition
            # a knob already conditional on a sibling keeps that (prefixed); the sibling carries the engine
            new_cond = own if cond is None else Condition(f"{self.name}_{cond.parent}", cond.values)
            out.append(knob.renamed(f"{self.name}_{knob.name}", new_cond))
        return out



ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec("dict", DictEngine, None, (), "hash table in memory"),
        EngineSpec(
            "sorteddict",
            SortedDictEngine,
            "sortedcontainers",
            (Ordinal("load", (50, 100, 200, 500, 1000, 2000, 5000), default=1000),),
            "sorted lists in memory",
        ),
        EngineSpec(
            "sqlite",
            SQLiteEngine,
            None,
            (
                Ordinal("page_size", (1024, 2048, 4096, 8192, 16384, 32768, 65536), default=4096),
                Int("cache_kib", 64, 65536, log=True, default=2000),
                Categorical("journal", ("delete", "wal"), default="delete"),
                Categorical("synchronous", ("full", "normal", "off"), default="full"),
                Bool("without_rowid", default=False),
            ),
            "B-tree on disk",
        ),
        EngineSpec(
            "lmdb",
            LMDBEngine,
            "lmdb",
            (
                Ordinal("map_size_mib", (64, 256, 1024, 4096), default=64),
                Bool("sync", default=True),
                Bool("metasync", default=True),
                Bool("writemap", default=False),
                Bool("map_async", default=False, condition=Condition("writemap", (True,))),
                Bool("readahead", default=True),
            ),
            "memory-mapped B+tree",
        ),
        EngineSpec(
            "rocksdb",
            RocksDBEngine,
            "rocksdict",
            (
                Int("write_buffer_kib", 64, 65536, log=True, default=65536),
                Int("max_write_buffers", 2, 8, default=2),
                Int("l0_compaction_trigger", 1, 16, default=4),
                Int("l0_slowdown_trigger", 16, 64, default=20),
                Categorical("compaction", ("level", "universal"), default="level"),
                Float("level_multiplier", 2.0, 20.0, default=10.0, condition=Condition("compaction", ("level",))),
                Int("bloom_bits", 0, 20, default=0),
                Int("block_cache_kib", 64, 262144, log=True, default=8192),
                Ordinal("block_size", (1024, 2048, 4096, 8192, 16384, 32768, 65536), default=4096),
                Categorical("memtable", ("skiplist", "vector"), default="skiplist"),
            ),
            "LSM-tree",
        ),
    )
}


#: shares of a memory cap that the knob defaults give each engine's memory budgets (`memory_defaults`)
CAP_SHARES = {"rocksdb_write_buffer_kib": 1 / 8, "rocksdb_block_cache_kib": 1 / 4, "sqlite_cache_kib": 1 / 4}


def memory_defaults(params: Sequence[Param], cap_bytes: float) -> list[Param]:
    """`params` with the defaults of the engines' memory budgets sized to fit a memory cap.

    The catalogue's defaults are each library's own (RocksDB: a 64 MiB write
    buffer and an 8 MiB block cache; SQLite: a 2000 KiB page cache), made for
    a host, not for a cap: under a 4 MB cap the default config broke it on
    every run (9 MB), so a study began with no feasible incumbent and its
    tuner had to find RocksDB's narrow feasible corner by chance (random
    search did not in 21 proposals). As RocksDB's own tuning guide sizes
    memtables and block cache to the memory budget, a default under a cap
    gives each budget a share of it (`CAP_SHARES`: two write buffers take a
    quarter, the block cache a quarter, leaving half for index and filter
    blocks and the rest), clipped to the knob's range and never above the
    catalogue's default. Only defaults change: the search range is the same.
    """
    out = []
    for param in params:
        share = CAP_SHARES.get(param.name)
        if share is not None and cap_bytes > 0:
            low, high = getattr(param, "low", None), getattr(param, "high", None)
            value = int(cap_bytes * share / 1024)
            if low is not None and high is not None:
                value = max(int(low), min(int(high), value))
            value = min(value, int(param.default))
            param = replace(param, default=value)
        out.append(param)
    return out


def available_engines(names: Sequence[str] | None = None) -> tuple[dict[str, EngineSpec], dict[str, str]]:
    """(engines whose package imports, {missing engine: why}) among `names` (default: all)."""
    names = list(ENGINES) if names is None else list(names)
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine {unknown[0]!r}; known: {', '.join(ENGINES)}")
    ok: dict[str, EngineSpec] = {}
    missing: dict[str, str] = {}
    for name in names:
        spec = ENGINES[name]
        if spec.requires is not None:
            try:
                importlib.import_module(spec.requires)
            except ImportError as exc:
                missing[name] = f"needs the {spec.requires!r} package (pip install 'autosys-toolkit[kv]'): {exc}"
                continue
        ok[name] = spec
    return ok, missing


def knobs_of(config: Config) -> tuple[str, dict[str, Any]]:
    """(engine name, its unprefixed knobs) from a config of the kv space."""
    engine = config["engine"]
    prefix = f"{engine}_"
    return engine, {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}


def make_engine(config: Config) -> KVEngine:
    """An unopened engine built from a kv-space config (engine + prefixed knobs)."""
    engine, knobs = knobs_of(config)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return ENGINES[engine].cls(**knobs)


def remove_store(path: Path) -> None:
    """Delete an engine's directory (after close)."""
    shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "ENGINES",
    "DictEngine",
    "EngineSpec",
    "KVEngine",
    "LMDBEngine",
    "RocksDBEngine",
    "SQLiteEngine",
    "SortedDictEngine",
    "available_engines",
    "directory_bytes",
    "knobs_of",
    "make_engine",
    "remove_store",
]
