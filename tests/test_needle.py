"""The tach needle filter (keidash/estimate/needle.py): fused rpm readings predicted to a display time."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from keidash.estimate.needle import (NeedleConfig, NeedleState, needle_horizon_s, needle_predict, needle_reset,
                            needle_update)
from keidash.profiles import load_profile
from keidash.sim.truck import STEP_S, VirtualTruck

CONFIG = NeedleConfig(max_rpm=8000.0)


def feed(readings, state: NeedleState = NeedleState(), config: NeedleConfig = CONFIG) -> NeedleState:
    """Fold in (t, rpm) or (t, rpm, source) readings, in the order given."""
    for reading in readings:
        t, rpm, source = reading if len(reading) == 3 else (*reading, "obd")
        state = needle_update(state, t, rpm, source, config)
    return state


def obd(rpm_at, seconds: float, seed: int = 1, sigma: float = 40.0, hz: float = 5.0):
    """5 Hz OBD readings of ``rpm_at(t)`` with Gaussian noise."""
    rng = random.Random(seed)
    return [(k / hz, rpm_at(k / hz) + rng.gauss(0.0, sigma)) for k in range(round(seconds * hz) + 1)]


def test_constant_rpm_converges_and_the_needle_is_steadier_than_the_readings():
    readings = obd(lambda t: 3000.0, 20.0)
    state = NeedleState()
    needle, raw = [], []
    for t, rpm in readings:
        state = needle_update(state, t, rpm, "obd", CONFIG)
        if t >= 5.0:  # after settling: the needle 0.1 s after each reading, and the reading itself
            needle.append(needle_predict(state, t + 0.1, CONFIG))
            raw.append(rpm)
    assert abs(needle[-1] - 3000.0) < 20.0
    assert abs(state.rate_rpm_s) < 100.0
    rms = lambda values: math.sqrt(sum((v - 3000.0) ** 2 for v in values) / len(values))  # noqa: E731
    assert rms(needle) < 0.7 * rms(raw)


def test_a_ramp_is_tracked_at_the_display_time_not_a_poll_behind():
    # 1500 rpm/s, pulling hard in 2nd; read 150 ms after the last poll, as a frame would
    ramp = lambda t: 1500.0 + 1500.0 * t  # noqa: E731
    state = feed(obd(ramp, 2.0, sigma=0.0))
    shown = needle_predict(state, 2.15, CONFIG)
    assert abs(shown - ramp(2.15)) < 0.02 * 1500  # under 20 ms behind; holding would be 150 ms
    with_noise = feed(obd(ramp, 2.0, seed=3))
    assert abs(needle_predict(with_noise, 2.15, CONFIG) - ramp(2.15)) < 0.1 * 1500


def test_a_reset_jumps_to_the_new_gear_instead_of_smearing():
    state = feed(obd(lambda t: 4000.0 + 1000.0 * t, 2.0, sigma=0.0))  # revving up in 1st
    assert state.rate_rpm_s > 500
    shifted = needle_reset(state, 2.3, 2800.0, CONFIG)
    assert needle_predict(shifted, 2.3, CONFIG) == 2800.0
    assert needle_predict(shifted, 2.4, CONFIG) == 2800.0  # no rate carried over from 1st
    # the same reading as a plain update is only partly believed, and keeps 1st's rate
    smeared = needle_update(state, 2.3, 2800.0, "obd", CONFIG)
    assert needle_predict(smeared, 2.3, CONFIG) > 2850.0


def test_a_reset_without_a_value_holds_and_takes_the_next_reading_as_it_comes():
    state = feed(obd(lambda t: 4000.0 - 2000.0 * t, 1.0, sigma=0.0))  # rpm falling, clutch in
    held = needle_reset(state, 1.1, None, CONFIG)
    assert held.rate_rpm_s == 0.0
    assert needle_predict(held, 1.3, CONFIG) == needle_predict(state, 1.1, CONFIG)
    after = needle_update(held, 1.2, 2600.0, "obd", CONFIG)
    assert abs(needle_predict(after, 1.2, CONFIG) - 2600.0) < 1.0
    assert needle_reset(NeedleState(), 1.0, None, CONFIG) == NeedleState()  # nothing to hold


def test_a_late_reading_is_folded_in_at_its_own_time_and_a_too_late_one_dropped():
    state = feed(obd(lambda t: 3000.0, 4.0, sigma=0.0))
    late = needle_update(state, 3.9, 3100.0, "obd", CONFIG)  # measured before the last update (4.0)
    assert late.t == 4.0 and 3000.0 < late.rpm < 3100.0 and late.dropped == 0
    too_late = needle_update(state, 4.0 - CONFIG.max_late_s - 0.01, 3100.0, "obd", CONFIG)
    assert too_late == NeedleState(**{**state.__dict__, "dropped": 1})


def test_sources_out_of_step_fuse_on_a_ramp():
    """Coil pulses at 20 Hz arrive at once; OBD at 5 Hz arrives 80 ms late, so out of order."""
    ramp = lambda t: 2000.0 + 800.0 * t  # noqa: E731
    rng = random.Random(5)
    arrivals = [(k / 20, k / 20, ramp(k / 20) + rng.gauss(0, 30), "pulses") for k in range(61)]
    arrivals += [(k / 5 + 0.08, k / 5, ramp(k / 5) + rng.gauss(0, 40), "obd") for k in range(16)]
    state, errors = NeedleState(), []
    for received, t, rpm, source in sorted(arrivals):
        state = needle_update(state, t, rpm, source, CONFIG)
        if received > 1.0:
            errors.append(needle_predict(state, received + 1 / 60, CONFIG) - ramp(received + 1 / 60))
    assert state.dropped == 0
    assert math.sqrt(sum(e * e for e in errors) / len(errors)) < 25.0
    assert needle_horizon_s(state, CONFIG) == CONFIG.min_horizon_s  # the learned gap is short


def test_nan_inf_and_negative_readings_are_ignored_and_counted():
    state = feed(obd(lambda t: 2500.0, 1.0))
    for bad in (float("nan"), float("inf"), -100.0):
        after = needle_update(state, 1.1, bad, "obd", CONFIG)
        assert after == NeedleState(**{**state.__dict__, "dropped": state.dropped + 1})
    assert needle_update(state, float("nan"), 2500.0, "obd", CONFIG).dropped == 1


def test_prediction_holds_past_the_horizon_and_goes_blank_when_stale():
    state = feed(obd(lambda t: 2000.0 + 2000.0 * t, 1.0, sigma=0.0))
    horizon = needle_horizon_s(state, CONFIG)
    assert math.isclose(horizon, 1.5 * 0.2)  # 1.5 poll periods at 5 Hz
    at_horizon = needle_predict(state, 1.0 + horizon, CONFIG)
    assert at_horizon > needle_predict(state, 1.0, CONFIG) + 0.9 * 2000.0 * horizon  # extrapolated
    assert needle_predict(state, 1.0 + 1.5, CONFIG) == at_horizon  # then held
    assert needle_predict(state, 1.0 + CONFIG.stale_s + 0.01, CONFIG) is None
    assert needle_predict(NeedleState(), 0.0, CONFIG) is None
    # after stale, the next reading starts afresh instead of extrapolating across the gap
    restarted = needle_update(state, 10.0, 900.0, "obd", CONFIG)
    assert restarted.rpm == 900.0 and restarted.rate_rpm_s == 0.0


def test_prediction_is_clamped_to_the_scale():
    rising = feed(obd(lambda t: 6000.0 + 8000.0 * t, 0.4, sigma=0.0))
    assert needle_predict(rising, 0.7, CONFIG) == CONFIG.max_rpm
    falling = feed(obd(lambda t: 1000.0 - 3000.0 * t, 0.2, sigma=0.0))  # an engine stalling
    assert needle_predict(falling, 0.5, CONFIG) == 0.0


reading = st.tuples(st.floats(0.0, 30.0), st.one_of(st.floats(allow_nan=True), st.floats(0.0, 12_000.0)),
                    st.sampled_from(["obd", "pulses", "gps", "somewhere"]))


@given(st.lists(reading, max_size=40), st.floats(-1.0, 40.0))
def test_any_sequence_gives_a_needle_on_the_scale_or_none(readings, t_display):
    state = feed(sorted(readings, key=lambda r: r[0]))
    shown = needle_predict(state, t_display, CONFIG)
    assert shown is None or 0.0 <= shown <= CONFIG.max_rpm


def test_the_same_readings_give_the_same_needle():
    readings = obd(lambda t: 2000.0 + 300.0 * math.sin(t), 10.0, seed=9)
    first, second = feed(readings), feed(readings)
    assert first == second
    assert needle_predict(first, 10.1, CONFIG) == needle_predict(second, 10.1, CONFIG)


def test_on_the_virtual_truck_the_needle_beats_holding_the_latest_obd_value():
    """100 s of the truck's day in town (three stops, shifts up to 5th and down): 5 Hz OBD,
    sigma 40 rpm, 50-100 ms late. The needle is read at 60 fps; a gear engaged anew resets it
    at the first reading measured in it.
    """
    truck = VirtualTruck(load_profile("hijet-s500p"))
    start = 125.0
    truck.fast_forward(start)  # past the farm track's long crawl in 1st
    rng = random.Random(11)
    truth, clutch, pending = [], [], []  # every step: rpm, clutch in; pending: (received, t, rpm, gear)
    next_poll, gear_shown = start + 0.2, None
    state = NeedleState()
    held: float | None = None
    errors_filter, errors_hold, in_gear, resets = [], [], [], 0
    frame = round(start * 60)
    for step in range(round(100 / STEP_S)):
        truck.advance(STEP_S)
        now = start + (step + 1) * STEP_S
        true = truck.truth()
        truth.append(true.rpm)
        clutch.append(true.clutch_in)
        if now >= next_poll:
            engaged = None if true.clutch_in else true.gear
            pending.append((now + rng.uniform(0.05, 0.10), now, true.rpm + rng.gauss(0, 40), engaged))
            next_poll += 0.2
        while (frame + 1) / 60 <= now:
            frame += 1
            t_frame = frame / 60
            for r in sorted(p for p in pending if p[0] <= t_frame):
                pending.remove(r)
                _, t, rpm, gear = r
                if gear is not None and gear != gear_shown:
                    state, resets = needle_reset(state, t, rpm, CONFIG), resets + 1
                else:
                    state = needle_update(state, t, rpm, "obd", CONFIG)
                gear_shown, held = gear, rpm
            if t_frame > start + 2 and held is not None:
                i = min(len(truth) - 1, round((t_frame - start) / STEP_S) - 1)
                errors_filter.append(needle_predict(state, t_frame, CONFIG) - truth[i])
                errors_hold.append(held - truth[i])
                in_gear.append(not any(clutch[max(0, i - 50):i + 1]))  # clutch up for 0.5 s
    def rms(errors, only=None):
        chosen = [e for e, keep in zip(errors, only or [True] * len(errors)) if keep]
        return math.sqrt(sum(e * e for e in chosen) / len(chosen))

    assert resets >= 10  # launches and shifts
    print(f"rms error: filter {rms(errors_filter):.1f} rpm, hold {rms(errors_hold):.1f} rpm; in gear: "
          f"filter {rms(errors_filter, in_gear):.1f} rpm, hold {rms(errors_hold, in_gear):.1f} rpm")
    assert rms(errors_filter) < 0.95 * rms(errors_hold)  # shifts, launches and stops included
    assert rms(errors_filter, in_gear) < 0.8 * rms(errors_hold, in_gear)
