"""An ELM327 adapter behind a serial port, Bluetooth rfcomm port or TCP socket.

The I/O half of keidash's ELM327 transport; the replies are parsed by
:mod:`keidash.sources.elm327`, which never touches a port. The port is opened
with pyserial's ``serial_for_url``, so ``/dev/ttyUSB0``, ``/dev/rfcomm0`` and
``socket://192.168.0.10:35000`` all work.

Why not python-obd's own I/O (measured, see docs/obd.md): it sleeps 1 s after
ATZ and 1 s twice more when searching for the protocol, reads with a fixed
10 s timeout and retries ten times (a frozen adapter blocks one query for about
two minutes), drops the adapter's error messages, and cannot send multi-PID
requests. Here:

* nothing sleeps: every command waits for the ``>`` prompt, and returns as
  soon as it comes;
* every wait is bounded by silence: reads are 50 ms slices, so a frozen
  adapter is declared silent after :attr:`Elm327.silence_s` (derived from
  ATST and the bus, well under 1 s) and ``stopping`` ends any wait within a
  slice;
* mode 01 requests carry the expected-response-count suffix, so the adapter
  answers as soon as the ECU has, and on CAN rpm and speed share one request
  when the adapter handles that.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import re
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import serial

from ..errors import KeidashError, SourceError
from .elm327 import (
    BITMAP_PIDS,
    CAN,
    CAN_11BIT,
    K_LINE,
    OK,
    PromptFramer,
    Reply,
    is_ok,
    parse_pid_reply,
    parse_protocol_number,
    parse_voltage,
    pid_request,
    reply_frames,
    reply_lines,
    supported_pids,
)

logger = logging.getLogger(__name__)

#: each read waits at most this long, so stop() and the silence limit are noticed in time
READ_SLICE_S = 0.05
#: ATZ: a real chip takes up to about a second to restart and print its banner
RESET_SILENCE_S = 2.5
#: an AT command is answered by the chip itself, in milliseconds
AT_SILENCE_S = 1.0
#: the first request on a bus: a K-line 5-baud wake-up takes about 2.5 s
BUS_INIT_SILENCE_S = 5.0
#: ATSP0 + 0100: the chip tries each protocol in turn, silent for seconds at a time
SEARCH_SILENCE_S = 12.0
#: beyond the ECU timeout, what the link itself may add (USB latency, Bluetooth jitter, slow baud)
LINK_SLACK_S = {"k_line": 0.6, "other": 0.4}
#: a frozen adapter is declared silent within this, whatever ATST says
MAX_SILENCE_S = 0.9
#: baud rates tried when none is configured (USB adapters: 38400 and 9600 are the usual defaults)
BAUD_RATES = (38400, 9600, 115200, 230400, 57600, 19200)
#: the supply voltage below which the adapter cannot be in the OBD socket
MIN_SOCKET_VOLTS = 6.0
#: requests to the engine ECU's physical id on 11-bit CAN (ISO 15765-4: 7E0, answered from 7E8)
ENGINE_REQUEST_HEADER = b"ATSH7E0"
#: an NMEA sentence's start (talker GP, GN, GL, GA, GB, BD; sentence type; comma): a GPS on this port
NMEA_SENTENCE = re.compile(rb"\$(?:GP|GN|GL|GA|GB|BD)[A-Z]{3},")


class LinkError(SourceError):
    "The adapter cannot be used now; the message is one plain sentence for the driver."


class LinkLost(LinkError):
    "The port went away mid-conversation (USB unplugged, Bluetooth dropped, socket closed)."


class AdapterSilent(LinkError):
    "No prompt came within the silence limit: the adapter is frozen, or the line is dead."


class LinkStopped(KeidashError):
    "stop() was called while the link was waiting."


@dataclass(frozen=True)
class AdapterSettings:
    """How keidash sets the adapter up."""

    protocol: str | None = None  # ELM327 protocol number to try first; None: let it search
    headers: bool = True  # ATH1: tells the engine's answer apart and lets K-line checksums be checked
    timeout_ms: int = 100  # ATST: longest wait for an ECU; J1979 allows it 50 ms, this is twice that
    adaptive_timing: int = 1  # ATAT: 1 is the chip's default and recommended; 2 is more aggressive
    silence_s: float | None = None  # longest silence in a reply; None: from ATST and the bus
    multi_pid: bool = True  # on CAN, ask for rpm and speed in one request when the adapter can


@dataclass(frozen=True)
class Connected:
    """What connecting found out."""

    banner: str  # e.g. "ELM327 v1.5"
    protocol: str  # the ELM327 protocol number in use
    searched: bool  # True when the adapter had to search for the protocol
    supported: frozenset[int]  # mode 01 PIDs the ECU announces
    multi_pid: bool  # whether rpm and speed come in one request
    connect_s: float  # s, from opening the port to ready
    errors: tuple[str, ...] = field(default=())  # error kinds met on the way (a failed protocol try)


def open_error_message(port: str, exc: BaseException) -> str:
    """One plain sentence telling the driver why the adapter's port did not open."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
        return f"no OBD adapter at {port}: is it plugged in?"
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return (f"no permission to open {port}: add the user to the dialout group "
                f"(sudo usermod -aG dialout $USER) and log in again")
    if code == errno.EBUSY:
        return f"{port} is busy: another program has the OBD adapter open"
    if code in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ETIMEDOUT, errno.ENETUNREACH) or any(
            reason in text for reason in ("Connection refused", "No route to host", "timed out",
                                          "Network is unreachable")):
        return f"cannot reach the OBD adapter at {port}: is it on, and is this device on its WiFi?"
    reason = os.strerror(code) if isinstance(code, int) else text
    return f"cannot open the OBD adapter at {port}: {reason}"


def _is_virtual(port: str) -> bool:
    """Ports with no baud rate of their own: a pty, Bluetooth rfcomm, a socket URL."""
    if "://" in port:
        return True
    real = os.path.realpath(port)
    return real.startswith("/dev/pts/") or "rfcomm" in real


class Elm327:
    """One conversation with an ELM327: :meth:`connect`, then :meth:`query`
    and :meth:`voltage` from one thread; :meth:`close` at the end.

    ``pid_bytes`` maps mode 01 PIDs to their data length (python-obd's table).
    ``stopping`` ends any wait within :data:`READ_SLICE_S` by raising
    :class:`LinkStopped`. ``open_port`` opens the port (pyserial's
    ``serial_for_url`` unless a test passes a stand-in).
    """

    def __init__(self, port: str, settings: AdapterSettings, pid_bytes: Mapping[int, int],
                 baudrate: int | None = None, stopping: threading.Event | None = None,
                 open_port: Callable = serial.serial_for_url):
        self.port = port
        self._open_port = open_port
        self.settings = settings
        self.pid_bytes = {**{pid: 4 for pid in BITMAP_PIDS}, **pid_bytes}
        self.baudrate = baudrate
        self.stopping = stopping or threading.Event()
        self.protocol: str | None = None
        self.multi_pid = False
        self._serial = None
        self._framer = PromptFramer()
        self._count_suffix = True  # cleared for adapters older than v1.3, which answer "?" to it
        self.silence_s = MAX_SILENCE_S
        self._unprompted = False  # the last reply ended in silence, without its prompt
        #: error kinds met while connecting (a protocol that reached nobody), even when it failed
        self.connect_errors: list[str] = []

    # -- the conversation ----------------------------------------------------------
    def connect(self) -> Connected:
        """Open the port and set the adapter and bus up; raises LinkError with the reason."""
        t0 = time.monotonic()
        self._open()
        banner = self._reset()
        self._setup()
        errors = self.connect_errors
        protocol, first, searched = self._open_bus(errors)
        self.protocol = protocol
        self.silence_s = self._silence_for(protocol)
        # On 11-bit CAN, ask the engine ECU alone (its physical id, as python-obd
        # does): then the response count is exact even when a gearbox ECU would
        # answer a broadcast too. Elsewhere requests stay functional, and a
        # count of 1 takes whichever ECU answers first (the engine's answer is
        # preferred when both come).
        physical = protocol in CAN_11BIT and is_ok(self._exchange(ENGINE_REQUEST_HEADER, AT_SILENCE_S)[0])
        bitmaps = dict(first.values)
        for base in BITMAP_PIDS[1:]:
            if base not in supported_pids(bitmaps):
                break
            # Broadcast, other ECUs may announce too: no count, so the engine's
            # answer is among them (the adapter waits out its timeout once).
            reply, _ = self._request((base,), responses=1 if physical else None)
            if reply.kind != OK:
                errors.extend(reply.errors)
                break
            bitmaps.update(reply.values)
        supported = frozenset(supported_pids(bitmaps))
        self.multi_pid = (self.settings.multi_pid and protocol in CAN
                          and {0x0C, 0x0D} <= supported and self._multi_pid_works())
        return Connected(banner, protocol, searched, supported, self.multi_pid,
                         time.monotonic() - t0, tuple(errors))

    def query(self, pids: Sequence[int]) -> tuple[Reply, float]:
        """Ask for ``pids`` (mode 01) with the count suffix; returns the parsed
        reply and when its first byte arrived (monotonic s)."""
        responses = reply_frames(pids, self.pid_bytes, self.protocol) if self._count_suffix else None
        reply, t = self._request(pids, responses)
        if reply.kind == "question_mark" and responses is not None and len(pids) == 1:
            # Line noise may have garbled the request: ask again. A chip older
            # than v1.3 refuses the count every time: then ask without it, from now on.
            again, t = self._request(pids, responses)
            if again.kind == "question_mark":
                again, t = self._request(pids, None)
                if again.kind == OK:
                    self._count_suffix = False
                    logger.info("%s: the adapter does not take a response count; polling without it",
                                self.port)
            reply = dataclasses.replace(again, errors=reply.errors + again.errors)
        return reply, t

    def voltage(self) -> tuple[float | None, float]:
        """The supply voltage at the OBD socket (ATRV), and when it was read."""
        raw, t = self._exchange(b"ATRV", AT_SILENCE_S)
        return parse_voltage(raw), t

    def close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (OSError, serial.SerialException):  # already gone with the adapter
                pass

    # -- connecting, step by step ---------------------------------------------------------
    def _open(self) -> None:
        try:
            self._serial = self._open_port(self.port, baudrate=self.baudrate or 38400,
                                           timeout=READ_SLICE_S, write_timeout=AT_SILENCE_S)
        except (OSError, serial.SerialException, ValueError) as exc:
            raise LinkError(open_error_message(self.port, exc)) from exc
        if self.baudrate is None and not _is_virtual(self.port):
            self._find_baud_rate()

    def _find_baud_rate(self) -> None:
        """Try the usual rates until the chip answers with its prompt (python-obd's probe, bounded)."""
        for rate in BAUD_RATES:
            try:
                self._serial.baudrate = rate
                self._serial.reset_input_buffer()
            except (OSError, serial.SerialException, termios.error) as exc:
                raise LinkLost(f"lost the OBD adapter at {self.port}: was it unplugged?") from exc
            self._write(b"\x7f\x7f\r")
            try:
                raw, _ = self._read_reply(0.3)
            except AdapterSilent:
                continue
            if any(s in raw.upper() for s in (b"?", b"OK", b"ELM")):
                logger.info("%s: the adapter talks at %d baud", self.port, rate)
                return
        raise LinkError(f"the device at {self.port} does not answer at any usual baud rate: "
                        f"is it an OBD adapter? set baud= if it uses an unusual one")

    def _reset(self) -> str:
        """ATZ, read up to the prompt. A second try when the first answer is
        not the banner: our A may have interrupted something the chip was
        still doing (it prints STOPPED and loses the character)."""
        for _ in range(2):
            try:
                raw, _ = self._exchange(b"ATZ", RESET_SILENCE_S)
            except AdapterSilent:
                raise AdapterSilent(f"the OBD adapter at {self.port} does not answer: "
                                    f"unplug it and plug it back in") from None
            banner = next((line for line in reply_lines(raw) if "ELM" in line.upper()), None)
            if banner is not None:
                return banner
        raise LinkError(f"the device at {self.port} does not answer like an ELM327 OBD adapter: "
                        f"is it the right port?")

    def _setup(self) -> None:
        s = self.settings
        commands = [(b"ATE0", True), (b"ATS0", False), (b"ATH1" if s.headers else b"ATH0", True),
                    (b"ATAT%d" % s.adaptive_timing, False),
                    (b"ATST%02X" % max(1, min(255, round(s.timeout_ms / 4))), False)]
        for command, required in commands:
            raw, _ = self._exchange(command, AT_SILENCE_S)
            if not is_ok(raw) and required:
                raise LinkError(f"the device at {self.port} does not answer like an ELM327 OBD adapter "
                                f"({command.decode()} was refused): is it the right port?")
        # Linefeeds (ATL) are left as they are: the parser takes CR, LF or both.

    def _open_bus(self, errors: list[str]) -> tuple[str, Reply, bool]:
        """Reach the ECU on the configured protocol, else let the adapter search."""
        protocol = self.settings.protocol
        if protocol is not None:
            # TP, not SP: try it without writing the chip's EEPROM at every connect
            raw, _ = self._exchange(b"ATTP" + protocol.encode(), AT_SILENCE_S)
            if is_ok(raw):
                raw, _ = self._exchange(b"0100", BUS_INIT_SILENCE_S)
                reply = self._parse(raw, (0x00,), protocol, b"0100")
                if reply.kind == OK:
                    return protocol, reply, False
                errors.extend(reply.errors or (reply.kind,))
                logger.info("%s: protocol %s: %s; searching", self.port, protocol, reply.kind)
            else:
                errors.append("question_mark")
        self._exchange(b"ATSP0", AT_SILENCE_S)
        raw, _ = self._exchange(b"0100", SEARCH_SILENCE_S)
        found = parse_protocol_number(self._exchange(b"ATDPN", AT_SILENCE_S)[0])
        reply = self._parse(raw, (0x00,), found or "6", b"0100")
        if found is not None and found != "0" and reply.kind == OK:
            return found, reply, True
        errors.extend(reply.errors or (reply.kind,))
        volts = parse_voltage(self._exchange(b"ATRV", AT_SILENCE_S)[0])
        if volts is not None and volts < MIN_SOCKET_VOLTS:
            raise LinkError(f"the OBD adapter at {self.port} reads no battery voltage: "
                            f"is it pushed fully into the OBD socket?")
        raise LinkError("adapter found but the ECU does not answer: is the ignition on?")

    def _multi_pid_works(self) -> bool:
        """Whether rpm and speed come back whole from one request with the count suffix.

        Some adapters (and the ELM327-emulator package) answer "?" to a
        multi-PID request with a count, or leave a PID out; then one PID per
        request is as fast as it gets.
        """
        pids = (0x0C, 0x0D)
        reply, _ = self._request(pids, reply_frames(pids, self.pid_bytes, self.protocol))
        return reply.kind == OK and set(reply.values) == set(pids)

    def _silence_for(self, protocol: str) -> float:
        if self.settings.silence_s is not None:
            return self.settings.silence_s
        slack = LINK_SLACK_S["k_line" if protocol in K_LINE else "other"]
        return min(MAX_SILENCE_S, self.settings.timeout_ms / 1000 + slack)

    # -- one request -------------------------------------------------------------------------
    def _request(self, pids: Sequence[int], responses: int | None) -> tuple[Reply, float]:
        request = pid_request(pids, responses)
        raw, t = self._exchange(request, self.silence_s)
        reply = self._parse(raw, pids, self.protocol, request)
        if self._unprompted:
            reply = dataclasses.replace(reply, errors=reply.errors + ("no_prompt",))
        return reply, t

    def _parse(self, raw: bytes, pids: Sequence[int], protocol: str, request: bytes) -> Reply:
        return parse_pid_reply(raw, pids, self.pid_bytes, protocol, self.settings.headers, request)

    def _exchange(self, command: bytes, silence_s: float) -> tuple[bytes, float]:
        """Send one command and return its reply (without the prompt) and the
        time its first byte came."""
        if self._serial is None:
            raise LinkLost(f"lost the OBD adapter at {self.port}: was it unplugged?")
        try:
            self._serial.reset_input_buffer()  # nothing before our command can answer it
        except (OSError, serial.SerialException, termios.error) as exc:
            # termios.error: pyserial's flush of a port whose device went with the adapter (no OSError)
            raise LinkLost(f"lost the OBD adapter at {self.port}: was it unplugged?") from exc
        self._framer.clear()
        self._write(command + b"\r")
        return self._read_reply(silence_s)

    def _write(self, data: bytes) -> None:
        try:
            self._serial.write(data)
        except (OSError, serial.SerialException) as exc:  # SerialTimeoutException is one too
            raise LinkLost(f"lost the OBD adapter at {self.port}: was it unplugged?") from exc

    def _read_reply(self, silence_s: float) -> tuple[bytes, float]:
        """The next reply up to the prompt, and when its first byte came.

        A reply whose bytes end in ``silence_s`` of silence without a prompt is
        taken as it came (``_unprompted`` is set; the next command starts after
        the input is flushed, so the next prompt resynchronises) instead of
        declaring the adapter lost. Raises AdapterSilent after ``silence_s``
        without a byte (or after three times that of bytes without a prompt:
        noise), LinkError at once when the bytes are NMEA sentences (a GPS on
        this port), LinkLost when the port fails, LinkStopped when stopping is set.
        """
        start = last = time.monotonic()
        first: float | None = None
        self._unprompted = False
        while True:
            if self.stopping.is_set():
                raise LinkStopped()
            try:
                data = self._serial.read(self._serial.in_waiting or 1)
            except (OSError, serial.SerialException, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial after the fd was closed under it
                raise LinkLost(f"lost the OBD adapter at {self.port}: was it unplugged?") from exc
            now = time.monotonic()
            if data:
                if first is None:
                    first = now
                last = now
                replies = self._framer.feed(data)
                if replies:
                    return replies[0], first
                if NMEA_SENTENCE.search(self._framer.pending):
                    raise LinkError(f"{self.port} sends NMEA: is it the GPS? "
                                    f"put its port in an nmea:// source and the adapter's in obd://")
            elif now - last > silence_s:
                if first is not None and self._framer.pending.strip(b"\r\n\x00 "):
                    self._unprompted = True
                    return self._framer.pending, first
                raise AdapterSilent(f"the OBD adapter at {self.port} stopped answering")
            if now - start > max(2.0, 3 * silence_s):
                raise AdapterSilent(f"the OBD adapter at {self.port} sends only noise: "
                                    f"is the baud rate right?")
