"""Ground truth of the virtual truck, as the emulated hardware sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class TruckTruth:
    t: float  # s, simulation time since the truck started
    rpm: float  # engine speed, rev/min (0 when stalled / off)
    speed_kmh: float  # true road speed, km/h (what a GPS sees)
    gear: int  # gear engaged: 0 neutral, 1..n
    clutch_in: bool  # True while the clutch is disengaged (shifting, stopping)
    throttle_pct: float  # accelerator, 0..100 %
    coolant_c: float  # engine coolant temperature, deg C
    battery_v: float  # supply voltage at the OBD socket, V
    distance_m: float  # odometer since start, m
    latitude: float  # deg, WGS84
    longitude: float  # deg, WGS84
    heading_deg: float  # course over ground, deg true
    cue: str | None = None  # the cue the driver was obeying, if closed-loop


#: what the emulated devices call to read the truck now
TruthFn = Callable[[], TruckTruth]


def parked(t: float = 0.0) -> TruckTruth:
    """A truck idling at standstill: handy for hardware tests."""
    return TruckTruth(t=t, rpm=850.0, speed_kmh=0.0, gear=0, clutch_in=False, throttle_pct=0.0,
                      coolant_c=80.0, battery_v=14.1, distance_m=0.0,
                      latitude=35.6812, longitude=139.7671, heading_deg=0.0)
