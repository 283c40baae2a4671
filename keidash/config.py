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

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

_TOP = {"profile", "sources", "display", "shift", "lights", "button", "night", "backlight", "data_dir", "alarms",
        "trip_log"}
_TRIP_LOG = {"keep_trips", "keep_days", "max_mb"}  # keidash.triplog.writer.TripLog's retention
_DISPLAY = {"width", "height", "fullscreen", "fps", "layout", "units", "odometer_km", "temperature"}
_ALARMS = {"coolant_hot_c", "battery_low_v", "battery_high_v"}
_LIGHTS = {"bar", "down", "buzzer", "span_rpm"}
_BUTTON = {"pin"}
_NIGHT = {"switch", "night_from", "day_from"}
_BACKLIGHT = {"day", "night", "path"}
_LAYOUTS = ("800x480", "480x320", "1024x600", "1280x400")  # keidash.display layouts by name
_SHIFT = {"upshift_rpm", "redline_rpm", "idle_rpm", "mode", "upshift_rpm_per_gear"}
_SHIFT_MODES = ("power", "economy")  # keidash.estimate.shift.MODES (not imported: config loads before the estimator)


@dataclass(frozen=True)
class Config:
    profile: str
    sources: dict[str, str]
    size: tuple[int, int] = (800, 480)
    fullscreen: bool = False
    fps: float = 60.0
    shift: dict = field(default_factory=dict)  # [shift]: rpm limits, mode, upshift_rpm_per_gear
    layout: str | None = None  # [display] layout by name; None: from the screen size
    units: str = "mph"  # [display] units of the big speed figure
    odometer_km: float | None = None  # [display] the truck's odometer when keidash was fitted
    lights: dict = field(default_factory=dict)  # [lights] bar (pins), down, buzzer, span_rpm
    button_pin: int | None = None  # [button] pin
    night: dict = field(default_factory=dict)  # [night] switch (pin), night_from, day_from
    backlight: dict | None = None  # [backlight] day, night, path; None: leave the backlight alone
    data_dir: str | None = None  # where keidash keeps what it measured (the distance)
    temperature: str = "C"  # [display] the coolant in deg C or F
    alarms: dict = field(default_factory=dict)  # [alarms] coolant_hot_c, battery_low_v, battery_high_v
    trip_log: dict = field(default_factory=dict)  # [trip_log] keep_trips, keep_days, max_mb (TripLog's keywords)


def _known(table, allowed: set[str], where: str) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    return table


# The sane range of every number in the file (inclusive): a value outside it, NaN or an
# infinity is refused at load time with one sentence, never found by the frame loop.
_RANGES = {
    "width": (100, 10_000, " pixels"), "height": (100, 10_000, " pixels"),
    "fps": (1, 240, " frames a second"),
    "odometer_km": (0, 10_000_000, " km"),
    "idle_rpm": (200, 3_000, " rpm"), "upshift_rpm": (1_000, 20_000, " rpm"),
    "redline_rpm": (1_000, 20_000, " rpm"), "span_rpm": (50, 10_000, " rpm"),
    "coolant_hot_c": (60, 150, " deg C"), "battery_low_v": (9, 13, " V"), "battery_high_v": (13, 17, " V"),
    "keep_trips": (0, 100_000, " drives"), "keep_days": (1, 36_500, " days"), "max_mb": (10, 1_000_000, " MB"),
}


def _finite_number(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value))


def _positive(table: dict, key: str, where: str, default, kind=float):
    """A number in ``_RANGES[key]``: finite (no nan, no inf) and sane, else one sentence."""
    value = table.get(key, default)
    lo, hi, unit = _RANGES[key]
    if not _finite_number(value) or not lo <= value <= hi:
        what = "a positive number" if lo > 0 else "a number"
        raise ConfigError(f"{where}: {key} must be {what} from {lo:,} to {hi:,}{unit}, not {value!r}")
    return kind(value)


def read_toml(path: str, what: str, error: type[Exception], text_hint: str) -> dict:
    """The TOML file ``path`` the user named, as a dict; else ``error`` with one sentence.

    ``what`` names the file ("config file", "profile file"); ``text_hint`` says what the file
    should be when it is not text. The config and the profiles read their files through this,
    so each failure reads the same: missing, a folder, permission denied (or the system's
    reason), not UTF-8 text, not TOML (tomllib's reason, with its line and column).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except PermissionError:
        raise error(f"cannot read {what} {path}: permission denied") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder; name the TOML file in it") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not text (a binary file?): {text_hint}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return parse_toml(text, f"{what} {path}", error)


def parse_toml(text: str, origin: str, error: type[Exception]) -> dict:
    """``text`` parsed as TOML; else ``error``: "<origin> is not valid TOML: <why> (at line L, column C)"."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{origin} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of [[[...]]] or {a = {b = ...}}
        raise error(f"{origin} is not valid TOML: nested too deeply") from None


def load_config(path: str) -> Config:
    data = read_toml(path, "config file", ConfigError, "a config is a TOML text file, see docs/example-config.toml")
    return config_from_dict(data, path)


def config_from_dict(data: dict, origin: str = "config") -> Config:
    _known(data, _TOP, origin)
    profile = data.get("profile")
    if not isinstance(profile, str) or not profile:
        raise ConfigError(f"{origin}: profile is missing; name one, e.g. profile = \"hijet-s500p\"")
    raw_sources = data.get("sources", {})
    sources = _known(raw_sources, set(raw_sources) if isinstance(raw_sources, dict) else set(),
                     f"{origin} [sources]")
    for name, url in sources.items():
        if not isinstance(url, str):
            raise ConfigError(f"{origin} [sources]: {name} must be a URL in quotes, e.g. "
                              f"{name} = \"nmea:///dev/serial0\", not {url!r}")
    if not sources:
        raise ConfigError(f"{origin}: [sources] is empty; name at least one, e.g. gps = \"nmea:///dev/serial0\"")
    _finite_url_options(sources, origin)
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
        **_pins_once(_cab(data, origin), sources, origin),
    )


def _finite_url_options(sources: dict, origin: str) -> None:
    """No URL option may be NaN or an infinity (each source checks its own ranges when built)."""
    from urllib.parse import parse_qsl, urlsplit
    for name, url in sources.items():
        for key, value in parse_qsl(urlsplit(url).query):
            try:
                number = float(value)
            except ValueError:
                continue  # not a number: the source says whether it should be
            if not math.isfinite(number):
                raise ConfigError(f"{origin} [sources]: {name} option {key} must be a finite number, not {value!r}")


def _pins_once(cab: dict, sources: dict, origin: str) -> dict:
    """No GPIO pin may serve two things: pulse inputs in [sources], lights, button, night switch."""
    from urllib.parse import parse_qs, urlsplit
    users: dict[int, str] = {}

    def claim(pin, what):
        if pin is None:
            return
        if pin in users:
            raise ConfigError(f"{origin}: GPIO{pin} is used by both {users[pin]} and {what}; give each its own pin")
        users[pin] = what
    for name, url in sources.items():
        parts = urlsplit(str(url))
        if parts.scheme == "pulses":
            for key, values in parse_qs(parts.query).items():
                if key in ("tach", "vss") and values and values[0].isdigit():
                    claim(int(values[0]), f"[sources] {name} {key}")
    lights = cab.get("lights") or {}
    for i, pin in enumerate(lights.get("bar", ())):
        claim(pin, f"[lights] bar LED {i + 1}")
    claim(lights.get("down"), "[lights] down")
    claim(lights.get("buzzer"), "[lights] buzzer")
    claim(cab.get("button_pin"), "[button] pin")
    claim((cab.get("night") or {}).get("switch"), "[night] switch")
    return cab


def _pin(table: dict, key: str, where: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 27:
        raise ConfigError(f"{where}: {key} must be a BCM GPIO number 0-27, not {value!r}")
    return value


def _clock(table: dict, key: str, where: str, default: str) -> str:
    value = table.get(key, default)
    try:
        hours, minutes = (int(v) for v in str(value).split(":"))
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError
    except ValueError:
        raise ConfigError(f"{where}: {key} must be a clock time like \"19:00\", not {value!r}") from None
    return f"{hours:02d}:{minutes:02d}"


def _cab(data: dict, origin: str) -> dict:
    """The issue-5 tables: display layout and units, shift lights, button, night theme, backlight."""
    display = data.get("display", {})
    where = f"{origin} [display]"
    out: dict = {}
    if "layout" in display:
        if display["layout"] not in _LAYOUTS:
            raise ConfigError(f"{where}: layout must be one of {', '.join(_LAYOUTS)}, not {display['layout']!r}")
        out["layout"] = display["layout"]
    if "units" in display:
        if display["units"] not in ("mph", "kmh"):
            raise ConfigError(f"{where}: units must be \"mph\" or \"kmh\", not {display['units']!r}")
        out["units"] = display["units"]
    if "temperature" in display:
        if display["temperature"] not in ("C", "F"):
            raise ConfigError(f"{where}: temperature must be \"C\" or \"F\", not {display['temperature']!r}")
        out["temperature"] = display["temperature"]
    alarms = _known(data.get("alarms", {}), _ALARMS, f"{origin} [alarms]")
    where_alarms = f"{origin} [alarms]"
    out["alarms"] = {"coolant_hot_c": _positive(alarms, "coolant_hot_c", where_alarms, 105.0),
                     "battery_low_v": _positive(alarms, "battery_low_v", where_alarms, 11.8),
                     "battery_high_v": _positive(alarms, "battery_high_v", where_alarms, 15.0)}
    if out["alarms"]["battery_low_v"] >= out["alarms"]["battery_high_v"]:
        raise ConfigError(f"{where_alarms}: battery_low_v must be below battery_high_v")
    if "odometer_km" in display:
        value = display["odometer_km"]
        lo, hi, _ = _RANGES["odometer_km"]
        if not _finite_number(value) or not lo <= value <= hi:
            raise ConfigError(f"{where}: odometer_km must be the odometer reading in km "
                              f"({lo:,} to {hi:,}), not {value!r}")
        out["odometer_km"] = float(value)

    lights = _known(data.get("lights", {}), _LIGHTS, f"{origin} [lights]")
    where = f"{origin} [lights]"
    if lights:
        bar = lights.get("bar", [])
        down, buzzer = _pin(lights, "down", where), _pin(lights, "buzzer", where)
        alone = "bar" not in lights and (down is not None or buzzer is not None)  # a buzzer or down LED alone
        if not alone and (not isinstance(bar, list) or not bar
                          or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 27 for p in bar)):
            raise ConfigError(f"{where}: bar must be a list of BCM GPIO numbers, left to right, e.g. [5, 6, 13, 19, 26] "
                              "(or leave bar out and give only a buzzer or a down LED)")
        used = list(bar) + [p for p in (down, buzzer) if p is not None]
        if len(set(used)) != len(used):
            raise ConfigError(f"{where}: a GPIO pin is used twice")
        out["lights"] = {"bar": tuple(bar), "down": down, "buzzer": buzzer,
                         "span_rpm": _positive(lights, "span_rpm", where, 700.0)}
    button = _known(data.get("button", {}), _BUTTON, f"{origin} [button]")
    out["button_pin"] = _pin(button, "pin", f"{origin} [button]")
    night = _known(data.get("night", {}), _NIGHT, f"{origin} [night]")
    where = f"{origin} [night]"
    out["night"] = {"switch": _pin(night, "switch", where), "night_from": _clock(night, "night_from", where, "19:00"),
                    "day_from": _clock(night, "day_from", where, "06:00")}
    if "backlight" in data:
        backlight = _known(data["backlight"], _BACKLIGHT, f"{origin} [backlight]")
        where = f"{origin} [backlight]"
        levels = {}
        for key, default in (("day", 255), ("night", 40)):
            value = backlight.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                raise ConfigError(f"{where}: {key} must be a brightness 0-255, not {value!r}")
            levels[key] = value
        path = backlight.get("path")
        if path is not None and not isinstance(path, str):
            raise ConfigError(f"{where}: path must be a folder under /sys/class/backlight")
        out["backlight"] = {**levels, "path": path}
    if "data_dir" in data:
        if not isinstance(data["data_dir"], str) or not data["data_dir"]:
            raise ConfigError(f"{origin}: data_dir must be a folder, e.g. \"/var/lib/keidash\"")
        out["data_dir"] = data["data_dir"]
    trip_log = _known(data.get("trip_log", {}), _TRIP_LOG, f"{origin} [trip_log]")
    where = f"{origin} [trip_log]"
    keep = trip_log.get("keep_trips", 0)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= _RANGES["keep_trips"][1]:
        raise ConfigError(f"{where}: keep_trips must be a whole number of drives from 0 to "
                          f"{_RANGES['keep_trips'][1]:,}, not {keep!r}")
    out["trip_log"] = {key: _positive(trip_log, key, where, None, int if key == "keep_trips" else float)
                       for key in sorted(trip_log)}
    return out


def _shift(table: dict, where: str) -> dict:
    out: dict = {k: _positive(table, k, where, None) for k in ("upshift_rpm", "redline_rpm", "idle_rpm")
                 if k in table}
    if "mode" in table:
        if table["mode"] not in _SHIFT_MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(_SHIFT_MODES)}, not {table['mode']!r}")
        out["mode"] = table["mode"]
    if "upshift_rpm_per_gear" in table:
        per_gear = table["upshift_rpm_per_gear"]
        lo, hi, _ = _RANGES["upshift_rpm"]
        if (not isinstance(per_gear, list) or not per_gear or len(per_gear) > 12
                or not all(_finite_number(v) and (v == 0 or lo <= v <= hi) for v in per_gear)):
            raise ConfigError(f"{where}: upshift_rpm_per_gear must be a list of rpm ({lo:,} to {hi:,}), "
                              f"1st gear first (0 = keidash's point for that gear), e.g. [4500, 4200, 4000, 3800], "
                              f"not {per_gear!r}")
        out["upshift_rpm_per_gear"] = tuple(float(v) for v in per_gear)
    for low, high in (("idle_rpm", "upshift_rpm"), ("idle_rpm", "redline_rpm"), ("upshift_rpm", "redline_rpm")):
        if low in out and high in out and out[low] >= out[high]:
            raise ConfigError(f"{where}: {low} ({out[low]:g}) must be below {high} ({out[high]:g})")
    return out


def check_writable(option: str, path: str | None, *, label: str | None = None, hint: str = "") -> None:
    """Fail before the drive, not after it, when an output file cannot be written.

    One sentence, starting with ``label`` (default: the option and the path as typed) and
    ending with ``hint`` when given: the path is a folder, its folder is missing, or nothing
    can be written there, said as "read-only file system" only when the file system is
    mounted read-only and "permission denied" when it is the permissions.
    """
    if path is None:
        return
    if not path:
        raise ConfigError(f"{option} needs a file name, not an empty one")
    label = label or f"{option} {path}"
    hint = f"; {hint}" if hint else ""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise ConfigError(f"{label}: {path} is a folder; name a file in it{hint}")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise ConfigError(f"{label}: {folder} is a file, not a folder{hint}")
        raise ConfigError(f"{label}: the folder {folder} does not exist{hint}")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise ConfigError(f"{label}: cannot write {target} ({_why_not_writable(target)}){hint}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{label}: cannot write in {folder} ({_why_not_writable(folder)}){hint}")


def _why_not_writable(path: str) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return "permission denied"
