"""The trip log's reader side: keidash trips / report / export and replay of a trip log.

The databases are written here with sqlite3 directly, in the trip-log schema
(version 1), never through keidash.triplog.writer, so these tests pin the file format:
trip 1 is hand-made (every figure can be worked out on paper), trip 2 is the
real OpenXC drive driving2.jsonl (its labels as the dash's gear).
"""

from __future__ import annotations

import csv
import re
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from keidash.errors import ConfigError, KeidashError
from keidash.replay import load_log
from keidash.triplog import export, reading, report

DRIVE = Path(__file__).parent / "data" / "drives" / "openxc-ford" / "driving2.jsonl"

SCHEMA = """
CREATE TABLE trips (id INTEGER PRIMARY KEY, started_unix REAL NOT NULL, ended_unix REAL,
                    profile TEXT NOT NULL DEFAULT '', sources TEXT NOT NULL DEFAULT '');
CREATE TABLE readings (trip INTEGER NOT NULL REFERENCES trips(id), t REAL NOT NULL,
                       channel TEXT NOT NULL, value REAL NOT NULL, source TEXT NOT NULL);
CREATE TABLE frames (trip INTEGER NOT NULL REFERENCES trips(id), t REAL NOT NULL,
                     speed_kmh REAL, rpm REAL, rpm_estimated INTEGER NOT NULL, gear INTEGER, cue TEXT);
CREATE INDEX readings_trip_t ON readings(trip, t);
CREATE INDEX frames_trip_t ON frames(trip, t);
"""

T1_START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
T2_START = T1_START + 3600.0


def new_db(path: Path, version: int = 1) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(SCHEMA)
    db.execute(f"PRAGMA user_version = {version}")
    return db


# trip 1, by hand: 10 Hz frames for 60 s; gear 1 for 10 s, 2 for 15 s, 3 for 20 s, 4 for 15 s;
# 36 km/h for 30 s then 72 km/h; rpm 3000 but 7000 for 1 s in 1st (over-rev) and 1000 for 2 s in 3rd (lugging)
def trip1_frame(k: int) -> tuple:
    t = k / 10
    gear = 1 if t < 10 else 2 if t < 25 else 3 if t < 45 else 4
    speed = 36.0 if t < 30 else 72.0
    rpm = 7000.0 if 50 <= k < 60 else 1000.0 if 300 <= k < 320 else 3000.0
    cue = "UP" if 80 <= k < 90 else "DOWN" if 305 <= k < 310 else None
    return (t, speed, rpm, 0, gear, cue)


TRIP1_GPS_FIXES = 60  # one a second


def trip1_readings() -> list[tuple]:
    rows = []
    for k in range(120):  # OBD every 0.5 s, rpm and speed at the same time
        t = k / 2
        rows += [(t, "rpm", 3000.0 + k, "obd"), (t, "speed_kmh", 36.0 + k / 10, "obd")]
    for k in range(TRIP1_GPS_FIXES):  # GPS once a second; its speed is outnumbered by OBD's
        rows += [(k + 0.05, "lat_deg", 35.0 + k * 1e-4, "gps"), (k + 0.05, "lon_deg", 139.0 + k * 1e-4, "gps"),
                 (k + 0.05, "speed_kmh", 35.0, "gps")]
    rows.append((12.0, "coolant_c", 80.0, "obd"))
    return rows


@pytest.fixture(scope="module")
def drive():
    return load_log(DRIVE)


@pytest.fixture(scope="module")
def trip_db(tmp_path_factory, drive) -> Path:
    return write_trip_log(tmp_path_factory.mktemp("triplog") / "trip.db", drive)


def write_trip_log(path: Path, drive) -> Path:
    """Trip 1 by hand with GPS, trip 2 the real drive (not ended, no profile, no GPS)."""
    db = new_db(path)
    db.execute("INSERT INTO trips VALUES (1, ?, ?, 'hijet-s500p', 'obd,gps')", (T1_START, T1_START + 60.0))
    db.executemany("INSERT INTO frames VALUES (1, ?, ?, ?, ?, ?, ?)", [trip1_frame(k) for k in range(600)])
    db.executemany("INSERT INTO readings VALUES (1, ?, ?, ?, ?)", trip1_readings())
    db.execute("INSERT INTO trips VALUES (2, ?, NULL, '', 'replay')", (T2_START,))
    readings = [(s.t, ch, s.rpm if ch == "rpm" else s.speed_kmh, "obd")
                for s in drive.samples for ch in s.fresh]
    db.executemany("INSERT INTO readings VALUES (2, ?, ?, ?, ?)", readings)
    db.executemany("INSERT INTO frames VALUES (2, ?, ?, ?, 0, ?, ?)",
                   [(s.t, s.speed_kmh, s.rpm, s.gear, "UP" if (s.rpm or 0) > 2500 else None)
                    for s in drive.samples])
    db.commit()
    db.close()
    return path


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def trapezoid_km(points) -> float:
    """What the fixture's speeds add up to: trapezoids, gaps over 2 s skipped."""
    km = 0.0
    for (ta, va), (tb, vb) in zip(points, points[1:]):
        if None not in (va, vb) and 0 < tb - ta <= 2.0:
            km += (va + vb) / 2 * (tb - ta) / 3600
    return km


# -- keidash trips ---------------------------------------------------------------------------
def test_trips_lists_both_trips(trip_db, drive, capsys, utc):
    assert reading.trips_main(str(trip_db)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4  # header, two trips and the note on their dates
    one = lines[1].split()
    # trip 1 by hand: 29.9 s at 10 m/s + 0.1 s from 10 to 20 m/s + 29.9 s at 20 m/s = 898.5 m
    assert one[:4] == ["1", "2026-01-01", "00:00?", "0:01:00"]  # a v1 log: no date was confirmed
    assert one[4:8] == ["0.9", f"{0.8985 / 1.609344:.1f}", "72", "hijet-s500p"]
    two = lines[2].split()
    km = trapezoid_km([(s.t, s.speed_kmh) for s in drive.samples])
    assert two[0] == "2" and two[1:3] == ["2026-01-01", "01:00?"]
    assert two[3] == reading.format_duration(drive.samples[-1].t)  # not ended: as far as the log goes
    assert float(two[4]) == pytest.approx(km, abs=0.05) and km > 0.5
    assert float(two[6]) == pytest.approx(max(s.speed_kmh for s in drive.samples), abs=0.5)
    assert lines[2].endswith("- (not ended)")
    assert lines[3] == reading.UNCONFIRMED_NOTE


def _dated_trips(tmp_path) -> Path:
    """A trip log written by keidash's writer: trip 1 on a clock NTP had synchronized (its
    timesyncd file there), trip 2, a day later, on a clock nothing confirmed (a Pi booted
    without network, its GPS's positions logged but no time of it that agreed). Both have a
    GPS fix every second."""
    from keidash.dashstate import DashState
    from keidash.readings import Reading
    from keidash.triplog.clock import WallClock
    from keidash.triplog.writer import TripLog
    path = tmp_path / "trips.db"
    synchronized = tmp_path / "synchronized"
    for start, confirmed in ((T1_START, True), (T1_START + 86400.0, False)):
        if confirmed:
            synchronized.touch()
        elif synchronized.exists():
            synchronized.unlink()
        log = TripLog(str(path), profile="hijet-s500p", sources="obd", clock=lambda: start, mono=lambda: 0.0,
                      keep_days=365, max_mb=None, commit_every_s=0.02, retry_s=0.02,
                      wall=WallClock(lambda: start, lambda: 0.0, synchronized=str(synchronized)))
        for k in range(121):  # 60 s at 36 km/h, a reading and a frame every 0.5 s
            log.readings([Reading(k / 2, "speed_kmh", 36.0, "obd")] + ([
                Reading(k / 2, "lat_deg", 36.0 + k * 1e-5, "gps"), Reading(k / 2, "lon_deg", 138.0, "gps")]
                if k % 2 == 0 else []), k / 2)
            log.frame(DashState(k / 2, "Hijet", 3000.0, False, 36.0, 3, None, 5500.0, 6500.0, 8000.0), k / 2)
        log.close()
    return path


def test_keidash_trips_marks_a_date_no_clock_confirmed(tmp_path):
    """keidash trips on a trip log the dash wrote: the trip dated by an NTP-synchronized clock is
    listed as it was; the other's date gets a "?" and one line under the table says what it means
    (and that such a trip is never deleted by age). A log of confirmed trips only has no note."""
    path = _dated_trips(tmp_path)
    env = {**__import__("os").environ, "TZ": "UTC"}
    listed = subprocess.run([sys.executable, "-m", "keidash", "trips", str(path)], capture_output=True,
                            text=True, timeout=60, env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 4, listed.stdout
    assert lines[1].split()[:4] == ["1", "2026-01-01", "00:00", "0:01:00"]
    assert lines[2].split()[:4] == ["2", "2026-01-02", "00:00?", "0:01:00"]
    assert lines[3] == ("? the date is the Pi's clock, not confirmed by NTP or the GPS, and may be wrong: "
                        "such a trip is never deleted by age, only by the size limit")
    assert lines[0].index("duration") + len("duration") == lines[1].index("0:01:00") + len("0:01:00")
    assert lines[2].index("0:01:00") == lines[1].index("0:01:00")  # the mark shifts no column

    db = sqlite3.connect(path)
    db.execute("DELETE FROM trips WHERE id = 2")
    db.commit()
    db.close()
    listed = subprocess.run([sys.executable, "-m", "keidash", "trips", str(path)], capture_output=True,
                            text=True, timeout=60, env=env)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2, listed.stdout
    assert "?" not in listed.stdout


def test_the_report_says_when_a_trips_date_was_not_confirmed(tmp_path):
    path = _dated_trips(tmp_path)
    pages = {}
    for trip in ("1", "2"):
        out = tmp_path / f"trip{trip}.html"
        made = subprocess.run([sys.executable, "-m", "keidash", "report", str(path), "--trip", trip, "-o", str(out)],
                              capture_output=True, text=True, timeout=120,
                              env={**__import__("os").environ, "TZ": "UTC"})
        assert made.returncode == 0, made.stderr
        pages[trip] = out.read_text()
    assert "<td>2026-01-01 00:00</td>" in pages["1"] and "not confirmed" not in pages["1"]
    assert f"<td>2026-01-02 00:00?<br>{reading.UNCONFIRMED_NOTE}</td>" in pages["2"]


def test_summary_distance_is_the_integrated_speed(trip_db):
    db = reading.open_trip_log(trip_db)
    try:
        trip = reading.find_trip(db, 1)
        summary = reading.summarise(trip, reading.frames(db, 1))
    finally:
        db.close()
    assert summary.distance_km == pytest.approx(0.8985, abs=1e-9)
    assert summary.max_speed_kmh == 72.0
    assert summary.duration_s == pytest.approx(59.9)  # the last frame's t: the log's own clock


def test_a_clock_set_mid_drive_does_not_stretch_the_trip(trip_db, tmp_path):
    """A Pi without an RTC boots on an old time and NTP or the GPS sets it mid-drive: the trip's
    UNIX end is then an hour after its start, but its t column (monotonic) says 60 s."""
    db = sqlite3.connect(trip_db)
    try:
        rows = db.execute("SELECT started_unix, ended_unix FROM trips WHERE id = 1").fetchone()
        trip = reading.Trip(1, rows[0], rows[1] + 3600.0, "hijet-s500p", "obd,gps")
    finally:
        db.close()
    conn = reading.open_trip_log(str(trip_db))
    try:
        summary = reading.summarise(trip, reading.frames(conn, 1), reading.channel_readings(conn, 1, "speed_kmh"))
    finally:
        conn.close()
    assert summary.duration_s == pytest.approx(59.9) and summary.distance_km == pytest.approx(0.8985)


def test_the_record_that_saw_more_of_the_drive_gives_its_distance():
    """Frames for the first 10 s only (a replay played as fast as it goes draws few frames):
    one source's speed readings, which cover the drive, give the distance; never two sources
    added up, and a source with fewer readings does not outvote the one that covers the trip."""
    trip = reading.Trip(1, T1_START, None, "", "replay")
    frames_ = [reading.Frame(t / 10, 36.0, 2000.0, False, 2, None) for t in range(100)]
    obd = [(t / 2, 36.0, "obd") for t in range(241)]  # 120 s at 36 km/h: 1.2 km
    gps = [(t * 30.0 + 0.5, 40.0, "gps") for t in range(4)]  # 30 s apart: no step within MAX_GAP_S
    summary = reading.summarise(trip, frames_, sorted(obd + gps))
    assert summary.distance_km == pytest.approx(1.2)
    assert summary.duration_s == pytest.approx(120.0) and summary.max_speed_kmh == 36.0


def replayed_trip(tmp_path, speed: str) -> tuple[list[str], Path]:
    """A 120 s drive written as a plain CSV, replayed through the CLI into a trip log at
    ``speed``; the `keidash trips` row of it, split, and the trip log."""
    log = tmp_path / f"drive-{speed}.csv"
    with open(log, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["time", "rpm", "speed_kmh"])
        for k in range(1201):  # 10 Hz; 0 -> 60 km/h over 60 s, then 60 km/h
            t = k / 10
            kmh = min(t, 60.0)
            out.writerow([f"{t:.1f}", f"{800 + 40 * kmh:.0f}", f"{kmh:.2f}"])
    db = tmp_path / f"trips-{speed}.db"
    env = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    cmd = [sys.executable, "-m", "keidash"]
    played = subprocess.run([*cmd, "replay", str(log), "--speed", speed, "--headless", "--log", str(db)],
                            capture_output=True, text=True, timeout=300, env={**__import__("os").environ, **env})
    assert played.returncode == 0, played.stderr
    listed = subprocess.run([*cmd, "trips", str(db)], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.splitlines()[1].split(), db


@pytest.mark.parametrize("speed", ["0", "20"])
def test_a_replay_at_any_speed_lists_the_drive_it_played(tmp_path, speed):
    """Played 20 times real time (6 s on the wall clock) or as fast as it goes (one frame),
    the trip is the drive's 2 minutes and 1.5 km (30 s at 60 km/h ... : 0.5 + 1.0 km): its length
    runs to its last speed reading on the trip's own clock (or a frame at most MAX_GAP_S after it),
    whatever the wall clock did."""
    from keidash.cab.trip import MAX_GAP_S
    row, db = replayed_trip(tmp_path, speed)
    conn = sqlite3.connect(db)
    try:
        first, last = conn.execute("SELECT min(t), max(t) FROM readings WHERE channel = 'speed_kmh'").fetchone()
    finally:
        conn.close()
    assert last - first == pytest.approx(120.0, abs=0.2)  # the drive's own time, not the seconds it played
    assert reading.format_duration(last) <= row[3] <= reading.format_duration(last + MAX_GAP_S)
    assert float(row[4]) == pytest.approx(1.5, abs=0.05)  # km: 0-60 km/h in 60 s, then 60 s at 60
    assert float(row[6]) == pytest.approx(60.0, abs=1.0)  # top km/h


def test_an_empty_trip_log_lists_no_trips(tmp_path, capsys):
    new_db(tmp_path / "empty.db").close()
    assert reading.trips_main(str(tmp_path / "empty.db")) == 0
    assert "no trips recorded yet" in capsys.readouterr().out


def test_reads_while_the_dash_is_writing(trip_db, tmp_path, capsys):
    path = tmp_path / "live.db"
    writer = new_db(path)
    writer.execute("INSERT INTO trips VALUES (1, ?, NULL, '', 'obd')", (T1_START,))
    writer.executemany("INSERT INTO frames VALUES (1, ?, 36.0, 3000.0, 0, 2, NULL)", [(k / 10,) for k in range(11)])
    writer.commit()
    writer.execute("INSERT INTO frames VALUES (1, 1.1, 36.0, 3000.0, 0, 2, NULL)")  # a write still open
    try:
        assert reading.trips_main(str(path)) == 0
    finally:
        writer.rollback()
        writer.close()
    assert "0:00:01" in capsys.readouterr().out.splitlines()[1]  # the committed second only


# -- errors: one sentence each -----------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^no trip log at .*nothere\.db: check the path"):
        reading.trips_main(str(tmp_path / "nothere.db"))


def test_not_a_database(tmp_path):
    (tmp_path / "notes.db").write_text("this is not a database\n")
    with pytest.raises(ConfigError, match="is not a keidash trip log \\(not an SQLite database\\)"):
        reading.trips_main(str(tmp_path / "notes.db"))


def test_a_database_without_the_tables(tmp_path):
    db = sqlite3.connect(tmp_path / "other.db")
    db.execute("CREATE TABLE something (x)")
    db.close()
    with pytest.raises(ConfigError, match="is not a keidash trip log \\(it has no frames table\\)"):
        reading.trips_main(str(tmp_path / "other.db"))


def test_a_damaged_database(tmp_path, trip_db):
    data = bytearray(trip_db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page overwritten, the header intact
    (tmp_path / "damaged.db").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="is damaged or not a keidash trip log"):
        reading.trips_main(str(tmp_path / "damaged.db"))


def test_empty_db_has_nothing_to_report(tmp_path):
    new_db(tmp_path / "empty.db").close()
    with pytest.raises(ConfigError, match=r"^no trips recorded in .*empty\.db yet$"):
        report.report_main(str(tmp_path / "empty.db"), "last", str(tmp_path / "r.html"))
    with pytest.raises(ConfigError, match="no trips recorded"):
        export.export_main(str(tmp_path / "empty.db"), "last", str(tmp_path / "r.csv"))


def test_unknown_trip_id(trip_db, tmp_path):
    with pytest.raises(ConfigError, match=r"^no trip 7 in .*; its trips are 1, 2 \(see keidash trips\)$"):
        report.report_main(str(trip_db), "7", str(tmp_path / "r.html"))
    with pytest.raises(ConfigError, match="trip must be a trip number or 'last', not 'first'"):
        export.export_main(str(trip_db), "first", str(tmp_path / "r.csv"))


def test_newer_schema(tmp_path):
    new_db(tmp_path / "future.db", version=3).close()
    with pytest.raises(KeidashError, match=r"written by a newer keidash \(trip-log schema 3, this one reads up to 2\)"):
        reading.trips_main(str(tmp_path / "future.db"))


def test_locked_file(tmp_path, monkeypatch):
    path = tmp_path / "locked.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = DELETE")  # a WAL file never locks readers out; a rollback journal can
    db.executescript(SCHEMA)
    db.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(reading, "LOCK_WAIT_S", 0.05)
    try:
        with pytest.raises(KeidashError, match="is locked by another program: try again"):
            reading.trips_main(str(path))
    finally:
        db.execute("ROLLBACK")
        db.close()


def test_wrong_output_kinds(trip_db, tmp_path):
    with pytest.raises(ConfigError, match="name a .html or .png file"):
        report.report_main(str(trip_db), "1", str(tmp_path / "r.pdf"))
    with pytest.raises(ConfigError, match="name a .csv or .gpx file"):
        export.export_main(str(trip_db), "1", str(tmp_path / "r.kml"))


# -- keidash report --------------------------------------------------------------------------
def gear_table(page: str) -> dict[str, float]:
    table = re.search(r'<table class="gears">(.*?)</table>', page, re.S).group(1)
    return {g: float(s) for g, s in re.findall(r'<tr><td>([^<]+)</td><td class="s">([\d.]+)</td>', table)}


def test_report_html_of_the_hand_made_trip(trip_db, tmp_path):
    out = tmp_path / "trip1.html"
    assert report.report_main(str(trip_db), "1", str(out)) == 0
    page = out.read_text(encoding="utf-8")
    svg = re.search(r"<svg .*?</svg>", page, re.S).group(0)
    ET.fromstring(svg)  # well-formed
    assert len(re.findall(r'class="cue cue-up"', svg)) == 1  # one UP cue coming on, held for ten frames
    assert len(re.findall(r'class="cue cue-down"', svg)) == 1
    for line in ("speed", "rpm", "gear"):
        assert f'<path class="{line}" d="M' in svg
    gears = gear_table(page)
    assert gears == pytest.approx({"1": 10.0, "2": 15.0, "3": 20.0, "4": 14.9})  # the last frame lasts no time
    assert "0.90 km (0.56 miles)" in page and "72 km/h" in page
    over = re.search(r'<table class="over-rev">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r"<tr><td>[^<]*</td><td>([\d.]+)</td><td>(\w+)</td><td>(\d+)</td>", over) == [("1.0", "1", "7000")]
    # 1000 rpm in 3rd at 72 km/h is not the gear's rpm (8145 on the S500P): the clutch is down, not lugging
    assert "<p>No lugging events.</p>" in page


def test_report_of_the_last_trip_is_the_real_drive(trip_db, drive, tmp_path):
    out = tmp_path / "last.html"
    report.report_main(str(trip_db), "last", str(out))
    page = out.read_text(encoding="utf-8")
    assert "<h1>Trip 2</h1>" in page
    seconds_in = {}
    for a, b in zip(drive.samples, drive.samples[1:]):
        if 0 < b.t - a.t <= 2.0:
            seconds_in[a.gear] = seconds_in.get(a.gear, 0.0) + b.t - a.t
    gears = gear_table(page)
    assert gears["2"] == pytest.approx(seconds_in[2], abs=0.05) and seconds_in[2] > 5
    assert gears["unknown"] == pytest.approx(seconds_in[None], abs=0.05)
    ups = sum(1 for a, b in zip((None, *drive.samples), drive.samples)
              if (b.rpm or 0) > 2500 and (a is None or (a.rpm or 0) <= 2500))
    assert len(re.findall('class="cue cue-up"', page)) == ups > 0
    assert "keidash's defaults" in page  # the trip names no profile


def test_lugging_needs_3rd_gear_and_motion():
    f = reading.Frame
    frames = [f(0.0, 30.0, 1000.0, False, 2, None), f(0.1, 30.0, 1000.0, False, 3, None),
              f(0.2, 2.0, 1000.0, False, 3, None), f(0.3, 30.0, 1000.0, True, 4, None),
              f(0.4, 30.0, 1000.0, True, 4, None), f(3.0, 30.0, 1000.0, True, 4, None)]
    events = reading.lugging(frames, 1456.25)
    # 3rd at 30 km/h, then 4th (estimated rpm) until the 2.6 s gap ends it, then a lone frame after the gap
    assert [(round(e.start_t, 1), round(e.duration_s, 1), e.gear, e.estimated) for e in events] == [
        (0.1, 0.1, 3, False), (0.3, 0.1, 4, True), (3.0, 0.0, 4, True)]


def test_report_png(trip_db, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the keidash[report] extra) is not installed")
    out = tmp_path / "trip1.png"
    assert report.report_main(str(trip_db), "1", str(out)) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def png_texts(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG file (keyword -> text)."""
    data, texts, at = path.read_bytes(), {}, 8
    while at < len(data):
        length, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        if kind == b"tEXt":
            keyword, _, text = data[at + 8:at + 8 + length].partition(b"\0")
            texts[keyword.decode("latin-1")] = text.decode("latin-1")
        at += 12 + length
    return texts


def test_the_png_report_marks_a_date_no_clock_confirmed(tmp_path, utc, capsys):
    """keidash report FILE.png through the CLI on a trip log keidash's writer wrote: the title (built by
    report.png_title, drawn above the chart and stored as the PNG's Title, read back here) gives the start as
    keidash trips does, "?" and the note under it for the trip nothing dated, neither for the NTP-dated one."""
    pytest.importorskip("matplotlib", reason="matplotlib (the keidash[report] extra) is not installed")
    from keidash.cli import main
    path = _dated_trips(tmp_path)
    titles = {}
    for trip in ("1", "2"):
        out = tmp_path / f"trip{trip}.png"
        assert main(["report", str(path), "--trip", trip, "-o", str(out)]) == 0, capsys.readouterr().err
        titles[trip] = png_texts(out)["Title"]
        db = reading.open_trip_log(path)
        chosen = reading.find_trip(db, trip, str(path))
        built = report.build_report(chosen, reading.frames(db, chosen.id), reading.channel_readings(db, chosen.id, "speed_kmh"))
        db.close()
        assert titles[trip] == report.png_title(built)
    assert titles["1"].startswith("trip 1, 2026-01-01 00:00: 0.60 km, top 36 km/h")
    assert len(titles["1"].splitlines()) == 2 and "?" not in titles["1"]
    first, _, note = titles["2"].splitlines()
    assert first.startswith("trip 2, 2026-01-02 00:00?: 0.60 km") and note == reading.UNCONFIRMED_NOTE


def test_report_png_without_matplotlib_says_how_to_install_it(trip_db, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"PNG reports need matplotlib: pip install 'keidash\[report\]'"):
        report.report_main(str(trip_db), "1", str(tmp_path / "trip1.png"))
    assert not (tmp_path / "trip1.png").exists()


# -- keidash export --------------------------------------------------------------------------
def test_export_csv_one_row_per_frame_with_positions(trip_db, tmp_path):
    out = tmp_path / "trip1.csv"
    assert export.export_main(str(trip_db), "1", str(out)) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 600
    assert list(rows[0]) == ["t", "speed_kmh", "rpm", "rpm_estimated", "gear", "cue", "lat_deg", "lon_deg"]
    for k in (0, 55, 84, 307, 599):
        t, speed, rpm, est, gear, cue = trip1_frame(k)
        row = rows[k]
        assert (float(row["t"]), float(row["speed_kmh"]), float(row["rpm"]), row["rpm_estimated"], int(row["gear"]),
                row["cue"]) == (t, speed, rpm, "0", gear, cue or "")
        fix = min(range(TRIP1_GPS_FIXES), key=lambda n: abs(n + 0.05 - t))  # the fixture's fixes at n + 0.05 s
        assert float(row["lat_deg"]) == pytest.approx(35.0 + fix * 1e-4, abs=1e-7)
        assert float(row["lon_deg"]) == pytest.approx(139.0 + fix * 1e-4, abs=1e-7)


def test_export_csv_without_positions(trip_db, drive, tmp_path):
    out = tmp_path / "trip2.csv"
    export.export_main(str(trip_db), "2", str(out))
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["t", "speed_kmh", "rpm", "rpm_estimated", "gear", "cue"]
    assert len(rows) == 1 + len(drive.samples)
    assert [r[4] for r in rows[1:]] == ["" if s.gear is None else str(s.gear) for s in drive.samples]


def test_export_gpx(trip_db, tmp_path):
    out = tmp_path / "trip1.gpx"
    assert export.export_main(str(trip_db), "1", str(out)) == 0
    ns = {"g": export.GPX_NS, "x": export.GPXTPX_NS}
    root = ET.parse(out).getroot()
    points = root.findall("g:trk/g:trkseg/g:trkpt", ns)
    assert len(points) == TRIP1_GPS_FIXES
    assert float(points[3].get("lat")) == pytest.approx(35.0003) and float(points[3].get("lon")) == pytest.approx(139.0003)
    # a version-1 log confirmed no date: no point has a time (the dated case: test_export_times_only_a_confirmed_date)
    assert root.findall(".//g:time", ns) == [] and root.find("g:trk/g:desc", ns).text == export.UNTIMED
    speeds = [float(p.find("g:extensions/x:TrackPointExtension/x:speed", ns).text) for p in points]
    assert speeds[0] == 10.0 and speeds[-1] == 20.0  # the dash's 36 and 72 km/h, in m/s


def test_export_times_only_a_confirmed_date(tmp_path, capsys):
    """keidash export through the CLI on a trip log keidash's writer wrote: the GPX of the trip an NTP-synchronized
    clock dated has a UTC time on each point; the one of the trip nothing confirmed has none (its start may be
    1970 or the last shutdown), says why in its <desc> and on the terminal. The CSV holds no date to mark."""
    from keidash.cli import main
    path = _dated_trips(tmp_path)
    ns = {"g": export.GPX_NS}
    tracks = {}
    for trip in ("1", "2"):
        out = tmp_path / f"trip{trip}.gpx"
        assert main(["export", str(path), "--trip", trip, "-o", str(out)]) == 0
        tracks[trip] = (ET.parse(out).getroot(), capsys.readouterr().out.splitlines())
    dated, said = tracks["1"]
    points = dated.findall("g:trk/g:trkseg/g:trkpt", ns)
    assert len(points) == 61 and dated.find("g:trk/g:desc", ns) is None
    assert [p.find("g:time", ns).text for p in (points[0], points[60])] == ["2026-01-01T00:00:00.000Z",
                                                                             "2026-01-01T00:01:00.000Z"]
    assert said == [f"keidash: wrote trip 1 (61 track points) to {tmp_path / 'trip1.gpx'}"]
    undated, said = tracks["2"]
    points = undated.findall("g:trk/g:trkseg/g:trkpt", ns)
    assert len(points) == 61 and float(points[60].get("lat")) == pytest.approx(36.0012)
    assert undated.findall(".//g:time", ns) == []
    assert undated.find("g:trk/g:desc", ns).text == export.UNTIMED
    assert said == [f"keidash: wrote trip 2 (61 track points) to {tmp_path / 'trip2.gpx'}",
                    "keidash: the trip's date is the Pi's clock, not confirmed by NTP or the GPS, so its track points "
                    "have no time"]

    out = tmp_path / "trip2.csv"
    assert main(["export", str(path), "--trip", "2", "-o", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["t", "speed_kmh", "rpm", "rpm_estimated", "gear", "cue", "lat_deg", "lon_deg"]
    assert rows[1][0] == "0.000" and rows[-1][0] == "60.000"  # seconds since the trip started, no date


def test_export_gpx_of_a_trip_without_gps(trip_db, tmp_path):
    with pytest.raises(ConfigError, match="^no GPS position in trip 2$"):
        export.export_main(str(trip_db), "last", str(tmp_path / "trip2.gpx"))


# -- replay of a trip log --------------------------------------------------------------------
def test_replay_detects_and_reads_the_last_trip(trip_db, drive):
    log = load_log(trip_db)
    assert log.format == "triplog"
    assert len(log.samples) == len(drive.samples)
    for got, wrote in zip(log.samples, drive.samples):
        assert got.t == pytest.approx(wrote.t, abs=1e-6)
        assert (got.speed_kmh, got.rpm, got.fresh, got.gear) == (wrote.speed_kmh, wrote.rpm, wrote.fresh, None)


def test_replay_of_a_named_trip_keeps_the_main_speed_source(trip_db):
    from keidash.replay.triplog import load_trip
    log = load_trip(trip_db, 1)
    # OBD rpm and speed every 0.5 s, both fresh; GPS speed (outnumbered) left out
    assert len(log.samples) == 120
    assert all(s.fresh == ("rpm", "speed_kmh") for s in log.samples)
    assert [(s.t, s.rpm, s.speed_kmh) for s in log.samples[:3]] == [(0.0, 3000.0, 36.0), (0.5, 3001.0, 36.1),
                                                                     (1.0, 3002.0, 36.2)]
    assert "speed_kmh from obd" in log.time_base


def test_replay_holds_the_channel_not_measured():
    from keidash.replay.triplog import trip_samples
    samples = trip_samples([(0.0, "rpm", 900.0), (0.5, "speed_kmh", 10.0), (1.0, "rpm", 950.0),
                            (1.0, "speed_kmh", 12.0)])
    assert [(s.t, s.speed_kmh, s.rpm, s.fresh) for s in samples] == [
        (0.0, None, 900.0, ("rpm",)), (0.5, 10.0, 900.0, ("speed_kmh",)), (1.0, 12.0, 950.0, ("rpm", "speed_kmh"))]


def read_whole(path):
    """The last trip of a trip log as the replay read it before it streamed: every rpm and speed
    reading fetched into Python, the main source's picked, all sorted, grouped by time."""
    from collections import Counter

    from keidash.replay.log import Sample, make_log
    db = sqlite3.connect(path)
    try:
        trip = db.execute("SELECT max(id) FROM trips").fetchone()[0]
        by_channel = {ch: db.execute("SELECT t, value, source FROM readings WHERE trip = ? AND channel = ? "
                                     "ORDER BY t", (trip, ch)).fetchall() for ch in ("rpm", "speed_kmh")}
    finally:
        db.close()
    picked = {}
    for ch, rows in by_channel.items():
        counts = Counter(src for _, _, src in rows)
        picked[ch] = next(src for _, _, src in rows if counts[src] == max(counts.values()))
    events = sorted((t, ch, v) for ch, rows in by_channel.items() for t, v, src in rows if src == picked[ch])
    samples, latest, k = [], {}, 0
    while k < len(events):
        t, fresh = events[k][0], set()
        while k < len(events) and events[k][0] == t:
            latest[events[k][1]] = events[k][2]
            fresh.add(events[k][1])
            k += 1
        samples.append(Sample(t, latest.get("speed_kmh"), latest.get("rpm"), None,
                              tuple(ch for ch in ("rpm", "speed_kmh") if ch in fresh)))
    used = ", ".join(f"{ch} from {src}" for ch, src in picked.items())
    return make_log(str(path), "triplog", samples, Counter(),
                    f"trip {trip}: times as recorded (s since the trip started); {used}")


def test_replay_of_a_trip_the_dash_wrote_reads_the_samples_it_read_before_streaming(tmp_path, drive):
    """A real drive written by keidash's own writer, with a GPS speed (outnumbered), a coolant
    temperature and an rpm read twice at one time among its readings: the streamed replay gives,
    sample by sample, what fetching every row and sorting them in Python gave."""
    from keidash.readings import Reading
    from keidash.triplog.writer import TripLog
    path = tmp_path / "trips.db"
    log = TripLog(str(path), profile="hijet-s500p", sources="obd,gps", clock=lambda: T1_START,
                  mono=lambda: 0.0, keep_days=None, max_mb=None, commit_every_s=0.02, retry_s=0.02)
    readings = [Reading(s.t, ch, s.rpm if ch == "rpm" else s.speed_kmh, "obd")
                for s in drive.samples for ch in s.fresh]
    readings += [Reading(k + 0.05, "speed_kmh", 30.0 + k % 7, "gps") for k in range(int(drive.duration_s))]
    readings += [Reading(k * 10.0, "coolant_c", 80.0, "obd") for k in range(int(drive.duration_s // 10))]
    twice = drive.samples[100]
    readings += [Reading(twice.t, "rpm", twice.rpm + 50.0, "obd")]  # a second rpm at one time: the larger wins
    readings.sort(key=lambda r: r.t)
    for k in range(0, len(readings), 500):
        log.readings(readings[k:k + 500], readings[min(k + 499, len(readings) - 1)].t)
    log.close()
    streamed, whole = load_log(path), read_whole(path)
    assert len(streamed.samples) == len(whole.samples) == len(drive.samples)
    for k, (got, want) in enumerate(zip(streamed.samples, whole.samples)):
        assert got == want, f"sample {k}"
    assert (streamed.time_base, streamed.refresh_s) == (whole.time_base, whole.refresh_s)
    assert "speed_kmh from obd" in streamed.time_base
    assert streamed.samples[100].rpm == twice.rpm + 50.0
    assert [(s.t, s.speed_kmh, s.fresh) for s in streamed.samples[99:102:2]] == [
        (pytest.approx(w.t, abs=1e-9), w.speed_kmh, w.fresh) for w in drive.samples[99:102:2]]


def _long_trip_log(path: Path, samples: int) -> Path:
    """One trip of ``samples`` times, an rpm and a speed reading from OBD at each (keidash's schema)."""
    from keidash.triplog.writer import migrate
    db = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(db)
        db.execute("BEGIN")
        db.execute("INSERT INTO trips (id, started_unix, profile, sources) VALUES (1, ?, '', 'obd')", (T1_START,))
        db.executemany("INSERT INTO readings VALUES (1, ?, ?, ?, 'obd')",
                       ((i * 0.1, ch, v) for i in range(samples)
                        for ch, v in (("rpm", 2000.0 + i % 1000), ("speed_kmh", 40.0 + i % 7))))
        db.execute("COMMIT")
    finally:
        db.close()
    return path


def test_a_long_trip_is_read_into_columns_not_fetched_whole(tmp_path):
    """A trip's readings come from SQLite's cursor straight into the log's columns (26 bytes a
    sample): fetching them all into Python rows and sorting them took about 650 bytes a sample at the
    peak. The cost of a sample is the difference between a short and a long trip, so the
    interpreter's and the imports' memory cancel out (tracemalloc counts Python's allocations;
    SQLite's own page cache is bounded, 2 MB by default)."""
    from memory import bytes_per_row
    held_per_sample, peak_per_sample = bytes_per_row(
        lambda samples: _long_trip_log(tmp_path / f"trips-{samples}.db", samples))
    assert load_log(_long_trip_log(tmp_path / "short.db", 10)).samples[-1].fresh == ("rpm", "speed_kmh")
    assert held_per_sample < 40, f"{held_per_sample:.0f} bytes a sample held"
    assert peak_per_sample < 120, f"{peak_per_sample:.0f} bytes a sample at the peak"


def test_a_reading_that_is_not_a_number_is_a_bad_row_of_the_replay(tmp_path):
    """Another program's rows in a trip log (text where a number belongs, an infinity: keidash's
    writer drops both) are counted and skipped as bad rows, as every log reader does, and the
    replay plays the rest (it was a ValueError traceback)."""
    db = new_db(tmp_path / "odd.db")
    db.execute("INSERT INTO trips VALUES (1, ?, ?, '', 'obd')", (T1_START, T1_START + 5))
    db.executemany("INSERT INTO readings VALUES (1, ?, ?, ?, 'obd')",
                   [(0.0, "rpm", 900.0), (0.0, "speed_kmh", 0.0), (1.0, "rpm", "fast"),
                    (1.0, "speed_kmh", 5.0), (2.0, "rpm", 1500.0), (2.0, "speed_kmh", float("inf")),
                    (3.0, "rpm", 1600.0), (3.0, "speed_kmh", 12.0)])
    db.commit()
    db.close()
    out = tmp_path / "estimates.csv"
    played = subprocess.run([sys.executable, "-m", "keidash", "replay", str(tmp_path / "odd.db"), "--headless",
                             "--estimates", str(out)], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"})
    assert played.returncode == 0, played.stderr
    assert "Traceback" not in played.stderr
    assert "2 bad rows skipped (2 number)" in played.stdout + played.stderr
    log = load_log(tmp_path / "odd.db")
    assert [(s.t, s.rpm, s.speed_kmh, s.fresh) for s in log.samples] == [
        (0.0, 900.0, 0.0, ("rpm", "speed_kmh")), (1.0, 900.0, 5.0, ("speed_kmh",)), (2.0, 1500.0, 5.0, ("rpm",)),
        (3.0, 1600.0, 12.0, ("rpm", "speed_kmh"))]
    with open(out, newline="") as f:
        assert len(list(csv.DictReader(f))) == 4


def test_replay_of_a_trip_without_rpm_or_speed(tmp_path):
    db = new_db(tmp_path / "cold.db")
    db.execute("INSERT INTO trips VALUES (1, ?, ?, '', 'obd')", (T1_START, T1_START + 5))
    db.execute("INSERT INTO readings VALUES (1, 0.0, 'coolant_c', 20.0, 'obd')")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="trip 1 holds no rpm or speed readings"):
        load_log(tmp_path / "cold.db")


def test_replay_errors_are_the_trip_log_sentences(tmp_path):
    new_db(tmp_path / "future.db", version=3).close()
    with pytest.raises(KeidashError, match="newer keidash"):
        load_log(tmp_path / "future.db")
    new_db(tmp_path / "empty.db").close()
    with pytest.raises(ConfigError, match="no trips recorded"):
        load_log(tmp_path / "empty.db")


def test_reading_never_writes_the_trip_log(trip_db, tmp_path):
    copy = tmp_path / "copy.db"
    copy.write_bytes(trip_db.read_bytes())
    before = copy.read_bytes()
    reading.trips_main(str(copy))
    export.export_main(str(copy), "1", str(tmp_path / "t.csv"))
    load_log(copy)
    assert copy.read_bytes() == before  # (SQLite may leave its -wal and -shm files beside it)


# -- the report as an owner reads it (issue 14, point 9) ------------------------------------------

def stop_and_lug_frame(k: int) -> tuple:
    """10 Hz, hijet-s500p: 5th at 70 km/h; a stop from 27 to 3 km/h with 5th still shown at 811 rpm
    (the clutch down); stopped in N; a real lug in 4th at 18-20 km/h, rpm coupled to the wheels;
    coasting in 4th at idle (clutch down); 1 s past the red line in 2nd; cruising."""
    t = k / 10
    if t < 10:
        return (t, 70.0, 70 * 50.9955, 0, 5, None)
    if t < 16:
        return (t, 27.0 - 4.0 * (t - 10), 811.0, 0, 5, "DOWN")
    if t < 20:
        return (t, 0.0, 850.0, 0, 0, None)
    if t < 25:
        speed = 18.0 + 0.4 * (t - 20)
        return (t, speed, speed * 68.7271, 0, 4, "DOWN")
    if t < 28:
        return (t, 20.0, 850.0, 0, 4, None)
    if t < 29:
        return (t, 36.0, 36 * 164.189, 0, 2, "UP")
    return (t, 50.0, 50 * 68.7271, 0, 4, None)


def test_a_stop_is_not_lugging_and_the_chart_marks_what_the_counts_say(tmp_path):
    path = tmp_path / "trip.db"
    db = new_db(path)
    db.execute("INSERT INTO trips VALUES (1, ?, ?, 'hijet-s500p', 'obd')", (T1_START, T1_START + 40.0))
    db.executemany("INSERT INTO frames VALUES (1, ?, ?, ?, ?, ?, ?)", [stop_and_lug_frame(k) for k in range(400)])
    db.commit()
    db.close()
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "keidash", "report", str(path), "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    svg = re.search(r"<svg .*?</svg>", page, re.S).group(0)
    ET.fromstring(svg)
    over = int(re.search(r"<h2>Over-rev \(above \d+ rpm\): (\d+)</h2>", page).group(1))
    lugs = int(re.search(r"<h2>Lugging \(below \d+ rpm in 3rd and up, moving\): (\d+)</h2>", page).group(1))
    # the stop (5th at 811 rpm, braking) and the coast at idle are not lugging; the pull in 4th is
    assert (over, lugs) == (1, 1)
    lug = re.search(r'<table class="lugging">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r"<tr><td>[^<]*</td><td>([\d.]+)</td><td>(\w+)</td>", lug) == [("5.0", "4")]
    # one mark per event listed, in the red line's and the lugging limit's colours
    assert len(re.findall(r'class="event over-rev"', svg)) == over
    assert len(re.findall(r'class="event lugging"', svg)) == lugs
    # the cues are not red: red is the red line's and the over-revs' alone
    cue_fills = set(re.findall(r'class="cue cue-\w+"[^>]*fill="(#\w+)"', svg))
    assert cue_fills and report.REDLINE_COLOUR not in cue_fills
    # a legend names every line and mark
    legend = re.search(r'<g class="legend">(.*?)</g>', svg, re.S).group(1)
    assert re.findall(r"<text[^>]*>([^<]+)</text>", legend) == [
        "speed", "rpm", "gear", "red line", "lugging limit", "over-rev", "lugging", "shift up cue", "shift down cue"]
    # the gear axis: N for neutral, then 1..5
    assert re.findall(r'class="gear-tick"[^>]*>([^<]+)</text>', svg) == ["N", "1", "2", "3", "4", "5"]


def test_braking_and_the_clutch_down_are_not_lugging():
    f = reading.Frame
    braking = [f(k / 10, 27.0 - 0.4 * k, 811.0, False, 5, None) for k in range(60)]  # 4 km/h/s
    assert reading.lugging(braking, 1456.25) == []
    idling = [f(k / 10, 20.0, 850.0, False, 4, None) for k in range(30)]
    assert reading.lugging(idling, 1456.25, idle_rpm=850.0) == []
    assert len(reading.lugging(idling, 1456.25)) == 1  # no idle known: low is low
    slipping = [f(k / 10, 6.0, 1300.0, False, 4, None) for k in range(30)]  # 4th shown, launching in 1st
    assert reading.lugging(slipping, 1456.25, 850.0, (279.0, 164.2, 113.1, 68.7, 51.0)) == []
    pulling = [f(k / 10, 18.0, 18 * 68.7, False, 4, None) for k in range(30)]
    assert len(reading.lugging(pulling, 1456.25, 850.0, (279.0, 164.2, 113.1, 68.7, 51.0))) == 1
