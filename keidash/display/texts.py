"""What each figure on the cluster says, as text (pure: no pygame, no clock).

Every value that is not live arrives as ``None`` and is shown as ``"--"``,
so the dash never shows an old value as if it were current.
"""

from __future__ import annotations

import time

from keidash.dashstate import ABSENT, BATTERY_HIGH, BATTERY_LOW, COOLANT_HOT, FAILED, LIVE, STALE
from keidash.readings import KMH_PER_MPH

KMH_TO_MPH = 1.0 / KMH_PER_MPH  # mph per km/h
MISSING = "--"


def speed_texts(speed_kmh: float | None) -> tuple[str, str]:
    """Road speed as shown: (mph, km/h), whole numbers, "--" when unknown."""
    if speed_kmh is None:
        return MISSING, MISSING
    return str(int(round(speed_kmh * KMH_TO_MPH))), str(int(round(speed_kmh)))


def speed_figures(speed_kmh: float | None, units: str) -> tuple[str, str, str, str]:
    """(big figure, its unit, small figure, its unit) for ``units`` "mph" or "kmh"."""
    mph, kmh = speed_texts(speed_kmh)
    if units == "kmh":
        return kmh, "km/h", mph, "mph"
    return mph, "mph", kmh, "km/h"


def gear_text(gear: int | None) -> str:
    """The gear figure: "N" for neutral, "R" for reverse, "-" when unknown."""
    if gear is None:
        return "-"
    if gear == 0:
        return "N"
    if gear < 0:
        return "R"
    return str(gear)


def gear_label(gear: int | None, low_range: bool) -> str:
    """The gear as the driver reads it, with the low-range "L": "1L", "NL", "3"."""
    return gear_text(gear) + ("L" if low_range and gear is not None else "")


def distance_text(km: float | None, units: str, decimals: int) -> str:
    """A trip or odometer distance in the driver's units ("mi" or "km"), "--" when unknown."""
    if km is None:
        return MISSING
    if units == "kmh":
        return f"{km:,.{decimals}f} km"
    return f"{km * KMH_TO_MPH:,.{decimals}f} mi"


def coolant_text(coolant_c: float | None, unit: str = "C") -> str:
    """The coolant temperature in deg C or deg F ("84°C", "183°F"), "--" when unknown."""
    if coolant_c is None:
        return MISSING
    if unit == "F":
        return f"{coolant_c * 9 / 5 + 32:.0f}\N{DEGREE SIGN}F"
    return f"{coolant_c:.0f}\N{DEGREE SIGN}C"


def alarm_texts(state) -> list[str]:
    """One sentence per alarm on, what it is and what to do."""
    out = []
    if COOLANT_HOT in state.alarms:
        out.append(f"engine hot: coolant {coolant_text(state.coolant_c, state.temperature)}, "
                   "pull over and let it idle to cool")
    if BATTERY_LOW in state.alarms:
        out.append(f"battery low: {battery_text(state.battery_v)}, is it charging?")
    if BATTERY_HIGH in state.alarms:
        out.append(f"battery high: {battery_text(state.battery_v)}, the regulator overcharges")
    return out


def rpm_peak_text(rpm: float | None) -> str:
    return MISSING if rpm is None else f"{int(round(rpm / 10.0) * 10):,} rpm"


def battery_text(battery_v: float | None) -> str:
    return MISSING if battery_v is None else f"{battery_v:.1f} V"


def clock_text(wall_time: float | None) -> str:
    """Local time HH:MM of a UNIX time; "--:--" when the clock is not trusted."""
    if wall_time is None:
        return "--:--"
    return time.strftime("%H:%M", time.localtime(wall_time))


def rpm_text(rpm: float | None) -> str:
    """The rpm digits, to the nearest 10 rev/min; "----" when unknown."""
    return "----" if rpm is None else str(int(round(rpm / 10.0) * 10))


def source_problems(sources) -> list[tuple[str, str]]:
    """(text, state) of every source the driver should hear about, the worst first.

    Failed (the device cannot be opened or was lost), then stale, then absent; then the live
    ones that have counted errors (a noisy line).
    """
    rank = {FAILED: 0, STALE: 1, ABSENT: 2}
    trouble = sorted((s for s in sources if s.state != LIVE), key=lambda s: rank.get(s.state, 3))
    trouble += [s for s in sources if s.state == LIVE and s.errors and s.message]
    return [(f"{s.name}: {s.message or _WHY.get(s.state, 'data is old')}", s.state) for s in trouble]


def source_problem(sources) -> tuple[str, str] | None:
    """(text, state) of the source the driver should hear about first, or None."""
    problems = source_problems(sources)
    return problems[0] if problems else None


_WHY = {ABSENT: "no data", STALE: "data is old", FAILED: "failed"}
