"""What keidash knows about one truck from its drives: gear ratios, then driving habits.

:class:`TruckKnowledge` is what :func:`keidash.estimate.drives.learn_truck` finds and
what :func:`keidash.estimate.estimator.config_for` takes; it is plain data, so the
estimator can take it without importing the code that runs the estimator over drives.
"""

from __future__ import annotations

from dataclasses import dataclass


#: said when the learner could not tell which gear the highest cluster is (LearnedRatios.numbering_certain)
NUMBERING_UNCERTAIN = ("which gear each is cannot be told from these drives (no pull-away from a standstill "
                       "showed 1st): the numbers are the likeliest, not sure, and a profile written from them "
                       "gives the dash no gear numbers; --gears N (the gearbox's count) or a drive with "
                       "starts from a stop can settle it")


#: said instead when most pull-aways read a gear above the highest cluster (LearnedRatios.likely_above)
LIKELY_FROM_2ND = ("which gear each is cannot be told from these drives for sure: most pull-aways from a "
                   "standstill read a gear step above the highest found, or held a gear above it for a moment, "
                   "so they are likely 2nd and up (1st not held steadily: read once or twice a second, a "
                   "pull-away in 1st is too short); the table numbers "
                   "them from the highest, and a profile written from them gives the dash no gear numbers; "
                   "--gears N (the gearbox's count) or a drive holding 1st a few seconds can settle it")


def phantom_sentence(ratio: float) -> str:
    """Said when, without the gear count, a small cluster between two gears leaves the numbering unsure
    (keidash.estimate.learn: a phantom, or a gear driven through briefly)."""
    return (f"which gear each is cannot be told from these drives: {ratio:.1f} rpm per km/h, between two gears, "
            f"was held too briefly to tell a gear driven through from clutch slip, and the gears above it may "
            f"be numbered one too low; the numbers are the likeliest, not sure, and a profile written from "
            f"them gives the dash no gear numbers; --gears N (the gearbox's count) and a drive holding "
            f"that gear a few seconds settle it")


def through_sentence(ratios: tuple[float, ...]) -> str:
    """Said when, without the gear count, small clusters between two gears were taken as gears driven through
    briefly (keidash.estimate.learn: the engine pulled through them, their ratio held)."""
    held = " and ".join(f"{k:.1f}" for k in ratios)
    return (f"which gear each is cannot be told from these drives for sure: {held} rpm per km/h, between two "
            f"gears, was held only briefly, but the engine speed rose with the road speed as in a gear (clutch "
            f"slip holds one engine speed), so it is numbered as a gear driven through; the numbers are the "
            f"likeliest, not sure, and a profile written from them gives the dash no gear numbers; --gears N "
            f"(the gearbox's count) can settle it")


def glimpsed_sentence(ratio: float, counted: bool = False) -> str:
    """Said when a gear was passed through but never held inside a step longer than the one below it
    (keidash.estimate.learn: the moving pairs peak there); ``counted``: the gear count was given (the table
    then numbers it as a gear, the likeliest; without the count the table is of the gears found)."""
    where = ("it is numbered as a gear here, the likeliest, not sure" if counted else
             "it is likeliest a gear, so the gears above it may be numbered one too low here (eval scores it as "
             "one)")
    settle = "a drive holding that gear a few seconds" if counted else (
        "--gears N (the gearbox's count) or a drive holding that gear a few seconds")
    return (f"which gear each is cannot be told from these drives for sure: a gear was passed through at about "
            f"{ratio:.1f} rpm per km/h, between two gears found, but never held; {where}; a profile written from "
            f"them gives the dash no gear numbers; {settle} settles it")


def bridged_sentence(numbers: list[int]) -> str:
    """Said when, without the gear count, the step between two gears found is longer than any gearbox's, so
    gears not found are numbered between them (keidash.estimate.learn._bridging_slots)."""
    which = " and ".join(f"gear {n}" for n in numbers)
    return (f"which gear each is cannot be told from these drives for sure: {which} never held, the step "
            f"between the gears found beside it longer than any gearbox's (2.1 x), so a gear is missing there "
            f"and numbered so (the likeliest); a profile written from them gives the dash no gear numbers; "
            f"--gears N (the gearbox's count) or a drive holding that gear a few seconds settles it")


def skipped_sentence(ratio: float) -> str:
    """Said when, without the gear count, the gears found make no gearbox's steps as they stand and a small
    cluster between two of them, taken as a gear, makes one numbering that does (keidash.estimate.learn:
    a gear skipped beside one driven briefly)."""
    return (f"which gear each is cannot be told from these drives for sure: the gears found make no gearbox's "
            f"steps as they stand (a gear skipped); with {ratio:.1f} rpm per km/h, held too briefly to tell a "
            f"gear from clutch slip, taken as a gear, one numbering does, a gear never held beside it; the "
            f"numbers are the likeliest, not sure, and a profile written from them gives the dash no gear "
            f"numbers; --gears N (the gearbox's count) can settle it")


def more_gears_sentence(seen: int, count: int) -> str:
    """Said when the drives show more forward gears than the count given (a wrong profile or --gears)."""
    return (f"these drives show {seen} or more forward gears, more than the {count} given (a cluster left out "
            f"for the count, or pull-aways locked in a gear above the highest, would number them otherwise): "
            f"the numbers are not sure and a profile written from them gives the dash no gear numbers; "
            f"check the gearbox's count (the profile's transmission, or --gears N)")


def weak_gears_sentence(weak: tuple[int, ...]) -> str:
    """Said when gears were found but seen too little to be sure of their ratios (TruckKnowledge.weak)."""
    names = ", ".join(ordinal(n) for n in weak)
    one = len(weak) == 1
    return (f"{names} {'was' if one else 'were'} seen only briefly (confidence under 0.5): the dash uses "
            f"{'its ratio' if one else 'their ratios'}, which may be a few % off; a drive with a minute or so steady "
            f"in {'that gear' if one else 'those gears'}, learned together with these, firms "
            f"{'it' if one else 'them'} up")


def ordinal(n: int) -> str:
    return f"{n}{'st' if n == 1 else 'nd' if n == 2 else 'rd' if n == 3 else 'th'}"


@dataclass(frozen=True)
class TruckKnowledge:
    ratios_learned: "object"  # keidash.estimate.learn.LearnedRatios
    ratios: tuple[float, ...]  # rpm per km/h for each gear, () when not every gear was found
    habits: "object | None"  # keidash.estimate.speedonly.Habits, None without ratios
    logs: tuple[str, ...]
    idle_rpm: float | None = None  # warm idle seen while stopped; None when the drives never stood
    shift_map: "object | None" = None  # keidash.estimate.shiftmap.ShiftMap: an automatic's coast-downs, else None

    @property
    def why_not(self) -> str:
        """One sentence on why no complete ratio set was learned ('' when one was)."""
        if self.ratios:
            return ""
        gears = self.ratios_learned.gears
        seen = sum(g.rpm_per_kmh is not None for g in gears)
        if not self.ratios_learned.samples_used:
            return "no steady driving with both rpm and speed in it to learn gear ratios from"
        return (f"found {seen} of {len(gears)} gears with confidence; drive longer, using every gear "
                f"at a steady speed for a few seconds")

    @property
    def weak(self) -> tuple[int, ...]:
        """The gears (1st = 1) found but less than READY_CONFIDENCE sure of: seen only briefly."""
        from .learn import READY_CONFIDENCE
        return tuple(n for n, g in enumerate(self.ratios_learned.gears, start=1)
                     if g.rpm_per_kmh is not None and g.confidence < READY_CONFIDENCE)

    def describe(self) -> str:
        if not self.ratios:
            return self.why_not
        shifts = self.shift_map.describe() if self.shift_map is not None else ""
        numbering = "" if self.ratios_learned.numbering_certain else " (which is 1st not certain)"
        return (f"{len(self.ratios)} gears{numbering}, " + " / ".join(f"{k:.1f}" for k in self.ratios)
                + " rpm per km/h" + (f"; {shifts}" if shifts else ""))

    def report(self) -> str:
        """A table for the owner: each gear's rpm per km/h, confidence and samples."""
        lines = [f"Learned from {', '.join(self.logs)} ({self.ratios_learned.samples_used} steady samples):"]
        for number, gear in enumerate(self.ratios_learned.gears, start=1):
            k = "not seen" if gear.rpm_per_kmh is None else f"{gear.rpm_per_kmh:7.1f} rpm per km/h"
            lines.append(f"  gear {number}: {k}, confidence {gear.confidence:.2f} ({gear.samples} samples)")
        for other in self.ratios_learned.other:
            lines.append(f"  also seen, not a forward gear: {other:.1f} rpm per km/h (reverse, low range or slip)")
        if self.ratios_learned.more_gears:
            lines.append(f"  {more_gears_sentence(self.ratios_learned.more_gears, len(self.ratios_learned.gears))}")
        elif self.ratios_learned.through_at:
            lines.append(f"  {through_sentence(self.ratios_learned.through_at)}")
        elif self.ratios_learned.unsure_at is not None:
            lines.append(f"  {phantom_sentence(self.ratios_learned.unsure_at)}")
        elif self.ratios_learned.skipped_at is not None:
            lines.append(f"  {skipped_sentence(self.ratios_learned.skipped_at)}")
        elif self.ratios_learned.glimpsed_at is not None:
            learned = self.ratios_learned
            lines.append(f"  {glimpsed_sentence(learned.glimpsed_at, learned.gear_count_given)}")
        elif not self.ratios_learned.gear_count_given and self.ratios_learned.missing_between():
            lines.append(f"  {bridged_sentence(self.ratios_learned.missing_between())}")
        elif self.ratios_learned.found and not self.ratios_learned.numbering_certain:
            likely = self.ratios_learned.likely_above and not self.ratios_learned.gear_count_given
            lines.append(f"  {LIKELY_FROM_2ND if likely else NUMBERING_UNCERTAIN}")
        elif self.ratios and self.weak:
            lines.append(f"  {weak_gears_sentence(self.weak)}")
        if not self.ratios:
            lines.append(f"  {self.why_not}")
        elif self.shift_map is not None and self.shift_map.describe():
            lines.append(f"  shift map (automatic): {self.shift_map.describe()}")
        return "\n".join(lines)
