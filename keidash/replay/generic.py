"""Any CSV with a header, through a columns mapping: ``time=COL,speed=COL[,rpm=COL][,gear=COL]``.

Time may be seconds (any origin, e.g. 12.5 or a UNIX time), ISO 8601
date-times (``2024-06-01T07:30:00.250``, with or without a zone) or clock
times ``HH:MM:SS(.fff)``, which roll over midnight. The style is taken from
the first time cell that parses; a later cell in another style is a bad row.
Every row is a fresh measurement of each mapped value it holds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from ..errors import ConfigError
from ..readings import RPM, SPEED
from .log import (BadRow, DriveLog, Sample, csv_rows, fresh_channels, gear_label, make_log, missing_column, number,
                  rpm_value, speed_value)

#: km/h per unit of each speed unit
SPEED_UNITS = {"kmh": 1.0, "mph": 1.609344, "ms": 3.6}
COLUMN_KEYS = ("time", "speed", "rpm", "gear")
SECONDS, ISO, CLOCK = "seconds", "ISO 8601 date-time", "clock time"
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")
DAY_S = 86_400.0


@dataclass(frozen=True)
class Columns:
    """Which header names hold what; rpm and gear may be absent."""

    time: str
    speed: str
    rpm: str | None = None
    gear: str | None = None

    def __str__(self) -> str:
        return ",".join(f"{key}={getattr(self, key)}" for key in COLUMN_KEYS if getattr(self, key))


def parse_columns(text: str) -> Columns:
    """``time=COL,speed=COL[,rpm=COL][,gear=COL]`` -> Columns, or ConfigError with one sentence."""
    example = "e.g. time=Time (s),rpm=Engine RPM,speed=Speed (km/h)"
    found: dict[str, str] = {}
    for part in str(text).split(","):
        key, eq, column = part.partition("=")
        key, column = key.strip().lower(), column.strip()
        if not eq or not column:
            raise ConfigError(f"columns {text!r}: each entry must look like key=COLUMN ({example})")
        if key not in COLUMN_KEYS:
            raise ConfigError(f"columns {text!r}: unknown key {key!r}; use {', '.join(COLUMN_KEYS)}")
        if key in found:
            raise ConfigError(f"columns {text!r}: {key} is given twice")
        found[key] = column
    for key in ("time", "speed"):
        if key not in found:
            raise ConfigError(f"columns {text!r}: name the {key} column ({example})")
    return Columns(**found)


def speed_factor(unit: str) -> float:
    try:
        return SPEED_UNITS[unit]
    except KeyError:
        raise ConfigError(f"speed unit must be one of {', '.join(SPEED_UNITS)}, not {unit!r}") from None


class TimeParser:
    """Cells -> seconds, locking onto the style of the first cell that parses."""

    def __init__(self) -> None:
        self.style: str | None = None
        self._day = 0.0  # clock times: days added after midnight rollovers
        self._last_clock: float | None = None

    def __call__(self, cell: str) -> float:
        text = cell.strip()
        if self.style is None:
            for style in (SECONDS, CLOCK, ISO):
                try:
                    value = self._parse(style, text)
                except BadRow:
                    continue
                self.style = style
                return value
            raise BadRow("time")
        return self._parse(self.style, text)

    def _parse(self, style: str, text: str) -> float:
        if style == SECONDS:
            return number(text, "time")
        if style == CLOCK:
            match = _CLOCK.match(text)
            if not match:
                raise BadRow("time")
            h, m, s = int(match[1]), int(match[2]), float(match[3])
            if h > 23 or m > 59 or s >= 61:
                raise BadRow("time")
            of_day = h * 3600 + m * 60 + s
            if self._last_clock is not None and of_day < self._last_clock - DAY_S / 2:
                self._day += DAY_S  # past midnight
            self._last_clock = of_day
            return self._day + of_day
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise BadRow("time") from None
        if when.tzinfo is None:  # a naive date-time: only differences matter
            when = when.replace(tzinfo=timezone.utc)
        value = when.timestamp()
        if not math.isfinite(value):
            raise BadRow("time")
        return value


def sniff_delimiter(header: str) -> str:
    return max((",", ";", "\t"), key=header.count)


def find_column(name: str, wanted: str, header: list[str]) -> int:
    """Index of ``wanted`` in the header (exact, then ignoring case), or ConfigError naming the columns."""
    if wanted in header:
        return header.index(wanted)
    folded = [h.lower() for h in header]
    if folded.count(wanted.lower()) == 1:
        return folded.index(wanted.lower())
    raise missing_column(name, wanted, header)


def read(lines: Iterable[str], name: str = "log", columns: Columns | str | None = None,
         speed_unit: str = "kmh") -> DriveLog:
    if columns is None:
        raise ConfigError(f"{name}: a plain CSV needs columns=time=COL,speed=COL[,rpm=COL][,gear=COL]")
    if isinstance(columns, str):
        columns = parse_columns(columns)
    factor = speed_factor(speed_unit)
    lines = iter(lines)
    first = next((line for line in lines if line.strip()), "")
    delimiter = sniff_delimiter(first)
    header = [cell.strip() for cell in next(csv_rows([first], delimiter), None) or []]
    i_time = find_column(name, columns.time, header)
    i_speed = find_column(name, columns.speed, header)
    i_rpm = find_column(name, columns.rpm, header) if columns.rpm else None
    i_gear = find_column(name, columns.gear, header) if columns.gear else None
    needed = max(i for i in (i_time, i_speed, i_rpm, i_gear) if i is not None)

    errors: Counter[str] = Counter()
    parse_time = TimeParser()
    samples: list[Sample] = []
    first_time_cell = None
    for row in csv_rows(lines, delimiter):
        if row is not None and not any(cell.strip() for cell in row):
            continue
        if row is not None and [cell.strip() for cell in row] == header:
            continue  # the header again (logs appended to)
        try:
            if row is None:
                raise BadRow("csv")
            if len(row) <= needed:
                raise BadRow("truncated")
            if first_time_cell is None:
                first_time_cell = row[i_time].strip()
            t = parse_time(row[i_time])
            speed = _cell(row[i_speed], lambda text: speed_value(number(text) * factor))
            rpm = _cell(row[i_rpm], lambda text: rpm_value(number(text))) if i_rpm is not None else None
            gear = gear_label(row[i_gear]) if i_gear is not None else None
            if speed is None and rpm is None:
                raise BadRow("empty")
            if samples and t <= samples[-1].t:
                raise BadRow("time_backwards")
        except BadRow as bad:
            errors[bad.kind] += 1
            continue
        fresh = fresh_channels([ch for ch, value in ((RPM, rpm), (SPEED, speed)) if value is not None])
        samples.append(Sample(t, speed, rpm, gear, fresh))
    hint = ""
    if parse_time.style is None and first_time_cell is not None:
        hint = (f"no value in time column {columns.time!r} is a time keidash can read (the first is "
                f"{first_time_cell!r}); use seconds, ISO 8601 date-times or HH:MM:SS")
    unit = {"kmh": "km/h", "mph": "mph", "ms": "m/s"}[speed_unit]
    return make_log(name, "csv", samples, errors,
                    f"column {columns.time!r} as {parse_time.style or 'time'}; speed in {unit}", hint)


def _cell(text: str, convert):
    """A value from a cell; empty or '-' is no value (not a bad row)."""
    text = text.strip()
    return None if text in ("", "-") else convert(text)
