"""Live learning as the dash runs it (issue 11): at any replay speed, and honest on the dash."""

import threading
from pathlib import Path

import pytest

from keidash.app import run_dash
from keidash.estimate.estimator import NEEDS_RATIOS, EstimatorState, advise, config_for, step
from keidash.profiles import load_profile, unknown_profile
from keidash.readings import RPM, SPEED, Reading
from keidash.rig import open_rig

FORD = Path(__file__).parent / "data" / "drives" / "openxc-ford" / "driving.jsonl"


def learn_by_replay(speed: float):
    rig = open_rig({"replay": f"replay://{FORD}?speed={speed:g}"})
    rig.start()
    try:
        stats = run_dash(rig, config_for(unknown_profile(), {}, ("replay",)), [], fps=30, seconds=60.0,
                         stop=threading.Event(), should_quit=rig.finished)
    finally:
        rig.stop()
    # the ratios learned live, once certain, are handed to the rig for the engine note's gear constraint
    assert stats.learned is not None and stats.learned.ready
    assert rig.gear_ratios == stats.learned.rpm_per_kmh()
    return stats.learned


@pytest.mark.slow
def test_learning_is_the_same_at_any_replay_speed():
    """The readings carry the drive's own time, so a replay at 20x or as fast as possible learns
    what the log holds: before, at 10x a 1 s steady stretch was 0.1 s to the learner (nothing learned)."""
    fast, fastest = learn_by_replay(20), learn_by_replay(0)
    assert fast is not None and fastest is not None
    assert fast.found == fastest.found == 5
    assert fast.rpm_per_kmh() == pytest.approx(fastest.rpm_per_kmh(), rel=1e-9)
    assert fast.rpm_per_kmh()[0] == pytest.approx(139.7, rel=0.02)


def readings(pairs, source="obd"):
    out = []
    for t, speed, rpm in pairs:
        out.append(Reading(t, SPEED, speed, source))
        if rpm is not None:
            out.append(Reading(t + 0.05, RPM, rpm, source))
    return out


def test_while_learning_the_gear_box_says_so_and_shows_no_number():
    config = config_for(load_profile("carry-dd51t"), {}, ("obd",))  # no sourced ratios, no gear count
    state = EstimatorState()
    for r in readings([(i / 10, 30.0, 2100.0) for i in range(30)]):
        state = step(state, r, config)
    dash = advise(state, 3.0, config)
    assert dash.gear is None and dash.rpm == pytest.approx(2100, abs=50)
    assert dash.gear_note == "learning 0/?" and dash.message == ""


def test_a_truck_with_no_ratios_and_no_rpm_says_what_it_needs():
    config = config_for(load_profile("carry-dd51t"), {}, ("gps",))
    state = EstimatorState()
    for r in readings([(i / 10, 30.0, None) for i in range(30)], source="gps"):
        state = step(state, r, config)
    dash = advise(state, 3.0, config)
    assert dash.gear is None and dash.rpm is None
    assert dash.gear_note == "no ratios" and dash.message == NEEDS_RATIOS


def test_with_ratios_known_the_gear_box_has_no_note():
    config = config_for(load_profile("hijet-s500p"), {}, ("obd",))
    k3 = load_profile("hijet-s500p").rpm_per_kmh()[2]
    state = EstimatorState()
    for r in readings([(i / 10, 30.0, k3 * 30.0) for i in range(30)]):
        state = step(state, r, config)
    dash = advise(state, 3.0, config)
    assert dash.gear == 3 and dash.gear_note == "" and dash.message == ""


def test_a_profile_with_a_gear_count_and_no_ratios_learns_without_crashing():
    """The Acty and the Sambars know their gear count (5) but no ratios: their dash learns, and
    says how far it has got (it raised IndexError at the first rpm and speed before)."""
    config = config_for(load_profile("acty-ha4"), {}, ("obd",))
    state = EstimatorState()
    for r in readings([(i / 10, 30.0, 2100.0) for i in range(30)]):
        state = step(state, r, config)
    dash = advise(state, 3.0, config)
    assert dash.gear is None and dash.gear_note == "learning 0/5"
