"""Measurements in a forked child: results and errors come back, crashes and hangs do not hang the parent."""

import os
import signal
import time

import pytest

from autosys.run.isolation import ChildFailed, fork_available, run_forked

pytestmark = pytest.mark.skipif(not fork_available(), reason="os.fork is not available on this platform")

LEFTOVERS: list[int] = []


def test_the_result_comes_back_and_the_childs_leftovers_stay_in_the_child():
    def work():
        LEFTOVERS.append(os.getpid())
        return {"pid": os.getpid(), "big": b"x" * 300_000}  # larger than a pipe's buffer

    result = run_forked(work, timeout=30)
    assert result["pid"] != os.getpid() and len(result["big"]) == 300_000
    assert LEFTOVERS == []


def test_an_exception_in_the_child_is_raised_here_with_its_type():
    def work():
        raise ValueError("bad knob value")

    with pytest.raises(ValueError, match="bad knob value"):
        run_forked(work, timeout=30)


def test_a_child_that_dies_or_hangs_is_a_clear_error_not_a_hang():
    with pytest.raises(ChildFailed, match="signal 9"):
        run_forked(lambda: os.kill(os.getpid(), signal.SIGKILL), timeout=30)
    start = time.monotonic()
    with pytest.raises(ChildFailed, match="within 1 s"):
        run_forked(lambda: time.sleep(60), timeout=1)
    assert time.monotonic() - start < 10


def test_forks_wait_for_threads_inside_sqlite(tmp_path):
    """A thread inside SQLite holds SQLite's global mutex; a child forked then would hang on its first
    SQLite call. Threads wrap such calls in no_fork() (the study heartbeat does), and forks wait."""
    import sqlite3
    import threading

    from autosys.run.isolation import no_fork

    stop = threading.Event()

    def hammer():  # every SQLite call inside no_fork(), opening and closing included
        with no_fork():
            conn = sqlite3.connect(tmp_path / "busy.sqlite", check_same_thread=False)
            conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        while not stop.is_set():
            with no_fork():
                conn.execute("INSERT INTO t VALUES (randomblob(64))")
                conn.commit()
        with no_fork():
            conn.close()

    def child_uses_sqlite():
        conn = sqlite3.connect(":memory:")
        value = conn.execute("SELECT 40 + 2").fetchone()[0]
        conn.close()
        return value

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        assert all(run_forked(child_uses_sqlite, timeout=10) == 42 for _ in range(40))
    finally:
        stop.set()
        thread.join(timeout=10)
