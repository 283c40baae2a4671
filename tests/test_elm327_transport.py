"""keidash's ELM327 transport: the reply parser without a port (and fuzzed),
the link over a stand-in port, over the emulated ELM327 on a pty, and over
the independent ELM327-emulator package on a pty with an ECU reply delay."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import types

import obd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from keidash.sim.elm327 import VEHICLE_PROTOCOLS, ELM327Protocol, EmulatedELM327
from keidash.sim.truth import parked
from keidash.sources import elm327, elm327_link
from keidash.sources.elm327 import (
    ERROR_KINDS,
    OK,
    PromptFramer,
    parse_pid_reply,
    parse_protocol_number,
    parse_voltage,
    pid_request,
    reply_frames,
    supported_pids,
)
from keidash.sources.elm327_link import (
    AdapterSettings,
    AdapterSilent,
    Elm327,
    LinkError,
    LinkLost,
    LinkStopped,
)

# rpm 1726 -> 1A F8, speed 42 -> 2A, coolant 80 -> 78, throttle 33 % -> 54, 14.1 V -> 37 14
DRIVING = dataclasses.replace(parked(), rpm=1726.0, speed_kmh=42.0, throttle_pct=33.0, gear=3)
PID_BYTES = {cmd.pid: cmd.bytes - 2 for cmd in obd.commands[1] if cmd is not None and cmd.bytes > 2}
RPM, SPEED, COOLANT, THROTTLE, VOLTS = 0x0C, 0x0D, 0x05, 0x11, 0x42


def parse(raw: bytes, pids=(RPM,), protocol="6", headers=True, request=None):
    return parse_pid_reply(raw, pids, PID_BYTES, protocol, headers, request)


# -- the parser -------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "protocol", "headers"), [
    (b"7E8 04 41 0C 1A F8\r\r", "6", True),
    (b"7E804410C1AF8\r", "6", True),
    (b"41 0C 1A F8\r", "6", False),
    (b"410C1AF8\r\n", "8", False),
    (b"18 DA F1 10 04 41 0C 1A F8\r", "7", True),
    (b"18DAF11004410C1AF8\r", "9", True),
    (b"48 6B 10 41 0C 1A F8 22\r", "3", True),  # ISO 9141-2: sum of the bytes & 0xFF
    (b"84F110410C1AF8E4\r", "5", True),  # KWP2000: format byte 0x80 | length
    (b"41 0C 1A F8\r", "4", False),
    (b"\x00SEARCHING...\r7E8 04 41 0C 1A F8\r\r", "6", True),
    (b"BUS INIT: ...OK\r48 6B 10 41 0C 1A F8 22\r", "3", True),
])
def test_rpm_in_every_format(raw, protocol, headers):
    reply = parse(raw, protocol=protocol, headers=headers)
    assert (reply.kind, dict(reply.values), reply.errors) == (OK, {RPM: b"\x1a\xf8"}, ())


def test_j1850_check_byte_is_a_crc():
    # SAE J1850 CRC-8 (polynomial 1D, start FF, inverted; its check value for
    # "123456789" is 4B) of 48 6B 10 41 0C 1A F8
    assert elm327._j1850_crc(b"123456789") == 0x4B
    good = parse(b"48 6B 10 41 0C 1A F8 B2\r", protocol="2")
    assert good.values == {RPM: b"\x1a\xf8"}
    bad = parse(b"48 6B 10 41 0C 1A F8 22\r", protocol="2")
    assert (bad.kind, bad.values) == ("bad_checksum", {})


def test_an_echo_means_the_adapter_restarted():
    # Echo is switched off when connecting: it is back only after a restart.
    reply = parse(b"010C1\r7E804410C1AF8\r", request=b"010C1")
    assert (reply.kind, reply.values, reply.errors) == (OK, {RPM: b"\x1a\xf8"}, ("adapter_reset",))
    # ... and with headers off again its answer cannot be read: the reset is what to report
    reply = parse(b"010C1\r410C1AF8\r", request=b"010C1")
    assert (reply.kind, reply.values, reply.errors) == ("adapter_reset", {}, ("adapter_reset", "garbage"))


def test_multi_pid_answer_is_split_by_each_pids_length():
    reply = parse(b"7E8 06 41 0C 1A F8 0D 2A\r", pids=(RPM, SPEED))
    assert reply.values == {RPM: b"\x1a\xf8", SPEED: b"\x2a"}
    reply = parse(b"410D2A0C1AF8\r", pids=(RPM, SPEED), headers=False)  # any order
    assert reply.values == {RPM: b"\x1a\xf8", SPEED: b"\x2a"}


@pytest.mark.parametrize(("raw", "headers"), [
    (b"7E8 10 0F 41 0C 1A F8 0D 2A\r7E8 21 05 78 11 54 1C 0A 42\r7E8 22 37 14\r", True),
    (b"00F\r0: 41 0C 1A F8 0D 2A\r1: 05 78 11 54 1C 0A 42\r2: 37 14\r", False),
])
def test_multi_frame_answer_is_reassembled(raw, headers):
    pids = (RPM, SPEED, COOLANT, THROTTLE, 0x1C, VOLTS)
    reply = parse(raw, pids=pids, headers=headers)
    assert (reply.kind, reply.errors) == (OK, ())
    assert reply.values == {RPM: b"\x1a\xf8", SPEED: b"\x2a", COOLANT: b"\x78", THROTTLE: b"\x54",
                            0x1C: b"\x0a", VOLTS: b"\x37\x14"}


def test_a_cut_multi_frame_answer_keeps_the_whole_pids_only():
    pids = (RPM, SPEED, COOLANT, THROTTLE, 0x1C, VOLTS)
    reply = parse(b"7E8 10 0F 41 0C 1A F8 0D 2A\r7E8 21 05 78 11 54 1C 0A 42\r", pids=pids)
    assert reply.kind == OK and "truncated" in reply.errors
    assert reply.values == {RPM: b"\x1a\xf8", SPEED: b"\x2a", COOLANT: b"\x78", THROTTLE: b"\x54", 0x1C: b"\x0a"}


def test_the_engines_answer_wins():
    reply = parse(b"7EA 03 41 0D 28\r7E8 03 41 0D 2A\r", pids=(SPEED,))
    assert reply.values == {SPEED: b"\x2a"}
    reply = parse(b"48 6B 18 41 0D 28 41\r48 6B 10 41 0D 2A 3B\r", pids=(SPEED,), protocol="3")
    assert reply.values == {SPEED: b"\x2a"}
    # Only another ECU answered: its speed is still a speed.
    assert parse(b"7EA 03 41 0D 28\r", pids=(SPEED,)).values == {SPEED: b"\x28"}


@pytest.mark.parametrize(("said", "kind"), [
    ("NO DATA", "no_data"),
    ("?", "question_mark"),
    ("STOPPED", "stopped"),
    ("CAN ERROR", "can_error"),
    ("BUS INIT: ...ERROR", "bus_init_error"),
    ("BUS INIT:ERROR", "bus_init_error"),
    ("UNABLE TO CONNECT", "unable_to_connect"),
    ("SEARCHING...\rUNABLE TO CONNECT", "unable_to_connect"),
    ("BUS ERROR", "bus_error"),
    ("BUS BUSY", "bus_busy"),
    ("FB ERROR", "fb_error"),
    ("DATA ERROR", "data_error"),
    ("BUFFER FULL", "buffer_full"),
    ("ERR94", "internal_error"),
    ("LV RESET", "adapter_reset"),
    ("\r\rELM327 v1.5", "adapter_reset"),
    ("ACT ALERT", "low_power_alert"),
    ("7E8 03 7F 01 12", "negative_response"),
    ("7E8 04 41 0C 1A", "truncated"),
    ("41 0C 1A", "truncated"),
    ("7E8 03 41 0D 2A <RX ERROR", "rx_error"),
    ("41 0D 2A <DATA ERROR", "data_error"),
    ("48 6B 10 41 0C 1A F8 23", "bad_checksum"),
    ("7E8 03 41 0F 2A", "garbage"),  # a PID we did not ask for
    ("\x00\xff#!~", "garbage"),
    ("", "garbage"),
])
def test_each_error_reply_has_its_kind(said, kind):
    protocol = "3" if said.startswith("48") else "6"
    headers = not said.startswith("41")
    reply = parse(said.encode("latin-1") + b"\r\r", protocol=protocol, headers=headers)
    assert (reply.kind, reply.values) == (kind, {})
    assert kind in ERROR_KINDS and kind in reply.errors


def test_a_corrupt_line_beside_a_good_one_is_counted_not_fatal():
    reply = parse(b"7E8 03 41 0D 2A\r\x00\xff#\r", pids=(SPEED,))
    assert (reply.kind, reply.values, reply.errors) == (OK, {SPEED: b"\x2a"}, ("garbage",))


def test_framer_cuts_at_prompts_across_reads():
    framer = PromptFramer()
    assert framer.feed(b"7E8 04 41") == []
    assert framer.feed(b" 0C 1A F8\r\r>OK\r") == [b"7E8 04 41 0C 1A F8\r\r"]
    assert framer.feed(b"\r>>") == [b"OK\r\r", b""]
    assert framer.pending == b""


def test_framer_drops_endless_noise():
    framer = PromptFramer(max_reply_bytes=100)
    assert framer.feed(b"\x55" * 150) == []
    assert (framer.overflows, framer.pending) == (1, b"")
    assert framer.feed(b"OK\r>") == [b"OK\r"]


def test_requests_carry_the_response_count():
    assert pid_request((RPM,), 1) == b"010C1"
    assert pid_request((RPM, SPEED), 1) == b"010C0D1"
    assert pid_request((RPM,)) == b"010C"
    assert pid_request((RPM, SPEED, COOLANT, THROTTLE, 0x1C, VOLTS), 3) == b"010C0D05111C423"
    for bad in ((), (1, 2, 3, 4, 5, 6, 7)):
        with pytest.raises(ValueError):
            pid_request(bad, 1)
    with pytest.raises(ValueError):
        pid_request((RPM,), 16)


@pytest.mark.parametrize(("pids", "protocol", "frames"), [
    ((RPM,), "6", 1),
    ((RPM, SPEED), "6", 1),  # 41 0C A B 0D C: 6 bytes, one frame
    ((RPM, SPEED, COOLANT), "6", 2),  # 8 bytes: first frame 6, consecutive frame 2
    ((RPM, SPEED, COOLANT, THROTTLE, 0x1C, VOLTS), "7", 3),  # 15 bytes: 6 + 7 + 2
    ((RPM,), "5", 1),
])
def test_frames_to_expect(pids, protocol, frames):
    assert reply_frames(pids, PID_BYTES, protocol) == frames


def test_support_bitmaps_voltage_and_protocol_number():
    assert supported_pids({0x00: bytes.fromhex("BE3FA813")}) >= {0x01, 0x05, 0x0C, 0x0D, 0x11, 0x20}
    assert 0x02 not in supported_pids({0x00: bytes.fromhex("BE3FA813")})
    assert supported_pids({0x40: bytes.fromhex("40000000"), 0x20: b"\x00"}) == {0x42}
    assert parse_voltage(b"12.6V\r") == 12.6
    assert parse_voltage(b"ATRV\r14V\r") == 14.0
    assert parse_voltage(b"?\r") is None
    assert [parse_protocol_number(raw) for raw in (b"A6\r", b"3\r", b"A\r", b"?\r", b"")] == ["6", "3", "A", None, None]


# -- property-based: random bytes, cut lines, bad checksums ----------------------------------

protocols = st.sampled_from("123456789ABC")
pid_sets = st.lists(st.sampled_from(sorted(PID_BYTES)), min_size=1, max_size=6, unique=True)


@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=200), pids=pid_sets, protocol=protocols, headers=st.booleans())
def test_random_bytes_never_raise(raw, pids, protocol, headers):
    reply = parse(raw, pids=pids, protocol=protocol, headers=headers)
    assert reply.kind == OK or reply.kind in ERROR_KINDS
    assert all(kind in ERROR_KINDS for kind in reply.errors)
    assert set(reply.values) <= set(pids)
    assert all(len(data) == PID_BYTES[pid] for pid, data in reply.values.items())


likely_text = st.lists(st.sampled_from(
    ["7E8", "7EA", "18DAF110", "41", "0C", "0D", "1A", "F8", "10", "21", "22", "00F", "0:", "1:", " ", "\r",
     "NO DATA", "?", "<DATA ERROR", "SEARCHING...", "BUS INIT: ...", "ERROR", "48", "6B", "7F", "\x00"]),
    max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=likely_text, pids=pid_sets, protocol=protocols, headers=st.booleans())
def test_near_miss_replies_never_raise(text, pids, protocol, headers):
    reply = parse(text.encode("latin-1"), pids=pids, protocol=protocol, headers=headers)
    assert reply.kind == OK or reply.kind in ERROR_KINDS


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_framer_gives_the_same_replies_however_the_bytes_are_cut(data, cuts):
    whole = PromptFramer().feed(data)
    framer, pieces, start = PromptFramer(), [], 0
    for cut in sorted(cuts) + [len(data)]:
        pieces += framer.feed(data[start:cut])
        start = max(start, cut)
    assert pieces == whole


truths = st.builds(
    lambda rpm, speed, coolant, volts, throttle: dataclasses.replace(
        parked(), rpm=rpm, speed_kmh=speed, coolant_c=coolant, battery_v=volts, throttle_pct=throttle),
    st.floats(0, 16383.75), st.floats(0, 255), st.floats(-40, 215), st.floats(0, 65.535), st.floats(0, 100))
ANSWERED = (RPM, SPEED, COOLANT, THROTTLE, VOLTS)


def chip_reply(protocol, truth, pids, headers, spaces=False):
    """What the emulated chip says to ``pids`` once set up, and the true data bytes."""
    elm = ELM327Protocol(lambda: truth, protocol)
    for command in (b"ATE0", b"ATS1" if spaces else b"ATS0", b"ATH1" if headers else b"ATH0",
                    b"ATTP" + protocol.encode(), b"0100"):
        elm.handle(command)
    raw = elm.handle(pid_request(pids))
    assert raw.endswith(b">")
    return raw[:-1]


@settings(max_examples=150, deadline=None)
@given(protocol=st.sampled_from(VEHICLE_PROTOCOLS), truth=truths, headers=st.booleans(), spaces=st.booleans(),
       pids=st.lists(st.sampled_from(ANSWERED), min_size=1, max_size=5, unique=True))
def test_python_obd_decodes_what_the_parser_takes_out(protocol, truth, headers, spaces, pids):
    if protocol not in "6789":
        pids = pids[:1]  # one PID per request on the K-line
    reply = parse(chip_reply(protocol, truth, pids, headers, spaces), pids=pids, protocol=protocol, headers=headers)
    assert (reply.kind, reply.errors) == (OK, ()) and set(reply.values) == set(pids)
    commands = {cmd.pid: cmd for cmd in (obd.commands.RPM, obd.commands.SPEED, obd.commands.COOLANT_TEMP,
                                         obd.commands.THROTTLE_POS, obd.commands.CONTROL_MODULE_VOLTAGE)}
    expected = {RPM: (truth.rpm, 0.125), SPEED: (truth.speed_kmh, 0.5), COOLANT: (truth.coolant_c, 0.5),
                THROTTLE: (truth.throttle_pct, 100 / 255 / 2), VOLTS: (truth.battery_v, 0.0005)}
    for pid, data in reply.values.items():
        message = obd.protocols.protocol.Message([])
        message.data = bytearray([0x41, pid]) + data
        value = commands[pid].decode([message]).magnitude
        target, resolution = expected[pid]
        assert abs(value - target) <= resolution + 1e-9, (pid, value, target)


@settings(max_examples=300, deadline=None)
@given(protocol=st.sampled_from(VEHICLE_PROTOCOLS), truth=truths, headers=st.booleans(),
       pids=st.lists(st.sampled_from(ANSWERED), min_size=1, max_size=5, unique=True),
       cut=st.integers(0, 200), drop_line=st.integers(-1, 4))
def test_a_cut_reply_never_gives_a_wrong_value(protocol, truth, headers, pids, cut, drop_line):
    if protocol not in "6789":
        pids = pids[:1]
    raw = chip_reply(protocol, truth, pids, headers)
    whole = parse(raw, pids=pids, protocol=protocol, headers=headers).values
    lines = raw.split(b"\r")
    if 0 <= drop_line < len(lines):
        del lines[drop_line]
    damaged = b"\r".join(lines)[:cut]
    reply = parse(damaged, pids=pids, protocol=protocol, headers=headers)
    for pid, data in reply.values.items():
        assert whole[pid] == data


@settings(max_examples=300, deadline=None)
@given(protocol=st.sampled_from("345"), truth=truths, pid=st.sampled_from(ANSWERED),
       position=st.integers(0, 20), flip=st.integers(1, 255))
def test_a_k_line_byte_changed_in_transit_fails_its_checksum(protocol, truth, pid, position, flip):
    raw = chip_reply(protocol, truth, (pid,), headers=True)
    frame = bytearray(bytes.fromhex(raw.strip().decode()))
    assume(position < len(frame))
    frame[position] ^= flip
    reply = parse(frame.hex().upper().encode() + b"\r", pids=(pid,), protocol=protocol)
    assert (reply.kind, reply.values) == ("bad_checksum", {})


# -- the link over a stand-in port ------------------------------------------------------------

FAKE_URL = "socket://adapter.test:35000"  # a URL: no baud rate to find


class VirtualClock:
    """The link's clock in these tests: it moves only when the port has nothing to read
    (by the read's slice, as a real port's timeout would), so how long the link waits is
    counted in reads and cannot depend on how busy the machine is. Put in as the link's
    ``time``, which has no ``sleep``: a link that slept would fail with AttributeError."""

    def __init__(self):
        self.now = 1000.0
        self.idle_reads = 0

    def monotonic(self) -> float:
        return self.now

    def idle(self) -> None:
        self.idle_reads += 1
        self.now += elm327_link.READ_SLICE_S


@contextlib.contextmanager
def virtual_clock():
    clock = VirtualClock()
    real = elm327_link.time
    elm327_link.time = types.SimpleNamespace(monotonic=clock.monotonic)
    try:
        yield clock
    finally:
        elm327_link.time = real


class FakePort:
    """A serial port with an ELM327 behind it that answers at once; ``script``
    may replace the answer to OBD requests (None: silence). At another baud
    rate than ``chip_baud`` the chip hears and says only noise. With a ``clock``
    (:class:`VirtualClock`) a read that finds nothing moves it instead of sleeping;
    ``on_idle`` is called after each such read."""

    def __init__(self, truth=DRIVING, protocol="6", script=None, chip_baud=38400, clock=None, on_idle=None):
        self.chip = ELM327Protocol(lambda: truth, protocol)
        self.script = script
        self.written: list[bytes] = []
        self._out = bytearray()
        self.closed = False
        self.baudrate = 38400
        self.chip_baud = chip_baud
        self.clock = clock
        self.on_idle = on_idle

    def __call__(self, url, **kwargs):  # stands in for serial_for_url
        return self

    def write(self, data: bytes) -> int:
        if self.baudrate != self.chip_baud:
            self._out += b"\xf8\x80\x00"
            return len(data)
        for line in data.split(b"\r")[:-1]:
            self.written.append(line)
            answer = self.chip.handle(line)
            if self.script is not None and self.chip.last_kind == "obd":
                answer = self.script(line, answer)
            if answer is not None:
                self._out += answer
        return len(data)

    @property
    def in_waiting(self) -> int:
        return len(self._out)

    def read(self, size=1) -> bytes:
        if not self._out:
            if self.clock is None:
                time.sleep(elm327_link.READ_SLICE_S)
            else:
                self.clock.idle()
            if self.on_idle is not None:
                self.on_idle()
            return b""
        chunk = bytes(self._out[:size])
        del self._out[:size]
        return chunk

    def reset_input_buffer(self) -> None:
        self._out.clear()

    def close(self) -> None:
        self.closed = True


def link_on(fake: FakePort, **settings) -> Elm327:
    return Elm327(FAKE_URL, AdapterSettings(**settings), PID_BYTES, open_port=fake)


def test_connect_sets_the_adapter_up_without_sleeping():
    fake = FakePort(protocol="6")
    link = link_on(fake, protocol="6")
    t0 = time.monotonic()
    with virtual_clock() as clock:
        fake.clock = clock
        info = link.connect()
    # every answer was there when it was read: the link never waited, and never slept
    # (the virtual clock's stand-in for the time module has no sleep to call)
    assert clock.idle_reads == 0
    fake.clock = None
    assert fake.written[:7] == [b"ATZ", b"ATE0", b"ATS0", b"ATH1", b"ATAT1", b"ATST19", b"ATTP6"]
    # the first bitmap on the bus, the engine addressed alone, the other bitmaps, the multi-PID probe
    assert fake.written[7:] == [b"0100", b"ATSH7E0", b"01201", b"01401", b"010C0D1"]
    assert (info.banner, info.protocol, info.searched, info.multi_pid) == ("ELM327 v1.5", "6", False, True)
    assert {RPM, SPEED, COOLANT, THROTTLE, VOLTS} <= info.supported
    reply, t = link.query((RPM, SPEED))
    assert fake.written[-1] == b"010C0D1" and reply.values == {RPM: b"\x1a\xf8", SPEED: b"\x2a"}
    assert t0 <= t <= time.monotonic()
    assert link.voltage()[0] == 14.1
    link.close()
    assert fake.closed


def test_a_port_whose_device_went_mid_flush_is_an_adapter_lost():
    """Unplugged while the link flushes its input before a request, pyserial's tcflush raises
    termios.error, which is no OSError: it escaped as a traceback ("source failed") instead of the
    adapter-lost sentence (seen once in test_obd_source's unplug test on a busy machine)."""
    import termios

    fake = FakePort(protocol="6")
    link = link_on(fake, protocol="6")
    link.connect()

    def gone() -> None:
        raise termios.error(5, "Input/output error")

    fake.reset_input_buffer = gone
    with pytest.raises(LinkLost, match="was it unplugged"):
        link.query((RPM,))
    probing = FakePort(chip_baud=9600)
    probing.reset_input_buffer = gone
    with pytest.raises(LinkLost, match="was it unplugged"):
        Elm327("/dev/ttyUSB-keidash-fake", AdapterSettings(protocol="6"), PID_BYTES, open_port=probing).connect()


def test_the_baud_rate_is_found_when_not_given():
    fake = FakePort(chip_baud=9600)
    Elm327("/dev/ttyUSB-keidash-fake", AdapterSettings(protocol="6"), PID_BYTES, open_port=fake).connect()
    assert fake.baudrate == 9600
    fake = FakePort(chip_baud=1200)
    with pytest.raises(LinkError, match="does not answer at any usual baud rate"):
        Elm327("/dev/ttyUSB-keidash-fake", AdapterSettings(protocol="6"), PID_BYTES, open_port=fake).connect()


def test_k_line_asks_one_pid_per_request():
    fake = FakePort(protocol="5")
    link = link_on(fake, protocol="5")
    info = link.connect()
    assert not info.multi_pid and b"010C0D1" not in fake.written
    assert b"ATSH7E0" not in fake.written and b"0120" in fake.written  # broadcast, no count
    assert link.query((RPM,))[0].values == {RPM: b"\x1a\xf8"}
    assert fake.written[-1] == b"010C1"


def test_the_configured_protocol_falls_back_to_a_search():
    fake = FakePort(protocol="5")
    link = link_on(fake, protocol="6")
    info = link.connect()
    assert (info.protocol, info.searched) == ("5", True)
    assert info.errors == ("can_error",)
    assert fake.written[6:10] == [b"ATTP6", b"0100", b"ATSP0", b"0100"] and b"ATDPN" in fake.written


def test_headers_off_works_too():
    link = link_on(FakePort(protocol="7"), protocol="7", headers=False)
    link.connect()
    assert link.query((RPM, SPEED))[0].values == {RPM: b"\x1a\xf8", SPEED: b"\x2a"}


def test_ignition_off_and_a_loose_plug_are_told_apart():
    fake = FakePort(protocol="6")
    fake.chip.ecu_awake = False
    with pytest.raises(LinkError, match="the ECU does not answer: is the ignition on"):
        link_on(fake, protocol="6").connect()
    fake = FakePort(truth=dataclasses.replace(DRIVING, battery_v=0.4), protocol="6")
    fake.chip.ecu_awake = False
    with pytest.raises(LinkError, match="reads no battery voltage: is it pushed fully into the OBD socket"):
        link_on(fake, protocol="6").connect()


def test_a_device_that_is_no_elm327_is_told_so():
    fake = FakePort()
    fake.chip.handle = lambda line: b"$GPRMC,hello\r\n>"  # answers, but like nothing we know
    with pytest.raises(LinkError, match="does not answer like an ELM327"):
        link_on(fake).connect()


@pytest.mark.parametrize(("said", "kind"), [
    (b"NO DATA\r\r>", "no_data"),
    (b"STOPPED\r\r>", "stopped"),
    (b"CAN ERROR\r\r>", "can_error"),
    (b"\x01\x02garbage\r>", "garbage"),
])
def test_error_replies_come_back_as_their_kind(said, kind):
    fake = FakePort()
    link = link_on(fake, protocol="6")
    link.connect()
    fake.script = lambda line, answer: said
    reply, _ = link.query((RPM,))
    assert (reply.kind, reply.values) == (kind, {})


def test_an_adapter_without_the_count_suffix_is_polled_without_it():
    fake = FakePort()
    link = link_on(fake, protocol="6", multi_pid=False)
    link.connect()
    # A v1.0 chip: "?" to any request ending in a count digit.
    fake.script = lambda line, answer: b"?\r\r>" if len(line) % 2 else answer
    assert link.query((RPM,))[0].values == {RPM: b"\x1a\xf8"}
    assert link.query((SPEED,))[0].values == {SPEED: b"\x2a"}
    assert fake.written[-4:] == [b"010C1", b"010C1", b"010C", b"010D"]  # once more, then without


def test_one_garbled_request_does_not_drop_the_count_suffix():
    fake = FakePort()
    link = link_on(fake, protocol="6", multi_pid=False)
    link.connect()
    answers = [b"?\r\r>"]
    fake.script = lambda line, answer: answers.pop() if answers else answer
    reply, _ = link.query((RPM,))
    assert (reply.kind, reply.values, reply.errors) == (OK, {RPM: b"\x1a\xf8"}, ("question_mark",))
    link.query((SPEED,))
    assert fake.written[-3:] == [b"010C1", b"010C1", b"010D1"]


def test_a_silent_adapter_is_declared_so_within_the_bound():
    fake = FakePort()
    link = link_on(fake, protocol="6")
    link.connect()
    assert link.silence_s < 1.0  # derived from ATST (100 ms) and the bus
    fake.script = lambda line, answer: None
    with virtual_clock() as clock:
        fake.clock = clock
        with pytest.raises(AdapterSilent, match="stopped answering"):
            link.query((RPM,))
    # declared silent after the silence limit, counted on the link's clock, and one read slice
    # past it at most: neither earlier (a slow reply is waited for) nor later
    slices = link.silence_s / elm327_link.READ_SLICE_S
    assert slices < clock.idle_reads <= slices + 2


def test_stopping_ends_a_wait():
    stopping = threading.Event()
    fake = FakePort()
    link = Elm327(FAKE_URL, AdapterSettings(protocol="6", silence_s=30.0), PID_BYTES,
                  stopping=stopping, open_port=fake)
    link.connect()
    fake.script = lambda line, answer: None
    with virtual_clock() as clock:
        fake.clock = clock
        fake.on_idle = lambda: clock.idle_reads == 3 and stopping.set()
        with pytest.raises(LinkStopped):
            link.query((RPM,))
    # the wait ended at the first read after stopping was set, not at the 30 s silence limit
    assert clock.idle_reads == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=st.one_of(st.binary(max_size=80), likely_text.map(lambda t: t.encode("latin-1"))),
       prompt=st.booleans())
def test_random_answers_neither_raise_nor_block(answer, prompt):
    fake = FakePort()
    link = Elm327(FAKE_URL, AdapterSettings(protocol="6", silence_s=0.1), PID_BYTES, open_port=fake)
    link.connect()
    fake.script = lambda line, _: answer + (b">" if prompt else b"")
    with virtual_clock() as clock:
        fake.clock = clock
        try:
            reply, _ = link.query((RPM, SPEED))
            assert reply.kind == OK or reply.kind in ERROR_KINDS
        except AdapterSilent:
            pass  # no prompt came: a frozen adapter, as far as anyone can tell
    # bounded on the link's own clock: 3 x the silence limit at most, or 2 s, and a slice
    assert clock.idle_reads * elm327_link.READ_SLICE_S <= max(2.0, 3 * 0.1) + elm327_link.READ_SLICE_S


def test_a_port_that_fails_is_lost():
    fake = FakePort()
    link = link_on(fake, protocol="6")
    link.connect()

    def unplugged(size=1):
        raise elm327_link.serial.SerialException("read failed: [Errno 5] Input/output error")

    fake.read = unplugged
    with pytest.raises(LinkLost, match="was it unplugged"):
        link.query((RPM,))


def test_a_port_that_does_not_open_says_why():
    with pytest.raises(LinkError, match="no OBD adapter at /dev/ttyUSB-keidash-missing: is it plugged in"):
        Elm327("/dev/ttyUSB-keidash-missing", AdapterSettings(), PID_BYTES).connect()
    with pytest.raises(LinkError, match="cannot reach the OBD adapter at socket://127.0.0.1:9"):
        Elm327("socket://127.0.0.1:9", AdapterSettings(), PID_BYTES).connect()


# -- the link over the emulated ELM327 on a pty ------------------------------------------------

@pytest.mark.parametrize(("protocol", "multi"), [("6", True), ("7", True), ("5", False), ("3", False)])
def test_link_over_a_pty(protocol, multi, monkeypatch):
    # What is proved here is the conversation, not its pace: the link's silence limits (0.5 s for
    # a reply, 1 s for an AT command) are widened so that an emulator thread that a loaded machine
    # wakes late is waited for, not taken for a frozen adapter (tests above pin the limits).
    monkeypatch.setattr(elm327_link, "AT_SILENCE_S", 10.0)
    with EmulatedELM327(lambda: DRIVING, protocol, reply_delay_s=0.01) as emu:
        link = Elm327(emu.port, AdapterSettings(protocol=protocol, silence_s=10.0), PID_BYTES)
        try:
            info = link.connect()
            assert (info.protocol, info.multi_pid) == (protocol, multi)
            fast = [(RPM, SPEED)] if multi else [(RPM,), (SPEED,)]
            values = {}
            for pids in fast + [(COOLANT,), (THROTTLE,), (VOLTS,)]:
                reply, _ = link.query(pids)
                assert reply.kind == OK
                values.update(reply.values)
            assert values == {RPM: b"\x1a\xf8", SPEED: b"\x2a", COOLANT: b"\x78", THROTTLE: b"\x54",
                              VOLTS: b"\x37\x14"}
        finally:
            link.close()
        # three bitmaps and (on CAN) the multi-PID probe, then the queries: nothing else
        assert emu.chip.counts["obd"] == 3 + multi + len(fast) + 3


# -- against the independent ELM327-emulator package ------------------------------------------

@contextlib.contextmanager
def package_emulator(tmp_path, monkeypatch, delay_s: float = 0.0):
    """ELM327-emulator on a pty, every answer ``delay_s`` late (its UDS P2 timer)."""
    elm = pytest.importorskip("elm", reason="ELM327-emulator is a test-only extra")
    # It configures the root logger from its own YAML (and writes elm.log) unless
    # ELM_LOG_CFG names another file: hand it one that changes nothing.
    quiet = tmp_path / "elm-logging.yaml"
    quiet.write_text("version: 1\nincremental: true\n")
    monkeypatch.setenv("ELM_LOG_CFG", str(quiet))
    monkeypatch.chdir(tmp_path)
    emulator = elm.Elm(batch_mode=True)
    port = emulator.get_pty()  # made before its thread starts, so there is only one
    with emulator:
        emulator.delay = delay_s
        yield emulator, port


def freeze_package_emulator(emulator) -> None:
    """It pauses between commands: it answers the one it is reading, then nothing."""
    emulator.threadState = emulator.THREAD.PAUSED


@pytest.mark.parametrize(("protocol", "headers"), [("6", True), ("5", False), ("3", False)])
def test_link_against_the_elm327_emulator_package(tmp_path, monkeypatch, protocol, headers):
    # It frames every answer as 11-bit CAN whatever ATTP says, so on the
    # K-line protocols it is read with headers off (the chip then strips them).
    monkeypatch.setattr(elm327_link, "AT_SILENCE_S", 10.0)  # a late thread is waited for (see above)
    with package_emulator(tmp_path, monkeypatch, delay_s=0.005) as (emulator, port):
        link = Elm327(port, AdapterSettings(protocol=protocol, headers=headers, silence_s=10.0), PID_BYTES)
        try:
            info = link.connect()
            assert (info.protocol, info.searched) == (protocol, False)
            assert {RPM, SPEED, COOLANT} <= info.supported
            # It answers "?" to a multi-PID request with a count, so one PID per request.
            assert not info.multi_pid
            for _ in range(5):
                rpm, _ = link.query((RPM,))
                speed, _ = link.query((SPEED,))
                assert 0 <= int.from_bytes(rpm.values[RPM], "big") / 4 <= 16383.75
                assert set(speed.values) == {SPEED}
            assert link.voltage()[0] > 6
            if headers:  # its multi-PID answer, asked without a count, is split right
                reply, _ = link._request((RPM, SPEED), None)
                assert set(reply.values) == {RPM, SPEED}
        finally:
            link.close()


def test_elm327_emulator_frozen_then_killed(tmp_path, monkeypatch):
    with package_emulator(tmp_path, monkeypatch, delay_s=0.05) as (emulator, port):
        link = Elm327(port, AdapterSettings(protocol="6"), PID_BYTES)
        try:
            link.connect()
            assert link.query((RPM,))[0].kind == OK
            freeze_package_emulator(emulator)
            try:
                link.query((RPM,))  # answered when its thread was already reading it again ...
            except AdapterSilent:
                pass  # ... which a loaded machine may not have let it do yet: then frozen at once
            # python-obd blocks for minutes here; the link says the adapter went silent (not
            # noise, not lost). How long it waits is pinned above on a virtual clock.
            with pytest.raises(AdapterSilent, match="stopped answering"):
                link.query((RPM,))
            emulator.threadState = emulator.THREAD.ACTIVE
            emulator.terminate()  # the adapter dies: its pty closes
            with pytest.raises((LinkLost, AdapterSilent)):
                for _ in range(3):
                    link.query((RPM,))
        finally:
            link.close()
