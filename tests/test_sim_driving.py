"""The virtual driver of a manual truck (keidash/sim/driver.py: StyledDriver) and its drives
recorded as an OBD logger with a gear-position sensor would (keidash/sim/recorded.py).

First that the habits happen in the truth (10 ms steps), then that the log is what a logger
writes (rates, skew, delay, quantisation, lever labels, determinism), then the goal the gear
tracker is being fixed towards (issue 11): on these drives it must agree with the gear
sensor at least as often as the nearest ratio per sample, and on 98 % of moving samples.
Speed is measured by bench/manual_drives.py, never here.
"""

from __future__ import annotations

import functools
import math

import pytest

from keidash.estimate.gears import GearModel, agreement, nearest_ratio_gears, track_samples
from keidash.profiles import load_profile
from keidash.profiles.engine import shift_limits
from keidash.readings import RPM, SPEED
from keidash.sim.driver import KEI_DAY, ROUTES, STYLES, Driver, StyledDriver
from keidash.sim.recorded import STEP_S, record, simulate, virtual_log
from keidash.sim.truck import VirtualTruck

HIJET = load_profile("hijet-s500p")
K = HIJET.rpm_per_kmh()
LIMITS = shift_limits(HIJET)
MODEL = GearModel(K, idle_rpm=LIMITS.idle_rpm)


@functools.lru_cache(maxsize=None)
def drive(route: str, style: str, seed: int = 0, seconds: float = 600.0):
    return simulate(route=route, style=style, seconds=seconds, seed=seed)


def shift_window(trace, event, seconds: float = 2.0) -> range:
    start = trace.index(event.t)
    return range(start, min(len(trace.rpm) - 1, start + round(seconds / STEP_S)))


# -- the habits happen ---------------------------------------------------------------------
def test_rev_matched_downshift_revs_up_in_the_lower_gear_before_the_clutch_engages():
    trace = drive("town", "brisk")
    downshifts = [e for e in trace.events if e.kind == "rev-match" and 0 < e.to < e.frm]
    assert len(downshifts) >= 10
    shown = 0
    for e in downshifts:
        window = shift_window(trace, e)
        # rising with the lever already in the lower gear and the clutch down ...
        rising = [k for k in window if trace.lever[k] == e.to and trace.clutch[k] < 0.05
                  and trace.rpm[k + 1] > trace.rpm[k] + 1.0]
        if not rising:
            continue
        # ... then the clutch engages in that gear, the engine near the gear's rpm
        engaged = [k for k in window if k > rising[0] and trace.lever[k] == e.to and trace.clutch[k] >= 0.99]
        assert engaged, e
        k = engaged[0]
        assert trace.rpm[k] == pytest.approx(K[e.to - 1] * trace.speed_kmh[k], rel=0.15)
        # a real blip: with the clutch down the engine ran well above where the higher gear had it
        assert trace.rpm[rising[-1]] > trace.rpm[window.start] + 200
        shown += 1
    assert shown >= 0.8 * len(downshifts)


def test_quick_downshifts_take_well_under_a_second_and_happen_under_braking():
    trace = drive("town", "everyday")
    quick = [e for e in trace.events if e.kind == "quick" and 0 < e.to < e.frm]
    assert len(quick) >= 5
    durations = []
    for e in quick:
        window = shift_window(trace, e)
        done = next(k for k in window if trace.lever[k] == e.to and trace.clutch[k] >= 0.99)
        durations.append((done - window.start) * STEP_S)
    assert 0.3 <= min(durations) and max(durations) <= 1.0
    braking = [e for e in quick if trace.brake[trace.index(e.t)] > 0]
    assert len(braking) >= len(quick) // 2
    # no blip: the engine never rises while the clutch is down and the lever is out of gear
    for e in quick:
        window = shift_window(trace, e, 0.3)
        assert all(trace.throttle[k] == 0.0 for k in window if trace.clutch[k] < 0.05 and trace.brake[k] > 0)


def test_skip_shifts_go_straight_across_the_gate():
    trace = drive("town", "brisk")
    skips = [e for e in trace.events if e.skip and e.kind in ("quick", "rev-match")]
    assert {(e.frm, e.to) for e in skips} & {(5, 3), (4, 2), (5, 2)}
    for e in skips:
        levers = [trace.lever[k] for k in shift_window(trace, e, 1.5)]
        between = {g for g in levers if g not in (e.frm, e.to, 0)}
        assert between == set(), (e, between)  # never through the gear between
        assert levers.index(e.to) > levers.index(0)  # through neutral: the lever crossed the gate


def test_clutch_in_coasting_to_a_stop_reaches_idle_while_rolling():
    trace = drive("town", "lazy")
    coasts = [e for e in trace.events if e.kind == "coast"]
    assert len(coasts) >= 5
    idle_rolling = [k for k in range(len(trace.rpm))
                    if trace.clutch[k] < 0.05 and trace.speed_kmh[k] >= 5.0 and trace.rpm[k] < trace.idle_rpm + 30]
    assert len(idle_rolling) * STEP_S >= 3.0
    # some coasts hold the lever in gear to the stop, others slip it to neutral on the way
    in_gear = {trace.lever[k] for k in idle_rolling}
    assert 0 in in_gear and in_gear - {0}


def test_lugging_up_the_hill_in_a_high_gear():
    trace = drive("farm", "lazy")
    lugging = [k for k in range(len(trace.rpm))
               if trace.grade[k] >= 0.05 and trace.lever[k] >= 3 and trace.clutch[k] >= 0.99
               and trace.rpm[k] < trace.lug_rpm and trace.throttle[k] >= 0.5]
    assert trace.lug_rpm == pytest.approx(LIMITS.lug_rpm)
    assert len(lugging) * STEP_S >= 10.0
    assert min(trace.rpm[k] for k in lugging) < 1200
    brisk = drive("farm", "brisk")  # a brisk driver on the same hill changes down instead
    assert not any(brisk.grade[k] >= 0.05 and brisk.clutch[k] >= 0.99 and brisk.lever[k] >= 3
                   and brisk.rpm[k] < 1400 for k in range(len(brisk.rpm)))


def test_upshifts_vary_early_and_late():
    def upshift_rpm(trace):
        return sorted(trace.rpm[trace.index(e.t)] for e in trace.events if e.kind == "up")

    everyday, lazy, brisk = (upshift_rpm(drive("town", s)) for s in ("everyday", "lazy", "brisk"))
    assert everyday[-1] - everyday[0] > 800  # one driver, early and late
    median = lambda values: values[len(values) // 2]  # noqa: E731
    assert median(lazy) + 800 < median(brisk)
    assert lazy[0] < 2300 and brisk[-1] > 4500


def test_launches_slip_the_clutch():
    trace = drive("town", "everyday")
    launches = [e for e in trace.events if e.kind == "launch"]
    assert len(launches) >= 5
    for e in launches:
        window = shift_window(trace, e, 4.0)
        slipping = [k for k in window if trace.lever[k] == 1 and 0.0 < trace.clutch[k] < 0.99
                    and trace.speed_kmh[k] > 1.0 and trace.rpm[k] > K[0] * trace.speed_kmh[k] + 300]
        assert len(slipping) * STEP_S >= 0.2, e


@pytest.mark.slow
def test_every_route_and_style_drives_on_without_stalling_or_over_revving():
    for route in ROUTES:
        for style in STYLES:
            trace = drive(route, style, seconds=300.0)
            engaged_moving = [k for k in range(len(trace.rpm))
                              if trace.speed_kmh[k] > 5 and trace.clutch[k] >= 0.99 and trace.lever[k] > 0]
            assert min(trace.rpm[k] for k in engaged_moving) > 900, (route, style)
            assert max(trace.rpm) < 1.12 * HIJET.engine.peak_power_rpm, (route, style)
            assert sum(e.kind == "stop" for e in trace.events) >= 2, (route, style)


def test_the_demo_driver_is_unchanged_and_a_style_is_an_option():
    assert isinstance(VirtualTruck(HIJET).driver, Driver)
    assert not isinstance(VirtualTruck(HIJET).driver, StyledDriver)
    assert isinstance(VirtualTruck(HIJET, style="brisk").driver, StyledDriver)
    assert ROUTES["kei-day"] is KEI_DAY
    # the offline trace of the demo's driver is the VirtualTruck's own drive
    trace = simulate(route="kei-day", style=None, seconds=60.0)
    truck = VirtualTruck(HIJET)
    for k in range(1, 6001):
        truck.advance(STEP_S)
        if k % 50 == 0:
            truth = truck.truth()
            assert (truth.rpm, truth.speed_kmh, truth.gear) == (trace.rpm[k], trace.speed_kmh[k], trace.lever[k])


# -- the log is what a logger writes ---------------------------------------------------------
@pytest.mark.parametrize("hz", [1, 5, 10])
def test_rates_and_skew(hz):
    trace = drive("town", "everyday")
    log = record(trace, rpm_hz=hz, seed=0)
    rpm_t = [s.t for s in log.samples if s.fresh == (RPM,)]
    speed_t = [s.t for s in log.samples if s.fresh == (SPEED,)]
    assert len(rpm_t) + len(speed_t) == len(log.samples)  # one PID a reply, never both
    assert abs(len(rpm_t) - trace.duration_s * hz) <= 2 and abs(len(speed_t) - trace.duration_s * hz) <= 2
    assert not set(rpm_t) & set(speed_t)  # never measured at one instant
    channels = [s.fresh[0] for s in log.samples]
    assert all(a != b for a, b in zip(channels, channels[1:]))  # equal rates: rpm and speed in turn
    assert log.refresh_s[RPM] == pytest.approx(1 / hz, rel=0.05)
    assert log.refresh_s[SPEED] == pytest.approx(1 / hz, rel=0.05)
    assert all(a.t < b.t for a, b in zip(log.samples, log.samples[1:]))


def test_different_rates_for_rpm_and_speed():
    log = record(drive("town", "everyday"), rpm_hz=10, speed_hz=2, seed=0)
    assert log.refresh_s[RPM] == pytest.approx(0.1, rel=0.05)
    assert log.refresh_s[SPEED] == pytest.approx(0.5, rel=0.05)


def test_values_are_quantised_as_obd_sends_them_and_measured_before_their_stamp():
    trace = drive("town", "everyday")
    log = record(trace, rpm_hz=10, seed=0, rpm_sigma=0.0)
    rows = [s for s in log.samples if s.rpm is not None and s.speed_kmh is not None]
    assert all(s.speed_kmh == int(s.speed_kmh) for s in rows)  # PID 0D: whole km/h
    assert all(s.rpm * 4 == int(s.rpm * 4) for s in rows)  # PID 0C: quarter rpm
    lag = []
    for s in rows:
        window = [s.t - d / 1000 for d in range(50, 151)]  # measured 50-150 ms before the stamp
        if RPM in s.fresh:
            values = [trace.rpm_at(t) for t in window]
            assert min(values) - 0.25 <= s.rpm <= max(values) + 0.25
            rate = (trace.rpm_at(s.t) - trace.rpm_at(s.t - 0.1)) / 0.1
            if abs(rate) > 1000:  # on a ramp the reading is behind the engine at its stamp
                lag.append((trace.rpm_at(s.t) - s.rpm) * math.copysign(1, rate))
        else:
            values = [trace.speed_at(t) for t in window]
            assert math.floor(min(values) + 0.5) <= s.speed_kmh <= math.floor(max(values) + 0.5)
    assert len(lag) > 100 and sum(lag) / len(lag) > 50


def test_rpm_noise_is_ecu_jitter():
    trace = drive("town", "everyday")
    clean = record(trace, rpm_hz=10, seed=0, rpm_sigma=0.0)
    noisy = record(trace, rpm_hz=10, seed=0)
    # the same poll times and delays (one seed), so the difference is the jitter alone
    diffs = [b.rpm - a.rpm for a, b in zip(clean.samples, noisy.samples) if RPM in a.fresh and a.rpm is not None]
    rms = math.sqrt(sum(d * d for d in diffs) / len(diffs))
    assert 20 <= rms <= 40


def test_labels_are_the_lever_read_by_the_gear_sensor():
    trace = drive("town", "brisk")
    exact = record(trace, rpm_hz=10, gear_hz=None, seed=0)
    assert all(s.gear == trace.lever_at(s.t) for s in exact.samples)
    # the lever reads 0 crossing the gate: a shift shows old gear, neutral, new gear
    labels = [s.gear for s in exact.samples]
    changes = [(a, b) for a, b in zip(labels, labels[1:]) if a != b]
    assert all(0 in pair for pair in changes)
    # labels while the clutch is down in a gear: the lever's gear, not neutral
    clutch_down_in_gear = [s for s in exact.samples if s.gear and trace.clutch[trace.index(s.t)] < 0.05]
    assert len(clutch_down_in_gear) > 50
    slow = record(trace, rpm_hz=10, gear_hz=2, seed=0)
    for s in slow.samples:  # the sensor's last read, at most half a second old
        assert s.gear in {trace.lever_at(s.t - d / 100) for d in range(0, 51)}
    assert slow.has_gear and slow.format == "virtual"


def test_same_seed_same_log_and_another_seed_another():
    a = virtual_log(route="farm", style="everyday", seconds=120.0, rpm_hz=5, seed=3)
    b = virtual_log(route="farm", style="everyday", seconds=120.0, rpm_hz=5, seed=3)
    c = virtual_log(route="farm", style="everyday", seconds=120.0, rpm_hz=5, seed=4)
    assert a == b
    assert a.samples != c.samples
    assert simulate(route="town", style="brisk", seconds=120.0, seed=1).events != \
        simulate(route="town", style="brisk", seconds=120.0, seed=2).events


# -- the goal of issue 11 -------------------------------------------------------------------
def test_the_drives_show_the_failure_signature():
    """After a rev-matched downshift the log holds samples labelled with the lower gear whose
    ratio reads above the higher gear's: what a one-sided slip model takes for slip in it."""
    log = record(drive("town", "brisk"), rpm_hz=5, seed=0)
    above = 0
    for s in log.samples:
        if s.gear and 0 < s.gear < len(K) and s.moving and s.rpm:
            ratio = s.rpm / s.speed_kmh
            above += K[s.gear] * 1.1 < ratio < K[s.gear - 1] * 0.9
    assert above >= 20


# Measured with the tracker before the fix (gears.py as committed in 7b12c35), at 5 Hz:
# town/brisk seed 0: tracker 0.905, nearest ratio 0.952; farm/everyday seed 1: 0.949 and 0.973.
# With the manual's model (issue 11): 0.962 and 0.976 against the same 0.952 and 0.973; with an
# upshift's falling rpm ruling out the gear the engine is below (the clutch is in, the lever
# already moved) and each rpm judged again with the speed interpolated to it: 0.975 and 0.985 (0.974
# and 0.985 with the braking and mid-upshift rules of the fifth session; 0.976 and 0.986 at the fifteenth's
# start, 0.979 and 0.986 with its rpm read falling from its highest over several pairs).
# The misses left lie around shifts with the clutch down: the lever has moved before the engine
# says so (a downshift under braking before the blip)
# (bench/manual_drives.py and bench/estimator.py give every drive, rate and seed).
@pytest.mark.parametrize("route, style, seed", [("town", "brisk", 0), ("farm", "everyday", 1)])
def test_the_tracker_is_never_below_nearest_ratio_on_a_manual(route, style, seed):
    log = record(drive(route, style, seed), rpm_hz=5, seed=seed)
    samples = log.samples
    agree, counted = agreement(samples, track_samples(samples, MODEL))
    near, near_counted = agreement(samples, nearest_ratio_gears(samples, K))
    assert counted == near_counted > 2000
    assert agree >= near


@pytest.mark.parametrize("route, style, seed", [
    pytest.param("town", "brisk", 0, marks=pytest.mark.xfail(strict=True, reason=(
        "issue 11's goal of 98 % is not reached on this drive: measured 0.979 (downshifts under braking: "
        "the lever moves while the clutch is down, before the rpm says so)"))),
    ("farm", "everyday", 1)])
def test_goal_the_tracker_agrees_with_a_manual_gear_sensor(route, style, seed):
    log = record(drive(route, style, seed), rpm_hz=5, seed=seed)
    agree, counted = agreement(log.samples, track_samples(log.samples, MODEL))
    assert agree / counted >= 0.98
