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


def _figure(x: float) -> str:
    """A range's end as an owner reads it: 10,000, 0.1, -30."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,g}"


@dataclass(frozen=True)
class Range:
    """The sane values of one number an owner gives: in the config file, a profile, a source
    URL or on the command line. Every such number is checked through one of these, so NaN, an
    infinity, a boolean, text or a value outside the range is always the same one sentence:
    "<where>: <key> must be a positive number from 1 to 240 frames a second, not nan".
    """

    low: float
    high: float
    unit: str = ""  # after the range, e.g. " rpm", " pixels", " s (leave it out to run until stopped)"
    whole: bool = False  # a whole number: a TOML integer, digits in a URL or on the command line
    above: bool = False  # the low end itself is not allowed (a time, a rate)
    zero: bool = False  # 0 is allowed too, with a meaning of its own ("0 = as fast as possible")

    def __str__(self) -> str:
        kind = "whole number" if self.whole else "number"
        positive = "positive " if self.low > 0 or (self.above and self.low == 0) else ""
        if self.above and self.low == 0:
            span = f"up to {_figure(self.high)}"
        else:
            span = f"{'above' if self.above else 'from'} {_figure(self.low)} {'up ' if self.above else ''}to " \
                   f"{_figure(self.high)}"
        text = f"a {positive}{kind} {span}{self.unit}"
        return f"0 or {text}" if self.zero else text

    def holds(self, value) -> bool:
        """True when ``value`` (already a Python number) is one of this range's."""
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if self.zero and value == 0:
            return True
        return (self.low < value if self.above else self.low <= value) and value <= self.high

    def check(self, value, key: str, where: str, error: type[Exception] = ConfigError):
        """``value`` from a TOML file (float, or int when whole); else ``error``, one sentence
        naming ``where`` (the file and table), the key and this range."""
        if not self.holds(value):
            raise error(f"{where}: {key} must be {self}, not {value!r}")
        return int(value) if self.whole else float(value)

    def parse(self, text: str, key: str, where: str, error: type[Exception] = ConfigError):
        """``text`` typed in a URL option or on the command line, as a number in this range;
        else ``error``: "<where>: <key> must be ..., not 'nan'"."""
        value = self.read(text)
        if value is None or not self.holds(value):
            raise error(f"{where}: {key} must be {self}, not {text!r}")
        return value

    def read(self, text: str):
        """``text`` as an int (whole) or a float; None when it is neither."""
        try:
            return int(text) if self.whole else float(text)
        except (TypeError, ValueError):
            return None

    def arg(self, text: str):
        """An argparse ``type=``: argparse says "argument --fps: must be ..., not 'nan'"."""
        import argparse
        value = self.read(text)
        if value is None or not self.holds(value):
            raise argparse.ArgumentTypeError(f"must be {self}, not {text!r}")
        return value


#: the display: the largest screen a cluster is drawn for is 8K (beyond is a typo that would ask
#: for gigabytes), the smallest one a layout still fits
WIDTH = Range(160, 7680, " pixels", whole=True)
HEIGHT = Range(120, 4320, " pixels", whole=True)
#: frames a second a cluster can be asked for: 1 (a slide show) to 240 (beyond any panel)
FPS = Range(1, 240, " frames a second")
IDLE_RPM = Range(200, 3_000, " rpm")
#: an engine speed the owner sets (upshift, red line) or a profile sources (peak power)
ENGINE_RPM = Range(1_000, 20_000, " rpm")
PIN = Range(0, 27, " (a BCM GPIO number)", whole=True)
#: tach pulses per crank revolution: 0.5 from a 4-stroke single's coil, 6 from a V12's distributor, twice
#: that from wasted spark or an ECU's tach output
TACH_PPR = Range(0.25, 24, " pulses per revolution")

# The sane range of every number in the config file (inclusive): a value outside it, NaN or an
# infinity is refused at load time with one sentence, never found by the frame loop.
_RANGES = {
    "width": WIDTH, "height": HEIGHT, "fps": FPS,
    "odometer_km": Range(0, 10_000_000, " km"),
    "idle_rpm": IDLE_RPM, "upshift_rpm": ENGINE_RPM, "redline_rpm": ENGINE_RPM,
    "span_rpm": Range(50, 10_000, " rpm"),
    "coolant_hot_c": Range(60, 150, " deg C"), "battery_low_v": Range(9, 13, " V"),
    "battery_high_v": Range(13, 17, " V"),
    "day": Range(0, 255, " (a brightness)", whole=True), "night": Range(0, 255, " (a brightness)", whole=True),
    "keep_trips": Range(0, 100_000, " drives", whole=True), "keep_days": Range(1, 36_500, " days"),
    "max_mb": Range(10, 1_000_000, " MB"),
}
_UPSHIFT_PER_GEAR = Range(ENGINE_RPM.low, ENGINE_RPM.high, ENGINE_RPM.unit, zero=True)

#: the virtual truck (sim:// and keidash demo): its day lasts about 487 simulated seconds before it
#: starts over, so skipping further would only fast-forward through the same day again
SIM_SKIP = Range(0, 480, " s (the virtual truck's day lasts about 8 minutes)")
SIM_SPEEDUP = Range(0.1, 20, " simulated seconds per second")
SIM_VSS_ERROR = Range(-30, 30, " %")
#: a replay's pace: 0 plays it as fast as it goes
REPLAY_SPEED = Range(0.01, 1000, " times real time (0 = as fast as it goes)", zero=True)

#: every option of a source URL that is a number, by scheme, with its range (audio:// checks its
#: own in keidash.sources.audio.parse_audio_url): the config checks them when it loads, the rig
#: when it builds a source from a URL that no config had (keidash probe)
URL_NUMBERS: dict[str, dict[str, Range]] = {
    "obd": {"baud": Range(1_200, 4_000_000, " baud", whole=True),
            "timeout": Range(0, 60, " s", above=True), "slow_s": Range(0, 3_600, " s", above=True),
            "st_ms": Range(4, 1_020, " ms (ATST steps of 4 ms)", whole=True),
            "at": Range(0, 2, " (ATAT0, 1 or 2)", whole=True),
            "max_hz": Range(1, 1_000, " polls a second (0 = no cap)", zero=True)},
    "nmea": {"baud": Range(1_200, 921_600, " baud", whole=True),
             "rate": Range(0, 50, " fixes a second", above=True)},
    "pulses": {"tach": PIN, "vss": PIN, "tach_ppr": TACH_PPR,
               "vss_ppk": Range(100, 100_000, " pulses per km")},
    "replay": {"speed": REPLAY_SPEED},
    "sim": {"speedup": SIM_SPEEDUP, "skip": SIM_SKIP, "vss_error": SIM_VSS_ERROR,
            "ecu_ms": Range(0, 1_000, " ms")},
}


def _number(table: dict, key: str, where: str, default):
    """``table[key]`` (else ``default``) in ``_RANGES[key]``, else one sentence."""
    return _RANGES[key].check(table.get(key, default), key, where)


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
    _url_numbers(sources, origin)
    display = _known(data.get("display", {}), _DISPLAY, f"{origin} [display]")
    shift = _known(data.get("shift", {}), _SHIFT, f"{origin} [shift]")
    where = f"{origin} [display]"
    fullscreen = display.get("fullscreen", False)
    if not isinstance(fullscreen, bool):
        raise ConfigError(f"{where}: fullscreen must be true or false")
    return Config(
        profile=profile,
        sources={str(k): v for k, v in sources.items()},
        size=(_number(display, "width", where, 800), _number(display, "height", where, 480)),
        fullscreen=fullscreen,
        fps=_number(display, "fps", where, 60.0),
        shift=_shift(shift, f"{origin} [shift]"),
        **_pins_once(_cab(data, origin), sources, origin),
    )


def _url_numbers(sources: dict, origin: str) -> None:
    """Every number in a source URL within its range (URL_NUMBERS), said with the file; an
    option that is no number of a known scheme must still be finite (audio:// checks its own)."""
    from urllib.parse import parse_qsl, urlsplit
    for name, url in sources.items():
        numbers = URL_NUMBERS.get(urlsplit(url).scheme, {})
        for key, value in parse_qsl(urlsplit(url).query):
            if key in numbers:
                numbers[key].parse(value, f"{name} option {key}", f"{origin} [sources]")
                continue
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
    return None if table.get(key) is None else PIN.check(table[key], key, where)


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
    out["alarms"] = {"coolant_hot_c": _number(alarms, "coolant_hot_c", where_alarms, 105.0),
                     "battery_low_v": _number(alarms, "battery_low_v", where_alarms, 11.8),
                     "battery_high_v": _number(alarms, "battery_high_v", where_alarms, 15.0)}
    if out["alarms"]["battery_low_v"] >= out["alarms"]["battery_high_v"]:
        raise ConfigError(f"{where_alarms}: battery_low_v must be below battery_high_v")
    if "odometer_km" in display:
        out["odometer_km"] = _number(display, "odometer_km", where, None)

    lights = _known(data.get("lights", {}), _LIGHTS, f"{origin} [lights]")
    where = f"{origin} [lights]"
    if lights:
        bar = lights.get("bar", [])
        down, buzzer = _pin(lights, "down", where), _pin(lights, "buzzer", where)
        alone = "bar" not in lights and (down is not None or buzzer is not None)  # a buzzer or down LED alone
        if not alone and (not isinstance(bar, list) or not bar
                          or not all(PIN.holds(p) for p in bar)):
            raise ConfigError(f"{where}: bar must be a list of BCM GPIO numbers (0 to 27), left to right, e.g. "
                              "[5, 6, 13, 19, 26] (or leave bar out and give only a buzzer or a down LED), "
                              f"not {bar!r}")
        used = list(bar) + [p for p in (down, buzzer) if p is not None]
        if len(set(used)) != len(used):
            raise ConfigError(f"{where}: a GPIO pin is used twice")
        out["lights"] = {"bar": tuple(bar), "down": down, "buzzer": buzzer,
                         "span_rpm": _number(lights, "span_rpm", where, 700.0)}
    button = _known(data.get("button", {}), _BUTTON, f"{origin} [button]")
    out["button_pin"] = _pin(button, "pin", f"{origin} [button]")
    night = _known(data.get("night", {}), _NIGHT, f"{origin} [night]")
    where = f"{origin} [night]"
    out["night"] = {"switch": _pin(night, "switch", where), "night_from": _clock(night, "night_from", where, "19:00"),
                    "day_from": _clock(night, "day_from", where, "06:00")}
    if "backlight" in data:
        backlight = _known(data["backlight"], _BACKLIGHT, f"{origin} [backlight]")
        where = f"{origin} [backlight]"
        levels = {key: _number(backlight, key, where, default) for key, default in (("day", 255), ("night", 40))}
        path = backlight.get("path")
        if path is not None and not isinstance(path, str):
            raise ConfigError(f"{where}: path must be a folder under /sys/class/backlight")
        out["backlight"] = {**levels, "path": path}
    if "data_dir" in data:
        if not isinstance(data["data_dir"], str) or not data["data_dir"]:
            raise ConfigError(f"{origin}: data_dir must be a folder, e.g. \"/var/lib/keidash\"")
        out["data_dir"] = data["data_dir"]
    trip_log = _known(data.get("trip_log", {}), _TRIP_LOG, f"{origin} [trip_log]")
    out["trip_log"] = {key: _number(trip_log, key, f"{origin} [trip_log]", None) for key in sorted(trip_log)}
    return out


def _shift(table: dict, where: str) -> dict:
    out: dict = {k: _number(table, k, where, None) for k in ("upshift_rpm", "redline_rpm", "idle_rpm")
                 if k in table}
    if "mode" in table:
        if table["mode"] not in _SHIFT_MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(_SHIFT_MODES)}, not {table['mode']!r}")
        out["mode"] = table["mode"]
    if "upshift_rpm_per_gear" in table:
        per_gear = table["upshift_rpm_per_gear"]
        if (not isinstance(per_gear, list) or not per_gear or len(per_gear) > 12
                or not all(_UPSHIFT_PER_GEAR.holds(v) for v in per_gear)):
            raise ConfigError(f"{where}: upshift_rpm_per_gear must be a list of 1 to 12 upshift points, 1st gear "
                              f"first, each {_UPSHIFT_PER_GEAR} (0 = keidash's point for that gear), "
                              f"e.g. [4500, 4200, 4000, 3800], not {per_gear!r}")
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
