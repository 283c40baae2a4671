"""Emulated coil-tach and speed-sensor pulses on gpiozero mock pins.

:class:`PulseGenerator` drives :class:`gpiozero.pins.mock.MockPin` inputs
the way the truck's wiring would drive the real pins: the line idles high
(pulled up) and each pulse pulls it low for a short time. The pulse source
reads the very same MockPin objects through the same factory, so its edge
callback, timing and maths run exactly as on a Pi.

Edge times. On a Pi the kernel stamps each GPIO line event when it happens, so a pulse
source reads true periods however late its thread runs. A MockPin stamps an edge when it is
driven, i.e. when this generator's thread wakes: on a busy host that is milliseconds late,
and a 67 Hz speed sensor (15 ms periods) then reads several per cent off for a frame. On a
:class:`StampedMockPin` (the rig's sim:// factory uses them) each edge carries the time it
was due, as the kernel's stamp would, and a wake later than a whole period still sends every
pulse it owes, each at its due time; a plain MockPin still works, stamped when driven (and then
the pulses a late wake owes are skipped, counted in ``missed``).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from gpiozero.pins.mock import MockPin, PinState

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


class StampedMockPin(MockPin):
    """A mock input pin whose edges carry the time they happened (:meth:`drive_at`).

    The same bookkeeping as MockPin's ``drive_high``/``drive_low`` (its record of states and the
    edge callback), with the given monotonic time instead of the moment of the call.
    """

    def drive_at(self, value: bool, t: float) -> None:
        assert self._function == "input"
        if self._state == value:
            return
        t = max(t, self._last_change)  # never before the previous edge
        self._state = value
        self.states.append(PinState(t - self._last_change, value))
        self._last_change = t
        if self._edges in ("both", "rising" if value else "falling") and self._when_changed is not None:
            self._call_when_changed()


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
        """Bring the pin up to ``now``: end the pulse if due, start the next if due.

        Each edge is stamped with the time it was due (on a :class:`StampedMockPin`), not ``now``.
        """
        if self.rise_at is not None and now >= self.rise_at:
            self._edge(True, self.rise_at)
            self.rise_at = None
        hz = max(0.0, self.frequency(truth))
        before, mean_hz = self.t, 0.5 * (self.hz + hz)
        # Trapezoidal integration of the frequency: smooth when rpm ramps, and
        # since the fractional phase carries over, edges stay on their ideal
        # grid however late this thread wakes (no drift).
        self.phase += mean_hz * (now - self.t)
        self.t, self.hz = now, hz
        if self.phase >= 1.0:
            whole = math.floor(self.phase)
            self.phase -= whole
            # when the phase crossed its last whole pulse: the edge's true time
            last = max(before, now - self.phase / mean_hz) if mean_hz > 0 else now
            if getattr(self.pin, "drive_at", None) is not None and mean_hz > 0:
                # Woken more than a period late: every pulse owed, each stamped when it was due,
                # as a kernel stamps each line event however late its reader runs.
                dues = [max(before, last - k / mean_hz) for k in range(whole - 1, -1, -1)]
            else:
                self.missed += whole - 1  # stamped when driven, a burst would look like glitches
                dues = [last]
            low = PULSE_LOW_S if hz <= 0 else min(PULSE_LOW_S, 0.5 / hz)
            for due in dues:
                if self.rise_at is not None:  # still low: end that pulse first
                    self._edge(True, min(self.rise_at, due))
                self._edge(False, due)
                self.rise_at = due + low
        if len(self.pin.states) > MAX_RECORDED_STATES:
            self.pin.clear_states()  # MockPin keeps every change; a long demo must not grow

    def idle(self) -> None:
        self.rise_at = None
        self._drive(self.pin.drive_high)

    def _edge(self, high: bool, t: float) -> None:
        """Drive the pin high or low, stamped ``t`` where the pin can take a time."""
        drive_at = getattr(self.pin, "drive_at", None)
        if drive_at is not None:
            self._drive(lambda: drive_at(high, t))
        else:
            self._drive(self.pin.drive_high if high else self.pin.drive_low)

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
        """Pulses skipped because the generator thread woke later than a whole period (plain
        MockPins only: a StampedMockPin gets each of them, stamped when it was due)."""
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
