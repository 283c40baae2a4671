"""A driver for the virtual truck, following a kei-truck day.

The day is a list of legs: a farm-track crawl in 1st and 2nd, town stop-and-go,
a 55-60 mph stretch. The driver shifts by habit at a set rpm (open loop) or
obeys keidash's own cues (closed loop), and in both cases avoids stalling.
Deterministic: no clock, no randomness; it sees only the physics state and the
cue it is handed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .physics import Controls, PhysicsState, TruckPhysics


@dataclass(frozen=True)
class Leg:
    name: str
    length_m: float  # distance of the leg
    speed_kmh: float  # cruising target on this leg
    grade: float = 0.0  # rise/run
    stop_s: float = 0.0  # standstill at the end of the leg (0 = roll on into the next)
    heading_deg: float = 0.0  # direction of travel (for the GPS track)


#: a kei-truck day, about 10 minutes at real speed
KEI_DAY: tuple[Leg, ...] = (
    Leg("yard", 0, 0, stop_s=3),
    Leg("farm track", 150, 10, 0.0, heading_deg=20),
    Leg("farm track uphill", 120, 12, 0.06, heading_deg=35),
    Leg("farm track", 150, 15, -0.03, stop_s=4, heading_deg=60),
    Leg("town", 350, 40, stop_s=5, heading_deg=90),
    Leg("town", 400, 50, stop_s=5, heading_deg=180),
    Leg("town hill", 300, 35, 0.03, stop_s=4, heading_deg=200),
    Leg("highway on-ramp", 1500, 95, heading_deg=250),  # 59 mph
    Leg("highway", 2500, 90, 0.02, heading_deg=260),  # 56 mph on a long drag
    Leg("highway exit", 800, 60, stop_s=5, heading_deg=300),
)

COMFORT_DECEL_MS2 = 1.4
SHIFT_OPEN_S = 0.35  # clutch down, throttle off, lever across
SHIFT_CLOSE_S = 0.35  # clutch coming back up
LAUNCH_S = 1.4  # clutch let out from standstill
REACTION_S = 0.4  # from a cue on the dash to the driver acting on it


@dataclass
class DriverState:
    leg: int = 0
    leg_start_m: float = 0.0
    mode: str = "stopped"  # stopped, launch, drive, shift
    timer: float = 0.0  # s in the current mode
    gear: int = 0
    target_gear: int = 0
    integral: float = 0.0
    cue_seen_s: float = 0.0  # how long the current cue has been showing
    last_cue: str | None = None
    cue_obeyed: bool = False  # acted on the cue showing now: a driver acts once per cue
    shifts: int = 0


class Driver:
    def __init__(self, physics: TruckPhysics, legs: tuple[Leg, ...] = KEI_DAY,
                 shift_rpm: float = 4300.0, lug_rpm: float = 1500.0, obey_cues: bool = False):
        self.physics = physics
        self.legs = legs
        self.shift_rpm = shift_rpm
        self.lug_rpm = lug_rpm
        self.obey_cues = obey_cues
        self.top_gear = len(physics.rpm_per_kmh)
        self.s = DriverState()

    # -- the road --------------------------------------------------------
    @property
    def leg(self) -> Leg:
        return self.legs[self.s.leg]

    def grade(self) -> float:
        return self.leg.grade

    def heading_deg(self) -> float:
        return self.leg.heading_deg

    def target_speed_kmh(self, p: PhysicsState) -> float:
        """Cruise target, lowered to brake smoothly for a stop or a slower next leg."""
        leg = self.leg
        remaining = max(0.0, self.s.leg_start_m + leg.length_m - p.distance_m)
        if leg.stop_s > 0 or self.s.leg == len(self.legs) - 1:
            end_kmh = 0.0
        else:
            end_kmh = self.legs[self.s.leg + 1].speed_kmh
        braking_ms = math.sqrt((end_kmh / 3.6) ** 2 + 2 * COMFORT_DECEL_MS2 * remaining)
        return min(leg.speed_kmh, braking_ms * 3.6)

    # -- one control step ------------------------------------------------
    def step(self, p: PhysicsState, dt: float, cue: str | None = None) -> Controls:
        s = self.s
        s.timer += dt
        if cue != s.last_cue:
            s.cue_seen_s, s.last_cue, s.cue_obeyed = 0.0, cue, False
        else:
            s.cue_seen_s += dt
        speed = p.speed_ms * 3.6
        leg = self.leg
        at_end = p.distance_m >= s.leg_start_m + leg.length_m - 0.5

        if s.mode == "stopped":
            if at_end and s.timer >= leg.stop_s:
                self._next_leg(p)
                return Controls(brake=1.0, clutch=0.0, gear=0)
            if not at_end and self.target_speed_kmh(p) > 1.0:
                s.mode, s.timer, s.gear = "launch", 0.0, 1
            return Controls(brake=1.0, clutch=0.0, gear=s.gear)

        target = self.target_speed_kmh(p)
        if at_end and leg.stop_s == 0 and s.leg < len(self.legs) - 1:
            self._next_leg(p)
        # coming to a stop: clutch in, neutral, brake
        if target < 4.0 and speed < 8.0 and s.mode != "shift":
            s.gear, s.integral = 0, 0.0
            if speed < 0.3:
                s.mode, s.timer = "stopped", 0.0
            return Controls(brake=0.6, clutch=0.0, gear=0)

        throttle, brake = self._speed_control(target, speed, dt)
        if s.mode == "launch":
            clutch = min(1.0, 0.35 + 0.65 * s.timer / LAUNCH_S)
            throttle = max(throttle, 0.30)
            if s.timer >= LAUNCH_S:
                s.mode, s.timer = "drive", 0.0
            return Controls(throttle=throttle, brake=brake, clutch=clutch, gear=s.gear)

        if s.mode == "shift":
            if s.timer < SHIFT_OPEN_S:
                if s.timer >= SHIFT_OPEN_S / 2:
                    s.gear = s.target_gear
                return Controls(throttle=0.0, brake=brake, clutch=0.0, gear=s.gear)
            if s.timer < SHIFT_OPEN_S + SHIFT_CLOSE_S:
                clutch = (s.timer - SHIFT_OPEN_S) / SHIFT_CLOSE_S
                return Controls(throttle=throttle * clutch, brake=brake, clutch=clutch, gear=s.gear)
            s.mode, s.timer = "drive", 0.0

        new_gear = self._choose_gear(p, target, speed, cue)
        if new_gear != s.gear:
            if new_gear == 0:
                s.gear = 0
                return Controls(brake=brake, clutch=0.0, gear=0)
            s.mode, s.timer, s.target_gear = "shift", 0.0, new_gear
            s.shifts += 1
            return Controls(throttle=0.0, brake=brake, clutch=0.0, gear=s.gear)
        return Controls(throttle=throttle, brake=brake, clutch=1.0, gear=s.gear)

    def _next_leg(self, p: PhysicsState) -> None:
        s = self.s
        s.leg = (s.leg + 1) % len(self.legs)
        s.leg_start_m = p.distance_m
        s.timer = 0.0

    def _speed_control(self, target: float, speed: float, dt: float) -> tuple[float, float]:
        s = self.s
        error = target - speed
        s.integral = min(0.5, max(0.0, s.integral + 0.03 * error * dt))
        throttle = min(0.85, max(0.0, 0.12 * error + s.integral))
        brake = min(1.0, max(0.0, 0.06 * (-error - 2.0)))
        if brake > 0:
            throttle = 0.0
        return throttle, brake

    def _choose_gear(self, p: PhysicsState, target: float, speed: float, cue: str | None) -> int:
        s = self.s
        gear, rpm = s.gear, p.engine_rpm
        rpm_in = self.physics.wheel_rpm_in_gear
        if gear == 0:  # rolling in neutral and asked to go: pick the gear that suits the speed
            for g in range(1, self.top_gear + 1):
                if rpm_in(p.speed_ms, g) < self.shift_rpm * 0.8:
                    return g
            return self.top_gear
        # never stall, never over-rev, whoever is advising
        if gear > 1 and rpm < 1150:
            return gear - 1
        if gear == 1 and rpm < 0.95 * self.physics.idle_rpm and target < 6:
            return 0
        if gear < self.top_gear and rpm > self.physics.rev_limit_rpm * 0.97:
            return gear + 1
        if self.obey_cues:
            if cue and s.cue_seen_s >= REACTION_S and not s.cue_obeyed:
                if cue == "up" and gear < self.top_gear:
                    s.cue_obeyed = True
                    return gear + 1
                if cue == "down" and gear > 1:
                    s.cue_obeyed = True
                    return gear - 1
            return gear
        # habits: shift up at the set rpm while accelerating, early while cruising
        accelerating = target - speed > 3
        if gear < self.top_gear:
            next_rpm = rpm_in(p.speed_ms, gear + 1)
            if rpm >= self.shift_rpm or (not accelerating and rpm > 3000 and next_rpm > 1900):
                return gear + 1
        if gear > 1 and rpm < self.lug_rpm and (accelerating or self.leg.grade > 0.02):
            return gear - 1
        return gear
