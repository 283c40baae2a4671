"""Fusion: the engine's note is an rpm source like OBD and the coil (issue 12).

A truck with a microphone and a GPS only learns its gears from them, shows the right gear, the
needle weighs each note by its own noise, and the trip log keeps the mic's readings.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from keidash.estimate.estimator import EstimatorState, advise, config_for, learned_so_far, step
from keidash.profiles import load_profile
from keidash.readings import RPM, SPEED, Reading
from keidash.sim import cabin
from keidash.sources.note import NoteTracker

HIJET = load_profile("hijet-s500p")


@pytest.fixture(scope="module")
def day():
    """The virtual truck's kei day heard by the cab's mic, and its GPS at 5 Hz: (truths, readings)."""
    truths = cabin.drive_truths(HIJET, 600)
    estimates = NoteTracker().feed(cabin.cabin_recording(truths, cabin.CASES["cab"]))
    readings = [Reading(e.t, RPM, e.rpm, "mic", 0.5, e.sigma_rpm) for e in estimates if e.rpm is not None]
    readings += [Reading(tr.t, SPEED, tr.speed_kmh, "gps", 1.0) for tr in truths[::20]]
    return truths, sorted(readings, key=lambda r: r.t)


@pytest.mark.slow
def test_a_truck_with_a_mic_and_a_gps_only_learns_its_gears(day):
    truths, readings = day
    config = config_for(replace(HIJET, gear_ratios=(), final_drive=None), {}, ("mic", "gps"))  # 5 gears, no ratios
    state, shown = EstimatorState(), []
    truth_at = {round(tr.t, 2): tr for tr in truths}
    for r in readings:
        state = step(state, r, config)
        if r.channel == SPEED:
            tr = truth_at.get(round(r.t, 2))
            if tr is not None and tr.speed_kmh > 5 and tr.gear > 0 and not tr.clutch_in:
                shown.append((advise(state, r.t, config).gear, tr.gear))
    found = learned_so_far(state, config)
    assert found.ready and found.found == 5
    assert found.rpm_per_kmh() == pytest.approx(HIJET.rpm_per_kmh(), rel=0.02)
    # once learned, the gear shown is the truck's
    late = shown[len(shown) // 2:]
    assert sum(g == t for g, t in late) >= 0.9 * len(late)


def test_the_needle_weighs_a_note_by_its_noise():
    config = config_for(HIJET, {}, ("mic",))

    def needle_after(sigma):
        state = EstimatorState()
        for i in range(20):
            state = step(state, Reading(i / 10, RPM, 2000.0, "mic", 0.5, 20.0), config)
        state = step(state, Reading(2.0, RPM, 2600.0, "mic", 0.5, sigma), config)
        return advise(state, 2.0, config).rpm

    confident, doubtful = needle_after(15.0), needle_after(600.0)
    assert confident > 2350 and doubtful < 2150 and confident - 2000 > 3 * (doubtful - 2000)


def test_the_trip_log_keeps_the_mics_readings(tmp_path, day):
    from keidash.triplog.writer import TripLog
    _, readings = day
    mic = [r for r in readings if r.source == "mic"][:200]
    log = TripLog(str(tmp_path / "trips.db"), commit_every_s=0.05)
    log.readings(mic, mic[0].t)
    log.close()
    import sqlite3
    rows = sqlite3.connect(tmp_path / "trips.db").execute(
        "SELECT value FROM readings WHERE source = 'mic' AND channel = 'rpm' ORDER BY t").fetchall()
    assert np.allclose([v for (v,) in rows], [r.value for r in mic])
