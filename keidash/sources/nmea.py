"""Road speed from a GPS receiver speaking NMEA 0183 on a serial port.

The byte stream is framed into lines by :meth:`NmeaSource.feed` and each line
is handled by :meth:`NmeaSource.handle_line`; neither touches the port, so
both are tested and fuzzed without one. The error policy at this boundary:
a corrupt, cut-off or unknown line is counted (``checksum``, ``truncated``,
``parse``, ...) and skipped, never fatal; a port that cannot be opened or
goes away is a FAILED link with one plain sentence, and the base class
retries.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import statistics
import time
from collections import deque

import pynmea2
import serial

from ..readings import SPEED
from .base import CONNECTED, CONNECTING, FAILED, Sink, Source

logger = logging.getLogger(__name__)

KMH_PER_KNOT = 1.852

#: NMEA allows 82 characters per sentence; anything much longer without a
#: line end is noise (wrong baud rate, binary UBX protocol) and is dropped.
MAX_LINE_BYTES = 256
#: a speed above this is a corrupt sentence whose checksum happened to match
MAX_PLAUSIBLE_KMH = 400.0
#: receiver period assumed until measured: 1 Hz is the factory default of most modules
DEFAULT_PERIOD_S = 1.0
#: readings stay live for this many receiver periods ...
MAX_AGE_PERIODS = 3.0
#: ... but never less than this, so one late sentence does not blank the speedo
MIN_MAX_AGE_S = 1.5
#: no valid sentence for this long: tell the driver what to check
SILENCE_S = 3.0
#: VTG is only used when no RMC has been seen for this many receiver periods
VTG_FALLBACK_PERIODS = 3.0

NO_FIX_MESSAGE = "GPS has no fix"


def open_error_message(port: str, exc: BaseException) -> str:
    """One plain sentence telling the driver why the GPS port did not open."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return f"no GPS at {port}: {os.strerror(code)} (is the receiver plugged in and the port right?)"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied on {port}: add the user to the dialout group and log in again"
    if code == errno.EBUSY:
        return f"{port} is busy: another program (gpsd?) has the GPS open"
    reason = os.strerror(code) if isinstance(code, int) else str(exc)
    return f"cannot open the GPS at {port}: {reason}"


def _field(data: list[str], index: int) -> str:
    return data[index] if index < len(data) else ""


def _number(text: str) -> float | None:
    """A non-negative finite number from an NMEA field, None if empty or not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class NmeaSource(Source):
    """GPS speed over ground (km/h) from RMC, or VTG when the receiver sends no RMC."""

    channels = (SPEED,)

    def __init__(self, name: str, sink: Sink, port: str, baudrate: int = 9600):
        super().__init__(name, sink)
        self.port = port
        self.baudrate = baudrate
        self._reset_stream()

    def _reset_stream(self) -> None:
        """Forget everything about the previous connection's byte stream."""
        self._buffer = bytearray()
        self._last_rmc_t: float | None = None  # arrival of the last RMC, fix or not
        self._last_epoch: tuple[str, str] | None = None  # (date, time) of the last RMC used
        self._last_fix_t: float | None = None  # arrival of the last speed emitted
        self._intervals: deque[float] = deque(maxlen=9)  # s, between fix epochs
        self._last_valid_t: float | None = None  # arrival of the last well-formed sentence
        self._opened_t = time.monotonic()
        self._waiting = True  # the link message says we hear nothing; any valid sentence clears it

    # -- the port -------------------------------------------------------
    def run(self) -> None:
        self.set_link(CONNECTING)
        try:
            # A short timeout keeps stop() prompt; pyserial flushes stale input on open.
            port = serial.serial_for_url(self.port, self.baudrate, timeout=0.2)
        except (OSError, ValueError) as exc:  # SerialException is an OSError
            self.set_link(FAILED, open_error_message(self.port, exc))
            return
        self._reset_stream()
        self.set_link(CONNECTED, f"waiting for NMEA sentences from {self.port}")
        with port:
            while not self.stopping.is_set():
                try:
                    data = port.read(max(1, port.in_waiting))
                except (OSError, ValueError) as exc:  # hang-up, unplugged USB adapter
                    logger.debug("%s: read failed: %s", self.name, exc)
                    self.set_link(FAILED, f"lost the GPS at {self.port} (unplugged?); retrying")
                    return
                now = time.monotonic()
                if data:
                    self.feed(data, now)
                self._check_silence(now)

    def _check_silence(self, now: float) -> None:
        since = self._last_valid_t if self._last_valid_t is not None else self._opened_t
        if now - since > SILENCE_S:
            self._waiting = True
            # A fixed sentence (no running count), so the log gets it once.
            self.set_link(CONNECTED, f"no NMEA sentences from {self.port} for over {SILENCE_S:.0f} s: "
                                     f"check the wiring and the baud rate ({self.baudrate})")

    # -- framing and parsing (no port needed) ---------------------------
    def feed(self, data: bytes, t: float) -> None:
        """Split received bytes into lines; ``t`` is when they arrived (monotonic)."""
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            self.handle_line(line, t)
        if len(self._buffer) > MAX_LINE_BYTES:
            self.count_error("overlong")
            self._buffer.clear()

    def handle_line(self, line: bytes, t: float) -> None:
        """Handle one line (without or with its CR LF) that arrived at monotonic time ``t``."""
        line = line.strip()
        if not line:
            return
        # A sentence cut short (dropped bytes, a plug wiggled) runs into the
        # next one: keep the last, intact-looking sentence and count the rest.
        start = line.rfind(b"$")
        if start < 0:
            self.count_error("parse")
            return
        if start > 0:
            self.count_error("truncated" if line.startswith(b"$") else "parse")
            line = line[start:]
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            self.count_error("parse")
            return
        if "*" not in text:
            self.count_error("truncated")
            return
        try:
            message = pynmea2.parse(text, check=True)
        except pynmea2.ChecksumError:
            self.count_error("checksum")
            return
        except pynmea2.SentenceTypeError:
            # A sentence type pynmea2 does not know (proprietary, newer talkers):
            # well-formed, just not for us, so not an error.
            self._heard(t)
            return
        except Exception:  # pynmea2 raises more than ParseError on odd input
            self.count_error("parse")
            return
        self._heard(t)
        if isinstance(message, pynmea2.RMC):
            self._handle_rmc(message.data, t)
        elif isinstance(message, pynmea2.VTG):
            self._handle_vtg(message.data, t)
        # GGA, GSA, GSV ...: valid, but carry no speed.

    def _heard(self, t: float) -> None:
        """A well-formed sentence arrived: the receiver is talking."""
        self._last_valid_t = t
        if self._waiting:
            self._waiting = False
            self.set_link(CONNECTED)

    def _handle_rmc(self, data: list[str], t: float) -> None:
        # Read the raw fields: pynmea2's typed properties raise on odd content.
        self._last_rmc_t = t
        if _field(data, 1) != "A" or _field(data, 11) == "N":
            self._no_fix()
            return
        epoch = (_field(data, 8), _field(data, 0))  # date, time of fix
        if epoch == self._last_epoch:
            return  # the same fix sent twice: one reading per epoch
        knots = _number(_field(data, 6))
        if knots is None:
            self.count_error("incomplete")
            return
        self._last_epoch = epoch
        self._speed(knots * KMH_PER_KNOT, t)

    def _handle_vtg(self, data: list[str], t: float) -> None:
        if self._last_rmc_t is not None and t - self._last_rmc_t < VTG_FALLBACK_PERIODS * self._period():
            return  # this epoch's RMC already gave (or withheld) the speed
        # Mode (NMEA 2.3+) N means no fix; older receivers leave speeds empty instead.
        if _field(data, 8) == "N":
            self._no_fix()
            return
        kmh = _number(_field(data, 6))
        if kmh is None:
            knots = _number(_field(data, 4))
            if knots is None:
                self._no_fix()
                return
            kmh = knots * KMH_PER_KNOT
        self._speed(kmh, t)

    def _no_fix(self) -> None:
        # Emit nothing: the last speed goes stale on its own, which is the truth.
        self.set_link(CONNECTED, NO_FIX_MESSAGE)

    def _period(self) -> float:
        """The receiver's fix period (s), measured from arrivals."""
        return statistics.median(self._intervals) if self._intervals else DEFAULT_PERIOD_S

    def _speed(self, kmh: float, t: float) -> None:
        if not kmh <= MAX_PLAUSIBLE_KMH:
            self.count_error("range")
            return
        if self._last_fix_t is not None and 0 < t - self._last_fix_t < 10.0:
            self._intervals.append(t - self._last_fix_t)
        self._last_fix_t = t
        self.set_link(CONNECTED)
        self.emit(t, SPEED, kmh, max(MIN_MAX_AGE_S, MAX_AGE_PERIODS * self._period()))
