"""Day and night colours for the cluster (RGB tuples; no pygame here).

Day: high contrast on a dark background, because the cab is bright and the
screen is read in a glance. Night: nothing bright, no white or blue-white
large areas (they glare and ruin night vision), figures in amber, accents in
red; the cue lamps stay distinct from each other and from the progression.
"""

from __future__ import annotations

from dataclasses import dataclass

from keidash.dashstate import ABSENT, FAILED, LIVE, STALE


@dataclass(frozen=True)
class Theme:
    name: str
    background: tuple[int, int, int]
    panel: tuple[int, int, int]
    panel_edge: tuple[int, int, int]
    tach_face: tuple[int, int, int]
    text: tuple[int, int, int]  # the figures
    label: tuple[int, int, int]  # the small words (GEAR, mph, COOLANT)
    dim: tuple[int, int, int]  # "--" for a value that is not live
    tick: tuple[int, int, int]
    red_zone: tuple[int, int, int]
    needle: tuple[int, int, int]  # measured rpm
    estimated: tuple[int, int, int]  # rpm estimated from speed and gear
    hub: tuple[int, int, int]
    upshift_mark: tuple[int, int, int]
    cue_up: tuple[int, int, int]  # the whole shift bar, flashing, for "shift up"
    cue_down: tuple[int, int, int]  # the whole shift bar, steady, for "shift down"
    cue_text_up: tuple[int, int, int]
    cue_text_down: tuple[int, int, int]
    segments: tuple[tuple[int, int, int], ...]  # progression lamps, green -> amber -> red
    segment_off: tuple[int, int, int]
    low_range: tuple[int, int, int]  # the "L" marker
    status_bar: tuple[int, int, int]
    warning: tuple[int, int, int]  # the driver message strip
    warning_text: tuple[int, int, int]
    alarm: tuple[int, int, int]  # a coolant or battery alarm: its row and the status strip
    alarm_text: tuple[int, int, int]
    sources: dict  # LIVE / STALE / ABSENT / FAILED -> dot colour


def _segments(green, amber, red, n: int = 12) -> tuple[tuple[int, int, int], ...]:
    """Lamp colours left to right: half green, a quarter amber, a quarter red."""
    return tuple(green if i < n // 2 else amber if i < 3 * n // 4 else red for i in range(n))


DAY = Theme(
    name="day",
    background=(6, 8, 12),
    panel=(18, 22, 30),
    panel_edge=(48, 56, 70),
    tach_face=(14, 17, 24),
    text=(240, 242, 246),
    label=(150, 158, 172),
    dim=(80, 86, 98),
    tick=(225, 228, 235),
    red_zone=(225, 28, 28),
    needle=(255, 112, 0),
    estimated=(60, 190, 255),
    hub=(40, 44, 52),
    upshift_mark=(255, 196, 0),
    cue_up=(255, 196, 0),
    cue_down=(40, 120, 255),
    cue_text_up=(10, 10, 10),
    cue_text_down=(255, 255, 255),
    segments=_segments((40, 210, 80), (255, 150, 0), (235, 30, 30)),
    segment_off=(26, 30, 38),
    low_range=(255, 150, 0),
    status_bar=(14, 16, 22),
    warning=(255, 150, 0),
    warning_text=(10, 10, 10),
    alarm=(215, 20, 20),
    alarm_text=(255, 255, 255),
    sources={LIVE: (40, 200, 80), STALE: (255, 176, 0), ABSENT: (110, 114, 122), FAILED: (255, 64, 64)},
)

NIGHT = Theme(
    name="night",
    background=(0, 0, 0),
    panel=(10, 6, 4),
    panel_edge=(48, 24, 14),
    tach_face=(6, 3, 2),
    text=(235, 140, 50),
    label=(135, 75, 35),
    dim=(75, 40, 22),
    tick=(190, 110, 50),
    red_zone=(160, 18, 10),
    needle=(230, 40, 20),
    estimated=(40, 120, 170),
    hub=(30, 16, 10),
    upshift_mark=(200, 120, 0),
    cue_up=(210, 120, 0),
    cue_down=(25, 60, 190),
    cue_text_up=(0, 0, 0),
    cue_text_down=(200, 200, 220),
    segments=_segments((20, 100, 30), (170, 85, 0), (160, 18, 12)),
    segment_off=(16, 8, 5),
    low_range=(210, 120, 0),
    status_bar=(4, 2, 1),
    warning=(170, 80, 0),
    warning_text=(0, 0, 0),
    alarm=(150, 14, 8),
    alarm_text=(235, 140, 50),
    sources={LIVE: (30, 130, 45), STALE: (190, 120, 0), ABSENT: (80, 55, 40), FAILED: (185, 30, 20)},
)

THEMES = {"day": DAY, "night": NIGHT}
