"""Start -> first frame of ``keidash demo --headless``.

Measures, in one run on the same machine:
- baseline: spawning ``python -c pass`` until it exits (interpreter start-up);
- ``python -c "import obd"`` (why python-obd must be imported lazily);
- keidash: from spawning ``keidash demo --headless`` (virtual truck with its
  emulated ELM327, GPS and pulse pins) to its first rendered frame, read from
  the CLOCK_MONOTONIC stamp it writes with --stats-json.

Prints medians and ratios to the baseline; exits 1 when the median first frame
misses the target (1 s here).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_S = 1.0
RUNS = int(os.environ.get("KEIDASH_BENCH_RUNS", "7"))
ENV = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")


def spawn_to_exit(code: str) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
    return time.monotonic() - t0


def spawn_to_first_frame() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = os.path.join(tmp, "stats.json")
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "keidash", "demo", "--headless", "--seconds", "0.3",
                        "--stats-json", stats_path, "--screenshot", os.path.join(tmp, "s.png")],
                       check=True, env=ENV, stdout=subprocess.DEVNULL)
        with open(stats_path) as f:
            stats = json.load(f)
        return stats["first_frame_monotonic"] - t0


def main() -> int:
    spawn_to_first_frame()  # warm the page cache once
    baseline = [spawn_to_exit("pass") for _ in range(RUNS)]
    obd_import = [spawn_to_exit("import obd") for _ in range(RUNS)]
    first_frame = [spawn_to_first_frame() for _ in range(RUNS)]
    b, o, f = (statistics.median(x) for x in (baseline, obd_import, first_frame))
    print(f"first_frame: runs={RUNS}")
    print(f"  python -c pass (baseline)      median {b * 1000:7.1f} ms   1.00x")
    print(f"  python -c 'import obd'         median {o * 1000:7.1f} ms   {o / b:5.2f}x")
    print(f"  keidash demo -> first frame    median {f * 1000:7.1f} ms   {f / b:5.2f}x   "
          f"(min {min(first_frame) * 1000:.1f}, max {max(first_frame) * 1000:.1f})")
    ok = f < TARGET_S
    print(f"  target < {TARGET_S:.1f} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
