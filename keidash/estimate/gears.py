"""Gear tracking from road speed and engine rpm: a causal HMM forward filter.

One call of :func:`track` per new (speed, rpm) pair folds it into a small
posterior over the hidden states *neutral / clutch in* and each forward gear
(and, on a 4WD truck whose transfer's low ratio is known, each gear in low
range), and returns the gear the dash shows. Pure and deterministic: time
arrives with the data, nothing here reads a clock; plain Python over at most
``2 x (top + 1)`` states, cheap enough for 100 calls a second on a Pi Zero 2 W.
The pairs should be measured at one instant: :func:`pair_step` pairs rpm and
speed readings taken at different moments (OBD asks one PID at a time) by time.

The gearbox decides the model (:func:`gearbox_kind` of the profile's
``transmission``), with ``x = ln(observed rpm per km/h / gear's rpm per km/h)``:

**A manual** (5MT, 4MT+EL, and any truck whose gearbox is not known: kei trucks
are mostly manual). With the clutch home the ratio *is* the gear's: a Gaussian in
``x`` widened by the speed's resolution (whole km/h is 12 % at 8 km/h) and the
rpm's noise. The clutch slips only at a launch, in 1st or 2nd below
``launch_kmh``. Everything else between two gears is a shift: the driver has
the lever in the *new* gear while the clutch comes up, and the engine heads for
the new gear's rpm: down towards it after an upshift, *up* towards it in a
downshift (rev-matched with a blip, or dragged up by the clutch). So an rpm
moving towards a gear's rpm at this speed is evidence for that gear
(``heading_*``), an rpm rise with falling or steady speed is a downshift and
never slip in the higher gear. The other way, with the clutch home the engine cannot turn
slower than the gear's line: an rpm falling (``rise_min``, within ``shift_s`` of the last
pair, or from its highest within ``shift_s`` at ``fall_rate`` or faster: read 10 times a second a
freed engine falls a percent or two a pair) while the truck does not slow is the clutch in for an
upshift, the lever already in a higher gear, so a gear whose line the engine is now below is
ruled out at once rather than once the ratio has settled. With the speed carried beyond ``FREE_CARRY_S`` (a late GPS's)
whether the truck slows is not known yet (braking to a stop, the clutch goes in at once): only a
truck last seen speeding up (``pulling_kmh_s``) has its falling rpm read so at once. With the
clutch in and the engine idling while the truck rolls (coasting), the lever stays where it was:
the dash shows the gear last engaged (``lever hold``), as a gear-position sensor would; an
engine clearly below that gear's line yet well above idle while the truck does not brake is the
clutch in for an upshift, and the dash shows the gear whose line it is falling to
(:func:`_upshift_target`: a 1 Hz reading often catches the clutch in mid-shift). While
the truck brakes, an engine that does not follow the wheels (its ratio rising, its rpm
not; or, read at 2 Hz or faster, clearly above the line of the gear shown) or that idles
says nothing of the gear: the posterior keeps it, as the lever does.
Skip-shifts (5->3) are as possible as any change, only less likely.

**An automatic** (3AT, 4AT, ...: a torque converter). Slip makes the engine turn
*faster* than the ratio says, by a lot at low road speed, so the ratio wanders far
above the gear it is in while it can hardly be below it. Emission of a gear =
*locked* (a narrow Gaussian while the ratio is steady, compared with its own
recent average, ``settle_s``) + *slipping* (for ``x >= 0`` a density decaying
with the slip, ``slip_scale``, down to ``slip_floor``; below 0 a narrow flank).
One-sided, so the engine turning slower than a gear allows rules it out: that is
how an upshift shows at once. Slip of that kind needs the engine to pull: while the
truck slows (``coast_kmh_s``: foot off, braking) the wheels drive the converter, so an
engine above a gear's line is idling on its own (every gear below the ratio alike), a
ratio rising against its recent average is locked in no gear (locked, the engine would
follow the wheels down: the lines it sweeps through say nothing), and an rpm *rising*
while the truck slows (``rise_min``) is the converter pulling the engine up to a lower
gear's line: a downshift under way, shown as it happens rather
than once the ratio has settled (the commanded gear leads the ratio by 0.3-1.5 s).
Its controller shifts by road speed and load, and with the foot off, slowing, it commands each
coast-down at its own speed drive after drive: the tracker notes where each coast-down it shows
began (the rpm starting to rise) in a shift map (:mod:`keidash.estimate.shiftmap`, learned on
earlier drives and added to as it drives) and uses the lines as its prior while the truck slows:
below a line the lower gear is commanded and taken within ``map_shift_s``, and a ratio on its way
up between the two gears' lines says the new gear (shown without the dwell once it is nearer the
new line than the old); well above a line (``map_margin_kmh``) a coast-down is ``map_hold`` times
as likely and an rpm drifting up is no downshift to that gear.

**A CVT** has no gears: :func:`gearbox_kind` says so and the estimator shows none.

For both: neutral / clutch in explains any ratio, likelier with the engine near
idle (standing, a manual's driver puts the lever in neutral; an automatic's stays in D,
1st commanded: ``standing_neutral``); a ratio below top gear's is explained by neutral
only. Transitions are per second, not per sample (a gear is held ``hold_s`` on average; a change goes
to an adjacent gear likelier than a skip, to neutral from any gear, from neutral
to any gear), and evidence is weighed by time (``evidence_s``), so 100 Hz and
0.5 Hz logs agree. Below ``moving_kmh`` the ratio means nothing: the posterior
relaxes towards the standing prior (neutral, then 1st). Low range is a second
copy of the gears (each x the transfer's low ratio) that is entered and left only
at a standstill (the transfer is shifted stopped), so context decides where a
low gear sits near a high one (the Hijet's low 2nd is 5 % from high 1st). The
shown gear is the most probable state once it has been so for ``dwell_s``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, replace

from .shiftmap import ShiftMap

NEUTRAL = 0  # shown gear of neutral / clutch in
MANUAL, AUTOMATIC, CVT = "manual", "automatic", "cvt"
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def gearbox_kind(transmission: str | None) -> str:
    """MANUAL, AUTOMATIC or CVT for a profile's ``transmission`` ("5MT", "4MT+EL", "3AT", "CVT").

    Unknown (None, "") is a manual: most kei trucks are, and the manual's model is the
    one that never reads a downshift as slip.
    """
    text = (transmission or "").upper().replace(" ", "")
    if "CVT" in text:
        return CVT
    if "MT" not in text and ("AT" in text or "AUTO" in text):
        return AUTOMATIC
    return MANUAL


@dataclass(frozen=True)
class GearModel:
    """What the tracker knows about the drivetrain, and its tuning (all learned or defaulted)."""

    rpm_per_kmh: tuple[float, ...]  # engine rpm per km/h in each gear, 1st..top (given, e.g. learned)
    idle_rpm: float = 850.0  # warm idle, rev/min
    kind: str = MANUAL  # MANUAL or AUTOMATIC (gearbox_kind)
    low_range: float | None = None  # the 4WD transfer's low ratio: low-range gears are states too
    spread: tuple[float, ...] = ()  # per gear, relative spread of the locked ratio (ln units); () = lock_spread
    moving_kmh: float = 4.0  # below this the truck counts as stopped: the ratio is not used
    dwell_s: float | None = None  # a new most-probable state must hold this long (s) before it is shown;
    #                               None: 0 for a manual (its evidence is crisp), 0.25 for an automatic
    lock_spread: float = 0.04  # relative spread of a locked gear's ratio when ``spread`` does not say
    speed_resolution_kmh: float = 1.0  # speed readings' step (OBD: whole km/h), widening the locked ratio
    rpm_noise: float = 30.0  # rpm readings' noise (rev/min), widening the locked ratio (manual)
    below_spread: float = 0.04  # how far (ln units) the engine may read below a gear's ratio (lag, noise)
    settle_s: float = 0.1  # time constant (s) of the ratio's recent average (steady or not)
    trend_s: float = 0.3  # manual: time constant (s) of its slower average; fast - slow = where it heads
    trend_spread: float = 0.015  # manual: how far fast - slow wanders with the ratio locked (ln units) ...
    trend_quantum: float = 0.5  # ... plus this share of the speed's resolution / speed (whole-km/h steps)
    speed_trend_s: float = 0.5  # manual: time constant (s) of the speed's average; the lag is the acceleration
    braking_kmh_s: float = 2.0  # manual: slowing faster than this (km/h per s), a falling ratio is the clutch
    #                             going in (the lever stays), never an upshift
    pulling_kmh_s: float = 1.0  # manual: with the speed carried beyond FREE_CARRY_S (a late or 1 Hz GPS) a
    #                             falling rpm is read as an upshift only while the truck was last seen speeding up
    #                             this fast (km/h per s): whether it brakes now with the clutch in is not known yet
    steady_spread: float = 0.1  # locked: |ln ratio - its recent average| is about this small (ln units)
    slip_density: float = 0.25  # weight of the slipping part of a gear's emission ...
    slip_scale: float = 0.5  # ... decaying over this much slip (ln units); 0 = flat, any slip alike ...
    slip_floor: float = 0.1  # ... down to this share of it: a launch slips the clutch a lot
    launch_kmh: float = 20.0  # manual: below this the clutch may slip in 1st and 2nd (a launch)
    heading_density: float = 1.5  # manual: weight of "the engine heads for this gear's rpm" (a shift) ...
    heading_scale: float = 0.25  # ... decaying with the distance still to go (ln units) ...
    heading_min: float = 0.04  # ... once the rpm has moved this much (ln units) against its recent average
    neutral_density: float = 0.02  # density (per ln unit) of any ratio in neutral / clutch in
    idle_weight: float = 1.0  # extra weight of neutral when the engine turns near idle ...
    idle_spread: float = 0.1  # ... within this (ln units of rpm)
    hold_s: float | None = None  # mean time (s) a state is held (transition probabilities); None: 1.5 s
    #                              for a manual, 3 s for an automatic
    evidence_s: float = 0.05  # pairs closer than this (s) are not independent: their evidence is shared
    skip_weight: float = 0.2  # a change that skips a gear, relative to one to an adjacent gear
    neutral_weight: float = 0.5  # a change to neutral, relative to one to an adjacent gear
    standing_neutral: float | None = None  # standing prior: neutral's share (the rest is 1st); None: 0.6 for a
    #                                        manual (a driver stopping puts it in neutral or holds the clutch
    #                                        in), 0.1 for an automatic (its lever stays in D: 1st is commanded)
    standing_s: float = 0.5  # time constant (s) of the pull towards the standing prior when stopped
    low_range_prior: float = 0.1  # share of low range before anything says which
    range_hold_s: float = 60.0  # mean time (s) standing before the transfer is shifted
    coast_kmh_s: float = 2.0  # automatic: slowing faster than this (km/h per s) the converter is driven from
    #                           the wheels (foot off, braking): no drive slip puts the engine above a gear
    rise_min: float = 0.04  # the rpm moving this much (ln units) from its recent average is a shift under way:
    #                         an automatic's rising while the truck slows (the converter pulls the engine up
    #                         to a lower gear's line), a manual's falling while it does not (clutch in for an
    #                         upshift) ...
    shift_s: float = 0.6  # ... when seen within this long (s) of the last pair: across a longer gap the
    #                       shift may be over and the ratio on the new gear's line (1 Hz); an rpm polled twice
    #                       a second comes 0.45-0.55 s apart, and a freed engine takes about half a second ...
    fall_rate: float = 0.15  # ... and a manual's, at least this fast (ln units per s): an engine freed by the
    #                          clutch falls to the next gear's line (25-40 % lower) within about half a second,
    #                          one easing off with the truck in gear 1-2 km/h per s (10 % per s at 10 km/h,
    #                          whole km/h hiding it for half a second). Matters only where readings are 0.27 s
    #                          or more apart (2-3 Hz): closer, rise_min is the faster
    shift_map: ShiftMap | None = None  # automatic: coast-down lines learned on earlier drives (the drive's
    #                                    own are added as they come: TrackerState.shift_map)
    map_shift_s: float = 0.15  # automatic, slowing below a learned coast-down line: the lower gear is taken
    #                            within about this long (s), before the ratio shows it ...
    map_hold: float = 0.1  # ... and above the line (by map_margin_kmh) a downshift is this much less likely
    map_margin_kmh: float = 2.0

    def __post_init__(self):
        manual = self.kind != AUTOMATIC
        if self.dwell_s is None:
            object.__setattr__(self, "dwell_s", 0.0 if manual else 0.25)
        if self.hold_s is None:
            object.__setattr__(self, "hold_s", 1.5 if manual else 3.0)
        if self.standing_neutral is None:
            object.__setattr__(self, "standing_neutral", 0.6 if manual else 0.1)

    @property
    def top_gear(self) -> int:
        return len(self.rpm_per_kmh)

    def own_spread(self, gear: int) -> float:
        """Relative spread (ln units) of forward ``gear``'s locked ratio: ``spread``'s, else ``lock_spread``."""
        return self.spread[gear - 1] if gear - 1 < len(self.spread) and self.spread[gear - 1] > 0 else self.lock_spread

    def reading_noise(self, speed_kmh: float, rpm: float) -> float:
        """The readings' own scatter of ln(rpm per km/h), squared: the speed's resolution and the rpm's noise."""
        return (0.29 * self.speed_resolution_kmh / speed_kmh) ** 2 + (self.rpm_noise / rpm) ** 2

    @property
    def ranges(self) -> int:
        return 2 if self.low_range else 1

    @property
    def states(self) -> int:
        return self.ranges * (self.top_gear + 1)

    def shown(self, state: int) -> tuple[int, bool]:
        """(gear, low range) of a state index: gear 0 = neutral / clutch in."""
        return state % (self.top_gear + 1), state > self.top_gear

    def ratio(self, state: int) -> float:
        """rpm per km/h of a gear state (not neutral)."""
        gear, low = self.shown(state)
        return self.rpm_per_kmh[gear - 1] * (self.low_range if low else 1.0)


@dataclass(frozen=True)
class TrackerState:
    """The tracker after the last (speed, rpm) pair. Immutable and small."""

    gear: int | None = None  # shown gear: 0 neutral / clutch in, 1.. forward, None unknown
    low_range: bool = False  # the shown gear is in the transfer's low range
    posterior: tuple[float, ...] = ()  # P(state): neutral, 1st..top (then the same in low range); ()= nothing yet
    candidate: int | None = None  # the most probable state now
    candidate_since: float = 0.0  # s, (log) time it became the most probable
    t: float | None = None  # s, time of the last pair
    ratio_avg: float | None = None  # recent average of ln(rpm per km/h), for the steadiness check
    ratio_slow: float | None = None  # slower average of ln(rpm per km/h): fast - slow is its trend
    speed_avg: float | None = None  # recent average of the speed (km/h): speed - average = acceleration x lag
    engaged: int | None = None  # manual: the state last seen locked (the lever while the clutch is in)
    rpm_avg: float | None = None  # recent average of ln(rpm) (settle_s): is the engine speeding up?
    shift_map: ShiftMap | None = None  # automatic: the coast-downs seen so far (None: the model's, from earlier drives)
    pulled_from: tuple[float, float, float, float] | None = None  # automatic: (t s, km/h, rpm) where the rpm last
    #                                            began to rise, and its highest since: where a downshift's swap began
    rpm_peak: tuple[float, float, float] | None = None  # manual: (t s, ln rpm, km/h) of the highest rpm read within
    #                                                      shift_s: an engine falling from it over several pairs


def _gaussian(z: float) -> float:
    return math.exp(-0.5 * z * z)


def _neutral(model: GearModel, rpm: float) -> float:
    return model.neutral_density + model.idle_weight * _gaussian(math.log(rpm / model.idle_rpm) / model.idle_spread)


def emissions(model: GearModel, speed_kmh: float, rpm: float, ratio_avg: float | None,
              ratio_slow: float | None = None, accel_kmh_s: float = 0.0, dt: float = 0.0,
              rpm_rise: float = 0.0, commanded: frozenset[int] = frozenset(),
              early: frozenset[int] = frozenset(), speed_sd_kmh: float = 0.0,
              peak_fall: tuple[float, float] = (0.0, 0.0), shown_ratio: float | None = None) -> tuple[float, ...]:
    """Likelihood of one moving (speed, rpm) pair under each state (densities per ln unit).

    ``ratio_avg`` / ``ratio_slow``: recent averages of ln(rpm per km/h), over ``settle_s`` and
    ``trend_s``; None = no history. ``accel_kmh_s``: the truck's recent acceleration; ``dt`` (s)
    since the last pair: pairs further apart than 2 x ``settle_s`` say nothing of steadiness (a
    manual's ratio may have changed gear between them). ``rpm_rise``: ln(rpm) less its recent
    average (> 0: the engine speeds up). An automatic's shift map (slowing): the gears in ``commanded``
    have been commanded from the gear above (below its learned coast-down line), so a ratio still in
    transit from that gear's line is no evidence against them; those in ``early`` are not commanded yet
    (well above their line), so an rpm rising as the truck slows is no downshift to them. ``shown_ratio``:
    rpm per km/h of the gear shown before this pair (a manual's lever as the dash reads it).
    """
    per_range = model.top_gear + 1
    if rpm <= 0.0:  # engine stopped or stalled while rolling: no gear can be read
        return tuple(1.0 if i % per_range == 0 else 0.0 for i in range(model.states))
    log_ratio = math.log(rpm / speed_kmh)
    neutral = _neutral(model, rpm)
    manual = model.kind != AUTOMATIC
    moving = 0.0 if ratio_avg is None else log_ratio - ratio_avg  # > 0: the ratio rises (the engine gains)
    if manual:
        noise = model.reading_noise(speed_kmh, rpm) + (speed_sd_kmh / speed_kmh) ** 2
        # locked in a gear the ratio holds still; in a shift it sweeps towards the new gear's
        trend = 0.0  # where the ratio heads, this pair included: fast - slow average
        if ratio_avg is not None and ratio_slow is not None:
            fast = ratio_avg + moving * (1.0 - math.exp(-max(dt, 0.0) / model.settle_s))
            trend = fast - (ratio_slow + (log_ratio - ratio_slow) * (1.0 - math.exp(-max(dt, 0.0) / model.trend_s)))
        # the averages' own wander: the rpm's noise, and whole-km/h steps of a speed that changes
        wander = model.trend_spread + model.trend_quantum * model.speed_resolution_kmh / speed_kmh
        steady = _gaussian(moving / math.sqrt(model.steady_spread ** 2 + 2.0 * noise)) if (
            dt <= 2.0 * model.settle_s) else 1.0
        heading = abs(trend) >= max(model.heading_min, wander)
        braking = accel_kmh_s < -model.braking_kmh_s
        # the engine clearly above the line of the gear shown (read within shift_s: a downshift between two
        # readings further apart lands unseen) is the clutch in: where the speed's steps hide the ratio's
        # trend (whole km/h at 5-8 km/h), a coast to a stop in 2nd no longer reads 1st as the idle crosses it
        above_shown = (shown_ratio is not None and dt <= model.shift_s
                       and log_ratio - math.log(shown_ratio) > 2.0 * math.sqrt(model.lock_spread ** 2 + noise))
        if braking and (rpm_rise <= 0.0 and trend > 0.0 and (heading or above_shown)
                        or abs(math.log(rpm / model.idle_rpm)) <= model.idle_spread):
            # braking, the engine not speeding up while its ratio rises (it runs down more slowly than
            # the wheels: the clutch is in) or already at idle: the rpm is the engine's own, and a gear
            # whose line it passes through (2nd's at 5-6 km/h) is no evidence. Nothing is read: the
            # posterior keeps the gear, as the lever does. At idle a rise within the idle band is the
            # idle's own wobble and the reading's noise (850 -> 901 rpm), not a downshift: that lands
            # on a gear's line well above idle (4th's at 15 km/h is 1030 rpm on the Hijet).
            return (1.0,) * model.states
        if trend < 0.0 and braking:
            heading = False  # braking: the engine falls because the clutch is in, the lever stays
        # the rpm falling while the truck does not slow: the clutch is in for an upshift and the lever
        # already in a higher gear; with the clutch home the engine cannot fall below a gear's line. It must
        # fall as fast as a clutch let in does (fall_rate), not as an engine easing off with the truck (a car
        # in 1st easing from 11.3 to 10.55 km/h over half a second, read 11 throughout, its engine 7 % slower)
        fall, since = peak_fall
        dropping = ((rpm_rise <= -max(model.rise_min, model.fall_rate * dt) and dt <= model.shift_s
                     or fall <= -max(model.rise_min, model.fall_rate * since))
                    and accel_kmh_s > -model.braking_kmh_s
                    and _upshift_readable(model, accel_kmh_s, speed_sd_kmh))
    else:
        steady = 1.0 if ratio_avg is None else _gaussian(moving / model.steady_spread)
        # slowing, the wheels drive the converter: the engine turns no faster than the gear's line
        # by slip; above it, it idles on its own (says nothing of the gear), or, rising while the
        # truck slows, it is being pulled up to a lower gear's line: a downshift under way
        coasting = accel_kmh_s < -model.coast_kmh_s
        downshift = coasting and rpm_rise >= model.rise_min
    out = []
    for state in range(model.states):
        gear, _ = model.shown(state)
        if gear == NEUTRAL:
            out.append(neutral)
            continue
        own = model.own_spread(gear)
        x = log_ratio - math.log(model.ratio(state))
        if manual:
            sigma = math.sqrt(own * own + noise)
            density = steady * _gaussian(x / sigma) / (_SQRT_2PI * sigma)
            if dropping:
                if x < -sigma:
                    density = 0.0  # the engine below its line and falling: not home in this gear
                elif x > 0.0 and not (heading and trend < 0.0):
                    density += model.heading_density * math.exp(-x / model.heading_scale)
            if heading and (trend * x < 0.0 or abs(x) <= 2.0 * sigma):  # sweeping towards it, or landed on it
                density += model.heading_density * math.exp(-abs(x) / model.heading_scale)
            if x > 0.0 and gear <= 2 and speed_kmh < model.launch_kmh:  # a launch: the clutch slips
                fade = 1.0 - speed_kmh / model.launch_kmh
                density += model.slip_density * fade * (
                    model.slip_floor + (1.0 - model.slip_floor) * math.exp(-x / model.slip_scale))
            out.append(density)
            continue
        # locked, the engine follows the wheels: slowing, a ratio rising against its recent average is an
        # engine held up on its own (its idle, the converter slipping), locked in no gear, and a gear's line it
        # sweeps through (1st's at 10 km/h, braking with the engine held at 1500 rpm) is no evidence
        locked = 0.0 if coasting and moving > model.rise_min else steady * _gaussian(x / own) / (_SQRT_2PI * own)
        if gear in commanded and _in_transit(model, state, log_ratio):
            # commanded, the clutches swapping: the ratio between the gear above's line and this one's; on
            # its way up (the engine pulled up as the truck slows) it says this gear, else it is no evidence
            slipping = (model.heading_density * math.exp(-abs(x) / model.heading_scale) if moving > 0.0
                        else model.slip_density * model.slip_floor)
        elif downshift and gear not in early:
            if ratio_avg < math.log(model.ratio(state)) - own:  # a lower gear than the one being left:
                slipping = model.heading_density * math.exp(-abs(x) / model.heading_scale)  # where it heads
            else:
                slipping = model.slip_density * model.slip_floor  # the gear being left, or a higher one
        elif downshift:
            slipping = model.slip_density * model.slip_floor  # not commanded at this speed: the engine idles up
        elif x < 0.0:
            slipping = model.slip_density * _gaussian(x / model.below_spread)
        elif coasting:
            slipping = model.slip_density * model.slip_floor  # idling above the line: any height alike
        elif model.slip_scale > 0.0:
            slipping = model.slip_density * (
                model.slip_floor + (1.0 - model.slip_floor) * math.exp(-x / model.slip_scale))
        else:
            slipping = model.slip_density
        out.append(locked + slipping)
    return tuple(out)


def _upshift_readable(model: GearModel, accel_kmh_s: float, speed_sd_kmh: float) -> bool:
    """Whether a falling rpm may be read as an upshift at once: with the speed fresh, yes (the caller
    rules braking out); carried beyond FREE_CARRY_S (``speed_sd_kmh`` > 0), only while the truck was
    last seen speeding up by ``pulling_kmh_s``: whether it brakes now is not known yet."""
    return speed_sd_kmh == 0.0 or accel_kmh_s >= model.pulling_kmh_s


#: a driver upshifts into a gear only where it turns the engine at least this many times its idle
UPSHIFT_FLOOR = 1.2


def _upshift_target(model: GearModel, engaged: int, speed_kmh: float, rpm: float, accel_kmh_s: float) -> int | None:
    """A manual with the clutch in (no gear's ratio): the gear the lever is in if it has left ``engaged``
    upwards, else None.

    With the clutch home the engine cannot turn slower than a gear's line, so an engine clearly
    (2 sigma) below the line of the gear last engaged, well above its idle (not coasting with the
    clutch in) while the truck does not brake, is an upshift under way: the lever is in the next
    gear whose line lies below the rpm (where the engine is falling to), as long as that gear turns
    the engine at UPSHIFT_FLOOR x idle or more (else it is a downshift being prepared: no one
    upshifts a lugging engine). At 1 Hz a reading often catches the clutch in mid-shift.
    """
    if accel_kmh_s < -model.braking_kmh_s or rpm < UPSHIFT_FLOOR * model.idle_rpm:
        return None
    gear, _ = model.shown(engaged)
    sigma = math.sqrt(model.own_spread(gear) ** 2 + model.reading_noise(speed_kmh, rpm))
    if math.log(rpm / speed_kmh) - math.log(model.ratio(engaged)) >= -2.0 * sigma:
        return None
    per_range = model.top_gear + 1
    for state in range(engaged + 1, engaged - engaged % per_range + per_range):
        line = model.ratio(state) * speed_kmh
        if line <= rpm:
            return state if line >= UPSHIFT_FLOOR * model.idle_rpm else None
    return None


def _in_transit(model: GearModel, state: int, log_ratio: float) -> bool:
    """The ratio between the line of the gear above ``state`` and ``state``'s own (a downshift's swap)."""
    gear, _ = model.shown(state)
    return (NEUTRAL < gear < model.top_gear
            and math.log(model.ratio(state + 1)) - model.below_spread <= log_ratio < math.log(model.ratio(state)))


def _transition(model: GearModel, posterior: tuple[float, ...], dt: float,
                commanded: frozenset[int] = frozenset(), early: frozenset[int] = frozenset()) -> tuple[float, ...]:
    """Predict ``dt`` s ahead: each state is left with probability 1 - exp(-dt / hold_s), within its range.

    An automatic's shift map (slowing): from the gear above each gear in ``commanded`` the controller
    has commanded that gear, taken within about ``map_shift_s``; a gear in ``early`` is not commanded
    from the gear above yet, a change to it ``map_hold`` times as likely as otherwise.
    """
    per_range = model.top_gear + 1
    dt = max(dt, 0.0)
    leave = 1.0 - math.exp(-dt / model.hold_s)
    out = [p * (1.0 - leave) for p in posterior]
    for i, p in enumerate(posterior):
        if p == 0.0:
            continue
        base, here = i - i % per_range, i % per_range
        if here == NEUTRAL:
            weights = [0.0] + [1.0] * (per_range - 1)
        else:
            weights = [model.neutral_weight] + [
                0.0 if j == here else 1.0 if abs(j - here) == 1 else model.skip_weight for j in range(1, per_range)]
            if here - 1 in early:
                weights[here - 1] *= model.map_hold
        total = sum(weights)
        for j, w in enumerate(weights):
            out[base + j] += p * leave * w / total
    if commanded:
        for i, p in enumerate(posterior):
            here = i % per_range
            if here >= 2 and here - 1 in commanded:
                moved = p * (1.0 - leave) * (1.0 - math.exp(-dt / model.map_shift_s))
                out[i] -= moved
                out[i - 1] += moved
    return tuple(out)


def _standing(model: GearModel, posterior: tuple[float, ...], dt: float) -> tuple[float, ...]:
    """Standing still: within each range the posterior relaxes towards neutral, then 1st; the ranges
    keep their shares (the transfer stays where it was), slowly evening out."""
    per_range = model.top_gear + 1
    pull = 1.0 - math.exp(-max(dt, 0.0) / model.standing_s) if posterior else 1.0
    if not posterior:
        shares = [1.0 - model.low_range_prior, model.low_range_prior][:model.ranges]
        posterior = tuple(0.0 for _ in range(model.states))
    else:
        shares = [sum(posterior[r * per_range:(r + 1) * per_range]) for r in range(model.ranges)]
        if model.ranges == 2:
            swap = 0.5 * (1.0 - math.exp(-max(dt, 0.0) / model.range_hold_s))
            shares = [shares[0] + swap * (shares[1] - shares[0]), shares[1] + swap * (shares[0] - shares[1])]
    total = sum(shares) or 1.0
    out = []
    for r, share in enumerate(shares):
        prior = [model.standing_neutral, 1.0 - model.standing_neutral] + [0.0] * (model.top_gear - 1)
        for j in range(per_range):
            p = posterior[r * per_range + j]
            out.append(p + (share / total * prior[j] - p) * pull)
    norm = sum(out)
    return tuple(p / norm for p in out)


def track(state: TrackerState, t: float, speed_kmh: float, rpm: float, model: GearModel,
          speed_sd_kmh: float = 0.0) -> TrackerState:
    """Fold one (speed km/h, rpm rev/min) pair measured at ``t`` (s) in; return the new state.

    Call once per new pair; ``state.gear`` (and ``state.low_range``) is what the dash shows.
    """
    n = model.states
    if state.posterior and len(state.posterior) != n:
        state = TrackerState()  # a tracker of another gearbox (the gear count changed): nothing of it carries over
    if not state.posterior:
        posterior, dt, fresh = _standing(model, (), 0.0), 0.0, True
    else:
        posterior, dt, fresh = state.posterior, (t - state.t if state.t is not None else 0.0), False
    per_range = model.top_gear + 1
    ratio_avg, ratio_slow, engaged, speed_avg = state.ratio_avg, state.ratio_slow, state.engaged, state.speed_avg
    rpm_avg, pulled_from, rpm_peak = state.rpm_avg, state.pulled_from, state.rpm_peak
    shift_map = state.shift_map if state.shift_map is not None else model.shift_map
    moving = speed_kmh >= model.moving_kmh
    accel = 0.0 if speed_avg is None or not moving else (speed_kmh - speed_avg) / model.speed_trend_s
    slowing = model.kind == AUTOMATIC and accel < -model.coast_kmh_s
    commanded, early = frozenset(), frozenset()
    if slowing and shift_map is not None:
        commanded, early = _map_says(model, shift_map, speed_kmh)
    prior = _transition(model, posterior, dt, commanded, early)

    if moving:
        if fresh:
            prior = tuple(1.0 / n for _ in range(n))
        rise = 0.0
        if rpm > 0.0 and rpm_avg is not None:
            rise = math.log(rpm) - rpm_avg
        peak_fall = (0.0, 0.0)
        if (rpm > 0.0 and rpm_peak is not None and t - rpm_peak[0] <= model.shift_s
                and speed_kmh >= rpm_peak[2] - model.speed_resolution_kmh):
            # the engine falling from its highest within shift_s, the truck no slower (by the speed's resolution)
            peak_fall = (math.log(rpm) - rpm_peak[1], t - rpm_peak[0])
        likelihood = emissions(model, speed_kmh, rpm, ratio_avg, ratio_slow, accel, dt, rise, commanded, early,
                               speed_sd_kmh, peak_fall,
                               model.ratio(state.gear + (per_range if state.low_range else 0))
                               if state.gear and state.gear <= model.top_gear else None)
        # a pair at 100 Hz says little more than its neighbour: weigh evidence by time, not by pair
        weight = min(1.0, dt / model.evidence_s) if model.evidence_s > 0 and dt > 0 else 1.0
        joint = [p * e ** weight for p, e in zip(prior, likelihood)]
        total = sum(joint)
        new = tuple(j / total for j in joint) if total > 0.0 else prior
        if rpm > 0.0:
            log_ratio = math.log(rpm / speed_kmh)
            follow = 1.0 - math.exp(-max(dt, 0.0) / model.settle_s)
            ratio_avg = log_ratio if ratio_avg is None else ratio_avg + (log_ratio - ratio_avg) * follow
            follow = 1.0 - math.exp(-max(dt, 0.0) / model.trend_s)
            ratio_slow = log_ratio if ratio_slow is None else ratio_slow + (log_ratio - ratio_slow) * follow
            follow = 1.0 - math.exp(-max(dt, 0.0) / model.settle_s)
            rpm_avg = math.log(rpm) if rpm_avg is None else rpm_avg + (math.log(rpm) - rpm_avg) * follow
            best_now = max(range(n), key=new.__getitem__)
            noise = math.sqrt(model.reading_noise(speed_kmh, rpm))
            if (best_now % per_range != NEUTRAL and best_now != engaged
                    and abs(log_ratio - math.log(model.ratio(best_now))) <= model.lock_spread + noise
                    and abs(log_ratio - ratio_avg) <= 2.0 * noise + 0.01):
                engaged = best_now  # locked in it (not sweeping past): the lever is there until a shift
                ratio_slow = ratio_avg  # and the ratio is going nowhere: no trend left over from the shift
            if (model.kind != AUTOMATIC and (rpm_peak is None or t - rpm_peak[0] > model.shift_s
                                             or math.log(rpm) >= rpm_peak[1])):
                rpm_peak = (t, math.log(rpm), speed_kmh)
        follow = 1.0 - math.exp(-max(dt, 0.0) / model.speed_trend_s)
        speed_avg = speed_kmh if speed_avg is None else speed_avg + (speed_kmh - speed_avg) * follow
        if model.kind == AUTOMATIC and rpm > 0.0:
            pulled = pulled_from is not None and t - pulled_from[0] <= SWAP_S and _pulled_up(model, pulled_from)
            if pulled_from is not None and rpm > pulled_from[3]:
                pulled_from = pulled_from[:3] + (rpm,)
            elif rise <= 0.0 and not pulled:  # not speeding up, and no swap under way: none has begun
                pulled_from = (t, speed_kmh, rpm, rpm)
            if pulled_from is None:
                pulled_from = (t, speed_kmh, rpm, rpm)
    else:
        new = _standing(model, prior, dt)
        ratio_avg = ratio_slow = engaged = speed_avg = rpm_avg = pulled_from = rpm_peak = None

    best = max(range(n), key=new.__getitem__)
    if (model.kind != AUTOMATIC and best % per_range == NEUTRAL and engaged is not None
            and speed_kmh >= model.moving_kmh and rpm > 0.0):
        # clutch in while rolling: the lever stays in the gear last engaged, unless the engine is
        # already below that gear's line on its way down to a higher one's (an upshift), or a gear step
        # above it and speeding up, the likeliest forward gear a lower one (a downshift: the lever moved)
        up = (_upshift_target(model, engaged, speed_kmh, rpm, accel)
              if _upshift_readable(model, accel, speed_sd_kmh) else None)
        best = engaged if up is None else up
        if up is None and rise >= model.rise_min and (
                math.log(rpm / speed_kmh / model.ratio(engaged)) >= math.log(DOWNSHIFT_STEP)):
            lower = max((k for k in range(n) if k % per_range != NEUTRAL), key=new.__getitem__)
            if (lower % per_range < engaged % per_range and lower // per_range == engaged // per_range
                    and new[lower] >= DOWNSHIFT_SHARE):
                best = lower
    if best == state.candidate:
        since = state.candidate_since
    elif state.t is None:
        since = t
    else:
        since = 0.5 * (state.t + t)  # it became the most probable somewhere between the two pairs
    shown = None if state.gear is None else state.gear + (per_range if state.low_range else 0)
    dwell = model.dwell_s
    if shown is not None and best == shown - 1 and best % per_range in commanded and rpm > 0.0 and moving:
        log_ratio = math.log(rpm / speed_kmh)
        if (_in_transit(model, best, log_ratio) and state.ratio_avg is not None and log_ratio > state.ratio_avg
                and log_ratio >= 0.5 * (math.log(model.ratio(best)) + math.log(model.ratio(best + 1)))):
            dwell = 0.0  # the coast-down the map expects, the ratio rising and nearer the new gear's line than
            #              the old one's: three signs agree, no flicker to wait out
    if shown is None or (best != shown and t - since >= dwell):
        shown = best
    gear, low = model.shown(shown)
    if slowing and state.gear is not None and gear == state.gear - 1 >= 1 and low == state.low_range:
        # a coast-down shown: noted where the engine began to be pulled up (the command came before)
        if pulled_from is not None and t - pulled_from[0] <= SWAP_S and _pulled_up(model, pulled_from):
            shift_map = (shift_map or ShiftMap()).noted(gear, pulled_from[1])
        pulled_from = None  # the next downshift's swap begins after this one
    return TrackerState(gear=gear, low_range=low, posterior=new, candidate=best, candidate_since=since, t=t,
                        ratio_avg=ratio_avg, ratio_slow=ratio_slow, engaged=engaged, speed_avg=speed_avg,
                        rpm_avg=rpm_avg, shift_map=shift_map if model.kind == AUTOMATIC else None,
                        pulled_from=pulled_from, rpm_peak=rpm_peak)


#: rolling with the clutch in (neutral the likeliest), an engine at least this factor above the line of the
#: gear last engaged and speeding up (by rise_min) is a downshift: the lever is shown in the likeliest lower
#: gear where it holds at least DOWNSHIFT_SHARE of the posterior (a 4th -> 2nd under braking read once a
#: second: 2835 rpm at 20 km/h, 2nd 0.34, 4th nil, and 4th was shown)
DOWNSHIFT_STEP = 1.15
DOWNSHIFT_SHARE = 0.2


#: a coast-down is noted at the speed where the rpm began to rise, when that was at most this long (s)
#: before it was shown (an automatic's clutches swap in 0.3-1.5 s) and the engine has been pulled up
#: since (by rise_min): a ratio that rises only because the speed falls under an engine held at idle
#: shows no swap, and where its command came cannot be told
SWAP_S = 1.5


def _pulled_up(model: GearModel, pulled_from: tuple[float, float, float, float]) -> bool:
    return math.log(pulled_from[3] / pulled_from[2]) >= model.rise_min


def _map_says(model: GearModel, shift_map: ShiftMap, speed_kmh: float) -> tuple[frozenset[int], frozenset[int]]:
    """(gears commanded from the gear above, gears not yet commanded) while slowing at ``speed_kmh``."""
    commanded, early = [], []
    for gear in range(1, model.top_gear):
        line = shift_map.line(gear)
        if line is None:
            continue
        if speed_kmh < line:
            commanded.append(gear)
        elif speed_kmh > line + model.map_margin_kmh:
            early.append(gear)
    return frozenset(commanded), frozenset(early)


# -- pairing rpm and speed measured at different instants -----------------------------------
@dataclass(frozen=True)
class Pairing:
    """Recent speed readings (t s, km/h), to carry the speed to an rpm reading's instant; and the
    last rpm reading with the tracker as it was before it, to judge that rpm again by a speed
    interpolated to its instant once the next speed reading arrives (:func:`follow`)."""

    speed: tuple[tuple[float, float], ...] = ()
    pending: "tuple[TrackerState, float, float, float] | None" = None  # (tracker before, t s, rpm, speed
    #                                                                      carried to it) of the last rpm
    queued: "tuple[tuple[TrackerState, float, float, float], ...]" = ()  # the same for every rpm reading
    #                                                  a late speed (lag_s > 0) has not bracketed yet
    rpm: "tuple[float, float] | None" = None  # (t s, rev/min) of the last rpm reading
    judged: "TrackerState | None" = None  # the tracker as the rpm readings left it, while the one shown has
    #                                       stepped on a speed reading since (with that rpm held): the next rpm
    #                                       reading steps on from this one, so no reading's evidence counts twice


#: the speed is not carried further than this (s) to an rpm reading: too old to pair with it
MAX_PAIR_SKEW_S = 2.5
#: the speed's slope is read over at least this long (s): whole km/h 0.1 s apart make no slope ...
SLOPE_BASE_S = 0.4
#: ... it is at most this (km/h per s): hard braking ...
MAX_SPEED_SLOPE = 30.0
#: ... and the speed is carried along it at most this far (s); beyond, held
MAX_CARRY_S = 0.5
#: an rpm reading is judged again (:func:`follow`) when the speed interpolated to it differs from
#: the one carried to it by more than this share of the speed's resolution
REPAIR_SHARE = 0.5
#: with a late speed, at most this many rpm readings wait to be judged again
MAX_QUEUED = 24
#: a speed carried further than FREE_CARRY_S (s) to an rpm reading (a GPS's, late or once a second;
#: OBD's speed polled in turn with the rpm comes within it) is less certain by CARRY_ACCEL_SD (km/h) per s
#: beyond: the truck's acceleration may have changed since it was read (a shift, the brakes: a kei truck
#: pulling at +1.5 m/s^2 in 2nd coasts through a shift at -0.3), and the slope it is carried along not
FREE_CARRY_S = 0.3
CARRY_ACCEL_SD = 3.0


def carried_sd(carry_s: float) -> float:
    """The speed's uncertainty (km/h) carried ``carry_s`` beyond its reading (see FREE_CARRY_S)."""
    return CARRY_ACCEL_SD * max(0.0, carry_s - FREE_CARRY_S)


def pair_step(pairing: Pairing, channel: str, t: float, value: float,
              lag_s: float = 0.0) -> tuple[Pairing, tuple[float, float, float] | None]:
    """Fold one reading (``channel`` "rpm" or "speed") in; return (pairing, a (t, speed, rpm) pair or None).

    OBD asks one PID at a time, so rpm and speed are never measured together. Each rpm
    reading is paired with the speed *at its instant*: the latest speed carried to ``t``
    along its recent slope (read over SLOPE_BASE_S or more, so whole-km/h steps do not
    make one). Pairing by time, not by arrival: the rpm is what jumps in a shift (1000
    rpm in a tenth of a second) while the speed moves smoothly, so the rpm is taken as
    measured and the speed brought to it, at once (no waiting for the next reading).
    No pair when no speed was read in the last MAX_PAIR_SKEW_S. ``lag_s``: the speed's readings
    are stamped at the instant they were measured, this long before they arrived (a GPS:
    keidash.estimate.lag); the latest is carried that much further to an rpm reading's instant. An rpm
    measured before the latest speed reading takes the speed interpolated between the two around it.
    """
    if channel != "rpm":
        kept = tuple(r for r in pairing.speed if t - r[0] <= SLOPE_BASE_S + MAX_PAIR_SKEW_S)
        older = [r for r in kept if t - r[0] >= SLOPE_BASE_S]
        # keep the newest reading old enough to be the slope's base, and everything since
        kept = (older[-1:] + [r for r in kept if t - r[0] < SLOPE_BASE_S]) if older else list(kept)
        return replace(pairing, speed=tuple(kept[-12:]) + ((t, value),)), None
    if not pairing.speed:
        return pairing, None
    t_s, v_s = pairing.speed[-1]
    if abs(t - t_s) > MAX_PAIR_SKEW_S + lag_s:
        return pairing, None
    if t < t_s:  # an rpm measured before the latest speed (an engine note, stamped mid-window): between two
        for (t_0, v_0), (t_1, v_1) in zip(pairing.speed, pairing.speed[1:]):
            if t_0 <= t <= t_1 and t_1 > t_0:
                return pairing, (t, v_0 + (v_1 - v_0) * (t - t_0) / (t_1 - t_0), value)
    speed = v_s
    t_a, v_a = pairing.speed[0]
    if t_s - t_a >= SLOPE_BASE_S:
        slope = max(-MAX_SPEED_SLOPE, min(MAX_SPEED_SLOPE, (v_s - v_a) / (t_s - t_a)))
        speed = max(0.0, v_s + slope * max(0.0, min(t - t_s, MAX_CARRY_S + lag_s)))
    return pairing, (t, speed, value)


def follow(pairing: Pairing, tracker: TrackerState, channel: str, t: float, value: float,
           model: GearModel, lag_s: float = 0.0) -> tuple[Pairing, TrackerState]:
    """Fold one reading (``channel`` "rpm" or "speed") into the pairing and the tracker.

    An rpm reading is judged at once, with the speed carried to its instant (:func:`pair_step`).
    The next speed reading then brackets it: the speed *interpolated* to the rpm's instant is
    better than one carried along an old slope (a truck that stops braking between two 1 Hz
    readings), so the tracker is run again from where it stood before that rpm, with it. Causal:
    only readings already arrived are used; at 1 Hz the gear is corrected half a second later.
    A speed reading that ends a standstill is shown at once, stepped with the last rpm held to it
    (``Pairing.judged`` keeps the tracker the next rpm reading steps on from).
    ``lag_s``: the speed's stamps are its measured instants, this long before it arrived (pair_step).
    """
    if channel == "rpm":
        if pairing.judged is not None:  # the step shown since the last rpm reading was on its held value
            tracker = pairing.judged
        pairing = replace(pairing, rpm=(t, value), judged=None)
        pairing, pair = pair_step(pairing, "rpm", t, value, max(lag_s, 0.0))
        if pair is None:
            return pairing, tracker
        sd = carried_sd(t - pairing.speed[-1][0])
        if lag_s > 0.0:
            return (replace(pairing, queued=(pairing.queued + ((tracker, t, value, pair[1]),))[-MAX_QUEUED:]),
                    track(tracker, *pair, model, sd))
        return replace(pairing, pending=(tracker, t, value, pair[1])), track(tracker, *pair, model, sd)
    if lag_s > 0.0:
        return _judge_again(pairing, tracker, t, value, model, lag_s)
    pending, last = pairing.pending, pairing.speed[-1] if pairing.speed else None
    if pairing.judged is not None:
        tracker = pairing.judged
    pairing, _ = pair_step(replace(pairing, pending=None, judged=None), "speed", t, value)
    if pending is not None and last is not None:
        before, t_rpm, rpm, carried = pending
        t_a, v_a = last
        # a speed stamped at the rpm's own instant (a logger writing both on one row) is its pair where the
        # speed carried to it came from further than FREE_CARRY_S (a row a second old); closer, the carried
        # one stands: a speed stamped with the rpm may have been measured before it (the Ford's, 10 Hz)
        if (t_a <= t_rpm < t or t_rpm == t and t - t_a > FREE_CARRY_S) and t - t_a <= 2.0 * MAX_PAIR_SKEW_S:
            speed = v_a + (value - v_a) * (t_rpm - t_a) / (t - t_a)
            if abs(speed - carried) > model.speed_resolution_kmh * REPAIR_SHARE:  # else the same judgement
                tracker = track(before, t_rpm, speed, rpm, model)
    if (pairing.rpm is None or tracker.t is None or not tracker.t < t or t - pairing.rpm[0] > MAX_PAIR_SKEW_S
            or tracker.speed_avg is not None or value < model.moving_kmh):
        return pairing, tracker
    # a pull-away's first moving speed: shown now, a step on it with the last rpm held to its instant, not at
    # the next rpm reading half a poll later. Only here: rolling, the tracker reads a shift from how the
    # rpm moves between readings (a clutch let in, the engine sweeping down to the next gear), and an rpm
    # held looks like an engine locked at a ratio it is leaving; standing, it had nothing to read. The next
    # rpm reading steps on from the tracker as the rpm readings left it (judged), not from this step.
    t_rpm, rpm = pairing.rpm
    return replace(pairing, judged=tracker), track(tracker, t, value, rpm, model, carried_sd(t - t_rpm))


def _judge_again(pairing: Pairing, tracker: TrackerState, t: float, value: float, model: GearModel,
                 lag_s: float) -> tuple[Pairing, TrackerState]:
    """A late speed reading (measured at ``t``, ``lag_s`` before it arrived) in :func:`follow`: every
    rpm reading judged since with a speed carried to it is judged again, from the first whose
    speed is now better known: interpolated where this reading brackets it, carried from this
    reading where it does not yet. Those bracketed leave the queue."""
    last, queued = (pairing.speed[-1] if pairing.speed else None), list(pairing.queued)
    pairing, _ = pair_step(pairing, "speed", t, value)  # (a new Pairing: the queue is carried below)
    if not queued or last is None:
        return replace(pairing, queued=tuple(queued)), tracker
    t_a, v_a = last
    speeds = []
    for _, t_rpm, rpm, carried in queued:
        if t_a <= t_rpm <= t and 0.0 < t - t_a <= 2.0 * MAX_PAIR_SKEW_S:
            speeds.append((v_a + (value - v_a) * (t_rpm - t_a) / (t - t_a), True, 0.0))
        else:
            pair = pair_step(pairing, "rpm", t_rpm, rpm, lag_s)[1]
            speeds.append((carried if pair is None else pair[1], False, carried_sd(t_rpm - t)))
    first = next((n for n, ((_, _, _, carried), (speed, _, _)) in enumerate(zip(queued, speeds))
                  if abs(speed - carried) > model.speed_resolution_kmh * REPAIR_SHARE), None)
    if first is not None:  # run the tracker again from there, with the better speeds
        tracker = queued[first][0]
        for n in range(first, len(queued)):
            _, t_rpm, rpm, _ = queued[n]
            queued[n] = (tracker, t_rpm, rpm, speeds[n][0])
            tracker = track(tracker, t_rpm, speeds[n][0], rpm, model, speeds[n][2])
    return replace(pairing, queued=tuple(q for q, (_, bracketed, _) in zip(queued, speeds) if not bracketed)), tracker


# -- running over a recorded drive and scoring against its labels -------------------------
# Pure helpers over Sample rows (keidash.replay), shared by tests/test_gears.py and
# bench/gears_eval.py so both measure the same way.

def track_samples(samples, model: GearModel) -> list[int | None]:
    """The shown gear after each sample, fed as the estimator feeds it: each fresh reading in turn,
    each rpm reading paired with the speed at its instant (:func:`follow`)."""
    state, pairing, shown = TrackerState(), Pairing(), []
    for s in samples:
        for channel in s.fresh:
            value = s.rpm if channel == "rpm" else s.speed_kmh
            if value is None:
                continue
            pairing, state = follow(pairing, state, "rpm" if channel == "rpm" else "speed", s.t, value, model)
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
    changes = label_changes(samples)
    agree = counted = 0
    for s, g in zip(samples, gears):
        if not (s.gear and s.gear > 0 and s.speed_kmh is not None and s.speed_kmh >= moving_kmh):
            continue
        if away_from_change_s > 0 and not away_from_change(changes, s.t, away_from_change_s):
            continue
        counted += 1
        agree += g == s.gear
    return agree, counted


def label_changes(samples) -> list[float]:
    """Times (s, rising) of the samples whose gear label differs from the one before."""
    return [b.t for a, b in itertools.pairwise(samples) if a.gear != b.gear]


def away_from_change(changes: list[float], t: float, near_s: float) -> bool:
    """No time in the sorted ``changes`` within ``near_s`` of ``t``."""
    i = bisect.bisect_left(changes, t - near_s)
    return i == len(changes) or changes[i] > t + near_s


def moved_unseen(samples, moving_kmh: float = 4.0) -> tuple[int, int]:
    """(moved, counted) over the samples :func:`agreement` counts: ``moved`` of them have a label
    other than the one at the latest rpm reading. The lever moved since the engine was last heard,
    so no tracker that reads the gear from the rpm can know it yet: 1 - moved / counted is the
    ceiling of its agreement."""
    moved = counted = 0
    at_rpm = None
    for s in samples:
        if "rpm" in s.fresh:
            at_rpm = s.gear
        if s.gear and s.gear > 0 and s.speed_kmh is not None and s.speed_kmh >= moving_kmh:
            counted += 1
            moved += s.gear != at_rpm
    return moved, counted
