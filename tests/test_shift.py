"""Shift advice: power and economy upshift points, anti-lug and over-rev guards, hysteresis.

Checked against the definitions (forces equal at the power crossing, the economy
floor and reserve), on the sourced Hijet S500P, on synthetic torque curves, and
in closed loop on the virtual truck, whose driver obeys the cues.
"""

from dataclasses import replace

import pytest

from keidash.dashstate import DOWN, UP
from keidash.errors import ConfigError
from keidash.estimate.shift import (COLD_UPSHIFT_RPM, MODES, ShiftPolicy, cue, demand_from_throttle, policy_from_profile,
                           power_crossing_rpm, shift_speeds_kmh, upshift_rpm)
from keidash.profiles import Engine, load_profile
from keidash.profiles.engine import full_load_torque_nm, shift_limits

HIJET = load_profile("hijet-s500p")
LIMITS = shift_limits(HIJET)


def hijet(mode="power", **settings) -> ShiftPolicy:
    return policy_from_profile(HIJET, LIMITS, mode, **settings)


def force(policy: ShiftPolicy, gear: int, speed_kmh: float) -> float:
    """Full-load wheel force in ``gear`` at ``speed_kmh``, up to a constant factor."""
    k = policy.rpm_per_kmh[gear - 1]
    return full_load_torque_nm(policy.engine, k * speed_kmh, policy.limits.idle_rpm) * k


# ------------------------------------------------------------------ power mode

def test_hijet_power_mode_shifts_at_the_red_line_because_the_forces_cross_past_it():
    policy = hijet("power")
    for gear in range(1, 5):
        assert upshift_rpm(policy, gear) == LIMITS.redline_rpm
        assert power_crossing_rpm(policy, gear) is None
    # with a higher red line the crossing shows: always past peak power (5700 rpm), where the
    # power before and after the shift are equal
    high = replace(policy, limits=replace(LIMITS, redline_rpm=7500.0))
    for gear in range(1, 5):
        n = power_crossing_rpm(high, gear)
        assert HIJET.engine.peak_power_rpm < n < 1.35 * HIJET.engine.peak_power_rpm
        v = n / high.rpm_per_kmh[gear - 1]
        assert force(high, gear, v) == pytest.approx(force(high, gear + 1, v), rel=1e-4)
        assert force(high, gear, v - 2) > force(high, gear + 1, v - 2)  # below it the lower gear pulls harder


def test_power_crossing_below_the_red_line_is_the_upshift_point():
    engine = Engine("SYN", 660, peak_power_kw=30.0, peak_power_rpm=4500, peak_torque_nm=65.0, peak_torque_rpm=3000)
    limits = replace(LIMITS, redline_rpm=7000.0)
    policy = ShiftPolicy((200.0, 130.0, 90.0, 65.0, 50.0), limits, "power", engine)
    for gear in range(1, 5):
        n = upshift_rpm(policy, gear)
        assert n == power_crossing_rpm(policy, gear)
        assert 4500 < n < 7000
        v = n / policy.rpm_per_kmh[gear - 1]
        assert force(policy, gear, v) == pytest.approx(force(policy, gear + 1, v), rel=1e-4)


def test_forces_that_never_cross_shift_at_the_red_line():
    # a 6:1 step: the next gear cannot pull as hard anywhere below the red line
    policy = ShiftPolicy((300.0, 50.0), LIMITS, "power", HIJET.engine)
    assert power_crossing_rpm(policy, 1) is None
    assert upshift_rpm(policy, 1) == LIMITS.redline_rpm


# ------------------------------------------------------------------ economy mode

@pytest.mark.parametrize("demand", [0.0, 0.2, 0.3, 0.45, 0.5, 0.6, 0.8, 1.0])
def test_economy_is_the_earliest_shift_that_lands_above_the_floor_with_torque_in_reserve(demand):
    policy = hijet("economy")
    power = hijet("power")
    for gear in range(1, 5):
        n = upshift_rpm(policy, gear, demand=demand)
        assert n <= upshift_rpm(power, gear)
        if n == upshift_rpm(power, gear):
            continue  # no earlier shift keeps the reserve: wait for the power point
        k_now, k_next = policy.rpm_per_kmh[gear - 1], policy.rpm_per_kmh[gear]

        def keeps_reserve(rpm):
            needed = demand * full_load_torque_nm(HIJET.engine, rpm, LIMITS.idle_rpm) * k_now / k_next
            return needed <= 0.8 * full_load_torque_nm(HIJET.engine, rpm * k_next / k_now, LIMITS.idle_rpm)
        assert n * k_next / k_now >= policy.floor_rpm - 1e-6
        assert keeps_reserve(n)
        earlier = n - 10
        assert earlier * k_next / k_now < policy.floor_rpm or not keeps_reserve(earlier)


def test_economy_shifts_earlier_at_light_throttle_and_waits_under_load():
    policy = hijet("economy")
    light = shift_speeds_kmh(policy, demand=demand_from_throttle(20))
    floored = shift_speeds_kmh(policy, demand=demand_from_throttle(100))
    assert all(a < b for a, b in zip(light, floored))
    assert floored == shift_speeds_kmh(hijet("power"))
    # unknown throttle: the stated default demand
    assert shift_speeds_kmh(policy) == shift_speeds_kmh(policy, demand=policy.default_demand)
    assert demand_from_throttle(None) is None and demand_from_throttle(150) == 1.0


def test_road_speeds_are_rpm_over_rpm_per_kmh_and_rise_with_the_gear():
    for mode in MODES:
        policy = hijet(mode)
        speeds = shift_speeds_kmh(policy)
        assert len(speeds) == 4
        assert speeds == tuple(upshift_rpm(policy, g) / policy.rpm_per_kmh[g - 1] for g in range(1, 5))
        assert list(speeds) == sorted(speeds)


# ------------------------------------------------------------------ overrides, fallback, cold cap

def test_config_sets_upshift_rpm_per_gear_and_zero_means_computed():
    policy = hijet("power", upshift_rpm_per_gear=(4000.0, 0.0, 4500.0))
    assert upshift_rpm(policy, 1) == 4000.0
    assert upshift_rpm(policy, 2) == upshift_rpm(hijet("power"), 2)
    assert upshift_rpm(policy, 3) == 4500.0
    assert upshift_rpm(policy, 4) == upshift_rpm(hijet("power"), 4)


def test_without_peak_figures_both_modes_use_the_profile_or_config_upshift_rpm():
    engine = Engine("F6A", 657, peak_power_kw=30.9)  # a Carry: no torque figures
    limits = replace(LIMITS, upshift_rpm=4300.0)
    for mode in MODES:
        policy = ShiftPolicy(HIJET.rpm_per_kmh(), limits, mode, engine)
        assert not policy.has_torque_curve
        assert [upshift_rpm(policy, g) for g in range(1, 5)] == [4300.0] * 4


def test_cold_engine_caps_the_upshift_point_only_when_coolant_is_known_and_cold():
    for mode in MODES:
        policy = hijet(mode)
        for gear in range(1, 5):
            warm = upshift_rpm(policy, gear)
            assert upshift_rpm(policy, gear, coolant_c=None) == warm
            assert upshift_rpm(policy, gear, coolant_c=policy.cold_below_c) == warm
            assert upshift_rpm(policy, gear, coolant_c=20.0) == min(warm, COLD_UPSHIFT_RPM)
    assert cue(hijet(), None, 2, 3600.0, 3600 / hijet().rpm_per_kmh[1], coolant_c=20.0) == UP
    assert cue(hijet(), None, 2, 3600.0, 3600 / hijet().rpm_per_kmh[1], coolant_c=80.0) is None


def test_no_upshift_point_lands_the_next_gear_where_a_downshift_cue_could_show():
    policy = hijet("economy", cold_upshift_rpm=1500.0)  # an absurd cold cap
    for gear in range(1, 5):
        n = upshift_rpm(policy, gear, coolant_c=10.0)
        landed = n * policy.rpm_per_kmh[gear] / policy.rpm_per_kmh[gear - 1]
        assert landed >= LIMITS.lug_rpm + 2 * policy.margin_rpm - 1e-6
        speed = n / policy.rpm_per_kmh[gear - 1]
        assert cue(policy, None, gear + 1, landed, speed, coolant_c=10.0) is None


def test_unknown_mode_is_a_plain_config_error():
    with pytest.raises(ConfigError, match="power or economy"):
        hijet("sport")


# ------------------------------------------------------------------ cues

def test_anti_lug_downshift_in_third_and_up_only_while_moving():
    policy = hijet()
    rpm = LIMITS.lug_rpm - 50
    for gear in (3, 4, 5):
        assert cue(policy, None, gear, rpm, rpm / policy.rpm_per_kmh[gear - 1]) == DOWN
    for gear in (1, 2):
        assert cue(policy, None, gear, rpm, rpm / policy.rpm_per_kmh[gear - 1]) is None
    assert cue(policy, None, 3, rpm, 3.0) is None  # stopped
    assert cue(policy, None, 0, rpm, 30.0) is None and cue(policy, None, 3, None, 30.0) is None


def test_cues_clear_a_margin_back_inside_their_limit():
    policy = hijet()
    up, lug, margin = upshift_rpm(policy, 2), LIMITS.lug_rpm, policy.margin_rpm
    v2 = 1 / policy.rpm_per_kmh[1]
    assert cue(policy, None, 2, up - 100, (up - 100) * v2) is None
    assert cue(policy, UP, 2, up - 100, (up - 100) * v2) == UP
    assert cue(policy, UP, 2, up - margin - 1, (up - margin - 1) * v2) is None
    v4 = 1 / policy.rpm_per_kmh[3]
    assert cue(policy, None, 4, lug + 100, (lug + 100) * v4) is None
    assert cue(policy, DOWN, 4, lug + 100, (lug + 100) * v4) == DOWN
    assert cue(policy, DOWN, 4, lug + margin + 1, (lug + margin + 1) * v4) is None


def test_a_noisy_rpm_at_the_limit_does_not_flicker_the_cue():
    policy = hijet()
    up = upshift_rpm(policy, 1)
    previous, changes = None, 0
    for i in range(200):  # creeping up through the limit with +-120 rpm of noise
        rpm = up - 300 + 3 * i + (120 if i % 2 else -120)
        now = cue(policy, previous, 1, rpm, rpm / policy.rpm_per_kmh[0])
        changes += now != previous
        previous = now
    assert previous == UP and changes == 1


def test_over_rev_guard_never_cues_a_downshift_past_the_red_line_less_a_margin():
    policy = hijet()
    k2, k3 = policy.rpm_per_kmh[1], policy.rpm_per_kmh[2]
    redline, margin = LIMITS.redline_rpm, policy.margin_rpm
    # the tach reads low (clutch slipping) but the road speed would over-rev 2nd
    assert cue(policy, None, 3, 1200.0, 45.0) is None
    assert k2 * 45.0 > redline
    # between the new-cue and the keep-cue limits: only a cue already showing stays
    v = (redline - 1.5 * margin) / k2
    assert cue(policy, None, 3, 1200.0, v) is None
    assert cue(policy, DOWN, 3, 1200.0, v) == DOWN
    v = (redline - 2.5 * margin) / k2
    assert cue(policy, None, 3, 1200.0, v) == DOWN
    # with rpm and speed agreeing, lugging in 3rd can always drop to 2nd on the Hijet
    assert LIMITS.lug_rpm * k2 / k3 < redline - 2 * margin


# ------------------------------------------------------------------ closed loop on the virtual truck

def _drive(mode: str, seconds: float = 300.0, dt: float = 0.05):
    """The virtual truck's driver obeying this module's cues: [(t, gear, rpm, kmh, cue, coolant, throttle)]."""
    from keidash.sim.truck import VirtualTruck
    policy = hijet(mode)
    truck = VirtualTruck(HIJET, obey_cues=True)
    previous, previous_gear, rows = None, None, []
    for _ in range(int(seconds / dt)):
        truck.advance(dt)
        truth = truck.truth()
        gear = None if truth.clutch_in else truth.gear
        now = cue(policy, previous if gear == previous_gear else None, gear, truth.rpm, truth.speed_kmh,
                  coolant_c=truth.coolant_c, demand=demand_from_throttle(truth.throttle_pct))
        truck.show_cue(now)
        rows.append((truth.t, truth.gear, truth.rpm, truth.speed_kmh, now, truth.coolant_c, truth.throttle_pct))
        previous, previous_gear = now, gear
    return rows


def _upshifts(rows):
    """(t, from_gear) of every upshift the driver made."""
    out, last = [], None
    for t, gear, *_ in rows:
        if gear:
            if last and gear > last:
                out.append((t, last))
            last = gear
    return out


def _up_onsets(rows, cold: bool):
    """Engine rpm where each upshift cue came on, while the coolant was below 55 C (cold) or above 65 C."""
    return [b[2] for a, b in zip(rows, rows[1:])
            if b[4] == UP and a[4] != UP and (b[5] < 55 if cold else b[5] > 65)]


@pytest.fixture(scope="module")
def drives():
    return {mode: _drive(mode) for mode in MODES}


def test_closed_loop_no_downshift_cue_answers_an_upshift(drives):
    for mode, rows in drives.items():
        ups = _upshifts(rows)
        assert len(ups) >= 8
        for t_up, from_gear in ups:
            after = [r for r in rows if t_up <= r[0] < t_up + 5 and r[1] == from_gear + 1]
            assert all(r[4] != DOWN for r in after), (mode, t_up)


def test_closed_loop_cold_engine_is_cued_up_early(drives):
    for rows in drives.values():
        cold, warm = _up_onsets(rows, cold=True), _up_onsets(rows, cold=False)
        assert cold and warm
        # cold: at the cap, or at once when a shift lands above it; warm: at the mode's own point
        assert max(cold) < COLD_UPSHIFT_RPM + 700 < min(_up_onsets(drives["power"], cold=False))


def test_closed_loop_economy_is_never_later_and_at_part_throttle_earlier_than_power(drives):
    power, economy = hijet("power"), hijet("economy")
    both = eco_only = 0
    for t, gear, rpm, kmh, _, coolant, throttle in drives["power"]:
        if not gear or gear == 5 or kmh < 4:
            continue
        demand = demand_from_throttle(throttle)
        says = [cue(p, None, gear, rpm, kmh, coolant, demand) == UP for p in (power, economy)]
        assert says[1] or not says[0], t  # economy never later than power
        both += says[0]
        eco_only += says[1] and not says[0]
    assert both and eco_only > 20  # samples of 50 ms
    for rows in drives.values():
        assert max(r[3] for r in rows) > 85
