"""GPS: NMEA sentences from the truth, and NmeaSource reading EmulatedGPS over
a real pseudo-terminal through pyserial and pynmea2."""

from __future__ import annotations

import datetime
import errno
import math
import os
import threading
import time
from dataclasses import replace

import pynmea2
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from keidash.readings import SPEED
from keidash.sim.nmea import EmulatedGPS, nmea_sentences, sentence
from keidash.sim.truth import TruckTruth, parked
from keidash.sources.base import CONNECTED, FAILED, STOPPED
from keidash.sources.nmea import NO_FIX_MESSAGE, NmeaSource, open_error_message
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
def test_any_truth_gives_valid_sentences(t, speed, heading, lat, lon):
    truth = replace(parked(t), speed_kmh=speed, heading_deg=heading, latitude=lat, longitude=lon)
    rmc, vtg, gga = parse_all(nmea_sentences(truth))
    assert float(rmc.spd_over_grnd) * KMH_PER_KNOT == pytest.approx(speed, abs=0.002)
    assert vtg.spd_over_grnd_kmph == pytest.approx(speed, abs=0.005)
    assert rmc.latitude == pytest.approx(lat, abs=1e-6) and rmc.longitude == pytest.approx(lon, abs=1e-6)


# -- line handling without a port -------------------------------------------
class Collector:
    """A port-less NmeaSource and the readings it emits."""

    def __init__(self):
        self.readings = []
        self.source = NmeaSource("gps", self.readings.append, port="/dev/never-opened")

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
    assert len(c.readings) == 1 and c.source.status().message == ""
    c.epochs(epochs([41.0, 42.0], t0=0.2, fix=False), t0=101.0)
    assert len(c.readings) == 1 and c.source.status().message == NO_FIX_MESSAGE
    c.epochs(epochs([43.0], t0=0.6), t0=102.0)
    assert speeds(c.readings) == [40.0, 43.0] and c.source.status().message == ""
    # A pre-2.3 receiver has no mode field: status V alone means no fix.
    c.lines([sentence("GPRMC,030001.00,V,3540.87200,N,13946.02600,E,25.000,0.00,010624,,")], t0=103.0)
    assert len(c.readings) == 2 and c.source.status().message == NO_FIX_MESSAGE
    c.lines([sentence("GPRMC,030001.20,A,3540.87200,N,13946.02600,E,25.000,0.00,010624,,")], t0=103.2)
    assert speeds(c.readings[2:]) == [25.0 * KMH_PER_KNOT]


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


def test_open_error_messages_are_plain_sentences():
    missing = serial.SerialException(errno.ENOENT, "could not open port /dev/serial0: [Errno 2] ...")
    assert open_error_message("/dev/serial0", missing).startswith("no GPS at /dev/serial0: No such file")
    denied = serial.SerialException(errno.EACCES, "could not open port /dev/ttyUSB0: [Errno 13] ...")
    assert open_error_message("/dev/ttyUSB0", denied) == (
        "permission denied on /dev/ttyUSB0: add the user to the dialout group and log in again")
    assert "gpsd" in open_error_message("/dev/ttyUSB0", serial.SerialException(errno.EBUSY, "busy"))


# -- over a real pty ----------------------------------------------------------
class SteppingTruth:
    """Each receiver epoch sees a new time and a new speed: 30, 30.5, 31 ... km/h."""

    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def speed(self, k: int) -> float:
        return 30.0 + 0.5 * k

    def __call__(self) -> TruckTruth:
        with self.lock:
            k, self.calls = self.calls, self.calls + 1
        return replace(parked(t=0.2 * k), speed_kmh=self.speed(k))


class Link:
    """An EmulatedGPS and an NmeaSource reading it, both stopped on exit."""

    def __init__(self, truth=None, rate_hz=5.0):
        self.truth = truth or SteppingTruth()
        self.gps = EmulatedGPS(self.truth, rate_hz)
        self.readings = []
        self.source = NmeaSource("gps", self.readings.append, self.gps.port)

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
