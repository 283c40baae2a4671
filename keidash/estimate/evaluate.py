"""``keidash eval``: the estimator's figures on recorded drives, measured the way the dash runs.

Logs are grouped by vehicle (the folder they sit in). Each log is scored with what
was learned from the *other* logs of its vehicle (leave-one-out), as an owner's
truck is calibrated on earlier drives and then driven: gear ratios
(:func:`keidash.estimate.learn.learn_from_logs`) and driving habits
(:func:`keidash.estimate.speedonly.learn_habits`, from the gears the tracker found in those
drives). A vehicle with one log only is scored on itself, and says so.

Per log:

- **ratios**: learned from this log alone; against the label medians where the log
  has gear labels (error in %).
- **gear with rpm**: the estimator's gear against the labels, over moving samples
  labelled with a forward gear, beside nearest-ratio per sample with the same ratios.
- **live learning**: nothing known beforehand, the dash learning the ratios as the log
  plays: the share of moving labelled samples with a gear shown, and with a wrong one.
- **speed only**: rpm hidden; the share of moving samples whose estimated rpm is within
  10 % of the recorded rpm, beside a naive estimator (gear by the EU gear-shift
  indicator speeds 15/35/50/70/90 km/h) and an oracle that knows the gear (the label,
  or for unlabelled logs the gear whose ratio x speed is nearest the recorded rpm).

Everything runs through :func:`keidash.estimate.drives.estimate_log`, the code path of
``keidash replay --estimates``. Pure: no clock. :func:`shortfalls` names every log where
keidash does worse than the naive answer measured beside it (``keidash eval`` then exits 1).
The tracker's gearbox model comes from a ``vehicle.toml`` in the log's folder
(``transmission = "4AT"``), else ``--transmission``, else the profile, else a manual.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..config import read_toml
from ..errors import ConfigError
from ..profiles import Profile, gears_named, is_gearbox, unknown_profile
from ..profiles.engine import ShiftLimits, shift_limits
from ..replay import DriveLog, load_log
from .drives import estimate_log, learn_truck
from .estimator import config_for
from .gears import MANUAL, away_from_change, gearbox_kind, label_changes
from .learn import learn_from_logs

#: the EU gear-shift indicator's standard speeds (km/h): 1st below 15, 2nd below 35, ...
NAIVE_SPEEDS_KMH = (15.0, 35.0, 50.0, 70.0, 90.0)
WITHIN = 0.10  # an rpm estimate within 10 % of the recorded rpm counts as right
MOVING_KMH = 4.0
#: a log file keidash eval reads, by extension (.trace: what openxc-dump > FILE is often called)
LOG_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".trace", ".txt")


@dataclass
class LogFigures:
    name: str
    vehicle: str
    moving: int = 0
    labelled: bool = False
    cross_validated: bool = True
    ratios: tuple[float | None, ...] = ()  # learned from this log alone
    ratio_confidence: tuple[float, ...] = ()
    label_medians: tuple[float | None, ...] = ()
    ratio_error_pct: tuple[float | None, ...] = ()
    trained_ratios: tuple[float, ...] = ()  # learned from the other logs: the ones used below
    trained_shift_map: object | None = None  # an automatic's ShiftMap learned from the other logs (None: none)
    gear_agree: float | None = None  # tracker vs labels, moving forward-labelled samples
    gear_agree_nearest: float | None = None
    gear_misses: int | None = None  # moving forward-labelled samples where the tracker's gear is not the label ...
    gear_misses_away: int | None = None  # ... of them farther than CHANGE_NEAR_S from a change of label
    speed_only: float | None = None  # share within 10 %
    speed_only_naive: float | None = None
    speed_only_oracle: float | None = None
    gearbox: str = "manual"  # the tracker's model: keidash.estimate.gears.gearbox_kind
    learning_shown: float | None = None  # live learning from nothing: share of moving samples with a gear shown
    learning_wrong: float | None = None  # ... and with a wrong gear shown
    speed_lag_s: float = 0.0  # how late the speed is measured against the rpm (keidash.estimate.lag; a manual)
    notes: list[str] = field(default_factory=list)

    @property
    def of_oracle(self) -> float | None:
        if self.speed_only is None or not self.speed_only_oracle:
            return None
        return self.speed_only / self.speed_only_oracle


def find_logs(paths: Sequence[str]) -> list[str]:
    """The log files named, and those inside the folders named (recursively, sorted)."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                found += [os.path.join(folder, f) for f in sorted(files)
                          if f.lower().endswith(LOG_EXTENSIONS) and not f.startswith(".")]
        else:
            found.append(path)
    return found


def vehicle_of(path: str) -> str:
    """Logs in one folder are one vehicle."""
    return os.path.basename(os.path.dirname(os.path.abspath(path)))


def label_medians(log: DriveLog, gears: int) -> tuple[float | None, ...]:
    """Median rpm per km/h of the moving samples labelled with each forward gear."""
    by_gear = defaultdict(list)
    for s in log.samples:
        if s.moving and s.rpm and s.gear and s.gear > 0:
            by_gear[s.gear].append(s.rpm / s.speed_kmh)
    return tuple(statistics.median(by_gear[g]) if by_gear[g] else None for g in range(1, gears + 1))


def nearest_gear(rpm: float, speed_kmh: float, ratios: Sequence[float]) -> int:
    r = math.log(rpm / speed_kmh)
    return 1 + min(range(len(ratios)), key=lambda i: abs(r - math.log(ratios[i])))


def naive_gear(speed_kmh: float, gears: int) -> int:
    for gear, top in enumerate(NAIVE_SPEEDS_KMH, start=1):
        if speed_kmh < top:
            return min(gear, gears)
    return gears


def plain_kmeans(log_ratios: Sequence[float], k: int, rounds: int = 100) -> list[float]:
    """The baseline the ratio learner is measured against: plain 1-D k-means on ln(rpm per km/h),
    started at evenly spaced quantiles (deterministic); the centres as rpm per km/h, highest first."""
    xs = sorted(log_ratios)
    centres = [xs[int((i + 0.5) * len(xs) / k)] for i in range(k)]
    for _ in range(rounds):
        groups: list[list[float]] = [[] for _ in centres]
        for x in xs:
            groups[min(range(k), key=lambda i: abs(x - centres[i]))].append(x)
        centres = [sum(g) / len(g) if g else c for g, c in zip(groups, centres)]
    return sorted((math.exp(c) for c in centres), reverse=True)


def _share(hits: Iterable[bool]) -> float | None:
    """The share of true among ``hits``, taken one by one (a long log's rows are never held)."""
    total = count = 0
    for hit in hits:
        total += 1
        count += bool(hit)
    return count / total if total else None


def _within(estimate: float | None, truth: float) -> bool:
    return estimate is not None and abs(estimate - truth) <= WITHIN * truth


#: a folder of logs may describe its vehicle in this file (TOML: ``transmission = "4AT"``, ...)
VEHICLE_FILE = "vehicle.toml"
#: live learning: a shown gear that is wrong on at most this share of moving samples ...
GOAL_LEARNING_WRONG = 0.02


def vehicle_transmission(folder: str) -> str | None:
    """The ``transmission`` a log folder's vehicle.toml names, or None (no file, no key)."""
    path = os.path.join(folder, VEHICLE_FILE)
    if not os.path.isfile(path):
        return None
    # read as the config and profiles are: one sentence for a file that is not TOML, binary or
    # nested too deeply (tomllib's RecursionError was a traceback)
    value = read_toml(path, "vehicle file", ConfigError,
                      'a vehicle file is TOML text, e.g. transmission = "4AT"').get("transmission")
    if value is not None and not is_gearbox(value):
        raise ConfigError(f"{path}: transmission must be text such as \"5MT\" or \"4AT\", not {value!r}")
    return value


def evaluate(paths: Sequence[str], profile: Profile | None = None, format: str = "auto", columns: str | None = None,
             speed_unit: str | None = None, transmission: str | None = None) -> list[LogFigures]:
    """Figures for every log in ``paths`` (files or folders), for a truck like ``profile``.

    The profile gives the engine limits (idle, red line); with none, keidash's defaults.
    ``format``, ``columns`` and ``speed_unit`` apply to every log (see :func:`keidash.replay.load_log`).
    The gearbox: a folder's vehicle.toml (``transmission``), else ``transmission``, else the
    profile's, else a manual.
    """
    profile = profile or unknown_profile()
    limits = shift_limits(profile)
    files = find_logs(paths)
    logs = {path: load_log(path, format=format, columns=columns, speed_unit=speed_unit) for path in files}
    groups: dict[str, list[str]] = defaultdict(list)
    gearboxes: dict[str, str | None] = {}
    for path in files:
        vehicle = vehicle_of(path)
        groups[vehicle].append(path)
        if vehicle not in gearboxes:
            gearboxes[vehicle] = vehicle_transmission(os.path.dirname(os.path.abspath(path))) or transmission
    out = []
    for path in files:
        vehicle = vehicle_of(path)
        others = [logs[other] for other in groups[vehicle] if other != path]
        out.append(_log_figures(logs[path], os.path.basename(path), vehicle, others, profile, limits,
                                gearboxes[vehicle]))
    return out


def _log_figures(log: DriveLog, name: str, vehicle: str, others: list[DriveLog], profile: Profile,
                 limits: ShiftLimits, gearbox: str | None) -> LogFigures:
    fig = LogFigures(name, vehicle, labelled=log.has_gear, gearbox=gearbox_kind(gearbox or profile.transmission))
    fig.moving = sum(1 for s in log.samples if s.moving and s.rpm)
    if not fig.moving:
        fig.notes.append("no moving samples with rpm")
        return fig
    alone = learn_from_logs([log], idle_rpm=limits.idle_rpm, manual=fig.gearbox == MANUAL)
    fig.speed_lag_s = alone.speed_lags[0]
    if fig.speed_lag_s:
        late, early = ("speed", "rpm") if fig.speed_lag_s > 0 else ("rpm", "speed")
        fig.notes.append(f"the {late} lags the {early} by {abs(fig.speed_lag_s):g} s (a GPS's speed, an "
                         f"engine note?): once the estimator found that, it paired each at its measured instant")
    fig.ratios = tuple(g.rpm_per_kmh for g in alone.gears)
    fig.ratio_confidence = tuple(round(g.confidence, 3) for g in alone.gears)
    if log.has_gear:
        fig.label_medians = label_medians(log, len(alone.gears) or 5)
        fig.ratio_error_pct = tuple(
            None if (k is None or m is None) else 100 * (k - m) / m
            for k, m in zip(fig.ratios, fig.label_medians))
        # live learning: nothing known beforehand, the dash learns the ratios as the log plays
        live = estimate_log(log, config_for(profile, {}, ("replay",), transmission=gearbox))
        counted = shown = wrong = 0  # rows taken as they come: a long log's rows are never held
        for s, r in zip(log.samples, live):
            if s.moving and s.rpm and s.gear and s.gear > 0:
                counted += 1
                shown += r.gear_est > 0
                wrong += r.gear_est > 0 and r.gear_est != s.gear
        fig.learning_shown = shown / counted if counted else None
        fig.learning_wrong = wrong / counted if counted else None

    if not others:
        others, fig.cross_validated = [log], False
        fig.notes.append("only log of its vehicle: trained on itself")
    trained = _trained(others, profile, gearbox, fig.notes)
    ratios = trained.ratios
    fig.trained_ratios = ratios
    fig.trained_shift_map = trained.shift_map
    if not ratios:
        fig.notes.append(f"learning from the other logs: {trained.why_not}")
        return fig
    config = config_for(profile, {}, ("replay",), trained, transmission=gearbox)

    samples = log.samples
    if log.has_gear:
        forward = ((s, r) for s, r in zip(samples, estimate_log(log, config))
                   if s.moving and s.rpm and s.gear and s.gear > 0)
        changes = label_changes(samples)
        fig.gear_misses = fig.gear_misses_away = 0

        def hit(s, r):
            if r.gear_est != s.gear:
                fig.gear_misses += 1
                fig.gear_misses_away += away_from_change(changes, s.t, CHANGE_NEAR_S)
            return r.gear_est == s.gear
        fig.gear_agree = _share(hit(s, r) for s, r in forward)
        fig.gear_agree_nearest = _share(nearest_gear(s.rpm, s.speed_kmh, ratios) == s.gear
                                        for s in samples if s.moving and s.rpm and s.gear and s.gear > 0)

    def scored():  # the moving samples with rpm, taken afresh each time (never a list of a long log's rows)
        return (s for s in samples if s.moving and s.rpm)
    fig.speed_only = _share(_within(r.rpm_est, s.rpm) for s, r in zip(samples, estimate_log(log, config, hide_rpm=True))
                            if s.moving and s.rpm)
    fig.speed_only_naive = _share(
        _within(ratios[naive_gear(s.speed_kmh, len(ratios)) - 1] * s.speed_kmh, s.rpm) for s in scored())

    def oracle_gear(s):
        if log.has_gear:
            return s.gear if s.gear and 0 < s.gear <= len(ratios) else None
        return nearest_gear(s.rpm, s.speed_kmh, ratios)
    fig.speed_only_oracle = _share(
        (g := oracle_gear(s)) is not None and _within(ratios[g - 1] * s.speed_kmh, s.rpm) for s in scored())
    return fig


def _trained(logs: list[DriveLog], profile: Profile, gearbox: str | None, notes: list[str]):
    """What the dash would know from ``logs``: :func:`learn_truck`, with the gear count the gearbox's name
    gives (``5MT``: 5) when that numbers the gears found from 1st up, top gears never held left out (or as
    the dash would: a gear between two bridged, 1st never held bounded above 2nd); else
    with as many gears as found (some logs never hold 1st steadily: a count they cannot fill would leave
    no ratios at all, and the speed-only figure with them). Either way, where the numbering is not
    certain, the likeliest is scored (:meth:`~keidash.estimate.learn.LearnedRatios.scored`: the highest
    cluster 1st, or 2nd where most launches pulled away above it). ``notes`` gets a sentence where the
    count could not be used, 1st is bounded, top gears were never held or the numbering is not certain."""
    count = None if profile.forward_gears else gears_named(gearbox)
    if count:
        trained = learn_truck(logs, profile, gears=count, transmission=gearbox, scoring=True)
        if trained.ratios:
            notes.extend(_numbering_notes(trained, gearbox, count))
            return trained
        notes.append(f"learning with the {count} gears of {gearbox}, {trained.ratios_learned.found} found: "
                     "the gears found are numbered without that count")
    trained = learn_truck(logs, profile, transmission=gearbox, scoring=True)
    notes.extend(_numbering_notes(trained, gearbox, None, count_named=bool(count)))
    return trained


def _numbering_notes(trained, gearbox: str | None, count: int | None, count_named: bool = False) -> list[str]:
    """What a score rests on beside the gears learned (with ``count`` gears, or as many as found): 1st
    bounded, top gears never held, a numbering that is only the likeliest (and, unless a count was named,
    ``count_named``, that one would help). An automatic's launches bound no gear: learn_truck says so."""
    ratios, learned, out = trained.ratios, trained.ratios_learned, []
    if not ratios:
        return out
    if learned.first_bounded():
        out.append(f"1st{f' of {gearbox}' if count else ''} never held steadily in the logs learned from: "
                   f"tracked within the range a gearbox leaves it above 2nd, at {ratios[0]:g} rpm per km/h")
    if count and len(ratios) < count:
        unseen = f"gear {count}" if len(ratios) + 1 == count else f"gears {len(ratios) + 1}-{count}"
        out.append(f"{unseen} of {gearbox} never held in the logs learned from: not tracked")
    if not learned.numbering_certain:
        out.append("the gears' numbering learned is not certain (which cluster is 1st, or a light one that "
                   "may be a gear): the likeliest is scored ("
                   + ("2nd is the highest cluster found: the launches pulled away a gear step above it, or "
                      "locked above it" if learned.first_bounded() else "the highest cluster found is 1st")
                   + "".join(f"; {k:g} rpm per km/h, held briefly between two gears with the engine pulled "
                             "through it, a gear" for k in learned.through_at)
                   + ("" if learned.glimpsed_at is None else f"; {learned.glimpsed_at:g} rpm per km/h, passed "
                      "through between two gears but never held, a gear")
                   + "".join(f"; gear {n} never held: the step between its neighbours is longer than a "
                             "gearbox's, bridged" for n in learned.missing_between() if not count)
                   + ")"
                   + ("" if count or count_named else "; a gear count helps (a number in --transmission, 5MT, "
                                                     "or in a vehicle.toml's transmission)"))
    return out


#: a tracker's miss this close (s) to a change of the log's gear label is one of timing
CHANGE_NEAR_S = 0.5


def shortfalls(figures: Sequence[LogFigures]) -> list[str]:
    """One line per log where keidash does worse than the naive answer beside it: the tracker
    below nearest-ratio with the same ratios, speed only at or below the naive bands, or live
    learning showing a wrong gear on more than GOAL_LEARNING_WRONG of the moving samples."""
    out = []
    for f in figures:
        where = f"{f.vehicle}/{f.name}"
        if f.gear_agree is not None and f.gear_agree_nearest is not None and f.gear_agree < f.gear_agree_nearest:
            out.append(f"{where}: gear with rpm {_pct(f.gear_agree)} is below nearest ratio "
                       f"{_pct(f.gear_agree_nearest)}")
        if f.speed_only is not None and f.speed_only_naive is not None and f.speed_only <= f.speed_only_naive:
            out.append(f"{where}: speed only {_pct(f.speed_only)} is not above the naive bands "
                       f"{_pct(f.speed_only_naive)}")
        if f.learning_wrong is not None and f.learning_wrong > GOAL_LEARNING_WRONG:
            out.append(f"{where}: while learning, a wrong gear on {_pct(f.learning_wrong)} of moving samples "
                       f"(at most {_pct(GOAL_LEARNING_WRONG)})")
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_table(figures: Sequence[LogFigures]) -> str:
    """The figures as text tables, one block per measure."""
    lines = ["Ratio learning (rpm per km/h, from each log alone; error vs label median where labelled)"]
    for f in figures:
        found = " ".join("-" if k is None else f"{k:.1f}" for k in f.ratios) or "none"
        err = ""
        if f.ratio_error_pct:
            err = "  error " + " ".join("-" if e is None else f"{e:+.1f}%" for e in f.ratio_error_pct)
        lines.append(f"  {f.vehicle}/{f.name}: {found}{err}")
    lines += ["", "Gear with rpm (moving samples labelled with a forward gear; the tracker's gearbox model)"]
    for f in figures:
        if f.gear_agree is not None:
            lines.append(f"  {f.vehicle}/{f.name}: keidash {_pct(f.gear_agree)}, "
                         f"nearest ratio {_pct(f.gear_agree_nearest)} ({f.gearbox})")
    lines += ["", "Live learning from nothing (moving labelled samples): a gear shown / a wrong gear shown"]
    for f in figures:
        if f.learning_shown is not None:
            lines.append(f"  {f.vehicle}/{f.name}: shown {_pct(f.learning_shown)}, wrong {_pct(f.learning_wrong)}")
    lines += ["", "Speed only (rpm hidden): share of moving samples within 10 % of the recorded rpm"]
    for f in figures:
        if f.speed_only is not None:
            of = "-" if f.of_oracle is None else f"{100 * f.of_oracle:.0f}%"
            cv = "" if f.cross_validated else " (trained on itself)"
            lines.append(f"  {f.vehicle}/{f.name}: keidash {_pct(f.speed_only)}, naive {_pct(f.speed_only_naive)}, "
                         f"oracle {_pct(f.speed_only_oracle)}; keidash/oracle {of}{cv}")
    for f in figures:
        for note in f.notes:
            lines.append(f"  note {f.vehicle}/{f.name}: {note}")
    return "\n".join(lines)


def as_json(figures: Sequence[LogFigures]) -> list[dict]:
    out = []
    for f in figures:
        d = {k: v for k, v in f.__dict__.items()}
        d["of_oracle"] = f.of_oracle
        if f.trained_shift_map is not None:
            d["trained_shift_map"] = {"lines": f.trained_shift_map.describe(),
                                      "coast_downs_kmh": f.trained_shift_map.coast_down}
        out.append(d)
    return out
