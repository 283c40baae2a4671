"""Reading the trip log back, and ``keidash trips``.

The trip log (issue 7, written by keidash.triplog.writer) is one SQLite file in WAL
mode: a ``trips`` row per drive, every ``readings`` row the sources delivered
(time in s since the trip started) and the dash's ``frames`` (what the driver
saw, at most 10 Hz). This module only reads it, through a read-only
connection, so it can run while the dash is writing the same file.

- :func:`trips_main` lists the trips: start, duration, distance, top speed; a start that no
  confirmed clock dated (``clock_confirmed``, keidash.triplog.clock) is marked "?".
- :mod:`keidash.triplog.report` (``keidash report``) and :mod:`keidash.triplog.export`
  (``keidash export``) build on the reading and summing-up functions here.

Distance is the dash speed integrated over time (keidash.cab.trip.trip_step:
trapezoids, a gap over 2 s adds nothing), so a lost source never invents
distance. The red line and lugging limit come from the profile the trip was
driven with (keidash.profiles.engine.shift_limits), or keidash's defaults when the
trip names no shipped profile. Every user mistake (missing file, not a trip
log, unknown trip) is one sentence in a ConfigError.
"""

from __future__ import annotations

import bisect
import math
import datetime as dt
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from ..cab.trip import MAX_GAP_S, TripMeter, trip_step
from ..errors import ConfigError, KeidashError, ProfileError
from ..readings import KMH_PER_MPH, LATITUDE, LONGITUDE, SPEED
from .writer import APPLICATION_ID  # keidash's logs say so in their header (0 before schema v2)

#: the newest trip-log schema this module reads (PRAGMA user_version)
SCHEMA_VERSION = 2
LAST = "last"
SQLITE_HEADER = b"SQLite format 3\x00"
#: below this the truck counts as stopped (as the estimator's and replay's MOVING_KMH)
MOVING_KMH = 4.0
#: lugging only counts from this gear up (WLTP's rule, as the downshift cue)
LUG_FROM_GEAR = 3
#: a GPS fix further than this (s) from a frame is not attached to it
MAX_POSITION_GAP_S = 5.0
#: a latitude and a longitude further apart than this (s) are not one fix
MAX_FIX_SKEW_S = 1.0
KM_PER_MILE = KMH_PER_MPH
INSTALL_REPORT = "pip install 'keidash[report]'"
#: how long (s) to wait for another program's lock on the file before saying so
LOCK_WAIT_S = 2.0


@dataclass(frozen=True)
class Trip:
    id: int
    started_unix: float  # s, UNIX time the trip started
    ended_unix: float | None  # s, UNIX time it ended; None while running or after a power cut
    profile: str  # the profile name (or path) the dash ran with, '' when none
    sources: str  # the sources' names as stored
    bad_values: int = 0  # values the dash dropped as not numbers (schema v2; 0 before)
    clock_confirmed: bool = False  # the UNIX times are from a clock NTP or the GPS confirmed (v2; never in v1)


@dataclass(frozen=True)
class Frame:
    t: float  # s since the trip started
    speed_kmh: float | None
    rpm: float | None
    rpm_estimated: bool  # the rpm shown was estimated from speed, not measured
    gear: int | None  # None unknown, 0 neutral, -1 reverse
    cue: str | None  # UP, DOWN or None


@dataclass(frozen=True)
class Position:
    t: float  # s since the trip started
    lat_deg: float
    lon_deg: float


@dataclass(frozen=True)
class TripSummary:
    trip: Trip
    duration_s: float
    distance_km: float
    max_speed_kmh: float | None


@dataclass(frozen=True)
class Event:
    """A stretch of frames where the rpm was past a limit."""

    start_t: float  # s since the trip started
    duration_s: float
    gear: int | None  # gear at the start
    rpm: float  # the extreme rpm: highest for an over-rev, lowest for lugging
    estimated: bool  # every rpm in it was estimated from speed


# -- opening the file ------------------------------------------------------------------------
def open_trip_log(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection to a trip log, or ConfigError/KeidashError with one sentence."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"no trip log at {path}: check the path")
    if os.path.isdir(path):
        raise ConfigError(f"{path} is a folder; name the trip log file in it")
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not header.startswith(SQLITE_HEADER):
        raise ConfigError(f"{path} is not a keidash trip log (not an SQLite database)")
    application_id = int.from_bytes(header[68:72], "big")
    if application_id not in (0, APPLICATION_ID):  # said before SQLite opens it, so nothing is written
        raise ConfigError(f"{path} is another program's SQLite database (its application_id is "
                          f"{application_id:#010x}), not a keidash trip log")
    try:
        db = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, timeout=LOCK_WAIT_S)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _db_error(path, exc) from None
    if version > SCHEMA_VERSION:
        db.close()
        raise KeidashError(f"{path} was written by a newer keidash (trip-log schema {version}, this one reads "
                           f"up to {SCHEMA_VERSION}): upgrade keidash to read it")
    missing = {"trips", "readings", "frames"} - tables
    if missing:
        db.close()
        raise ConfigError(f"{path} is not a keidash trip log (it has no {sorted(missing)[0]} table)")
    return db


def _db_error(path: str, exc: sqlite3.DatabaseError) -> KeidashError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return KeidashError(f"{path} is locked by another program: try again when it has finished writing")
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in text:
        return ConfigError(f"cannot open {path}: check its permissions and its folder's")
    return ConfigError(f"{path} is damaged or not a keidash trip log ({text})")


def _query(db: sqlite3.Connection, path: str, sql: str, args: tuple = ()) -> list[tuple]:
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.DatabaseError as exc:
        raise _db_error(path, exc) from None


def stream(db: sqlite3.Connection, path: str, sql: str, args: tuple = ()) -> Iterator[tuple]:
    """The rows of a query one at a time from SQLite's cursor (a long trip is never held whole);
    its errors, when it starts or midway, are the sentences of :func:`_db_error`."""
    try:
        yield from db.execute(sql, args)
    except sqlite3.DatabaseError as exc:
        raise _db_error(path, exc) from None


def list_trips(db: sqlite3.Connection, path: str = "trip log") -> list[Trip]:
    v2 = "bad_values" in {row[1] for row in _query(db, path, "PRAGMA table_info(trips)")}
    rows = _query(db, path, "SELECT id, started_unix, ended_unix, profile, sources, "
                            f"{'bad_values, clock_confirmed' if v2 else '0, 0'} FROM trips ORDER BY id")
    return [Trip(int(i), float(s), None if e is None else float(e), p or "", src or "", int(bad or 0), bool(dated))
            for i, s, e, p, src, bad, dated in rows]


def find_trip(db: sqlite3.Connection, trip: str | int, path: str = "trip log") -> Trip:
    """The trip with id ``trip``, or the last one for ``"last"``; ConfigError when there is none."""
    trips = list_trips(db, path)
    if not trips:
        raise ConfigError(f"no trips recorded in {path} yet")
    if str(trip).strip().lower() == LAST:
        return trips[-1]
    try:
        wanted = int(str(trip).strip())
    except ValueError:
        raise ConfigError(f"trip must be a trip number or {LAST!r}, not {trip!r}") from None
    for t in trips:
        if t.id == wanted:
            return t
    raise ConfigError(f"no trip {wanted} in {path}; its trips are {_id_ranges([t.id for t in trips])} "
                      f"(see keidash trips)")


def _id_ranges(ids: list[int]) -> str:
    if len(ids) <= 6:
        return ", ".join(map(str, ids))
    return f"{ids[0]} to {ids[-1]}"


def frames(db: sqlite3.Connection, trip: int, path: str = "trip log") -> list[Frame]:
    rows = _query(db, path, "SELECT t, speed_kmh, rpm, rpm_estimated, gear, cue FROM frames "
                            "WHERE trip = ? ORDER BY t", (trip,))
    return [Frame(float(t), speed, rpm, bool(est), None if gear is None else int(gear), cue or None)
            for t, speed, rpm, est, gear, cue in rows]


def channel_readings(db: sqlite3.Connection, trip: int, channel: str, path: str = "trip log"
                     ) -> list[tuple[float, float, str]]:
    """(t, value, source) of one channel in one trip, in time order."""
    return [(float(t), float(v), s) for t, v, s in _query(
        db, path, "SELECT t, value, source FROM readings WHERE trip = ? AND channel = ? ORDER BY t",
        (trip, channel))]


def positions(db: sqlite3.Connection, trip: int, path: str = "trip log") -> list[Position]:
    """GPS fixes: each latitude paired with the longitude nearest in time (within MAX_FIX_SKEW_S)."""
    lats = channel_readings(db, trip, LATITUDE, path)
    lons = channel_readings(db, trip, LONGITUDE, path)
    lon_times = [t for t, _, _ in lons]
    out = []
    for t, lat, _ in lats:
        k = nearest_index(lon_times, t)
        if k is not None and abs(lon_times[k] - t) <= MAX_FIX_SKEW_S:
            out.append(Position(t, lat, lons[k][1]))
    return out


def nearest_index(times: list[float], t: float) -> int | None:
    """Index of the time in sorted ``times`` nearest ``t`` (the earlier one on a tie), None if empty."""
    if not times:
        return None
    k = bisect.bisect_left(times, t)
    if k == len(times) or (k > 0 and t - times[k - 1] <= times[k] - t):
        k -= 1
    return k


# -- what a trip amounts to (pure) -----------------------------------------------------------
def distance_km(speeds: list[tuple[float, float | None]]) -> float:
    """Integrated road speed (km) of (t s, speed km/h) pairs in time order."""
    meter = TripMeter()
    for t, speed in speeds:
        meter = trip_step(meter, t, speed)
    return meter.km


def covered_s(times: list[float]) -> float:
    """Seconds of the drive that time-ordered ``times`` cover: every step of at most MAX_GAP_S."""
    return sum(b - a for a, b in zip(times, times[1:]) if 0 < b - a <= MAX_GAP_S)


def summarise(trip: Trip, trip_frames: list[Frame], speed_readings: list[tuple[float, float, str]] = ()
              ) -> TripSummary:
    """Duration, distance and top speed of a trip, on the trip's own clock (its ``t`` column), up to
    its last frame or speed reading (frames more than MAX_GAP_S after the last speed reading left out).

    The distance and top speed come from the record that saw more of the drive: the frames
    (what the dash showed) or one source's speed readings (the source that covers most of it).
    The frames are the record of a drive watched at its own pace; a replay played as fast as
    it goes keeps every reading but few frames. The duration is how far the ``t`` column runs:
    the log's monotonic clock, which a replay's own time sets and a clock set by NTP or the GPS
    mid-drive cannot stretch; the UNIX times, only when nothing was logged.
    """
    by_source: dict[str, list[tuple[float, float]]] = {}
    for t, v, source in speed_readings:
        by_source.setdefault(source, []).append((t, v))
    # frames drawn more than a gap after the last speed reading (a replay that has run out, the
    # dash closing down) show a held speed, not the drive
    end = speed_readings[-1][0] + MAX_GAP_S if speed_readings else math.inf
    shown = [(f.t, f.speed_kmh) for f in trip_frames if f.t <= end]
    records = [shown] + list(by_source.values())
    speeds = max(records, key=lambda r: covered_s([t for t, _ in r]))  # the first (frames) on a tie
    known = [v for _, v in speeds if v is not None]
    last = max([t for t, _ in shown[-1:]] + [t for t, _, _ in speed_readings[-1:]], default=None)
    if last is not None:
        duration = last
    elif trip.ended_unix is not None:
        duration = trip.ended_unix - trip.started_unix
    else:
        duration = 0.0
    return TripSummary(trip, max(duration, 0.0), distance_km(speeds), max(known) if known else None)


def _spans(trip_frames: list[Frame]) -> list[float]:
    """How long (s) each frame was on screen: until the next frame, nothing after a gap or at the end."""
    out = []
    for a, b in zip(trip_frames, trip_frames[1:]):
        gap = b.t - a.t
        out.append(gap if 0 < gap <= MAX_GAP_S else 0.0)
    if trip_frames:
        out.append(0.0)
    return out


def time_in_gear(trip_frames: list[Frame]) -> dict[int | None, float]:
    """Gear (None unknown) -> seconds the dash showed it, each frame lasting until the next."""
    out: dict[int | None, float] = {}
    for frame, span in zip(trip_frames, _spans(trip_frames)):
        out[frame.gear] = out.get(frame.gear, 0.0) + span
    return out


def _events(trip_frames: list[Frame], inside, extreme) -> list[Event]:
    """Runs of consecutive frames where ``inside(frame)``; a gap in the log ends a run."""
    events: list[Event] = []
    run: list[tuple[Frame, float]] = []
    for frame, span in zip(trip_frames, _spans(trip_frames)):
        if inside(frame):
            run.append((frame, span))
            if span > 0:
                continue  # the run may go on into the next frame
        if run:
            first = run[0][0]
            events.append(Event(first.t, sum(s for _, s in run), first.gear,
                                extreme(f.rpm for f, _ in run), all(f.rpm_estimated for f, _ in run)))
            run = []
    return events


def over_revs(trip_frames: list[Frame], redline_rpm: float) -> list[Event]:
    """Stretches with the rpm above the red line."""
    return _events(trip_frames, lambda f: f.rpm is not None and f.rpm > redline_rpm, max)


#: slowing faster than this (km/h a second, over the last second) is braking: the engine is not
#: pulling, so a low rpm then is a stop coming, not lugging (27 -> 3 km/h in 6 s is 4 km/h/s)
BRAKING_KMH_PER_S = 2.5
#: a measured rpm this close to idle while moving in 3rd and up is the clutch down, not lugging
#: (in gear the engine would stall long before)
IDLING_MARGIN_RPM = 150.0


def slowing(trip_frames: list[Frame]) -> list[bool]:
    """For each frame: is the truck braking (losing more than BRAKING_KMH_PER_S from half a second
    before it to half a second after, not across a gap in the log)?"""
    n = len(trip_frames)
    stretch = [0] * n  # frames of one stretch without a gap share a number
    for i in range(1, n):
        stretch[i] = stretch[i - 1] + (trip_frames[i].t - trip_frames[i - 1].t > MAX_GAP_S)
    out = []
    start = end = 0
    for i, frame in enumerate(trip_frames):
        while trip_frames[start].t < frame.t - 0.5 - 1e-9 or stretch[start] != stretch[i]:
            start += 1
        end = max(end, i)
        while end + 1 < n and trip_frames[end + 1].t <= frame.t + 0.5 + 1e-9 and stretch[end + 1] == stretch[i]:
            end += 1
        before, after = trip_frames[start], trip_frames[end]
        span = after.t - before.t
        out.append(span >= 0.3 and before.speed_kmh is not None and after.speed_kmh is not None
                   and (before.speed_kmh - after.speed_kmh) / span > BRAKING_KMH_PER_S)
    return out


#: a measured rpm further than this from the gear's rpm at that speed: the clutch is down or slipping
COUPLED_SHARE = 0.15


def lugging(trip_frames: list[Frame], lug_rpm: float, idle_rpm: float | None = None,
            rpm_per_kmh: tuple[float, ...] = ()) -> list[Event]:
    """Stretches in 3rd gear and up, moving, with the rpm below the lugging limit and the engine pulling.

    Not lugging: braking (a stop with the gear still shown: 4th at 811 rpm at 10 km/h is the clutch
    down), a measured rpm at idle (``idle_rpm`` + IDLING_MARGIN_RPM) while moving, nor, when the
    profile's ratios are known (``rpm_per_kmh``, 1st first), a measured rpm that is not the gear's
    at that speed (the clutch down or slipping: a launch while the dash still shows the old gear).
    """
    braking = dict(zip((id(f) for f in trip_frames), slowing(trip_frames)))

    def pulling_low(f: Frame) -> bool:
        if f.rpm is None or f.gear is None or f.gear < LUG_FROM_GEAR or f.speed_kmh is None:
            return False
        if f.speed_kmh < MOVING_KMH or f.rpm >= lug_rpm or braking[id(f)]:
            return False
        if f.rpm_estimated:
            return True
        if idle_rpm is not None and f.rpm <= idle_rpm + IDLING_MARGIN_RPM:
            return False
        if f.gear <= len(rpm_per_kmh):
            in_gear = f.speed_kmh * rpm_per_kmh[f.gear - 1]
            return abs(f.rpm - in_gear) <= COUPLED_SHARE * in_gear
        return True
    return _events(trip_frames, pulling_low, min)


def trip_ratios(profile_name: str) -> tuple[float, ...]:
    """The sourced rpm per km/h of each gear of the profile a trip names; () when not known."""
    from ..profiles import list_profiles, load_profile
    if not profile_name or profile_name not in list_profiles():
        return ()
    try:
        return tuple(load_profile(profile_name).rpm_per_kmh())
    except (ProfileError, ValueError):
        return ()


def trip_limits(profile_name: str):
    """(ShiftLimits, where they came from) for the profile a trip names; keidash's defaults otherwise."""
    from ..profiles.engine import shift_limits
    from ..profiles import list_profiles, load_profile, unknown_profile
    if profile_name and profile_name in list_profiles():
        try:
            return shift_limits(load_profile(profile_name)), f"profile {profile_name}"
        except ProfileError:
            pass
    return shift_limits(unknown_profile()), "keidash's defaults (the trip names no known profile)"


# -- keidash trips ---------------------------------------------------------------------------
def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def local_time(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M")


#: after a start the clock did not confirm (``keidash trips``, the report), and what it means
UNCONFIRMED_MARK = "?"
UNCONFIRMED_NOTE = ("? the date is the Pi's clock, not confirmed by NTP or the GPS, and may be wrong: "
                    "such a trip is never deleted by age, only by the size limit")


def start_time(trip: Trip) -> str:
    """The trip's start in local time, marked when no confirmed clock dated it."""
    return local_time(trip.started_unix) + ("" if trip.clock_confirmed else UNCONFIRMED_MARK)


def trips_table(summaries: list[TripSummary]) -> str:
    """The ``keidash trips`` table, one line per trip (and a note when a start is marked)."""
    header = f"{'trip':>5}  {'start (local)':<17} {'duration':>8}  {'km':>7}  {'miles':>7}  {'top km/h':>8}  profile"
    lines = [header]
    for s in summaries:
        top = f"{s.max_speed_kmh:.0f}" if s.max_speed_kmh is not None else "-"
        running = "" if s.trip.ended_unix is not None else " (not ended)"
        bad = s.trip.bad_values
        dropped = f" ({bad} bad value{'' if bad == 1 else 's'} dropped)" if bad else ""
        lines.append(f"{s.trip.id:>5}  {start_time(s.trip):<17} {format_duration(s.duration_s):>8}  "
                     f"{s.distance_km:>7.1f}  {s.distance_km / KM_PER_MILE:>7.1f}  {top:>8}  "
                     f"{s.trip.profile or '-'}{running}{dropped}")
    if not all(s.trip.clock_confirmed for s in summaries):
        lines.append(UNCONFIRMED_NOTE)
    return "\n".join(lines)


def trips_main(db: str) -> int:
    """Print the trips in the trip log ``db``; 0 on success, ConfigError/KeidashError otherwise."""
    conn = open_trip_log(db)
    try:
        trips = list_trips(conn, db)
        if not trips:
            print(f"{db}: no trips recorded yet")
            return 0
        summaries = [summarise(t, frames(conn, t.id, db), channel_readings(conn, t.id, SPEED, db)) for t in trips]
    finally:
        conn.close()
    print(trips_table(summaries))
    return 0
