"""Memory of the frame times a long drive keeps (keidash.app.FrameTimes), against a list.

``FrameStats.frame_ms`` was a list of every frame's render time: 6.6 MB an hour at 60 fps,
for as long as the dash runs. It is now a fixed histogram (0.5 % log bins, the ends exact).
This bench appends the same lognormal render times (about 2 ms, as bench/render.py measures
on a desktop) to both, one minute and then hours of frames at 60 fps, and reads with
tracemalloc what each holds (the histogram: what was allocated in its module and is still
held); the list is the baseline measured in the same run. It also checks p50 and p99 against
the exact percentiles of the same sample.

Goal (exit 1 when missed): the histogram's own fields (sys.getsizeof) are the same bytes after
4 hours as after one minute, tracemalloc sees it grow less than 1 KB (a float or two of CPython's
free list is noise it cannot tell apart), and its p50 and p99 are within 0.5 % of the exact ones.
"""

from __future__ import annotations

import argparse
import random
import sys
import tracemalloc

from keidash import app
from keidash.app import FrameTimes

FPS = 60
GOAL_REL_ERROR = 0.005
GOAL_TRACED_GROWTH = 1000  # bytes


def own_bytes(histogram) -> int:
    return sum(sys.getsizeof(v) for v in vars(histogram).values())


def held_bytes(make, times, where: str | None = None) -> tuple[object, int]:
    """A structure made by ``make`` holding ``times``, and the bytes it holds (tracemalloc): all
    that is still allocated after the appends, or only what was allocated in the file ``where``
    (the histogram's module: the loop's own floats, freed but kept in CPython's free list, are
    a few dozen bytes of noise that belong to neither)."""
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    holder = make()
    for ms in times:
        holder.append(ms + 0.0)  # a new float each frame, as the frame loop's own measurement
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    if where is not None:
        before, after = (snap.filter_traces([tracemalloc.Filter(True, where)]) for snap in (before, after))
    return holder, sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=4.0, help="the long drive (default 4 h)")
    args = parser.parse_args()
    rng = random.Random(16)
    frames = int(args.hours * 3600 * FPS)
    times = [rng.lognormvariate(0.7, 0.5) for _ in range(frames)]
    minute = times[:60 * FPS]

    rows, failed = [], False
    for label, sample in (("1 min", minute), (f"{args.hours:g} h", times)):
        histogram, histogram_bytes = held_bytes(FrameTimes, sample, app.__file__)
        _, list_bytes = held_bytes(list, sample)
        exact = sorted(sample)
        errors = [abs(histogram.percentile(p) / exact[min(len(exact) - 1, int(p * len(exact)))] - 1)
                  for p in (0.50, 0.99)]
        rows.append((label, len(sample), histogram_bytes, list_bytes, errors, own_bytes(histogram)))
        failed |= max(errors) > GOAL_REL_ERROR
    print(f"{'drive':>7} {'frames':>9} {'histogram':>11} {'its fields':>11} {'list (old)':>12} {'ratio':>7} "
          f"{'p50 err':>8} {'p99 err':>8}")
    for label, n, h, old, (e50, e99), own in rows:
        print(f"{label:>7} {n:>9,} {h / 1e3:>8.2f} KB {own:>8,} B {old / 1e6:>9.2f} MB {h / old:>7.4f} "
              f"{100 * e50:>7.3f}% {100 * e99:>7.3f}%")
    growth = rows[1][2] - rows[0][2]
    failed |= rows[1][5] != rows[0][5]
    list_per_hour = (rows[1][3] - rows[0][3]) / (args.hours - 1 / 60)
    print(f"histogram growth from 1 min to {args.hours:g} h: {growth} bytes; "
          f"the list grew {list_per_hour / 1e6:.2f} MB an hour")
    failed |= growth >= GOAL_TRACED_GROWTH
    print("goal (its fields the same, traced growth under 1 KB, percentiles within 0.5 %):",
          "MISSED" if failed else "met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
