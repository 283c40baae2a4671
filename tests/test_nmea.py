"""GPS: NMEA sentences from the truth, and NmeaSource reading EmulatedGPS over
a real pseudo-terminal through pyserial and pynmea2."""

from __future__ import annotations

import datetime
import errno
import math
import os
import statistics
import threading
import time
from dataclasses import replace

import pynmea2
import pytest
import serial
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ptys import assert_unplugged_port_is_held

from keidash.errors import ConfigError
from keidash.readings import SPEED
from keidash.sim.nmea import EmulatedGPS, nmea_sentences, sentence, split_ubx, ubx
from keidash.sim.truth import TruckTruth, parked
from keidash.sources import nmea as nmea_source
from keidash.sources.base import CONNECTED, FAILED, STOPPED
from keidash.sources.nmea import (
    MAX_LINE_BYTES,
    MAX_UBX_PAYLOAD,
    NO_FIX_MESSAGE,
    RATE_ACKNOWLEDGED,
    RATE_PENDING,
    RATE_REFUSED,
    RATE_UNANSWERED,
    NmeaSource,
    open_error_message,
    ubx_cfg_rate,
    ubx_frame,
)
from as_nobody import source_message_as_nobody
from waiting import wait_for

KMH_PER_KNOT = 1.852


def parse_all(lines: list[bytes]) -> list[pynmea2.NMEASentence]:
    for line in lines:
        assert line.startswith(b"$") and line.endswith(b"\r\n")
    return [pynmea2.parse(line.decode("ascii").strip(), check=True) for line in lines]


# -- pure sentence generation ---------------------------------------------
def test_sentences_round_trip_through_pynmea2():
    truth = replace(parked(t=3725.5), speed_kmh=47.3, heading_deg=123.45)
    rmc, vtg, gga = parse_all(nmea_sentences(truth))
    assert isinstance(rmc, pynmea2.RMC) and isinstance(vtg, pynmea2.VTG) and isinstance(gga, pynmea2.GGA)
    assert rmc.status == "A" and rmc.mode_indicator == "A"
    assert float(rmc.spd_over_grnd) * KMH_PER_KNOT == pytest.approx(47.3, abs=0.002)
    assert rmc.true_course == pytest.approx(123.45)
    assert (rmc.latitude, rmc.longitude) == (pytest.approx(35.6812, abs=1e-6), pytest.approx(139.7671, abs=1e-6))
    # truth.t = 3725.5 s after 2024-06-01 03:00:00 UTC
    assert rmc.datestamp == datetime.date(2024, 6, 1)
    assert rmc.timestamp.replace(tzinfo=None) == datetime.time(4, 2, 5, 500_000)
    assert vtg.faa_mode == "A"
    assert vtg.spd_over_grnd_kmph == pytest.approx(47.3)
    assert float(vtg.spd_over_grnd_kts) * KMH_PER_KNOT == pytest.approx(47.3, abs=0.002)
    assert gga.gps_qual == 1 and gga.timestamp == rmc.timestamp
    assert (gga.latitude, gga.longitude) == (rmc.latitude, rmc.longitude)


def test_sentences_without_fix_say_so():
    rmc, vtg, gga = parse_all(nmea_sentences(replace(parked(t=10.0), speed_kmh=30.0), fix=False))
    assert rmc.status == "V" and rmc.spd_over_grnd is None and rmc.lat == ""
    assert vtg.faa_mode == "N" and vtg.spd_over_grnd_kmph is None
    assert gga.gps_qual == 0 and gga.lat == ""
    assert rmc.timestamp.replace(tzinfo=None) == datetime.time(3, 0, 10)  # the clock still runs


def test_sentence_checksum_and_framing():
    assert sentence("GPGLL,4916.45,N,12311.12,W,225444,A") == b"$GPGLL,4916.45,N,12311.12,W,225444,A*31\r\n"


def test_positions_in_every_hemisphere_and_at_minute_rollover():
    for lat, lon in [(-33.8688, 151.2093), (51.4779, -0.0015), (-22.9, -43.2), (35.99999999, 139.99999999)]:
        rmc = parse_all(nmea_sentences(replace(parked(), latitude=lat, longitude=lon)))[0]
        assert rmc.latitude == pytest.approx(lat, abs=1e-6)
        assert rmc.longitude == pytest.approx(lon, abs=1e-6)
    assert b",3600.00000,N,14000.00000,E," in nmea_sentences(replace(parked(), latitude=35.99999999,
                                                                   longitude=139.99999999))[0]


@given(t=st.floats(0, 3 * 86400), speed=st.floats(0, 250), heading=st.floats(0, 359.99),
       lat=st.floats(-89.9, 89.9), lon=st.floats(-179.9, 179.9))
@example(t=0.0, speed=0.875, heading=0.0, lat=0.0, lon=0.0)  # rounds half-way: failed CI once
def test_any_truth_gives_valid_sentences(t, speed, heading, lat, lon):
    truth = replace(parked(t), speed_kmh=speed, heading_deg=heading, latitude=lat, longitude=lon)
    rmc, vtg, gga = parse_all(nmea_sentences(truth))
    # Half a unit in the last printed place, plus float slack: 0.875 prints as 0.88.
    assert float(rmc.spd_over_grnd) * KMH_PER_KNOT == pytest.approx(speed, abs=0.0005 * KMH_PER_KNOT + 1e-9)
    assert vtg.spd_over_grnd_kmph == pytest.approx(speed, abs=0.005 + 1e-9)
    assert rmc.latitude == pytest.approx(lat, abs=1e-6) and rmc.longitude == pytest.approx(lon, abs=1e-6)


# -- line handling without a port -------------------------------------------
class Collector:
    """A port-less NmeaSource and the readings it emits."""

    def __init__(self):
        self.readings = []  # speed readings (what most tests are about)
        self.everything = []  # speed and position
        self.source = NmeaSource("gps", self._sink, port="/dev/never-opened")

    def _sink(self, reading):
        self.everything.append(reading)
        if reading.channel == "speed_kmh":
            self.readings.append(reading)

    def lines(self, lines, t0=100.0, dt=0.2):
        """Each line arrives dt after the one before."""
        for i, line in enumerate(lines):
            self.source.handle_line(line, t0 + i * dt)

    def epochs(self, epochs, t0=100.0, dt=0.2):
        """Each epoch's sentences arrive together, epochs dt apart."""
        for i, epoch in enumerate(epochs):
            for line in epoch:
                self.source.handle_line(line, t0 + i * dt)

    @property
    def errors(self):
        return self.source.status().errors


def epochs(speeds, t0=0.0, dt=0.2, fix=True) -> list[list[bytes]]:
    """The receiver's output for one epoch per speed, truth time t0, t0 + dt, ..."""
    return [nmea_sentences(replace(parked(t0 + i * dt), speed_kmh=speed), fix) for i, speed in enumerate(speeds)]


def speeds(readings):
    return [pytest.approx(r.value, abs=0.002) for r in readings]


def only(kind: bytes, epochs_):
    return [line for epoch in epochs_ for line in epoch if line.startswith(kind)]


def test_one_reading_per_epoch_from_rmc():
    c = Collector()
    c.source.feed(b"".join(sum(epochs([10.0, 20.0, 30.0]), [])), 5.0)
    assert speeds(c.readings) == [10.0, 20.0, 30.0]
    assert all(r.channel == SPEED and r.source == "gps" and r.t == 5.0 for r in c.readings)
    # The same epoch again (a second talker, a repeat) is not a new reading.
    c.source.feed(epochs([30.0], t0=0.4)[0][0], 6.0)
    assert len(c.readings) == 3
    assert c.errors == {}


def test_vtg_used_only_when_no_rmc_is_seen():
    c = Collector()
    vtg_only = only(b"$GPVTG", epochs([12.0, 13.0, 14.0]))
    c.lines(vtg_only)
    assert speeds(c.readings) == [12.0, 13.0, 14.0]
    # The receiver starts sending RMC too: one reading per epoch, from RMC.
    c.epochs(epochs([50.0, 51.0, 52.0], t0=1.0), t0=101.0)
    assert speeds(c.readings[3:]) == [50.0, 51.0, 52.0]
    c = Collector()
    c.lines(only(b"$GPVTG", epochs([12.0], fix=False)))
    assert c.readings == [] and c.source.status().message == NO_FIX_MESSAGE


def test_no_fix_gives_no_reading_and_says_so():
    c = Collector()
    c.epochs(epochs([40.0]))
    assert len(c.readings) == 1 and c.source.status().message == "" and not c.source.degraded
    c.epochs(epochs([41.0, 42.0], t0=0.2, fix=False), t0=101.0)
    assert len(c.readings) == 1 and c.source.status().message == NO_FIX_MESSAGE and c.source.degraded
    # u-blox sends GGA last, so the GGA saying "no fix" still stands when the
    # first RMC with a fix comes: speed resumes one epoch after the fix does.
    c.epochs(epochs([43.0, 44.0], t0=0.6), t0=102.0)
    assert speeds(c.readings) == [40.0, 44.0] and c.source.status().message == ""
    assert not c.source.degraded
    # A pre-2.3 receiver has no mode field: status V alone means no fix.
    c.lines([sentence("GPRMC,030001.00,V,3540.87200,N,13946.02600,E,25.000,0.00,010624,,")], t0=103.0)
    assert len(c.readings) == 2 and c.source.status().message == NO_FIX_MESSAGE
    c.lines([sentence("GPRMC,030001.20,A,3540.87200,N,13946.02600,E,25.000,0.00,010624,,")], t0=103.2)
    assert speeds(c.readings[2:]) == [25.0 * KMH_PER_KNOT]


def gga_first(epoch: list[bytes]) -> list[bytes]:
    """The epoch in the order MTK and SiRF receivers send it: GGA before RMC and VTG."""
    return [epoch[2], epoch[0], epoch[1]]


def with_quality(gga: bytes, quality: int) -> bytes:
    """The GGA sentence with another fix quality (and its checksum redone)."""
    fields = gga[1:gga.index(b"*")].decode("ascii").split(",")
    fields[6] = str(quality)
    return sentence(",".join(fields))


def test_gga_quality_0_withholds_the_speed_of_its_epoch():
    # RMC says "fix" but GGA, sent first as MTK and SiRF receivers do, says quality 0.
    c = Collector()
    good = epochs([30.0, 31.0, 32.0])
    contradicting = gga_first(good[1])
    contradicting[0] = with_quality(contradicting[0], 0)
    c.epochs([gga_first(good[0]), contradicting, gga_first(good[2])])
    assert speeds(c.readings) == [30.0, 32.0]
    assert c.errors == {}


def test_a_stale_gga_does_not_gate_the_speed():
    # A receiver that sent one GGA with quality 0 long ago and then stopped sending GGA.
    c = Collector()
    c.lines([epochs([20.0], fix=False)[0][2]], t0=100.0)
    assert c.source.status().message == NO_FIX_MESSAGE
    c.lines(only(b"$GPRMC", epochs([21.0, 22.0], t0=10.0)), t0=110.0)
    assert speeds(c.readings) == [21.0, 22.0]
    assert c.source.status().message == "" and not c.source.degraded


@pytest.mark.parametrize("satellites, hdop, message", [
    (3, 0.9, "GPS fix weak: 3 satellites"),
    (1, 0.9, "GPS fix weak: 1 satellite"),
    (9, 7.54, "GPS fix weak: HDOP 7.5"),
    (2, 12.0, "GPS fix weak: 2 satellites, HDOP 12.0"),
])
def test_a_weak_fix_is_named_but_still_gives_speed(satellites, hdop, message):
    c = Collector()
    truth = replace(parked(0.0), speed_kmh=35.0)
    c.epochs([nmea_sentences(truth), nmea_sentences(replace(truth, t=0.2), satellites=satellites, hdop=hdop)])
    assert speeds(c.readings) == [35.0, 35.0]
    assert c.source.status().message == message and c.source.degraded
    assert c.source.fix.satellites == satellites and c.source.fix.hdop == pytest.approx(round(hdop, 1))
    c.epochs([nmea_sentences(replace(truth, t=0.4))], t0=100.4)
    assert c.source.status().message == "" and not c.source.degraded


def test_dead_reckoning_is_a_weak_fix():
    c = Collector()
    c.lines([sentence("GPGGA,030000.00,3540.87200,N,13946.02600,E,6,00,99.9,12.0,M,36.7,M,,")])
    assert c.source.status().message == "GPS fix weak: dead reckoning, 0 satellites, HDOP 99.9"
    assert c.source.fix.quality == 6 and c.source.degraded


def test_max_age_is_three_receiver_periods_but_at_least_1_5_s():
    c = Collector()
    c.epochs(epochs([20.0] * 5, dt=1.0), dt=1.0)  # a 1 Hz receiver
    assert c.readings[-1].max_age == pytest.approx(3.0)
    c = Collector()
    c.epochs(epochs([20.0] * 10, dt=0.1), dt=0.1)  # 10 Hz
    assert c.readings[-1].max_age == 1.5


def test_bad_lines_are_counted_and_skipped():
    c = Collector()
    good = epochs([25.0])[0][0]
    corrupt = good.replace(b",A,", b",A,9", 1)  # a changed character: the checksum no longer matches
    c.lines([b"\x00\xff\xfe noise", b"$GPRMC,040205.50,A,35", corrupt, b"hello", b"", good])
    assert c.errors == {"parse": 2, "truncated": 1, "checksum": 1}
    assert speeds(c.readings) == [25.0]


def test_sentence_cut_short_runs_into_the_next_and_the_next_is_kept():
    c = Collector()
    c.source.feed(b"$GPRMC,0402" + epochs([33.0])[0][0], 1.0)
    assert c.errors == {"truncated": 1}
    assert speeds(c.readings) == [33.0]


def test_endless_line_is_dropped():
    c = Collector()
    c.source.feed(b"\x55" * 1000, 1.0)  # binary noise, e.g. the wrong baud rate
    c.source.feed(b"\r\n" + epochs([18.0])[0][0], 2.0)
    assert c.errors.get("overlong") == 1
    assert speeds(c.readings) == [18.0]


def assert_sane(readings):
    for reading in readings:
        assert reading.channel == SPEED
        assert math.isfinite(reading.value) and 0.0 <= reading.value <= 400.0
        assert reading.max_age >= 1.5


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=120), max_size=20))
def test_random_bytes_never_raise(chunks):
    c = Collector()
    for i, chunk in enumerate(chunks):
        c.source.feed(chunk, float(i))
        c.source.handle_line(chunk, float(i))
    assert_sane(c.readings)


mutation = st.tuples(st.sampled_from(["delete", "insert", "replace", "truncate"]),
                     st.integers(0, 100), st.binary(min_size=1, max_size=3))


@settings(max_examples=500)
@given(speed=st.floats(0, 200), fix=st.booleans(), which=st.integers(0, 2),
       mutations=st.lists(mutation, max_size=4), recompute=st.booleans())
def test_mangled_sentences_never_raise(speed, fix, which, mutations, recompute):
    line = nmea_sentences(replace(parked(1.0), speed_kmh=speed), fix)[which].rstrip(b"\r\n")
    body = bytearray(line[1:line.rindex(b"*")])
    for op, at, data in mutations:
        at %= len(body) + 1
        if op == "delete":
            del body[at:at + len(data)]
        elif op == "insert":
            body[at:at] = data
        elif op == "replace":
            body[at:at + len(data)] = data
        else:
            del body[at:]
    if recompute:  # a mangled sentence with a valid checksum reaches the field parsing
        text = body.decode("latin-1")
        mangled = sentence(text) if text.isascii() else b"$" + bytes(body) + b"*00\r\n"
    else:
        mangled = b"$" + bytes(body) + line[line.rindex(b"*"):] + b"\r\n"
    c = Collector()
    c.source.feed(mangled, 1.0)
    c.source.handle_line(mangled[: len(mangled) // 2], 2.0)
    assert_sane(c.readings)


# -- UBX framing without a port ---------------------------------------------------
# Published frames, as other u-blox code sends and expects them (not computed here).
CFG_RATE_1HZ = bytes.fromhex("B562 0608 0600 E803 0100 0100 0139")
CFG_RATE_5HZ = bytes.fromhex("B562 0608 0600 C800 0100 0100 DE6A")
CFG_RATE_10HZ = bytes.fromhex("B562 0608 0600 6400 0100 0100 7A12")
ACK_CFG_RATE = bytes.fromhex("B562 0501 0200 0608 163F")
NAK_CFG_PRT = bytes.fromhex("B562 0500 0200 0600 0D32")


def test_cfg_rate_frames_match_the_published_bytes():
    assert ubx_cfg_rate(1.0) == CFG_RATE_1HZ
    assert ubx_cfg_rate(5.0) == CFG_RATE_5HZ
    assert ubx_cfg_rate(10.0) == CFG_RATE_10HZ
    assert ubx_frame(0x05, 0x01, bytes([0x06, 0x08])) == ACK_CFG_RATE
    assert ubx_frame(0x05, 0x00, bytes([0x06, 0x00])) == NAK_CFG_PRT
    # The emulator's own encoder and decoder, written apart, agree with them.
    assert ubx(0x06, 0x08, CFG_RATE_5HZ[6:12]) == CFG_RATE_5HZ
    assert ubx(0x05, 0x01, b"\x06\x08") == ACK_CFG_RATE
    buffer = bytearray(b"noise" + CFG_RATE_10HZ[:7])
    assert split_ubx(buffer) == [] and buffer == CFG_RATE_10HZ[:7]
    buffer += CFG_RATE_10HZ[7:] + b"\xb5\x62\x06\x08\x00\x00\x00\x00" + NAK_CFG_PRT
    assert split_ubx(buffer) == [(6, 8, CFG_RATE_10HZ[6:12]), (5, 0, b"\x06\x00")]


def test_bad_ublox_rates_are_config_errors():
    for rate in (0, -1, 51, 0.01):
        with pytest.raises(ConfigError, match="GPS rate must be above 0"):
            NmeaSource("gps", lambda r: None, "/dev/null", ublox_rate_hz=rate)


def rate_pending(c: Collector) -> Collector:
    c.source._rate_state = RATE_PENDING  # as run() sets it once the request is written
    return c


def test_ack_and_nak_of_the_rate_request():
    c = rate_pending(Collector())
    c.source.feed(ubx_frame(0x05, 0x01, bytes([0x06, 0x01])), 1.0)  # ACK of CFG-MSG: not ours
    assert c.source.ublox_rate_state == RATE_PENDING
    c.source.feed(ACK_CFG_RATE, 1.1)
    assert c.source.ublox_rate_state == RATE_ACKNOWLEDGED and c.errors == {}
    c = rate_pending(Collector())
    c.source.feed(ubx_frame(0x05, 0x00, bytes([0x06, 0x08])), 1.0)
    assert c.source.ublox_rate_state == RATE_REFUSED and c.errors == {"ubx_nak": 1}
    c.source.feed(ACK_CFG_RATE, 1.1)  # a late answer to a repeated request changes nothing
    assert c.source.ublox_rate_state == RATE_REFUSED


def test_ubx_frames_between_sentences_are_taken_whole():
    c = rate_pending(Collector())
    one, two, three = epochs([40.0, 41.0, 42.0])
    # A NAV frame whose payload holds a line end and a '$', as binary payloads may.
    nav = ubx_frame(0x01, 0x07, b"\x00\n$GPRMC,bogus*00\r\n" + bytes(range(40)))
    stream = b"".join(one) + ACK_CFG_RATE + b"".join(two) + nav + b"".join(three)
    for i in range(len(stream)):  # byte by byte: every split point at once
        c.source.feed(stream[i:i + 1], 5.0)
    assert speeds(c.readings) == [40.0, 41.0, 42.0]
    assert c.errors == {} and c.source.ublox_rate_state == RATE_ACKNOWLEDGED


def test_broken_ubx_frames_are_counted_and_the_lines_after_them_kept():
    c = rate_pending(Collector())
    one, two = epochs([50.0, 51.0])
    corrupt = bytearray(ACK_CFG_RATE)
    corrupt[-1] ^= 0xFF
    false_sync = b"\xb5\x62\x01\x07\xff\xff"  # claims a 65535-byte payload
    c.source.feed(bytes(corrupt) + b"".join(one) + false_sync + b"".join(two), 1.0)
    assert speeds(c.readings) == [50.0, 51.0]
    # What followed each false sync is read as text: the sentences are kept, the junk
    # in front of them counted.
    assert c.errors == {"ubx_checksum": 1, "ubx_overlong": 1, "parse": 2}
    assert c.source.ublox_rate_state == RATE_PENDING  # a corrupt ACK is no ACK


def test_text_cut_short_by_a_frame_is_counted():
    c = Collector()
    c.source.feed(b"$GPRMC,0402" + ACK_CFG_RATE + b"".join(epochs([33.0])[0]), 1.0)
    assert c.errors == {"truncated": 1}
    assert speeds(c.readings) == [33.0]


def buffer_is_bounded(source: NmeaSource) -> bool:
    buffer = source._buffer
    if buffer.startswith(b"\xb5\x62"):
        return len(buffer) < 8 + MAX_UBX_PAYLOAD
    return len(buffer) <= MAX_LINE_BYTES


piece = st.one_of(
    st.binary(max_size=80),  # noise
    st.sampled_from([ACK_CFG_RATE, NAK_CFG_PRT, CFG_RATE_5HZ]),  # valid frames
    st.builds(lambda p: ubx_frame(0x01, 0x07, p), st.binary(max_size=120)),
    st.builds(lambda frame, at, byte: frame[:at] + bytes([byte]) + frame[at + 1:],  # corrupted frames
              st.sampled_from([ACK_CFG_RATE, CFG_RATE_10HZ]), st.integers(0, 9), st.integers(0, 255)),
    st.builds(lambda n: b"\xb5\x62" + n.to_bytes(4, "little"), st.integers(0, 2**32 - 1)),  # false syncs
    st.builds(lambda speed: b"".join(nmea_sentences(replace(parked(1.0), speed_kmh=speed))),
              st.floats(0, 200)),
    st.builds(lambda line, cut: line[:cut], st.sampled_from(nmea_sentences(parked(2.0))), st.integers(0, 80)),
)


@settings(max_examples=400, deadline=1000)
@given(pieces=st.lists(piece, max_size=25), cuts=st.lists(st.integers(1, 64), max_size=30))
def test_mixed_ubx_and_nmea_never_raise_nor_pile_up(pieces, cuts):
    c = rate_pending(Collector())
    stream = b"".join(pieces)
    at, chunk = 0, iter(cuts)
    while at < len(stream):
        step = next(chunk, 64)
        c.source.feed(stream[at:at + step], float(at))
        assert buffer_is_bounded(c.source)
        at += step
    assert_sane(c.readings)
    assert c.source.ublox_rate_state in (RATE_PENDING, RATE_ACKNOWLEDGED, RATE_REFUSED)


@settings(max_examples=200, deadline=1000)
@given(items=st.lists(st.one_of(st.floats(0, 200), st.binary(max_size=60)), min_size=1, max_size=12),
       cuts=st.lists(st.integers(1, 40), max_size=40))
def test_every_epoch_gets_through_whatever_frames_come_between(items, cuts):
    # Valid frames between valid epochs, cut anywhere: nothing lost, nothing counted.
    c = Collector()
    stream, expected = b"", []
    for i, item in enumerate(items):
        if isinstance(item, float):
            stream += b"".join(nmea_sentences(replace(parked(0.2 * i), speed_kmh=item)))
            expected.append(item)
        else:
            stream += ubx_frame(0x01, 0x07, item)
    at, chunk = 0, iter(cuts)
    while at < len(stream):
        step = next(chunk, 40)
        c.source.feed(stream[at:at + step], 1.0)
        at += step
    assert [r.value for r in c.readings] == [pytest.approx(v, abs=0.002) for v in expected]
    assert c.errors == {}



def test_open_error_messages_are_plain_sentences():
    missing = serial.SerialException(errno.ENOENT, "could not open port /dev/serial0: [Errno 2] ...")
    assert open_error_message("/dev/serial0", missing).startswith("no GPS at /dev/serial0: No such file")
    denied = serial.SerialException(errno.EACCES, "could not open port /dev/ttyUSB0: [Errno 13] ...")
    assert open_error_message("/dev/ttyUSB0", denied) == (
        "permission denied on /dev/ttyUSB0: add the user to the dialout group and log in again")
    assert "gpsd" in open_error_message("/dev/ttyUSB0", serial.SerialException(errno.EBUSY, "busy"))


# -- over a real pty ----------------------------------------------------------
class SteppingTruth:
    """Each receiver epoch sees a new time (dt later) and a new speed: 30, 30.5, 31 ... km/h."""

    def __init__(self, dt: float = 0.2):
        self.calls = 0
        self.dt = dt
        self.lock = threading.Lock()

    def speed(self, k: int) -> float:
        return 30.0 + 0.5 * k

    def __call__(self) -> TruckTruth:
        with self.lock:
            k, self.calls = self.calls, self.calls + 1
        return replace(parked(t=self.dt * k), speed_kmh=self.speed(k))


class Link:
    """An EmulatedGPS and an NmeaSource reading it, both stopped on exit."""

    def __init__(self, truth=None, rate_hz=5.0, source_options=None, **gps_options):
        self.truth = truth or SteppingTruth()
        self.gps = EmulatedGPS(self.truth, rate_hz, **gps_options)
        self.readings = []
        self.positions = []
        self.source = NmeaSource("gps", self._sink, self.gps.port, **(source_options or {}))

    def _sink(self, reading):  # speed in .readings (what the tests are about), the position apart
        (self.readings if reading.channel == "speed_kmh" else self.positions).append(reading)

    def __enter__(self):
        self.source.start()
        assert wait_for(lambda: self.source.status().link == CONNECTED)
        self.gps.start()
        return self

    def __exit__(self, *exc_info):
        self.source.stop()
        self.gps.stop()


def test_speed_over_a_pty_equals_the_truth():
    with Link() as link:
        assert wait_for(lambda: len(link.readings) >= 8)
        readings = list(link.readings)
    truth = link.truth
    values = [r.value for r in readings]
    # One reading per epoch: every value is a distinct epoch's truth, in order.
    assert all(a < b for a, b in zip(values, values[1:])), values
    for value in values:
        k = round((value - 30.0) / 0.5)
        assert abs(value - truth.speed(k)) <= 0.1
    assert all(a.t <= b.t for a, b in zip(readings, readings[1:]))
    assert all(r.max_age == 1.5 for r in readings[3:])  # 3 x 0.2 s < 1.5 s
    assert link.source.status().errors == {}


def test_lost_fix_stops_readings_and_says_so():
    with Link() as link:
        assert wait_for(lambda: len(link.readings) >= 2)
        link.gps.lose_fix()
        assert wait_for(lambda: link.source.status().message == NO_FIX_MESSAGE)
        count, epochs_then = len(link.readings), link.gps.epochs
        assert wait_for(lambda: link.gps.epochs >= epochs_then + 4)
        time.sleep(0.1)  # let the source read the last epoch written
        assert len(link.readings) == count
        assert link.source.status().link == CONNECTED
        link.gps.regain_fix()
        assert wait_for(lambda: len(link.readings) > count and link.source.status().message == "")


def test_injected_noise_is_counted_and_readings_continue():
    with Link() as link:
        assert wait_for(lambda: len(link.readings) >= 2)
        good = nmea_sentences(replace(parked(), speed_kmh=50.0))[0]
        link.gps.inject(b"\x00\xff\xfe\x80 line noise\r\n")
        link.gps.inject(b"$GPRMC,040205.50,A,35\r\n")
        link.gps.inject(good.replace(b",A,", b",A,7", 1))
        link.gps.inject(b"$GPVTG,12")  # cut off: runs into the next epoch's RMC
        count = len(link.readings)
        assert wait_for(lambda: link.source.status().errors == {"parse": 1, "truncated": 2, "checksum": 1})
        assert wait_for(lambda: len(link.readings) >= count + 3)
        values = [r.value for r in link.readings]
    assert all(abs(v - link.truth.speed(round((v - 30.0) / 0.5))) <= 0.1 for v in values)


def test_unplug_fails_with_a_message_and_stops_promptly():
    with Link() as link:
        assert wait_for(lambda: len(link.readings) >= 1)
        link.gps.unplug()
        assert wait_for(lambda: link.source.status().link == FAILED)
        assert link.source.status().message == f"lost the GPS at {link.gps.port} (unplugged?); retrying"
        link.source.stop()
        assert not link.source._thread.is_alive()
        assert link.source.status().link == STOPPED


def test_an_unplugged_gps_keeps_its_pty_number_until_stopped():
    """As the emulated adapter (issue 14): a freed /dev/pts/N went to another test's pseudo-terminal
    within the source's retry, and the source "reconnected" to it (a CI run took an NMEA
    receiver for an OBD adapter that way). The unplugged receiver holds the number until stop."""
    with EmulatedGPS(lambda: parked()) as gps:
        gps.unplug()
        assert_unplugged_port_is_held(gps.port)
    assert gps._slave is None  # stop() released it


def test_missing_port_fails_with_a_plain_message():
    source = NmeaSource("gps", lambda r: None, "/dev/ttyKEIDASH-missing")
    source.start()
    try:
        assert wait_for(lambda: source.status().link == FAILED)
        assert source.status().message == ("no GPS at /dev/ttyKEIDASH-missing: No such file or directory "
                                           "(is the receiver plugged in and the port right?)")
    finally:
        source.stop()
    assert not source._thread.is_alive()


def test_port_without_permission_fails_with_a_plain_message():
    with EmulatedGPS(parked) as gps:
        os.chmod(gps.port, 0o000)
        if os.geteuid() == 0:
            message = source_message_as_nobody("NmeaSource('gps', sink, port)", gps.port)
        else:
            source = NmeaSource("gps", lambda r: None, gps.port)
            source.start()
            try:
                assert wait_for(lambda: source.status().link == FAILED)
                message = source.status().message
            finally:
                source.stop()
    assert message.startswith(f"permission denied on {gps.port}: add the user")


def test_emulator_never_blocks_when_nobody_reads():
    gps = EmulatedGPS(SteppingTruth(), rate_hz=200.0)  # ~45 kB/s into a 16 kB pty buffer
    gps.start()
    try:
        assert wait_for(lambda: gps.dropped_bytes > 0)
        injector = threading.Thread(target=gps.inject, args=(b"x" * 100_000,))
        injector.start()
        injector.join(2.0)
        assert not injector.is_alive()
        epochs_then = gps.epochs
        assert wait_for(lambda: gps.epochs > epochs_then + 10)  # still writing, dropping
    finally:
        gps.stop()


@pytest.mark.parametrize("rate_hz, max_age", [(1.0, 3.0), (10.0, 1.5)])
def test_max_age_follows_the_receivers_measured_rate(rate_hz, max_age):
    with Link(SteppingTruth(dt=1.0 / rate_hz), rate_hz=rate_hz) as link:
        assert wait_for(lambda: len(link.readings) >= 5, timeout=15.0)
        readings = list(link.readings)
    # 3 periods, but at least 1.5 s: from the third reading on the period is measured.
    assert [r.max_age for r in readings[3:]] == [pytest.approx(max_age, rel=0.2)] * len(readings[3:])
    assert readings[0].max_age == 3.0  # before any interval is measured: 1 Hz assumed


def intervals(readings) -> list[float]:
    return [b.t - a.t for a, b in zip(readings, readings[1:])]


def test_ublox_rate_set_up_speeds_the_receiver_up():
    truth = SteppingTruth(dt=0.1)
    with Link(truth, rate_hz=1.0, source_options={"ublox_rate_hz": 10.0, "baudrate": 115200}) as link:
        assert wait_for(lambda: link.source.ublox_rate_state == RATE_ACKNOWLEDGED)
        assert link.gps.rate_hz == 10.0
        assert link.gps.ubx_received == [(0x06, 0x08, CFG_RATE_10HZ[6:12])]
        count = len(link.readings)
        assert wait_for(lambda: len(link.readings) >= count + 12)
        fast = link.readings[count + 1:]
    # Readings now come about 0.1 s apart (not 1 s), and max_age follows.
    assert statistics.median(intervals(fast)) < 0.5
    assert fast[-1].max_age == 1.5
    assert link.source.status().errors == {}


def test_ublox_rate_refused_is_counted_and_the_receiver_keeps_its_rate():
    with Link(rate_hz=5.0, source_options={"ublox_rate_hz": 10.0}, min_meas_rate_ms=200) as link:
        assert wait_for(lambda: link.source.ublox_rate_state == RATE_REFUSED)
        assert link.source.status().errors == {"ubx_nak": 1}
        count = len(link.readings)
        assert wait_for(lambda: len(link.readings) >= count + 3)
    assert link.gps.rate_hz == 5.0 and link.source.status().message == ""


def test_a_receiver_that_ignores_ubx_is_asked_three_times(monkeypatch):
    monkeypatch.setattr(nmea_source, "UBX_ACK_TIMEOUT_S", 0.2)
    with Link(rate_hz=5.0, source_options={"ublox_rate_hz": 10.0}, ublox=False) as link:
        assert wait_for(lambda: link.source.ublox_rate_state == RATE_UNANSWERED)
        assert link.source.status().errors == {"ubx_no_ack": 1}
        count = len(link.readings)
        assert wait_for(lambda: len(link.readings) >= count + 3)  # and speed keeps coming
    # What the receiver was sent: three CFG-RATE frames, nothing else.
    assert link.gps.ubx_received == [(0x06, 0x08, CFG_RATE_10HZ[6:12])] * 3
    assert link.gps.rate_hz == 5.0


def test_weak_fix_over_a_pty_is_named_and_speed_continues():
    with Link() as link:
        assert wait_for(lambda: len(link.readings) >= 2)
        link.gps.weaken_fix(satellites=3)
        assert wait_for(lambda: link.source.status().message == "GPS fix weak: 3 satellites")
        assert link.source.degraded
        count = len(link.readings)
        assert wait_for(lambda: len(link.readings) >= count + 3)
        link.gps.regain_fix()
        assert wait_for(lambda: link.source.status().message == "" and not link.source.degraded)


def test_the_emulated_receiver_answers_a_rate_poll():
    with EmulatedGPS(SteppingTruth(), rate_hz=5.0) as gps:
        with serial.serial_for_url(gps.port, 9600, timeout=0.2) as port:
            port.write(ubx(0x06, 0x08))  # CFG-RATE without payload: "what is set?"
            received = bytearray()
            assert wait_for(lambda: received.extend(port.read(port.in_waiting or 1)) or
                            ACK_CFG_RATE in received)
    # The setting (200 ms, navRate 1, GPS time), then the acknowledgement.
    assert bytes(received).index(CFG_RATE_5HZ) < bytes(received).index(ACK_CFG_RATE)


def test_a_fix_gives_the_position_too_for_the_night_theme():
    c = Collector()
    c.lines([sentence("GPRMC,225446,A,4916.45,N,12311.12,W,000.5,054.7,191194,020.3,E")])
    got = {r.channel: r.value for r in c.everything}
    assert got["lat_deg"] == pytest.approx(49 + 16.45 / 60) and got["lon_deg"] == pytest.approx(-(123 + 11.12 / 60))
    c = Collector()
    c.lines([sentence("GPRMC,225446,A,3352.12,S,15112.55,E,000.5,054.7,191194,,")])
    got = {r.channel: r.value for r in c.everything}
    assert got["lat_deg"] < 0 < got["lon_deg"]
    c = Collector()  # a fix with a malformed position: speed still, no position
    c.lines([sentence("GPRMC,225446,A,49x6.45,N,12311.12,W,000.5,054.7,191194,,")])
    assert {r.channel for r in c.everything} == {"speed_kmh", "gps_utc_s"}


def test_a_fix_gives_its_utc_date_and_time_and_a_fix_without_a_date_none():
    """The trip log checks the wall clock by it (keidash/triplog/clock.py)."""
    from datetime import datetime, timezone
    c = Collector()
    c.lines([sentence("GPRMC,225446.25,A,4916.45,N,12311.12,W,000.5,054.7,191194,020.3,E"),
             sentence("GPRMC,031500,A,4916.45,N,12311.12,W,000.5,054.7,010624,,"),
             sentence("GPRMC,031501,A,4916.45,N,12311.12,W,000.5,054.7,,,"),  # no date: no time
             sentence("GPRMC,031502,A,4916.45,N,12311.12,W,000.5,054.7,310224,,")])  # no 31 February
    times = [r.value for r in c.everything if r.channel == "gps_utc_s"]
    assert times == [datetime(1994, 11, 19, 22, 54, 46, 250000, tzinfo=timezone.utc).timestamp(),
                     datetime(2024, 6, 1, 3, 15, tzinfo=timezone.utc).timestamp()]
    assert len(c.readings) == 4  # the speed of each fix all the same
