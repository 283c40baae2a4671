"""ReplaySource: a recorded drive played back as a live source.

Readings are stamped on the monotonic clock of the run, at ``start + log time /
speed``, and emitted when that moment comes, so the dash sees the drive as it
happened, ``speed`` times faster. ``max_age`` is the log's own refresh interval
scaled the same way (see :meth:`DriveLog.max_age`). At ``speed`` 0 the
readings are emitted as fast as possible, each stamped when it is emitted; to
run the estimator over a log in log time use
:func:`~keidash.replay.log.readings_from_log` instead.

At the end of the log the link says "replay finished" (STOPPED, so the dash
shows the last values as stale, not live) and the thread parks until
:meth:`stop`; it does not start again.
"""

from __future__ import annotations

import logging
import threading

from ..errors import ConfigError
from ..readings import RPM, SPEED
from ..sources.base import CONNECTED, STOPPED, Sink, Source, monotonic
from .formats import AUTO, load_log
from .log import DriveLog, sample_readings

logger = logging.getLogger(__name__)

FINISHED_MESSAGE = "replay finished"


class ReplaySource(Source):
    """Plays a :class:`DriveLog` at ``speed`` x real time (0 = as fast as possible)."""

    channels = (RPM, SPEED)

    def __init__(self, name: str, sink: Sink, log: DriveLog, speed: float = 1.0, hide_rpm: bool = False):
        if not speed >= 0:  # also catches NaN
            raise ConfigError(f"replay speed must be 0 (as fast as possible) or more, not {speed!r}")
        super().__init__(name, sink)
        self.log = log
        self.speed = float(speed)
        self.hide_rpm = hide_rpm  # play as a truck with no rpm source: speed only
        self.finished = threading.Event()  # set when the whole log has been played
        self.position_s = 0.0  # log time of the last sample played
        with self._lock:  # the log's bad rows show in the status like any source's errors
            self._errors.update(log.errors)

    def run(self) -> None:
        if self.finished.is_set():  # restarted after an unexpected failure: nothing more to play
            self.stopping.wait()
            return
        self.set_link(CONNECTED)
        ages = {ch: self.log.max_age(ch, self.speed) for ch in (RPM, SPEED)}
        start = monotonic()
        t0 = self.log.samples[0].t if self.log.samples else 0.0
        for sample in self.log.samples:
            if self.speed > 0:
                due = start + (sample.t - t0) / self.speed
                if self.stopping.wait(max(0.0, due - monotonic())):
                    return
                stamp = due
            else:
                if self.stopping.is_set():
                    return
                stamp = monotonic()
            for reading in sample_readings(sample, self.name, ages):
                if self.hide_rpm and reading.channel == RPM:
                    continue
                self.emit(stamp, reading.channel, reading.value, reading.max_age)
            self.position_s = sample.t - t0
        self.set_link(STOPPED, FINISHED_MESSAGE)
        logger.info("%s: %s (%s)", self.name, FINISHED_MESSAGE, self.log.name)
        self.finished.set()
        self.stopping.wait()  # park: returning would make the base class play the log again


def open_replay(name: str, sink: Sink, path: str, *, format: str = AUTO, speed: float = 1.0,
                columns: str | None = None, speed_unit: str | None = None, hide_rpm: bool = False) -> ReplaySource:
    """Read the log at ``path`` (ConfigError with one sentence if it cannot be) and build its source."""
    return ReplaySource(name, sink, load_log(path, format=format, columns=columns, speed_unit=speed_unit),
                        speed=speed, hide_rpm=hide_rpm)
