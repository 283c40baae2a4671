"""Cluster rendering cost: dirty rectangles against a full redraw, per layout.

    SDL_VIDEODRIVER=dummy .venv/bin/python bench/render.py [--frames N] [--paced-seconds S]

Replays one fixed, synthetic 60 fps drive (a pull through the gears with the
shift bar ramping and flashing, a downshift cue, a stale source, a driver
message, the trip page, night, the clock ticking) through
:class:`keidash.display.cluster.Cluster` (dirty rectangles) and
:class:`~keidash.display.cluster.FullRedrawCluster` (every element every
frame, the baseline), each in its own subprocess so one's memory does not
inflate the other's. Both draw through a real (SDL dummy) display surface, so
``pygame.display.update(rects)`` / ``flip()`` are called as on the Pi; the
dummy driver does not copy pixels to a screen, which the Pi's kmsdrm does
(not measured here).

Per layout and renderer it measures:
- CPU time per frame (``time.process_time``) over the replay, after a warm-up
  that builds the static layers and glyph caches: mean and 99th percentile;
- the frame rate held when paced at 60 fps for a few seconds (sleeping to each
  frame's deadline), and the share of frames that missed their deadline;
- peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) of the subprocess.

Goals (exit 1 when one is missed): dirty-rectangle CPU per frame at most half
the full redraw's; 60 fps held (>= 59.5 fps, <= 1% late frames); RSS under 80 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from keidash.dashstate import DOWN, LIVE, STALE, UP, DashState, SourceView  # noqa: E402
from keidash.display.layout import LAYOUTS  # noqa: E402

FPS = 60.0
CPU_RATIO_GOAL = 0.5  # dirty CPU per frame / full-redraw CPU per frame
FPS_GOAL = 59.5
LATE_SHARE_GOAL = 0.01
RSS_GOAL_MB = 80.0
WARMUP_FRAMES = 120


def drive_states(frames: int) -> list[DashState]:
    """A fixed 60 fps drive: deterministic, so every run renders the same frames.

    Every 20 s: 3 s of night; every 15 s: 1 s of the trip page; every 30 s: 1 s of a driver
    message; every 25 s: 1 s of a stale GPS; every 40 s: 3 s of estimated rpm.
    """
    states = []
    ratios = (279.0, 164.2, 113.1, 68.7, 51.0)  # rpm per km/h, a Hijet's gears x final drive
    speed = 0.0
    gear = 1
    for i in range(frames):
        t = 1000.0 + i / FPS
        cycle = i % 1800  # 30 s: accelerate 20 s, cruise 5 s, slow down 5 s
        if cycle < 1200:
            speed = min(speed + 0.09, 95.0)
        elif cycle >= 1500:
            speed = max(speed - 0.25, 8.0)
        rpm = speed * ratios[gear - 1]
        cue = None
        if rpm > 3700 and gear < 5:
            cue = UP
            if rpm > 3900:
                gear += 1
                rpm = speed * ratios[gear - 1]
        elif rpm < 1300 and gear > 1:
            cue = DOWN
            if rpm < 1150:
                gear -= 1
                rpm = speed * ratios[gear - 1]
        rpm += 25.0 * ((i * 7919) % 13 - 6) / 6  # tach noise: the needle never rests
        second = i // 60
        states.append(DashState(
            t=t, profile_title="Daihatsu Hijet S500P/S510P", rpm=max(rpm, 800.0),
            rpm_estimated=(second % 40) in range(30, 33), speed_kmh=speed, gear=gear, cue=cue,
            upshift_rpm=3700.0, redline_rpm=6000.0, tach_max_rpm=7000.0,
            coolant_c=80.0 + (second % 20) / 2, battery_v=14.1 - 0.1 * (second % 3 == 0),
            sources=(SourceView("pulses", LIVE), SourceView("obd", LIVE),
                     SourceView("gps", STALE if second % 25 == 7 else LIVE, "no fix")),
            speed_source="obd", rpm_source="pulses", trip_km=i / 600.0, odometer_km=84512.0 + i / 600,
            wall_time=1.7e9 + t, night=(second % 20) >= 17, page=1 if (second % 15) == 12 else 0,
            message="logging paused: disk full" if (second % 30) == 20 else ""))
    return states


def child(layout: str, full: bool, frames: int, paced_seconds: float) -> dict:
    """Run one renderer in this process and return its figures."""
    from keidash.display.cluster import Cluster, FullRedrawCluster

    states = drive_states(WARMUP_FRAMES + frames)
    kind = FullRedrawCluster if full else Cluster
    cluster = kind(size=LAYOUTS[layout][0], layout=layout, headless=False)
    try:
        for state in states[:WARMUP_FRAMES]:
            cluster.render(state)
        per_frame = []
        area = 0
        w, h = cluster.surface.get_size()
        for state in states[WARMUP_FRAMES:]:
            c0 = time.process_time()
            cluster.render(state)
            per_frame.append(time.process_time() - c0)
            area += sum(rw * rh for _, _, rw, rh in cluster.last_dirty)
        # paced: a frame every 1/60 s of wall time, as the app's frame loop does
        n = int(paced_seconds * FPS)
        late = 0
        start = time.monotonic()
        for k in range(n):
            deadline = start + (k + 1) / FPS
            cluster.render(states[WARMUP_FRAMES + k % frames])
            cluster.poll_quit()
            now = time.monotonic()
            if now > deadline:
                late += 1
            else:
                time.sleep(deadline - now)
        elapsed = time.monotonic() - start
    finally:
        cluster.close()
    per_frame.sort()
    return {
        "layout": layout, "renderer": "full" if full else "dirty",
        "cpu_ms_mean": 1000 * statistics.fmean(per_frame),
        "cpu_ms_p99": 1000 * per_frame[int(0.99 * (len(per_frame) - 1))],
        "cpu_ms_max": 1000 * per_frame[-1],  # a theme or page switch building its static layer
        "redrawn_share": area / (frames * w * h),
        "paced_fps": n / elapsed, "late_share": late / n,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1800, help="frames timed per renderer")
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--child", nargs=2, metavar=("LAYOUT", "RENDERER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        layout, renderer = args.child
        print(json.dumps(child(layout, renderer == "full", args.frames, args.paced_seconds)))
        return 0

    results = []
    for layout in args.layouts.split(","):
        for renderer in ("full", "dirty"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", layout, renderer, "--frames", str(args.frames),
                 "--paced-seconds", str(args.paced_seconds)],
                check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))

    missed = []
    print(f"{'layout':9} {'renderer':8} {'CPU ms/frame':>12} {'p99 ms':>7} {'redrawn':>8} "
          f"{'max ms':>7} {'paced fps':>9} {'late':>6} {'RSS MB':>7}")
    for r in results:
        print(f"{r['layout']:9} {r['renderer']:8} {r['cpu_ms_mean']:12.3f} {r['cpu_ms_p99']:7.3f} "
              f"{r['redrawn_share']:8.1%} {r['cpu_ms_max']:7.2f} {r['paced_fps']:9.2f} "
              f"{r['late_share']:6.1%} "
              f"{r['rss_mb']:7.1f}")
        if r["rss_mb"] >= RSS_GOAL_MB:
            missed.append(f"{r['layout']} {r['renderer']}: RSS {r['rss_mb']:.1f} MB >= {RSS_GOAL_MB}")
        if r["renderer"] == "dirty" and (r["paced_fps"] < FPS_GOAL or r["late_share"] > LATE_SHARE_GOAL):
            missed.append(f"{r['layout']}: {r['paced_fps']:.2f} fps, {r['late_share']:.1%} late")
    by = {(r["layout"], r["renderer"]): r for r in results}
    print()
    for layout in args.layouts.split(","):
        ratio = by[layout, "dirty"]["cpu_ms_mean"] / by[layout, "full"]["cpu_ms_mean"]
        print(f"{layout}: dirty / full CPU per frame = {ratio:.2f} (goal <= {CPU_RATIO_GOAL})")
        if ratio > CPU_RATIO_GOAL:
            missed.append(f"{layout}: CPU ratio {ratio:.2f} > {CPU_RATIO_GOAL}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    for line in missed:
        print("MISSED:", line)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
