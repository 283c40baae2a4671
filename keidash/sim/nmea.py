"""An emulated GPS receiver: NMEA 0183 sentences on a pseudo-terminal.

:func:`nmea_sentences` turns the truck's ground truth into the RMC, VTG and
GGA sentences a typical u-blox receiver sends each fix epoch; it is pure, so
the tests check the sentences without a port. :class:`EmulatedGPS` writes
them to a pty at the receiver's rate, so :class:`keidash.sources.nmea.NmeaSource`
reads them through the real pyserial and pynmea2 paths, and lets a test pull
the plug, lose the fix or inject line noise.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import tty
from datetime import datetime, timedelta, timezone
from functools import reduce

from .device import EmulatedDevice
from .truth import TruckTruth, TruthFn

logger = logging.getLogger(__name__)

KMH_PER_KNOT = 1.852

#: truth.t = 0 is this UTC instant; a fixed date keeps the sentences reproducible.
BASE_UTC = datetime(2024, 6, 1, 3, 0, 0, tzinfo=timezone.utc)

ALTITUDE_M = 12.0  # antenna height above mean sea level (Tokyo station, roughly)
GEOID_SEPARATION_M = 36.7  # geoid above WGS84 ellipsoid around Tokyo
SATELLITES_WITH_FIX = 9
HDOP_WITH_FIX = 0.9


def checksum(body: str) -> str:
    """The NMEA checksum: XOR of every character between '$' and '*', as 2 hex digits."""
    return f"{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def sentence(body: str) -> bytes:
    """A complete sentence, '$' + body + '*hh' + CR LF, as the wire carries it."""
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def _utc(t: float) -> datetime:
    # Whole centiseconds first, so 59.999 s can never print as "60.00".
    return BASE_UTC + timedelta(milliseconds=10 * round(t * 100))


def _hhmmss(when: datetime) -> str:
    return f"{when:%H%M%S}.{when.microsecond // 10_000:02d}"


def _angle(value: float, degree_digits: int) -> str:
    """ddmm.mmmmm (latitude) or dddmm.mmmmm (longitude), without the sign."""
    # Round in integer units of 1e-5 minute so the minutes never print as 60.
    units = round(abs(value) * 60 * 100_000)
    degrees, minutes_units = divmod(units, 60 * 100_000)
    whole, frac = divmod(minutes_units, 100_000)
    return f"{degrees:0{degree_digits}d}{whole:02d}.{frac:05d}"


def _position(truth: TruckTruth) -> list[str]:
    return [_angle(truth.latitude, 2), "N" if truth.latitude >= 0 else "S",
            _angle(truth.longitude, 3), "E" if truth.longitude >= 0 else "W"]


def nmea_sentences(truth: TruckTruth, fix: bool = True) -> list[bytes]:
    """RMC, VTG and GGA for one fix epoch, in the order a u-blox sends them.

    Without a fix the receiver still knows the time, but says so in every
    sentence (RMC status V, VTG mode N, GGA quality 0) and leaves position,
    speed and course empty, as real receivers do.
    """
    when = _utc(truth.t)
    hhmmss, ddmmyy = _hhmmss(when), f"{when:%d%m%y}"
    if fix:
        knots = max(0.0, truth.speed_kmh) / KMH_PER_KNOT
        course = f"{truth.heading_deg % 360.0:.2f}"
        rmc = [hhmmss, "A", *_position(truth), f"{knots:.3f}", course, ddmmyy, "", "", "A"]
        vtg = [course, "T", "", "M", f"{knots:.3f}", "N", f"{max(0.0, truth.speed_kmh):.2f}", "K", "A"]
        gga = [hhmmss, *_position(truth), "1", f"{SATELLITES_WITH_FIX:02d}", f"{HDOP_WITH_FIX:.1f}",
               f"{ALTITUDE_M:.1f}", "M", f"{GEOID_SEPARATION_M:.1f}", "M", "", ""]
    else:
        rmc = [hhmmss, "V", "", "", "", "", "", "", ddmmyy, "", "", "N"]
        vtg = ["", "T", "", "M", "", "N", "", "K", "N"]
        gga = [hhmmss, "", "", "", "", "0", "00", "99.99", "", "", "", "", "", ""]
    return [sentence(",".join(["GPRMC", *rmc])),
            sentence(",".join(["GPVTG", *vtg])),
            sentence(",".join(["GPGGA", *gga]))]


class EmulatedGPS(EmulatedDevice):
    """A GPS receiver on a pseudo-terminal, fed from the truck's ground truth.

    ``port`` is the slave side ("/dev/pts/N"); open it with pyserial like a
    USB receiver. Output is paced on an absolute schedule at ``rate_hz``.
    When nobody reads and the pty buffer is full, output is dropped (and
    counted in ``dropped_bytes``) rather than blocking: a real receiver keeps
    transmitting whether or not anyone listens.

    The sentences' UTC time comes from ``truth.t``, so the truth's clock must
    advance: a frozen truth (``lambda: parked()``) repeats one fix epoch, and
    a reader rightly takes a repeated epoch as no new fix. ``stop()`` also
    closes the pty.
    """

    thread_name = "emulated-gps"

    def __init__(self, truth_fn: TruthFn, rate_hz: float = 5.0):
        super().__init__()
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self._truth_fn = truth_fn
        self.rate_hz = float(rate_hz)
        self._master, self._slave = os.openpty()
        # Raw mode: no echo, no CR/LF translation, whatever program opens it.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._lock = threading.Lock()  # one writer at a time: epochs and inject()
        self._fix = True
        self._unplugged = False
        self.epochs = 0  # fix epochs written so far
        self.dropped_bytes = 0  # bytes lost because nobody was reading

    # -- fault injection -----------------------------------------------
    def lose_fix(self) -> None:
        """The antenna loses the sky (tunnel, multi-storey car park)."""
        self._fix = False

    def regain_fix(self) -> None:
        self._fix = True

    def inject(self, raw: bytes) -> None:
        """Write raw bytes between two epochs: line noise, a cut-off or corrupt sentence."""
        self._write(raw)

    def unplug(self) -> None:
        """Pull the USB plug: the port disappears and readers get an error."""
        with self._lock:
            if not self._unplugged:
                self._unplugged = True
                # Closing both ends removes /dev/pts/N; an open reader sees a hang-up.
                os.close(self._master)
                os.close(self._slave)

    def _after_stop(self) -> None:
        self.unplug()

    # -- internals ------------------------------------------------------
    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        due = time.monotonic()
        while not self._stop.is_set() and not self._unplugged:
            self._write(b"".join(nmea_sentences(self._truth_fn(), self._fix)))
            self.epochs += 1
            # Absolute schedule, so the epoch rate does not drift with write time.
            due += period
            delay = due - time.monotonic()
            if delay < 0:  # fell behind (stalled machine): skip, do not burst
                due = time.monotonic()
                delay = 0.0
            if self._stop.wait(delay):
                break

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._unplugged:
                return
            try:
                written = os.write(self._master, data)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                if exc.errno != errno.EIO:  # EIO: the slave side is gone
                    logger.warning("emulated GPS: write failed: %s", exc)
                written = 0
            # A partial write leaves a cut-off sentence on the wire, as a
            # receiver whose UART buffer overflowed would.
            self.dropped_bytes += len(data) - written
