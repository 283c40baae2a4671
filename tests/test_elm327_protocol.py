"""The emulated ELM327 without a port: AT handling, formats, and replies that
python-obd's own protocol parsers and decoders read back as the truth."""

from __future__ import annotations

import dataclasses
import re

import obd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from obd.protocols import (
    ISO_9141_2,
    ISO_14230_4_5baud,
    ISO_14230_4_fast,
    ISO_15765_4_11bit_250k,
    ISO_15765_4_11bit_500k,
    ISO_15765_4_29bit_250k,
    ISO_15765_4_29bit_500k,
)

from keidash.errors import ConfigError
from keidash.sim.elm327 import VEHICLE_PROTOCOLS, ELM327Protocol
from keidash.sim.truth import parked

PYTHON_OBD_PARSERS = {
    "3": ISO_9141_2,
    "4": ISO_14230_4_5baud,
    "5": ISO_14230_4_fast,
    "6": ISO_15765_4_11bit_500k,
    "7": ISO_15765_4_29bit_500k,
    "8": ISO_15765_4_11bit_250k,
    "9": ISO_15765_4_29bit_250k,
}

# rpm 1726 -> 0x1AF8, speed 42 -> 0x2A, coolant 80 -> 0x78, throttle 33 % -> 0x54
DRIVING = dataclasses.replace(parked(), rpm=1726.0, speed_kmh=42.0, throttle_pct=33.0, gear=3)


def chip(protocol="6", truth=DRIVING) -> ELM327Protocol:
    return ELM327Protocol(lambda: truth, protocol)


def python_obd_setup(elm: ELM327Protocol, protocol: str | None = None) -> None:
    """The commands python-obd sends when it connects, echo off from then on."""
    for command in (b"ATZ", b"ATE0", b"ATH1", b"ATL0"):
        elm.handle(command)
    elm.handle(b"ATSP0" if protocol is None else b"ATTP" + protocol.encode())


def lines_of(reply: bytes) -> list[str]:
    """Split a reply into lines the way python-obd's ELM327 reader does."""
    assert reply.endswith(b">")
    return [s.strip() for s in re.split("[\r\n]", reply[:-1].decode()) if s]


def answer(elm: ELM327Protocol, command: bytes) -> list[str]:
    return lines_of(elm.handle(command))


# -- AT commands --------------------------------------------------------------

def test_reset_prints_the_banner_and_restores_echo():
    elm = chip()
    assert elm.handle(b"ATZ") == b"ATZ\r\r\rELM327 v1.5\r\r>"
    assert elm.handle(b"ATE0") == b"ATE0\rOK\r\r>"  # echoed: it arrived while echo was on
    assert elm.handle(b"ATI") == b"ELM327 v1.5\r\r>"
    assert elm.handle(b"ATWS") == b"\r\rELM327 v1.5\r\r>"
    assert elm.handle(b"ATI") == b"ATI\rELM327 v1.5\r\r>"  # echo is back on after a reset


def test_atd_sets_defaults_and_answers_ok():
    elm = chip()
    elm.handle(b"ATE0")
    elm.handle(b"ATH1")
    assert elm.handle(b"ATD") == b"OK\r\r>"
    assert (elm.echo, elm.headers) == (True, False)


def test_identification():
    elm = chip()
    elm.handle(b"ATE0")
    assert answer(elm, b"ATI") == ["ELM327 v1.5"]
    assert answer(elm, b"AT@1") == ["OBDII to RS232 Interpreter"]


def test_commands_ignore_case_and_spaces():
    elm = chip()
    assert elm.handle(b"a t e 0") == b"a t e 0\rOK\r\r>"
    assert elm.handle(b" at h1 ") == b"OK\r\r>"
    assert answer(elm, b"0 1 0 c") == ["SEARCHING...", "7E8 04 41 0C 1A F8"]


def test_linefeeds_on_end_every_line_with_crlf():
    elm = chip()
    elm.handle(b"ATE0")
    assert elm.handle(b"ATL1") == b"OK\r\n\r\n>"
    assert elm.handle(b"010D") == b"SEARCHING...\r\n41 0D 2A\r\n\r\n>"
    assert elm.handle(b"ATL0") == b"OK\r\r>"


def test_rv_reads_the_battery_voltage():
    elm = chip(truth=dataclasses.replace(DRIVING, battery_v=12.64))
    elm.handle(b"ATE0")
    assert answer(elm, b"AT RV") == ["12.6V"]


@pytest.mark.parametrize("command", [
    b"ATAT0", b"ATAT1", b"ATAT2", b"ATST32", b"AT ST FF", b"ATCAF0", b"ATCAF1", b"ATM0",
    b"ATM1", b"AT SH 7E0", b"ATSH7DF", b"ATSH 18DB33F1", b"ATSH 68 6A F1", b"ATD0", b"ATAL",
    b"ATCRA 7E8", b"ATPC", b"ATS1",
])
def test_settings_are_accepted(command):
    elm = chip()
    elm.handle(b"ATE0")
    assert answer(elm, command) == ["OK"]


@pytest.mark.parametrize("command", [
    b"ATXYZ", b"HELLO", b"0", b"ATSH 7E", b"ATSP D", b"ATST 1", b"01 02 03 04 05 06 07 08", b"\x7f\x7f",
    "ATI\u00e9".encode("latin-1"),
])
def test_unknown_commands_answer_question_mark(command):
    elm = chip()
    elm.handle(b"ATE0")
    assert elm.handle(command) == b"?\r\r>"


# -- protocols ---------------------------------------------------------------

def test_auto_search_reports_the_protocol_it_found():
    elm = chip("5")
    elm.handle(b"ATE0")
    assert answer(elm, b"ATDPN") == ["A0"]
    assert answer(elm, b"ATDP") == ["AUTO"]
    assert answer(elm, b"0100")[0] == "SEARCHING..."
    assert answer(elm, b"ATDPN") == ["A5"]
    assert answer(elm, b"ATDP") == ["AUTO, ISO 14230-4 (KWP FAST)"]
    assert answer(elm, b"010D") == ["41 0D 2A"]  # searched once only


def test_manual_protocol_is_shown_without_auto():
    elm = chip("6")
    elm.handle(b"ATE0")
    assert answer(elm, b"ATSP6") == ["OK"]
    assert answer(elm, b"ATDPN") == ["6"]
    assert answer(elm, b"ATDP") == ["ISO 15765-4 (CAN 11/500)"]
    assert answer(elm, b"ATSP A6") == ["OK"]
    assert answer(elm, b"ATDPN") == ["A6"]


def test_atsp_survives_a_reset_and_attp_does_not():
    elm = chip("6")
    elm.handle(b"ATSP6")
    elm.handle(b"ATTP5")
    elm.handle(b"ATZ")
    elm.handle(b"ATE0")
    assert answer(elm, b"ATDPN") == ["6"]


def test_k_line_bus_init_is_shown_once():
    elm = chip("5")
    python_obd_setup(elm, "5")
    # 83 = KWP format byte for 3 data bytes; FC = sum of all bytes & 0xFF
    assert answer(elm, b"010D") == ["BUS INIT: ...OK", "83 F1 10 41 0D 2A FC"]
    assert answer(elm, b"010D") == ["83 F1 10 41 0D 2A FC"]


@pytest.mark.parametrize(("truck", "adapter", "expected"), [
    ("6", "5", "BUS INIT: ...ERROR"),
    ("5", "6", "CAN ERROR"),
    ("3", "2", "NO DATA"),
])
def test_the_wrong_manual_protocol_reaches_nobody(truck, adapter, expected):
    elm = chip(truck)
    python_obd_setup(elm, adapter)
    assert answer(elm, b"0100") == [expected]


def test_ignition_off_adapter_answers_and_ecu_does_not():
    elm = chip("6")
    elm.ecu_awake = False
    python_obd_setup(elm)
    assert answer(elm, b"AT RV") == ["14.1V"]
    assert answer(elm, b"0100") == ["SEARCHING...", "UNABLE TO CONNECT"]
    elm.handle(b"ATSP6")
    assert answer(elm, b"0100") == ["CAN ERROR"]
    elm.ecu_awake = True
    assert answer(elm, b"010C") == ["7E8 04 41 0C 1A F8"]


def test_engine_off_with_key_on_still_answers():
    elm = chip("6", truth=dataclasses.replace(parked(), rpm=0.0))
    python_obd_setup(elm, "6")
    assert answer(elm, b"010C") == ["7E8 04 41 0C 00 00"]


def test_a_header_for_another_ecu_gets_no_data():
    elm = chip("6")
    python_obd_setup(elm, "6")
    assert answer(elm, b"ATSH7E1") == ["OK"]
    assert answer(elm, b"010C") == ["NO DATA"]
    elm.handle(b"ATSH7E0")
    assert answer(elm, b"010C") == ["7E8 04 41 0C 1A F8"]


def test_the_truck_only_speaks_protocols_it_has():
    with pytest.raises(ConfigError, match="cannot speak OBD protocol '1'"):
        chip("1")
    with pytest.raises(ValueError):
        chip("Z")


# -- output formats ------------------------------------------------------------

@pytest.mark.parametrize(("protocol", "headers", "spaces", "expected"), [
    ("6", True, True, "7E8 04 41 0C 1A F8"),
    ("6", True, False, "7E804410C1AF8"),
    ("6", False, True, "41 0C 1A F8"),
    ("6", False, False, "410C1AF8"),
    ("7", True, True, "18 DA F1 10 04 41 0C 1A F8"),
    ("7", True, False, "18DAF11004410C1AF8"),
    ("5", True, True, "84 F1 10 41 0C 1A F8 E4"),  # KWP: format byte 0x80 | length, checksum
    ("4", False, True, "41 0C 1A F8"),
    ("3", True, True, "48 6B 10 41 0C 1A F8 22"),  # ISO 9141-2
    ("3", True, False, "486B10410C1AF822"),
])
def test_rpm_reply_format(protocol, headers, spaces, expected):
    elm = chip(protocol)
    python_obd_setup(elm, protocol)
    elm.handle(b"0100")  # bring the bus up, so no BUS INIT line follows
    elm.handle(b"ATH1" if headers else b"ATH0")
    elm.handle(b"ATS1" if spaces else b"ATS0")
    assert answer(elm, b"010C") == [expected]


def test_response_count_suffix_changes_nothing():
    elm = chip()
    python_obd_setup(elm, "6")
    assert answer(elm, b"010C1") == answer(elm, b"010C")


def test_response_count_cuts_a_multi_frame_answer():
    elm = chip()
    python_obd_setup(elm, "6")
    assert answer(elm, b"010C0D05111C421") == ["7E8 10 0F 41 0C 1A F8 0D 2A"]  # the first frame only
    assert answer(elm, b"010C0D05111C422") == ["7E8 10 0F 41 0C 1A F8 0D 2A", "7E8 21 05 78 11 54 1C 0A 42"]
    assert len(answer(elm, b"010C0D05111C423")) == 3
    elm.handle(b"ATH0")
    assert answer(elm, b"010C0D05111C421") == ["00F", "0: 41 0C 1A F8 0D 2A"]


# -- timing: what EmulatedELM327 waits before it answers -------------------------------

def test_with_the_count_met_the_chip_answers_as_soon_as_the_ecu_has():
    elm = chip()
    python_obd_setup(elm, "6")
    elm.handle(b"010C1")
    assert elm.reply_wait_s(0.05) == 0.05
    elm.handle(b"010C0D1")  # rpm and speed: one frame
    assert elm.reply_wait_s(0.05) == 0.05
    elm.handle(b"010C0D052")  # 8 bytes: two frames
    assert elm.reply_wait_s(0.05) == 0.05


@pytest.mark.parametrize(("settings", "listening_s"), [
    ([b"ATAT0"], 0.200),  # the default ATST 32: 50 x 4 ms
    ([b"ATAT0", b"ATST19"], 0.100),
    ([b"ATAT0", b"ATST19", b"ATST00"], 0.200),  # 00 restores the default
    ([], 0.120),  # ATAT1, the default: 2 x 50 ms + 20 ms, the emulator's model
    ([b"ATAT2"], 0.0705),  # 1.25 x 50 ms + 8 ms
    ([b"ATAT1", b"ATST0A"], 0.040),  # adaptive never waits longer than ATST
])
def test_without_a_count_the_chip_listens_until_its_timeout(settings, listening_s):
    elm = chip()
    python_obd_setup(elm, "6")
    for command in settings:
        assert answer(elm, command) == ["OK"]
    elm.handle(b"010C")
    assert elm.reply_wait_s(0.05) == pytest.approx(0.05 + listening_s)
    elm.handle(b"010C2")  # a count of 2, one ECU: it listens for the second in vain
    assert elm.reply_wait_s(0.05) == pytest.approx(0.05 + listening_s)
    elm.handle(b"0160")  # unsupported: nobody answers, the chip waits out its timeout
    assert answer(elm, b"0160") == ["NO DATA"]
    assert elm.reply_wait_s(0.05) == pytest.approx(listening_s)


def test_bus_errors_and_at_commands_come_at_once():
    elm = chip("6")
    python_obd_setup(elm, "5")
    assert answer(elm, b"010C1") == ["BUS INIT: ...ERROR"]
    assert elm.reply_wait_s(0.05) == 0.0
    elm.handle(b"ATI")
    assert elm.reply_wait_s(0.05) == 0.0


def test_a_reset_restores_the_timing_settings():
    elm = chip()
    elm.handle(b"ATAT0")
    elm.handle(b"ATST10")
    elm.handle(b"ATZ")
    assert (elm.adaptive, elm.timeout_st) == (1, 0x32)


def test_empty_line_repeats_the_last_command():
    elm = chip()
    python_obd_setup(elm, "6")
    assert answer(elm, b"") == ["OK"]  # the last command was ATTP6
    assert answer(elm, b"010D1") == ["7E8 03 41 0D 2A"]
    assert answer(elm, b"") == ["7E8 03 41 0D 2A"]
    assert answer(elm, b"  ") == ["7E8 03 41 0D 2A"]
    assert elm.counts["repeat"] == 3


def test_empty_line_after_reset_has_nothing_to_repeat():
    elm = chip()
    elm.handle(b"ATZ")
    assert elm.handle(b"") == b"\r?\r\r>"


@pytest.mark.parametrize("command", [b"0160", b"0101", b"0110", b"0902", b"03", b"01"])
def test_unsupported_requests_get_no_data(command):
    elm = chip()
    python_obd_setup(elm, "6")
    assert answer(elm, command) == ["NO DATA"]


def test_multi_pid_request_on_can_single_frame():
    elm = chip("6")
    python_obd_setup(elm, "6")
    assert answer(elm, b"010C0D") == ["7E8 06 41 0C 1A F8 0D 2A"]
    assert answer(elm, b"01 0C 60 0D") == ["7E8 06 41 0C 1A F8 0D 2A"]  # unsupported PID left out


def test_multi_pid_request_on_can_multi_frame():
    elm = chip("6")
    python_obd_setup(elm, "6")
    assert answer(elm, b"010C0D05111C42") == [
        "7E8 10 0F 41 0C 1A F8 0D 2A",  # first frame: 0x00F bytes in all
        "7E8 21 05 78 11 54 1C 0A 42",
        "7E8 22 37 14",
    ]
    elm.handle(b"ATH0")
    assert answer(elm, b"010C0D0511") == ["00A", "0: 41 0C 1A F8 0D 2A", "1: 05 78 11 54"]


def test_multi_pid_is_can_only():
    elm = chip("5")
    python_obd_setup(elm, "5")
    elm.handle(b"0100")
    assert answer(elm, b"010C0D") == ["NO DATA"]


def test_multi_frame_reply_reassembles_in_python_obd():
    elm = chip("6")
    python_obd_setup(elm, "6")
    parser = ISO_15765_4_11bit_500k(answer(elm, b"0100"))
    messages = parser(answer(elm, b"010C0D05111C42"))
    assert len(messages) == 1
    assert messages[0].data == bytes.fromhex("410C1AF80D2A 05781154 1C0A 423714".replace(" ", ""))


def test_counts_by_kind():
    elm = chip()
    for command in (b"ATZ", b"ATE0", b"0100", b"", b"junk"):
        elm.handle(command)
    assert dict(elm.counts) == {"at": 2, "obd": 2, "repeat": 1, "invalid": 1}


# -- python-obd decodes what the chip says -----------------------------------------

def connected(protocol: str, truth):
    """A chip set up as python-obd leaves it, and python-obd's parser for it."""
    elm = chip(protocol, truth)
    python_obd_setup(elm, protocol)
    parser = PYTHON_OBD_PARSERS[protocol](answer(elm, b"0100"))
    return elm, parser


def decode(elm, parser, command):
    response = command(parser(answer(elm, command.command + b"1")))
    assert not response.is_null(), command
    return response.value


truths = st.builds(
    lambda rpm, speed, coolant, volts, throttle: dataclasses.replace(
        parked(), rpm=rpm, speed_kmh=speed, coolant_c=coolant, battery_v=volts, throttle_pct=throttle),
    st.floats(0, 16383.75), st.floats(0, 255), st.floats(-40, 215), st.floats(0, 65.535), st.floats(0, 100))


@settings(max_examples=150, deadline=None)
@given(protocol=st.sampled_from(VEHICLE_PROTOCOLS), truth=truths)
def test_python_obd_decodes_the_truth(protocol, truth):
    elm, parser = connected(protocol, truth)
    c = obd.commands
    # Each within half a step of the encoding's resolution (SAE J1979).
    assert abs(decode(elm, parser, c.RPM).magnitude - truth.rpm) <= 0.25 / 2 + 1e-9
    assert abs(decode(elm, parser, c.SPEED).magnitude - truth.speed_kmh) <= 0.5 + 1e-9
    assert abs(decode(elm, parser, c.COOLANT_TEMP).magnitude - truth.coolant_c) <= 0.5 + 1e-9
    assert abs(decode(elm, parser, c.CONTROL_MODULE_VOLTAGE).magnitude - truth.battery_v) <= 0.0005 + 1e-9
    assert abs(decode(elm, parser, c.THROTTLE_POS).magnitude - truth.throttle_pct) <= 100 / 255 / 2 + 1e-9


@pytest.mark.parametrize("protocol", VEHICLE_PROTOCOLS)
def test_constant_pids_decode(protocol):
    elm, parser = connected(protocol, DRIVING)
    c = obd.commands
    assert decode(elm, parser, c.OBD_COMPLIANCE) == "JOBD (Japan)"
    assert decode(elm, parser, c.INTAKE_TEMP).magnitude == 25
    assert 20 <= decode(elm, parser, c.ENGINE_LOAD).magnitude <= 100


@pytest.mark.parametrize("protocol", VEHICLE_PROTOCOLS)
def test_supported_bitmaps_match_what_is_answered(protocol):
    elm, parser = connected(protocol, DRIVING)
    announced = set()
    for getter in (obd.commands.PIDS_A, obd.commands.PIDS_B, obd.commands.PIDS_C):
        if getter.pid and getter.pid not in announced:
            break  # python-obd asks a bitmap only when the one before announces it
        bits = decode(elm, parser, getter)
        announced |= {getter.pid + i + 1 for i, bit in enumerate(bits) if bit}
    assert {0x0C, 0x0D, 0x05, 0x11, 0x42} <= announced
    for pid in range(1, 0x61):
        reply = answer(elm, b"01%02X" % pid)
        assert (reply != ["NO DATA"]) == (pid in announced), hex(pid)


# -- robustness ------------------------------------------------------------------

likely_lines = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"ATZ", b"ATE0", b"ATE1", b"ATH0", b"ATH1", b"ATS0", b"ATL1", b"ATSP0", b"ATSP3",
                     b"ATTP5", b"ATDPN", b"ATDP", b"ATRV", b"0100", b"010C1", b"010C0D0511", b"", b"ATSH7E1",
                     b"ATSH", b"ATSPA", b"01", b"0120", b"0140"]),
    st.from_regex(rb"\A(AT|at)?[0-9A-Fa-f @]{0,18}\Z"),
)


@settings(max_examples=300, deadline=None)
@given(protocol=st.sampled_from(VEHICLE_PROTOCOLS), lines=st.lists(likely_lines, max_size=12),
       awake=st.booleans())
def test_any_input_gets_a_prompt_and_never_raises(protocol, lines, awake):
    elm = chip(protocol)
    elm.ecu_awake = awake
    for line in lines:
        echo_was_on = elm.echo
        reply = elm.handle(line)
        assert reply.endswith(b">")
        if not echo_was_on:
            assert reply.count(b">") == 1  # one prompt, at the end
