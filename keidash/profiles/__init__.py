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

from ..config import ENGINE_RPM, IDLE_RPM, TACH_PPR, Range, parse_toml, read_toml
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

# The sane range of every number in a profile (keidash.config.Range): generous for any car a log
# may come from, tight enough that a typo, NaN or an infinity is one sentence at load time
CYLINDERS = Range(1, 12, " cylinders", whole=True)
GEAR_COUNT = Range(1, 10, " forward gears", whole=True)
GEAR_RATIO = Range(0.2, 20)
_RANGES = {
    "displacement_cc": Range(50, 10_000, " cc"), "cylinders": CYLINDERS,
    "peak_power_kw": Range(1, 1_000, " kW"), "peak_power_rpm": ENGINE_RPM,
    "peak_torque_nm": Range(1, 2_000, " N.m"), "peak_torque_rpm": Range(500, 20_000, " rpm"),
    "idle_rpm": IDLE_RPM,
    "gear_count": GEAR_COUNT, "reverse_ratio": GEAR_RATIO, "extra_low_ratio": GEAR_RATIO,
    "final_drive": Range(1, 20), "transfer_low_ratio": Range(1, 5, " (high range is 1)"),
    "pulses_per_rev": TACH_PPR,
}
#: [learned]: rpm per km/h in a gear (keidash.estimate.learn finds them from 10 to 1,000), each
#: gear's confidence, the pairs learned from, an automatic's coast-down speeds
RPM_PER_KMH = Range(5, 2_000, " rpm per km/h")
CONFIDENCE = Range(0, 1)
SAMPLES = Range(0, 10**12, whole=True)
COAST_DOWN_KMH = Range(0, 300, " km/h")


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
        """Forward gears: the ratios', else ``gear_count``, else the count the transmission's name gives
        ("5MT": 5; the loader refuses the three disagreeing)."""
        return len(self.gear_ratios) if self.gear_ratios else self.gear_count or gears_named(self.transmission)

    def rpm_per_kmh(self) -> tuple[float, ...]:
        """Engine rpm per km/h of road speed in each gear (high range); () if unknown.

        From the sourced ratios: rpm = v[km/h] x (1000/60) / C_roll[m] x i_gear x i_final.
        Without them, the [learned] ratios when every gear was learned.
        """
        if not self.ratios_known:
            return self.learned.known() if self.learned is not None else ()
        c = self.tyre.rolling_circumference_m
        return tuple(1000 / 60 / c * i * self.final_drive for i in self.gear_ratios)



#: words one of which every gearbox's name holds ("5MT", "4MT+EL", "3AT", "CVT", "manual", "automatic")
GEARBOX_WORDS = ("MT", "AT", "CVT", "MANUAL", "AUTO")


def is_gearbox(text) -> bool:
    """True when ``text`` names a gearbox as a profile, a vehicle file or ``--transmission`` may:
    "banana" would be taken for a manual (the default) and its owner never told."""
    if not isinstance(text, str):
        return False
    t = text.strip().upper().replace(" ", "")
    return bool(t) and any(word in t for word in GEARBOX_WORDS)


def gears_named(text) -> int | None:
    """The forward gears a gearbox's name counts: "5MT" and "5MT+EL" 5 (the EL below 1st is not
    counted), "3AT" 3, "6-speed AT" 6; None when it names none ("CVT", "manual", "AT")."""
    if not isinstance(text, str):
        return None
    t = text.strip().upper().replace(" ", "").replace("-", "").replace("SPEED", "")
    digits = len(t) - len(t.lstrip("0123456789"))
    if not digits or not t[digits:].startswith(("MT", "AT", "M/T", "A/T")):
        return None
    count = int(t[:digits])
    return count if GEAR_COUNT.low <= count <= GEAR_COUNT.high else None


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _number(table: dict, key: str, where: str, required: bool = False):
    """``table[key]`` within ``_RANGES[key]``, None when absent; else one sentence."""
    value = table.get(key)
    if value is None:
        if required:
            raise ProfileError(f"{where}: {key} is missing")
        return None
    return _RANGES[key].check(value, key, where, ProfileError)


def _table(data: dict, key: str, origin: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ProfileError(f"{origin}: {key} must be a table ([{key}]), not {value!r}")
    return value


def _learned(table: dict, origin: str) -> Learned:
    where = f"{origin} [learned]"
    _check_keys(table, _LEARNED_KEYS, where)
    ratios, confidence = table.get("rpm_per_kmh", []), table.get("confidence", [])
    if not isinstance(ratios, list) or not all(
            RPM_PER_KMH.holds(r) or (isinstance(r, float) and math.isnan(r)) for r in ratios):
        raise ProfileError(f"{where}: rpm_per_kmh must be a list of positive numbers, each {RPM_PER_KMH} "
                           f"(nan for a gear not seen), not {ratios!r}")
    if not isinstance(confidence, list) or len(confidence) != len(ratios) or not all(
            CONFIDENCE.holds(c) for c in confidence):
        raise ProfileError(f"{where}: confidence must list one number from 0 to 1 per rpm_per_kmh, not {confidence!r}")
    samples = SAMPLES.check(table.get("samples", 0), "samples", where, ProfileError)
    logs = table.get("logs", [])
    if not isinstance(logs, list) or not all(isinstance(n, str) for n in logs):
        raise ProfileError(f"{where}: logs must be a list of file names")
    coast_down = table.get("coast_down", [])
    if not isinstance(coast_down, list) or not all(
            isinstance(row, list) and all(COAST_DOWN_KMH.holds(v) for v in row) for row in coast_down):
        raise ProfileError(f"{where}: coast_down must be a list per gear of road speeds in km/h "
                           "(0 to 300) at which an automatic shifted down into it")
    idle = _number(table, "idle_rpm", where)
    certain = table.get("numbering_certain", True)
    if not isinstance(certain, bool):
        raise ProfileError(f"{where}: numbering_certain must be true or false")
    return Learned(tuple(None if math.isnan(r) else float(r) for r in ratios),
                   tuple(float(c) for c in confidence), samples, tuple(logs),
                   tuple(tuple(float(v) for v in row) for row in coast_down), idle, certain)


def profile_from_dict(data: dict, origin: str) -> Profile:
    """Build a Profile from parsed TOML, with one plain sentence for any mistake.

    ``[engine]`` and ``[tyre]`` may be left out only by a profile that has a
    ``[learned]`` table (ratios learned for a truck no profile describes).
    """
    _check_keys(data, _TOP_KEYS, origin)
    engine_t, gearbox_t, tyre_t, tach_t, learned_t = (_table(data, key, origin) for key in
                                                      ("engine", "gearbox", "tyre", "tach", "learned"))
    learned = _learned(learned_t, origin) if "learned" in data else None
    required = ("name", "title") if learned is not None else ("name", "title", "engine", "tyre")
    for key in required:
        if key not in data:
            raise ProfileError(f"{origin}: [{key}] is missing" if key in ("engine", "tyre")
                               else f"{origin}: {key} is missing")
    _check_keys(engine_t, _ENGINE_KEYS, f"{origin} [engine]")
    _check_keys(gearbox_t, _GEARBOX_KEYS, f"{origin} [gearbox]")
    _check_keys(tyre_t, _TYRE_KEYS, f"{origin} [tyre]")
    _check_keys(tach_t, _TACH_KEYS, f"{origin} [tach]")
    where = f"{origin} [engine]"
    engine = Engine(
        code=str(engine_t.get("code", "?")),
        displacement_cc=_number(engine_t, "displacement_cc", where, required="engine" in data),
        cylinders=_number(engine_t, "cylinders", where),
        peak_power_kw=_number(engine_t, "peak_power_kw", where),
        peak_power_rpm=_number(engine_t, "peak_power_rpm", where),
        peak_torque_nm=_number(engine_t, "peak_torque_nm", where),
        peak_torque_rpm=_number(engine_t, "peak_torque_rpm", where),
        idle_rpm=_number(engine_t, "idle_rpm", where),
    )
    if engine.peak_torque_rpm and engine.peak_power_rpm and engine.peak_torque_rpm > engine.peak_power_rpm:
        raise ProfileError(f"{where}: peak_torque_rpm ({engine.peak_torque_rpm:g}) must not be above "
                           f"peak_power_rpm ({engine.peak_power_rpm:g}): is one a typo?")
    where = f"{origin} [gearbox]"
    ratios = gearbox_t.get("gear_ratios", [])
    if not isinstance(ratios, list) or not all(GEAR_RATIO.holds(r) for r in ratios):
        raise ProfileError(f"{where}: gear_ratios must be a list of positive numbers, each {GEAR_RATIO} "
                           f"(empty if unknown), not {ratios!r}")
    if any(low <= high for low, high in zip(ratios, ratios[1:])):
        raise ProfileError(f"{where}: gear_ratios must fall from 1st to top gear, not {ratios}")
    extra_low = _number(gearbox_t, "extra_low_ratio", where)
    if extra_low is not None and ratios and extra_low <= ratios[0]:
        raise ProfileError(f"{where}: extra_low_ratio {extra_low:g} must be above 1st gear's {ratios[0]:g}")
    gear_count = _number(gearbox_t, "gear_count", where)
    transmission = gearbox_t.get("transmission")
    if transmission is not None and not is_gearbox(transmission):
        raise ProfileError(f"{where}: transmission must be text as the source gives it, e.g. \"5MT\", "
                           f"\"4MT+EL\", \"3AT\" or \"CVT\", not {transmission!r}")
    if ratios and gear_count is not None and gear_count != len(ratios):
        raise ProfileError(f"{where}: gear_count is {gear_count} but {len(ratios)} gear_ratios are given")
    named, given = gears_named(transmission), len(ratios) if ratios else gear_count
    if named is not None and given is not None and named != given:
        raise ProfileError(f"{where}: transmission {transmission!r} names {named} forward gears but "
                           f"{'gear_ratios give' if ratios else 'gear_count is'} {given}")
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
    sources = {}
    for name, t in (("engine", engine_t), ("gearbox", gearbox_t), ("tyre", tyre_t), ("tach", tach_t)):
        named = t.get("sources", [])
        if not isinstance(named, list) or not all(isinstance(n, str) for n in named):
            raise ProfileError(f"{origin} [{name}]: sources must be a list of where its numbers come from, "
                               f"in quotes, not {named!r}")
        if t:
            sources[name] = tuple(named)
    return Profile(
        name=str(data["name"]), title=str(data["title"]), years=str(data.get("years", "")),
        engine=engine, tyre=tyre,
        gear_ratios=tuple(float(r) for r in ratios),
        gear_count=gear_count,
        final_drive=_number(gearbox_t, "final_drive", where),
        reverse_ratio=_number(gearbox_t, "reverse_ratio", where),
        transfer_low_ratio=_number(gearbox_t, "transfer_low_ratio", where),
        transmission=transmission,
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
