"""Resident memory of a long `keidash demo`: does it level off after the first minute?

Runs the real CLI (`python -m keidash demo --headless --log TRIPS.db`) for --seconds
(default 600, the 10 minutes of issue 16), sampling the process's VmRSS from
/proc/PID/status once a second. Prints RSS at 1 minute, at the end, the peak, and the
growth per 10 minutes fitted (least squares) over the drive after its first minute (the
samples from --seconds on are the process shutting down: the screenshot's PNG encoder, the
learned ratios; they count in the peak, not in the growth);
the baseline is the same run's own RSS at 1 minute. Once a minute it also reads
/proc/PID/smaps and prints where the resident memory is: the main thread's malloc heap
([heap]), anonymous mappings (the other threads' malloc arenas, Python's object arenas,
large allocations, thread stacks), the shared libraries and other files (the trip log's
-shm), so a growth says which of them grew.

The cluster's theme follows the clock and the sun at the virtual truck's position, so a plain
run measures whatever light it is in Nagano now (and a run through dusk switches theme once).
``--day`` runs the same virtual truck through ``keidash run --config`` with a ``[night]`` switch
held open on gpiozero's mock pins instead: the day theme whatever the clock, the same figure at
any hour.

``--diagnose`` also looks inside the running process (the CLI started through a small
bootstrap that adds one diagnostic thread) at 60, 180 and 360 s and at the drive's end: the
object allocator's bytes in use and its free lists of tuples (``sys._debugmallocstats()``,
which CPython keeps for reuse, up to 2000 tuples of each length 1 to 20), and the cluster's
glyph and text caches (entries, kB of pixels). Each look walks every object (``gc``) and
stalls the frame loop for a moment: the figures are a diagnosis, the RSS goal is judged the
same way.

Goal (exit 1 when missed): after the first minute RSS grows less than 2 % of its
1-minute value per 10 minutes (flat), and the demo exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

GOAL_GROWTH_SHARE = 0.02  # of the 1-minute RSS, per 10 minutes after the first minute
WARM_UP_S = 60.0
DIAGNOSE_AT_S = (60.0, 180.0, 360.0)  # and the drive's end

# Run in the child with --diagnose: argv = [OUT, MARKS, keidash CLI args...]. One daemon thread writes
# a JSON line per look to OUT; sys._debugmallocstats() writes to the C stderr (fd 2), so it is
# pointed at a file for the call.
DIAGNOSE_BOOT = r"""
import gc, json, os, re, sys, tempfile, threading, time
out, marks, args = sys.argv[1], [float(m) for m in sys.argv[2].split(",")], sys.argv[3:]

def pixels_kb(surfaces):
    return sum(s.get_pitch() * s.get_height() for s in surfaces) / 1024

def look(t):
    from keidash.display.cluster import Cluster
    clusters = [o for o in gc.get_objects() if isinstance(o, Cluster)]
    glyphs = [g.ink for c in clusters for g in c._glyphs.values()]
    texts = [t for c in clusters for t in c._texts.values()]
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        stats = f.read().decode(errors="replace")
    in_use = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", stats)
    tuples = [(int(n), int(b.replace(",", ""))) for n, b in
              re.findall(r"(\d+) free \d+-sized PyTupleObjects \* \d+ bytes each =\s*([\d,]+)", stats)]
    row = {"t": round(t), "allocated_mb": int(in_use.group(1).replace(",", "")) / 1e6 if in_use else None,
           "free_tuples": sum(n for n, _ in tuples), "free_tuples_mb": sum(b for _, b in tuples) / 1e6,
           "glyphs": len(glyphs), "glyphs_kb": pixels_kb(glyphs), "texts": len(texts), "texts_kb": pixels_kb(texts)}
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")

def diagnose():
    start = time.monotonic()
    for mark in marks:
        time.sleep(max(0.0, start + mark - time.monotonic()))
        look(time.monotonic() - start)

threading.Thread(target=diagnose, name="bench-diagnose", daemon=True).start()
from keidash.cli import main
sys.argv = ["keidash", *args]
sys.exit(main(args))
"""


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_by_mapping(pid: int) -> dict[str, float] | None:
    """Resident MB by kind of mapping, from /proc/PID/smaps."""
    kinds = {"heap": 0, "anon": 0, "libs": 0, "files": 0, "stack": 0}
    kind = "anon"
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                fields = line.split()
                if not fields[0].endswith(":"):  # a mapping's header: address perms offset dev inode [path]
                    path = fields[5] if len(fields) > 5 else ""
                    kind = ("heap" if path == "[heap]" else "stack" if path.startswith("[stack") else
                            "anon" if not path or path.startswith("[") else
                            "libs" if ".so" in os.path.basename(path) else "files")
                elif fields[0] == "Rss:":
                    kinds[kind] += int(fields[1])
    except (OSError, IndexError, ValueError):
        return None
    return {k: v / 1024 for k, v in kinds.items()}


def slope_per_s(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (m - mean_m) for t, m in points) / var if var else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the demo runs (default 600)")
    parser.add_argument("--speedup", type=float, default=1.0, help="the demo's --speedup (default 1)")
    parser.add_argument("--day", action="store_true",
                        help="the day theme whatever the clock (keidash run, a night switch held open on mock pins)")
    parser.add_argument("--diagnose", action="store_true",
                        help="also read the allocator's free lists and the cluster's caches inside the process")
    args = parser.parse_args()
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "keidash", "demo", "--headless", "--seconds", f"{args.seconds:g}",
                   "--speedup", f"{args.speedup:g}", "--log", os.path.join(folder, "trips.db"),
                   "--screenshot", os.path.join(folder, "last.png")]
        if args.day:  # the demo's truck and devices, its trip log in data_dir, a night switch open
            config = os.path.join(folder, "truck.toml")
            with open(config, "w", encoding="utf-8") as f:
                f.write(f'profile = "hijet-s500p"\ndata_dir = "{folder}"\n'
                        f'[sources]\nsim = "sim://hijet-s500p?speedup={args.speedup:g}"\n[night]\nswitch = 20\n')
            command = [sys.executable, "-m", "keidash", "run", "--config", config, "--headless",
                       "--seconds", f"{args.seconds:g}", "--screenshot", os.path.join(folder, "last.png")]
            env["GPIOZERO_PIN_FACTORY"] = "mock"
        looks = os.path.join(folder, "diagnose.jsonl")
        if args.diagnose:
            marks = [m for m in DIAGNOSE_AT_S if m < args.seconds - 5] + [max(args.seconds - 5, 1.0)]
            command = [sys.executable, "-c", DIAGNOSE_BOOT, looks, ",".join(f"{m:g}" for m in marks), *command[3:]]
        started = time.monotonic()
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []
        mappings: list[tuple[float, dict[str, float]]] = []  # once a minute
        while child.poll() is None:
            mb = rss_mb(child.pid)
            if mb is not None:
                t = time.monotonic() - started
                samples.append((t, mb))
                if 60 * (len(mappings) + 1) <= t < args.seconds:  # the drive, not its shutdown
                    by_mapping = rss_by_mapping(child.pid)
                    if by_mapping is not None:
                        mappings.append((t, by_mapping))
            time.sleep(1.0)
        stderr = child.stderr.read()
        diagnosed = []
        if args.diagnose and os.path.exists(looks):
            with open(looks) as f:
                diagnosed = [json.loads(line) for line in f]
    if child.returncode != 0 or not samples:
        print(f"keidash demo failed (exit {child.returncode}): {stderr.strip()[-500:]}")
        return 1
    after = [(t, m) for t, m in samples if WARM_UP_S <= t < args.seconds]  # the drive, not its shutdown
    if len(after) < 10:
        print(f"too short to judge: {len(samples)} samples; run --seconds 120 or more")
        return 1
    at_minute = after[0][1]
    growth = slope_per_s(after) * 600.0
    ok = growth < GOAL_GROWTH_SHARE * at_minute
    print(f"keidash {'run (demo truck, day theme)' if args.day else 'demo'} --speedup {args.speedup:g} "
          f"for {args.seconds:g} s (RSS sampled each second):")
    print(f"  RSS at 1 min {at_minute:.1f} MB, at the drive's end {after[-1][1]:.1f} MB, peak "
          f"{max(m for _, m in after):.1f} MB (with the shutdown {max(m for _, m in samples):.1f} MB)")
    print(f"  growth after the first minute: {growth:+.2f} MB per 10 min ({growth / at_minute * 100:+.1f} % of "
          f"the 1-minute RSS; goal under {GOAL_GROWTH_SHARE * 100:g} %) {'ok' if ok else 'MISSED'}")
    minutes = [next(m for t, m in after if t >= 60 * k) for k in range(1, int(after[-1][0] // 60) + 1)]
    print("  each minute: " + " ".join(f"{m:.1f}" for m in minutes) + " MB")
    if mappings:
        print("  resident MB by mapping, each minute (heap: the main thread's malloc; anon: other arenas,")
        print("  Python's object arenas, big allocations, stacks; libs: shared libraries; files: others):")
        for kind in mappings[0][1]:
            print(f"    {kind:6}" + " ".join(f"{m[kind]:6.1f}" for _, m in mappings))
    if args.diagnose:
        print("  inside the process (allocator: bytes in use, free lists of tuples; cluster: cached glyphs, texts):")
        for d in diagnosed:
            print(f"    {d['t']:4d} s: allocated {d['allocated_mb']:.2f} MB, {d['free_tuples']} free tuples "
                  f"{d['free_tuples_mb']:.2f} MB; glyphs {d['glyphs']} ({d['glyphs_kb']:.0f} kB), "
                  f"texts {d['texts']} ({d['texts_kb']:.0f} kB)")
        if not diagnosed:
            print("    no look was taken (the drive ended first?)")
            return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
