"""Replay: the format readers on the shared real drives and on small made-up logs,
the errors a user can meet, fuzzed rows, and ReplaySource playing a log."""

from __future__ import annotations

import builtins
import doctest
import json
import math
import statistics
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keidash.errors import ConfigError
from keidash.estimate.estimator import EstimatorConfig, EstimatorState, advise, step
from keidash.profiles import load_profile
from keidash.profiles.engine import shift_limits
from keidash.readings import RPM, SPEED, ReadingBus
from keidash.replay import (FINISHED_MESSAGE, Columns, ReplaySource, Sample, detect_format, load_log, open_replay,
                            parse_columns, read_lines, readings_from_log)
from keidash.replay import carobd, generic, openxc, torque
from keidash.sources.base import CONNECTED, STOPPED
from waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
DRIVES = ROOT / "tests" / "data" / "drives"
TORQUE = DRIVES / "synthetic" / "torque-synthetic.csv"

#: file: (format, samples, moving samples, minutes, top speed km/h)
SHARED = {
    "carobd-etios/drive4.csv": ("carobd", 1227, 1071, 36.0, 74),
    "carobd-etios/live1.csv": ("carobd", 1068, 659, 31.6, 60),
    "carobd-etios/long2.csv": ("carobd", 2094, 1868, 61.7, 110),
    "carobd-etios/ufpe1.csv": ("carobd", 467, 452, 13.5, 54),
    "carobd-etios/ufpe7.csv": ("carobd", 668, 641, 19.4, 57),
    "openxc-ford/driving.jsonl": ("openxc", 4818, 4065, 1.2, 44.4),
    "openxc-ford/driving2.jsonl": ("openxc", 1228, 1036, 1.9, 57.9),
}

HIJET = load_profile("hijet-s500p")
HIJET_CONFIG = EstimatorConfig(shift_limits(HIJET), HIJET.rpm_per_kmh(), HIJET.title, source_priority=("replay",))


@pytest.fixture(scope="module")
def shared_logs():
    return {name: load_log(DRIVES / name) for name in SHARED}


def write(tmp_path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the shared real drives ---------------------------------------------------
@pytest.mark.parametrize("name", SHARED)
def test_every_shared_log_parses_into_plausible_samples(shared_logs, name):
    fmt, count, moving, minutes, top = SHARED[name]
    log = shared_logs[name]
    assert log.format == fmt and log.bad_rows == 0
    assert len(log.samples) == pytest.approx(count, rel=0.03)
    assert sum(s.moving for s in log.samples) == pytest.approx(moving, rel=0.03)
    assert log.duration_s / 60 == pytest.approx(minutes, abs=0.15)
    assert all(b.t > a.t for a, b in zip(log.samples, log.samples[1:]))
    assert log.samples[0].t == 0.0
    speeds = [s.speed_kmh for s in log.samples]
    rpms = [s.rpm for s in log.samples if s.rpm is not None]
    assert all(0 <= v <= 200 for v in speeds) and max(speeds) == pytest.approx(top, abs=0.5)
    assert all(0 <= r <= 8000 for r in rpms) and len(rpms) >= 0.99 * len(log.samples)
    assert log.channels == (RPM, SPEED)
    assert log.has_gear == (fmt == "openxc")


def test_carobd_rows_come_from_a_fixed_rate_timer(shared_logs):
    # ENGINE_RUN_TINE at the last row of long2 is 3696 s, and the logger started 9 rows (4.4 s)
    # before the engine; rows are 0.4923 s apart in every log
    log = shared_logs["carobd-etios/long2.csv"]
    assert "rows every 0.4923 s" in log.time_base
    assert 3696 + 2 < log.duration_s < 3696 + 4.4 + 1
    for name in SHARED:
        if name.startswith("carobd"):
            assert "rows every 0.492" in shared_logs[name].time_base


def test_carobd_repeated_rows_are_not_fresh_readings(shared_logs):
    """One reading per channel per ~1.8 s poll, not one per 0.5 s row."""
    log = shared_logs["carobd-etios/long2.csv"]
    rows = 7516
    for channel, value in ((RPM, "rpm"), (SPEED, "speed_kmh")):
        fresh = [s for s in log.samples if channel in s.fresh]
        assert rows / 4.2 < len(fresh) < rows / 3.4  # a poll every 3-4 rows, not every row
        gaps = [b.t - a.t for a, b in zip(fresh, fresh[1:]) if getattr(a, value) == getattr(b, value)]
        assert min(gaps) > 1.4  # an unchanged value is re-read at the next poll at the earliest
    assert log.refresh_s[RPM] == pytest.approx(1.97, abs=0.05)
    assert log.max_age(RPM) == pytest.approx(3 * log.refresh_s[RPM])


CAROBD_HEADER = "ENGINE_RUN_TINE (),ENGINE_RPM (),VEHICLE_SPEED (),THROTTLE ()"


def carobd_text(rows) -> str:
    return "\r\n".join([CAROBD_HEADER] + [f"{t:.6f}, {r:.6f}, {v:.6f}, 12.0," for t, r, v in rows]) + "\r\n"


def test_carobd_polls_split_over_two_rows_and_parked_repeats(tmp_path):
    rows = ([(0, 0, 0)] * 10  # rows 0-9: parked, engine off, nothing changes
            + [(4, 900, 0)] * 4 + [(6, 910, 0)] * 4  # rows 10-17: idling, rpm changes each poll, speed stays 0
            + [(8, 910, 0), (8, 1600, 0), (8, 1600, 10), (8, 1600, 10)]  # rows 18-21: speed lands a row after rpm
            + [(10, 1800, 14)] * 4 + [(12, 1800, 14)] * 8)  # rows 22-33: then steady for two polls
    log = load_log(write(tmp_path, carobd_text(rows)))
    assert log.time_base.startswith("rows every 0.5000 s")  # the counter fits exactly
    assert [(round(s.t / 0.5), s.fresh) for s in log.samples] == [
        (0, (RPM, SPEED)), (4, (RPM, SPEED)), (7, (RPM, SPEED)),  # engine off: re-read once per cycle,
        (10, (RPM, SPEED)), (14, (RPM, SPEED)),  # idling: speed re-read as 0 in the same poll as rpm
        (19, (RPM,)), (20, (SPEED,)),  # the split poll: neither marked fresh in the other's row
        (22, (RPM, SPEED)), (26, (RPM, SPEED)), (29, (RPM, SPEED)), (33, (RPM, SPEED))]  # steady: same
    assert "cycle 1.83 s" in log.time_base
    assert [s.speed_kmh for s in log.samples[5:7]] == [0, 10]  # the rpm-only sample holds the old speed


def test_carobd_engine_restart_falls_back_to_interpolation(tmp_path):
    rows = []
    for k in range(40):  # counter 0..~20 s, then the engine restarts and it counts from 0 again
        rows.append((k // 4 * 2, 800 + k, 0))
    for k in range(40):
        rows.append((k // 4 * 2, 900 + k, 0))
    log = load_log(write(tmp_path, carobd_text(rows)))
    assert "interpolated" in log.time_base
    assert all(b.t > a.t for a, b in zip(log.samples, log.samples[1:]))
    assert log.duration_s == pytest.approx(79 * 0.5, rel=0.1)


# -- OpenXC ----------------------------------------------------------------------
def gear_medians(log):
    ratios: dict[int, list[float]] = {}
    for s in log.samples:
        if s.gear and s.gear > 0 and s.speed_kmh > 10 and s.rpm:
            ratios.setdefault(s.gear, []).append(s.rpm / s.speed_kmh)
    return {gear: statistics.median(r) for gear, r in sorted(ratios.items())}


def test_openxc_gear_labels_are_present_and_aligned(shared_logs):
    first, second = shared_logs["openxc-ford/driving.jsonl"], shared_logs["openxc-ford/driving2.jsonl"]
    assert {s.gear for s in first.samples} == {None, -1, 0, 1, 2, 3, 4, 5}
    assert sum(s.gear is None for s in first.samples) <= 2  # only before the first label
    m1, m2 = gear_medians(first), gear_medians(second)
    assert list(m1) == [1, 2, 3, 4, 5]
    assert all(m1[g] > m1[g + 1] * 1.2 for g in range(1, 5))  # distinct ratio per gear, falling
    for gear in m1:  # the same car in both traces
        assert m2[gear] == pytest.approx(m1[gear], rel=0.06)
    # labels line up with rpm/speed: a nearest-ratio classifier agrees on most moving samples
    moving = [s for s in first.samples if s.moving and s.gear and s.gear > 0 and s.rpm]
    agree = sum(min(m1, key=lambda g: abs(math.log(s.rpm / s.speed_kmh / m1[g]))) == s.gear for s in moving)
    assert agree / len(moving) > 0.8


def test_openxc_untimed_period_comes_from_the_odometer(shared_logs):
    assert shared_logs["openxc-ford/driving2.jsonl"].refresh_s[SPEED] == pytest.approx(0.094, abs=0.004)
    assert shared_logs["openxc-ford/driving.jsonl"].refresh_s[SPEED] == pytest.approx(0.0147, abs=0.0005)
    assert "fine_odometer_since_restart" in shared_logs["openxc-ford/driving.jsonl"].time_base


def msg(name, value, **extra) -> str:
    return json.dumps({"name": name, "value": value, **extra})


def test_openxc_untimed_without_odometer_runs_at_the_spec_10_hz():
    lines = [msg("engine_speed", 800), msg("vehicle_speed", 0), msg("transmission_gear_position", "neutral"),
             msg("vehicle_speed", 1.0), msg("engine_speed", 1200), msg("transmission_gear_position", "first"),
             msg("vehicle_speed", 5.0)]
    log = read_lines(lines, "trace")
    assert [s.t for s in log.samples] == pytest.approx([0.0, 0.1, 0.2])
    assert [s.gear for s in log.samples] == [None, 0, 1]
    # engine_speed held into the second sample, but only fresh where a new one arrived
    assert [s.rpm for s in log.samples] == [800, 800, 1200]
    assert [RPM in s.fresh for s in log.samples] == [True, False, True]
    assert [r.channel for r in readings_from_log(log)] == [RPM, SPEED, SPEED, RPM, SPEED]


def test_openxc_timed_trace_uses_its_timestamps():
    lines = [json.dumps({"metadata": {"version": "v3.0"}}),
             msg("engine_speed", 900, timestamp=1385133351.0),
             msg("vehicle_speed", 10, timestamp=1385133351.05),
             msg("transmission_gear_position", "second", timestamp=1385133351.1),
             msg("vehicle_speed", 12, timestamp=1385133351.25),
             '{"bus": 1, "id": 1234, "data": "0x12345678", "timestamp": 1385133351.3}',
             msg("vehicle_speed", 14, timestamp=1385133352.6)]
    log = read_lines(lines, "timed")
    assert log.bad_rows == 0 and log.time_base == "the trace's timestamps"
    assert [s.t for s in log.samples] == pytest.approx([0.0, 0.2, 1.55])
    assert [s.gear for s in log.samples] == [None, 2, 2]
    assert [s.rpm for s in log.samples] == [900, 900, None]  # not held past a second
    ms = read_lines([msg("vehicle_speed", 1, timestamp=1385133351000),
                     msg("vehicle_speed", 2, timestamp=1385133351500)])
    assert [s.t for s in ms.samples] == [0.0, 0.5]


# -- Torque Pro ---------------------------------------------------------------------
def test_torque_fixture():
    log = load_log(TORQUE)
    assert log.format == "torque" and dict(log.errors) == {"truncated": 1}
    assert len(log.samples) == 62  # 64 rows, the first two hold only '-' for the OBD PIDs
    assert log.duration_s == pytest.approx(61.0, abs=0.1)  # across midnight on the phone's clock
    assert all(b.t > a.t for a, b in zip(log.samples, log.samples[1:]))
    assert "Speed (OBD)(km/h)" in log.time_base
    assert max(s.speed_kmh for s in log.samples) == 48
    assert [s.rpm for s in log.samples[:3]] == [862, 850, 1116]
    # the cruise is in 4th (68.7 rpm per km/h): replayed through the estimator in log time
    state = EstimatorState()
    for sample, readings in log.with_readings():
        for reading in readings:
            state = step(state, reading, HIJET_CONFIG)
        if sample.t == pytest.approx(35.0, abs=0.6):
            assert advise(state, sample.t, HIJET_CONFIG).gear == 4


TORQUE_HEAD = "GPS Time, Device Time, Longitude, Latitude,GPS Speed (Meters/second),Engine RPM(rpm)"


def test_torque_gps_speed_in_metres_per_second_and_gps_time_only():
    lines = [TORQUE_HEAD,
             "Thu Dec 19 13:22:56 EST 2013,19-Dec-2013 13:22:56.862,-79.9,40.4,2.75,1732.5",
             "Thu Dec 19 13:22:57 EST 2013,19-Dec-2013 13:22:57.362,-79.9,40.4,-,1800",
             "Thu Dec 19 13:22:58 EST 2013,garbage,-79.9,40.4,3,1800"]
    log = read_lines(lines, "torque")
    assert [s.speed_kmh for s in log.samples] == pytest.approx([9.9, None])
    assert [s.fresh for s in log.samples] == [(RPM, SPEED), (RPM,)]
    assert dict(log.errors) == {"time": 1}
    gps_only = read_lines(["GPS Time,Speed (OBD)(mph)", "Thu Dec 19 13:22:56 EST 2013,10",
                           "Thu Dec 19 13:22:58 EST 2013,20"], "torque")
    assert [(s.t, s.speed_kmh) for s in gps_only.samples] == [(0.0, pytest.approx(16.09344)),
                                                              (2.0, pytest.approx(32.18688))]


# -- any CSV through a columns mapping ------------------------------------------------
TIME_STYLES = {
    "seconds": ["100.0", "100.5", "101.25"],
    "iso_naive": ["2024-06-01 07:30:00", "2024-06-01T07:30:00.500", "2024-06-01 07:30:01.250"],
    "iso_zone": ["2024-06-01T07:30:00+09:00", "2024-05-31T22:30:00.5Z", "2024-06-01T07:30:01.250+09:00"],
    "clock_midnight": ["23:59:59.5", "00:00:00", "00:00:00.75"],
}
UNITS = {"kmh": 1.0, "mph": 1.609344, "ms": 3.6}


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("style", TIME_STYLES)
def test_generic_csv_each_time_style_and_speed_unit(tmp_path, style, unit):
    times = TIME_STYLES[style]
    text = "when;engine;road;box\n" + "".join(f"{t};{900 + i};{10 * i};{g}\n"
                                             for i, (t, g) in enumerate(zip(times, ["N", "1", "2"])))
    log = load_log(write(tmp_path, text), columns="time=when,rpm=engine,speed=road,gear=box", speed_unit=unit)
    assert log.format == "csv" and log.bad_rows == 0
    assert [s.t for s in log.samples] == pytest.approx([0.0, 0.5, 1.25])
    assert [s.speed_kmh for s in log.samples] == pytest.approx([0.0, 10 * UNITS[unit], 20 * UNITS[unit]])
    assert [s.rpm for s in log.samples] == [900, 901, 902]
    assert [s.gear for s in log.samples] == [0, 1, 2]


def test_generic_csv_bad_rows_are_counted_not_fatal(tmp_path):
    text = ("t,speed,rpm\n0,0,800\n1,5\n2,x,900\n03:00:00,10,900\n4,400000,900\n4.5,10,900\n4.2,10,900\n"
            "t,speed,rpm\n5,-,-\n6,20,\n7,30,2000\n")
    log = load_log(write(tmp_path, text), columns="time=t,speed=speed,rpm=rpm")
    assert dict(log.errors) == {"truncated": 1, "number": 1, "time": 1, "range": 1, "time_backwards": 1,
                                "empty": 1}
    # the empty rpm at 6 s holds the latest rpm (measured 1.5 s before: within 3 of its intervals), not fresh
    assert [(s.t, s.speed_kmh, s.rpm) for s in log.samples] == [(0, 0, 800), (4.5, 10, 900), (6, 20, 900),
                                                                (7, 30, 2000)]
    assert log.samples[2].fresh == (SPEED,)


def test_columns_syntax():
    assert parse_columns("time=Time (s), speed=Speed (km/h) ,rpm=RPM") == Columns("Time (s)", "Speed (km/h)", "RPM")
    assert str(parse_columns("speed=v,time=t,gear=g")) == "time=t,speed=v,gear=g"
    for bad, says in (("time=t", "name the speed column"), ("time=t,speed=v,speed=w", "speed is given twice"),
                      ("time=t,speed=v,throttle=x", "unknown key 'throttle'"), ("time=t,speed", "key=COLUMN"),
                      ("time=t,speed=", "key=COLUMN")):
        with pytest.raises(ConfigError, match=says):
            parse_columns(bad)


# -- recognising formats, and the errors a user meets ----------------------------------
@pytest.mark.parametrize("name", list(SHARED) + ["synthetic/torque-synthetic.csv"])
def test_formats_are_recognised_from_the_file(name):
    lines = (DRIVES / name).read_text(encoding="utf-8").splitlines()[:5]
    assert detect_format(lines) == SHARED.get(name, ("torque",))[0]


def test_columns_alone_mean_a_plain_csv_and_only_apply_to_one(tmp_path):
    path = write(tmp_path, "a,b\n0,1\n")
    assert load_log(path, columns="time=a,speed=b").format == "csv"
    with pytest.raises(ConfigError, match="columns only applies to a plain CSV"):
        load_log(DRIVES / "carobd-etios/ufpe1.csv", format="carobd", columns="time=a,speed=b")
    with pytest.raises(ConfigError, match="a plain CSV needs columns="):
        load_log(path, format="csv")


ERRORS = [
    ("unknown format", "x,y\n1,2\n", {}, r"unknown log format \(it starts 'x,y'\); give format= one of "
                                         r"carobd, openxc, torque, csv"),
    ("unknown name", "x,y\n1,2\n", {"format": "mdf4"}, r"unknown log format 'mdf4'; use auto or one of carobd"),
    ("missing column", "Time,Speed\n1,2\n", {"columns": "time=Time,speed=Speed,rpm=RPM"},
     r"has no column 'RPM'; its columns are: 'Time', 'Speed'"),
    ("carobd column", "ENGINE_RUN_TINE (),ENGINE_RPM (),x\n1,2,3\n", {"format": "carobd"},
     r"has no column 'VEHICLE_SPEED \(\)'; its columns are: 'ENGINE_RUN_TINE \(\)', 'ENGINE_RPM \(\)', 'x'"),
    ("unparseable time", "t,v\n1pm,2\n2pm,3\n", {"columns": "time=t,speed=v"},
     r"no value in time column 't' is a time keidash can read \(the first is '1pm'\); use seconds, ISO 8601"),
    ("empty", "\n  \n", {}, r"is empty: there is no drive to replay"),
    ("no samples", "t,v\n1,x\n", {"columns": "time=t,speed=v"}, r"holds no usable rpm or speed samples "
                                                               r"\(1 bad rows: 1 number\)"),
    ("speed unit", "t,v\n1,2\n", {"columns": "time=t,speed=v", "speed_unit": "knots"},
     r"speed unit must be one of kmh, mph, ms, not 'knots'"),
]


@pytest.mark.parametrize("text, options, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_user_errors_are_one_plain_sentence(tmp_path, text, options, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_log(write(tmp_path, text), **options)
    assert "\n" not in str(error.value)


def test_missing_unreadable_and_folder_paths(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^no log at .*nothing.csv: check the path$"):
        load_log(tmp_path / "nothing.csv")
    with pytest.raises(ConfigError, match=r"is a folder; name a log file in it$"):
        load_log(tmp_path)
    path = write(tmp_path, "t,v\n1,2\n")
    real_open = builtins.open

    def denied(file, *args, **kwargs):  # root reads anything, so deny by hand
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(ConfigError, match=r"^cannot read .*log.csv: permission denied$"):
        load_log(path, columns="time=t,speed=v")


# -- fuzzed rows: counted and skipped, never fatal ---------------------------------------
good_rows = st.lists(st.tuples(st.floats(0, 200), st.floats(0, 7000)), min_size=1, max_size=12)
cuts = st.integers(1, 40)


def mangle(line: str, cut: int, junk: str) -> str:
    """A line that cannot parse: cut short before its last needed field, or with junk in a number."""
    head = line.split(",")
    return ",".join(head[:1]) + "," if cut % 2 else ",".join([head[0], head[1] + junk] + head[2:])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(good_rows, st.lists(st.tuples(cuts, st.sampled_from(["x", "nan", "1e999", "--", "\x00"])), max_size=8),
       st.randoms(use_true_random=False))
def test_mangled_csv_rows_are_counted(rows, garbage, rng):
    good = [f"{i * 0.5:.1f},{v:.2f},{r:.1f}" for i, (v, r) in enumerate(rows)]
    bad = [mangle(good[k % len(good)], cut, junk) for k, (cut, junk) in enumerate(garbage)]
    lines = list(good)  # in time order, with the bad rows scattered among them
    for line in bad:
        lines.insert(rng.randrange(len(lines) + 1), line)
    log = generic.read(["time,speed,rpm"] + lines, "fuzz", "time=time,speed=speed,rpm=rpm")
    assert log.bad_rows == len(bad)
    assert len(log.samples) == len(good)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=60), max_size=15))
def test_arbitrary_text_never_raises(lines):
    for read, header in ((carobd.read, CAROBD_HEADER), (torque.read, TORQUE_HEAD), (openxc.read, None)):
        log = read(([header] if header else []) + lines + [header or "", "Device Time,GPS Time"], "fuzz")
        assert len(log.samples) + log.bad_rows <= len(lines) + 2
    log = generic.read(["t,v,r"] + lines, "fuzz", "time=t,speed=v,rpm=r")
    assert len(log.samples) + log.bad_rows <= len(lines)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 200), st.floats(0, 7000)), min_size=1, max_size=10),
       st.lists(st.integers(1, 60), max_size=8))
def test_truncated_json_lines_are_counted(values, cuts):
    good = []
    for v, r in values:
        good += [msg("engine_speed", r), msg("vehicle_speed", v)]
    bad = [good[k % len(good)][:cut] for k, cut in enumerate(cuts) if cut < len(good[k % len(good)])]
    log = openxc.read(good[:1] + bad + good[1:], "fuzz")
    assert log.bad_rows == len(bad) and len(log.samples) == len(values)


# -- the log as readings, in log time ----------------------------------------------------
def test_readings_from_log_is_pure_and_keeps_log_time(shared_logs):
    log = shared_logs["carobd-etios/ufpe1.csv"]
    first, again = readings_from_log(log, "etios"), readings_from_log(log, "etios")
    assert first == again and all(r.source == "etios" for r in first)
    assert [r.t for r in first] == sorted(r.t for r in first)
    assert len(first) == sum(len(s.fresh) for s in log.samples)
    assert {r.t for r in first} == {s.t for s in log.samples}


def test_estimator_sees_no_stale_gap_in_a_log_without_gaps(shared_logs, tmp_path):
    config = EstimatorConfig(shift_limits(HIJET), source_priority=("replay",))
    for name in ("carobd-etios/live1.csv", "openxc-ford/driving2.jsonl"):
        state, log = EstimatorState(), shared_logs[name]
        for sample, readings in log.with_readings():
            for reading in readings:
                state = step(state, reading, config)
            dash = advise(state, sample.t, config)
            assert dash.speed_kmh is not None and dash.rpm is not None, (name, sample)
    # ... but a logger that stopped for 30 s goes stale
    gap = load_log(write(tmp_path, "t,v,r\n0,10,900\n1,11,950\n2,12,1000\n32,0,800\n"),
                   columns="time=t,speed=v,rpm=r")
    state = EstimatorState()
    for reading in readings_from_log(gap)[:6]:
        state = step(state, reading, config)
    assert advise(state, 2.5, config).speed_kmh == 12
    assert advise(state, 10.0, config).speed_kmh is None


# -- ReplaySource -------------------------------------------------------------------------
def small_log(tmp_path, samples: int = 40, step_s: float = 0.1):
    text = "t,v,r\n" + "".join(f"{i * step_s:.2f},{i},{800 + 10 * i}\n" for i in range(samples))
    return load_log(write(tmp_path, text), columns="time=t,speed=v,rpm=r")


def test_replay_at_speed_0_delivers_everything_in_order_then_finishes(tmp_path):
    log = small_log(tmp_path)
    bus = ReadingBus()
    source = ReplaySource("replay", bus.put, log, speed=0)
    source.retry_s = 0.01  # were run() to return, the base class would play the log again at once
    source.start()
    try:
        assert source.finished.wait(5)
        time.sleep(0.1)
        status = source.status()
        assert (status.link, status.message, status.readings) == (STOPPED, FINISHED_MESSAGE, 80)
    finally:
        source.stop()
        assert not source._thread.is_alive()  # stop() waits for the thread (bounded: a hang guard)
    readings = bus.drain()
    assert [(r.channel, r.value) for r in readings[:4]] == [(RPM, 800), (SPEED, 0), (RPM, 810), (SPEED, 1)]
    assert [r.value for r in readings if r.channel == SPEED] == list(range(40))
    assert all(r.source == "replay" for r in readings)


def test_replay_at_20x_keeps_the_log_s_rhythm(tmp_path):
    log = small_log(tmp_path, samples=40, step_s=0.1)  # 3.9 s of log: 0.195 s at 20x
    bus = ReadingBus()
    source = open_replay("replay", bus.put, str(write(tmp_path, "t,v,r\n" + "".join(
        f"{i * 0.1:.2f},{i},{800 + 10 * i}\n" for i in range(40)), "again.csv")), speed=20,
        columns="time=t,speed=v,rpm=r")
    started = time.monotonic()
    source.start()
    try:
        assert wait_for(lambda: source.status().link == CONNECTED or source.finished.is_set())
        assert source.finished.wait(5)
        elapsed = time.monotonic() - started
    finally:
        source.stop()
    assert elapsed >= 0.19  # paced: never faster than 20 x the log (slower is the machine's load)
    speeds = [r for r in bus.drain() if r.channel == SPEED]
    assert [r.value for r in speeds] == list(range(40))
    steps = [b.t - a.t for a, b in zip(speeds, speeds[1:])]
    assert steps == pytest.approx([0.1] * 39, abs=1e-9)  # stamped on the drive's clock: log time
    assert speeds[0].t >= started
    assert speeds[0].max_age == pytest.approx(max(3 * log.refresh_s[SPEED], 0.2))  # drive time too
    # the drive's clock at monotonic time: 20 x as fast from the start, where the stamps are
    assert source.own_clock
    assert source.drive_time(speeds[0].t + 0.05) == pytest.approx(speeds[0].t + 1.0)


def test_at_speed_0_the_drive_clock_is_where_the_log_is(tmp_path):
    source = ReplaySource("replay", ReadingBus().put, small_log(tmp_path, samples=40, step_s=0.1), speed=0)
    assert source.drive_time(123.0) == 123.0  # not playing yet: the run's own clock
    source.start()
    try:
        assert source.finished.wait(5)
        now = time.monotonic()
        start, ended = source._clock
        assert source.drive_time(now) == pytest.approx(start + 3.9 + (now - ended))  # runs on after the end
    finally:
        source.stop()


def test_a_replay_at_another_speed_is_read_alone(tmp_path):
    path = write(tmp_path, "t,v,r\n0,1,800\n1,2,900\n", "alone.csv")
    from keidash.rig import open_rig
    with pytest.raises(ConfigError, match="cannot be read beside other sources"):
        open_rig({"replay": f"replay://{path}?speed=10&columns=time=t,speed=v,rpm=r",
                  "gps": "nmea:///dev/keidash-no-such-gps"})
    rig = open_rig({"replay": f"replay://{path}?speed=1&columns=time=t,speed=v,rpm=r",
                    "gps": "nmea:///dev/keidash-no-such-gps"})
    assert rig.drive_time(5.0) == 5.0  # at 1x the drive's clock is the run's
    rig.stop()


def test_stop_is_prompt_mid_replay(shared_logs):
    source = ReplaySource("replay", ReadingBus().put, shared_logs["carobd-etios/long2.csv"], speed=1)
    source.start()
    assert wait_for(lambda: source.status().readings > 0)
    source.stop()
    # stopped mid-log: its thread ended with the log unfinished (stop() waits for it, bounded)
    assert not source._thread.is_alive()
    assert source.status().link == STOPPED and not source.finished.is_set()


def test_replay_speed_must_not_be_negative(tmp_path):
    with pytest.raises(ConfigError, match="replay speed must be 0"):
        ReplaySource("replay", ReadingBus().put, small_log(tmp_path), speed=-1)
    with pytest.raises(ConfigError, match="no log at"):
        open_replay("replay", ReadingBus().put, str(tmp_path / "missing.csv"))


def test_bad_rows_show_in_the_source_status():
    source = ReplaySource("replay", ReadingBus().put, load_log(TORQUE))
    assert source.status().errors == {"truncated": 1}


def test_sample_defaults_to_both_channels_fresh():
    assert Sample(0.0, 10.0, 900.0).fresh == (RPM, SPEED)


# -- the examples in docs/replay.md run ------------------------------------------------------
def test_docs_examples_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = doctest.testfile(str(ROOT / "docs" / "replay.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0
