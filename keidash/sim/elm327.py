"""An emulated ELM327 OBD-II adapter wired to the virtual truck.

Two layers, so the protocol is tested and fuzzed without a port (framing
apart from transport, see STYLE.md):

* :class:`ELM327Protocol` is pure: one command line in, the exact bytes an
  ELM327 v1.5 sends back out (echo, headers, the ``\\r\\r>`` prompt), with the
  values read from a :class:`~keidash.sim.truth.TruckTruth` and encoded with
  the SAE J1979 formulas, and how long the chip would take over it
  (:meth:`ELM327Protocol.reply_wait_s`).
* :class:`EmulatedELM327` serves that protocol on a pseudo-terminal, so
  python-obd (or pyserial, or a terminal program) talks to it exactly as it
  talks to a USB adapter, and tests can hang it, unplug it or feed it noise.

Written from the ELM327 data sheet and SAE J1979 only. It ships in
``keidash demo``, so it shares no code with the ELM327-emulator package
(non-commercial licence), which the tests use as an independent check.
"""

from __future__ import annotations

import logging
import os
import pty
import select
import threading
import tty
from collections import Counter

from ..errors import ConfigError
from .device import EmulatedDevice
from .truth import TruckTruth, TruthFn

logger = logging.getLogger(__name__)

VERSION = "ELM327 v1.5"
DEVICE_DESCRIPTION = "OBDII to RS232 Interpreter"  # what AT@1 answers

#: the ELM327's protocol numbers and the names ATDP shows
PROTOCOL_NAMES = {
    "1": "SAE J1850 PWM",
    "2": "SAE J1850 VPW",
    "3": "ISO 9141-2",
    "4": "ISO 14230-4 (KWP 5BAUD)",
    "5": "ISO 14230-4 (KWP FAST)",
    "6": "ISO 15765-4 (CAN 11/500)",
    "7": "ISO 15765-4 (CAN 29/500)",
    "8": "ISO 15765-4 (CAN 11/250)",
    "9": "ISO 15765-4 (CAN 29/250)",
    "A": "SAE J1939 (CAN 29/250)",
    "B": "USER1 CAN (11* /500*)",
    "C": "USER2 CAN (11* /50*)",
}
_CAN_11BIT = frozenset("68")
_CAN_29BIT = frozenset("79")
_K_LINE = frozenset("345")  # ISO 9141-2 and KWP2000: need a bus init, carry a checksum
_J1850 = frozenset("12")

#: protocols the virtual truck's ECU can speak (kei trucks: K-line before ~2008, CAN after)
VEHICLE_PROTOCOLS = tuple(sorted(_CAN_11BIT | _CAN_29BIT | _K_LINE))

# Bus addresses. The engine ECU answers on 7E8 (11-bit CAN), 18DAF110 (29-bit
# CAN) or as source address 10 on the K-line.
_CAN11_REPLY_ID = 0x7E8
_CAN11_ADDRESSED = (0x7DF, 0x7E0)  # functional (broadcast) and the engine's physical id
_CAN29_REPLY_ID = (0x18, 0xDA, 0xF1, 0x10)
_CAN29_ADDRESSED = (0x18DB33F1, 0x18DA10F1)
_ISO9141_REPLY_HEADER = (0x48, 0x6B, 0x10)  # priority, target (functional), source = engine
_KWP_TESTER, _KWP_ENGINE = 0xF1, 0x10
_K_LINE_ADDRESSED = (0x6A, 0x33, 0x10)  # 9141 functional, KWP functional, engine physical

_MAX_PIDS_PER_REQUEST = 6  # SAE J1979, CAN only
_MAX_REQUEST_BYTES = 7  # what fits in one CAN single frame

# Timing (ELM327 data sheet: AT ST, AT AT and the response count).
DEFAULT_TIMEOUT_ST = 0x32  # ATST units of 4 ms: 200 ms, the chip's default
_ST_UNIT_S = 0.004
# How much ATAT1 and ATAT2 shorten the wait, as this emulator models it: the
# data sheet says only that adaptive timing follows the ECU's measured reply
# time with a margin (AT2 a smaller one), and never exceeds ATST.
_ADAPTIVE_WAIT = {1: (2.0, 0.020), 2: (1.25, 0.008)}  # ATAT: (x reply time, + s)


def _clamp_byte(value: float) -> int:
    return max(0, min(255, round(value)))


def _word(value: float) -> bytes:
    return max(0, min(0xFFFF, round(value))).to_bytes(2, "big")


# What the virtual truck cannot tell us, held at plausible constants.
_INTAKE_AIR_C = 25.0  # deg C
_JOBD = 0x0A  # PID 1C: "JOBD (Japan)", what a kei truck reports


def _engine_load_pct(truth: TruckTruth) -> float:
    # Not part of the truth; a running engine at idle shows about 20 %.
    return 0.0 if truth.rpm <= 0 else 20.0 + 0.8 * truth.throttle_pct


#: mode 01 PIDs the emulated engine ECU answers: PID -> data bytes (SAE J1979)
_MODE01 = {
    0x04: lambda t: bytes([_clamp_byte(_engine_load_pct(t) * 255 / 100)]),  # A*100/255 %
    0x05: lambda t: bytes([_clamp_byte(t.coolant_c + 40)]),  # A-40 deg C
    0x0C: lambda t: _word(t.rpm * 4),  # (256A+B)/4 rpm
    0x0D: lambda t: bytes([_clamp_byte(t.speed_kmh)]),  # A km/h
    0x0F: lambda t: bytes([_clamp_byte(_INTAKE_AIR_C + 40)]),  # A-40 deg C
    0x11: lambda t: bytes([_clamp_byte(t.throttle_pct * 255 / 100)]),  # A*100/255 %
    0x1C: lambda t: bytes([_JOBD]),  # OBD standard, enumerated
    0x42: lambda t: _word(t.battery_v * 1000),  # (256A+B)/1000 V
}
_SUPPORT_PIDS = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0)


def _supported_bitmap(base: int) -> bytes:
    """Answer to PID ``base`` (00, 20, 40...): which of the next 32 PIDs exist.

    Bit 31 is PID base+1, bit 0 is PID base+32, which is the next bitmap PID
    and is set when that bitmap has anything to announce.
    """
    announced = set(_MODE01) | {b for b in _SUPPORT_PIDS if any(p > b for p in _MODE01)}
    bits = 0
    for pid in announced:
        if base < pid <= base + 32:
            bits |= 1 << (32 - (pid - base))
    return bits.to_bytes(4, "big")


def _bitmap_answered(base: int) -> bool:
    # PID 00 is always answered; a later bitmap only when the one before announces it.
    return base == 0 or any(p > base for p in _MODE01)


class ELM327Protocol:
    """The ELM327 command interpreter and the engine ECU behind it, without I/O.

    ``truth_fn()`` is called once per OBD request. ``protocol`` is the bus the
    truck's ECU speaks ("3", "4", "5", "6", "7", "8" or "9"); the adapter
    starts in automatic protocol search like a new chip (ATSP0).

    Fault state: set :attr:`ecu_awake` False for ignition off (the adapter
    still answers AT commands; OBD requests get UNABLE TO CONNECT, CAN ERROR,
    BUS INIT: ...ERROR or NO DATA as a real chip would). An engine that is off
    with the key on (truth rpm 0) still answers, with rpm 0.
    """

    def __init__(self, truth_fn: TruthFn, protocol: str = "6"):
        protocol = str(protocol).upper()
        if protocol not in VEHICLE_PROTOCOLS:
            raise ConfigError(f"the emulated truck cannot speak OBD protocol {protocol!r}: "
                              f"use one of {', '.join(VEHICLE_PROTOCOLS)}")
        self._truth_fn = truth_fn
        self.vehicle_protocol = protocol
        self.ecu_awake = True
        #: commands handled by kind: "at", "obd", "invalid"; "repeat" counts
        #: the empty lines (repeats) among them
        self.counts: Counter[str] = Counter()
        #: kind of the last command handled, so a transport can delay OBD replies like an ECU
        self.last_kind = ""
        # The last OBD request, for reply_wait_s: frames the ECU sent (0: none),
        # the response count asked for (None: no suffix), and whether the chip
        # waited in vain for an ECU (NO DATA).
        self.last_frames = 0
        self.last_wanted: int | None = None
        self.last_unanswered = False
        # ATSP is kept over resets (the chip stores it in EEPROM); ATTP is not.
        self._stored_auto, self._stored_protocol = True, "0"
        self._reset()

    # -- public -----------------------------------------------------------
    def handle(self, line: bytes) -> bytes:
        """Answer one command line (without its CR) as the chip would."""
        line = bytes(line)
        # The chip echoes what it receives before acting on it, so ATE0 is echoed.
        echo = line + self._eol if self.echo else b""
        # The chip ignores spaces and control characters and any letter case.
        command = "".join(c for c in line.decode("latin-1") if c > " ").upper()
        if not command:
            if self._last is None:
                self.last_kind = "invalid"
                self.counts["invalid"] += 1
                return echo + self._format(["?"])
            self.counts["repeat"] += 1
            command = self._last
        self._last = command
        if command.startswith("AT"):
            self.last_kind = "at"
            lines = self._at(command[2:])
        elif _is_hex(command) and len(command) >= 2:
            self.last_kind = "obd"
            lines = self._obd_request(command)
        else:
            lines = None
        if lines is None:
            self.last_kind = "invalid"
            lines = ["?"]
        self.counts[self.last_kind] += 1
        return echo + self._format(lines)

    def reply_wait_s(self, reply_delay_s: float) -> float:
        """How long the chip takes over the last OBD request (0 for anything else).

        ``reply_delay_s`` is the ECU's reply time. An answer comes after it;
        then, unless the response count (the request's suffix digit) has been
        met, the chip listens on for more ECUs until its timeout: ATST x 4 ms,
        shortened by adaptive timing (ATAT1, ATAT2) towards the reply time. A
        request nobody answers waits out that timeout before NO DATA. Bus
        errors (CAN ERROR, BUS INIT: ...ERROR, UNABLE TO CONNECT) come at once:
        bus initialisation and protocol search times are not modelled.
        """
        if self.last_kind != "obd":
            return 0.0
        timeout = self.timeout_st * _ST_UNIT_S
        if self.adaptive in _ADAPTIVE_WAIT:
            factor, margin = _ADAPTIVE_WAIT[self.adaptive]
            timeout = min(timeout, factor * reply_delay_s + margin)
        if self.last_frames == 0:
            return timeout if self.last_unanswered else 0.0
        if self.last_wanted is not None and self.last_wanted <= self.last_frames:
            return reply_delay_s  # the count is met: back at once
        return reply_delay_s + timeout

    # -- settings -----------------------------------------------------------
    def _reset(self) -> None:
        """Settings after power-up, ATZ, ATWS or ATD."""
        self.echo = True
        self.headers = False
        self.linefeeds = False
        self.spaces = True
        self.timeout_st = DEFAULT_TIMEOUT_ST
        self.adaptive = 1  # ATAT1 is the chip's default
        self._auto, self._protocol = self._stored_auto, self._stored_protocol
        self._bus_up = False  # protocol found (auto) or bus initialised (manual)
        self._header: int | None = None  # None: the protocol's functional address
        self._last: str | None = None

    @property
    def _eol(self) -> bytes:
        return b"\r\n" if self.linefeeds else b"\r"

    def _format(self, lines: list[str]) -> bytes:
        eol = self._eol
        return b"".join(s.encode("ascii") + eol for s in lines) + eol + b">"

    def _set_protocol(self, arg: str, store: bool) -> list[str] | None:
        auto = arg.startswith("A") and len(arg) == 2
        number = arg[1:] if auto else arg
        if len(number) != 1 or (number not in PROTOCOL_NAMES and number != "0"):
            return None
        self._auto, self._protocol = auto or number == "0", number
        if store:
            self._stored_auto, self._stored_protocol = self._auto, self._protocol
        self._bus_up = False
        return ["OK"]

    def _current_protocol(self) -> str:
        if self._auto and self._bus_up:
            return self.vehicle_protocol
        return self._protocol

    def _at(self, cmd: str) -> list[str] | None:
        """One AT command (without "AT"); None when the chip would answer "?"."""
        if cmd in ("Z", "WS"):
            self._reset()
            return ["", "", VERSION]  # the chip prints two blank lines before its banner
        if cmd == "D":
            self._reset()
            return ["OK"]
        if cmd == "I":
            return [VERSION]
        if cmd == "@1":
            return [DEVICE_DESCRIPTION]
        if cmd == "RV":
            return [f"{self._truth_fn().battery_v:.1f}V"]
        if cmd == "DP":
            name = PROTOCOL_NAMES.get(self._current_protocol(), "")
            if self._auto:
                return [f"AUTO, {name}" if name else "AUTO"]
            return [name]
        if cmd == "DPN":
            return [("A" if self._auto else "") + self._current_protocol()]
        if cmd.startswith("SP"):
            return self._set_protocol(cmd[2:], store=True)
        if cmd.startswith("TP"):
            return self._set_protocol(cmd[2:], store=False)
        if cmd.startswith("SH"):
            return self._set_header(cmd[2:])
        if cmd == "PC":  # protocol close: the next request re-initialises the bus
            self._bus_up = False
            return ["OK"]
        flag = {"E0": ("echo", False), "E1": ("echo", True),
                "H0": ("headers", False), "H1": ("headers", True),
                "L0": ("linefeeds", False), "L1": ("linefeeds", True),
                "S0": ("spaces", False), "S1": ("spaces", True)}.get(cmd)
        if flag is not None:
            setattr(self, *flag)
            return ["OK"]
        # Settings that change timing, filtering or memory on a real chip but
        # nothing this emulator shows: accepted, like the chip does.
        if cmd in _ACCEPTED_AT:
            return ["OK"]
        if cmd.startswith("ST") and len(cmd) == 4 and _is_hex(cmd[2:]):  # ECU timeout, hh x 4 ms
            self.timeout_st = int(cmd[2:], 16) or DEFAULT_TIMEOUT_ST  # 00 restores the default
            return ["OK"]
        if cmd in ("AT0", "AT1", "AT2"):  # adaptive timing off, normal, aggressive
            self.adaptive = int(cmd[2])
            return ["OK"]
        for prefix in ("CRA", "CF", "CM"):  # CAN receive address, filter, mask
            arg = cmd[len(prefix):]
            if cmd.startswith(prefix) and len(arg) in (3, 8) and _is_hex(arg):
                return ["OK"]
        return None

    def _set_header(self, digits: str) -> list[str] | None:
        if len(digits) not in (3, 6, 8) or not _is_hex(digits):
            return None
        self._header = int(digits, 16)
        return ["OK"]

    def _addressed_to_engine(self) -> bool:
        """Whether the current header (ATSH) reaches the engine ECU."""
        if self._header is None:
            return True
        if self.vehicle_protocol in _CAN_11BIT:
            return self._header in _CAN11_ADDRESSED
        if self.vehicle_protocol in _CAN_29BIT:
            return self._header in _CAN29_ADDRESSED
        return (self._header >> 8) & 0xFF in _K_LINE_ADDRESSED

    # -- OBD requests -------------------------------------------------------
    def _obd_request(self, command: str) -> list[str] | None:
        self.last_frames, self.last_wanted, self.last_unanswered = 0, None, False
        if len(command) % 2:
            # The response count (1 hex digit): the chip stops listening once
            # that many frames came (see reply_wait_s), and shows no more.
            self.last_wanted = int(command[-1], 16) or None
            command = command[:-1]
        request = bytes.fromhex(command)
        if len(request) > _MAX_REQUEST_BYTES:
            return None
        lines: list[str] = []
        if not self._bus_up:
            if self._auto:
                lines.append("SEARCHING...")
                if not self.ecu_awake:
                    return lines + ["UNABLE TO CONNECT"]
            elif self._protocol != self.vehicle_protocol or not self.ecu_awake:
                return lines + [self._nobody_answers(self._protocol)]
            elif self._protocol in _K_LINE:
                lines.append("BUS INIT: ...OK")
            self._bus_up = True
        if not self.ecu_awake:
            answer = self._nobody_answers(self._current_protocol(), bus_was_up=True)
            self.last_unanswered = answer == "NO DATA"
            return lines + [answer]
        reply = self._ecu_reply(request) if self._addressed_to_engine() else None
        if reply is None:
            self.last_unanswered = True
            return lines + ["NO DATA"]
        frames = self._frames(reply)
        # Without headers a multi-frame CAN answer starts with a length line, which is no frame.
        length_line = 1 if len(frames) > 1 and ":" not in frames[0] and not self.headers else 0
        sent = len(frames) - length_line
        if self.last_wanted is not None and self.last_wanted < sent:
            sent = self.last_wanted
            frames = frames[:length_line + sent]
        self.last_frames = sent
        return lines + frames

    def _nobody_answers(self, protocol: str, bus_was_up: bool = False) -> str:
        """What the chip prints when no ECU answers on ``protocol``."""
        if protocol in _K_LINE:
            return "NO DATA" if bus_was_up else "BUS INIT: ...ERROR"
        if protocol in _J1850:
            return "NO DATA"
        return "CAN ERROR"  # nobody acknowledges the frame (or the bit rate is wrong)

    def _ecu_reply(self, request: bytes) -> bytes | None:
        """The engine ECU's answer (service byte + data), or None for silence."""
        if request[0] != 0x01 or len(request) < 2:
            return None  # only mode 01 (current data) is emulated
        pids = request[1:]
        multi_pid_ok = self.vehicle_protocol in _CAN_11BIT | _CAN_29BIT
        if len(pids) > (_MAX_PIDS_PER_REQUEST if multi_pid_ok else 1):
            return None
        truth = self._truth_fn()
        reply = bytearray([0x41])
        for pid in pids:
            if pid in _SUPPORT_PIDS:
                if not _bitmap_answered(pid):
                    continue
                data = _supported_bitmap(pid)
            elif pid in _MODE01:
                data = _MODE01[pid](truth)
            else:
                continue  # an ECU leaves unsupported PIDs out of its answer
            reply += bytes([pid]) + data
        return bytes(reply) if len(reply) > 1 else None

    def _hex(self, data: bytes | tuple[int, ...]) -> str:
        return (" " if self.spaces else "").join(f"{b:02X}" for b in data)

    def _frames(self, message: bytes) -> list[str]:
        """Lines the chip prints for one ECU message on the current protocol."""
        protocol = self.vehicle_protocol
        if protocol in _K_LINE:
            if not self.headers:
                return [self._hex(message)]
            if protocol == "3":
                header = _ISO9141_REPLY_HEADER
            else:  # KWP2000: format byte 10xxxxxx carries the data length
                header = (0x80 | len(message), _KWP_TESTER, _KWP_ENGINE)
            frame = bytes(header) + message
            return [self._hex(frame + bytes([sum(frame) & 0xFF]))]
        # ISO 15765-4 (CAN): ISO-TP framing
        if protocol in _CAN_11BIT:
            can_id = f"{_CAN11_REPLY_ID:03X}"
        else:
            can_id = self._hex(_CAN29_REPLY_ID)
        sep = " " if self.spaces else ""
        if len(message) <= 7:
            if not self.headers:
                return [self._hex(message)]
            return [can_id + sep + self._hex(bytes([len(message)]) + message)]
        # Multi-frame: first frame with a 12-bit length, then consecutive
        # frames numbered 1..F, 0, 1...
        chunks = [message[:6]] + [message[i:i + 7] for i in range(6, len(message), 7)]
        if not self.headers:
            # With headers off the chip prints the length, then numbered lines.
            numbered = [f"{i & 0xF:X}:{sep}{self._hex(chunk)}" for i, chunk in enumerate(chunks)]
            return [f"{len(message):03X}"] + numbered
        first_pci = bytes([0x10 | len(message) >> 8, len(message) & 0xFF])
        lines = [can_id + sep + self._hex(first_pci + chunks[0])]
        for i, chunk in enumerate(chunks[1:], start=1):
            lines.append(can_id + sep + self._hex(bytes([0x20 | i & 0xF]) + chunk))
        return lines


# AT commands answered OK without visible effect (timing, filters, memory, formats).
_ACCEPTED_AT = frozenset({
    "M0", "M1", "AL", "NL", "CAF0", "CAF1", "CFC0", "CFC1", "D0", "D1",
    "R0", "R1", "V0", "V1", "LP", "BI", "CRA", "KW0", "KW1", "IB10", "IB96",
})


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789ABCDEF" for c in text)


class EmulatedELM327(EmulatedDevice):
    """:class:`ELM327Protocol` on a pseudo-terminal, with fault injection.

    ``port`` is the slave side (``/dev/pts/N``) for python-obd or pyserial to
    open. A daemon thread reads commands (ended by CR) from the master side
    and writes the replies back. ``reply_delay_s`` is the ECU's reply time:
    each OBD (not AT) answer comes that much later, and the chip's own
    listening timeout is added as :meth:`ELM327Protocol.reply_wait_s` models it
    (about 50 ms models a K-line ECU, 5 ms a CAN one).
    """

    _POLL_S = 0.05  # how often the service thread checks for stop/unplug

    def __init__(self, truth_fn: TruthFn, protocol: str = "6", reply_delay_s: float = 0.0):
        super().__init__()
        self.chip = ELM327Protocol(truth_fn, protocol)
        self.reply_delay_s = reply_delay_s
        self._master, self._slave = pty.openpty()
        # Raw mode: no echo, no CR/LF translation, bytes pass as a UART would.
        tty.setraw(self._slave)
        # Never block on a write: a real adapter keeps transmitting whether
        # or not anyone reads, so output nobody reads is dropped, not queued.
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self.thread_name = f"elm327-{self.port}"
        self._frozen = threading.Event()
        self._unplug_requested = threading.Event()
        self._closed = threading.Event()
        self._write_lock = threading.Lock()
        self._chip_lock = threading.Lock()  # the chip is used by the service thread, read by callers
        self._ignored = 0  # commands dropped while frozen
        self._prompts_to_drop = 0

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> EmulatedELM327:
        if self._closed.is_set():
            raise RuntimeError("an unplugged or stopped emulator cannot be started again")
        return super().start()

    def _after_stop(self) -> None:
        self._close_fds()
        self._release_slave()

    # -- fault injection --------------------------------------------------------
    def freeze(self) -> None:
        """Keep the port open but never answer again, like a hung adapter."""
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def unplug(self) -> None:
        """Close the pty, like pulling the USB plug: the other side gets an error.

        The master side is closed (the reader gets EIO, as from a vanished USB serial port); the
        emulator keeps its slave fd until :meth:`stop`, so the kernel cannot give this
        ``/dev/pts/N`` to a new pseudo-terminal meanwhile. Without that, on a busy machine
        another program's (or another test's) emulated adapter could take the number within
        the source's 2 s retry, and keidash would "reconnect" to it.
        """
        self._unplug_requested.set()
        if self._thread is not None and self._thread.is_alive():
            # Let the service thread close its own fds, so it never selects on a closed one.
            self._closed.wait(2.0)
        self._close_fds()

    def drop_prompts(self, count: int = 1) -> None:
        """Send the next ``count`` replies without their ``>`` prompt (a byte lost on the line)."""
        self._prompts_to_drop = count

    def send_garbage(self, data: bytes) -> None:
        """Send unsolicited bytes to the other side, like line noise."""
        self._write(bytes(data))

    # -- counters -----------------------------------------------------------------
    @property
    def counts(self) -> dict[str, int]:
        """Commands handled by kind ("at", "obd", "invalid"; "repeat" counts
        the empty lines among them), plus "ignored" (received while frozen)."""
        with self._chip_lock:
            counts = dict(self.chip.counts)
        counts["ignored"] = self._ignored
        return counts

    @property
    def commands_handled(self) -> int:
        counts = self.counts
        return sum(counts.get(kind, 0) for kind in ("at", "obd", "invalid"))

    # -- the service thread ----------------------------------------------------
    def _run(self) -> None:
        pending = bytearray()
        try:
            while not self._stop.is_set() and not self._unplug_requested.is_set():
                ready, _, _ = select.select([self._master], [], [], self._POLL_S)
                if not ready:
                    continue
                try:
                    data = os.read(self._master, 4096)
                except BlockingIOError:
                    continue
                if self._frozen.is_set():
                    self._ignored += data.count(b"\r")
                    pending.clear()
                    continue
                pending += data
                while b"\r" in pending:
                    line, _, rest = bytes(pending).partition(b"\r")
                    pending[:] = rest
                    self._answer(line)
        except OSError:
            logger.exception("emulated ELM327 on %s failed", self.port)
        finally:
            self._close_fds()

    def _answer(self, line: bytes) -> None:
        with self._chip_lock:
            reply = self.chip.handle(line)
            wait = self.chip.reply_wait_s(self.reply_delay_s)
        if wait > 0 and self._stop.wait(wait):
            return
        if self._frozen.is_set() or self._unplug_requested.is_set():
            return
        if self._prompts_to_drop > 0 and reply.endswith(b">"):
            self._prompts_to_drop -= 1
            reply = reply[:-1]
        self._write(reply)

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            if self._closed.is_set():
                return
            view = memoryview(data)
            while view:
                try:
                    sent = os.write(self._master, view)
                except BlockingIOError:
                    return  # nobody reads: the rest goes into the void
                except OSError:
                    return  # closed under us: unplugged
                view = view[sent:]

    def _close_fds(self) -> None:
        """Close the master side (the plug pulled); the slave is held until stop (see unplug)."""
        with self._write_lock:
            if self._closed.is_set():
                return
            self._closed.set()
            try:
                os.close(self._master)
            except OSError:
                pass
            if not self._unplug_requested.is_set():
                self._release_slave_locked()

    def _release_slave(self) -> None:
        with self._write_lock:
            self._release_slave_locked()

    def _release_slave_locked(self) -> None:
        if self._slave is not None:
            try:
                os.close(self._slave)
            except OSError:
                pass
            self._slave = None
