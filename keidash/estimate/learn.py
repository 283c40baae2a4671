"""Learning each forward gear's rpm per km/h from any drive with rpm and speed.

A truck whose gear ratios no source gives (most kei profiles) learns them by
driving: in a gear with the clutch home, engine rpm / road speed is a constant
of the gearbox, final drive and tyre. Everything else a drive holds (launches
and clutch slip, shifts, coasting with the clutch in, reverse, 4WD low range,
readings of rpm and speed taken at different moments) scatters between and
around those constants. The method:

1. **Pairs.** Each fresh reading of one channel makes a pair when the other
   channel was read within :data:`PAIR_SKEW_S` before it (the carOBD logs poll
   both only every ~2 s), with the other channel interpolated to its instant
   between the readings around it (:func:`learner_step`). Pairs below
   :data:`MIN_SPEED_KMH` or :data:`MIN_RPM` carry no ratio.
2. **Steady runs.** A pair counts only inside a run of pairs whose log-ratio
   stays within a tolerance of the run's first pair for at least
   :data:`HOLD_S` (with sparse data: the second agreeing pair). The tolerance
   is :data:`STEADY_TOL` plus the speed resolution's share of the speed
   (:data:`SPEED_RESOLUTION_KMH` / v: 1 km/h of OBD's whole km/h is 12 % at
   8 km/h). Shifts, launches with the clutch slipping and coasting change the
   ratio between pairs and never form a run.
3. **Histogram.** Counted pairs go into a fixed histogram of log(rpm/km/h)
   (:data:`BIN` wide bins from :data:`MIN_RATIO` to :data:`MAX_RATIO`), each
   spread over the ratio's own uncertainty from the speed resolution, with
   the sum of rpm per bin beside it. That is the whole memory: bounded,
   immutable, the same size after a minute or a year of driving.
4. **Peaks.** :func:`learned` smooths the histogram with a Gaussian kernel
   (:data:`BANDWIDTH`, 1.2 % of the ratio), takes its local maxima, merges
   those closer than :data:`MIN_STEP` (gear steps are >= ~15 %), and gives
   each peak the basin from valley to valley (at most :data:`MAX_BASIN` from
   the peak). A peak is a cluster when its basin holds at least
   :data:`MIN_CLUSTER_SAMPLES` pairs and :data:`MIN_CLUSTER_SHARE` of all.
5. **Not gears.** Clusters whose mean rpm is within :data:`IDLE_MARGIN_RPM`
   of idle (creeping on the clutch or the converter, reversing at idle) are
   kept apart in ``other``; so is a cluster at a fast idle (:data:`IDLE_BAND`)
   seen at lower speeds than the gear below it (rolling with the clutch in:
   the rpm held at idle, not proportional to speed); so is a light cluster
   below the top gear whose step from it is no gearbox's (:func:`gearbox_problem`)
   while the rest is one; so is a set of at least two clusters that are one
   consistent multiple k in :data:`LOW_RANGE` (4WD low range) of more massive
   clusters, when the clusters left still form a gearbox (no step above
   :data:`MAX_STEP`). With the gear count given, the most massive clusters
   are the gears and the rest are ``other``.
6. **Values.** Each gear's rpm per km/h is the weighted median of its basin
   (the centre of where the truck is seen in that gear: on a manual that is
   the mode; behind a slipping torque converter it lies above it, like the
   median of rpm/speed over the samples labelled with that gear).
   Confidence = (1 - exp(-n / :data:`CONFIDENT_SAMPLES`)) x
   1 / (1 + (se / :data:`SHARP_SE`)^2), with se = spread / sqrt(n) the relative standard
   error of the centre and spread = MAD / median.
7. **Missing gears.** With ``gears`` given and fewer clusters found, a step
   above :data:`MAX_STEP` between two clusters holds the missing gear(s).
   Whether gears are missing above the highest cluster is told by the
   launches (:func:`launch_gears`): launches locked a gear step above it,
   rpm rising with the speed before falling into it, make that gear 1st,
   learned from them; and the lowest ratio in the first :data:`LAUNCH_S`
   after each standstill is at or above 1st's (the truck pulls away in 1st,
   clutch home or slipping), counted near only when some launch was seen
   going into the highest cluster straight from the slip. Launches below the highest cluster x :data:`MIN_GEAR_STEP`
   (>= :data:`LAUNCH_NEAR_SHARE` of them) make it 1st; at least
   :data:`MIN_LAUNCHES`, (almost) all above that, prove a gear above it (as
   few as fit). Any other case cannot decide: the likeliest numbering is
   taken (from 2nd when most launches read with the engine working lie a
   gear step above the highest cluster, :func:`_likely_above`, or most
   launches' lowest ratios lie on one line a gear step or more above it,
   :func:`_lows_agree_above`),
   ``numbering_certain`` is False and every confidence is multiplied
   by :data:`UNCERTAIN_NUMBERING`. Gears still missing are the top gears (a
   short town drive need not reach top). A missing gear has ``rpm_per_kmh``
   None and confidence 0: nothing is made up. A numbering that is not certain
   is never shown on the dash; ``keidash eval`` scores it
   (:meth:`LearnedRatios.for_scoring`) and says so.

Pure and deterministic: no clock, port or file; :func:`learner_step` costs a
copy of two ~900-entry tuples, a few microseconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import TYPE_CHECKING, Iterable

from ..profiles import Profile
from ..readings import RPM, SPEED
from .gears import Pairing, pair_step

if TYPE_CHECKING:  # the replay package is for logs only: the live dash need not import it
    from ..replay.log import DriveLog

#: rpm and speed measured further apart than this (s) make no pair, unless ...
PAIR_SKEW_S = 0.6
#: ... the other channel's readings just before and after a reading, at most this far apart (s), bracket it
MAX_BRACKET_S = 2.5
#: readings waiting for the other channel's next reading: at most this many
MAX_WAITING = 32
#: below this road speed (km/h) a ratio is too coarse to find gears by (and a launch is likely)
MIN_SPEED_KMH = 6.0
#: from this road speed (km/h) the truck is moving: its pairs place each gear's centre
MOVING_KMH = 4.0
#: below this engine speed (rpm) the engine is stalling or off: no ratio
MIN_RPM = 500.0
#: a run's pairs agree within this share (of the ratio) plus the speed resolution's share
STEADY_TOL = 0.04
#: speed readings are assumed this coarse (km/h): OBD-II gives whole km/h
SPEED_RESOLUTION_KMH = 1.0
#: a run must have lasted this long (s) before its pairs count
HOLD_S = 1.0
#: a gap longer than this (s) between pairs ends a run
MAX_GAP_S = 3.0
#: the histogram spans rpm per km/h from MIN_RATIO to MAX_RATIO in BIN-wide log bins
MIN_RATIO = 10.0
MAX_RATIO = 1000.0
BIN = 0.005
N_BINS = math.ceil(math.log(MAX_RATIO / MIN_RATIO) / BIN)
#: Gaussian smoothing of the log-ratio density (sigma, log units ~ share of the ratio)
BANDWIDTH = 0.012
#: two peaks closer than this (log) are one cluster: adjacent gears differ by >= ~15 %
MIN_STEP = math.log(1.13)
#: two peaks whose valley is above this share of the lower one are one cluster
MIN_DIP = 0.5
#: a cluster's basin reaches at most this far (log) from its peak
MAX_BASIN = math.log(1.30)
#: a peak is a cluster with at least this many pairs ...
MIN_CLUSTER_SAMPLES = 4.0
#: ... and at least this share of all pairs
MIN_CLUSTER_SHARE = 0.003
#: without a gear count, more clusters than this are tested for a low-range copy
MAX_GEARS = 6
#: adjacent forward gears are never further apart than this factor
MAX_STEP = 2.1
#: a 4WD transfer's low range multiplies every ratio by a factor in this range
LOW_RANGE = (1.5, 2.0)
#: ratios agreeing within this (log) are "the same" when testing for a low-range copy
LOW_RANGE_MATCH = 0.03
#: a cluster whose mean rpm is below idle + this is creeping or reversing at idle, not a gear
IDLE_MARGIN_RPM = 150.0
#: confidence reaches 63 % at this many pairs ...
CONFIDENT_SAMPLES = 20.0
#: ... and halves when the cluster's centre is this uncertain (relative standard error: spread / sqrt(pairs)).
#: A wide cluster (whole-km/h speeds at low speed) is still sure of its centre with many pairs.
SHARP_SE = 0.01
#: every gear at least this confident makes the learned ratios ready to drive the dash
READY_CONFIDENCE = 0.5
#: without the gear count given, at least this many gears (a kei 3-speed automatic's) make them ready
MIN_FORWARD_GEARS = 3
#: a speed reading below this (km/h) is a standstill: the next pull-away is a launch in 1st. OBD's lowest
#: reading above 0 is 1 km/h; a logger writing it in mph to a tenth (0.6) reads back as 0.97 km/h: moving
STANDSTILL_KMH = 0.9
#: for this long (s) after the last standstill the truck is surely still in 1st (drivers shift at ~3 s)
LAUNCH_S = 2.5
#: adjacent forward gears differ by at least this factor (the smallest step of common 5-speeds is ~1.2)
MIN_GEAR_STEP = 1.15
#: at least this many launches, (almost) all well above the highest cluster, prove a gear above it
MIN_LAUNCHES = 3
#: launches whose ratio leaves no room for a gear above the highest cluster: this share of them
#: (and at least one) makes that cluster 1st; at most LAUNCH_STRAY_SHARE of them is noise
LAUNCH_NEAR_SHARE = 0.2
LAUNCH_STRAY_SHARE = 0.1
#: a launch reading this much (share) below the highest cluster cannot be a pull-away in it or in a
#: gear above it (slip only raises the ratio): rpm and speed read at different moments of a hard
#: launch (a kei truck's 1st runs out at 10-13 km/h within 2 s); more than LAUNCH_STRAY_SHARE of
#: them and the launches decide nothing
LAUNCH_BELOW = 0.08
#: "any number of gears" above the highest cluster, when the launches do not bound it
UNBOUNDED = 99
#: a gear's confidence is multiplied by this when its number is not certain
UNCERTAIN_NUMBERING = 0.5
#: a cluster whose mean rpm is below idle x this, seen at lower road speeds than the gear below it
#: (the next cluster with more rpm per km/h), is the engine idling while the truck rolls (clutch in or
#: in neutral, coasting at a steady speed): rpm held at idle, not rpm proportional to speed. A gear
#: is driven in the engine's working band (gears of the shared and virtual drives: >= 1.5 x idle on
#: average) and a taller gear at higher speeds than the one below it.
IDLE_BAND = 1.3
#: a cluster between two others holding less than this share of the smaller one's pairs, whose
#: neighbours are one plausible gear step apart without it, is not a gear: a stretch of clutch
#: slip, converter slip or low range that held steady long enough to leave a peak
PHANTOM_SHARE = 0.25
#: ... unless the engine was pulled through it: its steady pairs' rpm spread at least this much
#: (standard deviation over mean) while their ratio held. A gear holds its ratio whatever the engine
#: speed, so a gear driven through briefly on the way up shows the rpm rising with the road speed (the
#: close-ratio car's lazy 3rd and 4th: 0.03-0.17); a stretch of slip held steady holds one engine speed
#: and one road speed (within the rpm's noise, ~0.01): no other speed keeps its ratio
PULLED_THROUGH = 0.02
#: a gear passed through but never held (:func:`_glimpsed`): its moving pairs lie within this (ln units) of
#: its ratio (whole-km/h speeds at 40-60 km/h, the rpm's noise: the close-ratio car's 4th read four times at
#: 2 Hz spans 4.2 %)
GLIMPSE_WIDTH = 0.03
#: each launch's moving pairs are kept for this long (s) after its standstill, at most LAUNCH_PAIRS of
#: them, for the last KEPT_LAUNCHES launches: bounded memory that tells which gear a launch was in
LAUNCH_SEQ_S = 5.0
LAUNCH_PAIRS = 60
#: ... one pair per this long (s) at most: a 50 Hz log keeps its launch's whole 5 s
LAUNCH_PAIR_S = 0.085
KEPT_LAUNCHES = 32
#: ... and each launch's readings, at most this many (5 s of a 10 Hz tach and a 10 Hz GPS, and a margin)
LAUNCH_READINGS = 160
#: a launch's pairs take the speed interpolated, not carried, when its readings come this far apart (s):
#: pulling away at 5 km/h per s the speed moves over 1.2 km/h between them, more than OBD's whole km/h
SPARSE_SPEED_S = 0.25
#: a launch's gear is a lock: its last pairs before the first upshift agree within this (log) of their
#: median, at least LOCK_PAIRS of them at MIN_SPEED_KMH or more ...
LOCK_TOL = 0.06
LOCK_PAIRS = 2
#: ... and the upshift out of it follows within this long (s): the rpm drops a gear step at one speed
UPSHIFT_S = 1.0
#: a pair whose rpm is below this share of the one before it is the clutch going in, not a gear held
RPM_FALLING = 0.99
#: a launch's pairs no further apart than this (s) would have shown a lock in 1st had there been one
DENSE_GAP_S = 0.35
#: ... where the speed rose at least this factor in the UPSHIFT_S before reaching it (slip, not a shift)
SLIP_SPEED_RISE = 1.3
#: ... or reaching the highest cluster at most this far above idle (rpm): 2nd there would stall
LAUNCH_IDLE_MARGIN_RPM = 350.0
#: ... or reaching it this soon (s) after the last standstill reading: too soon to have pulled away in a gear
#: above it and shifted out of it (the clutch biting, then out, the lever moved and the clutch in again)
QUICK_ENTRY_S = 1.0
#: the launch gear's ratio is known well enough to tell 1st from 2nd (>= 15 % apart) at this
#: relative standard error over launches: its confidence halves there
LAUNCH_SHARP_SE = 0.03
#: launches locked in one gear above the highest cluster, at least this share of the launches that
#: show their gear, make it 1st
LAUNCH_LOCK_SHARE = 0.7
#: launches locked above the highest cluster within 2 x LOCK_TOL of each other, none seen going into it, that
#: prove a gear above it (:func:`_launch_verdict`; its ratio wants MIN_LAUNCHES locks)
LOCKS_ABOVE = 2
#: a real gearbox's steps shrink from 1st towards top (progressive gearing): each step is at
#: most this factor above the one below it (the Hijet's 2nd->3rd and 3rd->4th: 1.45, 1.65)
STEP_PROGRESSION = 1.2
#: a launch tells whether 1st lies above the highest cluster (:func:`_likely_above`) when at least this
#: many of its pairs in LAUNCH_S were read with the engine above the standing rpm: its lowest is then not
#: the clutch's slip seen once (a log polled every 2 s has one pair or two in a launch, slipping)
WORKED_PAIRS = 3

_EMPTY = (0.0,) * N_BINS


@dataclass(frozen=True)
class GearRatio:
    """One forward gear as learned."""

    rpm_per_kmh: float | None  # engine rpm per km/h of road speed; None when the gear was not seen
    confidence: float  # 0..1
    samples: int  # steady pairs in the gear's cluster (rounded)
    spread: float  # robust relative spread of the cluster: MAD / median


@dataclass(frozen=True)
class LearnedRatios:
    """The forward gears found, 1st..top, and the clusters that are not forward gears."""

    gears: tuple[GearRatio, ...]  # 1st..top, rpm_per_kmh falling
    other: tuple[float, ...]  # rpm per km/h of clusters not taken as forward gears (low range, reverse, ...)
    samples_used: int  # steady pairs in the histogram
    gear_count_given: bool = False  # True when the gear count came from the caller
    numbering_certain: bool = True  # False when the evidence cannot tell which gear the highest cluster is
    launches: int = 0  # pull-aways from a standstill seen (each one a 1st-gear upper bound)
    speed_lags: tuple[float, ...] = ()  # per log learned from: the speed's lag taken out (learn_from_logs)
    unsure_at: float | None = None  # rpm per km/h of the phantom between two gears that alone leaves the
    #                                 numbering unsure (no gear count given; the launches confirm 1st)
    skipped_at: float | None = None  # no gear count given: rpm per km/h of the light peak taken as a gear in the
    #                                  likeliest numbering, a gear missing beside it (:func:`_skipped`)
    more_gears: int | None = None  # the drives show at least this many forward gears, more than the count
    #                                given (a wrong profile or --gears): the numbering is not certain
    through_at: tuple[float, ...] = ()  # no gear count given: rpm per km/h of the light peaks between two gears
    #                                   the engine was pulled through, taken as gears driven through briefly in
    #                                   the likeliest numbering (:func:`_driven_through`)
    glimpsed_at: float | None = None  # rpm per km/h of a gear passed through but never held, inside a step longer
    #                                   than the one below it (:func:`_glimpsed`): the numbering is not certain; a
    #                                   gear in the likeliest one where it makes a gearbox with the gears found
    #                                   (:meth:`scored`; with the count in the table, where the count's numbering
    #                                   had no gear missing there)
    first_doubted: bool = False  # the count alone made the highest cluster 1st and the launches say a gear
    #                              above it: the numbering is not certain, and one shown is dropped
    likely_above: int = 0  # no gear count given: 1 when the launches prove a gear above the highest cluster
    #                        or make one likeliest (:func:`_worked_above`, :func:`_likely_above`): a 1st not found is
    #                        likeliest (read once a second a kei truck's 1st is neither held steadily nor
    #                        seen locked). The table starts at the highest cluster all the same (the numbering
    #                        is not certain); :meth:`for_scoring` numbers from 2nd

    def rpm_per_kmh(self) -> tuple[float, ...]:
        """Every gear's rpm per km/h, 1st..top; () unless every gear is known."""
        if not self.gears or any(g.rpm_per_kmh is None for g in self.gears):
            return ()
        return tuple(g.rpm_per_kmh for g in self.gears)

    def lowest_found(self) -> tuple[float, ...]:
        """The gears found from 1st up, when the numbering is certain, at least MIN_FORWARD_GEARS of them
        are found in a row from 1st, every gear above them is missing (top gears the drives never held)
        and they make a gearbox; else (). What scores a log that never reached top: a gear it never drove
        cannot be confused. Never written into a profile (its gear count would be wrong)."""
        known = [g.rpm_per_kmh for g in self.gears if g.rpm_per_kmh is not None]
        if (not self.numbering_certain or len(known) < MIN_FORWARD_GEARS
                or any(g.rpm_per_kmh is None for g in self.gears[:len(known)]) or gearbox_problem(known)):
            return ()
        return tuple(known)

    def missing_between(self) -> list[int]:
        """Numbers (1 = 1st) of the gears not found between two found."""
        found = [n for n, g in enumerate(self.gears, start=1) if g.rpm_per_kmh is not None]
        return [n for n in range(found[0] + 1, found[-1]) if self.gears[n - 1].rpm_per_kmh is None] if found else []

    @property
    def found(self) -> int:
        """How many gears have a learned value."""
        return sum(g.rpm_per_kmh is not None for g in self.gears)

    @property
    def ready(self) -> bool:
        """Fit to drive the dash: every gear known and at least READY_CONFIDENCE sure, the
        numbering certain (which cluster is 1st) and the steps between the gears those of a
        gearbox (:func:`gearbox_problem`); without the gear count given, at least MIN_FORWARD_GEARS
        of them (a truck seen in one or two gears so far would have every other gear numbered as
        one of those). A wrong gear number is worse than none."""
        ratios = self.rpm_per_kmh()
        return (bool(ratios) and self.numbering_certain and not gearbox_problem(ratios)
                and (self.gear_count_given or len(ratios) >= MIN_FORWARD_GEARS)
                and all(g.confidence >= READY_CONFIDENCE for g in self.gears))

    def bridged(self) -> tuple[float, ...]:
        """The ratios the dash may number the gears by: every gear's when :attr:`ready`; else, when
        the gears found at least READY_CONFIDENCE sure include 1st and top, which gear is 1st is
        certain, the gear count is given and those sure gears can take no other numbers by
        themselves (:func:`_numberings`: 1st and top included, as if the weak ones were not
        there), every gear between them: a gear driven too briefly to
        hold a steady ratio (as a kei truck's 2nd and 3rd often are) bridged geometrically, a
        weak one found between two sure ones at its own ratio. A gear between two known ones has
        its number whatever its exact ratio: a manual gearbox has no other forward ratio between
        them, so a weak peak there cannot move a number, whether it is that gear or a phantom.
        The whole set must be a gearbox's (with the weak ones' own ratios, else with them
        bridged too). 1st not found (or made by a few launches' locks, less than READY_CONFIDENCE sure),
        with the numbering certain all the same (the launches proved a gear above the highest cluster)
        and the sure gears from 2nd to top numbered by themselves with a gear above them, is *bounded*:
        see :meth:`first_spread`. () when none of that holds."""
        return self.numbered()[0]

    def first_spread(self) -> float:
        """How uncertain (ln units, one standard deviation) the 1st of :meth:`bridged` is: 0.0 when it
        was found, else (1st *bounded*) a quarter of the width of the range a gearbox leaves it.

        Read once a second, a kei truck's 1st (2 s long) leaves neither a steady run nor a launch's
        lock, while the launches still prove a gear above 2nd. A manual gearbox has no forward gear
        above 2nd but 1st, so a ratio clearly above 2nd's line with the clutch home is 1st whatever
        1st's exact ratio: its number is certain, its ratio bounded by what makes a gearbox
        (:func:`gearbox_problem`: 1st at least MIN_GEAR_STEP and at least 2nd/3rd over
        STEP_PROGRESSION above 2nd, at most MAX_STEP). :meth:`bridged` gives the range's geometric
        middle and the tracker reads 1st with this spread: wide, so it takes a ratio for 1st only
        once it is clearly above 2nd's. Nothing is written into a profile from it
        (:meth:`rpm_per_kmh` stays ())."""
        return self.numbered()[1]

    def numbered(self) -> tuple[tuple[float, ...], float]:
        """(:meth:`bridged`, :meth:`first_spread`), worked out once."""
        if self.ready:
            return self.rpm_per_kmh(), 0.0
        count = len(self.gears)
        sure = [n for n, g in enumerate(self.gears)
                if g.rpm_per_kmh is not None and g.confidence >= READY_CONFIDENCE]
        if not self.numbering_certain or len(sure) < 3:
            return (), 0.0
        if not self.gear_count_given:
            # without the count the table is the gears found, numbered for sure: 1st and the highest found
            # sure, a weak one between two sure ones is a gear the gearbox needs there (else it was set
            # apart as a phantom and the numbering left unsure), at its own ratio as with the count; but not
            # where the top step is longer than the one below it (a gearbox's steps shrink towards top: a
            # gear skipped and never seen hides there, the brisk driver's 5th in the close-ratio car, whose
            # 6th was shown as 5th beside a weak 4th; with the count the count tells)
            own = [g.rpm_per_kmh for g in self.gears]
            if (sure[0] != 0 or sure[-1] != count - 1 or None in own
                    or own[-2] / own[-1] > own[-3] / own[-2]):
                return (), 0.0
        # top gears never driven (none found above the sure ones: a weak one there may be a phantom, and a
        # top gear unseen above it) leave the gears below numbered from 1st: shorter than the count
        top = sure[-1]
        if any(g.rpm_per_kmh is not None for g in self.gears[top + 1:]):
            return (), 0.0
        # 1st bounded: not found, or made by the launches' locks (no steady pair) less than READY_CONFIDENCE
        # sure, and the numbering certain all the same, so the launches proved a gear above the highest
        # cluster (a numbering from 1st fits whenever one from 2nd does); a weak 1st cluster may be a phantom
        first_unseen = sure[0] == 1 and (self.gears[0].rpm_per_kmh is None or self.gears[0].samples == 0)
        if sure[0] != 0 and not first_unseen:
            return (), 0.0
        known = [self.gears[n].rpm_per_kmh for n in sure]
        if _numberings(known, count, sure[0], sure[0] if top < count - 1 else None) != [tuple(sure)]:
            return (), 0.0  # the sure gears' numbers rest on a weak one
        filled = _geometric_gaps([self.gears[n].rpm_per_kmh if n in sure else None for n in range(top + 1)])
        own = [g.rpm_per_kmh if g.rpm_per_kmh is not None else k for g, k in zip(self.gears, filled)]
        if top < count - 1 and _longer_above(own[1 if first_unseen else 0:]):
            return (), 0.0
        for ratios in (own, filled):
            spread = 0.0
            if first_unseen:
                bound = _bounded_first(ratios[1], ratios[2])
                if bound is None:
                    continue
                ratios, spread = [bound[0]] + ratios[1:], bound[1]
            if not gearbox_problem(ratios):
                return tuple(ratios), spread
        return (), 0.0

    def scored(self) -> tuple[float, ...]:
        """The ratios to score a drive by (``keidash eval``; never a profile's, never the dash's), when
        neither :meth:`rpm_per_kmh`, :meth:`lowest_found` nor :meth:`bridged` gives them: the gears as
        the table numbers them, the likeliest numbering where it is not certain (eval says so), each
        found at its own ratio however few its pairs, a gear missing between two found bridged
        geometrically, a 1st not found below a found 2nd bounded above it as :meth:`bridged` bounds it
        (the middle of the range a gearbox leaves it), the top gears never found left out, and without the
        count a gear glimpsed between two found (:attr:`glimpsed_at`) put in as a gear where it makes a
        gearbox with them. () with fewer than MIN_FORWARD_GEARS found, or more than 1st missing below them.
        A log read once a second holds 2nd to top steadily and its 1st only in 2-second launches: the dash
        shows no gear until the numbering is sure, but the tracker's figure on that log is of these ratios,
        not of the gears numbered one too low."""
        return self._scored(False)

    def _scored(self, first_above: bool) -> tuple[float, ...]:
        table = [None] * first_above + [g.rpm_per_kmh for g in self.gears]
        while table and table[-1] is None:
            table.pop()
        if self.glimpsed_at is not None and not self.gear_count_given:
            # without the count a gear glimpsed is a gear in the likeliest numbering where it makes a gearbox
            # with those found (the table is of the gears found: live, the numbering shown stays while it does)
            if _fits_with([k for k in table if k is not None], self.glimpsed_at, MAX_GEARS):
                at = 1 + max(n for n, k in enumerate(table) if k is not None and k > self.glimpsed_at)
                if table[at] is None:
                    table[at] = self.glimpsed_at
                else:
                    table.insert(at, self.glimpsed_at)
        found = [n for n, k in enumerate(table) if k is not None]
        if len(found) < MIN_FORWARD_GEARS or found[0] > 1:
            return ()
        filled = _geometric_gaps(table)
        if found[0] == 1:
            bound = _bounded_first(filled[1], filled[2])
            if bound is None:
                return ()
            filled[0] = bound[0]
        return tuple(filled)

    def for_scoring(self, manual: bool = True) -> tuple[float, ...]:
        """The ratios ``keidash eval`` scores a drive by: :meth:`rpm_per_kmh`, else :meth:`lowest_found`,
        else :meth:`bridged`, else :meth:`scored`; :meth:`scored` first where no count was given and the
        launches make a 1st above the highest cluster likeliest (:attr:`likely_above`) on a ``manual``
        gearbox, or a gear was glimpsed between two found (:attr:`glimpsed_at`). Not behind a torque
        converter: it slips at every pull-away, so launches bound no gear there."""
        if self._first_above(manual):
            return self._scored(True)
        scored = self.scored()
        if self.glimpsed_at is not None and not self.gear_count_given and scored:
            return scored  # a gear glimpsed between two found: a gear (:meth:`scored`)
        return self.rpm_per_kmh() or self.lowest_found() or self.bridged() or scored

    def first_bounded(self, manual: bool = True) -> bool:
        """True when :meth:`for_scoring` bounds a 1st not found (above 2nd, as :meth:`bridged` does)."""
        return bool(self.gears) and (self.gears[0].rpm_per_kmh is None or self._first_above(manual))

    def _first_above(self, manual: bool) -> bool:
        return bool(manual and self.likely_above and not self.gear_count_given)

    @property
    def confident(self) -> int:
        """How many gears are found at least READY_CONFIDENCE sure of their ratio (the dash's "learning gears
        3/5"), whether or not their numbers are certain yet: a numbering that is not certain halves each
        confidence (UNCERTAIN_NUMBERING) so that none is used, and read as found, four gears held for minutes
        showed "0/5" for a whole drive read once a second."""
        scale = 1.0 if self.numbering_certain or not self.gear_count_given else 1.0 / UNCERTAIN_NUMBERING
        return sum(g.rpm_per_kmh is not None and g.confidence * scale >= READY_CONFIDENCE for g in self.gears)


def _geometric_gaps(table: list[float | None]) -> list[float | None]:
    """``table`` (rpm per km/h, 1st first, None where not known) with each gap between two known gears
    filled in geometric steps (a gear driven too briefly to hold a steady ratio)."""
    known = [n for n, k in enumerate(table) if k is not None]
    filled = list(table)
    for a, b in zip(known, known[1:]):
        for n in range(a + 1, b):
            filled[n] = round(table[a] * (table[b] / table[a]) ** ((n - a) / (b - a)), 2)
    return filled


def _longer_above(ratios: list[float]) -> bool:
    """True when a step between adjacent ``ratios`` (falling) is longer than the one below it. Numbered
    from 1st with the top gears never driven, nothing pins the numbers from above: a gear driven through
    too briefly for a cluster hides inside a step as long as two (the close-ratio car's lazy 2nd -> 4th,
    1.80 after a 1st -> 2nd of 1.65, numbered 4th 3rd from 142 s to 228 s of a kei-day), and a gearbox's
    steps mostly shrink towards top. Where one grows (the Hijet's 3rd -> 4th, 1.65 after 1.45) the top
    gear is waited for."""
    steps = [math.log(a / b) for a, b in zip(ratios, ratios[1:])]
    return any(upper > lower for lower, upper in zip(steps, steps[1:]))


def _bounded_first(second: float, third: float) -> tuple[float, float] | None:
    """(rpm per km/h, spread in ln units) of a 1st never found above this 2nd and 3rd: the middle of the
    range a gearbox leaves it (:func:`gearbox_problem`) and a quarter of its width; None when no 1st fits."""
    low = max(MIN_GEAR_STEP, second / third / STEP_PROGRESSION)
    if low >= MAX_STEP:
        return None
    return round(second * math.sqrt(low * MAX_STEP), 2), round(math.log(MAX_STEP / low) / 4.0, 4)


@dataclass(frozen=True)
class LearnerState:
    """What the learner remembers: the latest readings, the current run and a fixed histogram."""

    rpm: tuple[float, float] | None = None  # (t s, rpm) of the latest rpm reading
    speed: tuple[float, float] | None = None  # (t s, km/h) of the latest speed reading
    run_start: float | None = None  # t (s) of the current steady run's first pair
    run_last: float = 0.0  # t (s) of the run's latest pair
    run_ratio: float = 0.0  # log(rpm per km/h) of the run's first pair
    run_rpm: float = 0.0  # rpm of the run's latest pair
    run_pending: tuple[float, float, float] | None = None  # (log ratio, half width, rpm): first pair, not counted yet
    weights: tuple[float, ...] = field(default=_EMPTY, repr=False)  # steady pairs per log-ratio bin
    moving: tuple[float, ...] = field(default=_EMPTY, repr=False)  # every moving pair per bin, steady or not
    agreeing: tuple[float, ...] = field(default=_EMPTY, repr=False)  # moving pairs per bin that continue a
    #                                        run (within STEADY_TOL of its first), held or not yet, read after the
    #                                        run's pair before with the rpm not falling: not a clutch going in
    agreeing_rpm: tuple[float, ...] = field(default=_EMPTY, repr=False)  # ... and the sum of their rpm
    rpm_sums: tuple[float, ...] = field(default=_EMPTY, repr=False)  # sum of rpm per bin
    rpm_squares: tuple[float, ...] = field(default=_EMPTY, repr=False)  # sum of rpm squared per bin
    pairs: int = 0  # steady pairs counted
    stopped_at: float | None = None  # t (s) of the latest standstill speed reading
    launch_pending: float | None = None  # lowest log(rpm per km/h) in the current launch so far
    launches: tuple[float, ...] = field(default=_EMPTY, repr=False)  # launches per bin of their lowest ratio
    standing_rpm: float | None = None  # the latest rpm read before the last standstill speed reading (the
    #                                    idle, or the driver already revving to pull away: a floor only stricter)
    launch_worked: float | None = None  # launch_pending over the pairs read with the engine working (above
    #                                     standing_rpm + IDLE_MARGIN_RPM) ...
    launch_worked_pairs: int = 0  # ... and how many such pairs
    launches_dense: tuple[float, ...] = field(default=_EMPTY, repr=False)  # launches with at least
    #                                                                        WORKED_PAIRS of those, per bin
    launches_worked: tuple[float, ...] = field(default=_EMPTY, repr=False)  # launches with one or more,
    #                                                                         per bin of their lowest
    launch_from: float | None = None  # t (s) of the standstill the current launch left
    pairing: Pairing = Pairing()  # recent speeds, to carry the speed to each rpm reading's instant
    launch_seq: tuple[tuple[float, float, float, float], ...] = ()  # its (t, log ratio, rpm, km/h) pairs
    launch_seqs: tuple[tuple[tuple[float, float, float, float], ...], ...] = ()  # the last KEPT_LAUNCHES
    waiting: tuple[tuple[float, str, float], ...] = ()  # (t, channel, value) of readings whose other
    #                                                      channel has not been read since
    launch_raw: tuple[tuple[float, str, float], ...] = ()  # the current launch's readings (t, channel, value)
    launch_raws: tuple[tuple[tuple[float, str, float], ...], ...] = ()  # those of launch_seqs, one each:
    #                                                  to pair them again when the speed's instants move


def _bin(log_ratio: float) -> int:
    return int((log_ratio - math.log(MIN_RATIO)) / BIN)


def _spread(histogram: tuple[float, ...], lo: int, hi: int, amount: float) -> tuple[float, ...]:
    """``histogram`` with ``amount`` spread evenly over bins lo..hi."""
    share = amount / (hi - lo + 1)
    return histogram[:lo] + tuple(w + share for w in histogram[lo:hi + 1]) + histogram[hi + 1:]


def _span(log_ratio: float, half_width: float) -> tuple[int, int]:
    return max(_bin(log_ratio - half_width), 0), min(_bin(log_ratio + half_width), N_BINS - 1)


def _add(state: LearnerState, log_ratio: float, half_width: float, rpm: float) -> LearnerState:
    """The state with one steady pair spread evenly over [log_ratio +- half_width]."""
    lo, hi = _span(log_ratio, half_width)
    return _replace(state, weights=_spread(state.weights, lo, hi, 1.0),
                    rpm_sums=_spread(state.rpm_sums, lo, hi, rpm),
                    rpm_squares=_spread(state.rpm_squares, lo, hi, rpm * rpm), pairs=state.pairs + 1)


def learner_step(state: LearnerState, t: float, channel: str, value: float) -> LearnerState:
    """Fold one fresh reading (t in s, rpm or km/h) into the learner; other channels are ignored.

    A reading makes a pair when the other channel was read within PAIR_SKEW_S before it (or at or
    after it, already arrived), and the pair takes the other channel *at its instant*: interpolated
    between the other's readings just before and just after it, so the reading waits (in
    ``waiting``) for the other channel's next one. A 10 Hz tach beside a 1 Hz GPS: each rpm reading
    gets the speed of its own tenth of a second, not one up to PAIR_SKEW_S old (at 1 m/s^2 and
    30 km/h, 7 % off).
    """
    if channel not in (RPM, SPEED):
        return state
    latest = state.rpm if channel == RPM else state.speed
    if state.waiting and state.waiting[0][1] != channel:  # the other channel's readings, bracketed now
        for t_w, other, v_w in state.waiting:
            at = _at(t_w, latest, (t, value))
            state = _fold_pair(state, t_w, *((v_w, at) if other == RPM else (at, v_w)))
        state = _replace(state, waiting=())
    if channel == RPM:
        state = _replace(state, rpm=(t, value))
    else:
        state = _replace(state, speed=(t, value))
        if value < STANDSTILL_KMH:
            state = _replace(_close_launch(_close_sequence(state)), stopped_at=t, launch_from=t,
                             standing_rpm=state.rpm[1] if state.rpm is not None else state.standing_rpm)
    if state.launch_from is not None and t - state.launch_from > LAUNCH_SEQ_S:
        state = _close_sequence(state)
    if state.stopped_at is not None and t - state.stopped_at > LAUNCH_S:
        state = _replace(_close_launch(state), stopped_at=None)
    if state.launch_from is not None and len(state.launch_raw) < LAUNCH_READINGS:
        state = _replace(state, launch_raw=state.launch_raw + ((t, channel, value),))
    pairing, pair = pair_step(state.pairing, channel, t, value)
    state = _replace(state, pairing=pairing)
    if pair is not None and not _sparse_speed(state):
        state = _launch_pair(state, *pair)
    other = state.speed if channel == RPM else state.rpm
    if other is None or abs(other[0] - t) > PAIR_SKEW_S:
        return state
    if other[0] >= t:  # read at or after this one, already arrived (an engine note stamped mid-window)
        return _fold_pair(state, t, *((value, other[1]) if channel == RPM else (other[1], value)))
    waiting = state.waiting + ((t, channel, value),)
    while len(waiting) > MAX_WAITING:  # no reading of the other channel for long: the oldest paired with its latest
        (t_w, _, v_w), waiting = waiting[0], waiting[1:]
        state = _fold_pair(state, t_w, *((v_w, other[1]) if channel == RPM else (other[1], v_w)))
    return _replace(state, waiting=waiting)


def _at(t: float, before: tuple[float, float], after: tuple[float, float]) -> float:
    """A channel's value at instant ``t`` from its readings (t, value) ``before`` (measured within
    PAIR_SKEW_S before ``t``) and ``after`` it: interpolated when they are at most MAX_BRACKET_S
    apart, else the one before."""
    if before[0] <= t <= after[0] and 0.0 < after[0] - before[0] <= MAX_BRACKET_S:
        return before[1] + (after[1] - before[1]) * (t - before[0]) / (after[0] - before[0])
    return before[1]


def _sparse_speed(state: LearnerState) -> bool:
    """True when the speed's readings come SPARSE_SPEED_S or more apart (OBD polled 3 times a second
    or slower, a 1 Hz GPS): a launch's rpm is then paired with the speed interpolated between the
    readings around it, not carried along the slope of the latest ones (carried 0.5 s and held
    through a kei truck's 2 s 1st, a 1 Hz speed read 20-50 % off). Pulling away at 5 km/h per s,
    readings 0.1-0.2 s apart move 0.5-1 km/h, no more than OBD's whole-km/h steps: interpolating
    would keep the steps, which the slope over SLOPE_BASE_S smooths (at 5 Hz, interpolated, one
    virtual town drive lost 13 points while three others gained)."""
    speeds = state.pairing.speed
    return len(speeds) >= 2 and speeds[-1][0] - speeds[-2][0] >= SPARSE_SPEED_S


def _launch_pair(state: LearnerState, t: float, kmh: float, rpm: float) -> LearnerState:
    """The state with the pair (rpm and km/h at instant t) in the current launch's sequence, if it belongs."""
    if (state.launch_from is not None and state.launch_from <= t <= state.launch_from + LAUNCH_SEQ_S
            and len(state.launch_seq) < LAUNCH_PAIRS and kmh >= STANDSTILL_KMH and rpm >= MIN_RPM
            and (not state.launch_seq or t - state.launch_seq[-1][0] >= LAUNCH_PAIR_S)):
        # pulling away the speed changes fastest: each rpm is paired with the speed at its instant
        return _replace(state, launch_seq=state.launch_seq + ((t, math.log(rpm / kmh), rpm, kmh),))
    return state


def _fold_pair(state: LearnerState, t: float, rpm: float, kmh: float) -> LearnerState:
    """Fold one pair (rpm and km/h at instant t) into the runs, the launches and the histograms."""
    if _sparse_speed(state):
        state = _launch_pair(state, t, kmh, rpm)
    if kmh < MOVING_KMH or rpm < MIN_RPM or not MIN_RATIO < rpm / kmh < MAX_RATIO:
        return _replace(state, run_start=None, run_pending=None)
    log_ratio = math.log(rpm / kmh)
    resolution = SPEED_RESOLUTION_KMH / kmh
    if state.stopped_at is not None and t - state.stopped_at <= LAUNCH_S:  # pulling away: in 1st
        if state.launch_pending is None or log_ratio < state.launch_pending:
            state = _replace(state, launch_pending=log_ratio)
        # for the likeliest 1st (_likely_above) a pair at the rpm the truck stood at bounds no gear: the
        # clutch slips to hold the idle (creeping off) at any speed below idle / 1st's rpm per km/h
        if state.standing_rpm is None or rpm >= state.standing_rpm + IDLE_MARGIN_RPM:
            lowest = log_ratio if state.launch_worked is None else min(log_ratio, state.launch_worked)
            state = _replace(state, launch_worked=lowest, launch_worked_pairs=state.launch_worked_pairs + 1)
    half_width = max(0.5 * resolution, BIN / 2)
    state = _replace(state, moving=_spread(state.moving, *_span(log_ratio, half_width), 1.0))
    if kmh < MIN_SPEED_KMH:
        return _replace(state, run_start=None, run_pending=None)
    in_run = (state.run_start is not None and t - state.run_last <= MAX_GAP_S
              and abs(log_ratio - state.run_ratio) <= STEADY_TOL + resolution)
    if not in_run:
        return _replace(state, run_start=t, run_last=t, run_ratio=log_ratio, run_rpm=rpm,
                        run_pending=(log_ratio, half_width, rpm))
    if t > state.run_last and rpm >= state.run_rpm * RPM_FALLING:  # a later instant, the rpm not falling
        span = _span(log_ratio, half_width)
        state = _replace(state, run_last=t, run_rpm=rpm, agreeing=_spread(state.agreeing, *span, 1.0),
                         agreeing_rpm=_spread(state.agreeing_rpm, *span, rpm))
    else:
        state = _replace(state, run_last=t, run_rpm=rpm)
    if t - state.run_start < HOLD_S:
        return state
    if state.run_pending is not None:
        state = _add(_replace(state, run_pending=None), *state.run_pending)
    return _add(state, log_ratio, half_width, rpm)


def _close_launch(state: LearnerState) -> LearnerState:
    """The state with the current launch (if any pair was seen in it) counted in ``launches``, in
    ``launches_worked`` with a pair read with the engine working, and in ``launches_dense`` with at least
    WORKED_PAIRS such pairs."""
    if state.launch_worked is not None:
        i = min(max(_bin(state.launch_worked), 0), N_BINS - 1)
        state = _replace(state, launches_worked=_spread(state.launches_worked, i, i, 1.0))
        if state.launch_worked_pairs >= WORKED_PAIRS:
            state = _replace(state, launches_dense=_spread(state.launches_dense, i, i, 1.0))
    if state.launch_worked is not None or state.launch_worked_pairs:
        state = _replace(state, launch_worked=None, launch_worked_pairs=0)
    if state.launch_pending is None:
        return state
    i = min(max(_bin(state.launch_pending), 0), N_BINS - 1)
    return _replace(state, launch_pending=None, launches=_spread(state.launches, i, i, 1.0))


def _close_sequence(state: LearnerState) -> LearnerState:
    """The state with the current launch's pairs (if any) kept among the last KEPT_LAUNCHES."""
    if not state.launch_seq:
        return _replace(state, launch_from=None, launch_raw=()) if state.launch_from is not None else state
    return _replace(state, launch_from=None, launch_seq=(), launch_raw=(),
                    launch_seqs=(state.launch_seqs + (state.launch_seq,))[-KEPT_LAUNCHES:],
                    launch_raws=(state.launch_raws + (state.launch_raw,))[-KEPT_LAUNCHES:])


def forget_launches(state: LearnerState) -> LearnerState:
    """The state without its launches: what it learned of 1st from pulling away is learned afresh;
    the steady histogram is kept."""
    return _replace(state, launches=_EMPTY, launch_pending=None, launches_dense=_EMPTY, launches_worked=_EMPTY,
                    launch_worked=None, launch_worked_pairs=0, standing_rpm=None, launch_seq=(), launch_seqs=(),
                    launch_raw=(), launch_raws=(), launch_from=None, stopped_at=None, pairing=Pairing(),
                    waiting=())


def shift_launches(state: LearnerState, speed_earlier_s: float) -> LearnerState:
    """The state with its kept launches paired again, each speed reading taken ``speed_earlier_s``
    before the instant it was fed at (the speed's lag found, or changed: keidash.estimate.lag).
    Pulling away the speed changes fastest, so a launch paired across the lag showed no gear or the
    wrong one; its readings (LearnerState.launch_raws) are played again through a fresh learner. The
    launch under way and the launches before the kept ones are dropped; the steady histogram is kept
    (its runs held the ratio still through the lag)."""
    kept = _close_sequence(state).launch_raws
    launches, dense, worked, seqs, raws = _EMPTY, _EMPTY, _EMPTY, (), ()
    for raw in kept:  # each launch's readings start at its standstill: the idle is the one seen last
        fresh = LearnerState(standing_rpm=state.standing_rpm)
        again = _close_launch(_close_sequence(_fold_measured(fresh, raw, speed_earlier_s)))
        launches = tuple(a + b for a, b in zip(launches, again.launches))
        dense = tuple(a + b for a, b in zip(dense, again.launches_dense))
        worked = tuple(a + b for a, b in zip(worked, again.launches_worked))
        seqs, raws = seqs + again.launch_seqs, raws + again.launch_raws
    return _replace(forget_launches(state), launches=launches, launches_dense=dense, launches_worked=worked,
                    standing_rpm=state.standing_rpm, launch_seqs=seqs[-KEPT_LAUNCHES:],
                    launch_raws=raws[-KEPT_LAUNCHES:])


def _fold_measured(state: LearnerState, readings: Iterable[tuple[float, str, float]],
                   speed_earlier_s: float) -> LearnerState:
    """``state`` with ``readings`` (t, channel, value) folded in the order they were measured, each
    speed reading taken ``speed_earlier_s`` before its stamp (readings of one instant in their order)."""
    for t, channel, value in sorted(((t - speed_earlier_s if channel == SPEED else t, channel, value)
                                     for t, channel, value in readings), key=lambda reading: reading[0]):
        state = learner_step(state, t, channel, value)
    return state


def _replace(state: LearnerState, **changes) -> LearnerState:
    values = {name: getattr(state, name) for name in LearnerState.__dataclass_fields__}
    values.update(changes)
    return LearnerState(**values)


def learn_pairs(state: LearnerState, log: DriveLog, lag_s: float = 0.0) -> LearnerState:
    """Fold every fresh reading of a drive log into ``state``, in log order; with ``lag_s`` (the
    speed measured that long before its stamp than the rpm, keidash.estimate.lag) in the order the
    readings were measured, each at its measured instant."""
    if lag_s:
        return _fold_measured(state, ((sample.t, channel, value) for sample in log.samples
                                      for channel, value in ((RPM, sample.rpm), (SPEED, sample.speed_kmh))
                                      if channel in sample.fresh and value is not None), lag_s)
    for sample in log.samples:
        if RPM in sample.fresh and sample.rpm is not None:
            state = learner_step(state, sample.t, RPM, sample.rpm)
        if SPEED in sample.fresh and sample.speed_kmh is not None:
            state = learner_step(state, sample.t, SPEED, sample.speed_kmh)
    return state


def learn_from_logs(logs: Iterable[DriveLog], gears: int | None = None,
                    idle_rpm: float = 850.0, manual: bool = False,
                    low_range: float | None = None, extra_low: bool = False) -> LearnedRatios:
    """Learn from whole drives (each starts a fresh run: log times are not comparable). ``manual``:
    each log's speed is taken at the instant it was measured when it lags the rpm
    (keidash.estimate.lag, read off the log: a GPS's speed). Only a manual's: behind a torque
    converter the ratio rises with the engine's pull as a late speed makes it. ``low_range``,
    ``extra_low``: as :func:`learned`."""
    from .lag import speed_lag
    state, lags = LearnerState(), []
    for log in logs:
        lags.append(speed_lag(log.samples) if manual else 0.0)
        state = learn_pairs(_replace(_close_launch(_close_sequence(state)), rpm=None, speed=None, waiting=(),
                                     run_start=None, run_pending=None, stopped_at=None), log, lags[-1])
    return replace(learned(state, gears, idle_rpm, low_range, extra_low), speed_lags=tuple(lags))


# -- from the histogram to gears ------------------------------------------------
@dataclass(frozen=True)
class Cluster:
    """A peak of the log-ratio density and the pairs in its basin."""

    peak: float  # rpm per km/h at the density's maximum
    rpm_per_kmh: float  # weighted median of the basin
    mass: float  # pairs in the basin
    spread: float  # MAD / median
    mean_rpm: float  # mean engine rpm of the basin's pairs
    mean_kmh: float = 0.0  # mean road speed of the basin's pairs
    rpm_spread: float = 0.0  # standard deviation of the basin's pairs' rpm over its mean (PULLED_THROUGH)


def _smooth(weights: tuple[float, ...]) -> list[float]:
    sigma = BANDWIDTH / BIN
    reach = int(3 * sigma) + 1
    kernel = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-reach, reach + 1)]
    out = [0.0] * len(weights)
    for i, w in enumerate(weights):
        if w:
            for j, k in enumerate(kernel, i - reach):
                if 0 <= j < len(out):
                    out[j] += w * k
    return out


def _ratio(bin_position: float) -> float:
    """rpm per km/h at a (fractional) bin position, bin centres at i + 0.5."""
    return MIN_RATIO * math.exp(bin_position * BIN)


def _weighted_quantile(weights: list[float], lo: int, q: float) -> float:
    """The q-quantile as a fractional bin position of weights starting at bin lo."""
    total = sum(weights)
    target, acc = q * total, 0.0
    for i, w in enumerate(weights):
        if w and acc + w >= target:
            return lo + i + (target - acc) / w
        acc += w
    return lo + len(weights)


def clusters(state: LearnerState) -> list[Cluster]:
    """Every significant peak of the steady histogram, highest rpm per km/h (1st gear) first."""
    total = sum(state.weights)
    if total <= 0:
        return []
    density = _smooth(state.weights)
    peaks = [i for i in range(1, N_BINS - 1)
             if density[i] > 0 and density[i] >= density[i - 1] and density[i] > density[i + 1]]
    min_bins = MIN_STEP / BIN
    merged: list[int] = []
    for i in sorted(peaks, key=lambda i: -density[i]):  # strongest first keeps its place
        if all(abs(i - j) >= min_bins for j in merged):
            merged.append(i)
    merged.sort()
    merged = _prominent(density, merged)
    reach = int(MAX_BASIN / BIN)
    every = []  # (peak bin, first bin, last bin, mass) of every peak
    for n, i in enumerate(merged):
        lo = max(i - reach, 0, _valley(density, merged[n - 1], i) if n else 0)
        hi = min(i + reach, N_BINS - 1, _valley(density, i, merged[n + 1]) if n + 1 < len(merged) else N_BINS)
        every.append((i, lo, hi, sum(state.weights[lo:hi + 1])))
    basins = _significant(every, total)
    found = []
    for n, (i, lo, hi, mass) in enumerate(basins):
        steady = list(state.weights[lo:hi + 1])
        median_pos = _weighted_quantile(steady, lo, 0.5)
        deviations = sorted((abs(j + lo + 0.5 - median_pos), w) for j, w in enumerate(steady) if w)
        acc, mad_bins = 0.0, 0.0
        for d, w in deviations:
            acc += w
            if acc >= mass / 2:
                mad_bins = d
                break
        # the centre: every moving pair nearer this peak than its neighbours (in log ratio)
        # (the outermost clusters' cells mirror their inner half, at most half the widest step)
        half_step = int(math.log(MAX_STEP) / 2 / BIN)
        below = (i - basins[n - 1][0]) // 2 if n else None
        above = (basins[n + 1][0] - i) // 2 if n + 1 < len(basins) else None
        cell_lo = i - min(half_step, below if below is not None else (above or half_step))
        cell_hi = i + min(half_step, above if above is not None else (below or half_step))
        cell_lo, cell_hi = max(cell_lo, 0), min(cell_hi, N_BINS - 1)
        moving = list(state.moving[cell_lo:cell_hi + 1])
        if sum(moving) > 0:
            median_pos = _weighted_quantile(moving, cell_lo, 0.5)
        found.append(Cluster(peak=_ratio(i + 0.5), rpm_per_kmh=_ratio(median_pos), mass=mass,
                             spread=math.expm1(mad_bins * BIN),
                             mean_rpm=sum(state.rpm_sums[lo:hi + 1]) / mass,
                             mean_kmh=sum(r / _ratio(j + 0.5)
                                          for j, r in enumerate(state.rpm_sums[lo:hi + 1], lo)) / mass,
                             rpm_spread=_rpm_spread(state, lo, hi, mass)))
    return sorted(found, key=lambda c: -c.rpm_per_kmh)


def _rpm_spread(state: LearnerState, lo: int, hi: int, mass: float) -> float:
    """The standard deviation of the rpm of the steady pairs in bins lo..hi (``mass`` of them) over their mean."""
    mean = sum(state.rpm_sums[lo:hi + 1]) / mass
    square = sum(state.rpm_squares[lo:hi + 1]) / mass
    return math.sqrt(max(square - mean * mean, 0.0)) / mean if mean > 0 else 0.0


def _significant(peaks: list[tuple[int, int, int, float]], total: float) -> list[tuple[int, int, int, float]]:
    """The ``peaks`` (peak bin, first bin, last bin, mass; rpm per km/h rising) that are clusters: at least
    MIN_CLUSTER_SAMPLES pairs and MIN_CLUSTER_SHARE of all; and, with MIN_CLUSTER_SAMPLES, a peak a gear step
    or more from two such clusters that are more than MAX_STEP apart, where a gearbox must have a gear. A gear
    driven steadily but briefly (a brisk driver's 3rd on a day of open road) falls under the share as the
    pairs of top gear pile up: found at 3 minutes, it was lost at 5 and the gears above it with it."""
    sure = [p for p in peaks if p[3] >= max(MIN_CLUSTER_SAMPLES, MIN_CLUSTER_SHARE * total)]
    step = math.log(MAX_STEP) / BIN
    for a, b in zip(sure, sure[1:]):
        if b[0] - a[0] > step:
            between = [p for p in peaks if a[0] < p[0] < b[0] and p[3] >= MIN_CLUSTER_SAMPLES
                       and min(p[0] - a[0], b[0] - p[0]) * BIN >= math.log(MIN_GEAR_STEP)]
            if between:
                sure.append(max(between, key=lambda p: p[3]))
    return sorted(sure)


def _prominent(density: list[float], peaks: list[int]) -> list[int]:
    """Peaks left after merging neighbours whose valley is not below MIN_DIP x the lower peak."""
    peaks = list(peaks)
    while True:
        shallow = [(density[_valley(density, a, b)] / min(density[a], density[b]), n)
                   for n, (a, b) in enumerate(zip(peaks, peaks[1:]))]
        shallow = [(dip, n) for dip, n in shallow if dip > MIN_DIP]
        if not shallow:
            return peaks
        _, n = max(shallow)
        a, b = peaks[n], peaks[n + 1]
        peaks.remove(a if density[a] < density[b] else b)


def _valley(density: list[float], a: int, b: int) -> int:
    return min(range(a, b + 1), key=lambda j: (density[j], j))


def _low_range_copies(cands: list[Cluster]) -> set[int]:
    """Indices of clusters that are one consistent low-range multiple of more massive ones."""
    best: set[int] = set()
    factors = sorted({a.rpm_per_kmh / b.rpm_per_kmh for a in cands for b in cands
                      if LOW_RANGE[0] <= a.rpm_per_kmh / b.rpm_per_kmh <= LOW_RANGE[1]})
    for k in factors:
        copies = {n for n, a in enumerate(cands) if any(
            abs(math.log(a.rpm_per_kmh / (k * b.rpm_per_kmh))) <= LOW_RANGE_MATCH and a.mass < b.mass
            for b in cands)}
        originals_are_gears = all(any(
            abs(math.log(a.rpm_per_kmh / (k * b.rpm_per_kmh))) <= LOW_RANGE_MATCH and a.mass < b.mass
            for m, b in enumerate(cands) if m not in copies) for n, a in enumerate(cands) if n in copies)
        if len(copies) < 2 or len(copies) <= len(best) or not originals_are_gears:
            continue
        rest = [c.rpm_per_kmh for n, c in enumerate(cands) if n not in copies]
        if all(a / b <= MAX_STEP for a, b in zip(rest, rest[1:])):
            best = copies
    return best


def _confidence(c: Cluster) -> float:
    standard_error = c.spread / math.sqrt(max(c.mass, 1.0))
    return (1 - math.exp(-c.mass / CONFIDENT_SAMPLES)) / (1 + (standard_error / SHARP_SE) ** 2)


def _gear(c: Cluster) -> GearRatio:
    return GearRatio(round(c.rpm_per_kmh, 2), round(_confidence(c), 3), round(c.mass), round(c.spread, 4))


_MISSING = GearRatio(None, 0.0, 0, 0.0)


def _launch_verdict(state: LearnerState, top: float, seen: LaunchGears) -> tuple[int, int, int, int]:
    """(launches, fewest, most, likeliest) gears above the highest cluster ``top`` (rpm per km/h).

    Each launch's lowest ratio is at or above 1st's: the truck pulls away in 1st, the clutch
    home or slipping (whole-km/h speeds at 4-8 km/h only raise it further). A launch below ``top`` x
    MIN_GEAR_STEP leaves no room for a gear above ``top``; enough of them make ``top`` 1st.
    At least MIN_LAUNCHES launches, and all but LAUNCH_STRAY_SHARE of them, seen going from the slip
    straight into ``top`` with none locked above it make it 1st whatever their lowest ratio (a brisk
    driver is in 2nd within LAUNCH_S: the lowest ratio is then 2nd's, under ``top``).
    At least MIN_LAUNCHES launches, (almost) all above that, prove a gear above ``top``; as a
    slipping clutch raises a launch's ratio, only their lower quartile bounds how many.
    Anything else decides nothing: (n, 0, UNBOUNDED, 1 if every launch was above else 0).
    ``seen`` is :func:`launch_gears` read against ``top``.
    """
    launches = _launch_lows(state)
    n = sum(launches)
    if n == 0:
        return 0, 0, UNBOUNDED, 0
    near = _near(launches, top)
    below = sum(launches[:_bin(math.log(top * (1.0 - LAUNCH_BELOW)))])
    locks = len(seen.locked_above) + len(seen.locked_late)  # in time or read late: a gear above ``top``
    if seen.in_top >= max(MIN_LAUNCHES, (1.0 - LAUNCH_STRAY_SHARE) * seen.shown, 0.5 * n) and not locks:
        return round(n), 0, 0, 0
    if below > LAUNCH_STRAY_SHARE * n:
        return round(n), 0, UNBOUNDED, 0
    if (n >= MIN_LAUNCHES and not seen.in_top and not seen.locked_late and len(seen.locked_above) >= LOCKS_ABOVE
            and max(seen.locked_above) - min(seen.locked_above) <= 2 * LOCK_TOL):
        # launches locked in one gear above ``top``, none seen going into it: a gear above it (not yet its ratio,
        # which wants MIN_LAUNCHES locks), whatever their lowest ratios (the lazy driver in 2nd within LAUNCH_S)
        return round(n), 1, _steps_room(math.exp(min(seen.locked_above)), top), 1
    if near >= max(1.0, LAUNCH_NEAR_SHARE * n):
        if locks > LAUNCH_STRAY_SHARE * n or not seen.in_top:
            # a launch's lowest ratio may come after its first upshift (a kei truck's 1st runs out
            # within 2 s): only launches seen closely enough to show no lock above ``top`` make it 1st
            return round(n), 0, UNBOUNDED, int(_lows_agree_above(state, top))
        return round(n), 0, 0, 0
    most = _steps_room(_ratio(_weighted_quantile(launches, 0, 0.25)), top)
    if n >= MIN_LAUNCHES and near <= LAUNCH_STRAY_SHARE * n:
        return round(n), 1, most, 1
    return round(n), 0, UNBOUNDED, int(near == 0 or _lows_agree_above(state, top))


def _lows_agree_above(state: LearnerState, top: float) -> bool:
    """True when at least MIN_LAUNCHES launches, more than half of those with a pair read with the engine
    working (:func:`_launch_lows`), have their lowest such pair a gear step (MIN_GEAR_STEP) or more above
    ``top`` (rpm per km/h) and within a window 2 x LOCK_TOL wide: they read one gear above the highest
    cluster, the likeliest 1st. A gear holds one ratio, so the last reading before each launch's upshift
    lies on 1st's line; a slipping clutch raises a launch's lowest ratio by as much as it slips, a spread
    (the Etios logs, polled every 2 s: 1.25-2.15 x their held 1st on 7 of 12 launches, at most 4 of them
    in one such window), and a pair at the rpm the truck stood at (the clutch slipping to hold the idle,
    creeping off) bounds no gear. Read once a second on one row, a kei truck's launch has two readings in
    LAUNCH_S, too few for :func:`_likely_above`, and one launch in five reaching 2nd within it left
    :func:`_launch_verdict` undecided and the highest cluster (2nd) numbered 1st."""
    launches = _launch_lows(state, worked=True)
    n = sum(launches)
    lo = _step_bin(top)
    width = round(2 * LOCK_TOL / BIN)
    most = max((sum(launches[i:i + width + 1]) for i in range(lo, N_BINS) if launches[i]), default=0.0)
    return most >= MIN_LAUNCHES and most > 0.5 * n


def _worked_above(state: LearnerState, top: float) -> bool:
    """True when the launches read with the engine working put a 1st above ``top`` (rpm per km/h): at least
    MIN_LAUNCHES of them, all but LAUNCH_STRAY_SHARE a gear step or more above it (as
    :func:`_launch_verdict` proves a gear above, its creeping pairs left out: a pair at the rpm the truck
    stood at bounds no gear), or most of them on one line there (:func:`_lows_agree_above`). Without the
    count this is what makes 1st above the highest cluster likeliest (:attr:`LearnedRatios.likely_above`):
    read once a second on one row the launches proved a gear above the Hijet's 2nd and eval still scored 2nd
    as 1st (the count used the proof, the likeliest without it did not)."""
    launches = _launch_lows(state, worked=True)
    n = sum(launches)
    return n >= MIN_LAUNCHES and _near(launches, top) <= LAUNCH_STRAY_SHARE * n or _lows_agree_above(state, top)


def _step_bin(top: float) -> int:
    """The first histogram bin a gear step (MIN_GEAR_STEP) or more above ``top`` (rpm per km/h)."""
    return _bin(math.log(top * MIN_GEAR_STEP)) + 1


def _near(launches: list[float], top: float) -> float:
    """How many of ``launches`` (per bin of their lowest log ratio) lie within a gear step of ``top`` or below."""
    return sum(launches[:_step_bin(top)])


def _steps_room(bound: float, top: float) -> int:
    """How many gear steps (MIN_GEAR_STEP each, at least one) fit between ``top`` and ``bound`` (rpm per km/h)."""
    return max(int(math.log(bound / top) / math.log(MIN_GEAR_STEP)), 1)


def _launch_lows(state: LearnerState, dense: bool = False, worked: bool = False) -> list[float]:
    """Launches per bin of their lowest log ratio, the one under way included; ``worked``: of those with
    a pair read with the engine working, their lowest such pair (LearnerState.launches_worked); ``dense``:
    only those with at least WORKED_PAIRS such pairs (LearnerState.launches_dense)."""
    need = WORKED_PAIRS if dense else 1
    launches = list(state.launches_dense if dense else state.launches_worked if worked else state.launches)
    pending = ((state.launch_worked if state.launch_worked_pairs >= need else None) if dense or worked
               else state.launch_pending)
    if pending is not None:
        launches[min(max(_bin(pending), 0), N_BINS - 1)] += 1.0
    return launches


def _likely_above(state: LearnerState, top: float, seen: "LaunchGears | None" = None) -> bool:
    """True when most launches with at least WORKED_PAIRS pairs read with the engine working (at least
    MIN_LAUNCHES such launches) pulled away a gear step (MIN_GEAR_STEP) or more above ``top`` (rpm per
    km/h): a 1st above the highest cluster is likelier than not. Read once a second, a kei truck's 2 s
    in 1st is now and then followed by a 2nd inside LAUNCH_S, so the launches prove nothing
    (:func:`_launch_verdict`), but most still read 1st's line or above; a car's or a truck's whose
    highest cluster is 1st read it, clutch home, on most. A pair at the standing rpm bounds no gear: the
    clutch slips to hold the idle at any speed below idle / 1st's rpm per km/h.

    Or, ``seen`` (:func:`launch_gears`; given only where the numbering is not certain), when of at least
    MIN_LAUNCHES launches at least half were seen locked above ``top``, and more of them than went
    straight into it (a launch's slip can hold a ratio above 1st for a moment, so where the
    launches' lowest ratios read 1st, the numbering certain, a lock is no sign of a gear above): read
    twice a second, a brisk driver's 1st lasts 1.5 s and 2nd is inside LAUNCH_S on most launches, so
    their lowest ratios read 2nd's line, while the launches lock above it for a second before the
    upshift. Too few, or too scattered (232-283 rpm per km/h on one drive), to prove 1st's ratio, they
    still show a gear above (a car pulling away in its highest cluster's gear locks above it on none)."""
    launches = _launch_lows(state, dense=True)
    n = sum(launches)
    if n >= MIN_LAUNCHES and _near(launches, top) < 0.5 * n:
        return True
    if seen is None:
        return False
    counted, locked = sum(_launch_lows(state, dense=False)), len(seen.locked_above)
    return counted >= MIN_LAUNCHES and locked >= 0.5 * counted and locked > seen.in_top


@dataclass(frozen=True)
class LaunchGears:
    """Which gear the launches were in, read against the highest cluster (see :func:`launch_gears`)."""

    locked_above: tuple[float, ...]  # log ratio of each launch locked in a gear above the highest cluster
    in_top: int  # launches seen going from the clutch's slip straight into the highest cluster
    locked_higher: tuple[float, ...] = ()  # of those locked above it, the log ratio of each locked before
    #                                        that in a gear a step higher still, left by an upshift into it
    locked_late: tuple[float, ...] = ()  # log ratio of each launch whose lock above it is left by an upshift
    #                                      seen only later than UPSHIFT_S, the rpm read seldom (see
    #                                      :func:`launch_gears`): a gear above it, not which

    @property
    def shown(self) -> int:
        return len(self.locked_above) + self.in_top

    def first_gear(self) -> tuple[float, float, float] | None:
        """(rpm per km/h, relative spread, confidence) of 1st when the launches prove it above the
        highest cluster: at least MIN_LAUNCHES locked in one gear, LAUNCH_LOCK_SHARE of the launches
        that show their gear, agreeing within LOCK_TOL (robust spread). Where :meth:`higher_gear` is
        not None that gear is 2nd, not 1st."""
        return _lock_gear(self.locked_above, self.shown)

    def higher_gear(self) -> tuple[float, float, float] | None:
        """As :meth:`first_gear`, of the gear the launches were locked in before the one just above the
        highest cluster (at least MIN_LAUNCHES of them, LAUNCH_LOCK_SHARE of those locked above it): two
        gears above it, this one 1st. A kei truck's 2nd is often driven through, not held (no cluster),
        while each launch locks in 1st, shifts, locks in 2nd and shifts again into 3rd: the lock just
        above the highest cluster is then 2nd."""
        if len(self.locked_higher) < LAUNCH_LOCK_SHARE * len(self.locked_above):
            return None
        return _lock_gear(self.locked_higher, len(self.locked_higher))


def _lock_gear(locks: tuple[float, ...], shown: int) -> tuple[float, float, float] | None:
    """(rpm per km/h, relative spread, confidence) of the gear ``locks`` (log ratios, one a launch) show:
    at least MIN_LAUNCHES of them, LAUNCH_LOCK_SHARE of the ``shown`` launches, agreeing within LOCK_TOL."""
    n = len(locks)
    if n < MIN_LAUNCHES or n < LAUNCH_LOCK_SHARE * shown:
        return None
    centre = _median(list(locks))
    spread = sorted(abs(r - centre) for r in locks)[n // 2]
    if spread > LOCK_TOL:
        return None
    standard_error = max(spread, BIN) / math.sqrt(n)
    confidence = (1 - math.exp(-n / MIN_LAUNCHES)) / (1 + (standard_error / LAUNCH_SHARP_SE) ** 2)
    return math.exp(centre), math.expm1(spread), confidence


def launch_gears(state: LearnerState, top: float, idle_rpm: float = 850.0) -> LaunchGears:
    """Read each kept launch against the highest cluster ``top`` (rpm per km/h).

    A launch's pairs run from the clutch slipping (the ratio falling from far above) through the
    gear it pulled away in to the first upshift. A kei truck's 1st runs out at 10-13 km/h within
    2 s, too short for a steady run (:data:`HOLD_S`), but its pairs just before the first upshift
    agree: that lock is the launch gear. A launch *locked above* ``top`` (by MIN_GEAR_STEP or more)
    and then dropping a gear step within UPSHIFT_S was in a gear above it; one that reaches ``top``
    with no lock above it went from slip straight into ``top`` (``in_top``). A launch that never
    reaches ``top`` shows nothing: a slipping clutch or converter holds the ratio above any gear.
    Where the rpm is read less often than every DENSE_GAP_S, a lock whose upshift (the rpm falling
    between it and ``top``) is seen later than UPSHIFT_S, by up to two rpm periods past DENSE_GAP_S,
    is *locked late*: a gear above ``top``, never a ratio taken for one.
    """
    edge, floor = math.log(top * (1.0 + LAUNCH_BELOW)), math.log(top * MIN_GEAR_STEP)
    locked, in_top, higher, late = [], 0, [], []
    current = ((state.launch_seq, state.launch_raw),) if state.launch_seq else ()
    raws = state.launch_raws[-len(state.launch_seqs):] if state.launch_seqs else ()
    raws = ((),) * (len(state.launch_seqs) - len(raws)) + raws  # a state put together without its readings
    for seq, raw in tuple(zip(state.launch_seqs, raws)) + current:
        entry = next((n for n, (_, r, _, _) in enumerate(seq) if r <= edge), None)
        if entry is None:
            continue
        # a gear held while pulling away: the rpm rising with the speed (a falling rpm is the clutch going in,
        # and so is the same reading again after it: a log's row repeating the latest rpm beside a new speed)
        before = [p for n, p in enumerate(seq[:entry])
                  if p[3] >= MIN_SPEED_KMH and p[2] >= _previous_rpm(seq, n) * RPM_FALLING]
        lock_run = _lock(before, floor)
        t_entry, r_entry, rpm_entry, _ = seq[entry]
        if lock_run is None:
            # straight from slip into ``top``: where the pairs were close enough to show a lock had
            # there been one, the ratio fell into ``top`` because the speed rose (the clutch slipping
            # at a held rpm), not because the rpm fell at one speed (a shift); or it reached ``top``
            # near idle, where no one lands in 2nd after pulling away (it would stall)
            times = [p[0] for p in seq[:entry + 1]]
            lead = [p for p in seq[:entry] if t_entry - p[0] <= UPSHIFT_S]
            slipped = bool(lead) and seq[entry][3] >= SLIP_SPEED_RISE * lead[0][3]
            standstill = raw[0][0] if raw and raw[0][1] == SPEED and raw[0][2] < STANDSTILL_KMH else None
            if (entry > LOCK_PAIRS and max(b - a for a, b in zip(times, times[1:])) <= DENSE_GAP_S and slipped
                    or rpm_entry <= idle_rpm + LAUNCH_IDLE_MARGIN_RPM
                    or standstill is not None and t_entry - standstill <= QUICK_ENTRY_S):
                in_top += 1
            continue
        end, held = lock_run
        t_lock, _, rpm_lock, _ = before[end]
        lock = _median(held)
        if lock - r_entry < math.log(MIN_GEAR_STEP):
            continue
        if t_entry - t_lock > UPSHIFT_S:
            # read seldom, the last reading in the gear may come up to an rpm period before the clutch went
            # down and the first in ``top`` a period after it came up, the engine pulling again: the rpm
            # fell between them (an upshift, not a clutch slipping at a held rpm) shows a gear above ``top``,
            # but a lock this far from its upshift may as well be 2nd's (1st driven through unseen) as 1st's
            if (t_entry - t_lock <= UPSHIFT_S + 2.0 * max(0.0, _rpm_period(raw) - DENSE_GAP_S)
                    and min(p[2] for p in seq[seq.index(before[end]) + 1:entry + 1]) < rpm_lock):
                late.append(lock)
            continue
        if rpm_entry < rpm_lock:
            locked.append(lock)
            earlier = _higher_lock(before, end, held)
            if earlier is not None:
                higher.append(earlier)
    return LaunchGears(tuple(locked), in_top, tuple(higher), tuple(late))


def _higher_lock(before: list[tuple[float, float, float, float]], end: int, held: list[float]) -> float | None:
    """Log ratio of a lock a gear step higher than the one of ``held`` (ending at pair ``end`` of a launch's
    ``before`` pairs) before it, left by an upshift into it within UPSHIFT_S; None if none: a second gear
    above the highest cluster."""
    start = end - len(held) + 1
    t_start, _, rpm_start, _ = before[start]
    earlier = _lock(before[:start], _median(held) + math.log(MIN_GEAR_STEP))
    if earlier is None:
        return None
    t_high, _, rpm_high, _ = before[earlier[0]]
    return _median(earlier[1]) if t_start - t_high <= UPSHIFT_S and rpm_start < rpm_high else None


def _rpm_period(raw: tuple[tuple[float, str, float], ...]) -> float:
    """The median time (s) between a launch's rpm readings (``raw``: its (t, channel, value) readings); 0.0
    with fewer than two."""
    times = [t for t, channel, _ in raw if channel == RPM]
    gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
    return _median(gaps) if gaps else 0.0


def _previous_rpm(seq: tuple[tuple[float, float, float, float], ...], n: int) -> float:
    """The latest rpm before pair ``n`` of a launch's pairs that differs from its own (0.0 if none)."""
    return next((p[2] for p in reversed(seq[:n]) if p[2] != seq[n][2]), 0.0)


def _lock(pairs: list[tuple[float, float, float, float]], floor: float) -> tuple[int, list[float]] | None:
    """(index of its last pair, its log ratios) of the latest run of LOCK_PAIRS or more consecutive
    ``pairs`` above log ratio ``floor`` that agree (see :func:`_held`), else None. Pairs after it
    (the ratio falling through the shift) are passed over."""
    for end in range(len(pairs) - 1, LOCK_PAIRS - 2, -1):
        held = _held(pairs[:end + 1], floor)
        if len(held) >= LOCK_PAIRS and _with_the_speed(pairs[end - len(held) + 1:end + 1]):
            return end, held
    return None


def _with_the_speed(run: list[tuple[float, float, float, float]]) -> bool:
    """True when the engine rose with the truck over a run of (t, log ratio, rpm, km/h) pairs: locked in a
    gear the rpm rises as the speed does, a slipping clutch holds it while the speed rises (the close-ratio
    car's first virtual launch: 1345 then 1343 rpm at 6.4 then 7.5 km/h, 209 then 179 rpm per km/h, within a
    lock's tolerance at whole-km/h speeds, read as a lock at 194 above its 1st). A speed risen by less than
    its resolution says nothing; else the rpm must rise by at least half as much (ln units)."""
    (_, _, rpm0, kmh0), (_, _, rpm1, kmh1) = run[0], run[-1]
    if kmh1 - kmh0 <= SPEED_RESOLUTION_KMH:
        return True
    return math.log(rpm1 / rpm0) >= 0.5 * math.log(kmh1 / kmh0)


def _held(pairs: list[tuple[float, float, float, float]], floor: float) -> list[float]:
    """Log ratios of the last ``pairs`` above ``floor`` that agree within LOCK_TOL of their median,
    widened by half the speed's resolution at each pair's speed (whole km/h at 7 km/h: 7 %)."""
    run: list[tuple[float, float]] = []
    for _, r, _, kmh in reversed(pairs):
        candidate = run + [(r, LOCK_TOL + 0.5 * SPEED_RESOLUTION_KMH / kmh)]
        centre = _median([x for x, _ in candidate])
        if r < floor or any(abs(x - centre) > tol for x, tol in candidate):
            break
        run = candidate
    return [x for x, _ in run]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _gap_fits(ra: float, rb: float, gap: int) -> bool:
    """True when ``gap`` gear steps can lie between rpm per km/h ``ra`` > ``rb`` of two clusters.

    Neighbours no further apart than MAX_STEP are adjacent gears (every gear between two gears
    driven steadily is driven steadily too, unless the steps say otherwise: :func:`_numberings`); a
    wider step holds gears of MIN_GEAR_STEP..MAX_STEP.
    """
    step = math.log(ra / rb)
    if gap == 1:
        return step <= math.log(MAX_STEP)
    return step > math.log(MAX_STEP) and math.log(MIN_GEAR_STEP) <= step / gap <= math.log(MAX_STEP)


def _numberings(ratios: list[float], gears: int, lowest: int = 0, highest: int | None = None) -> list[tuple[int, ...]]:
    """Every numbering (slots, 0 = 1st) of found ``ratios`` (falling) among ``gears``, the first found in
    slot ``lowest``..``highest``, that makes a gearbox: every gap fits (:func:`_gap_fits`) and the steps, a
    gap's split geometrically, shrink towards top as :func:`gearbox_problem` wants. Where none does, a gap
    may also hold a gear between two clusters no further apart than MAX_STEP (a gear skipped and one
    driven too briefly: a brisk driver's 3rd -> 6th, 2.0 x, after a 2nd -> 3rd of 1.42 is no single step
    of a gearbox's)."""
    highest = gears - 1 if highest is None else highest
    chosen = [c for c in combinations(range(gears), len(ratios)) if lowest <= c[0] <= highest
              and _progressive(ratios, c)]
    strict = [c for c in chosen if all(_gap_fits(ra, rb, sb - sa) for (sa, ra), (sb, rb)
                                       in zip(zip(c, ratios), zip(c[1:], ratios[1:])))]
    return strict or chosen


def _progressive(ratios: list[float], chosen: tuple[int, ...]) -> bool:
    """True when ``ratios`` (falling) in slots ``chosen`` make a gearbox's steps (:func:`gearbox_problem`),
    each gap between two found bridged in equal steps (:func:`_geometric_gaps`)."""
    table: list[float | None] = [None] * (chosen[-1] - chosen[0] + 1)
    for slot, ratio in zip(chosen, ratios):
        table[slot - chosen[0]] = ratio
    return not gearbox_problem(_geometric_gaps(table))


def _slots(ratios: list[float], gears: int, above: tuple[int, int, int]) -> tuple[tuple[int, ...], bool]:
    """Gear slots (0 = 1st) for found ratios (falling) when ``gears`` are expected, and whether sure.

    ``above`` = (fewest, most, likeliest) gears above the highest cluster by the launches. Among
    the numberings that fit (every gap by :func:`_gap_fits`), the one nearest the likeliest
    count above, then with fewest gears in gaps, is taken (a short drive need not reach top);
    it is certain when it is the only one.
    Without a fitting numbering, the cheapest by step is taken, uncertain.
    """
    fewest, most, likeliest = above
    best, best_cost = tuple(range(len(ratios))), math.inf
    for chosen in combinations(range(gears), len(ratios)):
        pairs = zip(zip(chosen, ratios), zip(chosen[1:], ratios[1:]))
        cost = sum(max(0.0, math.log(ra / rb) / (sb - sa) - math.log(MAX_STEP)) * 10 + (sb - sa - 1)
                   for (sa, ra), (sb, rb) in pairs) + 100 * max(fewest - chosen[0], chosen[0] - most, 0) + chosen[0]
        if cost < best_cost:
            best, best_cost = chosen, cost
    fits = _numberings(ratios, gears, fewest, most)
    if not fits:
        return best, False
    return min(fits, key=lambda c: (abs(c[0] - likeliest), c[0], c[-1])), len(fits) == 1


def gearbox_problem(ratios: tuple[float, ...] | list[float]) -> str:
    """'' when rpm per km/h ``ratios`` (1st..top, falling) can be one gearbox's, else why not.

    Adjacent gears are MIN_GEAR_STEP to MAX_STEP apart, and the steps shrink from 1st
    towards top (each at most STEP_PROGRESSION above the one below it): true of kei 5-speeds
    (Hijet 1.70 / 1.45 / 1.65 / 1.35) and of the drives keidash is measured on, and not of a
    set with a peak between two gears (two short steps below a long one).
    """
    steps = [a / b for a, b in zip(ratios, ratios[1:])]
    for n, step in enumerate(steps, start=1):
        if not MIN_GEAR_STEP <= step <= MAX_STEP:
            return f"gears {n} and {n + 1} are {step:.2f} x apart (a gearbox: {MIN_GEAR_STEP}-{MAX_STEP})"
    for n, (lower, upper) in enumerate(zip(steps, steps[1:]), start=2):
        if upper > STEP_PROGRESSION * lower:
            return (f"the step from gear {n} to {n + 1} ({upper:.2f}) is longer than the one below it "
                    f"({lower:.2f}): a peak between gears?")
    return ""


def _phantoms(cands: list[Cluster]) -> list[Cluster]:
    """Clusters between two others that are not gears (see PHANTOM_SHARE), weakest first; never one the
    gearbox needs (:func:`_needed`)."""
    cands, out = list(cands), []
    while True:
        weak = [(c.mass / min(a.mass, b.mass), n) for n, (a, c, b) in enumerate(zip(cands, cands[1:], cands[2:]), 1)
                if c.mass < PHANTOM_SHARE * min(a.mass, b.mass) and a.rpm_per_kmh / b.rpm_per_kmh <= MAX_STEP
                and not _needed([k.rpm_per_kmh for k in cands], n)]
        if not weak:
            return out
        _, n = min(weak)
        out.append(cands.pop(n))


def _needed(ratios: list[float], n: int) -> bool:
    """True when the gears ``ratios`` (falling) around the one at ``n`` make a gearbox's steps with it and
    not without it (:func:`gearbox_problem`, read over the steps next to it): a light cluster is then a
    gear driven briefly, not slip. A close-ratio 6-speed's 5th, driven for seconds between 4th and 6th
    (1.21 and 1.30 x apart), left out made 4th -> 6th 1.58, longer than 1.2 x the 1.27 below it, which
    no gearbox has; kept, the steps shrink towards top as gearboxes' do. A peak of slip between two gears
    splits a step in two short ones below a longer one: a problem with it, not without it."""
    lo, hi = max(n - 2, 0), min(n + 3, len(ratios))
    near = ratios[lo:hi]
    return bool(gearbox_problem(near[:n - lo] + near[n - lo + 1:])) and not gearbox_problem(near)


def _phantom_between(cands: list[Cluster], phantoms: list[Cluster]) -> float | None:
    """rpm per km/h of a phantom lying between two of the gears ``cands`` (1st first), or None."""
    return next((p.rpm_per_kmh for p in phantoms if cands and cands[0].rpm_per_kmh > p.rpm_per_kmh
                 > cands[-1].rpm_per_kmh), None)


def _skipped(cands: list[Cluster], phantoms: list[Cluster]) -> tuple[tuple[int, ...], list[Cluster], Cluster] | None:
    """Without the gear count, where the gears found (1st first, 1st certain) make no gearbox's steps
    (:func:`gearbox_problem`): (slots, the gears with it, the peak) for the heaviest light peak set apart
    between two of them with which exactly one numbering from 1st, at most MAX_GEARS, makes a gearbox, a
    gear missing beside it (:func:`_numberings`); else None. The brisk driver skips the close-ratio car's
    5th and drives its 4th for seconds: 3rd -> 6th (2.0 after a 1.42) is no gearbox's step, and with the
    light 4th only 1st-4th and 6th is one. The likeliest numbering, never a certain one: a peak of slip
    could stand there too."""
    if len(cands) < 2 or not gearbox_problem([c.rpm_per_kmh for c in cands]):
        return None
    for p in sorted(phantoms, key=lambda c: -c.mass):
        if not cands[0].rpm_per_kmh > p.rpm_per_kmh > cands[-1].rpm_per_kmh:
            continue
        with_it = sorted(cands + [p], key=lambda c: -c.rpm_per_kmh)
        fits = _numberings([c.rpm_per_kmh for c in with_it], MAX_GEARS, 0, 0)
        if len(fits) == 1:
            return fits[0], with_it, p
    return None


def _driven_through(cands: list[Cluster], phantoms: list[Cluster]) -> list[Cluster]:
    """Without the gear count, where the gears found (1st first) make a gearbox's steps: the light peaks set
    apart between two of them (:func:`_phantoms`) that the engine was pulled through (PULLED_THROUGH) and
    that make a gearbox with them (at most MAX_GEARS), heaviest first. A lazy driver drives the close-ratio
    car's 3rd for seconds on the way to 4th: 2nd -> 4th (1.80) reads as one step after a 1.65, and 4th, 5th and
    6th were scored as 3rd, 4th and 5th (eval 42 % of a kei-day). A gear driven through holds its ratio while
    the engine speeds up with the truck; slip held steady holds one engine speed. The likeliest numbering,
    never a certain one: nothing but the count proves a gearbox has no gear there."""
    if len(cands) < 2 or gearbox_problem([c.rpm_per_kmh for c in cands]):
        return []
    taken: list[Cluster] = []
    for p in sorted(phantoms, key=lambda c: -c.mass):
        if not cands[0].rpm_per_kmh > p.rpm_per_kmh > cands[-1].rpm_per_kmh or p.rpm_spread < PULLED_THROUGH:
            continue
        with_it = sorted(cands + taken + [p], key=lambda c: -c.rpm_per_kmh)
        if len(with_it) <= MAX_GEARS and not gearbox_problem([c.rpm_per_kmh for c in with_it]):
            taken.append(p)
    return taken


def _glimpsed(state: LearnerState, cands: list[Cluster], idle_rpm: float) -> Cluster | None:
    """A gear passed through but never held (no steady run yet) in a step between two gears found (1st first) longer
    than the step below it, else None: its pairs as a Cluster (no steady pair among them). A gearbox's steps
    mostly shrink towards top, so a gear skipped or driven through for a second hides in a long one: the
    close-ratio car's 3rd -> 5th (1.53 after 1.43, 4th engaged for a second) numbered 5th 4th and 6th 5th for
    the rest of a kei-day (a wrong gear on 41-43 % of two drives' moving samples, eval's live learning). Its
    moving pairs that continue a run (within STEADY_TOL of its first), steady or not yet, the engine pulling
    (the rpm not falling from the run's pair before; on average above ``idle_rpm`` + IDLE_MARGIN_RPM, not
    rolling at idle with the clutch in), peak there: within GLIMPSE_WIDTH of one ratio, counting only those a
    gear step (MIN_GEAR_STEP) from both gears, at least MIN_CLUSTER_SAMPLES of them and at least half of those
    in the step that far from both gears, with fewer than MIN_DIP as many so near any ratio between it and
    either gear. The smear of shifts' slip across a step (the Hijet's 3rd -> 4th) has no such peak, and the tail
    of a gear's cluster reaching into the step no dip between it and the gear."""
    ratios = [c.rpm_per_kmh for c in cands]
    width = int(GLIMPSE_WIDTH / BIN)
    for n in range(1, len(ratios) - 1):
        if math.log(ratios[n] / ratios[n + 1]) <= math.log(ratios[n - 1] / ratios[n]):
            continue
        first, last = _bin(math.log(ratios[n + 1])), _bin(math.log(ratios[n]))
        lo, hi = _bin(math.log(ratios[n + 1] * MIN_GEAR_STEP)) + 1, _bin(math.log(ratios[n] / MIN_GEAR_STEP))
        if hi - lo < 2:
            continue
        pairs = state.agreeing
        # pairs within a gear step of either gear count for none (the edge of a gear's own tail); the dips
        # towards the gears are read over every pair
        near = [sum(pairs[i - width:i + width + 1]) for i in range(first, last + 1)]
        inside = [sum(pairs[max(i - width, lo):min(i + width, hi) + 1]) for i in range(lo, hi + 1)]
        best = max(range(len(inside)), key=lambda i: inside[i])
        if inside[best] < max(MIN_CLUSTER_SAMPLES, 0.5 * sum(pairs[lo:hi + 1])):
            continue
        peak = lo - first + best  # the same ratio, indexed in ``near``
        around = range(first + peak - width, first + peak + width + 1)
        mean_rpm = sum(state.agreeing_rpm[i] for i in around) / near[peak]
        if mean_rpm < idle_rpm + IDLE_MARGIN_RPM:
            continue
        if min(near[:peak]) <= MIN_DIP * near[peak] and min(near[peak + 1:]) <= MIN_DIP * near[peak]:
            centre = sum((i + 0.5) * pairs[i] for i in around) / near[peak]
            spread = BIN * sum(abs(i + 0.5 - centre) * pairs[i] for i in around) / near[peak]
            return Cluster(peak=_ratio(centre), rpm_per_kmh=_ratio(centre), mass=near[peak], spread=spread,
                           mean_rpm=mean_rpm)
    return None


def _bridging_slots(ratios: list[float]) -> tuple[int, ...]:
    """Without the gear count: slots (0 = the highest found) for the gears found (falling), a step longer than
    MAX_STEP, which no gearbox has, holding as few gears not found as leave each step at most MAX_STEP (the
    brisk driver's kei-day read once a second never holds the Hijet's 3rd: 2nd -> 4th, 2.37); numbered in a
    row where that makes more than MAX_GEARS."""
    slots = [0] * len(ratios)
    for n in range(1, len(ratios)):
        slots[n] = slots[n - 1] + max(1, math.ceil(math.log(ratios[n - 1] / ratios[n]) / math.log(MAX_STEP) - 1e-9))
    return tuple(slots) if not slots or slots[-1] < MAX_GEARS else tuple(range(len(ratios)))


def _glimpse_fits(cands: list[Cluster], glimpsed: Cluster, gears: int) -> bool:
    """True when the gears found (1st first) with the one ``glimpsed`` between them make a gearbox of at most
    ``gears`` (:func:`_fits_with`)."""
    return _fits_with([c.rpm_per_kmh for c in cands], glimpsed.rpm_per_kmh, gears)


def _fits_with(ratios: list[float], ratio: float, gears: int) -> bool:
    """True when rpm per km/h ``ratios`` with ``ratio`` among them make a gearbox of at most ``gears``
    (:func:`gearbox_problem`)."""
    with_it = sorted(ratios + [ratio], reverse=True)
    return len(with_it) <= gears and not gearbox_problem(with_it)


def _rolling_at_idle(cands: list[Cluster], idle_rpm: float) -> list[Cluster]:
    """Clusters (1st first) that are the engine at idle while rolling, not a gear (see IDLE_BAND)."""
    out, below = [], None  # below: the nearest gear with more rpm per km/h kept so far
    for c in cands:
        if below is not None and c.mean_rpm < IDLE_BAND * idle_rpm and c.mean_kmh <= below.mean_kmh:
            out.append(c)
        else:
            below = c
    return out


def _beyond_top(cands: list[Cluster]) -> list[Cluster]:
    """The lightest clusters below the top gear (1st first in ``cands``) whose step from the cluster
    above them is no gearbox's (:func:`gearbox_problem`) while the rest is one, each holding less
    than PHANTOM_SHARE of that neighbour's pairs. Fewer rpm per km/h than top gear is the engine
    turning slower than the gearbox lets it: the clutch in, the engine at a (cold, fast) idle or
    running down to it, never a gear."""
    out = []
    while len(cands) >= 3:
        ratios = [c.rpm_per_kmh for c in cands]
        last, above = cands[-1], cands[-2]
        if (gearbox_problem(ratios) and not gearbox_problem(ratios[:-1])
                and last.mass < PHANTOM_SHARE * above.mass):
            out.append(cands.pop())
        else:
            break
    return out


def _no_low_range(ratios: list[float], cands: list[Cluster], low_range: float | None) -> list[float]:
    """The rpm per km/h ``ratios`` that are no gear's low range (``low_range`` x one of the gears ``cands``,
    within LOW_RANGE_MATCH): all of them without a known low range."""
    return [k for k in ratios if low_range is None
            or all(abs(math.log(k / (c.rpm_per_kmh * low_range))) > LOW_RANGE_MATCH for c in cands)]


def _more_gears(cands: list[Cluster], dropped: list[Cluster], first: tuple[float, float, float] | None,
                higher: tuple[float, float, float] | None, above: tuple[int, int, int], gears: int | None,
                low_range: float | None, extra_low: bool) -> int | None:
    """How many forward gears the drives show, when more than the count ``gears`` given; else None.

    A cluster left out for the count (``dropped``: the lightest) between the count's gears or above the
    highest of them (1st first in ``cands``), or the launches locked in a gear above the highest
    (``first``, with the count filled), where the gears with it make a gearbox (:func:`gearbox_problem`);
    or, with the count filled, (almost) every launch a gear step above the highest (``above``); or the
    launches locked in two gears above the highest (``first`` and ``higher``, :meth:`LaunchGears.higher_gear`)
    with room in the count for one only, where the gears with both make a gearbox. What a
    gear the count leaves out can be is no evidence: a gear's low range (``low_range``, the 4WD
    transfer's ratio when known), and above the highest an EL gear below 1st (``extra_low``). Below top
    gear a cluster is the engine idling (:func:`_beyond_top`), never a gear."""
    if gears is None or not cands:
        return None
    top = cands[0].rpm_per_kmh
    extra = [c.rpm_per_kmh for c in dropped if top > c.rpm_per_kmh > cands[-1].rpm_per_kmh]
    if not extra_low:
        extra += [c.rpm_per_kmh for c in dropped if c.rpm_per_kmh > top and above[1] != 0]
        if len(cands) == gears and first is not None and first[0] / top <= MAX_STEP:
            extra.append(first[0])
    for k in _no_low_range(extra, cands, low_range):
        if not gearbox_problem(sorted([c.rpm_per_kmh for c in cands] + [k], reverse=True)):
            return gears + 1
    if len(cands) == gears and above[0] >= 1 and low_range is None and not extra_low:
        return gears + 1  # every launch a gear step above the highest of the count's gears: a gear above it
    if (first is not None and higher is not None and len(cands) + 1 == gears and first[0] / top <= MAX_STEP
            and not extra_low and len(_no_low_range([higher[0], first[0]], cands, low_range)) == 2):
        both = sorted([c.rpm_per_kmh for c in cands] + [higher[0], first[0]], reverse=True)
        if not gearbox_problem(both):
            return len(both)
    return None


def learned(state: LearnerState, gears: int | None = None, idle_rpm: float = 850.0,
            low_range: float | None = None, extra_low: bool = False) -> LearnedRatios:
    """The forward gears in ``state``: ``gears`` of them when given, else as many as found.

    ``low_range`` (a 4WD transfer's low ratio) and ``extra_low`` (an EL gear below 1st): gears the count
    leaves out, which a cluster or a launch may be (:func:`_more_gears`)."""
    found = clusters(state)
    other = [c for c in found if c.mean_rpm < idle_rpm + IDLE_MARGIN_RPM]
    other += _rolling_at_idle([c for c in found if c not in other], idle_rpm)
    cands = [c for c in found if c not in other]
    copies = _low_range_copies(cands) if len(cands) > (gears or MAX_GEARS) else set()
    if gears is not None and len(cands) - len(copies) < gears:
        copies = set()
    other += [c for n, c in enumerate(cands) if n in copies]
    cands = [c for n, c in enumerate(cands) if n not in copies]
    phantoms = _phantoms(cands)
    cands = [c for c in cands if c not in phantoms]
    for p in sorted(phantoms, key=lambda c: -c.mass) if gears is not None else ():
        # the count wants more gears than found: a light peak that makes a gearbox with the gears is one
        with_it = sorted(cands + [p], key=lambda c: -c.rpm_per_kmh)
        if len(cands) < gears and _numberings([c.rpm_per_kmh for c in with_it], gears):
            cands, phantoms = with_it, [c for c in phantoms if c is not p]
    other += phantoms
    other += _beyond_top(cands)  # takes them out of cands
    dropped: list[Cluster] = []
    if gears is not None and len(cands) > gears:
        keep = sorted(cands, key=lambda c: -c.mass)[:gears]
        dropped = [c for c in cands if c not in keep]
        other += dropped
        cands = [c for c in cands if c in keep]
    seen = launch_gears(state, cands[0].rpm_per_kmh, idle_rpm) if cands else None
    launches, *above = _launch_verdict(state, cands[0].rpm_per_kmh, seen) if seen else (0, 0, 0, 0)
    above = tuple(above)
    first = seen.first_gear() if seen else None
    higher = seen.higher_gear() if first is not None else None
    if higher is not None and higher[0] / first[0] > MAX_STEP:
        higher = None  # more than a gear step above: no second gear
    more = _more_gears(cands, dropped, first, higher, above, gears, low_range, extra_low)
    launch_made: dict[int, float] = {}  # id of a gear the launches' locks made -> its confidence
    steps: list[tuple[float, float, float]] = []
    if first is not None and first[0] / cands[0].rpm_per_kmh <= MAX_STEP and len(cands) < (gears or UNBOUNDED):
        # the launches were locked in a gear one step above the highest cluster: that is 1st, or 2nd where
        # they were locked a step higher still before it (two gears above the highest cluster; where the
        # count has no room for both, neither is taken: the count's numbering and its doubt decide, and
        # _more_gears says whether the drive shows more gears than it)
        if higher is None:
            steps = [first]
        elif len(cands) + 2 <= (gears or UNBOUNDED):
            steps = [higher, first]
    if steps:
        made = [Cluster(peak=value, rpm_per_kmh=value, mass=0.0, spread=spread, mean_rpm=0.0)
                for value, spread, _ in steps]
        launch_made = {id(c): confidence for c, (_, _, confidence) in zip(made, steps)}
        launch_first = made[0]
        cands = made + cands
        above = (0, 0, 0)
    else:
        launch_first = None

    # A weak highest cluster (a few steady pairs: a kei truck's 1st is driven through, not held)
    # where the launches lock, read against the cluster below it: the same gear seen two ways, the
    # steady pairs and the pull-aways. Their confidences combine as independent evidence.
    corroborated = None
    if launch_first is None and len(cands) >= 2 and _confidence(cands[0]) < READY_CONFIDENCE:
        locks = launch_gears(state, cands[1].rpm_per_kmh, idle_rpm).first_gear()
        if locks is not None and abs(math.log(locks[0] / cands[0].rpm_per_kmh)) <= LOCK_TOL:
            corroborated = 1.0 - (1.0 - _confidence(cands[0])) * (1.0 - locks[2])

    def gear(c: Cluster) -> GearRatio:
        if id(c) in launch_made:
            return GearRatio(round(c.rpm_per_kmh, 2), round(launch_made[id(c)], 3), 0, round(c.spread, 4))
        if corroborated is not None and c is cands[0]:
            return replace(_gear(c), confidence=round(corroborated, 3))
        return _gear(c)

    unsure_at, skipped, through, glimpsed = None, None, [], None
    counted_first = False  # the count alone made the highest cluster 1st
    if gears is None or len(cands) == gears:
        # without the gear count, a cluster set apart as a phantom between two gears may be a gear
        # driven through briefly (a close-ratio 6-speed's 3rd): the numbers above it are not certain; one
        # the engine was pulled through is the likeliest a gear (never certain: the dash waits), and so
        # is one that alone makes the gears found a gearbox, a gear skipped beside it
        if gears is None:
            through = _driven_through(cands, phantoms)
            if through:
                cands = sorted(cands + through, key=lambda c: -c.rpm_per_kmh)
                phantoms = [c for c in phantoms if c not in through]
                other = [c for c in other if c not in through]
            skipped = _skipped(cands, phantoms)
            if above[:2] == (0, 0):
                unsure_at = _phantom_between(cands, phantoms)
                if unsure_at is None and skipped is None and not through:
                    glimpsed = _glimpsed(state, cands, idle_rpm)
        certain = gears is not None or (above[:2] == (0, 0) and unsure_at is None and skipped is None
                                         and not through and glimpsed is None)
        counted_first = gears is not None and launch_first is None
        if skipped is None:
            slots = _bridging_slots([c.rpm_per_kmh for c in cands]) if gears is None else tuple(range(len(cands)))
            size = slots[-1] + 1 if slots else 0
            if len(slots) < size:
                certain = False  # a gear missing in a step no gearbox has: the likeliest numbering
            by_slot = dict(zip(slots, cands))
            table = tuple(gear(by_slot[s]) if s in by_slot else _MISSING for s in range(size))
        else:
            # the likeliest (never certain): the light peak a gear, a gear skipped beside it
            slots, cands, taken = skipped
            other, unsure_at = [c for c in other if c is not taken], None
            by_slot = dict(zip(slots, cands))
            table = tuple(gear(by_slot[s]) if s in by_slot else _MISSING for s in range(slots[-1] + 1))
    elif not cands:  # nothing steady yet: every gear still to be found
        certain, table = False, (_MISSING,) * gears
    else:
        slots, certain = _slots([c.rpm_per_kmh for c in cands], gears, above)
        if len(cands) < gears:
            # fewer gears than the count: one passed through but never held between two found is the one
            # missing there, not a top gear never reached. Where the numbering has a gear missing there
            # already it agrees; else the gears numbered with it are the likeliest (the dash waits until it is
            # held: a step no longer than MAX_STEP reads as one gear step, the close-ratio car's 3rd -> 5th)
            glimpsed = _glimpsed(state, cands, idle_rpm)
            below = None if glimpsed is None else sum(c.rpm_per_kmh > glimpsed.rpm_per_kmh for c in cands)
            if (glimpsed is None or not _glimpse_fits(cands, glimpsed, gears)
                    or certain and slots[below] - slots[below - 1] > 1):
                glimpsed = None
            else:
                cands = sorted(cands + [glimpsed], key=lambda c: -c.rpm_per_kmh)
                slots, certain = _slots([c.rpm_per_kmh for c in cands], gears, above)[0], False
        counted_first = launch_first is None and slots[0] == 0
        if not certain and not above[2] and (_likely_above(state, cands[0].rpm_per_kmh, seen) or counted_first
                                             and _launch_doubt(seen, cands, above, extra_low, low_range)):
            # the launches decide nothing, but most pulled away above the highest cluster, or more locked above
            # it (in time or read late) than went into it: the likeliest numbering (never shown: eval scores
            # it) starts at 2nd
            slots = _slots([c.rpm_per_kmh for c in cands], gears, (*above[:2], 1))[0]
        by_slot = dict(zip(slots, cands))
        table = tuple(gear(by_slot[s]) if s in by_slot else _MISSING for s in range(gears))
    # the count alone making the highest cluster 1st while the launches say otherwise (a count too low, seen
    # early, or a 1st read too seldom to cluster): the numbering is not certain
    doubted = counted_first and _launch_doubt(seen, cands, above, extra_low, low_range)
    certain = certain and more is None and not doubted
    # the launches proved the highest cluster 1st: a numbering unsure above it (a light peak or a gear glimpsed
    # between two gears) leaves 1st where it is
    first_sure = certain or gears is None and above[:2] == (0, 0)
    if not certain and gears is not None:  # without a count the numbering is "from the highest found"
        table = tuple(GearRatio(g.rpm_per_kmh, round(g.confidence * UNCERTAIN_NUMBERING, 3), g.samples, g.spread)
                      for g in table)
    return LearnedRatios(gears=table, other=tuple(round(c.rpm_per_kmh, 2) for c in
                                                  sorted(other, key=lambda c: -c.rpm_per_kmh)),
                         samples_used=state.pairs, gear_count_given=gears is not None,
                         numbering_certain=certain, launches=launches,
                         unsure_at=None if unsure_at is None else round(unsure_at, 2), more_gears=more,
                         skipped_at=None if skipped is None else round(skipped[2].rpm_per_kmh, 2),
                         through_at=tuple(round(c.rpm_per_kmh, 2) for c in through),
                         glimpsed_at=None if glimpsed is None else round(glimpsed.rpm_per_kmh, 2),
                         first_doubted=doubted,
                         likely_above=int(gears is None and bool(cands)
                                          and (not first_sure and not extra_low and low_range is None
                                               and _worked_above(state, cands[0].rpm_per_kmh)
                                               or _likely_above(state, cands[0].rpm_per_kmh, None if first_sure else seen)
                                               or not first_sure and _locked_above(seen, cands, extra_low,
                                                                                   low_range))))


def _launch_doubt(seen: LaunchGears | None, cands: list[Cluster], above: tuple[int, int, int], extra_low: bool,
                  low_range: float | None) -> bool:
    """True when the launches say a gear above the highest cluster (``seen``: :func:`launch_gears` read
    against it; ``above``: :func:`_launch_verdict`'s bounds): :func:`_locked_above`, or none of them within
    a gear step of it in the LAUNCH_S after the standstill with none seen going straight into it (read once
    a second, a launch shows no lock; by LAUNCH_S a truck pulling away in the highest cluster's gear is in
    it, clutch home). Never with an EL gear or a known low range, which a launch may be in."""
    return _locked_above(seen, cands, extra_low, low_range) or (
        seen is not None and not extra_low and low_range is None and above[2] >= 1 and not seen.in_top)


def _locked_above(seen: LaunchGears | None, cands: list[Cluster], extra_low: bool, low_range: float | None) -> bool:
    """True when more launches locked in a gear above the highest cluster (in time or read late:
    :class:`LaunchGears`) than went into it straight from the clutch's slip; never with an EL gear, and
    not counting a lock at a known low range's copy of a gear."""
    if extra_low or seen is None:
        return False
    return len(_no_low_range([math.exp(x) for x in seen.locked_above + seen.locked_late], cands,
                             low_range)) > seen.in_top


# -- persistence: a profile with a [learned] table -------------------------------
def _toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, (int, float)):
        return repr(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def _toml_table(name: str, values: dict) -> list[str]:
    rows = [f"{key} = {_toml_value(v)}" for key, v in values.items() if v is not None and v != ()]
    return ["", f"[{name}]", *rows] if rows else []


def profile_with_learned(profile: Profile | None, learned: LearnedRatios, logs: list[str],
                         transmission: str | None = None, coast_down: tuple[tuple[float, ...], ...] = (),
                         idle_rpm: float | None = None) -> str:
    """TOML text of ``profile`` (or a minimal profile "learned") plus a [learned] table.

    The base profile's content is written back from what :class:`Profile` holds
    (comments and the tach's signal description are not kept). A gear not seen
    is written as ``nan`` with confidence 0. ``transmission``, when given, is the
    gearbox written (the owner's ``--transmission``); ``coast_down`` an automatic's
    coast-downs seen (keidash.estimate.shiftmap.ShiftMap.coast_down); ``idle_rpm`` the
    warm idle seen at a standstill in the drives. The text loads
    back with :func:`keidash.profiles.load_profile`.
    """
    lines = ["# written by keidash learn: the [learned] table holds rpm per km/h learned by driving"]
    if profile is None:
        lines += ['name = "learned"', 'title = "Ratios learned by driving"']
        if transmission:
            lines += _toml_table("gearbox", {"transmission": transmission})
    else:
        if transmission:
            profile = replace(profile, transmission=transmission)
        e, src = profile.engine, profile.sources
        lines += [f"name = {_toml_value(profile.name)}", f"title = {_toml_value(profile.title)}",
                  f"years = {_toml_value(profile.years)}"]
        lines += _toml_table("engine", {
            "code": e.code, "displacement_cc": e.displacement_cc, "cylinders": e.cylinders,
            "peak_power_kw": e.peak_power_kw, "peak_power_rpm": e.peak_power_rpm,
            "peak_torque_nm": e.peak_torque_nm, "peak_torque_rpm": e.peak_torque_rpm,
            "idle_rpm": e.idle_rpm, "sources": src.get("engine", ())})
        lines += _toml_table("gearbox", {
            "transmission": profile.transmission, "gear_count": profile.gear_count,
            "gear_ratios": profile.gear_ratios, "reverse_ratio": profile.reverse_ratio,
            "final_drive": profile.final_drive, "transfer_low_ratio": profile.transfer_low_ratio,
            "sources": src.get("gearbox", ())})
        if profile.tyre is not None:
            lines += _toml_table("tyre", {"size": profile.tyre.size, "sources": src.get("tyre", ())})
        lines += _toml_table("tach", {"pulses_per_rev": profile.tach_pulses_per_rev,
                                      "sources": src.get("tach", ())})
    lines += ["", "[learned]",
              f"rpm_per_kmh = {_toml_value([math.nan if g.rpm_per_kmh is None else g.rpm_per_kmh for g in learned.gears])}",
              f"confidence = {_toml_value([g.confidence for g in learned.gears])}",
              f"samples = {learned.samples_used}",
              f"logs = {_toml_value(list(logs))}"]
    if learned.found and not learned.numbering_certain:
        lines += ["# which cluster is 1st could not be told: the dash does not number gears from this table",
                  "numbering_certain = false"]
    if idle_rpm:
        lines += [f"idle_rpm = {round(idle_rpm, 1)!r}"]
    if any(coast_down):
        lines += [f"coast_down = {_toml_value([list(row) for row in coast_down])}"]
    return "\n".join(lines) + "\n"
