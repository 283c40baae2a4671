"""The command line: user mistakes get one plain sentence and exit status 2."""

import os
import subprocess
import sys

import pytest
from as_nobody import nobody_prefix

from keidash.cli import main
from keidash.config import config_from_dict, load_config
from keidash.errors import ConfigError
from keidash.rig import open_rig

ENV = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "keidash", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_profiles_lists_every_truck():
    out = run_cli("profiles")
    assert out.returncode == 0
    assert "hijet-s500p" in out.stdout and "5 gears, final 6.666" in out.stdout
    assert "carry-dd51t" in out.stdout and "ratios learned by driving" in out.stdout


@pytest.mark.parametrize("args,expected", [
    (["demo", "--profile", "hijet-s999"], "unknown profile 'hijet-s999'"),
    (["demo", "--seconds", "soon"], "--seconds: must be a positive number up to 604,800 s"),
    (["demo", "--seconds", "-3"], "must be a positive number up to 604,800 s (leave it out to run until "
                                  "stopped), not '-3'"),
    (["demo", "--size", "huge"], "--size: must look like 800x480, not 'huge'"),
    (["demo", "--hardware", "obd,radar", "--seconds", "1"], "unknown hardware 'radar'"),
    (["demo", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["run"], "the following arguments are required: --config"),
    (["run", "--config", "/nonexistent/keidash.toml"], "config file /nonexistent/keidash.toml does not exist"),
    (["fly"], "invalid choice: 'fly'"),
    (["demo", "--screenshot", "/nonexistent/shot.png"], "the folder /nonexistent does not exist"),
    (["demo", "--stats-json", "/nonexistent/s.json"], "the folder /nonexistent does not exist"),
])
def test_user_mistakes_get_one_sentence_and_status_2(args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        status = main(args)
        raise SystemExit(status)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_config_key_through_the_real_command(tmp_path):
    config = tmp_path / "truck.toml"
    config.write_text('profile = "hijet-s500p"\n[sources]\ngps = "nmea:///dev/serial0"\n'
                      '[display]\nbrightness = 3\n')
    out = run_cli("run", "--config", str(config), "--headless", "--seconds", "1")
    assert out.returncode == 2
    assert "unknown key 'brightness'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(("what", "args"), [("config file", ["run", "--config"]), ("profile file", ["marks", "--profile"])])
def test_unreadable_config_says_permission_denied(tmp_path, what, args):
    # the config and a profile file are read by one function: the same sentence (a profile said
    # "cannot read profile file X: Permission denied", the system's words)
    config = tmp_path / "truck.toml"
    config.write_text('profile = "hijet-s500p"\n')
    config.chmod(0)
    if os.geteuid() != 0:
        out = subprocess.run([sys.executable, "-m", "keidash", *args, str(config)],
                             capture_output=True, text=True, timeout=60, env=ENV)
    else:  # root reads any file: run the real command as nobody instead, as CI runs as root
        prefix = nobody_prefix()
        tmp_path.chmod(0o755)
        out = subprocess.run(prefix + ["-m", "keidash", *args, str(config)],
                             capture_output=True, text=True, timeout=60, env=ENV)
    assert out.returncode == 2
    assert out.stderr.strip() == f"keidash: cannot read {what} {config}: permission denied"


@pytest.mark.parametrize("data,message", [
    ({}, "profile is missing"),
    ({"profile": "hijet-s500p"}, r"\[sources\] is empty"),
    ({"profile": "hijet-s500p", "sources": {"gps": "nmea:///dev/x"}, "display": {"fps": 0}}, "fps must be a positive"),
    ({"profile": "hijet-s500p", "sources": {"gps": "nmea:///dev/x"}, "display": {"fullscreen": "yes"}},
     "fullscreen must be true or false"),
    ({"profile": "hijet-s500p", "sources": {"gps": "nmea:///dev/x"}, "shift": {"upshift": 4000}},
     "unknown key 'upshift'"),
    ({"profile": "hijet-s500p", "sources": {"gps": "nmea:///dev/x"}, "extra": 1}, "unknown key 'extra'"),
])
def test_config_mistakes(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data, "truck.toml")


def test_config_keeps_source_order_as_priority():
    config = config_from_dict({"profile": "hijet-s500p", "sources": {
        "pulses": "pulses://gpio?tach=17", "obd": "obd:///dev/ttyUSB0?protocol=5", "gps": "nmea:///dev/serial0"},
        "display": {"width": 1024, "height": 600, "fullscreen": True}, "shift": {"upshift_rpm": 4500}})
    assert list(config.sources) == ["pulses", "obd", "gps"]
    assert config.size == (1024, 600) and config.fullscreen and config.shift == {"upshift_rpm": 4500.0}


@pytest.mark.parametrize("url,message", [
    ("ftp://truck", "unknown URL scheme 'ftp'"),
    ("obd://", "name the adapter's port"),
    ("obd:///dev/ttyUSB0?protocol=12", "protocol must be auto or 1-9/A"),
    ("obd:///dev/ttyUSB0?speed=fast", "unknown option 'speed'"),
    ("nmea:///dev/serial0?baud=fast", "baud must be a positive whole number from 1,200 to 921,600 baud, not 'fast'"),
    ("pulses://gpio", "name at least one pin"),
    ("pulses://gpio?tach=17&tach_ppr=x", "tach_ppr must be a positive number from 0.25 to 24"),
    ("sim://hijet-s500p?speedup=0", "speedup must be a positive number from 0.1 to 20"),
    ("sim://nope", "unknown profile 'nope'"),
])
def test_bad_source_urls(url, message):
    with pytest.raises(Exception) as info:
        open_rig({"src": url})
    assert isinstance(info.value, ValueError)  # ConfigError / ProfileError are ValueErrors
    assert message in str(info.value)


def test_no_display_runs_headless_and_says_where_the_screenshot_went(tmp_path):
    env = {k: v for k, v in ENV.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    out = subprocess.run([sys.executable, "-m", "keidash", "demo", "--seconds", "2", "--hardware", "gps"],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"saved a screenshot of the cluster to {tmp_path / 'keidash-demo.png'}" in out.stdout
    assert (tmp_path / "keidash-demo.png").stat().st_size > 10_000


def test_start_up_path_imports_nothing_heavy():
    # python-obd (pint) costs ~0.2 s here and seconds on a Pi Zero: only a source thread imports it
    code = ("import sys, keidash.cli, keidash.rig, keidash.app, keidash.estimate.estimator, keidash.display.cluster;"
            "print(sorted(m for m in ('obd', 'pint', 'pygame', 'gpiozero', 'serial', 'pynmea2', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_example_config_in_docs_loads_and_builds_its_sources():
    from pathlib import Path
    path = Path(__file__).parents[1] / "docs" / "example-config.toml"
    config = load_config(str(path))
    assert config.profile == "hijet-s500p" and config.fullscreen
    rig = open_rig(config.sources)  # built, not started: no hardware is touched
    assert [s.name for s in rig.sources] == ["pulses", "obd", "gps"]


def test_replay_plays_a_real_log_through_the_cluster_and_stops_at_its_end(tmp_path):
    log = os.path.join(os.path.dirname(__file__), "data", "drives", "openxc-ford", "driving2.jsonl")
    stats = tmp_path / "stats.json"
    out = run_cli("replay", log, "--speed", "0", "--headless", "--stats-json", str(stats),
                  "--screenshot", str(tmp_path / "end.png"))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    import json
    assert json.loads(stats.read_text())["frames"] >= 1
    assert (tmp_path / "end.png").stat().st_size > 10_000


@pytest.mark.parametrize("args,expected", [
    (["replay", "/nonexistent/drive.csv"], "no log at /nonexistent/drive.csv"),
    (["replay", "README.md", "--format", "xls"], "unknown log format 'xls'"),
    (["replay", "README.md"], "unknown log format"),
])
def test_replay_mistakes(args, expected):
    out = run_cli(*args, "--headless", "--seconds", "1")
    assert out.returncode == 2 and expected in out.stderr and "Traceback" not in out.stderr


def test_probe_reports_rates_as_json(tmp_path):
    import json
    # A log replayed as fast as it reads (speed=0): every reading is stamped at its place in the
    # log, so the rates are the log's own whatever the machine's pace, and the probe ends when the
    # log does (--seconds is then only a hang guard).
    log = tmp_path / "five-hz.csv"
    log.write_text("t,v,r\n" + "".join(f"{i * 0.2:.1f},{30 + i},{1500 + 10 * i}\n" for i in range(20)))
    out = run_cli("probe", f"replay://{log}?speed=0&columns=time=t,speed=v,rpm=r", "--seconds", "120", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    speed = report["speed_kmh"]
    assert (speed["hz"], speed["readings"], speed["errors"], speed["min"], speed["max"], speed["last"]) == (
        5.0, 20, 0, 30.0, 49.0, 49.0), out.stdout
    assert (report["rpm"]["readings"], report["rpm"]["max"]) == (20, 1690.0)
    replay = report["sources"]["replay"]
    assert replay["readings"] == 40 and replay["errors"] == {}, replay


@pytest.mark.parametrize("command", [["demo", "--seconds", "1"], ["replay", "--speed", "0", "--seconds", "1"]])
@pytest.mark.parametrize(("made", "expected"), [
    (("CREATE TABLE photos (jpeg BLOB)",),
     "that file is another program's SQLite database (its tables (photos) are not keidash's); "
     "keidash never writes it: name another file"),
    (("PRAGMA application_id = 1262768968", "PRAGMA user_version = 9", "CREATE TABLE trips (id INTEGER)"),
     "that trip log was written by a newer keidash (schema v9, this keidash knows v2); "
     "update keidash or name another file"),
    (("PRAGMA user_version = 9", "CREATE TABLE trips (id INTEGER)"),  # no keidash writes v9 without its id
     "that file is another program's SQLite database (its user_version is 9, with no application_id); "
     "keidash never writes it: name another file"),
])
def test_a_log_keidash_will_not_write_is_refused_before_the_drive(tmp_path, command, made, expected):
    # before: a warning on stderr, the whole drive run without logging, and exit status 0
    import sqlite3
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    for statement in made:
        conn.execute(statement)
    conn.commit()
    conn.close()
    before = path.read_bytes()
    if command[0] == "replay":
        command = ["replay", os.path.join(os.path.dirname(__file__), "data", "drives", "synthetic",
                                          "torque-synthetic.csv"), *command[1:]]
    out = run_cli(*command, "--headless", "--screenshot", str(tmp_path / "last.png"), "--log", str(path))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"keidash: --log {path}: {expected}"
    assert path.read_bytes() == before and not (tmp_path / "last.png").exists()  # refused before the drive


def test_a_damaged_log_is_kept_aside_and_the_drive_logged_anew(tmp_path):
    path = tmp_path / "trips.db"
    path.write_bytes(b"not a database at all\n")
    out = run_cli("demo", "--seconds", "1", "--headless", "--screenshot", str(tmp_path / "last.png"),
                  "--log", str(path))
    assert out.returncode == 0, out.stderr
    (aside,) = tmp_path.glob("trips.db.corrupt-*")  # trips.db.corrupt-<date>-<time>
    assert aside.read_bytes() == b"not a database at all\n"
    assert "started a new log" in out.stderr


def test_probe_of_a_missing_adapter_says_why_and_exits_1():
    out = run_cli("probe", "obd:///dev/ttyUSB-keidash-none", "--seconds", "1")
    assert out.returncode == 1
    assert "no OBD adapter at /dev/ttyUSB-keidash-none: is it plugged in?" in out.stdout


def test_a_replay_with_nothing_to_see_says_so_instead_of_sitting_silent(tmp_path):
    # no display (SDL's dummy driver): before, nothing was printed until the drive's end
    log = os.path.join(os.path.dirname(__file__), "data", "drives", "synthetic", "torque-synthetic.csv")
    out = run_cli("replay", log, "--speed", "10")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == ("keidash: no display: the log plays through the dash unseen, in 0.1 min at 10 x "
                                  "real time (Ctrl-C stops it); --estimates OUT.csv writes what the dash shows at "
                                  "every row at once")
    out = run_cli("replay", log, "--speed", "0", "--headless", "--seconds", "1")
    assert out.returncode == 0 and out.stderr == "", out.stderr  # a bounded replay needs no word


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("args", [["profiles"], ["doctor", "--json", "--seconds", "1"]])
def test_output_into_a_closed_pipe_is_no_traceback(args, buffered):
    # as `keidash doctor --json | head -3`: the reader is gone before keidash writes (its end is
    # closed before keidash starts, so nothing depends on timing). Buffered (Python's default for a
    # pipe) the write fails only when stdout is flushed; unbuffered (PYTHONUNBUFFERED) at once.
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    try:
        run = subprocess.run([sys.executable, "-m", "keidash", *args], stdout=write_end, stderr=subprocess.PIPE,
                             text=True, timeout=120, env=env)
    finally:
        os.close(write_end)
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, run.stderr
    assert run.returncode == 1


def test_a_config_that_is_a_folder_or_binary_says_what_it_is(tmp_path):
    out = run_cli("run", "--config", str(tmp_path), "--headless", "--seconds", "1")
    assert out.returncode == 2
    assert out.stderr.strip() == f"keidash: config file {tmp_path} is a folder; name the TOML file in it"
    binary = tmp_path / "truck.toml"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    out = run_cli("run", "--config", str(binary), "--headless", "--seconds", "1")
    assert out.returncode == 2
    assert out.stderr.strip() == (f"keidash: config file {binary} is not text (a binary file?): a config is a "
                                  "TOML text file, see docs/example-config.toml")


def test_probe_of_a_missing_adapter_says_it_once_in_its_table(tmp_path):
    port = tmp_path / "ttyUSB9"  # no such device
    out = run_cli("probe", f"obd://{port}", "--seconds", "1")
    assert out.returncode == 1
    assert out.stderr == ""  # was the source's own WARNING line, the table's message again
    assert out.stdout.count(f"no OBD adapter at {port}: is it plugged in?") == 1


def test_a_real_source_beside_the_virtual_truck_keeps_its_own_truck_s_limits():
    # the sim set its profile's plausibility limits on every source in the rig, so an adapter on a
    # Sambar TT2 (revs to 9,600 here) beside a virtual Hijet refused the Sambar's rpm past 8,550
    from keidash.profiles import load_profile
    from keidash.profiles.engine import plausible
    from keidash.readings import RPM, SPEED
    sambar, hijet = load_profile("sambar-tt2"), load_profile("hijet-s500p")
    assert plausible(sambar).max_rpm != plausible(hijet).max_rpm  # else the test proves nothing
    rig = open_rig({"obd": "obd:///dev/ttyUSB-keidash-none", "sim": "sim://hijet-s500p?hardware=gps"}, sambar)
    try:
        obd, gps = rig.sources
        assert (obd.name, gps.name) == ("obd", "gps")
        assert obd.limits == {RPM: (0.0, plausible(sambar).max_rpm), SPEED: (0.0, plausible(sambar).max_kmh)}
        assert gps.limits == {RPM: (0.0, plausible(hijet).max_rpm), SPEED: (0.0, plausible(hijet).max_kmh)}
    finally:
        rig.stop()


def test_the_dash_hands_the_gear_ratios_to_the_rig_once_at_start(tmp_path, monkeypatch):
    # they were handed twice: by the command (with the idle) and again by the frame loop
    from keidash.cli import main
    from keidash.profiles import load_profile
    from keidash.rig import Rig
    handed, idles = [], []
    know_truck, know_idle = Rig.know_truck, Rig.know_idle
    monkeypatch.setattr(Rig, "know_truck", lambda rig, ratios: handed.append(tuple(ratios)) or know_truck(rig, ratios))
    monkeypatch.setattr(Rig, "know_idle", lambda rig, idle, known=False: idles.append((idle, known))
                        or know_idle(rig, idle, known))
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert main(["demo", "--hardware", "gps", "--headless", "--seconds", "1",
                 "--screenshot", str(tmp_path / "s.png")]) == 0
    hijet = load_profile("hijet-s500p")
    assert handed == [hijet.rpm_per_kmh()]  # known ratios: nothing learned live, so never again
    from keidash.profiles.engine import shift_limits
    assert idles == [(shift_limits(hijet).idle_rpm, bool(hijet.engine.idle_rpm))]  # and the idle, once
