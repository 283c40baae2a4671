"""The estimator over recorded drives: what the dash would have shown, and what the drives teach.

``estimate_log(log, config, hide_rpm)`` folds each sample's readings into the
estimator in log time and asks it about that sample's time, exactly as the frame
loop does live, so the rows are deterministic: the same log and config give the
same file on every run. ``write_estimates`` writes them as CSV with the columns
``t, speed_kmh, rpm_in, rpm_est, gear_est, cue``:

- ``rpm_in``: the log's rpm at that row (empty when hidden with ``hide_rpm`` or absent);
- ``rpm_est``: the needle (measured and filtered, or estimated from speed when no rpm);
- ``gear_est``: 0 = neutral or clutch in, -1 = unknown, else the gear;
- ``cue``: ``up``, ``down`` or empty.

``learn_truck(logs, profile)`` is what ``keidash learn``, ``keidash replay
--ratios-from`` and ``keidash eval`` share: the ratios come from every steady
stretch with rpm and speed (:mod:`keidash.estimate.learn`); the habits (at what
speeds this driver uses each gear, how hard they accelerate in it, whether they
follow cues) come from the gears the estimator then finds in the same drives
(:mod:`keidash.estimate.speedonly`), so a truck with no rpm source later is
estimated the way this driver drives; an automatic's shift map (its coast-down lines,
:mod:`keidash.estimate.shiftmap`) comes from the coast-downs the estimator shows in them.
Pure: the logs are already loaded.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Sequence

from ..profiles import Profile, unknown_profile
from ..profiles.engine import shift_limits
from ..readings import RPM
from ..replay import DriveLog
from .estimator import EstimatorConfig, EstimatorState, advise, config_for, has_extra_low, step
from .gears import AUTOMATIC, MANUAL, gearbox_kind
from .shiftmap import ShiftMap
from .learn import learn_from_logs
from .speedonly import learn_habits
from .truck import TruckKnowledge

COLUMNS = ("t", "speed_kmh", "rpm_in", "rpm_est", "gear_est", "cue")
UNKNOWN_GEAR = -1


@dataclass(frozen=True, slots=True)
class EstimateRow:
    t: float  # s of log time
    speed_kmh: float | None
    rpm_in: float | None  # None when hidden or absent in the log
    rpm_est: float | None
    gear_est: int  # 0 neutral / clutch in, -1 unknown
    cue: str | None  # "up", "down" or None


def estimate_log(log: DriveLog, config: EstimatorConfig, hide_rpm: bool = False,
                 state: EstimatorState | None = None) -> Iterator[EstimateRow]:
    """One row per sample of ``log``; with ``hide_rpm`` the estimator never sees an rpm reading."""
    for sample, _, dash in _dashes(log, config, hide_rpm, state):
        gear = UNKNOWN_GEAR if dash.gear is None else dash.gear
        yield EstimateRow(sample.t, sample.speed_kmh, None if hide_rpm else sample.rpm, dash.rpm, gear, dash.cue)


def _dashes(log: DriveLog, config: EstimatorConfig, hide_rpm: bool = False, state: EstimatorState | None = None):
    """(sample, estimator state, what the dash shows) after each sample of ``log``."""
    state = state or EstimatorState()
    for sample, readings in log.with_readings():
        for reading in readings:
            if hide_rpm and reading.channel == RPM:
                continue
            state = step(state, reading, config)
        yield sample, state, advise(state, sample.t, config)


def _cell(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


def write_estimates(rows: Iterable[EstimateRow], path: str) -> int:
    """Write ``rows`` as CSV to ``path``; returns the number of rows written."""
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for row in rows:
            out.writerow([f"{row.t:.3f}", _cell(row.speed_kmh, 2), _cell(row.rpm_in, 0), _cell(row.rpm_est, 0),
                          row.gear_est, row.cue or ""])
            count += 1
    return count


# -- learning a truck from its drives ---------------------------------------------------------
def learn_truck(logs: Sequence[DriveLog], profile: Profile | None = None,
                gears: int | None = None, transmission: str | None = None,
                scoring: bool = False) -> TruckKnowledge:
    """Gear ratios and habits from ``logs`` (drives with rpm and speed); for an automatic (``transmission``,
    else the profile's) also its shift map: the coast-downs the tracker saw, drive after drive.
    ``scoring``: the ratios to score these logs by (``keidash eval``), never for a profile: when not every
    gear was found, the gears from 1st up with the gears above them never held
    (:meth:`~keidash.estimate.learn.LearnedRatios.lowest_found`), else the ratios the dash would number
    the gears by (:meth:`~keidash.estimate.learn.LearnedRatios.bridged`: a gear between two bridged, 1st
    never held bounded above 2nd), else the gears as numbered however unsure
    (:meth:`~keidash.estimate.learn.LearnedRatios.for_scoring`)."""

    profile = profile or unknown_profile()
    idle = _standing_rpm(logs)
    limits = shift_limits(profile, idle_rpm=None if profile.engine.idle_rpm else idle)
    gears = gears or profile.forward_gears
    manual = gearbox_kind(transmission or profile.transmission) == MANUAL
    learned = learn_from_logs(logs, gears=gears, idle_rpm=limits.idle_rpm, manual=manual,
                              low_range=profile.transfer_low_ratio,
                              extra_low=has_extra_low(profile, transmission))
    if not manual:  # behind a torque converter every pull-away slips: the launches bound no gear there
        learned = replace(learned, likely_above=0)
    ratios = learned.for_scoring(manual) if scoring else learned.rpm_per_kmh()
    habits = shift_map = None
    if ratios:
        # one run of the tracker the gearbox's own model (an automatic's converter), drive after drive:
        # the habits are read off it and, for an automatic, the coast-downs it shows make the shift map
        config = config_for(profile, {"idle_rpm": limits.idle_rpm}, ("replay",), None, rpm_per_kmh=ratios,
                            transmission=transmission)
        maps: list[ShiftMap] = []
        habits = learn_habits(_gear_rows(logs, config, maps), gears=len(ratios))  # a top gear never used counts
        if config.gearbox == AUTOMATIC:
            shift_map = maps[-1] if maps else None
    return TruckKnowledge(learned, ratios, habits, tuple(log.name for log in logs), idle, shift_map)


#: standing rpm below this is an engine starting or stalling, not idling
MIN_IDLE_RPM = 300.0


def _standing_rpm(logs: Sequence[DriveLog]) -> float | None:
    """Warm idle (rev/min): the lower quartile of the rpm while stopped with the engine running.

    A quartile, not the median: standing in gear (an automatic in D or R, the A/C on)
    holds the engine above its idle.
    """
    values = sorted(s.rpm for log in logs for s in log.samples
                    if s.speed_kmh == 0 and s.rpm and s.rpm > MIN_IDLE_RPM)
    return values[len(values) // 4] if len(values) >= 10 else None


#: log time is laid end to end, with this gap (s) between drives, so habits never span two drives
GAP_BETWEEN_DRIVES_S = 600.0


#: a row whose rpm per km/h is this close (ln) to a gear's is in that gear, for habits
HABIT_MATCH = 0.10


def _gear_rows(logs: Sequence[DriveLog], config, maps: list | None = None):
    """(t, speed_kmh, gear) over each drive in turn, on one rising time line.

    The gear is the one the row's rpm matches (within HABIT_MATCH) when it matches one, else the
    estimator's: the tracker's display dwell would make the habits lag the real shifts. An
    automatic's shift map is carried from drive to drive, as the dash would: each map the tracker
    leaves at the end of a drive is appended to ``maps``.
    """
    logs_k = [math.log(k) for k in config.rpm_per_kmh]
    offset = 0.0
    for log in logs:
        state = None
        for sample, state, dash in _dashes(log, config):
            if sample.speed_kmh is None or dash.gear is None or dash.gear < 0:
                continue
            gear = dash.gear
            if sample.rpm and sample.speed_kmh >= config.moving_kmh:
                x = math.log(sample.rpm / sample.speed_kmh)
                nearest = min(range(len(logs_k)), key=lambda i: abs(x - logs_k[i]))
                if abs(x - logs_k[nearest]) <= HABIT_MATCH:
                    gear = nearest + 1
            yield offset + sample.t, sample.speed_kmh, gear
        if state is not None and state.tracker is not None and state.tracker.shift_map is not None:
            if maps is not None:
                maps.append(state.tracker.shift_map)
            config = replace(config, shift_map=state.tracker.shift_map)
        offset += log.duration_s + GAP_BETWEEN_DRIVES_S
