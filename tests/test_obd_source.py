"""ObdSource end to end: real python-obd, real pseudo-terminals, the emulated
ELM327 (and once the independent ELM327-emulator package) on the far side."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import subprocess
import sys
import time

import pytest
from as_nobody import source_message_as_nobody
import serial

from keidash.errors import ConfigError
from keidash.readings import BATTERY, COOLANT, RPM, SPEED, THROTTLE, ReadingBus
from keidash.sim.elm327 import EmulatedELM327
from keidash.sim.truth import parked
from keidash.sources.base import CONNECTED, FAILED, STOPPED
from keidash.sources.obd import ObdSource

DRIVING = dataclasses.replace(parked(), rpm=1726.0, speed_kmh=42.0, throttle_pct=33.0, gear=3)


class Truck:
    """A TruthFn the test can change while the emulator reads it."""

    def __init__(self, truth=DRIVING):
        self.truth = truth

    def __call__(self):
        return self.truth


class Collected:
    """Drains a ReadingBus (the real sink) into one list as the test polls."""

    def __init__(self):
        self.bus = ReadingBus()
        self.readings = []

    def __call__(self, channel=None):
        self.readings += self.bus.drain()
        return [r for r in self.readings if channel is None or r.channel == channel]


def wait_for(predicate, what, timeout=15.0):
    """Poll until predicate() is true; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    pytest.fail(f"gave up waiting for {what}")


@contextlib.contextmanager
def running(source: ObdSource):
    source.start()
    try:
        yield source
    finally:
        source.stop()


def make_source(collected: Collected, port: str, **kwargs) -> ObdSource:
    source = ObdSource("obd", collected.bus.put, port, **kwargs)
    source.retry_s = 0.1  # retry quickly, so tests see the second attempt
    return source


def no_escaped_exception(caplog) -> bool:
    # Source._main logs "source failed" with the traceback when run() raises.
    return not [r for r in caplog.records if r.name == "keidash.sources.base" and r.exc_info]


# -- the happy path ---------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["6", "5"])
def test_readings_follow_the_truth(protocol, caplog):
    truck, got = Truck(), Collected()
    with EmulatedELM327(truck, protocol) as emu, running(make_source(got, emu.port, protocol=protocol)) as source:
        t_start = time.monotonic()
        wait_for(lambda: {r.channel for r in got()} == {RPM, SPEED, COOLANT, BATTERY, THROTTLE}, "every channel")
        assert {r.value for r in got(RPM)} == {1726.0}
        assert {r.value for r in got(SPEED)} == {42.0}
        assert [r.value for r in got(COOLANT)][0] == 80.0
        assert got(BATTERY)[0].value == pytest.approx(14.1, abs=0.0005)
        assert got(THROTTLE)[0].value == pytest.approx(33.0, abs=0.2)

        truck.truth = dataclasses.replace(DRIVING, rpm=3000.25, speed_kmh=61.0)
        wait_for(lambda: got(RPM)[-1].value == 3000.25 and got(SPEED)[-1].value == 61.0, "the new truth")
        t_end = time.monotonic()

        readings = got()
        assert all(r.source == "obd" and t_start <= r.t <= t_end for r in readings)
        assert [r.t for r in readings] == sorted(r.t for r in readings)
        assert {r.max_age for r in readings if r.channel in (RPM, SPEED)} == {1.0}
        assert all(r.max_age > 2 * source.slow_every_s for r in got(COOLANT))
        status = source.status()
        assert (status.link, status.message, status.errors) == (CONNECTED, "", {})
        assert status.readings == len(readings)
    assert source.status().link == STOPPED
    assert no_escaped_exception(caplog)
    import obd  # imported by the source; its own stderr handler must be gone

    assert obd.console_handler not in logging.getLogger("obd").handlers


def test_auto_protocol_finds_a_k_line_truck():
    got = Collected()
    with EmulatedELM327(Truck(), "3") as emu, running(make_source(got, emu.port)):
        wait_for(lambda: got(RPM), "rpm over ISO 9141-2")
        assert got(RPM)[0].value == 1726.0


def test_importing_keidash_does_not_import_python_obd():
    code = ("import sys, keidash, keidash.sources.obd, keidash.sim.elm327; "
            "sys.exit('obd' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -- faults -------------------------------------------------------------------------

def test_unplug_fails_with_a_sentence_and_retries(caplog):
    got = Collected()
    with EmulatedELM327(Truck(), "6") as emu, running(make_source(got, emu.port, protocol="6")) as source:
        wait_for(lambda: got(RPM), "rpm")
        emu.unplug()
        wait_for(lambda: source.status().link == FAILED, "FAILED")
        assert source.status().message == f"lost the OBD adapter at {emu.port}: was it unplugged?"
        # The retry finds the port gone, like a pulled USB adapter.
        wait_for(lambda: source.status().message == f"no OBD adapter at {emu.port}: is it plugged in?",
                 "the retry")
        source.stop()
        assert not source._thread.is_alive()
    assert no_escaped_exception(caplog)


def test_hung_adapter_goes_silent_fails_and_recovers(caplog):
    got = Collected()
    # A short timeout: python-obd waits 1 s plus 11 timeouts per silent query.
    with EmulatedELM327(Truck(), "6") as emu, \
            running(make_source(got, emu.port, protocol="6", timeout=0.02)) as source:
        wait_for(lambda: got(RPM), "rpm")
        emu.freeze()
        wait_for(lambda: source.status().errors.get("no_reply", 0) >= 1, "a silent query")
        rpm_count = len(got(RPM))
        wait_for(lambda: source.status().link == FAILED, "FAILED", timeout=25)
        assert source.status().message == f"the OBD adapter at {emu.port} stopped answering"
        assert len(got(RPM)) == rpm_count  # nothing emitted while it was silent
        emu.thaw()
        wait_for(lambda: source.status().link == CONNECTED and len(got(RPM)) > rpm_count, "recovery")
    assert no_escaped_exception(caplog)


def test_stop_interrupts_a_query_to_a_hung_adapter():
    got = Collected()
    with EmulatedELM327(Truck(), "6") as emu:
        source = make_source(got, emu.port, protocol="6", timeout=1.0)
        with running(source):
            wait_for(lambda: got(RPM), "rpm")
            emu.freeze()
            time.sleep(0.3)  # now python-obd is inside a query that would last ~12 s
            source.stop()
            assert not source._thread.is_alive()
            assert source.status().link == STOPPED


def test_unknown_protocol_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown OBD protocol 'B'"):
        ObdSource("obd", ReadingBus().put, "/dev/ttyUSB0", protocol="b")
    with pytest.raises(ValueError):
        ObdSource("obd", ReadingBus().put, "/dev/ttyUSB0", protocol="56")


def test_missing_port_says_so():
    got = Collected()
    with running(make_source(got, "/dev/ttyUSB-keidash-missing")) as source:
        wait_for(lambda: source.status().link == FAILED, "FAILED")
        assert source.status().message == "no OBD adapter at /dev/ttyUSB-keidash-missing: is it plugged in?"
    assert got() == []


def test_permission_denied_says_what_to_do():
    got = Collected()
    with EmulatedELM327(Truck(), "6") as emu:
        os.chmod(emu.port, 0)
        if os.geteuid() == 0:
            message = source_message_as_nobody("ObdSource('obd', sink, port, protocol='6')", emu.port)
        else:
            with running(make_source(got, emu.port)) as source:
                wait_for(lambda: source.status().link == FAILED, "FAILED")
                message = source.status().message
    assert "add the user to the dialout group" in message and emu.port in message


def test_ignition_off_then_on_then_off():
    got = Collected()
    with EmulatedELM327(Truck(), "6") as emu:
        emu.chip.ecu_awake = False
        with running(make_source(got, emu.port, protocol="6")) as source:
            wait_for(lambda: source.status().link == FAILED, "FAILED")
            assert source.status().message == "adapter found but the ECU does not answer: is the ignition on?"

            emu.chip.ecu_awake = True  # key turned: the next retry connects
            wait_for(lambda: got(RPM), "rpm after the key was turned")
            assert source.status().errors == {}

            emu.chip.ecu_awake = False
            wait_for(lambda: source.status().link == FAILED, "FAILED")
            status = source.status()
            assert status.message == "the ECU stopped answering: is the ignition on?"
            assert status.errors.get("elm_error", 0) >= 3  # "CAN ERROR", counted, not fatal at once


def test_line_noise_is_survived(caplog):
    got = Collected()
    with EmulatedELM327(Truck(), "6") as emu, running(make_source(got, emu.port, protocol="6")) as source:
        wait_for(lambda: got(RPM), "rpm")
        for _ in range(20):
            emu.send_garbage(b"\x00\xff#!~\r")
            time.sleep(0.01)
        count = len(got(RPM))
        wait_for(lambda: len(got(RPM)) > count + 5, "rpm after the noise")
        assert source.status().link == CONNECTED
        assert {r.value for r in got(RPM)} == {1726.0}
    assert no_escaped_exception(caplog)


# -- the pty transport on its own (pyserial) ----------------------------------------

def test_emulator_speaks_over_the_pty():
    with EmulatedELM327(Truck(), "6") as emu, serial.Serial(emu.port, timeout=2) as port:
        port.write(b"ATI\r")
        assert port.read_until(b">") == b"ATI\rELM327 v1.5\r\r>"
        port.write(b"ATE0\r")
        assert port.read_until(b">") == b"ATE0\rOK\r\r>"
        port.write(b"ATH1\rATSP6\r")  # two commands in one write
        assert port.read_until(b">") + port.read_until(b">") == b"OK\r\r>OK\r\r>"
        port.write(b"010C\r")
        assert port.read_until(b">") == b"7E8 04 41 0C 1A F8\r\r>"
        assert emu.commands_handled == 5

        emu.send_garbage(b"\x55\xaa")
        assert port.read(2) == b"\x55\xaa"

        emu.freeze()
        port.timeout = 0.3
        port.write(b"ATI\r")
        assert port.read_until(b">") == b""
        wait_for(lambda: emu.counts["ignored"] == 1, "the ignored command")
        emu.thaw()
        port.timeout = 2
        port.write(b"ATI\r")
        assert port.read_until(b">") == b"ELM327 v1.5\r\r>"

        emu.unplug()
        with pytest.raises(serial.SerialException):
            port.read(1)
        assert not os.path.exists(emu.port)


# -- against the independent ELM327-emulator package ---------------------------------

def test_works_against_the_elm327_emulator_package(tmp_path, monkeypatch):
    elm = pytest.importorskip("elm", reason="ELM327-emulator is a test-only extra")
    # The package configures the root logger from its own YAML (and writes
    # elm.log) unless ELM_LOG_CFG names another file: hand it one that changes nothing.
    quiet = tmp_path / "elm-logging.yaml"
    quiet.write_text("version: 1\nincremental: true\n")
    monkeypatch.setenv("ELM_LOG_CFG", str(quiet))
    monkeypatch.chdir(tmp_path)

    emulator = elm.Elm(batch_mode=True)
    port = emulator.get_pty()  # made before its thread starts, so there is only one
    got = Collected()
    with emulator, running(make_source(got, port, protocol="6")) as source:
        wait_for(lambda: {r.channel for r in got()} >= {RPM, SPEED, COOLANT}, "rpm, speed and coolant")
        assert source.status().link == CONNECTED
        # Its default scenario makes up its own values: check they are plausible.
        assert all(0 <= r.value <= 16383.75 for r in got(RPM))
        assert all(0 <= r.value <= 255 for r in got(SPEED))
        assert all(-40 <= r.value <= 215 for r in got(COOLANT))
    assert not (tmp_path / "elm.log").exists()
