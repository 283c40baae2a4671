"""Trip distance from road speed, and the distance keidash has seen, kept across power cuts.

``trip_step(meter, t, speed_kmh)`` integrates live road speed over time (trapezoids);
a gap longer than ``MAX_GAP_S`` (speed stale, source lost) adds nothing, so a lost
GPS never invents distance. Pure: time comes in with the speed.

The odometer shown is the owner's reading when keidash was fitted
(``[display] odometer_km`` in the config) plus what keidash has measured since,
kept in a small JSON file written atomically (temporary file, fsync, rename) so a
power cut leaves the old or the new total, never a torn file (the trip log,
:mod:`keidash.triplog`, keeps the drives themselves).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, replace

logger = logging.getLogger(__name__)

#: longer than this (s) between two speeds, the truck's motion in between is unknown
MAX_GAP_S = 2.0


@dataclass(frozen=True)
class TripMeter:
    km: float = 0.0  # distance since the trip started
    t: float | None = None  # s, time of the last speed
    speed_kmh: float | None = None


def trip_step(meter: TripMeter, t: float, speed_kmh: float | None) -> TripMeter:
    """Fold in the live speed at ``t`` (None: no live speed, the next one starts afresh)."""
    if speed_kmh is None or not math.isfinite(speed_kmh) or speed_kmh < 0 or not math.isfinite(t):
        return replace(meter, t=None, speed_kmh=None)
    if meter.t is None or meter.speed_kmh is None or not 0 < t - meter.t <= MAX_GAP_S:
        return replace(meter, t=t, speed_kmh=speed_kmh) if meter.t is None or t > meter.t else meter
    km = meter.km + (meter.speed_kmh + speed_kmh) / 2 * (t - meter.t) / 3600.0
    return TripMeter(km, t, speed_kmh)


class DistanceStore:
    """The distance keidash has measured over all its drives, in ``path`` (JSON, atomic writes)."""

    def __init__(self, path: str | None):
        self.path = path
        self.km = 0.0
        self.problem = ""  # one sentence when the file cannot be read or written
        if path is None:
            return
        try:
            with open(path, encoding="utf-8") as f:
                self.km = float(json.load(f)["km"])
            if not math.isfinite(self.km) or self.km < 0:
                raise ValueError(self.km)
        except FileNotFoundError:
            pass  # the first drive
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.km = 0.0
            self.problem = f"distance file {path} unreadable ({exc}): counting from 0"
            logger.warning(self.problem)

    def save(self, km: float) -> bool:
        """Write ``km`` (the new total); False (and ``problem`` says why) when it cannot be written."""
        if self.path is None:
            return False
        tmp = f"{self.path}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"km": round(km, 4)}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self.problem = ""
            return True
        except OSError as exc:
            if not self.problem:
                logger.warning("cannot save the distance to %s: %s", self.path, exc)
            self.problem = f"cannot save the distance to {self.path}: {exc.strerror or exc}"
            return False
