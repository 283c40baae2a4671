"""Any CSV, every command: replay, learn, eval and --ratios-from read a CSV whose header names
time, rpm and speed in the usual ways, take --format/--columns/--speed-unit (and --ratios-* for
LOG2), and say in one sentence when a header is ambiguous. Also an OpenXC trace written as
``TIMESTAMP: {json}``, and replay's LOG kept apart from its --log trip log.

Each test types the command as a user would (keidash.cli.main, or a subprocess where the
cluster runs), on small drives written to tmp_path.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from keidash import app
from keidash.cli import main
from keidash.errors import ConfigError
from keidash.replay import AmbiguousHeader, column_role, detect_format, load_log, read_lines

ENV = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
MPH = 1.609344

#: rpm per km/h of the made-up truck, 1st to 4th
RATIOS = (120.0, 70.0, 48.0, 36.0)
#: (target km/h, gear index, seconds held there)
PLAN = [(0, 0, 10), (12, 0, 20), (25, 1, 25), (40, 2, 25), (60, 3, 40), (30, 2, 20), (0, 0, 10)]


def drive(step_s: float = 0.5, phase: float = 0.0, legs=PLAN) -> list[tuple[float, float, float]]:
    """A short made-up drive through four gears: (t s, rpm, km/h) rows, steady stretches in each gear."""
    plan, t, v = [], 0.0, 0.0
    for target, gear, hold in legs:
        while abs(v - target) > 0.01:
            v = min(target, v + 1.0) if target > v else max(target, v - 1.5)
            plan.append((t, v, min(gear, int(v // 15))))
            t += step_s
        for _ in range(int(hold / step_s)):
            plan.append((t, v, gear))
            t += step_s
    rows = []
    for i, (t, v, gear) in enumerate(plan):
        kmh = v + 0.3 * math.sin(i * 0.7 + phase) if v > 0 else 0.0
        rpm = max(850.0, RATIOS[gear] * kmh) if kmh > 0 else 850.0
        rows.append((round(t, 1), float(round(rpm)), round(kmh, 2)))
    return rows


def write_csv(path, header: list[str], cells, delimiter: str = ",") -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, delimiter=delimiter)
        out.writerow(header)
        out.writerows(cells)
    return str(path)


def plain_csv(tmp_path, name: str = "plain.csv", phase: float = 0.0) -> str:
    return write_csv(tmp_path / name, ["time", "rpm", "speed_kmh"], drive(phase=phase))


def odd_csv(tmp_path, name: str = "odd.csv") -> str:
    """A logger's own header keidash cannot know: speed in mph, semicolons."""
    return write_csv(tmp_path / name, ["when", "engine", "road"],
                     [(t, rpm, round(kmh / MPH, 3)) for t, rpm, kmh in drive()], delimiter=";")


def read_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(args, capsys) -> tuple[int, str, str]:
    """keidash ARGS in this process: (status, stdout, stderr); argparse's exits count as a status."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as exit_info:
        status = exit_info.code
    out = capsys.readouterr()
    return status, out.out, out.err


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "keidash", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def one_sentence(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def learned_ratios(toml_path) -> list[float]:
    return tomllib.loads(open(toml_path, encoding="utf-8").read())["learned"]["rpm_per_kmh"]


# -- replay: the header names the columns and the speed's unit ------------------------------------
HEADERS = [  # header, how each row is written from (t, rpm, km/h), km/h per unit of the speed column
    (["time", "rpm", "speed_kmh"], lambda t, r, v: (t, r, v), 1.0),
    (["t_s", "engine_rpm", "speed_mph"], lambda t, r, v: (t, r, round(v / MPH, 4)), MPH),
    (["Time", "Engine RPM", "GPS Speed"], lambda t, r, v: (t, r, v), 1.0),  # no unit in the name: km/h
    (["timestamp", "Speed (m/s)", "RPM"], lambda t, r, v: (t + 1_717_200_000, round(v / 3.6, 4), r), 3.6),
    (["seconds", "vehicle_speed", "Engine RPM", "gear"], lambda t, r, v: (t, v, r, ""), 1.0),
]


@pytest.mark.parametrize("header,row,factor", HEADERS, ids=[",".join(h[0]) for h in HEADERS])
def test_replay_reads_a_csv_by_its_header_and_the_unit_from_the_speed_column_s_name(tmp_path, capsys, header,
                                                                                    row, factor):
    rows = drive()
    log = write_csv(tmp_path / "drive.csv", header, [row(*r) for r in rows])
    status, out, err = run(["replay", log, "--headless", "--estimates", tmp_path / "e.csv"], capsys)
    assert status == 0, err
    estimates = read_rows(tmp_path / "e.csv")
    assert len(estimates) == len(rows)
    speed_column = [c for c in header if "peed" in c or c == "mph"][0]
    written = [float(r[header.index(speed_column)]) for r in (row(*x) for x in rows)]
    assert [float(e["speed_kmh"]) for e in estimates] == pytest.approx([w * factor for w in written], abs=0.006)
    assert [float(e["rpm_in"]) for e in estimates] == [rpm for _, rpm, _ in rows]
    assert [float(e["t"]) for e in estimates] == pytest.approx([t for t, _, _ in rows], abs=0.001)


def test_mph_column_gives_the_truck_s_ratios_in_rpm_per_kmh(tmp_path, capsys):
    """learn on `t_s,engine_rpm,speed_mph`: were the unit ignored, every ratio would come out 1.61 x too high."""
    log = write_csv(tmp_path / "mph.csv", ["t_s", "engine_rpm", "speed_mph"],
                    [(t, rpm, round(kmh / MPH, 4)) for t, rpm, kmh in drive()])
    status, out, err = run(["learn", log, "--gears", "4", "--out", tmp_path / "truck.toml"], capsys)
    assert status == 0, err + out
    assert learned_ratios(tmp_path / "truck.toml") == pytest.approx(RATIOS, rel=0.02)


def test_speed_unit_overrides_the_name(tmp_path, capsys):
    log = write_csv(tmp_path / "mislabelled.csv", ["time", "rpm", "speed_kmh"],
                    [(t, rpm, round(kmh / MPH, 4)) for t, rpm, kmh in drive()])  # a logger that wrote mph
    status, _, err = run(["replay", log, "--speed-unit", "mph", "--headless", "--estimates", tmp_path / "e.csv"],
                         capsys)
    assert status == 0, err
    assert max(float(e["speed_kmh"]) for e in read_rows(tmp_path / "e.csv")) == pytest.approx(60.3, abs=0.05)


# -- an ambiguous header: one sentence naming the columns, never a guess ----------------------------
AMBIGUOUS = ["time", "timestamp", "rpm", "speed_kmh", "GPS Speed"]


def ambiguous_csv(tmp_path) -> str:
    # the GPS speed reads 10 % low, so which column was read shows in the estimates
    return write_csv(tmp_path / "both.csv", AMBIGUOUS,
                     [(t, t + 100, rpm, kmh, round(kmh * 0.9, 3)) for t, rpm, kmh in drive()])


@pytest.mark.parametrize("command", [["replay"], ["learn"], ["eval"]])
def test_an_ambiguous_header_is_one_sentence_naming_the_columns(tmp_path, capsys, command):
    log = ambiguous_csv(tmp_path)
    status, out, err = run([*command, log, "--headless"] if command == ["replay"] else [*command, log], capsys)
    assert status == 2
    sentence = one_sentence(err)
    assert "two time columns, 'time' and 'timestamp'" in sentence
    assert "two speed columns, 'speed_kmh' and 'GPS Speed'" in sentence
    assert "--columns \"time=time,speed=speed_kmh,rpm=rpm\"" in sentence
    assert "both.csv" in sentence and out == ""


def test_columns_settle_an_ambiguous_header(tmp_path, capsys):
    log = ambiguous_csv(tmp_path)
    status, _, err = run(["replay", log, "--columns", "time=timestamp,speed=GPS Speed,rpm=rpm", "--headless",
                          "--estimates", tmp_path / "e.csv"], capsys)
    assert status == 0, err
    speeds = [float(e["speed_kmh"]) for e in read_rows(tmp_path / "e.csv")]
    assert speeds == pytest.approx([round(kmh * 0.9, 3) for _, _, kmh in drive()], abs=0.006)


# -- learn and eval -----------------------------------------------------------------------------------
def test_learn_on_a_plain_csv(tmp_path, capsys):
    status, out, err = run(["learn", plain_csv(tmp_path), "--gears", "4", "--out", tmp_path / "truck.toml"], capsys)
    assert status == 0, err + out
    assert "gear 4:" in out
    assert learned_ratios(tmp_path / "truck.toml") == pytest.approx(RATIOS, rel=0.02)


def test_learn_names_a_gear_it_saw_only_briefly_and_still_writes_it(tmp_path, capsys):
    """4th held for 3 s only (45-47 km/h): found, but less sure than live learning waits for
    (READY_CONFIDENCE). With the numbering certain and every step a gearbox's, its ratio is a few %
    off at worst against steps of 20-70 %: the profile keeps it and the dash numbers the gears from
    it, and learn says which gear a longer drive would firm up."""
    from keidash.estimate.learn import READY_CONFIDENCE
    from keidash.profiles import load_profile
    legs = [(47, 3, 2) if gear == 3 else (target, gear, hold) for target, gear, hold in PLAN]
    log = write_csv(tmp_path / "brief-4th.csv", ["time", "rpm", "speed_kmh"], drive(legs=legs))
    status, out, err = run(["learn", log, "--gears", "4", "--out", tmp_path / "truck.toml"], capsys)
    assert status == 0, err + out
    assert "4th was seen only briefly (confidence under 0.5): the dash uses its ratio" in out
    profile = load_profile(str(tmp_path / "truck.toml"))
    assert profile.learned.confidence[3] < READY_CONFIDENCE <= min(profile.learned.confidence[:3])
    assert profile.rpm_per_kmh() == pytest.approx(RATIOS, rel=0.02)
    # held the whole 40 s, the same drive's 4th is sure: nothing to say
    status, out, err = run(["learn", plain_csv(tmp_path), "--gears", "4", "--out", tmp_path / "sure.toml"], capsys)
    assert status == 0 and "seen only briefly" not in out


def test_learn_says_when_it_cannot_tell_which_gear_is_1st_and_its_profile_numbers_none(tmp_path, capsys):
    """The made-up drive pulls away once, its rpm read every 0.5 s: no launch shows that the highest
    cluster is 1st, so without the gear count the numbering is a guess. A wrong gear number on the
    dash is worse than none: learn says so, exits 1, and the profile it writes gives the dash no
    ratios (the dash learns them by driving) until --gears or a drive with starts settles it."""
    from keidash.profiles import load_profile
    status, out, err = run(["learn", plain_csv(tmp_path), "--out", tmp_path / "truck.toml"], capsys)
    assert status == 1, err + out
    assert "which gear each is cannot be told from these drives" in out and "gear 4:" in out
    profile = load_profile(str(tmp_path / "truck.toml"))
    assert profile.learned.rpm_per_kmh == pytest.approx(RATIOS, rel=0.02) and not profile.learned.numbering_certain
    assert profile.rpm_per_kmh() == ()


def test_eval_on_a_folder_of_plain_csvs(tmp_path, capsys):
    truck = tmp_path / "truck"
    truck.mkdir()
    plain_csv(truck, "monday.csv", phase=0.0)
    plain_csv(truck, "tuesday.csv", phase=1.3)
    status, out, err = run(["eval", truck, "--json", tmp_path / "eval.json"], capsys)
    assert status == 0, err
    figures = {f["name"]: f for f in json.loads((tmp_path / "eval.json").read_text())}
    assert set(figures) == {"monday.csv", "tuesday.csv"}
    for f in figures.values():
        assert f["cross_validated"] and f["trained_ratios"] == pytest.approx(RATIOS, rel=0.02)
        assert f["speed_only"] is not None


def test_learn_and_eval_take_columns_and_speed_unit_for_every_log(tmp_path, capsys):
    folder = tmp_path / "logger"
    folder.mkdir()
    logs = [odd_csv(folder, "a.csv"), odd_csv(folder, "b.csv")]
    status, _, err = run(["eval", folder], capsys)
    assert status == 2 and "unknown log format" in one_sentence(err)
    options = ["--columns", "time=when,rpm=engine,speed=road", "--speed-unit", "mph"]
    status, _, err = run(["eval", folder, *options, "--json", tmp_path / "eval.json"], capsys)
    assert status == 0, err
    for f in json.loads((tmp_path / "eval.json").read_text()):
        assert f["trained_ratios"] == pytest.approx(RATIOS, rel=0.02)
    status, out, err = run(["learn", *logs, *options, "--gears", "4", "--out", tmp_path / "truck.toml"], capsys)
    assert status == 0, err + out
    assert learned_ratios(tmp_path / "truck.toml") == pytest.approx(RATIOS, rel=0.02)
    status, _, err = run(["learn", *logs, "--format", "torque"], capsys)
    assert status == 2 and "a.csv" in one_sentence(err)


def test_a_decimal_comma_in_a_semicolon_csv_is_a_decimal_point(tmp_path, capsys):
    """A spreadsheet in a European locale writes ``12,5`` and splits cells by semicolons: time, rpm
    and speed are read as the same drive written with points (a comma-split file keeps its commas
    as the cell boundaries they are)."""
    def comma(value) -> str:
        return str(value).replace(".", ",")
    rows = [(comma(t), comma(rpm), comma(kmh)) for t, rpm, kmh in drive()]
    log = write_csv(tmp_path / "komma.csv", ["time", "rpm", "speed_kmh"], rows, delimiter=";")
    status, out, err = run(["learn", log, "--gears", "4", "--out", tmp_path / "truck.toml"], capsys)
    assert status == 0, err + out
    assert learned_ratios(tmp_path / "truck.toml") == pytest.approx(RATIOS, rel=0.02)
    samples = load_log(log).samples
    plain = load_log(plain_csv(tmp_path)).samples
    assert len(samples) == len(plain) == len(drive())
    assert [(s.t, s.rpm, s.speed_kmh) for s in samples] == [(s.t, s.rpm, s.speed_kmh) for s in plain]
    # a clock time's fraction with a comma too, and a speed-only column mapped by hand
    clock = write_csv(tmp_path / "uhr.csv", ["Zeit", "km/h"], [("07:30:00,250", "12,5"), ("07:30:00,750", "13")],
                      delimiter="\t")
    log = load_log(clock, columns="time=Zeit,speed=km/h")
    assert [(s.t - log.samples[0].t, s.speed_kmh) for s in log.samples] == [(0.0, 12.5), (0.5, 13.0)]


def test_a_csv_with_each_reading_on_a_row_of_its_own_reads_as_a_drive(tmp_path, capsys):
    """A logger that writes each reading as it comes (rpm on one row, speed on the next, the gear
    sensor's label only when it changes) leaves the other columns empty. Each row holds the latest
    value of each column it lacks, not fresh (as Sample says); a label-only row is the label's
    change, not an empty row: learn, eval and the tracker read the drive as the same drive
    written a row per instant."""
    rows, labels, last_label = [], [], None
    for t, rpm, kmh in drive():
        label = 0 if kmh < 1.0 else min(range(4), key=lambda g: abs(math.log(rpm / kmh / RATIOS[g]))) + 1
        if label != last_label:
            rows.append((round(t - 0.02, 3), "", "", label))
            last_label = label
        rows.append((t, rpm, "", ""))
        rows.append((round(t + 0.05, 3), "", kmh, ""))
        labels.append(label)
    log = write_csv(tmp_path / "each.csv", ["time", "rpm", "speed_kmh", "gear"], rows)
    samples = load_log(log).samples
    assert len(samples) == len(rows) and not load_log(log).errors
    fresh_rpm = [s for s in samples if s.fresh == ("rpm",)]
    fresh_speed = [s for s in samples if s.fresh == ("speed_kmh",)]
    assert len(fresh_rpm) == len(fresh_speed) == len(drive())
    # after the first of each, every row holds both values and the label
    assert all(s.rpm is not None and s.speed_kmh is not None and s.gear is not None for s in samples[3:])
    assert [s.gear for s in fresh_rpm] == labels
    assert [s.speed_kmh for s in fresh_rpm[1:]] == [kmh for _, _, kmh in drive()][:-1]  # the one before, held
    status, out, err = run(["learn", log, "--gears", "4", "--out", tmp_path / "truck.toml"], capsys)
    assert status == 0, err + out
    assert learned_ratios(tmp_path / "truck.toml") == pytest.approx(RATIOS, rel=0.02)
    status, out, err = run(["eval", log, "--json", tmp_path / "eval.json"], capsys)
    figures = json.loads((tmp_path / "eval.json").read_text())[0]
    assert figures["gear_agree"] is not None and figures["gear_agree"] > 0.9, out
    assert figures["speed_only"] is not None


@pytest.mark.parametrize("header, stamp, says", [
    ("time_ms", lambda t: round(t * 1000), "as milliseconds (from its name)"),
    ("Time (ms)", lambda t: round(t * 1000), "as milliseconds (from its name)"),
    ("timestamp", lambda t: 1_717_200_000_000 + round(t * 1000), "as UNIX time in milliseconds (from its size)"),
    ("timestamp", lambda t: 1_717_200_000_000_000 + round(t * 1e6), "as UNIX time in microseconds (from its size)"),
    ("timestamp", lambda t: 1_717_200_000 + t, "as seconds"),
])
def test_a_time_in_milliseconds_is_read_as_such(tmp_path, capsys, header, stamp, says):
    """A logger's clock in milliseconds (its column named so, or a UNIX time too large to be seconds
    until the year 5138) is not read as seconds, 1000 times too slow: the drive lasts what it lasted
    and its ratios are learned; the time base says how the time was read."""
    rows = [(stamp(t), rpm, kmh) for t, rpm, kmh in drive()]
    log = write_csv(tmp_path / "clock.csv", [header, "rpm", "speed_kmh"], rows)
    read = load_log(log)
    assert read.samples[-1].t == pytest.approx(drive()[-1][0], abs=1e-3) and says in read.time_base
    status, out, err = run(["learn", log, "--gears", "4", "--out", tmp_path / "truck.toml"], capsys)
    assert status == 0, err + out
    assert learned_ratios(tmp_path / "truck.toml") == pytest.approx(RATIOS, rel=0.02)


def test_a_gear_label_that_is_no_gear_number_leaves_the_row_unlabelled_not_dropped(tmp_path):
    """An automatic's selector ("D", "S") in the gear column is no gear number: the row's rpm and speed
    still count (it was a bad row, and the drive lost them), unlabelled, and the log counts the labels
    it could not read. Ordinals ("3rd") are gear numbers."""
    rows = [(t, rpm, kmh, ("D", "S", "2nd", "N", "4th")[i % 5]) for i, (t, rpm, kmh) in enumerate(drive())]
    log = load_log(write_csv(tmp_path / "selector.csv", ["time", "rpm", "speed_kmh", "gear"], rows))
    assert len(log.samples) == len(rows) and log.errors == {"gear": 2 * len(rows) // 5}
    assert [s.gear for s in log.samples[:5]] == [None, None, 2, 0, 4]
    assert [s.rpm for s in log.samples] == [rpm for _, rpm, _ in drive()]


def test_rows_of_one_time_are_one_instant(tmp_path, capsys):
    """A logger stamping to the second (or the millisecond) writes rpm and speed on rows of their own
    with one time: one instant, read as one sample with both fresh (the second row was a row "going
    back in time", dropped: every speed of the drive was lost)."""
    rows = [row for t, rpm, kmh in drive() for row in ((t, rpm, ""), (t, "", kmh))]
    log = load_log(write_csv(tmp_path / "same.csv", ["time", "rpm", "speed_kmh"], rows))
    assert not log.errors and [(s.t, s.rpm, s.speed_kmh) for s in log.samples] == [
        (t, rpm, kmh) for t, rpm, kmh in drive()]
    assert all(s.fresh == ("rpm", "speed_kmh") for s in log.samples)
    status, out, err = run(["learn", tmp_path / "same.csv", "--gears", "4", "--out", tmp_path / "truck.toml"],
                           capsys)
    assert status == 0 and learned_ratios(tmp_path / "truck.toml") == pytest.approx(RATIOS, rel=0.02), err + out


# -- --ratios-from LOG2 with its own options -------------------------------------------------------------
def test_ratios_from_a_csv_that_needs_columns(tmp_path, capsys):
    log, log2 = plain_csv(tmp_path), odd_csv(tmp_path)
    replay = ["replay", log, "--hide-rpm", "--ratios-from", log2, "--headless", "--estimates", tmp_path / "e.csv"]
    status, _, err = run(replay, capsys)
    assert status == 2 and "odd.csv: unknown log format" in one_sentence(err)
    # --columns is LOG's: it does not reach LOG2 (and LOG has no column 'when')
    status, _, err = run([*replay, "--columns", "time=when,rpm=engine,speed=road"], capsys)
    assert status == 2 and "plain.csv has no column 'when'" in one_sentence(err)
    status, out, err = run([*replay, "--ratios-columns", "time=when,rpm=engine,speed=road",
                            "--ratios-speed-unit", "mph"], capsys)
    assert status == 0, err
    assert "learned from" in out and "odd.csv" in out
    moving = [e for e in read_rows(tmp_path / "e.csv") if float(e["speed_kmh"]) > 20]
    assert moving and all(e["gear_est"] != "-1" for e in moving)  # the ratios were known from the start


def test_ratios_options_without_ratios_from_are_one_sentence(tmp_path, capsys):
    status, _, err = run(["replay", plain_csv(tmp_path), "--ratios-columns", "time=t,speed=v", "--headless"], capsys)
    assert status == 2
    assert "--ratios-columns describes the log --ratios-from learns from" in one_sentence(err)


def test_an_ambiguous_log2_names_the_ratios_option(tmp_path, capsys):
    status, _, err = run(["replay", plain_csv(tmp_path), "--ratios-from", ambiguous_csv(tmp_path), "--headless",
                          "--estimates", tmp_path / "e.csv"], capsys)
    assert status == 2
    sentence = one_sentence(err)
    assert "two speed columns, 'speed_kmh' and 'GPS Speed'" in sentence
    assert "--ratios-columns \"time=time,speed=speed_kmh,rpm=rpm\"" in sentence


# -- an OpenXC trace written as TIMESTAMP: {json} -----------------------------------------------------------
def test_openxc_trace_with_the_timestamp_before_each_message(tmp_path, capsys):
    start = 1_385_133_351.0
    lines = []
    for i, (t, rpm, kmh) in enumerate(drive()):
        lines.append(f"{start + t:.3f}: " + json.dumps({"name": "engine_speed", "value": rpm}))
        lines.append(f"{start + t + 0.01:.3f}: " + json.dumps({"name": "vehicle_speed", "value": kmh}))
    trace = tmp_path / "trace.json"
    trace.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, _, err = run(["replay", trace, "--headless", "--estimates", tmp_path / "e.csv"], capsys)
    assert status == 0, err
    estimates = read_rows(tmp_path / "e.csv")
    assert [float(e["t"]) for e in estimates] == pytest.approx([t for t, _, _ in drive()], abs=0.002)
    assert [float(e["rpm_in"]) for e in estimates] == [rpm for _, rpm, _ in drive()]
    assert load_log(trace).format == "openxc"
    status, out, err = run(["learn", trace, "--gears", "4"], capsys)
    assert status == 0 and "gear 4:" in out, err


# -- replay's LOG and its --log trip log are two files -----------------------------------------------------
@pytest.fixture
def dash_calls(monkeypatch):
    """start_dash replaced by a recorder: what the dash would have been started with."""
    calls = []
    monkeypatch.setattr(app, "start_dash", lambda args, profile, sources, **kw: calls.append((args, sources)) or 0)
    return calls


def test_replay_log_and_trip_log_are_separate_arguments(tmp_path, capsys, dash_calls):
    log = plain_csv(tmp_path)
    assert run(["replay", log, "--headless"], capsys)[0] == 0
    args, sources = dash_calls[-1]
    assert args.log is None  # no trip log asked for: the CSV is not opened as one
    assert "plain.csv" in sources["replay"]
    assert run(["replay", log, "--log", tmp_path / "trips.db", "--headless"], capsys)[0] == 0
    args, sources = dash_calls[-1]
    assert args.log == str(tmp_path / "trips.db") and "plain.csv" in sources["replay"]  # LOG is replayed


@pytest.mark.parametrize("same", ["{log}", "{folder}/./{name}"])
def test_log_naming_the_replayed_file_is_refused(tmp_path, capsys, dash_calls, same):
    log = plain_csv(tmp_path)
    trip_log = same.format(log=log, folder=tmp_path, name="plain.csv")
    before = open(log, "rb").read()
    status, _, err = run(["replay", log, "--log", trip_log, "--headless"], capsys)
    assert status == 2 and not dash_calls
    assert "is the log being replayed; keep the trip log in another file" in one_sentence(err)
    assert open(log, "rb").read() == before


def trips_in(db) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM trips ORDER BY id")]


def test_a_replay_keeps_its_trip_log_elsewhere_and_never_writes_into_the_log_it_plays(tmp_path):
    log = plain_csv(tmp_path)
    before = open(log, "rb").read()
    db = tmp_path / "trips.db"
    out = run_cli("replay", log, "--speed", "0", "--headless", "--log", db)
    assert out.returncode == 0, out.stderr
    assert open(log, "rb").read() == before and trips_in(db) == [1]
    from keidash.triplog.reading import channel_readings, open_trip_log
    conn = open_trip_log(str(db))
    try:
        speeds = sorted(v for _, v, _ in channel_readings(conn, 1, "speed_kmh"))
    finally:
        conn.close()
    assert speeds == sorted(kmh for _, _, kmh in drive())  # the CSV's drive went into the trip log
    # replaying the trip log itself adds no copy of the trip to it
    played = run_cli("replay", db, "--speed", "0", "--headless")
    assert played.returncode == 0, played.stderr
    assert trips_in(db) == [1]
    refused = run_cli("replay", db, "--log", db, "--headless")
    assert refused.returncode == 2 and "is the log being replayed" in one_sentence(refused.stderr)


# -- the header's names, underneath ------------------------------------------------------------------------
ROLES = {
    "time": ("time", None), "t": ("time", None), "t_s": ("time", None), "Timestamp": ("time", None),
    "seconds": ("time", None), "Time (s)": ("time", None), "elapsed_s": ("time", None),
    "time_ms": ("time", "ms"), "timestamp (ms)": ("time", "ms"), "t_ms": ("time", "ms"),  # read as milliseconds
    "rpm": ("rpm", None), "engine_rpm": ("rpm", None), "Engine RPM": ("rpm", None), "Engine RPM(rpm)": ("rpm", None),
    "Engine-Speed": ("rpm", None), "Engine (rpm)": ("rpm", None),
    "speed": ("speed", None), "Vehicle Speed": ("speed", None), "GPS Speed": ("speed", None),
    "speed_kmh": ("speed", "kmh"), "kmh": ("speed", "kmh"), "Speed (km/h)": ("speed", "kmh"),
    "speed_mph": ("speed", "mph"), "MPH": ("speed", "mph"), "Speed [mph]": ("speed", "mph"),
    "speed_ms": ("speed", "ms"), "GPS Speed (Meters/second)": ("speed", "ms"), "Speed (OBD)(km/h)": ("speed", "kmh"),
    "ms": None,  # alone, more likely milliseconds than metres per second
    "speed_mph (km/h)": None, "Speed (%)": None, "Speed (knots)": None,
    "gear": ("gear", None), "Gear Position": ("gear", None), "latitude": None, "": None,
    # an engineering tool's dimensionless marker, and names run together
    "Gear [-]": ("gear", None), "Gear []": ("gear", None), "GearPosition": ("gear", None), "gear_pos": ("gear", None),
    "Gear [%]": None, "VehicleSpeed": ("speed", None), "EngineSpeed": ("rpm", None),
}


@pytest.mark.parametrize("name", ROLES)
def test_the_usual_column_names(name):
    assert column_role(name) == ROLES[name]


@pytest.mark.parametrize("header,fmt", [
    ("time,rpm,speed_kmh", "csv"),
    ("t_s;engine_rpm;speed_mph", "csv"),
    ("Time\tSpeed (km/h)", "csv"),  # speed only: a GPS logger
    ("GPS Time, Device Time, Longitude, Latitude,GPS Speed (Meters/second),Engine RPM(rpm)", "torque"),
    ("ENGINE_RUN_TINE (),ENGINE_RPM (),VEHICLE_SPEED (),time", "carobd"),
    ("SQLite format 3\x00\x10\x00,t,speed_kmh", "triplog"),  # a trip log's schema can name t and speed_kmh
])
def test_specific_formats_still_win_over_a_plain_csv(header, fmt):
    assert detect_format([header, "1,2,3"]) == fmt


def test_a_header_without_time_and_speed_is_not_guessed(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown log format \(it starts 'time,rpm'\)"):
        read_lines(["time,rpm", "0,800"], "t.csv")
    with pytest.raises(ConfigError, match=r"a plain CSV needs columns=.*its columns are: 'time', 'rpm'"):
        read_lines(["time,rpm", "0,800"], "t.csv", format="csv")


def test_two_gear_columns_are_named_too():
    with pytest.raises(AmbiguousHeader) as error:
        read_lines(["t,speed,gear,gear_position", "0,10,1,1"], "g.csv")
    assert str(error.value) == ("g.csv: the header names two gear columns, 'gear' and 'gear_position'; say which "
                                "to read with --columns \"time=t,speed=speed,gear=gear\"")
    assert isinstance(error.value, ConfigError)  # a user mistake: status 2


def test_the_time_base_says_where_the_columns_and_the_unit_came_from():
    log = read_lines(["t,Speed (km/h),RPM", "0,10,900", "1,12,950"], "a.csv")
    assert log.time_base == ("column 't' as seconds; speed 'Speed (km/h)' in km/h (from its name); "
                             "columns recognised from the header: time=t,speed=Speed (km/h),rpm=RPM")
    assumed = read_lines(["time,speed", "0,10", "1,12"], "b.csv")
    assert "in km/h (assumed: its name gives no unit)" in assumed.time_base
    mapped = read_lines(["a,b_mph", "0,10", "1,12"], "c.csv", columns="time=a,speed=b_mph")
    assert [s.speed_kmh for s in mapped.samples] == [10.0, 12.0]  # 'b_mph' is no usual name: not read as mph
    named = read_lines(["a,speed_mph", "0,10", "1,12"], "d.csv", columns="time=a,speed=speed_mph")
    assert [s.speed_kmh for s in named.samples] == pytest.approx([10 * MPH, 12 * MPH])  # a mapped name's unit


def test_openxc_stamp_before_the_message_and_inside_it():
    lines = ['1385133351.000: {"name": "vehicle_speed", "value": 10}',
             '1385133351.500: {"name": "vehicle_speed", "value": 11, "timestamp": 1385133352.0}',  # inside wins
             '{"name": "vehicle_speed", "value": 12}',  # no stamp at all in a timed trace: counted
             '1385133353.0 : {"name": "vehicle_speed", "value": 13}']
    log = read_lines(lines, "trace")
    assert log.format == "openxc"
    assert [(s.t, s.speed_kmh) for s in log.samples] == [(0.0, 10), (1.0, 11), (2.0, 13)]
    assert dict(log.errors) == {"untimed": 1}


@pytest.mark.parametrize("hz", [1, 5])
def test_a_csv_polled_in_turn_marks_the_value_that_changed_as_new(tmp_path, hz):
    """A logger that polls rpm and speed in turn (OBD asks one PID at a time) and writes a row per reply
    with the latest of the other repeats each value on the next row, stamped with that row's time. Read
    as new, a repeated rpm beside a new speed paired two instants half a poll apart: the close-ratio car's
    town drive logged so at 1 Hz had the tracker (its own ratios) on 86.6 % against 91.8 % for nearest
    ratio per row, below it, where the same readings in memory give 94.5 %. The rows say a logger polled
    in turn (both values almost never change together, the rpm repeats on half the rows): the value that
    changed is new, and where neither did the one whose turn it is."""
    from keidash.estimate.drives import estimate_log
    from keidash.estimate.estimator import config_for
    from keidash.estimate.gears import agreement, nearest_ratio_gears
    from keidash.profiles import load_profile
    from keidash.profiles.body import Body
    from keidash.sim.recorded import record, simulate, write_logger_csv
    car = str(Path(__file__).parent / "data" / "profiles" / "close-ratio-6mt.toml")
    trace = simulate(car, "town", "everyday", 420.0, 0, body=Body(mass_kg=1350.0, drag_area_m2=0.65,
                                                               clutch_capacity_nm=350.0, engine_inertia_kgm2=0.15))
    memory = record(trace, rpm_hz=hz, seed=0)
    write_logger_csv(memory, str(tmp_path / "town.csv"))
    log = load_log(str(tmp_path / "town.csv"))
    assert "rows polled in turn" in log.time_base
    rows = list(zip(memory.samples, log.samples))
    assert sum(a.fresh == b.fresh for a, b in rows) >= 0.99 * len(rows)
    profile = load_profile(car)
    config = config_for(profile, {}, ("replay",))
    tracker = {name: agreement(drive.samples, [r.gear_est for r in estimate_log(drive, config)])
               for name, drive in (("memory", memory), ("csv", log))}
    near, counted = agreement(log.samples, nearest_ratio_gears(log.samples, profile.rpm_per_kmh()))
    assert tracker["csv"][0] >= tracker["memory"][0] - 0.005 * counted and tracker["csv"][0] > near
    # a logger that measures both at each row (both change together) is read as before: every value new
    synchronous = tmp_path / "both.csv"
    with open(synchronous, "w", encoding="utf-8") as f:
        f.write("time,rpm,speed_kmh\n")
        for n in range(300):
            f.write(f"{n / 10:.1f},{1500 + 7 * n},{10 + 0.05 * n:.2f}\n")
    both = load_log(str(synchronous))
    assert "polled in turn" not in both.time_base and all(s.fresh == ("rpm", "speed_kmh") for s in both.samples)
