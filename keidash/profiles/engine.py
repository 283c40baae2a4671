"""Engine maths shared by the virtual truck and the estimator.

Only two points of a kei engine's full-load curve are sourced (peak torque and
peak power, each at its rpm); the curve between and around them is a smooth
shape through those points. Settings no source gives (idle speed, the red line)
have defaults here, named as keidash's choices, and can be set in the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..readings import KMH_PER_MPH
from . import Engine, Profile

#: keidash's default idle speed: no kei-truck idle speed is sourced (set yours in the config)
DEFAULT_IDLE_RPM = 850.0
#: the lowest sourced peak-power rpm of any kei engine (KF, R06A): the red line used when
#: neither the profile nor the config gives one
LOWEST_KEI_PEAK_POWER_RPM = 5700.0
#: everyday upshift point as a share of the red line (keidash's default, settable)
UPSHIFT_SHARE_OF_REDLINE = 0.85


#: an rpm above this share of the peak-power rpm is a corrupt reading, not the engine: kei
#: engines' rev limiters sit a little above peak power, and a missed downshift over-revs past it
IMPLAUSIBLE_RPM_SHARE = 1.5
#: the top speed assumed when the gearing is unknown: Japan's makers limit kei cars to 140 km/h
#: (a voluntary agreement), with a quarter's margin for a speedo or GPS that reads high
KEI_LIMITER_KMH = 140.0
UNKNOWN_GEARING_SPEED_MARGIN = 1.25


@dataclass(frozen=True)
class Plausible:
    """The most a kei truck can read: a reading above is corrupt (a checksum that happened to
    match, an ECU's 0xFFFF), counted as an error and not shown."""

    max_rpm: float  # rev/min
    max_kmh: float  # km/h


def plausible(profile: Profile | None) -> Plausible:
    """Plausible limits from the profile: the rev limit with a margin, and the road speed that
    rpm gives in top gear (the kei limiter with a margin when the gearing is not known)."""
    rated = (profile.engine.peak_power_rpm if profile is not None else None) or LOWEST_KEI_PEAK_POWER_RPM
    max_rpm = IMPLAUSIBLE_RPM_SHARE * rated
    per_kmh = profile.rpm_per_kmh() if profile is not None else ()
    max_kmh = max_rpm / per_kmh[-1] if per_kmh else KEI_LIMITER_KMH * UNKNOWN_GEARING_SPEED_MARGIN
    return Plausible(max_rpm, max_kmh)


#: a kei truck's top gear reaches at least this at its peak-power rpm (the slowest-geared one
#: keidash knows, a 4-speed of the 1990s, about 97 km/h; a Hijet S500P 112 km/h); speeds in mph
#: read as km/h make the ratios 1.609 times too high, and a 112 km/h gearbox look like 70 km/h
MIN_TOP_GEAR_KMH = 85.0


def gearing_warning(profile: Profile | None, found: tuple[float, ...], complete: bool) -> str:
    """One sentence when the gears ``found`` (rpm per km/h learned from logs; ``complete`` when
    every gear is among them) are a gearbox no kei truck has, as when the logs' speeds are mph
    labelled km/h; "" when they are plausible or too few to tell."""
    if not found:
        return ""
    sourced = profile.rpm_per_kmh() if profile is not None and profile.ratios_known else ()
    if sourced:
        # each gear found against the nearest sourced gear, as given and as if read in mph
        as_kmh = sum(min(abs(math.log(k / s)) for s in sourced) for k in found) / len(found)
        as_mph = sum(min(abs(math.log(k / (KMH_PER_MPH * s))) for s in sourced) for k in found) / len(found)
        if as_mph < 0.03 and as_kmh > max(0.06, 3 * as_mph):
            return (f"the gears learned are the {profile.name} gearbox's times {KMH_PER_MPH:.3f}: "
                    "the logs' speeds look like mph read as km/h (give --speed-unit mph)")
        return ""
    if not complete:
        return ""  # the lowest found may not be top gear
    rated = (profile.engine.peak_power_rpm if profile is not None else None) or LOWEST_KEI_PEAK_POWER_RPM
    top_kmh = rated / min(found)
    if top_kmh < MIN_TOP_GEAR_KMH:
        return (f"the learned ratios give {top_kmh:.0f} km/h at {rated:.0f} rpm in top gear, which no kei "
                "truck is geared for: the logs' speeds look like mph read as km/h (give --speed-unit mph)")
    return ""


@dataclass(frozen=True)
class ShiftLimits:
    idle_rpm: float
    redline_rpm: float  # the tach's red zone starts here
    upshift_rpm: float  # the upshift cue fires here
    lug_rpm: float  # below this in 3rd and up the downshift cue fires
    tach_max_rpm: float  # full scale of the tach


def shift_limits(profile: Profile, idle_rpm: float | None = None, redline_rpm: float | None = None,
                 upshift_rpm: float | None = None) -> ShiftLimits:
    """The rpm limits the dash uses: config values first, then the profile, then defaults.

    The lugging limit follows WLTP's gear-shift rules (UN GTR 15 annex 2):
    n_idle + 0.125 x (n_rated - n_idle), with n_rated the peak-power rpm.
    """
    idle = idle_rpm or profile.engine.idle_rpm or DEFAULT_IDLE_RPM
    rated = profile.engine.peak_power_rpm or LOWEST_KEI_PEAK_POWER_RPM
    redline = redline_rpm or rated
    upshift = upshift_rpm or round(UPSHIFT_SHARE_OF_REDLINE * redline, -2)
    lug = idle + 0.125 * (rated - idle)
    tach_max = math.ceil((redline + 1000) / 1000) * 1000
    return ShiftLimits(idle, redline, upshift, lug, float(tach_max))


def full_load_torque_nm(engine: Engine, rpm: float, idle_rpm: float = DEFAULT_IDLE_RPM) -> float:
    """Full-throttle torque at ``rpm`` through the sourced peak-torque and peak-power points.

    Below peak torque the curve falls parabolically to 70 % of peak at idle; between
    peak torque and peak power it falls to P_max / omega; above peak power it falls
    linearly to zero at 1.35 x the peak-power rpm. Needs the four peak figures.
    """
    t_pk, n_t = engine.peak_torque_nm, engine.peak_torque_rpm
    p_pk, n_p = engine.peak_power_kw, engine.peak_power_rpm
    if None in (t_pk, n_t, p_pk, n_p):
        raise ValueError(f"engine {engine.code} lacks the peak torque/power figures a torque curve needs")
    t_at_power = p_pk * 1000 / (n_p * 2 * math.pi / 60)
    if rpm <= n_t:
        x = max(0.0, (n_t - rpm) / max(n_t - idle_rpm, 1.0))
        return t_pk * (1 - 0.30 * x * x)
    if rpm <= n_p:
        x = (rpm - n_t) / (n_p - n_t)
        return t_pk + (t_at_power - t_pk) * x * x
    return max(0.0, t_at_power * (1 - (rpm - n_p) / (0.35 * n_p)))
