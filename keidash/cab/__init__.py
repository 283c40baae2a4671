"""What the frame loop adds to the estimator's DashState: trip, odometer, clock, theme, page, units.

The estimator knows the truck; the cab knows the driver's side: the trip since the
ignition came on, the odometer, the time of day, whether it is night (a switch on a
GPIO pin, else the sun at the GPS position, else the clock), and the page and units
the dash button chose. :meth:`Cab.dress` fills those fields of each frame's
DashState. Inputs (button, switch) are gpiozero devices polled once a frame; the
distance is saved every ``save_every_s`` and on close.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Iterable

from ..dashstate import DashState
from ..readings import LATITUDE, LONGITUDE, Reading
from .trip import DistanceStore, TripMeter, trip_step

logger = logging.getLogger(__name__)

#: a wall clock before this (UNIX s, 2025-01-01) has not been set (a Pi has no clock battery)
CLOCK_SET_AFTER = 1735689600.0
UNITS = ("mph", "kmh")


@dataclass(frozen=True)
class CabSettings:
    units: str = "mph"  # the big speed figure at start: mph or kmh
    odometer_km: float | None = None  # the truck's odometer when keidash was fitted (None: not shown)
    distance_file: str | None = None  # where the distance keidash measured is kept (None: not kept)
    night_from: str = "19:00"  # local clock times, used when no switch and no GPS position
    day_from: str = "06:00"
    button_pin: int | None = None  # short press: next page; hold: mph <-> km/h
    night_switch_pin: int | None = None  # closed = night
    save_every_s: float = 30.0


class Cab:
    def __init__(self, settings: CabSettings = CabSettings(), pin_factory=None):
        from .inputs import UiState
        if settings.units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}")
        self.settings = settings
        self.ui = UiState(units=settings.units)
        self.meter = TripMeter()
        self.store = DistanceStore(settings.distance_file)
        self._saved_km = self.store.km
        self._saved_at: float | None = None
        self.position: tuple[float, float] | None = None
        self.button = self.switch = None
        if settings.button_pin is not None:
            from .inputs import DashButton
            self.button = DashButton(settings.button_pin, pin_factory=pin_factory)
        if settings.night_switch_pin is not None:
            from .inputs import NightSwitch
            self.switch = NightSwitch(settings.night_switch_pin, pin_factory=pin_factory)
        # GPIO devices the dash runs without (no GPIO, pin busy, no permission), one sentence each;
        # the frame loop's owner adds those of the outputs
        self.problems: list[str] = [d.problem for d in (self.button, self.switch) if d is not None and d.problem]

    def readings(self, readings: Iterable[Reading]) -> None:
        """Take what the cab needs from this frame's readings (the GPS position)."""
        lat = lon = None
        for r in readings:
            if r.channel == LATITUDE and math.isfinite(r.value):
                lat = r.value
            elif r.channel == LONGITUDE and math.isfinite(r.value):
                lon = r.value
        if lat is not None and lon is not None:
            self.position = (lat, lon)

    def dress(self, dash: DashState, now: float, wall: float | None = None) -> DashState:
        """``dash`` with the cab's fields filled; ``now`` monotonic s, ``wall`` UNIX s (None: time.time())."""
        from .inputs import ui_step
        if self.button is not None:
            for event in self.button.events():
                self.ui = ui_step(self.ui, event)
        self.meter = trip_step(self.meter, now, dash.speed_kmh)
        total = self.store.km + self.meter.km
        if self._saved_at is None:
            self._saved_at = now
        elif now - self._saved_at >= self.settings.save_every_s and total - self._saved_km >= 0.001:
            self._save(total, now)
        wall = time.time() if wall is None else wall
        clock = wall if wall >= CLOCK_SET_AFTER else None
        odometer = None if self.settings.odometer_km is None else self.settings.odometer_km + total
        message = dash.message or self.store.problem or "; ".join(self.problems)
        return replace(dash, trip_km=self.meter.km if self.meter.t is not None or self.meter.km else None,
                       odometer_km=odometer, wall_time=clock, night=self._night(clock),
                       units=self.ui.units, page=self.ui.page, message=message)

    def _night(self, clock: float | None) -> bool:
        if self.switch is not None:
            switched = self.switch.night
            if switched is not None:
                return switched
        if clock is None:
            return False  # no trusted time: the day theme, readable whatever the light
        from .sun import is_night
        lat, lon = self.position if self.position else (None, None)
        return is_night(clock, lat, lon, night_from=self.settings.night_from, day_from=self.settings.day_from)

    def _save(self, total: float, now: float) -> None:
        if self.store.save(total):
            self._saved_km = total
        self._saved_at = now

    def close(self, now: float | None = None) -> None:
        """Save the distance and release the GPIO inputs."""
        self._save(self.store.km + self.meter.km, time.monotonic() if now is None else now)
        for device in (self.button, self.switch):
            if device is not None:
                device.close()
