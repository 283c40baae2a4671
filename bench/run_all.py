"""Run every benchmark under bench/; exit non-zero if any misses its target.

Each bench's output follows a line naming it; after it, its exit status and wall time, and at
the end a summary of them all."""

import subprocess
import sys
import time
from pathlib import Path

# each bench with its arguments. The whole run took 43 min on the 2-core development machine, shared,
# on 2026-12-06, before logs' trip-log case (about 5-10 min more, not measured in a whole run):
# logs: three commands on 100,000- and 500,000-row CSV logs (about 20 min, eval alone about 10) and
# the trip-log replay; demo_rss: a 10-minute demo; estimator: about 4 min; process_cost: two rounds
# of four runs of the real CLI (90 s and 30 s, about 3 min); powercut: 100 SIGKILLs (about 2 min,
# 500 by hand); obd_rate: about 1.5 min; the others a minute or less each
BENCHES = [["first_frame.py"], ["obd_rate.py"], ["gps_health.py"], ["estimator.py"], ["render.py"], ["frame_times.py"],
           ["powercut.py", "--kills", "100"], ["logs.py"], ["demo_rss.py"],
           ["audio.py"], ["audio_capture.py"], ["process_cost.py"]]


def main(benches: list[list[str]] = BENCHES, folder: Path = Path(__file__).parent) -> int:
    done = []
    started = time.monotonic()
    for name, *options in benches:
        command = " ".join([f"bench/{name}", *options])
        print(f"\n=== {command}", flush=True)
        t0 = time.monotonic()
        result = subprocess.run([sys.executable, str(folder / name), *options])
        seconds = time.monotonic() - t0
        verdict = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"=== {command}: {verdict}, {seconds / 60:.1f} min", flush=True)
        done.append((command, result.returncode, seconds))
    failed = [command for command, code, _ in done if code != 0]
    print(f"\nmake bench: {len(done) - len(failed)} of {len(done)} benches met their targets in "
          f"{(time.monotonic() - started) / 60:.0f} min" + (f"; exit 1: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
