"""Emulated coil-tach and speed-sensor pulses on gpiozero mock pins.

:class:`PulseGenerator` drives :class:`gpiozero.pins.mock.MockPin` inputs
the way the truck's wiring would drive the real pins: the line idles high
(pulled up) and each pulse pulls it low for a short time. The pulse source
reads the very same MockPin objects through the same factory, so its edge
callback, timing and maths run exactly as on a Pi.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from .device import EmulatedDevice
from .truth import TruckTruth, TruthFn

logger = logging.getLogger(__name__)

#: low time of one pulse: an opto-isolated coil pulse or a hall-sensor tooth
#: is short; capped at half a period so every pulse has a rising edge too
PULSE_LOW_S = 0.002
#: how often the truth is re-read when no edge is due (0 rpm, a crawling wheel)
POLL_S = 0.02
#: MockPin records every state change; trim the record past this length
MAX_RECORDED_STATES = 1000


class _PulseTrain:
    """One pin's pulse phase, integrated from the truth's frequency."""

    def __init__(self, pin: Any, frequency: Callable[[TruckTruth], float]):
        self.pin = pin
        self.frequency = frequency  # truth -> pulses per second
        self.hz = 0.0  # frequency at the last update
        self.phase = 0.0  # pulses since the last falling edge, 0 <= phase < 1
        self.t = 0.0  # monotonic time the phase is for
        self.rise_at: float | None = None  # when the current pulse ends
        self.missed = 0  # pulses not sent because the thread woke too late

    def begin(self, now: float, truth: TruckTruth) -> None:
        self.t = now
        self.hz = max(0.0, self.frequency(truth))
        self._drive(self.pin.drive_high)  # idle level of a pulled-up line

    def next_event(self) -> float | None:
        """Monotonic time of this train's next edge, None if none is coming."""
        fall = self.t + (1.0 - self.phase) / self.hz if self.hz > 0 else None
        if self.rise_at is None:
            return fall
        return self.rise_at if fall is None else min(fall, self.rise_at)

    def advance(self, now: float, truth: TruckTruth) -> None:
        """Bring the pin up to ``now``: end the pulse if due, start the next if due."""
        if self.rise_at is not None and now >= self.rise_at:
            self.rise_at = None
            self._drive(self.pin.drive_high)
        hz = max(0.0, self.frequency(truth))
        # Trapezoidal integration of the frequency: smooth when rpm ramps, and
        # since the fractional phase carries over, edges stay on their ideal
        # grid however late this thread wakes (no drift).
        self.phase += 0.5 * (self.hz + hz) * (now - self.t)
        self.t, self.hz = now, hz
        if self.phase >= 1.0:
            whole = math.floor(self.phase)
            self.missed += whole - 1  # a burst of catch-up edges would look like glitches
            self.phase -= whole
            if self.rise_at is not None:  # still low: end that pulse first
                self._drive(self.pin.drive_high)
            self._drive(self.pin.drive_low)
            low = PULSE_LOW_S if hz <= 0 else min(PULSE_LOW_S, 0.5 / hz)
            self.rise_at = now + low
        if len(self.pin.states) > MAX_RECORDED_STATES:
            self.pin.clear_states()  # MockPin keeps every change; a long demo must not grow

    def idle(self) -> None:
        self.rise_at = None
        self._drive(self.pin.drive_high)

    @staticmethod
    def _drive(drive: Callable[[], None]) -> None:
        try:
            drive()
        except (TypeError, AttributeError) as exc:
            # MockPin checks for a callback and then calls it without a lock:
            # a reader releasing the pin in between makes it call None. The
            # edge itself happened; only that reader missed it.
            logger.debug("mock pin callback vanished: %s", exc)


class PulseGenerator(EmulatedDevice):
    """Tach and speed-sensor pulses from the truck's truth on mock pins.

    ``factory`` is a gpiozero ``MockFactory``; either pin may be None.
    Tach frequency = rpm / 60 * pulses per rev; speed-sensor frequency =
    km/h / 3600 * pulses per km (2548 = JIS 637 rev/km x 4 pulses/rev).
    """

    thread_name = "pulse-generator"

    def __init__(self, truth_fn: TruthFn, factory: Any, tach_pin: int | None = 17,
                 vss_pin: int | None = 27, tach_pulses_per_rev: float = 1.5,
                 vss_pulses_per_km: float = 2548.0):
        super().__init__()
        self._truth_fn = truth_fn
        self._trains: list[_PulseTrain] = []
        if tach_pin is not None:
            self._trains.append(_PulseTrain(factory.pin(tach_pin),
                                            lambda truth: truth.rpm / 60.0 * tach_pulses_per_rev))
        if vss_pin is not None:
            self._trains.append(_PulseTrain(factory.pin(vss_pin),
                                            lambda truth: truth.speed_kmh / 3600.0 * vss_pulses_per_km))

    @property
    def missed(self) -> int:
        """Pulses skipped because the generator thread woke later than a whole period."""
        return sum(train.missed for train in self._trains)


    def _run(self) -> None:
        now = time.monotonic()
        truth = self._truth_fn()
        for train in self._trains:
            train.begin(now, truth)
        while True:
            # Sleep to the next edge's absolute due time (or the next truth poll).
            due = now + POLL_S
            for train in self._trains:
                event = train.next_event()
                if event is not None:
                    due = min(due, event)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            now = time.monotonic()
            truth = self._truth_fn()
            for train in self._trains:
                train.advance(now, truth)
        for train in self._trains:
            train.idle()
