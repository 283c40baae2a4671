"""Per-sample estimates for a recorded drive: what the dash would have shown at each row.

``estimate_log(log, config, hide_rpm)`` folds each sample's readings into the
estimator in log time and asks it about that sample's time, exactly as the frame
loop does live, so the rows are deterministic: the same log and config give the
same file on every run. ``write_estimates`` writes them as CSV with the columns
``t, speed_kmh, rpm_in, rpm_est, gear_est, cue``:

- ``rpm_in``: the log's rpm at that row (empty when hidden with ``hide_rpm`` or absent);
- ``rpm_est``: the needle (measured and filtered, or estimated from speed when no rpm);
- ``gear_est``: 0 = neutral or clutch in, -1 = unknown, else the gear;
- ``cue``: ``up``, ``down`` or empty.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from typing import Iterable, Iterator

from .estimator import EstimatorConfig, EstimatorState, advise, step
from .readings import RPM
from .replay import DriveLog

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
    state = state or EstimatorState()
    for sample, readings in log.with_readings():
        for reading in readings:
            if hide_rpm and reading.channel == RPM:
                continue
            state = step(state, reading, config)
        dash = advise(state, sample.t, config)
        gear = UNKNOWN_GEAR if dash.gear is None else dash.gear
        yield EstimateRow(sample.t, sample.speed_kmh, None if hide_rpm else sample.rpm, dash.rpm, gear, dash.cue)


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
