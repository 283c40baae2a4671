"""Gear and rpm from road speed alone, for trucks with no rpm signal. Pure and deterministic.

Many kei trucks give keidash no rpm at all: only road speed (VSS pulses, OBD or
GPS). With the gear ratios known (rpm per km/h in each gear, given or learned
beforehand) the rpm follows from the gear, so the task is to track the gear.

Method: a forward filter (an online hidden-Markov filter) over the states
0 (clutch in / neutral while moving) and 1..top. At each fresh speed value
:func:`speed_step` moves the belief by the chance of a shift since the last
value (transition) and weighs it by what the speed and acceleration say about
each gear (evidence); the gear shown is the most probable state. Only data up
to now is used, so it runs live, adds no lag, and a replay gives the same gears
every time.

**With the driver's habits** (:class:`Habits`, learned by :func:`learn_habits`
from earlier drives whose gears are known, e.g. drives with rpm) the transition
carries the information, as it does for a driver:

- **Shift hazards.** How often this driver left each state, for which state, per
  second spent in it, at each speed (5 km/h bins) and while slowing, steady or
  speeding up (:func:`accel_class`): a driver shifts up while speeding up at the
  speeds where they always do, holds the gear while cruising, declutches or shifts
  down while slowing. A gear held at a steady speed stays held: the speed of a
  cruise is not new evidence every second.
- **Where the habits saw little** (a speed they never drove, a rare state) the
  hazards lean on a prior of :data:`HAZARD_PSEUDO_S` seconds: one-gear shifts
  (two down, rarely) toward the rpm this driver usually holds while slowing,
  steady or speeding up (a normal in log rpm from the habits' in-gear time),
  never past the red line or far below idle. So at 90 km/h a town driver's
  truck settles in the gear whose rpm is their usual one, not the one they used
  at the fastest speed they drove.
- **Evidence**: the rpm limits (a gear that would turn the engine past the red
  line or well below idle is not the gear); the share of each state's time
  spent at this speed, counted at most once per :data:`SPEED_EVIDENCE_S` and
  weighed :data:`SPEED_EVIDENCE_WEIGHT` (a steady speed repeated 10 times a
  second is not 10 opinions); the physics envelope below when known.
- **A stop** leaves the clutch in or 1st; a launch then engages as the habits
  say drivers engage at that speed (1st from a standstill).

**Without habits** (a profile with ratios and no drives yet) the filter assumes
keidash's premise, a driver who follows its cues: few shifts of their own
(:data:`DEFAULT_UP_PER_S` x the share of cues they ignore), any rpm between the
lugging limit and the red line as likely.

In both cases, each optional:

- **Physics** when the profile has the engine's peak figures and a mass is
  given: a gear cannot deliver more acceleration at this speed than its
  full-load torque allows (:func:`keidash.profiles.engine.full_load_torque_nm`, minus
  rolling and air drag of :class:`keidash.profiles.body.Body`).
- **The clutch dip of an upshift**: with speed sampled densely enough
  (spacing under :data:`DIP_MAX_SPACING_S`), an accelerating stretch, then
  0.25-1.5 s of flat or falling speed, then acceleration again marks an upshift.
- **keidash's own cues**: a cue shown for :data:`OBEY_AFTER_S` moves the belief
  one gear by the driver's obedience (given, learned, or :data:`DEFAULT_OBEDIENCE`
  without habits). Habits learned from drives with no cue recorded already hold every
  shift this driver makes, so with those a cue moves nothing unless an obedience is given
  (:attr:`SpeedModel.cue_weight`). An automatic (:attr:`SpeedModel.automatic`) shifts by
  itself: cues move nothing, and without habits its own shifts are not scaled down.

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
#: without habits, a sample counts as one full piece of evidence per this many seconds it covers
EVIDENCE_S = 0.2
#: a gap longer than this (s) restarts the filter's timing (a dropout, a new log)
MAX_GAP_S = 10.0
#: a state with less belief than this is not propagated through the shift hazards (it keeps it)
NEGLIGIBLE = 1e-6
#: rows further apart than this (s) hold no shift hazard when learning
MAX_HAZARD_GAP_S = 3.0
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
#: a cue showing this long (s) is when an obedient driver has shifted
OBEY_AFTER_S = 0.8
#: a cue still showing this long (s) after it moved the belief is a new one: the driver has shifted,
#: looked again and still sees it (sim/driver.py's obedient driver waits 1.5 s, then shifts in ~0.5 s)
REPEAT_CUE_S = 2.0
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
#: chance that a detected dip was an upshift; with habits, whose hazards already expect the upshifts
#: at the speeds this driver makes them, a dip only times one, and noise (GPS speed at 5-10 Hz) makes
#: false dips (0.3 on bench/speedonly_eval.py's GPS-like speeds and virtual manual drives)
DIP_UP_CHANCE = 0.6
DIP_UP_CHANCE_WITH_HABITS = 0.3
#: even a driver who follows every cue shifts on their own sometimes (to stop, on a hill): this share
#: of the default shift rates is kept however obedient they are
MIN_SPONTANEOUS = 0.1
#: a cue followed and a clutch dip this close together (s) are one upshift, not two
ONE_SHIFT_S = 3.0
#: physics: acceleration above the full-load envelope by more than this (m/s^2) is implausible
ENVELOPE_MARGIN_MS2 = 0.25
ENVELOPE_SIGMA_MS2 = 0.15
#: with the clutch in the truck only rolls: faster than this (m/s^2; a 3 % downhill's pull less the
#: rolling resistance) it is being driven
NEUTRAL_MAX_ACCEL_MS2 = 0.25
#: rpm limits: past redline x this, or under idle x this, the gear is implausible
OVER_REV_SHARE = 1.08
UNDER_IDLE_SHARE = 0.75
LIMIT_PENALTY = 6.0  # log-likelihood lost per 10 % beyond a limit
#: the driver's rpm habit (where the shift prior drifts) is a normal in log rpm at least this wide
RPM_HABIT_MIN_SPREAD = 0.1
#: with no habits: how fast (log space) rpm outside lug..upshift grows unlikely
NO_HABIT_WIDTH = 0.2
#: acceleration classes of the shift hazards: slowing below the first edge, speeding up above the
#: second (m/s^2), steady between; the fourth class is 'acceleration unknown'
ACCEL_CLASS_EDGES = (-0.15, 0.15)
SLOWING, STEADY, SPEEDING_UP, UNKNOWN_ACCEL = range(4)
ACCEL_CLASSES = 4
#: the shift hazards of a cell (state, speed bin, acceleration class) lean on the prior as if it had
#: been seen for this many seconds in the cell (2 s: the learned rates rule where a driver spent a
#: few seconds; chosen on the logs of bench/speedonly_eval.py, 1-5 s within a point of each other)
HAZARD_PSEUDO_S = 2.0
#: the prior: a one-gear shift toward more usual rpm at this rate (per s), away from it in
#: proportion to how much less usual the rpm gets (a Metropolis step: the prior's long-run share of
#: each gear is the driver's rpm habit); a two-gear downshift a quarter as often
SHIFT_PRIOR_PER_S = 1.0
SKIP_SHARE = 0.25
#: neighbouring speed bins count this much toward a cell's shift hazards
NEIGHBOUR_WEIGHT = 0.5
#: with habits, the share of each state's time at this speed is one piece of evidence per this many
#: seconds (a steady speed is not new evidence at every sample), weighed this much against the
#: hazards (chosen on bench/speedonly_eval.py: 0.15 per s held the real logs, their GPS-like
#: resamplings and the virtual manual drives together; more favours the Ford's dense labels)
SPEED_EVIDENCE_S = 1.0
SPEED_EVIDENCE_WEIGHT = 0.15


@dataclass(frozen=True)
class Habits:
    """What a driver does, learned from a drive whose gears are known. Immutable (a few thousand numbers).

    ``seconds[g][v][a]`` is the time (s) spent in state ``g`` (0 = clutch in / neutral while
    moving, 1..top) at speed bin ``v`` (SPEED_BIN_KMH wide) and acceleration bin ``a``
    (ACCEL_EDGES, last bin = acceleration unknown). ``moves[g][g2][v][c]`` counts the changes from
    state ``g`` to ``g2`` seen at speed bin ``v`` and acceleration class ``c`` (:func:`accel_class`)
    at the end of the interval they happened in, ``exposure[g][v][c]`` the seconds spent in ``g``
    over intervals ending in that cell: their ratio is the driver's shift hazard there. Rates are
    per second spent in a gear.
    """

    seconds: tuple[tuple[tuple[float, ...], ...], ...]  # [state][speed bin][accel bin], s
    up_per_s: tuple[float, ...]  # [state] upshifts per second in that gear (index 0 unused)
    down_per_s: tuple[float, ...]  # [state] downshifts per second in that gear
    neutral_per_s: tuple[float, ...]  # [state] clutch-in / neutral entries per second while moving
    engage_per_s: float  # leaving state 0 while moving, per second in it
    upshift_kmh: tuple[float | None, ...]  # [state] median speed of upshifts out of that gear
    downshift_kmh: tuple[float | None, ...]  # [state] median speed of downshifts out of that gear
    obedience: float | None = None  # share of cues followed within a few seconds; None: never saw one
    moves: tuple[tuple[tuple[tuple[int, ...], ...], ...], ...] = ()  # [state][to state][speed bin][class]
    exposure: tuple[tuple[tuple[float, ...], ...], ...] = ()  # [state][speed bin][class], s

    @cached_property
    def gear_seconds(self) -> tuple[float, ...]:
        """Time (s) in each state 0..top while moving."""
        return tuple(sum(sum(cell) for cell in table) for table in self.seconds)

    @property
    def top_gear(self) -> int:
        return len(self.seconds) - 1

    @cached_property
    def speed_logliks(self) -> tuple[tuple[float, ...], ...]:
        """[state][speed bin]: log p(speed bin | state), the share of the state's time at that speed
        with the neighbouring bins blended in (half and a quarter each)."""
        out = []
        for g, table in enumerate(self.seconds):
            at = [sum(row) for row in table] + [0.0]  # [-1] is the bin below the first
            total = self.gear_seconds[g] + HABIT_PSEUDO_S
            out.append(tuple(math.log((0.5 * at[v] + 0.25 * (at[v - 1] + at[v + 1]) + HABIT_PSEUDO_S / SPEED_BINS) / total)
                             for v in range(SPEED_BINS)))
        return tuple(out)

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
    automatic: bool = False  # an automatic gearbox shifts by itself: cues move nothing

    @property
    def top_gear(self) -> int:
        return len(self.rpm_per_kmh)

    @cached_property
    def learned(self) -> Habits | None:
        """The habits when they fit this gearbox and hold shift hazards, else None (the no-habit filter)."""
        h = self.habits
        return h if h is not None and h.top_gear == self.top_gear and h.moves else None

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
        a cue would count a shift twice), and 0 for an automatic."""
        if self.automatic or (self.obedience is None and self.habits is not None and self.habits.obedience is None):
            return 0.0
        return self.driver_obedience

    @cached_property
    def rpm_habit(self) -> tuple[float, float] | None:
        """(mean, spread) of log rpm over the driver's in-gear time, from the habits and the ratios:
        the engine speed this driver holds, whatever the road speed. None without habits."""
        h = self.habits
        if h is None or h.top_gear != self.top_gear:
            return None
        return _log_rpm_normal(self.rpm_per_kmh, ((g, v, sum(row)) for g in range(1, self.top_gear + 1)
                                                  for v, row in enumerate(h.seconds[g])))

    @cached_property
    def class_rpm_habits(self) -> tuple[tuple[float, float] | None, ...]:
        """The rpm habit while slowing, steady, speeding up, and over all (index UNKNOWN_ACCEL)."""
        h = self.learned
        if h is None:
            return (self.rpm_habit,) * ACCEL_CLASSES
        out = []
        for c in range(ACCEL_CLASSES):
            cells = ((g, v, sum(row) if c == UNKNOWN_ACCEL else row[c])
                     for g in range(1, self.top_gear + 1) for v, row in enumerate(h.exposure[g]))
            out.append(_log_rpm_normal(self.rpm_per_kmh, cells) or self.rpm_habit)
        return tuple(out)

    @cached_property
    def _rate_tables(self) -> dict:
        return {}  # (speed bin, accel class) -> shift rates, filled as the filter meets them


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


def accel_class(accel_ms2: float | None) -> int:
    """SLOWING, STEADY, SPEEDING_UP (ACCEL_CLASS_EDGES), or UNKNOWN_ACCEL."""
    if accel_ms2 is None:
        return UNKNOWN_ACCEL
    if accel_ms2 < ACCEL_CLASS_EDGES[0]:
        return SLOWING
    return STEADY if accel_ms2 <= ACCEL_CLASS_EDGES[1] else SPEEDING_UP


def _log_rpm_normal(rpm_per_kmh: tuple[float, ...],
                    cells: Iterable[tuple[int, int, float]]) -> tuple[float, float] | None:
    """(mean, spread) of log rpm over (gear, speed bin, seconds) cells, rpm at each bin's middle."""
    weights, logs = [], []
    for g, v, seconds in cells:
        if seconds > 0:
            weights.append(seconds)
            logs.append(math.log(rpm_per_kmh[g - 1] * (v + 0.5) * SPEED_BIN_KMH))
    total = sum(weights)
    if total <= 0:
        return None
    mean = sum(w * x for w, x in zip(weights, logs)) / total
    spread = math.sqrt(sum(w * (x - mean) ** 2 for w, x in zip(weights, logs)) / total)
    return mean, max(spread, RPM_HABIT_MIN_SPREAD)


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
                 cues: Iterable[tuple[float, str | None]] | None = None, gears: int | None = None) -> Habits:
    """A driver's habits from a drive with known gears: (t s, speed km/h, gear) in time order.

    Gear 0 is neutral / clutch in; negative gears (reverse) and None are skipped.
    Pass fresh speed values only (acceleration is taken between them, as when tracking).
    ``cues``, (t, cue shown from t on), if keidash's cues were on show during the drive: the
    share of up/down cues followed by that shift within 3 s is the driver's obedience.
    ``gears``: the gearbox's forward gears, when known: the habits then fit it even if the drive
    never used the top gear (else the highest gear seen is taken for the top).
    """
    # one pass, the rows not held (a long log streams through): each row's share of time is the
    # gap to the next, so it is counted when the next arrives; a gear seen grows the tables
    top = gears or 0
    seconds: list[list[list[float]]] = []
    in_gear: list[float] = []
    ups: list[int] = []
    downs: list[int] = []
    neutrals: list[int] = []
    up_speeds: list[list[float]] = []
    down_speeds: list[list[float]] = []
    moves: list[list[list[list[int]]]] = []
    exposure: list[list[list[float]]] = []

    def grow(g: int) -> None:
        while len(in_gear) <= g:
            seconds.append([[0.0] * ACCEL_BINS for _ in range(SPEED_BINS)])
            in_gear.append(0.0)
            ups.append(0)
            downs.append(0)
            neutrals.append(0)
            up_speeds.append([])
            down_speeds.append([])
            exposure.append([[0.0] * ACCEL_CLASSES for _ in range(SPEED_BINS)])
            for row in moves:  # every "from" gear gets the new "to" gear
                row.append([[0] * ACCEL_CLASSES for _ in range(SPEED_BINS)])
            moves.append([[[0] * ACCEL_CLASSES for _ in range(SPEED_BINS)] for _ in range(len(in_gear))])

    grow(top)
    engages = 0
    shifts: list[tuple[float, str]] = []
    recent: tuple[tuple[float, float], ...] = ()
    last_gear = None  # last forward gear while moving
    prev_state, prev_t = None, 0.0
    pending: tuple[float, int, int, int] | None = None  # (t, gear, speed bin, accel bin) awaiting its time share
    for t, v, g in samples:
        if g is None or g < 0 or v is None:
            continue
        t, v, g = float(t), float(v), int(g)
        if pending is not None:
            dt = max(min(t - pending[0], 3.0), 0.0)
            seconds[pending[1]][pending[2]][pending[3]] += dt
            in_gear[pending[1]] += dt
            pending = None
        grow(g)
        accel = _accel(recent, t, v)
        recent = _keep(recent, t, v)
        if v < MOVING_KMH:
            last_gear, prev_state = None, None
            continue
        if prev_state is not None and t - prev_t <= MAX_HAZARD_GAP_S:
            # the interval since the last row, in the cell (speed, acceleration) it ended in: as tracked
            v_bin, c = speed_bin(v), accel_class(accel)
            exposure[prev_state][v_bin][c] += t - prev_t
            if g != prev_state:
                moves[prev_state][g][v_bin][c] += 1
        prev_t = t
        pending = (t, g, speed_bin(v), accel_bin(accel))
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
    top = len(in_gear) - 1

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
        moves=tuple(tuple(tuple(tuple(cell) for cell in row) for row in per_to) for per_to in moves),
        exposure=tuple(tuple(tuple(round(s, 3) for s in cell) for cell in per_gear) for per_gear in exposure),
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


def _beyond_limits(model: SpeedModel, gear: int, speed_kmh: float) -> float:
    """How far (log rpm) ``gear`` at ``speed_kmh`` is past the red line or below idle (0 within)."""
    limits = model.limits
    rpm = model.rpm_per_kmh[gear - 1] * speed_kmh
    return max(0.0, math.log(rpm / (limits.redline_rpm * OVER_REV_SHARE)),
               math.log(limits.idle_rpm * UNDER_IDLE_SHARE / rpm))


def _evidence(model: SpeedModel, speed_kmh: float, accel: float | None, weight: float,
              speed_weight: float) -> list[float]:
    """Log-likelihood of the speed and acceleration in each state 0..top."""
    top, limits = model.top_gear, model.limits
    habits = model.learned
    v_bin = speed_bin(speed_kmh)
    low, high = habits.speed_bin_range if habits is not None else (0, 0)
    out = [0.0] * (top + 1)
    for g in range(top + 1):
        ll = 0.0
        if habits is not None:
            if low <= v_bin <= high:  # beyond the speeds the habits cover, the hazards' prior speaks
                ll += SPEED_EVIDENCE_WEIGHT * speed_weight * habits.speed_logliks[g][v_bin]
        elif g > 0:  # no habits: any rpm between the lugging limit and the red line is as likely
            # (not the upshift point: a driver answering a cue pulls on past it while reacting)
            rpm = model.rpm_per_kmh[g - 1] * speed_kmh
            outside = max(0.0, math.log(limits.lug_rpm / rpm), math.log(rpm / limits.redline_rpm))
            ll -= weight * (outside / NO_HABIT_WIDTH) ** 2
        else:
            ll -= weight * 2.0  # no habits: clutch in while moving is the exception
        if g == 0 and accel is not None and accel > NEUTRAL_MAX_ACCEL_MS2:
            # clutch in, nothing drives the wheels: the truck cannot speed up (beyond a downhill's pull)
            ll -= 0.5 * weight * ((accel - NEUTRAL_MAX_ACCEL_MS2) / ENVELOPE_SIGMA_MS2) ** 2
        if g > 0:
            ll -= LIMIT_PENALTY * 10 * _beyond_limits(model, g, speed_kmh)
            envelope = max_accel_ms2(model, g, speed_kmh)
            if envelope is not None and accel is not None:
                excess = accel - max(envelope, 0.0) - ENVELOPE_MARGIN_MS2
                if excess > 0:
                    ll -= 0.5 * (excess / ENVELOPE_SIGMA_MS2) ** 2
        out[g] = ll
    return out


def _rpm_target(model: SpeedModel, speed_kmh: float, c: int) -> list[float]:
    """How usual each state's rpm is for this driver at this speed and acceleration class (state 0: 1),
    nothing past the rpm limits: where the hazards' prior drifts."""
    habit = model.class_rpm_habits[c]
    if habit is None:  # keidash's default driver: between the lugging limit and the upshift point
        limits = model.limits
        habit = 0.5 * (math.log(limits.lug_rpm) + math.log(limits.upshift_rpm)), 0.3
    mean, spread = habit
    out = [1.0]
    for g in range(1, model.top_gear + 1):
        z = (math.log(model.rpm_per_kmh[g - 1] * speed_kmh) - mean) / spread
        out.append(max(1e-12, math.exp(-0.5 * z * z - LIMIT_PENALTY * 10 * _beyond_limits(model, g, speed_kmh))))
    return out


def _shift_rates(model: SpeedModel, v_bin: int, c: int) -> tuple[tuple[float, ...], ...]:
    """rates[g][g2]: moves per second from state g to g2 at this speed bin and acceleration class, what
    the habits saw there and the prior (HAZARD_PSEUDO_S seconds of it). Cached on the model."""
    key = (v_bin, c)
    tables = model._rate_tables
    if key in tables:
        return tables[key]
    h = model.learned
    top = model.top_gear
    target = _rpm_target(model, (v_bin + 0.5) * SPEED_BIN_KMH, c)
    cells = [(b, w) for b, w in ((v_bin, 1.0), (v_bin - 1, NEIGHBOUR_WEIGHT), (v_bin + 1, NEIGHBOUR_WEIGHT))
             if 0 <= b < SPEED_BINS]

    def seen(table) -> float:
        if c == UNKNOWN_ACCEL:
            return sum(w * sum(table[b]) for b, w in cells)
        return sum(w * table[b][c] for b, w in cells)
    rates = []
    for g in range(top + 1):
        time = seen(h.exposure[g])
        row = [0.0] * (top + 1)
        for g2 in range(top + 1):
            if g2 == g:
                continue
            if g == 0:  # engaging: into the gears whose rpm is usual here
                prior = h.engage_per_s * target[g2] / sum(target[1:]) if g2 else 0.0
            elif g2 == 0:
                prior = h.neutral_per_s[g]
            elif abs(g2 - g) == 1 or g2 == g - 2:
                prior = SHIFT_PRIOR_PER_S * min(1.0, target[g2] / target[g]) * (SKIP_SHARE if g2 == g - 2 else 1.0)
            else:
                prior = 0.0
            row[g2] = (seen(h.moves[g][g2]) + HAZARD_PSEUDO_S * prior) / (time + HAZARD_PSEUDO_S)
        rates.append(tuple(row))
    tables[key] = tuple(rates)
    return tables[key]


def _hazard_predict(belief: list[float], model: SpeedModel, dt: float, speed_kmh: float,
                    accel: float | None) -> list[float]:
    """The belief after ``dt`` s of the driver's shifts at this speed and acceleration (habits). The
    rates are those of the two nearest speed bins' middles, interpolated."""
    c = accel_class(accel)
    position = min(SPEED_BINS - 1.0, max(0.0, max(speed_kmh, MOVING_KMH) / SPEED_BIN_KMH - 0.5))
    low = min(int(position), SPEED_BINS - 2)
    share = position - low
    below, above = _shift_rates(model, low, c), _shift_rates(model, low + 1, c)
    out = [0.0] * len(belief)
    for g, b in enumerate(belief):
        if b < NEGLIGIBLE:  # a state ruled out moves nothing worth computing
            out[g] += b
            continue
        row = [(1 - share) * x + share * y for x, y in zip(below[g], above[g])]
        total = sum(row)
        leave = b * (1 - math.exp(-total * dt)) if total > 0 else 0.0
        out[g] += b - leave
        if leave > 0:
            for g2, r in enumerate(row):
                if r > 0:
                    out[g2] += leave * r / total
    return out


def _predict(belief: list[float], model: SpeedModel, dt: float, up_boost: float, down_boost: float,
             cued_gear: int | None = None, cue_up: float = 0.0, cue_down: float = 0.0) -> list[float]:
    """The belief after ``dt`` s of the shifts a driver with no known habits makes on their own;
    ``*_boost`` is an extra chance of that shift from any gear, ``cue_*`` an extra chance of it from
    ``cued_gear`` only (the gear keidash cued in). With habits, call it with ``dt`` 0 for the boosts."""
    top = model.top_gear
    out = [0.0] * (top + 1)
    p_out = 1 - math.exp(-DEFAULT_ENGAGE_PER_S * dt)
    out[0] += belief[0] * (1 - p_out)
    for g in range(1, top + 1):  # leaving neutral: into any gear, the evidence decides which
        out[g] += belief[0] * p_out / top
    # an obedient driver shifts when keidash says so (the cue boost), seldom on their own; an automatic
    # shifts on its own
    spontaneous = 1.0 if model.automatic else max(MIN_SPONTANEOUS, 1.0 - model.driver_obedience)
    for g in range(1, top + 1):
        p_up = 1 - math.exp(-DEFAULT_UP_PER_S * spontaneous * dt) if g < top else 0.0
        p_down = 1 - math.exp(-DEFAULT_DOWN_PER_S * spontaneous * dt) if g > 1 else 0.0
        p_neutral = 1 - math.exp(-DEFAULT_NEUTRAL_PER_S * dt)
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
    return out


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

    # keidash's cue: after OBEY_AFTER_S on show, an obedient driver has shifted (once per cue and
    # gear: the same cue still showing in the gear it moved the belief to is a new one, as the
    # driver reads it; sim/driver.py's obedient driver follows the same rule)
    cue_since, cue_used, cued_gear = state.cue_since, state.cue_used, state.cued_gear
    if cue != state.cue:
        cue_since, cue_used, cued_gear = t, False, state.gear
    elif cue_used and state.gear != cued_gear:  # read again once it has stayed on REPEAT_CUE_S
        cue_since, cue_used, cued_gear = t + REPEAT_CUE_S - OBEY_AFTER_S, False, state.gear
    # one upshift shows twice, as the cue it answered and as its clutch dip: count it once
    up_at = state.up_at
    recent_up = up_at is not None and t - up_at <= ONE_SHIFT_S
    dip_chance = DIP_UP_CHANCE if model.learned is None else DIP_UP_CHANCE_WITH_HABITS
    up_boost = dip_chance if dip_up and not recent_up else 0.0
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
        weight = speed_weight = 1.0
    else:
        if model.learned is not None:
            belief = _hazard_predict(list(state.belief), model, gap, speed_kmh, accel)
            if up_boost or cue_up or cue_down:
                belief = _predict(belief, model, 0.0, up_boost, down_boost, cued_gear, cue_up, cue_down)
        else:
            belief = _predict(list(state.belief), model, gap, up_boost, down_boost, cued_gear, cue_up, cue_down)
        weight = min(1.0, gap / EVIDENCE_S)
        speed_weight = min(1.0, gap / SPEED_EVIDENCE_S)

    if speed_kmh < MOVING_KMH:
        # stopped or crawling: clutch in or 1st; a stop forgets the gear it came down in
        stopped = belief[0] + sum(belief[2:])
        belief = [stopped, belief[1]] + [0.0] * (top - 1)
        total = sum(belief)
        belief = [b / total for b in belief] if total > 0 else _start_belief(model, speed_kmh)
        gear = 0
    else:
        loglik = _evidence(model, speed_kmh, accel, weight, speed_weight)
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
