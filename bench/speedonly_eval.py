"""How well gear and rpm follow from road speed alone (keidash.estimate.speedonly), on real logs and the virtual truck.

Real logs: rpm is hidden and the estimate compared with the recorded rpm: the share of
moving samples (speed >= 4 km/h, rpm recorded) within 10 %, beside

- naive: gear by the EU gear-shift-indicator speeds (1st below 15 km/h, 2nd below 35,
  3rd below 50, 4th below 70, 5th below 90, top above) x that gear's ratio;
- oracle: the true gear x that gear's ratio (OpenXC: the label; carOBD: the gear whose
  ratio x speed is nearest the recorded rpm).

Leave-one-out: ratios, habits and idle rpm for a log come from the OTHER logs of the
same vehicle. Ratios here are a stand-in learner (label medians for OpenXC, peaks of the
rpm/speed density for carOBD) until the real ratio learner is plugged in.

Virtual truck: the hijet-s500p day with the profile's torque curve and Body mass, a driver
who obeys keidash's cues (closed loop) and a habit driver who ignores them; habits come
from a training day on a different route.

Run: .venv/bin/python bench/speedonly_eval.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
    parser.add_argument("--quick", action="store_true", help="real logs only")
    parser.add_argument("--sim", action="store_true", help="virtual truck only")
    args = parser.parse_args()
    print(f"{'log':16s} {'samples':>7s} {'ours':>6s} {'naive':>6s} {'oracle':>6s} {'ours/oracle':>11s}")
    for s in ([] if args.sim else real_logs()):
        flag = "" if s.ratio >= 0.9 else f"  MISSED by {0.9 - s.ratio:.3f}"
        print(f"{s.name:16s} {s.samples:7d} {s.ours:6.3f} {s.naive:6.3f} {s.oracle:6.3f} {s.ratio:11.3f}{flag}")
    if args.quick:
        return
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
