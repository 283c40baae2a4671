"""Readings: the one thing sources produce.

A reading is a single measured value with the monotonic time it was measured,
the channel it belongs to and the source that measured it. ``max_age`` is how
long the source vouches for it: past that the value is *stale* and must never
be shown or used as live.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

# Channel names, with their unit in the name.
RPM = "rpm"  # engine speed, rev/min
SPEED = "speed_kmh"  # road speed, km/h
COOLANT = "coolant_c"  # engine coolant temperature, deg C
BATTERY = "battery_v"  # supply voltage, V
THROTTLE = "throttle_pct"  # throttle position, %
LATITUDE = "lat_deg"  # GPS position, degrees north (negative south)
LONGITUDE = "lon_deg"  # GPS position, degrees east (negative west)
GPS_TIME = "gps_utc_s"  # the GPS fix's UTC date and time, UNIX s (the trip log checks the wall clock by it)

CHANNELS = (RPM, SPEED, COOLANT, BATTERY, THROTTLE, LATITUDE, LONGITUDE, GPS_TIME)

#: km/h in one mph (the international mile, 1609.344 m): every speed or distance read or shown in miles
KMH_PER_MPH = 1.609344


@dataclass(frozen=True, slots=True)
class Reading:
    t: float  # s, time.monotonic() (or the pin factory's ticks) when measured
    channel: str  # one of CHANNELS
    value: float  # in the channel's unit
    source: str  # the source's name, e.g. "obd", "gps", "pulses"
    max_age: float = 1.0  # s, how long the value may be used as live
    sigma: float | None = None  # the value's own noise (1 sigma, its unit) when the source knows it


class ReadingBus:
    """A thread-safe, bounded queue from source threads to the frame loop.

    Sources call :meth:`put` from their own threads; the frame loop calls
    :meth:`drain` once per frame. When the frame loop stalls, the oldest
    readings are dropped (and counted) rather than blocking a source thread.
    """

    def __init__(self, maxsize: int = 10_000):
        self._queue: queue.Queue[Reading] = queue.Queue(maxsize)
        self._arrived = threading.Event()  # set by put, cleared by drain: wakes an idle frame loop
        self.dropped = 0

    def put(self, reading: Reading) -> None:
        while True:
            try:
                self._queue.put_nowait(reading)
                self._arrived.set()
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def drain(self) -> list[Reading]:
        """Every reading waiting, sorted by measurement time."""
        self._arrived.clear()  # before the gets: a put after them sets it again
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        out.sort(key=lambda r: r.t)
        return out

    def wait(self, timeout: float) -> bool:
        """Block until a reading is put (True at once if one came since the last drain) or
        ``timeout`` s pass (False)."""
        return self._arrived.wait(timeout)
