"""The doctor's checks of the board and the system: GPIO pins, the display driver, the
service user's groups, the data folder's disk."""

from __future__ import annotations

import glob
import grp
import os
import pwd
import shutil
import subprocess
import sys
import warnings
from urllib.parse import parse_qsl, urlsplit

from ...config import Config
from .base import (DEFAULT_DATA_DIR, DISPLAY_INIT_TIMEOUT_S, GROUPS, MIN_FREE_MB, RELOGIN, SERVICE_USER,
                   UART_DEVICES, UART_PINS, Check, fail_check, ok_check, pi_model, service_user_entry, skip_check,
                   user_gids)


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
        return skip_check("gpio", "no GPIO pins in the config")
    users: dict[int, str] = {}
    for pin, user in pins:
        if pin in users:
            return fail_check("gpio", f"GPIO {pin} is used twice: by {users[pin]} and by {user}",
                              f"move {user} to a free pin (docs/config.md)")
        users[pin] = user
    on_pi = pi_model() is not None if on_pi is None else on_pi
    own_factory = pin_factory is None
    if own_factory:
        try:
            pin_factory = _default_pin_factory()
        except Exception as exc:  # BadPinFactory (an ImportError) when no GPIO library works here
            if not on_pi:
                return skip_check("gpio", f"no GPIO on this machine (not a Raspberry Pi; gpiozero: {exc})")
            return fail_check("gpio", f"gpiozero cannot drive the pins: {exc}",
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
        return fail_check("gpio", f"GPIO {pin} ({user}) cannot be claimed{more}: {exc}", fix)
    return ok_check("gpio", "free: " + ", ".join(f"{pin} ({user})" for pin, user in users.items()))


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
        return skip_check("display", f"SDL_VIDEODRIVER={driver}: nothing is shown, no screen to check")
    if driver in ("x11", "wayland"):
        variable = "DISPLAY" if driver == "x11" else "WAYLAND_DISPLAY"
        if not env.get(variable):
            return fail_check("display", f"SDL_VIDEODRIVER={driver} but {variable} is not set",
                              "run keidash from the desktop session, or unset SDL_VIDEODRIVER to use kmsdrm")
    elif driver == "kmsdrm":
        cards = sorted(glob.glob(dri_glob))
        if not cards:
            if not on_pi:
                return skip_check("display", "no /dev/dri/card* on this machine (not a Raspberry Pi)")
            return fail_check("display", "no /dev/dri/card*: the KMS display driver is not loaded",
                              "add dtoverlay=vc4-kms-v3d to /boot/firmware/config.txt and reboot")
        usable = [card for card in cards if os.access(card, os.R_OK | os.W_OK)]
        if not usable:
            return fail_check("display", f"this user may not open {', '.join(cards)}",
                              f"sudo usermod -aG video,render $USER, {RELOGIN}")
    if not try_init:
        return ok_check("display", f"{driver}: device present (pygame not tried)")
    problem = _try_display_init(driver, env)
    if problem:
        return fail_check("display", f"{driver}: {problem}",
                          "stop whatever holds the screen (the keidash service or a desktop: sudo systemctl stop "
                          "keidash lightdm), and check dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt")
    return ok_check("display", f"{driver}: pygame opens the display")


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
        return skip_check("groups", "none of " + ", ".join(GROUPS) + " exists on this machine")
    if euid == 0:
        if service_user_entry(service_user) is None:
            return skip_check("groups", f"running as root, which may use every device; the {service_user} user the "
                                   f"service runs as does not exist here")
        user, member_of, session = service_user, user_gids(service_user), None
    else:
        user = pwd.getpwuid(euid).pw_name
        session = set(os.getgroups()) | {os.getegid()}
        member_of = user_gids(user) | session
    missing = [name for name, gid in existing.items() if gid not in member_of]
    absent = [name for name in GROUPS if name not in existing]
    note = f" ({', '.join(absent)}: no such group here)" if absent else ""
    if missing:
        who = "$USER" if euid != 0 else user
        return fail_check("groups", f"{user} is not in {', '.join(missing)}, needed for "
                               + "; ".join(GROUPS[name] for name in missing) + note,
                     f"sudo usermod -aG {','.join(missing)} {who}, {RELOGIN}")
    stale = [name for name, gid in existing.items() if session is not None and gid not in session]
    if stale:
        return fail_check("groups", f"{user} was added to {', '.join(stale)} after this login began",
                          "log out and in again (or reboot) so the new groups take effect")
    return ok_check("groups", f"{user} is in {', '.join(existing)}{note}")


# -- disk ------------------------------------------------------------------------

def check_disk(data_dir: str | None, min_free_mb: float = MIN_FREE_MB) -> Check:
    """``data_dir`` is writable (a test file is written and removed) with ``min_free_mb`` free.

    Without a data_dir keidash keeps nothing, so only the free space where
    /var/lib/keidash would be is checked (logs and updates need it too).
    """
    folder = data_dir or DEFAULT_DATA_DIR
    if not os.path.isdir(folder):
        if data_dir:
            return fail_check("disk", f"data_dir {folder} does not exist",
                              f"create it for the user keidash runs as: sudo install -d -o {SERVICE_USER} {folder}")
        folder = os.path.dirname(folder)
        while not os.path.isdir(folder):
            folder = os.path.dirname(folder)
        data_dir = None
    free_mb = shutil.disk_usage(folder).free / 1e6
    if free_mb < min_free_mb:
        return fail_check("disk", f"only {free_mb:.0f} MB free on {folder} (keidash wants {min_free_mb:.0f} MB)",
                          "free some space: sudo journalctl --vacuum-size=50M, sudo apt clean, or move old logs away")
    if data_dir is None:
        return ok_check("disk", f"{free_mb:,.0f} MB free on {folder} (no data_dir: keidash keeps nothing)")
    probe_file = os.path.join(folder, f".keidash-doctor-{os.getpid()}")
    try:
        with open(probe_file, "w", encoding="utf-8") as f:
            f.write("keidash doctor\n")
        os.remove(probe_file)
    except OSError as exc:
        return fail_check("disk", f"cannot write in {folder}: {exc.strerror or exc}",
                          f"give the user keidash runs as the folder: sudo chown {SERVICE_USER} {folder}")
    return ok_check("disk", f"{folder} is writable, {free_mb:,.0f} MB free")


