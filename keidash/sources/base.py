"""The contract every source keeps.

A source owns one device (or one emulated device) and runs in its own thread.
It turns the device's bytes or edges into :class:`~keidash.readings.Reading`
objects and hands them to a sink (usually :meth:`ReadingBus.put`). It never
blocks the frame loop, never raises out of its thread, and reports how it is
doing through :meth:`Source.status`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from ..readings import Reading

logger = logging.getLogger(__name__)

# Link states a source reports about its device.
CONNECTING = "connecting"  # opening the port / initialising the adapter
CONNECTED = "connected"  # talking to the device
FAILED = "failed"  # cannot open or lost the device; retrying (message says why)
STOPPED = "stopped"  # stop() was called

Sink = Callable[[Reading], None]


@dataclass(frozen=True)
class SourceStatus:
    name: str
    link: str  # CONNECTING, CONNECTED, FAILED or STOPPED
    message: str = ""  # one plain sentence for the driver, empty when all is well
    errors: dict[str, int] = field(default_factory=dict)  # error kind -> count
    readings: int = 0  # readings delivered so far
    failure: str = ""  # why the device failed, kept while it is retried ("" once it is connected again)


class Source:
    """Base class: subclasses implement :meth:`run` and call :meth:`emit`.

    ``run`` is called in the source's thread and must return soon after
    :attr:`stopping` is set. Exceptions escaping ``run`` are logged, shown as
    FAILED and the source is restarted after ``retry_s`` (a USB adapter that
    was unplugged comes back by itself).
    """

    #: channels this kind of source can deliver
    channels: tuple[str, ...] = ()
    retry_s = 2.0

    def __init__(self, name: str, sink: Sink):
        self.name = name
        self._sink = sink
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._link = CONNECTING
        self._message = ""
        self._logged_failure: str | None = None  # the failure last written to the log
        self._errors: Counter[str] = Counter()
        self._readings = 0
        #: channel -> (lowest, highest) a reading may be: what the truck can do (set by the rig)
        self.limits: dict[str, tuple[float, float]] = {}

    # -- for subclasses -------------------------------------------------
    def run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def emit(self, t: float, channel: str, value: float, max_age: float, sigma: float | None = None) -> None:
        """Hand a reading to the sink; one beyond ``limits`` is counted (``implausible``) instead."""
        limit = self.limits.get(channel)
        if limit is not None and not (limit[0] <= value <= limit[1]):
            self.count_error("implausible")
            return
        self._readings += 1
        self._sink(Reading(t, channel, float(value), self.name, max_age, sigma))

    def set_link(self, link: str, message: str = "") -> None:
        with self._lock:
            # A device that stays missing is retried every few seconds: log its failure
            # once, and again only when the reason changes or it has come back meanwhile.
            if link == FAILED and message != self._logged_failure:
                logger.warning("%s: %s (%s)", self.name, link, message)
                self._logged_failure = message
            elif link == CONNECTED and self._link != CONNECTED:
                logger.info("%s: %s%s", self.name, link, f" ({message})" if message else "")
                self._logged_failure = None
            self._link, self._message = link, message

    def count_error(self, kind: str) -> None:
        with self._lock:
            self._errors[kind] += 1

    # -- for the pipeline -----------------------------------------------
    #: True for a source that stamps its readings on a clock of its own (a replay played
    #: faster or slower than real time): see :meth:`drive_time`
    own_clock = False

    def drive_time(self, now: float) -> float:
        """The time of the drive at monotonic ``now``, on the clock this source stamps its
        readings with: ``now`` itself for a device read live."""
        return now

    def vouches(self) -> bool:
        """False while the device is connected but says its values are no good now (a GPS
        without a fix, or gone quiet): the dash then takes the source as down at once, not
        when its last values pass their max_age. Safe to call from any thread."""
        return True

    def wait_to_retry(self, port: str, delay: float) -> None:
        """Wait ``delay`` s, or less when the device file ``port``, gone meanwhile, is back
        (plugged in again): then retry 0.1 s after it reappears. A port that is no file
        (a pyserial URL) waits the whole delay."""
        device_file = port.startswith("/")
        seen_missing = False
        deadline = time.monotonic() + delay
        while not self.stopping.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return
            if device_file:
                if not os.path.exists(port):
                    seen_missing = True
                elif seen_missing:
                    self.stopping.wait(0.1)  # let udev finish with it (group, permissions)
                    return

    def _retry_wait(self) -> bool:
        """Between two runs: wait retry_s; True when stopping."""
        return self.stopping.wait(self.retry_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.set_link(STOPPED)

    def status(self) -> SourceStatus:
        with self._lock:
            failure = self._logged_failure or "" if self._link in (FAILED, CONNECTING) else ""
            return SourceStatus(self.name, self._link, self._message, dict(self._errors), self._readings,
                                failure or (self._message if self._link == FAILED else ""))

    def _main(self) -> None:
        while not self.stopping.is_set():
            try:
                self.run()
            except Exception as exc:  # a source must never take the cluster down
                logger.exception("%s: source failed", self.name)
                self.count_error(type(exc).__name__)
                self.set_link(FAILED, f"failed: {exc}; retrying")
            if self._retry_wait():
                break


def monotonic() -> float:
    """The clock readings are stamped with (seconds, arbitrary origin)."""
    return time.monotonic()
