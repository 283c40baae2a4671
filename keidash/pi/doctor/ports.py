"""The doctor's checks of the config and the serial devices: ports present and permitted, the
ELM327 answering, the GPS with a fix."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from ...config import Config, load_config
from ...errors import ConfigError
from .base import (DEFAULT_CONFIG, RASPI_UART_FIX, RELOGIN, SERVICE_USER, UART_DEVICES, Check, can_read_write,
                   fail_check, group_name, ok_check, service_user_entry, skip_check, user_gids)


# -- config -----------------------------------------------------------------------

def check_config(path: str | None) -> tuple[Check, Config | None]:
    """The config loads, and each non-sim source URL builds (nothing is opened)."""
    if path is None:
        return fail_check("config", "no config file given and none at " + DEFAULT_CONFIG,
                          f"pass --config PATH or write {DEFAULT_CONFIG} (see docs/config.md)"), None
    try:
        config = load_config(path)
    except ConfigError as exc:
        return fail_check("config", str(exc), "fix the config file (docs/config.md lists every key)"), None
    from ...rig import open_rig
    for name, url in config.sources.items():
        if isinstance(url, str) and url.startswith("sim://"):
            continue  # building a virtual truck starts it; the run itself will say if the URL is wrong
        try:
            open_rig({name: url}).stop()  # built, never started: no device is touched
        except (ConfigError, ValueError) as exc:  # ProfileError is a ValueError too
            return fail_check("config", f"{path}: {exc}",
                              "fix that source's URL in [sources] (docs/config.md, docs/sources.md)"), config
    return ok_check("config", f"{path} ({len(config.sources)} sources: {', '.join(config.sources)})"), config


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
        return [skip_check("serial", "no obd:// or nmea:// source in the config")]
    euid = os.geteuid() if euid is None else euid
    checks = []
    for port in ports:
        where = f"{port.source} {port.device}"
        if not port.device.startswith("/"):
            checks.append(skip_check("serial", f"{where}: a network adapter, no serial port to check"))
            continue
        if not os.path.exists(port.device):
            checks.append(fail_check("serial", f"{where} does not exist", _missing_fix(port), port.device))
            continue
        group = group_name(os.stat(port.device).st_gid)
        user = service_user_entry(service_user) if euid == 0 else None
        if user is not None:  # root may open anything: ask for the user the service runs as
            allowed = can_read_write(port.device, user.pw_uid, user_gids(service_user))
            who, fix_user = f"the {service_user} user (the service's)", service_user
        else:
            allowed = os.access(port.device, os.R_OK | os.W_OK)
            who, fix_user = "this user", "$USER"
        if not allowed:
            checks.append(fail_check("serial", f"{where}: {who} may not read and write it (group {group})",
                                     f"sudo usermod -aG {group} {fix_user}, {RELOGIN}", port.device))
            continue
        console = _console_on(cmdline_path) if port.device in UART_DEVICES else None
        if console:
            checks.append(fail_check("serial", f"{where}: the kernel's serial console (console={console}) "
                                          f"also uses the UART",
                                "turn the console off with sudo raspi-config nonint do_serial_cons 1, then reboot"))
            continue
        checks.append(ok_check("serial", f"{where}: present, readable and writable"
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
    """:func:`keidash.pi.probe.probe` quietly; also the source's last failure sentence ("" if none)."""
    from ..probe import probe
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
        return [skip_check("adapter", "no obd:// source in the config")]
    checks = []
    for port in ports:
        where = f"{port.source} {port.device}"
        if port.device in unusable:
            checks.append(skip_check("adapter", f"{where} cannot be opened (see serial)"))
            continue
        result, problem = _probe(port.url, seconds)
        rpm, speed = _readings(result, "rpm"), _readings(result, "speed_kmh")
        if rpm or speed:
            rates = ", ".join(f"{label} {result[channel]['hz']:.1f} Hz"
                              for channel, label in (("rpm", "rpm"), ("speed_kmh", "speed"))
                              if _readings(result, channel))
            checks.append(ok_check("adapter", f"{where} answers: {rates}"))
            continue
        if not problem:
            checks.append(fail_check("adapter", f"{where}: no rpm or speed within {seconds:g} s",
                                     "check the adapter has power (the OBD socket's pin 16) and the ignition is on; "
                                     "run keidash probe " + port.url + " --seconds 30 to watch it"))
            continue
        fix = next((fix for words, fix in _ADAPTER_FIXES if words in problem), "see docs/obd.md")
        checks.append(fail_check("adapter", f"{where}: {problem}", fix))
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
    from ...sources.nmea import NO_FIX_MESSAGE, WEAK_FIX_MESSAGE
    ports = [p for p in serial_ports(sources) if p.scheme == "nmea"]
    if not ports:
        return [skip_check("gps", "no nmea:// source in the config")]
    checks = []
    for port in ports:
        where = f"{port.source} {port.device}"
        if port.device in unusable:
            checks.append(skip_check("gps", f"{where} cannot be opened (see serial)"))
            continue
        result, problem = _probe(port.url, seconds)
        if problem.startswith(NO_FIX_MESSAGE):
            checks.append(fail_check("gps", f"{where}: {problem}", NO_FIX_ADVICE))
        elif _readings(result, "speed_kmh"):
            weak = f" ({problem})" if problem.startswith(WEAK_FIX_MESSAGE) else ""
            checks.append(ok_check("gps", f"{where} has a fix{weak}: speed {result['speed_kmh']['hz']:.1f} Hz"))
        elif problem:
            fix = next((fix for words, fix in _GPS_FIXES if words in problem), "see docs/sources.md")
            checks.append(fail_check("gps", f"{where}: {problem}", fix))
        else:
            checks.append(fail_check("gps", f"{where}: no fix within {seconds:g} s",
                                     NO_FIX_ADVICE + f"; keidash probe {port.url} --seconds 90 watches it"))
    return checks




_AUDIO_FIXES = (
    ("arecord is not installed", "sudo apt install alsa-utils"),
    ("audio open error", "plug the microphone or sound card in (arecord -l lists capture devices) and fix the "
                         "audio URL's card number"),
    ("busy", "another program has the sound card open: stop it"),
    ("Permission denied", f"sudo usermod -aG audio $USER, {RELOGIN}"),
)
AUDIO_QUIET_FIXES = {
    "silence": "unmute the capture and raise its gain (alsamixer -c CARD, F4); check the mic is plugged into "
               "the card the URL names",
    "clipping": "turn the capture gain down (alsamixer -c CARD, F4) until it no longer clips",
    "no engine heard": "start the engine and let it idle; move the mic nearer the engine (docs/audio.md)",
}


def check_audio(sources: dict[str, str], seconds: float, profile=None) -> list[Check]:
    """Each audio:// capture device opens, and an engine's line is heard within ``seconds``
    (with the engine idling: the doctor listens for the idle line)."""
    import threading
    from dataclasses import replace as _replace

    from ...sources.audio import AudioSource, parse_audio_url
    from ...sources.base import FAILED
    devices = []
    for name, url in sources.items():
        if isinstance(url, str) and url.startswith("audio://"):
            settings = parse_audio_url(url)
            if settings.device is not None:
                if "cylinders=" not in url and profile is not None and profile.engine.cylinders:
                    settings = _replace(settings, cylinders=profile.engine.cylinders)
                devices.append((name, settings))
    if not devices:
        return [skip_check("audio", "no audio:// capture device in the config")]
    checks = []
    for name, settings in devices:
        where = f"{name} {settings.device}"
        heard, quiet = [], []
        done = threading.Event()

        def on_estimate(estimate, heard=heard, quiet=quiet, done=done):
            (heard if estimate.rpm is not None else quiet).append(estimate)
            if len(heard) >= 10:
                done.set()
        with _sources_quiet():
            source = AudioSource(name, lambda reading: None, settings, on_estimate=on_estimate)
            source.start()
            failed = ""
            try:
                deadline = seconds
                while deadline > 0 and not done.is_set():
                    status = source.status()
                    if status.link == FAILED:
                        failed = status.message.removesuffix("; retrying")
                        break
                    done.wait(0.1)
                    deadline -= 0.1
            finally:
                source.stop()
        if failed:
            fix = next((fix for words, fix in _AUDIO_FIXES if words in failed), "see docs/audio.md")
            checks.append(fail_check("audio", f"{where}: {failed}", fix))
        elif heard:
            rpm = sorted(e.rpm for e in heard)[len(heard) // 2]
            checks.append(ok_check("audio", f"{where} hears the engine at {rpm:.0f} rpm "
                                            f"({len(heard)} of {len(heard) + len(quiet)} windows)"))
        elif quiet:
            why = max(("silence", "clipping", "no engine heard"), key=lambda w: sum(e.why == w for e in quiet))
            checks.append(fail_check("audio", f"{where}: {why} for {seconds:g} s", AUDIO_QUIET_FIXES[why]))
        else:
            checks.append(fail_check("audio", f"{where}: no sound within {seconds:g} s",
                                     "check the card with arecord -l, and run keidash listen " + settings.device))
    return checks
