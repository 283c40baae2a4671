"""The cab's side of each frame: trip, odometer kept across power cuts, clock, night theme, page, units."""

import json
import os
import time

import pytest
from gpiozero.pins.mock import MockFactory

from keidash.cab import CLOCK_SET_AFTER, Cab, CabSettings
from keidash.cab.trip import MAX_GAP_S, DistanceStore, TripMeter, trip_step
from keidash.dashstate import DashState
from keidash.readings import LATITUDE, LONGITUDE, Reading


NOON_TOKYO = 1782871200.0  # 2026-07-01 03:00 UTC = 12:00 JST
MIDNIGHT_TOKYO = NOON_TOKYO + 12 * 3600


def dash(t=0.0, speed=None):
    return DashState(t=t, profile_title="t", rpm=None, rpm_estimated=False, speed_kmh=speed, gear=None, cue=None,
                     upshift_rpm=4800, redline_rpm=5700, tach_max_rpm=7000)


def test_trip_integrates_live_speed_and_never_bridges_a_gap():
    meter = TripMeter()
    for i in range(3601):  # 60 km/h for an hour, 1 Hz
        meter = trip_step(meter, float(i), 60.0)
    assert meter.km == pytest.approx(60.0)
    meter = trip_step(meter, 3601.0, None)  # speed lost ...
    meter = trip_step(meter, 3601.0 + 100 * MAX_GAP_S, 60.0)  # ... and back much later: nothing invented
    assert meter.km == pytest.approx(60.0)
    meter = trip_step(meter, 3601.0 + 100 * MAX_GAP_S + 10 * MAX_GAP_S, 60.0)  # a gap too long: nothing
    assert meter.km == pytest.approx(60.0)
    assert trip_step(meter, float("nan"), 50.0).km == meter.km


def test_distance_survives_a_restart_and_a_torn_write(tmp_path):
    path = str(tmp_path / "distance.json")
    store = DistanceStore(path)
    assert store.km == 0.0 and store.save(12.5)
    assert DistanceStore(path).km == 12.5
    (tmp_path / "distance.json.tmp").write_text('{"km": 9')  # a power cut mid-write: the old file stands
    assert DistanceStore(path).km == 12.5
    (tmp_path / "distance.json").write_text("garbage")
    broken = DistanceStore(path)
    assert broken.km == 0.0 and "unreadable" in broken.problem


def test_a_distance_file_that_cannot_be_written_is_a_message_not_a_crash(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o500)
    try:
        store = DistanceStore(str(folder / "distance.json"))
        ok = store.save(1.0)
        if os.geteuid() == 0:  # root writes anyway: a missing folder is the failure root also meets
            store = DistanceStore(str(tmp_path / "missing" / "distance.json"))
            ok = store.save(1.0)
        assert not ok and "cannot save the distance" in store.problem
    finally:
        os.chmod(folder, 0o700)


def test_cab_fills_trip_odometer_clock_and_saves_on_close(tmp_path):
    path = str(tmp_path / "distance.json")
    json.dump({"km": 100.0}, open(path, "w"))
    cab = Cab(CabSettings(odometer_km=50000.0, distance_file=path, save_every_s=5.0))
    out = None
    for i in range(361):  # 36 km/h for 36 s = 0.36 km
        out = cab.dress(dash(t=i / 10, speed=36.0), now=i / 10, wall=NOON_TOKYO)
    assert out.trip_km == pytest.approx(0.36, abs=1e-6)
    assert out.odometer_km == pytest.approx(50100.36, abs=1e-6)
    assert out.wall_time == NOON_TOKYO and out.units == "mph" and out.page == 0
    assert json.load(open(path))["km"] > 100.0  # saved on the way (every 5 s)
    cab.close(now=40.0)
    assert json.load(open(path))["km"] == pytest.approx(100.36, abs=1e-3)


def test_no_speed_yet_means_no_trip_and_an_unset_clock_means_no_clock():
    cab = Cab()
    out = cab.dress(dash(), now=0.0, wall=CLOCK_SET_AFTER - 86400)  # a Pi booted with no clock battery
    assert out.trip_km is None and out.odometer_km is None and out.wall_time is None and not out.night


def test_night_by_the_sun_where_the_truck_is_else_by_the_clock():
    cab = Cab()
    cab.readings([Reading(0.0, LATITUDE, 35.68, "gps", 60.0), Reading(0.0, LONGITUDE, 139.77, "gps", 60.0)])
    assert not cab.dress(dash(), 0.0, wall=NOON_TOKYO).night
    assert cab.dress(dash(), 0.0, wall=MIDNIGHT_TOKYO).night


def test_the_button_changes_page_and_units_and_the_switch_forces_night():
    factory = MockFactory()
    cab = Cab(CabSettings(button_pin=21, night_switch_pin=20), pin_factory=factory)
    button, switch = factory.pin(21), factory.pin(20)
    button.drive_low()  # pressed (to ground, pull-up)
    time.sleep(0.05)
    button.drive_high()
    time.sleep(0.05)
    assert cab.dress(dash(), 0.0, wall=NOON_TOKYO).page == 1
    button.drive_low()
    time.sleep(1.3)  # held: units
    button.drive_high()
    time.sleep(0.05)
    out = cab.dress(dash(), 0.1, wall=NOON_TOKYO)
    assert out.units == "kmh" and out.page == 1
    switch.drive_low()  # closed = night, even at noon
    time.sleep(0.05)
    assert cab.dress(dash(), 0.2, wall=NOON_TOKYO).night
    cab.close(now=1.0)


def test_a_button_whose_pin_is_taken_is_a_sentence_on_the_dash():
    factory = MockFactory()
    from gpiozero import Button
    taken = Button(21, pin_factory=factory)  # another device already has GPIO21
    try:
        cab = Cab(CabSettings(button_pin=21), pin_factory=factory)
        message = cab.dress(dash(), 0.0, wall=NOON_TOKYO).message
        assert "dash button" in message and "GPIO21" in message
        cab.close(now=1.0)
    finally:
        taken.close()
