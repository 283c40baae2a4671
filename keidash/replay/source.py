"""ReplaySource: a recorded drive played back as a live source.

Readings are emitted at ``start + log time / speed`` on the monotonic clock (at
``speed`` 0 as fast as possible), and stamped with the time of the *drive*:
``start + log time``, with ``max_age`` the log's own refresh interval (see
:meth:`DriveLog.max_age`). So the estimator sees the drive as it happened at any
replay speed: a 1 s steady stretch is 1 s to ratio learning, the gear tracker and
the needle, whether played at 1x, 10x or as fast as possible.
:meth:`ReplaySource.drive_time` maps the run's monotonic clock to the drive's
(``start + (now - start) x speed``; at ``speed`` 0, the last sample played), and
the frame loop asks the estimator about that time. To run the estimator over a
log without a source use :func:`~keidash.replay.log.readings_from_log`.

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
        self._clock: tuple[float, float] | None = None  # (monotonic start, monotonic end) of the playing
        with self._lock:  # the log's bad rows show in the status like any source's errors
            self._errors.update(log.errors)

    def run(self) -> None:
        if self.finished.is_set():  # restarted after an unexpected failure: nothing more to play
            self.stopping.wait()
            return
        self.set_link(CONNECTED)
        ages = {ch: self.log.max_age(ch, 1.0) for ch in (RPM, SPEED)}  # in drive time
        start = monotonic()
        t0 = self.log.samples[0].t if self.log.samples else 0.0
        self._clock = (start, None)
        for sample in self.log.samples:
            if self.speed > 0:
                due = start + (sample.t - t0) / self.speed
                if self.stopping.wait(max(0.0, due - monotonic())):
                    return
            elif self.stopping.is_set():
                return
            for reading in sample_readings(sample, self.name, ages):
                if self.hide_rpm and reading.channel == RPM:
                    continue
                self.emit(start + sample.t - t0, reading.channel, reading.value, reading.max_age)
            self.position_s = sample.t - t0
        self._clock = (start, monotonic())
        self.set_link(STOPPED, FINISHED_MESSAGE)
        logger.info("%s: %s (%s)", self.name, FINISHED_MESSAGE, self.log.name)
        self.finished.set()
        self.stopping.wait()  # park: returning would make the base class play the log again


    @property
    def own_clock(self) -> bool:
        return self.speed != 1.0

    def drive_time(self, now: float) -> float:
        """The drive's time at monotonic ``now``: where the log is (see the module doc)."""
        if self._clock is None:
            return now
        start, ended = self._clock
        if self.speed > 0:
            return start + (now - start) * self.speed
        # as fast as possible: the drive is where the last sample played; after the end, its
        # clock runs on in real time, so the last values go stale as a live source's would
        return start + self.position_s + (max(0.0, now - ended) if ended is not None else 0.0)


def open_replay(name: str, sink: Sink, path: str, *, format: str = AUTO, speed: float = 1.0,
                columns: str | None = None, speed_unit: str | None = None, hide_rpm: bool = False) -> ReplaySource:
    """Read the log at ``path`` (ConfigError with one sentence if it cannot be) and build its source."""
    return ReplaySource(name, sink, load_log(path, format=format, columns=columns, speed_unit=speed_unit),
                        speed=speed, hide_rpm=hide_rpm)
