"""ELM327 replies without a port: framing, parsing and the error kinds.

An ELM327 answers every command with lines ended by CR (CR LF with ATL1) and
then its ``>`` prompt. :class:`PromptFramer` cuts the byte stream into replies
at the prompt; :func:`parse_pid_reply` turns one reply to a mode 01 request
into each PID's data bytes, or into the kind of error the adapter reported.
Neither touches a port or a clock, so both are tested and fuzzed without one
(framing apart from transport, STYLE.md); :mod:`keidash.sources.elm327_link`
does the I/O.

What a reply looks like depends on the bus (``protocol``, the ELM327's
protocol number) and on ATH (``headers``). With headers on:

* CAN 11-bit (6, 8): ``7E8 04 41 0C 1A F8``: the sender's id, the ISO-TP
  byte (0x0N single frame of N bytes, 0x1N first frame, 0x2N consecutive
  frame), then data;
* CAN 29-bit (7, 9): ``18 DA F1 10 04 41 0C 1A F8``;
* K-line (3, 4, 5) and J1850 (1, 2): ``48 6B 10 41 0C 1A F8 22``: three
  header bytes (the third is the sender), data, and a checksum (J1850: a CRC)
  that is checked here.

With headers off a single frame is just its data, and a multi-frame CAN reply
is a length line and numbered lines (``00A`` / ``0: 41 0C ...`` / ``1: ...``).
Spaces (ATS) may be on or off.

Decoding the data bytes into values is python-obd's job (its command table
and decoders); this module only needs each PID's data length, passed in as
``pid_bytes``, so it never imports python-obd.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

PROMPT = b">"

#: Why a request gave no value, as counted in a source's status. Keys are the
#: error kinds; the text says what the adapter meant.
ERROR_KINDS = {
    "no_data": "NO DATA: the ECU did not answer this request",
    "unable_to_connect": "UNABLE TO CONNECT: the adapter found no ECU on any protocol",
    "can_error": "CAN ERROR: nothing acknowledged on the CAN bus (ignition off, wrong protocol)",
    "bus_init_error": "BUS INIT: ...ERROR: the K-line wake-up got no answer",
    "bus_error": "BUS ERROR: the bus is shorted or held",
    "bus_busy": "BUS BUSY: too much traffic to send",
    "fb_error": "FB ERROR: what the adapter sent did not come back (wiring)",
    "data_error": "DATA ERROR or <DATA ERROR: the adapter found a reply corrupt",
    "rx_error": "<RX ERROR: a CAN frame arrived corrupt",
    "buffer_full": "BUFFER FULL: the adapter's buffer overflowed",
    "stopped": "STOPPED: a character (ours or line noise) interrupted the adapter",
    "question_mark": "?: the adapter did not understand the command",
    "internal_error": "ERRnn: an internal error of the adapter",
    "adapter_reset": "the adapter restarted (its banner, LV RESET): it must be set up again",
    "low_power_alert": "ACT ALERT or LP ALERT: the adapter is about to sleep (no bus activity)",
    "negative_response": "7F: the ECU refused the request",
    "bad_checksum": "a reply whose checksum does not match its bytes",
    "truncated": "a reply cut short: fewer data bytes than the PID has",
    "garbage": "bytes that are no ELM327 reply (line noise, wrong baud rate, another device)",
    "no_reply": "silence: no prompt within the reply timeout (frozen or unplugged adapter)",
    "no_prompt": "a reply that ended without its > prompt: taken as it came, the next prompt resynchronises",
}

OK = "ok"

# The adapter's own messages, matched without spaces and in upper case.
_MESSAGES = (
    ("NODATA", "no_data"),
    ("UNABLETOCONNECT", "unable_to_connect"),
    ("CANERROR", "can_error"),
    ("BUSERROR", "bus_error"),
    ("BUSBUSY", "bus_busy"),
    ("FBERROR", "fb_error"),
    ("DATAERROR", "data_error"),
    ("<DATAERROR", "data_error"),
    ("<RXERROR", "rx_error"),
    ("RXERROR", "rx_error"),
    ("BUFFERFULL", "buffer_full"),
    ("STOPPED", "stopped"),
    ("?", "question_mark"),
    ("LVRESET", "adapter_reset"),
    ("ACTALERT", "low_power_alert"),
    ("LPALERT", "low_power_alert"),
)
_INTERNAL_ERROR = re.compile(r"ERR\d\d")
_HEX = frozenset("0123456789ABCDEF")

CAN_11BIT = frozenset("68BC")  # B and C are user CAN; ELM327 defaults make them 11-bit
CAN_29BIT = frozenset("79A")
CAN = CAN_11BIT | CAN_29BIT
K_LINE = frozenset("345")  # ISO 9141-2, ISO 14230-4 (KWP2000) 5-baud and fast init
J1850 = frozenset("12")

#: who the engine ECU is, by bus: 11-bit CAN id, 29-bit CAN id, K-line/J1850 source address
ENGINE_CAN11_ID = 0x7E8
ENGINE_CAN29_ID = 0x18DAF110
ENGINE_ADDRESS = 0x10

#: the longest reply kept while waiting for a prompt; more is noise (wrong baud rate)
MAX_REPLY_BYTES = 4096
#: PIDs one mode 01 request may carry (SAE J1979, CAN only)
MAX_PIDS_PER_REQUEST = 6
#: support bitmap PIDs (00, 20, 40, ...): 4 data bytes each
BITMAP_PIDS = tuple(range(0x00, 0x100, 0x20))


@dataclass(frozen=True)
class Reply:
    """One reply to a mode 01 request.

    ``kind`` is ``"ok"`` when at least one requested PID came back, else the
    error kind (a key of :data:`ERROR_KINDS`). ``values`` maps each PID that
    came back to its data bytes. ``errors`` lists the kinds of lines that were
    skipped on the way (a corrupt line beside a good one), to be counted.
    """

    kind: str
    values: Mapping[int, bytes] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    text: str = ""  # what the adapter said, for logs


class PromptFramer:
    """Cuts the adapter's byte stream into replies at its ``>`` prompt.

    :meth:`feed` returns the replies completed by ``data`` (without the
    prompt). A reply that grows past :data:`MAX_REPLY_BYTES` without a prompt
    is dropped and counted in :attr:`overflows`.
    """

    def __init__(self, max_reply_bytes: int = MAX_REPLY_BYTES):
        self.max_reply_bytes = max_reply_bytes
        self._pending = bytearray()
        self.overflows = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        replies = []
        while True:
            end = self._pending.find(PROMPT)
            if end < 0:
                break
            replies.append(bytes(self._pending[:end]))
            del self._pending[:end + 1]
        if len(self._pending) > self.max_reply_bytes:
            self._pending.clear()
            self.overflows += 1
        return replies

    @property
    def pending(self) -> bytes:
        return bytes(self._pending)

    def clear(self) -> None:
        self._pending.clear()


def reply_lines(raw: bytes) -> list[str]:
    """The non-empty lines of a reply, stripped, NULs dropped (some adapters pad with them)."""
    text = bytes(raw).replace(b"\x00", b"").decode("latin-1")
    return [s.strip() for s in re.split(r"[\r\n]+", text) if s.strip()]


def _compact(line: str) -> str:
    return line.replace(" ", "").upper()


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in _HEX for c in text)


def message_kind(line: str) -> str | None:
    """The error kind an adapter message line stands for, None if it is no such message."""
    compact = _compact(line)
    if compact.startswith("BUSINIT"):
        return "bus_init_error" if "ERROR" in compact else None
    for text, kind in _MESSAGES:
        if compact == text or (len(text) > 1 and compact.startswith(text)):
            return kind
    if _INTERNAL_ERROR.fullmatch(compact):
        return "internal_error"
    if "ELM327" in compact:  # the banner: it has just been reset
        return "adapter_reset"
    return None


def is_progress_line(line: str) -> bool:
    """Lines the adapter prints on the way to an answer, which are not one."""
    compact = _compact(line)
    return compact.startswith("SEARCHING") or (compact.startswith("BUSINIT") and "ERROR" not in compact)


# -- request building ----------------------------------------------------------------

def pid_request(pids: Sequence[int], responses: int | None = None) -> bytes:
    """A mode 01 request for ``pids``, with the expected-response-count suffix
    (one hex digit, 1-F) when ``responses`` is given: the adapter then returns
    as soon as that many frames came, instead of waiting out its timeout."""
    if not 1 <= len(pids) <= MAX_PIDS_PER_REQUEST:
        raise ValueError(f"a mode 01 request carries 1 to {MAX_PIDS_PER_REQUEST} PIDs, not {len(pids)}")
    request = b"01" + b"".join(b"%02X" % pid for pid in pids)
    if responses is not None:
        if not 1 <= responses <= 15:
            raise ValueError(f"the response count is one hex digit, 1 to F, not {responses}")
        request += b"%X" % responses
    return request


def reply_frames(pids: Sequence[int], pid_bytes: Mapping[int, int], protocol: str) -> int:
    """How many frames the engine ECU answers ``pids`` with: the suffix to send."""
    if protocol not in CAN:
        return 1  # K-line and J1850: one PID per request, one frame
    length = 1 + sum(1 + pid_bytes[pid] for pid in pids)  # service byte, then PID + data each
    if length <= 7:
        return 1  # a single frame carries 7 bytes after its ISO-TP byte
    return 1 + -(-(length - 6) // 7)  # first frame carries 6, each consecutive frame 7


# -- reply parsing -----------------------------------------------------------------------

def _j1850_crc(data: bytes) -> int:
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


@dataclass
class _Messages:
    """Complete ECU messages (service byte first) found in a reply, engine first."""

    engine: list[bytes] = field(default_factory=list)
    others: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, message: bytes, from_engine: bool) -> None:
        (self.engine if from_engine else self.others).append(message)

    def all(self) -> list[bytes]:
        return self.engine + self.others


class _IsoTp:
    """Reassembles ISO-TP (CAN) messages, one per sender."""

    def __init__(self, messages: _Messages):
        self._messages = messages
        self._open: dict[int, tuple[int, bytearray, int]] = {}  # sender -> (length, data, next sequence)

    def frame(self, sender: int, frame: bytes, from_engine: bool) -> None:
        if not frame:
            self._messages.errors.append("truncated")
            return
        pci = frame[0] >> 4
        if pci == 0:  # single frame
            length = frame[0] & 0x0F
            if length == 0 or length > len(frame) - 1:
                self._messages.errors.append("truncated")
                return
            self._messages.add(frame[1:1 + length], from_engine)
        elif pci == 1:  # first frame: 12-bit length, then the first 6 bytes
            if len(frame) < 2:
                self._messages.errors.append("truncated")
                return
            length = (frame[0] & 0x0F) << 8 | frame[1]
            self._open[sender] = (length, bytearray(frame[2:]), 1)
            self._complete(sender, from_engine)
        elif pci == 2:  # consecutive frame, numbered 1..F, 0, 1...
            if sender not in self._open:
                self._messages.errors.append("garbage")
                return
            length, data, expected = self._open[sender]
            if frame[0] & 0x0F != expected:
                del self._open[sender]
                self._messages.errors.append("garbage")
                return
            data += frame[1:]
            self._open[sender] = (length, data, (expected + 1) & 0x0F)
            self._complete(sender, from_engine)
        else:  # flow control or nonsense: nothing an adapter shows for a request
            self._messages.errors.append("garbage")

    def _complete(self, sender: int, from_engine: bool) -> None:
        length, data, _ = self._open[sender]
        if len(data) >= length:
            del self._open[sender]
            self._messages.add(bytes(data[:length]), from_engine)

    def finish(self) -> list[tuple[bytes, bool]]:
        """Messages left incomplete (the reply was cut), as far as they got."""
        return [(bytes(data), sender in (ENGINE_CAN11_ID, ENGINE_CAN29_ID))
                for sender, (_, data, _) in self._open.items()]


def _frames_with_headers(lines: Iterable[str], protocol: str, messages: _Messages) -> list[tuple[bytes, bool]]:
    """Feed every data line with headers into ``messages``; returns partial CAN messages."""
    isotp = _IsoTp(messages)
    for compact in lines:
        if not _is_hex(compact):
            messages.errors.append("garbage")
            continue
        if protocol in CAN:
            id_digits = 3 if protocol in CAN_11BIT else 8
            if len(compact) < id_digits + 2 or (len(compact) - id_digits) % 2:
                messages.errors.append("garbage")
                continue
            sender = int(compact[:id_digits], 16)
            engine_id = ENGINE_CAN11_ID if protocol in CAN_11BIT else ENGINE_CAN29_ID
            isotp.frame(sender, bytes.fromhex(compact[id_digits:]), sender == engine_id)
        else:
            if len(compact) % 2:
                messages.errors.append("garbage")
                continue
            frame = bytes.fromhex(compact)
            if len(frame) < 5:  # 3 header bytes, at least 1 data byte, the check byte
                messages.errors.append("truncated")
                continue
            body, check = frame[:-1], frame[-1]
            expected = _j1850_crc(body) if protocol in J1850 else sum(body) & 0xFF
            if check != expected:
                messages.errors.append("bad_checksum")
                continue
            messages.add(body[3:], body[2] == ENGINE_ADDRESS)
    return isotp.finish()


def _frames_without_headers(lines: Iterable[str], protocol: str, messages: _Messages) -> list[tuple[bytes, bool]]:
    """Feed every data line without headers into ``messages``; returns a partial CAN message."""
    multi: tuple[int, bytearray, int] | None = None  # length, data, next line number
    partial = []
    for compact in lines:
        numbered = re.fullmatch(r"([0-9A-F]):([0-9A-F]*)", compact)
        if protocol in CAN and len(compact) == 3 and _is_hex(compact):
            if multi is not None:
                partial.append((bytes(multi[1]), True))
            multi = (int(compact, 16), bytearray(), 0)
        elif numbered and multi is not None:
            length, data, expected = multi
            digits = numbered.group(2)
            if int(numbered.group(1), 16) != expected or len(digits) % 2:
                messages.errors.append("garbage")
                multi = None
                continue
            data += bytes.fromhex(digits)
            multi = (length, data, (expected + 1) & 0x0F)
            if len(data) >= length:
                messages.add(bytes(data[:length]), True)
                multi = None
        elif _is_hex(compact) and len(compact) % 2 == 0:
            messages.add(bytes.fromhex(compact), True)  # no header: nothing says who sent it
        else:
            messages.errors.append("garbage")
    if multi is not None:
        partial.append((bytes(multi[1]), True))
    return partial


def _split_pids(message: bytes, wanted: Sequence[int], pid_bytes: Mapping[int, int],
                values: dict[int, bytes], errors: list[str]) -> None:
    """Take each wanted PID's data out of one mode 01 answer (41 PID data PID data ...)."""
    if not message:
        errors.append("truncated")
        return
    if message[0] == 0x7F:
        errors.append("negative_response")
        return
    if message[0] != 0x41:
        errors.append("garbage")  # not an answer to a mode 01 request
        return
    i = 1
    while i < len(message):
        pid = message[i]
        length = pid_bytes.get(pid)
        if pid not in wanted or length is None:
            errors.append("garbage")  # a PID we did not ask for: the rest cannot be split
            return
        if i + 1 + length > len(message):
            errors.append("truncated")
            return
        values.setdefault(pid, message[i + 1:i + 1 + length])
        i += 1 + length
    if i == 1:
        errors.append("truncated")


def parse_pid_reply(raw: bytes, pids: Sequence[int], pid_bytes: Mapping[int, int], protocol: str,
                    headers: bool = True, request: bytes | None = None) -> Reply:
    """Each requested PID's data bytes from one reply, or why there are none.

    ``raw`` is the reply without its prompt, ``pids`` the PIDs asked for,
    ``pid_bytes`` each PID's data length (from python-obd's command table),
    ``protocol`` the ELM327 protocol number in use, ``headers`` whether ATH1 is
    on, ``request`` the command sent. Echo is off once the adapter is set up,
    so an echo of the request means it has restarted: "adapter_reset" is
    among the errors (the answer after it is still read). When several ECUs
    answer, the engine's answer wins. Never raises.
    """
    text = bytes(raw).replace(b"\x00", b"").decode("latin-1")
    lines = reply_lines(raw)
    echo = _compact(request.decode("latin-1")) if request else None
    messages = _Messages()
    reported: list[str] = []  # the adapter's own error messages
    data_lines = []
    for line in lines:
        compact = _compact(line)
        if compact == echo:
            reported.append("adapter_reset")
            continue
        if is_progress_line(line):
            continue
        kind = message_kind(line)
        if kind is not None:
            reported.append(kind)
            continue
        # "<DATA ERROR" / "<RX ERROR" after a line: the adapter found that line corrupt
        marker = re.search(r"<(DATA|RX)ERROR$", compact)
        if marker:
            messages.errors.append("data_error" if marker.group(1) == "DATA" else "rx_error")
            continue
        data_lines.append(compact)
    if headers:
        partial = _frames_with_headers(data_lines, protocol, messages)
    else:
        partial = _frames_without_headers(data_lines, protocol, messages)
    values: dict[int, bytes] = {}
    split_errors: list[str] = []
    for message in messages.all():
        _split_pids(message, pids, pid_bytes, values, split_errors)
    for message, _ in sorted(partial, key=lambda m: not m[1]):
        # A cut multi-frame answer: the PIDs that arrived whole are still good.
        _split_pids(message, pids, pid_bytes, values, [])
        split_errors.append("truncated")
    errors = tuple(reported + messages.errors + split_errors)
    if values:
        return Reply(OK, values, errors, text)
    if "adapter_reset" in errors:
        return Reply("adapter_reset", {}, errors, text)
    if errors:
        return Reply(errors[0], {}, errors, text)
    return Reply("garbage", {}, ("garbage",), text)  # nothing at all where an answer belongs


# -- other replies -------------------------------------------------------------------------

def is_ok(raw: bytes) -> bool:
    """Whether an AT command was answered OK (an echo before it is allowed)."""
    return any(_compact(line) == "OK" for line in reply_lines(raw))


def parse_voltage(raw: bytes) -> float | None:
    """The supply voltage from an ATRV reply ("12.6V"), None if there is none."""
    for line in reply_lines(raw):
        match = re.fullmatch(r"(\d{1,2}(?:\.\d{1,3})?)\s*V", line.strip(), re.IGNORECASE)
        if match:
            return float(match.group(1))
    return None


def parse_protocol_number(raw: bytes) -> str | None:
    """The protocol in use from an ATDPN reply ("A6" in auto mode, "6"), None if unreadable."""
    for line in reply_lines(raw):
        compact = _compact(line)
        if compact.startswith("A") and len(compact) == 2:
            compact = compact[1:]
        if len(compact) == 1 and compact in "123456789ABC":
            return compact
    return None


def supported_pids(bitmaps: Mapping[int, bytes]) -> set[int]:
    """Mode 01 PIDs the ECU announces, from its support bitmaps (PID 00, 20, 40...).

    In the bitmap answering PID ``base``, the top bit is PID base+1 and the
    bottom bit base+32 (which is the next bitmap).
    """
    supported = set()
    for base, data in bitmaps.items():
        if len(data) != 4:
            continue
        bits = int.from_bytes(data, "big")
        supported |= {base + 32 - i for i in range(32) if bits >> i & 1}
    return supported
