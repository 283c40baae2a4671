"""Road speed from a GPS receiver speaking NMEA 0183 on a serial port.

The byte stream is framed by :meth:`NmeaSource.feed` into NMEA lines, handled
by :meth:`NmeaSource.handle_line`, and u-blox UBX binary frames, handled by
:meth:`NmeaSource.handle_ubx`; none of them touches the port, so all are
tested and fuzzed without one. The error policy at this boundary: a corrupt,
cut-off or unknown line or frame is counted (``checksum``, ``truncated``,
``parse``, ``ubx_checksum``, ...) and skipped, never fatal; a port that cannot
be opened or goes away is a FAILED link with one plain sentence, and the base
class retries.

Speed comes from RMC (VTG when the receiver sends no RMC). GGA says how good
the fix is: quality 0 withholds the speed, and a weak fix (few satellites,
high HDOP, dead reckoning) is named in the status message and in
:attr:`NmeaSource.degraded`, so the VSS calibration can ignore it.

With ``ublox_rate_hz`` the source asks a u-blox receiver for that many fixes
a second (UBX-CFG-RATE) each time the port opens, and watches the stream for
its UBX-ACK-ACK or -NAK. UBX framing, from the u-blox protocol descriptions:
sync 0xB5 0x62, class, id, payload length (uint16, little-endian), payload,
then CK_A CK_B, the 8-bit Fletcher checksum over class, id, length and payload.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import statistics
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

import pynmea2
import serial

from ..errors import ConfigError
from ..readings import GPS_TIME, LATITUDE, LONGITUDE, SPEED
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
#: no valid sentence for this many receiver periods ...
SILENCE_PERIODS = 2.0
#: ... and at least this long (s): the GPS has gone quiet, tell the driver what to check
MIN_SILENCE_S = 1.5
#: VTG is only used when no RMC has been seen for this many receiver periods
VTG_FALLBACK_PERIODS = 3.0

NO_FIX_MESSAGE = "GPS has no fix"
#: the status message while the fix is weak starts with this, e.g. "GPS fix weak: 3 satellites"
WEAK_FIX_MESSAGE = "GPS fix weak"

# GGA fix quality. 0 is no fix; 6 is dead reckoning (estimated, no satellites used).
GGA_NO_FIX = 0
GGA_DEAD_RECKONING = 6
#: fewer satellites than this is a weak fix (a 3D fix needs four)
MIN_SATELLITES = 4
#: a horizontal dilution of precision above this is a weak fix
MAX_HDOP = 5.0
#: a GGA older than this many receiver periods says nothing about the current fix
GGA_FRESH_PERIODS = 3.0

# UBX (u-blox binary protocol)
UBX_SYNC = b"\xb5\x62"
UBX_CLASS_ACK, UBX_ACK_NAK, UBX_ACK_ACK = 0x05, 0x00, 0x01
UBX_CLASS_CFG, UBX_CFG_RATE = 0x06, 0x08
#: CFG-RATE timeRef 1: measurements aligned to GPS time
UBX_TIME_REF_GPS = 1
#: a UBX frame claiming a longer payload is noise that happened to contain the sync bytes
MAX_UBX_PAYLOAD = 1024
#: wait this long for the receiver's ACK before asking again ...
UBX_ACK_TIMEOUT_S = 1.5
#: ... and give up after this many tries (not a u-blox, or its UBX input is off)
UBX_TRIES = 3
#: bytes a receiver sends per fix (RMC, VTG, GGA, GSA), to warn of a baud rate too slow for the rate
BYTES_PER_FIX = 250

# What became of the UBX-CFG-RATE request (NmeaSource.ublox_rate_state)
RATE_PENDING = "pending"
RATE_ACKNOWLEDGED = "acknowledged"
RATE_REFUSED = "refused"  # UBX-ACK-NAK
RATE_UNANSWERED = "unanswered"


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


def _position(fields: list[str]) -> tuple[float, float] | None:
    """(lat, lon) in degrees from RMC's ddmm.mmmm,N/S,dddmm.mmmm,E/W fields; None if malformed."""
    if len(fields) < 4 or fields[1] not in ("N", "S") or fields[3] not in ("E", "W"):
        return None
    lat, lon = _number(fields[0]), _number(fields[2])
    if lat is None or lon is None:
        return None
    lat = int(lat // 100) + (lat % 100) / 60
    lon = int(lon // 100) + (lon % 100) / 60
    if lat > 90 or lon > 180:
        return None
    return (-lat if fields[1] == "S" else lat), (-lon if fields[3] == "W" else lon)


def _utc(date: str, hhmmss: str) -> float | None:
    """UNIX s from RMC's ddmmyy date and hhmmss(.ss) UTC time fields; None if malformed."""
    if len(date) != 6 or not date.isdigit() or len(hhmmss) < 6 or not hhmmss[:6].isdigit():
        return None
    seconds = _number(hhmmss[4:])
    try:
        year = int(date[4:])  # two digits: GPS time began in 1980
        day = datetime(year + (1900 if year >= 80 else 2000), int(date[2:4]), int(date[:2]), int(hhmmss[:2]),
                       int(hhmmss[2:4]), tzinfo=timezone.utc)
    except ValueError:
        return None
    return None if seconds is None or seconds >= 61 else day.timestamp() + seconds


def _number(text: str) -> float | None:
    """A non-negative finite number from an NMEA field, None if empty or not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _count(text: str) -> int | None:
    """A non-negative integer from an NMEA field, None if empty or not one."""
    return int(text) if text.isdigit() else None


def ubx_checksum(body: bytes) -> bytes:
    """CK_A, CK_B: the 8-bit Fletcher checksum over class, id, length and payload."""
    ck_a = ck_b = 0
    for byte in body:
        ck_a = (ck_a + byte) & 0xFF
        ck_b = (ck_b + ck_a) & 0xFF
    return bytes((ck_a, ck_b))


def ubx_frame(msg_class: int, msg_id: int, payload: bytes = b"") -> bytes:
    """One UBX frame: sync, class, id, little-endian length, payload, checksum."""
    body = bytes((msg_class, msg_id)) + struct.pack("<H", len(payload)) + payload
    return UBX_SYNC + body + ubx_checksum(body)


def ubx_cfg_rate(rate_hz: float) -> bytes:
    """UBX-CFG-RATE asking for ``rate_hz`` fixes a second: measRate in ms, navRate 1, GPS time."""
    meas_rate_ms = round(1000.0 / rate_hz)
    return ubx_frame(UBX_CLASS_CFG, UBX_CFG_RATE, struct.pack("<HHH", meas_rate_ms, 1, UBX_TIME_REF_GPS))


@dataclass(frozen=True)
class GpsFix:
    """What the last GGA said about the fix."""

    t: float  # s, monotonic arrival of the GGA
    epoch: str  # its UTC time field (hhmmss.ss)
    quality: int | None  # 0 no fix, 1 GPS, 2 DGPS, ... 6 dead reckoning; None if unreadable
    satellites: int | None  # satellites used
    hdop: float | None  # horizontal dilution of precision

    @property
    def weakness(self) -> str:
        """Why the fix is weak, as the driver reads it ("3 satellites", "HDOP 7.5"), "" if it is not."""
        reasons = []
        if self.quality == GGA_DEAD_RECKONING:
            reasons.append("dead reckoning")
        if self.satellites is not None and self.satellites < MIN_SATELLITES:
            reasons.append(f"{self.satellites} satellite{'' if self.satellites == 1 else 's'}")
        if self.hdop is not None and self.hdop > MAX_HDOP:
            reasons.append(f"HDOP {self.hdop:.1f}")
        return ", ".join(reasons)


class NmeaSource(Source):
    """GPS speed over ground (km/h) from RMC, or VTG when the receiver sends no RMC.

    ``ublox_rate_hz``: ask a u-blox receiver for this many fixes a second on
    every connect (None leaves the receiver's rate alone). The readings'
    ``max_age`` follows the rate measured from the sentences either way.
    """

    channels = (SPEED, LATITUDE, LONGITUDE, GPS_TIME)

    def __init__(self, name: str, sink: Sink, port: str, baudrate: int = 9600,
                 ublox_rate_hz: float | None = None):
        super().__init__(name, sink)
        if ublox_rate_hz is not None and not 1000.0 / 65535 < ublox_rate_hz <= 50.0:
            raise ConfigError(f"GPS rate must be above 0 and at most 50 fixes a second, not {ublox_rate_hz}")
        self.port = port
        self.baudrate = baudrate
        self.ublox_rate_hz = ublox_rate_hz
        self._state_lock = threading.Lock()  # fix and rate state, read from other threads
        self._fix: GpsFix | None = None
        self._rate_state: str | None = None
        self._reset_stream()

    # -- what the rest of keidash may ask ------------------------------------
    @property
    def fix(self) -> GpsFix | None:
        """What the last GGA said (None before any GGA on this connection)."""
        with self._state_lock:
            return self._fix

    def vouches(self) -> bool:
        """False while the last word on the fix is "none" or the receiver has gone quiet: the
        dash takes the GPS as down at once (its position readings, kept for the night theme,
        must not make it look live while its speed is stale)."""
        return not (self._no_fix_seen or self._waiting)

    @property
    def degraded(self) -> bool:
        """True while the fix is missing or weak: do not calibrate against this GPS now."""
        fix = self._current_fix()
        return self._no_fix_seen or (fix is not None and (fix.quality == GGA_NO_FIX or bool(fix.weakness)))

    def _current_fix(self) -> GpsFix | None:
        """The last GGA, unless the receiver has sent other sentences for a while without one."""
        with self._state_lock:
            fix = self._fix
        latest = self._last_valid_t
        if fix is None or latest is None or latest - fix.t > GGA_FRESH_PERIODS * self._period():
            return None
        return fix

    @property
    def ublox_rate_state(self) -> str | None:
        """What became of the rate request: None (none asked), RATE_PENDING, RATE_ACKNOWLEDGED,
        RATE_REFUSED or RATE_UNANSWERED."""
        with self._state_lock:
            return self._rate_state

    def _reset_stream(self) -> None:
        """Forget everything about the previous connection's byte stream."""
        self._buffer = bytearray()
        self._last_rmc_t: float | None = None  # arrival of the last RMC, fix or not
        self._last_epoch: tuple[str, str] | None = None  # (date, time) of the last RMC used
        self._last_fix_t: float | None = None  # arrival of the last speed emitted
        self._intervals: deque[float] = deque(maxlen=9)  # s, between fix epochs
        self._period_s = DEFAULT_PERIOD_S  # their median: the receiver's period
        self._last_valid_t: float | None = None  # arrival of the last well-formed sentence
        self._opened_t = time.monotonic()
        self._waiting = True  # the link message says we hear nothing; any valid sentence clears it
        self._no_fix_seen = False  # the last word on the fix was "none" (RMC V, VTG N, GGA 0)
        with self._state_lock:
            self._fix = None
        self._rate_sent_t: float | None = None  # when CFG-RATE was last written
        self._rate_tries = 0

    # -- the port -------------------------------------------------------
    def _retry_wait(self) -> bool:
        # A receiver plugged back in is opened as soon as its device file is back, as OBD is.
        self.wait_to_retry(self.port, self.retry_s)
        return self.stopping.is_set()

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
            if self.ublox_rate_hz is not None:
                self._warn_if_baud_too_slow()
                with self._state_lock:
                    self._rate_state = RATE_PENDING
            while not self.stopping.is_set():
                try:
                    if self._rate_request_due(time.monotonic()):
                        port.write(ubx_cfg_rate(self.ublox_rate_hz))
                    data = port.read(max(1, port.in_waiting))
                except (OSError, ValueError) as exc:  # hang-up, unplugged USB adapter
                    logger.debug("%s: read or write failed: %s", self.name, exc)
                    self.set_link(FAILED, f"lost the GPS at {self.port} (unplugged?); retrying")
                    return
                now = time.monotonic()
                if data:
                    self.feed(data, now)
                self._check_silence(now)

    def _warn_if_baud_too_slow(self) -> None:
        if self.ublox_rate_hz * BYTES_PER_FIX * 10 > self.baudrate:
            logger.warning("%s: at %d baud the GPS cannot send its sentences %g times a second; "
                           "raise its baud rate or ask for fewer fixes", self.name, self.baudrate,
                           self.ublox_rate_hz)

    def _rate_request_due(self, now: float) -> bool:
        """True when UBX-CFG-RATE should be (re)sent now; gives up after UBX_TRIES."""
        with self._state_lock:
            if self._rate_state != RATE_PENDING:
                return False
            if self._rate_sent_t is not None and now - self._rate_sent_t < UBX_ACK_TIMEOUT_S:
                return False
            if self._rate_tries >= UBX_TRIES:
                self._rate_state = RATE_UNANSWERED
                unanswered = True
            else:
                self._rate_tries += 1
                self._rate_sent_t = now
                unanswered = False
        if unanswered:
            self.count_error("ubx_no_ack")
            logger.warning("%s: the GPS did not answer the rate setting (UBX-CFG-RATE) %d times: "
                           "not a u-blox receiver, or its UBX input is off; it keeps its own rate",
                           self.name, UBX_TRIES)
        return not unanswered

    def silence_s(self) -> float:
        """Seconds without a valid sentence after which the GPS counts as gone quiet: two
        receiver periods (2 s at 1 Hz), at least MIN_SILENCE_S."""
        return max(MIN_SILENCE_S, SILENCE_PERIODS * self._period())

    def _check_silence(self, now: float) -> None:
        since = self._last_valid_t if self._last_valid_t is not None else self._opened_t
        if now - since > self.silence_s():
            self._waiting = True
            self._last_fix_t = None  # the gap is no receiver period
            # A fixed sentence (no running count), so the log gets it once.
            self.set_link(CONNECTED, f"no NMEA sentences from {self.port}: "
                                     f"check the wiring and the baud rate ({self.baudrate})")

    # -- framing and parsing (no port needed) ---------------------------
    def feed(self, data: bytes, t: float) -> None:
        """Split received bytes into NMEA lines and UBX frames; ``t`` is when they arrived (monotonic).

        A UBX frame's payload may hold any byte, a line end or a '$' too, so a
        frame is taken whole (by its length field) before lines are looked for
        after it. Whatever is kept between calls is bounded: a line longer than
        MAX_LINE_BYTES or a frame longer than MAX_UBX_PAYLOAD is dropped.
        """
        buffer = self._buffer
        buffer += data
        while buffer:
            end = buffer.find(b"\n")
            sync = buffer.find(UBX_SYNC, 0, end if end >= 0 else len(buffer))
            if sync >= 0:
                if sync > 0:
                    # Text before a frame: a line the frame cut short (or noise).
                    self.handle_line(bytes(buffer[:sync]), t)
                    del buffer[:sync]
                if not self._take_ubx(t):
                    break  # the rest of the frame has not arrived yet
                continue
            if end < 0:
                break
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            self.handle_line(line, t)
        if buffer.startswith(UBX_SYNC):
            return  # a frame on its way; _take_ubx bounds its length
        if len(buffer) > MAX_LINE_BYTES:
            self.count_error("overlong")
            # Keep a trailing first sync byte: its frame may be about to arrive.
            del buffer[:len(buffer) - 1 if buffer.endswith(UBX_SYNC[:1]) else len(buffer)]

    def _take_ubx(self, t: float) -> bool:
        """Handle the UBX frame at the start of the buffer; False while it is incomplete."""
        buffer = self._buffer
        if len(buffer) < 6:
            return False
        length = buffer[4] | buffer[5] << 8
        if length > MAX_UBX_PAYLOAD:
            self.count_error("ubx_overlong")
            del buffer[:2]  # not a frame: look again after its sync bytes
            return True
        size = 6 + length + 2
        if len(buffer) < size:
            return False
        body = bytes(buffer[2:6 + length])
        if ubx_checksum(body) != bytes(buffer[6 + length:size]):
            self.count_error("ubx_checksum")
            del buffer[:2]  # whatever followed the false sync may still be good lines
            return True
        del buffer[:size]
        self.handle_ubx(body[0], body[1], body[4:], t)
        return True

    def handle_ubx(self, msg_class: int, msg_id: int, payload: bytes, t: float) -> None:
        """Handle one checked UBX frame that arrived at monotonic time ``t``."""
        self._heard(t)
        if msg_class != UBX_CLASS_ACK or msg_id not in (UBX_ACK_ACK, UBX_ACK_NAK):
            return  # NAV-PVT and friends: well-formed, not used
        if len(payload) != 2 or tuple(payload) != (UBX_CLASS_CFG, UBX_CFG_RATE):
            return  # the answer to something else
        with self._state_lock:
            if self._rate_state != RATE_PENDING:
                return  # a late answer to a repeated request
            self._rate_state = RATE_ACKNOWLEDGED if msg_id == UBX_ACK_ACK else RATE_REFUSED
        if msg_id == UBX_ACK_ACK:
            logger.info("%s: the GPS now sends %s fixes a second", self.name, self.ublox_rate_hz)
        else:
            self.count_error("ubx_nak")
            logger.warning("%s: the GPS refused %s fixes a second (UBX-ACK-NAK); it keeps its own rate",
                           self.name, self.ublox_rate_hz)

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
        elif isinstance(message, pynmea2.GGA):
            self._handle_gga(message.data, t)
        # GSA, GSV ...: valid, but not used.

    def _heard(self, t: float) -> None:
        """A well-formed sentence or frame arrived: the receiver is talking."""
        self._last_valid_t = t
        if self._waiting:
            self._waiting = False
            self._show_fix()

    def _show_fix(self) -> None:
        """Put what is known about the fix in the link message."""
        fix = self._current_fix()
        if self._no_fix_seen:
            message = NO_FIX_MESSAGE
        elif fix is not None and fix.weakness:
            message = f"{WEAK_FIX_MESSAGE}: {fix.weakness}"
        else:
            message = ""
        self.set_link(CONNECTED, message)

    def _handle_gga(self, data: list[str], t: float) -> None:
        fix = GpsFix(t, _field(data, 0), _count(_field(data, 5)), _count(_field(data, 6)),
                     _number(_field(data, 7)))
        with self._state_lock:
            self._fix = fix
        if fix.quality == GGA_NO_FIX:
            self._no_fix()
        elif not self._waiting:
            self._show_fix()

    def _gga_says_no_fix(self, t: float) -> bool:
        """The latest GGA, if recent, says there is no fix.

        u-blox sends GGA after RMC and VTG, so its word on an epoch reaches the
        next one: speed resumes one epoch after the fix does. Receivers that
        send GGA first (MTK, SiRF) gate the very epoch.
        """
        fix = self._current_fix()
        return fix is not None and fix.quality == GGA_NO_FIX

    def _handle_rmc(self, data: list[str], t: float) -> None:
        # Read the raw fields: pynmea2's typed properties raise on odd content.
        self._last_rmc_t = t
        if _field(data, 1) != "A" or _field(data, 11) == "N" or self._gga_says_no_fix(t):
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
        position = _position(data[2:6])
        if position is not None:  # for the night theme (sunset where the truck is), which keeps
            # the last position itself: vouched for as long as the speed, so that the GPS is
            # not live on the dash while its speed is stale
            max_age = self._max_age()
            self.emit(t, LATITUDE, position[0], max_age)
            self.emit(t, LONGITUDE, position[1], max_age)
        utc = _utc(epoch[0], epoch[1])
        if utc is not None:  # the trip log checks the wall clock by it before it deletes old trips
            self.emit(t, GPS_TIME, utc, self._max_age())

    def _handle_vtg(self, data: list[str], t: float) -> None:
        if self._last_rmc_t is not None and t - self._last_rmc_t < VTG_FALLBACK_PERIODS * self._period():
            return  # this epoch's RMC already gave (or withheld) the speed
        # Mode (NMEA 2.3+) N means no fix; older receivers leave speeds empty instead.
        if _field(data, 8) == "N" or self._gga_says_no_fix(t):
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
        self._no_fix_seen = True
        self._last_fix_t = None  # the gap is no receiver period
        self.set_link(CONNECTED, NO_FIX_MESSAGE)

    def _period(self) -> float:
        """The receiver's fix period (s), measured from arrivals (safe from any thread)."""
        return self._period_s

    def _speed(self, kmh: float, t: float) -> None:
        if not kmh <= MAX_PLAUSIBLE_KMH:
            self.count_error("range")
            return
        if self._last_fix_t is not None and 0 < t - self._last_fix_t < 10.0:
            self._intervals.append(t - self._last_fix_t)
            self._period_s = statistics.median(self._intervals)
        self._last_fix_t = t
        self._no_fix_seen = False
        self._show_fix()
        self.emit(t, SPEED, kmh, self._max_age())

    def _max_age(self) -> float:
        return max(MIN_MAX_AGE_S, MAX_AGE_PERIODS * self._period())
