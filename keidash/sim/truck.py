"""The virtual truck: physics and driver stepped in (scaled) real time.

A thread advances the physics in fixed 10 ms steps of simulated time, paced
against the monotonic clock times ``speedup``. Emulated hardware reads the
ground truth through :meth:`VirtualTruck.truth`; keidash's own cue reaches the
driver through :meth:`VirtualTruck.show_cue` (closed loop).
"""

from __future__ import annotations

import logging
import math
import threading
import time

from ..profiles import Profile
from ..profiles.engine import shift_limits
from .device import EmulatedDevice
from .driver import KEI_DAY, Leg, Style, make_driver
from .physics import Body, PhysicsState, TruckPhysics
from .truth import TruckTruth

logger = logging.getLogger(__name__)

STEP_S = 0.01
EARTH_RADIUS_M = 6_371_000.0
START_LAT, START_LON = 36.6513, 138.1810  # somewhere among the orchards of Nagano


class VirtualTruck(EmulatedDevice):
    thread_name = "virtual-truck"

    def __init__(self, profile: Profile, *, legs: tuple[Leg, ...] = KEI_DAY, obey_cues: bool = False,
                 shift_rpm: float | None = None, speedup: float = 1.0, body: Body = Body(),
                 style: Style | str | None = None, seed: int = 0):
        """``style`` (a Style or a name in STYLES) drives a manual gearbox as people do, its
        habits drawn from ``seed``; it ignores cues. None: the demo's habit driver."""
        super().__init__()
        limits = shift_limits(profile)
        self.profile = profile
        self.physics = TruckPhysics(profile, body, idle_rpm=limits.idle_rpm)
        self.driver = make_driver(self.physics, legs, style, seed, shift_rpm=shift_rpm, obey_cues=obey_cues)
        self.speedup = speedup
        self._state = PhysicsState(engine_rpm=limits.idle_rpm)
        self._coolant_c = 25.0
        self._lat, self._lon = START_LAT, START_LON
        self._cue: str | None = None
        self._lock = threading.Lock()
        self._truth = self._make_truth()
        self._start: float | None = None  # monotonic s at which the simulation's time was 0 (paced)
        self._began = (0.0, 0.0)  # (monotonic s, simulated s) when it began to run
        # the pace before the latest stall of the host: (monotonic s of the stall, the drive time then,
        # the pace's _start before it): drive_time holds there rather than run back
        self._stalled: tuple[float, float, float] | None = None

    # -- stepping (pure given the inputs; no clock) ------------------------
    def advance(self, sim_seconds: float) -> None:
        """Advance the simulation by ``sim_seconds`` in 10 ms steps."""
        steps = max(1, round(sim_seconds / STEP_S))
        for _ in range(steps):
            with self._lock:
                cue = self._cue
            controls = self.driver.step(self._state, STEP_S, cue)
            s = self.physics.step(self._state, controls, STEP_S, self.driver.grade())
            moved = s.distance_m - self._state.distance_m
            self._state = s
            self._coolant_c += (88.0 - self._coolant_c) * STEP_S / 240.0  # warms up over minutes
            heading = math.radians(self.driver.heading_deg())
            self._lat += math.degrees(moved * math.cos(heading) / EARTH_RADIUS_M)
            self._lon += math.degrees(moved * math.sin(heading) /
                                      (EARTH_RADIUS_M * math.cos(math.radians(self._lat))))
            truth = self._make_truth(cue)
            with self._lock:
                self._truth = truth

    def fast_forward(self, sim_seconds: float) -> None:
        """Advance with no dash attached: the driver shifts by habit meanwhile."""
        obey, self.driver.obey_cues = self.driver.obey_cues, False
        try:
            self.advance(sim_seconds)
        finally:
            self.driver.obey_cues = obey

    def _make_truth(self, cue: str | None = None) -> TruckTruth:
        s = self._state
        charging = s.engine_rpm > 600
        return TruckTruth(
            t=s.t, rpm=s.engine_rpm, speed_kmh=s.speed_ms * 3.6, gear=s.gear,
            clutch_in=s.gear == 0 or s.clutch < 0.99, throttle_pct=100 * s.throttle,
            coolant_c=self._coolant_c, battery_v=14.1 if charging else 12.4,
            distance_m=s.distance_m, latitude=self._lat, longitude=self._lon,
            heading_deg=self.driver.heading_deg(), cue=cue)

    # -- for emulated hardware and the pipeline ------------------------------
    def truth(self) -> TruckTruth:
        with self._lock:
            return self._truth

    def show_cue(self, cue: str | None) -> None:
        """What keidash's cluster shows now; the driver obeys it when ``obey_cues``."""
        with self._lock:
            self._cue = cue

    # -- real-time running --------------------------------------------------
    def drive_time(self, now: float) -> float:
        """The truck's own clock at monotonic ``now``, on the monotonic scale: the monotonic time
        when it began to run plus the simulated seconds since, as it is paced; ``now`` itself
        before it runs. With ``speedup`` 5 it runs 5 s a second. A stall of the host pauses the
        truck (its pace starts again from where it is), which would set this clock back by the
        stall: from the stall on it holds instead until the truck has caught up, so the drive's
        time never runs backwards (a 2-core machine running two test suites stamped frames out of
        order). A function of ``now`` alone: a reading stamped before the stall keeps its time."""
        if self._start is None:
            return now
        mono0, sim0 = self._began
        stalled = self._stalled
        if stalled is not None and now < stalled[0]:
            return mono0 + (now - stalled[2]) * self.speedup - sim0
        value = mono0 + (now - self._start) * self.speedup - sim0
        return value if stalled is None else max(value, stalled[1])

    def _run(self) -> None:
        # pace from where the truck already is (advance() may have fast-forwarded it)
        began = time.monotonic()
        self._began = (began, self._state.t)
        self._start = began - self._state.t / self.speedup
        while not self._stop.is_set():
            due = (time.monotonic() - self._start) * self.speedup
            behind = due - self._state.t
            if behind >= STEP_S:
                self.advance(min(behind, 0.5))  # never spiral after a stall of the host
                if behind > 0.5:
                    now = time.monotonic()
                    held = self.drive_time(now)
                    self._stalled, self._start = (now, held, self._start), self._start + (behind - 0.5) / self.speedup
            else:
                self._stop.wait(STEP_S / self.speedup)
