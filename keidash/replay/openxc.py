"""OpenXC traces: one JSON message per line, ``{"name": ..., "value": ...}``.

The OpenXC message format (github.com/openxc/openxc-message-format, README,
"Trace File Format" and "Official Signals") says a trace line may carry
``"timestamp"``, seconds since the UNIX epoch; ``vehicle_speed`` (km/h) and
``engine_speed`` (rpm) are sent at 10 Hz; ``transmission_gear_position``
(first..tenth, neutral, reverse) at 1 Hz and at once on change; ``odometer``
and ``fine_odometer_since_restart`` are km.

- **Timed traces** use the timestamps (milliseconds are recognised by size),
  whether in the message (``"timestamp": 1385133351.05``) or before it, as
  ``TIMESTAMP: {json}`` (one message a line, as the OpenXC tools wrote traces
  before the timestamp moved into the message). A stamp inside the message wins.
- **Untimed traces** (message order only, as the shared Ford traces) have no
  clock, and openxc-python's ``TraceDataSource`` simply plays them as fast as
  possible. keidash advances time by one period per ``vehicle_speed`` message:
  the period that makes the integral of vehicle_speed equal the distance the
  trace's own odometer covers (the median over stretches of at least 50 m), or,
  with no moving odometer, the spec's 10 Hz (0.1 s). On the shared traces the
  odometer gives 0.094 s for driving2 (which also carries about 10
  vehicle_speed messages per 1 Hz GPS fix: both agree with the spec) and
  0.0147 s for driving, whose signals are far denser than the spec's rates
  (about 50 vehicle_speed messages per latitude message), so its time base is
  only good to a few tens of per cent. Rpm per km/h, and so gear ratios, do not
  depend on the time base at all.

A sample is taken at each ``vehicle_speed`` message, holding the latest
``engine_speed`` (fresh only if one arrived since the previous sample, held at
most :data:`RPM_HOLD_S`) and the latest gear (held at most :data:`GEAR_HOLD_S`).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from array import array
from collections import Counter
from typing import Iterable

from ..readings import RPM, SPEED
from .log import GEAR_WORDS, BadRow, DriveLog, Sample, Samples, make_log, rpm_value, speed_value

#: vehicle_speed period when nothing better is known: the spec's 10 Hz
NOMINAL_PERIOD_S = 0.1
#: an engine_speed older than this (log s) is not held into a sample
RPM_HOLD_S = 1.0
#: a gear label older than this is not held (the spec resends it every second)
GEAR_HOLD_S = 3.0
#: odometer stretches used to calibrate an untimed trace's period
ODOMETER_STRETCH_KM = 0.05
MIN_STRETCHES = 3
#: timed messages may come this much (s) out of order; further back is a bad line
INTERLEAVE_S = 1.0
#: a timestamp above this is in milliseconds, not seconds (year 5138 in seconds)
MS_TIMESTAMP_ABOVE = 1e11

ODOMETERS = ("fine_odometer_since_restart", "odometer")
#: ``1385133351.05: {"name": ...}``: a trace line with its timestamp before the message
_PREFIXED = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*:\s*(\{.*)$", re.DOTALL)


def split_stamp(line: str) -> tuple[float | None, str]:
    """``'TIMESTAMP: {json}'`` -> (timestamp, json text); a bare message -> (None, line)."""
    match = _PREFIXED.match(line)
    if match is None:
        return None, line
    return float(match[1]), match[2]


def sniff(head: list[str]) -> bool:
    for line in head:
        if line.strip():
            try:
                message = json.loads(split_stamp(line)[1])
            except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
                return False
            return isinstance(message, dict) and (("name" in message and "value" in message)
                                                  or "metadata" in message)
    return False


#: the signals a sample is made of, by code in :class:`_Messages` (any other is OTHER: its stamp still counts)
OTHER, ENGINE_SPEED, VEHICLE_SPEED, GEAR = 0, 1, 2, 3
_SIGNALS = {"engine_speed": ENGINE_SPEED, "vehicle_speed": VEHICLE_SPEED, "transmission_gear_position": GEAR}
_SIGNALS.update({odometer: 4 + i for i, odometer in enumerate(ODOMETERS)})


class _Messages:
    """A trace's messages as columns (17 bytes a message, not a tuple of objects): the signal's code,
    its value (a number; a gear by its number; NaN when the value is not a finite number or gear
    word) and its timestamp (NaN when it has none). Samples need two passes over the messages:
    an untimed trace's period comes from all of them first."""

    def __init__(self):
        self.signal, self.value, self.stamp = array("B"), array("d"), array("d")

    def append(self, signal: str, value, stamp: float | None) -> None:
        code = _SIGNALS.get(signal, OTHER)
        if code == GEAR:
            value = GEAR_WORDS.get(value.lower(), math.nan) if isinstance(value, str) else math.nan
        else:
            try:
                value = float(value) if _is_number(value) else math.nan
            except OverflowError:  # an integer past any float
                value = math.nan
        self.signal.append(code)
        self.value.append(value)
        self.stamp.append(math.nan if stamp is None else stamp)

    def __iter__(self):
        return zip(self.signal, self.value, self.stamp)


def read(lines: Iterable[str], name: str = "log") -> DriveLog:
    errors: Counter[str] = Counter()
    messages = _Messages()
    for line in lines:
        if not line.strip():
            continue
        prefix, text = split_stamp(line)
        try:
            message = json.loads(text)
        except ValueError:
            errors["json"] += 1
            continue
        except RecursionError:  # arrays or objects nested thousands deep: no OpenXC message
            errors["nesting"] += 1
            continue
        if not isinstance(message, dict):
            errors["message"] += 1
            continue
        if "name" not in message or "value" not in message:
            if not ("metadata" in message or "id" in message):  # metadata and raw CAN are not bad
                errors["message"] += 1
            continue
        stamp = message.get("timestamp", prefix)
        if stamp is not None and not _is_number(stamp):
            errors["timestamp"] += 1
            continue
        try:
            stamp = None if stamp is None else float(stamp)
        except OverflowError:
            errors["timestamp"] += 1
            continue
        messages.append(str(message["name"]), message["value"], stamp)

    timed = next((stamp == stamp for signal, _, stamp in messages if signal == VEHICLE_SPEED), False)
    if timed:
        period, time_base = None, "the trace's timestamps"
    else:
        period, time_base = _untimed_period(messages)
    samples = Samples()
    rpm: tuple[float, float] | None = None  # (t, value) of the latest engine_speed
    rpm_new = False
    gear: tuple[float, int | None] | None = None
    speed_count = 0
    t = 0.0
    first_stamp = None
    for signal, value, stamp in messages:
        if timed:
            if stamp != stamp:
                errors["untimed"] += 1
                continue
            stamp = stamp / 1000.0 if stamp > MS_TIMESTAMP_ABOVE else stamp
            if first_stamp is None:
                first_stamp = stamp
            if stamp - first_stamp < t - INTERLEAVE_S:
                errors["time_backwards"] += 1
                continue
            t = max(t, stamp - first_stamp)  # messages interleaved out of order: keep file order
        try:
            if signal == ENGINE_SPEED:
                rpm, rpm_new = (t, rpm_value(_number(value))), True
            elif signal == GEAR:
                if value != value:
                    raise BadRow("gear")
                gear = (t, int(value))
            elif signal == VEHICLE_SPEED:
                speed = speed_value(_number(value))
                if not timed:
                    t = speed_count * period
                    speed_count += 1
                held_rpm = rpm[1] if rpm is not None and t - rpm[0] <= RPM_HOLD_S else None
                held_gear = gear[1] if gear is not None and t - gear[0] <= GEAR_HOLD_S else None
                fresh = (RPM, SPEED) if rpm_new and held_rpm is not None else (SPEED,)
                if samples and t <= samples.last_t:
                    errors["time_backwards"] += 1
                    continue
                samples.append(Sample(t, speed, held_rpm, held_gear, fresh))
                rpm_new = False
        except BadRow as bad:
            errors[bad.kind] += 1
    return make_log(name, "openxc", samples, errors, time_base)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: float) -> float:
    """A message's value as kept by _Messages: NaN (not a number) and infinities are bad."""
    if not math.isfinite(value):
        raise BadRow("number")
    return value


def _untimed_period(messages) -> tuple[float, str]:
    """Seconds per vehicle_speed message, and how that was found."""
    for odometer in ODOMETERS:
        code = _SIGNALS[odometer]
        travelled = 0.0  # km at the nominal 1 s per message, integrated over vehicle_speed
        start = None  # (travelled, odometer km) where the current stretch began
        ratios = []
        for signal, value, _ in messages:
            if signal == VEHICLE_SPEED and 0 <= value <= 400:  # NaN (not a number) is neither
                travelled += value / 3600.0
            elif signal == code and value == value:
                point = (travelled, value)
                if start is None or point[1] < start[1]:  # the first, or a reset: start a new stretch
                    start = point
                elif point[1] - start[1] >= ODOMETER_STRETCH_KM:
                    if point[0] > start[0]:
                        ratios.append((point[1] - start[1]) / (point[0] - start[0]))
                    start = point
        if len(ratios) >= MIN_STRETCHES:
            period = statistics.median(ratios)
            if 0.005 <= period <= 1.0:
                return period, (f"untimed: {period:.4f} s per vehicle_speed message, so that speed integrates "
                                f"to the trace's {odometer} over {len(ratios)} stretches")
    return NOMINAL_PERIOD_S, (f"untimed: {NOMINAL_PERIOD_S} s per vehicle_speed message "
                              "(the OpenXC spec's 10 Hz; no moving odometer in the trace)")
