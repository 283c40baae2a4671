"""Memory and time of the commands that read a whole drive log, at two log lengths.

A virtual Hijet's 15-minute drive (keidash.sim.recorded, with its gear labels) is laid end
to end into CSV logs of --rows and of a fifth as many rows. Each command runs as the user
runs it, `python -m keidash ...` in a child process, and its peak resident memory comes from
the kernel (VmHWM of that child, read as it exits; not ru_maxrss, which Linux makes at least the
forking parent's own peak):

* `replay LOG --headless --estimates OUT.csv`
* `learn LOG`
* `eval LOG`
* `replay TRIPS.db --headless --estimates OUT.csv`: the same drive, as many samples, written into a
  keidash trip log (its schema from keidash.triplog.writer.MIGRATIONS; an rpm and a speed reading
  from "obd" at each time, as the dash logs an OBD adapter) and replayed from it

`--only csv` or `--only triplog` runs one kind of log (the baselines run either way).

Baselines, measured in the same run: the interpreter with keidash's command modules imported
(a child that imports them and exits: its peak RSS), and csv.reader over the same file (a
child that only splits its rows: its time per row). Printed per command and length: peak RSS
and its ratio to the import baseline, time per row and its ratio to csv.reader's; and the
memory a row costs, the difference of the two peaks over the difference of the rows. A baseline
child that fails (does not exit 0) stops the bench with exit 1 and one sentence: every ratio would be
to its figures.

Goal (exit 1 when missed): every command under 150 MB peak RSS at --rows (default 500,000).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

GOAL_MB = 150.0
#: (kind of log, what the bench prints) -> the command's arguments after `python -m keidash`
COMMANDS = {
    ("csv", "replay --estimates"): lambda log, out: ["replay", log, "--headless", "--estimates", out],
    ("csv", "learn"): lambda log, out: ["learn", log],
    ("csv", "eval"): lambda log, out: ["eval", log],
    ("triplog", "replay trips.db --est."): lambda log, out: ["replay", log, "--headless", "--estimates", out],
}


def drive_rows(rows: int):
    """(time s, rpm, km/h, gear or None) of ``rows`` samples: the virtual drive end to end, rounded as
    the CSV log writes them."""
    from keidash.sim.recorded import virtual_log
    drive = [s for s in virtual_log("hijet-s500p", "kei-day", seconds=900).samples
             if s.speed_kmh is not None and s.rpm is not None]
    span = drive[-1].t + 0.1
    written = lap = 0
    while written < rows:
        for s in drive:
            if written == rows:
                return
            yield round(lap * span + s.t, 3), float(round(s.rpm)), round(s.speed_kmh, 1), s.gear
            written += 1
        lap += 1


def write_log(path: str, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("time_s,engine_rpm,speed_kmh,gear\n")
        for t, rpm, kmh, gear in drive_rows(rows):
            f.write(f"{t:.3f},{rpm:.0f},{kmh:.1f},{'' if gear is None else gear}\n")


def write_trip_log(path: str, rows: int) -> None:
    """A trip log (keidash's schema) holding one trip of ``rows`` samples: 2 x ``rows`` readings."""
    import sqlite3
    from keidash.triplog.writer import migrate
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn)
        conn.execute("BEGIN")
        trip = conn.execute("INSERT INTO trips (started_unix, ended_unix, profile, sources) "
                            "VALUES (1767225600.0, NULL, 'hijet-s500p', 'obd')").lastrowid
        conn.executemany("INSERT INTO readings (trip, t, channel, value, source) VALUES (?, ?, ?, ?, 'obd')",
                         ((trip, t, channel, value) for t, rpm, kmh, _ in drive_rows(rows)
                          for channel, value in (("rpm", rpm), ("speed_kmh", kmh))))
        conn.execute("COMMIT")
    finally:
        conn.close()


#: run in each child: its own peak RSS (VmHWM, which belongs to the process's memory since its exec) is written
#: to the file named by KEIDASH_BENCH_HWM as it exits. Not ru_maxrss: Linux carries the forking parent's peak
#: into it across the exec, so every child would read at least this bench's own RSS. An uncaught exception exits
#: CRASHED (Python's own status for one is 1, which learn and eval also give as a verdict on the drive).
CRASHED = 70
WRAPPER = """import atexit, os, runpy, sys, traceback

def hwm():
    with open('/proc/self/status') as f:
        kb = next(line.split()[1] for line in f if line.startswith('VmHWM:'))
    with open(os.environ['KEIDASH_BENCH_HWM'], 'w') as out:
        out.write(kb)

atexit.register(hwm)
sys.argv = sys.argv[1:]
try:
    if sys.argv[0] == '-m':
        del sys.argv[0]
        runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
    else:
        exec(compile(sys.argv[0], '<bench>', 'exec'))
except SystemExit:
    raise
except BaseException:
    traceback.print_exc()
    sys.exit(%d)
""" % CRASHED

#: the exit statuses that are a command's verdict on the drive (learn: the gears' numbers not sure; eval: keidash
#: below the naive answer somewhere); any other status, an uncaught exception's included, is a failure
VERDICTS = {"learn": (0, 1), "eval": (0, 1)}


def command_failed(name: str, *codes: int) -> bool:
    """Whether the exit statuses ``codes`` of the command ``name`` say it failed (not its verdict)."""
    return not set(codes) <= set(VERDICTS.get(name, (0,)))


def run(arguments: list[str]) -> tuple[float, float, int]:
    """(peak RSS MB, seconds, exit status) of ``python ARGUMENTS`` (``-m MODULE ...`` or ``CODE ARGS``)
    in a child process; what it writes on stderr (an error's sentence, a traceback) goes to the bench's."""
    with tempfile.NamedTemporaryFile("r") as hwm:
        env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", KEIDASH_BENCH_HWM=hwm.name)
        started = time.monotonic()
        child = subprocess.run([sys.executable, "-c", WRAPPER, *arguments], env=env,
                               stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        kb = hwm.read().strip()
    return (int(kb) / 1024 if kb else float("nan")), seconds, child.returncode


#: the import baseline: what the commands import before they read a log
IMPORTS = "import keidash.cli, keidash.app, keidash.replay, keidash.estimate.commands, keidash.estimate.evaluate"
#: the time baseline: csv.reader over the file, nothing else
SPLIT = "import csv, sys\nwith open(sys.argv[1], newline='') as f:\n    sum(1 for _ in csv.reader(f))"


def baseline(what: str, arguments: list[str]) -> tuple[float, float]:
    """(peak RSS MB, seconds) of a baseline child; exits the bench when the child failed, since every ratio
    would then be to a crash's figures."""
    mb, seconds, code = run(arguments)
    if code != 0:
        raise SystemExit(f"bench/logs.py: the {what} baseline exited {code} (its error is above), so no ratio "
                         f"can be measured against it: fix that and run the bench again")
    return mb, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the long log (default 500000)")
    parser.add_argument("--only", choices=("csv", "triplog"), help="run the commands on this kind of log only")
    args = parser.parse_args()
    kinds = (args.only,) if args.only else ("csv", "triplog")
    lengths = (args.rows // 5, args.rows)
    failed = False
    base_mb = baseline("import", [IMPORTS])[0]
    with tempfile.TemporaryDirectory() as folder:
        logs = {}
        for rows in lengths:
            logs["csv", rows] = os.path.join(folder, f"drive-{rows}.csv")
            write_log(logs["csv", rows], rows)
            if "triplog" in kinds:
                logs["triplog", rows] = os.path.join(folder, f"trips-{rows}.db")
                write_trip_log(logs["triplog", rows], rows)
        out = os.path.join(folder, "estimates.csv")
        split_s = [baseline("csv.reader", [SPLIT, logs["csv", rows]])[1] for rows in lengths]
        more = lengths[1] - lengths[0]
        split_us = (split_s[1] - split_s[0]) / more * 1e6  # start-up cancels out
        print(f"logs of {lengths[0]} and {lengths[1]} rows (virtual Hijet: {' and '.join(kinds)}); baselines: keidash imported "
              f"{base_mb:.1f} MB peak RSS, csv.reader {split_us:.2f} us per row")
        for (kind, name), arguments in COMMANDS.items():
            if kind not in kinds:
                continue
            figures = {rows: run(["-m", "keidash", *arguments(logs[kind, rows], out)]) for rows in lengths}
            (short_mb, short_s, short_rc), (long_mb, long_s, long_rc) = figures[lengths[0]], figures[lengths[1]]
            per_row = (long_mb - short_mb) * 1024 * 1024 / more
            us = (long_s - short_s) / more * 1e6
            crashed = command_failed(name, short_rc, long_rc)
            ok = long_mb < GOAL_MB and not crashed
            failed |= not ok
            print(f"  {name:22s} {short_mb:6.1f} / {long_mb:6.1f} MB peak ({short_mb / base_mb:.2f}x / "
                  f"{long_mb / base_mb:.2f}x the import), {per_row:4.0f} bytes per row more; "
                  f"{us:5.0f} us per row ({us / split_us:4.0f}x csv.reader) (goal < {GOAL_MB:g} MB at "
                  f"{lengths[1]}) {'ok' if ok else 'MISSED'}{f' (exit {short_rc} / {long_rc})' if crashed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
