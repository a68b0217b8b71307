"""What the key-value stores of a running KV trial say about themselves, read from their files.

A KV trial builds its store in the trial's own folder, often in a forked
child (autosys/run/isolation.py), so the open engine object is out of the
sampler's reach. The stores' own files are not: this monitor reads

- LMDB: the meta page of `data.mdb` (the same fields `mdb_env_stat` reports:
  entries, B+tree depth, branch/leaf/overflow pages, and the last
  transaction id, whose rate is committed write transactions per second),
- RocksDB: its SST files and write-ahead log, and the flush, compaction and
  write-stall events it writes to its own `LOG` event log (read incrementally),
- SQLite: database and WAL sizes,

summed over the stores (`store-*` folders) in the trial's folder.
"""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path
from typing import Callable

from autosys.core.monitor import Monitor, Rates

_LMDB_MAGIC = 0xBEEFC0DE
# page header (16 bytes), then MDB_meta: magic, version (u32 each), address, mapsize (8 each), two MDB_db
# (pad/psize u32, flags u16, depth u16, branch, leaf, overflow, entries, root: 8 each), last_pg, txnid
_LMDB_META = struct.Struct("<IIQQ IHHQQQQQ IHHQQQQQ QQ")
_ROCKS_EVENT = re.compile(rb'"event": "(flush_finished|compaction_finished)"|Stalling writes|Stopping writes')


def lmdb_meta(path: str | Path) -> dict[str, float] | None:
    """The newest of the two meta pages of an LMDB `data.mdb` (64-bit layout), or None if unreadable."""
    try:
        with open(path, "rb") as f:
            first = f.read(16 + _LMDB_META.size)
            fields = _LMDB_META.unpack_from(first, 16)
            psize = fields[4] or 4096
            f.seek(psize)
            second = f.read(16 + _LMDB_META.size)
    except (OSError, struct.error):
        return None
    metas = []
    for page in (first, second):
        try:
            m = _LMDB_META.unpack_from(page, 16)
        except struct.error:
            continue
        if m[0] == _LMDB_MAGIC:
            metas.append(m)
    if not metas:
        return None
    m = max(metas, key=lambda x: x[-1])  # the meta page with the newer transaction id is current
    psize = m[4] or 4096
    main = m[12:20]  # the main (unnamed) database
    return {
        "entries": float(main[6]),
        "depth": float(main[2]),
        "branch_pages": float(main[3]),
        "leaf_pages": float(main[4]),
        "overflow_pages": float(main[5]),
        "used_bytes": float((m[20] + 1) * psize),
        "txnid": float(m[21]),
    }


class KVStoreMonitor(Monitor):
    """Sizes and engine statistics of the KV stores in a folder (see the module docstring).

    folder: called at each sample (e.g. the system's running attempt folder); None reads as no store.
    """

    name = "kv-store"

    def __init__(self, folder: Callable[[], Path | str | None]):
        self.folder = folder
        self._rates = Rates()
        self._log_offsets: dict[str, int] = {}
        self._events = {"flushes": 0.0, "compactions": 0.0, "write_stalls": 0.0}
        self._txnid = 0.0

    def _stores(self) -> list[Path]:
        where = self.folder()
        if where is None:
            return []
        try:
            return [Path(e.path) for e in os.scandir(where) if e.is_dir() and e.name.startswith("store")]
        except OSError:
            return []

    def _read_log(self, path: Path) -> None:
        key = str(path)
        try:
            size = path.stat().st_size
            offset = self._log_offsets.get(key, 0)
            if size < offset:
                offset = 0  # a new store in the same place
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read(min(size - offset, 8 << 20))
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1  # only whole lines; the rest is read next time
        self._log_offsets[key] = offset + end
        for match in _ROCKS_EVENT.finditer(chunk[:end]):
            kind = match.group(1)
            if kind == b"flush_finished":
                self._events["flushes"] += 1
            elif kind == b"compaction_finished":
                self._events["compactions"] += 1
            else:
                self._events["write_stalls"] += 1

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        out = {"stores": 0.0, "disk_bytes": 0.0}
        sst = sst_bytes = wal = sqlite_wal = 0.0
        lmdb: dict[str, float] = {}
        rocks = False
        for store in self._stores():
            out["stores"] += 1
            try:
                entries = list(os.scandir(store))
            except OSError:
                continue
            for entry in entries:
                try:
                    st = entry.stat()
                except OSError:
                    continue
                out["disk_bytes"] += st.st_blocks * 512.0  # allocated, not apparent: LMDB's map is sparse
                name = entry.name
                if name.endswith(".sst"):
                    sst, sst_bytes, rocks = sst + 1, sst_bytes + st.st_size, True
                elif name.endswith(".log") and name[:-4].isdigit():
                    wal += st.st_size
                elif name.endswith("-wal"):
                    sqlite_wal += st.st_size
                elif name == "LOG":
                    rocks = True
                    self._read_log(Path(entry.path))
                elif name == "data.mdb":
                    meta = lmdb_meta(entry.path)
                    for key, value in (meta or {}).items():
                        lmdb[key] = lmdb.get(key, 0.0) + value
        if rocks:
            out.update({"rocksdb_sst_files": sst, "rocksdb_sst_bytes": sst_bytes, "rocksdb_wal_bytes": wal})
        for key, count in self._events.items():
            out[f"rocksdb_{key}_per_s"] = self._rates(key, count, now)
        if lmdb:
            txnid = lmdb.pop("txnid")
            self._txnid = max(self._txnid, txnid)
            out.update({f"lmdb_{k}": v for k, v in lmdb.items()})
        out["lmdb_write_txns_per_s"] = self._rates("txnid", self._txnid, now)
        out["sqlite_wal_bytes"] = sqlite_wal
        return out


__all__ = ["KVStoreMonitor", "lmdb_meta"]
