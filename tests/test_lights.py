"""Shift lights and the shift buzzer on gpiozero's MockFactory, driven by DashStates.

The pins' recorded states are the evidence: how many bar LEDs are lit at each rpm, the row
flashing on and off at the shift point, the down LED pulsing during a down cue, the buzzer's
beeps counted and timed in the snapshots' own time (state.t), never the wall clock.
"""

from __future__ import annotations

import logging
import sys

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from hypothesis import given
from hypothesis import strategies as st

from keidash.dashstate import DOWN, LIVE, STALE, UP, DashState, SourceView
from keidash.estimate.estimator import EstimatorConfig, EstimatorState, advise, step
from keidash.outputs import ShiftBuzzer, ShiftLights
from keidash.outputs.lights import bar_lit
from keidash.profiles import load_profile
from keidash.profiles.engine import shift_limits
from keidash.readings import SPEED, Reading
from keidash.sim.driver import HILLY_FARM
from keidash.sim.truck import VirtualTruck

BAR = [5, 6, 13, 19, 26]
DOWN_PIN = 12
BUZZER = 16
UPSHIFT, REDLINE, SPAN = 4800.0, 5700.0, 1500.0


def dash(t: float, rpm: float | None, cue: str | None = None, **changes) -> DashState:
    return DashState(t=t, profile_title="test", rpm=rpm, rpm_estimated=False, speed_kmh=30.0, gear=3,
                     cue=cue, upshift_rpm=UPSHIFT, redline_rpm=REDLINE, tach_max_rpm=7000.0, **changes)


@pytest.fixture
def factory():
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.close()


@pytest.fixture
def lights(factory):
    lights = ShiftLights(BAR, down_pin=DOWN_PIN, span_rpm=SPAN, flash_hz=6.0, pin_factory=factory)
    yield lights
    lights.close()


def bar_states(factory) -> list[bool]:
    return [bool(factory.pin(p).state) for p in BAR]


def history(pin) -> list[float]:
    return [s.state for s in pin.states]


def test_importing_the_outputs_does_not_import_gpiozero():
    import subprocess
    code = "import sys, keidash.outputs, keidash.cab.inputs; print('gpiozero' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the bar fills one LED at a time -----------------------------------------------------------

@pytest.mark.parametrize("rpm,lit", [
    (800.0, 0), (3299.0, 0),  # below upshift - span: dark
    (3300.0, 1), (3599.0, 1), (3600.0, 2), (3899.0, 2), (3900.0, 3), (4199.0, 3), (4200.0, 4),
    (4499.0, 4), (4500.0, 5), (4799.0, 5),  # one LED per span/5 = 300 rpm, all lit before the shift point
])
def test_leds_light_one_by_one_up_to_the_shift_point(factory, lights, rpm, lit):
    lights.render(dash(1.0, rpm))
    assert bar_states(factory) == [i < lit for i in range(len(BAR))]


def test_a_sweep_lights_the_leds_in_order_and_never_skips_one(factory, lights):
    seen = []
    for i, rpm in enumerate(range(2500, 4800, 25)):
        lights.render(dash(i * 0.02, float(rpm)))
        states = bar_states(factory)
        lit = sum(states)
        assert states == [j < lit for j in range(len(BAR))]  # always a solid run from the first LED
        seen.append(lit)
    assert seen == sorted(seen) and set(seen) == set(range(len(BAR) + 1))
    for p in BAR:  # each LED switched on exactly once during the sweep
        assert history(factory.pin(p)) == [False, True]


@given(rpm=st.floats(0, 9000), count=st.integers(1, 12), span=st.floats(100, 4000))
def test_bar_lit_is_within_the_row_and_full_just_below_the_shift_point(rpm, count, span):
    lit = bar_lit(rpm, UPSHIFT, span, count)
    assert 0 <= lit <= count
    assert (lit == 0) == (rpm < UPSHIFT - span)
    assert bar_lit(UPSHIFT - 1e-6, UPSHIFT, span, count) == count
    assert bar_lit(rpm + 50.0, UPSHIFT, span, count) >= lit


# -- flashing at the shift point, steady past the red line ---------------------------------------

def flashes(factory, lights, rpm: float, cue: str | None, fps: float = 60.0, seconds: float = 1.0):
    """Render ``seconds`` of frames; return the row's on/off at each frame, keyed by state.t."""
    frames = []
    for i in range(int(seconds * fps)):
        t = 100.0 + i / fps
        lights.render(dash(t, rpm, cue))
        states = bar_states(factory)
        assert len(set(states)) == 1  # the whole row flashes together
        frames.append((t, states[0]))
    return frames


def runs(frames) -> list[tuple[bool, float]]:
    """(state, duration in state.t) of each complete run of equal states."""
    out, start = [], 0
    for i in range(1, len(frames)):
        if frames[i][1] != frames[start][1]:
            out.append((frames[start][1], frames[i][0] - frames[start][0]))
            start = i
    return out


@pytest.mark.parametrize("rpm,cue", [(UPSHIFT, None), (5200.0, None), (4000.0, UP), (5200.0, UP)])
def test_the_row_flashes_at_flash_hz_at_the_shift_point_or_on_an_up_cue(factory, lights, rpm, cue):
    frames = flashes(factory, lights, rpm, cue)
    assert frames[0][1] is True  # the flashing starts lit, at once
    pin = factory.pin(BAR[0])
    on_edges = history(pin)[1:].count(True)
    assert on_edges == 6  # 6 Hz for one second
    for on, duration in runs(frames):  # each half period is 1/12 s, to within a frame
        assert abs(duration - 1 / 12) <= 1 / 60 + 1e-9, (on, duration)


def test_past_the_red_line_every_led_is_on_steady(factory, lights):
    frames = flashes(factory, lights, REDLINE + 100.0, UP)
    assert all(on for _, on in frames)
    for p in BAR:
        assert history(factory.pin(p)) == [False, True]


def test_flashing_stops_when_the_rpm_falls_back(factory, lights):
    flashes(factory, lights, 5000.0, UP, seconds=0.3)
    lights.render(dash(101.0, 3700.0))
    assert bar_states(factory) == [True, True, False, False, False]


# -- the down LED ---------------------------------------------------------------------------------

def test_the_down_led_pulses_during_a_down_cue_and_is_dark_otherwise(factory, lights):
    pin = factory.pin(DOWN_PIN)
    lights.render(dash(0.0, 1500.0))
    assert pin.state == 0
    levels = []
    for i in range(60):  # one second of a down cue at 60 fps
        lights.render(dash(0.1 + i / 60, 1400.0, DOWN))
        levels.append(pin.state)
    assert levels[0] == pytest.approx(1.0)  # lit at once
    assert min(levels) < 0.05 and max(levels) > 0.95  # fades right out and back in
    dips = sum(1 for a, b, c in zip(levels, levels[1:], levels[2:]) if b < a and b <= c)
    assert dips == 2  # two pulses in the second (2 Hz)
    assert bar_states(factory) == [False] * len(BAR)  # 1400 rpm: the bar stays dark
    lights.render(dash(1.2, 1800.0))
    assert pin.state == 0


# -- no rpm, no lights ----------------------------------------------------------------------------

@pytest.mark.parametrize("gone", [
    {"rpm": None},
    {"rpm_source": "obd", "sources": (SourceView("obd", STALE, "no fresh data"),)},
])
def test_every_led_goes_dark_without_an_rpm(factory, lights, gone):
    lights.render(dash(0.0, 5000.0, DOWN))
    assert any(bar_states(factory)) and factory.pin(DOWN_PIN).state > 0
    changes = {"rpm": 5000.0, **gone}
    rpm = changes.pop("rpm")
    lights.render(dash(0.1, rpm, DOWN, **changes))
    assert bar_states(factory) == [False] * len(BAR) and factory.pin(DOWN_PIN).state == 0


def test_a_live_named_rpm_source_still_lights(factory, lights):
    lights.render(dash(0.0, 4000.0, rpm_source="obd", sources=(SourceView("obd", LIVE),)))
    assert sum(bar_states(factory)) == 3


def test_close_switches_everything_off_and_is_safe_twice(factory, lights):
    lights.render(dash(0.0, 6000.0, DOWN))
    lights.close()
    lights.close()
    lights.render(dash(0.1, 6000.0, DOWN))  # after close: nothing, no error
    assert bar_states(factory) == [False] * len(BAR) and factory.pin(DOWN_PIN).state == 0


def test_a_busy_pin_is_one_log_line_not_a_crash(factory, lights, caplog):
    with caplog.at_level(logging.WARNING):
        second = ShiftLights([BAR[0]], pin_factory=factory)
    assert not second.available
    second.render(dash(0.0, 5000.0))
    assert len(caplog.records) == 1 and "GPIO5" in caplog.text and "in use" in caplog.text


# -- the buzzer -----------------------------------------------------------------------------------

@pytest.fixture
def buzzer(factory):
    buzzer = ShiftBuzzer(BUZZER, pin_factory=factory, beep_s=0.08)
    yield buzzer
    buzzer.close()


def beeps(buzzer, factory, cues, fps: float):
    """Render one frame per cue at ``fps``; return each beep's (start, length) in state.t."""
    pin = factory.pin(BUZZER)
    out, on_since = [], None
    for i, cue in enumerate(cues):
        t = 50.0 + i / fps
        buzzer.render(dash(t, 3000.0, cue))
        if pin.state and on_since is None:
            on_since = t
        elif not pin.state and on_since is not None:
            out.append((on_since, t - on_since))
            on_since = None
    assert on_since is None, "the buzzer was left on"
    return out


@pytest.mark.parametrize("cue,count", [(UP, 1), (DOWN, 2)])
def test_a_new_cue_beeps_once_for_up_twice_for_down_and_never_continuously(buzzer, factory, cue, count):
    fps = 60.0
    cues = [None] * 5 + [cue] * 120 + [None] * 5  # the cue stays up for two seconds
    found = beeps(buzzer, factory, cues, fps)
    assert len(found) == count
    assert found[0][0] == pytest.approx(50.0 + 5 / fps)  # at the render where the cue appears
    for _, length in found:  # off at the first render beep_s later
        assert 0.08 - 1e-9 <= length < 0.08 + 1 / fps
    assert history(factory.pin(BUZZER)) == [False, True] * count + [False]


def test_beeps_keep_their_count_and_length_at_a_slow_frame_rate(buzzer, factory):
    found = beeps(buzzer, factory, [None, DOWN, DOWN, DOWN, DOWN, DOWN, None], fps=4.0)
    assert len(found) == 2 and all(length >= 0.08 for _, length in found)


def test_each_new_cue_beeps_again(buzzer, factory):
    cues = [UP] * 30 + [None] * 30 + [UP] * 30 + [DOWN] * 30
    found = beeps(buzzer, factory, cues, fps=60.0)
    assert len(found) == 1 + 1 + 2


# -- a drive: the virtual truck through the estimator -----------------------------------------------

HIJET = load_profile("hijet-s500p")
CONFIG = EstimatorConfig(shift_limits(HIJET), HIJET.rpm_per_kmh(), HIJET.title)


def simulated_drive(seconds: float, fps: float = 10.0) -> list[DashState]:
    """Speed-only on the hilly farm route: the truck's driver shifts when told, so the drive has up
    cues and, lugging up an orchard climb, a down cue (braking for a stop lugs nothing)."""
    truck = VirtualTruck(HIJET, obey_cues=True, legs=HILLY_FARM)
    state, out = EstimatorState(), []
    for _ in range(int(seconds * fps)):
        truck.advance(1 / fps)
        truth = truck.truth()
        state = step(state, Reading(truth.t, SPEED, truth.speed_kmh, "obd"), CONFIG)
        out.append(advise(state, truth.t, CONFIG))
        truck.show_cue(out[-1].cue)
    return out


def test_a_simulated_drive_lights_flashes_pulses_and_beeps_with_the_cues(factory):
    drive = simulated_drive(300.0)
    onsets = [(i, s.cue) for i, s in enumerate(drive) if s.cue and s.cue != (drive[i - 1].cue if i else None)]
    assert {cue for _, cue in onsets} == {UP, DOWN}  # the drive exercises both cues
    lights = ShiftLights(BAR, down_pin=DOWN_PIN, span_rpm=SPAN, pin_factory=factory)
    buzzer = ShiftBuzzer(BUZZER, pin_factory=factory)
    frames = []
    for state in drive:
        lights.render(state)
        buzzer.render(state)
        frames.append((state, bar_states(factory), factory.pin(DOWN_PIN).state, factory.pin(BUZZER).state))
    lights.close()
    buzzer.close()

    flashing_on = flashing_off = 0
    for state, bar, down, _ in frames:
        lit = sum(bar)
        if state.rpm is None:
            assert lit == 0
        elif state.cue == UP or state.rpm >= state.upshift_rpm:
            assert lit in (0, len(BAR))  # flashing: all or nothing
            flashing_on += lit == len(BAR)
            flashing_off += lit == 0
        else:
            assert bar == [j < lit for j in range(len(BAR))]
            assert (lit == 0) == (state.rpm < state.upshift_rpm - SPAN)
        assert (down > 0) == (state.cue == DOWN and state.rpm is not None)
    assert flashing_on > 0 and flashing_off > 0

    buzz = [b for *_, b in frames]
    starts = [i for i in range(1, len(buzz)) if buzz[i] and not buzz[i - 1]]
    # every cue onset starts a beep at that very frame; a down cue's second beep two frames on
    expected = sorted([i for i, _ in onsets] + [i + 2 for i, cue in onsets if cue == DOWN])
    assert starts == expected
    assert not any(buzz[i] and buzz[i + 1] for i in range(len(buzz) - 1))  # at 10 fps each beep is one frame


# -- alarms on the buzzer (issue 14, point 8) -------------------------------------------------------

from keidash.dashstate import BATTERY_LOW, COOLANT_HOT  # noqa: E402
from keidash.outputs.lights import ALARM_AGAIN_S, ALARM_BEEP_S, ALARM_BEEPS  # noqa: E402


def alarm_beeps(buzzer, factory, alarms_at, seconds: float, fps: float = 20.0):
    """Render ``seconds`` at ``fps`` with ``alarms_at(t)``; each beep's (start, length)."""
    pin = factory.pin(BUZZER)
    out, on_since = [], None
    for i in range(int(seconds * fps)):
        t = 10.0 + i / fps
        buzzer.render(dash(t, 2500.0, None, alarms=alarms_at(t - 10.0)))
        if pin.state and on_since is None:
            on_since = t - 10.0
        elif not pin.state and on_since is not None:
            out.append((on_since, t - 10.0 - on_since))
            on_since = None
    return out, on_since


def test_an_alarm_sounds_three_long_beeps_then_again_each_minute_while_it_lasts(buzzer, factory):
    found, left_on = alarm_beeps(buzzer, factory, lambda t: (COOLANT_HOT,) if t >= 1.0 else (), 130.0)
    assert left_on is None
    starts = [round(s, 2) for s, _ in found]
    assert len(found) == 3 * ALARM_BEEPS  # at 1 s, 61 s and 121 s
    assert starts[0] == 1.0 and starts[ALARM_BEEPS] == pytest.approx(1.0 + ALARM_AGAIN_S)
    assert all(ALARM_BEEP_S - 1e-9 <= length < ALARM_BEEP_S + 0.051 for _, length in found)


def test_an_alarm_that_clears_is_silent_and_a_second_alarm_sounds_at_once(buzzer, factory):
    def alarms(t):
        if t < 1.0:
            return ()
        if t < 5.0:
            return (COOLANT_HOT,)
        if t < 8.0:
            return ()
        return (COOLANT_HOT,) if t < 10.0 else (COOLANT_HOT, BATTERY_LOW)
    found, _ = alarm_beeps(buzzer, factory, alarms, 14.0)
    starts = [s for s, _ in found]
    assert len(found) == 3 * ALARM_BEEPS
    assert starts[0] == pytest.approx(1.0) and starts[3] == pytest.approx(8.0)
    # the battery goes low during the coolant's third beep: its three follow, none merged
    assert all(length < ALARM_BEEP_S + 0.051 for _, length in found)
    assert 10.0 <= starts[6] <= 10.0 + 2 * ALARM_BEEP_S + 0.051


# -- what the frame loop's pacing asks of them (issue 15) ----------------------------------------

def test_the_lights_say_they_move_while_flashing_or_pulsing_and_not_on_a_steady_bar(lights):
    lights.render(dash(10.0, 3800.0))
    assert not lights.moving  # a steady bar: nothing changes until the rpm does
    lights.render(dash(10.1, 4900.0))
    assert lights.moving  # flashing at the shift point: it turns with time alone
    lights.render(dash(10.2, 2000.0, DOWN))
    assert lights.moving  # the down LED pulses
    lights.render(dash(10.3, 2000.0))
    assert not lights.moving


def test_the_buzzer_says_it_moves_until_its_beeps_are_over(buzzer):
    buzzer.render(dash(50.0, 3000.0))
    assert not buzzer.moving
    buzzer.render(dash(50.02, 3000.0, DOWN))  # two beeps: on, off, on, off
    assert buzzer.moving
    t = 50.02
    while buzzer.moving and t < 52.0:
        t += 1 / 60
        buzzer.render(dash(t, 3000.0, DOWN))
    assert not buzzer.moving and 50.02 + 3 * 0.08 <= t < 51.0  # both beeps and the gap between them


# -- a buzzer or a down LED without the bar --------------------------------------------------------

def test_a_down_led_alone_pulses_with_the_down_cue(factory):
    alone = ShiftLights([], down_pin=DOWN_PIN, span_rpm=SPAN, pin_factory=factory)
    try:
        assert alone.available and alone.count == 0
        alone.render(dash(0.0, 5200.0))  # at the shift point: no bar to flash, nothing to do
        assert factory.pin(DOWN_PIN).state == 0
        levels = []
        for i in range(30):
            alone.render(dash(0.1 + i / 60, 1400.0, DOWN))
            levels.append(factory.pin(DOWN_PIN).state)
        assert max(levels) > 0.9 and min(levels) < 0.5  # a pulse, as with the bar
    finally:
        alone.close()
    with pytest.raises(ValueError):
        ShiftLights([], pin_factory=factory)


@pytest.mark.parametrize("table,outputs", [
    ("[lights]\nbuzzer = 16\n", ["ShiftBuzzer"]),
    ("[lights]\ndown = 12\n", ["ShiftLights"]),
    ("[lights]\nbar = [5, 6]\nbuzzer = 16\n", ["ShiftLights", "ShiftBuzzer"]),
])
def test_the_config_may_give_a_buzzer_or_a_down_led_without_a_bar(tmp_path, monkeypatch, factory, table, outputs):
    from types import SimpleNamespace

    from gpiozero import Device

    from keidash.app import _cab_and_outputs
    from keidash.config import load_config

    path = tmp_path / "truck.toml"
    path.write_text('profile = "hijet-s500p"\n[sources]\ngps = "nmea:///dev/serial0"\n' + table)
    monkeypatch.setattr(Device, "pin_factory", factory)
    cab, built = _cab_and_outputs(SimpleNamespace(units=None, temperature=None), load_config(str(path)))
    try:
        assert [type(o).__name__ for o in built] == outputs
        assert cab.problems == []
        for output in built:
            output.render(dash(1.0, 3000.0, UP))
        if "buzzer" in table:
            assert factory.pin(BUZZER).state  # the up cue's beep
    finally:
        for output in built:
            output.close()


def test_lights_with_nothing_to_drive_is_one_sentence_naming_the_bar(tmp_path):
    from keidash.config import load_config
    from keidash.errors import ConfigError

    path = tmp_path / "truck.toml"
    path.write_text('profile = "hijet-s500p"\n[sources]\ngps = "nmea:///dev/serial0"\n[lights]\nspan_rpm = 900\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert "[lights]" in str(info.value) and "bar must be" in str(info.value) and "buzzer" in str(info.value)
