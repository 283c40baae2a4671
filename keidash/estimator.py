"""Estimator v1: gear, rpm and shift cues from readings. Pure and deterministic.

``step(state, reading, config) -> state`` folds one reading in; ``advise(state,
t, config, links) -> DashState`` says what the dash shows at time ``t``. Neither
reads a clock, a port or a file: time arrives with the readings, so a replayed
log gives the same gears and cues every time.

- Gear with an rpm source: the nearest gear by rpm per km/h (in log space, within
  a tolerance), else neutral / clutch in; a new gear must hold ``gear_dwell_s``
  before it is shown (hysteresis against shift transients).
- Gear from speed alone: the driver is assumed to follow keidash's own cues, so
  a cue that has shown for ``obey_after_s`` means the shift happened; a gear that
  would put the engine below idle or past the rev limit cannot be the gear.
  From standstill the truck starts in 1st.
- Rpm without a tach: rpm per km/h of the gear x road speed, marked *estimated*.
- Cues: up at the upshift rpm (below top gear), down when lugging below the
  WLTP limit in 3rd and up; each clears with a margin (no flicker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

from .dashstate import ABSENT, DOWN, LIVE, STALE, UP, DashState, SourceView
from .engine import ShiftLimits
from .readings import BATTERY, COOLANT, RPM, SPEED, Reading


@dataclass(frozen=True)
class EstimatorConfig:
    limits: ShiftLimits
    rpm_per_kmh: tuple[float, ...] = ()  # per gear, 1st..top; () = unknown
    profile_title: str = ""
    source_priority: tuple[str, ...] = ("pulses", "obd", "gps")  # first live one wins
    gear_tolerance: float = 0.08  # |ln(observed / gear constant)| to accept a gear
    gear_dwell_s: float = 0.25  # a new gear must hold this long before it is shown
    moving_kmh: float = 4.0  # below this the truck counts as stopped
    obey_after_s: float = 0.8  # speed only: a cue showing this long means the driver shifted
    cue_margin_rpm: float = 250.0  # a cue clears this far back inside its limit

    @property
    def top_gear(self) -> int:
        return len(self.rpm_per_kmh)


@dataclass(frozen=True)
class Latest:
    t: float
    value: float
    max_age: float

    def live(self, now: float) -> bool:
        return now - self.t <= self.max_age


@dataclass(frozen=True)
class EstimatorState:
    latest: Mapping[tuple[str, str], Latest] = field(default_factory=lambda: MappingProxyType({}))
    gear: int | None = None  # shown gear: 0 neutral / clutch in, None unknown
    candidate: int | None = None
    candidate_since: float = 0.0
    cue: str | None = None
    cue_since: float = 0.0


def _best(state: EstimatorState, channel: str, now: float, config: EstimatorConfig) -> tuple[str, float] | None:
    """The live value of ``channel`` from the highest-priority source: (source, value)."""
    found = [(source, latest) for (source, ch), latest in state.latest.items()
             if ch == channel and latest.live(now)]
    if not found:
        return None

    def rank(item):
        source = item[0]
        return config.source_priority.index(source) if source in config.source_priority else len(
            config.source_priority)
    source, latest = min(found, key=lambda item: (rank(item), -item[1].t))
    return source, latest.value


def _gear_from_rpm(rpm: float, speed: float, config: EstimatorConfig) -> int:
    if rpm < 0.5 * config.limits.idle_rpm:
        return 0  # engine stopped or stalled while rolling: no gear can be read
    ratio = rpm / speed
    errors = [abs(math.log(ratio / k)) for k in config.rpm_per_kmh]
    gear = min(range(len(errors)), key=errors.__getitem__)
    return gear + 1 if errors[gear] <= config.gear_tolerance else 0


def _gear_from_speed(state: EstimatorState, speed: float, t: float, config: EstimatorConfig) -> int:
    k, limits = config.rpm_per_kmh, config.limits
    gear = state.gear if state.gear else 1
    cue_held = state.cue is not None and t - state.cue_since >= config.obey_after_s
    if cue_held and state.cue == UP and gear < config.top_gear:
        gear += 1
    elif cue_held and state.cue == DOWN and gear > 1:
        gear -= 1
    # a gear that would turn the engine past its limit or below idle cannot be the gear
    while gear < config.top_gear and k[gear - 1] * speed > limits.redline_rpm * 1.12:
        gear += 1
    while gear > 1 and k[gear - 1] * speed < limits.idle_rpm * 0.9:
        gear -= 1
    return gear


def step(state: EstimatorState, reading: Reading, config: EstimatorConfig) -> EstimatorState:
    """Fold one reading into the state. A non-finite or negative value is ignored."""
    if not math.isfinite(reading.value) or reading.value < 0 or not math.isfinite(reading.t):
        return state
    latest = dict(state.latest)
    latest[(reading.source, reading.channel)] = Latest(reading.t, reading.value, reading.max_age)
    state = replace(state, latest=MappingProxyType(latest))
    if reading.channel not in (RPM, SPEED):
        return state
    return _track(state, reading.t, config)


def _track(state: EstimatorState, t: float, config: EstimatorConfig) -> EstimatorState:
    speed = _best(state, SPEED, t, config)
    rpm = _best(state, RPM, t, config)
    if speed is None or not config.rpm_per_kmh:
        return replace(state, gear=None, candidate=None, cue=None)
    speed_kmh = speed[1]
    if speed_kmh < config.moving_kmh:
        candidate = 0
    elif rpm is not None:
        candidate = _gear_from_rpm(rpm[1], speed_kmh, config)
    else:
        candidate = _gear_from_speed(state, speed_kmh, t, config)

    if candidate != state.candidate:
        state = replace(state, candidate=candidate, candidate_since=t)
    gear = state.gear
    # speed-only inference already waited for the driver: no extra dwell there
    if candidate != gear and (rpm is None or t - state.candidate_since >= config.gear_dwell_s):
        gear = candidate

    shown_rpm = rpm[1] if rpm is not None else (
        config.rpm_per_kmh[gear - 1] * speed_kmh if gear else None)
    cue = _cue(state.cue if gear == state.gear else None, gear, shown_rpm, speed_kmh, config)
    cue_since = state.cue_since if cue == state.cue and gear == state.gear else t
    return replace(state, gear=gear, cue=cue, cue_since=cue_since)


def _cue(previous: str | None, gear: int | None, rpm: float | None, speed_kmh: float,
         config: EstimatorConfig) -> str | None:
    if not gear or rpm is None:
        return None
    limits, margin = config.limits, config.cue_margin_rpm
    if gear < config.top_gear:
        if rpm >= limits.upshift_rpm or (previous == UP and rpm > limits.upshift_rpm - margin):
            return UP
    if gear >= 3 and speed_kmh >= config.moving_kmh:
        if rpm < limits.lug_rpm or (previous == DOWN and rpm < limits.lug_rpm + margin):
            return DOWN
    return None


def _error_summary(by_kind: Mapping[str, int]) -> str:
    """'3 errors: checksum 2, parse 1' (most frequent first), or '' when none were counted."""
    total = sum(by_kind.values())
    if not total:
        return ""
    kinds = sorted(by_kind.items(), key=lambda item: (-item[1], item[0]))
    return f"{total} error{'s' if total != 1 else ''}: " + ", ".join(f"{k} {n}" for k, n in kinds)


def advise(state: EstimatorState, t: float, config: EstimatorConfig,
           links: Mapping[str, tuple] = MappingProxyType({})) -> DashState:
    """What the dash shows at ``t``.

    ``links`` maps each configured source to (connected, message[, error counts by
    kind]) as the source reports it; a source that never delivered is absent, one
    whose values are all older than their freshness limit is stale. A live source's
    message sums its counted errors (bad replies and checksums are shown, never fatal).
    """
    speed = _best(state, SPEED, t, config)
    rpm = _best(state, RPM, t, config)
    gear, cue, estimated = state.gear, state.cue, False
    speed_kmh = speed[1] if speed else None
    if speed is None:
        gear, cue = None, None
    if rpm is not None:
        rpm_value = rpm[1]
    elif gear and speed_kmh is not None and config.rpm_per_kmh:
        rpm_value, estimated = config.rpm_per_kmh[gear - 1] * speed_kmh, True
    else:
        rpm_value = None
    if rpm is None and not estimated:
        cue = None

    names = list(links) + sorted({s for s, _ in state.latest} - set(links))
    views = []
    for name in names:
        mine = [latest for (source, _), latest in state.latest.items() if source == name]
        connected, message, *counted = links.get(name, (True, ""))
        by_kind = counted[0] if counted else {}
        errors = sum(by_kind.values())
        # a source whose link is down is not live, even while a slow value is still in date
        if connected and any(latest.live(t) for latest in mine):
            views.append(SourceView(name, LIVE, _error_summary(by_kind), errors))
        elif mine:
            age = t - max(latest.t for latest in mine)
            views.append(SourceView(name, STALE, message or f"no fresh data for {age:.0f} s", errors))
        else:
            views.append(SourceView(name, ABSENT, message or ("waiting for data" if connected else "not connected"),
                                    errors))

    coolant = _best(state, COOLANT, t, config)
    battery = _best(state, BATTERY, t, config)
    limits = config.limits
    return DashState(
        t=t, profile_title=config.profile_title, rpm=rpm_value, rpm_estimated=estimated,
        speed_kmh=speed_kmh, gear=gear, cue=cue,
        upshift_rpm=limits.upshift_rpm, redline_rpm=limits.redline_rpm, tach_max_rpm=limits.tach_max_rpm,
        coolant_c=coolant[1] if coolant else None, battery_v=battery[1] if battery else None,
        sources=tuple(views), speed_source=speed[0] if speed else None,
        rpm_source=rpm[0] if rpm else None)
