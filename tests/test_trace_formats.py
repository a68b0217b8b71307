"""libCacheSim formats read and written in chunks; streamed simulation equals in-memory simulation."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from autosys_adapters.pagecache import formats as F
from autosys_adapters.pagecache import traces as T
from autosys_adapters.pagecache.sized import byte_capacity, footprint_bytes, simulate_sized


def sized(n=12_000, objects=1_500, seed=0):
    tr = T.scan_loop_hot(n, seed=seed) if seed % 2 else T.zipf(n, objects, 0.8, seed=seed)
    per = np.random.default_rng(seed).integers(64, 16_384, int(tr.ids.max()) + 1)
    return T.Trace(tr.ids, sizes=per[tr.ids])


def pieces(trace, size):
    return [(trace.ids[i:i + size], trace.sizes[i:i + size]) for i in range(0, len(trace), size)]


@pytest.mark.parametrize("seed", [0, 1])
def test_streamed_oracle_writer_equals_the_in_memory_writer(tmp_path, seed):
    trace = sized(seed=seed)
    ref = np.fromfile(T.write_oracle_general(trace, tmp_path / "ref.oracleGeneral"), T.ORACLE_DTYPE)
    got = np.fromfile(F.write_oracle_stream(iter(pieces(trace, 1_001)), tmp_path / "s.oracleGeneral", chunk=777),
                      T.ORACLE_DTYPE)
    for field in ("time", "id", "size", "next"):
        assert np.array_equal(ref[field], got[field]), field


@pytest.mark.parametrize("dst", ["t.csv", "t.txt", "t.oracleGeneral"])
def test_roundtrip_through_every_format(tmp_path, dst):
    trace = sized(seed=2)
    src = F.write_oracle_stream(iter(pieces(trace, 5_000)), tmp_path / "src.oracleGeneral")
    mid = F.convert(src, tmp_path / dst, chunk=999)
    back = F.convert(mid, tmp_path / "back.oracleGeneral", chunk=1_234)
    a, b = np.fromfile(src, T.ORACLE_DTYPE), np.fromfile(back, T.ORACLE_DTYPE)
    assert np.array_equal(a["id"], b["id"]) and np.array_equal(a["next"], b["next"])
    if dst.endswith(".txt"):  # plain text keeps ids only: every object gets the default size
        assert (b["size"] == T.DEFAULT_PAGE_SIZE).all()
    else:
        assert np.array_equal(a["size"], b["size"])
    chunks = list(F.iter_chunks(mid, chunk=1_000))
    assert [c.start for c in chunks] == list(range(0, len(trace), 1_000))
    assert np.array_equal(np.concatenate([c.ids for c in chunks]), trace.ids)


@pytest.mark.parametrize("chunk", [500, 4_096, 1 << 20])
def test_streamed_simulation_equals_in_memory(tmp_path, chunk):
    trace = sized(seed=3)
    path = F.write_oracle_stream(iter(pieces(trace, 3_000)), tmp_path / "t.oracleGeneral")
    states = F.simulate_stream(path, 0.05, ("lru", "fifo", "sieve", "s3fifo", "belady"), chunk=chunk)
    p = T.PreparedTrace.of(trace)
    cap = byte_capacity(0.05, footprint_bytes(p.ids, p.sizes, p.n_obj))
    for name, state in states.items():
        ref = simulate_sized(p.ids, p.sizes, p.n_obj, cap, name, nxt=p.nxt)
        assert (state.misses, state.miss_bytes) == (ref.misses, ref.miss_bytes), name
        assert state.requests == len(trace)


def test_trace_stats_one_pass(tmp_path):
    trace = sized(seed=4)
    path = F.convert(T.write_oracle_general(trace, tmp_path / "a.oracleGeneral"), tmp_path / "a.csv")
    s = F.trace_stats(path, chunk=700)
    p = T.PreparedTrace.of(trace)
    assert s.requests == len(trace) and s.footprint == p.n_obj
    assert np.array_equal(s.uniq, np.unique(trace.ids))
    assert s.footprint_bytes == footprint_bytes(p.ids, p.sizes, p.n_obj)
    assert not s.has_next  # our csv has no next-access column
    with pytest.raises(T.TraceError, match="belady needs next-access"):
        F.simulate_stream(path, 0.1, ("belady",), stats=s)


def test_bad_files_are_refused_clearly(tmp_path):
    bad = tmp_path / "bad.oracleGeneral"
    bad.write_bytes(b"\0" * 30)
    with pytest.raises(T.TraceError, match="truncated"):
        list(F.iter_chunks(bad))
    headerless = tmp_path / "x.csv"
    headerless.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(T.TraceError, match="obj_id"):
        list(F.iter_chunks(headerless))
    words = tmp_path / "w.txt"
    words.write_text("1\nfoo\n")
    with pytest.raises(T.TraceError, match="one integer"):
        list(F.iter_chunks(words))
    with pytest.raises(T.TraceError, match="unknown streamed trace format"):
        F.format_of(words, "parquet")
    with pytest.raises(T.TraceError, match="no such"):
        F.iter_chunks(tmp_path / "missing.csv")


@pytest.mark.parametrize("fmt", ["csv", "oracleGeneral"])
def test_libcachesim_reads_what_we_write(tmp_path, fmt):
    lcs = pytest.importorskip("libcachesim", reason="cross-check needs libcachesim (pip install autosys-toolkit[pagecache])")
    trace = sized(seed=5)
    name = "t.csv" if fmt == "csv" else "t.oracleGeneral"
    path = F.convert(T.write_oracle_general(trace, tmp_path / "src.oracleGeneral"), tmp_path / name)
    ours = F.simulate_stream(path, 0.1, ("lru", "s3fifo"), chunk=2_000)
    cap = ours["lru"].capacity
    for policy, cls in (("lru", lcs.LRU), ("s3fifo", lcs.S3FIFO)):
        if fmt == "csv":
            reader = lcs.TraceReader(str(path), lcs.TraceType.CSV_TRACE, F.csv_reader_params())
        else:
            reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
        ratio, byte_ratio = cls(cap, hashpower=16).process_trace(reader)  # never close readers (FIELD-NOTES)
        assert ours[policy].misses == round(ratio * len(trace)), policy
        assert ours[policy].byte_miss_ratio == pytest.approx(byte_ratio, rel=1e-9), policy
    gc.collect()
