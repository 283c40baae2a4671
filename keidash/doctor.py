"""``keidash doctor``: is this Pi ready to run keidash? One line per check, a fix for each failure.

The checks, in the order printed (docs/doctor.md says what each means and how to fix it):

==========  ====================================================================
config      the config file loads, and every source URL in it builds
serial      each obd:// and nmea:// device exists and this user (or, as root, the
            service's ``keidash`` user) may read and write it; the UART is not
            also the serial console
adapter     the ELM327 answers: rpm or speed arrive within ``seconds``
            (through :func:`keidash.probe.probe`, the sources keidash drives with)
gps         the GPS has a fix: speed arrives within ``seconds``
gpio        every pin in the config is named once and can be claimed (gpiozero)
display     SDL's video driver (``SDL_VIDEODRIVER``, else kmsdrm) has its device,
            and ``pygame.display.init()`` works in a child process
groups      the user the dash runs as is in video, render, input, gpio, dialout
disk        ``data_dir`` (or /var/lib/keidash) is writable with >= 100 MB free
==========  ====================================================================

Each check is a small function returning :class:`Check` objects and never
raising: :func:`run_checks` still wraps each one, so an unexpected exception
becomes a FAIL line naming it, never a traceback. A check that cannot apply
here (no GPIO on a laptop, no config) is a *skip* with the reason; skips do not
fail the run. :func:`doctor_main` prints the report and returns the exit status:
0 when nothing failed, 1 otherwise.

Checks that look at the machine take what they look at as arguments
(environment, user id, whether this is a Raspberry Pi, the pin factory), with
the real machine as the default, so tests can describe another machine.
"""

from __future__ import annotations

import contextlib
import glob
import grp
import json
import logging
import os
import pwd
import shutil
import stat
import subprocess
import sys
import warnings
from dataclasses import asdict, dataclass
from urllib.parse import parse_qsl, urlsplit

from .config import Config, load_config
from .errors import ConfigError

#: the config ``keidash doctor`` reads when no --config is given
DEFAULT_CONFIG = "/etc/keidash/config.toml"
#: where keidash's data goes when the config names no data_dir
DEFAULT_DATA_DIR = "/var/lib/keidash"
#: the user the systemd service runs as (checked instead of root's groups)
SERVICE_USER = "keidash"
#: free space below this fails the disk check (MB)
MIN_FREE_MB = 100.0
#: a child process trying pygame.display.init() is given this long (s)
DISPLAY_INIT_TIMEOUT_S = 15.0
#: the groups the dash's user needs, and what for
GROUPS = {
    "video": "the display (/dev/dri, the backlight)",
    "render": "the GPU's render node (/dev/dri/renderD*)",
    "input": "the touchscreen and keyboard under kmsdrm",
    "gpio": "the GPIO pins (pulses, shift lights, button)",
    "dialout": "the serial ports (ELM327, GPS)",
}
#: the Pi's GPIO UART: these devices use GPIO 14 (TXD) and 15 (RXD)
UART_DEVICES = ("/dev/serial0", "/dev/serial1", "/dev/ttyAMA0", "/dev/ttyS0")
UART_PINS = {14: "TXD", 15: "RXD"}
RASPI_UART_FIX = ("enable the UART with sudo raspi-config nonint do_serial_hw 0 and "
                  "sudo raspi-config nonint do_serial_cons 1, then reboot")
RELOGIN = "then log out and in again (or reboot)"


@dataclass(frozen=True)
class Check:
    """One line of the report. ``ok`` is True for a skip too: a skip never fails the run."""

    name: str
    ok: bool
    message: str
    fix: str = ""  # one sentence saying what to do; empty when ok
    skipped: bool = False
    subject: str = ""  # the device checked, when the check is about one (serial)

    @property
    def status(self) -> str:
        return "skip" if self.skipped else ("ok" if self.ok else "FAIL")

    def line(self) -> str:
        text = f"{self.status:<4} {self.name}: {self.message}"
        return f"{text}: {self.fix}" if self.fix and not self.ok else text

    def as_dict(self) -> dict:
        return dict(asdict(self), status=self.status)


def _ok(name: str, message: str) -> Check:
    return Check(name, True, message)


def _fail(name: str, message: str, fix: str, subject: str = "") -> Check:
    return Check(name, False, message, fix, subject=subject)


def _skip(name: str, reason: str) -> Check:
    return Check(name, True, reason, skipped=True)


# -- the machine ------------------------------------------------------------------

def pi_model(path: str = "/proc/device-tree/model") -> str | None:
    """The Raspberry Pi model ("Raspberry Pi 4 Model B Rev 1.5"), or None when this is not a Pi."""
    try:
        with open(path, "rb") as f:
            model = f.read().rstrip(b"\0").decode("ascii", "replace").strip()
    except OSError:
        return None
    return model if "Raspberry Pi" in model else None


def _user_gids(name: str) -> set[int]:
    """Group ids ``name`` belongs to by the group database (primary group included)."""
    user = pwd.getpwnam(name)
    return {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def can_read_write(path: str, uid: int, gids: set[int]) -> bool:
    """Whether the user ``uid`` in groups ``gids`` may read and write ``path``, by its mode bits.

    For checking another user than the one running (root checking the service's user);
    ``os.access`` answers for the running user. ACLs are not looked at.
    """
    st = os.stat(path)
    if uid == 0:
        return True
    if st.st_uid == uid:
        mask = stat.S_IRUSR | stat.S_IWUSR
    elif st.st_gid in gids:
        mask = stat.S_IRGRP | stat.S_IWGRP
    else:
        mask = stat.S_IROTH | stat.S_IWOTH
    return st.st_mode & mask == mask


def _service_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


# -- config -----------------------------------------------------------------------

def check_config(path: str | None) -> tuple[Check, Config | None]:
    """The config loads, and each non-sim source URL builds (nothing is opened)."""
    if path is None:
        return _fail("config", "no config file given and none at " + DEFAULT_CONFIG,
                     f"pass --config PATH or write {DEFAULT_CONFIG} (see docs/config.md)"), None
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _fail("config", str(exc), "fix the config file (docs/config.md lists every key)"), None
    from .rig import open_rig
    for name, url in config.sources.items():
        if isinstance(url, str) and url.startswith("sim://"):
            continue  # building a virtual truck starts it; the run itself will say if the URL is wrong
        try:
            open_rig({name: url}).stop()  # built, never started: no device is touched
        except (ConfigError, ValueError) as exc:  # ProfileError is a ValueError too
            return _fail("config", f"{path}: {exc}",
                         "fix that source's URL in [sources] (docs/config.md, docs/sources.md)"), config
    return _ok("config", f"{path} ({len(config.sources)} sources: {', '.join(config.sources)})"), config


# -- serial ports -------------------------------------------------------------------

@dataclass(frozen=True)
class SerialPort:
    source: str  # the source's name in [sources]
    scheme: str  # "obd" or "nmea"
    url: str
    device: str  # /dev/... or a pyserial URL (socket://host:port)


def serial_ports(sources: dict[str, str]) -> list[SerialPort]:
    """The obd:// and nmea:// sources and their devices, in config order."""
    ports = []
    for name, url in sources.items():
        if not isinstance(url, str):
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("obd", "nmea"):
            continue
        if url.startswith(f"{parts.scheme}://socket://"):
            device = url[len(parts.scheme) + 3:].split("?", 1)[0]
        else:
            device = parts.netloc + parts.path
        if device:
            ports.append(SerialPort(name, parts.scheme, url, device))
    return ports


def _what(port: SerialPort) -> str:
    return "the ELM327" if port.scheme == "obd" else "the GPS"


def _missing_fix(port: SerialPort) -> str:
    device = port.device
    if device in UART_DEVICES:
        return RASPI_UART_FIX
    if device.startswith("/dev/rfcomm"):
        return (f"bind the paired Bluetooth adapter with sudo rfcomm bind {device[len('/dev/rfcomm'):] or 0} "
                f"<its address> (pair it first with bluetoothctl), or fix the {port.scheme} URL")
    if device.startswith(("/dev/ttyUSB", "/dev/ttyACM", "/dev/serial/by-")):
        return f"plug {_what(port)} in (lsusb should list it), or fix the {port.scheme} URL"
    return f"fix the {port.scheme} URL in [sources], or plug {_what(port)} in"


def _console_on(cmdline_path: str) -> str | None:
    """The serial console named on the kernel command line (console=serial0 ...), or None."""
    try:
        with open(cmdline_path, encoding="ascii", errors="replace") as f:
            words = f.read().split()
    except OSError:
        return None
    for word in words:
        if word.startswith("console="):
            tty = word[len("console="):].split(",", 1)[0]
            if f"/dev/{tty}" in UART_DEVICES:
                return tty
    return None


def check_serial(sources: dict[str, str], *, euid: int | None = None, service_user: str = SERVICE_USER,
                 cmdline_path: str = "/proc/cmdline") -> list[Check]:
    """Each serial device exists and the dash's user may read and write it."""
    ports = serial_ports(sources)
    if not ports:
        return [_skip("serial", "no obd:// or nmea:// source in the config")]
    euid = os.geteuid() if euid is None else euid
    checks = []
    for port in ports:
        where = f"{port.source} {port.device}"
        if not port.device.startswith("/"):
            checks.append(_skip("serial", f"{where}: a network adapter, no serial port to check"))
            continue
        if not os.path.exists(port.device):
            checks.append(_fail("serial", f"{where} does not exist", _missing_fix(port), port.device))
            continue
        group = _group_name(os.stat(port.device).st_gid)
        user = _service_user(service_user) if euid == 0 else None
        if user is not None:  # root may open anything: ask for the user the service runs as
            allowed = can_read_write(port.device, user.pw_uid, _user_gids(service_user))
            who, fix_user = f"the {service_user} user (the service's)", service_user
        else:
            allowed = os.access(port.device, os.R_OK | os.W_OK)
            who, fix_user = "this user", "$USER"
        if not allowed:
            checks.append(_fail("serial", f"{where}: {who} may not read and write it (group {group})",
                                f"sudo usermod -aG {group} {fix_user}, {RELOGIN}", port.device))
            continue
        console = _console_on(cmdline_path) if port.device in UART_DEVICES else None
        if console:
            checks.append(_fail("serial", f"{where}: the kernel's serial console (console={console}) "
                                          f"also uses the UART",
                                "turn the console off with sudo raspi-config nonint do_serial_cons 1, then reboot"))
            continue
        checks.append(_ok("serial", f"{where}: present, readable and writable"
                                    + (f" by {service_user}" if user is not None else "")))
    return checks


# -- probing the adapter and the GPS ------------------------------------------------

class _FailureRecorder(logging.Handler):
    """Keeps each source's failure sentences while a probe runs (sources retry, so the
    status at the end may already say "connecting" again)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        # keidash.sources.base logs "%s: %s (%s)" % (name, "failed", message) on each new failure
        if isinstance(args, tuple) and len(args) == 3 and args[1] == "failed":
            self.failures.append(str(args[2]))


@contextlib.contextmanager
def _sources_quiet():
    """Route keidash's log records to a recorder while probing: the doctor's report says
    what failed, in one line, and nothing (tracebacks included) reaches stderr."""
    logger = logging.getLogger("keidash")
    recorder = _FailureRecorder()
    saved = logger.propagate, logger.level
    logger.addHandler(recorder)
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.propagate, level = saved
        logger.setLevel(level)


def _probe(url: str, seconds: float) -> tuple[dict, str]:
    """:func:`keidash.probe.probe` quietly; also the source's last failure sentence ("" if none)."""
    from .probe import probe
    with _sources_quiet() as recorder:
        result = probe(url, seconds)
    status = next(iter(result.get("sources", {}).values()), {})
    last = status.get("message") if status.get("link") == "failed" else ""
    return result, last or (recorder.failures[-1] if recorder.failures else status.get("message", ""))


def _readings(result: dict, channel: str) -> int:
    entry = result.get(channel)
    return entry.get("readings", 0) if isinstance(entry, dict) else 0


_ADAPTER_FIXES = (  # (words in the source's sentence, what to do)
    ("no OBD adapter", "plug the ELM327 in, or fix the obd URL"),
    ("permission", f"sudo usermod -aG dialout $USER, {RELOGIN}"),
    ("busy", "another program has the adapter open: stop it (the keidash service? sudo systemctl stop keidash)"),
    ("ignition", "turn the ignition on (engine running for rpm); a K-line kei truck may need ?protocol=5 or 3"),
    ("neither rpm nor speed", "this ECU reports neither: take rpm from pulses:// and speed from a GPS"),
    ("WiFi", "join the adapter's WiFi network and check the socket:// address"),
    ("does not answer", "unplug the adapter and plug it back in; if it still says nothing, check it is an "
                        "ELM327 and try the URL's ?baud=38400"),
)


def check_adapter(sources: dict[str, str], seconds: float, unusable: set[str] = frozenset()) -> list[Check]:
    """Each obd:// source delivers rpm or speed within ``seconds``.

    ``unusable``: devices the serial check already failed (not probed again).
    """
    ports = [p for p in serial_ports(sources) if p.scheme == "obd"]
    if not ports:
        return [_skip("adapter", "no obd:// source in the config")]
    checks = []
    for port in ports:
        where = f"{port.source} {port.device}"
        if port.device in unusable:
            checks.append(_skip("adapter", f"{where} cannot be opened (see serial)"))
            continue
        result, problem = _probe(port.url, seconds)
        rpm, speed = _readings(result, "rpm"), _readings(result, "speed_kmh")
        if rpm or speed:
            rates = ", ".join(f"{label} {result[channel]['hz']:.1f} Hz"
                              for channel, label in (("rpm", "rpm"), ("speed_kmh", "speed"))
                              if _readings(result, channel))
            checks.append(_ok("adapter", f"{where} answers: {rates}"))
            continue
        if not problem:
            checks.append(_fail("adapter", f"{where}: no rpm or speed within {seconds:g} s",
                                "check the adapter has power (the OBD socket's pin 16) and the ignition is on; "
                                "run keidash probe " + port.url + " --seconds 30 to watch it"))
            continue
        fix = next((fix for words, fix in _ADAPTER_FIXES if words in problem), "see docs/obd.md")
        checks.append(_fail("adapter", f"{where}: {problem}", fix))
    return checks


_GPS_FIXES = (
    ("permission", f"sudo usermod -aG dialout $USER, {RELOGIN}"),
    ("busy", "another program has the GPS open: sudo systemctl disable --now gpsd.socket gpsd"),
    ("no GPS at", "plug the GPS in, or fix the nmea URL"),
    ("no NMEA sentences", "check the wiring (GPS TX to the Pi's RX), the URL's ?baud= and that the serial "
                          "console is off (sudo raspi-config nonint do_serial_cons 1)"),
)
NO_FIX_ADVICE = "give the antenna a view of the sky; a cold start takes up to a minute"


def check_gps(sources: dict[str, str], seconds: float, unusable: set[str] = frozenset()) -> list[Check]:
    """Each nmea:// source delivers speed (only sent with a fix) within ``seconds``."""
    from .sources.nmea import NO_FIX_MESSAGE, WEAK_FIX_MESSAGE
    ports = [p for p in serial_ports(sources) if p.scheme == "nmea"]
    if not ports:
        return [_skip("gps", "no nmea:// source in the config")]
    checks = []
    for port in ports:
        where = f"{port.source} {port.device}"
        if port.device in unusable:
            checks.append(_skip("gps", f"{where} cannot be opened (see serial)"))
            continue
        result, problem = _probe(port.url, seconds)
        if problem.startswith(NO_FIX_MESSAGE):
            checks.append(_fail("gps", f"{where}: {problem}", NO_FIX_ADVICE))
        elif _readings(result, "speed_kmh"):
            weak = f" ({problem})" if problem.startswith(WEAK_FIX_MESSAGE) else ""
            checks.append(_ok("gps", f"{where} has a fix{weak}: speed {result['speed_kmh']['hz']:.1f} Hz"))
        elif problem:
            fix = next((fix for words, fix in _GPS_FIXES if words in problem), "see docs/sources.md")
            checks.append(_fail("gps", f"{where}: {problem}", fix))
        else:
            checks.append(_fail("gps", f"{where}: no fix within {seconds:g} s",
                                NO_FIX_ADVICE + f"; keidash probe {port.url} --seconds 90 watches it"))
    return checks


# -- GPIO ------------------------------------------------------------------------------

def gpio_pins(config: Config) -> list[tuple[int, str]]:
    """Every GPIO (BCM) the config uses, with who uses it, in config order; pins may repeat."""
    pins: list[tuple[int, str]] = []
    for name, url in config.sources.items():
        if not isinstance(url, str):
            continue
        parts = urlsplit(url)
        if parts.scheme == "pulses":
            query = dict(parse_qsl(parts.query))
            for key in ("tach", "vss"):
                if query.get(key, "").isdigit():
                    pins.append((int(query[key]), f"{name} {key}"))
        elif parts.scheme == "nmea" or parts.scheme == "obd":
            device = parts.netloc + parts.path
            if device in UART_DEVICES:
                pins += [(pin, f"the UART {role} ({name} {device})") for pin, role in UART_PINS.items()]
    lights = config.lights or {}
    pins += [(pin, f"[lights] bar {i + 1}") for i, pin in enumerate(lights.get("bar", ()))]
    for key in ("down", "buzzer"):
        if lights.get(key) is not None:
            pins.append((lights[key], f"[lights] {key}"))
    if config.button_pin is not None:
        pins.append((config.button_pin, "[button] pin"))
    if (config.night or {}).get("switch") is not None:
        pins.append((config.night["switch"], "[night] switch"))
    return pins


def _default_pin_factory():
    """gpiozero's default factory (honouring GPIOZERO_PIN_FACTORY), owned by the caller,
    so the class-wide ``Device.pin_factory`` is left alone."""
    from gpiozero import Device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PinFactoryFallback for each library it tries
        return Device._default_pin_factory()


def check_gpio(config: Config, pin_factory=None, on_pi: bool | None = None) -> Check:
    """Every pin is named once, and each can be claimed now (no other program holds it).

    ``pin_factory``: a gpiozero factory to claim with (closed by the caller); None makes
    gpiozero's default one (GPIOZERO_PIN_FACTORY=mock in tests) and closes it.
    """
    pins = gpio_pins(config)
    if not pins:
        return _skip("gpio", "no GPIO pins in the config")
    users: dict[int, str] = {}
    for pin, user in pins:
        if pin in users:
            return _fail("gpio", f"GPIO {pin} is used twice: by {users[pin]} and by {user}",
                         f"move {user} to a free pin (docs/config.md)")
        users[pin] = user
    on_pi = pi_model() is not None if on_pi is None else on_pi
    own_factory = pin_factory is None
    if own_factory:
        try:
            pin_factory = _default_pin_factory()
        except Exception as exc:  # BadPinFactory (an ImportError) when no GPIO library works here
            if not on_pi:
                return _skip("gpio", f"no GPIO on this machine (not a Raspberry Pi; gpiozero: {exc})")
            return _fail("gpio", f"gpiozero cannot drive the pins: {exc}",
                         "install lgpio: sudo apt install python3-lgpio, or pip install lgpio in keidash's venv")
    busy = []
    try:
        from gpiozero import InputDevice
        for pin, user in users.items():
            if pin in UART_PINS and user.startswith("the UART"):
                continue  # claiming it as an input would take it from the UART
            try:
                # floating input: nothing driven, no pull changed on the wiring
                InputDevice(pin, pull_up=None, active_state=True, pin_factory=pin_factory).close()
            except Exception as exc:
                busy.append((pin, user, exc))
    finally:
        if own_factory:
            pin_factory.close()
    if busy:
        pin, user, exc = busy[0]
        if isinstance(exc, PermissionError) or "ermission" in str(exc):
            fix = f"sudo usermod -aG gpio $USER, {RELOGIN}"
        else:
            fix = ("another program holds it: stop it (the keidash service? sudo systemctl stop keidash), or "
                   "free it from the dtoverlay that claims it in /boot/firmware/config.txt "
                   "(I2C uses 2 and 3, 1-Wire 4, SPI 7 to 11)")
        more = f" (and {len(busy) - 1} more)" if len(busy) > 1 else ""
        return _fail("gpio", f"GPIO {pin} ({user}) cannot be claimed{more}: {exc}", fix)
    return _ok("gpio", "free: " + ", ".join(f"{pin} ({user})" for pin, user in users.items()))


# -- display ------------------------------------------------------------------------

_DISPLAY_PROBE = ("import pygame; pygame.display.init(); "
                  "print(pygame.display.get_driver()); pygame.display.quit()")


def _try_display_init(driver: str, env: dict) -> str:
    """"" when ``pygame.display.init()`` works with ``driver`` in a child process, else why not."""
    child_env = dict(env, SDL_VIDEODRIVER=driver, PYGAME_HIDE_SUPPORT_PROMPT="1")
    try:
        out = subprocess.run([sys.executable, "-c", _DISPLAY_PROBE], capture_output=True, text=True,
                             timeout=DISPLAY_INIT_TIMEOUT_S, env=child_env)
    except subprocess.TimeoutExpired:
        return f"pygame.display.init() did not return within {DISPLAY_INIT_TIMEOUT_S:g} s"
    except OSError as exc:
        return f"cannot start {sys.executable} to try it: {exc.strerror or exc}"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        return f"pygame.display.init() failed: {last}"
    return ""


def check_display(env: dict | None = None, on_pi: bool | None = None, try_init: bool = True,
                  dri_glob: str = "/dev/dri/card*") -> Check:
    """SDL's video driver has what it needs; then pygame opens the display in a child process."""
    env = dict(os.environ if env is None else env)
    driver = env.get("SDL_VIDEODRIVER") or "kmsdrm"
    on_pi = pi_model() is not None if on_pi is None else on_pi
    if driver in ("dummy", "offscreen", "evdev"):
        return _skip("display", f"SDL_VIDEODRIVER={driver}: nothing is shown, no screen to check")
    if driver in ("x11", "wayland"):
        variable = "DISPLAY" if driver == "x11" else "WAYLAND_DISPLAY"
        if not env.get(variable):
            return _fail("display", f"SDL_VIDEODRIVER={driver} but {variable} is not set",
                         "run keidash from the desktop session, or unset SDL_VIDEODRIVER to use kmsdrm")
    elif driver == "kmsdrm":
        cards = sorted(glob.glob(dri_glob))
        if not cards:
            if not on_pi:
                return _skip("display", "no /dev/dri/card* on this machine (not a Raspberry Pi)")
            return _fail("display", "no /dev/dri/card*: the KMS display driver is not loaded",
                         "add dtoverlay=vc4-kms-v3d to /boot/firmware/config.txt and reboot")
        usable = [card for card in cards if os.access(card, os.R_OK | os.W_OK)]
        if not usable:
            return _fail("display", f"this user may not open {', '.join(cards)}",
                         f"sudo usermod -aG video,render $USER, {RELOGIN}")
    if not try_init:
        return _ok("display", f"{driver}: device present (pygame not tried)")
    problem = _try_display_init(driver, env)
    if problem:
        return _fail("display", f"{driver}: {problem}",
                     "stop whatever holds the screen (the keidash service or a desktop: sudo systemctl stop "
                     "keidash lightdm), and check dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt")
    return _ok("display", f"{driver}: pygame opens the display")


# -- groups ------------------------------------------------------------------------

def check_groups(euid: int | None = None, service_user: str = SERVICE_USER) -> Check:
    """The user the dash runs as is in each of :data:`GROUPS` that exists here.

    As root (which may open anything), the service's user is checked instead; a group
    that exists in the database but not in this login session needs a new login.
    """
    euid = os.geteuid() if euid is None else euid
    existing = {}
    for name in GROUPS:
        try:
            existing[name] = grp.getgrnam(name).gr_gid
        except KeyError:
            pass
    if not existing:
        return _skip("groups", "none of " + ", ".join(GROUPS) + " exists on this machine")
    if euid == 0:
        if _service_user(service_user) is None:
            return _skip("groups", f"running as root, which may use every device; the {service_user} user the "
                                   f"service runs as does not exist here")
        user, member_of, session = service_user, _user_gids(service_user), None
    else:
        user = pwd.getpwuid(euid).pw_name
        session = set(os.getgroups()) | {os.getegid()}
        member_of = _user_gids(user) | session
    missing = [name for name, gid in existing.items() if gid not in member_of]
    absent = [name for name in GROUPS if name not in existing]
    note = f" ({', '.join(absent)}: no such group here)" if absent else ""
    if missing:
        who = "$USER" if euid != 0 else user
        return _fail("groups", f"{user} is not in {', '.join(missing)}, needed for "
                               + "; ".join(GROUPS[name] for name in missing) + note,
                     f"sudo usermod -aG {','.join(missing)} {who}, {RELOGIN}")
    stale = [name for name, gid in existing.items() if session is not None and gid not in session]
    if stale:
        return _fail("groups", f"{user} was added to {', '.join(stale)} after this login began",
                     "log out and in again (or reboot) so the new groups take effect")
    return _ok("groups", f"{user} is in {', '.join(existing)}{note}")


# -- disk ------------------------------------------------------------------------

def check_disk(data_dir: str | None, min_free_mb: float = MIN_FREE_MB) -> Check:
    """``data_dir`` is writable (a test file is written and removed) with ``min_free_mb`` free.

    Without a data_dir keidash keeps nothing, so only the free space where
    /var/lib/keidash would be is checked (logs and updates need it too).
    """
    folder = data_dir or DEFAULT_DATA_DIR
    if not os.path.isdir(folder):
        if data_dir:
            return _fail("disk", f"data_dir {folder} does not exist",
                         f"create it for the user keidash runs as: sudo install -d -o {SERVICE_USER} {folder}")
        folder = os.path.dirname(folder)
        while not os.path.isdir(folder):
            folder = os.path.dirname(folder)
        data_dir = None
    free_mb = shutil.disk_usage(folder).free / 1e6
    if free_mb < min_free_mb:
        return _fail("disk", f"only {free_mb:.0f} MB free on {folder} (keidash wants {min_free_mb:.0f} MB)",
                     "free some space: sudo journalctl --vacuum-size=50M, sudo apt clean, or move old logs away")
    if data_dir is None:
        return _ok("disk", f"{free_mb:,.0f} MB free on {folder} (no data_dir: keidash keeps nothing)")
    probe_file = os.path.join(folder, f".keidash-doctor-{os.getpid()}")
    try:
        with open(probe_file, "w", encoding="utf-8") as f:
            f.write("keidash doctor\n")
        os.remove(probe_file)
    except OSError as exc:
        return _fail("disk", f"cannot write in {folder}: {exc.strerror or exc}",
                     f"give the user keidash runs as the folder: sudo chown {SERVICE_USER} {folder}")
    return _ok("disk", f"{folder} is writable, {free_mb:,.0f} MB free")


# -- the run ---------------------------------------------------------------------

def _unexpected(name: str, exc: Exception) -> Check:
    return _fail(name, f"the check itself failed: {type(exc).__name__}: {exc}",
                 "please report this line as a keidash bug")


def _guarded(name: str, check, *args, **kwargs) -> list[Check]:
    """Run one check; an exception it did not expect is a FAIL line naming it, never a traceback."""
    try:
        result = check(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the doctor must finish its report
        return [_unexpected(name, exc)]
    return list(result) if isinstance(result, list) else [result]


def run_checks(config_path: str | None, seconds: float = 5.0, *, pin_factory=None,
               env: dict | None = None, try_display_init: bool = True) -> list[Check]:
    """Every check, in report order (see the module doc)."""
    try:
        config_check, config = check_config(config_path)
    except Exception as exc:  # noqa: BLE001 - as in _guarded
        config_check, config = _unexpected("config", exc), None
    checks = [config_check]
    if config is None:
        why = "no config loaded"
        checks += [_skip(name, why) for name in ("serial", "adapter", "gps", "gpio")]
    else:
        serial = _guarded("serial", check_serial, config.sources)
        checks += serial
        unusable = {c.subject for c in serial if not c.ok and c.subject}  # missing or not permitted
        checks += _guarded("adapter", check_adapter, config.sources, seconds, unusable)
        checks += _guarded("gps", check_gps, config.sources, seconds, unusable)
        checks += _guarded("gpio", check_gpio, config, pin_factory)
    checks += _guarded("display", check_display, env, None, try_display_init)
    checks += _guarded("groups", check_groups)
    checks += _guarded("disk", check_disk, config.data_dir if config else None)
    return checks


def format_report(checks: list[Check]) -> str:
    return "\n".join(check.line() for check in checks)


def report_json(config_path: str | None, checks: list[Check]) -> dict:
    return {"ok": all(c.ok for c in checks), "config": config_path,
            "failed": sum(not c.ok for c in checks), "checks": [c.as_dict() for c in checks]}


def default_config_path() -> str | None:
    """/etc/keidash/config.toml when it exists, else None."""
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def doctor_main(config_path: str | None, seconds: float = 5.0, json_out: bool = False) -> int:
    """``keidash doctor``: print the report (text, or one JSON object); 0 when nothing failed, else 1."""
    if config_path is None:
        config_path = default_config_path()
    checks = run_checks(config_path, seconds)
    if json_out:
        print(json.dumps(report_json(config_path, checks), indent=2))
    else:
        print(format_report(checks))
    return 0 if all(c.ok for c in checks) else 1
