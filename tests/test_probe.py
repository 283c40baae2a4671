"""keidash probe: one source opened by URL, its channels' rates and errors reported."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

from keidash.errors import ConfigError
from keidash.pi.probe import format_probe, probe
from keidash.readings import BATTERY, COOLANT, GPS_TIME, LATITUDE, LONGITUDE, RPM, SPEED, THROTTLE
from keidash.sim.nmea import EmulatedGPS
from keidash.sim.truth import parked

CHANNEL_FIGURES = {"hz", "errors", "readings", "last", "min", "max", "source"}


class Clock:
    """A truth whose time runs (each GPS epoch is a new fix) at a constant 42 km/h."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 0.2
        return replace(parked(self.t), speed_kmh=42.0)


def test_the_virtual_truck_reports_every_channel_of_every_source():
    result = probe("sim://hijet-s500p", 3.0)
    json.dumps(result)  # plain JSON types only
    assert list(result) == [RPM, SPEED, COOLANT, BATTERY, THROTTLE, LATITUDE, LONGITUDE, GPS_TIME, "sources"]
    assert set(result["sources"]) == {"pulses", "obd", "gps"}
    for name, info in result["sources"].items():
        assert info["link"] == "connected", (name, info)
        assert info["readings"] > 0 and info["connect_s"] is not None
    # The dash's preferred source first, each source's own figures beside it.
    assert result[RPM]["source"] == "pulses" and set(result[RPM]["by_source"]) == {"pulses", "obd"}
    assert result[SPEED]["source"] == "pulses" and set(result[SPEED]["by_source"]) == {"pulses", "obd", "gps"}
    assert result[COOLANT]["source"] == "obd" and "by_source" not in result[COOLANT]
    for channel in (RPM, SPEED, COOLANT, BATTERY, THROTTLE):
        entry = result[channel]
        assert CHANNEL_FIGURES <= set(entry) and entry["readings"] > 0 and entry["errors"] == 0
    # The pulse source publishes 20 times a second, the GPS 5; loose bounds, against a hang only.
    assert 5.0 < result[RPM]["hz"] < 40.0
    assert 1.0 < result[SPEED]["by_source"]["gps"]["hz"] < 10.0
    assert result[SPEED]["by_source"]["gps"]["hz"] < result[SPEED]["hz"]


def test_a_gps_by_url_with_its_errors_attributed():
    done = threading.Event()
    with EmulatedGPS(Clock(), rate_hz=5.0) as gps:
        def noise():  # line noise now and then (the port drops what came before it opened)
            while not done.wait(0.1):
                gps.inject(b"\x00\xff line noise\r\n")
        injector = threading.Thread(target=noise)
        injector.start()
        try:
            result = probe(f"nmea://{gps.port}", 1.5)
        finally:
            done.set()
            injector.join()
    assert list(result) == [SPEED, LATITUDE, LONGITUDE, GPS_TIME, "sources"]
    assert set(result["sources"]["gps"]["errors"]) == {"parse"}
    assert result[SPEED]["errors"] == result["sources"]["gps"]["errors"]["parse"] > 0
    assert result[SPEED]["source"] == "gps"
    assert result[SPEED]["last"] == pytest.approx(42.0, abs=0.01)
    assert result[SPEED]["readings"] >= 3


def test_a_missing_adapter_is_reported_not_raised():
    result = probe("obd:///dev/ttyKEIDASH-missing", 0.5)
    assert result["sources"]["obd"]["link"] == "failed"
    assert result["sources"]["obd"]["message"].startswith("no OBD adapter at /dev/ttyKEIDASH-missing")
    assert result["sources"]["obd"]["connect_s"] is None
    assert [result[c]["readings"] for c in (RPM, SPEED, COOLANT, BATTERY, THROTTLE)] == [0] * 5
    assert result[RPM] == {"hz": 0.0, "errors": 0, "readings": 0, "last": None, "min": None, "max": None,
                           "source": "obd"}


def test_a_pulse_url_reports_only_the_pins_given(monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    from gpiozero import Device
    monkeypatch.setattr(Device, "pin_factory", None)
    try:
        result = probe("pulses://gpio?tach=17", 1.5)  # zero only after the 0.5 s silence timeout
    finally:
        if Device.pin_factory is not None:
            Device.pin_factory.close()
    assert list(result) == [RPM, "sources"]
    assert result["sources"]["pulses"]["link"] == "connected"
    assert result[RPM]["last"] == 0.0  # nothing on the pin for longer than the timeout: engine off


@pytest.mark.parametrize("url, seconds, message", [
    ("bogus:///dev/x", 1.0, "unknown URL scheme 'bogus'"),
    ("nmea://", 1.0, "name the GPS port"),
    ("sim://hijet-s500p", 0.0, "--seconds must be above 0"),
    ("sim://hijet-s500p", float("nan"), "--seconds must be above 0"),
])
def test_bad_arguments_are_one_sentence(url, seconds, message):
    with pytest.raises(ConfigError, match=message):
        probe(url, seconds)


RESULT = {
    RPM: {"hz": 19.93, "errors": 0, "readings": 99, "last": 2512.4, "min": 848.25, "max": 2515.0,
          "source": "pulses",
          "by_source": {"pulses": {"hz": 19.93, "errors": 0, "readings": 99, "last": 2512.4, "min": 848.25,
                                   "max": 2515.0},
                        "obd": {"hz": 9.8, "errors": 2, "readings": 48, "last": 2500.0, "min": 850.0,
                                "max": 2500.0}}},
    SPEED: {"hz": 0.0, "errors": 0, "readings": 0, "last": None, "min": None, "max": None, "source": "gps"},
    "sources": {
        "pulses": {"link": "connected", "message": "", "connect_s": 0.01, "errors": {}, "readings": 198,
                   "channels": [RPM]},
        "obd": {"link": "connected", "message": "", "connect_s": 1.52, "errors": {"no_data": 2},
                "readings": 48, "channels": [RPM]},
        "gps": {"link": "connected", "message": "GPS has no fix", "connect_s": None, "errors": {},
                "readings": 0, "channels": [SPEED]},
    },
}


def test_the_text_report():
    assert format_probe(RESULT) == "\n".join([
        "source  link       connect  readings  errors         message",
        "pulses  connected  0.0 s    198       0",
        "obd     connected  1.5 s    48        2 (no_data 2)",
        "gps     connected  -        0         0              GPS has no fix",
        "",
        "channel    source  rate     readings  errors  last   min    max",
        "rpm        pulses  19.9 Hz  99        0       2,512  848.2  2,515",
        "           obd     9.8 Hz   48        2       2,500  850    2,500",
        "speed_kmh  gps     0.0 Hz   0         0       -      -      -",
    ])
