"""The sun's elevation against published sunrise and sunset times, and the night decision.

Published times (to the minute):
- Tokyo, 2024-06-21 (June solstice): sunrise 04:25, sunset 19:00 JST; and 2011-12-22 (December
  solstice): sunrise 06:46, sunset 16:33 JST. National Astronomical Observatory of Japan
  (NAOJ, eco.mtk.nao.ac.jp/koyomi) figures as quoted by nukuo.biz/archives/18.html and
  r7-kagaku.gakuto-plus.jp (2024: sunrise 04:25 from June 5 to 20) and
  sukonbu-1gou.hatenablog.com/entry/20111213 (2011). NAOJ's Tokyo is the former observatory at
  Azabu, 35 deg 39' 29.2" N, 139 deg 44' 28.9" E; times are the upper limb on the horizon.
- Chicago, 2023-12-21: sunrise 07:14, sunset 16:22 CST (timeanddate.com, as quoted by
  secretchicago.com/earliest-sunset-of-the-year-chicago); 2015-06-20: sunrise 05:16, sunset
  20:30 CDT (wx-now.com's chart, as quoted by blog.inner-drive.com/2014/12). Chicago is taken
  at 41.88 N, 87.63 W.

Sunrise/sunset is where the geometric elevation of the sun's centre is -0.833 deg (refraction
34' plus the half disc 16'). One degree of elevation near the horizon is 4-7 minutes at these
latitudes, so a crossing within 2 minutes of the published minute is well inside ~1 degree.
"""

from __future__ import annotations

import calendar

import pytest

from keidash.cab.sun import SUNRISE_ELEVATION_DEG, clock_minutes, is_night, sun_elevation_deg

TOKYO = (35 + 39 / 60 + 29.2 / 3600, 139 + 44 / 60 + 28.9 / 3600)
CHICAGO = (41.88, -87.63)
HOUR = 3600.0


def local(date: tuple[int, int, int], hhmm: tuple[int, int], utc_offset_h: float) -> float:
    """UNIX time of a local clock reading."""
    return calendar.timegm((*date, *hhmm, 0)) - utc_offset_h * HOUR


def crossing(lo: float, hi: float, lat: float, lon: float, rising: bool) -> float:
    """When the sun's centre passes -0.833 deg between ``lo`` and ``hi`` (bisection)."""
    for _ in range(60):
        mid = (lo + hi) / 2
        if (sun_elevation_deg(mid, lat, lon) > SUNRISE_ELEVATION_DEG) == rising:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


DAYS = [  # place, date, UTC offset (h), published sunrise, published sunset
    pytest.param(TOKYO, (2024, 6, 21), 9, (4, 25), (19, 0), id="tokyo-june-solstice"),
    pytest.param(TOKYO, (2011, 12, 22), 9, (6, 46), (16, 33), id="tokyo-december-solstice"),
    pytest.param(CHICAGO, (2015, 6, 20), -5, (5, 16), (20, 30), id="chicago-june-solstice"),
    pytest.param(CHICAGO, (2023, 12, 21), -6, (7, 14), (16, 22), id="chicago-december-solstice"),
]


@pytest.mark.parametrize("place,date,offset,sunrise,sunset", DAYS)
def test_sunrise_and_sunset_match_published_tables(place, date, offset, sunrise, sunset):
    lat, lon = place
    noon = local(date, (12, 0), offset)
    rise = crossing(noon - 12 * HOUR, noon, lat, lon, rising=True)
    sets = crossing(noon, noon + 12 * HOUR, lat, lon, rising=False)
    assert abs(rise - local(date, sunrise, offset)) <= 120.0
    assert abs(sets - local(date, sunset, offset)) <= 120.0


@pytest.mark.parametrize("place,date,offset,sunrise,sunset", DAYS)
def test_night_starts_after_sunset_and_ends_before_sunrise(place, date, offset, sunrise, sunset):
    lat, lon = place
    rise, sets = local(date, sunrise, offset), local(date, sunset, offset)
    assert not is_night(sets, lat, lon)  # the sun has only just gone
    assert is_night(sets + 0.5 * HOUR, lat, lon)  # -3 deg is 12-20 min after sunset here
    assert is_night(rise - 0.5 * HOUR, lat, lon)
    assert not is_night(rise, lat, lon)
    assert not is_night((rise + sets) / 2, lat, lon)
    assert is_night(sets + 4 * HOUR, lat, lon)


@pytest.mark.parametrize("place,date,offset,declination", [
    (TOKYO, (2024, 6, 21), 9, 23.44), (CHICAGO, (2023, 12, 21), -6, -23.44)])
def test_noon_elevation_on_a_solstice_is_90_minus_latitude_plus_declination(place, date, offset, declination):
    lat, lon = place
    noon = local(date, (12, 0), offset)
    highest = max(sun_elevation_deg(noon + m * 60.0, lat, lon) for m in range(-120, 121))
    assert highest == pytest.approx(90.0 - lat + declination, abs=0.3)


def test_elevation_is_deterministic_and_bounded():
    t = local((2024, 3, 20), (12, 0), 9)
    assert sun_elevation_deg(t, *TOKYO) == sun_elevation_deg(t, *TOKYO)
    for hours in range(0, 24 * 365, 97):
        assert -90.0 <= sun_elevation_deg(t + hours * HOUR, *CHICAGO) <= 90.0


# -- by the clock -----------------------------------------------------------------------------------

JST = 9 * 3600


@pytest.mark.parametrize("hhmm,night", [
    ((18, 59), False), ((19, 0), True), ((23, 30), True), ((0, 0), True), ((5, 59), True), ((6, 0), False),
    ((12, 0), False)])
def test_without_a_position_night_runs_from_night_from_to_day_from(hhmm, night):
    t = local((2024, 1, 15), hhmm, 9)
    assert is_night(t, tz_offset_s=JST) is night
    assert is_night(t, lat=TOKYO[0], tz_offset_s=JST) is night  # half a position is no position


def test_a_night_span_that_does_not_cross_midnight():
    at = lambda h: local((2024, 1, 15), (h, 0), 0)  # noqa: E731
    assert [is_night(at(h), night_from="01:00", day_from="05:00", tz_offset_s=0) for h in (0, 1, 4, 5)] == \
        [False, True, True, False]
    assert not any(is_night(at(h), night_from="06:00", day_from="06:00", tz_offset_s=0) for h in range(24))


def test_the_host_time_zone_is_used_when_no_offset_is_given(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    import time
    time.tzset()
    try:
        if time.localtime(0).tm_gmtoff != JST:
            pytest.skip("no time zone database here (tzdata)")
        assert is_night(local((2024, 1, 15), (20, 0), 9))
        assert not is_night(local((2024, 1, 15), (10, 0), 9))
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("text", ["7pm", "24:00", "19:60", "19", "", "ab:cd"])
def test_bad_clock_times_are_plain_errors(text):
    with pytest.raises(ValueError, match="HH:MM"):
        clock_minutes(text)
