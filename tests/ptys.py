"""Pseudo-terminal checks shared by the emulated devices' tests."""

from __future__ import annotations

import os
import pty

import pytest


def assert_unplugged_port_is_held(port: str) -> None:
    """After an emulated device's unplug: its ``/dev/pts/N`` is gone (no device behind it), and the
    kernel gives that number to none of 40 new pseudo-terminals until the device is stopped.

    Once a pty is freed, the kernel gives its number to the next one made (another test's emulated
    device on a busy machine), and a source retrying the old path would "reconnect" to that.
    """
    opened = [pty.openpty() for _ in range(40)]
    try:
        assert port not in {os.ttyname(slave) for _, slave in opened}
    finally:
        for fds in opened:
            for fd in fds:
                os.close(fd)
    with pytest.raises(OSError):
        os.close(os.open(port, os.O_RDWR | os.O_NOCTTY))
