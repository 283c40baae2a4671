"""The engine-note tracker (keidash.sources.note) on arrays, and on the virtual cab's hard cases."""

from __future__ import annotations

import numpy as np
import pytest

from keidash.profiles import load_profile
from keidash.sim import cabin
from keidash.sources.note import (CLIPPING, NO_ENGINE, SILENCE, Decimator, GearHint, NoteConfig, NoteTracker,
                                  decimation_for, to_float)

RATE = 8000


def engine_tone(rpm: float, seconds: float, cylinders: int = 3, strokes: int = 4, half_orders: float = 0.0,
                seed: int = 0) -> np.ndarray:
    """A firing line and its harmonics (plus, if asked, the weaker half-orders of the cycle)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    cycle = rpm / 60 / (2 if strokes == 4 else 1)
    out = 0.002 * rng.standard_normal(len(t))
    for h in range(1, 8 * cylinders + 1):
        weight = 1.0 if h % cylinders == 0 else half_orders
        if weight and h * cycle < 1500:
            out += 0.05 * weight / (1 + h * cycle / 300) * np.sin(2 * np.pi * h * cycle * t + rng.uniform(0, 6))
    return out


def heard(estimates) -> list[float]:
    return [e.rpm for e in estimates if e.rpm is not None]


@pytest.mark.parametrize("rpm", [800, 2500, 6800])
def test_a_steady_three_cylinder_line_is_read_to_two_percent(rpm):
    # (at idle the 20 Hz line is read about 1.4 % low: the whitening's running mean leans on it)
    estimates = NoteTracker(NoteConfig(cylinders=3)).feed(engine_tone(rpm, 3))
    rpms = heard(estimates)
    assert len(rpms) >= len(estimates) - 2  # only the first windows confirm the line
    assert all(abs(r - rpm) < 0.02 * rpm for r in rpms)
    assert all(e.sigma_rpm and e.sigma_rpm < 0.05 * rpm for e in estimates if e.rpm)


def test_two_strokes_fire_every_revolution():
    # a 2-stroke three fires 3 times a revolution: 3000 rpm is 150 Hz, which a 4-stroke reads as 6000
    tone = engine_tone(3000, 3, cylinders=3, strokes=2)
    assert np.median(heard(NoteTracker(NoteConfig(cylinders=3, strokes=2)).feed(tone))) == pytest.approx(3000, rel=0.01)
    assert np.median(heard(NoteTracker(NoteConfig(cylinders=3, strokes=4)).feed(tone))) == pytest.approx(6000, rel=0.01)


def test_the_half_orders_of_an_uneven_engine_do_not_pull_it_to_a_third():
    # cylinder-to-cylinder imbalance puts lines at every multiple of rpm/120: a candidate at a
    # third of the rpm collects them all
    rpms = heard(NoteTracker().feed(engine_tone(2790, 4, half_orders=0.15)))
    assert rpms and all(abs(r - 2790) < 0.02 * 2790 for r in rpms)


def test_silence_clipping_and_plain_noise_give_no_rpm():
    rng = np.random.default_rng(3)
    silent = NoteTracker().feed(1e-5 * rng.standard_normal(3 * RATE))
    assert silent and all(e.rpm is None and e.why == SILENCE for e in silent)
    clipped = NoteTracker().feed(np.clip(40 * engine_tone(3000, 3), -1, 1))
    assert clipped and all(e.rpm is None and e.why == CLIPPING for e in clipped)
    hiss = NoteTracker().feed(0.05 * rng.standard_normal(30 * RATE))
    assert sum(e.rpm is not None for e in hiss) <= 0.02 * len(hiss)
    assert sum(e.why == NO_ENGINE for e in hiss) >= 0.9 * len(hiss)


def test_estimates_come_ten_a_second_stamped_at_the_middle_of_their_window():
    tracker = NoteTracker(NoteConfig(), t0=100.0)
    estimates = []
    tone = engine_tone(3000, 2)
    for i in range(0, len(tone), 333):  # fed in odd-sized chunks, as a pipe delivers them
        estimates += tracker.feed(tone[i:i + 333])
    times = [e.t for e in estimates]
    assert times[0] == pytest.approx(100.0 + 0.256)
    assert np.diff(times) == pytest.approx(np.full(len(times) - 1, 0.1))


def test_the_gear_constraint_keeps_a_loud_tone_off_the_needle():
    # a 1500 rpm engine in 2nd at 10 km/h under a louder steady tone that a 3-cylinder would make at 4400 rpm
    t = np.arange(4 * RATE) / RATE
    tone = engine_tone(1500, 4) + 0.12 * sum(np.sin(2 * np.pi * k * 110.0 * t) for k in range(1, 7))
    per_kmh = (300.0, 150.0, 100.0)
    free = heard(NoteTracker().feed(tone))
    geared = NoteTracker().feed(tone, lambda _t: GearHint(10.0, per_kmh, 850.0))
    assert np.median(free) == pytest.approx(4400, rel=0.02)  # a plain tracker is fooled
    assert all(abs(r - 1500) < 0.03 * 1500 for r in heard(geared)) and len(heard(geared)) > 30
    assert {e.gear for e in geared if e.rpm} == {2}


def test_pcm_of_any_width_and_the_decimator():
    ints = np.array([0, 16384, -32768, 32767], dtype="<i2")
    assert to_float(ints.tobytes(), 2, 1) == pytest.approx([0, 0.5, -1, 32767 / 32768])
    stereo = np.array([1, 100, 2, 200], dtype="<i2").tobytes()
    assert to_float(stereo, 2, 2, channel=1) == pytest.approx([100 / 32768, 200 / 32768])
    s24 = bytes([0, 0, 0x80, 0xFF, 0xFF, 0x7F])
    assert to_float(s24, 3, 1) == pytest.approx([-1.0, (2 ** 23 - 1) / 2 ** 23])
    assert to_float(bytes([128, 0]), 1, 1) == pytest.approx([0, -1])
    # a 48 kHz engine, decimated in chunks, reads as it does at 8 kHz
    assert decimation_for(48000) == 6 and decimation_for(8000) == 1 and decimation_for(44100) == 5
    t = np.arange(3 * 48000) / 48000
    tone = sum(np.sin(2 * np.pi * k * 75.0 * t) / k for k in range(1, 6)) * 0.05
    decimate = Decimator(6)
    low = np.concatenate([decimate(tone[i:i + 1000]) for i in range(0, len(tone), 1000)])
    assert len(low) == len(tone) // 6
    assert np.median(heard(NoteTracker().feed(low))) == pytest.approx(3000, rel=0.01)


# -- the virtual cab ----------------------------------------------------------------------

HIJET = load_profile("hijet-s500p")


def scored(truths, noise, geared=False, seed=0):
    """(share of running windows within 5 % of the truth, share of engine-off windows with an rpm)."""
    sound = cabin.cabin_recording(truths, noise, seed=seed)
    t = np.array([tr.t for tr in truths])
    rpm = np.array([tr.rpm for tr in truths])
    speed = np.array([tr.speed_kmh for tr in truths])
    hint = (lambda at: GearHint(float(np.interp(at, t, speed)), HIJET.rpm_per_kmh(), 850.0)) if geared else None
    estimates = NoteTracker().feed(sound, hint)
    running = [e for e in estimates if np.interp(e.t, t, rpm) > 300]
    off = [e for e in estimates if np.interp(e.t, t, rpm) <= 300]
    good = sum(e.rpm is not None and abs(e.rpm - np.interp(e.t, t, rpm)) <= 0.05 * np.interp(e.t, t, rpm)
               for e in running)
    return (good / len(running) if running else None), (sum(e.rpm is not None for e in off) / len(off) if off else None)


@pytest.fixture(scope="module")
def town_drive():
    return cabin.drive_truths(HIJET, 60)


def test_the_cab_is_the_same_for_the_same_seed_and_not_for_another(town_drive):
    a = cabin.cabin_recording(town_drive[:300], seed=4)
    assert np.array_equal(a, cabin.cabin_recording(town_drive[:300], seed=4))
    assert not np.array_equal(a, cabin.cabin_recording(town_drive[:300], seed=5))
    assert 0.005 < np.sqrt(np.mean(a ** 2)) < 0.5


def test_a_drive_in_the_everyday_cab(town_drive):
    assert scored(town_drive, cabin.CASES["cab"])[0] >= 0.95


def test_the_blower_on(town_drive):
    assert scored(town_drive, cabin.CASES["blower on"])[0] >= 0.93
    assert scored(town_drive, cabin.CASES["blower on"], geared=True)[0] >= 0.93


def test_the_radio_louder_than_the_engine_needs_the_gears(town_drive):
    noise = cabin.CASES["radio louder than the engine"]
    quiet = dict(road=0, wind=0, whine=0, clatter=0)
    radio_only = cabin.cabin_recording(town_drive, cabin.CabinNoise(engine=0, radio=noise.radio, **quiet))
    engine_only = cabin.cabin_recording(town_drive, cabin.CabinNoise(**quiet))
    assert np.std(radio_only) > 1.3 * np.std(engine_only)  # the radio is the louder
    free, _ = scored(town_drive, noise)
    geared, _ = scored(town_drive, noise, geared=True)
    assert geared >= 0.85 and geared > free


def test_idle_at_800():
    good, _ = scored(cabin.scripted(cabin.IDLE_800), cabin.CASES["cab"])
    assert good >= 0.95


def test_a_downshift_blip_is_followed():
    truths = cabin.scripted(cabin.downshift_blip(HIJET))
    assert scored(truths, cabin.CASES["cab"])[0] >= 0.85
    assert scored(truths, cabin.CASES["cab"], geared=True)[0] >= 0.85


def test_the_radio_with_the_engine_off_gives_no_needle_with_the_gears():
    # a standstill: only the idle's rpm is an engine's; the radio's notes do not follow from it
    truths = cabin.scripted(cabin.ENGINE_OFF)
    sound = cabin.cabin_recording(truths, cabin.CASES["radio louder than the engine"])
    estimates = NoteTracker().feed(sound, lambda _t: GearHint(0.0, HIJET.rpm_per_kmh(), 850.0))
    assert estimates and all(e.rpm is None for e in estimates)


def test_clipping_and_silence_give_nothing(town_drive):
    good, _ = scored(town_drive, cabin.CASES["clipping"])
    assert good == 0.0
    _, heard_off = scored(cabin.scripted(cabin.ENGINE_OFF), cabin.CASES["cab"])
    assert heard_off == 0.0


def sweeping_tone(rpm_at, seconds: float, cylinders: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A firing line and its harmonics whose rpm follows ``rpm_at(t)``: (samples, rpm per sample)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    rpm = rpm_at(t)
    cycle_phase = 2 * np.pi * np.cumsum(rpm / 120) / RATE
    out = 0.002 * rng.standard_normal(len(t))
    for h in range(cylinders, 8 * cylinders + 1, cylinders):
        out += 0.05 / (1 + h * rpm / 120 / 300) * np.sin(h * cycle_phase + rng.uniform(0, 6)) * (h * rpm / 120 < 1500)
    return out, rpm


def test_a_line_sweeping_through_the_window_is_read_dechirped():
    """A blip: 1 s at 1500 rpm, then up at 2 log-rpm a second (x2.7 in half a second, faster than
    any pull in gear) to 4000, held. A 0.512 s window smears the sweep into nothing that stands
    out; read dechirped it is one line, and the tracker follows it instead of dropping it."""
    def rpm_at(t):
        return np.clip(1500 * np.exp(2.0 * np.clip(t - 1.0, 0, None)), 1500, 4000)
    sound, rpm = sweeping_tone(rpm_at, 3.0)

    def in_sweep(estimates):  # the windows centred in the sweep
        return [(e.rpm, float(np.interp(e.t, np.arange(len(rpm)) / RATE, rpm))) for e in estimates if 1.1 <= e.t <= 1.5]
    dechirped = in_sweep(NoteTracker(NoteConfig()).feed(sound))
    plain = in_sweep(NoteTracker(NoteConfig(dechirp_rates=())).feed(sound))
    assert len(dechirped) == len(plain) == 4

    def right(readings):
        return sum(got is not None and abs(got - truth) <= 0.05 * truth for got, truth in readings)
    assert right(plain) == 0 and right(dechirped) >= 2
    # none far off (a window's reading is its middle's only as far as the sweep is steady in it)
    assert all(got is None or abs(got - truth) <= 0.1 * truth for got, truth in dechirped)


def test_a_tone_cut_off_is_not_read_dechirped_as_a_line_elsewhere():
    # a dechirped reading of a window where the sound stops would put the tone at another rpm
    sound = np.concatenate([engine_tone(2414, 2.5), np.zeros(RATE)])
    rpms = heard(NoteTracker().feed(sound))
    assert rpms and all(abs(r - 2414) < 0.02 * 2414 for r in rpms)


def test_another_gear_than_a_window_ago_is_charged():
    """Cruising in 3rd at 48 km/h, a far louder tone on 2nd gear's rpm for 0.3 s (a radio's note):
    the needle stays on 3rd; with no charge for changing gear it jumps to the note."""
    hijet = load_profile("hijet-s500p").rpm_per_kmh()
    third, second = 48 * hijet[2], 48 * hijet[1]
    sound = engine_tone(third, 3.0)
    note = 8 * engine_tone(second, 0.3, seed=1)
    sound[int(1.5 * RATE):int(1.8 * RATE)] += note[:int(0.3 * RATE)]

    def hint(t):
        return GearHint(48.0, hijet, 850.0)
    gears = [e.gear for e in NoteTracker(NoteConfig()).feed(sound, hint) if e.rpm is not None]
    uncharged = [e.gear for e in NoteTracker(NoteConfig(shift_charge=0.0)).feed(sound, hint) if e.rpm is not None]
    assert set(gears) == {3}
    assert 2 in uncharged
