"""Shift advice: where to upshift, when to downshift. Pure and deterministic.

The road speed ``v`` (km/h) and each gear's engine rpm per km/h ``k_g`` say
everything about the drivetrain: in gear ``g`` the engine turns ``k_g x v``,
and the force at the wheels at full load is proportional to ``T(k_g v) x k_g``
(``T`` the full-load torque curve, :func:`keidash.profiles.engine.full_load_torque_nm`),
because ``k_g`` is proportional to the overall ratio gear x final drive. The
tyre radius and the final drive cancel out, so a shift point needs only the
``k`` values and the engine's peak figures.

Two modes choose the upshift rpm of each gear:

- ``power``: shift where the next gear's wheel force equals this gear's, the
  crossing of ``T(k_g v) k_g`` and ``T(k_g+1 v) k_g+1``. Both forces at the same
  speed carry the same power ratio, so this is also where the power after the
  shift equals the power before it; it always lies above the peak-power rpm.
  If the forces do not cross below the red line, shift at the red line.
- ``economy``: the earliest upshift that lands the engine, after the shift, at
  or above a floor rpm, and leaves torque in reserve there for the current
  demand: the wheel force asked for now (demand x this gear's full-load force)
  must need no more than ``1 - TORQUE_RESERVE`` of the next gear's full-load
  torque. Demand is the throttle share when OBD gives throttle position,
  otherwise ``DEFAULT_DEMAND``. Never later than the power-mode point.

A profile without the engine's peak torque and power figures has no torque
curve: both modes fall back to the profile/config upshift rpm
(:func:`keidash.profiles.engine.shift_limits`). A per-gear upshift rpm from the config
overrides the mode. Then, in this order:

- cold engine: below ``COLD_BELOW_C`` coolant temperature, when it is known,
  the upshift point is capped at ``COLD_UPSHIFT_RPM``;
- landing floor: no upshift point is so low that the next gear lands within
  the downshift cue's hysteresis band (``lug_rpm + 2 x margin``), so an upshift
  cue can never be answered by a downshift cue;
- never past the red line.

Downshift cue (anti-lug): in 3rd and up, below the WLTP lugging limit
``n_idle + 0.125 x (n_rated - n_idle)`` (UN GTR 15 annex 2, ``ShiftLimits.lug_rpm``),
unless the lower gear would put the engine past the red line less a margin
(over-rev guard). Every cue clears only ``margin_rpm`` back inside its limit,
so a value hovering at a limit does not make it flicker, as in estimator v1.

Every constant marked "keidash's choice" below is not sourced from any manual:
it is a setting with a default keidash chose, explained in docs/shifting.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from ..dashstate import DOWN, UP
from ..errors import ConfigError
from ..profiles import Engine, Profile
from ..profiles.engine import ShiftLimits, full_load_torque_nm

MODES = ("power", "economy")

#: keidash's choice: the economy floor sits this share of (n_rated - n_idle) above idle,
#: twice the WLTP lugging margin (0.125): 2062 rpm for an 850/5700 rpm engine
ECONOMY_FLOOR_SHARE = 0.25
#: keidash's choice: after an economy upshift at least this share of full-load torque is left
TORQUE_RESERVE = 0.20
#: keidash's choice: the demand (share of full-load torque) assumed when throttle is not known:
#: gentle acceleration
DEFAULT_DEMAND = 0.30
#: keidash's choice: demand is rounded to this step (throttle noise should not move the cue)
DEMAND_STEP = 0.05
#: keidash's choice: below this coolant temperature (deg C) the engine counts as cold
COLD_BELOW_C = 60.0
#: keidash's choice: the highest upshift point (rpm) while the engine is cold
COLD_UPSHIFT_RPM = 3500.0
#: a cue clears this far (rpm) back inside its limit; v1's value
CUE_MARGIN_RPM = 250.0
#: below this road speed (km/h) the truck counts as stopped: no downshift cue
MOVING_KMH = 4.0
#: rpm resolution of the searches for a shift point
_SEARCH_STEP_RPM = 10.0


@dataclass(frozen=True)
class ShiftPolicy:
    """What the shift advice needs to know; hashable, so results are cached per policy."""
    rpm_per_kmh: tuple[float, ...]  # engine rpm per km/h in each gear, 1st..top
    limits: ShiftLimits
    mode: str = "power"  # one of MODES
    engine: Engine | None = None  # None or without peak figures: no torque curve, fixed upshift rpm
    upshift_rpm_per_gear: tuple[float, ...] = ()  # config overrides, 1st..top-1; 0 = computed
    cold_below_c: float = COLD_BELOW_C  # deg C
    cold_upshift_rpm: float = COLD_UPSHIFT_RPM  # rpm, cap while cold
    margin_rpm: float = CUE_MARGIN_RPM  # rpm, hysteresis of every cue
    economy_floor_rpm: float | None = None  # rpm after an economy upshift; None = from ECONOMY_FLOOR_SHARE
    torque_reserve: float = TORQUE_RESERVE  # share of full-load torque kept after an economy upshift
    default_demand: float = DEFAULT_DEMAND  # share of full-load torque when throttle is unknown
    moving_kmh: float = MOVING_KMH  # km/h, no downshift cue below

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"shift mode must be {' or '.join(MODES)}, not {self.mode!r}")
        if any(k <= 0 or not math.isfinite(k) for k in self.rpm_per_kmh):
            raise ConfigError("rpm per km/h of every gear must be a positive number")
        if any(r < 0 or not math.isfinite(r) for r in self.upshift_rpm_per_gear):
            raise ConfigError("a per-gear upshift rpm must be a positive number (0 = computed)")

    @property
    def top_gear(self) -> int:
        return len(self.rpm_per_kmh)

    @property
    def has_torque_curve(self) -> bool:
        e = self.engine
        return e is not None and None not in (e.peak_torque_nm, e.peak_torque_rpm,
                                              e.peak_power_kw, e.peak_power_rpm)

    @property
    def floor_rpm(self) -> float:
        """The economy floor (rpm after the upshift): set, or twice the WLTP lugging margin above idle."""
        if self.economy_floor_rpm is not None:
            return self.economy_floor_rpm
        lim = self.limits
        # lug = idle + 0.125 (rated - idle), so (rated - idle) = (lug - idle) / 0.125
        return lim.idle_rpm + ECONOMY_FLOOR_SHARE * (lim.lug_rpm - lim.idle_rpm) / 0.125


def policy_from_profile(profile: Profile, limits: ShiftLimits, mode: str = "power",
                        rpm_per_kmh: tuple[float, ...] | None = None,
                        upshift_rpm_per_gear: tuple[float, ...] = (), **settings) -> ShiftPolicy:
    """A policy for ``profile``; ``rpm_per_kmh`` given (learned) wins over the profile's ratios."""
    k = tuple(rpm_per_kmh) if rpm_per_kmh else profile.rpm_per_kmh()
    return ShiftPolicy(rpm_per_kmh=k, limits=limits, mode=mode, engine=profile.engine,
                       upshift_rpm_per_gear=tuple(upshift_rpm_per_gear), **settings)


def demand_from_throttle(throttle_pct: float | None) -> float | None:
    """Throttle position (%) as a demand share 0..1; None stays None (use the default).

    Throttle opening is only a rough proxy for the share of full-load torque asked
    for (the relation bends with rpm), but it is what OBD gives on every kei engine.
    """
    if throttle_pct is None or not math.isfinite(throttle_pct):
        return None
    return min(1.0, max(0.0, throttle_pct / 100.0))


def _torque(policy: ShiftPolicy, rpm: float) -> float:
    return full_load_torque_nm(policy.engine, rpm, policy.limits.idle_rpm)


def power_crossing_rpm(policy: ShiftPolicy, gear: int) -> float | None:
    """Rpm in ``gear`` where the next gear's full-load wheel force equals this one's; None if
    they do not cross below the red line (or the torque curve is unknown)."""
    return _power_crossing(policy, gear)


@lru_cache(maxsize=256)
def _power_crossing(policy: ShiftPolicy, gear: int) -> float | None:
    if not policy.has_torque_curve or not 1 <= gear < policy.top_gear:
        return None
    k_now, k_next = policy.rpm_per_kmh[gear - 1], policy.rpm_per_kmh[gear]
    step_ratio = k_next / k_now  # < 1 for a higher gear

    def surplus(n: float) -> float:  # force now minus force after the shift, at the same speed
        return _torque(policy, n) * k_now - _torque(policy, n * step_ratio) * k_next

    redline = policy.limits.redline_rpm
    # start where the next gear would turn the engine at idle: lower has no meaning
    low = max(policy.limits.idle_rpm, policy.limits.idle_rpm / step_ratio)
    if low >= redline:
        return None
    if surplus(low) <= 0:
        return low
    n = low
    while n < redline:
        upper = min(n + _SEARCH_STEP_RPM * 10, redline)
        if surplus(upper) <= 0:
            lo, hi = n, upper
            for _ in range(40):  # bisection to well under 1 rpm
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if surplus(mid) > 0 else (lo, mid)
            return hi
        n = upper
    return None


def _power_rpm(policy: ShiftPolicy, gear: int) -> float:
    crossing = _power_crossing(policy, gear)
    return policy.limits.redline_rpm if crossing is None else crossing


@lru_cache(maxsize=1024)
def _economy_rpm(policy: ShiftPolicy, gear: int, demand: float) -> float:
    k_now, k_next = policy.rpm_per_kmh[gear - 1], policy.rpm_per_kmh[gear]
    step_ratio = k_next / k_now
    latest = _power_rpm(policy, gear)
    n = policy.floor_rpm / step_ratio  # the next gear lands on the floor
    while n < latest:
        # wheel force asked for now, as engine torque in the next gear, against what it can give
        needed = demand * _torque(policy, n) * k_now / k_next
        if needed <= (1 - policy.torque_reserve) * _torque(policy, n * step_ratio):
            return n
        n += _SEARCH_STEP_RPM
    return latest


def _quantised(demand: float | None, policy: ShiftPolicy) -> float:
    d = policy.default_demand if demand is None or not math.isfinite(demand) else demand
    d = min(1.0, max(0.0, d))
    return round(round(d / DEMAND_STEP) * DEMAND_STEP, 4)


def upshift_rpm(policy: ShiftPolicy, gear: int, coolant_c: float | None = None,
                demand: float | None = None) -> float:
    """Engine rpm (rev/min) at which to shift up out of ``gear`` (1..top-1).

    ``coolant_c`` in deg C (None = unknown: no cold cap); ``demand`` is the share
    0..1 of full-load torque asked for (None = ``policy.default_demand``; used by
    economy mode only). Top gear has no upshift: its red line is returned.
    """
    limits = policy.limits
    if not 1 <= gear < policy.top_gear:
        return limits.redline_rpm
    override = policy.upshift_rpm_per_gear[gear - 1] if gear <= len(policy.upshift_rpm_per_gear) else 0.0
    if override:
        rpm = override
    elif not policy.has_torque_curve:
        rpm = limits.upshift_rpm  # no torque curve: the profile/config upshift rpm
    elif policy.mode == "power":
        rpm = _power_rpm(policy, gear)
    else:
        rpm = _economy_rpm(policy, gear, _quantised(demand, policy))
    if coolant_c is not None and math.isfinite(coolant_c) and coolant_c < policy.cold_below_c:
        rpm = min(rpm, policy.cold_upshift_rpm)
    # never so low that the next gear lands where a downshift cue could still be showing
    landing_floor = (limits.lug_rpm + 2 * policy.margin_rpm) * policy.rpm_per_kmh[gear - 1] / policy.rpm_per_kmh[gear]
    rpm = max(rpm, landing_floor)
    return min(rpm, limits.redline_rpm)


def _downshift_allowed(policy: ShiftPolicy, previous: str | None, gear: int, rpm: float,
                       speed_kmh: float) -> bool:
    """Over-rev guard: the lower gear must not take the engine past the red line less a margin.

    The engine will turn at k_lower x speed once the clutch is up; the rpm scaled by the
    ratio step catches a speed source reading low. A cue already showing keeps the plain
    margin, a new one needs twice the margin (hysteresis).
    """
    k = policy.rpm_per_kmh
    lower_rpm = max(k[gear - 2] * speed_kmh, rpm * k[gear - 2] / k[gear - 1])
    allowed_to = policy.limits.redline_rpm - policy.margin_rpm * (1 if previous == DOWN else 2)
    return lower_rpm <= allowed_to


def cue(policy: ShiftPolicy, previous: str | None, gear: int | None, rpm: float | None, speed_kmh: float,
        coolant_c: float | None = None, demand: float | None = None, coasting: bool = False) -> str | None:
    """The shift cue: ``UP``, ``DOWN`` or None.

    ``previous`` is the cue showing now in the same gear (pass None after a gear
    change); ``gear`` 1..top (0/None: no cue); ``rpm`` rev/min, measured or
    estimated (None: no cue); ``speed_kmh`` road speed; ``coolant_c`` deg C or None;
    ``demand`` share 0..1 of full-load torque or None; ``coasting`` True while braking
    or with the clutch down: a low rpm then is no lugging (no DOWN through a stop).
    """
    if not gear or rpm is None or not 1 <= gear <= policy.top_gear:
        return None
    margin = policy.margin_rpm
    if gear < policy.top_gear:
        up = upshift_rpm(policy, gear, coolant_c, demand)
        if rpm >= up or (previous == UP and rpm > up - margin):
            return UP
    lug = policy.limits.lug_rpm
    if gear >= 3 and speed_kmh >= policy.moving_kmh and not coasting:
        lugging = rpm < lug or (previous == DOWN and rpm < lug + margin)
        if lugging and _downshift_allowed(policy, previous, gear, rpm, speed_kmh):
            return DOWN
    return None


def shift_speeds_kmh(policy: ShiftPolicy, coolant_c: float | None = None,
                     demand: float | None = None) -> tuple[float, ...]:
    """Road speed (km/h) at which to shift up out of each gear, 1st..top-1."""
    return tuple(upshift_rpm(policy, g, coolant_c, demand) / policy.rpm_per_kmh[g - 1]
                 for g in range(1, policy.top_gear))
