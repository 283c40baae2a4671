"""Gear tracker (keidash.estimate.gears): real labelled logs, the virtual truck, synthetic shifts.

Figures come from ``.venv/bin/python bench/gears_eval.py``; the floors here sit a
little under what was measured, so a change that makes the tracker worse fails.
"""

import math
from pathlib import Path

import pytest

from keidash.estimate.gears import (AUTOMATIC, GearModel, Pairing, TrackerState, agreement, follow, label_ratios,
                                   nearest_ratio_gears,
                                   standing_rpm, track, track_samples)
from keidash.profiles import load_profile
from keidash.profiles.engine import shift_limits
from keidash.replay import load_log
from keidash.sim.truck import VirtualTruck

DRIVES = Path(__file__).parent / "data" / "drives" / "openxc-ford"
HIJET = load_profile("hijet-s500p")
K = HIJET.rpm_per_kmh()  # about 279.0, 164.2, 113.1, 68.7, 51.0
MODEL = GearModel(K, idle_rpm=shift_limits(HIJET).idle_rpm)  # a manual, as the Hijet's 5MT
AUTO = GearModel(K, idle_rpm=shift_limits(HIJET).idle_rpm, kind=AUTOMATIC)


@pytest.fixture(scope="module")
def ford():
    return {name: load_log(DRIVES / f"{name}.jsonl").samples for name in ("driving", "driving2")}


# measured: driving 91.89 % (nearest-ratio 86.88 %), driving2 85.81 % (nearest 79.44 %); before the coast
# rule (an rpm rising while the truck slows is a downshift under way) 90.44 % and 83.98 %;
# ratios and idle taken from the OTHER log (cross-validated), with the automatic's model (a torque
# converter: tests/data/drives/openxc-ford/vehicle.toml). Nearly all misses lie within 0.75 s of a
# label change: the labels are the automatic's commanded gear, which leads and lags the ratio.
@pytest.mark.parametrize("name, other, floor", [("driving", "driving2", 0.91), ("driving2", "driving", 0.85)])
def test_agrees_with_openxc_labels_better_than_nearest_ratio(ford, name, other, floor):
    ratios = label_ratios(ford[other])
    model = GearModel(ratios, idle_rpm=standing_rpm(ford[other]), kind=AUTOMATIC)
    agree, counted = agreement(ford[name], track_samples(ford[name], model))
    near_agree, near_counted = agreement(ford[name], nearest_ratio_gears(ford[name], ratios))
    assert counted == near_counted > 1000
    assert agree / counted >= floor
    assert agree > near_agree


def test_label_ratios_are_learned_from_the_log(ford):
    ratios = label_ratios(ford["driving"])
    assert len(ratios) == 5 and all(a > b for a, b in zip(ratios, ratios[1:]))
    assert ratios[0] == pytest.approx(139.0, rel=0.01)  # the median quoted in tests/data/drives/README.md context


def test_tracking_is_deterministic(ford):
    model = GearModel(label_ratios(ford["driving2"]))
    assert track_samples(ford["driving"], model) == track_samples(ford["driving"], model)


def feed(pairs, state=None, model=MODEL):
    """Track (t, speed, rpm) pairs; return the state after each."""
    state = state or TrackerState()
    out = []
    for t, speed, rpm in pairs:
        state = track(state, t, speed, rpm, model)
        out.append(state)
    return out


def cruise(gear, speed_kmh, t0, seconds, rate_hz=10.0, slip=1.0):
    return [(t0 + i / rate_hz, speed_kmh, K[gear - 1] * speed_kmh * slip) for i in range(int(seconds * rate_hz))]


def test_a_manual_shows_each_gear_at_its_first_pair():
    states = feed(cruise(1, 15, 0.0, 1.0) + cruise(2, 20, 1.0, 1.0) + cruise(3, 30, 2.0, 1.0)
                  + cruise(2, 30, 3.0, 1.0))
    shown = {round(s.t, 1): s.gear for s in states}
    assert (shown[0.9], shown[1.0], shown[2.0], shown[3.0]) == (1, 2, 3, 2)  # up, up and down: at once
    assert {s.gear for s in states} == {1, 2, 3}  # never a gear between, never neutral


def test_an_automatic_shows_each_gear_after_the_dwell():
    states = feed(cruise(1, 15, 0.0, 1.0) + cruise(2, 20, 1.0, 1.0) + cruise(3, 30, 2.0, 1.0)
                  + cruise(2, 30, 3.0, 1.0), model=AUTO)
    shown = {round(s.t, 1): s.gear for s in states}
    assert shown[0.9] == 1
    assert shown[1.0] == 1 and shown[1.1] == 1  # 2nd not shown before the dwell (0.25 s) ...
    assert shown[1.4] == 2 and shown[1.9] == 2  # ... and shown once it has held
    assert shown[2.1] == 2 and shown[2.5] == 3 and shown[2.9] == 3
    assert shown[3.1] == 3 and shown[3.6] == 2 and shown[3.9] == 2  # downshift: seen once the ratio settles
    assert {s.gear for s in states} == {1, 2, 3}  # never a gear between, never neutral


def test_clutch_in_coast_keeps_the_lever_on_a_manual_and_is_neutral_on_an_automatic():
    coast = [(5.0 + i / 10, 48.0 - i / 10, MODEL.idle_rpm) for i in range(30)]  # rolling, engine at idle
    states = feed(cruise(4, 50, 0.0, 5.0) + coast)
    assert states[49].gear == 4
    assert all(s.gear == 4 for s in states[-25:])  # the lever stays in 4th while the clutch is in
    states = feed(cruise(4, 50, 0.0, 5.0) + coast, model=AUTO)
    assert states[49].gear == 4 and all(s.gear == 0 for s in states[-25:])


def test_slip_during_a_launch_stays_in_1st():
    stopped = [(i / 10, 0.0, MODEL.idle_rpm) for i in range(20)]
    # clutch let out over 1.5 s: engine at 1600-2200 rpm, far faster than 1st says, as the truck gathers speed
    launch = [(2.0 + i / 10, 0.4 * i, 1600 + 40 * i) for i in range(15)]
    locked = cruise(1, 8.0, 3.5, 1.0)
    states = feed(stopped + launch + locked)
    assert states[19].gear == 0  # standing: neutral / clutch in
    moving = [s.gear for s, (t, v, r) in zip(states, stopped + launch + locked) if v >= MODEL.moving_kmh]
    assert set(moving) <= {0, 1} and moving[-12:] == [1] * 12
    assert moving.count(1) >= len(moving) - 3  # at most the dwell on neutral at the first moving pairs


def test_rpm_slower_than_top_gear_allows_is_neutral_and_no_rpm_is_neutral():
    states = feed(cruise(5, 80, 0.0, 2.0) + [(2.0 + i / 10, 80.0, 0.0) for i in range(10)])
    assert states[19].gear == 5 and states[-1].gear == 0


def test_sparse_pairs_like_carobd_still_track():
    # one pair every 2 s, as the Etios logs: each new gear shows on the pair that measures it
    pairs = cruise(2, 20, 0.0, 6.0, rate_hz=0.5) + cruise(3, 30, 6.0, 6.0, rate_hz=0.5)
    assert [s.gear for s in feed(pairs)] == [2, 2, 2, 3, 3, 3]


@pytest.fixture(scope="module")
def kei_day():
    truck = VirtualTruck(HIJET)
    truths = []
    for _ in range(6600):  # the whole kei-truck day at 10 Hz
        truck.advance(0.1)
        truths.append(truck.truth())
    return truths


# measured (clutch engaged, moving): 10 Hz 99.56 % (5857/5883), 0.5 Hz 99.67 % (298/299);
# all moving samples with a gear engaged (clutch-in moments shown as 0 by design): 96.4 % / 98.4 %
@pytest.mark.parametrize("every, floor", [(1, 0.99), (20, 0.98)])
def test_virtual_truck_gear(kei_day, every, floor):
    state, agree, counted = TrackerState(), 0, 0
    for truth in kei_day[::every]:
        state = track(state, truth.t, truth.speed_kmh, truth.rpm, MODEL)
        if truth.speed_kmh >= MODEL.moving_kmh and truth.gear > 0 and not truth.clutch_in:
            agree += state.gear == truth.gear
            counted += 1
    assert counted > 250 and agree / counted >= floor


def test_state_is_small_and_immutable():
    state = feed(cruise(3, 30, 0.0, 1.0))[-1]
    assert len(state.posterior) == len(K) + 1 and math.isclose(sum(state.posterior), 1.0)
    with pytest.raises(AttributeError):
        state.gear = 2


# -- 4WD low range (issue 11): low-range gears are states, entered and left at a standstill -------
LOW = GearModel(K, idle_rpm=shift_limits(HIJET).idle_rpm, low_range=HIJET.transfer_low_ratio)


def test_low_range_gears_are_shown_with_their_l():
    stopped = [(i / 10, 0.0, LOW.idle_rpm) for i in range(10)]
    low1 = [(1.0 + i / 10, 6.0, K[0] * 1.782 * 6.0) for i in range(20)]  # L1: 497 rpm per km/h, no high gear
    low2 = [(3.0 + i / 10, 12.0, K[1] * 1.782 * 12.0) for i in range(30)]  # L2: 5 % from high 1st
    states = feed(stopped + low1 + low2, model=LOW)
    assert (states[29].gear, states[29].low_range) == (1, True)
    # low 2nd sits 5 % from high 1st: the context (low range since the stop) decides, not the ratio
    assert all((s.gear, s.low_range) == (2, True) for s in states[-20:])


def test_high_range_1st_is_not_taken_for_low_2nd():
    stopped = [(i / 10, 0.0, LOW.idle_rpm) for i in range(10)]
    states = feed(stopped + cruise(1, 12.0, 1.0, 3.0) + cruise(2, 20.0, 4.0, 2.0), model=LOW)
    assert all(not s.low_range for s in states[10:])
    assert states[30].gear == 1 and states[-1].gear == 2


def test_the_range_changes_only_at_a_standstill():
    """Driving in low 3rd (201 rpm per km/h) the ratio of high 1st-2nd-ish territory never flips the
    range while moving; after a stop, a pull-away in high 1st is high range again."""
    stopped = [(i / 10, 0.0, LOW.idle_rpm) for i in range(10)]
    low3 = [(1.0 + i / 10, 15.0, K[2] * 1.782 * 15.0) for i in range(30)]
    stop = [(4.0 + i / 10, 0.0, LOW.idle_rpm) for i in range(1200)]  # two minutes standing: the transfer may move
    high1 = [(124.0 + i / 10, 12.0, K[0] * 12.0) for i in range(30)]
    states = feed(stopped + low3 + stop + high1, model=LOW)
    assert (states[39].gear, states[39].low_range) == (3, True)
    assert (states[-1].gear, states[-1].low_range) == (1, False)


def test_a_rev_matched_downshift_under_braking_is_3rd_before_the_clutch_is_home():
    """Braking in 4th, the driver blips the engine up to 3rd's rpm with the clutch in, then lets it
    out: the rpm rises while the speed falls. A manual's tracker reads that as the shift into 3rd
    while it happens; the converter's one-sided slip model (issue 11's failure) reads it as slip
    in 4th and holds 4th until the ratio settles. Behind a torque converter the same rise while
    the truck slows is a downshift too: the wheels drive the converter, so no drive slip puts the
    engine above 4th's line; the converter pulls it up to 3rd's (the automatic, after its dwell)."""
    pairs = [(i / 10, 45.0 - 0.5 * i, K[3] * (45.0 - 0.5 * i)) for i in range(20)]  # braking in 4th
    t0, v0 = 2.0, 35.0
    blip = [(t0 + i / 10, v0 - 0.5 * i, K[3] * (v0 - 0.5 * i) + (K[2] - K[3]) * (v0 - 0.5 * i) * (i + 1) / 4)
            for i in range(4)]  # 0.4 s: from 4th's rpm to 3rd's, speed still falling
    locked = [(t0 + 0.4 + i / 10, 33.0 - 0.5 * i, K[2] * (33.0 - 0.5 * i)) for i in range(10)]
    manual = feed(pairs + blip + locked)
    assert manual[19].gear == 4
    assert [s.gear for s in manual[20:24]][-2:] == [3, 3]  # 3rd while the rpm is still rising
    assert all(s.gear == 3 for s in manual[24:])
    auto = feed(pairs + blip + locked, model=AUTO)
    assert [s.gear for s in auto[20:24]] == [4, 4, 4, 3]  # was 4, 4, 4, 4: slip in 4th
    assert all(s.gear == 3 for s in auto[24:])


def test_an_automatic_under_drive_reads_an_rpm_flare_as_converter_slip():
    """At a steady speed (drive: the engine pulls), an rpm 30 % over 4th's line and below 3rd's
    is the converter slipping in 4th, not a downshift: the coast rule (the test above) needs the
    truck slowing."""
    steady = [(i / 10, 40.0, K[3] * 40.0) for i in range(20)]
    flare = [(2.0 + i / 10, 40.0, K[3] * 40.0 * (1.0 + 0.08 * min(i, 4))) for i in range(20)]
    assert all(s.gear == 4 for s in feed(steady + flare, model=AUTO))


def test_an_upshift_shows_the_new_gear_at_the_first_falling_rpm():
    """Accelerating in 3rd, pairs 0.2 s apart (5 Hz): the driver puts the clutch in and the lever in
    4th, and the rpm falls (7 %, then 15 %, then 25 % under 3rd's line) while the speed holds. With
    the clutch home the engine cannot turn slower than the gear's line, so the first falling pair
    already says 4th (before: 3rd, until the rpm had nearly reached 4th's line)."""
    accelerating = [(i / 5, 20.0 + 0.5 * i, K[2] * (20.0 + 0.5 * i)) for i in range(10)]
    falling = [(2.0 + i / 5, 25.0, K[2] * 25.0 * f) for i, f in enumerate((0.93, 0.85, 0.75))]
    home = [(2.6 + i / 5, 25.0 + 0.4 * i, K[3] * (25.0 + 0.4 * i)) for i in range(10)]
    states = feed(accelerating + falling + home)
    assert all(s.gear == 3 for s in states[:10])
    assert all(s.gear == 4 for s in states[10:])
    # braking in 3rd at 5 km/h a second, then the same fall: the clutch going in to stop, the lever stays
    braking = [(2.0 + i / 5, 24.5 - i, K[2] * (24.5 - i)) for i in range(5)]
    clutch_in = [(3.0 + i / 5, 19.5 - i, K[2] * (19.5 - i) * f) for i, f in enumerate((0.93, 0.85, 0.75))]
    assert all(s.gear == 3 for s in feed(accelerating + braking + clutch_in))


def test_at_1_hz_the_rpm_is_judged_again_with_the_speed_interpolated_to_its_instant():
    """rpm and speed polled in turn at 1 Hz, in 5th: the truck brakes from 45 to 35 km/h within a
    second, then speeds up again. The rpm read at 5.0 s is paired with the speed carried along the
    braking slope (30 km/h, too low: the braking has ended), which reads as 4th. The speed read at
    5.5 s brackets that rpm: interpolated to its instant (36 km/h) it says 5th again, at once
    (before: 4th until the next rpm reading, a second later)."""
    def speed(t):
        return 45.0 if t <= 3.5 else 45.0 - 10.0 * (t - 3.5) if t <= 4.5 else min(38.0, 35.0 + 4.0 * (t - 4.5))
    readings = []
    for k in range(1, 8):
        readings += [(k + 0.0, "rpm", K[4] * speed(k + 0.0)), (k + 0.5, "speed", float(round(speed(k + 0.5))))]
    readings.insert(0, (0.5, "speed", 45.0))
    pairing, state, shown = Pairing(), TrackerState(), {}
    for t, channel, value in readings:
        pairing, state = follow(pairing, state, channel, t, value, MODEL)
        shown[t] = state.gear
    assert shown[5.0] == 4  # the carried speed misleads the rpm's own instant ...
    assert all(gear == 5 for t, gear in shown.items() if t >= 1.0 and t != 5.0)  # ... and 0.5 s later it is undone
