"""Trace readers, writers and generators: round trips and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest

from autosys_adapters.pagecache import traces as T


def test_text_round_trip_with_flags(tmp_path):
    trace = T.Trace([5, 7, 5, 9], writes=[False, True, False, True])
    path = T.write_trace(trace, tmp_path / "t.txt")
    back = T.read_trace(path)
    assert back.ids.tolist() == [5, 7, 5, 9]
    assert back.writes.tolist() == [False, True, False, True]


def test_text_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("# header\n1\n\n2  # second\n0x10\n")
    assert T.read_text(path).ids.tolist() == [1, 2, 16]


def test_csv_column_by_name_and_index(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("time,page,op\n1,10,r\n2,11,w\n3,10,r\n")
    assert T.read_csv(path, "page").ids.tolist() == [10, 11, 10]
    assert T.read_csv(path, 1, has_header=True).ids.tolist() == [10, 11, 10]


def test_npy_round_trip(tmp_path):
    trace = T.zipf(1000, 50, seed=3)
    back = T.read_trace(T.write_trace(trace, tmp_path / "t.npy"))
    assert np.array_equal(back.ids, trace.ids)


def test_oracle_general_records_and_next_access(tmp_path):
    trace = T.Trace([3, 4, 3, 5, 4], sizes=[4096] * 5)
    path = T.write_oracle_general(trace, tmp_path / "t.oracleGeneral")
    assert path.stat().st_size == 5 * 24
    rec = np.fromfile(path, dtype=T.ORACLE_DTYPE)
    assert rec["next"].tolist() == [3, 5, -1, -1, -1]  # 1-based index of the next request, -1 if none
    back = T.read_trace(path)
    assert back.ids.tolist() == [3, 4, 3, 5, 4] and back.sizes.tolist() == [4096] * 5


def test_next_access_matches_a_plain_loop():
    ids = np.random.default_rng(0).integers(0, 20, size=500)
    expected = np.full(len(ids), len(ids))
    seen: dict[int, int] = {}
    for i in range(len(ids) - 1, -1, -1):
        expected[i] = seen.get(int(ids[i]), len(ids))
        seen[int(ids[i])] = i
    assert np.array_equal(T.next_access(ids), expected)


@pytest.mark.parametrize(
    "content, message",
    [
        ("1\n2\nabc\n", ":3: page id 'abc' is not an integer"),
        ("1\n-4\n", ":2: page id -4 is negative"),
        ("1 r\n2 q\n", ":2: access flag 'q'"),
        ("# nothing\n\n", "empty"),
        ("", "empty"),
    ],
)
def test_bad_text_traces_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(T.TraceError, match=message.replace("(", r"\(")):
        T.read_trace(path)


def test_bad_csv_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("page\n1\n2.5\n")
    with pytest.raises(T.TraceError, match=r"bad.csv:3: page id '2.5' is not an integer"):
        T.read_csv(path, "page")
    with pytest.raises(T.TraceError, match="no column 'nope'"):
        T.read_csv(path, "nope")


def test_bad_binary_traces(tmp_path):
    truncated = tmp_path / "t.oracleGeneral"
    truncated.write_bytes(b"\0" * 30)
    with pytest.raises(T.TraceError, match="not a whole number of 24-byte"):
        T.read_trace(truncated)
    empty = tmp_path / "e.bin"
    empty.write_bytes(b"")
    with pytest.raises(T.TraceError, match="empty"):
        T.read_trace(empty)
    floats = tmp_path / "f.npy"
    np.save(floats, np.array([1.0, 2.5]))
    with pytest.raises(T.TraceError, match="element 1 is not an integer"):
        T.read_trace(floats)
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(T.TraceError, match="not a text trace"):
        T.read_trace(binary)
    with pytest.raises(T.TraceError, match="no such trace file"):
        T.read_trace(tmp_path / "missing.txt")


def test_generators_are_seeded_and_shaped():
    a, b = T.zipf(5000, 100, 0.8, seed=1), T.zipf(5000, 100, 0.8, seed=1)
    assert np.array_equal(a.ids, b.ids)
    assert not np.array_equal(a.ids, T.zipf(5000, 100, 0.8, seed=2).ids)
    counts = np.sort(np.bincount(a.ids))[::-1]
    assert counts[0] > 5 * counts[50]  # skewed
    assert T.loop(10, 3).ids.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    assert len(np.unique(T.scan(100).ids)) == 100
    mix = T.scan_loop_hot(20_000, seed=0)
    assert len(mix) == 20_000 and np.array_equal(mix.ids, T.scan_loop_hot(20_000, seed=0).ids)
    with pytest.raises(ValueError, match="unknown generator"):
        T.generate("nope", 10)
