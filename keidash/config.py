"""The config file of ``keidash run --config PATH``.

Example (docs/example-config.toml)::

    profile = "hijet-s500p"          # a shipped profile, or a path to a profile TOML

    [sources]                        # name = URL; listed first = preferred for rpm and speed
    pulses = "pulses://gpio?tach=17&vss=27"
    obd = "obd:///dev/ttyUSB0?protocol=5"
    gps = "nmea:///dev/serial0?baud=9600"

    [display]
    width = 800
    height = 480
    fullscreen = true
    fps = 60

    [shift]                          # your engine's limits; defaults in docs/profiles.md
    mode = "economy"                 # or "power" (docs/shifting.md)
    upshift_rpm = 4500               # optional: one upshift rpm for every gear, instead of the mode's
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

_TOP = {"profile", "sources", "display", "shift"}
_DISPLAY = {"width", "height", "fullscreen", "fps"}
_SHIFT = {"upshift_rpm", "redline_rpm", "idle_rpm", "mode", "upshift_rpm_per_gear"}
_SHIFT_MODES = ("power", "economy")  # keidash.shift.MODES (not imported: config loads before the estimator)


@dataclass(frozen=True)
class Config:
    profile: str
    sources: dict[str, str]
    size: tuple[int, int] = (800, 480)
    fullscreen: bool = False
    fps: float = 60.0
    shift: dict = field(default_factory=dict)  # [shift]: rpm limits, mode, upshift_rpm_per_gear


def _known(table, allowed: set[str], where: str) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    return table


def _positive(table: dict, key: str, where: str, default, kind=float):
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}: {key} must be a positive number, not {value!r}")
    return kind(value)


def load_config(path: str) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"cannot read config file {path}: permission denied") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return config_from_dict(data, path)


def config_from_dict(data: dict, origin: str = "config") -> Config:
    _known(data, _TOP, origin)
    profile = data.get("profile")
    if not isinstance(profile, str) or not profile:
        raise ConfigError(f"{origin}: profile is missing; name one, e.g. profile = \"hijet-s500p\"")
    sources = _known(data.get("sources", {}), set(data.get("sources", {}) or {}), f"{origin} [sources]")
    if not sources:
        raise ConfigError(f"{origin}: [sources] is empty; name at least one, e.g. gps = \"nmea:///dev/serial0\"")
    display = _known(data.get("display", {}), _DISPLAY, f"{origin} [display]")
    shift = _known(data.get("shift", {}), _SHIFT, f"{origin} [shift]")
    where = f"{origin} [display]"
    fullscreen = display.get("fullscreen", False)
    if not isinstance(fullscreen, bool):
        raise ConfigError(f"{where}: fullscreen must be true or false")
    return Config(
        profile=profile,
        sources={str(k): v for k, v in sources.items()},
        size=(_positive(display, "width", where, 800, int), _positive(display, "height", where, 480, int)),
        fullscreen=fullscreen,
        fps=_positive(display, "fps", where, 60.0),
        shift=_shift(shift, f"{origin} [shift]"),
    )


def _shift(table: dict, where: str) -> dict:
    out: dict = {k: _positive(table, k, where, None) for k in ("upshift_rpm", "redline_rpm", "idle_rpm")
                 if k in table}
    if "mode" in table:
        if table["mode"] not in _SHIFT_MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(_SHIFT_MODES)}, not {table['mode']!r}")
        out["mode"] = table["mode"]
    if "upshift_rpm_per_gear" in table:
        per_gear = table["upshift_rpm_per_gear"]
        if (not isinstance(per_gear, list) or not per_gear
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in per_gear)):
            raise ConfigError(f"{where}: upshift_rpm_per_gear must be a list of rpm, 1st gear first "
                              f"(0 = keidash's point for that gear), e.g. [4500, 4200, 4000, 3800]")
        out["upshift_rpm_per_gear"] = tuple(float(v) for v in per_gear)
    return out
