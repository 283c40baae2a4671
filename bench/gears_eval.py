"""Gear tracking figures: keidash.estimate.gears against the OpenXC labels and the virtual truck.

For each labelled OpenXC log (Ford, automatic), with gear ratios taken as the
label medians of (a) the OTHER log (cross-validated, the honest figure) and (b)
the same log: agreement over moving samples labelled with a forward gear, for
the tracker and for nearest-ratio per sample; the same leaving out samples
within 0.75 s of a label change; how moving samples labelled reverse are shown.
Then the virtual truck (hijet-s500p) against truth().gear at 10 Hz and 0.5 Hz.

Run: .venv/bin/python bench/gears_eval.py
"""

from __future__ import annotations

import collections
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from keidash.estimate.gears import (GearModel, TrackerState, agreement, label_ratios, nearest_ratio_gears,  # noqa: E402
                           standing_rpm, track, track_samples)
from keidash.replay import load_log  # noqa: E402

DRIVES = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "drives" / "openxc-ford"
NAMES = ("driving", "driving2")


def pct(pair):
    return f"{100 * pair[0] / pair[1]:6.2f} % ({pair[0]}/{pair[1]})"


def openxc(overrides: dict | None = None) -> None:
    logs = {n: load_log(DRIVES / f"{n}.jsonl") for n in NAMES}
    for name in NAMES:
        other = NAMES[1 - NAMES.index(name)]
        samples = logs[name].samples
        for how, source in (("other log", other), ("same log", name)):
            ratios = label_ratios(logs[source].samples)
            model = GearModel(ratios, idle_rpm=standing_rpm(logs[source].samples), **(overrides or {}))
            shown = track_samples(samples, model)
            near = nearest_ratio_gears(samples, ratios)
            rev = collections.Counter(g for s, g in zip(samples, shown) if s.gear == -1 and s.moving)
            print(f"{name:9s} ratios of {how:9s}: tracker {pct(agreement(samples, shown))}  "
                  f"nearest {pct(agreement(samples, near))} | away from label changes: tracker "
                  f"{pct(agreement(samples, shown, away_from_change_s=0.75))} nearest "
                  f"{pct(agreement(samples, near, away_from_change_s=0.75))} | reverse shown as {dict(rev)}")



def simulate(profile_name: str = "hijet-s500p", seconds: float = 660.0, rate_hz: float = 10.0):
    """Truth of the virtual truck sampled at ``rate_hz`` over a kei-truck day: list of TruckTruth."""
    from keidash.profiles import load_profile
    from keidash.sim.truck import VirtualTruck
    truck = VirtualTruck(load_profile(profile_name))
    out = []
    for _ in range(int(seconds * rate_hz)):
        truck.advance(1.0 / rate_hz)
        out.append(truck.truth())
    return truck, out


def sim_agreement(truths, model: GearModel, every: int = 1) -> dict[str, tuple[int, int]]:
    """Track every ``every``-th truth sample; score moving samples with a gear engaged."""
    state = TrackerState()
    scores = {"all": [0, 0], "clutch engaged": [0, 0], "nearest-ratio all": [0, 0]}
    logs = [math.log(k) for k in model.rpm_per_kmh]
    for i, truth in enumerate(truths):
        if i % every:
            continue
        state = track(state, truth.t, truth.speed_kmh, truth.rpm, model)
        if truth.speed_kmh >= model.moving_kmh and truth.gear > 0:
            for key in ("all",) + (() if truth.clutch_in else ("clutch engaged",)):
                scores[key][0] += state.gear == truth.gear
                scores[key][1] += 1
            x = math.log(max(truth.rpm, 1.0) / truth.speed_kmh)
            nearest = 1 + min(range(len(logs)), key=lambda g: abs(x - logs[g]))
            scores["nearest-ratio all"][0] += nearest == truth.gear
            scores["nearest-ratio all"][1] += 1
    return {k: tuple(v) for k, v in scores.items()}


def virtual_truck(overrides: dict | None = None) -> None:
    from keidash.profiles.engine import shift_limits
    truck, truths = simulate()
    model = GearModel(truck.profile.rpm_per_kmh(), idle_rpm=shift_limits(truck.profile).idle_rpm,
                      **(overrides or {}))
    for label, every in (("10 Hz", 1), ("0.5 Hz", 20)):
        scores = sim_agreement(truths, model, every)
        print(f"virtual truck {label:6s}: " + "  ".join(f"{k} {pct(v)}" for k, v in scores.items()))


def main() -> None:
    openxc()
    virtual_truck()


if __name__ == "__main__":
    main()
