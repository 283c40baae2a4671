"""A virtual drive recorded as a real logger with a gear-position sensor would record it.

:func:`simulate` drives the virtual truck offline (10 ms steps, no real time) on a
route with a driver :class:`~keidash.sim.driver.Style` and keeps its ground truth
as a :class:`Trace`. :func:`record` turns a trace into a
:class:`~keidash.replay.log.DriveLog` as an OBD logger would write it;
:func:`virtual_log` does both. :func:`write_logger_csv` and :func:`write_one_row_csv` write a drive as
a plain logger and a phone app write a CSV.

The logger:

- polls rpm (PID 0C) and speed (PID 0D) one at a time, at ``rpm_hz`` and
  ``speed_hz``: rpm at k / rpm_hz, speed half a poll later (at equal rates they
  alternate), each with +-``poll_jitter_s``. So rpm and speed are never measured
  at the same instant;
- stamps each reply when it arrives; the value was measured ``delay_s`` (uniform,
  50-150 ms by default: the ECU's own averaging and the ELM327's reply time)
  before its stamp;
- rpm: the truth plus Gaussian ECU jitter (``rpm_sigma``, 25 rpm: +-20-40 rpm
  seen on real ECUs), in OBD's 0.25 rpm units; speed: whole km/h, as PID 0D;
- one row (:class:`~keidash.replay.log.Sample`) per reply: ``fresh`` names the
  channel that reply measured, the other channel holds its latest value
  (None before its first reply);
- ``gear``: a gear-position sensor read at ``gear_hz`` (its own phase), and a
  row carries its latest reading. The sensor reports the **lever**: the gear
  the lever is in, *whether or not the clutch is down*; 0 (neutral) while the
  lever is out of gear, crossing the gate in a shift or parked in neutral. So a
  shift reads old gear (clutch going down), 0 (lever across), new gear (clutch
  still down, then coming up); a coast to a stop with the clutch in reads the
  gear the lever stays in, or 0 once the driver slips it into neutral.
  ``gear_hz=None`` reads the lever at each row's stamp.

Deterministic: the driver's habits come from ``random.Random("driver:<seed>")``
and the logger's noise from ``random.Random("logger:<seed>")``; one seed gives one
log, on every run. A 10-minute drive takes about a second to simulate (bench/manual_drives.py).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from types import MappingProxyType

from ..profiles import load_profile
from ..profiles.body import Body
from ..profiles.engine import shift_limits
from ..readings import KMH_PER_MPH, RPM, SPEED
from ..replay.log import DriveLog, Sample, refresh_intervals
from .driver import ROUTES, Event, Leg, Style, make_driver, style_named
from .physics import Controls, PhysicsState, TruckPhysics
from .truck import STEP_S

DEFAULT_DELAY_S = (0.05, 0.15)
DEFAULT_RPM_SIGMA = 25.0
DEFAULT_POLL_JITTER_S = 0.01


@dataclass(frozen=True)
class Trace:
    """The virtual truck's ground truth every 10 ms: index k is time k x STEP_S.

    ``lever`` is the gear lever (0 neutral), ``clutch`` the clutch's engagement
    (0 pedal down .. 1 engaged; 0 whenever the lever is in neutral).
    """

    profile: str
    route: str
    style: str
    seed: int
    speed_kmh: tuple[float, ...]
    rpm: tuple[float, ...]
    lever: tuple[int, ...]
    clutch: tuple[float, ...]
    throttle: tuple[float, ...]
    brake: tuple[float, ...]
    grade: tuple[float, ...]
    events: tuple[Event, ...]  # what the driver did (empty for the demo's habit driver)
    rpm_per_kmh: tuple[float, ...]  # the profile's, 1st..top
    idle_rpm: float
    lug_rpm: float  # the WLTP lugging limit (shift_limits)

    @property
    def duration_s(self) -> float:
        return (len(self.rpm) - 1) * STEP_S

    def t(self, k: int) -> float:
        return k * STEP_S

    def index(self, t: float) -> int:
        """Index of the last step at or before ``t`` (clamped to the trace)."""
        return min(len(self.rpm) - 1, max(0, math.floor(t / STEP_S + 1e-9)))

    def _at(self, values: tuple[float, ...], t: float) -> float:
        k = self.index(t)
        if k + 1 >= len(values):
            return values[-1]
        share = t / STEP_S - k
        return values[k] + share * (values[k + 1] - values[k])

    def rpm_at(self, t: float) -> float:
        return self._at(self.rpm, t)

    def speed_at(self, t: float) -> float:
        return self._at(self.speed_kmh, t)

    def lever_at(self, t: float) -> int:
        return self.lever[self.index(t)]

    def clutch_in(self, k: int) -> bool:
        return self.clutch[k] < 0.99


def simulate(profile_name: str = "hijet-s500p", route: str | tuple[Leg, ...] = "town",
             style: str | Style | None = "everyday", seconds: float = 600.0, seed: int = 0,
             body: Body = Body()) -> Trace:
    """Drive the virtual truck offline for ``seconds`` and keep its truth every 10 ms.

    ``route``: a name in :data:`~keidash.sim.driver.ROUTES` (kei-day, town, farm) or
    legs (looped when driven to its end). ``style``: a name in
    :data:`~keidash.sim.driver.STYLES` (everyday, brisk, lazy), a Style, or None for
    the demo's habit driver (which ignores ``seed``).
    """
    profile = load_profile(profile_name)
    limits = shift_limits(profile)
    physics = TruckPhysics(profile, body, idle_rpm=limits.idle_rpm)
    if isinstance(route, str):
        if route not in ROUTES:
            raise ValueError(f"no route {route!r}; known: {', '.join(ROUTES)}")
        route_name, legs = route, ROUTES[route]
    else:
        route_name, legs = "custom", tuple(route)
    driver = make_driver(physics, legs, style, seed)
    style_name = "habit" if style is None else style_named(style).name
    state = PhysicsState(engine_rpm=limits.idle_rpm)
    speed, rpm, lever, clutch = [0.0], [state.engine_rpm], [0], [0.0]
    throttle, brake, grade = [0.0], [0.0], [driver.grade()]
    for _ in range(round(seconds / STEP_S)):
        controls: Controls = driver.step(state, STEP_S)
        g = driver.grade()
        state = physics.step(state, controls, STEP_S, g)
        speed.append(state.speed_ms * 3.6)
        rpm.append(state.engine_rpm)
        lever.append(state.gear)
        clutch.append(state.clutch)
        throttle.append(state.throttle)
        brake.append(controls.brake)
        grade.append(g)
    return Trace(profile.name, route_name, style_name, seed, tuple(speed), tuple(rpm), tuple(lever),
                 tuple(clutch), tuple(throttle), tuple(brake), tuple(grade),
                 tuple(getattr(driver, "events", ())), physics.rpm_per_kmh, limits.idle_rpm, limits.lug_rpm)


def poll_times(hz: float, offset_s: float, end_s: float, jitter_s: float, rng: random.Random) -> list[float]:
    """Stamps of one PID polled at ``hz`` from ``offset_s``, each +-``jitter_s``, within (0, end_s]."""
    out, k = [], 0
    while True:
        t = offset_s + k / hz + rng.uniform(-jitter_s, jitter_s)
        if t > end_s:
            return out
        out.append(t)
        k += 1


def record(trace: Trace, rpm_hz: float = 10.0, speed_hz: float | None = None, gear_hz: float | None = 10.0,
           seed: int = 0, rpm_sigma: float = DEFAULT_RPM_SIGMA, delay_s: tuple[float, float] = DEFAULT_DELAY_S,
           poll_jitter_s: float = DEFAULT_POLL_JITTER_S, gps_lag_s: float | None = None,
           gps_sigma_kmh: float = 0.2) -> DriveLog:
    """The trace as an OBD logger with a gear-position sensor records it (see the module's text).

    ``speed_hz`` None polls speed as often as rpm. Rows whose value would have been
    measured before the truck started are not written. ``gps_lag_s``: the speed comes from a
    GPS instead, measured this long before its stamp (the fix computed, then sent over a serial
    line or filtered by a phone), with ``gps_sigma_kmh`` of noise and no whole-km/h steps.
    """
    speed_hz = speed_hz or rpm_hz
    if min(rpm_hz, speed_hz) <= 0 or (gear_hz is not None and gear_hz <= 0):
        raise ValueError("poll rates must be positive")
    rng = random.Random(f"logger:{seed}")
    end = trace.duration_s
    # rpm first, speed half the faster poll later: one PID at a time, never two at an instant
    half = 0.5 / max(rpm_hz, speed_hz)
    polls = [(t, RPM) for t in poll_times(rpm_hz, 0.0, end, poll_jitter_s, rng)]
    polls += [(t, SPEED) for t in poll_times(speed_hz, half, end, poll_jitter_s, rng)]
    polls.sort()
    gear_phase = rng.uniform(0.0, 1.0 / gear_hz) if gear_hz else 0.0
    rows: list[Sample] = []
    latest = {RPM: None, SPEED: None}
    for stamp, channel in polls:
        measured = stamp - rng.uniform(*delay_s)
        if gps_lag_s is not None and channel == SPEED:
            measured = stamp - gps_lag_s
        if measured < 0.0:
            continue
        if channel == RPM:
            value = max(0.0, trace.rpm_at(measured) + rng.gauss(0.0, rpm_sigma))
            latest[RPM] = round(value * 4) / 4  # OBD PID 0C: (256 A + B) / 4
        elif gps_lag_s is not None:
            latest[SPEED] = round(max(0.0, trace.speed_at(measured) + rng.gauss(0.0, gps_sigma_kmh)), 2)
        else:
            latest[SPEED] = float(math.floor(trace.speed_at(measured) + 0.5))  # PID 0D: whole km/h
        if gear_hz is None:
            gear = trace.lever_at(stamp)
        else:  # the sensor's latest read at or before the stamp
            read = gear_phase + math.floor((stamp - gear_phase) * gear_hz) / gear_hz
            gear = trace.lever_at(max(0.0, read))
        rows.append(Sample(round(stamp, 6), latest[SPEED], latest[RPM], gear, (channel,)))
    samples = tuple(rows)
    name = f"virtual {trace.profile} {trace.route} {trace.style} seed {trace.seed}"
    speed_from = "OBD speed" if gps_lag_s is None else f"GPS speed {gps_lag_s:g} s late"
    time_base = (f"simulated: OBD rpm at {rpm_hz:g} Hz and {speed_from} at {speed_hz:g} Hz, polled in turn, each row "
                 f"stamped when its reply arrived, measured {1000 * delay_s[0]:.0f}-{1000 * delay_s[1]:.0f} ms "
                 f"before; gear from the lever sensor at {'each row' if gear_hz is None else f'{gear_hz:g} Hz'}")
    return DriveLog(name, "virtual", samples, MappingProxyType({}), time_base,
                    MappingProxyType(refresh_intervals(samples)))


def virtual_log(profile_name: str = "hijet-s500p", route: str | tuple[Leg, ...] = "town",
                style: str | Style | None = "everyday", seconds: float = 600.0, rpm_hz: float = 10.0,
                speed_hz: float | None = None, gear_hz: float | None = 10.0, seed: int = 0,
                **noise) -> DriveLog:
    """A virtual drive as a recorded one with the true gear labels: :func:`simulate` then :func:`record`.

    ``noise``: ``rpm_sigma``, ``delay_s``, ``poll_jitter_s``, ``gps_lag_s``, ``gps_sigma_kmh`` of :func:`record`.
    """
    trace = simulate(profile_name, route, style, seconds, seed)
    return record(trace, rpm_hz, speed_hz, gear_hz, seed, **noise)


def write_logger_csv(log: DriveLog, path: str) -> None:
    """Write ``log`` to ``path`` as a plain logger writes a CSV: ``time,rpm,speed_mph,gear``, every row
    the latest of both readings (the file does not say which is new: the reader tells it from the rows,
    :meth:`~keidash.replay.log.Samples.polled_in_turn`), the speed in mph to a tenth, the gear sensor's
    neutral as N. What a held-out log from an app or a data logger looks like to ``keidash eval``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("time,rpm,speed_mph,gear\n")
        for s in log.samples:
            gear = "" if s.gear is None else "N" if s.gear == 0 else s.gear
            f.write(f"{s.t:.2f},{'' if s.rpm is None else f'{s.rpm:.0f}'},"
                    f"{'' if s.speed_kmh is None else f'{s.speed_kmh / KMH_PER_MPH:.1f}'},{gear}\n")


def write_one_row_csv(trace: Trace, path: str, hz: float, seed: int, seconds: float | None = None) -> None:
    """Write ``trace`` to ``path`` as a logger that polls rpm and speed each cycle (``hz`` cycles a second) and
    writes both on one row stamped at the cycle's end, as a phone app's CSV does: ``time,rpm,speed_kmh,gear``,
    the rpm measured 0.05-0.15 s before the stamp, the speed polled before it (0.1-0.3 s), whole km/h, the rpm
    with 25 rpm of noise, the lever at the stamp (N for neutral). Until ``seconds`` (default: the trace's
    end, less a second); deterministic for a ``seed``."""
    rnd = random.Random(f"one-row:{seed}")
    end = trace.duration_s if seconds is None else seconds
    with open(path, "w", encoding="utf-8") as f:
        f.write("time,rpm,speed_kmh,gear\n")
        k = 1
        while k / hz <= end - 1.0:
            t = k / hz
            rpm = trace.rpm_at(t - rnd.uniform(0.05, 0.15)) + rnd.gauss(0.0, 25.0)
            kmh = math.floor(trace.speed_at(t - rnd.uniform(0.1, 0.3)) + 0.5)
            lever = trace.lever_at(t)
            f.write(f"{t:.2f},{rpm:.0f},{kmh:.0f},{'N' if lever == 0 else lever}\n")
            k += 1
