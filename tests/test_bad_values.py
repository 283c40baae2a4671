"""Bad input never costs a drive: numbers in the config, values in the trip log, foreign files.

Each test feeds the bad input through the real path: a config file through
``keidash.config.load_config`` and ``keidash run --config`` (keidash.cli.main), a TripLog on
a file in tmp_path.
"""

from __future__ import annotations

import math
import sqlite3
import time

import pytest

from keidash.cli import main
from keidash.config import load_config
from keidash.errors import ConfigError

from waiting import wait_for

BASE = 'profile = "hijet-s500p"\n[sources]\ngps = "nmea:///dev/serial0"\n'
SIM = 'profile = "hijet-s500p"\n[sources]\nsim = "sim://hijet-s500p?hardware=gps"\n'


def write(tmp_path, text: str, name: str = "truck.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- 3. the config's numbers -------------------------------------------------------------------
@pytest.mark.parametrize("table,key,value", [
    ("display", "width", "inf"), ("display", "width", "nan"), ("display", "height", "-inf"),
    ("display", "height", "nan"), ("display", "width", "1e300"), ("display", "width", "9223372036854775807"),
    ("display", "fps", "nan"), ("display", "fps", "inf"), ("display", "fps", "1e-300"), ("display", "fps", "100000"),
    ("display", "odometer_km", "nan"), ("display", "odometer_km", "inf"), ("display", "odometer_km", "-1"),
    ("shift", "redline_rpm", "inf"), ("shift", "redline_rpm", "nan"), ("shift", "upshift_rpm", "nan"),
    ("shift", "upshift_rpm", "1e-300"), ("shift", "idle_rpm", "nan"), ("shift", "idle_rpm", "1e9"),
    ("shift", "upshift_rpm_per_gear", "[4500, nan]"), ("shift", "upshift_rpm_per_gear", "[inf]"),
    ("shift", "upshift_rpm_per_gear", "[4500, 1e-300]"),
])
def test_a_non_finite_or_absurd_number_is_one_sentence_naming_the_key_and_the_file(tmp_path, table, key, value):
    path = write(tmp_path, BASE + f"[{table}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert path in message and f"[{table}]" in message and key in message
    assert "\n" not in message


@pytest.mark.parametrize("value", ["nan", "inf", "0", "1e-300", "-1500"])
def test_span_rpm_must_be_a_sane_number(tmp_path, value):
    path = write(tmp_path, BASE + f"[lights]\nbar = [5, 6, 13]\nspan_rpm = {value}\n")
    with pytest.raises(ConfigError, match=r"\[lights\]: span_rpm must be a positive number"):
        load_config(path)


def test_sane_numbers_still_load(tmp_path):
    path = write(tmp_path, BASE + "[display]\nwidth = 1024\nheight = 600\nfps = 30\nodometer_km = 51234.5\n"
                                  "[shift]\nidle_rpm = 850\nupshift_rpm = 4500\nredline_rpm = 6500\n"
                                  "upshift_rpm_per_gear = [5000, 0, 4500]\n"
                                  "[lights]\nbar = [5, 6]\nspan_rpm = 1200\n")
    config = load_config(path)
    assert config.size == (1024, 600) and config.fps == 30.0 and config.odometer_km == 51234.5
    assert config.shift == {"idle_rpm": 850.0, "upshift_rpm": 4500.0, "redline_rpm": 6500.0,
                            "upshift_rpm_per_gear": (5000.0, 0.0, 4500.0)}
    assert config.lights["span_rpm"] == 1200.0


def test_limits_in_the_wrong_order_are_refused(tmp_path):
    path = write(tmp_path, BASE + "[shift]\nupshift_rpm = 7000\nredline_rpm = 6000\n")
    with pytest.raises(ConfigError, match=r"\[shift\]: upshift_rpm \(7000\) must be below redline_rpm \(6000\)"):
        load_config(path)


@pytest.mark.parametrize("text,message", [
    ('profile = "hijet-s500p"\nsources = 5\n', r"\[sources\] must be a table"),
    ('profile = "hijet-s500p"\nsources = "gps"\n', r"\[sources\] must be a table"),
    ('profile = "hijet-s500p"\n[sources]\ngps = 5\n', r"\[sources\]: gps must be a URL in quotes"),
    ('profile = "hijet-s500p"\n[sources]\ngps = {a = {b = 1}}\n', r"\[sources\]: gps must be a URL in quotes"),
    (BASE + "x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    (BASE + "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "nested too deeply"),
])
def test_a_config_of_the_wrong_shape_is_one_sentence(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert path in str(info.value)


@pytest.mark.parametrize("extra", [
    "[shift]\nupshift_rpm = nan\n",  # crashed the dash after it started: a restart loop under systemd
    "[lights]\nbar = [5, 6, 13]\nspan_rpm = nan\n",  # the same, from the shift lights
    "[display]\nfps = nan\n",  # drew ~20 000 frames a second
    "[display]\nodometer_km = nan\n",  # showed "nan mi"
    "[display]\nwidth = inf\n",  # a traceback
])
def test_keidash_run_refuses_a_bad_number_before_the_drive_starts(tmp_path, capsys, monkeypatch, extra):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    path = write(tmp_path, SIM + extra)
    status = main(["run", "--config", path, "--headless", "--seconds", "1"])
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"keidash: {path} [")


def test_keidash_run_with_the_same_keys_sane_runs_a_second(tmp_path, capsys, monkeypatch):
    """The control for the test above: the same config with sane numbers drives."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    path = write(tmp_path, SIM + "[display]\nfps = 30\nodometer_km = 1000\n[shift]\nupshift_rpm = 4500\n"
                                 "[lights]\nbar = [5, 6, 13]\nspan_rpm = 1500\n")
    stats = tmp_path / "stats.json"
    status = main(["run", "--config", path, "--headless", "--seconds", "1", "--stats-json", str(stats)])
    assert status == 0, capsys.readouterr().err
    import json
    assert json.loads(stats.read_text())["frames"] >= 1
