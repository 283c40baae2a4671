"""What the running dash costs a Pi: whole-process CPU per second of driving, and RSS.

    SDL_VIDEODRIVER=dummy .venv/bin/python bench/process_cost.py [--long 90] [--short 30]

``bench/render.py`` times the cluster's drawing alone; a Pi pays for the whole
process (the frame loop, ``advise``, the cab, the sources' threads, the bus,
the interpreter). So each case here runs the real ``keidash`` CLI in a child
process twice, for ``--long`` and ``--short`` seconds of driving at 60 fps
(headless, SDL's dummy driver), and takes the child's CPU time (user + system,
from ``os.wait4``'s rusage) of each. The difference divided by the difference
in seconds is the CPU per second of driving: start-up (imports, fonts, the
static layers) is in both runs and cancels out. Wall-clock time is never the
measure; it only decides how long each run drives.

Cases:

* ``replay``: ``keidash replay`` of a real town drive (tests/data/drives/
  carobd-etios/ufpe1.csv, a Toyota Etios around a university campus, one row
  every ~0.5 s) at real time;
* ``demo``: ``keidash demo`` with every emulated source (obd, gps, pulses,
  audio) through python-obd, pynmea2, gpiozero and the note tracker.

Each case runs as keidash and as the full-redraw reference in the same run:
the same CLI with :class:`keidash.display.cluster.Cluster` redrawing every
element every frame and the frame loop drawing every frame at 60 fps, with
no frame skipped or slowed (``keidash.app.PACED = False``): a hobby renderer.
The four runs of a case go at the same time (each is a few % of a core), so
the machine's load falls on keidash and the reference alike.

Goals (exit 1 when one is missed): on the replay, keidash's CPU per second of
driving at most 0.5x the reference's, and peak RSS under 80 MB. The demo's RSS is
printed with no goal: its process also holds the virtual truck and its emulated
ELM327, GPS, pulse and microphone devices (with all four, python-obd's pint and
numpy come in too), which no truck's dash carries.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRIVE = ROOT / "tests" / "data" / "drives" / "carobd-etios" / "ufpe1.csv"
RATIO_GOAL = 0.5  # keidash / reference, CPU per second of driving on the replay
RSS_GOAL_MB = 80.0

# the child: keidash's own CLI, or the reference (the same CLI, full redraw, every frame drawn)
CHILD = """
import sys
reference = sys.argv[1] == "reference"
if reference:
    import keidash.app
    from keidash.display.cluster import Cluster
    Cluster.full_redraw = True
    keidash.app.PACED = False
from keidash.cli import main
sys.exit(main(sys.argv[2:]))
"""

CASES = {
    "replay": lambda seconds, tmp: ["replay", str(DRIVE), "--headless",
                                    "--seconds", f"{seconds:g}", "--fps", "60",
                                    "--stats-json", os.path.join(tmp, "stats.json")],
    "demo": lambda seconds, tmp: ["demo", "--hardware", "obd,gps,pulses,audio", "--headless",
                                  "--seconds", f"{seconds:g}", "--fps", "60",
                                  "--screenshot", os.path.join(tmp, "last.png"),
                                  "--stats-json", os.path.join(tmp, "stats.json")],
}


def start(kind: str, case: str, seconds: float) -> tuple[subprocess.Popen, str]:
    tmp = tempfile.mkdtemp(prefix=f"keidash-cost-{case}-{kind}-")
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1")
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, *CASES[case](seconds, tmp)], cwd=tmp, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return child, tmp


def finish(child: subprocess.Popen, tmp: str) -> dict:
    """Wait for ``child`` and return its CPU seconds, peak RSS and frame statistics."""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    out, err = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"bench/process_cost.py: a child failed ({child.returncode}): {err.decode()[-2000:]}")
    with open(os.path.join(tmp, "stats.json"), encoding="utf-8") as f:
        stats = json.load(f)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
            "frames": stats["frames"], "fps": stats["fps"]}


def measure(case: str, long_s: float, short_s: float) -> dict:
    runs = {(kind, seconds): start(kind, case, seconds)
            for kind in ("reference", "keidash") for seconds in (long_s, short_s)}
    done = {key: finish(*run) for key, run in runs.items()}
    out = {}
    for kind in ("reference", "keidash"):
        long_run, short_run = done[kind, long_s], done[kind, short_s]
        out[kind] = {
            "cpu_ms_per_s": 1000 * (long_run["cpu_s"] - short_run["cpu_s"]) / (long_s - short_s),
            "frames_per_s": (long_run["frames"] - short_run["frames"]) / (long_s - short_s),
            "rss_mb": max(long_run["rss_mb"], short_run["rss_mb"]),
        }
    out["ratio"] = out["keidash"]["cpu_ms_per_s"] / out["reference"]["cpu_ms_per_s"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=float, default=90.0, help="seconds of the long runs")
    parser.add_argument("--short", type=float, default=30.0, help="seconds of the short runs")
    parser.add_argument("--cases", default="replay,demo")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if args.long <= args.short:
        parser.error("--long must be longer than --short")

    results = {case: measure(case, args.long, args.short) for case in args.cases.split(",")}
    missed = []
    print(f"whole process, CPU per second of driving ({args.long:g} s run - {args.short:g} s run), 60 fps")
    print(f"{'case':7} {'renderer':10} {'CPU ms/s':>9} {'frames/s':>9} {'RSS MB':>7}  (RSS goal < {RSS_GOAL_MB:g} MB "
          f"on the replay; the demo's process holds the virtual truck too)")
    for case, result in results.items():
        for kind in ("reference", "keidash"):
            r = result[kind]
            print(f"{case:7} {kind:10} {r['cpu_ms_per_s']:9.2f} {r['frames_per_s']:9.1f} {r['rss_mb']:7.1f}")
            if case == "replay" and r["rss_mb"] >= RSS_GOAL_MB:
                missed.append(f"{case} {kind}: RSS {r['rss_mb']:.1f} MB >= {RSS_GOAL_MB:g}")
    print()
    for case, result in results.items():
        goal = f" (goal <= {RATIO_GOAL})" if case == "replay" else ""
        print(f"{case}: keidash / reference CPU per second of driving = {result['ratio']:.2f}{goal}")
        if case == "replay" and result["ratio"] > RATIO_GOAL:
            missed.append(f"replay: CPU ratio {result['ratio']:.2f} > {RATIO_GOAL}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    for line in missed:
        print("MISSED:", line)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
