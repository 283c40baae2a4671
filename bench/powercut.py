"""Power cuts on the trip log: SIGKILL a writing keidash at random moments, then check the file.

Each run starts a child Python that opens a :class:`keidash.triplog.writer.TripLog` (its trip tagged
``sources='run<i>'``) and queues readings as fast as a busy dash ever would (``--batch``
readings every ms, the value an index counting from 0, plus a frame every 0.1 s). After
queueing each batch the child appends ``<last index> <monotonic time>`` to a counter file
(line-buffered: a SIGKILL keeps what was written, the OS cache survives the process).
The parent kills the child with SIGKILL at a random moment (``random.Random(seed)``): most
runs at uniform(0, ``--kill-max``) s after the first reading was queued, one in five at
uniform(0, 0.3) s after the process started (during imports, opening, migrating). Every
``--per-db`` runs share one database file, so later runs also open a file whose WAL a killed
writer left behind.

After every kill the parent opens the database and checks:

* ``PRAGMA integrity_check`` is ``ok``;
* the run's readings are a prefix of what was queued: the indexes are 0..k, no gaps;
* ``lost_s``: the kill time minus the queue time of the first index lost (0 when none
  was lost) -- the data at risk. It should stay under the commit interval plus one commit.

    .venv/bin/python bench/powercut.py                       # 500 kills, commit every 1 s
    .venv/bin/python bench/powercut.py --kills 50 --commit 0.1

Exits non-zero if a file fails its integrity check, has a gap, or loses more than
``commit + 0.5 s``. This is also what tests/test_triplog.py runs (50 kills, shorter).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import os, sys, time
from keidash.dashstate import DashState
from keidash.readings import Reading
from keidash.triplog.writer import TripLog

path, tag, commit, counters, batch = sys.argv[1:6]
commit, batch = float(commit), int(batch)
log = TripLog(path, sources=tag, commit_every_s=commit, retry_s=0.05)
out = open(counters, "w", buffering=1)
n = 0
parent = os.getppid()
while os.getppid() == parent:  # an interrupted parent leaves no writer behind
    now = time.monotonic()
    log.readings([Reading(now, "rpm", float(i), "bench") for i in range(n, n + batch)], now)
    log.frame(DashState(now, "bench", 2000.0, False, 40.0, 3, None, 5000.0, 6500.0, 8000.0), now)
    n += batch
    out.write(f"{n - 1} {now!r}\n")
    time.sleep(0.001)
"""


@dataclass(frozen=True)
class KillResult:
    run: int
    queued: int  # readings the child had queued (per its counter file)
    stored: int  # readings found in the database for this run
    lost_s: float  # s, kill time minus queue time of the first lost reading (0: none lost)
    integrity: str  # PRAGMA integrity_check
    contiguous: bool  # the stored indexes are exactly 0..stored-1
    early: bool  # killed while starting up (imports, open, migration)


def kill_once(db: Path, run: int, rng: random.Random, commit_s: float, kill_max_s: float,
              batch: int, workdir: Path) -> KillResult:
    """Start a writing child, SIGKILL it at a random moment, check the database."""
    counters = workdir / f"counters{run}.txt"
    tag = f"run{run}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), tag, str(commit_s), str(counters), str(batch)],
        env=env, cwd=ROOT,
    )
    early = rng.random() < 0.2
    if early:
        time.sleep(rng.uniform(0.0, 0.3))
    else:
        delay = rng.uniform(0.0, kill_max_s)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not (counters.exists() and counters.stat().st_size):
            time.sleep(0.002)
        time.sleep(delay)
    killed_at = time.monotonic()
    child.send_signal(signal.SIGKILL)
    child.wait()

    lines = []
    if counters.exists():
        for line in counters.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:  # the last line may be torn by the kill
                lines.append((int(parts[0]), float(parts[1])))
    conn = sqlite3.connect(db)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        stored, low, high = 0, None, None
        has_tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'readings'").fetchone()[0]
        if has_tables:
            stored, low, high = conn.execute(
                "SELECT count(*), min(value), max(value) FROM readings"
                " JOIN trips ON trips.id = readings.trip WHERE trips.sources = ?", (tag,)
            ).fetchone()
    finally:
        conn.close()
    contiguous = stored == 0 or (low == 0 and high == stored - 1)
    queued = lines[-1][0] + 1 if lines else 0
    lost_from = [mono for last, mono in lines if last >= stored]
    lost_s = killed_at - lost_from[0] if lost_from else 0.0
    return KillResult(run, queued, stored, lost_s, integrity, contiguous, early)


def run(kills: int, seed: int, commit_s: float, kill_max_s: float, batch: int, per_db: int,
        workdir: Path) -> list[KillResult]:
    rng = random.Random(seed)
    results = []
    for i in range(kills):
        db = workdir / f"trips{i // per_db}.db"
        results.append(kill_once(db, i, rng, commit_s, kill_max_s, batch, workdir))
    return results


def summary(results: list[KillResult], commit_s: float, elapsed_s: float) -> tuple[str, bool]:
    """A few lines of figures, and whether every run met the claims."""
    lost = sorted(r.lost_s for r in results)
    late = [r for r in results if not r.early]
    bad_integrity = [r.run for r in results if r.integrity != "ok"]
    gaps = [r.run for r in results if not r.contiguous]
    too_much = [r.run for r in late if r.lost_s > commit_s + 0.5]
    with_rows = sum(r.stored > 0 for r in results)
    text = "\n".join([
        f"kills: {len(results)} ({len(results) - len(late)} during start-up) in {elapsed_s:.1f} s, "
        f"commit every {commit_s} s",
        f"integrity_check ok: {len(results) - len(bad_integrity)}/{len(results)}; "
        f"prefix without gaps: {len(results) - len(gaps)}/{len(results)}; "
        f"runs with rows committed: {with_rows}",
        f"rows queued per run: median {statistics.median(r.queued for r in results):.0f}; "
        f"stored {sum(r.stored for r in results)} of {sum(r.queued for r in results)} queued",
        f"lost_s (kill time - first lost reading queued): median {statistics.median(lost):.3f}, "
        f"p95 {lost[int(0.95 * (len(lost) - 1))]:.3f}, max {lost[-1]:.3f} "
        f"(after start-up: max {max((r.lost_s for r in late), default=0):.3f})",
    ])
    return text, not (bad_integrity or gaps or too_much)


def throughput(workdir: Path) -> str:
    """The writer's figures: commit time at a dash's load, rows/s sustained, caller's cost."""
    sys.path.insert(0, str(ROOT))
    lines = []
    for synchronous in ("NORMAL", "FULL"):
        lines += _busy_dash(workdir, synchronous)
    return "\n".join(lines + [_sustained(workdir)])


def _busy_dash(workdir: Path, synchronous: str) -> list[str]:
    """A busy dash: 200 readings/s and 10 frames/s for 10 s, commit every 1 s."""
    from keidash.dashstate import DashState
    from keidash.readings import Reading
    from keidash.triplog.writer import TripLog

    log = TripLog(str(workdir / f"load-{synchronous}.db"), commit_every_s=1.0,
                  synchronous=synchronous)
    start = time.monotonic()
    put_s = []
    n = 0
    while time.monotonic() - start < 10.0:
        now = time.monotonic()
        batch = [Reading(now, "rpm", float(i), "obd") for i in range(n, n + 20)]
        t0 = time.perf_counter()
        log.readings(batch, now)
        log.frame(DashState(now, "bench", 2000.0, False, 40.0, 3, None, 5e3, 6.5e3, 8e3), now)
        put_s.append(time.perf_counter() - t0)
        n += 20
        time.sleep(0.1)
    log.close()
    commits = sorted(log.commit_s)
    put_s.sort()
    return [
        f"busy dash, synchronous={synchronous} (200 readings/s + 10 frames/s, commit 1 s): "
        f"{len(commits)} commits, commit time median {1e3 * statistics.median(commits):.2f} ms, "
        f"max {1e3 * commits[-1]:.2f} ms",
        f"  frame loop cost of readings(20)+frame(): "
        f"median {1e6 * statistics.median(put_s):.0f} us, "
        f"max {1e6 * put_s[-1]:.0f} us",
    ]


def _sustained(workdir: Path) -> str:
    """500 000 readings queued at once; time until all are committed."""
    from keidash.readings import Reading
    from keidash.triplog.writer import TripLog

    log = TripLog(str(workdir / "rate.db"), commit_every_s=1.0, max_queued=1_000_000)
    now = time.monotonic()
    rows = [Reading(now, "rpm", float(i), "obd") for i in range(500_000)]
    t0 = time.perf_counter()
    log.readings(rows, now)
    queued_s = time.perf_counter() - t0
    while log.rows_written < len(rows):
        time.sleep(0.01)
    rate = len(rows) / sum(log.commit_s)  # the writer's busy time, not its 1 s wait
    log.close()
    return f"sustained: {rate:,.0f} readings/s written (500 000 queued in {1e3 * queued_s:.0f} ms)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--commit", type=float, default=1.0, help="commit_every_s")
    parser.add_argument("--kill-max", type=float, default=3.0, help="s after the first reading")
    parser.add_argument("--batch", type=int, default=10, help="readings queued per ms")
    parser.add_argument("--per-db", type=int, default=10, help="runs sharing one database")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    parser.add_argument("--throughput", action="store_true", help="only the writer's rates")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.dir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.throughput:
            print(throughput(workdir))
            return 0
        started = time.monotonic()
        results = run(args.kills, args.seed, args.commit, args.kill_max, args.batch, args.per_db,
                      workdir)
        text, ok = summary(results, args.commit, time.monotonic() - started)
    print(text)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
