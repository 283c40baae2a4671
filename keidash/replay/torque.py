"""Torque Pro (Android) CSV exports, e.g. ``trackLog.csv``.

The header starts ``GPS Time, Device Time, Longitude, Latitude, ...`` and puts
each PID's unit in its name: ``Engine RPM(rpm)``, ``Speed (OBD)(km/h)`` (or
``(mph)``), ``GPS Speed (Meters/second)``. Time is ``Device Time``, the
phone's clock when the row was written (``19-Dec-2013 13:22:48.242``): ``GPS
Time`` only moves with a fix and repeats or lags without one, so it is used
only when there is no Device Time. A PID with no value yet is ``-``. When the
logged PIDs change mid-log Torque writes a header line again; the reader
re-reads the columns from it. Speed is taken from the OBD (wheel) speed when
logged, else from GPS. Torque writes each row from the latest value of each
PID, so every row is taken as a fresh measurement.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone
from typing import Iterable

from ..errors import ConfigError
from ..readings import KMH_PER_MPH, RPM, SPEED
from .log import (BadRow, DriveLog, Sample, Samples, csv_rows, fresh_channels, make_log, missing_column, number,
                  rpm_value, speed_value)

TIME_COLUMNS = ("Device Time", "GPS Time")
RPM_PREFIX = "Engine RPM"
#: speed columns by preference: (name prefix, source)
SPEED_PREFIXES = (("Speed (OBD)", "OBD"), ("GPS Speed", "GPS"), ("Speed (GPS)", "GPS"))
#: km/h per unit, by the unit Torque writes in brackets
UNITS = {"km/h": 1.0, "kph": 1.0, "mph": KMH_PER_MPH, "meters/second": 3.6, "m/s": 3.6}
_UNIT = re.compile(r"\(([^()]*)\)\s*$")
_DEVICE_FORMATS = ("%d-%b-%Y %H:%M:%S.%f", "%d-%b-%Y %H:%M:%S")
_GPS_TIME = re.compile(r"^\w{3} (\w{3} \d{1,2} \d{2}:\d{2}:\d{2}) \S+ (\d{4})$")  # Java Date.toString()


def sniff(head: list[str]) -> bool:
    header = [cell.strip() for cell in (head[0] if head else "").split(",")]
    return any(name in header for name in TIME_COLUMNS)


class _Layout:
    """Where the wanted values sit, read from one header line."""

    def __init__(self, name: str, header: list[str]):
        self.header = header
        self.time_name = next((n for n in TIME_COLUMNS if n in header), None)
        if self.time_name is None:
            raise missing_column(name, TIME_COLUMNS[0], header)
        self.i_time = header.index(self.time_name)
        self.i_rpm = next((i for i, h in enumerate(header) if h.startswith(RPM_PREFIX)), None)
        self.i_speed, self.speed_factor, self.speed_name = None, 1.0, None
        for prefix, _ in SPEED_PREFIXES:
            for i, h in enumerate(header):
                unit = _UNIT.search(h)
                if h.startswith(prefix) and unit and unit[1].strip().lower() in UNITS:
                    self.i_speed, self.speed_factor, self.speed_name = i, UNITS[unit[1].strip().lower()], h
                    break
            if self.i_speed is not None:
                break
        if self.i_speed is None and self.i_rpm is None:
            raise ConfigError(f"{name}: this Torque log holds neither engine RPM nor a speed; "
                              f"its columns are: {', '.join(header)}")
        self.needed = max(i for i in (self.i_time, self.i_rpm, self.i_speed) if i is not None)


def read(lines: Iterable[str], name: str = "log") -> DriveLog:
    layout: _Layout | None = None
    seen_header = False
    errors: Counter[str] = Counter()
    samples = Samples()
    speed_names = set()
    t0_time_name = None
    for row in csv_rows(lines):
        if row is None:
            errors["csv"] += 1
            continue
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if any(name_ in cells for name_ in TIME_COLUMNS):
            if not seen_header:
                layout, seen_header = _Layout(name, cells), True  # a bad first header is the user's to fix
                continue
            try:  # Torque's header again, maybe with other PIDs
                layout = _Layout(name, cells)
            except ConfigError:
                errors["header"] += 1
                layout = None
            continue
        if layout is None:
            errors["no_header"] += 1
            continue
        try:
            if len(cells) <= layout.needed:
                raise BadRow("truncated")
            if t0_time_name is None:
                t0_time_name = layout.time_name
            t = _time(cells[layout.i_time], layout.time_name)
            speed = _value(cells, layout.i_speed, lambda v: speed_value(v * layout.speed_factor))
            rpm = _value(cells, layout.i_rpm, rpm_value)
            if speed is None and rpm is None:
                continue  # Torque had no value yet for either PID: nothing was measured
            if samples and t <= samples.last_t:
                raise BadRow("time_backwards")
        except BadRow as bad:
            errors[bad.kind] += 1
            continue
        if speed is not None:
            speed_names.add(layout.speed_name)
        fresh = fresh_channels([ch for ch, value in ((RPM, rpm), (SPEED, speed)) if value is not None])
        samples.append(Sample(t, speed, rpm, None, fresh))
    if not seen_header:
        raise ConfigError(f"{name}: no Torque header line (GPS Time, Device Time, ...) found")
    speeds = " / ".join(sorted(speed_names)) or "none"
    clock = "the phone's clock" if t0_time_name == "Device Time" else "GPS time"
    return make_log(name, "torque", samples, errors,
                    f"column {t0_time_name or TIME_COLUMNS[0]!r} ({clock}); speed from {speeds}")


def _value(cells: list[str], index: int | None, check) -> float | None:
    if index is None or cells[index] in ("", "-"):
        return None
    return check(number(cells[index]))


def _time(text: str, column: str) -> float:
    if column == "Device Time":
        for fmt in _DEVICE_FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
            except ValueError:
                pass
        raise BadRow("time")
    match = _GPS_TIME.match(text)  # "Thu Dec 19 13:15:44 EST 2013": the zone is constant within a log
    if not match:
        raise BadRow("time")
    try:
        when = datetime.strptime(f"{match[1]} {match[2]}", "%b %d %H:%M:%S %Y")
    except ValueError:
        raise BadRow("time") from None
    return when.replace(tzinfo=timezone.utc).timestamp()
