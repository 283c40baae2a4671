"""Engine maths shared by the virtual truck and the estimator.

Only two points of a kei engine's full-load curve are sourced (peak torque and
peak power, each at its rpm); the curve between and around them is a smooth
shape through those points. Settings no source gives (idle speed, the red line)
have defaults here, named as keidash's choices, and can be set in the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import Engine, Profile

#: keidash's default idle speed: no kei-truck idle speed is sourced (set yours in the config)
DEFAULT_IDLE_RPM = 850.0
#: the lowest sourced peak-power rpm of any kei engine (KF, R06A): the red line used when
#: neither the profile nor the config gives one
LOWEST_KEI_PEAK_POWER_RPM = 5700.0
#: everyday upshift point as a share of the red line (keidash's default, settable)
UPSHIFT_SHARE_OF_REDLINE = 0.85


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
