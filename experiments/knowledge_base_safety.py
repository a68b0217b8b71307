"""The knowledge base under abuse: SIGKILL while a study adds itself, corrupt files, concurrent writers.

    .venv/bin/python experiments/knowledge_base_safety.py [--kills 20] [--writers 4] [--studies 25] [--no-postgres]

1. Kills: a child process adds a study of 200 trials (a short sleep after
   each row, so the add takes ~0.4 s) and is SIGKILLed after a random delay
   (before, during or after its transaction). After each kill the base is
   opened again and every study in it is checked whole (as many trials as it
   says); the killed study must be whole or absent, never half. SQLite, and
   PostgreSQL when a server is at 127.0.0.1:5432.
2. Corrupt files: garbage, a truncated file, flipped bytes, a study file
   instead of a base: each must give one KnowledgeBaseError naming the file.
3. Concurrent writers: W processes, started together on an empty base, each
   add S studies; lost = W*S minus the studies found (SQLite and PostgreSQL).

Prints a table; writes experiments/results/knowledge_base_safety.csv and .png.
A PostgreSQL database made here is dropped at the end.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autosys.learn.knowledge import KnowledgeBaseError, open_knowledge_base  # noqa: E402
from tests.knowledge_entries import make_entry  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"

CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
from tests.knowledge_entries import make_entry
from autosys.learn.knowledge import open_knowledge_base
location, go, tag, n, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
print("ready", flush=True)
deadline = time.monotonic() + 60
while go != "-" and not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.005)
store = open_knowledge_base(location)
print("adding", flush=True)
for i in range(count):
    store.add(make_entry(n, f"{{tag}}-{{i}}" if count > 1 else tag))
print("added", flush=True)
"""


def spawn(location: str, tag: str, n: int, count: int = 1, go: str = "-", pause: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, AUTOSYS_KB_TEST_PAUSE=str(pause))
    return subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT)), location, go, tag, str(n), str(count)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check(location: str) -> tuple[dict[str, int], str]:
    """name -> trials of every study (each checked whole), or an error."""
    try:
        with open_knowledge_base(location) as store:
            return {s.name: len(s.trials) for s in store.studies(with_trials=True)}, ""
    except KnowledgeBaseError as exc:
        return {}, str(exc)


def kills(location: str, backend: str, rounds: int, rng: random.Random) -> list[dict]:
    rows = []
    with open_knowledge_base(location) as store:
        store.add(make_entry(5, "before"))
    for r in range(rounds):
        tag = f"killed-{r}"
        child = spawn(location, tag, 200, pause=0.002)
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        assert child.stdout.readline().strip() == "adding", child.stderr.read()
        delay = rng.uniform(0.0, 0.8)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if backend == "postgresql":
            time.sleep(0.2)  # the server rolls the dead client's transaction back
        found, error = check(location)
        outcome = "error" if error else ("whole" if found.get(tag) == 200 else "absent" if tag not in found else "HALF")
        if not error and found.get(tag) == 200:
            with open_knowledge_base(location) as store:  # keep the base small: forget the whole one again
                store.forget(next(s.id for s in store.studies() if s.name == tag))
        rows.append({"part": "kill", "backend": backend, "case": f"round {r}", "delay_s": round(delay, 3),
                     "outcome": outcome, "others_whole": not error and found.get("before") == 5, "detail": error[:120]})
    return rows


def corrupt_cases(tmp: Path) -> list[dict]:
    rows = []
    good = tmp / "good.db"
    with open_knowledge_base(good) as store:
        for i in range(5):
            store.add(make_entry(100, f"s{i}"))
    data = good.read_bytes()
    cases = {
        "garbage": b"not a database\x00" * 500,
        "truncated to half": data[: len(data) // 2],
        "flipped bytes": bytes(b ^ 0xFF if i > 4096 and i % 997 == 0 else b for i, b in enumerate(data)),
        "empty header": b"\x00" * len(data),
    }
    for name, content in cases.items():
        path = tmp / f"{name.replace(' ', '-')}.db"
        path.write_bytes(content)
        found, error = check(str(path))
        clear = bool(error) and str(path) in error and "Move it aside" in error
        rows.append({"part": "corrupt", "backend": "sqlite", "case": name, "delay_s": "", "outcome": "clear error" if clear else
                     ("read" if not error else "unclear error"), "others_whole": "", "detail": error[:120]})
    # a SQLite file of something else
    import sqlite3

    other = tmp / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE trials(x)").connection.close()
    found, error = check(str(other))
    rows.append({"part": "corrupt", "backend": "sqlite", "case": "another SQLite file", "delay_s": "",
                 "outcome": "clear error" if error and str(other) in error else "read", "others_whole": "", "detail": error[:120]})
    return rows


def concurrent(location: str, backend: str, writers: int, studies: int, tmp: Path) -> dict:
    go = tmp / f"go-{backend}"
    procs = [spawn(location, f"w{w}", 20, count=studies, go=str(go), pause=0.001) for w in range(writers)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    start = time.monotonic()
    go.touch()
    failures = 0
    for p in procs:
        _, err = p.communicate(timeout=600)
        failures += p.returncode != 0
        if p.returncode:
            print(err[-500:], file=sys.stderr)
    seconds = time.monotonic() - start
    found, error = check(location)
    expected = writers * studies
    names = {f"w{w}-{i}" for w in range(writers) for i in range(studies)}
    return {"part": "concurrent", "backend": backend, "case": f"{writers} writers x {studies} studies", "delay_s": round(seconds, 2),
            "outcome": f"lost {expected - len(names & set(found))} of {expected}" + (f", {failures} writers failed" if failures else ""),
            "others_whole": not error and all(v == 20 for v in found.values()), "detail": error[:120]}


def pg_database() -> tuple[str, object] | None:
    try:
        import psycopg

        admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL skipped: {exc}")
        return None
    name = f"autosys_kb_safety_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}", (admin, name)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kill_rows = [r for r in rows if r["part"] == "kill"]
    backends = sorted({r["backend"] for r in kill_rows})
    outcomes = ["absent", "whole", "HALF", "error"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(len(backends), 1)
    for i, backend in enumerate(backends):
        counts = [sum(1 for r in kill_rows if r["backend"] == backend and r["outcome"] == o) for o in outcomes]
        ax.bar([x + i * width for x in range(len(outcomes))], counts, width, label=backend)
    ax.set_xticks([x + width * (len(backends) - 1) / 2 for x in range(len(outcomes))], outcomes)
    ax.set_ylabel("kills")
    ax.set_title("study being added when SIGKILLed: whole or absent, never half")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--studies", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows: list[dict] = []
    pg = None if args.no_postgres else pg_database()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            rows += kills(str(tmp / "kill.db"), "sqlite", args.kills, rng)
            if pg:
                rows += kills(pg[0] + "?schema=kills", "postgresql", args.kills, rng)
            rows += corrupt_cases(tmp)
            rows.append(concurrent(str(tmp / "shared.db"), "sqlite", args.writers, args.studies, tmp))
            if pg:
                rows.append(concurrent(pg[0] + "?schema=shared", "postgresql", args.writers, args.studies, tmp))
    finally:
        if pg:
            admin, name = pg[1]
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "knowledge_base_safety.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, RESULTS / "knowledge_base_safety.png")
    print(f"{'part':<11} {'backend':<11} {'case':<26} {'s':>6}  outcome")
    for r in rows:
        if r["part"] != "kill":
            print(f"{r['part']:<11} {r['backend']:<11} {r['case']:<26} {str(r['delay_s']):>6}  {r['outcome']}")
    for backend in sorted({r["backend"] for r in rows if r["part"] == "kill"}):
        mine = [r for r in rows if r["part"] == "kill" and r["backend"] == backend]
        tally = {o: sum(r["outcome"] == o for r in mine) for o in ("absent", "whole", "HALF", "error")}
        print(f"kill        {backend:<11} {len(mine)} SIGKILLs at 0-0.8 s   {tally}, others whole: {all(r['others_whole'] for r in mine)}")
    print(f"wrote {RESULTS / 'knowledge_base_safety.csv'} and .png")


if __name__ == "__main__":
    main()
