"""carOBD CSV logs (github.com/eron93br/carOBD): 27 OBD-II PIDs, one row about every 0.5 s.

Two facts about these files, measured on all five shared logs, decide how they
are read:

- **Time.** ``ENGINE_RUN_TINE ()`` (sic) is the engine run-time PID: whole
  seconds, and polled only once per ~1.8 s cycle, so it repeats 3-4 rows at a
  time and starts at 0 before the engine turns. The rows themselves come from a
  fixed-rate timer: a straight line through the counter's change points fits
  every log with a slope of 0.4923 s per row and residuals within +-0.75 s,
  which is what a 1 s counter read once per cycle gives. So each row's time is
  its index times the fitted period. If the counter goes backwards (engine
  restarted) or strays from the line by more than :data:`MAX_FIT_RESIDUAL_S`
  (the logger paused), the reader falls back to interpolating between the
  counter's change points instead.
- **Freshness.** ``ENGINE_RPM ()`` and ``VEHICLE_SPEED ()`` are polled once per
  ~1.8 s cycle and held in between, so rows repeat values. A value is fresh at
  the row where it changes (a new poll); usually both change in the same row,
  sometimes one lands a row after the other (the poll drifts against the row
  timer). When one value changes and the other does not (steady speed, say),
  the other was polled in the same cycle with the same result, so it is fresh
  too, unless it changed in the row just before or just after (that was its
  poll). When neither changes for 1.5 cycles or more (parked, engine off), the
  polls evidently returned the same values: both count as fresh once per cycle,
  at the rows nearest to where those polls fell. A sample is emitted at each
  row where a value is fresh, holding the other; repeated rows are never passed
  on as fresh measurements.
"""

from __future__ import annotations

import bisect
import statistics
from array import array
from collections import Counter
from typing import Iterable

from ..readings import RPM, SPEED
from .log import (BOTH, BadRow, DriveLog, Sample, Samples, csv_rows, fresh_channels, make_log, missing_column, number,
                  rpm_value, speed_value)

TIME_COLUMNS = ("ENGINE_RUN_TINE ()", "ENGINE_RUN_TIME ()")  # the first is how carOBD spells it
RPM_COLUMN = "ENGINE_RPM ()"
SPEED_COLUMN = "VEHICLE_SPEED ()"  # km/h

#: the run-time PID (0x1F) is two bytes of seconds
MAX_RUN_TIME_S = 65_535
#: row period assumed when the run-time counter never moves (the README's "about every 0.5 s")
NOMINAL_ROW_S = 0.5
#: poll cycle assumed when too few polls are seen to measure it (the README's "about every 2 s")
NOMINAL_CYCLE_S = 2.0
#: a counter further than this from the fitted line means the logger paused: interpolate instead
MAX_FIT_RESIDUAL_S = 3.0


def sniff(head: list[str]) -> bool:
    header = head[0] if head else ""
    return any(name in header for name in TIME_COLUMNS) and RPM_COLUMN in header and SPEED_COLUMN in header


def read(lines: Iterable[str], name: str = "log") -> DriveLog:
    rows = csv_rows(lines)
    header = [cell.strip() for cell in next(rows, None) or []]
    time_name = next((n for n in TIME_COLUMNS if n in header), TIME_COLUMNS[0])
    for column in (time_name, RPM_COLUMN, SPEED_COLUMN):
        if column not in header:
            raise missing_column(name, column, header)
    i_time, i_rpm, i_speed = header.index(time_name), header.index(RPM_COLUMN), header.index(SPEED_COLUMN)
    needed = max(i_time, i_rpm, i_speed)

    errors: Counter[str] = Counter()
    # the good rows as columns (8 bytes a value, no object per row: a long log is read in a few
    # tens of bytes a row): row index, run-time counter, rpm, speed
    index_of, counter_of, rpm_of, speed_of = array("q"), array("d"), array("d"), array("d")
    for index, row in enumerate(rows):
        if row is not None and not any(cell.strip() for cell in row):
            continue
        try:
            if row is None:
                raise BadRow("csv")
            if len(row) <= needed:
                raise BadRow("truncated")
            counter = number(row[i_time])
            if not 0 <= counter <= MAX_RUN_TIME_S:
                raise BadRow("range")
            rpm, speed = rpm_value(number(row[i_rpm])), speed_value(number(row[i_speed]))
        except BadRow as bad:
            errors[bad.kind] += 1
            continue
        index_of.append(index)
        counter_of.append(counter)
        rpm_of.append(rpm)
        speed_of.append(speed)

    row_times, time_base = row_clock(index_of, counter_of)
    times = array("d", (row_times(index) for index in index_of))
    # per row, which values changed from the row before: bit 1 rpm, bit 2 speed (all at the first)
    changed = bytearray((k == 0 or rpm_of[k] != rpm_of[k - 1]) | (k == 0 or speed_of[k] != speed_of[k - 1]) << 1
                        for k in range(len(index_of)))
    cycle = _cycle_s([t for t, moved in zip(times, changed) if moved])
    fresh = _polled(index_of, changed)
    _repeats(times, fresh, cycle)
    samples = Samples()
    for k, bits in enumerate(fresh):
        if not bits:
            continue
        if samples and times[k] <= samples.last_t:
            errors["time_backwards"] += 1
            continue
        samples.append(Sample(times[k], speed_of[k], rpm_of[k], None, _CHANNELS[bits]))
    return make_log(name, "carobd", samples, errors,
                    f"{time_base}; a sample where rpm or speed was polled anew (cycle {cycle:.2f} s)")


#: bits of a row's polls (1 rpm, 2 speed) -> Sample.fresh
_CHANNELS = {1: fresh_channels([RPM]), 2: fresh_channels([SPEED]), 3: BOTH}


def _polled(index_of, changed: bytearray) -> bytearray:
    """Per good row, the channels polled there (bits: 1 rpm, 2 speed), from the rows where a value changed."""
    out = bytearray(len(changed))
    for k, moved in enumerate(changed):
        if not moved:
            continue
        index = index_of[k]
        # the other value was polled in the same cycle, unless its poll landed in the row
        # just before or just after this one
        after = changed[k + 1] if k + 1 < len(changed) and index_of[k + 1] == index + 1 else 0
        before = out[k - 1] if k and index_of[k - 1] == index - 1 else 0
        out[k] = moved | (3 & ~after & ~before)
    return out


def _repeats(times, fresh: bytearray, cycle: float) -> None:
    """Mark in ``fresh`` the rows where polls that returned the same values fell: one per cycle in a
    long quiet stretch between two rows that were polled."""
    polls = [k for k, bits in enumerate(fresh) if bits]
    for a, b in zip(polls, polls[1:] + [len(times)]):
        end = times[b] - 0.5 * cycle if b < len(times) else times[-1]
        target = times[a] + cycle
        while target <= end:
            k = bisect.bisect_left(times, target, a + 1, b)  # the nearest row strictly between the polls
            if k > a + 1 and (k == b or target - times[k - 1] <= times[k] - target):
                k -= 1
            if not a < k < b:
                break
            fresh[k] = 3
            target += cycle


def _cycle_s(change_times: list[float]) -> float:
    """The logger's poll cycle (s) from the times rpm or speed changed.

    A value can land one row after the other (poll and row timer drift in
    phase), so gaps under 0.75 s are the same poll; gaps over 1.5 median gaps
    hide polls that returned equal values.
    """
    gaps = [b - a for a, b in zip(change_times, change_times[1:]) if b - a > 0.75]
    if len(gaps) < 3:
        return NOMINAL_CYCLE_S
    typical = statistics.median(gaps)
    return statistics.fmean(g for g in gaps if g <= 1.5 * typical)


def row_clock(indices, counters):
    """(row index -> s, one sentence) from the engine run-time counter (``counters``) of each good
    row (``indices``, rising)."""
    anchor_i, anchor_c = array("d"), array("d")  # where the counter changed
    for k in range(1, len(counters)):
        if counters[k] != counters[k - 1]:
            anchor_i.append(indices[k])
            anchor_c.append(counters[k])
    if len(anchor_i) >= 2 and all(anchor_c[k] > anchor_c[k - 1] for k in range(1, len(anchor_c))):
        fit = statistics.linear_regression(anchor_i, anchor_c)
        period = fit.slope
        worst = max(abs(c - (fit.intercept + period * i)) for i, c in zip(anchor_i, anchor_c))
        if 0.05 <= period <= 5.0 and worst <= MAX_FIT_RESIDUAL_S:
            return (lambda index: index * period,
                    f"rows every {period:.4f} s (a line through the engine run-time counter, "
                    f"residuals within {worst:.1f} s)")
    if len(anchor_i) < 2:
        return (lambda index: index * NOMINAL_ROW_S,
                f"rows every {NOMINAL_ROW_S} s (nominal: the engine run-time counter never advanced)")
    return _interpolated([(int(i), c) for i, c in zip(anchor_i, anchor_c)]), (
        "interpolated between the engine run-time counter's changes (it went backwards or the logger paused)")


def _interpolated(anchors: list[tuple[int, float]]):
    """Piecewise-linear row time through the counter's change points, restarts spliced on."""
    steps = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(anchors, anchors[1:]) if b[1] > a[1]]
    period = statistics.median(steps) if steps else NOMINAL_ROW_S
    points = [anchors[0]]
    offset = 0.0
    for (i0, c0), (i1, c1) in zip(anchors, anchors[1:]):
        if c1 <= c0:  # engine restarted: continue at the row period across the reset
            offset += c0 - c1 + (i1 - i0) * period
        points.append((i1, c1 + offset))

    def at(index: int) -> float:
        if index <= points[0][0]:
            return points[0][1] - (points[0][0] - index) * period
        if index >= points[-1][0]:
            return points[-1][1] + (index - points[-1][0]) * period
        lo, hi = 0, len(points) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if points[mid][0] <= index:
                lo = mid
            else:
                hi = mid
        (ia, ta), (ib, tb) = points[lo], points[hi]
        return ta + (tb - ta) * (index - ia) / (ib - ia)
    return at
