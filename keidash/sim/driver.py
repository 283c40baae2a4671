"""Drivers for the virtual truck, following a route of legs.

:class:`Driver` follows a kei-truck day (a farm-track crawl in 1st and 2nd, town
stop-and-go, a 55-60 mph stretch): it shifts by habit at a set rpm (open loop) or
obeys keidash's own cues (closed loop), and in both cases avoids stalling. It is
the demo's driver and the one the tests pin figures on. Deterministic: no clock,
no randomness; it sees only the physics state and the cue it is handed.

:class:`StyledDriver` drives a manual gearbox as people do, by a :class:`Style`:
quick and rev-matched downshifts under braking, skip-shifts, clutch-in coasting to
a stop, lugging up hills, late and early upshifts, launches on a slipping clutch.
Its habits are drawn from a seeded ``random.Random`` handed in (no global
randomness, no clock): one seed, one drive. Routes for it: :data:`ROUTES`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..profiles.engine import shift_limits
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
CUE_AGAIN_S = 1.5  # after a shift, a cue still on this long is read as a new one (estimate/speedonly.py: 2 s)


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
    cue_obeyed: bool = False  # acted on the cue showing now: a driver acts once per cue and gear
    cue_gear: int = 0  # the gear the cue showing now was first seen in
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

    def end_kmh(self) -> float:
        """The speed wanted at the end of this leg: 0 for a stop, else the next leg's."""
        if self.leg.stop_s > 0 or self.s.leg == len(self.legs) - 1:
            return 0.0
        return self.legs[self.s.leg + 1].speed_kmh

    def target_speed_kmh(self, p: PhysicsState, decel_ms2: float = COMFORT_DECEL_MS2) -> float:
        """Cruise target, lowered to brake smoothly for a stop or a slower next leg."""
        leg = self.leg
        remaining = max(0.0, self.s.leg_start_m + leg.length_m - p.distance_m)
        braking_ms = math.sqrt((self.end_kmh() / 3.6) ** 2 + 2 * decel_ms2 * remaining)
        return min(leg.speed_kmh, braking_ms * 3.6)

    # -- one control step ------------------------------------------------
    def step(self, p: PhysicsState, dt: float, cue: str | None = None) -> Controls:
        s = self.s
        s.timer += dt
        if cue != s.last_cue:
            s.cue_seen_s, s.last_cue, s.cue_obeyed, s.cue_gear = 0.0, cue, False, s.gear
        elif s.gear != s.cue_gear:
            # the same cue still showing once the gear has changed: a new one if it stays on until the
            # driver looks again (the dash may not have caught up with the shift yet)
            s.cue_seen_s, s.cue_obeyed, s.cue_gear = REACTION_S - CUE_AGAIN_S, False, s.gear
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


# -- a driver of a manual truck, with habits ---------------------------------------------
# Everything above is the habit driver of the demo and the tests that pin its figures;
# what follows is a second driver, chosen by passing a Style, that drives a manual
# gearbox as people do. Its habits are ranges: each shift, stop and launch draws its
# figures from a seeded random.Random handed in (no global randomness, no clock), so
# one seed gives one drive.

#: town stop-and-go: lights, stop signs and braking into corners (2.1 km, about 4 min a loop)
TOWN_STOP_AND_GO: tuple[Leg, ...] = (
    Leg("depot", 0, 0, stop_s=3, heading_deg=0),
    Leg("side street", 180, 30, heading_deg=0),
    Leg("corner", 12, 15, heading_deg=45),
    Leg("shopping street", 350, 45, stop_s=6, heading_deg=90),  # lights
    Leg("shopping street", 250, 40, heading_deg=90),
    Leg("corner", 12, 18, heading_deg=135),
    Leg("main road", 700, 60, heading_deg=180),
    Leg("corner", 15, 20, heading_deg=225),
    Leg("back street", 200, 35, stop_s=4, heading_deg=270),  # stop sign
    Leg("back street", 150, 30, heading_deg=270),
    Leg("tight corner", 10, 12, heading_deg=315),
    Leg("lane", 250, 40, stop_s=5, heading_deg=0),
)

#: a hilly farm route: orchard climbs (lugging), a hairpin, a descent, a gate (2.4 km, about 4.5 min a loop)
HILLY_FARM: tuple[Leg, ...] = (
    Leg("barn", 0, 0, stop_s=3, heading_deg=0),
    Leg("farm lane", 200, 25, heading_deg=10),
    Leg("orchard climb", 300, 30, 0.08, heading_deg=30),
    Leg("steep pitch", 150, 25, 0.13, heading_deg=40),
    Leg("hairpin", 12, 12, 0.10, heading_deg=120),
    Leg("orchard climb", 250, 30, 0.09, stop_s=4, heading_deg=200),  # a gate at the top
    Leg("ridge", 400, 45, 0.01, heading_deg=220),
    Leg("descent", 500, 35, -0.08, heading_deg=250),
    Leg("corner", 12, 15, -0.05, heading_deg=300),
    Leg("valley road", 600, 55, 0.01, stop_s=5, heading_deg=350),
)

#: the routes by name (KEI_DAY is the demo's day)
ROUTES: dict[str, tuple[Leg, ...]] = {"kei-day": KEI_DAY, "town": TOWN_STOP_AND_GO, "farm": HILLY_FARM}


@dataclass(frozen=True)
class Style:
    """How one driver drives a manual truck. A pair is a range each shift or stop draws from."""

    name: str
    upshift_rpm: tuple[float, float]  # accelerating: up at an rpm drawn per gear (late and early upshifts)
    cruise_upshift_rpm: tuple[float, float]  # not accelerating: up once above this ...
    upshift_floor_rpm: float  # ... when the next gear keeps the engine above this (low: lugging)
    lug_rpm: tuple[float, float]  # pulling (or on a hill): down only below this; between it and 1500 it lugs
    downshift_rpm: tuple[float, float]  # braking: down one when the engine falls below this
    rev_match: float  # share of downshifts rev-matched: a blip with the clutch in; the rest quick, no blip
    skip: float  # share of braking episodes that skip straight to the corner's gear (5->3, 4->2)
    skip_up: float = 0.0  # share of cruising upshifts that skip a gear
    corner_rpm: float = 1900.0  # the gear for a corner: the highest that turns at least this fast there
    stop_gear: int = 2  # braking for a stop: down to this gear at most before coasting
    skip_rpm: float = 3600.0  # a skip-shift waits until the lower gear turns at most this
    max_downshift_rpm: float = 4300.0  # never down into more than this
    blip_throttle: tuple[float, float] = (0.4, 0.8)  # the blip of a rev-matched downshift ...
    blip_sigma: float = 0.06  # ... aims at the lower gear's rpm, off by this (relative sigma) and ...
    blip_bias: float = 0.02  # ... over by this on average
    clutch_down_s: tuple[float, float] = (0.05, 0.12)  # pedal down before the lever moves
    lever_s: tuple[float, float] = (0.12, 0.25)  # lever across the gate (reads neutral on the way)
    clutch_up_s: tuple[float, float] = (0.15, 0.35)  # pedal up after a downshift
    upshift_clutch_up_s: tuple[float, float] = (0.25, 0.5)  # pedal up after an upshift
    launch_rpm: tuple[float, float] = (1400.0, 2000.0)  # held on the throttle while the clutch slips
    launch_s: tuple[float, float] = (1.0, 1.8)  # the clutch from the bite point to holding
    coast_kmh: tuple[float, float] = (10.0, 25.0)  # stopping: clutch in below this and coast to the stop ...
    coast_neutral: float = 0.7  # ... the lever to neutral on the way (else held in gear to the stop)
    brake_ms2: float = 2.2  # deceleration planned for stops and corners
    pull_ms2: float = 2.0  # the acceleration the foot eases off at (a kei truck's 1st could give 5 m/s²)


STYLES: dict[str, Style] = {
    # a bit of everything: mostly quick downshifts, some blips, some skips
    "everyday": Style("everyday", upshift_rpm=(2600, 3800), cruise_upshift_rpm=(2400, 3000), upshift_floor_rpm=1500,
                      lug_rpm=(1250, 1450), downshift_rpm=(1500, 1900), rev_match=0.3, skip=0.3, skip_up=0.1,
                      coast_kmh=(12, 30), pull_ms2=2.0),
    # late upshifts, hard braking into corners, downshifts rev-matched and often skipping gears
    "brisk": Style("brisk", upshift_rpm=(3600, 5000), cruise_upshift_rpm=(2800, 3400), upshift_floor_rpm=1800,
                   lug_rpm=(1500, 1800), downshift_rpm=(2000, 2600), rev_match=0.8, skip=0.5, corner_rpm=2200,
                   clutch_up_s=(0.12, 0.3), lever_s=(0.1, 0.2), brake_ms2=2.8, coast_kmh=(8, 15),
                   coast_neutral=0.9, pull_ms2=3.0),
    # early upshifts, lugging up hills, few downshifts (quick, never blipped), long coasts in gear
    "lazy": Style("lazy", upshift_rpm=(2200, 3000), cruise_upshift_rpm=(2000, 2500), upshift_floor_rpm=1150,
                  lug_rpm=(1000, 1150), downshift_rpm=(1200, 1500), rev_match=0.0, skip=0.5, corner_rpm=1700,
                  upshift_clutch_up_s=(0.35, 0.7), clutch_up_s=(0.25, 0.45), coast_kmh=(20, 35),
                  coast_neutral=0.3, brake_ms2=1.8, pull_ms2=1.4),
}


@dataclass(frozen=True)
class Event:
    """What the driver did at ``t``: launch, up, quick (a downshift, no blip), rev-match (a
    downshift with a blip), engage (into a gear from neutral while rolling), coast (clutch in
    to a stop), stop. ``frm`` and ``to`` are the lever's gears (0 neutral)."""

    t: float
    kind: str
    frm: int
    to: int

    @property
    def skip(self) -> bool:
        return self.frm > 0 and self.to > 0 and abs(self.to - self.frm) >= 2


@dataclass
class _Shift:
    kind: str  # up, quick, rev-match, engage
    frm: int
    to: int
    out_s: float  # the lever leaves ``frm`` (clutch down by then)
    in_s: float  # the lever enters ``to``
    up_s: float | None  # the clutch starts up; None until a blip has peaked
    rise_s: float  # the clutch coming up
    blip_from_s: float = 0.0
    blip_gain: float = 1.0  # the blip aims at the lower gear's rpm times this
    blip_throttle: float = 0.0


@dataclass
class _Launch:
    pre_s: float  # clutch down, 1st in, revving up
    rpm: float  # held while the clutch slips
    bite: float  # clutch at the bite point ...
    slip_s: float  # ... taken to 0.45 over this
    synced_at: float | None = None


class StyledDriver(Driver):
    """A driver of a manual truck with a :class:`Style`; every habit drawn from ``rng``.

    The controls' ``gear`` is the gear lever: the old gear until the lever leaves it,
    0 while it crosses the gate, then the new gear, all with the clutch down.
    :attr:`events` lists what the driver did.
    """

    def __init__(self, physics: TruckPhysics, legs: tuple[Leg, ...], style: Style, rng: random.Random):
        super().__init__(physics, legs)
        self.style, self.rng = style, rng
        self.lever = 0
        self.mode_s = 0.0  # s in the current mode
        self.events: list[Event] = []
        self._shift: _Shift | None = None
        self._launch: _Launch | None = None
        self._braking = False
        self._skip_plan = False
        self._to_neutral_s: float | None = None  # coast or stop: the lever goes to neutral after this
        self._draw_gear_habits()
        self._coast_kmh = self._u(style.coast_kmh)
        self._cap = 1.0  # the most throttle the foot gives now (eased off by pull_ms2)
        self._accel = 0.0  # m/s², as felt
        self._last_speed_ms = 0.0

    def _u(self, pair: tuple[float, float]) -> float:
        return self.rng.uniform(*pair)

    def _draw_gear_habits(self) -> None:
        st = self.style
        self._up_rpm = self._u(st.upshift_rpm)
        self._cruise_up_rpm = self._u(st.cruise_upshift_rpm)
        self._lug_rpm = self._u(st.lug_rpm)
        self._down_rpm = self._u(st.downshift_rpm)

    def _advance_leg(self, p: PhysicsState) -> None:
        s = self.s
        s.leg = (s.leg + 1) % len(self.legs)
        s.leg_start_m = p.distance_m
        self._coast_kmh = self._u(self.style.coast_kmh)

    def _mode(self, mode: str) -> None:
        self.s.mode, self.mode_s = mode, 0.0

    # -- one control step ------------------------------------------------
    def step(self, p: PhysicsState, dt: float, cue: str | None = None) -> Controls:
        s = self.s
        self.mode_s += dt
        speed = p.speed_ms * 3.6
        if dt > 0:  # the acceleration felt, smoothed over ~0.1 s
            self._accel += (dt / max(dt, 0.1)) * ((p.speed_ms - self._last_speed_ms) / dt - self._accel)
        self._last_speed_ms = p.speed_ms
        leg = self.leg
        end_m = s.leg_start_m + leg.length_m
        if s.mode == "stopped":
            return self._stopped(p, p.distance_m >= end_m - 3.0)
        if p.distance_m >= end_m - 0.5 and leg.stop_s == 0 and s.leg < len(self.legs) - 1:
            self._advance_leg(p)
        target = self.target_speed_kmh(p, self.style.brake_ms2)
        on_curve = target < self.leg.speed_kmh - 0.5  # braking for the end of the leg
        throttle, brake = self._control(target, speed, on_curve, dt)
        if s.mode == "launch":
            return self._launching(p, throttle)
        if s.mode == "shift":
            return self._shifting(p, speed, throttle, brake)
        if s.mode == "coast":
            return self._coasting(p, speed, target, brake)

        # driving, clutch up
        if self.lever == 0:
            self._start_shift(p, self._gear_for(p.speed_ms), self._down_kind(), kind_if_up="engage")
            return self._shifting(p, speed, throttle, brake)
        stopping = self.end_kmh() == 0.0 and on_curve
        engaged_rpm = p.engine_rpm
        if (stopping and speed <= self._coast_kmh) or (self.lever == 1 and target < 6 and speed < 7) \
                or (self.lever == 1 and engaged_rpm < 1.05 * self.physics.idle_rpm):
            return self._start_coast(p, brake)
        choice = self._choose(p, target, speed, throttle, brake, on_curve)
        if choice is not None:
            self._start_shift(p, *choice)
            return self._shifting(p, speed, throttle, brake)
        return Controls(throttle=throttle, brake=brake, clutch=1.0, gear=self.lever)

    def _control(self, target: float, speed: float, on_curve: bool, dt: float) -> tuple[float, float]:
        """Throttle and brake: the habit driver's PI, and on a braking curve the planned deceleration."""
        error = target - speed
        if on_curve and error < 4.0:
            feed = self.style.brake_ms2 / (0.8 * 9.81)
            return 0.0, min(1.0, max(0.0, feed + 0.1 * (-error)))
        # the habit driver's PI, but the foot goes to the floor when it must ...
        s = self.s
        s.integral = min(0.5, max(0.0, s.integral + 0.03 * error * dt))
        throttle = min(1.0, max(0.0, 0.12 * error + s.integral))
        brake = min(1.0, max(0.0, 0.06 * (-error - 2.0)))
        # ... and eases off when the truck pulls harder than this driver likes (people do not launch
        # a kei truck at the 5 m/s² its 1st gives: the load rides in the bed)
        self._cap = min(1.0, max(0.15, self._cap + 4.0 * dt * (self.style.pull_ms2 - self._accel)))
        return (0.0 if brake > 0 else min(throttle, self._cap)), brake

    def _stopped(self, p: PhysicsState, at_end: bool) -> Controls:
        if self._to_neutral_s is not None and self.mode_s >= self._to_neutral_s:
            self.lever, self._to_neutral_s = 0, None
        if at_end:
            if self.mode_s >= self.leg.stop_s:
                self._advance_leg(p)
            return Controls(brake=1.0, clutch=0.0, gear=self.lever)
        if self.target_speed_kmh(p, self.style.brake_ms2) > 1.0:
            st = self.style
            self._launch = _Launch(pre_s=self._u((0.2, 0.5)), rpm=self._u(st.launch_rpm),
                                   bite=self._u((0.10, 0.16)), slip_s=self._u(st.launch_s))
            self.events.append(Event(p.t, "launch", self.lever, 1))
            self.lever, self._to_neutral_s = 1, None
            self._mode("launch")
            self.s.integral = 0.0
        return Controls(brake=1.0, clutch=0.0, gear=self.lever)

    def _launching(self, p: PhysicsState, throttle: float) -> Controls:
        la, t = self._launch, self.mode_s
        hold = min(0.9, max(0.05, 0.25 + 0.0015 * (la.rpm - p.engine_rpm)))  # hold the launch rpm
        if t < la.pre_s:
            return Controls(throttle=hold, clutch=0.0, gear=1)
        wheel = self.physics.wheel_rpm_in_gear(p.speed_ms, 1)
        if la.synced_at is None:
            if p.engine_rpm - wheel < 120.0 or t - la.pre_s > 2.0 * la.slip_s:
                la.synced_at = t
            else:
                clutch = la.bite + (0.45 - la.bite) * min(1.0, (t - la.pre_s) / la.slip_s)
                return Controls(throttle=hold, clutch=clutch, gear=1)
        share = min(1.0, (t - la.synced_at) / 0.2)
        if share >= 1.0:
            self._mode("drive")
            self._draw_gear_habits()
        return Controls(throttle=max(throttle, hold * (1 - share)), clutch=0.45 + 0.55 * share, gear=1)

    # -- shifts --------------------------------------------------------------
    def _down_kind(self) -> str:
        return "rev-match" if self.rng.random() < self.style.rev_match else "quick"

    def _start_shift(self, p: PhysicsState, to: int, kind: str, kind_if_up: str | None = None) -> None:
        st, frm = self.style, self.lever
        if kind_if_up is not None and kind != "rev-match":
            kind = kind_if_up
        across = self._u(st.lever_s) + 0.05 * max(0, abs(to - frm) - 1)
        out_s = self._u(st.clutch_down_s) if frm else 0.0
        in_s = out_s + (across if frm else 0.6 * across)
        rise_s = self._u(st.upshift_clutch_up_s if kind == "up" else st.clutch_up_s)
        shift = _Shift(kind, frm, to, out_s, in_s, None, rise_s)
        if kind == "rev-match":
            # the blip starts as the lever leaves the old gear or on its way across: the engine
            # often still rises when the lever is in the lower gear, the clutch down
            shift.blip_from_s = max(0.0, out_s + self._u((-0.05, 0.7 * (in_s - out_s))))
            shift.blip_gain = 1.0 + self.rng.gauss(st.blip_bias, st.blip_sigma)
            shift.blip_throttle = self._u(st.blip_throttle)
        else:
            shift.up_s = in_s + self._u((0.03, 0.15))
        self._shift = shift
        self.events.append(Event(p.t, kind, frm, to))
        self._mode("shift")

    def _shifting(self, p: PhysicsState, speed: float, throttle: float, brake: float) -> Controls:
        sh, t = self._shift, self.mode_s
        self.lever = sh.frm if t < sh.out_s else 0 if t < sh.in_s else sh.to
        if speed < 3.0:  # stopped during the shift: clutch stays down
            self._shift = None
            return self._start_coast(p, brake)
        blip = 0.0
        if sh.kind == "rev-match" and sh.up_s is None and t >= sh.blip_from_s:
            aim = self.physics.wheel_rpm_in_gear(p.speed_ms, sh.to) * sh.blip_gain
            if p.engine_rpm < aim and t < sh.blip_from_s + 0.6:
                blip = sh.blip_throttle
            else:  # peaked: off the throttle, and the clutch comes up once the lever is in
                sh.up_s = max(sh.in_s, t) + self._u((0.0, 0.08))
        if sh.up_s is not None and t >= sh.up_s:
            clutch = min(1.0, (t - sh.up_s) / sh.rise_s)
            if clutch >= 1.0:
                self._shift = None
                self._mode("drive")
                self._draw_gear_habits()
            return Controls(throttle=throttle * clutch, brake=brake, clutch=clutch, gear=self.lever)
        clutch = max(0.0, 1.0 - t / sh.out_s) if sh.frm and t < sh.out_s else 0.0
        return Controls(throttle=blip, brake=brake, clutch=clutch, gear=self.lever)

    def _start_coast(self, p: PhysicsState, brake: float) -> Controls:
        self.events.append(Event(p.t, "coast", self.lever, self.lever))
        self._to_neutral_s = self._u((0.3, 1.2)) if self.rng.random() < self.style.coast_neutral else None
        self._mode("coast")
        return Controls(brake=brake, clutch=0.0, gear=self.lever)

    def _coasting(self, p: PhysicsState, speed: float, target: float, brake: float) -> Controls:
        if self._to_neutral_s is not None and self.mode_s >= self._to_neutral_s:
            self.lever, self._to_neutral_s = 0, None
        if target < 4.0 and speed < 8.0:
            brake = max(brake, 0.6)
        if speed < 0.3:
            self.events.append(Event(p.t, "stop", self.lever, self.lever))
            self._to_neutral_s = self._u((0.3, 1.0)) if self.lever else None
            self._mode("stopped")
            return Controls(brake=1.0, clutch=0.0, gear=self.lever)
        if target > speed + 6.0 and speed > 8.0:  # not a stop after all: back into a gear
            self._start_shift(p, self._gear_for(p.speed_ms), self._down_kind(), kind_if_up="engage")
        return Controls(brake=brake, clutch=0.0, gear=self.lever)

    # -- which gear --------------------------------------------------------
    def _gear_for(self, speed_ms: float) -> int:
        """The gear to engage rolling: the highest that turns at least 1800 rpm, else 1st."""
        for g in range(self.top_gear, 0, -1):
            if self.physics.wheel_rpm_in_gear(speed_ms, g) >= 1800.0:
                return g
        return 1

    def _corner_gear(self, goal_kmh: float) -> int:
        """The gear to brake down to: the stop gear for a stop, else the corner's (never 1st: from a stop only)."""
        if goal_kmh < 5.0:
            return self.style.stop_gear
        for g in range(self.top_gear, 1, -1):
            if self.physics.rpm_per_kmh[g - 1] * goal_kmh >= self.style.corner_rpm:
                return g
        return 2

    def _choose(self, p: PhysicsState, target: float, speed: float, throttle: float, brake: float,
                on_curve: bool) -> tuple[int, str] | None:
        st, g, rpm = self.style, self.lever, p.engine_rpm

        def rpm_in(n: int) -> float:
            return self.physics.wheel_rpm_in_gear(p.speed_ms, n)

        if g < self.top_gear and rpm > self.physics.rev_limit_rpm * 0.97:
            return g + 1, "up"
        if brake > 0.0 or (on_curve and speed > target + 1.0) or speed > target + 3.0:
            if not self._braking:
                self._braking = True
                self._skip_plan = self.rng.random() < st.skip
            goal = self.end_kmh() if on_curve else target
            corner = self._corner_gear(goal)
            if g > corner:
                if self._skip_plan and g - corner >= 2:  # straight to the corner's gear once it can take it
                    if rpm_in(corner) <= st.skip_rpm:
                        return corner, self._down_kind()
                    down_below = 1100.0
                else:
                    down_below = max(self._down_rpm, 1000.0)
                if rpm < down_below and rpm_in(g - 1) <= st.max_downshift_rpm:
                    return g - 1, self._down_kind()
            return None
        self._braking = False
        accelerating = target - speed > 3.0
        if g > 1 and (rpm < 950.0 or (rpm < self._lug_rpm and (accelerating or throttle >= 0.6
                                                               or self.leg.grade > 0.02))):
            if rpm_in(g - 1) <= st.max_downshift_rpm:
                return g - 1, self._down_kind()
        if g < self.top_gear:
            if accelerating and rpm >= self._up_rpm:
                return g + 1, "up"
            if not accelerating and rpm >= self._cruise_up_rpm and rpm_in(g + 1) >= st.upshift_floor_rpm:
                if g + 2 <= self.top_gear and rpm_in(g + 2) >= st.upshift_floor_rpm \
                        and self.rng.random() < st.skip_up:
                    return g + 2, "up"
                return g + 1, "up"
        return None


def style_named(style: Style | str) -> Style:
    """A Style, or the one of that name in :data:`STYLES`."""
    if isinstance(style, Style):
        return style
    if style not in STYLES:
        raise ValueError(f"no driving style {style!r}; known: {', '.join(STYLES)}")
    return STYLES[style]


def make_driver(physics: TruckPhysics, legs: tuple[Leg, ...] = KEI_DAY, style: Style | str | None = None,
                seed: int = 0, *, shift_rpm: float | None = None, obey_cues: bool = False) -> Driver:
    """The demo's habit driver (``style`` None: shifting at ``shift_rpm``, by default 85 % of
    the profile's upshift point; obeying cues if asked), or a :class:`StyledDriver` whose
    habits are drawn from ``random.Random("driver:<seed>")`` (it ignores cues)."""
    if style is None:
        limits = shift_limits(physics.profile)
        return Driver(physics, legs, shift_rpm=shift_rpm or 0.85 * limits.upshift_rpm, lug_rpm=limits.lug_rpm,
                      obey_cues=obey_cues)
    return StyledDriver(physics, legs, style_named(style), random.Random(f"driver:{seed}"))
