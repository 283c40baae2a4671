"""Reading the trip log back: ``keidash trips``, ``keidash report`` and ``keidash export``.

The trip log (issue 7, written by keidash.triplog) is one SQLite file in WAL
mode: a ``trips`` row per drive, every ``readings`` row the sources delivered
(time in s since the trip started) and the dash's ``frames`` (what the driver
saw, at most 10 Hz). This module only reads it, through a read-only
connection, so it can run while the dash is writing the same file.

- :func:`trips_main` lists the trips: start, duration, distance, top speed.
- :func:`report_main` writes one trip's report as HTML (an inline SVG chart
  drawn here, no extra packages) or PNG (needs matplotlib, the ``report``
  extra): speed, rpm and gear over time with the shift cues, time in each
  gear, over-rev and lugging events, distance and top speed.
- :func:`export_main` writes one trip as CSV (one row per frame) or GPX (the
  GPS track).

Distance is the dash speed integrated over time (keidash.trip.trip_step:
trapezoids, a gap over 2 s adds nothing), so a lost source never invents
distance. The red line and lugging limit come from the profile the trip was
driven with (keidash.engine.shift_limits), or keidash's defaults when the
trip names no shipped profile. Every user mistake (missing file, not a trip
log, unknown trip) is one sentence in a ConfigError.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import html
import os
import sqlite3
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote

from .errors import ConfigError, KeidashError, ProfileError
from .readings import LATITUDE, LONGITUDE, SPEED
from .trip import MAX_GAP_S, TripMeter, trip_step

#: the newest trip-log schema this module reads (PRAGMA user_version)
SCHEMA_VERSION = 1
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
KM_PER_MILE = 1.609344
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
            header = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if header != SQLITE_HEADER:
        raise ConfigError(f"{path} is not a keidash trip log (not an SQLite database)")
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


def list_trips(db: sqlite3.Connection, path: str = "trip log") -> list[Trip]:
    rows = _query(db, path, "SELECT id, started_unix, ended_unix, profile, sources FROM trips ORDER BY id")
    return [Trip(int(i), float(s), None if e is None else float(e), p or "", src or "") for i, s, e, p, src in rows]


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
        k = _nearest(lon_times, t)
        if k is not None and abs(lon_times[k] - t) <= MAX_FIX_SKEW_S:
            out.append(Position(t, lat, lons[k][1]))
    return out


def _nearest(times: list[float], t: float) -> int | None:
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


def summarise(trip: Trip, trip_frames: list[Frame], speed_readings: list[tuple[float, float, str]] = ()
              ) -> TripSummary:
    """Duration, distance and top speed, from the frames (or the speed readings when no frame was kept)."""
    if trip_frames:
        speeds = [(f.t, f.speed_kmh) for f in trip_frames]
    else:
        speeds = [(t, v) for t, v, _ in speed_readings]
    known = [v for _, v in speeds if v is not None]
    if trip.ended_unix is not None:
        duration = trip.ended_unix - trip.started_unix
    else:  # still running, or cut off: as far as the log goes
        duration = max((t for t, _ in speeds), default=0.0)
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


def lugging(trip_frames: list[Frame], lug_rpm: float) -> list[Event]:
    """Stretches in 3rd gear and up, moving, with the rpm below the lugging limit."""
    return _events(trip_frames, lambda f: (f.rpm is not None and f.gear is not None and f.gear >= LUG_FROM_GEAR
                                           and f.speed_kmh is not None and f.speed_kmh >= MOVING_KMH
                                           and f.rpm < lug_rpm), min)


def trip_limits(profile_name: str):
    """(ShiftLimits, where they came from) for the profile a trip names; keidash's defaults otherwise."""
    from .engine import shift_limits
    from .profiles import list_profiles, load_profile, unknown_profile
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


def trips_table(summaries: list[TripSummary]) -> str:
    """The ``keidash trips`` table, one line per trip."""
    header = f"{'trip':>5}  {'start (local)':<16}  {'duration':>8}  {'km':>7}  {'miles':>7}  {'top km/h':>8}  profile"
    lines = [header]
    for s in summaries:
        top = f"{s.max_speed_kmh:.0f}" if s.max_speed_kmh is not None else "-"
        running = "" if s.trip.ended_unix is not None else " (not ended)"
        lines.append(f"{s.trip.id:>5}  {local_time(s.trip.started_unix):<16}  {format_duration(s.duration_s):>8}  "
                     f"{s.distance_km:>7.1f}  {s.distance_km / KM_PER_MILE:>7.1f}  {top:>8}  "
                     f"{s.trip.profile or '-'}{running}")
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


# -- keidash report --------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    summary: TripSummary
    frames: tuple[Frame, ...]
    redline_rpm: float
    lug_rpm: float
    limits_from: str  # one phrase: the profile or keidash's defaults
    gear_s: dict  # gear (None unknown) -> s
    over_revs: tuple[Event, ...]
    lugging: tuple[Event, ...]
    cues: tuple[tuple[float, str], ...]  # (t, UP/DOWN) where a cue came on


def build_report(trip: Trip, trip_frames: list[Frame], speed_readings=()) -> Report:
    """Everything a report shows, from the trip's frames (pure)."""
    limits, limits_from = trip_limits(trip.profile)
    cues = tuple((f.t, f.cue) for prev, f in zip([None] + trip_frames, trip_frames)
                 if f.cue and (prev is None or prev.cue != f.cue))
    return Report(summarise(trip, trip_frames, list(speed_readings)), tuple(trip_frames), limits.redline_rpm,
                  limits.lug_rpm, limits_from, time_in_gear(trip_frames),
                  tuple(over_revs(trip_frames, limits.redline_rpm)), tuple(lugging(trip_frames, limits.lug_rpm)),
                  cues)


def gear_name(gear: int | None) -> str:
    return {None: "unknown", 0: "N", -1: "R"}.get(gear, str(gear))


def _gear_order(gear: int | None) -> tuple:
    return (gear is None, gear if gear is not None else 0)


def report_main(db: str, trip: str = LAST, out: str | None = None) -> int:
    """Write trip ``trip`` (an id or "last") of ``db`` as ``out`` (.html or .png; default trip-N.html)."""
    conn = open_trip_log(db)
    try:
        chosen = find_trip(conn, trip, db)
        trip_frames = frames(conn, chosen.id, db)
        speeds = channel_readings(conn, chosen.id, SPEED, db)
    finally:
        conn.close()
    out = out or f"trip-{chosen.id}.html"
    kind = os.path.splitext(out)[1].lower()
    if kind not in (".html", ".htm", ".png"):
        raise ConfigError(f"report {out}: name a .html or .png file")
    if not trip_frames:
        raise ConfigError(f"trip {chosen.id} in {db} has no dash frames to report")
    report = build_report(chosen, trip_frames, speeds)
    if kind == ".png":
        write_png(report, out)
    else:
        _write_text(out, report_html(report))
    print(f"keidash: wrote the report of trip {chosen.id} to {os.path.abspath(out)}")
    return 0


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _events_rows(events: tuple[Event, ...], word: str) -> str:
    if not events:
        return f"<p>No {word} events.</p>"
    rows = "".join(f"<tr><td>{format_duration(e.start_t)}</td><td>{e.duration_s:.1f}</td><td>{gear_name(e.gear)}</td>"
                   f"<td>{e.rpm:.0f}</td><td>{'estimated' if e.estimated else 'measured'}</td></tr>"
                   for e in events)
    return (f'<table class="{word}"><tr><th>at</th><th>s</th><th>gear</th><th>rpm</th><th>rpm was</th></tr>'
            f"{rows}</table>")


def report_html(report: Report) -> str:
    """A self-contained HTML page: summary, inline SVG chart, time in gear, events."""
    s = report.summary
    top = f"{s.max_speed_kmh:.0f} km/h ({s.max_speed_kmh / KM_PER_MILE:.0f} mph)" if s.max_speed_kmh is not None else "-"
    total = sum(report.gear_s.values()) or 1.0
    gear_rows = "".join(f'<tr><td>{gear_name(g)}</td><td class="s">{secs:.1f}</td><td>{100 * secs / total:.0f} %</td></tr>'
                        for g, secs in sorted(report.gear_s.items(), key=lambda kv: _gear_order(kv[0])))
    def e(text: str) -> str:
        return html.escape(text, quote=False)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>keidash trip {s.trip.id}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:1em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head><body>
<h1>Trip {s.trip.id}</h1>
<table class="summary">
<tr><th>start (local)</th><td>{e(local_time(s.trip.started_unix))}</td></tr>
<tr><th>duration</th><td>{format_duration(s.duration_s)}</td></tr>
<tr><th>distance</th><td>{s.distance_km:.2f} km ({s.distance_km / KM_PER_MILE:.2f} miles)</td></tr>
<tr><th>top speed</th><td>{top}</td></tr>
<tr><th>profile</th><td>{e(s.trip.profile or '-')}</td></tr>
<tr><th>sources</th><td>{e(s.trip.sources or '-')}</td></tr>
<tr><th>red line</th><td>{report.redline_rpm:.0f} rpm</td></tr>
<tr><th>lugging limit</th><td>{report.lug_rpm:.0f} rpm (3rd and up, from {e(report.limits_from)})</td></tr>
</table>
<h2>Speed, rpm and gear</h2>
{chart_svg(report)}
<h2>Time in each gear</h2>
<table class="gears"><tr><th>gear</th><th>s</th><th>share</th></tr>{gear_rows}</table>
<h2>Over-rev (above {report.redline_rpm:.0f} rpm): {len(report.over_revs)}</h2>
{_events_rows(report.over_revs, 'over-rev')}
<h2>Lugging (below {report.lug_rpm:.0f} rpm in 3rd and up, moving): {len(report.lugging)}</h2>
{_events_rows(report.lugging, 'lugging')}
</body></html>
"""


def _path(points: list[tuple[float, float | None]], x, y) -> str:
    """An SVG path through the points, lifting the pen at a missing value or a gap in the log."""
    parts, pen, last_t = [], "M", None
    for t, v in points:
        if v is None or (last_t is not None and t - last_t > MAX_GAP_S):
            pen = "M"
        if v is not None:
            parts.append(f"{pen}{x(t):.1f},{y(v):.1f}")
            pen = "L"
        last_t = t
    return " ".join(parts)


def _held(points: list[tuple[float, float | None]]) -> list[tuple[float, float | None]]:
    """Points for a step line: each value held until the next point (not across a gap in the log)."""
    out = []
    for (t, v), (t_next, _) in zip(points, points[1:]):
        out.append((t, v))
        if 0 < t_next - t <= MAX_GAP_S:
            out.append((t_next, v))
    return out + points[-1:]


def chart_svg(report: Report, width: int = 960, panel: int = 150) -> str:
    """Speed, rpm and gear over time in three panels sharing the time axis; cues as triangles."""
    fs = report.frames
    t0, t1 = fs[0].t, max(fs[-1].t, fs[0].t + 1.0)
    left, right, gap = 60, 10, 25
    plot_w = width - left - right
    height = 3 * panel + 3 * gap + 20

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    speed_max = max([f.speed_kmh for f in fs if f.speed_kmh is not None] + [10.0]) * 1.1
    rpm_max = max([f.rpm for f in fs if f.rpm is not None] + [report.redline_rpm]) * 1.1
    gear_max = max([f.gear for f in fs if f.gear is not None] + [5])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">']
    panels = []
    for i, (label, top) in enumerate((("km/h", speed_max), ("rpm", rpm_max), ("gear", gear_max + 0.5))):
        y0 = gap + i * (panel + gap)
        panels.append((y0, top))
        out.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel}" fill="none" stroke="#999"/>')
        high, low = (gear_max, 0) if label == "gear" else (round(top), 0)
        y_high = y0 + 10 if label != "gear" else y0 + panel * 0.5 / (gear_max + 1) + 4
        y_low = y0 + panel if label != "gear" else y0 + panel - panel * 0.5 / (gear_max + 1) + 4
        out.append(f'<text x="{left - 5}" y="{y_high:.1f}" text-anchor="end">{high}</text>'
                   f'<text x="{left - 5}" y="{y_low:.1f}" text-anchor="end">{low}</text>'
                   f'<text x="{left - 5}" y="{y0 + panel / 2}" text-anchor="end">{label}</text>')

    def y_of(i: int, lo: float = 0.0):
        y0, top = panels[i]
        return lambda v: y0 + panel - (v - lo) / (top - lo) * panel

    y_speed, y_rpm, y_gear = y_of(0), y_of(1), y_of(2, -0.5)
    for value, colour in ((report.redline_rpm, "#c00"), (report.lug_rpm, "#c80")):
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y_rpm(value):.1f}" y2="{y_rpm(value):.1f}" '
                   f'stroke="{colour}" stroke-dasharray="4 3"/>')
    out.append(f'<path class="speed" d="{_path([(f.t, f.speed_kmh) for f in fs], x, y_speed)}" fill="none" stroke="#06c"/>')
    out.append(f'<path class="rpm" d="{_path([(f.t, f.rpm) for f in fs], x, y_rpm)}" fill="none" stroke="#333"/>')
    out.append(f'<path class="gear" d="{_path(_held([(f.t, f.gear) for f in fs]), x, y_gear)}" fill="none" '
               f'stroke="#080"/>')
    for t, cue in report.cues:
        up = cue.upper() == "UP"
        cx, cy = x(t), panels[1][0] + (6 if up else panel - 6)
        tip = "0,-6 5,4 -5,4" if up else "0,6 5,-4 -5,-4"
        out.append(f'<polygon class="cue cue-{html.escape(cue.lower())}" points="{tip}" '
                   f'transform="translate({cx:.1f},{cy:.1f})" fill="{"#c00" if up else "#06c"}">'
                   f'<title>{html.escape(cue)} at {t:.1f} s</title></polygon>')
    axis_y = height - 5
    for k in range(6):
        t = t0 + k * (t1 - t0) / 5
        anchor = "start" if k == 0 else "end" if k == 5 else "middle"
        out.append(f'<text x="{x(t):.1f}" y="{axis_y}" text-anchor="{anchor}">{format_duration(t)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_png(report: Report, out: str) -> None:
    """The report's chart and figures as a PNG; needs matplotlib (the ``report`` extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(f"PNG reports need matplotlib: {INSTALL_REPORT} (or write .html, which needs "
                          f"nothing extra)") from None
    fs = report.frames
    s = report.summary
    t = [f.t for f in fs]
    fig, (ax_speed, ax_rpm, ax_gear) = plt.subplots(3, 1, sharex=True, figsize=(11, 8))
    ax_speed.plot(t, [f.speed_kmh if f.speed_kmh is not None else float("nan") for f in fs], color="#06c")
    ax_speed.set_ylabel("km/h")
    ax_speed.set_ylim(bottom=0)  # from a standstill: a steady 40 km/h must not look like a rally
    ax_rpm.plot(t, [f.rpm if f.rpm is not None else float("nan") for f in fs], color="#333")
    ax_rpm.axhline(report.redline_rpm, color="#c00", linestyle="--", linewidth=0.8)
    ax_rpm.axhline(report.lug_rpm, color="#c80", linestyle="--", linewidth=0.8)
    for when, cue in report.cues:
        up = cue.upper() == "UP"
        ax_rpm.axvline(when, color="#c00" if up else "#06c", linewidth=0.5, alpha=0.6)
    ax_rpm.set_ylabel("rpm")
    ax_rpm.set_ylim(0, max(report.redline_rpm * 1.1, ax_rpm.get_ylim()[1]))
    ax_gear.step(t, [f.gear if f.gear is not None else float("nan") for f in fs], where="post", color="#080")
    ax_gear.set_ylabel("gear")
    top_gear = max([f.gear for f in fs if f.gear is not None] + [5])
    ax_gear.set_ylim(-0.5, top_gear + 0.5)  # whole gears, N (0) to top, whatever the trip used
    ax_gear.set_yticks(range(top_gear + 1), ["N"] + [str(g) for g in range(1, top_gear + 1)])
    ax_gear.set_xlabel("s since the trip started")
    gears = ", ".join(f"{gear_name(g)} {secs:.0f} s" for g, secs in
                      sorted(report.gear_s.items(), key=lambda kv: _gear_order(kv[0])))
    top = f"{s.max_speed_kmh:.0f} km/h" if s.max_speed_kmh is not None else "-"
    fig.suptitle(f"trip {s.trip.id}: {s.distance_km:.2f} km, top {top}, {len(report.over_revs)} over-rev, "
                 f"{len(report.lugging)} lugging\ntime in gear: {gears}", fontsize=10)
    try:
        fig.savefig(out, dpi=100)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


# -- keidash export --------------------------------------------------------------------------
CSV_COLUMNS = ("t", "speed_kmh", "rpm", "rpm_estimated", "gear", "cue")
GPX_NS = "http://www.topografix.com/GPX/1/1"
GPXTPX_NS = "http://www.garmin.com/xmlschemas/TrackPointExtension/v2"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.1f}"
    return str(value)


def export_rows(trip_frames: list[Frame], fixes: list[Position]) -> list[list[str]]:
    """CSV rows (header first): one per frame, with the GPS fix nearest in time when one is close."""
    header = list(CSV_COLUMNS) + (["lat_deg", "lon_deg"] if fixes else [])
    fix_times = [p.t for p in fixes]
    rows = [header]
    for f in trip_frames:
        row = [f"{f.t:.3f}", _cell(f.speed_kmh), _cell(f.rpm), "1" if f.rpm_estimated else "0",
               _cell(f.gear), f.cue or ""]
        if fixes:
            k = _nearest(fix_times, f.t)
            near = fixes[k] if k is not None and abs(fix_times[k] - f.t) <= MAX_POSITION_GAP_S else None
            row += [f"{near.lat_deg:.7f}", f"{near.lon_deg:.7f}"] if near else ["", ""]
        rows.append(row)
    return rows


def gpx_document(trip: Trip, fixes: list[Position], speeds: list[tuple[float, float]]) -> ET.ElementTree:
    """A GPX 1.1 track of the fixes; speed (m/s, Garmin TrackPointExtension) from the nearest speed."""
    ET.register_namespace("", GPX_NS)
    ET.register_namespace("gpxtpx", GPXTPX_NS)
    root = ET.Element(f"{{{GPX_NS}}}gpx", {"version": "1.1", "creator": "keidash"})
    track = ET.SubElement(root, f"{{{GPX_NS}}}trk")
    ET.SubElement(track, f"{{{GPX_NS}}}name").text = f"keidash trip {trip.id}"
    segment = ET.SubElement(track, f"{{{GPX_NS}}}trkseg")
    speed_times = [t for t, _ in speeds]
    for p in fixes:
        point = ET.SubElement(segment, f"{{{GPX_NS}}}trkpt", {"lat": f"{p.lat_deg:.7f}", "lon": f"{p.lon_deg:.7f}"})
        when = dt.datetime.fromtimestamp(trip.started_unix + p.t, dt.timezone.utc)
        ET.SubElement(point, f"{{{GPX_NS}}}time").text = when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        k = _nearest(speed_times, p.t)
        if k is not None and abs(speed_times[k] - p.t) <= MAX_POSITION_GAP_S:
            ext = ET.SubElement(ET.SubElement(point, f"{{{GPX_NS}}}extensions"), f"{{{GPXTPX_NS}}}TrackPointExtension")
            ET.SubElement(ext, f"{{{GPXTPX_NS}}}speed").text = f"{speeds[k][1] / 3.6:.2f}"
    return ET.ElementTree(root)


def export_main(db: str, trip: str = LAST, out: str = "") -> int:
    """Write trip ``trip`` (an id or "last") of ``db`` as ``out``: .csv (frames) or .gpx (GPS track)."""
    kind = os.path.splitext(out)[1].lower()
    if kind not in (".csv", ".gpx"):
        raise ConfigError(f"export {out or '(no file)'}: name a .csv or .gpx file")
    conn = open_trip_log(db)
    try:
        chosen = find_trip(conn, trip, db)
        trip_frames = frames(conn, chosen.id, db)
        fixes = positions(conn, chosen.id, db)
        speed_readings = channel_readings(conn, chosen.id, SPEED, db)
    finally:
        conn.close()
    try:
        if kind == ".csv":
            rows = export_rows(trip_frames, fixes)
            with open(out, "w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerows(rows)
            count = f"{len(rows) - 1} frames"
        else:
            if not fixes:
                raise ConfigError(f"no GPS position in trip {chosen.id}")
            speeds = ([(f.t, f.speed_kmh) for f in trip_frames if f.speed_kmh is not None]
                      or [(t, v) for t, v, _ in speed_readings])
            document = gpx_document(chosen, fixes, speeds)
            ET.indent(document)
            document.write(out, encoding="utf-8", xml_declaration=True)
            count = f"{len(fixes)} track points"
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"keidash: wrote trip {chosen.id} ({count}) to {os.path.abspath(out)}")
    return 0
