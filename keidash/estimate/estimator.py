"""The estimator: readings in, what the dash shows out. Pure and deterministic.

``step(state, reading, config) -> state`` folds one reading in; ``advise(state,
t, config, links) -> DashState`` says what the dash shows at time ``t``. Neither
reads a clock, a port or a file: time arrives with the readings, so a replayed
log gives the same gears and cues every time. The parts, each a pure module:

- **Ratios** (:mod:`keidash.estimate.learn`): the profile's sourced ratios, ratios learned
  beforehand (``keidash learn``, ``--ratios-from``), or, when neither is known,
  learned live from every rpm and speed reading; used once every gear is found.
- **Gear with rpm** (:mod:`keidash.estimate.gears`): an HMM forward filter over neutral /
  clutch in and each gear, modelled by the gearbox (a manual's clutch and shifts, an
  automatic's converter slip, which needs the engine to pull, and its coast-down lines learned
  from the shifts seen: :mod:`keidash.estimate.shiftmap`), with each rpm reading
  paired with the speed at its instant and judged again once the next speed reading
  brackets it. A speed measured well before its stamp (a GPS) is found late by
  :mod:`keidash.estimate.lag` and taken at the instant it was measured.
- **Gear from speed alone** (:mod:`keidash.estimate.speedonly`): a forward filter over the
  gears weighing what each gear can deliver at this speed, the clutch dip of an
  upshift, the driver's learned habits and keidash's own cues; rpm = ratio x speed,
  marked *estimated*.
- **The needle** (:mod:`keidash.estimate.needle`): a Kalman filter over rpm and its rate,
  fed by every rpm reading (or the speed-only estimate) at its own time and
  predicted to the frame's display time; it restarts at a gear change.
- **Cues** (:mod:`keidash.estimate.shift`): up at the mode's upshift point (power or
  economy, per gear, capped while the engine is cold), down when lugging in 3rd and
  up unless the lower gear would over-rev; each clears with a margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping

from ..dashstate import ABSENT, LIVE, STALE, DashState, SourceView
from ..profiles import Engine, Profile, gears_named
from ..profiles.engine import ShiftLimits, shift_limits
from ..readings import BATTERY, COOLANT, RPM, SPEED, THROTTLE, Reading
from .gears import AUTOMATIC, CVT, MANUAL, UPSHIFT_FLOOR, GearModel, Pairing, TrackerState, follow, gearbox_kind
from .lag import LagState, lag_estimate, lag_step
from .learn import MIN_GEAR_STEP, LearnedRatios, LearnerState, learned, learner_step, shift_launches
from .shiftmap import ShiftMap
from .needle import NeedleConfig, NeedleState, needle_predict, needle_reset, needle_update
from .shift import MODES, ShiftPolicy, cue as shift_cue, demand_from_throttle, upshift_rpm
from .speedonly import Habits, SpeedModel, SpeedOnlyState, rpm_estimate, speed_step

if TYPE_CHECKING:
    from .truck import TruckKnowledge

#: the needle's source name for rpm estimated from speed and gear
ESTIMATED = "estimated"
#: the road speed's noise (km/h, 1 sigma): whole km/h (OBD, 0.29) or a GPS (0.3); x a gear's
#: rpm per km/h it is the noise of rpm estimated in that gear ...
SPEED_NOISE_KMH = 0.3
#: ... and at least this (rpm): the ratio's own error
MIN_ESTIMATED_SIGMA_RPM = 15.0


@dataclass(frozen=True)
class EstimatorConfig:
    limits: ShiftLimits
    rpm_per_kmh: tuple[float, ...] = ()  # per gear, 1st..top, known beforehand; () = learn while driving
    profile_title: str = ""
    source_priority: tuple[str, ...] = ("pulses", "obd", "gps")  # first live one wins
    gear_count: int | None = None  # forward gears when known (helps live learning)
    engine: Engine | None = None  # torque curve for the shift points
    shift_mode: str = "economy"  # one of keidash.estimate.shift.MODES
    upshift_rpm_per_gear: tuple[float, ...] = ()  # owner's upshift rpm per gear (0 = by mode)
    habits: Habits | None = None  # the driver's habits, for speed-only gears
    obedience: float | None = None  # share of cues the driver follows; None = learned or speedonly's default
    mass_kg: float | None = None  # truck + load (kg), with the engine's figures: the acceleration envelope
    learn: bool = True  # learn the ratios live when rpm_per_kmh is ()
    speed_lag_s: float | None = None  # how long before its stamp the speed is measured, against the rpm
    #                                   (keidash.estimate.lag); None: read off the drive (a manual's)
    relearn_every_s: float = 5.0  # how often live learning re-reads its histogram (s of reading time)
    moving_kmh: float = 4.0  # below this the truck counts as stopped
    gear_dwell_s: float | None = None  # a new gear must hold this long (s) before it is shown (with rpm);
    #                                    None: the gearbox's (keidash.estimate.gears.GearModel)
    gearbox: str = MANUAL  # keidash.estimate.gears.gearbox_kind of the profile's transmission
    low_range_ratio: float | None = None  # the 4WD transfer's low ratio: low-range gears are tracked too
    extra_low: bool = False  # an EL gear below 1st that the gear count leaves out (5MT+EL): live learning
    #                          may see it above 1st
    shift_map: ShiftMap | None = None  # an automatic's coast-down lines learned on earlier drives
    match_tolerance: float = 0.08  # |ln(rpm per km/h / gear's)| of a reading that restarts the needle
    needle: NeedleConfig = field(default_factory=NeedleConfig)

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
    learner: LearnerState | None = None  # live ratio learning (None until an rpm and speed arrive)
    learned: LearnedRatios | None = None  # what live learning found at its last look
    learned_at: float = -math.inf
    ratios: tuple[float, ...] = ()  # the ratios in use: the config's, else learned live
    first_spread: float = 0.0  # learned live with 1st not found: how uncertain its ratio is (ln units;
    #                            LearnedRatios.first_spread), the tracker's spread of 1st; 0.0: known
    models: "Models | None" = None  # built from ratios and the config when ratios change
    tracker: TrackerState = TrackerState()  # gear with an rpm source
    pairing: Pairing = Pairing()  # recent speed readings, to pair each rpm reading by time
    speed_only: SpeedOnlyState = SpeedOnlyState()  # gear from speed alone
    engaged: int | None = None  # the gear the last rpm reading matched, or speed-only's (resets the needle)
    low_range: bool = False  # the shown gear is in the 4WD transfer's low range
    gear: int | None = None  # shown gear: 0 neutral / clutch in, None unknown
    estimated: bool = False  # the needle runs on rpm estimated from speed
    needle: NeedleState = NeedleState()
    cue: str | None = None
    cue_since: float = 0.0
    slowing: tuple[tuple[float, float], ...] = ()  # the shown speed's recent (t s, km/h): is it braking?
    lag: LagState = LagState()  # how much later the speed is measured than the rpm (keidash.estimate.lag)
    lag_s: float = 0.0  # that lag as applied: the speed's readings are taken as measured this long before
    #                     their stamps (the rpm's, when negative)
    lag_at: float = -math.inf  # t of the last look at the lag's evidence
    held: tuple[tuple[str, float, float], ...] = ()  # (channel, t, value) of the channel measured first,
    #                                                   waiting for the other's readings to pass its instant
    released_t: float = -math.inf  # measurement time of the last reading fed to learning and the tracker
    lag_sources: tuple[tuple[str, str], ...] = ()  # (channel, source) the lag's evidence was read from


@dataclass(frozen=True)
class Models:
    """What the trackers and the cue need for one set of ratios (derived, kept in the state)."""

    ratios: tuple[float, ...]
    gear: GearModel
    speed: SpeedModel
    policy: ShiftPolicy
    first_spread: float = 0.0  # the state's, when these were built


def _models(state: EstimatorState, config: EstimatorConfig) -> Models:
    if (state.models is not None and state.models.ratios == state.ratios
            and state.models.first_spread == state.first_spread):
        return state.models
    ratios, limits = state.ratios, config.limits
    gear_model = GearModel(ratios, idle_rpm=limits.idle_rpm, moving_kmh=config.moving_kmh,
                           spread=(state.first_spread,) if state.first_spread else (),
                           dwell_s=config.gear_dwell_s, kind=config.gearbox, low_range=config.low_range_ratio,
                           shift_map=config.shift_map if config.gearbox == AUTOMATIC else None)
    policy = ShiftPolicy(ratios, limits, mode=config.shift_mode, engine=config.engine,
                         upshift_rpm_per_gear=config.upshift_rpm_per_gear[:max(len(ratios) - 1, 0)],
                         moving_kmh=config.moving_kmh)
    speed_model = SpeedModel(ratios, limits, habits=_fitting(config.habits, ratios), engine=config.engine,
                             mass_kg=config.mass_kg, obedience=config.obedience,
                             automatic=config.gearbox == AUTOMATIC)  # an automatic shifts by itself
    return Models(ratios, gear_model, speed_model, policy, state.first_spread)


def _fitting(habits: Habits | None, ratios: tuple[float, ...]) -> Habits | None:
    """Habits learned for another gear count do not apply."""
    return habits if habits is not None and habits.top_gear == len(ratios) else None


def _best(state: EstimatorState, channel: str, now: float, config: EstimatorConfig,
          down: frozenset[str] = frozenset()) -> tuple[str, float] | None:
    """The live value of ``channel`` from the highest-priority source: (source, value).

    A source in ``down`` (its link is lost) has no live value, even one still within its
    freshness limit: a coolant reading vouched for 10 s must not outlive the adapter.
    """
    found = [(source, latest) for (source, ch), latest in state.latest.items()
             if ch == channel and latest.live(now) and source not in down]
    if not found:
        return None

    def rank(item):
        source = item[0]
        return config.source_priority.index(source) if source in config.source_priority else len(
            config.source_priority)
    source, latest = min(found, key=lambda item: (rank(item), -item[1].t))
    return source, latest.value


def step(state: EstimatorState, reading: Reading, config: EstimatorConfig) -> EstimatorState:
    """Fold one reading into the state. A non-finite or negative value is ignored."""
    if not math.isfinite(reading.value) or reading.value < 0 or not math.isfinite(reading.t):
        return state
    latest = dict(state.latest)
    latest[(reading.source, reading.channel)] = Latest(reading.t, reading.value, reading.max_age)
    state = replace(state, latest=MappingProxyType(latest))
    if reading.channel not in (RPM, SPEED):
        return state
    best = _best(state, reading.channel, reading.t, config)
    if best is not None and best[0] == reading.source:  # a lower-priority source: one time line per channel
        state, released = _measured_order(state, reading, config)
        late = SPEED if state.lag_s > 0.0 else RPM
        measured = reading.t - abs(state.lag_s) if reading.channel == late else reading.t
        now = ((reading.channel, measured, reading.value),)
    else:
        released = now = ()
    if not state.ratios and config.rpm_per_kmh:
        state = replace(state, ratios=config.rpm_per_kmh)
    elif not config.rpm_per_kmh and config.learn:
        state = _learn(state, reading.t, released, config)
    return _track(state, reading, config, now)


#: a reading of the channel measured first waits at most this long (s) beyond the lag for the other's
HOLD_S = 2.0
#: the lag applied changes only when the evidence moves it by at least this much (s)
LAG_CHANGE_S = 0.1


def _measured_order(state: EstimatorState, reading: Reading,
                    config: EstimatorConfig) -> tuple[EstimatorState, tuple[tuple[str, float, float], ...]]:
    """(state, the chosen sources' rpm and speed readings to learn from by now, in the order they
    were measured: (channel, measurement time, value)).

    With no lag (keidash.estimate.lag: the usual case, OBD's rpm and speed) each reading goes at
    once. A speed measured ``lag_s`` before its stamp (a GPS) is taken at that instant, and each rpm
    reading waits until a speed reading measured after it has arrived (at most HOLD_S beyond the
    lag): learning pairs rpm and speed of one instant, ``lag_s`` later. A negative lag holds the
    speed for the rpm the same way. (The gear tracker does not wait: it carries the speed to each
    rpm reading's instant along its slope, :func:`keidash.estimate.gears.pair_step`.)"""
    channel, t, value = reading.channel, reading.t, reading.value
    sources = dict(state.lag_sources)
    if sources.get(channel, reading.source) != reading.source:
        # another source took over the channel (the OBD adapter lost, the GPS's speed in its place):
        # its lag is its own, read afresh
        sources[channel] = reading.source
        state = replace(state, lag=LagState(), lag_at=t, lag_sources=tuple(sorted(sources.items())))
        if state.lag_s:  # (live learning's launches were paired under the lag that was theirs: kept)
            state = replace(_unpaired(state), lag_s=0.0)
    elif channel not in sources:
        sources[channel] = reading.source
        state = replace(state, lag_sources=tuple(sorted(sources.items())))
    # behind a torque converter the ratio rises with the engine's pull (slip), as a late speed would
    # make it: the lag is read only where the clutch holds the engine to the wheels (a manual)
    reading_it = config.speed_lag_s is None and config.gearbox == MANUAL
    lag = lag_step(state.lag, channel, t, value) if reading_it else state.lag
    lag_s, lag_at = state.lag_s, state.lag_at
    if t - lag_at >= config.relearn_every_s or config.speed_lag_s not in (None, lag_s):
        found, lag_at = (lag_estimate(lag) if config.speed_lag_s is None else config.speed_lag_s), t
        if abs(found - lag_s) >= LAG_CHANGE_S or (found == 0.0) != (lag_s == 0.0):
            # the speed's instants move: the tracker's recent speeds are on the old time line, and
            # live learning's launches, paired across the lag (the speed changes fastest there), are
            # paired again from their readings; its steady runs held the ratio still through the lag
            learner = state.learner and shift_launches(state.learner, found - lag_s)
            state, lag_s = replace(_unpaired(state), learner=learner), found
    state = replace(state, lag=lag, lag_s=lag_s, lag_at=lag_at)
    if lag_s == 0.0 and not state.held:
        return replace(state, released_t=t), ((channel, t, value),)
    late = SPEED if lag_s > 0.0 else RPM  # the channel measured before its stamp says
    if channel != late:
        held = state.held + ((channel, t, value),)
        due = [r for r in held if r[1] < t - abs(lag_s) - HOLD_S]  # the late channel has gone quiet
        return _release(replace(state, held=held[len(due):]), tuple(due))
    measured = t - abs(lag_s)
    due = [r for r in state.held if r[1] <= measured]
    state = replace(state, held=state.held[len(due):])
    return _release(state, tuple(due) + ((channel, measured, value),))


def _release(state: EstimatorState, readings: tuple[tuple[str, float, float], ...]):
    """The readings not older than the last one released (a lag just applied moves the late channel's
    instants back past readings already fed: those are dropped), and the state noting the newest."""
    out, last = [], state.released_t
    for r in readings:
        if r[1] >= last:
            out.append(r)
            last = r[1]
    return replace(state, released_t=last), tuple(out)


def _learn(state: EstimatorState, now: float, released: tuple[tuple[str, float, float], ...],
           config: EstimatorConfig) -> EstimatorState:
    """Live ratio learning from the chosen rpm and speed sources' readings, in measured order."""
    if not released:
        return state
    learner = state.learner or LearnerState()
    for channel, t, value in released:
        learner = learner_step(learner, t, channel, value)
    state = replace(state, learner=learner)
    if now - state.learned_at < config.relearn_every_s:
        return state
    found = learned(learner, config.gear_count, config.limits.idle_rpm, config.low_range_ratio, config.extra_low)
    # numbered once, the gears stay numbered while learning refines them; but a table that now holds
    # another count of gears (a gear count not given: a new cluster found), or more gears seen than the
    # count given, or the launches doubting the 1st the count made where that is the 1st shown, says the
    # numbering shown may be wrong: no gear is shown until it is ready again
    ratios, first_spread = found.numbered()
    # top gears not driven yet (a table shorter than the count): kept while the gears found still sit at the
    # numbers shown (a gear found between two of them moves the numbers above it: dropped)
    same_table = len(found.gears) == len(state.ratios) or (
        found.gear_count_given and 0 < len(state.ratios) < len(found.gears)
        and all(g.rpm_per_kmh is None or abs(math.log(g.rpm_per_kmh / shown)) < 0.5 * math.log(MIN_GEAR_STEP)
                for g, shown in zip(found.gears, state.ratios)))
    if (not ratios and same_table and found.more_gears is None
            and not _doubted_first_shown(found, state.ratios)):
        ratios, first_spread = state.ratios, state.first_spread
    if len(ratios) != len(state.ratios):  # the gears numbered at last (or anew): the trackers start with them
        state = replace(state, ratios=ratios, first_spread=first_spread, tracker=TrackerState(),
                        pairing=replace(state.pairing, judged=None), speed_only=SpeedOnlyState(), engaged=None)
    elif ratios != state.ratios or first_spread != state.first_spread:
        # the same gears, their ratios refined (by hundredths, every few seconds), or 1st found where it
        # was bounded: the gear shown and the lever held stay, as they do in the truck; starting the
        # trackers again lost them at each refinement (a coast to a stop in 5th with the clutch in
        # walked down to 2nd)
        state = replace(state, ratios=ratios, first_spread=first_spread)
    return replace(state, learned=found, learned_at=now)


def _doubted_first_shown(found: LearnedRatios, shown: tuple[float, ...]) -> bool:
    """True when the launches doubt the 1st the gear count made (:attr:`LearnedRatios.first_doubted`) and
    the numbering ``shown`` has that cluster as its 1st (within half a gear step), not a gear above it."""
    first = found.gears[0].rpm_per_kmh if found.first_doubted and found.gears else None
    return bool(shown) and first is not None and abs(math.log(shown[0] / first)) < 0.5 * math.log(MIN_GEAR_STEP)


def learned_so_far(state: EstimatorState, config: EstimatorConfig) -> LearnedRatios | None:
    """Everything live learning has seen, read now (not at its last periodic look); None if nothing."""
    if state.learner is None:
        return None
    return learned(state.learner, config.gear_count, config.limits.idle_rpm, config.low_range_ratio,
                   config.extra_low)


def _unpaired(state: EstimatorState) -> EstimatorState:
    """``state`` with the gear tracker's pairing started afresh (the speed's instants moved), and the
    tracker as the rpm readings left it: a step shown on a speed reading since (a pull-away's first moving
    speed, :func:`keidash.estimate.gears.follow`) is not one to step on from."""
    return replace(state, pairing=Pairing(), tracker=state.pairing.judged or state.tracker)


def _track(state: EstimatorState, reading: Reading, config: EstimatorConfig,
           released: tuple[tuple[str, float, float], ...] = ()) -> EstimatorState:
    """The shown gear, rpm and cue after ``reading``; ``released``: the chosen sources' rpm and speed
    readings for the gear tracker, (channel, measured instant, value)."""
    t = reading.t
    speed = _best(state, SPEED, t, config)
    rpm = _best(state, RPM, t, config)
    needle = state.needle
    if reading.channel == RPM:
        # a reading that carries its own noise (the engine's note: its confidence) is weighed by it
        needle = needle_update(needle, t, reading.value, reading.source, config.needle, reading.sigma)
    ratios = state.ratios
    if speed is None or not ratios:
        return replace(state, needle=needle, gear=None, engaged=None, cue=None, estimated=False)
    speed_kmh = speed[1]
    models = _models(state, config)
    gear_model, speed_model, policy = models.gear, models.speed, models.policy

    engaged, tracker, speed_only, pairing = state.engaged, state.tracker, state.speed_only, state.pairing
    low_range = False
    if rpm is not None:
        # pair by time, not by arrival: each rpm reading with the speed at its instant
        for channel, t_measured, value in released:
            pairing, tracker = follow(pairing, tracker, "rpm" if channel == RPM else "speed", t_measured,
                                      value, gear_model, state.lag_s)
        gear, shown_rpm, estimated, low_range = tracker.gear, rpm[1], False, tracker.low_range
        if config.gearbox == CVT or (gear in (0, len(ratios)) and _below_top(state, config, rpm[1], speed_kmh)):
            gear = None  # a CVT has no gears to show; an engine driving below the highest learned: a gear not
            #              seen yet (the tracker holds the highest's lever, or reads neutral from a fresh start)
        if reading.channel == RPM:
            matched = _matching_gear(rpm[1], speed_kmh, ratios, config)
            if matched and matched != engaged:  # the first reading that matches another gear:
                needle = needle_reset(needle, t, rpm[1], config.needle)  # restart the needle there
            engaged = matched
    else:
        if reading.channel == SPEED and reading.source == speed[0]:
            speed_only = speed_step(speed_only, t, speed_kmh, speed_model, state.cue)
        gear, estimated = speed_only.gear, True
        shown_rpm = rpm_estimate(speed_only, speed_kmh, speed_model)
        if shown_rpm is not None and reading.channel == SPEED:
            if gear != engaged or state.needle.t is None or not state.estimated:
                needle = needle_reset(needle, t, shown_rpm, config.needle)
            else:
                # its noise is the speed's (about 0.3 km/h: whole km/h, or a GPS) x this gear's rpm per km/h
                ratio = ratios[gear - 1] if gear and 0 < gear <= len(ratios) else None
                sigma = max(MIN_ESTIMATED_SIGMA_RPM, SPEED_NOISE_KMH * ratio) if ratio else None
                needle = needle_update(needle, t, shown_rpm, ESTIMATED, config.needle, sigma)
        engaged = gear

    coolant = _best(state, COOLANT, t, config)
    throttle = _best(state, THROTTLE, t, config)
    slowing = state.slowing
    if reading.channel == SPEED and reading.source == speed[0]:
        slowing = _slowing(slowing, t, speed_kmh)
    previous = state.cue if gear == state.gear else None
    # braking, the foot off the throttle, or a manual's clutch down (the measured rpm matches no gear;
    # behind a torque converter that is slip, under load): the engine pulls no load, so a low rpm
    # is no lugging (no SHIFT DOWN through a stop)
    clutch_down = rpm is not None and engaged is None and config.gearbox == MANUAL
    coasting = (_rate_ms2(slowing) <= -BRAKING_MS2 or clutch_down
                or (throttle is not None and throttle[1] < OFF_THROTTLE_PCT))
    cue = shift_cue(policy, previous, gear, shown_rpm, speed_kmh, coolant[1] if coolant else None,
                    demand_from_throttle(throttle[1] if throttle else None), coasting=coasting)
    cue_since = state.cue_since if cue == state.cue and gear == state.gear else t
    return replace(state, models=models, tracker=tracker, speed_only=speed_only, engaged=engaged, gear=gear,
                   estimated=estimated, needle=needle, cue=cue, cue_since=cue_since, pairing=pairing,
                   low_range=low_range, slowing=slowing)


#: slowing by more than this (m/s², 3.2 km/h a second, over a second) is braking, not lugging:
#: a kei truck lugging up a 15 % grade in too high a gear loses ~0.4 m/s², a stop takes 1-3
BRAKING_MS2 = 0.9
#: a throttle reading below this (%) is the foot off the pedal: no load, no lugging
OFF_THROTTLE_PCT = 10.0
#: the speed's rate of change is read over the last this long (s) (at least SLOPE_MIN_S: whole km/h)
SLOPE_S = 1.0
SLOPE_MIN_S = 0.4


def _slowing(previous: tuple[tuple[float, float], ...] | None, t: float, kmh: float
             ) -> tuple[tuple[float, float], ...]:
    """Recent (t, km/h) speed readings, at least 0.05 s apart, over the last SLOPE_S."""
    kept = tuple(r for r in (previous or ()) if t - r[0] <= SLOPE_S and r[0] < t)
    if kept and t - kept[-1][0] < 0.05:
        kept = kept[:-1]
    return kept + ((t, kmh),)


def _rate_ms2(recent: tuple[tuple[float, float], ...] | None) -> float:
    """The speed's rate of change (m/s²) over ``recent`` readings; 0 until they span SLOPE_MIN_S."""
    if not recent or recent[-1][0] - recent[0][0] < SLOPE_MIN_S:
        return 0.0
    (t0, v0), (t1, v1) = recent[0], recent[-1]
    return (v1 - v0) / 3.6 / (t1 - t0)


def _below_top(state: EstimatorState, config: EstimatorConfig, rpm: float, speed_kmh: float) -> bool:
    """Learned live without the gear count, or with fewer gears numbered than it (top gears never driven
    yet), the engine driving well below the line of the highest gear numbered (the fewest rpm per km/h; by
    half the smallest gear step, not at idle): a gear not seen yet, braking or not. Braking was first left
    out (the clutch in, the engine running down to idle, the lever held); but braking in a gear not seen yet
    showed the gear the tracker last held: the close-ratio car counted 6MT, 3rd shown at 90 km/h in 6th
    (27.9 rpm per km/h, 3rd's 55.8) 58 s after 3rd was left. The clutch down, the engine is at idle within
    a second, and the lever shows again there.

    With every gear of the count numbered an engine under top gear's line is the clutch in (the lever
    stays, as the tracker holds it); short of them a truck that has not yet reached its top gear would
    show the highest found (a kei-day drive's first minute in 5th shown as 4th)."""
    if (config.gear_count is not None and len(state.ratios) >= config.gear_count or config.rpm_per_kmh
            or not state.ratios or speed_kmh < config.moving_kmh):
        return False
    if rpm < UPSHIFT_FLOOR * config.limits.idle_rpm:
        return False
    return math.log(rpm / speed_kmh / state.ratios[-1]) < -0.5 * math.log(MIN_GEAR_STEP)


def _matching_gear(rpm: float, speed_kmh: float, ratios: tuple[float, ...], config: EstimatorConfig) -> int | None:
    """The gear whose rpm per km/h this reading matches within ``match_tolerance``, else None.

    Not the shown gear (the tracker's, after its dwell): the needle restarts at the very first
    reading of a new gear, before the dwell, or it would smear across the shift.
    """
    if speed_kmh < config.moving_kmh or rpm <= 0:
        return None
    x = math.log(rpm / speed_kmh)
    gear = min(range(len(ratios)), key=lambda i: abs(x - math.log(ratios[i])))
    return gear + 1 if abs(x - math.log(ratios[gear])) <= config.match_tolerance else None


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
    down = frozenset(name for name, link in links.items() if not link[0])
    speed = _best(state, SPEED, t, config, down)
    rpm = _best(state, RPM, t, config, down)
    gear, cue = state.gear, state.cue
    speed_kmh = speed[1] if speed else None
    if speed is None:
        gear, cue = None, None
    estimated = rpm is None
    rpm_value = None
    if rpm is not None or (speed is not None and gear is not None and state.estimated):
        rpm_value = needle_predict(state.needle, t, config.needle)
        if rpm_value is None and rpm is not None:
            rpm_value = rpm[1]
    if rpm_value is None:
        estimated, cue = False, None

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

    coolant = _best(state, COOLANT, t, config, down)
    battery = _best(state, BATTERY, t, config, down)
    limits = config.limits
    upshift = limits.upshift_rpm
    if state.ratios and gear == len(state.ratios):
        upshift = limits.redline_rpm  # top gear: nothing to shift up to, the bar warns of the red line only
    elif state.ratios and gear and 1 <= gear < len(state.ratios):
        throttle = _best(state, THROTTLE, t, config, down)
        upshift = upshift_rpm(_models(state, config).policy, gear, coolant[1] if coolant else None,
                              demand_from_throttle(throttle[1] if throttle else None))  # as the cue
    note, message = _gear_note(state, config, rpm is not None, speed is not None)
    return DashState(
        t=t, profile_title=config.profile_title, rpm=rpm_value, rpm_estimated=estimated, gear_note=note,
        message=message,
        speed_kmh=speed_kmh, gear=gear, cue=cue, low_range=state.low_range and gear is not None,
        upshift_rpm=upshift, redline_rpm=limits.redline_rpm, tach_max_rpm=limits.tach_max_rpm,
        coolant_c=coolant[1] if coolant else None, battery_v=battery[1] if battery else None,
        sources=tuple(views), speed_source=speed[0] if speed else None,
        rpm_source=rpm[0] if rpm else None)


#: the dash's sentence for a truck whose gear ratios nothing gives and nothing can learn now
NEEDS_RATIOS = "no gear ratios yet: drive once with OBD, a tach or a mic"
#: the sentence while gears are found but which is 1st is not sure yet (LearnedRatios.numbering_certain)
WHICH_IS_FIRST = "gears found, numbering not sure yet: pull away from stops, hold each gear"


def more_gears_message(seen: int, count: int | None) -> str:
    """The dash's sentence when the drive shows more forward gears than the profile's count."""
    return f"{seen} or more forward gears seen, the profile says {count}: check its transmission (EL, low range)"


def _gear_note(state: EstimatorState, config: EstimatorConfig, rpm_live: bool, speed_live: bool) -> tuple[str, str]:
    """(the note under a blank gear, a sentence for the message strip) while no ratios are known, or fewer
    gears are numbered than the count (a gear not seen yet shows none: "learning 4/6")."""
    if not speed_live:
        return "", ""
    if state.ratios:
        short = rpm_live and config.gear_count is not None and len(state.ratios) < config.gear_count
        return (f"learning {len(state.ratios)}/{config.gear_count}" if short else ""), ""
    if rpm_live and config.learn:
        if state.learned is not None and state.learned.more_gears:
            return "check gears", more_gears_message(state.learned.more_gears, config.gear_count)
        found = state.learned.confident if state.learned is not None else 0
        unsure = found and not state.learned.numbering_certain
        return f"learning {found}/{config.gear_count or '?'}", WHICH_IS_FIRST if unsure else ""
    return "no ratios", NEEDS_RATIOS


def config_for(profile: Profile, shift: Mapping[str, object], priority: tuple[str, ...],
               learned_truck: "TruckKnowledge | None" = None,
               rpm_per_kmh: tuple[float, ...] | None = None, transmission: str | None = None) -> EstimatorConfig:
    """The estimator's settings for ``profile`` and the config's ``[shift]`` table.

    Ratios: ``rpm_per_kmh`` when given, else those learned beforehand
    (``learned_truck``), else the profile's (sourced, or its ``[learned]`` table),
    else learned live. ``shift`` may hold idle_rpm, redline_rpm, upshift_rpm
    (one upshift rpm for every gear), upshift_rpm_per_gear and mode. Idle: the config's,
    else the profile's, else the one seen in the drives learned from (``learned_truck``, else kept in
    the profile's ``[learned]`` table), else keidash's default.
    The gearbox's model follows ``transmission`` when given, else the profile's (a manual when
    neither says: most kei trucks are); a 4WD transfer's low ratio adds the low-range gears. An
    automatic starts from the shift map learned on those drives (``learned_truck.shift_map``, else
    the coast-downs kept in the profile's ``[learned]`` table by ``keidash learn --out``).
    """
    limits = {k: shift.get(k) for k in ("idle_rpm", "redline_rpm", "upshift_rpm")}
    if not limits["idle_rpm"] and not profile.engine.idle_rpm:
        limits["idle_rpm"] = seen_idle(profile, learned_truck)
    limits = shift_limits(profile, **limits)
    if rpm_per_kmh is None:
        rpm_per_kmh = learned_truck.ratios if learned_truck and learned_truck.ratios else profile.rpm_per_kmh()
    mode = str(shift.get("mode", "economy"))
    if mode not in MODES:
        from ..errors import ConfigError
        raise ConfigError(f"[shift] mode {mode!r}: choose one of {', '.join(MODES)}")
    per_gear = tuple(float(v) for v in shift.get("upshift_rpm_per_gear", ()))
    if not per_gear and shift.get("upshift_rpm"):
        per_gear = (float(shift["upshift_rpm"]),) * 9  # the owner's one upshift rpm for every gear
    return EstimatorConfig(
        limits=limits, rpm_per_kmh=tuple(rpm_per_kmh), profile_title=profile.title,
        source_priority=tuple(priority),
        gear_count=profile.forward_gears or gears_named(transmission), engine=profile.engine,
        shift_mode=mode, upshift_rpm_per_gear=per_gear,
        habits=learned_truck.habits if learned_truck else None,
        gearbox=gearbox_kind(transmission or profile.transmission),
        low_range_ratio=profile.transfer_low_ratio, extra_low=has_extra_low(profile, transmission),
        shift_map=learned_truck.shift_map if learned_truck else _kept_shift_map(profile))


def has_extra_low(profile: Profile, transmission: str | None = None) -> bool:
    """Whether the gearbox has an EL (extra-low) gear below 1st, outside its gear count: the
    ``transmission`` given or the profile's names it ("5MT+EL"), or the profile gives its ratio."""
    return "EL" in (transmission or profile.transmission or "").upper() or profile.extra_low_ratio is not None


def seen_idle(profile: Profile, learned_truck: "TruckKnowledge | None" = None) -> float | None:
    """The warm idle seen at a standstill in the drives learned from: now (``--ratios-from``),
    else kept in the profile's ``[learned]`` table (``keidash learn --out``); None when neither."""
    return ((learned_truck.idle_rpm if learned_truck is not None else None)
            or (profile.learned.idle_rpm if profile.learned is not None else None))


def _kept_shift_map(profile: Profile) -> ShiftMap | None:
    """The coast-downs a profile's [learned] table keeps (keidash learn --out), else None."""
    kept = profile.learned.coast_down if profile.learned is not None else ()
    return ShiftMap(kept) if any(kept) else None
