"""DashState: the snapshot the cluster and the shift lights render.

Outputs never ask a source or the estimator anything; they get one of these
per frame. Every value that can go missing is ``None`` when it is not live,
so no output can show a stale value as if it were live.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What a source looks like on the dash.
LIVE = "live"  # delivering fresh values
STALE = "stale"  # connected or was delivering, but nothing fresh
ABSENT = "absent"  # not connected yet / never delivered
FAILED = "failed"  # the device cannot be opened or was lost (the source retries; message says why)

UP = "up"
DOWN = "down"

# Alarms: a value past the limit the owner set ([alarms] in the config)
COOLANT_HOT = "coolant hot"
BATTERY_LOW = "battery low"
BATTERY_HIGH = "battery high"


@dataclass(frozen=True)
class SourceView:
    name: str  # "obd", "gps", "pulses", ...
    state: str  # LIVE, STALE, ABSENT or FAILED
    message: str = ""  # why, in one sentence, when not LIVE
    errors: int = 0  # errors counted so far


@dataclass(frozen=True)
class DashState:
    t: float  # s, the monotonic time this snapshot is for
    profile_title: str
    rpm: float | None  # rev/min, None when neither measured nor estimable
    rpm_estimated: bool  # True when rpm comes from speed and gear, not a tach
    speed_kmh: float | None  # None when no speed source is live
    gear: int | None  # 0 = neutral / clutch in, 1..n, None = unknown
    cue: str | None  # UP, DOWN or None
    upshift_rpm: float  # where the upshift cue fires in this gear (the red line in top gear)
    redline_rpm: float  # where the tach's red zone starts
    tach_max_rpm: float  # full scale of the tach
    coolant_c: float | None = None
    battery_v: float | None = None
    sources: tuple[SourceView, ...] = field(default_factory=tuple)
    speed_source: str | None = None  # which source the speed came from
    rpm_source: str | None = None  # which source the rpm came from (None when estimated)
    low_range: bool = False  # 4WD low range engaged (the rpm matches a gear x the transfer's low ratio)
    gear_note: str = ""  # why no gear is shown, in a few words: "learning 3/5", "no ratios" ("" when shown)
    # -- set by the frame loop, not the estimator ------------------------------------------------
    trip_km: float | None = None  # distance since the trip was started (None: no speed yet)
    odometer_km: float | None = None  # the truck's total, when the owner has set it (None: unknown)
    wall_time: float | None = None  # UNIX time for the clock; None when the clock is not trusted
    night: bool = False  # night theme (dim, red-shifted) by clock, sun or switch
    units: str = "mph"  # the big speed figure: "mph" (km/h beside it) or "kmh" (mph beside it)
    page: int = 0  # 0 = the drive page, 1 = trip page (trip, odometer, coolant, battery, sources)
    message: str = ""  # one sentence for the driver (e.g. "logging paused: disk full"), "" when none
    temperature: str = "C"  # the coolant in "C" or "F"
    alarms: tuple[str, ...] = ()  # COOLANT_HOT, BATTERY_LOW, BATTERY_HIGH: past the owner's limits
    peak_rpm: float | None = None  # rev/min, the highest shown since the dash started (None: none yet)
    top_speed_kmh: float | None = None  # the highest road speed since the dash started (None: none yet)
