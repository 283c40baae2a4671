"""Longitudinal physics of a kei truck: engine, clutch, gearbox, tyre, road.

Pure and deterministic: :meth:`TruckPhysics.step` advances the state by ``dt``
under the driver's controls. Only the sourced engine and drivetrain figures come
from the profile; mass, drag and rolling resistance are the virtual truck's
assumptions (:class:`keidash.profiles.body.Body`, shared with the speed-only
estimator), not claims about any real truck.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..profiles import Profile, load_profile
from ..profiles.body import AIR_DENSITY, G, Body
from ..profiles.engine import full_load_torque_nm


#: the profile whose sourced gearbox, final drive, tyre and engine a virtual truck borrows when
#: its own profile has no sourced ratios (or no power curve)
STAND_IN = "hijet-s500p"


def stand_in(profile: Profile) -> Profile:
    """The profile the virtual truck drives on for ``profile``: itself when its ratios are sourced.

    Otherwise the Hijet S500P's sourced gearbox, final drive and tyre (and engine, where the
    profile has no power figures) under the profile's name, so ``keidash demo`` runs every
    profile. Only the virtual truck drives on them: the dash is given the profile as it is,
    knows no ratios and learns them (or says what it needs), as it would on the real truck.
    """
    if profile.ratios_known and profile.engine.peak_power_kw and profile.engine.peak_power_rpm:
        return profile
    donor = load_profile(STAND_IN)
    engine = profile.engine if profile.engine.peak_power_kw and profile.engine.peak_power_rpm else donor.engine
    if profile.ratios_known:
        return replace(profile, engine=engine)
    return replace(profile, engine=engine, gear_ratios=donor.gear_ratios, final_drive=donor.final_drive,
                   tyre=profile.tyre or donor.tyre, gear_count=len(donor.gear_ratios),
                   reverse_ratio=donor.reverse_ratio, transfer_low_ratio=None, extra_low_ratio=None,
                   learned=None)


@dataclass(frozen=True)
class Controls:
    throttle: float = 0.0  # 0..1
    brake: float = 0.0  # 0..1 of full braking (0.8 g)
    clutch: float = 1.0  # 0 = pedal down (disengaged) .. 1 = engaged
    gear: int = 0  # 0 neutral, 1..n


@dataclass(frozen=True)
class PhysicsState:
    t: float = 0.0  # s
    speed_ms: float = 0.0  # road speed, m/s (never negative: no reverse)
    engine_rpm: float = 850.0
    gear: int = 0
    clutch: float = 1.0
    throttle: float = 0.0
    distance_m: float = 0.0
    grade: float = 0.0  # rise/run under the truck


class TruckPhysics:
    def __init__(self, profile: Profile, body: Body = Body(), idle_rpm: float = 850.0):
        if not profile.ratios_known:
            raise ValueError(f"{profile.name}: the virtual truck needs gear ratios and a final drive")
        self.profile = profile
        self.body = body
        self.idle_rpm = idle_rpm
        self.rpm_per_kmh = profile.rpm_per_kmh()
        self.wheel_radius_m = profile.tyre.rolling_circumference_m / (2 * math.pi)
        self.rev_limit_rpm = 1.12 * profile.engine.peak_power_rpm  # fuel cut of the virtual engine

    def overall_ratio(self, gear: int) -> float:
        return self.profile.gear_ratios[gear - 1] * self.profile.final_drive

    def wheel_rpm_in_gear(self, speed_ms: float, gear: int) -> float:
        """Engine rpm the wheels would turn it at in ``gear`` (clutch engaged)."""
        return speed_ms * 3.6 * self.rpm_per_kmh[gear - 1] if gear > 0 else 0.0

    def engine_torque_nm(self, rpm: float, throttle: float) -> float:
        """Net crank torque: full-load share by throttle, minus pumping/friction drag."""
        if rpm <= 0:
            return 0.0
        drive = throttle * full_load_torque_nm(self.profile.engine, rpm, self.idle_rpm)
        drag = (1 - throttle) * (4.0 + 8.0 * rpm / 6000)
        if rpm > self.rev_limit_rpm:
            drive = 0.0
        # the idle control (carburettor idle circuit / ECU) holds the engine at idle
        if rpm < self.idle_rpm:
            drive = max(drive, drag + 0.2 * (self.idle_rpm - rpm))
        return drive - drag

    def step(self, s: PhysicsState, c: Controls, dt: float, grade: float = 0.0) -> PhysicsState:
        b = self.body
        gear = c.gear if 0 <= c.gear <= len(self.rpm_per_kmh) else 0
        clutch = min(1.0, max(0.0, c.clutch)) if gear else 0.0
        throttle = min(1.0, max(0.0, c.throttle))
        n_wheel = self.wheel_rpm_in_gear(s.speed_ms, gear)
        t_engine = self.engine_torque_nm(s.engine_rpm, throttle)

        if gear and clutch >= 1.0 and abs(s.engine_rpm - n_wheel) < 150:
            # locked: engine and wheels turn together
            t_clutch = t_engine
            engine_rpm = None  # follows the wheels below
        else:
            # slipping or open clutch: torque across it is limited by its capacity
            slip = s.engine_rpm - n_wheel
            capacity = clutch * b.clutch_capacity_nm
            t_clutch = capacity * max(-1.0, min(1.0, slip / 150.0)) if gear else 0.0
            alpha = (t_engine - t_clutch) / b.engine_inertia_kgm2  # rad/s^2
            engine_rpm = max(0.0, s.engine_rpm + alpha * dt * 60 / (2 * math.pi))

        f_drive = t_clutch * (self.overall_ratio(gear) if gear else 0.0) * b.driveline_efficiency / self.wheel_radius_m
        v = s.speed_ms
        f_resist = b.rolling_coefficient * b.mass_kg * G * (1.0 if v > 0.05 else 0.0) \
            + 0.5 * AIR_DENSITY * b.drag_area_m2 * v * v
        f_grade = b.mass_kg * G * math.sin(math.atan(grade))
        f_brake = 0.8 * G * b.mass_kg * min(1.0, max(0.0, c.brake)) if v > 0 else 0.0
        accel = (f_drive - f_resist - f_grade - f_brake) / b.mass_kg
        # no rolling back: on a hill the driver holds the truck on the brake
        v_new = max(0.0, v + accel * dt)

        if engine_rpm is None:
            engine_rpm = self.wheel_rpm_in_gear(v_new, gear)
            if engine_rpm < 0.6 * self.idle_rpm:
                engine_rpm = 0.6 * self.idle_rpm  # a lugging engine would stall: the driver avoids it
        return PhysicsState(
            t=s.t + dt, speed_ms=v_new, engine_rpm=engine_rpm, gear=gear, clutch=clutch,
            throttle=throttle, distance_m=s.distance_m + 0.5 * (v + v_new) * dt, grade=grade)
