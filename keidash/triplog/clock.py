"""Is the wall clock right? Confirmed by NTP, or by the GPS's own date and time.

A Pi has no clock battery: until something sets it, its wall clock reads 1970, the time
fake-hwclock saved at the last shutdown, or whatever an RTC module kept. The trip log must
never decide by such a clock that a drive is old (retention by age), so it asks this module.
The wall clock counts as confirmed, for the rest of the run, once:

- **NTP**: systemd-timesyncd has synchronized it since boot. It touches
  ``/run/systemd/timesync/synchronized`` on each successful synchronization (its man page),
  and ``/run`` is empty at every boot, so the file says "synchronized since this boot".
- **GPS**: a GPS fix's UTC date and time (readings on :data:`keidash.readings.GPS_TIME`)
  agrees with the wall clock within :data:`AGREE_S`: the clock was set from the GPS (gpsd and
  chrony), by another NTP client, or an RTC kept it right. A GPS that disagrees confirms
  nothing: keidash does not set the clock (it is not root), and a replayed or virtual GPS
  (the virtual truck's is fixed on 2024-06-01) must not date anything.

The kernel's own flag (``adjtimex``, STA_UNSYNC; what ``timedatectl`` shows as
NTPSynchronized) is not read: systemd's ``ProtectClock=`` blocks ``adjtimex`` even to read,
and a seccomp filter kills the process that calls it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: touched by systemd-timesyncd at each successful synchronization (systemd-timesyncd(8))
SYNCHRONIZED = "/run/systemd/timesync/synchronized"
#: s: a GPS time this close to the wall clock confirms it (an NMEA sentence arrives up to
#: about a second after its fix; retention counts in days)
AGREE_S = 10.0


class WallClock:
    """The wall clock and whether it has been confirmed (``confirmed_by``: "", "NTP" or "GPS").

    ``clock`` is UNIX time, ``mono`` the monotonic clock readings are stamped with;
    ``synchronized`` the file systemd-timesyncd touches (tests name their own).
    Thread-safe: the frame loop hands GPS times in, the trip log's writer asks.
    """

    def __init__(self, clock: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic,
                 synchronized: str = SYNCHRONIZED):
        self._clock = clock
        self._mono = mono
        self.synchronized = synchronized
        self.confirmed_by = ""
        self._lock = threading.Lock()
        self._told_off = False  # a GPS that disagrees is logged once

    def now(self) -> float:
        return self._clock()

    def gps_time(self, measured_mono: float, gps_unix: float) -> None:
        """A GPS fix at monotonic ``measured_mono`` said it was ``gps_unix`` (UTC, UNIX s)."""
        if self.confirmed_by:
            return
        off = self._clock() - (self._mono() - measured_mono) - gps_unix
        if abs(off) <= AGREE_S:
            with self._lock:
                if not self.confirmed_by:
                    self.confirmed_by = "GPS"
                    log.info("the wall clock agrees with the GPS's time (%+.1f s): confirmed", off)
        elif not self._told_off:
            self._told_off = True
            log.info("the wall clock is %+.0f s off the GPS's time: not confirmed by it "
                     "(no trip is deleted by age until a clock is confirmed)", off)

    def confirmed(self) -> bool:
        """True once NTP or the GPS has confirmed the clock (then for good: it is not asked again)."""
        if self.confirmed_by:
            return True
        if os.path.exists(self.synchronized):
            with self._lock:
                if not self.confirmed_by:
                    self.confirmed_by = "NTP"
                    log.info("the wall clock is NTP-synchronized (%s): confirmed", self.synchronized)
        return bool(self.confirmed_by)
