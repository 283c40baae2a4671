"""What keidash learns about one truck from its drives: gear ratios, then driving habits.

``learn_truck(logs, profile)`` is what ``keidash learn``, ``keidash replay
--ratios-from`` and ``keidash eval`` share: the ratios come from every steady
stretch with rpm and speed (:mod:`keidash.learn`); the habits (at what speeds
this driver uses each gear, how hard they accelerate in it, whether they follow
cues) come from the gears the estimator then finds in the same drives
(:mod:`keidash.speedonly`), so a truck with no rpm source later is estimated the
way this driver drives. Pure: the logs are already loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .profiles import Profile
from .replay import DriveLog


@dataclass(frozen=True)
class TruckKnowledge:
    ratios_learned: "object"  # keidash.learn.LearnedRatios
    ratios: tuple[float, ...]  # rpm per km/h for each gear, () when not every gear was found
    habits: "object | None"  # keidash.speedonly.Habits, None without ratios
    logs: tuple[str, ...]
    idle_rpm: float | None = None  # warm idle seen while stopped; None when the drives never stood

    @property
    def why_not(self) -> str:
        """One sentence on why no complete ratio set was learned ('' when one was)."""
        if self.ratios:
            return ""
        gears = self.ratios_learned.gears
        seen = sum(g.rpm_per_kmh is not None for g in gears)
        if not self.ratios_learned.samples_used:
            return "no steady driving with both rpm and speed in it to learn gear ratios from"
        return (f"found {seen} of {len(gears)} gears with confidence; drive longer, using every gear "
                f"at a steady speed for a few seconds")

    def describe(self) -> str:
        if not self.ratios:
            return self.why_not
        return (f"{len(self.ratios)} gears, " + " / ".join(f"{k:.1f}" for k in self.ratios)
                + " rpm per km/h")

    def report(self) -> str:
        """A table for the owner: each gear's rpm per km/h, confidence and samples."""
        lines = [f"Learned from {', '.join(self.logs)} ({self.ratios_learned.samples_used} steady samples):"]
        for number, gear in enumerate(self.ratios_learned.gears, start=1):
            k = "not seen" if gear.rpm_per_kmh is None else f"{gear.rpm_per_kmh:7.1f} rpm per km/h"
            lines.append(f"  gear {number}: {k}, confidence {gear.confidence:.2f} ({gear.samples} samples)")
        for other in self.ratios_learned.other:
            lines.append(f"  also seen, not a forward gear: {other:.1f} rpm per km/h (reverse, low range or slip)")
        if not self.ratios:
            lines.append(f"  {self.why_not}")
        return "\n".join(lines)


def learn_truck(logs: Sequence[DriveLog], profile: Profile | None = None,
                gears: int | None = None) -> TruckKnowledge:
    """Gear ratios and habits from ``logs`` (drives with rpm and speed)."""
    from .engine import shift_limits
    from .estimator import config_for
    from .learn import learn_from_logs
    from .profiles import unknown_profile
    from .speedonly import learn_habits

    profile = profile or unknown_profile()
    idle = _standing_rpm(logs)
    limits = shift_limits(profile, idle_rpm=None if profile.engine.idle_rpm else idle)
    gears = gears or profile.forward_gears
    learned = learn_from_logs(logs, gears=gears, idle_rpm=limits.idle_rpm)
    ratios = learned.rpm_per_kmh()  # every gear found; each gear's confidence is reported beside it
    habits = None
    if ratios:
        config = config_for(profile, {"idle_rpm": limits.idle_rpm}, ("replay",), None, rpm_per_kmh=ratios)
        habits = learn_habits(_gear_rows(logs, config))
    return TruckKnowledge(learned, ratios, habits, tuple(log.name for log in logs), idle)


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


def _gear_rows(logs: Sequence[DriveLog], config):
    """(t, speed_kmh, gear) over each drive in turn, on one rising time line.

    The gear is the one the row's rpm matches (within HABIT_MATCH) when it matches one, else the
    estimator's: the tracker's display dwell would make the habits lag the real shifts.
    """
    from .estimates import estimate_log
    logs_k = [math.log(k) for k in config.rpm_per_kmh]
    offset = 0.0
    for log in logs:
        for sample, row in zip(log.samples, estimate_log(log, config)):
            if row.speed_kmh is None or row.gear_est < 0:
                continue
            gear = row.gear_est
            if sample.rpm and sample.speed_kmh and sample.speed_kmh >= config.moving_kmh:
                x = math.log(sample.rpm / sample.speed_kmh)
                nearest = min(range(len(logs_k)), key=lambda i: abs(x - logs_k[i]))
                if abs(x - logs_k[nearest]) <= HABIT_MATCH:
                    gear = nearest + 1
            yield offset + row.t, row.speed_kmh, gear
        offset += log.duration_s + GAP_BETWEEN_DRIVES_S
