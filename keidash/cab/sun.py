"""Is it night? From the sun's elevation when the position is known, else from the clock.

Pure: every function takes the time (UNIX seconds, UTC) as an argument and reads no clock,
port or file, so the same drive log decides the theme the same way every time.

The sun's position uses NOAA's solar calculator equations (the "General Solar Position
Calculations" / NOAA Solar Calculator spreadsheet, after Meeus, *Astronomical Algorithms*):
mean longitude and anomaly, equation of centre, apparent longitude, obliquity, declination
and the equation of time, then the hour angle at the place. NOAA quotes it as good to about
a minute in sunrise time for latitudes within +-72 deg between 1800 and 2100; the elevation
here is the geometric one (no refraction), so the sun's upper limb touches the horizon at
sunrise/sunset when the elevation is about -0.833 deg (34' of refraction + 16' half-disc).

Night is chosen as the sun below ``NIGHT_ELEVATION_DEG`` = -3 deg: about a quarter of an
hour after sunset in Japan's and the US's latitudes, halfway into civil twilight (which
ends at -6 deg), when the street lights are on and a full-brightness dash starts to glare.
Without a position the night runs from ``night_from`` to ``day_from`` local clock time.
Hysteresis (so the theme does not flicker at the boundary) is the caller's.
"""

from __future__ import annotations

import math
import time

NIGHT_ELEVATION_DEG = -3.0  # deg, the sun below this is night (civil twilight is down to -6)
SUNRISE_ELEVATION_DEG = -0.833  # deg, geometric elevation of the centre at sunrise/sunset


def sun_elevation_deg(unix_time: float, lat: float, lon: float) -> float:
    """The sun's geometric elevation above the horizon (deg) at ``unix_time`` (s, UTC)
    seen from latitude ``lat`` (deg, north +) and longitude ``lon`` (deg, east +).

    NOAA's approximation: within a small fraction of a degree of the true elevation for
    1800-2100; refraction is not added.
    """
    julian_day = unix_time / 86400.0 + 2440587.5
    c = (julian_day - 2451545.0) / 36525.0  # Julian centuries since J2000.0
    mean_long = (280.46646 + c * (36000.76983 + c * 0.0003032)) % 360.0  # deg
    mean_anom = 357.52911 + c * (35999.05029 - 0.0001537 * c)  # deg
    eccent = 0.016708634 - c * (0.000042037 + 0.0000001267 * c)
    m = math.radians(mean_anom)
    centre = (math.sin(m) * (1.914602 - c * (0.004817 + 0.000014 * c))
              + math.sin(2 * m) * (0.019993 - 0.000101 * c) + math.sin(3 * m) * 0.000289)
    omega = math.radians(125.04 - 1934.136 * c)
    apparent_long = math.radians(mean_long + centre - 0.00569 - 0.00478 * math.sin(omega))
    mean_obliq = 23.0 + (26.0 + (21.448 - c * (46.815 + c * (0.00059 - c * 0.001813))) / 60.0) / 60.0
    obliq = math.radians(mean_obliq + 0.00256 * math.cos(omega))
    declination = math.asin(math.sin(obliq) * math.sin(apparent_long))
    y = math.tan(obliq / 2) ** 2
    l0 = math.radians(mean_long)
    eq_time_min = 4.0 * math.degrees(
        y * math.sin(2 * l0) - 2 * eccent * math.sin(m) + 4 * eccent * y * math.sin(m) * math.cos(2 * l0)
        - 0.5 * y * y * math.sin(4 * l0) - 1.25 * eccent * eccent * math.sin(2 * m))
    utc_min = (unix_time % 86400.0) / 60.0
    true_solar_min = (utc_min + eq_time_min + 4.0 * lon) % 1440.0
    hour_angle = math.radians(true_solar_min / 4.0 - 180.0)
    phi = math.radians(lat)
    cos_zenith = (math.sin(phi) * math.sin(declination)
                  + math.cos(phi) * math.cos(declination) * math.cos(hour_angle))
    return 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def clock_minutes(text: str) -> int:
    """Minutes after midnight for a local time ``"HH:MM"`` (24-hour clock)."""
    try:
        hours, minutes = text.split(":")
        h, m = int(hours), int(minutes)
    except (ValueError, AttributeError):
        raise ValueError(f"time {text!r} must be HH:MM on the 24-hour clock, e.g. \"19:00\"") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"time {text!r} must be HH:MM on the 24-hour clock, e.g. \"19:00\"")
    return h * 60 + m


def is_night(unix_time: float, lat: float | None = None, lon: float | None = None,
             night_from: str = "19:00", day_from: str = "06:00", tz_offset_s: float | None = None) -> bool:
    """Whether the dash should show its night theme at ``unix_time`` (s, UTC).

    With both ``lat`` and ``lon`` (deg): night when the sun is below -3 deg
    (``NIGHT_ELEVATION_DEG``). Otherwise by the local clock: night from ``night_from`` until
    ``day_from`` (``"HH:MM"``; the span may cross midnight; equal times mean never night).
    Local time is UTC + ``tz_offset_s`` (s); with None, the host's time zone for that instant
    (``time.localtime``: the zone database, not the clock).
    """
    if lat is not None and lon is not None:
        return sun_elevation_deg(unix_time, lat, lon) < NIGHT_ELEVATION_DEG
    start, end = clock_minutes(night_from), clock_minutes(day_from)
    if tz_offset_s is None:
        tz_offset_s = time.localtime(unix_time).tm_gmtoff
    minute = int(((unix_time + tz_offset_s) % 86400.0) // 60)
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end
