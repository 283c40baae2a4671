"""The estimator's figures (issues 4 and 11), each against its goal; exits 1 when a goal is missed.

1. Ratio learning on the shared real drives (tests/data/drives): every Etios gear found from
   the five carOBD logs together; each OpenXC gear within 2 % of its label median. Beside it, per
   OpenXC gear, the labels read three ways (median from 4 km/h, median from 6 km/h, mode; how many
   samples crawl under 6 km/h, and their rpm per km/h): how far "the gear's ratio" moves behind
   a torque converter depending on how it is read.
2. Gear with rpm, against gear labels over moving samples labelled with a forward gear, beside
   nearest-ratio per sample with the same ratios, measured by the same code:
   - the OpenXC Ford (an automatic: the converter model), ratios learned from the other log;
     goal >= 93 % and never below nearest ratio;
   - the virtual truck's manual drives (keidash.sim.recorded: 3 driver styles x 3 routes x 2 seeds,
     rpm and speed polled in turn at 1, 5 and 10 Hz, the lever sensor's gear as label), the
     profile's ratios; goal >= 98 % of moving samples and, per rate, never below nearest ratio.
3. Live learning from nothing known: share of moving labelled samples with a wrong gear shown
   (goal <= 2 % on every drive) and with a gear shown (goal >= half of a 7-minute mixed drive), on
   the Ford logs and (part ``live``) on the virtual truck's 7-minute drives, 3 styles x 3 routes x
   2 seeds at 1, 5 and 10 Hz, with the Hijet's profile (its gear count, no ratios); the mixed
   drives are the kei-day route.
   Part ``gps``: 6 such drives (town and kei-day) whose speed is a GPS's measured 0.7 s before its
   stamp (OBD rpm at 5 Hz), and the same 6 with a coil tach's rpm at 10 Hz and the GPS 0.3 s late:
   the lag found, the tracker (profile's ratios) not below nearest ratio, live learning.
   Part ``car``: a made-up car with a close-ratio 6-speed (tests/data/profiles/close-ratio-6mt.toml,
   two of its steps shorter than one of a kei truck's), 3 styles x 3 routes at 10 and 5 Hz: the
   tracker with its ratios (>= 98 %, not below nearest ratio) and live learning with its gear count
   (the goals above): how what was tuned on kei trucks holds on a car's gearbox.
   Part ``count``: the gear count wrong or absent, the same goals at 10, 5 and 1 Hz: the 2WD Hijet
   learned with a profile of 4 gears (3 styles x town and kei-day; the wrong-gear goal), and every
   style x route x seed written as a logger writes a CSV and learned with no count, as ``keidash
   eval`` learns a folder without a vehicle.toml (what held-out logs get).
   Part ``heldout``: each virtual drive of the Hijet and of the close-ratio car (3 styles x 3 routes,
   seeds 0 and 1 (only 0 until the nineteenth session), 5, 2 and 1 Hz) written as a logger writes a CSV,
   alone in a folder with no vehicle.toml, scored by ``keidash eval`` (keidash.estimate.evaluate): its
   ratios learned from the log itself with no gear count, and with the count (``--transmission 5MT`` /
   ``6MT``), the tracker against the gear sensor beside nearest ratio with the same ratios; goals >= 98 %
   of each vehicle's moving samples and never below nearest ratio on a drive. The same drives at 2 and 1
   Hz written with rpm and speed on one row (a phone app's CSV: ``keidash.sim.recorded.write_one_row_csv``),
   scored the same two ways (with the count only until the twentieth session): >= 98 % and never below
   nearest ratio (until the seventeenth session only the second: a drive numbered one off all through, 2 %,
   was level with nearest ratio and passed).
4. Speed only: rpm hidden, share of moving samples within 10 % of the recorded rpm, beside a
   naive estimator (EU gear-shift-indicator speeds) and an oracle that knows the gear;
   goal: keidash at least 85 % of the oracle's share and above the naive bands on every log
   (leave-one-out training).
5. The needle on the virtual truck (bench/needle.py's 5 Hz noisy, late OBD source at 60 fps):
   keidash.estimate.needle alone (bench/needle.py), and the whole estimator fed the same readings;
   goal: added lag on ramps at most 100 ms, noise below sample-and-hold.
6. Cost: CPU time per reading of estimator.step + advise over a real log (and over a virtual
   drive whose rpm and speed are polled in turn at 5 Hz, as OBD reads them), against a bare
   nearest-ratio classifier per reading (estimator v1's gear rule) in the same run.

Run: ``.venv/bin/python bench/estimator.py [--json PATH] [--only PART ...]`` (a few minutes; ``--only``
runs one part, e.g. ``--only virtual``, and judges only its goals).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from keidash.estimate.estimator import EstimatorState, advise, config_for, step  # noqa: E402
from keidash.estimate.evaluate import evaluate, label_medians  # noqa: E402
from keidash.estimate.learn import learn_from_logs  # noqa: E402
from keidash.profiles import load_profile, unknown_profile  # noqa: E402
from keidash.readings import RPM, SPEED, Reading  # noqa: E402
from keidash.replay import load_log, readings_from_log  # noqa: E402

DRIVES = ROOT / "tests" / "data" / "drives"
VEHICLES = ("carobd-etios", "openxc-ford")
GOAL_RATIO_PCT = 2.0
GOAL_GEAR_AGREE_AUTOMATIC = 0.93
GOAL_GEAR_AGREE_MANUAL = 0.98
GOAL_OF_ORACLE = 0.85
GOAL_LEARNING_WRONG = 0.02
GOAL_LEARNING_SHOWN = 0.5
VIRTUAL_STYLES = ("everyday", "brisk", "lazy")
VIRTUAL_ROUTES = ("town", "farm", "kei-day")
VIRTUAL_SEEDS = (0, 1)
VIRTUAL_RATES_HZ = (10, 5, 3, 1)  # OBD polled 3 times a second: a slow K-line ECU, or more PIDs
LIVE_SECONDS = 420.0  # "a gear shown on at least half of a 7-minute mixed drive"
GOAL_LAG_MS = 100.0


def learning() -> dict:
    etios = [load_log(str(p)) for p in sorted((DRIVES / "carobd-etios").glob("*.csv"))]
    together = learn_from_logs(etios)
    out = {"etios_all": {"found": together.found, "rpm_per_kmh": [g.rpm_per_kmh for g in together.gears],
                         "confidence": [g.confidence for g in together.gears]}}
    worst = 0.0
    for path in sorted((DRIVES / "openxc-ford").glob("*.jsonl")):
        log = load_log(str(path))
        found = learn_from_logs([log], gears=5)
        medians = label_medians(log, 5)
        errors = [100 * (g.rpm_per_kmh - m) / m if g.rpm_per_kmh and m else math.inf
                  for g, m in zip(found.gears, medians)]
        out[path.name] = {"rpm_per_kmh": [g.rpm_per_kmh for g in found.gears], "label_medians": medians,
                          "error_pct": [round(e, 2) for e in errors], "references": label_references(log, 5)}
        worst = max(worst, max(abs(e) for e in errors))
    out["goals"] = {"all five Etios gears found": together.found == 5,
                    f"every OpenXC gear within {GOAL_RATIO_PCT:g} % (worst {worst:.1f} %)": worst <= GOAL_RATIO_PCT}
    return out


def label_references(log, gears: int) -> list[dict]:
    """Per labelled gear, three readings of "its ratio" from the labels, to show how far they spread
    behind a torque converter: the median of the moving samples (>= 4 km/h, label_medians), the
    median from 6 km/h (the learner takes no ratio below: 1 km/h is 17 % of 6), and the mode (Gaussian
    smoothing of 1.2 % as the learner's histogram, 0.2 % steps): the converter's slip and the commanded
    gear's lead sit on either side of it."""
    out = []
    for gear in range(1, gears + 1):
        pairs = [(s.speed_kmh, s.rpm / s.speed_kmh) for s in log.samples if s.moving and s.rpm and s.gear == gear]
        ratios = [r for _, r in pairs]
        from6 = [r for speed, r in pairs if speed >= 6]
        if not from6:
            out.append({})
            continue
        xs = [math.log(r) for r in from6]
        middle = sorted(xs)[len(xs) // 2]
        grid = [middle + 0.002 * i for i in range(-150, 151)]
        mode = max(grid, key=lambda c: sum(math.exp(-0.5 * ((x - c) / 0.012) ** 2) for x in xs))
        crawl = [r for speed, r in pairs if speed < 6]
        out.append({"median": round(statistics.median(ratios), 1), "median_from_6_kmh": round(
            statistics.median(from6), 1), "mode": round(math.exp(mode), 1), "samples": len(ratios),
            "under_6_kmh": len(crawl), "under_6_kmh_range": [round(min(crawl)), round(max(crawl))] if crawl else None})
    return out


def logs_figures() -> dict:
    figures = evaluate([str(DRIVES / v) for v in VEHICLES])
    out, goals = {}, {}
    for f in figures:
        out[f.name] = {"gear_agree": f.gear_agree, "gear_agree_nearest": f.gear_agree_nearest,
                       "gear_misses": f.gear_misses, "gear_misses_away": f.gear_misses_away,
                       "shift_map": None if f.trained_shift_map is None else {
                           "lines": f.trained_shift_map.describe(),
                           "coast_downs_kmh": f.trained_shift_map.coast_down},
                       "speed_only": f.speed_only, "naive": f.speed_only_naive, "oracle": f.speed_only_oracle,
                       "of_oracle": f.of_oracle, "trained_ratios": f.trained_ratios, "notes": f.notes,
                       "learning_shown": f.learning_shown, "learning_wrong": f.learning_wrong}
        if f.gear_agree is not None:
            goals[f"{f.name}: gear with rpm {100 * f.gear_agree:.1f} % >= {100 * GOAL_GEAR_AGREE_AUTOMATIC:g} % "
                  f"({f.gearbox})"] = f.gear_agree >= GOAL_GEAR_AGREE_AUTOMATIC
            goals[f"{f.name}: gear with rpm {100 * f.gear_agree:.1f} % not below nearest ratio "
                  f"{100 * f.gear_agree_nearest:.1f} %"] = f.gear_agree >= f.gear_agree_nearest
        if f.learning_wrong is not None:
            goals[f"{f.name}: live learning shows a wrong gear on {100 * f.learning_wrong:.1f} % <= "
                  f"{100 * GOAL_LEARNING_WRONG:g} %"] = f.learning_wrong <= GOAL_LEARNING_WRONG
        if f.speed_only is not None and f.speed_only_naive is not None:
            goals[f"{f.name}: speed only {100 * f.speed_only:.1f} % above the naive bands "
                  f"{100 * f.speed_only_naive:.1f} %"] = f.speed_only > f.speed_only_naive
        if f.of_oracle is not None:
            goals[f"{f.name}: speed only {100 * f.of_oracle:.1f} % of the oracle >= {100 * GOAL_OF_ORACLE:g} %"] = (
                f.of_oracle >= GOAL_OF_ORACLE)
        else:
            goals[f"{f.name}: speed only measured"] = False
    out["goals"] = goals
    return out


def virtual_figures() -> dict:
    """The tracker on the virtual truck's manual drives, and live learning on its kei-day drive."""
    from keidash.estimate.drives import estimate_log
    from keidash.estimate.gears import agreement, moved_unseen, nearest_ratio_gears
    from keidash.sim.recorded import record, simulate

    hijet = load_profile("hijet-s500p")
    ratios = hijet.rpm_per_kmh()
    config = config_for(hijet, {}, ("obd",))  # the profile's ratios, its 5MT: the manual's model
    per_rate, drives = {}, []
    for style in VIRTUAL_STYLES:
        for route in VIRTUAL_ROUTES:
            for seed in VIRTUAL_SEEDS:
                trace = simulate("hijet-s500p", route, style, 600.0, seed)
                for hz in VIRTUAL_RATES_HZ:
                    log = record(trace, rpm_hz=hz, seed=seed)
                    shown = [row.gear_est for row in estimate_log(log, config)]
                    ours, counted = agreement(log.samples, shown)
                    near, _ = agreement(log.samples, nearest_ratio_gears(log.samples, ratios))
                    moved, _ = moved_unseen(log.samples)
                    tally = per_rate.setdefault(hz, [0, 0, 0, 0])
                    tally[0] += ours
                    tally[1] += near
                    tally[2] += counted
                    tally[3] += moved
                    drives.append({"style": style, "route": route, "seed": seed, "hz": hz,
                                   "tracker": round(ours / counted, 4), "nearest": round(near / counted, 4)})
    # the ceiling: the lever moved since the last rpm reading, which no rpm-based tracker can know yet
    rates = {hz: {"tracker": round(a / n, 4), "nearest": round(b / n, 4), "samples": n,
                  "ceiling": round(1.0 - m / n, 4)} for hz, (a, b, n, m) in per_rate.items()}
    below = [d for d in drives if d["tracker"] < d["nearest"]]
    goals = {}
    for hz, f in rates.items():
        goals[f"virtual manual drives at {hz} Hz: gear with rpm {100 * f['tracker']:.1f} % not below nearest "
              f"ratio {100 * f['nearest']:.1f} %"] = f["tracker"] >= f["nearest"]
        goals[f"virtual manual drives at {hz} Hz: gear with rpm {100 * f['tracker']:.1f} % >= "
              f"{100 * GOAL_GEAR_AGREE_MANUAL:g} % (the lever moved between rpm readings on "
              f"{100 * (1 - f['ceiling']):.1f} %: no rpm-based tracker exceeds {100 * f['ceiling']:.1f} %)"] = (
            f["tracker"] >= GOAL_GEAR_AGREE_MANUAL)
    return {"rates": rates, "drives_below_nearest": below, "drives": len(drives), "goals": goals}


def _live_drive(job: tuple[str, str, int, int]) -> dict:
    """One virtual drive learned live from nothing known (a worker's job)."""
    from keidash.sim.recorded import record, simulate
    style, route, seed, hz = job
    hijet = load_profile("hijet-s500p")
    config = config_for(replace(hijet, gear_ratios=(), final_drive=None), {}, ("obd",))
    log = record(simulate("hijet-s500p", route, style, LIVE_SECONDS, seed), rpm_hz=hz, seed=seed)
    return {"style": style, "route": route, "seed": seed, "hz": hz, **_learning_shares(log, config)}


def _learning_shares(log, config) -> dict:
    """Live learning over a drive with gear labels: its moving labelled samples (``samples``), the share
    with a gear shown and the share with a wrong one, and the gears driven."""
    from keidash.estimate.drives import estimate_log
    counted = [(s, r) for s, r in zip(log.samples, estimate_log(log, config))
               if s.moving and s.rpm and s.gear and s.gear > 0]
    return {"samples": len(counted), "gears_driven": sorted({s.gear for s, _ in counted}),
            "shown": round(sum(r.gear_est > 0 for _, r in counted) / len(counted), 4),
            "wrong": round(sum(r.gear_est > 0 and r.gear_est != s.gear for s, r in counted) / len(counted), 4)}


def _learning_goals(wrong_what: str, shown_what: str | None, at: list[dict]) -> dict:
    """The live-learning goals over the drives ``at`` (one rate): a wrong gear on at most
    GOAL_LEARNING_WRONG of every drive and, unless ``shown_what`` is None, a gear shown on
    GOAL_LEARNING_SHOWN of every kei-day drive."""
    worst = max(at, key=lambda d: d["wrong"])
    goals = {f"{wrong_what}: a wrong gear on at most {100 * worst['wrong']:.1f} % of a drive ({worst['style']} "
             f"{worst['route']} seed {worst['seed']}) <= {100 * GOAL_LEARNING_WRONG:g} %":
             worst["wrong"] <= GOAL_LEARNING_WRONG}
    if shown_what is not None:
        mixed = [d for d in at if d["route"] == "kei-day"]
        short = [d for d in mixed if d["shown"] < GOAL_LEARNING_SHOWN]
        goals[f"{shown_what}: a gear shown on at least {100 * GOAL_LEARNING_SHOWN:g} % on {len(mixed) - len(short)} "
              f"of {len(mixed)} (least {100 * min(d['shown'] for d in mixed):.1f} %)"] = not short
    return goals


def live_figures() -> dict:
    """Live learning from nothing known on the virtual truck's drives: the Hijet's profile with its
    gear count and no ratios, 7 minutes of each style x route x seed at each poll rate."""
    from multiprocessing import Pool
    jobs = [(style, route, seed, hz) for style in VIRTUAL_STYLES for route in VIRTUAL_ROUTES
            for seed in VIRTUAL_SEEDS for hz in VIRTUAL_RATES_HZ]
    with Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        drives = pool.map(_live_drive, jobs)
    goals = {}
    for hz in VIRTUAL_RATES_HZ:
        goals.update(_learning_goals(f"live learning, virtual drives at {hz} Hz",
                                     f"live learning, virtual 7-minute mixed (kei-day) drives at {hz} Hz",
                                     [d for d in drives if d["hz"] == hz]))
    return {"drives": drives, "goals": goals}


#: the GPS drives: rpm from OBD at 5 Hz, speed from a GPS at 5 Hz measured this long before its stamp ...
GPS_LAG_S = 0.7
GPS_ROUTES = ("town", "kei-day")
#: ... a coil tach's rpm at 10 Hz with a 5 Hz GPS this late (a truck with no OBD) ...
TACH_GPS_LAG_S = 0.3
#: ... and, the GPS at its default 1 Hz on time, beside the tach: (style, route) of those drives
SLOW_GPS_DRIVES = (("everyday", "town"), ("brisk", "town"), ("everyday", "kei-day"))
#: the rpm as the virtual logger records it is measured 0.05-0.15 s before its stamp (keidash.sim.recorded)
RPM_DELAY_S = 0.1
#: how the estimator is told of the speed's lag: paired as stamped, read off the drive, known
LAG_MODES = {"as stamped": 0.0, "found": None, "known": "known"}


def _gps_drive(job: tuple[str, str, float, float, float]) -> dict:
    """One virtual drive whose speed is a late GPS's, with the lag taken three ways (LAG_MODES): the
    profile's ratios against nearest ratio, then learned live."""
    from keidash.estimate.drives import _dashes
    from keidash.estimate.gears import agreement, nearest_ratio_gears
    from keidash.sim.recorded import record, simulate
    style, route, rpm_hz, gps_hz, lag_s = job
    hijet = load_profile("hijet-s500p")
    log = record(simulate("hijet-s500p", route, style, LIVE_SECONDS, 0), rpm_hz=rpm_hz, speed_hz=gps_hz, seed=0,
                 gps_lag_s=lag_s)
    near, counted = agreement(log.samples, nearest_ratio_gears(log.samples, hijet.rpm_per_kmh()))
    out = {"style": style, "route": route, "rpm_hz": rpm_hz, "gps_hz": gps_hz, "gps_lag_s": lag_s,
           "samples": counted, "nearest": near}
    for mode, told in LAG_MODES.items():
        told = round(lag_s - RPM_DELAY_S, 2) if told == "known" else told
        config = replace(config_for(hijet, {}, ("obd",)), speed_lag_s=told)
        found_at, lag, shown = None, 0.0, []
        for sample, state, dash in _dashes(log, config):
            if state.lag_s and found_at is None:
                found_at = round(sample.t)
            lag = state.lag_s
            shown.append(-1 if dash.gear is None else dash.gear)
        live = replace(config_for(replace(hijet, gear_ratios=(), final_drive=None), {}, ("obd",)), speed_lag_s=told)
        scored, numbered = [], ()
        for sample, state, dash in _dashes(log, live):
            numbered = state.ratios  # the gears live learning numbers the dash by, at the drive's end
            if sample.moving and sample.rpm and sample.gear and sample.gear > 0:
                scored.append((sample.gear, -1 if dash.gear is None else dash.gear))
        out[mode] = {"tracker": agreement(log.samples, shown)[0], "lag_s": lag, "lag_found_at_s": found_at,
                     "shown": round(sum(shown > 0 for _, shown in scored) / len(scored), 4),
                     "wrong": round(sum(shown > 0 and shown != gear for gear, shown in scored) / len(scored), 4),
                     "learned": [round(k, 1) for k in numbered]}
    return out


def gps_figures() -> dict:
    """The virtual truck's 7-minute town and kei-day drives (3 styles, seed 0) with the speed from a GPS
    measured GPS_LAG_S before its stamp beside OBD rpm, and TACH_GPS_LAG_S beside a coil tach's; and a
    1 Hz GPS on time beside the tach. Each with the lag paired as stamped, found (keidash.estimate.lag)
    and known: the tracker with the profile's ratios against nearest ratio, and live learning."""
    from multiprocessing import Pool
    sets = {"OBD rpm 5 Hz, GPS speed 5 Hz 0.7 s late": [(st, r, 5.0, 5.0, GPS_LAG_S) for st in VIRTUAL_STYLES
                                                         for r in GPS_ROUTES],
            "tach rpm 10 Hz, GPS speed 5 Hz 0.3 s late": [(st, r, 10.0, 5.0, TACH_GPS_LAG_S) for st in VIRTUAL_STYLES
                                                           for r in GPS_ROUTES],
            "tach rpm 10 Hz, GPS speed 1 Hz on time": [(st, r, 10.0, 1.0, 0.0) for st, r in SLOW_GPS_DRIVES]}
    jobs = [job for at in sets.values() for job in at]
    with Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        drives = dict(zip(jobs, pool.map(_gps_drive, jobs)))
    goals, figures = {}, {}
    for what, at in sets.items():
        runs = [drives[job] for job in at]
        near, counted = sum(d["nearest"] for d in runs), sum(d["samples"] for d in runs)
        figures[what] = {"nearest": round(near / counted, 4), "drives": runs}
        for mode in LAG_MODES:
            figures[what][mode] = {"tracker": round(sum(d[mode]["tracker"] for d in runs) / counted, 4),
                                   "shown": round(statistics.mean(d[mode]["shown"] for d in runs), 4),
                                   "wrong": max(d[mode]["wrong"] for d in runs)}
        if at[0][4] == 0.0:
            continue  # on time: no lag to find; the figures are for the record
        found = figures[what]["found"]
        goals[f"{what}: gear with rpm {100 * found['tracker']:.1f} % not below nearest ratio "
              f"{100 * near / counted:.1f} %"] = found["tracker"] * counted >= near
        goals[f"{what}: live learning shows a wrong gear on at most {100 * found['wrong']:.1f} % of a drive <= "
              f"{100 * GOAL_LEARNING_WRONG:g} %"] = found["wrong"] <= GOAL_LEARNING_WRONG
    return {"sets": figures, "goals": goals}


def needle_figures(seconds: float = 600.0, seed: int = 1) -> dict:
    import needle as bench_needle  # bench/needle.py

    alone = bench_needle.measure(seconds=seconds, seed=seed)
    # the same truck and readings through the whole estimator: its own gear tracker resets the needle
    profile = load_profile(bench_needle.PROFILE)
    truth = bench_needle.run_truck(seconds)
    readings = bench_needle.obd_readings(truth, random.Random(seed))
    config = config_for(profile, {}, ("obd",))
    by_arrival = sorted(readings, key=lambda r: r.received)
    state, needle, j = EstimatorState(), [], 0
    for k in range(int(truth.t[-1] * bench_needle.FPS)):
        t = k / bench_needle.FPS
        arrived = []
        while j < len(by_arrival) and by_arrival[j].received <= t:
            arrived.append(by_arrival[j])
            j += 1
        for r in sorted(arrived, key=lambda r: r.t):
            speed = round(truth.speed_kmh[truth.index(r.t)])  # in the same reply, whole km/h
            state = step(state, Reading(r.t, SPEED, speed, "obd", 0.6), config)
            state = step(state, Reading(r.t, RPM, r.rpm, "obd", 0.6), config)
        needle.append(advise(state, t, config).rpm)
    whole = bench_needle.metrics(truth, needle)
    hold = alone["figures"]["hold"]
    goals = {
        f"needle lag on ramps {alone['figures']['filter']['lag_ramp_ms']:.0f} ms <= {GOAL_LAG_MS:.0f} ms":
            alone["figures"]["filter"]["lag_ramp_ms"] <= GOAL_LAG_MS,
        f"estimator needle lag on ramps {whole['lag_ramp_ms']:.0f} ms <= {GOAL_LAG_MS:.0f} ms":
            whole["lag_ramp_ms"] <= GOAL_LAG_MS,
        "needle noise below sample-and-hold": alone["figures"]["filter"]["noise_rpm"] < hold["noise_rpm"],
        "estimator needle noise below sample-and-hold": whole["noise_rpm"] < hold["noise_rpm"],
    }
    return {"source": alone["source"], "hold": hold, "filter": alone["figures"]["filter"],
            "filter_no_reset": alone["figures"]["filter_no_reset"], "estimator": whole, "goals": goals}


def cost(repeats: int = 5) -> dict:
    log = load_log(str(DRIVES / "openxc-ford" / "driving.jsonl"))
    out = _cost(readings_from_log(log), config_for(unknown_profile(), {}, ("replay",),
                                                    rpm_per_kmh=learn_from_logs([log]).rpm_per_kmh()), repeats)
    # rpm and speed polled in turn (5 Hz each): every rpm reading is judged twice (gears.follow)
    from keidash.sim.recorded import record, simulate
    polled = record(simulate("hijet-s500p", "town", "everyday", 600.0, 0), rpm_hz=5, seed=0)
    config = config_for(load_profile("hijet-s500p"), {}, ("replay",))
    out["polled"] = _cost(readings_from_log(polled), config, repeats)
    # the same with the speed's lag told (0: paired as stamped), so none is read off the drive (lag.py)
    out["polled_lag_told"] = _cost(readings_from_log(polled), replace(config, speed_lag_s=0.0), repeats)
    return out


def _cost(readings, config, repeats: int) -> dict:
    ratios = config.rpm_per_kmh

    def run_estimator():
        state = EstimatorState()
        for r in readings:
            state = step(state, r, config)
            advise(state, r.t, config)

    def run_nearest():  # estimator v1's rule: the nearest ratio in log space, per reading
        logs = [math.log(k) for k in ratios]
        rpm = speed = None
        for r in readings:
            if r.channel == RPM:
                rpm = r.value
            else:
                speed = r.value
            if rpm and speed and speed >= 4:
                x = math.log(rpm / speed)
                min(range(len(logs)), key=lambda i: abs(x - logs[i]))

    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        return min(times) / len(readings) * 1e6

    baseline, ours = best(run_nearest), best(run_estimator)
    return {"readings": len(readings), "nearest_us": round(baseline, 2), "estimator_us": round(ours, 1),
            "ratio": round(ours / baseline, 1),
            "share_of_core_at_100_readings_per_s": round(ours * 100 / 1e6, 4)}


#: a made-up car with a close-ratio 6-speed (tests/data/profiles: no real vehicle's numbers), a car's body:
#: how the estimator, tuned on kei trucks' wide steps, holds where two steps are shorter than one of a kei's
CAR_PROFILE = ROOT / "tests" / "data" / "profiles" / "close-ratio-6mt.toml"
CAR_BODY = dict(mass_kg=1350.0, drag_area_m2=0.65, clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15)


def _vehicle_trace(vehicle: str, route: str, style: str, seed: int):
    """A LIVE_SECONDS virtual drive of the Hijet (``hijet-s500p``) or, by any other name, the close-ratio car."""
    from keidash.profiles.body import Body
    from keidash.sim.recorded import simulate
    if vehicle == "hijet-s500p":
        return simulate(vehicle, route, style, LIVE_SECONDS, seed)
    return simulate(str(CAR_PROFILE), route, style, LIVE_SECONDS, seed, body=Body(**CAR_BODY))


def _no_count_label(vehicle: str) -> str:
    """The no-count CSV logs' name in goals and figures: the Hijet's unnamed (as before the car joined)."""
    return "no gear count, CSV logs" if vehicle == "hijet-s500p" else f"no gear count, {vehicle} CSV logs"
CAR_RATES_HZ = (10, 5)


def _car_drive(job: tuple[str, str, int]) -> list[dict]:
    """One virtual drive of the close-ratio car at each CAR_RATES_HZ: the tracker with the profile's
    ratios against nearest ratio, and live learning with its gear count and no ratios (a worker's job)."""
    from keidash.estimate.drives import estimate_log
    from keidash.estimate.gears import agreement, moved_unseen, nearest_ratio_gears
    from keidash.sim.recorded import record
    style, route, seed = job
    car = load_profile(str(CAR_PROFILE))
    known = config_for(car, {}, ("obd",))
    live = config_for(replace(car, gear_ratios=(), final_drive=None), {}, ("obd",))
    trace = _vehicle_trace("close-ratio car", route, style, seed)
    out = []
    for hz in CAR_RATES_HZ:
        log = record(trace, rpm_hz=hz, seed=seed)
        ours, counted = agreement(log.samples, [row.gear_est for row in estimate_log(log, known)])
        near, _ = agreement(log.samples, nearest_ratio_gears(log.samples, car.rpm_per_kmh()))
        moved, _ = moved_unseen(log.samples)
        out.append({"style": style, "route": route, "seed": seed, "hz": hz, **_learning_shares(log, live),
                    "samples": counted, "tracker": ours, "nearest": near, "moved_unseen": moved})
    return out


def car_figures() -> dict:
    """The close-ratio 6-speed car: 3 styles x 3 routes, 7 minutes each, rpm and speed in turn at 10 and 5 Hz."""
    from multiprocessing import Pool
    jobs = [(style, route, 0) for style in VIRTUAL_STYLES for route in VIRTUAL_ROUTES]
    with Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        drives = [d for out in pool.map(_car_drive, jobs) for d in out]
    rates, goals = {}, {}
    for hz in CAR_RATES_HZ:
        at = [d for d in drives if d["hz"] == hz]
        n = sum(d["samples"] for d in at)
        f = rates[hz] = {"tracker": round(sum(d["tracker"] for d in at) / n, 4),
                         "nearest": round(sum(d["nearest"] for d in at) / n, 4),
                         "ceiling": round(1.0 - sum(d["moved_unseen"] for d in at) / n, 4), "samples": n}
        goals[f"close-ratio car at {hz} Hz: gear with rpm {100 * f['tracker']:.1f} % not below nearest ratio "
              f"{100 * f['nearest']:.1f} %"] = f["tracker"] >= f["nearest"]
        goals[f"close-ratio car at {hz} Hz: gear with rpm {100 * f['tracker']:.1f} % >= "
              f"{100 * GOAL_GEAR_AGREE_MANUAL:g} %"] = f["tracker"] >= GOAL_GEAR_AGREE_MANUAL
        goals.update(_learning_goals(f"close-ratio car, live learning at {hz} Hz",
                                     f"close-ratio car, live learning, 7-minute mixed (kei-day) drives at {hz} Hz", at))
    return {"rates": rates, "drives": drives, "goals": goals}


#: a wrong or absent gear count: rates and routes of its drives
COUNT_RATES_HZ = (10, 5, 1)
COUNT_LOW_ROUTES = ("town", "kei-day")
#: ... no count at all: the vehicles and rates of its CSV logs (the close-ratio car and 2 Hz since the
#: eighteenth session)
NO_COUNT_VEHICLES = ("hijet-s500p", "close-ratio car")
NO_COUNT_RATES_HZ = (10, 5, 2, 1)


def _count_low_drive(job: tuple[str, str, int]) -> list[dict]:
    """One virtual drive of the 2WD Hijet (no low range) learned live with a profile saying 4 forward
    gears, no ratios: another grade's profile picked, a 4-speed's transmission typed (a worker's job)."""
    from keidash.sim.recorded import record, simulate
    style, route, seed = job
    hijet = load_profile("hijet-s500p")
    config = config_for(replace(hijet, gear_ratios=(), final_drive=None, gear_count=4, transfer_low_ratio=None),
                        {}, ("obd",))
    trace = simulate("hijet-s500p", route, style, LIVE_SECONDS, seed)
    return [{"style": style, "route": route, "seed": seed, "hz": hz,
             **_learning_shares(record(trace, rpm_hz=hz, seed=seed), config)} for hz in COUNT_RATES_HZ]


def _no_count_drive(job: tuple[str, str, str, int]) -> list[dict]:
    """One virtual drive written as a logger writes a CSV (every row the latest of both readings, mph,
    the gear sensor's N), read back and learned live with no profile: what ``keidash eval`` does with a
    folder of logs that has no vehicle.toml (a worker's job)."""
    import tempfile
    from keidash.sim.recorded import record, write_logger_csv
    vehicle, style, route, seed = job
    trace = _vehicle_trace(vehicle, route, style, seed)
    out = []
    for hz in NO_COUNT_RATES_HZ:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "drive.csv")
            write_logger_csv(record(trace, rpm_hz=hz, seed=seed), path)
            log = load_log(path)
        out.append({"vehicle": vehicle, "style": style, "route": route, "seed": seed, "hz": hz,
                    **_learning_shares(log, config_for(unknown_profile(), {}, ("replay",)))})
    return out


def count_figures() -> dict:
    """Live learning where the gear count is wrong or absent: the 2WD Hijet with a profile of 4 gears
    (3 styles x town, kei-day, seed 0, at 10, 5 and 1 Hz), and every style x route x seed of the Hijet and of
    the close-ratio car written as a CSV and learned with no count (eval's path for held-out logs), at 10, 5, 2
    and 1 Hz."""
    from multiprocessing import Pool
    low_jobs = [(style, route, 0) for style in VIRTUAL_STYLES for route in COUNT_LOW_ROUTES]
    none_jobs = [(vehicle, style, route, seed) for vehicle in NO_COUNT_VEHICLES for style in VIRTUAL_STYLES
                 for route in VIRTUAL_ROUTES for seed in VIRTUAL_SEEDS]
    with Pool(min(len(none_jobs), os.cpu_count() or 1)) as pool:
        low = [d for out in pool.map(_count_low_drive, low_jobs) for d in out]
        none = [d for out in pool.map(_no_count_drive, none_jobs) for d in out]
    goals = {}
    for hz in COUNT_RATES_HZ:
        goals.update(_learning_goals(f"a profile of 4 gears on a 5-speed, live learning at {hz} Hz", None,
                                     [d for d in low if d["hz"] == hz]))
    for vehicle, hz in ((vehicle, hz) for vehicle in NO_COUNT_VEHICLES for hz in NO_COUNT_RATES_HZ):
        goals.update(_learning_goals(f"{_no_count_label(vehicle)} learned live at {hz} Hz",
                                     f"{_no_count_label(vehicle)}, 7-minute mixed (kei-day) drives at {hz} Hz",
                                     [d for d in none if d["hz"] == hz and d["vehicle"] == vehicle]))
    return {"low": low, "none": none, "goals": goals}


#: held-out logs: the vehicles and rates of their drives
HELDOUT_VEHICLES = ("hijet-s500p", "close-ratio car")
HELDOUT_RATES_HZ = (5, 2, 1)
#: ... and seeds (a drive's traffic and driver; only 0 until the nineteenth session)
HELDOUT_SEEDS = (0, 1)
#: ... scored with no gear count, and with the count the gearbox's name gives (Hijet, car)
HELDOUT_MODES = {"no count": None, "count": ("5MT", "6MT")}
#: ... and written by a logger that puts rpm and speed on one row (a phone app's CSV), at these rates
HELDOUT_ONE_ROW_HZ = (2, 1)


def _heldout_drive(job: tuple[str, str, str, int]) -> list[dict]:
    """One virtual drive written as a logger writes a CSV at each of HELDOUT_RATES_HZ (and with rpm and speed
    on one row at each of HELDOUT_ONE_ROW_HZ), alone in a folder, scored by ``keidash eval``: trained on
    itself, with no gear count and with the count (a worker's job)."""
    import tempfile
    from keidash.sim.recorded import record, write_logger_csv, write_one_row_csv
    vehicle, style, route, seed = job
    car = vehicle != "hijet-s500p"
    trace = _vehicle_trace(vehicle, route, style, seed)
    drives = []
    for hz, one_row in [(hz, False) for hz in HELDOUT_RATES_HZ] + [(hz, True) for hz in HELDOUT_ONE_ROW_HZ]:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "drive.csv")
            if one_row:
                write_one_row_csv(trace, path, hz, seed, LIVE_SECONDS)
            else:
                write_logger_csv(record(trace, rpm_hz=hz, seed=seed), path)
            labelled = sum(1 for s in load_log(path).samples if s.moving and s.rpm and s.gear and s.gear > 0)
            out = {"vehicle": vehicle, "style": style, "route": route, "seed": seed, "hz": hz, "samples": labelled,
                   **({"one_row": True} if one_row else {})}
            for mode, transmission in HELDOUT_MODES.items():
                f = evaluate([path], transmission=transmission and transmission[car])[0]
                out[mode] = {"tracker": f.gear_agree or 0.0, "nearest": f.gear_agree_nearest or 0.0,
                             "ratios": list(f.trained_ratios or ())}
        drives.append(out)
    return drives


def heldout_figures() -> dict:
    """Held-out logs: each virtual drive of the Hijet and the close-ratio car as a lone CSV, scored by eval."""
    from multiprocessing import Pool
    jobs = [(vehicle, style, route, seed) for vehicle in HELDOUT_VEHICLES for style in VIRTUAL_STYLES
            for route in VIRTUAL_ROUTES for seed in HELDOUT_SEEDS]
    with Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        drives = [d for out in pool.map(_heldout_drive, jobs) for d in out]
    goals, vehicles = {}, {}
    for vehicle in HELDOUT_VEHICLES:
        for one_row, rates in ((True, HELDOUT_ONE_ROW_HZ), (False, HELDOUT_RATES_HZ)):
            logs = ", rpm and speed on one row" if one_row else ""
            for hz in rates:
                at = [d for d in drives if d["vehicle"] == vehicle and d["hz"] == hz and d.get("one_row", False) == one_row]
                n = sum(d["samples"] for d in at)
                for mode in HELDOUT_MODES:
                    f = vehicles.setdefault(f"{vehicle}{' one row' if one_row else ''} {hz} Hz", {"samples": n})[mode] = {
                        what: round(sum(d[mode][what] * d["samples"] for d in at) / n, 4) for what in ("tracker", "nearest")}
                    worst = min(at, key=lambda d: d[mode]["tracker"])
                    below = [d for d in at if d[mode]["tracker"] < d[mode]["nearest"]]
                    goals[f"held-out {vehicle} logs{logs} (eval alone, {mode}, {hz} Hz): gear with rpm "
                          f"{100 * f['tracker']:.1f} % (least {100 * worst[mode]['tracker']:.1f} %, {worst['style']} "
                          f"{worst['route']} seed {worst['seed']}) >= {100 * GOAL_GEAR_AGREE_MANUAL:g} %"
                          ] = f["tracker"] >= GOAL_GEAR_AGREE_MANUAL
                    goals[f"held-out {vehicle} logs{logs} ({mode}, {hz} Hz): gear with rpm not below nearest ratio on "
                          f"{len(at) - len(below)} of {len(at)} drives"] = not below
    return {"vehicles": vehicles, "drives": drives, "goals": goals}


#: the bench's parts, in the order they run (``--only`` picks some)
PARTS = {"learning": learning, "logs": logs_figures, "virtual": virtual_figures, "live": live_figures,
         "gps": gps_figures, "car": car_figures, "count": count_figures, "heldout": heldout_figures,
         "needle": needle_figures, "cost": cost}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    parser.add_argument("--only", choices=tuple(PARTS), action="append", metavar="PART",
                        help=f"run only this part (repeatable; one of {', '.join(PARTS)}); its goals alone decide")
    args = parser.parse_args()
    report = {part: PARTS[part]() for part in (args.only or PARTS)}
    missed = 0
    for part in ("learning", "logs", "virtual", "live", "gps", "car", "count", "heldout", "needle"):
        for goal, met in report.get(part, {}).get("goals", {}).items():
            print(f"{'MET   ' if met else 'MISSED'} {goal}")
            missed += not met
    for name, f in report.get("learning", {}).items():
        if name.endswith(".jsonl"):
            print(f"{name}: learner " + " / ".join(f"{k:.1f}" for k in f["rpm_per_kmh"]) + "; labels: median "
                  + " / ".join(str(r.get("median", "-")) for r in f["references"]) + ", from 6 km/h "
                  + " / ".join(str(r.get("median_from_6_kmh", "-")) for r in f["references"]) + ", mode "
                  + " / ".join(str(r.get("mode", "-")) for r in f["references"]) + " rpm per km/h; samples "
                  + " / ".join(str(r.get("samples", "-")) for r in f["references"]) + ", of them under 6 km/h "
                  + " / ".join(f"{r['under_6_kmh']} ({r['under_6_kmh_range'][0]}-{r['under_6_kmh_range'][1]})"
                               if r.get("under_6_kmh") else "0" for r in f["references"]))
    if "cost" in report:
        c, p = report["cost"], report["cost"]["polled"]
        print(f"cost: {c['estimator_us']} us per reading (step + advise), {c['ratio']}x a bare nearest-ratio "
              f"classifier ({c['nearest_us']} us) in the same run, over {c['readings']} readings of driving.jsonl; "
              f"{p['estimator_us']} us, {p['ratio']}x ({p['nearest_us']} us), over {p['readings']} readings of a "
              f"virtual town drive polled in turn at 5 Hz; {c['polled_lag_told']['ratio']}x on that drive with the "
              f"speed's lag told (none read off the drive)")
    if "needle" in report:
        n = report["needle"]
        print("needle (lag on ramps ms / noise rpm / jitter / after shifts rpm): " + "; ".join(
            f"{name} {n[name]['lag_ramp_ms']:.0f} / {n[name]['noise_rpm']:.1f} / {n[name]['jitter_rpm']:.1f} / "
            f"{n[name]['shift_rms_rpm']:.0f}" for name in ("hold", "filter", "estimator")))
    if "virtual" in report:
        v = report["virtual"]
        print(f"virtual manual drives ({v['drives']} drive x rate): " + "; ".join(
            f"{hz} Hz tracker {100 * f['tracker']:.2f} % / nearest {100 * f['nearest']:.2f} % / ceiling "
            f"{100 * f['ceiling']:.2f} % ({f['samples']} samples)" for hz, f in v["rates"].items())
            + f"; {len(v['drives_below_nearest'])} single drives below nearest")
    if "live" in report:
        drives = report["live"]["drives"]
        for hz in VIRTUAL_RATES_HZ:
            cells = []
            for route in VIRTUAL_ROUTES:
                at = [d for d in drives if d["hz"] == hz and d["route"] == route]
                cells.append(f"{route} shown {100 * statistics.mean(d['shown'] for d in at):.1f} % (least "
                             f"{100 * min(d['shown'] for d in at):.1f}), wrong at most "
                             f"{100 * max(d['wrong'] for d in at):.2f} %")
            print(f"live learning at {hz} Hz, {len(drives) // len(VIRTUAL_RATES_HZ)} drives: " + "; ".join(cells))
    if "count" in report:
        count = report["count"]
        for what, drives, rates in (("a profile of 4 gears on a 5-speed", count["low"], COUNT_RATES_HZ),
                                    *((_no_count_label(vehicle),
                                       [d for d in count["none"] if d["vehicle"] == vehicle], NO_COUNT_RATES_HZ)
                                      for vehicle in NO_COUNT_VEHICLES)):
            print(f"{what}, {len(drives) // len(rates)} drives: " + "; ".join(
                f"{hz} Hz shown {100 * statistics.mean(d['shown'] for d in at):.1f} % (kei-day least "
                f"{100 * min(d['shown'] for d in at if d['route'] == 'kei-day'):.1f}), wrong at most "
                f"{100 * max(d['wrong'] for d in at):.2f} % ({at_worst['style']} {at_worst['route']} seed "
                f"{at_worst['seed']})"
                for hz in rates for at in [[d for d in drives if d["hz"] == hz]]
                for at_worst in [max(at, key=lambda d: d["wrong"])]))
    if "car" in report:
        for hz, f in report["car"]["rates"].items():
            print(f"close-ratio car at {hz} Hz: tracker {100 * f['tracker']:.2f} % / nearest {100 * f['nearest']:.2f} % / "
                  f"ceiling {100 * f['ceiling']:.2f} % ({f['samples']} samples)")
        for d in report["car"]["drives"]:
            print(f"  {d['style']} {d['route']} {d['hz']} Hz (gears {','.join(map(str, d['gears_driven']))}): tracker "
                  f"{100 * d['tracker'] / d['samples']:.2f} % / nearest {100 * d['nearest'] / d['samples']:.2f} %; "
                  f"live learning shown {100 * d['shown']:.1f} %, wrong {100 * d['wrong']:.2f} %")
    if "heldout" in report:
        for d in report["heldout"]["drives"]:
            print(f"held-out {d['vehicle']} {d['style']} {d['route']} seed {d['seed']} {d['hz']} Hz"
                  f"{', one row' if d.get('one_row') else ''}: " + "; ".join(
                f"{mode}: tracker {100 * d[mode]['tracker']:.1f} % / nearest {100 * d[mode]['nearest']:.1f} %, ratios "
                f"{' / '.join(f'{k:g}' for k in d[mode]['ratios']) or '-'}" for mode in HELDOUT_MODES))
    if "gps" in report:
        for what, f in report["gps"]["sets"].items():
            print(f"{what} ({len(f['drives'])} drives), nearest ratio {100 * f['nearest']:.2f} %; " + "; ".join(
                f"{mode}: tracker {100 * f[mode]['tracker']:.2f} %, live shown {100 * f[mode]['shown']:.1f} % "
                f"(mean), wrong at most {100 * f[mode]['wrong']:.2f} %" for mode in LAG_MODES))
            for d in f["drives"]:
                print(f"  {d['style']} {d['route']}: nearest {100 * d['nearest'] / d['samples']:.1f} %; " + "; ".join(
                    f"{mode} tracker {100 * d[mode]['tracker'] / d['samples']:.1f} % shown {100 * d[mode]['shown']:.1f} "
                    f"wrong {100 * d[mode]['wrong']:.2f} %" + (f" (lag {d[mode]['lag_s']:g} s from "
                                                               f"{d[mode]['lag_found_at_s']} s)" if mode == "found" else "")
                    for mode in LAG_MODES)
                      + f"; learned (lag found), rpm per km/h: {' / '.join(f'{k:g}' for k in d['found']['learned']) or '-'}")
    for name, f in report.get("logs", {}).items():
        if name == "goals":
            continue
        agree = "" if f["gear_agree"] is None else (
            f"gear {100 * f['gear_agree']:.1f} % (nearest {100 * f['gear_agree_nearest']:.1f} %; {f['gear_misses']} "
            f"misses, {f['gear_misses_away']} of them farther than 0.5 s from a change of label), ")
        if f["shift_map"] is not None:
            noted = "; ".join(f"{n + 2}->{n + 1}: " + (", ".join(f"{v:.1f}" for v in seen) or "-")
                              for n, seen in enumerate(f["shift_map"]["coast_downs_kmh"]))
            print(f"{name}: scored with the shift map learned on the other log: "
                  f"{f['shift_map']['lines'] or 'no line'} (coast-downs noted, km/h: {noted})")
        if f["learning_shown"] is not None:
            print(f"{name}: live learning shows a gear on {100 * f['learning_shown']:.1f} %, "
                  f"a wrong one on {100 * f['learning_wrong']:.1f} %")
        if f["speed_only"] is not None:
            print(f"{name}: {agree}speed only {100 * f['speed_only']:.1f} % / naive {100 * f['naive']:.1f} % / "
                  f"oracle {100 * f['oracle']:.1f} %")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=1, default=str)
    print(f"{missed} goal(s) missed" if missed else "every goal met")
    return 1 if missed else 0


if __name__ == "__main__":
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    sys.exit(main())
