"""A recorded drive as samples, and the readings a replay of it produces.

Every format reader turns a file into a :class:`DriveLog`: its :class:`Sample`
rows in log time (seconds from the log's start), kept as compact columns
(:class:`Samples`, 26 bytes a row) and read back one Sample at a time, the bad rows
it counted and skipped, and a sentence on how it derived time. Nothing here
reads a clock: :func:`readings_from_log` maps a log to readings stamped with
log time, so the estimator gives the same answer on every run.
"""

from __future__ import annotations

import csv
import math
import re
from array import array
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping

from ..errors import ConfigError
from ..readings import RPM, SPEED, Reading

#: a value outside these is a corrupt row, not a measurement
MAX_PLAUSIBLE_KMH = 400.0
MAX_PLAUSIBLE_RPM = 20_000.0
#: readings stay live for this many of the log's refresh intervals ...
MAX_AGE_PERIODS = 3.0
#: ... but never less than this (s of wall time), so frame-loop jitter cannot blank a gauge
MIN_MAX_AGE_S = 0.2
#: refresh interval assumed for a channel seen fewer than three times (s)
DEFAULT_REFRESH_S = 1.0
#: the refresh interval is the median of at most this many gaps between fresh values
MEDIAN_GAPS = 50_000
#: below this the vehicle counts as stopped (as the estimator's moving_kmh)
MOVING_KMH = 4.0

BOTH = (RPM, SPEED)  # fresh channels are always listed in this order


@dataclass(frozen=True, slots=True)
class Sample:
    """One row of a drive: what was known at log time ``t``.

    ``speed_kmh`` and ``rpm`` are the latest values at ``t`` (None when the log
    has none, or only one too old to hold). ``fresh`` names the channels that
    were measured anew at this sample (rpm before speed); a value repeated between the logger's
    polls is not fresh and becomes no reading.
    """

    t: float  # s from the log's start
    speed_kmh: float | None  # road speed, km/h
    rpm: float | None  # engine speed, rev/min
    gear: int | None = None  # label in the log: 1.. forward, 0 neutral, -1 reverse, None unlabelled
    fresh: tuple[str, ...] = BOTH  # channels measured at t, in the order of BOTH

    @property
    def moving(self) -> bool:
        return self.speed_kmh is not None and self.speed_kmh >= MOVING_KMH


#: a log of at least IN_TURN_ROWS rows, both values changing together on at most IN_TURN_BOTH of the rows
#: where one changed and the rpm the same on at least IN_TURN_SAME of all rows, was polled in turn
#: (:meth:`Samples.polled_in_turn`): strictly in turn, both change on none and the rpm repeats on half
IN_TURN_ROWS = 100
IN_TURN_BOTH = 0.05
IN_TURN_SAME = 0.3
#: ``Samples`` keeps a missing gear label as this (int8), a missing value as NaN
NO_GEAR = -128
_BITS = {RPM: 1, SPEED: 2}
_FRESH_OF_BITS = ((), (RPM,), (SPEED,), BOTH)  # the shared tuples, by bit mask


class Samples(Sequence[Sample]):
    """A drive's samples kept as columns, not as a :class:`Sample` object per row: 26 bytes a row
    (time, speed and rpm as 8-byte floats, the gear and the fresh channels one byte each), where
    a tuple of Sample objects took about 190. A long log's memory is these columns alone.

    It reads as a sequence of Sample (each made as it is taken, so a pass over a long log holds
    one at a time) and grows with :meth:`append`. Values round-trip exactly; a missing speed
    or rpm is kept as NaN (the readers never keep a non-finite value) and a missing gear as
    NO_GEAR.
    """

    __slots__ = ("_t", "_speed", "_rpm", "_gear", "_fresh")

    def __init__(self, samples: Iterable[Sample] = ()):
        self._t, self._speed, self._rpm = array("d"), array("d"), array("d")
        self._gear, self._fresh = array("b"), array("B")
        for sample in samples:
            self.append(sample)

    def append(self, sample: Sample) -> None:
        self._t.append(sample.t)
        self._speed.append(math.nan if sample.speed_kmh is None else sample.speed_kmh)
        self._rpm.append(math.nan if sample.rpm is None else sample.rpm)
        self._gear.append(NO_GEAR if sample.gear is None else sample.gear)
        self._fresh.append(sum(_BITS[ch] for ch in sample.fresh))

    @property
    def last_t(self) -> float | None:
        """The time of the last sample (None when there is none), without making a Sample."""
        return self._t[-1] if self._t else None

    @property
    def bytes_per_row(self) -> int:
        return sum(column.itemsize for column in (self._t, self._speed, self._rpm, self._gear, self._fresh))

    def shift_time(self, t0: float) -> None:
        """Log time from ``t0``, rounded to the microsecond (in place: no second copy of a long log)."""
        t = self._t
        for i in range(len(t)):
            t[i] = round(t[i] - t0, 6)

    def hold_latest(self, max_age_s: Mapping[str, float]) -> None:
        """Give each row the latest earlier value of a channel it lacks (in place), held at most
        ``max_age_s[channel]`` (s; channels ``RPM``, ``SPEED`` and ``"gear"``): what
        :class:`Sample` says a row holds, for a log that writes each reading on a row of its own
        (a CSV with the other columns empty). The values held are not fresh: no reading is made of them."""
        t = self._t
        for column, limit, missing in ((self._rpm, max_age_s.get(RPM), None), (self._speed, max_age_s.get(SPEED), None),
                                       (self._gear, max_age_s.get("gear"), NO_GEAR)):
            if limit is None:
                continue
            last, last_t = None, 0.0
            for i, value in enumerate(column):
                if value != value or value == missing:  # NaN, or no gear label
                    if last is not None and t[i] - last_t <= limit:
                        column[i] = last
                else:
                    last, last_t = value, t[i]

    def polled_in_turn(self) -> bool:
        """Mark which value of each row is new, in place, for a log whose every row holds both values and
        whose logger polled them in turn (OBD asks one PID at a time) writing a row per reply with the
        latest of the other: True when the rows say so, else nothing changes.

        Such a log repeats the other channel's latest value on each row, stamped with the row's time:
        read as new, a repeated rpm beside a new speed pairs two instants half a poll apart (in a shift
        the rpm falls 1000 rpm in a tenth of a second), and a repeated speed anchors the pairing at the
        wrong instant. The rows say so when, of the rows where a value changed, both changed on at most
        IN_TURN_BOTH of them while the rpm (read with noise, it changes at each poll) stays the same on
        at least IN_TURN_SAME of all rows. A row's new value is then the one that changed; where neither
        did (a steady speed's turn, an rpm read the same), the channel that was not new on the row before."""
        rpm, speed, fresh = self._rpm, self._speed, self._fresh

        def changes():  # (row, rpm changed, speed changed) of each row whose row before holds both values
            # too (a missing value, NaN, is never equal to itself: such rows are left as they are); one
            # tuple at a time, no object per row kept
            for i in range(1, len(rpm)):
                if rpm[i] == rpm[i] and speed[i] == speed[i] and rpm[i - 1] == rpm[i - 1] and speed[i - 1] == speed[i - 1]:
                    yield i, rpm[i] != rpm[i - 1], speed[i] != speed[i - 1]
        rows = both = either = same_rpm = 0
        for _, r, v in changes():
            rows += 1
            both += r and v
            either += r or v
            same_rpm += not r
        if rows < IN_TURN_ROWS or not either or both > IN_TURN_BOTH * either or same_rpm < IN_TURN_SAME * rows:
            return False
        previous = _BITS[RPM] | _BITS[SPEED]
        for i, r, v in changes():
            bits = (_BITS[RPM] if r else 0) | (_BITS[SPEED] if v else 0)
            if not bits:  # neither changed: the turn of the one not new on the row before
                bits = _BITS[SPEED] if previous == _BITS[RPM] else _BITS[RPM]
            fresh[i] = previous = bits
        return True

    def has_gear(self) -> bool:
        return any(g != NO_GEAR for g in self._gear)

    def channels(self) -> tuple[str, ...]:
        """The channels measured at least once (RPM before SPEED)."""
        seen = 0
        for bits in set(self._fresh):
            seen |= bits
        return _FRESH_OF_BITS[seen]

    def _sample(self, i: int) -> Sample:
        speed, rpm, gear = self._speed[i], self._rpm[i], self._gear[i]
        return Sample(self._t[i], None if speed != speed else speed, None if rpm != rpm else rpm,
                      None if gear == NO_GEAR else gear, _FRESH_OF_BITS[self._fresh[i]])

    def __len__(self) -> int:
        return len(self._t)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Samples(self._sample(i) for i in range(*index.indices(len(self))))
        return self._sample(range(len(self))[index])  # negative indices; IndexError past the end

    def __iter__(self) -> Iterator[Sample]:
        fresh = _FRESH_OF_BITS
        for t, speed, rpm, gear, bits in zip(self._t, self._speed, self._rpm, self._gear, self._fresh):
            yield Sample(t, None if speed != speed else speed, None if rpm != rpm else rpm,
                         None if gear == NO_GEAR else gear, fresh[bits])

    def __eq__(self, other) -> bool:
        if isinstance(other, Samples):
            return all(getattr(self, c) == getattr(other, c) for c in ("_t", "_gear", "_fresh")) and all(
                _same_floats(getattr(self, c), getattr(other, c)) for c in ("_speed", "_rpm"))
        if isinstance(other, (tuple, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"<Samples: {len(self)} rows>"


def _same_floats(a: array, b: array) -> bool:
    """Equal columns where NaN (no value) equals NaN."""
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b))


@dataclass(frozen=True)
class DriveLog:
    """A whole recorded drive, ready to replay or to learn from."""

    name: str  # the file it came from
    format: str  # the registered format name, e.g. "carobd"
    samples: Samples  # any iterable of Sample is turned into columns
    errors: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # bad-row kind -> count
    time_base: str = ""  # one sentence: how log time was derived
    refresh_s: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # channel -> s
    hint: str = ""  # why no row could be used, when the reader can tell (for the error message)

    def __post_init__(self):
        if not isinstance(self.samples, Samples):
            object.__setattr__(self, "samples", Samples(self.samples))

    @property
    def duration_s(self) -> float:
        return self.samples[-1].t - self.samples[0].t if self.samples else 0.0

    @property
    def bad_rows(self) -> int:
        return sum(self.errors.values())

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels this log delivers at least once (RPM before SPEED)."""
        return self.samples.channels()

    @property
    def has_gear(self) -> bool:
        return self.samples.has_gear()

    def max_age(self, channel: str, speed: float = 1.0) -> float:
        """How long (s) a reading of ``channel`` stays live when played at ``speed`` x real time.

        Three refresh intervals of the log, so one late poll does not blank the
        gauge while a logger that stopped shows as stale. ``speed`` 0 (as fast as
        possible) is treated as real time.
        """
        period = self.refresh_s.get(channel, DEFAULT_REFRESH_S)
        return max(MAX_AGE_PERIODS * period / (speed if speed > 0 else 1.0), MIN_MAX_AGE_S)

    def with_readings(self, source: str = "replay") -> Iterator[tuple[Sample, tuple[Reading, ...]]]:
        """Each sample with the readings it produces (rpm before speed), stamped with log time.

        For one output row per input sample: fold the readings into the
        estimator, then ask it about ``sample.t``.
        """
        ages = {ch: self.max_age(ch) for ch in (RPM, SPEED)}
        for sample in self.samples:
            yield sample, sample_readings(sample, source, ages)

    def summary(self) -> str:
        """One line for the driver: what the log holds."""
        moving = sum(s.moving for s in self.samples)
        gear = "gear labels" if self.has_gear else "no gear labels"
        bad = f"{self.bad_rows} bad rows skipped ({_kinds(self.errors)})" if self.bad_rows else "no bad rows"
        return (f"{self.name}: {self.format}, {len(self.samples)} samples over {self.duration_s / 60:.1f} min "
                f"({moving} moving), {' and '.join(self.channels) or 'no rpm or speed'}, {gear}, {bad}")


def _kinds(errors: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(errors.items(), key=lambda kv: (-kv[1], kv[0])))


def sample_readings(sample: Sample, source: str, max_age: Mapping[str, float]) -> tuple[Reading, ...]:
    """The readings one sample produces: one per fresh channel that has a value."""
    out = []
    if RPM in sample.fresh and sample.rpm is not None:
        out.append(Reading(sample.t, RPM, sample.rpm, source, max_age[RPM]))
    if SPEED in sample.fresh and sample.speed_kmh is not None:
        out.append(Reading(sample.t, SPEED, sample.speed_kmh, source, max_age[SPEED]))
    return tuple(out)


def readings_from_log(log: DriveLog, source: str = "replay") -> list[Reading]:
    """The whole log as readings with log time as ``t``, in order: pure, no clock."""
    return [reading for _, readings in log.with_readings(source) for reading in readings]


def refresh_intervals(samples: Iterable[Sample], labels: bool = False) -> dict[str, float]:
    """Median interval (s) between fresh values of each channel; absent channels are left out.
    ``labels``: also between the rows with a gear label (key ``"gear"``)."""
    out = {}
    for channel in (RPM, SPEED) + (("gear",) if labels else ()):
        gaps = array("d")  # 8 bytes a gap, not a float object: a long log's peak stays low
        last = None
        for s in samples:
            if (s.gear is not None) if channel == "gear" else (channel in s.fresh):
                if last is not None and s.t > last:
                    gaps.append(s.t - last)
                last = s.t
        if len(gaps) >= 2:
            # the median of at most MEDIAN_GAPS of them, evenly spread (all of any log under that)
            step = -(-len(gaps) // MEDIAN_GAPS)
            out[channel] = statistics.median(gaps[::step] if step > 1 else gaps)
        elif last is not None:
            out[channel] = DEFAULT_REFRESH_S
    return out


def make_log(name: str, format: str, samples: Samples | Iterable[Sample], errors: Counter, time_base: str,
             hint: str = "", hold: bool = False) -> DriveLog:
    """A DriveLog with log time starting at 0 (to the microsecond) and its refresh intervals measured.

    The readers append their rows to a :class:`Samples` as they go (never a list of Sample objects:
    that held a long log at about 190 bytes a row), and it becomes the log's own, shifted in place.
    ``hold``: each row's missing values hold the latest before them (:meth:`Samples.hold_latest`) for
    MAX_AGE_PERIODS of that column's own refresh interval (at least MIN_MAX_AGE_S), the gear label's too.
    """
    if not isinstance(samples, Samples):
        samples = Samples(samples)
    if samples and samples[0].t != 0.0:
        samples.shift_time(samples[0].t)  # e.g. a UNIX time: subtract before rounding away float noise
    if hold and samples.polled_in_turn():
        time_base += "; rows polled in turn, each with the latest of the other value: the value that changed is new"
    intervals = refresh_intervals(samples, labels=hold)
    if hold:
        samples.hold_latest({key: max(MAX_AGE_PERIODS * interval, MIN_MAX_AGE_S) for key, interval in intervals.items()})
    return DriveLog(name, format, samples, MappingProxyType(dict(errors)), time_base,
                    MappingProxyType({ch: intervals[ch] for ch in (RPM, SPEED) if ch in intervals}), hint)


# -- small parsers shared by the readers --------------------------------------
def fresh_channels(channels) -> tuple[str, ...]:
    """The given channels in the canonical order (RPM, SPEED), for Sample.fresh: one shared
    tuple per combination, not one per row."""
    return _FRESH[(RPM in channels, SPEED in channels)]


_FRESH = {(True, True): BOTH, (True, False): (RPM,), (False, True): (SPEED,), (False, False): ()}


def csv_rows(lines: Iterable[str], delimiter: str = ",") -> Iterator[list[str] | None]:
    """One row per line (a quoted field never spans lines); None for a line csv cannot split."""
    for line in lines:
        try:
            yield next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])
        except csv.Error:
            yield None


class BadRow(ValueError):
    """A row that is counted and skipped; ``kind`` names the problem."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def number(text: str, kind: str = "number") -> float:
    """A finite float from a cell, or BadRow(kind)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadRow(kind) from None
    if not math.isfinite(value):
        raise BadRow(kind)
    return value


def speed_value(value: float) -> float:
    if not 0.0 <= value <= MAX_PLAUSIBLE_KMH:
        raise BadRow("range")
    return value


def rpm_value(value: float) -> float:
    if not 0.0 <= value <= MAX_PLAUSIBLE_RPM:
        raise BadRow("range")
    return value


GEAR_WORDS = {"neutral": 0, "reverse": -1, "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
              "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
GEAR_LETTERS = {"n": 0, "r": -1, "p": 0}  # park holds no gear: as neutral for ratio learning
_ORDINAL = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)$")


def gear_label(text: str) -> int | None:
    """A gear from a log cell: 1-10, first..tenth, 1st..10th, N/neutral/0, R/reverse/-1; empty or '-' is
    None; anything else BadRow("gear")."""
    word = str(text).strip().lower()
    if word in ("", "-"):
        return None
    if word in GEAR_WORDS:
        return GEAR_WORDS[word]
    if word in GEAR_LETTERS:
        return GEAR_LETTERS[word]
    ordinal = _ORDINAL.match(word)
    if ordinal:
        word = ordinal[1]
    try:
        value = float(word)
    except ValueError:
        raise BadRow("gear") from None
    if value != int(value) or not -1 <= value <= 10:
        raise BadRow("gear")
    return int(value)


def missing_column(name: str, column: str, header: list[str]) -> ConfigError:
    shown = ", ".join(repr(h) for h in header if h) or "none"
    return ConfigError(f"{name} has no column {column!r}; its columns are: {shown}")
