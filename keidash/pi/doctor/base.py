"""What every doctor check shares: :class:`Check`, its three outcomes, and what it needs to know
about the machine (the Pi model, users, groups, who may open a device)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import asdict, dataclass


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
    "audio": "the sound card (an audio:// microphone or ripple lead)",
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


def ok_check(name: str, message: str) -> Check:
    return Check(name, True, message)


def fail_check(name: str, message: str, fix: str, subject: str = "") -> Check:
    return Check(name, False, message, fix, subject=subject)


def skip_check(name: str, reason: str) -> Check:
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


def user_gids(name: str) -> set[int]:
    """Group ids ``name`` belongs to by the group database (primary group included)."""
    user = pwd.getpwnam(name)
    return {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}


def group_name(gid: int) -> str:
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


def service_user_entry(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


