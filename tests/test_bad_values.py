"""Bad input never costs a drive: numbers in the config, values in the trip log, foreign files.

Each test feeds the bad input through the real path: a config file through
``keidash.config.load_config`` and ``keidash run --config`` (keidash.cli.main), a TripLog on
a file in tmp_path.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from pathlib import Path

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


@pytest.mark.parametrize("url,key,shown", [
    ("sim://hijet-s500p?speedup=1e-300", "speedup", "1e-300"),  # an OverflowError in the virtual truck's thread
    ("sim://hijet-s500p?speedup=1e308", "speedup", "1e308"),
    ("sim://hijet-s500p?ecu_ms=1e300", "ecu_ms", "1e300"),
    ("pulses://gpio?tach=99", "tach", "99"), ("pulses://gpio?tach=5.5", "tach", "5.5"),
    ("pulses://gpio?tach=17&tach_ppr=1e-300", "tach_ppr", "1e-300"),
    ("pulses://gpio?vss=27&vss_ppk=1e300", "vss_ppk", "1e300"),
    ("obd:///dev/ttyUSB0?baud=1", "baud", "1"), ("obd:///dev/ttyUSB0?timeout=1e300", "timeout", "1e300"),
    ("obd:///dev/ttyUSB0?slow_s=0", "slow_s", "0"), ("obd:///dev/ttyUSB0?max_hz=1e300", "max_hz", "1e300"),
    ("nmea:///dev/serial0?rate=1e300", "rate", "1e300"), ("nmea:///dev/serial0?baud=true", "baud", "true"),
    ("replay:///tmp/drive.csv?speed=1e-300", "speed", "1e-300"),
])
def test_every_number_in_a_source_url_is_in_its_range_when_the_config_loads(tmp_path, url, key, shown):
    path = write(tmp_path, f'profile = "hijet-s500p"\n[sources]\ntruck = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path} [sources]: truck option {key} must be ")
    assert message.endswith(f", not {shown!r}") and " to " in message and "\n" not in message


@pytest.mark.parametrize("extra,key", [
    ("[display]\nwidth = 800.5\n", "width"),  # was cut to 800 without a word
    ("[display]\nheight = 100000\n", "height"),
    ("[display]\nfps = true\n", "fps"),  # a boolean is an int to Python, never a number here
    ("[backlight]\nday = 1e308\n", "day"), ("[button]\npin = -1\n", "pin"),
    ("[alarms]\nbattery_low_v = inf\n", "battery_low_v"), ('[shift]\nidle_rpm = "850"\n', "idle_rpm"),
])
def test_a_number_of_the_wrong_kind_is_one_sentence_with_its_range(tmp_path, extra, key):
    path = write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError, match=rf" {key} must be (a|0 or a) .* to .*, not ") as info:
        load_config(path)
    assert str(info.value).startswith(f"{path} [")


def test_keidash_run_refuses_a_source_option_out_of_range_before_the_drive_starts(tmp_path):
    # was: the dash started, the virtual truck's thread died of an OverflowError (a traceback) and the
    # dash drove on with a truck that never moved
    path = write(tmp_path, 'profile = "hijet-s500p"\n[sources]\n'
                           'sim = "sim://hijet-s500p?hardware=gps&speedup=1e-300"\n')
    run = _cli("run", "--config", path, "--headless", "--seconds", "2")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip() == (f"keidash: {path} [sources]: sim option speedup must be a positive number from "
                                  f"0.1 to 20 simulated seconds per second, not '1e-300'")


def test_a_vehicle_file_naming_no_gearbox_is_one_sentence(tmp_path):
    # keidash eval's vehicle.toml "banana" was taken for a manual, and the owner never told
    folder = tmp_path / "truck"
    folder.mkdir()
    (folder / "drive.csv").write_bytes((Path(__file__).parent / "data" / "drives" / "synthetic" /
                                        "torque-synthetic.csv").read_bytes())
    (folder / "vehicle.toml").write_text('transmission = "banana"\n', encoding="utf-8")
    run = _cli("eval", str(folder))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip() == (f"keidash: {folder / 'vehicle.toml'}: transmission must be text such as \"5MT\" "
                                  f"or \"4AT\", not 'banana'")


def _cli(*args):
    import os
    import subprocess
    import sys
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock")
    return subprocess.run([sys.executable, "-m", "keidash", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_a_vehicle_file_nested_too_deeply_is_one_sentence(tmp_path):
    # keidash eval reads a folder's vehicle.toml: tomllib's RecursionError was a traceback
    folder = tmp_path / "truck"
    folder.mkdir()
    (folder / "drive.csv").write_bytes((Path(__file__).parent / "data" / "drives" / "synthetic" /
                                        "torque-synthetic.csv").read_bytes())
    (folder / "vehicle.toml").write_text("transmission = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    run = _cli("eval", str(folder))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip() == f"keidash: vehicle file {folder / 'vehicle.toml'} is not valid TOML: nested too deeply"


# -- 3. the profile's numbers ------------------------------------------------------------------------
HIJET = (Path(__file__).parent.parent / "keidash" / "profiles" / "hijet-s500p.toml").read_text(encoding="utf-8")


def _profile_with(key: str, value: str) -> str:
    """The Hijet's profile with ``key = value`` (its first ``key =`` line), or with a table ``key`` holding
    ``value`` added; ``value`` itself for the key "file"."""
    import re
    if key == "file":
        return value
    if re.search(rf"(?m)^{key} = ", HIJET):
        return re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", HIJET, count=1)
    assert key.startswith("[")
    return HIJET + f"\n{key}\n{value}\n"


@pytest.mark.parametrize("key,value,message", [
    ("peak_power_rpm", "1e308", "[engine]: peak_power_rpm must be a positive number from 1,000 to 20,000 rpm, "
                                "not 1e+308"),  # was a tach of 1e308 rpm
    ("peak_power_rpm", "nan", "[engine]: peak_power_rpm must be a positive number from 1,000 to 20,000 rpm, not nan"),
    ("peak_torque_rpm", "6000", "[engine]: peak_torque_rpm (6000) must not be above peak_power_rpm (5700)"),
    ("displacement_cc", "inf", "[engine]: displacement_cc must be a positive number from 50 to 10,000 cc, not inf"),
    ("cylinders", "true", "[engine]: cylinders must be a positive whole number from 1 to 12 cylinders, not True"),
    ("final_drive", "1e-300", "[gearbox]: final_drive must be a positive number from 1 to 20, not 1e-300"),
    ("gear_count", "true", "[gearbox]: gear_count must be a positive whole number from 1 to 10 forward gears, "
                           "not True"),
    ("gear_ratios", "[4.059, 1e308, 1.646, 1.0, 0.742]", "[gearbox]: gear_ratios must be a list of positive numbers"),
    ("transmission", "5", "[gearbox]: transmission must be text as the source gives it"),  # an AttributeError
    ("transmission", '"banana"', "[gearbox]: transmission must be text as the source gives it, e.g. \"5MT\", "
                                 "\"4MT+EL\", \"3AT\" or \"CVT\", not 'banana'"),  # was taken for a manual
    ("[tach]", "pulses_per_rev = 1e-300", "[tach]: pulses_per_rev must be a positive number from 0.25 to 24 "
                                           "pulses per revolution, not 1e-300"),
    ("[learned]", "rpm_per_kmh = [inf]\nconfidence = [1.0]", "[learned]: rpm_per_kmh must be a list of positive "
                                                              "numbers, each a positive number from 5 to 2,000"),
    ("[learned]", "rpm_per_kmh = [50.0]\nconfidence = [1.0]\nidle_rpm = 1e308",
     "[learned]: idle_rpm must be a positive number from 200 to 3,000 rpm, not 1e+308"),
    ("file", 'name = "x"\ntitle = "X"\nengine = 5\n[tyre]\nsize = "145R12"\n',
     ": engine must be a table ([engine]), not 5"),  # was a TypeError traceback
    ("[tach]", "sources = 5", "[tach]: sources must be a list of where its numbers come from"),  # a TypeError
])
def test_every_number_in_a_profile_is_in_its_range(tmp_path, key, value, message):
    from keidash.errors import ProfileError
    from keidash.profiles import load_profile
    path = write(tmp_path, _profile_with(key, value), "truck-profile.toml")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(info.value).startswith(f"{path}") and message in str(info.value)
    assert "\n" not in str(info.value)
    # the same through the command line: keidash marks and keidash run (its config naming the file)
    marks = _cli("marks", "--profile", path)
    assert marks.returncode == 2 and "Traceback" not in marks.stderr
    assert marks.stderr.strip() == f"keidash: {info.value}"
    config = write(tmp_path, f'profile = "{path}"\n[sources]\nsim = "sim://hijet-s500p?hardware=gps"\n')
    run = _cli("run", "--config", config, "--headless", "--seconds", "1")
    assert run.returncode == 2 and run.stderr.strip() == f"keidash: {info.value}"


# -- 4. a bad value in the trip log ----------------------------------------------------------------
from keidash.dashstate import DashState  # noqa: E402
from keidash.readings import Reading  # noqa: E402
from keidash.triplog.writer import TripLog  # noqa: E402

FAST = dict(commit_every_s=0.02, retry_s=0.02)


def rows(path, sql, args=()):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def dash(t: float, rpm=3000.0, speed=42.0) -> DashState:
    return DashState(t, "Hijet", rpm, False, speed, 3, None, 5500.0, 6500.0, 8000.0)


def test_nan_readings_are_dropped_and_counted_and_never_block_the_good_ones(tmp_path):
    path = tmp_path / "trips.db"
    log = TripLog(str(path), mono=lambda: 0.0, **FAST)
    t = time.monotonic()
    log.readings([Reading(t, "rpm", 900.0, "obd"), Reading(t + 0.1, "rpm", math.nan, "obd"),
                  Reading(t + 0.2, "speed_kmh", math.inf, "gps"), Reading(t + 0.3, "rpm", -math.inf, "obd"),
                  Reading(math.nan, "rpm", 950.0, "obd"), Reading(t + 0.4, "rpm", "fast", "obd"),
                  Reading(t + 0.5, "speed_kmh", 12.5, "gps")], t + 0.5)
    assert wait_for(lambda: log.rows_written == 2)
    assert log.bad == 5
    assert log.status() == "trip log dropped 5 bad values (not numbers)"
    for i in range(10):  # the log goes on: later good readings are written too
        log.readings([Reading(t + 1 + i, "rpm", 1000.0 + i, "obd")], t + 1 + i)
    assert wait_for(lambda: log.rows_written == 12)
    log.close()
    assert rows(path, "SELECT value FROM readings ORDER BY t") == [
        (900.0,), (12.5,)] + [(1000.0 + i,) for i in range(10)]
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]


def test_the_bad_values_of_each_trip_are_kept_in_the_log_and_shown_by_keidash_trips(tmp_path, capsys):
    """Counted per trip in the file (trips.bad_values), so the owner sees them after the drive."""
    path = tmp_path / "trips.db"
    now = [T]
    log = TripLog(str(path), clock=lambda: now[0], **FAST)
    t = time.monotonic()
    log.readings([Reading(t, "rpm", 900.0, "obd"), Reading(t + 0.1, "rpm", math.nan, "obd"),
                  Reading(t + 0.2, "speed_kmh", math.inf, "gps")], t + 0.2)
    log.frame(dash(math.nan), t + 0.2)
    later = t + 400.0  # parked for more than TRIP_GAP_S: a second trip, with one bad value
    log.readings([Reading(later, "rpm", 950.0, "obd"), Reading(later + 0.1, "coolant_c", math.nan, "obd")],
                 later + 0.1)
    log.readings([Reading(later + 0.2, "rpm", 1000.0, "obd")], later + 0.2)
    assert wait_for(lambda: log.rows_written == 3)
    now[0] = T + 600
    log.close()
    assert rows(path, "SELECT id, bad_values FROM trips ORDER BY id") == [(1, 3), (2, 1)]
    assert main(["trips", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith(" (3 bad values dropped)") and lines[2].endswith(" (1 bad value dropped)")


def test_a_frame_with_nan_keeps_its_good_figures_and_one_with_no_time_is_dropped(tmp_path):
    path = tmp_path / "trips.db"
    log = TripLog(str(path), mono=lambda: 0.0, **FAST)
    t = time.monotonic()
    log.frame(dash(t, rpm=math.nan, speed=math.inf), t)
    log.frame(dash(math.nan), t + 0.2)
    log.frame(dash(t + 0.4), t + 0.4)
    assert wait_for(lambda: log.rows_written == 2)
    log.close()
    assert log.bad == 1
    assert rows(path, "SELECT speed_kmh, rpm FROM frames ORDER BY t") == [(None, None), (42.0, 3000.0)]


def test_a_row_the_database_refuses_is_dropped_alone(tmp_path):
    """A row SQLite itself refuses (here a trigger standing for any constraint) costs only itself."""
    path = tmp_path / "trips.db"
    TripLog(str(path), **FAST).close()  # the tables exist, so a trigger can watch them

    def connect(p):
        conn = sqlite3.connect(p)
        conn.execute("CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.readings WHEN NEW.value = 13"
                     " BEGIN SELECT RAISE(ABORT, 'refused'); END")
        return conn

    log = TripLog(str(path), connect=connect, **FAST)
    t = time.monotonic()
    log.readings([Reading(t + i * 0.01, "rpm", float(v), "obd") for i, v in enumerate((11, 12, 13, 14))], t)
    assert wait_for(lambda: log.rows_written == 3)
    log.readings([Reading(t + 1, "rpm", 15.0, "obd")], t + 1)
    assert wait_for(lambda: log.rows_written == 4)
    assert log.bad == 1 and log.status() == "trip log dropped 1 bad values (not numbers)"
    log.close()
    assert [v for (v,) in rows(path, "SELECT value FROM readings ORDER BY t")] == [11.0, 12.0, 14.0, 15.0]


# -- 5. trip-log files that are not ours -----------------------------------------------------------
def test_a_file_that_is_not_a_database_is_kept_aside_and_a_new_log_started(tmp_path):
    path = tmp_path / "trips.db"
    garbage = bytes(range(256)) * 64
    path.write_bytes(garbage)
    (tmp_path / "trips.db-wal").write_bytes(b"its WAL")  # moved with it: never replayed into the new log
    found = T + 3 * DAY
    log = TripLog(str(path), clock=lambda: found, **FAST)
    t = time.monotonic()
    log.readings([Reading(t, "rpm", 800.0, "obd")], t)
    assert wait_for(lambda: log.rows_written == 1)
    aside = f"trips.db.corrupt-{time.strftime('%Y%m%d-%H%M%S', time.localtime(found))}"  # when it was found
    assert log.status() == f"trip log was damaged: kept it as {aside}, started a new one"
    log.close()
    assert (tmp_path / aside).read_bytes() == garbage  # kept, byte for byte
    assert (tmp_path / f"{aside}-wal").read_bytes() == b"its WAL"
    assert rows(path, "SELECT value FROM readings") == [(800.0,)]
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]


def test_a_log_with_damaged_pages_is_kept_aside_and_a_second_one_gets_the_next_number(tmp_path):
    path = tmp_path / "trips.db"
    stamp = time.strftime('%Y%m%d-%H%M%S', time.localtime(T))
    (tmp_path / f"trips.db.corrupt-{stamp}").write_bytes(b"an earlier damaged log")  # the same second
    log = TripLog(str(path), **FAST)  # a keidash log whose pages get damaged (an SD card's failing block)
    t = time.monotonic()
    for start in range(0, 20_000, 1000):
        log.readings([Reading(t + i * 1e-3, "rpm", float(i), "obd") for i in range(start, start + 1000)], t)
    log.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 10 * page
    data[page:len(data) - page] = bytes([0xA5]) * (len(data) - 2 * page)  # every page but the first and last
    path.write_bytes(bytes(data))

    log = TripLog(str(path), clock=lambda: T, **FAST)
    log.readings([Reading(t + 100, "rpm", 1234.0, "obd")], t + 100)
    assert wait_for(lambda: log.rows_written == 1)
    assert f"kept it as trips.db.corrupt-{stamp}-2," in log.status()
    log.close()
    assert (tmp_path / f"trips.db.corrupt-{stamp}-2").read_bytes() == bytes(data)
    assert (tmp_path / f"trips.db.corrupt-{stamp}").read_bytes() == b"an earlier damaged log"
    assert rows(path, "SELECT value FROM readings") == [(1234.0,)]
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]


def test_another_programs_database_is_refused_and_left_byte_for_byte(tmp_path):
    path = tmp_path / "trips.db"
    sqlite_file(path, "CREATE TABLE contacts (name TEXT, phone TEXT)",
                "INSERT INTO contacts VALUES ('Sato', '090'), ('Ito', '080')",
                "PRAGMA user_version = 1")  # common in other programs too
    refused_untouched(tmp_path, path, r"its tables \(contacts\) are not keidash's")
    assert rows(path, "SELECT name FROM sqlite_master") == [("contacts",)]


def sqlite_file(path, *statements) -> None:
    """Another program's (or a hand-made) SQLite file at ``path``: ``statements`` run and committed."""
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def sha256(path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused_untouched(tmp_path, path, expected_why: str) -> None:
    """A TripLog on ``path`` refuses it, and the file and its folder are as they were."""
    before, listing = sha256(path), sorted(p.name for p in tmp_path.iterdir())
    log = TripLog(str(path), **FAST)
    t = time.monotonic()
    log.readings([Reading(t, "rpm", 800.0, "obd")], t)
    assert wait_for(lambda: log.status() != "")
    assert log.status() == f"trip log: {path} is another program's database: not logging"
    log.readings([Reading(t + 1, "rpm", 900.0, "obd")], t + 1)  # the frame loop goes on
    log.close()
    assert sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no -wal, no -shm, nothing moved
    from keidash.triplog.writer import ForeignDatabaseError, inspect_file
    with pytest.raises(ForeignDatabaseError, match=expected_why):
        inspect_file(str(path))


def test_another_programs_wal_database_gets_no_wal_or_shm_beside_it(tmp_path):
    """Before: the read-only look at it created trips.db-wal and trips.db-shm (and left them)."""
    path = tmp_path / "trips.db"
    sqlite_file(path, "PRAGMA journal_mode = WAL", "CREATE TABLE notes (body TEXT)",
                "INSERT INTO notes VALUES ('not yours')")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trips.db"]
    refused_untouched(tmp_path, path, r"its tables \(notes\) are not keidash's")


def test_a_database_with_another_application_id_is_refused_even_with_tables_like_keidashs(tmp_path):
    """Another program's file (a GeoPackage says "GPKG") whose tables happen to be named as ours.

    Before: keidash's three tables with their columns were taken as its log, and written."""
    from keidash.triplog.writer import MIGRATIONS
    path = tmp_path / "trips.db"
    sqlite_file(path, f"PRAGMA application_id = {int.from_bytes(b'GPKG', 'big')}", *MIGRATIONS[0][1])
    refused_untouched(tmp_path, path, r"its application_id is 0x47504b47, not keidash's")
    from keidash.triplog.reading import trips_main
    with pytest.raises(ConfigError, match=r"is another program's SQLite database \(its application_id is 0x47504b47\)"):
        trips_main(str(path))


def test_keidashs_tables_with_another_table_beside_them_are_not_its_log(tmp_path):
    """Before: any file with keidash's three tables passed, whatever else it held."""
    from keidash.triplog.writer import MIGRATIONS
    path = tmp_path / "trips.db"
    sqlite_file(path, *MIGRATIONS[0][1], "CREATE TABLE invoices (number INTEGER)", "PRAGMA user_version = 1")
    refused_untouched(tmp_path, path, r"its tables \(invoices\) are not keidash's")


def test_a_user_version_no_keidash_writes_is_another_program_not_a_newer_keidash(tmp_path):
    """Before: any user_version above keidash's was "written by a newer keidash"."""
    path = tmp_path / "trips.db"
    sqlite_file(path, "CREATE TABLE cache (key TEXT, value BLOB)", "PRAGMA user_version = 7")
    refused_untouched(tmp_path, path, r"its user_version is 7, with no application_id")


def test_keidash_trips_says_the_file_is_another_programs(tmp_path, capsys):
    path = tmp_path / "other.db"
    sqlite_file(path, f"PRAGMA application_id = {int.from_bytes(b'GPKG', 'big')}",
                "CREATE TABLE trips (id INTEGER PRIMARY KEY)")
    before = sha256(path)
    assert main(["trips", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"keidash: {path} is another program's SQLite database (its application_id is 0x47504b47), "
        "not a keidash trip log")
    assert sha256(path) == before


def test_an_empty_sqlite_database_becomes_the_log(tmp_path):
    path = tmp_path / "trips.db"
    sqlite_file(path, "CREATE TABLE x (y)", "DROP TABLE x")
    assert path.stat().st_size > 0
    log = TripLog(str(path), **FAST)
    t = time.monotonic()
    log.readings([Reading(t, "rpm", 800.0, "obd")], t)
    assert wait_for(lambda: log.rows_written == 1)
    assert log.status() == ""
    log.close()
    assert rows(path, "SELECT value FROM readings") == [(800.0,)]


# -- 2. retention on a wrong clock ---------------------------------------------------------------
DAY = 86400.0
T = 1_800_000_000.0


def unconfirmed(tmp_path, clock):
    """The wall clock as keidash sees it on a Pi with no network (no NTP) and no GPS."""
    from keidash.triplog.clock import WallClock
    return WallClock(clock, synchronized=str(tmp_path / "no-ntp-here"))


def synchronized(tmp_path, clock):
    """The wall clock after systemd-timesyncd has synchronized it (the file it touches exists)."""
    from keidash.triplog.clock import WallClock
    (tmp_path / "synchronized").touch()
    return WallClock(clock, synchronized=str(tmp_path / "synchronized"))


def past_trip(path, clock_unix, value, confirmed):
    """One earlier drive, dated ``clock_unix`` by a clock that was (or was not) confirmed."""
    folder = path.parent / ("ntp" if confirmed else "no-ntp")
    folder.mkdir(exist_ok=True)
    wall = (synchronized if confirmed else unconfirmed)(folder, lambda: clock_unix)
    log = TripLog(str(path), clock=lambda: clock_unix, keep_days=None, max_mb=None, wall=wall, **FAST)
    t = time.monotonic()
    log.readings([Reading(t, "rpm", value, "obd")], t)
    log.close()


def trip_ids(path):
    return [i for (i,) in rows(path, "SELECT id FROM trips ORDER BY id")]


def test_a_wall_clock_a_year_ahead_deletes_no_earlier_trip(tmp_path):
    path = tmp_path / "trips.db"
    for i, days_ago in enumerate((300, 200, 30, 5, 1)):
        past_trip(path, T - days_ago * DAY, float(i), confirmed=True)
    now = T + 366 * DAY  # no RTC, no network: a bad guess
    log = TripLog(str(path), clock=lambda: now, keep_days=365, keep_trips=0, wall=unconfirmed(tmp_path, lambda: now),
                  **FAST)
    log.close()
    assert trip_ids(path) == [1, 2, 3, 4, 5, 6]
    assert len(rows(path, "SELECT * FROM readings")) == 5


def test_an_unconfirmed_clock_deletes_nothing_by_age_even_when_it_agrees_with_the_drives(tmp_path):
    """30 drives over two years, the clock right but confirmed by nothing: all stay.

    (Before: age counted from the last drive's start, so the clock agreeing with the last drive
    was taken as proof, and the 15 drives older than a year beyond the last 10 were deleted.)
    """
    path = tmp_path / "trips.db"
    for i in range(30):
        past_trip(path, T - (730 - 24 * i) * DAY, float(i), confirmed=False)
    log = TripLog(str(path), clock=lambda: T, keep_days=365, wall=unconfirmed(tmp_path, lambda: T), **FAST)
    log.close()
    assert trip_ids(path) == list(range(1, 32))


def test_once_ntp_confirms_the_clock_old_confirmed_drives_go_but_never_the_last_keep_trips(tmp_path):
    path = tmp_path / "trips.db"
    # 4 drives two years back and 1 within the year, all dated by an NTP-synchronized clock; then
    # 2 drives on a Pi that booted at 1970 (no RTC, no network): their dates say nothing.
    for i, days_ago in enumerate((800, 760, 720, 700, 100)):
        past_trip(path, T - days_ago * DAY, float(i), confirmed=True)
    for i in range(2):
        past_trip(path, 1000.0 + i * 3600, 10.0 + i, confirmed=False)
    log = TripLog(str(path), clock=lambda: T, keep_days=365, keep_trips=5, wall=synchronized(tmp_path, lambda: T),
                  **FAST)
    log.close()
    # The last 5 drives (3 to 7) are kept whatever their dates; the older ones (1 and 2) were
    # dated by a confirmed clock more than a year ago, and go.
    assert trip_ids(path) == [3, 4, 5, 6, 7, 8]
    assert rows(path, "SELECT count(*) FROM readings WHERE trip IN (1, 2)") == [(0,)]


def test_drives_dated_by_an_unconfirmed_clock_are_never_deleted_by_age(tmp_path):
    """25 drives on a Pi that booted at 1970 every time, then NTP: the 1970 dates delete nothing.

    (Before: the clock and the last drive agreed, and 15 drives "55 years old" were deleted.)
    """
    path = tmp_path / "trips.db"
    for i in range(25):
        past_trip(path, 1000.0 + i * DAY, float(i), confirmed=False)
    past_trip(path, T - DAY, 99.0, confirmed=True)
    log = TripLog(str(path), clock=lambda: T, keep_days=365, wall=synchronized(tmp_path, lambda: T), **FAST)
    log.close()
    assert trip_ids(path) == list(range(1, 28))


def test_ntp_confirming_the_clock_mid_drive_dates_the_drive_by_it(tmp_path):
    """A Pi that booted at 1970 and was synchronized (the clock stepped) during the drive."""
    path = tmp_path / "trips.db"
    flag = tmp_path / "synchronized"
    now = [1000.0]
    from keidash.triplog.clock import WallClock
    wall = WallClock(lambda: now[0], synchronized=str(flag))
    log = TripLog(str(path), clock=lambda: now[0], wall=wall, **FAST)
    started = time.monotonic()
    log.readings([Reading(started, "rpm", 800.0, "obd")], started)
    assert wait_for(lambda: log.rows_written == 1)
    assert rows(path, "SELECT started_unix, clock_confirmed FROM trips") == [(1000.0, 0)]
    now[0] = T  # timesyncd steps the clock and touches its file
    flag.touch()
    assert wait_for(lambda: rows(path, "SELECT clock_confirmed FROM trips") == [(1,)])
    log.close()
    ((start, end, confirmed),) = rows(path, "SELECT started_unix, ended_unix, clock_confirmed FROM trips")
    assert confirmed == 1 and T - 600 < start <= T <= end  # from the monotonic time since it started


def test_the_gps_time_over_a_pty_confirms_a_clock_that_agrees_and_never_one_that_does_not(tmp_path):
    """The real path: the virtual GPS on a pseudo-terminal, NmeaSource, the trip log's writer."""
    from dataclasses import replace

    from keidash.readings import GPS_TIME
    from keidash.sim.nmea import BASE_UTC, EmulatedGPS
    from keidash.sim.truth import parked
    from keidash.sources.nmea import NmeaSource
    from keidash.triplog.clock import WallClock

    base = BASE_UTC.timestamp()  # the virtual GPS's UTC at its truth's t = 0
    m0 = time.monotonic()
    right = lambda: base + (time.monotonic() - m0)  # noqa: E731 - a wall clock on the GPS's time
    for name, clock, expected in (("agrees.db", right, "GPS"), ("off.db", lambda: right() + 2 * DAY, "")):
        path = tmp_path / name
        for i, days_ago in enumerate((800, 700, 600)):  # confirmed drives, long ago by either clock
            past_trip(path, base - days_ago * DAY, float(i), confirmed=True)
        wall = WallClock(clock, synchronized=str(tmp_path / "no-ntp-here"))
        log = TripLog(str(path), clock=clock, keep_days=365, keep_trips=0, wall=wall, **FAST)
        gps = EmulatedGPS(lambda: replace(parked(t=time.monotonic() - m0), speed_kmh=20.0), 5.0)
        source = NmeaSource("gps", lambda r: log.readings([r], r.t), gps.port)
        source.start()
        gps.start()
        try:
            assert wait_for(lambda: rows(path, "SELECT count(*) FROM readings WHERE channel = ?", (GPS_TIME,))[0][0] >= 5,
                            timeout=60)
        finally:
            source.stop()
            gps.stop()
            log.close()
        assert wall.confirmed_by == expected
        if expected:  # the drive is dated by the confirmed clock, and the old drives went
            assert trip_ids(path) == [4] and rows(path, "SELECT clock_confirmed FROM trips") == [(1,)]
        else:
            assert trip_ids(path) == [1, 2, 3, 4] and rows(path, "SELECT clock_confirmed FROM trips WHERE id = 4") == [(0,)]


# -- 9. a read-only trips.db -----------------------------------------------------------------------
def test_a_read_only_file_is_called_read_only_not_a_read_only_file_system(tmp_path):
    """A chmod 444 trips.db in a folder the dash may write: the real open, by a user it refuses.

    Root writes any file, so as root (CI) the writer runs as user nobody (tests/as_nobody.py)."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path
    prefix = [sys.executable]
    if os.geteuid() == 0:
        from as_nobody import nobody_prefix
        prefix = nobody_prefix()  # before anything is made: a skip leaves nothing behind in /tmp
    # as root, a folder of its own in /tmp: pytest's (under /tmp/pytest-of-root, 0700) nobody cannot enter
    folder = Path(tempfile.mkdtemp(prefix="keidash-ro-")) if os.geteuid() == 0 else tmp_path
    path = folder / "trips.db"
    TripLog(str(path), **FAST).close()
    path.chmod(0o444)
    child = ("import sys, time; from keidash.triplog.writer import TripLog; from keidash.readings import Reading\n"
             "log = TripLog(sys.argv[1], commit_every_s=0.02, retry_s=0.02); t = time.monotonic()\n"
             "log.readings([Reading(t, 'rpm', 800.0, 'obd')], t)\n"
             "deadline = time.monotonic() + 30\n"
             "while not log.status() and time.monotonic() < deadline: time.sleep(0.02)\n"
             "print(log.status()); log.close()\n")
    if os.geteuid() == 0:
        folder.chmod(0o777)  # the folder is writable by the dash: only the file is read-only
    try:
        out = subprocess.run(prefix + ["-c", child, str(path)], capture_output=True, text=True, timeout=60,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    finally:
        path.chmod(0o644)
        if folder != tmp_path:
            import shutil
            shutil.rmtree(folder)
    assert out.stdout.strip() == f"trip log paused: {path} is read-only (permission denied)", out.stderr


# -- 9. the frame times of a long drive ------------------------------------------------------------
def test_frame_times_stay_bounded_over_hours_and_keep_their_percentiles():
    import random
    import sys

    from keidash.app import FrameStats
    stats = FrameStats(started=0.0, ended=3600.0)
    rng = random.Random(9)
    times = [rng.lognormvariate(0.5, 0.6) for _ in range(216_000)]  # an hour at 60 fps
    for ms in times[:1000]:
        stats.frame_ms.append(ms)

    def size(histogram) -> int:
        return sum(sys.getsizeof(v) for v in vars(histogram).values())

    early = size(stats.frame_ms)
    import tracemalloc

    from keidash import app
    tracemalloc.start()
    before = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, app.__file__)])
    for ms in times[1000:]:
        stats.frame_ms.append(ms + 0.0)  # a new float each frame, as the frame loop makes
    after = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, app.__file__)])
    tracemalloc.stop()
    assert size(stats.frame_ms) == early  # a list grew 6.6 MB an hour at 60 fps
    # nor what its fields hold: counts kept as Python ints grew 11 KB here, one int per bin past 256
    # (a float or two of CPython's free list is all tracemalloc may see: bench/frame_times.py)
    assert sum(stat.size_diff for stat in after.compare_to(before, "filename")) < 1000
    result = stats.as_dict()
    assert set(result) == {"frames", "fps", "frame_ms_p50", "frame_ms_p99", "first_frame_s", "first_frame_monotonic"}
    assert result["frames"] == 216_000 and result["fps"] == 60.0
    exact = sorted(times)
    assert result["frame_ms_p50"] == pytest.approx(exact[108_000], rel=0.005)
    assert result["frame_ms_p99"] == pytest.approx(exact[int(0.99 * 216_000)], rel=0.005)
    assert FrameStats().as_dict()["frame_ms_p50"] is None


# -- 5. through keidash run: the dash drives on, the file is kept ----------------------------------
def _run_with_data_dir(tmp_path, monkeypatch) -> int:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    path = write(tmp_path, f'profile = "hijet-s500p"\ndata_dir = "{tmp_path}"\n[sources]\n'
                           'sim = "sim://hijet-s500p?hardware=gps"\n')
    return main(["run", "--config", path, "--headless", "--seconds", "1"])


def test_keidash_run_leaves_another_programs_database_alone(tmp_path, monkeypatch, caplog):
    db = tmp_path / "trips.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('not yours')")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    assert _run_with_data_dir(tmp_path, monkeypatch) == 0  # the dash drove
    assert db.read_bytes() == before
    assert not (tmp_path / "trips.db-wal").exists()
    assert "is another program's database" in caplog.text


def test_keidash_run_moves_a_damaged_log_aside_and_logs_the_drive(tmp_path, monkeypatch, caplog):
    db = tmp_path / "trips.db"
    db.write_bytes(b"\x00garbage\xff" * 500)
    assert _run_with_data_dir(tmp_path, monkeypatch) == 0
    (aside,) = tmp_path.glob("trips.db.corrupt-*")
    assert aside.read_bytes() == b"\x00garbage\xff" * 500
    assert rows(db, "SELECT count(*) FROM trips") == [(1,)]
    assert rows(db, "SELECT count(*) FROM frames")[0][0] >= 1
    assert "moved it to" in caplog.text


@pytest.mark.parametrize("text,message", [
    ("keep_trips = nan", "keep_trips must be a whole number from 0 to 100,000 drives, not nan"),
    ("keep_trips = 2.5", "keep_trips must be a whole number from 0 to 100,000 drives, not 2.5"),
    ("keep_trips = -1", "keep_trips must be a whole number from 0 to 100,000 drives, not -1"),
    ("keep_days = 0", "keep_days must be a positive number from 1 to 36,500 days, not 0"),
    ("max_mb = inf", "max_mb must be a positive number from 10 to 1,000,000 MB, not inf"),
    ("keep = 3", "unknown key 'keep'; allowed: keep_days, keep_trips, max_mb"),
])
def test_the_trip_logs_retention_settings_are_checked(tmp_path, text, message):
    path = write(tmp_path, SIM + f"[trip_log]\n{text}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path} [trip_log]: {message}")):
        load_config(path)


def test_keidash_run_hands_the_trip_logs_retention_settings_to_it(tmp_path, monkeypatch):
    from keidash.triplog import writer
    made = []

    class Recorded(writer.TripLog):
        def __init__(self, path, **options):
            made.append(options)
            super().__init__(path, **options)
    monkeypatch.setattr(writer, "TripLog", Recorded)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    path = write(tmp_path, f'profile = "hijet-s500p"\ndata_dir = "{tmp_path}"\n[sources]\n'
                           'sim = "sim://hijet-s500p?hardware=gps"\n[trip_log]\nkeep_trips = 50\nkeep_days = 730\n')
    assert main(["run", "--config", path, "--headless", "--seconds", "1"]) == 0
    assert [(o["keep_trips"], o["keep_days"]) for o in made] == [(50, 730.0)]
    assert load_config(path).trip_log == {"keep_days": 730.0, "keep_trips": 50}
    assert "max_mb" not in made[0]  # TripLog's own default


@pytest.mark.parametrize("url", [
    "obd:///dev/ttyUSB0?max_hz=nan", "obd:///dev/ttyUSB0?slow_s=inf", "obd:///dev/ttyUSB0?timeout=NaN",
    "pulses://gpio?tach=17&vss_ppk=inf", "sim://hijet-s500p?speedup=nan", "sim://hijet-s500p?skip=inf",
    "obd:///dev/ttyUSB0?baud=1e400",
])
def test_a_url_option_that_is_not_finite_is_one_sentence(tmp_path, url):
    path = write(tmp_path, f'profile = "hijet-s500p"\n[sources]\ntruck = "{url}"\n')
    key = url.split("?")[1].split("&")[-1].split("=")[0]
    with pytest.raises(ConfigError, match=rf"\[sources\]: truck option {key} must be (0 or )?a (positive )?"
                                          rf"(whole )?number .*, not '{url.split('=')[-1]}'$") as info:
        load_config(path)
    assert path in str(info.value)


def test_a_log_damaged_again_and_again_pauses_instead_of_filling_the_card_with_copies(tmp_path):
    """A card that damages every new file: 3 copies are kept, then the writer pauses and says why."""
    path = tmp_path / "trips.db"

    def connect(p):  # every file it opens turns out damaged
        with open(p, "wb") as f:
            f.write(b"\xff" * 4096)
        return sqlite3.connect(p)

    log = TripLog(str(path), connect=connect, clock=lambda: T, **FAST)
    t = time.monotonic()
    log.readings([Reading(t, "rpm", 800.0, "obd")], t)
    assert wait_for(lambda: log.status().startswith("trip log paused"))
    assert log.status() == f"trip log paused: {path} is damaged again after 3 new logs: check the SD card"
    log.close()
    stamp = time.strftime('%Y%m%d-%H%M%S', time.localtime(T))
    assert sorted(p.name for p in tmp_path.glob("trips.db.corrupt-*")) == [
        f"trips.db.corrupt-{stamp}", f"trips.db.corrupt-{stamp}-2", f"trips.db.corrupt-{stamp}-3"]


def test_the_refusal_of_another_programs_database_is_the_dash_message(tmp_path):
    import threading

    from keidash.app import run_dash
    from keidash.estimate.estimator import config_for
    from keidash.profiles import load_profile
    from keidash.rig import open_rig

    path = tmp_path / "trips.db"
    sqlite_file(path, "CREATE TABLE photos (jpeg BLOB)")
    before = path.read_bytes()
    profile = load_profile("hijet-s500p")
    rig = open_rig({"sim": "sim://hijet-s500p?hardware=gps"}, profile)
    log = TripLog(str(path), **FAST)
    stop = threading.Event()
    messages = []

    def on_frame(dash):
        messages.append(dash.message)
        if "another program's database" in (dash.message or ""):
            stop.set()

    rig.start()
    try:  # seconds only guards against a hang: the loop stops at the message
        run_dash(rig, config_for(profile, {}, rig.priority()), [], fps=30, seconds=30, stop=stop,
                 on_frame=on_frame, log=log)
    finally:
        rig.stop()
        log.close()
    assert f"trip log: {path} is another program's database: not logging" in messages
    assert path.read_bytes() == before


# -- 1. a GPS that loses its fix or goes quiet ------------------------------------------------------
class MovingTruth:
    """Each receiver epoch a new time and a speed of 40 km/h."""

    def __init__(self, dt: float = 0.2):
        self.dt, self.calls = dt, 0

    def __call__(self):
        from dataclasses import replace

        from keidash.sim.truth import parked
        self.calls += 1
        return replace(parked(t=self.dt * self.calls), speed_kmh=40.0)


def test_a_gps_that_loses_its_fix_or_falls_silent_is_not_green_and_says_why_at_once():
    import threading

    from keidash.app import run_dash
    from keidash.dashstate import LIVE, STALE
    from keidash.estimate.estimator import config_for
    from keidash.profiles import load_profile
    from keidash.rig import open_rig
    from keidash.sim.nmea import EmulatedGPS
    from keidash.sources.nmea import NO_FIX_MESSAGE

    profile = load_profile("hijet-s500p")
    gps = EmulatedGPS(MovingTruth(), rate_hz=5.0)
    rig = open_rig({"gps": f"nmea://{gps.port}"}, profile)
    frames = []
    stop = threading.Event()
    loop = threading.Thread(target=run_dash, args=(rig, config_for(profile, {}, rig.priority()), []),
                            kwargs=dict(fps=30, seconds=60, stop=stop, on_frame=frames.append))
    silence = f"no NMEA sentences from {gps.port}: check the wiring and the baud rate (9600)"

    def shown(state: str, message: str = ""):
        def check():
            dash = frames[-1] if frames else None
            return (dash is not None and dash.sources[0].state == state
                    and (dash.speed_kmh is None) == (state != LIVE) and message in dash.sources[0].message)
        return check

    rig.start()
    gps.start()
    loop.start()
    try:  # the waits only guard against a hang: the time to report is bench/gps_health.py's
        assert wait_for(shown(LIVE), 10)
        gps.lose_fix()
        assert wait_for(shown(STALE, NO_FIX_MESSAGE), 10)
        gps.regain_fix()
        assert wait_for(shown(LIVE), 10)
        gps.fall_silent()
        assert wait_for(shown(STALE, silence), 10)
        gps.speak_again()
        assert wait_for(shown(LIVE), 10)
    finally:
        stop.set()
        loop.join()
        rig.stop()
        gps.stop()
    # In every frame the dot is green exactly when the speed is shown: never green over a stale speed.
    views = [(dash.sources[0].state, dash.speed_kmh is None) for dash in frames]
    assert all((state == LIVE) != no_speed for state, no_speed in views if state != "absent")
    from keidash.display.texts import source_problem
    assert ("gps: " + NO_FIX_MESSAGE, STALE) in {source_problem(d.sources) for d in frames}
    assert ("gps: " + silence, STALE) in {source_problem(d.sources) for d in frames}


# -- 7. values a kei truck cannot read ----------------------------------------------------------
def drain_until(rig, condition, timeout: float = 15.0) -> list:
    got = []

    def check():
        got.extend(rig.bus.drain())
        return condition(got)
    wait_for(check, timeout)
    return got


def test_a_gps_at_215_knots_with_a_valid_checksum_is_counted_not_shown():
    from keidash.profiles import load_profile
    from keidash.rig import open_rig
    from keidash.sim.nmea import EmulatedGPS, sentence

    gps = EmulatedGPS(MovingTruth(), rate_hz=5.0)
    rig = open_rig({"gps": f"nmea://{gps.port}"}, load_profile("hijet-s500p"))
    rig.start()
    gps.start()
    try:
        assert drain_until(rig, lambda got: any(r.channel == "speed_kmh" for r in got))
        gps.fall_silent()  # so the lie is the only fix of its moment
        time.sleep(0.3)
        gps.inject(sentence("GPRMC,031501.00,A,3540.8720,N,13946.0260,E,215.0,0.0,010624,,,A"))
        gps.speak_again()
        got = drain_until(rig, lambda got: sum(r.channel == "speed_kmh" for r in got) >= 3)
        errors = rig.sources[0].status().errors
    finally:
        rig.stop()
        gps.stop()
    assert errors == {"implausible": 1}
    assert [r.value for r in got if r.channel == "speed_kmh"] == pytest.approx([40.0] * len(
        [r for r in got if r.channel == "speed_kmh"]), abs=0.1)


class WildEcu:
    """A truck at 40 km/h and 3000 rpm whose ECU, once told, answers 0C FFFF and 0D FF."""

    wild = False

    def __call__(self):
        from dataclasses import replace

        from keidash.sim.truth import parked
        if self.wild:
            return replace(parked(), rpm=20000.0, speed_kmh=300.0)  # clamped by the ECU to FFFF, FF
        return replace(parked(), rpm=3000.0, speed_kmh=40.0)


def test_an_ecu_answering_0c_ffff_0d_ff_is_counted_not_shown():
    from keidash.profiles import load_profile
    from keidash.rig import open_rig
    from keidash.sim.elm327 import EmulatedELM327

    truth = WildEcu()
    with EmulatedELM327(truth, "6") as elm:
        rig = open_rig({"obd": f"obd://{elm.port}?protocol=6"}, load_profile("hijet-s500p"))
        rig.start()
        try:
            assert drain_until(rig, lambda got: any(r.channel == "rpm" for r in got))
            truth.wild = True
            assert wait_for(lambda: rig.sources[0].status().errors.get("implausible", 0) >= 4, 15)
            got = rig.bus.drain()
            status = rig.sources[0].status()
        finally:
            rig.stop()
    assert status.link == "connected"  # the adapter is fine: its values are not
    assert all(r.value <= 8550 for r in got if r.channel == "rpm")
    assert all(r.value <= 168 for r in got if r.channel == "speed_kmh")
    assert set(status.errors) == {"implausible"}


def test_the_limits_follow_the_profile():
    from keidash.profiles import load_profile
    from keidash.profiles.engine import plausible

    hijet = plausible(load_profile("hijet-s500p"))
    assert hijet.max_rpm == 1.5 * 5700 and hijet.max_kmh == pytest.approx(8550 / 51.0, rel=0.01)
    assert 16383.75 > hijet.max_rpm and 255 > hijet.max_kmh and 215 * 1.852 > hijet.max_kmh
    assert plausible(load_profile("sambar-tt2")).max_rpm == 1.5 * 6400  # its own peak power
    assert plausible(None).max_kmh == 175.0  # gearing unknown: the kei limiter, 140 km/h, with a margin


@pytest.fixture(scope="module")
def hijet_drive_in_mph_and_kmh(tmp_path_factory):
    """A virtual Hijet's 15-minute drive as CSV, once in km/h and once in mph, both labelled km/h."""
    from keidash.sim.recorded import virtual_log
    log = virtual_log("hijet-s500p", "kei-day", seconds=900)
    folder = tmp_path_factory.mktemp("mph")
    paths = {}
    for unit, per_kmh in (("kmh", 1.0), ("mph", 1.609344)):
        rows = [f"{s.t:.3f},{s.rpm:.0f},{s.speed_kmh / per_kmh:.2f}" for s in log.samples
                if s.speed_kmh is not None and s.rpm is not None]
        paths[unit] = folder / f"drive-{unit}.csv"
        paths[unit].write_text("time_s,engine_rpm,speed_kmh\n" + "\n".join(rows) + "\n")
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("profile", [None, "hijet-s500p"])
def test_learn_warns_when_speeds_in_mph_labelled_kmh_give_an_impossible_gearbox(hijet_drive_in_mph_and_kmh,
                                                                                profile):
    import subprocess
    import sys
    extra = ["--profile", profile] if profile else []
    out = {unit: subprocess.run([sys.executable, "-m", "keidash", "learn", str(path), *extra],
                                capture_output=True, text=True, timeout=300)
           for unit, path in hijet_drive_in_mph_and_kmh.items()}
    warning = "the logs' speeds look like mph read as km/h (give --speed-unit mph)"
    assert warning in out["mph"].stdout, out["mph"].stdout + out["mph"].stderr
    assert "warning" not in out["kmh"].stdout, out["kmh"].stdout
    if profile is None:  # the 4 gears found in it (1st is never steady) say 70 km/h at 5700 rpm in top
        assert "give 70 km/h at 5700 rpm in top gear" in out["mph"].stdout


# -- 8. OBD framing, swapped ports, a GPS plugged back in ---------------------------------------
@pytest.mark.parametrize("protocol", ["6", "5"])
def test_a_reply_without_its_prompt_resynchronises_on_the_next_not_a_reconnect(protocol):
    from keidash.readings import ReadingBus
    from keidash.sim.elm327 import EmulatedELM327
    from keidash.sources.obd import ObdSource

    bus = ReadingBus()
    got = []
    with EmulatedELM327(WildEcu(), protocol) as elm:
        source = ObdSource("obd", bus.put, elm.port, protocol=protocol)
        source.start()
        try:
            assert wait_for(lambda: got.extend(bus.drain()) or len(got) >= 5, 15)
            at_commands = elm.counts["at"]  # a reconnect starts again with ATZ, ATE0 ...
            elm.drop_prompts(3)
            assert wait_for(lambda: source.status().errors.get("no_prompt", 0) >= 3, 15)
            count = len(got) + len(bus.drain())
            assert wait_for(lambda: got.extend(bus.drain()) or len(got) >= count + 10, 15)
            status = source.status()
            assert elm.counts["at"] == at_commands  # no reconnect: polling went on
        finally:
            source.stop()
    assert status.link == "connected" and "no_reply" not in status.errors
    assert {r.value for r in got if r.channel == "rpm"} == {3000.0}  # the unprompted replies were whole


def test_the_gps_on_the_obd_url_is_named_at_once():
    from keidash.sim.nmea import EmulatedGPS
    from keidash.sources.obd import ObdSource

    with EmulatedGPS(MovingTruth(), rate_hz=5.0) as gps:
        source = ObdSource("obd", lambda r: None, gps.port)
        source.start()
        try:
            assert wait_for(lambda: "NMEA" in source.status().message, 15)
            status = source.status()
        finally:
            source.stop()
    assert status.link == "failed"
    assert status.message == (f"{gps.port} sends NMEA: is it the GPS? put its port in an nmea:// source "
                              "and the adapter's in obd://")


def test_a_gps_plugged_back_in_is_opened_when_its_device_file_is_back(tmp_path):
    from keidash.readings import ReadingBus
    from keidash.sim.nmea import EmulatedGPS
    from keidash.sources.nmea import NmeaSource

    # A USB receiver's device file goes when it is pulled and comes back when it is plugged in;
    # a pty cannot come back, so "ttyACM0" is a symlink, made again to a second receiver.
    device = tmp_path / "ttyACM0"
    bus = ReadingBus()
    got = []
    first = EmulatedGPS(MovingTruth(), rate_hz=5.0)
    device.symlink_to(first.port)
    source = NmeaSource("gps", bus.put, str(device))
    source.retry_s = 60.0  # only the device file coming back can hurry the retry
    source.start()
    first.start()
    try:
        assert wait_for(lambda: got.extend(bus.drain()) or got, 10)
        device.unlink()
        first.unplug()
        assert wait_for(lambda: source.status().link == "failed", 10)
        time.sleep(0.3)  # out of the socket a while, as a hand pulling a plug takes
        with EmulatedGPS(MovingTruth(), rate_hz=5.0) as second:
            got.extend(bus.drain())
            count = len(got)
            device.symlink_to(second.port)
            assert wait_for(lambda: got.extend(bus.drain()) or len(got) > count, 15)
            assert source.status().link == "connected"
    finally:
        source.stop()
        first.stop()


# -- 9. deeply nested OpenXC JSON -------------------------------------------------------------------
def test_deeply_nested_openxc_json_is_one_counted_line_not_a_recursion_error(tmp_path):
    import json
    import subprocess
    import sys
    good = [json.dumps({"name": name, "value": value, "timestamp": 1700000000.0 + i / 10})
            for i in range(40) for name, value in (("engine_speed", 2000.0 + i), ("vehicle_speed", 40.0))]
    nested = '{"name": "vehicle_speed", "value": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = tmp_path / "trace.json"
    path.write_text("\n".join(good[:10] + [nested] + good[10:]) + "\n")
    out = subprocess.run([sys.executable, "-m", "keidash", "replay", str(path), "--headless", "--speed", "0",
                          "--estimates", str(tmp_path / "est.csv")], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"})
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "RecursionError" not in out.stderr
    assert "1 bad rows skipped (1 nesting)" in out.stdout  # the line named, counted, skipped

    from keidash.replay import load_log
    log = load_log(path)
    assert dict(log.errors) == {"nesting": 1} and len(log.samples) == 40
    path.write_text(nested + "\n" + "\n".join(good) + "\n")  # first: the format cannot be told from it
    log = load_log(path, format="openxc")
    assert dict(log.errors) == {"nesting": 1} and len(log.samples) == 40


# -- 6. logs that are not regular files --------------------------------------------------------------
# eval reads a folder's logs: an empty folder is its own message (test_estimator_cli)
@pytest.mark.parametrize("command,kind", [
    (command, kind) for command in (["learn"], ["eval"], ["replay", "--headless", "--estimates", "EST"])
    for kind in ("fifo", "/dev/zero", "folder") if (command, kind) != (["eval"], "folder")])
def test_a_log_that_is_no_regular_file_is_refused_with_one_sentence(tmp_path, command, kind):
    import os
    import subprocess
    import sys
    if kind == "fifo":
        path = tmp_path / "drive.csv"
        os.mkfifo(path)  # opened, it would block until a writer came: never, here
        said = f"{path} is a named pipe (FIFO), not a log file: name a recorded drive"
    elif kind == "folder":
        path = tmp_path / "drives.csv"
        path.mkdir()
        said = f"{path} is a folder; name a log file in it"
    else:
        path = "/dev/zero"  # read whole, it never ends
        said = "/dev/zero is a device, not a log file: name a recorded drive"
    arguments = [str(tmp_path / "est.csv") if a == "EST" else a for a in command]
    out = subprocess.run([sys.executable, "-m", "keidash", arguments[0], str(path), *arguments[1:]],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"})
    assert out.returncode == 2
    assert out.stderr.strip() == f"keidash: {said}"


def test_a_streamed_log_gives_the_samples_a_whole_read_gave(tmp_path):
    from keidash.replay import load_log, read_lines
    path = tmp_path / "drive.csv"
    rows = [f"{1700000000 + i * 0.1:.3f},{2000 + i},{40 + i % 7}" for i in range(2000)]
    path.write_text("\n\n" + "time_s,engine_rpm,speed_kmh\r\n" + "\r\n".join(rows) + "\r\n")
    streamed = load_log(path)
    whole = read_lines(path.read_text().splitlines(), str(path))
    assert streamed.samples == whole.samples and len(streamed.samples) == 2000
    assert streamed.samples[0].t == 0.0 and streamed.samples[-1].rpm == 3999.0


def _csv_drive(rows: int) -> str:
    lines = ["time_s,engine_rpm,speed_kmh,gear"]
    lines += [f"{i * 0.1:.3f},{2000 + i % 1000},{40 + i % 7}.5,{1 + i % 4}" for i in range(rows)]
    return "\n".join(lines) + "\n"


def _openxc_drive(rows: int) -> str:
    import json
    lines = []
    for i in range(rows):
        lines.append(json.dumps({"name": "engine_speed", "value": 2000 + i % 1000, "timestamp": 1.7e9 + i * 0.1}))
        lines.append(json.dumps({"name": "vehicle_speed", "value": 40 + i % 7, "timestamp": 1.7e9 + i * 0.1 + 0.05}))
    return "\n".join(lines) + "\n"


def _carobd_drive(rows: int) -> str:
    """carOBD's CSV: a row every 0.5 s, the engine run-time counter in whole seconds."""
    lines = ["ENGINE_RUN_TINE (),ENGINE_RPM (),VEHICLE_SPEED ()"]
    lines += [f"{i // 2},{2000 + i % 1000},{40 + i % 7}" for i in range(rows)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("write,suffix", [(_csv_drive, "csv"), (_openxc_drive, "jsonl"), (_carobd_drive, "csv")])
def test_a_long_log_costs_compact_columns_not_an_object_per_row(tmp_path, write, suffix):
    """Each row of a loaded log is held as 26 bytes of columns: a tuple of Sample objects held about
    150-210 bytes a row, and reading an OpenXC trace made a tuple per message on top (590 at the peak);
    carOBD's reader held a tuple, a time and a dict entry per row while it fitted its clock (about
    590 bytes a row at the peak too), now columns.
    The cost of a row is the difference between a short and a long log, so the interpreter's and the
    imports' memory cancel out (tracemalloc counts Python's own allocations: no timing)."""
    from memory import bytes_per_row

    def path_for(rows):
        path = tmp_path / f"drive-{rows}.{suffix}"
        path.write_text(write(rows))
        return path
    held_per_row, peak_per_row = bytes_per_row(path_for)
    assert held_per_row < 40, f"{held_per_row:.0f} bytes a row held"
    assert peak_per_row < 120, f"{peak_per_row:.0f} bytes a row at the peak"


def test_a_pass_over_a_logs_samples_makes_them_one_at_a_time(tmp_path):
    import tracemalloc

    from keidash.replay import load_log
    path = tmp_path / "drive.csv"
    path.write_text(_csv_drive(20_000))
    log = load_log(path)
    tracemalloc.start()
    moving = sum(1 for s in log.samples if s.moving)
    rpm = max(s.rpm for s in log.samples)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (moving, rpm) == (20_000, 2999.0)
    assert peak < 20_000, f"{peak} bytes for two passes"  # a few Sample objects, not 20,000 of them
    assert log.samples[-1] == log.samples[19_999] and log.samples[-1].gear == 4 and log.has_gear
    assert log.samples[2:4] == [log.samples[2], log.samples[3]]
