"""Talking to systemd: readiness, status and a watchdog that only barks when keidash is well.

systemd starts keidash with ``Type=notify`` and ``WatchdogSec=``. It puts the path of a
datagram socket in ``NOTIFY_SOCKET`` (``@name`` for Linux's abstract namespace) and the
watchdog timeout in ``WATCHDOG_USEC``; keidash sends ``READY=1`` once the first frame is on
the screen, ``WATCHDOG=1`` at half the timeout while it is healthy, ``STATUS=...`` for
``systemctl status keidash`` and ``STOPPING=1`` on the way out (sd_notify(3)). If the pings
stop, systemd kills keidash and ``Restart=always`` starts it again.

"Healthy" is a pure rule (:func:`healthy`): frames are being drawn, at least ``min_fps`` of
them over the window, and no source thread has died. A source whose device is unplugged is
FAILED and retrying: its thread is alive and the dash says so on screen, so that is healthy;
a restart would not bring the adapter back. A dead thread or a stuck frame loop is not.

No dependency (no python-systemd): the protocol is one datagram per message. Everything is
a no-op when ``NOTIFY_SOCKET`` is unset, so ``keidash run`` from a shell behaves the same.
Only the watchdog's clock is read by the caller: :meth:`Watchdog.frame` takes ``now``
(seconds, monotonic).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable, Mapping

logger = logging.getLogger(__name__)


def _address(path: str) -> str | bytes:
    """The socket address for a NOTIFY_SOCKET value ("@name" is Linux's abstract namespace)."""
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


class Notifier:
    """A sd_notify client: one AF_UNIX datagram per message to ``NOTIFY_SOCKET``.

    ``socket_path`` defaults to the environment's ``NOTIFY_SOCKET``; without one every
    method does nothing and returns False. A send that fails (systemd gone while shutting
    down) is logged once and never raised: the dash matters more than its supervisor.
    """

    def __init__(self, socket_path: str | None = None, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        self.socket_path = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET") or None
        self._sock: socket.socket | None = None
        self._failed_logged = False

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def send(self, message: str) -> bool:
        """Send ``message`` (newline-separated ``KEY=value`` lines); True when it went out."""
        if self.socket_path is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), _address(self.socket_path))
            return True
        except OSError as exc:
            if not self._failed_logged:
                logger.warning("cannot notify systemd at %s: %s", self.socket_path, exc)
                self._failed_logged = True
            return False

    def ready(self, status: str | None = None) -> bool:
        """Start-up is done (Type=notify units are "active" from here)."""
        return self.send("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))

    def status(self, text: str) -> bool:
        """One line shown by ``systemctl status keidash``."""
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """The keep-alive ping (``WATCHDOG=1``)."""
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        """keidash is shutting down on purpose (no watchdog pings from here on)."""
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def watchdog_interval_s(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when no watchdog is asked for.

    As sd_watchdog_enabled(3): ``WATCHDOG_PID``, when set, must be this process's pid
    (a child started by keidash must not ping for it).
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    watchdog_pid = env.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid.strip() != str(os.getpid() if pid is None else pid):
        return None
    try:
        timeout_us = int(usec)
    except ValueError:
        return None
    if timeout_us <= 0:
        return None
    return timeout_us / 2 / 1e6


def healthy(frames_in_window: int, window_s: float, sources_alive: bool, *, min_fps: float = 1.0) -> bool:
    """Whether keidash deserves a watchdog ping.

    ``frames_in_window``: frames drawn in the last ``window_s`` seconds; at least
    ``min_fps`` per second of window are needed (a frame loop that crawls at one frame
    every few seconds is as good as stuck for a driver). ``sources_alive``: no source
    thread has died (FAILED-and-retrying counts as alive).
    """
    return sources_alive and frames_in_window > 0 and frames_in_window >= min_fps * window_s


def sources_alive(sources: Iterable[object]) -> bool:
    """True when every started source's thread is still running.

    A source that was never started (no thread yet) counts as alive. Uses the source's
    ``alive()`` if it has one, else its thread (``keidash.sources.base.Source._thread``).
    """
    for source in sources:
        alive = getattr(source, "alive", None)
        if callable(alive):
            if not alive():
                return False
            continue
        thread = getattr(source, "_thread", None)
        stopping = getattr(source, "stopping", None)
        stopped_on_purpose = stopping is not None and stopping.is_set()
        if thread is not None and not thread.is_alive() and not stopped_on_purpose:
            return False
    return True


class Watchdog:
    """Readiness and watchdog pings driven by the frame loop.

    Call :meth:`frame` once per drawn frame with the frame's monotonic time. The first
    call sends ``READY=1``; after that a ping goes out every ``interval_s`` if
    :func:`healthy` says so over the last ``interval_s`` seconds. Because the frame loop
    itself calls it, a stuck loop sends nothing and systemd restarts keidash.

    ``check_sources``: returns True while no source thread has died (see
    :func:`sources_alive`). ``describe``: a one-line status for ``systemctl status``,
    sent with each ping when it changed. ``interval_s`` None (no ``WATCHDOG_USEC``):
    readiness and status only.
    """

    def __init__(self, notifier: Notifier, interval_s: float | None,
                 check_sources: Callable[[], bool] = lambda: True,
                 describe: Callable[[], str] | None = None, *, min_fps: float = 1.0):
        self.notifier = notifier
        self.interval_s = interval_s
        self.check_sources = check_sources
        self.describe = describe
        self.min_fps = min_fps
        self.ready_sent = False
        self.pings = 0
        self._frames: deque[float] = deque()
        self._last_check: float | None = None
        self._last_status: str | None = None
        self._unhealthy_logged = False

    @classmethod
    def from_environment(cls, check_sources: Callable[[], bool] = lambda: True,
                         describe: Callable[[], str] | None = None, **kwargs) -> "Watchdog":
        """A Watchdog for the NOTIFY_SOCKET and WATCHDOG_USEC systemd gave this process."""
        return cls(Notifier(), watchdog_interval_s(), check_sources, describe, **kwargs)

    def frame(self, now: float) -> bool:
        """Note a frame drawn at ``now`` (s, monotonic); True when a ping was sent."""
        if self.interval_s is not None:
            self._frames.append(now)
        if not self.ready_sent:
            self.ready_sent = True
            self._last_check = now
            self.notifier.ready(self._status())
            return False
        if self.interval_s is None or now - self._last_check < self.interval_s:
            return False
        window = self.interval_s
        while self._frames and self._frames[0] <= now - window:
            self._frames.popleft()
        span = min(window, now - self._last_check)
        self._last_check = now
        ok = healthy(len(self._frames), span, self.check_sources(), min_fps=self.min_fps)
        if not ok:
            if not self._unhealthy_logged:
                logger.error("keidash is not healthy (%d frames in %.1f s, sources alive: %s): "
                             "no watchdog ping, systemd will restart it", len(self._frames), span,
                             self.check_sources())
                self._unhealthy_logged = True
            status = self._status()
            if status:  # say why on `systemctl status`, but no ping
                self.notifier.status(status)
            return False
        self._unhealthy_logged = False
        status = self._status()
        self.notifier.send("WATCHDOG=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))
        self.pings += 1
        return True

    def stopping(self) -> None:
        self.notifier.stopping()

    def _status(self) -> str | None:
        if self.describe is None:
            return None
        text = self.describe()
        if text == self._last_status:
            return None
        self._last_status = text
        return text
