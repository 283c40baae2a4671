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

from ..dashstate import BATTERY_HIGH, BATTERY_LOW, COOLANT_HOT, DashState
from ..readings import LATITUDE, LONGITUDE, Reading
from .trip import DistanceStore, TripMeter, trip_step

logger = logging.getLogger(__name__)

#: a wall clock before this (UNIX s, 2025-01-01) has not been set (a Pi has no clock battery)
CLOCK_SET_AFTER = 1735689600.0
#: seconds of the clock between two reckonings of the night theme from the sun or the set times
#: (dusk takes minutes; a night switch is still read every frame)
NIGHT_EVERY_S = 10.0
UNITS = ("mph", "kmh")
TEMPERATURES = ("C", "F")
#: an alarm clears only this far back inside its limit, so a value on the limit does not chatter
COOLANT_CLEAR_C = 3.0
BATTERY_CLEAR_V = 0.3


@dataclass(frozen=True)
class AlarmLimits:
    """Where the coolant and battery alarms go off ([alarms] in the config).

    Defaults for a kei truck: the coolant runs at 80-95 deg C (thermostat 82-88) and a
    pressurised system boils near 120, so 105 is trouble coming with room to pull over; the
    battery reads 13.5-14.7 V while charging and 12.6 V at rest, so under 11.8 V it is flat
    or not being charged, and over 15.0 V the regulator is overcharging it.
    """

    coolant_hot_c: float = 105.0
    battery_low_v: float = 11.8
    battery_high_v: float = 15.0


def alarms_step(active: tuple[str, ...], coolant_c: float | None, battery_v: float | None,
                limits: AlarmLimits) -> tuple[str, ...]:
    """The alarms on after this frame, given those on before (pure; hysteresis on clearing).

    A value that is not live (None) neither raises nor clears its alarm: a hot engine whose
    adapter dropped out is still hot as far as the driver knows; the dash shows "--" and the
    source's trouble beside the alarm.
    """
    on = set(active)

    def judge(name: str, value: float | None, goes_on: bool, clears: bool) -> None:
        if value is None or not math.isfinite(value):
            return
        if goes_on:
            on.add(name)
        elif clears:
            on.discard(name)
    judge(COOLANT_HOT, coolant_c, coolant_c is not None and coolant_c >= limits.coolant_hot_c,
          coolant_c is not None and coolant_c < limits.coolant_hot_c - COOLANT_CLEAR_C)
    judge(BATTERY_LOW, battery_v, battery_v is not None and battery_v <= limits.battery_low_v,
          battery_v is not None and battery_v > limits.battery_low_v + BATTERY_CLEAR_V)
    judge(BATTERY_HIGH, battery_v, battery_v is not None and battery_v >= limits.battery_high_v,
          battery_v is not None and battery_v < limits.battery_high_v - BATTERY_CLEAR_V)
    return tuple(name for name in (COOLANT_HOT, BATTERY_LOW, BATTERY_HIGH) if name in on)


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
    temperature: str = "C"  # the coolant in deg "C" or "F"
    alarms: AlarmLimits = AlarmLimits()


class Cab:
    def __init__(self, settings: CabSettings = CabSettings(), pin_factory=None):
        from .inputs import UiState
        if settings.units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}")
        if settings.temperature not in TEMPERATURES:
            raise ValueError(f"temperature must be one of {TEMPERATURES}")
        self.alarms: tuple[str, ...] = ()
        self.peak_rpm: float | None = None
        self.top_speed_kmh: float | None = None
        self.settings = settings
        self.ui = UiState(units=settings.units)
        self.meter = TripMeter()
        self.store = DistanceStore(settings.distance_file)
        self._saved_km = self.store.km
        self._saved_at: float | None = None
        self.position: tuple[float, float] | None = None
        self._night_key: tuple | None = None  # (clock // NIGHT_EVERY_S, position known) of the last reckoning
        self._night_by_clock = False
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
        self.alarms = alarms_step(self.alarms, dash.coolant_c, dash.battery_v, self.settings.alarms)
        if dash.rpm is not None and math.isfinite(dash.rpm):
            self.peak_rpm = max(dash.rpm, self.peak_rpm or 0.0)
        if dash.speed_kmh is not None and math.isfinite(dash.speed_kmh):
            self.top_speed_kmh = max(dash.speed_kmh, self.top_speed_kmh or 0.0)
        return replace(dash, trip_km=self.meter.km if self.meter.t is not None or self.meter.km else None,
                       odometer_km=odometer, wall_time=clock, night=self._night(clock),
                       units=self.ui.units, page=self.ui.page, message=message,
                       temperature=self.settings.temperature, alarms=self.alarms,
                       peak_rpm=self.peak_rpm, top_speed_kmh=self.top_speed_kmh)

    def _night(self, clock: float | None) -> bool:
        if self.switch is not None:
            switched = self.switch.night
            if switched is not None:
                return switched
        if clock is None:
            return False  # no trusted time: the day theme, readable whatever the light
        key = (clock // NIGHT_EVERY_S, self.position is not None)
        if key != self._night_key:  # a new slice of the clock, or the first GPS position
            from .sun import is_night
            lat, lon = self.position if self.position else (None, None)
            self._night_key = key
            self._night_by_clock = is_night(clock, lat, lon, night_from=self.settings.night_from,
                                            day_from=self.settings.day_from)
        return self._night_by_clock

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
