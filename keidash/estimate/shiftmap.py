"""An automatic's shift map, learned from the shifts the gear tracker has seen. Pure.

An automatic's controller commands its gears by road speed and load, with hysteresis
between the lines it shifts up and down on. The line that is the same drive after drive
is the *coast-down*: with the foot off and the truck slowing, it commands top -> ... -> 2nd
-> 1st each at its own road speed (on the shared Ford drives 35-39, 24-28, 15-20 and 5-10
km/h). The ratio shows such a downshift only once the clutches have swapped, 0.3-1.5 s
after the command; behind an unlocked converter, with the engine near idle, it may show it
not at all. So the tracker learns where the coast-downs happen and uses that as its prior
(:mod:`keidash.estimate.gears`): slowing past a learned line, the lower gear is commanded
before the ratio shows it; above it, an rpm that drifts up as the truck slows is not yet a
downshift.

Each coast-down the tracker shows (gear n+1 -> n, the truck slowing, foot off) is noted at
the speed where the engine *began* to be pulled up (the last pair at which the rpm was not
rising: the onset, not the moment the ratio had settled, which would learn every line late
by the hydraulics' delay). A line is the median of the last :data:`KEEP` coast-downs of that
gear, used once :data:`MIN_SEEN` agree within :data:`AGREE_KMH`. Upshift lines are not
learned: they move with the throttle over the whole pedal's travel (the Ford's 2nd -> 3rd
between 20 and 48 km/h), and the ratio shows an upshift at once anyway (the engine cannot
turn slower than the gear allows).

A map learned on earlier drives (:func:`keidash.estimate.drives.learn_truck`) is where a new
drive starts; the drive's own coast-downs are added to it as they come (causal: only shifts
already seen).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

#: coast-down speeds kept per gear (the latest): bounded memory, and a map that follows a
#: controller's adaptive shift schedule
KEEP = 8
#: a line is used once this many coast-downs of that gear have been seen ...
MIN_SEEN = 2
#: ... with their median within this of each other's middle half (km/h): a scatter wider
#: than this is no line (a driver braking hard and softly, a controller that is not one)
AGREE_KMH = 6.0


@dataclass(frozen=True)
class ShiftMap:
    """Speeds (km/h) at which coast-downs were seen: ``coast_down[n - 1]`` for (n+1) -> n, latest last."""

    coast_down: tuple[tuple[float, ...], ...] = ()

    def line(self, gear: int) -> float | None:
        """The learned coast-down speed (km/h) from ``gear`` + 1 to ``gear``, or None when not known."""
        if not 1 <= gear <= len(self.coast_down):
            return None
        seen = self.coast_down[gear - 1]
        if len(seen) < MIN_SEEN:
            return None
        ordered = sorted(seen)
        quarter = len(ordered) // 4
        middle = ordered[quarter:len(ordered) - quarter]
        if middle[-1] - middle[0] > AGREE_KMH:
            return None
        return statistics.median(ordered)

    def noted(self, gear: int, speed_kmh: float) -> "ShiftMap":
        """This map with a coast-down to ``gear`` (from ``gear`` + 1) seen at ``speed_kmh``."""
        if gear < 1:
            return self
        rows = list(self.coast_down) + [()] * max(0, gear - len(self.coast_down))
        rows[gear - 1] = (rows[gear - 1] + (round(speed_kmh, 2),))[-KEEP:]
        return ShiftMap(tuple(rows))

    def describe(self) -> str:
        """'coast-down 2->1 at 6.6, 3->2 at 18.1 km/h' (learned lines only), or '' when none."""
        known = [(n, self.line(n)) for n in range(1, len(self.coast_down) + 1)]
        known = [(n, v) for n, v in known if v is not None]
        if not known:
            return ""
        return "coast-down " + ", ".join(f"{n + 1}->{n} at {v:.1f}" for n, v in known) + " km/h"
