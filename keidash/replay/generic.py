"""Any CSV with a header: the columns named in the usual ways, or mapped by ``time=COL,speed=COL[,rpm=COL][,gear=COL]``.

Without a mapping the header must name time and speed (and maybe rpm and gear)
in one of the usual ways (:func:`header_columns`): ``time``, ``t``, ``t_s``,
``timestamp``, ``seconds``; ``speed``, ``speed_kmh``, ``kmh``, ``speed_mph``,
``mph``, ``vehicle_speed``, ``GPS Speed``, ``Speed (km/h)``; ``rpm``,
``engine_rpm``, ``Engine RPM``; ``gear``, ``gear_position``. Case, spaces and
dashes do not matter. The speed's unit comes from its name (``_mph``,
``(km/h)``, ``_ms`` for m/s ...), else km/h, and the log's time base says it
was assumed. Two columns that could play one part are never chosen between:
:class:`AmbiguousHeader` names them.

In a file split by semicolons or tabs a decimal comma is read as a point
(``12,5``: what a spreadsheet in a European locale writes). Time may be
seconds (any origin, e.g. 12.5 or a UNIX time; milliseconds when the column's
name says so, ``time_ms``; a UNIX time in ms, us or ns by its size), ISO 8601
date-times (``2024-06-01T07:30:00.250``, with or without a zone) or clock
times ``HH:MM:SS(.fff)``, which roll over midnight. The style is taken from
the first time cell that parses; a later cell in another style is a bad row.
Every row is a fresh measurement of each mapped value it holds (unless the rows show a
logger that polled rpm and speed in turn, writing the latest of the other on each row:
:meth:`~keidash.replay.log.Samples.polled_in_turn`), and rows of one time
are one instant's. For a logger that writes each reading on a row of its own, a row
that leaves a column empty holds that column's latest earlier value, not fresh, for
up to MAX_AGE_PERIODS of its own interval between values (as a replayed reading stays
live), and a row with only a gear label is a label change.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from ..errors import ConfigError
from ..readings import KMH_PER_MPH, RPM, SPEED
from .log import (BadRow, DriveLog, Sample, Samples, csv_rows, fresh_channels, gear_label, make_log, missing_column,
                  number, rpm_value, speed_value)

#: km/h per unit of each speed unit
SPEED_UNITS = {"kmh": 1.0, "mph": KMH_PER_MPH, "ms": 3.6}
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


# -- a header's columns by their usual names ------------------------------------------
#: folded names (lower case; spaces, dashes and dots as "_"; a unit in brackets removed)
TIME_NAMES = frozenset({"time", "t", "timestamp", "seconds", "secs", "sec", "elapsed", "elapsed_time",
                        "time_elapsed", "datetime", "date_time"})
#: a suffix or a bracketed unit that says a time column is in seconds ...
TIME_UNITS = frozenset({"s", "sec", "secs", "second", "seconds"})
#: ... or in milliseconds (``time_ms``, ``Time (ms)``): seconds per unit
TIME_MS_UNITS = frozenset({"ms", "msec", "msecs", "millis", "millisecond", "milliseconds"})
#: a time in seconds this large or more is a UNIX time written in finer units (until the year 5138):
#: (least value, seconds per unit, what) -- nanoseconds, microseconds, milliseconds
EPOCH_SCALES = ((1e17, 1e-9, "nanoseconds"), (1e14, 1e-6, "microseconds"), (1e11, 1e-3, "milliseconds"))
RPM_NAMES = frozenset({"rpm", "engine_rpm", "enginerpm", "eng_rpm", "rpm_engine", "engine_speed", "enginespeed",
                       "revs"})
#: a name that is rpm only with an rpm unit beside it: "Engine (rpm)"
RPM_BASES = frozenset({"engine", "engine_speed", "motor"})
RPM_UNITS = frozenset({"rpm", "1/min", "r/min", "rev/min", "revs/min", "min-1", "min^-1"})
SPEED_NAMES = frozenset({"speed", "vehicle_speed", "vehiclespeed", "road_speed", "gps_speed", "obd_speed", "speed_obd",
                         "speed_gps", "ground_speed", "wheel_speed", "velocity", "vss"})
#: units as written in a name (suffix after "_", or in brackets) -> SPEED_UNITS key
SPEED_UNIT_WORDS = {"kmh": "kmh", "km/h": "kmh", "km_h": "kmh", "kph": "kmh", "km/hr": "kmh", "kmph": "kmh",
                    "mph": "mph", "mi/h": "mph", "ms": "ms", "m/s": "ms", "m_s": "ms", "mps": "ms",
                    "meters/second": "ms", "metres/second": "ms", "meter/second": "ms", "metre/second": "ms"}
#: a whole column name that is a speed in that unit ("ms" alone is too likely milliseconds)
BARE_SPEED_UNITS = {"kmh": "kmh", "kph": "kmh", "km/h": "kmh", "mph": "mph"}
GEAR_NAMES = frozenset({"gear", "gear_position", "gearposition", "gear_pos", "transmission_gear_position",
                        "current_gear", "currentgear", "gear_selected", "selected_gear", "gear_engaged",
                        "engaged_gear", "actual_gear", "gear_actual", "gear_label", "gear_num", "gear_number"})
#: a bracketed "unit" that says a column has none (an engineering tool's ``Gear [-]``)
NO_UNIT = frozenset({"", "-", "1", "#", "none"})
_BRACKET_UNIT = re.compile(r"^(.*?)\s*[(\[]([^()\[\]]*)[)\]]\s*$")
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}


def _fold(text: str) -> str:
    return re.sub(r"[\s\-.()\[\]]+", "_", text.strip().lower()).strip("_")


def _split_unit(name: str) -> tuple[str, str | None]:
    """``'Speed (km/h)'`` -> ``('speed', 'km/h')``: the folded name and the unit in brackets, if any."""
    match = _BRACKET_UNIT.match(name.strip())
    if match and match[1].strip():
        return _fold(match[1]), match[2].strip().lower()
    return _fold(name), None


def column_role(name: str) -> tuple[str, str | None] | None:
    """What a header name usually holds: ``(role, speed unit or None)``, or None for anything else.

    >>> column_role("Speed (km/h)"), column_role("speed_mph"), column_role("GPS Speed"), column_role("t_s")
    (('speed', 'kmh'), ('speed', 'mph'), ('speed', None), ('time', None))
    """
    base, unit = _split_unit(name)
    if not base:
        return None
    # time: a usual name, maybe with a seconds or milliseconds suffix or unit ("t_s", "time (ms)")
    stem, _, suffix = base.rpartition("_")
    if (base in TIME_NAMES and (unit is None or unit in TIME_UNITS)) or \
            (stem in TIME_NAMES and suffix in TIME_UNITS and unit is None):
        return "time", None
    if (base in TIME_NAMES and unit in TIME_MS_UNITS) or (
            stem in TIME_NAMES and suffix in TIME_MS_UNITS and unit is None):
        return "time", "ms"
    # rpm
    if base in RPM_NAMES and (unit is None or unit in RPM_UNITS):
        return "rpm", None
    if base in RPM_BASES and unit in RPM_UNITS:
        return "rpm", None
    if base in GEAR_NAMES and (unit is None or unit in NO_UNIT):
        return "gear", None
    # speed: a usual name with its unit in brackets, as a suffix, or none; or a bare unit ("mph")
    if unit is not None:
        if unit not in SPEED_UNIT_WORDS:
            return None
        unit = SPEED_UNIT_WORDS[unit]
    if base in SPEED_NAMES:
        return "speed", unit
    for word, key in SPEED_UNIT_WORDS.items():
        if base.endswith("_" + word) and base[:-len(word) - 1] in SPEED_NAMES:
            if unit is not None and unit != key:
                return None  # "speed_mph (km/h)": the name contradicts itself
            return "speed", key
    if base in BARE_SPEED_UNITS and (unit is None or unit == BARE_SPEED_UNITS[base]):
        return "speed", BARE_SPEED_UNITS[base]
    return None


class AmbiguousHeader(ConfigError):
    """Two or more columns could each be the time (or speed, rpm, gear): one sentence naming them."""

    def __init__(self, name: str, clashes: dict[str, list[str]], example: Columns, option: str = "--columns"):
        self.name, self.clashes, self.example, self.option = name, clashes, example, option
        parts = [f"{_NUMBER_WORDS.get(len(found), len(found))} {role} columns, {_and(found)}"
                 for role, found in clashes.items()]
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]
        super().__init__(f"{name}: the header names {listed}; say which to read with "
                         f"{option} \"{example}\"")

    def for_option(self, option: str) -> "AmbiguousHeader":
        """The same sentence, telling the user the option they actually have (e.g. --ratios-columns)."""
        return AmbiguousHeader(self.name, self.clashes, self.example, option)


def _and(items: list[str]) -> str:
    shown = [repr(i) for i in items]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


@dataclass(frozen=True)
class HeaderColumns:
    """The columns found by their usual names, and the speed unit the speed column's name gives."""

    columns: Columns
    speed_unit: str | None


def header_columns(header: list[str], name: str = "log") -> HeaderColumns | None:
    """The time, speed, rpm and gear columns of a header by their usual names.

    None when the header names no time or no speed column; :class:`AmbiguousHeader`
    when two columns could play one part (never a silent guess between them).
    """
    found: dict[str, list[tuple[str, str | None]]] = {role: [] for role in COLUMN_KEYS}
    for cell in header:
        role = column_role(cell) if cell.strip() else None
        if role is not None:
            found[role[0]].append((cell.strip(), role[1]))
    if not found["time"] or not found["speed"]:
        return None
    clashes = {role: [c for c, _ in cols] for role, cols in found.items() if len(cols) > 1}
    first = {role: cols[0][0] if cols else None for role, cols in found.items()}
    columns = Columns(first["time"], first["speed"], first["rpm"], first["gear"])
    if clashes:
        raise AmbiguousHeader(name, clashes, columns)
    return HeaderColumns(columns, found["speed"][0][1])


def header_of(lines: list[str]) -> list[str]:
    """The cells of the first non-empty line, split on its delimiter."""
    first = next((line for line in lines if line.strip()), "")
    row = next(csv_rows([first], sniff_delimiter(first)), None) or []
    return [cell.strip() for cell in row]


def sniff(head: list[str]) -> bool:
    """A header that names a time and a speed column in the usual ways (even twice: read says which)."""
    if not head or "\x00" in head[0]:  # binary (a SQLite trip log's first page): no CSV header
        return False
    header = header_of(head[:1])
    roles = [column_role(cell) for cell in header if cell]
    return any(r and r[0] == "time" for r in roles) and any(r and r[0] == "speed" for r in roles)


def speed_factor(unit: str) -> float:
    try:
        return SPEED_UNITS[unit]
    except KeyError:
        raise ConfigError(f"speed unit must be one of {', '.join(SPEED_UNITS)}, not {unit!r}") from None


class TimeParser:
    """Cells -> seconds, locking onto the style of the first cell that parses.

    Numbers are seconds, or milliseconds when ``milliseconds`` (the column's name says so); a
    first number so large that as seconds it would lie past the year 5138 is a UNIX time in
    milliseconds, microseconds or nanoseconds (EPOCH_SCALES), and ``scaled`` says which."""

    def __init__(self, milliseconds: bool = False) -> None:
        self.style: str | None = None
        self.scale = 1e-3 if milliseconds else 1.0
        self.scaled = "milliseconds (from its name)" if milliseconds else ""
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
            value = number(text, "time")
            if self.style is None and not self.scaled:  # the first: its size may say its unit
                for least, scale, what in EPOCH_SCALES:
                    if abs(value) >= least:
                        self.scale, self.scaled = scale, f"UNIX time in {what} (from its size)"
                        break
            return value * self.scale
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


def decimal_point(cell: str) -> str:
    """``'12,5'`` -> ``'12.5'``: a cell with one comma and no point, from a file whose cells are split by
    semicolons or tabs (a European locale's decimal comma; a clock time's ``07:30:00,250`` too)."""
    return cell.replace(",", ".") if cell.count(",") == 1 and "." not in cell else cell


def find_column(name: str, wanted: str, header: list[str]) -> int:
    """Index of ``wanted`` in the header (exact, then ignoring case), or ConfigError naming the columns."""
    if wanted in header:
        return header.index(wanted)
    folded = [h.lower() for h in header]
    if folded.count(wanted.lower()) == 1:
        return folded.index(wanted.lower())
    raise missing_column(name, wanted, header)


def read(lines: Iterable[str], name: str = "log", columns: Columns | str | None = None,
         speed_unit: str | None = None) -> DriveLog:
    """A CSV -> DriveLog: through ``columns``, or the columns its header names in the usual ways.

    ``speed_unit`` (kmh, mph, ms) overrides the unit the speed column's name gives;
    with neither, km/h is assumed and the time base says so.
    """
    if isinstance(columns, str):
        columns = parse_columns(columns)
    if speed_unit is not None:
        speed_factor(speed_unit)  # a bad unit is the user's mistake before anything else
    lines = iter(lines)
    first = next((line for line in lines if line.strip()), "")
    delimiter = sniff_delimiter(first)
    header = [cell.strip() for cell in next(csv_rows([first], delimiter), None) or []]
    recognised = columns is None
    if columns is None:
        found = header_columns(header, name)
        if found is None:
            shown = ", ".join(repr(h) for h in header if h) or "none"
            raise ConfigError(f"{name}: a plain CSV needs columns=time=COL,speed=COL[,rpm=COL][,gear=COL] when "
                              f"its header names no time and speed column keidash knows (its columns are: {shown})")
        columns = found.columns
    named_unit = column_role(columns.speed)
    named_unit = named_unit[1] if named_unit and named_unit[0] == "speed" else None
    unit = speed_unit or named_unit or "kmh"
    factor = speed_factor(unit)
    i_time = find_column(name, columns.time, header)
    i_speed = find_column(name, columns.speed, header)
    i_rpm = find_column(name, columns.rpm, header) if columns.rpm else None
    i_gear = find_column(name, columns.gear, header) if columns.gear else None
    needed = max(i for i in (i_time, i_speed, i_rpm, i_gear) if i is not None)

    errors: Counter[str] = Counter()
    time_role = column_role(columns.time)
    parse_time = TimeParser(milliseconds=time_role == ("time", "ms"))
    samples = Samples()
    first_time_cell = None
    comma_decimals = delimiter != ","
    instant = None  # [t, speed, rpm, gear] of the rows read at the latest time, appended when time moves on
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
            if comma_decimals:
                row = [decimal_point(cell) for cell in row]
            if first_time_cell is None:
                first_time_cell = row[i_time].strip()
            t = parse_time(row[i_time])
            speed = _cell(row[i_speed], lambda text: speed_value(number(text) * factor))
            rpm = _cell(row[i_rpm], lambda text: rpm_value(number(text))) if i_rpm is not None else None
            gear = None
            if i_gear is not None:
                try:
                    gear = gear_label(row[i_gear])
                except BadRow:  # "D", "S", "M": no gear number; the row's rpm and speed still count
                    errors["gear"] += 1
            if speed is None and rpm is None and gear is None:
                raise BadRow("empty")
            if instant is not None and t < instant[0]:
                raise BadRow("time_backwards")
        except BadRow as bad:
            errors[bad.kind] += 1
            continue
        if instant is not None and t == instant[0]:  # another row of the same instant (a reading a row)
            instant = [t] + [new if new is not None else old for new, old in zip((speed, rpm, gear), instant[1:])]
            continue
        _append(samples, instant)
        instant = [t, speed, rpm, gear]
    _append(samples, instant)
    hint = ""
    if parse_time.style is None and first_time_cell is not None:
        hint = (f"no value in time column {columns.time!r} is a time keidash can read (the first is "
                f"{first_time_cell!r}); use seconds, ISO 8601 date-times or HH:MM:SS")
    shown_unit = {"kmh": "km/h", "mph": "mph", "ms": "m/s"}[unit]
    if speed_unit is not None:
        how = "as given"
    elif named_unit is not None:
        how = "from its name"
    else:
        how = "assumed: its name gives no unit"
    mapped = "recognised from the header" if recognised else "as mapped"
    return make_log(name, "csv", samples, errors,
                    f"column {columns.time!r} as {parse_time.scaled or parse_time.style or 'time'}; speed "
                    f"{columns.speed!r} in "
                    f"{shown_unit} ({how}); columns {mapped}: {columns}", hint, hold=True)


def _append(samples: Samples, instant: list | None) -> None:
    """One sample of the values read at one instant (``[t, speed, rpm, gear]``, None where none was)."""
    if instant is None:
        return
    t, speed, rpm, gear = instant
    samples.append(Sample(t, speed, rpm, gear, fresh_channels(
        [ch for ch, value in ((RPM, rpm), (SPEED, speed)) if value is not None])))


def _cell(text: str, convert):
    """A value from a cell; empty or '-' is no value (not a bad row)."""
    text = text.strip()
    return None if text in ("", "-") else convert(text)
