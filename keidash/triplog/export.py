"""One trip exported: ``keidash export`` as CSV (one row per frame) or GPX (the GPS track).

A GPX point's time is absolute (UTC): the trip's start plus the fix's time in the trip. A trip no
confirmed clock dated (``Trip.clock_confirmed``, keidash.triplog.clock) has a start that may be
1970 or the last shutdown, so its points get no ``<time>`` (optional in GPX 1.1) and the track's
``<desc>`` and the terminal say why. Its own GPS time does not date it either: a GPS that agreed
with the Pi's clock would have confirmed it, and one that disagreed may be a replay or the virtual
truck's. The CSV holds no date at all (``t`` is seconds since the trip started).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import xml.etree.ElementTree as ET

from ..errors import ConfigError
from ..readings import SPEED
from .reading import (LAST, MAX_POSITION_GAP_S, Frame, Position, Trip, nearest_index, channel_readings, find_trip, frames,
                      open_trip_log, positions)

#: the GPX track's <desc>, and the terminal's line, when the trip's date was not confirmed
UNTIMED = "the trip's date is the Pi's clock, not confirmed by NTP or the GPS, so its track points have no time"


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
            k = nearest_index(fix_times, f.t)
            near = fixes[k] if k is not None and abs(fix_times[k] - f.t) <= MAX_POSITION_GAP_S else None
            row += [f"{near.lat_deg:.7f}", f"{near.lon_deg:.7f}"] if near else ["", ""]
        rows.append(row)
    return rows


def gpx_document(trip: Trip, fixes: list[Position], speeds: list[tuple[float, float]]) -> ET.ElementTree:
    """A GPX 1.1 track of the fixes; speed (m/s, Garmin TrackPointExtension) from the nearest speed; each
    point's time only when a confirmed clock dated the trip."""
    ET.register_namespace("", GPX_NS)
    ET.register_namespace("gpxtpx", GPXTPX_NS)
    root = ET.Element(f"{{{GPX_NS}}}gpx", {"version": "1.1", "creator": "keidash"})
    track = ET.SubElement(root, f"{{{GPX_NS}}}trk")
    ET.SubElement(track, f"{{{GPX_NS}}}name").text = f"keidash trip {trip.id}"
    if not trip.clock_confirmed:
        ET.SubElement(track, f"{{{GPX_NS}}}desc").text = UNTIMED
    segment = ET.SubElement(track, f"{{{GPX_NS}}}trkseg")
    speed_times = [t for t, _ in speeds]
    for p in fixes:
        point = ET.SubElement(segment, f"{{{GPX_NS}}}trkpt", {"lat": f"{p.lat_deg:.7f}", "lon": f"{p.lon_deg:.7f}"})
        if trip.clock_confirmed:
            when = dt.datetime.fromtimestamp(trip.started_unix + p.t, dt.timezone.utc)
            ET.SubElement(point, f"{{{GPX_NS}}}time").text = when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        k = nearest_index(speed_times, p.t)
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
    if kind == ".gpx" and not chosen.clock_confirmed:
        print(f"keidash: {UNTIMED}")
    return 0
