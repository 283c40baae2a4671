"""Known dash situations, rendered on every layout: the screenshot tests and the docs pictures.

    .venv/bin/python -m keidash.display.screens [OUTDIR]      # docs/screens/ by default

writes ``<layout>-day.png`` and ``<layout>-night.png`` (mid-drive) and
``<layout>-trip.png`` for every layout. tests/test_screens.py renders the same
:data:`SITUATIONS` and compares them with the references in tests/data/screens/.

The clock shows local time, so :func:`fixed_timezone` pins it to UTC while
rendering: the pictures are then the same on every machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path

from keidash.dashstate import ABSENT, COOLANT_HOT, DOWN, FAILED, LIVE, STALE, UP, DashState, SourceView
from keidash.display.layout import LAYOUTS

WALL_TIME = 1764167520.0  # 2025-11-26 14:32 UTC

MID_DRIVE = DashState(
    t=100.0, profile_title="Daihatsu Hijet S500P/S510P", rpm=3620.0, rpm_estimated=False,
    speed_kmh=41.0, gear=2, cue=UP, upshift_rpm=3600.0, redline_rpm=6000.0, tach_max_rpm=7000.0,
    coolant_c=84.0, battery_v=14.2,
    sources=(SourceView("pulses", LIVE), SourceView("obd", LIVE), SourceView("gps", LIVE)),
    speed_source="obd", rpm_source="pulses", trip_km=23.46, odometer_km=84512.3,
    wall_time=WALL_TIME, peak_rpm=4870.0, top_speed_kmh=92.0)

SITUATIONS: dict[str, DashState] = {
    # all live, past the upshift point: the bar flashing (t puts it in the "on" half)
    "mid-drive-up": MID_DRIVE,
    # climbing towards the upshift point: the progression half lit, no cue
    "progression": dataclasses.replace(MID_DRIVE, rpm=2950.0, cue=None, gear=3, speed_kmh=38.0),
    # a GPS-only truck: rpm estimated from speed and gear, no coolant or battery
    "speed-only-est": dataclasses.replace(
        MID_DRIVE, rpm=2480.0, rpm_estimated=True, speed_kmh=88.0, gear=5, cue=None,
        coolant_c=None, battery_v=None, rpm_source=None, speed_source="gps",
        sources=(SourceView("gps", LIVE),), odometer_km=None, units="kmh"),
    "downshift": dataclasses.replace(MID_DRIVE, rpm=1350.0, speed_kmh=30.0, gear=4, cue=DOWN),
    # the ELM327 unplugged: OBD stale, pulses absent, no clock, rpm and gear unknown
    "stale-sources": dataclasses.replace(
        MID_DRIVE, rpm=None, speed_kmh=52.0, gear=None, cue=None, coolant_c=None, battery_v=None,
        sources=(SourceView("obd", STALE, "no reply for 4 s"), SourceView("gps", LIVE),
                 SourceView("pulses", ABSENT, "GPIO17 not wired")),
        wall_time=None, trip_km=None),
    "night": dataclasses.replace(MID_DRIVE, night=True, rpm=3100.0, cue=None, gear=3,
                                 speed_kmh=45.0),
    "trip-page": dataclasses.replace(
        MID_DRIVE, page=1, rpm=2600.0, cue=None, gear=3,
        sources=(SourceView("pulses", LIVE), SourceView("obd", LIVE, "2 errors: NO DATA", 2),
                 SourceView("gps", STALE, "no fix for 12 s"))),
    "low-range": dataclasses.replace(MID_DRIVE, low_range=True, gear=1, rpm=2300.0,
                                     speed_kmh=9.0, cue=None),
    # a driver message; and no ratios known yet: the gear box counts the gears learned so far
    "message": dataclasses.replace(MID_DRIVE, cue=None, rpm=2700.0, gear=None, gear_note="learning 3/5",
                                   message="logging paused: disk full"),
    # overheating, the coolant in deg F: its row red, the status strip says what to do
    "coolant-alarm": dataclasses.replace(MID_DRIVE, cue=None, rpm=2600.0, gear=3, coolant_c=108.0,
                                         temperature="F", alarms=(COOLANT_HOT,)),
    # the adapter cannot be opened (red) and the tach not wired (grey): both named, in turn
    "failed-source": dataclasses.replace(
        MID_DRIVE, t=96.0, rpm=None, cue=None, gear=None, coolant_c=None, battery_v=None,
        sources=(SourceView("obd", FAILED, "no OBD adapter at /dev/ttyUSB0: is it plugged in?"),
                 SourceView("gps", LIVE), SourceView("pulses", ABSENT, "GPIO17 not wired"))),
}

DOCS = {  # docs picture suffix -> situation
    "day": dataclasses.replace(SITUATIONS["progression"], rpm=3250.0),
    "night": SITUATIONS["night"],
    "trip": SITUATIONS["trip-page"],
}


@contextlib.contextmanager
def fixed_timezone(tz: str = "UTC"):
    """Render the clock in ``tz`` (the TZ variable is restored on exit)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def render_all(outdir: Path, situations: dict[str, DashState], layouts=tuple(LAYOUTS)) -> list[Path]:
    """Render every situation on every layout into ``outdir/<layout>-<situation>.png``."""
    from keidash.display.cluster import Cluster

    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    with fixed_timezone():
        for name in layouts:
            cluster = Cluster(layout=name, headless=True)
            try:
                for situation, state in situations.items():
                    cluster.render(state)
                    path = outdir / f"{name}-{situation}.png"
                    cluster.save(path)
                    written.append(path)
            finally:
                cluster.close()
    return written


def main(argv: list[str]) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    outdir = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "docs" / "screens"
    for path in render_all(outdir, DOCS):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
