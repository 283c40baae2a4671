"""Vehicle profiles: one TOML per model in this folder, sourced numbers only.

A profile holds what is known about a model (engine figures, gear ratios, final
drive, tyre, tach pulses) with the source of every number. What is not known
stays empty: gear ratios missing from a profile are learned by driving, never
guessed. Numbers keidash needs but no source gives (idle speed, red line) are
settings with documented defaults in :mod:`keidash.limits`, not profile facts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..config import parse_toml, read_toml
from ..errors import ProfileError
from .tyres import Tyre, parse_tyre

_ENGINE_KEYS = {"code", "displacement_cc", "cylinders", "peak_power_kw", "peak_power_rpm",
                "peak_torque_nm", "peak_torque_rpm", "idle_rpm", "sources"}
_GEARBOX_KEYS = {"transmission", "gear_count", "gear_ratios", "reverse_ratio", "final_drive",
                 "transfer_low_ratio", "extra_low_ratio", "sources"}
_TYRE_KEYS = {"size", "sources"}
_TACH_KEYS = {"pulses_per_rev", "signal", "sources"}
_LEARNED_KEYS = {"rpm_per_kmh", "confidence", "samples", "logs", "coast_down", "idle_rpm", "numbering_certain"}
_TOP_KEYS = {"name", "title", "years", "engine", "gearbox", "tyre", "tach", "learned"}


@dataclass(frozen=True)
class Engine:
    code: str
    displacement_cc: float | None  # None only in a profile of learned ratios alone
    cylinders: int | None = None
    peak_power_kw: float | None = None
    peak_power_rpm: float | None = None
    peak_torque_nm: float | None = None
    peak_torque_rpm: float | None = None
    idle_rpm: float | None = None


@dataclass(frozen=True)
class Learned:
    """Ratios learned by driving (keidash.estimate.learn), kept in a profile's [learned] table."""

    rpm_per_kmh: tuple[float | None, ...]  # 1st..top; None (nan in the TOML) for a gear not seen
    confidence: tuple[float, ...]  # 0..1 per gear
    samples: int  # steady rpm/speed pairs learned from
    logs: tuple[str, ...] = ()  # the drive logs' file names
    coast_down: tuple[tuple[float, ...], ...] = ()  # an automatic's coast-downs (km/h): [n - 1] for (n+1) -> n
    idle_rpm: float | None = None  # the warm idle seen at a standstill in the drives learned from
    numbering_certain: bool = True  # False: which cluster is 1st could not be told (keidash learn said so)

    def known(self) -> tuple[float, ...]:
        """Every gear's rpm per km/h; () unless every gear was seen and which is 1st is certain (a
        wrong gear number on the dash is worse than none: the dash learns them by driving instead)."""
        if not self.rpm_per_kmh or any(r is None for r in self.rpm_per_kmh) or not self.numbering_certain:
            return ()
        return tuple(self.rpm_per_kmh)


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    years: str
    engine: Engine
    tyre: Tyre | None  # None only in a profile of learned ratios alone
    gear_ratios: tuple[float, ...] = ()  # 1st..top; empty = unknown, to be learned
    gear_count: int | None = None  # forward gears, when known even if ratios are not
    final_drive: float | None = None
    reverse_ratio: float | None = None
    transfer_low_ratio: float | None = None
    transmission: str | None = None
    tach_pulses_per_rev: float | None = None
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> sources
    learned: Learned | None = None  # ratios learned by driving, when a [learned] table is present
    # an "EL" extra-low gear below 1st (Sambar, Acty): not in gear_ratios, gear_count or rpm_per_kmh()
    extra_low_ratio: float | None = None

    @property
    def ratios_known(self) -> bool:
        return bool(self.gear_ratios) and self.final_drive is not None and self.tyre is not None

    @property
    def forward_gears(self) -> int | None:
        return len(self.gear_ratios) if self.gear_ratios else self.gear_count

    def rpm_per_kmh(self) -> tuple[float, ...]:
        """Engine rpm per km/h of road speed in each gear (high range); () if unknown.

        From the sourced ratios: rpm = v[km/h] x (1000/60) / C_roll[m] x i_gear x i_final.
        Without them, the [learned] ratios when every gear was learned.
        """
        if not self.ratios_known:
            return self.learned.known() if self.learned is not None else ()
        c = self.tyre.rolling_circumference_m
        return tuple(1000 / 60 / c * i * self.final_drive for i in self.gear_ratios)



def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _number(table: dict, key: str, where: str, required: bool = False):
    value = table.get(key)
    if value is None:
        if required:
            raise ProfileError(f"{where}: {key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ProfileError(f"{where}: {key} must be a positive number, not {value!r}")
    return float(value)


def _learned(table: dict, origin: str) -> Learned:
    where = f"{origin} [learned]"
    _check_keys(table, _LEARNED_KEYS, where)
    ratios, confidence = table.get("rpm_per_kmh", []), table.get("confidence", [])
    if not isinstance(ratios, list) or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and (r > 0 or math.isnan(r)) for r in ratios):
        raise ProfileError(f"{where}: rpm_per_kmh must be a list of positive numbers (nan for a gear not seen)")
    if not isinstance(confidence, list) or len(confidence) != len(ratios) or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c <= 1 for c in confidence):
        raise ProfileError(f"{where}: confidence must list one number from 0 to 1 per rpm_per_kmh")
    samples = table.get("samples", 0)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ProfileError(f"{where}: samples must be a whole number")
    logs = table.get("logs", [])
    if not isinstance(logs, list) or not all(isinstance(n, str) for n in logs):
        raise ProfileError(f"{where}: logs must be a list of file names")
    coast_down = table.get("coast_down", [])
    if not isinstance(coast_down, list) or not all(
            isinstance(row, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          and 0 <= v <= 300 for v in row) for row in coast_down):
        raise ProfileError(f"{where}: coast_down must be a list per gear of road speeds in km/h "
                           "(0 to 300) at which an automatic shifted down into it")
    idle = table.get("idle_rpm")
    if idle is not None and (isinstance(idle, bool) or not isinstance(idle, (int, float)) or not 300 <= idle <= 2000):
        raise ProfileError(f"{where}: idle_rpm must be an engine speed from 300 to 2000 rpm")
    certain = table.get("numbering_certain", True)
    if not isinstance(certain, bool):
        raise ProfileError(f"{where}: numbering_certain must be true or false")
    return Learned(tuple(None if math.isnan(r) else float(r) for r in ratios),
                   tuple(float(c) for c in confidence), samples, tuple(logs),
                   tuple(tuple(float(v) for v in row) for row in coast_down), None if idle is None else float(idle),
                   certain)


def profile_from_dict(data: dict, origin: str) -> Profile:
    """Build a Profile from parsed TOML, with one plain sentence for any mistake.

    ``[engine]`` and ``[tyre]`` may be left out only by a profile that has a
    ``[learned]`` table (ratios learned for a truck no profile describes).
    """
    _check_keys(data, _TOP_KEYS, origin)
    if not isinstance(data.get("learned", {}), dict):
        raise ProfileError(f"{origin}: learned must be a table")
    learned = _learned(data["learned"], origin) if "learned" in data else None
    required = ("name", "title") if learned is not None else ("name", "title", "engine", "tyre")
    for key in required:
        if key not in data:
            raise ProfileError(f"{origin}: [{key}] is missing" if key in ("engine", "tyre")
                               else f"{origin}: {key} is missing")
    engine_t, gearbox_t = data.get("engine", {}), data.get("gearbox", {})
    tyre_t, tach_t = data.get("tyre", {}), data.get("tach", {})
    _check_keys(engine_t, _ENGINE_KEYS, f"{origin} [engine]")
    _check_keys(gearbox_t, _GEARBOX_KEYS, f"{origin} [gearbox]")
    _check_keys(tyre_t, _TYRE_KEYS, f"{origin} [tyre]")
    _check_keys(tach_t, _TACH_KEYS, f"{origin} [tach]")
    where = f"{origin} [engine]"
    cylinders = engine_t.get("cylinders")
    if cylinders is not None and (not isinstance(cylinders, int) or not 1 <= cylinders <= 12):
        raise ProfileError(f"{where}: cylinders must be a whole number from 1 to 12")
    engine = Engine(
        code=str(engine_t.get("code", "?")),
        displacement_cc=_number(engine_t, "displacement_cc", where, required="engine" in data),
        cylinders=cylinders,
        peak_power_kw=_number(engine_t, "peak_power_kw", where),
        peak_power_rpm=_number(engine_t, "peak_power_rpm", where),
        peak_torque_nm=_number(engine_t, "peak_torque_nm", where),
        peak_torque_rpm=_number(engine_t, "peak_torque_rpm", where),
        idle_rpm=_number(engine_t, "idle_rpm", where),
    )
    where = f"{origin} [gearbox]"
    ratios = gearbox_t.get("gear_ratios", [])
    if not isinstance(ratios, list) or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) and r > 0 for r in ratios):
        raise ProfileError(f"{where}: gear_ratios must be a list of positive numbers (empty if unknown)")
    if any(low <= high for low, high in zip(ratios, ratios[1:])):
        raise ProfileError(f"{where}: gear_ratios must fall from 1st to top gear, not {ratios}")
    extra_low = _number(gearbox_t, "extra_low_ratio", where)
    if extra_low is not None and ratios and extra_low <= ratios[0]:
        raise ProfileError(f"{where}: extra_low_ratio {extra_low:g} must be above 1st gear's {ratios[0]:g}")
    gear_count = gearbox_t.get("gear_count")
    if gear_count is not None and (not isinstance(gear_count, int) or not 1 <= gear_count <= 8):
        raise ProfileError(f"{where}: gear_count must be a whole number from 1 to 8")
    if ratios and gear_count is not None and gear_count != len(ratios):
        raise ProfileError(f"{where}: gear_count is {gear_count} but {len(ratios)} gear_ratios are given")
    tyre_size = tyre_t.get("size")
    if tyre_size is None and "tyre" not in data:
        tyre = None  # only with [learned]: checked above
    elif not isinstance(tyre_size, str):
        raise ProfileError(f"{origin} [tyre]: size is missing (write it like 145R12)")
    else:
        try:
            tyre = parse_tyre(tyre_size)
        except ValueError as exc:
            raise ProfileError(f"{origin} [tyre]: {exc}") from None
    sources = {name: tuple(t.get("sources", ())) for name, t in
               (("engine", engine_t), ("gearbox", gearbox_t), ("tyre", tyre_t), ("tach", tach_t)) if t}
    return Profile(
        name=str(data["name"]), title=str(data["title"]), years=str(data.get("years", "")),
        engine=engine, tyre=tyre,
        gear_ratios=tuple(float(r) for r in ratios),
        gear_count=gear_count,
        final_drive=_number(gearbox_t, "final_drive", where),
        reverse_ratio=_number(gearbox_t, "reverse_ratio", where),
        transfer_low_ratio=_number(gearbox_t, "transfer_low_ratio", where),
        transmission=gearbox_t.get("transmission"),
        tach_pulses_per_rev=_number(tach_t, "pulses_per_rev", f"{origin} [tach]"),
        sources=sources,
        learned=learned,
        extra_low_ratio=extra_low,
    )


def list_profiles() -> list[str]:
    """Names of the profiles shipped with keidash."""
    folder = resources.files(__name__)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str) -> Profile:
    """Load a shipped profile by name, or any profile TOML by path."""
    path = Path(name_or_path)
    # os.path: a folder that cannot be entered is not a traceback here; reading says why
    if os.path.isdir(path) and name_or_path not in list_profiles():
        raise ProfileError(f"profile {path} is a folder; name a profile TOML file in it (or a shipped profile: "
                           f"{', '.join(list_profiles())})")
    if name_or_path.endswith(".toml") or os.path.isfile(path):
        data = read_toml(name_or_path, "profile file", ProfileError,
                         "a profile is a TOML text file, as keidash learn --out writes")
        return profile_from_dict(data, str(path))
    if name_or_path not in list_profiles():
        raise ProfileError(f"unknown profile {name_or_path!r}; known: {', '.join(list_profiles())}")
    origin = f"profile {name_or_path}"
    text = resources.files(__name__).joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
    return profile_from_dict(parse_toml(text, origin, ProfileError), origin)


def unknown_profile() -> Profile:
    """A truck keidash knows nothing about yet: no engine figures, no ratios (learned by driving).

    Its limits are keidash's defaults (keidash.profiles.engine.shift_limits); used to replay or
    learn from a drive when no profile is named.
    """
    return Profile(name="unknown", title="Unknown truck (learning)", years="",
                   engine=Engine(code="unknown", displacement_cc=None), tyre=None)


def profiles_main() -> int:
    """``keidash profiles``: one line per shipped profile."""
    for name in list_profiles():
        p = load_profile(name)
        gears = (f"{len(p.gear_ratios)} gears, final {p.final_drive:g}" if p.ratios_known
                 else "ratios learned by driving")
        print(f"{name:14s} {p.title} ({p.years}), {p.engine.code} {p.engine.displacement_cc:g} cc, "
              f"{p.tyre.size}, {gears}")
    return 0
