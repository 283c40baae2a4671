"""How much later the road speed is measured than its stamp says, relative to the rpm.

Pairing rpm with speed by time (:func:`keidash.estimate.gears.pair_step`) takes each
reading's stamp as its instant. A GPS receiver's speed is not: the fix is computed,
then sent over a serial line (a 9600-baud burst of RMC, GGA and GSA takes 0.1-0.4 s), and
a phone's location service filters it further; a logged "GPS Speed" column lags the
wheels by 0.3-1.5 s. In a gear with the clutch home the engine turns at a fixed
multiple of the wheels, so ``ln(rpm) - ln(speed)`` is constant; paired across a lag, it
swings with every acceleration (``lag x dv/dt / v``: 25 % at 0.5 s pulling away in 1st)
and no ratio is held long enough to learn, nor read.

The lag is read off the drive itself. Each rpm reading's log ratio is taken against the
speed interpolated at ``t + L`` for every candidate lag L in :data:`LAGS`, and each L
scores how much that ratio moves over a second (:data:`BASE_S`; each step's square,
capped at :data:`STEP_CAP`: a shift or a slipping clutch moves every candidate's ratio by
far more, and counts the same for all). In a gear the true lag holds the ratio still
while the truck speeds up and slows down; whole-km/h steps and rpm noise move every
candidate alike. The best L is taken once it beats no lag by :data:`MIN_T` standard
errors over at least :data:`MIN_STEPS` steps; a negative L is an rpm later than the speed
(an engine note heard over a window). Only for a manual (the estimator's choice): behind a
torque converter the ratio rises with the engine's pull, as a late speed makes it, and a
lag that is not there would be read. Pure, bounded: a few seconds of speed readings and
two sums per candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..readings import RPM, SPEED

#: candidate lags (s) of the speed behind the rpm: -0.5 .. 1.5 s in 0.05 s steps
LAGS = tuple(round(0.05 * i, 2) for i in range(-10, 31))
_ZERO = LAGS.index(0.0)
#: an rpm reading is scored only with every speed it needs at least this high (km/h): below it
#: whole km/h (7 % at 14 km/h) and a GPS's wander at a crawl swamp the ratio
MIN_KMH = 12.0
#: at most one rpm reading is scored per this long (s): bounded cost at any poll rate
EVERY_S = 0.2
#: each scored rpm reading's ratios are compared with those of the one about this long (s) before it:
#: a lag shifts the ratio by lag x acceleration / speed, which changes over seconds, not tenths
BASE_S = 1.0
#: ... at most this long before it (s): no step across a gap
MAX_STEP_S = 1.6
#: a step's square is capped at this (ln units, squared): a shift moves the ratio by 15-70 %
STEP_CAP = 0.06
#: the best lag is taken after at least this many steps (half a minute above MIN_KMH at 5 Hz) ...
MIN_STEPS = 150
#: ... when it beats no lag by at least this many standard errors ...
MIN_T = 3.0
#: ... and is at least this far (s) from no lag: a pairing off by less changes little
MIN_LAG_S = 0.15
#: speed readings kept (s) behind the newest: the largest lag and a margin
KEEP_S = max(LAGS) + 1.5


@dataclass(frozen=True)
class LagState:
    """The recent speed readings, the rpm readings waiting for them, and the sums per lag."""

    speed: tuple[tuple[float, float], ...] = ()  # (t, ln km/h) of recent speed readings
    waiting: tuple[tuple[float, float], ...] = ()  # (t, ln rpm) not yet scored: the speed must pass t + max lag
    last: tuple[tuple[float, tuple[float, ...]], ...] = ()  # (t, ratio per lag) of the scored rpm readings
    #                                                         of the last MAX_STEP_S
    scored_at: float = -math.inf  # t of the last rpm reading taken for scoring
    gain: tuple[float, ...] = (0.0,) * len(LAGS)  # sum of (capped step^2 at no lag - at this lag): the best
    #                                                  lag moves the ratio least, so gains most ...
    gain_sq: tuple[float, ...] = (0.0,) * len(LAGS)  # ... and of its squares: is the gain real?
    steps: int = 0


def lag_step(state: LagState, channel: str, t: float, value: float) -> LagState:
    """Fold one reading (channel RPM or SPEED of keidash.readings, its stamp t in s) into the evidence."""
    if channel == RPM:
        if value <= 0.0 or t - state.scored_at < EVERY_S:
            return state
        # (a reading no speed has come for within KEEP_S never will be scored: a truck with a tach
        # and no speed source keeps none)
        waiting = tuple(w for w in state.waiting if t - w[0] <= KEEP_S) + ((t, math.log(value)),)
        return LagState(state.speed, waiting, state.last, t, state.gain, state.gain_sq, state.steps)
    if channel != SPEED:
        return state
    kept = tuple(r for r in state.speed if t - r[0] <= KEEP_S)
    speed = kept + ((t, math.log(value) if value >= MIN_KMH else -math.inf),)
    state = LagState(speed, state.waiting, state.last, state.scored_at, state.gain,
                     state.gain_sq, state.steps)
    while state.waiting and state.waiting[0][0] + LAGS[-1] <= t:
        state = _score(state)
    return state


def _speeds_at(speed: tuple[tuple[float, float], ...], times: list[float]) -> list[float] | None:
    """ln km/h interpolated at each of the rising ``times``; None when one lies outside the readings
    or between two where one is under MIN_KMH."""
    out, k = [], 0
    for t in times:
        while k + 1 < len(speed) and speed[k + 1][0] < t:
            k += 1
        if k + 1 >= len(speed) or speed[k][0] > t:
            return None
        (t_a, v_a), (t_b, v_b) = speed[k], speed[k + 1]
        if v_a == -math.inf or v_b == -math.inf:
            return None
        out.append(v_a if t_b == t_a else v_a + (v_b - v_a) * (t - t_a) / (t_b - t_a))
    return out


def _score(state: LagState) -> LagState:
    (t, log_rpm), waiting = state.waiting[0], state.waiting[1:]
    speeds = _speeds_at(state.speed, [t + lag for lag in LAGS])
    if speeds is None:
        return LagState(state.speed, waiting, (), state.scored_at, state.gain,
                        state.gain_sq, state.steps)
    ratios = [log_rpm - v for v in speeds]
    recent = tuple(r for r in state.last if t - r[0] <= MAX_STEP_S)
    base = [r for r in recent if t - r[0] >= BASE_S]
    last = recent + ((t, tuple(ratios)),)
    if not base:
        return LagState(state.speed, waiting, last, state.scored_at, state.gain,
                        state.gain_sq, state.steps)
    steps = [min((a - b) ** 2, STEP_CAP ** 2) for a, b in zip(ratios, base[-1][1])]
    zero = steps[_ZERO]
    return LagState(state.speed, waiting, last, state.scored_at,
                    tuple(g + (zero - x) for g, x in zip(state.gain, steps)),
                    tuple(g + (zero - x) ** 2 for g, x in zip(state.gain_sq, steps)),
                    state.steps + 1)


def lag_estimate(state: LagState) -> float:
    """The speed's lag behind the rpm (s) once the evidence says so; else 0.0."""
    if state.steps < MIN_STEPS:
        return 0.0
    best = max(range(len(LAGS)), key=state.gain.__getitem__)
    if abs(LAGS[best]) < MIN_LAG_S:
        return 0.0
    n = state.steps
    mean = state.gain[best] / n
    variance = max(state.gain_sq[best] / n - mean * mean, 0.0)
    if mean <= 0.0 or mean < MIN_T * math.sqrt(variance / n):
        return 0.0
    return LAGS[best]


def speed_lag(samples) -> float:
    """The lag :func:`lag_estimate` finds over a whole recorded drive's rpm and speed readings
    (keidash.replay Sample rows); 0.0 when it finds none."""
    state = LagState()
    for sample in samples:
        for channel in sample.fresh:
            value = sample.rpm if channel == RPM else sample.speed_kmh if channel == SPEED else None
            if value is not None:
                state = lag_step(state, channel, sample.t, value)
    return lag_estimate(state)
