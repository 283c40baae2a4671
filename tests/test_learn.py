"""Ratio learning: real logs (carOBD Etios, OpenXC Ford) and synthetic drives with known ratios."""

import dataclasses
import json
import math
import random
import statistics
from functools import lru_cache
from pathlib import Path

import pytest

from keidash.estimate.evaluate import plain_kmeans

from keidash.estimate.learn import (GearRatio, LaunchGears, LearnedRatios, LearnerState, clusters, gearbox_problem,
                                   launch_gears, learn_from_logs, learn_pairs, learned, learner_step, profile_with_learned)
from keidash.profiles import load_profile
from keidash.readings import RPM, SPEED
from keidash.replay import load_log
from keidash.replay.log import DriveLog, Sample

DRIVES = Path(__file__).parent / "data" / "drives"
ETIOS = ("drive4", "live1", "long2", "ufpe1", "ufpe7")
FORD = ("driving", "driving2")


@lru_cache(maxsize=None)
def _log(path: str) -> DriveLog:
    return load_log(str(DRIVES / path))


def _etios(name):
    return _log(f"carobd-etios/{name}.csv")


def _ford(name):
    return _log(f"openxc-ford/{name}.jsonl")


def _label_medians(log):
    """Median rpm/speed of the moving samples labelled with each forward gear."""
    return [statistics.median(s.rpm / s.speed_kmh for s in log.samples if s.gear == g and s.moving and s.rpm)
            for g in range(1, 6)]


# -- real logs ---------------------------------------------------------------------
def test_all_five_etios_gears_from_the_five_logs_together():
    result = learn_from_logs([_etios(n) for n in ETIOS])
    ratios = result.rpm_per_kmh()
    assert len(ratios) == 5, result
    # the clusters seen by eye in the logs: 1st ~130-150 (rare: 2 s polls), 72, 48, 35, 29
    assert 120 < ratios[0] < 160
    for got, want in zip(ratios[1:], (72, 48, 35.4, 29.1)):
        assert got == pytest.approx(want, rel=0.04)
    steps = [a / b for a, b in zip(ratios, ratios[1:])]
    assert all(1.13 < s < 2.1 for s in steps)
    assert result.gears[-1].confidence > 0.8 and result.gears[0].confidence < result.gears[-1].confidence


@pytest.mark.parametrize("name", ["ufpe1", "ufpe7"])
def test_short_campus_logs_do_not_invent_fifth(name):
    free = learn_from_logs([_etios(name)])
    assert free.found < 5 and free.rpm_per_kmh()[-1] > 33, "no cluster near 29 rpm per km/h in a campus drive"
    given = learn_from_logs([_etios(name)], gears=5)
    assert len(given.gears) == 5
    assert given.gears[-1] == GearRatio(None, 0.0, 0, 0.0)
    assert given.rpm_per_kmh() == () and not given.ready
    assert all(g.rpm_per_kmh is None or g.rpm_per_kmh > 33 for g in given.gears)


def test_long_etios_drive_finds_top_gear_sharp_and_confident():
    result = learn_from_logs([_etios("long2")])
    top = result.gears[-1]
    assert top.rpm_per_kmh == pytest.approx(29.1, rel=0.02) and top.confidence > 0.8 and top.spread < 0.02


@pytest.mark.parametrize("name", FORD)
def test_openxc_gears_near_the_label_medians(name):
    log = _ford(name)
    result = learn_from_logs([log], gears=5)
    errors = [got / want - 1 for got, want in zip(result.rpm_per_kmh(), _label_medians(log))]
    assert len(errors) == 5
    assert all(abs(e) <= 0.02 for e in errors[1:]), errors
    # 1st behind a slipping converter: its labels' median over all moving samples (from 4 km/h, the
    # converter slipping at a crawl) and from 6 km/h (where the learner takes ratios) differ by up to
    # 5 % (driving2: 139.5 and 132.8); the learner's 1st lies between them, within 1 %
    from6 = statistics.median(s.rpm / s.speed_kmh for s in log.samples if s.gear == 1 and s.speed_kmh >= 6 and s.rpm)
    low, high = sorted((from6, _label_medians(log)[0]))
    assert 0.99 * low <= result.rpm_per_kmh()[0] <= 1.01 * high, (low, result.rpm_per_kmh()[0], high)


@pytest.mark.parametrize("name", FORD)
def test_openxc_gear_count_is_found_without_being_given(name):
    assert learn_from_logs([_ford(name)]).found == 5


@pytest.mark.parametrize("name", FORD)
def test_plain_kmeans_misses_gears_the_learner_finds(name):
    log = _ford(name)
    moving = [math.log(s.rpm / s.speed_kmh) for s in log.samples if s.speed_kmh >= 8 and s.rpm >= 850]
    kmeans = plain_kmeans(moving, 5)
    truth = _label_medians(log)
    kmeans_worst = max(abs(got / want - 1) for got, want in zip(kmeans, truth))
    learner_worst = max(abs(got / want - 1) for got, want in zip(learn_from_logs([log], 5).rpm_per_kmh(), truth))
    assert kmeans_worst > 0.05 and learner_worst < 0.03


# -- synthetic drives -----------------------------------------------------------------
KEI = (279.0, 164.2, 113.1, 68.7, 51.0)  # rpm per km/h of a 5-speed (hijet-s500p-like), test input only


def _drive(ratios, seconds=900, dt=0.1, seed=1, slip=True, low=None, reverse=None, sparse=False):
    """Samples of a made-up drive: launches with clutch slip, shifts, cruising, coasting.

    ``low`` = transfer ratio: a quarter of the driving is in low range (every ratio x low);
    ``reverse`` = rpm per km/h in reverse: reversing at idle-ish rpm and 5-9 km/h;
    ``sparse``: rpm and speed polled every 2 s, speed 0.1 s after rpm, whole km/h (like carOBD).
    """
    rng = random.Random(seed)
    t, rows = 0.0, []

    def hold(kmh_of, rpm_of, length):
        nonlocal t
        end = t + length
        while t < end:
            rows.append((t, max(kmh_of(t), 0.0), max(rpm_of(t), 0.0)))
            t += dt

    while t < seconds:
        factor = low if (low and rng.random() < 0.25) else 1.0
        if reverse and rng.random() < 0.15:
            v = rng.uniform(5, 9)
            hold(lambda _: v * rng.gauss(1, 0.01), lambda _: v * reverse * rng.gauss(1, 0.01), 6)
        v = 0.0
        for gear, ratio in enumerate(ratios):
            k = ratio * factor
            t0, v0 = t, v
            top = rng.uniform(2600, 4200) / k
            if gear == 0 and slip:  # launch: clutch slipping, engine held at 1500-2000
                hold(lambda s: v0 + 2.0 * (s - t0), lambda s: max(1700 + rng.gauss(0, 80), k * (v0 + 2.0 * (s - t0))), 2)
                t0, v0 = t, v0 + 4.0
            accel = rng.uniform(1.0, 3.0)
            length = max((top - v0) / accel, 0.5)
            hold(lambda s: v0 + accel * (s - t0), lambda s: k * (v0 + accel * (s - t0)) * rng.gauss(1, 0.01), length)
            v = max(top, v0)
            if rng.random() < 0.3 or gear == len(ratios) - 1:  # cruise a while in this gear
                hold(lambda _: v * rng.gauss(1, 0.005), lambda _: k * v * rng.gauss(1, 0.01), rng.uniform(5, 30))
            t1 = t  # shift: clutch in, rpm falls towards idle, speed holds
            hold(lambda _: v, lambda s: 900 + (k * v - 900) * math.exp(-(s - t1) / 0.3), 0.8)
        t1, v1 = t, v  # coast down with the clutch in
        hold(lambda s: v1 - 1.5 * (s - t1), lambda _: 850 + rng.gauss(0, 20), v1 / 1.5)
        hold(lambda _: 0.0, lambda _: 850.0, 3)
    if not sparse:
        return [Sample(t, round(v, 1), round(r, 0)) for t, v, r in rows]
    samples, next_rpm, next_speed = [], 0.0, 0.1
    for t, v, r in rows:
        fresh = tuple(ch for ch, due in ((RPM, next_rpm), (SPEED, next_speed)) if t >= due)
        if RPM in fresh:
            next_rpm += 2.0
        if SPEED in fresh:
            next_speed += 2.0
        if fresh:
            samples.append(Sample(t, float(round(v)), round(r * 4) / 4, fresh=fresh))
    return samples


def _learn(samples, gears=None):
    state = LearnerState()
    for s in samples:
        if RPM in s.fresh:
            state = learner_step(state, s.t, RPM, s.rpm)
        if SPEED in s.fresh:
            state = learner_step(state, s.t, SPEED, s.speed_kmh)
    return learned(state, gears)


def _assert_ratios(result: LearnedRatios, truth, rel=0.02):
    got = result.rpm_per_kmh()
    assert len(got) == len(truth), result
    for g, want in zip(got, truth):
        assert g == pytest.approx(want, rel=rel), (got, truth)


def test_synthetic_dense_drive_with_clutch_slip():
    result = _learn(_drive(KEI))
    _assert_ratios(result, KEI)
    assert result.ready
    # coasting with the clutch in at idle may form a cluster: it is kept apart, far from every gear
    assert all(min(abs(math.log(o / k)) for k in KEI) > 0.1 for o in result.other)


def test_synthetic_sparse_drive_like_carobd():
    result = _learn(_drive(KEI, seconds=3600, sparse=True))
    _assert_ratios(result, KEI, rel=0.03)


@pytest.mark.slow
def test_synthetic_low_range_clusters_are_not_gears():
    low = 1.782
    for gears in (5, None):
        result = _learn(_drive(KEI, seconds=1800, low=low, seed=3), gears)
        _assert_ratios(result, KEI)
        copies = [o for o in result.other if min(abs(math.log(o / (low * k))) for k in KEI) < 0.03]
        assert len(copies) >= 2, result.other


def test_synthetic_reverse_at_idle_is_not_a_gear():
    result = _learn(_drive(KEI, reverse=1.45 * KEI[0], seed=5), 5)
    _assert_ratios(result, KEI)
    assert result.gears[0].rpm_per_kmh < 1.2 * KEI[0]


def test_synthetic_missing_top_gear_is_none_with_zero_confidence():
    samples = _drive(KEI[:3], seed=7)
    result = _learn(samples, 5)
    assert [g.rpm_per_kmh is None for g in result.gears] == [False, False, False, True, True]
    assert result.gears[3].confidence == 0 and result.rpm_per_kmh() == ()
    assert _learn(samples).found == 3


def test_learner_is_deterministic_and_bounded():
    samples = _drive(KEI, seconds=300)
    a, b = _learn(samples), _learn(samples)
    assert a == b
    state = LearnerState()
    size = len(state.weights)
    for s in samples[:500]:
        state = learner_step(state, s.t, RPM, s.rpm)
    assert len(state.weights) == size


def test_learner_waits_for_the_other_channel_a_bounded_while():
    """A reading whose pair waits for the other channel's next reading (to interpolate it to its
    instant) waits only while the other was read within PAIR_SKEW_S, at most MAX_WAITING of them:
    a 200 Hz rpm source beside a speed that fell silent, or a tach with no speed source at all."""
    from keidash.estimate.learn import MAX_WAITING
    state = learner_step(LearnerState(), 0.0, SPEED, 30.0)
    longest = 0
    for n in range(1, 400):
        state = learner_step(state, n / 200, RPM, 2000.0)
        longest = max(longest, len(state.waiting))
    assert longest == MAX_WAITING and sum(state.moving) > 0  # the oldest were paired with the speed before them
    state = LearnerState()
    for n in range(400):
        state = learner_step(state, n / 10, RPM, 2000.0)
    assert state.waiting == () and state.pairs == 0


def test_a_10_hz_tach_beside_a_1_hz_gps_pairs_each_rpm_with_the_speed_of_its_instant():
    """Pulling hard in 2nd from 12 to 35 km/h (1.5 m/s^2) and slowing back in gear, the rpm read 10
    times a second and the speed once: each rpm reading paired with the latest speed (up to 0.6 s
    old) read up to 25 % off, and the runs broke (38 steady pairs in 40 s); paired with the speed
    interpolated to its instant, every pair is the gear's."""
    second_gear = 164.0

    def kmh(t: float) -> float:  # 12 -> 35 km/h at 5.4 km/h per s, and back
        span = (35.0 - 12.0) / 5.4
        return 12.0 + 5.4 * (span - abs(t % (2 * span) - span))

    state = LearnerState()
    for second in range(40):
        state = learner_step(state, second, RPM, second_gear * kmh(second))
        state = learner_step(state, second + 0.05, SPEED, kmh(second + 0.05))
        for n in range(1, 10):
            state = learner_step(state, second + n / 10, RPM, second_gear * kmh(second + n / 10))
    found = clusters(state)
    assert len(found) == 1 and found[0].rpm_per_kmh == pytest.approx(second_gear, rel=0.01)
    # each second 7 pairs (the speed, the six rpm readings within 0.6 s after it): nearly all steady
    assert found[0].mass > 0.8 * 7 * 40, found[0].mass


def test_other_channels_are_ignored():
    state = learner_step(LearnerState(), 1.0, "coolant_c", 90.0)
    assert state == LearnerState()


# -- profile persistence ---------------------------------------------------------------
@pytest.mark.parametrize("base", [None, "carry-dd51t", "hijet-s500p"])
def test_learned_profile_loads_back(tmp_path, base):
    result = _learn(_drive(KEI))
    profile = load_profile(base) if base else None
    path = tmp_path / "mine.toml"
    path.write_text(profile_with_learned(profile, result, ["trip.csv"]), encoding="utf-8")
    back = load_profile(str(path))
    assert back.learned.rpm_per_kmh == result.rpm_per_kmh()
    assert back.learned.logs == ("trip.csv",) and back.learned.samples == result.samples_used
    if base == "hijet-s500p":  # sourced ratios win over learned ones
        assert back.rpm_per_kmh() == profile.rpm_per_kmh() and back.gear_ratios == profile.gear_ratios
    else:
        assert back.rpm_per_kmh() == result.rpm_per_kmh()
    if profile is not None:
        assert (back.name, back.engine, back.tyre) == (profile.name, profile.engine, profile.tyre)


def test_learned_profile_keeps_a_missing_gear_missing(tmp_path):
    result = learn_from_logs([_etios("ufpe1")], gears=5)
    path = tmp_path / "campus.toml"
    path.write_text(profile_with_learned(None, result, ["ufpe1.csv"]), encoding="utf-8")
    back = load_profile(str(path))
    assert back.learned.rpm_per_kmh[-1] is None and back.learned.confidence[-1] == 0
    assert back.rpm_per_kmh() == () and back.tyre is None


# -- numbering: which gear is the highest cluster -------------------------------------------
@pytest.mark.parametrize("name", ["long2", "ufpe1", "ufpe7"])
def test_etios_drives_without_steady_first_put_second_in_slot_two(name):
    result = learn_from_logs([_etios(name)], gears=5)
    assert result.gears[0] == GearRatio(None, 0.0, 0, 0.0), result
    assert result.gears[1].rpm_per_kmh == pytest.approx(72, rel=0.04)
    # long2 has 14 launches, all far above 72: proven; ufpe1/ufpe7 have 1-2: best guess, flagged
    assert result.numbering_certain == (result.launches >= 3)
    if not result.numbering_certain:
        free = learn_from_logs([_etios(name)])
        assert all(g.confidence < f.confidence for g, f in zip(result.gears[1:], free.gears) if f.confidence)


@pytest.mark.parametrize("name", ["drive4", "live1"])
def test_etios_drives_with_first_keep_it_first_and_certain(name):
    result = learn_from_logs([_etios(name)], gears=5)
    assert result.numbering_certain and result.launches >= 3
    assert 120 < result.gears[0].rpm_per_kmh < 160


def _without_steady_first(samples, ratios, slip_s=2.0):
    """``samples`` with every row of 1st after the clutch slip made a non-steady pull (rpm swinging)."""
    out = []
    for s in samples:
        if s.speed_kmh and abs(math.log(s.rpm / s.speed_kmh / ratios[0])) < 0.08:
            # still 1st, but never steady: the engine races ahead of the road speed
            out.append(Sample(s.t, s.speed_kmh, s.rpm * (1.2 + 0.3 * math.sin(7 * s.t)), fresh=s.fresh))
        else:
            out.append(s)
    return out


def test_synthetic_drive_without_steady_first_but_with_launches_numbers_correctly():
    samples = _without_steady_first(_drive(KEI, seed=11), KEI)
    result = _learn(samples, 5)
    assert result.gears[0].rpm_per_kmh is None and result.numbering_certain and result.launches >= 3
    for got, want in zip(result.gears[1:], KEI[1:]):
        assert got.rpm_per_kmh == pytest.approx(want, rel=0.02)
    # the same drive without its launches (each starts on the move) can't tell: flagged, 1st-first
    rolling = [s for s in samples if s.speed_kmh >= 1.0]
    unsure = _learn(rolling, 5)
    assert unsure.launches == 0 and not unsure.numbering_certain
    assert all(g.confidence <= 0.5 for g in unsure.gears)


def test_synthetic_drive_with_first_stays_certain():
    result = _learn(_drive(KEI, seed=11), 5)
    assert result.numbering_certain and result.launches >= 3
    _assert_ratios(result, KEI)


# -- honest live learning (issue 11): a wrong gear number is worse than "still learning" -----------
def test_a_phantom_peak_between_two_gears_is_not_numbered_as_a_gear():
    """A steady stretch of slip or low range between 2nd and 3rd leaves a peak: with a small share of
    the pairs it is set apart, and 3rd stays 3rd. With the gear count the numbers are sure; without
    it a small peak between two gears may as well be a gear driven through briefly (a close-ratio
    6-speed's), so the numbers above it are not (the dash waits; learn says why)."""
    samples = _drive(KEI, seed=2)
    t0 = samples[-1].t + 5.0
    phantom = [Sample(t0 + i / 10, 20.0, 136.0 * 20.0) for i in range(80)]  # 8 s at 136 rpm per km/h
    for gears in (5, None):
        result = _learn(samples + phantom, gears)
        _assert_ratios(result, KEI)
        assert any(abs(o / 136.0 - 1) < 0.02 for o in result.other)
        assert result.ready == (gears is not None) and result.numbering_certain == (gears is not None)
    assert _learn(samples).ready  # no phantom: sure without the count too


SIX = Path(__file__).parent / "data" / "profiles" / "close-ratio-6mt.toml"  # made up: a car's close-ratio 6-speed


def test_without_the_gear_count_a_gear_driven_through_briefly_leaves_the_numbers_unsure(tmp_path, capsys):
    """A car's close-ratio 6-speed driven by the virtual lazy driver (kei-day, 5 Hz): 3rd is driven through
    on the way to 4th, a small peak beside 2nd's and 4th's; 2nd -> 4th (1.80) also reads as one step.
    Without the gear count, 4th, 5th and 6th were numbered 3rd, 4th and 5th *for sure*: learn wrote a
    profile whose gears the dash showed one too low. Then the light peak was set apart and the numbering
    unsure, the likeliest (eval's score) still one too low from 3rd: 42.6 % of the drive. The engine was
    pulled through the light peak (its pairs' rpm rose from 1800 to 2800 with its ratio held: a gear, not
    slip held at one engine speed), so the likeliest numbering now has it as 3rd; still not certain (the
    dash waits) and learn says why. With the count (six, five found) the light 3rd is the gear the count
    lacks, as it makes a gearbox with the others: the table is complete, right and certain."""
    from keidash.cli import main
    from keidash.profiles.body import Body
    from keidash.sim.recorded import record, simulate
    car = Body(mass_kg=1350.0, drag_area_m2=0.65, clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15)
    log = record(simulate(str(SIX), "kei-day", "lazy", 420.0, 0, body=car), rpm_hz=5, seed=0)
    truth = load_profile(str(SIX)).rpm_per_kmh()
    result = learn_from_logs([log], manual=True)
    assert [g.rpm_per_kmh for g in result.gears] == pytest.approx(truth, rel=0.02) and not result.other
    assert result.through_at == pytest.approx((truth[2],), rel=0.02)
    assert not result.numbering_certain and not result.ready and not result.bridged()
    assert result.for_scoring() == pytest.approx(truth, rel=0.02)  # what eval scores: the likeliest
    with_count = learn_from_logs([log], gears=6, manual=True)
    assert with_count.ready and with_count.rpm_per_kmh() == pytest.approx(truth, rel=0.02)
    path = tmp_path / "six.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("time,rpm,speed_kmh\n")
        for s in log.samples:
            f.write(f"{s.t},{s.rpm if 'rpm' in s.fresh else ''},{s.speed_kmh if 'speed_kmh' in s.fresh else ''}\n")
    status = main(["learn", str(path), "--out", str(tmp_path / "six.toml")])
    out = capsys.readouterr().out
    assert status == 1 and "the engine speed rose with the road speed as in a gear" in out
    assert load_profile(str(tmp_path / "six.toml")).rpm_per_kmh() == ()


CAR = (144.0, 73.5, 47.9, 35.5, 29.1)  # rpm per km/h of the Etios's five gears, as learned (test input only)


def _rolling_at_idle(t0, speeds, idle_rpm, seconds=4.0):
    """Coasting with the clutch in (or in neutral) at each of ``speeds``: the speed falling slowly,
    the engine at its (fast) idle, whatever the speed."""
    rng, out = random.Random(4), []
    for v in speeds:
        for i in range(int(seconds * 10)):
            out.append(Sample(t0, round(v - 0.1 * i / 10, 1), round(idle_rpm + rng.gauss(0, 15))))
            t0 += 0.1
        t0 += 20.0
    return out


def _learn_with_idle(samples, gears, idle_rpm):
    state = LearnerState()
    for s in samples:
        state = learner_step(learner_step(state, s.t, RPM, s.rpm), s.t, SPEED, s.speed_kmh)
    return learned(state, gears, idle_rpm)


@pytest.mark.parametrize("gears", [None, 5])
def test_rolling_with_the_engine_at_idle_is_no_gear_below_top(gears):
    """The engine at a fast idle (180 rpm above the warm idle: over IDLE_MARGIN_RPM) while the truck
    rolls at 36-46 km/h leaves a peak at ~22 rpm per km/h, one plausible step below top: no 6th gear
    (it was one: the Etios's leave-one-out truck for drive4). Its rpm is held at idle, not
    proportional to speed, and it is seen at lower speeds than 5th."""
    samples = _drive(CAR, seed=2)
    idle = 705.0
    result = _learn_with_idle(samples + _rolling_at_idle(samples[-1].t + 5.0, range(36, 47), idle + 180), gears, idle)
    _assert_ratios(result, CAR)
    assert result.ready and any(19 < o < 33 for o in result.other), result


def test_a_cold_engine_rolling_in_neutral_is_no_gear_below_top():
    """A cold engine's fast idle (2 x the warm idle: above IDLE_BAND) while the truck rolls in
    neutral at 70-84 km/h (2 s at every other km/h) leaves a light peak at ~18 rpm per km/h: its
    step from 5th (~1.6) is longer than 4th->5th (1.22) allows in a gearbox, and without it the
    rest is one."""
    samples = _drive(CAR, seed=2)
    idle = 705.0
    coast = _rolling_at_idle(samples[-1].t + 5.0, range(70, 85, 2), 2.0 * idle, seconds=2.0)
    result = _learn_with_idle(samples + coast, None, idle)
    _assert_ratios(result, CAR)
    assert result.ready and any(15 < o < 21 for o in result.other), result


def test_the_live_dash_sets_rolling_at_idle_apart_too():
    """Live learning (the estimator's learner, idle from the config) applies the same rule."""
    from keidash.estimate.estimator import EstimatorState, config_for, learned_so_far, step
    from keidash.profiles import unknown_profile
    from keidash.readings import Reading
    samples = _drive(CAR, seed=2)
    samples += _rolling_at_idle(samples[-1].t + 5.0, range(36, 47), 705.0 + 180)
    config = config_for(unknown_profile(), {"idle_rpm": 705.0}, ("replay",), None)
    state = EstimatorState()
    for s in samples:
        state = step(state, Reading(s.t, RPM, s.rpm, "replay"), config)
        state = step(state, Reading(s.t, SPEED, s.speed_kmh, "replay"), config)
    result = learned_so_far(state, config)
    _assert_ratios(result, CAR)
    assert any(19 < o < 33 for o in result.other), result


def test_etios_truck_learned_for_drive4_has_five_gears():
    """The other four Etios drives' coasts at idle formed a 20.6 rpm per km/h peak (the Etios has 5 gears)."""
    from keidash.estimate.drives import learn_truck
    truck = learn_truck([_etios(n) for n in ETIOS if n != "drive4"])
    assert len(truck.ratios) == 5 and truck.ratios[-1] == pytest.approx(29.1, rel=0.02)
    assert any(abs(o / 20.6 - 1) < 0.03 for o in truck.ratios_learned.other)


def test_gears_that_are_no_gearbox_are_never_ready():
    assert gearbox_problem(KEI) == ""
    assert "apart" in gearbox_problem((279.0, 270.0, 113.1))  # a step of 1.03: not two gears
    # a peak between 2nd and 3rd that was as massive as they: two short steps below a long one
    assert "longer than the one below" in gearbox_problem((279.0, 164.2, 136.0, 113.1, 68.7))


@pytest.mark.parametrize("hz, held, gears", [(10, False, None), (5, True, 5)])
def test_a_kei_truck_whose_1st_is_never_held_learns_it_from_its_launches(hz, held, gears):
    """A kei truck's 1st runs out at 10-13 km/h within 2 s: no steady run (1 s) holds it, so the
    histogram finds 2nd..5th only. Each launch shows its gear: the pairs with the rpm rising with
    the speed, a gear step above 2nd, just before the rpm falls into 2nd. Locked that way in most
    launches, that gear is 1st, learned from them. At 5 Hz a few runs in 1st leave a cluster of
    under 40 pairs there: with the gear count given (the dash has it from the profile) the five
    clusters are the five gears; without it, which is 1st is not certain (nothing locks above it,
    but a launch read 3 times a second need not show a lock in a 1st that short either)."""
    from keidash.sim.recorded import virtual_log
    log = virtual_log("hijet-s500p", "town", "everyday", 600, rpm_hz=hz, seed=1)
    truth = [k * 1.02 for k in load_profile("hijet-s500p").rpm_per_kmh()]  # the recorded speed reads 2 % low
    state = LearnerState()
    for s in log.samples:
        for channel, value in ((RPM, s.rpm), (SPEED, s.speed_kmh)):
            if channel in s.fresh and value is not None:
                state = learner_step(state, s.t, channel, value)
    first = [c for c in clusters(state) if abs(c.rpm_per_kmh / truth[0] - 1) < 0.1]
    assert len(first) == held and all(c.mass < 40 for c in first)  # 1st: no steady run, or a few
    result = learned(state, gears)
    assert result.rpm_per_kmh() == pytest.approx(truth, rel=0.05)  # 1st from the launches, 2nd..5th steady
    assert result.numbering_certain and result.ready
    seen = launch_gears(state, result.rpm_per_kmh()[1])
    assert len(seen.locked_above) >= 3 and seen.in_top == 0


def test_launches_read_3_times_a_second_never_number_2nd_as_1st():
    """The brisk driver's 1st lasts 1.5 s: read 3 times a second a launch shows no lock in it, and
    locks in 2nd before the shift to 3rd. With 1st unseen (2nd..5th found, 3rd weak), that 2nd is
    where the launches lock and nothing locks above it; it must not be taken for 1st (a rule that
    did so was tried in the eighth session: it numbered 164 rpm per km/h 1st at 3 minutes)."""
    from keidash.sim.recorded import record, simulate
    log = record(simulate("hijet-s500p", "town", "brisk", 420.0, 0), rpm_hz=3, seed=0)
    state, checked = LearnerState(), 0
    for s in log.samples:
        for channel, value in ((RPM, s.rpm), (SPEED, s.speed_kmh)):
            if channel in s.fresh and value is not None:
                state = learner_step(state, s.t, channel, value)
        if s.t >= 30.0 * (checked + 1):
            checked += 1
            found = learned(state, 5)
            if found.numbering_certain and found.gears[0].rpm_per_kmh is not None:
                assert found.gears[0].rpm_per_kmh > 200.0, (s.t, found.gears)  # 1st is 279
    assert checked >= 13


def test_a_kei_truck_read_once_a_second_is_not_numbered_from_2nd():
    """Read at 1 Hz the launches show no gear (1st lasts a second) and their lowest ratio is 2nd's,
    after the shift: they decide nothing, and the four clusters are not numbered 1st..4th on the dash.
    eval scores the likeliest numbering, from 2nd (most launches read 1st's line or above)."""
    from keidash.sim.recorded import virtual_log
    log = virtual_log("hijet-s500p", "town", "everyday", 600, rpm_hz=1, seed=1)
    result = learn_from_logs([log])
    assert len(result.rpm_per_kmh()) == 4 and result.rpm_per_kmh()[0] == pytest.approx(161, rel=0.05)
    assert not result.numbering_certain and not result.ready
    given = learn_from_logs([log], gears=5)  # with the profile's gear count: four of five, not ready
    assert given.found == 4 and not given.ready
    assert given.bridged() == ()  # the missing gear is 1st, not one between two found: nothing to number by
    # most launches read 1st's line or above all the same: eval scores the log from 2nd, 1st bounded
    assert result.likely_above == 1
    assert result.for_scoring()[1:] == pytest.approx(result.rpm_per_kmh(), rel=1e-6)
    assert 1.15 * 161 < result.for_scoring()[0] < 2.1 * 161


def _fed(log, until: float = math.inf) -> LearnerState:
    """A learner fed ``log``'s fresh readings in order, up to ``until`` (s)."""
    state = LearnerState()
    for s in log.samples:
        if s.t > until:
            break
        for channel, value in ((RPM, s.rpm), (SPEED, s.speed_kmh)):
            if channel in s.fresh and value is not None:
                state = learner_step(state, s.t, channel, value)
    return state


def _table(*ratios, confidence=0.9, given=True, certain=True):
    return LearnedRatios(tuple(GearRatio(None, 0.0, 0, 0.0) if k is None else GearRatio(k, confidence, 100, 0.01)
                               for k in ratios), (), 1000, gear_count_given=given, numbering_certain=certain)


def test_a_gear_missing_between_two_found_ones_is_bridged():
    """A kei truck's 3rd is often driven too briefly for a steady run. With the gear count given,
    1st certain and 1st and top found, a gear between two found ones has its number whatever its
    exact ratio (a manual gearbox has no other forward ratio there): the dash may number the
    gears, the gap bridged geometrically."""
    bridged = _table(270.0, 164.0, None, 68.8, 51.0).bridged()
    assert bridged == pytest.approx((270.0, 164.0, math.sqrt(164.0 * 68.8), 68.8, 51.0), rel=1e-3)
    two = _table(320.0, None, None, 68.8, 51.0).bridged()  # two gears missing: three geometric steps
    assert two[1] / two[2] == pytest.approx(320.0 / two[1], rel=1e-3) == pytest.approx(two[2] / 68.8, rel=1e-3)
    # 270 -> 68.8 (3.9 x) is two gear steps or three: 68.8 may be 3rd and 51 4th, a 5th unseen
    assert _table(270.0, None, None, 68.8, 51.0).bridged() == ()
    assert _table(*KEI).bridged() == KEI  # ready: the gears as found


@pytest.mark.parametrize("table", [
    _table(270.0, 164.0, None, 68.8, 51.0, given=False),  # how many gears is a guess
    _table(270.0, 164.0, None, 68.8, 51.0, certain=False),  # which is 1st is not certain
    _table(None, 164.0, 113.0, 68.8, 51.0, certain=False),  # 1st missing, no launch proved a gear above 164
    _table(270.0, 164.0, 113.0, 68.8, 40.0, confidence=0.3),  # top weak: the gears below may be any
    _table(270.0, 164.0, None, 68.8, 51.0, confidence=0.3),  # the found ones not sure: maybe a phantom
    _table(270.0, None, 250.0, 68.8, 51.0),  # bridged, no gearbox's steps
], ids=["count-not-given", "numbering-uncertain", "1st-missing", "top-weak", "weak", "no-gearbox"])
def test_nothing_is_bridged_unless_every_number_is_certain(table):
    assert table.bridged() == () and not table.ready


def test_top_gears_never_driven_leave_the_gears_below_numbered_from_1st():
    """A town or farm drive need not reach top gear: with the count given, 1st certain and nothing found
    above the sure gears, those are numbered from 1st and the table is shorter than the count (the
    estimator shows no gear for an engine driving well below the highest numbered: a gear not seen yet).
    Not where the sure gears could take other numbers from 1st, nor with a weak gear found above them
    (a phantom, or a top gear with another unseen below it), nor where a step is longer than the one
    below it: a gear driven through too briefly for a cluster may hide in it (the close-ratio car's lazy
    2nd -> 4th, 1.80 after 1.65), and the Hijet's own 3rd -> 4th (1.65 after 1.45) waits for its 5th."""
    assert _table(131.0, 79.5, 55.9, 44.0, None, None).bridged() == (131.0, 79.5, 55.9, 44.0)  # a 6-speed's town
    assert _table(131.4, 79.3, 44.0, None, None, None).bridged() == ()  # its 3rd driven through: 4th as 3rd
    assert _table(270.0, 164.0, 113.0, 68.8, None).bridged() == ()  # 1.65 after 1.45
    assert _table(279.0, 164.0, 113.0, None, None).bridged() == (279.0, 164.0, 113.0)
    assert _table(270.0, 164.0, None, 68.8, None).bridged() == ()  # 164 -> 68.8: 3rd and 4th, or 3rd to 5th
    assert _table(None, 164.0, 113.0, 80.0, None).bridged()[1:] == (164.0, 113.0, 80.0)  # 1st bounded
    assert _table(270.0, 164.0, 113.0, None, 40.0, confidence=0.3).bridged() == ()
    assert not _table(131.0, 79.5, 55.9, 44.0, None, None).ready  # nothing of it written into a profile


def test_1st_alone_unseen_is_bounded_by_the_gearbox_once_the_launches_prove_a_gear_above_2nd():
    """Read once a second, a kei truck's 1st leaves neither a steady run nor a launch's lock, while the
    launches prove a gear above the highest cluster. A manual has no forward gear above 2nd but 1st: its
    number is certain, its ratio bounded by what makes a gearbox (at least 1.15 and 2nd/3rd / 1.2 above
    2nd, at most 2.1). The dash numbers the gears by the bound's geometric middle, the tracker reads 1st
    with a quarter of the bound's width as its spread, and nothing is written into a profile."""
    table = _table(None, 164.0, 113.0, 68.8, 51.0)
    low = max(1.15, 164.0 / 113.0 / 1.2)
    assert not table.ready and table.rpm_per_kmh() == ()
    bridged = table.bridged()
    assert bridged[1:] == (164.0, 113.0, 68.8, 51.0) and not gearbox_problem(bridged)
    assert bridged[0] == pytest.approx(164.0 * math.sqrt(low * 2.1), rel=1e-3)
    assert table.first_spread() == pytest.approx(math.log(2.1 / low) / 4.0, rel=1e-3)
    assert abs(math.log(279.0 / bridged[0])) < 2.0 * table.first_spread()  # the Hijet's own 1st
    gap = _table(None, 164.0, None, 68.8, 51.0).bridged()  # a gap between two sure gears, bridged too
    assert gap[2] == pytest.approx(math.sqrt(164.0 * 68.8), rel=1e-3) and gap[0] > 1.15 * 164.0
    def weak(*confidences):
        return LearnedRatios((GearRatio(None, 0.0, 0, 0.0),) + tuple(
            GearRatio(k, c, 100, 0.01) for k, c in zip((164.0, 113.0, 68.8, 51.0), confidences)), (), 1000,
            gear_count_given=True, numbering_certain=True)
    # a weak 3rd between two sure gears keeps its own ratio, as with 1st found
    assert weak(0.99, 0.3, 1.0, 1.0).bridged() == pytest.approx((bridged[0], 164.0, 113.0, 68.8, 51.0), rel=1e-3)
    assert weak(0.99, 0.3, 0.3, 1.0).bridged() == ()  # two sure gears: their numbers rest on the weak ones
    assert weak(0.99, 1.0, 1.0, 0.3).bridged() == ()  # top weak: a 5th may be unseen
    assert _table(None, 164.0, 113.0, 80.0, None).bridged()[1:] == (164.0, 113.0, 80.0)  # top never driven too
    assert _table(None, 164.0, 113.0, 68.8, None).bridged() == ()  # ... but not past a step longer than below
    assert _table(270.0, 164.0, None, 68.8, 51.0).first_spread() == 0.0  # 1st found: its own ratio
    # 1st made weak by the launches' locks (three launches at 3 Hz, 0.48 sure, no steady pair), the numbering
    # certain: the launches proved a gear above 2nd all the same, so it is bounded as if unseen (the lazy
    # kei-day at 3 Hz showed no gear from 210 to 270 s for it); a weak 1st *cluster* is not (a phantom?)
    weak_first = LearnedRatios((GearRatio(272.5, 0.48, 0, 0.02),) + _table(164.0, 113.0, 68.8, 51.0).gears, (),
                               1000, gear_count_given=True, numbering_certain=True)
    assert weak_first.bridged() == pytest.approx(bridged, rel=1e-3)
    assert weak_first.first_spread() == pytest.approx(table.first_spread(), rel=1e-3)
    assert weak_first.rpm_per_kmh() == (272.5, 164.0, 113.0, 68.8, 51.0) and not weak_first.ready
    uncertain = dataclasses.replace(weak_first, numbering_certain=False)
    assert uncertain.bridged() == ()  # a numbering not certain numbers nothing


def test_a_kei_truck_read_once_a_second_shows_its_gears_with_1st_bounded():
    """The virtual brisk driver's kei-day, OBD read once a second: the launches prove a gear above 2nd
    (each launch is above it) but never lock in the 2 s of 1st, so 1st is never found. It showed no
    gear in 7 minutes; with 1st bounded it shows gears on over half the moving samples, a wrong one
    on under 2 %, and a wrong 1st on under 0.5 %."""
    from keidash.sim.recorded import record, simulate
    log = record(simulate("hijet-s500p", "kei-day", "brisk", 420.0, 0), rpm_hz=1, seed=0)
    found = learn_from_logs([log], gears=5)
    assert found.numbering_certain and found.gears[0].rpm_per_kmh is None and found.first_spread() > 0.0
    shown, wrong = _learned_live(log)
    assert shown > 0.5 and wrong < 0.02, (shown, wrong)
    assert _learned_live(log, gear=1)[1] < 0.005


@pytest.mark.parametrize("style, seed", [("everyday", 2), ("brisk", 0)])
def test_a_drive_whose_3rd_is_driven_through_shows_its_gears_while_learning(style, seed):
    """The virtual everyday (seed 2) and brisk (seed 0) drivers' kei-days, rpm at 5 Hz, hold 3rd
    steadily for a few dozen pairs in 7 minutes (1st for none: it comes from the launches). Live
    learning with the Hijet's gear count shows gears on over half the moving samples, a wrong one on
    under 2 %. (They showed none until a weak 3rd was bridged between two sure gears, and until
    each reading was paired with the other channel at its instant; the
    bridging itself: test_a_weak_gear_between_two_sure_ones_*.)"""
    from keidash.sim.recorded import virtual_log
    log = virtual_log("hijet-s500p", "kei-day", style, 420, rpm_hz=5, seed=seed)
    found = learn_from_logs([log], gears=5)
    assert found.gears[2].samples < 40 and found.gears[0].samples == 0 and len(found.bridged()) == 5
    shown, wrong = _learned_live(log)
    assert shown > 0.5 and wrong < 0.02, (shown, wrong)


def test_launches_read_3_times_a_second_pair_the_rpm_with_the_speed_of_its_instant():
    """OBD read 3 times a second (a slow K-line ECU): pulling away the speed moves 1.7 km/h between
    readings. Carried along the slope of the last readings and held, it read 1st's launches too far
    off to lock, and the lazy driver's town drive showed no gear in 7 minutes; interpolated between
    the readings around each rpm reading (SPARSE_SPEED_S), the launches lock in 1st."""
    from keidash.sim.recorded import record, simulate
    log = record(simulate("hijet-s500p", "town", "lazy", 420.0, 0), rpm_hz=3, seed=0)
    shown, wrong = _learned_live(log)
    assert shown > 0.4 and wrong < 0.02, (shown, wrong)


def _learned_live(log, gear: int | None = None) -> tuple[float, float]:
    """(a gear shown, a wrong gear shown) over the moving labelled samples of ``log`` played through
    the estimator with the Hijet's profile: its gear count, no ratios (learned live); with ``gear``,
    that gear shown, and shown wrongly."""
    from dataclasses import replace
    from keidash.estimate.drives import estimate_log
    from keidash.estimate.estimator import config_for
    hijet = load_profile("hijet-s500p")
    config = config_for(replace(hijet, gear_ratios=(), final_drive=None), {}, ("obd",))
    counted = [(s, r) for s, r in zip(log.samples, estimate_log(log, config))
               if s.moving and s.rpm and s.gear and s.gear > 0]
    shown = [(s, r) for s, r in counted if r.gear_est > 0 and (gear is None or r.gear_est == gear)]
    return len(shown) / len(counted), sum(r.gear_est != s.gear for s, r in shown) / len(counted)


def _sure(*gears):
    """A table of (rpm per km/h, confidence) gears, count given, numbering certain."""
    return LearnedRatios(tuple(GearRatio(k, c, 100, 0.01) for k, c in gears), (), 1000,
                         gear_count_given=True, numbering_certain=True)


def test_a_weak_gear_between_two_sure_ones_does_not_hold_the_numbers_back():
    """A kei truck's 2nd and 3rd are driven through: a few steady pairs leave a weak cluster
    between two sure ones. With 1st and top sure and the sure gears numbered by themselves
    (nothing else fits them), the weak one's number is its place: it is used at its own ratio,
    or, when that breaks the gearbox's steps (a phantom peak), bridged like a missing gear."""
    weak_3rd = _sure((270.0, 0.8), (164.0, 0.99), (112.0, 0.49), (68.8, 1.0), (51.0, 1.0))
    assert not weak_3rd.ready and weak_3rd.bridged() == (270.0, 164.0, 112.0, 68.8, 51.0)
    weak_2nd = _sure((272.0, 0.6), (161.0, 0.19), (113.0, 0.95), (69.0, 1.0), (51.0, 1.0))
    assert weak_2nd.bridged() == (272.0, 161.0, 113.0, 69.0, 51.0)
    phantom = _sure((270.0, 0.8), (164.0, 0.99), (140.0, 0.3), (68.8, 1.0), (51.0, 1.0))
    assert gearbox_problem((270.0, 164.0, 140.0, 68.8, 51.0))  # its own ratio is no gearbox's 3rd
    assert phantom.bridged() == pytest.approx((270.0, 164.0, math.sqrt(164.0 * 68.8), 68.8, 51.0), rel=1e-3)
    # without the count the table is the gears found: numbered for sure (1st from the launches, a light peak
    # the gearbox needs a gear, no phantom), a weak one between two sure ones is used at its own ratio too
    free = dataclasses.replace(weak_3rd, gear_count_given=False)
    assert free.bridged() == (270.0, 164.0, 112.0, 68.8, 51.0)
    assert dataclasses.replace(free, numbering_certain=False).bridged() == ()
    weak_1st = _sure((270.0, 0.3), (164.0, 0.99), (112.0, 0.9), (68.8, 1.0), (51.0, 1.0))
    assert dataclasses.replace(weak_1st, gear_count_given=False).bridged() == ()  # a weak 1st may be a phantom
    # the close-ratio car's brisk kei-day at 2 Hz: 5th skipped, never seen, and 6th found beside a weak 4th:
    # the top step (1.53) longer than the one below it (1.31) may hide a gear, and 6th is not numbered 5th
    skipped = _sure((131.6, 0.99), (79.6, 0.99), (55.9, 1.0), (42.5, 0.13), (27.8, 1.0))
    assert dataclasses.replace(skipped, gear_count_given=False).bridged() == ()


def test_without_the_count_a_gear_driven_briefly_between_two_sure_ones_does_not_keep_the_dash_blank(tmp_path):
    """The brisk driver's kei-day in the Hijet (seed 1) logged as a CSV at 5 Hz and learned live with no
    count: from 261 s every gear is found and numbered for sure, 1st from the launches, but 3rd, driven
    through, has 10 steady pairs (confidence 0.37): the dash showed no gear for the rest of the drive (0 %
    shown), though with the count the same weak 3rd between two sure gears is used at its own ratio
    (LearnedRatios.bridged). Without the count it is too: a gear shown on most of the drive's last third,
    no wrong gear beyond the tracker's own."""
    from keidash.estimate.drives import estimate_log
    from keidash.estimate.estimator import config_for
    from keidash.profiles import unknown_profile
    from keidash.replay import load_log
    from keidash.sim.recorded import record, simulate, write_logger_csv
    path = str(tmp_path / "brisk-kei-day-1-5.csv")
    write_logger_csv(record(simulate("hijet-s500p", "kei-day", "brisk", 420.0, 1), rpm_hz=5, seed=1), path)
    log = load_log(path)
    rows = [(s, r) for s, r in zip(log.samples, estimate_log(log, config_for(unknown_profile(), {}, ("replay",))))
            if s.moving and s.rpm and s.gear and s.gear > 0]
    shown = [(s, r) for s, r in rows if r.gear_est > 0]
    assert len(shown) > 0.25 * len(rows)
    assert sum(r.gear_est != s.gear for s, r in shown) <= 0.02 * len(rows)


@pytest.mark.parametrize("table", [
    # without the weak 3rd and 4th, 164 -> 51 (3.2 x) is two gear steps or three: 51 may be 4th, a
    # 5th not yet seen (five clusters for five gears number themselves; four sure ones need not)
    _sure((270.0, 0.8), (164.0, 0.99), (113.0, 0.3), (69.0, 0.3), (51.0, 1.0)),
    _sure((270.0, 0.3), (164.0, 0.99), (113.0, 0.99), (68.8, 1.0), (51.0, 1.0)),  # 1st weak
    _sure((270.0, 0.8), (164.0, 0.99), (113.0, 0.99), (68.8, 1.0), (51.0, 0.3)),  # top weak
], ids=["numbers-rest-on-weak-gears", "1st-weak", "top-weak"])
def test_weak_gears_are_not_bridged_where_a_number_would_rest_on_them(table):
    assert table.bridged() == ()


def test_nothing_seen_with_the_gear_count_given_is_every_gear_missing():
    result = learned(LearnerState(), 5)
    assert result.gears == (GearRatio(None, 0.0, 0, 0.0),) * 5 and not result.ready and result.found == 0


def test_live_learning_refining_its_ratios_never_blanks_the_gear():
    """Once the gears are numbered, live learning re-reads its histogram every 5 s and the ratios
    move by hundredths. Each such refinement used to start the gear tracker again: the gear shown
    blanked, and the lever held with the clutch in was forgotten (a coast to a stop in 5th walked
    down to 2nd). The same gears with refined ratios keep the tracker; the virtual lazy driver's
    town drive (10 Hz) blanked 10 times while moving before, never now."""
    from dataclasses import replace
    from keidash.estimate.drives import estimate_log
    from keidash.estimate.estimator import config_for
    from keidash.sim.recorded import virtual_log
    hijet = load_profile("hijet-s500p")
    config = config_for(replace(hijet, gear_ratios=(), final_drive=None), {}, ("obd",))
    log = virtual_log("hijet-s500p", "town", "lazy", 420, rpm_hz=10, seed=0)
    rows = list(estimate_log(log, config))
    first = next(i for i, r in enumerate(rows) if r.gear_est > 0)
    assert log.samples[first].t < 300  # numbered within 5 minutes: the refinements after it are the test
    blanked = [s.t for s, a, b in zip(log.samples[first + 1:], rows[first:], rows[first + 1:])
               if a.gear_est > 0 and b.gear_est < 0 and s.moving]
    assert blanked == []


def test_a_weak_1st_cluster_where_the_launches_lock_is_1st_seen_two_ways():
    """The everyday driver's kei-day (seed 1, 5 Hz): by 4 minutes a handful of steady pairs (6) make
    a weak cluster at 1st's ratio, too weak alone (confidence ~0.1), and the launches lock there
    too (read against 2nd, they prove a gear above it). The same gear seen two ways: the
    confidences combine, and the gears are numbered a minute sooner (before: not until the weak
    cluster fell under the histogram's share and the launches alone made 1st)."""
    from keidash.sim.recorded import virtual_log
    log = virtual_log("hijet-s500p", "kei-day", "everyday", 420, rpm_hz=5, seed=1)
    state = _fed(log, until=240.0)
    highest = clusters(state)[0]
    truth = load_profile("hijet-s500p").rpm_per_kmh()[0] * 1.02  # the recorded speed reads 2 % low
    assert highest.rpm_per_kmh == pytest.approx(truth, rel=0.05) and highest.mass < 20
    result = learned(state, 5)
    assert result.gears[0].samples == round(highest.mass)  # the histogram's cluster, not the launches' value
    assert result.gears[0].confidence >= 0.5 and result.ready


def test_a_profile_with_too_few_gears_shows_no_wrong_gear_and_says_so(tmp_path, capsys):
    """A 5-speed truck whose profile says 4 forward gears (another grade's profile picked, a 4-speed's
    transmission typed): the count given decided the numbers by itself, 2nd..5th numbered 1st..4th or
    1st..4th with 5th unseen, and the dash showed a wrong gear on 53-88 % of a 7-minute drive (the
    Hijet's 6 town and kei-day drives at 10 Hz). More gears than the count (a cluster left out for
    it, or launches locked in a gear above the highest cluster) leave the numbering unsure; the dash
    shows no gear and says why, learn says so and exits 1. With the right count the drive is numbered.
    The truck is the 2WD S500P: the 4WD's low range (1.782) puts low 2nd within 3 % of high 1st, so a
    launch locked there may be either and only a fifth cluster or the launches' 1st decides (later)."""
    from dataclasses import replace
    from keidash.cli import main
    from keidash.estimate.drives import _dashes
    from keidash.estimate.estimator import config_for
    from keidash.sim.recorded import record, simulate
    log = record(simulate("hijet-s500p", "town", "everyday", 420.0, 0), rpm_hz=10, seed=0)
    state = learn_pairs(LearnerState(), log)
    four, five = learned(state, 4), learned(state, 5)
    assert not four.numbering_certain and four.more_gears == 5 and four.numbered() == ((), 0.0)
    assert five.numbering_certain and five.more_gears is None and five.ready
    # an EL gear below 1st, left out of the count, may be what the launches locked in above 2nd: no evidence
    assert learned(state, 4, extra_low=True).more_gears is None
    assert learned(state, 4, low_range=1.782).more_gears == 5  # the 4WD's low 2nd is 6 % off that lock
    hijet = load_profile("hijet-s500p")
    config = config_for(replace(hijet, gear_ratios=(), final_drive=None, gear_count=4, transfer_low_ratio=None),
                        {}, ("obd",))
    counted = wrong = 0
    for sample, _, dash in _dashes(log, config):
        if sample.moving and sample.rpm and sample.gear and sample.gear > 0:
            counted += 1
            wrong += dash.gear is not None and dash.gear != sample.gear
    assert counted > 5000 and wrong / counted < 0.02, wrong / counted
    assert dash.gear is None and dash.gear_note == "check gears" and "5 or more forward gears seen, the profile says 4" in dash.message
    path = tmp_path / "hijet.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("time,rpm,speed_kmh\n")
        for s in log.samples:
            f.write(f"{s.t},{s.rpm if 'rpm' in s.fresh else ''},{s.speed_kmh if 'speed_kmh' in s.fresh else ''}\n")
    status = main(["learn", str(path), "--gears", "4", "--out", str(tmp_path / "four.toml")])
    out = capsys.readouterr().out
    assert status == 1 and "show 5 or more forward gears, more than the 4 given" in out, out
    assert load_profile(str(tmp_path / "four.toml")).rpm_per_kmh() == ()
    status = main(["learn", str(path), "--transmission", "4MT"])  # the count the gearbox's name gives
    assert status == 1 and "more than the 4 given" in capsys.readouterr().out
    assert main(["learn", str(path), "--transmission", "5MT"]) == 0
    assert "gear 5:" in capsys.readouterr().out


def test_launches_seen_going_straight_into_the_highest_cluster_make_it_1st():
    """The virtual brisk driver's kei-day (seed 1, 10 Hz) holds 1st steadily (a cluster at 279 rpm per
    km/h): every launch is seen going from the clutch's slip straight into it, none locks above it.
    But the brisk driver is in 2nd within the 2.5 s after a standstill, so each launch's lowest
    ratio is 2nd's, under that cluster, and the launches decided nothing: without the gear count the
    five gears found were never numbered (`keidash learn` exited 1, live learning showed nothing in 7
    minutes). Almost every launch, and at least three, seen going straight into the highest cluster,
    none locked above it, make it 1st. (Read 3 times a second a launch into 2nd is not seen closely
    enough to count: test_launches_read_3_times_a_second_never_number_2nd_as_1st.)"""
    from keidash.sim.recorded import record, simulate
    log = record(simulate("hijet-s500p", "kei-day", "brisk", 420.0, 1), rpm_hz=10, seed=1)
    found = learn_from_logs([log])
    truth = load_profile("hijet-s500p").rpm_per_kmh()
    assert found.numbering_certain and found.ready and found.launches == 5
    assert found.rpm_per_kmh() == pytest.approx(truth, rel=0.02)


def _logger_csv(tmp_path, style: str, seed: int, hz: float):
    """The virtual kei-day drive of ``style`` and ``seed`` at ``hz``, written as a plain logger writes a
    CSV (every row the latest of both readings) and read back."""
    from keidash.replay import load_log
    from keidash.sim.recorded import record, simulate, write_logger_csv
    path = str(tmp_path / f"{style}-{seed}.csv")
    write_logger_csv(record(simulate("hijet-s500p", "kei-day", style, 420.0, seed), rpm_hz=hz, seed=seed), path)
    return load_log(path)


def _launch(pairs) -> tuple:
    """A launch's pairs (t s, log rpm per km/h, rpm, km/h) from (t, rpm, km/h)."""
    return tuple((t, math.log(rpm / kmh), rpm, kmh) for t, rpm, kmh in pairs)


def test_an_rpm_read_again_after_the_shift_is_no_part_of_1sts_lock():
    """A log may repeat the latest rpm on the row of a new speed. Pulling away in 1st, the rpm falling
    into the first upshift was read on one row (left out of the lock: the clutch going in) and repeated
    on the next, beside a new speed, where it passed for the rpm rising with the speed: the lock took
    the shift's lower ratio in (the everyday driver's kei-day logged as CSV at 5 Hz locked from 222 to
    274 rpm per km/h, 1st is 279). The rpm is compared with the last *other* rpm read."""
    # 1st at 280 rpm per km/h, then the clutch in: 2300 rpm read at 9.5 km/h, again at 9.7 and 10.0
    seq = _launch([(0.0, 1400, 2.0), (0.1, 1700, 6.1), (0.2, 1960, 7.0), (0.3, 2240, 8.0), (0.4, 2520, 9.0),
                   (0.5, 2300, 9.5), (0.6, 2300, 9.7), (0.7, 2300, 10.0), (0.8, 1700, 10.3)])
    top = 164.0  # 2nd: 1700 rpm at 10.3 km/h
    locks = [launch_gears(LearnerState(launch_seqs=(seq,)), top).locked_above]
    assert len(locks[0]) == 1 and math.exp(locks[0][0]) == pytest.approx(280.0, rel=0.01), [math.exp(x) for x in locks[0]]


def test_launches_that_show_no_gear_do_not_outvote_those_seen_going_into_1st():
    """A driver who holds 1st steadily (a cluster at 279 rpm per km/h) and is in 2nd within the 2.5 s after
    each standstill: every launch's lowest ratio is 2nd's, under the cluster, so only the launches seen
    going from the slip straight into it can make it 1st. Of 5 launches 3 are seen so and 2 show nothing
    (the speed read at 6 km/h beside an rpm from before the clutch bit: a ratio under any gear's). "Almost
    every launch" counted those two against 1st and the gears were never numbered without the count; the
    launches that show their gear decide, at least MIN_LAUNCHES of them and half of all."""
    from keidash.estimate import learn
    truth = load_profile("hijet-s500p").rpm_per_kmh()
    state = _histogram(dict(zip(truth, (1000.0, 1400.0, 500.0, 1100.0, 3000.0))))
    into_1st = _launch([(0.0, 1300, 2.0), (0.1, 1300, 2.6), (0.2, 1350, 3.2), (0.3, 1400, 3.9), (0.4, 1450, 4.6),
                        (0.5, 1500, 5.3)])  # the clutch slipping at a held rpm, the speed rising: into 1st
    nothing = _launch([(0.0, 1527, 2.3), (0.1, 1435, 6.1)])
    lowest = [0] * learn.N_BINS
    lowest[learn._bin(math.log(truth[1]))] = 5.0  # each launch in 2nd within 2.5 s
    state = dataclasses.replace(state, launches=tuple(lowest), launch_seqs=(into_1st,) * 3 + (nothing,) * 2)
    seen = launch_gears(state, truth[0])
    assert seen.in_top == 3 and not seen.locked_above
    found = learned(state)
    assert found.numbering_certain and [g.rpm_per_kmh for g in found.gears] == pytest.approx(truth, rel=0.01)


def test_a_count_too_low_read_once_a_second_shows_no_wrong_gear():
    """Read once a second a launch shows no lock: the everyday driver's kei-day (seed 0) with a profile of
    4 gears found 2nd, 3rd and 5th, which the count alone numbered 1st, 2nd and 4th at 155 s, and the dash
    kept that numbering once shown: a wrong gear on 62 % of the drive. Every launch's lowest ratio lay a
    gear step or more above the highest cluster (in 1st for the LAUNCH_S after the standstill): the count's
    1st is doubted, and a numbering shown with it as 1st is dropped. With the right count nothing is doubted
    (the gears above 2nd make no 1st: the count alone numbers 2nd..5th from 2nd)."""
    from dataclasses import replace
    from keidash.estimate.drives import _dashes
    from keidash.estimate.estimator import config_for
    from keidash.sim.recorded import record, simulate
    log = record(simulate("hijet-s500p", "kei-day", "everyday", 420.0, 0), rpm_hz=1, seed=0)
    hijet = replace(load_profile("hijet-s500p"), gear_ratios=(), final_drive=None, transfer_low_ratio=None)
    for count in (4, 5):
        config = config_for(replace(hijet, gear_count=count), {}, ("obd",))
        counted = wrong = 0
        for sample, _, dash in _dashes(log, config):
            if sample.moving and sample.rpm and sample.gear and sample.gear > 0:
                counted += 1
                wrong += dash.gear is not None and dash.gear != sample.gear
        assert counted > 700 and wrong / counted <= 0.02, (count, wrong / counted)
    state = learn_pairs(LearnerState(), replace(log, samples=tuple(s for s in log.samples if s.t <= 155.0)))
    four, five = learned(state, 4), learned(state, 5)
    assert four.first_doubted and not four.numbering_certain
    assert not five.first_doubted and five.gears[1].rpm_per_kmh == four.gears[0].rpm_per_kmh  # 2nd, not 1st


def _histogram(pairs_at: dict[float, float], rpm: float = 2500.0,
               rpm_spread: dict[float, float] | None = None) -> LearnerState:
    """A learner whose steady (and moving) pairs lie at the given rpm per km/h, so many each, spread over
    +-1 % as whole-km/h speeds at 50 km/h spread them, at ``rpm`` on average, their rpm's standard deviation
    over its mean ``rpm_spread[ratio]`` (0.1, the engine pulled through the gear, unless given)."""
    from keidash.estimate import learn
    weights, squares = [0.0] * learn.N_BINS, [0.0] * learn.N_BINS
    for ratio, pairs in pairs_at.items():
        lo, hi = learn._span(math.log(ratio), 0.01)
        cv = (rpm_spread or {}).get(ratio, 0.1)
        for i in range(lo, hi + 1):
            weights[i] += pairs / (hi - lo + 1)
            squares[i] += pairs / (hi - lo + 1) * rpm * rpm * (1.0 + cv * cv)
    return LearnerState(weights=tuple(weights), moving=tuple(weights), rpm_sums=tuple(w * rpm for w in weights),
                        rpm_squares=tuple(squares), pairs=round(sum(pairs_at.values())))


def test_a_gear_driven_briefly_stays_found_as_top_gears_pairs_pile_up():
    """A peak is a cluster with at least 0.3 % of all pairs. The brisk driver's kei-day (seed 0, a CSV at
    10 Hz) found 3rd (113 rpm per km/h) at 3 minutes from ~20 pairs; by 5 minutes 5th held thousands
    and 3rd fell under the share: the cluster was lost, 2nd -> 4th (2.4) was no gearbox's step and the
    dash showed no gear for the last 80 s (37 % shown, 60 % after). Between two clusters more than 2.1
    apart a gearbox must have a gear: a peak there with at least MIN_CLUSTER_SAMPLES pairs is kept."""
    truth = load_profile("hijet-s500p").rpm_per_kmh()
    pairs = (300.0, 1500.0, 12.0, 1000.0, 6000.0)
    found = [c.rpm_per_kmh for c in clusters(_histogram(dict(zip(truth, pairs))))]
    assert found == pytest.approx(truth, rel=0.01)
    # fewer pairs than a cluster needs make no gear, gap or not; nor does a peak half a gear step from 2nd
    assert len(clusters(_histogram(dict(zip(truth, (300.0, 1500.0, 3.0, 1000.0, 6000.0)))))) == 4
    near_2nd = dict(zip(truth, pairs))
    del near_2nd[truth[2]]
    near_2nd[truth[1] / 1.08] = 12.0
    assert len(clusters(_histogram(near_2nd))) == 4


def test_a_light_cluster_the_gearbox_needs_is_a_gear_not_a_phantom():
    """A light cluster between two gears is set apart as a phantom (slip held steady) unless the gears
    need it: the close-ratio car's 5th, driven for seconds on a kei-day (1.21 and 1.30 from 4th and 6th),
    left out made 4th -> 6th 1.58, longer than 1.2 x the step below it, which no gearbox has; learned from
    the log itself, as `keidash eval` learns a held-out log with no vehicle.toml, 6th was numbered 5th and
    the tracker agreed with the gear sensor on 60 % of the drive (98.9 % now). A peak of slip between the
    Hijet's 2nd and 3rd splits their step into two short ones below a long one: still a phantom."""
    car = load_profile(str(Path(__file__).parent / "data" / "profiles" / "close-ratio-6mt.toml")).rpm_per_kmh()
    found = learned(_histogram(dict(zip(car, (2500.0, 500.0, 1000.0, 400.0, 60.0, 2900.0)))))
    assert [g.rpm_per_kmh for g in found.gears] == pytest.approx(car, rel=0.01) and not found.other
    hijet = load_profile("hijet-s500p").rpm_per_kmh()
    slip = math.sqrt(hijet[1] * hijet[2])
    found = learned(_histogram({**dict(zip(hijet, (300.0, 1500.0, 800.0, 1000.0, 6000.0))), slip: 60.0}))
    assert [g.rpm_per_kmh for g in found.gears] == pytest.approx(hijet, rel=0.01)
    assert found.other == pytest.approx((slip,), rel=0.01)


def test_with_the_gear_count_a_light_cluster_that_makes_the_gearbox_is_a_gear():
    """The lazy driver drives the close-ratio car's 3rd for seconds on a kei-day: a light peak between 2nd
    and 4th. Without the count it may be slip as well as a gear (2nd -> 4th, 1.80, fits one step; so does
    every step with it): set apart, the numbering unsure. With the count of 6 and five gears found, the
    count asks for one more and the light peak makes a gearbox with them: it is that gear. Before, the
    count placed the missing gear above top and nothing was shown (live learning with the count showed
    no gear on that drive; eval with --transmission 6MT scored 41.8 %, 98.2 % now). A peak of slip
    splitting a step into two short ones below a longer one makes no gearbox and stays out."""
    car = load_profile(str(Path(__file__).parent / "data" / "profiles" / "close-ratio-6mt.toml")).rpm_per_kmh()
    state = _histogram(dict(zip(car, (1800.0, 700.0, 80.0, 860.0, 400.0, 2900.0))), rpm_spread={car[2]: 0.005})
    alone = learned(state)  # held at one engine speed: slip as likely as a gear
    assert [g.rpm_per_kmh for g in alone.gears] == pytest.approx(car[:2] + car[3:], rel=0.01)
    assert alone.other == pytest.approx((car[2],), rel=0.01) and not alone.numbering_certain
    six = learned(state, 6)
    assert [g.rpm_per_kmh for g in six.gears] == pytest.approx(car, rel=0.01) and not six.other
    hijet = load_profile("hijet-s500p").rpm_per_kmh()
    slip = math.sqrt(hijet[1] * hijet[2])
    five = learned(_histogram({**dict(zip(hijet[:4], (300.0, 1500.0, 800.0, 1000.0))), slip: 60.0}), 5)
    assert five.other == pytest.approx((slip,), rel=0.01) and five.found == 4


def test_without_the_gear_count_a_light_cluster_the_engine_was_pulled_through_is_likeliest_a_gear():
    """A light peak between two gears whose pairs' rpm spread widely with their ratio held (the engine pulled
    through it: the lazy driver's 3rd on the way to 4th) is likeliest a gear: the numbering without the count
    has it (eval scores that), never certain (the dash waits: only a count proves a gearbox has no gear
    there). Held at one engine speed (slip held steady), the same peak is set apart. A pulled-through peak
    that would split a step into two short ones below a long one (slip between the Hijet's 2nd and 3rd)
    makes no gearbox and stays out."""
    car = load_profile(str(Path(__file__).parent / "data" / "profiles" / "close-ratio-6mt.toml")).rpm_per_kmh()
    pairs = dict(zip(car, (1800.0, 700.0, 80.0, 860.0, 400.0, 2900.0)))
    pulled = learned(_histogram(pairs, rpm_spread={car[2]: 0.05}))
    assert [g.rpm_per_kmh for g in pulled.gears] == pytest.approx(car, rel=0.01) and not pulled.other
    assert pulled.through_at == pytest.approx((car[2],), rel=0.01)
    assert not pulled.numbering_certain and not pulled.ready and not pulled.bridged()
    held = learned(_histogram(pairs, rpm_spread={car[2]: 0.01}))
    assert held.other == pytest.approx((car[2],), rel=0.01) and held.through_at == ()
    hijet = load_profile("hijet-s500p").rpm_per_kmh()
    slip = math.sqrt(hijet[1] * hijet[2])
    found = learned(_histogram({**dict(zip(hijet, (300.0, 1500.0, 800.0, 1000.0, 6000.0))), slip: 60.0}))
    assert found.other == pytest.approx((slip,), rel=0.01) and found.through_at == ()


def test_a_gear_skipped_leaves_a_gap_where_the_steps_are_no_gearboxs(tmp_path, capsys):
    """The brisk driver skips the close-ratio car's 5th on a kei-day (4th -> 6th) and drives its 4th for
    seconds: 1st, 2nd, 3rd and 6th held, 4th a light peak. 3rd -> 6th (2.0 x) fits one step by MAX_STEP, so
    6th was numbered 4th, the light 4th set apart as a phantom (with it 4th -> 6th, 1.57, would follow a
    1.28: no gearbox's), and `keidash eval --transmission 6MT` scored 61 % of the drive. A 2.0 step after a
    1.42 is no gearbox's either (the steps shrink towards top): where no numbering with adjacent
    neighbours makes one, a gap may lie between two clusters closer than MAX_STEP. With the light 4th the
    count of six has one numbering, 5th missing (bridged for the dash); without it the numbers are unsure,
    never top as 4th. Without the count (eval of a lone log with no vehicle.toml) the same numbering is the
    likeliest, scored, never shown; `keidash learn` says so."""
    from keidash.cli import main
    from keidash.profiles.body import Body
    from keidash.sim.recorded import record, simulate
    car = load_profile(str(SIX)).rpm_per_kmh()
    pairs = dict(zip(car, (1300.0, 340.0, 510.0, 57.0, 0.0, 1470.0)))
    six = learned(_histogram({k: n for k, n in pairs.items() if n}), 6)
    assert six.numbering_certain and not six.other
    assert [g.rpm_per_kmh for g in six.gears[:4]] == pytest.approx(car[:4], rel=0.01) and six.gears[4].rpm_per_kmh is None
    assert six.gears[5].rpm_per_kmh == pytest.approx(car[5], rel=0.01)
    assert six.bridged() == pytest.approx(car, rel=0.05)
    without_4th = learned(_histogram({k: n for k, n in pairs.items() if n > 100}), 6)
    assert not without_4th.numbering_certain and not without_4th.bridged()
    assert without_4th.gears[3].rpm_per_kmh is None  # 6th's ratio is no 4th
    body = Body(mass_kg=1350.0, drag_area_m2=0.65, clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15)
    log = record(simulate(str(SIX), "kei-day", "brisk", 420.0, 0, body=body), rpm_hz=5, seed=0)
    assert {s.gear for s in log.samples if s.moving} >= {4, 6}
    found = learn_from_logs([log], gears=6, manual=True)
    assert found.numbering_certain and found.gears[4].rpm_per_kmh is None
    assert [found.gears[n].rpm_per_kmh for n in (0, 1, 2, 3, 5)] == pytest.approx(
        [car[n] for n in (0, 1, 2, 3, 5)], rel=0.06)
    assert found.bridged() == pytest.approx(car, rel=0.06)
    # without the count (eval of a lone log with no vehicle.toml): the same numbering as the likeliest only
    # (never shown: a slip peak could stand there); with the gearbox's steps as found, none taken
    alone = learn_from_logs([log], manual=True)
    assert not alone.numbering_certain and not alone.ready and not alone.bridged() and not alone.other
    assert alone.skipped_at == pytest.approx(car[3], rel=0.02) and alone.unsure_at is None
    assert alone.for_scoring() == pytest.approx(car, rel=0.06)
    lazy = learn_from_logs([record(simulate(str(SIX), "kei-day", "lazy", 420.0, 0, body=body), rpm_hz=5, seed=0)],
                           manual=True)
    # 2nd -> 4th (1.80) fits one step as well: nothing skipped, the light 3rd a gear driven through
    assert lazy.skipped_at is None and lazy.through_at == pytest.approx((car[2],), rel=0.02)
    path = tmp_path / "brisk.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("time,rpm,speed_kmh\n")
        for s in log.samples:
            f.write(f"{s.t},{s.rpm if 'rpm' in s.fresh else ''},{s.speed_kmh if 'speed_kmh' in s.fresh else ''}\n")
    capsys.readouterr()
    assert main(["learn", str(path)]) == 1
    out = capsys.readouterr().out
    assert "gear 5: not seen" in out and "a gear skipped" in out and "taken as a gear" in out


def test_without_the_gear_count_a_gear_passed_through_in_a_long_step_leaves_the_numbers_unsure(tmp_path, capsys):
    """The lazy driver's kei-day in the close-ratio car (seed 1, 5 Hz), alone, no count: 4th is engaged for a
    second at 186 s and for three at 270 s, never held steadily, so 3rd -> 5th (1.53, after a 2nd -> 3rd of
    1.43) read as one step and the dash showed 5th as 4th and 6th as 5th from 180 s to the end: a wrong gear
    on 41 % of the moving samples. The step is longer than the one below it, where a gear hides (a gearbox's
    steps shrink towards top), and the moving pairs peak inside it, a gear step from both: a gear passed
    through. The numbering is not certain (the dash waits): a wrong gear on under 1 %."""
    from keidash.estimate.evaluate import evaluate
    from keidash.profiles.body import Body
    from keidash.sim.recorded import record, simulate, write_logger_csv
    car = load_profile(str(SIX)).rpm_per_kmh()
    body = Body(mass_kg=1350.0, drag_area_m2=0.65, clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15)
    log = record(simulate(str(SIX), "kei-day", "lazy", 420.0, 1, body=body), rpm_hz=5, seed=1)
    path = str(tmp_path / "kei-day.csv")
    write_logger_csv(log, path)
    whole = load_log(path)
    state = learn_pairs(LearnerState(), dataclasses.replace(whole, samples=tuple(
        s for s in whole.samples if s.t <= 200.0)))
    found = learned(state)
    assert [g.rpm_per_kmh for g in found.gears] == pytest.approx(car[:3] + car[4:5], rel=0.02)  # no 4th, no 6th
    assert found.glimpsed_at == pytest.approx(car[3], rel=0.03)
    assert not found.numbering_certain and not found.ready
    # 4th glimpsed is a gear in the likeliest numbering, what eval scores (the table is of the gears found)
    assert found.for_scoring() == pytest.approx(car[:5], rel=0.03)
    figures = evaluate([path])[0]
    assert figures.learning_wrong < 0.01, figures
    from keidash.cli import main
    early = tmp_path / "early.csv"
    with open(early, "w", encoding="utf-8") as f:
        f.write("time,rpm,speed_kmh\n")
        for s in whole.samples:
            if s.t <= 200.0:
                f.write(f"{s.t},{s.rpm if 'rpm' in s.fresh else ''},{s.speed_kmh if 'speed_kmh' in s.fresh else ''}\n")
    assert main(["learn", str(early), "--out", str(tmp_path / "early.toml")]) == 1
    assert "a gear was passed through at about 4" in capsys.readouterr().out
    assert load_profile(str(tmp_path / "early.toml")).rpm_per_kmh() == ()


def test_a_gear_glimpsed_read_twice_a_second(tmp_path):
    """The everyday driver's kei-day in the close-ratio car (seed 1) logged at 2 Hz, alone, no count: 4th is
    engaged once for a second at 265 s, four readings 42.4-44.2 rpm per km/h (4.2 % apart: a glimpse is read
    within GLIMPSE_WIDTH, 3 %, of its ratio, 2 % caught three of them, under the four a glimpse wants), and
    from there to the end the dash showed 6th as 5th: a wrong gear on 38 % of the drive. Now 4th is
    glimpsed and the dash waits. Only pairs a gear step from both gears count for a glimpse: read 3 % wide,
    the edge of 4th's own tail (68.5) made a glimpse at 79.5 on the Hijet's brisk farm at 10 Hz."""
    from keidash.estimate.evaluate import evaluate
    from keidash.profiles.body import Body
    from keidash.sim.recorded import record, simulate, write_logger_csv
    body = Body(mass_kg=1350.0, drag_area_m2=0.65, clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15)
    path = str(tmp_path / "kei-day.csv")
    write_logger_csv(record(simulate(str(SIX), "kei-day", "everyday", 420.0, 1, body=body), rpm_hz=2, seed=1), path)
    car = load_profile(str(SIX)).rpm_per_kmh()
    found = learn_from_logs([load_log(path)], manual=True)
    assert found.glimpsed_at == pytest.approx(car[3], rel=0.03)
    assert found.for_scoring() == pytest.approx(car, rel=0.03)  # the likeliest: 4th a gear
    alone = evaluate([path])[0]
    assert alone.learning_wrong <= 0.02 and alone.gear_agree >= 0.97, alone


def test_without_the_count_a_step_no_gearbox_has_holds_a_gear_not_found(tmp_path, capsys):
    """The brisk driver's kei-day in the Hijet (seed 1) logged at 1 Hz, alone, no count: 3rd is never held
    steadily, so 2nd -> 4th (2.37, longer than the MAX_STEP of any gearbox) stood as one step and eval scored
    4th and 5th as 3rd and 4th. A step longer than MAX_STEP holds as few gears not found as leave each step at
    most MAX_STEP: the likeliest numbering has 3rd missing (not certain, the dash waits)."""
    from keidash.estimate import learn
    from keidash.estimate.evaluate import evaluate
    from keidash.sim.recorded import record, simulate, write_logger_csv
    assert learn._bridging_slots([279.0, 164.0, 69.0, 51.0]) == (0, 1, 3, 4)
    assert learn._bridging_slots([400.0, 100.0, 50.0]) == (0, 2, 3)  # 4.0: two steps of 2.0
    assert learn._bridging_slots([279.0, 164.0, 113.0, 69.0, 51.0]) == (0, 1, 2, 3, 4)
    assert learn._bridging_slots([900.0, 300.0, 100.0, 33.0, 11.0]) == (0, 1, 2, 3, 4)  # more than MAX_GEARS
    path = str(tmp_path / "kei-day.csv")
    write_logger_csv(record(simulate("hijet-s500p", "kei-day", "brisk", 420.0, 1), rpm_hz=1, seed=1), path)
    truth = load_profile("hijet-s500p").rpm_per_kmh()
    found = learn_from_logs([load_log(path)], manual=True)
    ratios = [g.rpm_per_kmh for g in found.gears]
    assert ratios[2] is None and ratios[:2] + ratios[3:] == pytest.approx(truth[:2] + truth[3:], rel=0.03)
    assert not found.numbering_certain and not found.ready and found.missing_between() == [3]
    assert evaluate([path])[0].gear_agree >= 0.9
    from keidash.cli import main
    capsys.readouterr()
    assert main(["learn", path]) == 1
    assert "gear 3: not seen" in (out := capsys.readouterr().out) and "gear 3 never held" in out


def test_without_the_count_eval_scores_a_gear_glimpsed_as_a_gear():
    """Without the count the table is of the gears found (live, a numbering shown stays while the table keeps
    its length); eval scores a gear glimpsed between two of them as a gear where it makes a gearbox with them,
    filling a gap bridged there, and not where it makes none."""
    car = (131.4, 79.3, 55.8, 44.0, 36.2, 27.8)
    found = dataclasses.replace(_table(*car[:3], *car[4:], given=False, certain=False), glimpsed_at=44.0)
    assert [g.rpm_per_kmh for g in found.gears] == list(car[:3] + car[4:])
    assert found.for_scoring() == pytest.approx(car)
    gap = dataclasses.replace(_table(279.0, 164.0, None, 68.8, 51.0, given=False, certain=False), glimpsed_at=110.0)
    assert gap.for_scoring() == pytest.approx((279.0, 164.0, 110.0, 68.8, 51.0))
    beside = dataclasses.replace(found, glimpsed_at=53.0)  # 55.8 -> 53.0: no gearbox's step
    assert beside.for_scoring() == pytest.approx(car[:3] + car[4:])
    counted = dataclasses.replace(_table(*car[:3], *car[4:], None, certain=False), glimpsed_at=44.0)
    assert counted.for_scoring() == pytest.approx(car[:3] + car[4:])  # with the count the table is numbered


def test_with_the_count_a_gear_glimpsed_is_the_one_missing_not_top(tmp_path):
    """The same drive with its count (6MT): five gears held, 4th only glimpsed. A step no longer than MAX_STEP
    reads as one (3rd -> 5th, 1.53), so the one numbering that fit was 1st-5th with 6th never reached, taken as
    certain: 5th and 6th were scored as 4th and 5th (eval 54 % against the gear sensor at 10 Hz), and the dash
    could show them so. The gear glimpsed in that step is the one missing: the likeliest numbering has it at
    4th, and it is not certain (the dash waits until 4th is held)."""
    from keidash.estimate.evaluate import evaluate
    from keidash.profiles.body import Body
    from keidash.sim.recorded import record, simulate, write_logger_csv
    body = Body(mass_kg=1350.0, drag_area_m2=0.65, clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15)
    path = str(tmp_path / "kei-day.csv")
    write_logger_csv(record(simulate(str(SIX), "kei-day", "everyday", 420.0, 1, body=body), rpm_hz=2, seed=1), path)
    car = load_profile(str(SIX)).rpm_per_kmh()
    found = learn_from_logs([load_log(path)], gears=6, manual=True)
    assert found.gear_count_given and found.glimpsed_at == pytest.approx(car[3], rel=0.03)
    assert [g.rpm_per_kmh for g in found.gears] == pytest.approx(car, rel=0.03)
    assert not found.numbering_certain and not found.ready and found.bridged() == ()
    counted = evaluate([path], transmission="6MT")[0]
    assert counted.gear_agree >= 0.97 and counted.learning_wrong <= 0.02, counted


def test_a_peak_of_moving_pairs_is_a_gear_glimpsed_the_tail_of_a_gears_cluster_is_not():
    """`learn._glimpsed` reads the moving pairs inside a step longer than the one below it: a peak of them a
    gear step from both gears is a gear passed through; the tail of a gear's cluster reaching into the step,
    a peak read at idle (rolling with the clutch in), or a step no longer than the one below it, is not."""
    from keidash.estimate import learn
    car = load_profile(str(SIX)).rpm_per_kmh()
    gears = [learn.Cluster(peak=k, rpm_per_kmh=k, mass=500.0, spread=0.01, mean_rpm=2500.0)
             for k in car[:3] + car[4:]]

    def moving(at: dict[float, float], rpm: float = 2500.0) -> LearnerState:  # the gears' own pairs, those ``at``
        weights, rpms = [0.0] * learn.N_BINS, [0.0] * learn.N_BINS
        every = [(g.rpm_per_kmh, 300.0, 2500.0) for g in gears] + [(k, n, rpm) for k, n in at.items()]
        for ratio, pairs, at_rpm in every:
            weights[learn._bin(math.log(ratio))] += pairs
            rpms[learn._bin(math.log(ratio))] += pairs * at_rpm
        return LearnerState(moving=tuple(weights), agreeing=tuple(weights), agreeing_rpm=tuple(rpms))
    glimpse = learn._glimpsed(moving({car[3]: 8.0}), gears, 850.0)
    assert glimpse.rpm_per_kmh == pytest.approx(car[3], rel=0.01) and glimpse.mass == pytest.approx(8.0)
    assert glimpse.mean_rpm == pytest.approx(2500.0) and learn._glimpse_fits(gears, glimpse, 6)
    assert not learn._glimpse_fits(gears, glimpse, 5)  # with it, more gears than the count
    assert learn._glimpsed(moving({car[3]: 3.0}), gears, 850.0) is None  # fewer than a cluster's pairs
    assert learn._glimpsed(moving({car[3]: 8.0}, rpm=900.0), gears, 850.0) is None  # at idle
    # 5th's own tail reaching up into the step (as the Hijet's 4th at 10 Hz reaches 79.5 beside its 68.5)
    assert learn._glimpsed(moving({car[4] * 1.02 ** k: 200.0 * 0.6 ** k for k in range(1, 10)}), gears, 850.0) is None
    tail = {car[2] / 1.02 ** k: 200.0 * 0.6 ** k for k in range(1, 10)}  # falling away from 3rd into the step
    assert learn._glimpsed(moving(tail), gears, 850.0) is None
    # 2nd -> 3rd (1.42) is no longer than 1st -> 2nd (1.65): a peak there is no gear hidden
    assert learn._glimpsed(moving({math.sqrt(car[1] * car[2]): 8.0}), gears, 850.0) is None


def test_a_gearboxs_gears_found_in_part_keep_their_true_numbers_among_those_that_fit():
    """Any 3 or more of the Hijet's five gears, found with the others missing, fit their true slots
    (`learn._numberings`: the steps' progression checked with a gap's gears bridged in equal steps never
    refuses a real gearbox's numbering). The close-ratio car's 1st-3rd and 6th (3rd -> 6th 2.0 x, after 1.42)
    fit only with gears missing between 3rd and 6th, where one step of 2.0 was taken before; a step under 2.1
    that makes a gearbox as one step (2nd -> 4th, 1.80 after 1.66) still reads as one: the count, or a light
    peak between, decides (above)."""
    from itertools import combinations
    from keidash.estimate.learn import _numberings
    hijet = load_profile("hijet-s500p").rpm_per_kmh()
    for k in range(3, 6):
        for found in combinations(range(5), k):
            assert found in _numberings([hijet[n] for n in found], 5, found[0], found[0]), found
    car = load_profile(str(SIX)).rpm_per_kmh()
    brisk = _numberings([car[n] for n in (0, 1, 2, 5)], 6, 0, 0)
    assert (0, 1, 2, 3) not in brisk and (0, 1, 2, 5) in brisk
    assert _numberings([car[n] for n in (0, 1, 3)], 6, 0, 0) == [(0, 1, 2)]


def test_eval_learns_with_the_count_its_transmission_names_where_the_logs_fill_it(tmp_path, capsys):
    """`keidash eval --transmission 6MT` learned a held-out log's ratios without the count (the Etios's
    other logs, which never hold 1st steadily, would leave no ratios with it): the close-ratio car's lazy
    kei-day, its 3rd light, was numbered from the highest found and its gears above 2nd one too low. The
    count is used where it numbers the gears found from 1st up (top gears never held left out: the lazy
    farm drive never holds 6th, and without the count its light 4th was set apart, 84.3 %), else the gears
    found, and eval says which. Without the count the light 3rd is now the likeliest a gear (the engine
    pulled through it): scored as such, 42.6 -> 98.9 %, eval saying the numbering is not certain."""
    from keidash.cli import main
    from keidash.profiles.body import Body
    from keidash.sim.recorded import record, simulate, write_logger_csv
    profile = str(Path(__file__).parent / "data" / "profiles" / "close-ratio-6mt.toml")
    trace = simulate(profile, "kei-day", "lazy", 420.0, 0, body=Body(mass_kg=1350.0, drag_area_m2=0.65,
                                                                    clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15))
    (tmp_path / "logs").mkdir()
    write_logger_csv(record(trace, rpm_hz=5, seed=0), str(tmp_path / "logs" / "kei-day.csv"))
    figures = {}
    for gearbox in (None, "6MT"):
        status = main(["eval", str(tmp_path / "logs"), "--json", str(tmp_path / "eval.json")]
                      + (["--transmission", gearbox] if gearbox else []))
        out = capsys.readouterr().out
        # without the count live learning numbered 2nd -> 4th (1.80) as one step before 3rd's peak was seen
        # and showed a wrong gear on 5.6 %, eval exiting 1; 3rd glimpsed there (learning.md rule 8), it waits
        assert status == 0, out
        assert "shown 0.0%, wrong 0.0%" in out or gearbox is not None, out
        figures[gearbox] = json.loads((tmp_path / "eval.json").read_text())[0]
        assert ("numbering learned is not certain" in out) == (gearbox is None), out
        assert ("held briefly between two gears with the engine pulled through it, a gear" in out) == (gearbox is None)
    assert figures[None]["gear_agree"] > 0.97 and figures["6MT"]["gear_agree"] > 0.97
    assert len(figures["6MT"]["trained_ratios"]) == 6
    # the lazy farm drive never holds 6th, and its 4th is light: with the count, 1st-5th numbered for sure
    trace = simulate(profile, "farm", "lazy", 420.0, 0, body=Body(mass_kg=1350.0, drag_area_m2=0.65,
                                                                 clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15))
    (tmp_path / "farm").mkdir()
    write_logger_csv(record(trace, rpm_hz=5, seed=0), str(tmp_path / "farm" / "farm.csv"))
    assert main(["eval", str(tmp_path / "farm"), "--transmission", "6MT", "--json", str(tmp_path / "farm.json")]) == 0
    assert "gear 6 of 6MT never held in the logs learned from: not tracked" in capsys.readouterr().out
    farm = json.loads((tmp_path / "farm.json").read_text())[0]
    assert len(farm["trained_ratios"]) == 5 and farm["gear_agree"] > 0.97


def test_one_km_h_written_in_mph_is_no_standstill():
    """OBD's lowest speed above 0 is 1 km/h; a logger writing mph to a tenth writes 0.6, read back as 0.97
    km/h, which was taken for a standstill: each launch's window of 1st began a reading late (at 1 Hz a
    second), took 2nd's ratio for its lowest and decided nothing (the brisk kei-day at 1 Hz with the
    count: eval's tracker 1.0 -> 97.3 %, 1st bounded above 2nd)."""
    state = learner_step(LearnerState(), 0.0, SPEED, 0.0)
    assert state.stopped_at == 0.0
    state = learner_step(LearnerState(), 0.0, SPEED, 0.6 * 1.609344)
    assert state.stopped_at is None and state.launch_from is None


def test_eval_with_the_count_tracks_a_1st_never_held_within_the_range_a_gearbox_leaves_it(tmp_path):
    """Read once a second a kei truck's 1st (2 s long) leaves no steady run and no launch's lock; with the
    count the launches prove a gear above 2nd and the dash tracks 1st within the range a gearbox leaves it
    (LearnedRatios.bridged). eval scored such a log with no ratios from the count (1st not found) and fell
    back to numbering from the highest found: 2nd as 1st, every gear one too low (1.0 % on the brisk
    driver's kei-day); it now scores what the dash would show, and says so."""
    from keidash.estimate.evaluate import evaluate
    from keidash.sim.recorded import record, simulate, write_logger_csv
    path = str(tmp_path / "kei-day.csv")
    write_logger_csv(record(simulate("hijet-s500p", "kei-day", "brisk", 420.0, 0), rpm_hz=1, seed=0), path)
    figures = evaluate([path], transmission="5MT")[0]
    assert figures.gear_agree > 0.95 and figures.gear_agree >= figures.gear_agree_nearest
    assert any(note.startswith("1st of 5MT never held steadily") for note in figures.notes), figures.notes


# -- scoring a log whose numbering is not certain (keidash eval) ---------------------------------------
def test_scored_numbers_the_gears_as_the_table_does_with_1st_bounded_and_top_never_held_left_out():
    """eval scores the tracker with what the log's learning holds, however sure: a gear between two found
    bridged geometrically, a 1st not found bounded above 2nd as the dash bounds it, top gears never held
    left out; nothing with fewer than three gears or more than 1st missing below them."""
    low = max(1.15, 164.0 / 113.0 / 1.2)
    first = _table(None, 164.0, 113.0, 68.8, 51.0, certain=False).scored()
    assert first == pytest.approx((164.0 * math.sqrt(low * 2.1), 164.0, 113.0, 68.8, 51.0), rel=1e-3)
    assert _table(270.0, 164.0, 113.0, None, None, confidence=0.2).scored() == (270.0, 164.0, 113.0)
    gap = _table(270.0, None, 113.0, 68.8, 51.0, certain=False).scored()
    assert gap[1] == pytest.approx(math.sqrt(270.0 * 113.0), rel=1e-3)
    assert _table(None, None, 113.0, 68.8, 51.0).scored() == ()
    assert _table(None, 164.0, 113.0, None, None).scored() == ()
    # with no count, the highest cluster 2nd where the launches make a 1st above it likeliest: on a manual
    free = dataclasses.replace(_table(164.0, 113.0, 68.8, 51.0, given=False, certain=False), likely_above=1)
    assert free.for_scoring() == pytest.approx(first, rel=1e-3) and free.first_bounded()
    # behind a torque converter every pull-away slips above 1st: the launches bound nothing there
    assert free.for_scoring(manual=False) == (164.0, 113.0, 68.8, 51.0) and not free.first_bounded(manual=False)
    assert dataclasses.replace(free, likely_above=0).for_scoring() == (164.0, 113.0, 68.8, 51.0)


def _launches(state: LearnerState, launches, idle: float = 850.0, every_s: float = 0.5) -> LearnerState:
    """``state`` after pull-aways from a standstill at ``idle`` rpm, each a list of (rpm, km/h) read every
    ``every_s`` (the speed 0.1 s after the rpm: a 1 Hz logger polling the two in turn), 60 s apart."""
    for n, pairs in enumerate(launches):
        t = 100.0 + 60.0 * n
        state = learner_step(learner_step(state, t - 0.2, RPM, idle), t, SPEED, 0.0)
        for k, (rpm, kmh) in enumerate(pairs, start=1):
            state = learner_step(state, t + k * every_s, RPM, rpm)
            state = learner_step(state, t + k * every_s + 0.1, SPEED, kmh)
        state = learner_step(state, t + 30.0, SPEED, 40.0)  # the launch closed, under way
    return state


def test_launches_in_a_1st_never_held_make_it_likeliest_and_idle_creep_does_not():
    """Read once a second a kei truck's 1st (2 s) is neither held steadily nor seen locked, and now and then
    its 2nd falls inside the 2.5 s after the standstill: the launches prove nothing. Most of them still read
    1st's line or above, with the engine working: a 1st above the highest cluster (2nd) is the likeliest,
    and eval scores the log from 2nd (the dash still shows no gear: the numbering is not certain). A
    pull-away with the engine at its standing rpm (the clutch slipping to hold the idle) bounds no gear,
    and where a launch or two reach the highest cluster within the 2.5 s, launches with a pair or two (a
    log polled every 2 s) whose lowest ratios spread as a slipping clutch spreads them say nothing; where
    most of them lie on one line (within 2 x LOCK_TOL) it is a gear's, the likeliest 1st (since the
    twentieth session: learn._lows_agree_above). Every one of them a gear step above it proves a gear
    there, as it does with the count (since the twentieth session without it too)."""
    truth = load_profile("hijet-s500p").rpm_per_kmh()
    steady = _histogram(dict(zip(truth[1:], (1400.0, 500.0, 1100.0, 3000.0))))
    # 1st at 279 rpm per km/h for 1.5 s, the clutch slipping into 2nd (164) until 3 s after the standstill
    in_1st = [(1400, 4.5), (2500, 9.0), (3300, 11.9), (2600, 12.5), (2500, 12.8), (2150, 13.1)]
    quick = [(1400, 5.0), (2200, 8.0), (1650, 10.0), (1900, 11.6), (2150, 13.1)]  # in 2nd at 1.5 s
    result = learned(_launches(steady, [in_1st, in_1st, quick, in_1st]))
    assert [g.rpm_per_kmh for g in result.gears][0] == pytest.approx(truth[1], rel=0.02)
    assert not result.numbering_certain and not result.ready and result.likely_above == 1
    scored = result.for_scoring()
    assert len(scored) == 5 and scored[1:] == pytest.approx(truth[1:], rel=0.02) and scored[0] > 1.15 * truth[1]
    # creeping off at the idle, the clutch slipping (850 rpm at 4-5 km/h reads above 2nd's line): no bound
    creep = [(850, 4.0), (850, 4.2), (900, 4.5), (950, 4.8), (980, 5.0), (1500, 9.0)]
    assert learned(_launches(steady, [creep] * 4)).likely_above == 0
    slipping = [[(rpm, 9.0), (2150, 13.1)] for rpm in (2000, 2350, 2700, 3100)]  # 1.36-2.1 x 2nd's line
    into_2nd = [(1700, 10.0), (2150, 13.1)]
    sparse = learned(_launches(steady, slipping + [into_2nd], every_s=1.0))
    assert sparse.likely_above == 0 and sparse.for_scoring()[0] == pytest.approx(truth[1], rel=0.02)
    assert learned(_launches(steady, [[(2500, 9.0), (2150, 13.1)]] * 4 + [into_2nd], every_s=1.0)).likely_above == 1
    assert learned(_launches(steady, slipping, every_s=1.0)).likely_above == 1


def test_eval_scores_a_kei_truck_read_once_a_second_from_2nd(tmp_path, capsys):
    """A kei truck's drive logged at 1 Hz, alone, with no count (the everyday driver's kei-day): its 1st
    is never held steadily, the launches prove nothing, and its gears were scored numbered from 2nd as 1st
    (1 % against the gear sensor, below nearest ratio). Most launches read 1st's line or above: eval scores
    from 2nd, 1st bounded, and says so; with the count (5MT) the same. The dash still shows no gear."""
    from keidash.cli import main
    _logger_csv(tmp_path, "everyday", 0, 1)
    for gearbox in (None, "5MT"):
        status = main(["eval", str(tmp_path / "everyday-0.csv"), "--json", str(tmp_path / "eval.json")]
                      + (["--transmission", gearbox] if gearbox else []))
        out = capsys.readouterr().out
        figures = json.loads((tmp_path / "eval.json").read_text())[0]
        assert status == 0, out
        assert f"1st{' of 5MT' if gearbox else ''} never held steadily" in out, out
        assert "the likeliest is scored (2nd is the highest cluster found" in out, out
        assert figures["gear_agree"] > 0.95 and figures["gear_agree"] >= figures["gear_agree_nearest"], figures
        assert len(figures["trained_ratios"]) == 5 and figures["learning_shown"] == 0.0
    # learn says the gears are likely 2nd and up, numbers them from the highest and exits 1
    assert main(["learn", str(tmp_path / "everyday-0.csv")]) == 1
    out = capsys.readouterr().out
    assert "likely 2nd and up" in out and "gear 1:   16" in out, out


def test_launches_locked_above_the_highest_cluster_make_it_2nd_likeliest_at_2_hz(tmp_path, capsys):
    """The brisk driver's kei-day logged at 2 Hz, alone, no count: 1st lasts 1.5 s and 2nd is inside the
    2.5 s after most standstills, so three of the five launches' lowest ratios read 2nd's line and the
    lowest-ratio rule says nothing; eval scored the gears numbered from 2nd as 1st (1.8 % against the
    gear sensor). Four of the five launches lock above 2nd for a second before the upshift, at 258-285 rpm
    per km/h: 1st, proven (one launch read 232 before the sixteenth session, its slip at a held rpm taken
    for the lock after its real one: too scattered to prove 1st, which was only the likeliest). The lazy
    driver's farm drive (seed 0) at 2 Hz locks above 2nd on two launches only (293, 269), none straight
    into it: a 1st above is the likeliest, eval scores it so and learn says so. A car pulling away in its
    highest cluster's gear locks above it on no launch (the close-ratio car at 2 Hz: its 1st stays 1st)."""
    from keidash.profiles.body import Body
    from keidash.replay import load_log
    from keidash.sim.recorded import record, simulate, write_logger_csv
    from keidash.estimate.evaluate import evaluate
    log = _logger_csv(tmp_path, "brisk", 0, 2)
    found = learn_from_logs([log])
    assert found.numbering_certain and found.gears[0].samples == 0  # 1st from the launches' locks
    assert found.gears[0].rpm_per_kmh == pytest.approx(273.0, rel=0.03)
    assert found.gears[1].rpm_per_kmh == pytest.approx(164.3, rel=0.02)
    figures = evaluate([str(tmp_path / "brisk-0.csv")])[0]
    assert figures.gear_agree > 0.95 and figures.gear_agree >= figures.gear_agree_nearest
    farm = tmp_path / "farm" / "lazy-0.csv"
    farm.parent.mkdir()
    write_logger_csv(record(simulate("hijet-s500p", "farm", "lazy", 420.0, 0), rpm_hz=2, seed=0), str(farm))
    found = learn_from_logs([load_log(str(farm))])
    assert found.likely_above == 1 and not found.numbering_certain
    assert found.gears[0].rpm_per_kmh == pytest.approx(161.5, rel=0.02)
    figures = evaluate([str(farm)])[0]
    assert figures.gear_agree > 0.95 and figures.gear_agree >= figures.gear_agree_nearest
    from keidash.cli import main
    assert main(["learn", str(farm)]) == 1  # not certain: said, and no profile's numbers
    out = capsys.readouterr().out
    assert "held a gear above it for a moment, so they are likely 2nd and up" in out, out
    car = Path(__file__).parent / "data" / "profiles" / "close-ratio-6mt.toml"
    trace = simulate(str(car), "town", "everyday", 420.0, 0, body=Body(mass_kg=1350.0, drag_area_m2=0.65,
                                                                       clutch_capacity_nm=350.0,
                                                                       engine_inertia_kgm2=0.15))
    write_logger_csv(record(trace, rpm_hz=2, seed=0), str(tmp_path / "car.csv"))
    car_found = learn_from_logs([load_log(str(tmp_path / "car.csv"))])
    assert car_found.likely_above == 0 and car_found.gears[0].rpm_per_kmh == pytest.approx(130.0, rel=0.02)


def test_an_automatics_launches_bound_no_gear(monkeypatch):
    """Behind a torque converter every pull-away slips: however the launches read, eval numbers an
    automatic's gears from the highest found, and learn says nothing of a likely 2nd."""
    from keidash.estimate import drives
    found = dataclasses.replace(_table(164.0, 113.0, 68.8, 51.0, given=False, certain=False), likely_above=1)
    monkeypatch.setattr(drives, "learn_from_logs", lambda *args, **kwargs: found)
    monkeypatch.setattr(drives, "learn_habits", lambda *args, **kwargs: None)
    manual = drives.learn_truck([], transmission="5MT", scoring=True)
    assert manual.ratios[1:] == (164.0, 113.0, 68.8, 51.0) and "likely 2nd" in manual.report()
    automatic = drives.learn_truck([], transmission="4AT", scoring=True)
    assert automatic.ratios == (164.0, 113.0, 68.8, 51.0) and "likely 2nd" not in automatic.report()


def test_eval_says_when_the_count_named_could_not_be_used(monkeypatch):
    """A count the logs cannot fill (fewer than three gears found with it) is not used: eval learns as many
    gears as found, says so, and does not ask for the count it was given."""
    from keidash.estimate import evaluate
    from keidash.estimate.truck import TruckKnowledge
    from keidash.profiles import unknown_profile
    free = _table(164.0, 113.0, 68.8, 51.0, given=False, certain=False)

    def learn_truck(logs, profile, gears=None, transmission=None, scoring=False):
        if gears:
            return TruckKnowledge(_table(None, 164.0, None, None, None, certain=False), (), None, ())
        return TruckKnowledge(free, free.for_scoring(), None, ())
    monkeypatch.setattr(evaluate, "learn_truck", learn_truck)
    notes = []
    trained = evaluate._trained([], unknown_profile(), "5MT", notes)
    assert trained.ratios == (164.0, 113.0, 68.8, 51.0)
    assert notes[0] == "learning with the 5 gears of 5MT, 1 found: the gears found are numbered without that count"
    assert "the likeliest is scored (the highest cluster found is 1st)" in notes[1] and "helps" not in notes[1]
    notes = []
    evaluate._trained([], unknown_profile(), None, notes)
    assert len(notes) == 1 and notes[0].endswith("or in a vehicle.toml's transmission)")


def test_launches_locked_in_1st_then_in_2nd_make_two_gears_above_the_highest_cluster():
    """The lazy driver's town drive (seed 1, rpm at 10 Hz) at 226 s: its 2nd is driven through in every
    launch and its few steady pairs no longer make a peak, so the highest cluster is 3rd. Each launch
    locks in 1st, shifts, locks in 2nd and shifts into 3rd: the lock just above the highest cluster is 2nd
    and the one before it 1st. Taken as 1st, that lock numbered 2nd..5th as 1st..4th, certain (and,
    with no gear count, shown on the dash); now both come from the launches, the five gears whole. With a
    count of 4 there is no room for both: more gears than the count, said, and nothing numbered."""
    from keidash.sim.recorded import virtual_log
    log = virtual_log("hijet-s500p", "town", "lazy", 420, rpm_hz=10, seed=1)
    truth = [k * 1.02 for k in load_profile("hijet-s500p").rpm_per_kmh()]  # the recorded speed reads 2 % low
    state = _fed(log, until=226.5)
    highest = max((c for c in clusters(state) if c.mean_rpm > 1000), key=lambda c: c.rpm_per_kmh)
    assert highest.rpm_per_kmh == pytest.approx(truth[2], rel=0.03)  # 3rd: no cluster at 2nd's line
    seen = launch_gears(state, highest.rpm_per_kmh)
    assert len(seen.locked_higher) >= 3 and seen.first_gear()[0] == pytest.approx(truth[1], rel=0.05)
    assert seen.higher_gear()[0] == pytest.approx(truth[0], rel=0.05)
    for gears in (5, None):
        found = learned(state, gears)
        assert found.numbering_certain and found.bridged() == pytest.approx(truth, rel=0.05), gears
    # a count of 4 (too low) has no room for both: the drive shows five gears, and says so
    four = learned(state, 4)
    assert four.more_gears == 5 and not four.numbering_certain and four.bridged() == ()


def test_a_second_lock_on_few_launches_is_no_gear():
    """A second lock above the lock just above the highest cluster must be on LAUNCH_LOCK_SHARE of the
    launches locked there, at least three, agreeing: the close-ratio car's first virtual launch locks at
    194 rpm per km/h in its slip before 1st (131), once."""
    two = tuple(math.log(k) for k in (163.0, 164.0, 162.5, 163.5))
    assert LaunchGears(two, 0, tuple(math.log(k) for k in (272.0, 270.0, 275.0))).higher_gear()[0] == \
        pytest.approx(272.0, rel=0.01)
    assert LaunchGears(two, 0, (math.log(194.0),)).higher_gear() is None
    assert LaunchGears(two, 0, tuple(math.log(k) for k in (272.0, 270.0))).higher_gear() is None  # 2 of 4
    assert LaunchGears(two, 0, tuple(math.log(k) for k in (240.0, 272.0, 310.0))).higher_gear() is None  # scatter


def test_a_clutch_slipping_at_a_held_rpm_is_no_lock():
    """A lock is the engine rising with the truck: the close-ratio car's first virtual launch (everyday town,
    10 Hz) held 1345 rpm while the speed rose from 6.4 to 7.5 km/h, 209 then 179 rpm per km/h, within a lock's
    tolerance at whole-km/h speeds: read as a lock at 194 above its 1st, that one launch kept its 1st from
    being proven (the town and farm drives showed no gear at 10 Hz). The Hijet's launches, locked in 1st
    with the rpm rising, still are."""
    from keidash.profiles.body import Body
    from keidash.sim.recorded import record, simulate
    profile = str(Path(__file__).parent / "data" / "profiles" / "close-ratio-6mt.toml")
    trace = simulate(profile, "town", "everyday", 420.0, 0, body=Body(mass_kg=1350.0, drag_area_m2=0.65,
                                                                     clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15))
    car = learn_pairs(LearnerState(), record(trace, rpm_hz=10, seed=0))
    seen = launch_gears(car, load_profile(profile).rpm_per_kmh()[0])
    assert seen.locked_above == () and seen.in_top >= 5  # 194 locked on the first of six before
    from keidash.estimate import learn as learn_mod
    assert not learn_mod._with_the_speed([(0.0, 0.0, 1345.0, 6.4), (0.1, 0.0, 1343.0, 7.5)])
    assert learn_mod._with_the_speed([(0.0, 0.0, 1800.0, 6.4), (0.1, 0.0, 2100.0, 7.5)])
    assert learn_mod._with_the_speed([(0.0, 0.0, 1800.0, 7.0), (0.1, 0.0, 1790.0, 7.0)])  # the speed still
    from keidash.sim.recorded import virtual_log
    hijet = learn_pairs(LearnerState(), virtual_log("hijet-s500p", "town", "everyday", 240, rpm_hz=10, seed=0))
    assert len(launch_gears(hijet, 164.0).locked_above) >= 3


def test_launches_locked_above_with_the_upshift_read_late_doubt_the_counts_1st(tmp_path):
    """The lazy driver's farm drive (seed 0) logged at 1 Hz, alone, with the count (5MT): 1st lasts 1.5 s
    and its three launches read 280-326 rpm per km/h at 5-9 km/h, the engine rising with the truck
    (1940 -> 2710 rpm), then 2nd a gear step lower: but with the rpm read once a second the first reading
    in 2nd comes 1.5 s after the last in 1st, later than UPSHIFT_S, so no launch locked, and the count alone
    numbered the four clusters (2nd..5th) 1st..4th: eval scored 2 % against the gear sensor, with the count
    and without it. A lock whose upshift is seen up to two rpm periods late proves a gear above the highest
    cluster (not which: read this seldom, 1st may be driven through and the lock 2nd's), so the count's 1st
    is doubted and the likeliest numbering starts at 2nd, with the count and without it. The dash still
    shows no gear."""
    from keidash.estimate.evaluate import evaluate
    from keidash.sim.recorded import record, simulate, write_logger_csv
    path = tmp_path / "farm.csv"
    write_logger_csv(record(simulate("hijet-s500p", "farm", "lazy", 420.0, 0), rpm_hz=1, seed=0), str(path))
    state = learn_pairs(LearnerState(), load_log(str(path)))
    highest = learned(state).gears[0].rpm_per_kmh
    assert highest == pytest.approx(163.0, rel=0.02)  # 2nd: 1st never held steadily
    seen = launch_gears(state, highest)
    # read late: no lock that proves 1st's ratio; one launch holds two pairs at 6 km/h or more (the others
    # read 5.95 and 5.0 km/h there), none went straight into the highest cluster
    assert not seen.locked_above and len(seen.locked_late) == 1 and seen.in_top == 0
    assert math.exp(seen.locked_late[0]) == pytest.approx(290.0, rel=0.06)
    five = learned(state, 5)
    assert five.first_doubted and not five.numbering_certain and five.gears[0].rpm_per_kmh is None
    assert five.gears[1].rpm_per_kmh == highest and five.bridged() == ()
    assert learned(state).likely_above == 1
    for gearbox in ("5MT", None):
        figures = evaluate([str(path)], transmission=gearbox)[0]
        assert figures.gear_agree > 0.95 and figures.gear_agree >= figures.gear_agree_nearest, figures
        assert figures.learning_shown == 0.0 and len(figures.trained_ratios) == 5


def test_launches_locked_late_above_the_highest_cluster_never_make_it_1st_for_sure(tmp_path):
    """The lazy driver's farm drive (seed 1) logged at 2 Hz, alone, with no count: 1st is held for a second
    on each of three launches (262-295 rpm per km/h at 6-9 km/h, the engine rising), its upshift read just
    over UPSHIFT_S later, so the locks are late; each launch's lowest ratio within LAUNCH_S is 2nd's (178-192),
    within a gear step of the highest cluster (2nd, 161). Counted as launches near it with none locked in
    time, they made the highest cluster 1st *for sure*: the dash showed 4th as 3rd from 280 s, a wrong gear on
    30 % of the drive (eval's live learning). A lock read late is a gear above the highest cluster as a lock in
    time is: the launches now decide nothing, the dash waits, and the likeliest numbering starts at 2nd."""
    from keidash.estimate.evaluate import evaluate
    from keidash.sim.recorded import record, simulate, write_logger_csv
    path = str(tmp_path / "farm.csv")
    write_logger_csv(record(simulate("hijet-s500p", "farm", "lazy", 420.0, 1), rpm_hz=2, seed=1), path)
    state = learn_pairs(LearnerState(), load_log(path))
    result = learned(state)
    assert result.gears[0].rpm_per_kmh == pytest.approx(163.0, rel=0.02)  # 2nd: 1st never held steadily
    seen = launch_gears(state, result.gears[0].rpm_per_kmh)
    assert not seen.locked_above and len(seen.locked_late) >= 2 and seen.in_top <= 1
    assert not result.numbering_certain and not result.ready and result.likely_above == 1
    figures = evaluate([path])[0]
    assert figures.learning_wrong <= 0.02 and figures.gear_agree > 0.95, figures


def test_two_launches_locked_in_one_gear_above_the_highest_cluster_prove_a_gear_above_it():
    """The lazy driver's kei-day (seed 0, 5 Hz, live as the bench's live part learns it, the count of 5): by
    215 s 2nd..5th are clusters, 1st is not, and of three launches two locked at 269 and 271 rpm per km/h
    (1st) before their upshift into 2nd, the third showing nothing either way (no lock, none straight into
    2nd); each launch's lowest ratio within LAUNCH_S is 2nd's. Two locks in one gear a gear step above the
    highest cluster with none going into it prove a gear above it, though not yet its ratio (that wants
    three): the count numbers the clusters 2nd..5th for sure and the dash shows them, 1st bounded, from
    ~210 s instead of ~240 s, when the fourth launch locks."""
    from keidash.sim.recorded import record, simulate
    log = record(simulate("hijet-s500p", "kei-day", "lazy", 420.0, 0), rpm_hz=5, seed=0)
    state = LearnerState()
    for s in log.samples:
        if s.t > 215.0:
            break
        for channel, value in ((RPM, s.rpm), (SPEED, s.speed_kmh)):
            if channel in s.fresh:
                state = learner_step(state, s.t, channel, value)
    truth = load_profile("hijet-s500p").rpm_per_kmh()
    five = learned(state, 5)
    seen = launch_gears(state, five.gears[1].rpm_per_kmh)
    assert len(seen.locked_above) == 2 and seen.in_top == 0 and seen.first_gear() is None
    assert five.numbering_certain and five.gears[0].rpm_per_kmh is None and not five.first_doubted
    assert [g.rpm_per_kmh for g in five.gears[1:]] == pytest.approx(truth[1:], rel=0.02)
    assert five.bridged()[1:] == pytest.approx(truth[1:], rel=0.02) and five.first_spread() > 0.0


def test_a_late_upshift_is_no_lock_read_ten_times_a_second():
    """The late allowance is the rpm's own reading period: read ten times a second, a lock left more than
    UPSHIFT_S before the ratio reaches the highest cluster is no sign of anything (a slipping clutch sliding
    down into it), late or not."""
    from keidash.estimate import learn
    slow = tuple((t, learn.RPM if k % 2 == 0 else learn.SPEED, 0.0) for k, t in enumerate(
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]))
    fast = tuple((k / 20.0, learn.RPM if k % 2 == 0 else learn.SPEED, 0.0) for k in range(101))
    assert learn._rpm_period(slow) == pytest.approx(1.0) and learn._rpm_period(fast) == pytest.approx(0.1)
    assert learn._rpm_period(()) == 0.0
    # a launch at 300 rpm per km/h (7-9 km/h) then 2nd's 163, reached 1.5 s after the lock's last pair
    seq = _launch([(3.5, 1900, 6.3), (4.0, 2100, 7.0), (4.5, 2370, 7.9), (5.0, 2250, 10.0), (5.5, 2130, 12.0),
                   (6.0, 2280, 14.0)])
    for raw, late in ((slow, 1), (fast, 0)):
        state = LearnerState(launch_seqs=(seq,), launch_raws=(raw,))
        seen = launch_gears(state, 163.0)
        assert not seen.locked_above and len(seen.locked_late) == late, raw[:3]



def test_a_launch_in_the_highest_clusters_gear_within_a_second_of_the_standstill_went_straight_into_it(tmp_path):
    """The everyday driver's town drive (seed 0) logged as a CSV at 5 Hz, learned with no gear count: its
    1st is a cluster (269 rpm per km/h), and each launch reaches it one or two pairs after the standstill,
    too few pairs to have shown a lock above it, at 1300-2500 rpm (not near idle): no launch was seen
    going straight into it, the launches decided nothing, and the dash showed no gear in 7 minutes. Reached
    within QUICK_ENTRY_S of the last standstill reading, no gear above it can have been pulled away in
    and left (the clutch biting, out again, the lever moved, in again): it went straight in. A launch that
    reaches the highest cluster later proves nothing so (a lock read late, or none)."""
    from keidash.sim.recorded import record, simulate, write_logger_csv
    from keidash.estimate import learn
    path = tmp_path / "town.csv"
    write_logger_csv(record(simulate("hijet-s500p", "town", "everyday", 420.0, 0), rpm_hz=5, seed=0), str(path))
    state = learn_pairs(LearnerState(), load_log(str(path)))
    found = learned(state)
    truth = load_profile("hijet-s500p").rpm_per_kmh()
    assert found.numbering_certain and found.ready and found.launches == 6
    assert found.rpm_per_kmh() == pytest.approx(truth, rel=0.04)
    assert launch_gears(state, found.gears[0].rpm_per_kmh).in_top >= 5
    # the same launch, its standstill read 0.6 s or 1.6 s before it reaches 280 rpm per km/h at 6 km/h
    seq = _launch([(10.2, 1400, 2.0), (10.4, 1700, 6.1), (10.6, 2000, 7.2), (10.8, 2300, 8.3)])
    for standstill, straight in ((9.8, 1), (8.8, 0)):
        raw = ((standstill, learn.SPEED, 0.0), (10.2, learn.RPM, 1400.0))
        assert launch_gears(LearnerState(launch_seqs=(seq,), launch_raws=(raw,)), 280.0).in_top == straight


def _one_row(tmp_path, style: str, route: str, seed: int, hz: float) -> str:
    """The virtual Hijet's 7-minute drive of ``style`` on ``route`` written as a phone app writes a CSV, rpm
    and speed on one row ``hz`` times a second (keidash.sim.recorded.write_one_row_csv); its path."""
    from keidash.sim.recorded import simulate, write_one_row_csv
    path = str(tmp_path / f"{style}-{route}-{seed}.csv")
    write_one_row_csv(simulate("hijet-s500p", route, style, 420.0, seed), path, hz, seed)
    return path


@pytest.mark.parametrize("style, route", [("brisk", "farm"), ("lazy", "kei-day")])
def test_a_log_read_once_a_second_on_one_row_is_scored_from_2nd_where_the_launches_say_so(tmp_path, style, route):
    """Read once a second on one row (a phone app's CSV), a kei truck's launch has two readings in the 2.5 s
    after the standstill, and 1st is neither held steadily nor seen locked. The brisk driver's farm drive:
    every launch reads a gear step or more above the highest cluster (2nd), which proves a gear above it,
    and with no count eval still scored 2nd as 1st, every gear one too low (1.3 % against the gear sensor):
    a gear proven above now makes the likeliest numbering start at 2nd, as with the count. The lazy
    driver's kei-day: one launch of five reaches 2nd within the 2.5 s, so nothing is proven, but the four
    others read one gear's line (1.55-1.68 x 2nd), not a slip's spread: 1st there is likeliest, with the
    count too (1.8 % before, with it and without)."""
    from keidash.estimate.evaluate import evaluate
    path = _one_row(tmp_path, style, route, 0, 1)
    for gearbox in (None, "5MT"):
        figures = evaluate([path], transmission=gearbox)[0]
        assert figures.gear_agree > 0.95 and figures.gear_agree >= figures.gear_agree_nearest, (gearbox, figures)


def test_launches_reading_one_line_above_the_highest_cluster_make_1st_there_likeliest_a_spread_does_not():
    """The launches' lowest ratios, per bin (learn._launch_lows): most of them within LOCK_TOL of one line a
    gear step or more above the highest cluster read as a gear there (its last reading before the upshift
    lies on 1st's line), the likeliest 1st; a slipping clutch spreads them (the Etios logs, polled every 2 s,
    read 1.25-2.15 x their held 1st on 7 of 12 launches), and too few launches, or too few of them agreeing,
    say nothing."""
    from keidash.estimate.learn import _bin, _lows_agree_above, N_BINS

    def lows(*times_top):
        out = [0.0] * N_BINS
        for k in times_top:
            out[_bin(math.log(164.0 * k))] += 1.0
        return LearnerState(launches_worked=tuple(out))
    assert _lows_agree_above(lows(1.09, 1.55, 1.59, 1.68, 1.68), 164.0)
    assert not _lows_agree_above(lows(0.9, 0.96, 1.03, 1.12, 1.25, 1.25, 1.28, 1.38, 1.43, 1.45, 1.99, 2.15), 164.0)
    assert not _lows_agree_above(lows(1.0, 1.02, 1.6, 1.62), 164.0)  # half, not most
    assert not _lows_agree_above(lows(1.6, 1.62), 164.0)  # too few launches
    assert not _lows_agree_above(lows(1.01, 1.05, 1.12, 1.13, 1.14), 164.0)  # within a gear step: the cluster's own
    assert not _lows_agree_above(lows(1.3, 1.45, 1.62, 1.8, 2.0), 164.0)  # a spread
