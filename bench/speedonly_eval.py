"""How well gear and rpm follow from road speed alone (keidash.estimate.speedonly), on real logs and virtual drives.

Real logs (tests/data/drives): rpm is hidden and the estimate compared with the recorded rpm:
the share of moving samples (speed >= 4 km/h, rpm recorded) within 10 %, beside

- naive: gear by the EU gear-shift-indicator speeds (1st below 15 km/h, 2nd below 35,
  3rd below 50, 4th below 70, 5th below 90, top above) x that gear's ratio;
- oracle: the true gear x that gear's ratio (OpenXC: the label; carOBD: the gear whose
  ratio x speed is nearest the recorded rpm).

Leave-one-out: ratios, habits and idle rpm for a log come from the OTHER logs of the same
vehicle, through keidash.estimate.drives.learn_truck as keidash eval does (the product
path); the tracker is scored directly (speed_step and rpm_estimate, no needle), this
version beside the previous one (PREVIOUS, loaded from git) in the same run:

- as logged;
- GPS-like: the logged speed resampled to 1 Hz and 5 Hz (linear between fresh values)
  with Gaussian noise of GPS_SIGMA_KMH and no whole-km/h steps (seeded: the same every
  run), the rpm and label held from the log;
- town: the stretches between two stops that stay under TOWN_KMH.

The tests (tests/test_speedonly.py) pin real_logs(), a stand-in path that does not
depend on the ratio learner or the rpm tracker (label medians for OpenXC, peaks of the
rpm/speed density for carOBD; habits from the nearest ratio per sample).

Virtual manual drives (keidash.sim.recorded, hijet-s500p): habits from one drive with rpm
(seed 11, 15 min), scored on another (seed 22, 10 min) of the same route and style,
polled at 0.5, 2 and 10 Hz with whole km/h; the oracle is the nearest ratio.

Virtual truck: the hijet-s500p day with the profile's torque curve and Body mass, a driver
who obeys keidash's cues (closed loop) and a habit driver who ignores them; habits come
from a training day on a different route.

Cost: microseconds per speed_step call over the real logs' fresh speeds, this version and
the previous one, same run.

``--ceiling``: each real log as logged and each virtual manual drive, keidash / oracle beside the best
state per 5 km/h speed bin x slowing / steady / speeding up learned where keidash learns its habits
(the other logs; the training drive), and two fits to the scored drive itself (diagnoses of what its
speed trace carries, not results): the tracker with habits learned from it (real logs), the best
state per cell.

Run: .venv/bin/python bench/speedonly_eval.py [--quick | --sim | --ceiling]
"""

from __future__ import annotations

import argparse
import bisect
import importlib.util
import math
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keidash.estimate.speedonly as speedonly  # noqa: E402
from keidash.estimate.speedonly import (DOWN, UP, Habits, SpeedModel, SpeedOnlyState, learn_habits,  # noqa: E402
                                        rpm_estimate, speed_step)
from keidash.profiles import load_profile  # noqa: E402
from keidash.profiles.body import Body  # noqa: E402
from keidash.profiles.engine import LOWEST_KEI_PEAK_POWER_RPM, ShiftLimits, shift_limits  # noqa: E402
from keidash.replay import DriveLog, load_log  # noqa: E402
from keidash.sim.driver import Leg  # noqa: E402
from keidash.sim.truck import VirtualTruck  # noqa: E402

DRIVES = ROOT / "tests" / "data" / "drives"
ETIOS = tuple(DRIVES / "carobd-etios" / f"{n}.csv" for n in ("drive4", "live1", "long2", "ufpe1", "ufpe7"))
FORD = tuple(DRIVES / "openxc-ford" / f"{n}.jsonl" for n in ("driving", "driving2"))
#: EU gear-shift indicator (Regulation (EU) 65/2012 practice): upper speed of gears 1..5 (km/h)
NAIVE_TOP_KMH = (15.0, 35.0, 50.0, 70.0, 90.0)
WITHIN = 0.10
#: a carOBD sample's rpm/speed within this log distance of a gear's ratio is in that gear
LABEL_TOLERANCE = 0.10
GEARS = 5
#: the speed-only tracker before issue 11's part 3 (the commit that last changed it), compared in the same run
PREVIOUS = "f9174031c16984467212fccafe9168873eb75e17"
#: GPS-like speed: noise (km/h, 1 sigma) and rates (Hz)
GPS_SIGMA_KMH = 0.4
GPS_RATES_HZ = (1.0, 5.0)
#: a town stretch: between two stops, never this fast (km/h)
TOWN_KMH = 50.0


# -- ratios, labels, idle: learned from training logs ---------------------------------------
def label_ratios(logs: list[DriveLog]) -> tuple[float, ...]:
    """Median rpm per km/h of each labelled forward gear (OpenXC)."""
    by_gear = defaultdict(list)
    for log in logs:
        for s in log.samples:
            if s.moving and s.rpm and s.gear and s.gear > 0:
                by_gear[s.gear].append(s.rpm / s.speed_kmh)
    return tuple(statistics.median(by_gear[g]) for g in sorted(by_gear))


def peak_ratios(logs: list[DriveLog], gears: int = GEARS) -> tuple[float, ...]:
    """Stand-in ratio learner for unlabelled logs: density peaks of rpm/speed (log space).

    Steady samples only (two fresh ratios in a row within 6 %, engine off idle); peaks at
    least 0.15 apart in log space holding at least 1 % of the samples. A lowest gear too
    rare to peak (launches are clutch slip) gets the median ratio above the peaks x 1.3.
    """
    xs = []
    for log in logs:
        previous = None
        for s in log.samples:
            if not (s.moving and s.rpm and "rpm" in s.fresh and "speed_kmh" in s.fresh):
                continue
            x = math.log(s.rpm / s.speed_kmh)
            if previous is not None and abs(x - previous) < 0.06 and s.rpm > 1100:
                xs.append(x)
            previous = x
    grid = [2.5 + i * 0.005 for i in range(700)]
    density = [sum(math.exp(-0.5 * ((g - x) / 0.03) ** 2) for x in xs) for g in grid]
    mass = 0.03 * math.sqrt(2 * math.pi) / 0.005  # density of one sample summed over the grid
    peaks = sorted((i for i in range(1, len(grid) - 1) if density[i - 1] <= density[i] > density[i + 1]),
                   key=lambda i: -density[i])
    chosen: list[int] = []
    for i in peaks:
        share = sum(density[j] for j in range(max(0, i - 10), min(len(grid), i + 11))) / mass / len(xs)
        if share >= 0.01 and all(abs(grid[i] - grid[j]) >= 0.15 for j in chosen):
            chosen.append(i)
        if len(chosen) == gears:
            break
    ratios = sorted((math.exp(grid[i]) for i in chosen), reverse=True)
    while len(ratios) < gears:
        above = [s.rpm / s.speed_kmh for log in logs for s in log.samples
                 if s.moving and s.rpm and s.rpm > 1000 and "rpm" in s.fresh
                 and s.rpm / s.speed_kmh > 1.3 * ratios[0]]
        ratios.insert(0, statistics.median(above) if above else 1.5 * ratios[0])
    return tuple(ratios)


def nearest_gear(rpm: float, speed_kmh: float, k: tuple[float, ...]) -> int:
    errors = [abs(math.log(rpm / (ki * speed_kmh))) for ki in k]
    return 1 + min(range(len(k)), key=errors.__getitem__)


def training_rows(log: DriveLog, k: tuple[float, ...]) -> list[tuple[float, float, int]]:
    """(t, speed, gear) at fresh speeds: the label if the log has labels, else rpm/speed nearest a gear."""
    rows = []
    for s in log.samples:
        if "speed_kmh" not in s.fresh or s.speed_kmh is None:
            continue
        if log.has_gear:
            if s.gear is None:
                continue
            gear = s.gear
        elif s.rpm is None:
            continue
        elif s.rpm <= 0 or s.speed_kmh < 1:
            gear = 0
        else:
            g = nearest_gear(s.rpm, s.speed_kmh, k)
            gear = g if abs(math.log(s.rpm / (k[g - 1] * s.speed_kmh))) <= LABEL_TOLERANCE else 0
        rows.append((s.t, s.speed_kmh, gear))
    return rows


def idle_rpm(logs: list[DriveLog]) -> float:
    """Median rpm at standstill over the training logs."""
    return statistics.median(s.rpm for log in logs for s in log.samples
                             if s.speed_kmh == 0 and s.rpm and s.rpm > 300)


@dataclass(frozen=True)
class Scores:
    name: str
    samples: int
    ours: float
    naive: float
    oracle: float

    @property
    def ratio(self) -> float:
        return self.ours / self.oracle if self.oracle else float("nan")


def model_for(log_path: Path, family: tuple[Path, ...], logs: dict[Path, DriveLog]) -> SpeedModel:
    """Ratios, habits and idle for ``log_path`` learned from the other logs of its vehicle."""
    others = [logs[p] for p in family if p != log_path]
    k = label_ratios(others) if others[0].has_gear else peak_ratios(others)
    habits = learn_habits(row for log in others for row in training_rows(log, k))
    idle = idle_rpm(others)
    # no source gives these cars' red line: keidash's default, or the highest rpm seen if higher
    redline = max([LOWEST_KEI_PEAK_POWER_RPM] + [s.rpm for log in others for s in log.samples if s.rpm])
    limits = ShiftLimits(idle, redline, 0.85 * redline, idle + 0.125 * (redline - idle), redline + 1000)
    return SpeedModel(rpm_per_kmh=k, limits=limits, habits=habits)


def within(estimate: float | None, rpm: float) -> bool:
    return estimate is not None and abs(estimate - rpm) <= WITHIN * rpm


def naive_gear(speed_kmh: float, top: int) -> int:
    for gear, limit in enumerate(NAIVE_TOP_KMH, start=1):
        if speed_kmh < limit:
            return min(gear, top)
    return top


def track(log: DriveLog, model: SpeedModel) -> list[SpeedOnlyState]:
    """The speed-only state after each sample (rpm hidden; fresh speeds only, no cues)."""
    state, out = SpeedOnlyState(), []
    for s in log.samples:
        if "speed_kmh" in s.fresh and s.speed_kmh is not None:
            state = speed_step(state, s.t, s.speed_kmh, model)
        out.append(state)
    return out


def score_log(log: DriveLog, model: SpeedModel) -> Scores:
    k = model.rpm_per_kmh
    ours = naive = oracle = n = 0
    for s, state in zip(log.samples, track(log, model)):
        if not s.moving or s.rpm is None:
            continue
        n += 1
        ours += within(rpm_estimate(state, s.speed_kmh, model), s.rpm)
        naive += within(k[naive_gear(s.speed_kmh, len(k)) - 1] * s.speed_kmh, s.rpm)
        if log.has_gear:
            oracle += bool(s.gear and 0 < s.gear <= len(k)) and within(k[s.gear - 1] * s.speed_kmh, s.rpm)
        else:
            oracle += s.rpm > 0 and within(k[nearest_gear(s.rpm, s.speed_kmh, k) - 1] * s.speed_kmh, s.rpm)
    return Scores(log.name.split("/")[-1], n, ours / n, naive / n, oracle / n)


def real_logs(paths: tuple[Path, ...] = ETIOS + FORD) -> list[Scores]:
    logs = {p: load_log(p) for p in ETIOS + FORD}
    out = []
    for path in paths:
        family = ETIOS if path in ETIOS else FORD
        out.append(score_log(logs[path], model_for(path, family, logs)))
    return out


# -- the product path: learn_truck, variants, the previous version -------------------------------
@dataclass(frozen=True)
class Point:
    """One scored instant: the speed the tracker is fed then (None: nothing fresh), the true speed
    (moving or not), the recorded rpm and the gear label, held."""

    t: float
    fed_kmh: float | None
    true_kmh: float | None
    rpm: float | None
    gear: int | None


def log_points(log: DriveLog) -> list[Point]:
    """The log as logged: fresh speeds are fed."""
    return [Point(s.t, s.speed_kmh if "speed_kmh" in s.fresh else None, s.speed_kmh, s.rpm, s.gear)
            for s in log.samples]


def gps_points(log: DriveLog, rate_hz: float, sigma_kmh: float = GPS_SIGMA_KMH) -> list[Point]:
    """GPS-like speed: the logged speed resampled at ``rate_hz`` (linear between fresh values at most
    5 s apart), plus Gaussian noise, never below 0; rpm and label held from the log. Seeded by the
    log's file name."""
    fresh = [(s.t, s.speed_kmh) for s in log.samples if "speed_kmh" in s.fresh and s.speed_kmh is not None]
    times, sample_times = [t for t, _ in fresh], [s.t for s in log.samples]
    rng = random.Random(f"gps:{Path(log.name).name}:{rate_hz}")  # the file name: the same in any checkout
    out, k = [], 0
    while (t := fresh[0][0] + k / rate_hz) <= fresh[-1][0]:
        i = bisect.bisect_right(times, t) - 1
        (t0, v0), (t1, v1) = fresh[i], fresh[min(i + 1, len(fresh) - 1)]
        true = v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t0 < t1 <= t0 + 5.0 else v0
        held = log.samples[bisect.bisect_right(sample_times, t) - 1]
        out.append(Point(t, max(0.0, true + rng.gauss(0.0, sigma_kmh)), true, held.rpm, held.gear))
        k += 1
    return out


def town_mask(points: list[Point], top_kmh: float = TOWN_KMH) -> list[bool]:
    """True for the moving points of stretches between two stops that stay under ``top_kmh``."""
    mask, start, fastest = [False] * len(points), None, 0.0
    for i, p in enumerate(points):
        speed = p.true_kmh or 0.0
        if speed < speedonly.MOVING_KMH:
            if start is not None and fastest < top_kmh:
                mask[start:i] = [True] * (i - start)
            start, fastest = i, 0.0
        else:
            fastest = max(fastest, speed)
    return mask


def score_points(points: list[Point], model, module=speedonly, labelled: bool = False,
                 mask: list[bool] | None = None, name: str = "") -> Scores:
    """Feed the points to ``module``'s tracker; score the moving ones (within ``mask``)."""
    k = model.rpm_per_kmh
    state, fed = module.SpeedOnlyState(), None
    n = ours = naive = oracle = 0
    for i, p in enumerate(points):
        if p.fed_kmh is not None:
            state, fed = module.speed_step(state, p.t, p.fed_kmh, model), p.fed_kmh
        if (mask is not None and not mask[i]) or not p.rpm or (p.true_kmh or 0.0) < speedonly.MOVING_KMH or not fed:
            continue
        n += 1
        ours += within(module.rpm_estimate(state, fed, model), p.rpm)
        naive += within(k[naive_gear(fed, len(k)) - 1] * fed, p.rpm)
        gear = (p.gear if p.gear and 0 < p.gear <= len(k) else None) if labelled else nearest_gear(p.rpm, fed, k)
        oracle += gear is not None and within(k[gear - 1] * fed, p.rpm)
    n = max(n, 1)
    return Scores(name, n, ours / n, naive / n, oracle / n)


def previous_version():
    """keidash.estimate.speedonly as of PREVIOUS (from git), or None where git cannot give it."""
    try:
        source = subprocess.run(["git", "show", f"{PREVIOUS}:keidash/estimate/speedonly.py"], cwd=ROOT,
                                capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    name = "keidash.estimate.speedonly_previous"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    module.__package__ = "keidash.estimate"
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, "speedonly_previous.py", "exec"), module.__dict__)
    return module


@dataclass(frozen=True)
class Vehicle:
    log: DriveLog
    model: SpeedModel  # this version, habits and ratios from the other logs (learn_truck)
    previous: object | None  # the previous version's SpeedModel with its own habits from the same rows


def product_models(previous=None) -> dict[str, Vehicle]:
    """Leave-one-out as keidash eval: learn_truck on the other logs of each log's vehicle."""
    from keidash.estimate import drives
    from keidash.estimate.estimator import config_for
    from keidash.profiles import unknown_profile

    logs = {p: load_log(p) for p in ETIOS + FORD}
    out = {}
    for path in ETIOS + FORD:
        others = [logs[p] for p in (ETIOS if path in ETIOS else FORD) if p != path]
        truck = drives.learn_truck(others, unknown_profile())
        config = config_for(unknown_profile(), {}, ("replay",), truck)
        habits = truck.habits if truck.habits is not None and truck.habits.top_gear == len(truck.ratios) else None
        model = SpeedModel(config.rpm_per_kmh, config.limits, habits=habits, engine=config.engine)
        old = None
        if previous is not None:
            old_habits = previous.learn_habits(drives._gear_rows(others, config))
            old = previous.SpeedModel(config.rpm_per_kmh, config.limits, engine=config.engine,
                                      habits=old_habits if old_habits.top_gear == len(truck.ratios) else None)
        out[path.name] = Vehicle(logs[path], model, old)
    return out


def per_call_us(module, vehicles: dict[str, Vehicle], previous: bool, rounds: int = 3) -> tuple[float, int]:
    """Best of ``rounds``: microseconds per speed_step call over every log's fresh speeds."""
    best, calls = math.inf, 0
    for _ in range(rounds + 1):  # the first round fills the models' caches
        calls, start = 0, time.perf_counter()
        for v in vehicles.values():
            model = v.previous if previous else v.model
            state = module.SpeedOnlyState()
            for s in v.log.samples:
                if "speed_kmh" in s.fresh and s.speed_kmh is not None:
                    state = module.speed_step(state, s.t, s.speed_kmh, model)
                    calls += 1
        best = min(best, time.perf_counter() - start) if _ else best
    return best / calls * 1e6, calls


def report_real(previous) -> None:
    vehicles = product_models(previous)
    names = list(vehicles)
    variants = [("as logged", lambda log: log_points(log), False)]
    variants += [(f"GPS-like {rate:g} Hz", lambda log, r=rate: gps_points(log, r), False) for rate in GPS_RATES_HZ]
    variants += [("town only", lambda log: log_points(log), True)]
    for title, points_of, town in variants:
        print(f"\nreal logs, {title}: keidash / naive / oracle within 10 %; keidash / oracle"
              + ("; previous version / oracle" if previous else ""))
        for name in names:
            v = vehicles[name]
            points = points_of(v.log)
            mask = town_mask(points) if town else None
            s = score_points(points, v.model, speedonly, v.log.has_gear, mask, name)
            if s.samples < 20:
                print(f"  {name:15s} n {s.samples:5d}  (too few to score)")
                continue
            line = f"  {name:15s} n {s.samples:5d}  {s.ours:6.3f} {s.naive:6.3f} {s.oracle:6.3f}  {s.ratio:6.3f}"
            if previous is not None and v.previous is not None:
                old = score_points(points, v.previous, previous, v.log.has_gear, mask, name)
                line += f"  (previous {old.ours:6.3f}, {old.ratio:6.3f})"
            flag = "" if s.ours > s.naive and s.ratio >= 0.85 else "  below goal"
            print(line + flag)
    if previous is not None:
        new_us, calls = per_call_us(speedonly, vehicles, previous=False)
        old_us, _ = per_call_us(previous, vehicles, previous=True)
        print(f"\ncost: {new_us:.1f} us per speed_step call, previous version {old_us:.1f} us "
              f"(ratio {new_us / old_us:.2f}; {calls} calls, best of 3)")


# -- what the speed trace can carry: fitted on the scored log itself (a diagnosis, not a result) ----
def cell_rule(rows: list[tuple[float, float, int]]) -> dict[tuple[int, int], int]:
    """The state (0 clutch in, or a gear) held longest in each cell of 5 km/h speed bin x slowing /
    steady / speeding up, over (t, speed km/h, state) rows read as learn_habits reads them."""
    time: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0])
    recent: tuple[tuple[float, float], ...] = ()
    pending = None  # (t, cell, state): a row's share of time is the gap to the next, as in learn_habits
    for t, v, g in rows:
        if pending is not None:
            cell = time[pending[1]]
            cell.extend([0.0] * (pending[2] + 1 - len(cell)))
            cell[pending[2]] += max(0.0, min(t - pending[0], 3.0))
            pending = None
        accel = speedonly._accel(recent, t, v)
        recent = speedonly._keep(recent, t, v)
        if v >= speedonly.MOVING_KMH and g is not None and g >= 0:
            pending = (t, (speedonly.speed_bin(v), speedonly.accel_class(accel)), g)
    return {c: max(range(len(seconds)), key=seconds.__getitem__) for c, seconds in time.items()}


def cell_ceiling(points: list[Point], model: SpeedModel, labelled: bool,
                 rule: dict[tuple[int, int], int] | None = None) -> tuple[float, float, float | None]:
    """(best, oracle, ruled) over the scored samples, each a share within 10 %. Cells are 5 km/h
    speed bin x slowing / steady / speeding up, the acceleration the tracker itself reads; a state
    is clutch in at idle or a gear (never below idle). best: the state right on most of each cell's
    samples, chosen on the scored log itself (no rule that reads the gear from the speed bin and
    its slope alone, however learned, beats it on that log); ruled: ``rule``'s state per cell
    (learned elsewhere, cell_rule; the tracker's where the rule never saw the cell)."""
    k, idle = model.rpm_per_kmh, model.limits.idle_rpm

    def rpm(g: int, speed: float) -> float:
        return idle if g == 0 or g > len(k) else max(idle, k[g - 1] * speed)
    state, fed = SpeedOnlyState(), None
    cells: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0] * (len(k) + 1))
    n = oracle = ruled = 0
    for p in points:
        if p.fed_kmh is not None:
            state, fed = speed_step(state, p.t, p.fed_kmh, model), p.fed_kmh
        if not p.rpm or (p.true_kmh or 0.0) < speedonly.MOVING_KMH or not fed:
            continue
        n += 1
        cell = (speedonly.speed_bin(fed), speedonly.accel_class(state.accel_ms2))
        for g in range(len(k) + 1):
            cells[cell][g] += within(rpm(g, fed), p.rpm)
        if rule is not None:
            ruled += within(rpm(rule.get(cell, state.gear or 0), fed), p.rpm)
        gear = (p.gear if p.gear and 0 < p.gear <= len(k) else None) if labelled else nearest_gear(p.rpm, fed, k)
        oracle += gear is not None and within(k[gear - 1] * fed, p.rpm)
    n = max(n, 1)
    return sum(max(t) for t in cells.values()) / n, oracle / n, None if rule is None else ruled / n


def report_ceiling() -> None:
    """keidash / oracle beside a rule per cell learned where keidash learns its habits (cell_rule), and
    two fits to the scored drive itself: the tracker with habits learned from it, and cell_ceiling's
    best. The fits are diagnoses of what the speed trace carries, not results. Real logs as logged
    (leave-one-out, as report_real), then the virtual manual drives (as report_virtual)."""
    from keidash.estimate import drives
    from keidash.estimate.estimator import EstimatorConfig, config_for
    from keidash.profiles import unknown_profile
    from keidash.sim.recorded import record, simulate

    vehicles = product_models()
    print("\nreal logs, as logged, / oracle: keidash leave-one-out; the best state per 5 km/h x slowing / steady / "
          "speeding up learned from the other logs; fitted to the scored log itself: the tracker with its own "
          "habits, the best state per cell")
    for path in ETIOS + FORD:
        v = vehicles[path.name]
        points = log_points(v.log)
        s = score_points(points, v.model, speedonly, v.log.has_gear, None, path.name)
        config = config_for(unknown_profile(), {"idle_rpm": v.model.limits.idle_rpm}, ("replay",), None,
                            rpm_per_kmh=v.model.rpm_per_kmh)
        others = [vehicles[p.name].log for p in (ETIOS if path in ETIOS else FORD) if p != path]
        own = SpeedModel(v.model.rpm_per_kmh, v.model.limits, engine=v.model.engine,
                         habits=learn_habits(drives._gear_rows([v.log], config), gears=len(v.model.rpm_per_kmh)))
        self_fit = score_points(points, own, speedonly, v.log.has_gear, None, path.name)
        best, oracle, ruled = cell_ceiling(points, v.model, v.log.has_gear,
                                           cell_rule(list(drives._gear_rows(others, config))))
        print(f"  {path.name:15s} keidash {s.ratio:6.3f}   rule from the others {ruled / oracle:6.3f}   "
              f"own habits {self_fit.ratio:6.3f}   best per cell {best / oracle:6.3f}")
    hijet = load_profile("hijet-s500p")
    k, limits = hijet.rpm_per_kmh(), shift_limits(hijet)
    config = EstimatorConfig(limits, k, hijet.title, engine=hijet.engine)
    print("\nvirtual manual drives (hijet-s500p; habits and rule from seed 11, scored on seed 22), / oracle: "
          "keidash, rule from seed 11, best per cell fitted to seed 22, at " + ", ".join(f"{r:g} Hz" for r in VIRTUAL_RATES_HZ))
    for route, style in VIRTUAL_DRIVES:
        rows = list(drives._gear_rows([record(simulate(route=route, style=style, seconds=900, seed=11),
                                              rpm_hz=5, seed=11)], config))
        model, rule = SpeedModel(k, limits, habits=learn_habits(rows)), cell_rule(rows)
        trace = simulate(route=route, style=style, seconds=600, seed=22)
        cells = []
        for rate in VIRTUAL_RATES_HZ:
            points = log_points(record(trace, rpm_hz=rate, seed=22))
            best, oracle, ruled = cell_ceiling(points, model, False, rule)
            cells.append(f"{score_points(points, model).ratio:.3f} {ruled / oracle:.3f} {best / oracle:.3f}")
        print(f"  {route:4s} {style:8s}  " + "   ".join(cells))


# -- virtual manual drives ----------------------------------------------------------------------
VIRTUAL_DRIVES = tuple((route, style) for route in ("town", "farm") for style in ("everyday", "brisk", "lazy"))
VIRTUAL_RATES_HZ = (0.5, 2.0, 10.0)


def report_virtual(previous) -> None:
    from keidash.estimate import drives
    from keidash.estimate.estimator import EstimatorConfig
    from keidash.sim.recorded import record, simulate

    hijet = load_profile("hijet-s500p")
    k, limits = hijet.rpm_per_kmh(), shift_limits(hijet)
    config = EstimatorConfig(limits, k, hijet.title, engine=hijet.engine)
    print("\nvirtual manual drives (hijet-s500p; habits from seed 11, scored on seed 22): keidash / oracle"
          + (" (previous version)" if previous else "") + " at " + ", ".join(f"{r:g} Hz" for r in VIRTUAL_RATES_HZ))
    for route, style in VIRTUAL_DRIVES:
        train = record(simulate(route=route, style=style, seconds=900, seed=11), rpm_hz=5, seed=11)
        rows = list(drives._gear_rows([train], config))
        model = SpeedModel(k, limits, habits=learn_habits(rows))
        old = previous.SpeedModel(k, limits, habits=previous.learn_habits(rows)) if previous else None
        trace = simulate(route=route, style=style, seconds=600, seed=22)
        cells = []
        for rate in VIRTUAL_RATES_HZ:
            points = log_points(record(trace, rpm_hz=rate, seed=22))
            s = score_points(points, model)
            cell = f"{s.ratio:.3f}"
            if old is not None:
                cell += f" ({score_points(points, old, previous).ratio:.3f})"
            cells.append(cell)
        print(f"  {route:4s} {style:8s}  " + "   ".join(cells))


# -- the virtual truck ------------------------------------------------------------------------
#: a training day on another route (the scored day is KEI_DAY)
TRAINING_DAY: tuple[Leg, ...] = (
    Leg("yard", 0, 0, stop_s=2),
    Leg("lane", 300, 25, stop_s=3),
    Leg("village", 600, 45, stop_s=4),
    Leg("hill road", 500, 30, 0.05, stop_s=3),
    Leg("bypass", 1500, 75),
    Leg("town", 500, 40, stop_s=4),
    Leg("orchard track", 200, 12, 0.04, stop_s=3),
)


def cue_for(gear: int | None, rpm: float | None, previous: str | None, limits: ShiftLimits, top: int,
            speed_kmh: float, margin: float = 250.0) -> str | None:
    """keidash's cue rule (as estimator v1): up at the upshift rpm, down when lugging in 3rd and up."""
    if not gear or rpm is None:
        return None
    if gear < top and (rpm >= limits.upshift_rpm or (previous == UP and rpm > limits.upshift_rpm - margin)):
        return UP
    if gear >= 3 and speed_kmh >= 4.0 and (rpm < limits.lug_rpm or (previous == DOWN and rpm < limits.lug_rpm + margin)):
        return DOWN
    return None


@dataclass(frozen=True)
class SimRun:
    gear_agree: float  # share of moving, clutch-engaged 10 Hz samples with the right gear
    rpm_within: float  # share of moving samples with rpm within 10 %
    shifts: int
    cues: int


def sim_training_habits(obey: bool, legs=TRAINING_DAY, seconds: float = 420.0) -> Habits:
    """Habits of a driver from a day with rpm (the cue shown is computed from the true rpm)."""
    hijet = load_profile("hijet-s500p")
    limits = shift_limits(hijet)
    top = len(hijet.rpm_per_kmh())
    truck = VirtualTruck(hijet, legs=legs, obey_cues=obey)
    rows, cues, cue = [], [], None
    for _ in range(int(seconds * 10)):
        truck.advance(0.1)
        truth = truck.truth()
        rows.append((truth.t, truth.speed_kmh, truth.gear))  # 0 only in neutral: a launch is in 1st
        cue = cue_for(truth.gear, truth.rpm, cue, limits, top, truth.speed_kmh)
        cues.append((truth.t, cue))
        truck.show_cue(cue)
    return learn_habits(rows, cues=cues)


def sim_day(obey: bool, habits: Habits | None, physics: bool = True, seconds: float = 600.0,
            rate_hz: float = 10.0) -> SimRun:
    """The KEI_DAY through the speed-only tracker, its cues shown to the driver (closed loop)."""
    hijet = load_profile("hijet-s500p")
    limits = shift_limits(hijet)
    model = SpeedModel(hijet.rpm_per_kmh(), limits, habits=habits,
                       engine=hijet.engine if physics else None, mass_kg=Body().mass_kg if physics else None)
    truck = VirtualTruck(hijet, obey_cues=obey)
    state, cue = SpeedOnlyState(), None
    agree = engaged = good = moving = cues = 0
    for _ in range(int(seconds * rate_hz)):
        truck.advance(1.0 / rate_hz)
        truth = truck.truth()
        state = speed_step(state, truth.t, truth.speed_kmh, model, cue)
        rpm = rpm_estimate(state, truth.speed_kmh, model)
        new_cue = cue_for(state.gear, rpm, cue, limits, model.top_gear, truth.speed_kmh)
        cues += new_cue is not None and new_cue != cue
        cue = new_cue
        truck.show_cue(cue)
        if truth.speed_kmh >= 4.0:
            moving += 1
            good += within(rpm, truth.rpm)
            if not truth.clutch_in:
                engaged += 1
                agree += state.gear == truth.gear
    return SimRun(agree / engaged, good / moving, truck.driver.s.shifts, cues)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="real logs only (the tests' stand-in path)")
    parser.add_argument("--sim", action="store_true", help="virtual truck only")
    parser.add_argument("--ceiling", action="store_true",
                        help="keidash beside a per-cell rule and fits to the scored drive itself (what the speed carries)")
    args = parser.parse_args()
    if args.ceiling:
        report_ceiling()
        return
    if not args.sim:
        print("real logs, the tests' stand-in path (bench ratios and labels, no learn_truck)")
        print(f"  {'log':15s} {'samples':>7s} {'ours':>6s} {'naive':>6s} {'oracle':>6s} {'ours/oracle':>11s}")
        for s in real_logs():
            print(f"  {s.name:15s} {s.samples:7d} {s.ours:6.3f} {s.naive:6.3f} {s.oracle:6.3f} {s.ratio:11.3f}")
    if args.quick:
        return
    previous = previous_version()
    if previous is None:
        print("\n(the previous version is not available from git: no comparison, no cost ratio)")
    if not args.sim:
        report_real(previous)
        report_virtual(previous)
    print("\nvirtual truck, hijet-s500p, KEI_DAY 600 s at 10 Hz (habits from TRAINING_DAY)")
    for obey in (True, False):
        habits = sim_training_habits(obey)
        for physics in (True, False):
            for use_habits in (True, False):
                run = sim_day(obey, habits if use_habits else None, physics)
                print(f"  driver {'obeys cues  ' if obey else 'habit, deaf '} physics {'on ' if physics else 'off'}"
                      f" habits {'on ' if use_habits else 'off'} (obedience {habits.obedience}):"
                      f" gear {run.gear_agree:.3f}, rpm within 10 % {run.rpm_within:.3f},"
                      f" {run.shifts} shifts, {run.cues} cues")


if __name__ == "__main__":
    main()
