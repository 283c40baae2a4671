"""Gear and rpm from road speed alone, for trucks with no rpm signal. Pure and deterministic.

Many kei trucks give keidash no rpm at all: only road speed (VSS pulses, OBD or
GPS). With the gear ratios known (rpm per km/h in each gear, given or learned
beforehand) the rpm follows from the gear, so the task is to track the gear.

Method: a forward filter (an online hidden-Markov filter) over the states
0 (stopped / clutch in / neutral) and 1..top. At each fresh speed value
:func:`speed_step` moves the belief by the chance of a shift since the last
value (transition) and weighs it by what the speed and acceleration say about
each gear (evidence); the gear shown is the most probable state. Only data up
to now is used, so it runs live and a replay gives the same gears every time.

Evidence, each optional:

- **The driver's habits** (:class:`Habits`, learned by :func:`learn_habits` from
  an earlier drive with known gears, e.g. one with rpm): how long this driver
  spends in each gear at each speed and acceleration (a histogram, which is
  also the learned envelope of what each gear delivers at each speed), how
  often they shift up, down and into neutral per second in each gear, the
  speeds at which they shift, and how often they obey keidash's cues.
- **Physics** when the profile has the engine's peak figures and a mass is
  given: a gear cannot deliver more acceleration at this speed than its
  full-load torque allows (:func:`keidash.profiles.engine.full_load_torque_nm`, minus
  rolling and air drag of :class:`keidash.profiles.body.Body`).
- **Rpm limits**: a gear that would turn the engine past the red line or well
  below idle at this speed is not the gear.
- **The clutch dip of an upshift**: with speed sampled densely enough
  (spacing under :data:`DIP_MAX_SPACING_S`), an accelerating stretch, then
  0.25-1.5 s of flat or falling speed, then acceleration again marks an upshift.
- **The driver's usual rpm** beyond the speeds the habits cover (a town driver's
  habits say nothing about 90 km/h, and clamping to their fastest bin picks the gear
  they used at 60): the in-gear time of the habits, turned into rpm with the ratios,
  gives a normal in log rpm; the gear whose rpm there is most usual is favoured.
- **keidash's own cues**: a cue shown for :data:`OBEY_AFTER_S` moves the belief
  one gear by the driver's obedience (given, learned, or :data:`DEFAULT_OBEDIENCE`
  without habits). Habits learned from drives with no cue recorded already hold every
  shift this driver makes, so with those a cue moves nothing unless an obedience is given
  (:attr:`SpeedModel.cue_weight`).

Evidence is tempered by the time it covers (``min(1, dt / EVIDENCE_S)``), so a
70 Hz speed feed does not count as 70 independent opinions per second.

Call :func:`speed_step` with fresh speed values only (a value repeated between
an adapter's polls is not a new measurement: acceleration comes from fresh
values only). :func:`rpm_estimate` gives the rpm of the shown gear at a speed,
idle for state 0.
"""

from __future__ import annotations

import bisect
import math
from functools import cached_property
from dataclasses import dataclass
from typing import Iterable

from ..profiles import Engine
from ..profiles.body import AIR_DENSITY, G, Body
from ..profiles.engine import ShiftLimits, full_load_torque_nm

UP, DOWN = "up", "down"

#: below this the truck counts as stopped (km/h), as the estimator's moving_kmh
MOVING_KMH = 4.0
#: speed histogram bins (km/h wide) and how many (the last one takes everything faster)
SPEED_BIN_KMH = 5.0
SPEED_BINS = 32
#: acceleration bin edges (m/s^2)
ACCEL_EDGES = (-1.5, -0.8, -0.4, -0.15, 0.15, 0.4, 0.8, 1.2)
#: acceleration is the slope to the newest kept speed at least this old (s) ...
ACCEL_SPAN_S = 0.5
#: ... and no older than this (s); older means the acceleration is unknown
ACCEL_MAX_SPAN_S = 4.5
#: kept speed points are at least this far apart (s) and at most this old (s)
KEEP_SPACING_S = 0.1
KEEP_S = 5.0
#: a sample counts as one full piece of evidence per this many seconds it covers (0.2 chosen on the
#: real logs of bench/speedonly_eval.py and keidash eval: 0.5 lost 3-4 points on the dense OpenXC
#: feeds; the 2 s carOBD feeds count fully at either)
EVIDENCE_S = 0.2
#: a gap longer than this (s) restarts the filter's timing (a dropout, a new log)
MAX_GAP_S = 10.0
#: smoothing of the habit histogram: pseudo-seconds spread over all cells of a gear
HABIT_PSEUDO_S = 5.0
#: a speed bin with less than this share of the driving is beyond the habits' range
HABIT_RANGE_SHARE = 0.005
#: shift rates (per second) when no habits are known
DEFAULT_UP_PER_S = 0.05
DEFAULT_DOWN_PER_S = 0.05
DEFAULT_NEUTRAL_PER_S = 0.03
DEFAULT_ENGAGE_PER_S = 0.8
#: how far a shift-rate estimate leans on the default (pseudo-seconds of driving)
RATE_PSEUDO_S = 20.0
#: how fast (per s) the belief forgets toward the habits' shares of time in each gear
FORGET_PER_S = 1.0
#: a cue showing this long (s) is when an obedient driver has shifted
OBEY_AFTER_S = 0.8
#: obedience assumed when neither the model nor its habits say: keidash's premise is a driver who
#: follows its cues, most of the time (keidash's choice; 0.8 held 99.8 % of gears on the virtual
#: truck's closed loop in economy mode, 0.5 held 97 %)
DEFAULT_OBEDIENCE = 0.8
#: upshift clutch dip: accelerating above DIP_ON for DIP_MIN_RUN_S, flat below DIP_OFF for
#: DIP_MIN_S..DIP_MAX_S, then accelerating again; only with speed spaced below DIP_MAX_SPACING_S
DIP_ON_MS2 = 0.35
DIP_OFF_MS2 = 0.15
DIP_MIN_RUN_S = 0.8
DIP_MIN_S = 0.25
DIP_MAX_S = 1.5
DIP_MAX_SPACING_S = 0.3
#: chance that a detected dip was an upshift
DIP_UP_CHANCE = 0.6
#: even a driver who follows every cue shifts on their own sometimes (to stop, on a hill): this share
#: of the default shift rates is kept however obedient they are
MIN_SPONTANEOUS = 0.1
#: a cue followed and a clutch dip this close together (s) are one upshift, not two
ONE_SHIFT_S = 3.0
#: physics: acceleration above the full-load envelope by more than this (m/s^2) is implausible
ENVELOPE_MARGIN_MS2 = 0.25
ENVELOPE_SIGMA_MS2 = 0.15
#: rpm limits: past redline x this, or under idle x this, the gear is implausible
OVER_REV_SHARE = 1.08
UNDER_IDLE_SHARE = 0.75
LIMIT_PENALTY = 6.0  # log-likelihood lost per 10 % beyond a limit
#: the driver's rpm habit (used beyond the speeds the habits cover) is a normal in log rpm at least
#: this wide
RPM_HABIT_MIN_SPREAD = 0.1
#: with no habits: how fast (log space) rpm outside lug..upshift grows unlikely
NO_HABIT_WIDTH = 0.2


@dataclass(frozen=True)
class Habits:
    """What a driver does, learned from a drive whose gears are known. Small and immutable.

    ``seconds[g][v][a]`` is the time (s) spent in state ``g`` (0 = clutch in / neutral while
    moving, 1..top) at speed bin ``v`` (SPEED_BIN_KMH wide) and acceleration bin ``a``
    (ACCEL_EDGES, last bin = acceleration unknown). Rates are per second spent in a gear.
    """

    seconds: tuple[tuple[tuple[float, ...], ...], ...]  # [state][speed bin][accel bin], s
    up_per_s: tuple[float, ...]  # [state] upshifts per second in that gear (index 0 unused)
    down_per_s: tuple[float, ...]  # [state] downshifts per second in that gear
    neutral_per_s: tuple[float, ...]  # [state] clutch-in / neutral entries per second while moving
    engage_per_s: float  # leaving state 0 while moving, per second in it
    upshift_kmh: tuple[float | None, ...]  # [state] median speed of upshifts out of that gear
    downshift_kmh: tuple[float | None, ...]  # [state] median speed of downshifts out of that gear
    obedience: float | None = None  # share of cues followed within a few seconds; None: never saw one

    @cached_property
    def gear_seconds(self) -> tuple[float, ...]:
        """Time (s) in each state 0..top while moving."""
        return tuple(sum(sum(cell) for cell in table) for table in self.seconds)

    @property
    def top_gear(self) -> int:
        return len(self.seconds) - 1

    @cached_property
    def speed_bin_range(self) -> tuple[int, int]:
        """Lowest and highest speed bins with HABIT_RANGE_SHARE of the driving: speeds beyond are taken as these."""
        totals = [sum(sum(table[v]) for table in self.seconds) for v in range(SPEED_BINS)]
        seen = [v for v, s in enumerate(totals) if s > 0 and s >= HABIT_RANGE_SHARE * sum(totals)] or [0]
        return seen[0], seen[-1]


@dataclass(frozen=True)
class SpeedModel:
    """What the speed-only tracker knows about the truck and its driver."""

    rpm_per_kmh: tuple[float, ...]  # engine rpm per km/h in each gear, 1st..top
    limits: ShiftLimits
    habits: Habits | None = None
    engine: Engine | None = None  # torque curve when the profile has the peak figures
    mass_kg: float | None = None  # truck + load, kg (with ``engine``: the physics envelope)
    obedience: float | None = None  # None: from habits or DEFAULT_OBEDIENCE

    @property
    def top_gear(self) -> int:
        return len(self.rpm_per_kmh)

    @property
    def driver_obedience(self) -> float:
        if self.obedience is not None:
            return self.obedience
        if self.habits is not None and self.habits.obedience is not None:
            return self.habits.obedience
        return DEFAULT_OBEDIENCE

    @property
    def cue_weight(self) -> float:
        """How far a cue on show moves the belief: the obedience, but 0 when habits were learned from
        drives where no cue was seen (their shift rates already hold every shift this driver makes, so
        a cue would count a shift twice)."""
        if self.obedience is None and self.habits is not None and self.habits.obedience is None:
            return 0.0
        return self.driver_obedience

    @cached_property
    def rpm_habit(self) -> tuple[float, float] | None:
        """(mean, spread) of log rpm over the driver's in-gear time, from the habits and the ratios:
        the engine speed this driver holds, whatever the road speed. None without habits."""
        h = self.habits
        if h is None or h.top_gear != self.top_gear:
            return None
        weights, logs = [], []
        for g in range(1, self.top_gear + 1):
            for v, row in enumerate(h.seconds[g]):
                if sum(row) > 0:
                    weights.append(sum(row))
                    logs.append(math.log(self.rpm_per_kmh[g - 1] * (v + 0.5) * SPEED_BIN_KMH))
        total = sum(weights)
        if total <= 0:
            return None
        mean = sum(w * x for w, x in zip(weights, logs)) / total
        spread = math.sqrt(sum(w * (x - mean) ** 2 for w, x in zip(weights, logs)) / total)
        return mean, max(spread, RPM_HABIT_MIN_SPREAD)


@dataclass(frozen=True)
class SpeedOnlyState:
    gear: int | None = None  # 0 stopped / clutch in, 1.., None unknown
    belief: tuple[float, ...] = ()  # probability of state 0..top; () before the first speed
    t: float | None = None  # s, time of the last fresh speed
    speed_kmh: float | None = None  # last fresh speed
    accel_ms2: float | None = None  # acceleration at the last fresh speed, None unknown
    recent: tuple[tuple[float, float], ...] = ()  # kept (t s, speed km/h) for acceleration
    accel_since: float | None = None  # start of the current accelerating stretch (s)
    dip_since: float | None = None  # start of a flat spell after an accelerating stretch (s)
    upshift_dips: int = 0  # clutch dips detected so far (for the bench and tests)
    cue: str | None = None  # cue shown at the last step
    cue_since: float = 0.0  # s, when that cue appeared
    cue_used: bool = False  # the current cue has already moved the belief
    up_at: float | None = None  # s, when a cue or a clutch dip last moved the belief up
    cued_gear: int | None = None  # the gear shown when the current cue appeared


# -- helpers shared by learning and tracking -----------------------------------------------
def speed_bin(speed_kmh: float) -> int:
    return min(SPEED_BINS - 1, max(0, int(speed_kmh // SPEED_BIN_KMH)))


def accel_bin(accel_ms2: float | None) -> int:
    """Acceleration bin; the extra last bin is 'unknown'."""
    if accel_ms2 is None:
        return len(ACCEL_EDGES) + 1
    return bisect.bisect_right(ACCEL_EDGES, accel_ms2)


ACCEL_BINS = len(ACCEL_EDGES) + 2  # the bins of ACCEL_EDGES plus 'unknown'


def _keep(recent: tuple[tuple[float, float], ...], t: float, speed_kmh: float) -> tuple[tuple[float, float], ...]:
    """Recent speed points with the new one, at least KEEP_SPACING_S apart and at most KEEP_S old."""
    points = tuple(p for p in recent if t - p[0] <= KEEP_S)
    if points and t - points[-1][0] < KEEP_SPACING_S:
        return points
    return points + ((t, speed_kmh),)


def _accel(recent: tuple[tuple[float, float], ...], t: float, speed_kmh: float) -> float | None:
    """Slope (m/s^2) from the newest kept point at least ACCEL_SPAN_S old, None if none is recent."""
    for t0, v0 in reversed(recent):
        span = t - t0
        if span >= ACCEL_SPAN_S:
            return (speed_kmh - v0) / 3.6 / span if span <= ACCEL_MAX_SPAN_S else None
    return None


# -- learning -----------------------------------------------------------------------------
def learn_habits(samples: Iterable[tuple[float, float, int]],
                 cues: Iterable[tuple[float, str | None]] | None = None) -> Habits:
    """A driver's habits from a drive with known gears: (t s, speed km/h, gear) in time order.

    Gear 0 is neutral / clutch in; negative gears (reverse) and None are skipped.
    Pass fresh speed values only (acceleration is taken between them, as when tracking).
    ``cues``, (t, cue shown from t on), if keidash's cues were on show during the drive: the
    share of up/down cues followed by that shift within 3 s is the driver's obedience.
    """
    rows = [(float(t), float(v), int(g)) for t, v, g in samples if g is not None and g >= 0 and v is not None]
    top = max((g for _, _, g in rows), default=0)
    seconds = [[[0.0] * ACCEL_BINS for _ in range(SPEED_BINS)] for _ in range(top + 1)]
    in_gear = [0.0] * (top + 1)
    ups, downs, neutrals = [0] * (top + 1), [0] * (top + 1), [0] * (top + 1)
    engages = 0
    up_speeds: list[list[float]] = [[] for _ in range(top + 1)]
    down_speeds: list[list[float]] = [[] for _ in range(top + 1)]
    shifts: list[tuple[float, str]] = []
    recent: tuple[tuple[float, float], ...] = ()
    last_gear = None  # last forward gear while moving
    prev_state = None
    for i, (t, v, g) in enumerate(rows):
        accel = _accel(recent, t, v)
        recent = _keep(recent, t, v)
        dt = min(rows[i + 1][0] - t, 3.0) if i + 1 < len(rows) else 0.0
        if v < MOVING_KMH:
            last_gear, prev_state = None, None
            continue
        seconds[g][speed_bin(v)][accel_bin(accel)] += max(dt, 0.0)
        in_gear[g] += max(dt, 0.0)
        if prev_state is not None and prev_state > 0 and g == 0:
            neutrals[prev_state] += 1
        if prev_state == 0 and g > 0:
            engages += 1
        if g > 0:
            if last_gear is not None and g != last_gear:
                (ups if g > last_gear else downs)[last_gear] += 1
                (up_speeds if g > last_gear else down_speeds)[last_gear].append(v)
                shifts.append((t, UP if g > last_gear else DOWN))
            last_gear = g
        prev_state = g

    def rate(count: int, time_s: float, default: float) -> float:
        return (count + default * RATE_PSEUDO_S) / (time_s + RATE_PSEUDO_S)

    def median(values: list[float]) -> float | None:
        return sorted(values)[len(values) // 2] if values else None

    return Habits(
        seconds=tuple(tuple(tuple(round(s, 3) for s in cell) for cell in per_gear) for per_gear in seconds),
        up_per_s=tuple(rate(ups[g], in_gear[g], DEFAULT_UP_PER_S) for g in range(top + 1)),
        down_per_s=tuple(rate(downs[g], in_gear[g], DEFAULT_DOWN_PER_S) for g in range(top + 1)),
        neutral_per_s=tuple(rate(neutrals[g], in_gear[g], DEFAULT_NEUTRAL_PER_S) for g in range(top + 1)),
        engage_per_s=rate(engages, in_gear[0], DEFAULT_ENGAGE_PER_S),
        upshift_kmh=tuple(median(s) for s in up_speeds),
        downshift_kmh=tuple(median(s) for s in down_speeds),
        obedience=_obedience(cues, shifts) if cues is not None else None,
    )


def _obedience(cues: Iterable[tuple[float, str | None]], shifts: list[tuple[float, str]]) -> float | None:
    """Share of shown up/down cues followed by that shift within 3 s (None if no cue was shown)."""
    shown, followed, previous = 0, 0, None
    for t, cue in cues:
        if cue != previous and cue in (UP, DOWN):
            shown += 1
            followed += any(kind == cue and t <= ts <= t + 3.0 for ts, kind in shifts)
        previous = cue
    return followed / shown if shown else None


# -- tracking -----------------------------------------------------------------------------
def _habit_loglik(habits: Habits, state: int, v_bin: int, a_bin: int) -> float:
    """log p(speed bin, accel bin | state) from the histogram, neighbouring speed bins blended in."""
    if state > habits.top_gear:
        return math.log(1.0 / (SPEED_BINS * ACCEL_BINS))
    table = habits.seconds[state]
    total = habits.gear_seconds[state]
    low, high = habits.speed_bin_range
    v_bin = min(high, max(low, v_bin))

    def at(vb: int) -> float:
        if not 0 <= vb < SPEED_BINS:
            return 0.0
        row = table[vb]
        if a_bin == ACCEL_BINS - 1:  # acceleration unknown: the speed bin's share over all
            return sum(row) / ACCEL_BINS
        return row[a_bin]

    seconds = 0.5 * at(v_bin) + 0.25 * (at(v_bin - 1) + at(v_bin + 1))
    return math.log((seconds + HABIT_PSEUDO_S / (SPEED_BINS * ACCEL_BINS)) / (total + HABIT_PSEUDO_S))


def max_accel_ms2(model: SpeedModel, gear: int, speed_kmh: float) -> float | None:
    """Full-load acceleration (m/s^2) in ``gear`` at ``speed_kmh`` on the level, None without physics."""
    if model.engine is None or model.mass_kg is None or gear < 1:
        return None
    body = Body(mass_kg=model.mass_kg)
    k = model.rpm_per_kmh[gear - 1]
    rpm = k * speed_kmh
    try:
        torque = full_load_torque_nm(model.engine, rpm, model.limits.idle_rpm)
    except ValueError:
        return None
    # wheel force per engine torque = overall ratio / tyre radius = k x 3.6 x 2 pi / 60 (1/m)
    force = torque * k * 3.6 * 2 * math.pi / 60 * body.driveline_efficiency
    v = speed_kmh / 3.6
    resist = body.rolling_coefficient * body.mass_kg * G + 0.5 * AIR_DENSITY * body.drag_area_m2 * v * v
    return (force - resist) / body.mass_kg


def _evidence(model: SpeedModel, speed_kmh: float, accel: float | None, weight: float) -> list[float]:
    """Log-likelihood of the speed and acceleration in each state 0..top."""
    top, limits = model.top_gear, model.limits
    out = [0.0] * (top + 1)
    v_bin, a_bin = speed_bin(speed_kmh), accel_bin(accel)
    # beyond the speeds the habits cover (clamped to their edge there) the driver's usual rpm says more
    rpm_habit = None
    if model.habits is not None:
        low, high = model.habits.speed_bin_range
        rpm_habit = None if low <= v_bin <= high else model.rpm_habit
    for g in range(top + 1):
        ll = 0.0
        if model.habits is not None:
            ll += weight * _habit_loglik(model.habits, g, v_bin, a_bin)
        elif g > 0:  # no habits: any rpm between the lugging limit and the red line is as likely
            # (not the upshift point: a driver answering a cue pulls on past it while reacting)
            rpm = model.rpm_per_kmh[g - 1] * speed_kmh
            outside = max(0.0, math.log(limits.lug_rpm / rpm), math.log(rpm / limits.redline_rpm))
            ll -= weight * (outside / NO_HABIT_WIDTH) ** 2
        else:
            ll -= weight * 2.0  # no habits: clutch in while moving is the exception
        if g > 0 and rpm_habit is not None:
            mean, spread = rpm_habit
            ll -= weight * 0.5 * ((math.log(model.rpm_per_kmh[g - 1] * speed_kmh) - mean) / spread) ** 2
        if g > 0:
            rpm = model.rpm_per_kmh[g - 1] * speed_kmh
            over = math.log(rpm / (limits.redline_rpm * OVER_REV_SHARE))
            under = math.log(limits.idle_rpm * UNDER_IDLE_SHARE / rpm)
            ll -= LIMIT_PENALTY * 10 * max(0.0, over, under)
            envelope = max_accel_ms2(model, g, speed_kmh)
            if envelope is not None and accel is not None:
                excess = accel - max(envelope, 0.0) - ENVELOPE_MARGIN_MS2
                if excess > 0:
                    ll -= 0.5 * (excess / ENVELOPE_SIGMA_MS2) ** 2
        out[g] = ll
    return out


def _rates(model: SpeedModel, g: int) -> tuple[float, float, float]:
    """(up, down, neutral) shifts per second out of gear ``g``."""
    h = model.habits
    if h is not None and g <= h.top_gear:
        return h.up_per_s[g], h.down_per_s[g], h.neutral_per_s[g]
    return DEFAULT_UP_PER_S, DEFAULT_DOWN_PER_S, DEFAULT_NEUTRAL_PER_S


def _predict(belief: list[float], model: SpeedModel, dt: float, up_boost: float, down_boost: float,
             cued_gear: int | None = None, cue_up: float = 0.0, cue_down: float = 0.0) -> list[float]:
    """The belief after ``dt`` s of possible shifts; ``*_boost`` is an extra chance of that shift from
    any gear, ``cue_*`` an extra chance of it from ``cued_gear`` only (the gear keidash cued in)."""
    top = model.top_gear
    out = [0.0] * (top + 1)
    engage = model.habits.engage_per_s if model.habits is not None else DEFAULT_ENGAGE_PER_S
    p_out = 1 - math.exp(-engage * dt)
    out[0] += belief[0] * (1 - p_out)
    for g in range(1, top + 1):  # leaving neutral: into any gear, the evidence decides which
        out[g] += belief[0] * p_out / top
    # with no habits learned, an obedient driver shifts when keidash says so (the cue boost), seldom
    # on their own; learned habits already hold how often this driver shifts
    spontaneous = 1.0 if model.habits is not None else max(MIN_SPONTANEOUS, 1.0 - model.driver_obedience)
    for g in range(1, top + 1):
        up, down, neutral = _rates(model, g)
        p_up = 1 - math.exp(-up * spontaneous * dt) if g < top else 0.0
        p_down = 1 - math.exp(-down * spontaneous * dt) if g > 1 else 0.0
        p_neutral = 1 - math.exp(-neutral * dt)
        boost_up = 1 - (1 - up_boost) * (1 - (cue_up if g == cued_gear else 0.0))
        boost_down = 1 - (1 - down_boost) * (1 - (cue_down if g == cued_gear else 0.0))
        if g < top:
            p_up = p_up + (1 - p_up) * boost_up
        if g > 1:
            p_down = p_down + (1 - p_down) * boost_down
        scale = min(1.0, 0.98 / max(p_up + p_down + p_neutral, 1e-12))
        p_up, p_down, p_neutral = p_up * scale, p_down * scale, p_neutral * scale
        out[g] += belief[g] * (1 - p_up - p_down - p_neutral)
        if g < top:
            out[g + 1] += belief[g] * p_up
        if g > 1:
            # mostly one gear down; a skip of two is a quarter as likely
            if g > 2:
                out[g - 1] += belief[g] * p_down * 0.8
                out[g - 2] += belief[g] * p_down * 0.2
            else:
                out[g - 1] += belief[g] * p_down
        out[0] += belief[g] * p_neutral
    # a driver's gear is only so predictable from the last one: forget toward the habits' shares
    forget = 1 - math.exp(-FORGET_PER_S * dt)
    if forget > 0 and model.habits is not None:  # with no habits there is nothing to forget toward
        shares = _shares(model)
        out = [(1 - forget) * b + forget * s for b, s in zip(out, shares)]
    return out


def _shares(model: SpeedModel) -> list[float]:
    """Share of moving time in each state 0..top (habits), or even shares."""
    top = model.top_gear
    if model.habits is None:
        return [1.0 / (top + 1)] * (top + 1)
    seconds = [model.habits.gear_seconds[g] if g <= model.habits.top_gear else 0.0 for g in range(top + 1)]
    total = sum(seconds) + top + 1
    return [(s + 1) / total for s in seconds]


def _start_belief(model: SpeedModel, speed_kmh: float) -> list[float]:
    """Before any history: stopped means neutral or 1st; moving means any gear (evidence decides)."""
    top = model.top_gear
    if speed_kmh < MOVING_KMH:
        return [0.5, 0.5] + [0.0] * (top - 1)
    return [1.0 / (top + 1)] * (top + 1)


def speed_step(state: SpeedOnlyState, t: float, speed_kmh: float, model: SpeedModel,
               cue: str | None = None) -> SpeedOnlyState:
    """Fold one fresh speed value (km/h at ``t`` s) in; ``cue`` is the cue on show now ("up", "down", None).

    A value not after the last one, or not finite, is ignored.
    """
    if not model.rpm_per_kmh or not math.isfinite(t) or not math.isfinite(speed_kmh) or speed_kmh < 0:
        return state
    if state.t is not None and t <= state.t:
        return state
    top = model.top_gear
    gap = None if state.t is None else t - state.t
    if gap is None or gap > MAX_GAP_S or len(state.belief) != top + 1:
        state = SpeedOnlyState()
        gap = None

    accel = _accel(state.recent, t, speed_kmh)
    recent = _keep(state.recent, t, speed_kmh)

    # the clutch dip between two accelerating stretches: an upshift
    accel_since, dip_since, dip_up = state.accel_since, state.dip_since, False
    dense = gap is not None and gap <= DIP_MAX_SPACING_S
    if not dense or accel is None:
        accel_since, dip_since = None, None
    elif accel >= DIP_ON_MS2:
        if dip_since is not None and DIP_MIN_S <= t - dip_since <= DIP_MAX_S:
            dip_up = True
        if accel_since is None or dip_since is not None:
            accel_since = t
        dip_since = None
    elif accel < DIP_OFF_MS2:
        if accel_since is not None and dip_since is None and t - accel_since >= DIP_MIN_RUN_S:
            dip_since = t
        elif dip_since is None or t - dip_since > DIP_MAX_S:
            accel_since, dip_since = None, None

    # keidash's cue: after OBEY_AFTER_S on show, an obedient driver has shifted (once per cue)
    cue_since, cue_used, cued_gear = state.cue_since, state.cue_used, state.cued_gear
    if cue != state.cue:
        cue_since, cue_used, cued_gear = t, False, state.gear
    # one upshift shows twice, as the cue it answered and as its clutch dip: count it once
    up_at = state.up_at
    recent_up = up_at is not None and t - up_at <= ONE_SHIFT_S
    up_boost = DIP_UP_CHANCE if dip_up and not recent_up else 0.0
    down_boost = cue_up = cue_down = 0.0
    if cue in (UP, DOWN) and not cue_used and t - cue_since >= OBEY_AFTER_S:
        cue_used = True  # the driver in the gear keidash cued in has answered it
        if cue == UP:
            cue_up = model.cue_weight
        else:
            cue_down = model.cue_weight
    if up_boost > 0 or cue_up > 0:
        up_at = t

    if gap is None:
        belief = _start_belief(model, speed_kmh)
        weight = 1.0
    else:
        belief = _predict(list(state.belief), model, gap, up_boost, down_boost, cued_gear, cue_up, cue_down)
        weight = min(1.0, gap / EVIDENCE_S)

    if speed_kmh < MOVING_KMH:
        # stopped or crawling: clutch in or 1st; a stop forgets the gear it came down in
        stopped = belief[0] + sum(belief[2:])
        belief = [stopped, belief[1]] + [0.0] * (top - 1)
        total = sum(belief)
        belief = [b / total for b in belief] if total > 0 else _start_belief(model, speed_kmh)
        gear = 0
    else:
        loglik = _evidence(model, speed_kmh, accel, weight)
        best = max(loglik)
        posterior = [b * math.exp(ll - best) for b, ll in zip(belief, loglik)]
        total = sum(posterior)
        belief = [p / total for p in posterior] if total > 0 else [math.exp(ll - best) for ll in loglik]
        belief = [max(b, 1e-9) for b in belief]  # never rule a state out for good
        total = sum(belief)
        belief = [b / total for b in belief]
        gear = max(range(top + 1), key=lambda g: (belief[g], -g))

    return SpeedOnlyState(
        gear=gear, belief=tuple(belief), t=t, speed_kmh=speed_kmh, accel_ms2=accel, recent=recent,
        accel_since=accel_since, dip_since=dip_since, upshift_dips=state.upshift_dips + dip_up,
        cue=cue, cue_since=cue_since, cue_used=cue_used, cued_gear=cued_gear, up_at=up_at)


def rpm_estimate(state: SpeedOnlyState, speed_kmh: float, model: SpeedModel) -> float | None:
    """Engine rpm in the tracked gear at ``speed_kmh`` (never below idle): idle for state 0, None
    while unknown."""
    if state.gear is None or not model.rpm_per_kmh:
        return None
    if state.gear == 0:
        return model.limits.idle_rpm
    # below idle in gear the engine does not turn slower: the clutch slips (or it stalls)
    return max(model.limits.idle_rpm, model.rpm_per_kmh[state.gear - 1] * speed_kmh)
