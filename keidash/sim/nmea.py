"""An emulated GPS receiver: NMEA 0183 sentences on a pseudo-terminal.

:func:`nmea_sentences` turns the truck's ground truth into the RMC, VTG and
GGA sentences a typical u-blox receiver sends each fix epoch; it is pure, so
the tests check the sentences without a port. :class:`EmulatedGPS` writes
them to a pty at the receiver's rate, so :class:`keidash.sources.nmea.NmeaSource`
reads them through the real pyserial and pynmea2 paths, and lets a test pull
the plug, lose the fix, weaken it or inject line noise.

Like a u-blox receiver it also reads UBX frames sent to it: UBX-CFG-RATE
changes its rate and is answered with UBX-ACK-ACK (or -NAK when the rate is
beyond it); a CFG-RATE without payload is a poll, answered with the current
setting. The UBX code here is written from the u-blox protocol description
(sync 0xB5 0x62, class, id, little-endian length, payload, 8-bit Fletcher
checksum) and shares nothing with the reader in keidash.sources.nmea.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import struct
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


# UBX, as a u-blox receiver speaks it
UBX_SYNC = b"\xb5\x62"
UBX_ACK, UBX_ACK_NAK, UBX_ACK_ACK = 0x05, 0x00, 0x01
UBX_CFG, UBX_CFG_RATE = 0x06, 0x08
#: how often the emulator looks for UBX input between epochs (and notices stop())
INPUT_POLL_S = 0.05


def ubx(msg_class: int, msg_id: int, payload: bytes = b"") -> bytes:
    """A UBX frame as a u-blox receiver writes it."""
    body = bytes([msg_class, msg_id, len(payload) & 0xFF, len(payload) >> 8]) + payload
    ck_a = ck_b = 0
    for byte in body:
        ck_a = (ck_a + byte) % 256
        ck_b = (ck_b + ck_a) % 256
    return UBX_SYNC + body + bytes([ck_a, ck_b])


def split_ubx(buffer: bytearray) -> list[tuple[int, int, bytes]]:
    """Take every complete, checked UBX frame out of ``buffer``: [(class, id, payload)].

    Bytes that cannot start a frame are dropped; an incomplete frame stays.
    """
    frames = []
    while True:
        start = buffer.find(UBX_SYNC)
        if start < 0:
            del buffer[:len(buffer) - 1 if buffer.endswith(UBX_SYNC[:1]) else len(buffer)]
            return frames
        del buffer[:start]
        if len(buffer) < 6:
            return frames
        length = buffer[4] + 256 * buffer[5]
        if len(buffer) < 8 + length:
            if length > 1024:  # no input message is that long: a false sync
                del buffer[:2]
                continue
            return frames
        frame = bytes(buffer[:8 + length])
        msg_class, msg_id, payload = frame[2], frame[3], frame[6:6 + length]
        if ubx(msg_class, msg_id, payload) == frame:
            frames.append((msg_class, msg_id, payload))
            del buffer[:8 + length]
        else:
            del buffer[:2]


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


def nmea_sentences(truth: TruckTruth, fix: bool = True, satellites: int = SATELLITES_WITH_FIX,
                   hdop: float = HDOP_WITH_FIX) -> list[bytes]:
    """RMC, VTG and GGA for one fix epoch, in the order a u-blox sends them.

    Without a fix the receiver still knows the time, but says so in every
    sentence (RMC status V, VTG mode N, GGA quality 0) and leaves position,
    speed and course empty, as real receivers do. ``satellites`` and ``hdop``
    go into GGA (few satellites or a high HDOP: a weak fix).
    """
    when = _utc(truth.t)
    hhmmss, ddmmyy = _hhmmss(when), f"{when:%d%m%y}"
    if fix:
        knots = max(0.0, truth.speed_kmh) / KMH_PER_KNOT
        course = f"{truth.heading_deg % 360.0:.2f}"
        rmc = [hhmmss, "A", *_position(truth), f"{knots:.3f}", course, ddmmyy, "", "", "A"]
        vtg = [course, "T", "", "M", f"{knots:.3f}", "N", f"{max(0.0, truth.speed_kmh):.2f}", "K", "A"]
        gga = [hhmmss, *_position(truth), "1", f"{satellites:02d}", f"{hdop:.1f}",
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

    ``ublox=False`` makes a receiver that ignores UBX input (not a u-blox);
    ``min_meas_rate_ms`` is the shortest measurement period it accepts.
    """

    thread_name = "emulated-gps"

    def __init__(self, truth_fn: TruthFn, rate_hz: float = 5.0, *, ublox: bool = True,
                 min_meas_rate_ms: int = 25):
        super().__init__()
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self._truth_fn = truth_fn
        self.rate_hz = float(rate_hz)
        self.ublox = ublox
        self.min_meas_rate_ms = min_meas_rate_ms
        self._meas_rate_ms = round(1000.0 / self.rate_hz)
        self._nav_rate = 1
        self._time_ref = 1
        self._input = bytearray()
        self.ubx_received: list[tuple[int, int, bytes]] = []  # every checked UBX frame read (acted on or not)
        self._satellites = SATELLITES_WITH_FIX
        self._hdop = HDOP_WITH_FIX
        self._master, self._slave = os.openpty()
        # Raw mode: no echo, no CR/LF translation, whatever program opens it.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._lock = threading.Lock()  # one writer at a time: epochs and inject()
        self._fix = True
        self._silent = False
        self._unplugged = False
        self.epochs = 0  # fix epochs written so far
        self.dropped_bytes = 0  # bytes lost because nobody was reading

    # -- fault injection -----------------------------------------------
    def lose_fix(self) -> None:
        """The antenna loses the sky (tunnel, multi-storey car park)."""
        self._fix = False

    def regain_fix(self) -> None:
        self._fix = True
        self._satellites, self._hdop = SATELLITES_WITH_FIX, HDOP_WITH_FIX

    def weaken_fix(self, satellites: int, hdop: float = HDOP_WITH_FIX) -> None:
        """Keep the fix but with few satellites or a poor geometry (urban canyon, under trees)."""
        self._satellites, self._hdop = satellites, hdop

    def fall_silent(self) -> None:
        """The receiver stops talking but the port stays (a loose TX wire, a receiver browning
        out behind a USB adapter): nothing more arrives until :meth:`speak_again`."""
        self._silent = True

    def speak_again(self) -> None:
        self._silent = False

    def inject(self, raw: bytes) -> None:
        """Write raw bytes between two epochs: line noise, a cut-off or corrupt sentence."""
        self._write(raw)

    def unplug(self) -> None:
        """Pull the USB plug: the port disappears and readers get an error.

        Closing the master side removes ``/dev/pts/N`` and an open reader sees a hang-up. The
        slave fd is held until :meth:`stop`, so the kernel cannot give this number to a new
        pseudo-terminal meanwhile: on a busy machine another program's (or another test's)
        emulated device could take it within the source's retry, and keidash would
        "reconnect" to it (as EmulatedELM327.unplug).
        """
        with self._lock:
            if self._unplugged:
                return
            self._unplugged = True  # writers stop; the thread leaves its loop within INPUT_POLL_S
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A select() in progress holds the master open past os.close(): wait it out, so the
            # port is gone when this returns.
            thread.join(2.0)
        with self._lock:
            os.close(self._master)

    def _after_stop(self) -> None:
        self.unplug()
        with self._lock:
            if self._slave is not None:
                os.close(self._slave)
                self._slave = None

    # -- internals ------------------------------------------------------
    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set() and not self._unplugged:
            if not self._silent:
                self._write(b"".join(nmea_sentences(self._truth_fn(), self._fix, self._satellites, self._hdop)))
                self.epochs += 1
            # Absolute schedule, so the epoch rate does not drift with write time.
            due += 1.0 / self.rate_hz
            if due < time.monotonic():  # fell behind (stalled machine): skip, do not burst
                due = time.monotonic()
            while not self._stop.is_set() and not self._unplugged:
                delay = due - time.monotonic()
                if delay <= 0:
                    break
                self._read_input(min(delay, INPUT_POLL_S))

    def _read_input(self, timeout: float) -> None:
        """Wait up to ``timeout`` for bytes from the reader and act on UBX frames among them."""
        try:
            ready, _, _ = select.select([self._master], [], [], timeout)
        except (OSError, ValueError):  # unplugged meanwhile: the fd is gone
            self._stop.wait(timeout)
            return
        if not ready:
            return
        with self._lock:  # unplug() closes the fd under this lock: never read a closed (or reused) one
            if self._unplugged:
                return
            try:
                data = os.read(self._master, 4096)
            except OSError:  # BlockingIOError, or EIO: the reader has gone
                data = None
        if not data:
            self._stop.wait(timeout)  # do not spin on a line that stays "readable"
            return
        self._input += data
        for msg_class, msg_id, payload in split_ubx(self._input):
            self.ubx_received.append((msg_class, msg_id, payload))
            if self.ublox:
                self._handle_ubx(msg_class, msg_id, payload)

    def _handle_ubx(self, msg_class: int, msg_id: int, payload: bytes) -> None:
        if msg_class != UBX_CFG:
            return  # a real receiver ignores (or answers) other classes; we need none
        if msg_id == UBX_CFG_RATE and not payload:  # a poll: say what is set, then acknowledge
            self._write(ubx(UBX_CFG, UBX_CFG_RATE,
                            struct.pack("<HHH", self._meas_rate_ms, self._nav_rate, self._time_ref)))
            self._write(ubx(UBX_ACK, UBX_ACK_ACK, bytes([msg_class, msg_id])))
            return
        accepted = False
        if msg_id == UBX_CFG_RATE and len(payload) == 6:
            meas_rate_ms, nav_rate, time_ref = struct.unpack("<HHH", payload)
            if meas_rate_ms >= self.min_meas_rate_ms and 1 <= nav_rate <= 127 and time_ref <= 4:
                self._meas_rate_ms, self._nav_rate, self._time_ref = meas_rate_ms, nav_rate, time_ref
                self.rate_hz = 1000.0 / (meas_rate_ms * nav_rate)  # from the next epoch on
                accepted = True
        self._write(ubx(UBX_ACK, UBX_ACK_ACK if accepted else UBX_ACK_NAK, bytes([msg_class, msg_id])))

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
