"""The display's backlight: bright by day, dim at night, through Linux's sysfs backlight class.

The official Raspberry Pi 7" touch display registers a backlight device under
``/sys/class/backlight/``; its name depends on the driver: ``10-0045`` (the I2C address of
the display's microcontroller, with the KMS overlay ``vc4-kms-dsi-7inch`` of Bullseye and
Bookworm; 11-0045 or similar on another I2C bus) or ``rpi_backlight`` (the older firmware
driver). keidash takes the first device there unless given a path. Each device has
``brightness`` (read-write, 0..``max_brightness``) and ``max_brightness`` (read-only).

``brightness`` is root's, mode 0644, so a dash running as a normal user cannot write it.
The fix is a udev rule that gives the video group write access, plus the user in that group::

    # /etc/udev/rules.d/90-backlight.rules
    ACTION=="add", SUBSYSTEM=="backlight", RUN+="/bin/chgrp video /sys/class/backlight/%k/brightness"
    ACTION=="add", SUBSYSTEM=="backlight", RUN+="/bin/chmod g+w /sys/class/backlight/%k/brightness"

    sudo usermod -aG video $USER    # then log in again (or reboot)

No device or no permission: one log message saying so, ``available`` False, and the dash
runs at whatever brightness the display has. Nothing here ever raises.
"""

from __future__ import annotations

import glob
import logging
import os

from ..dashstate import DashState

logger = logging.getLogger(__name__)

SYSFS_BACKLIGHT = "/sys/class/backlight"
FULL_SCALE = 255  # ``day`` and ``night`` are given on a 0..255 scale

UDEV_FIX = ("add a udev rule giving the video group write access "
            "(/etc/udev/rules.d/90-backlight.rules: ACTION==\"add\", SUBSYSTEM==\"backlight\", "
            "RUN+=\"/bin/chgrp video /sys/class/backlight/%k/brightness\", "
            "RUN+=\"/bin/chmod g+w /sys/class/backlight/%k/brightness\") "
            "and add the user to the video group (sudo usermod -aG video $USER), then reboot")


def find_backlight(root: str = SYSFS_BACKLIGHT) -> str | None:
    """The first backlight device directory under ``root`` (sorted by name), or None."""
    for path in sorted(glob.glob(os.path.join(root, "*"))):
        if os.path.isfile(os.path.join(path, "brightness")):
            return path
    return None


def scaled(level: int, max_brightness: int) -> int:
    """``level`` on the 0..255 scale as a device value 0..``max_brightness``."""
    level = max(0, min(FULL_SCALE, int(level)))
    return round(level * max_brightness / FULL_SCALE)


class Backlight:
    """An Output that sets the backlight to ``day`` or ``night`` (0..255) as ``state.night`` says.

    ``path`` is a device directory such as ``/sys/class/backlight/10-0045``; None finds the
    first one. The brightness is written at the first render and whenever ``state.night``
    changes, never on other frames (sysfs writes reach the display over I2C).
    """

    def __init__(self, path: str | None = None, day: int = 255, night: int = 40):
        self.day = int(day)
        self.night = int(night)
        self.path = path if path is not None else find_backlight(SYSFS_BACKLIGHT)
        self.max_brightness = 0
        self.available = False
        self._night_shown: bool | None = None  # the theme last written
        if self.path is None:
            logger.info("no display backlight found under %s: brightness stays as it is "
                        "(set [backlight] path if the display has one elsewhere)", SYSFS_BACKLIGHT)
            return
        brightness = os.path.join(self.path, "brightness")
        try:
            with open(os.path.join(self.path, "max_brightness"), encoding="ascii") as f:
                self.max_brightness = int(f.read().strip())
        except (OSError, ValueError) as exc:
            logger.warning("cannot use the backlight %s: %s; brightness stays as it is", self.path,
                           getattr(exc, "strerror", None) or exc)
            return
        if not os.access(brightness, os.W_OK):
            self._denied(brightness)
            return
        self.available = True

    def _denied(self, brightness: str) -> None:
        logger.warning("permission denied writing %s, so the backlight will not dim at night: %s",
                       brightness, UDEV_FIX)
        self.available = False

    def render(self, state: DashState) -> None:
        """Write the day or night brightness when ``state.night`` differs from what was written."""
        if not self.available or state.night == self._night_shown:
            return
        level = scaled(self.night if state.night else self.day, self.max_brightness)
        brightness = os.path.join(self.path, "brightness")
        try:
            with open(brightness, "w", encoding="ascii") as f:
                f.write(f"{level}\n")
        except PermissionError:
            self._denied(brightness)
            return
        except OSError as exc:
            logger.warning("cannot write the backlight %s: %s; brightness stays as it is",
                           brightness, exc.strerror or exc)
            self.available = False
            return
        self._night_shown = state.night

    def close(self) -> None:
        """Nothing to release (the brightness stays where it is)."""
