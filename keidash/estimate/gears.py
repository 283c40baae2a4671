"""Gear tracking from road speed and engine rpm: a causal HMM forward filter.

One call of :func:`track` per new (speed, rpm) pair folds it into a small
posterior over the hidden states *neutral / clutch in* (0) and each forward
gear (1..top), and returns the gear the dash shows. Pure and deterministic: time
arrives with the data, nothing here reads a clock; plain Python over at most
``top + 1`` states, cheap enough for 100 calls a second on a Pi Zero 2 W.

Why not the nearest gear ratio per sample: a slipping clutch or an unlocked
torque converter makes the engine turn *faster* than the gear ratio says, by a
lot at low road speed, so the ratio wanders far above the gear it is in (coasting
down in 2nd of an automatic looks like 1st by its ratio) while it can hardly be
below it. The model, with ``x = ln(observed rpm per km/h / gear's rpm per km/h)``:

- Emission of a forward gear = *locked* + *slipping*. Locked: a narrow Gaussian
  in ``x`` (the gear's spread), and only while the ratio is steady (compared with
  its own recent average, time constant ``settle_s``), so a ratio sweeping
  through another gear's value during slip is not taken for that gear. Slipping:
  for ``x >= 0`` a density decaying with the slip (``slip_scale``) down to a
  floor (``slip_floor``: a launch slips a lot), so of the gears the engine is
  faster than, the one needing least slip is likeliest but the others stay
  possible; below 0 only a narrow Gaussian flank. One-sided, so the engine
  turning slower than a gear allows rules that gear out: that is how an upshift
  shows at once.
- Emission of neutral / clutch in: the engine is free of the wheels, so any
  ratio, likelier with the engine near idle. A ratio below top gear's (coasting
  with the clutch in) is explained by neutral only.
- Transitions per second, not per sample (so 100 Hz and 0.5 Hz logs agree): a
  gear is held for ``hold_s`` on average; a change goes to an adjacent gear
  likelier than a skip, to neutral from any gear, and from neutral to any gear.
- Evidence is weighed by time, not by pair (``evidence_s``): pairs 10 ms apart
  are not independent, and a 100 Hz log must not be 10 times as sure as a 10 Hz one.
- Below ``moving_kmh`` the ratio means nothing: the posterior relaxes towards
  the standing prior (neutral, then 1st on the launch).
- The shown gear is the most probable state once it has been so for
  ``dwell_s`` (hysteresis against shift transients).

A downshift is seen when the ratio settles on the lower gear's value (locked);
an upshift when the ratio falls below the gear's. No speed trend or throttle is
used: the tracker sees only (speed, rpm) pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NEUTRAL = 0  # state index and shown gear of neutral / clutch in
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class GearModel:
    """What the tracker knows about the drivetrain, and its tuning (all learned or defaulted)."""

    rpm_per_kmh: tuple[float, ...]  # engine rpm per km/h in each gear, 1st..top (given, e.g. learned)
    idle_rpm: float = 850.0  # warm idle, rev/min
    spread: tuple[float, ...] = ()  # per gear, relative spread of the locked ratio (ln units); () = lock_spread
    moving_kmh: float = 4.0  # below this the truck counts as stopped: the ratio is not used
    dwell_s: float = 0.25  # a new most-probable state must hold this long (s) before it is shown
    lock_spread: float = 0.04  # relative spread of a locked gear's ratio when ``spread`` does not say
    below_spread: float = 0.04  # how far (ln units) the engine may read below a gear's ratio (lag, noise)
    settle_s: float = 0.1  # time constant (s) of the ratio average that "locked" is checked against
    steady_spread: float = 0.1  # locked: |ln ratio - its recent average| is about this small (ln units)
    slip_density: float = 0.25  # weight of the slipping part of a gear's emission ...
    slip_scale: float = 0.5  # ... decaying over this much slip (ln units); 0 = flat, any slip alike ...
    slip_floor: float = 0.1  # ... down to this share of it: a launch slips the clutch a lot
    neutral_density: float = 0.02  # density (per ln unit) of any ratio in neutral / clutch in
    idle_weight: float = 1.0  # extra weight of neutral when the engine turns near idle ...
    idle_spread: float = 0.1  # ... within this (ln units of rpm)
    hold_s: float = 3.0  # mean time (s) a state is held, for the transition probabilities
    evidence_s: float = 0.05  # pairs closer than this (s) are not independent: their evidence is shared
    skip_weight: float = 0.2  # a change that skips a gear, relative to one to an adjacent gear
    neutral_weight: float = 0.5  # a change to neutral, relative to one to an adjacent gear
    standing_neutral: float = 0.6  # standing prior: neutral's share (the rest is 1st)
    standing_s: float = 0.5  # time constant (s) of the pull towards the standing prior when stopped

    @property
    def top_gear(self) -> int:
        return len(self.rpm_per_kmh)


@dataclass(frozen=True)
class TrackerState:
    """The tracker after the last (speed, rpm) pair. Immutable and small."""

    gear: int | None = None  # shown gear: 0 neutral / clutch in, 1.. forward, None unknown
    posterior: tuple[float, ...] = ()  # P(state) for neutral, 1st..top; () = nothing seen yet
    candidate: int | None = None  # the most probable state now
    candidate_since: float = 0.0  # s, (log) time it became the most probable
    t: float | None = None  # s, time of the last pair
    ratio_avg: float | None = None  # recent average of ln(rpm per km/h), for the steadiness check


def _gaussian(z: float) -> float:
    return math.exp(-0.5 * z * z)


def emissions(model: GearModel, speed_kmh: float, rpm: float, ratio_avg: float | None) -> tuple[float, ...]:
    """Likelihood of one moving (speed, rpm) pair under neutral and each gear (densities per ln unit).

    ``ratio_avg`` is the recent average of ln(rpm per km/h); None = no history.
    """
    if rpm <= 0.0:  # engine stopped or stalled while rolling: no gear can be read
        return (1.0,) + (0.0,) * model.top_gear
    log_ratio = math.log(rpm / speed_kmh)
    steady = 1.0 if ratio_avg is None else _gaussian((log_ratio - ratio_avg) / model.steady_spread)
    out = [model.neutral_density
           + model.idle_weight * _gaussian(math.log(rpm / model.idle_rpm) / model.idle_spread)]
    for gear, k in enumerate(model.rpm_per_kmh):
        sigma = model.spread[gear] if gear < len(model.spread) and model.spread[gear] > 0 else model.lock_spread
        x = log_ratio - math.log(k)
        locked = steady * _gaussian(x / sigma) / (_SQRT_2PI * sigma)
        if x < 0.0:
            slipping = model.slip_density * _gaussian(x / model.below_spread)
        elif model.slip_scale > 0.0:
            slipping = model.slip_density * (
                model.slip_floor + (1.0 - model.slip_floor) * math.exp(-x / model.slip_scale))
        else:
            slipping = model.slip_density
        out.append(locked + slipping)
    return tuple(out)


def _transition(model: GearModel, posterior: tuple[float, ...], dt: float) -> tuple[float, ...]:
    """Predict ``dt`` s ahead: each state is left with probability 1 - exp(-dt / hold_s)."""
    n = len(posterior)
    leave = 1.0 - math.exp(-max(dt, 0.0) / model.hold_s)
    out = [p * (1.0 - leave) for p in posterior]
    for i, p in enumerate(posterior):
        if p == 0.0:
            continue
        if i == NEUTRAL:
            weights = [0.0] + [1.0] * (n - 1)
        else:
            weights = [model.neutral_weight] + [
                0.0 if j == i else 1.0 if abs(j - i) == 1 else model.skip_weight for j in range(1, n)]
        total = sum(weights)
        for j, w in enumerate(weights):
            out[j] += p * leave * w / total
    return tuple(out)


def _standing_prior(model: GearModel) -> tuple[float, ...]:
    rest = (0.0,) * (model.top_gear - 1)
    return (model.standing_neutral, 1.0 - model.standing_neutral) + rest


def track(state: TrackerState, t: float, speed_kmh: float, rpm: float, model: GearModel) -> TrackerState:
    """Fold one (speed km/h, rpm rev/min) pair measured at ``t`` (s) in; return the new state.

    Call once per new pair; ``state.gear`` is what the dash shows.
    """
    n = model.top_gear + 1
    if not state.posterior or len(state.posterior) != n:
        posterior = tuple([1.0 / n] * n)
        dt = 0.0
    else:
        posterior = state.posterior
        dt = t - state.t if state.t is not None else 0.0
    prior = _transition(model, posterior, dt)

    ratio_avg = state.ratio_avg
    if speed_kmh >= model.moving_kmh:
        likelihood = emissions(model, speed_kmh, rpm, ratio_avg)
        # a pair at 100 Hz says little more than its neighbour: weigh evidence by time, not by pair
        weight = min(1.0, dt / model.evidence_s) if model.evidence_s > 0 and dt > 0 else 1.0
        joint = [p * e ** weight for p, e in zip(prior, likelihood)]
        total = sum(joint)
        new = tuple(j / total for j in joint) if total > 0.0 else prior
        if rpm > 0.0:
            log_ratio = math.log(rpm / speed_kmh)
            if ratio_avg is None:
                ratio_avg = log_ratio
            else:
                ratio_avg += (log_ratio - ratio_avg) * (1.0 - math.exp(-max(dt, 0.0) / model.settle_s))
    else:
        pull = 1.0 - math.exp(-max(dt, 0.0) / model.standing_s) if state.posterior else 1.0
        new = tuple(p + (s - p) * pull for p, s in zip(prior, _standing_prior(model)))
        ratio_avg = None

    best = max(range(n), key=new.__getitem__)
    if best == state.candidate:
        since = state.candidate_since
    elif state.t is None:
        since = t
    else:
        since = 0.5 * (state.t + t)  # it became the most probable somewhere between the two pairs
    gear = state.gear
    if gear is None or (best != gear and t - since >= model.dwell_s):
        gear = best
    return TrackerState(gear=gear, posterior=new, candidate=best, candidate_since=since, t=t,
                        ratio_avg=ratio_avg)


# -- running over a recorded drive and scoring against its labels -------------------------
# Pure helpers over Sample rows (keidash.replay), shared by tests/test_gears.py and
# bench/gears_eval.py so both measure the same way.

def track_samples(samples, model: GearModel) -> list[int | None]:
    """The shown gear after each sample; the tracker is called where rpm or speed is fresh."""
    state, shown = TrackerState(), []
    for s in samples:
        if s.fresh and s.speed_kmh is not None and s.rpm is not None:
            state = track(state, s.t, s.speed_kmh, s.rpm, model)
        shown.append(state.gear)
    return shown


def nearest_ratio_gears(samples, rpm_per_kmh: tuple[float, ...], moving_kmh: float = 4.0) -> list[int | None]:
    """Baseline: per sample, the gear whose rpm per km/h is nearest in log space (None when stopped)."""
    logs = [math.log(k) for k in rpm_per_kmh]
    out: list[int | None] = []
    for s in samples:
        if s.speed_kmh is None or s.rpm is None or s.speed_kmh < moving_kmh or s.rpm <= 0:
            out.append(None)
            continue
        x = math.log(s.rpm / s.speed_kmh)
        out.append(1 + min(range(len(logs)), key=lambda i: abs(x - logs[i])))
    return out


def label_ratios(samples, moving_kmh: float = 4.0) -> tuple[float, ...]:
    """Median rpm per km/h of the moving samples under each forward gear label, 1st..top."""
    by_gear: dict[int, list[float]] = {}
    for s in samples:
        if s.gear and s.gear > 0 and s.rpm and s.speed_kmh and s.speed_kmh >= moving_kmh:
            by_gear.setdefault(s.gear, []).append(s.rpm / s.speed_kmh)
    out = []
    for gear in range(1, max(by_gear) + 1):
        values = sorted(by_gear[gear])
        mid = len(values) // 2
        out.append(values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid]))
    return tuple(out)


def standing_rpm(samples) -> float:
    """Warm idle (rev/min) from a log: the lower quartile of the rpm while stopped with the engine running.

    A quartile, not the median: standing in gear (an automatic in D or R, the A/C on)
    holds the engine above its idle.
    """
    values = sorted(s.rpm for s in samples if s.speed_kmh == 0 and s.rpm and s.rpm > 300)
    return values[len(values) // 4]


def agreement(samples, gears, moving_kmh: float = 4.0, away_from_change_s: float = 0.0) -> tuple[int, int]:
    """(agreeing, counted) over moving samples labelled with a forward gear.

    With ``away_from_change_s`` > 0, samples that close (s) to a change of label are left out.
    """
    changes = [b.t for a, b in zip(samples, samples[1:]) if a.gear != b.gear]
    agree = counted = 0
    j = 0
    for s, g in zip(samples, gears):
        if not (s.gear and s.gear > 0 and s.speed_kmh is not None and s.speed_kmh >= moving_kmh):
            continue
        if away_from_change_s > 0:
            while j < len(changes) and changes[j] < s.t - away_from_change_s:
                j += 1
            if j < len(changes) and abs(changes[j] - s.t) <= away_from_change_s:
                continue
        counted += 1
        agree += g == s.gear
    return agree, counted
