"""The trip log (keidash/triplog/writer.py): schema, trips, faults, retention, power cuts.

Faults are simulated without mounts: a full disk by a small ``PRAGMA max_page_count`` set by
an injected connect function, a read-only file system by opening the file with
``?mode=ro``, an unopenable file by a path in a directory that does not exist yet.
The SIGKILL test runs bench/powercut.py's harness 50 times with a 0.1 s commit interval;
the bench runs 500 kills at the default 1 s.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from keidash.dashstate import DashState
from keidash.readings import Reading
from keidash.triplog.writer import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, TRIP_GAP_S, TripLog, migrate

FAST = dict(commit_every_s=0.02, retry_s=0.02)


def wait_for(predicate, timeout=10.0):
    """Poll until predicate() is true; fail after timeout s (a hang, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def rpm(t: float, value: float, source: str = "obd") -> Reading:
    return Reading(t, "rpm", value, source)


def dash(t: float, gear: int | None = 3, cue: str | None = None) -> DashState:
    return DashState(t, "Hijet", 3000.0, True, 42.0, gear, cue, 5500.0, 6500.0, 8000.0)


def rows(path, sql, args=()):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_readings_and_frames_are_stored_relative_to_the_trip_start(tmp_path):
    path = tmp_path / "trips.db"
    now = [1_000_000.0]
    log = TripLog(str(path), profile="hijet-s500p", sources="obd,gps", clock=lambda: now[0],
                  mono=lambda: 500.0, **FAST)
    log.readings([rpm(500.5, 900.0), Reading(501.0, "speed_kmh", 12.5, "gps")], 501.0)
    log.frame(dash(501.0, gear=0, cue="up"), 501.0)
    log.frame(dash(501.2, gear=None), 501.2)
    now[0] = 1_000_123.0
    log.close()
    assert rows(path, "SELECT started_unix, ended_unix, profile, sources FROM trips") == [
        (1_000_000.0, 1_000_123.0, "hijet-s500p", "obd,gps")
    ]
    assert rows(path, "SELECT trip, t, channel, value, source FROM readings ORDER BY t") == [
        (1, 0.5, "rpm", 900.0, "obd"),
        (1, 1.0, "speed_kmh", 12.5, "gps"),
    ]
    frames = rows(path, "SELECT t, speed_kmh, rpm, rpm_estimated, gear, cue FROM frames ORDER BY t")
    assert frames == [
        (1.0, 42.0, 3000.0, 1, 0, "up"),
        (pytest.approx(1.2), 42.0, 3000.0, 1, None, None),
    ]
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]


def test_a_long_backlog_is_written_without_a_copy_of_it(tmp_path):
    """100,000 rows queued (a pause of minutes) are written with little more memory than they take.

    Each row's parameters are made as SQLite takes them: a list of them all, built first, held
    a second copy of the backlog (5-tuples: about 80 % of the queued rows' own size), and
    CPython kept up to 2000 of those tuples of each size for reuse once they were freed.
    """
    path = tmp_path / "trips.db"
    log = TripLog(str(path), commit_every_s=3600.0, mono=lambda: 0.0)
    tracemalloc.start()
    try:
        for second in range(100):
            log.readings([rpm(second + k / 1000, 900.0 + k) for k in range(1000)], float(second))
        queued = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        log.close(timeout=300.0)  # a wait limit for a hang, not a speed claim
        extra = tracemalloc.get_traced_memory()[1] - queued
    finally:
        tracemalloc.stop()
    assert rows(path, "SELECT COUNT(*) FROM readings") == [(100_000,)]
    assert extra < 0.25 * queued, f"writing took {extra / 1e6:.1f} MB more, the rows {queued / 1e6:.1f} MB"


def test_frames_are_logged_at_most_frame_hz(tmp_path):
    path = tmp_path / "trips.db"
    log = TripLog(str(path), frame_hz=10.0, mono=lambda: 0.0, **FAST)
    for i in range(600):  # 10 s at 60 fps
        log.frame(dash(i / 60), i / 60)
    log.close()
    (count,) = rows(path, "SELECT count(*) FROM frames")[0]
    assert 95 <= count <= 101
    times = [t for (t,) in rows(path, "SELECT t FROM frames ORDER BY t")]
    assert min(b - a for a, b in zip(times, times[1:])) > 0.05


def test_a_long_gap_without_readings_starts_a_new_trip(tmp_path):
    path = tmp_path / "trips.db"
    now = [10_000.0]
    log = TripLog(str(path), clock=lambda: now[0], mono=lambda: 0.0, **FAST)
    log.readings([rpm(t, 800.0) for t in (1.0, 2.0, 3.0)], 3.0)
    log.readings([rpm(3.0 + TRIP_GAP_S - 1, 800.0)], 3.0 + TRIP_GAP_S - 1)  # not a gap yet
    wait_for(lambda: log.rows_written == 4)
    parked_until = 3.0 + 2 * TRIP_GAP_S + 100
    now[0] = 10_000.0 + parked_until
    log.readings([rpm(parked_until, 850.0), rpm(parked_until + 0.5, 900.0)], parked_until + 0.5)
    log.close()
    trips = rows(path, "SELECT id, started_unix, ended_unix FROM trips ORDER BY id")
    assert [t[0] for t in trips] == [1, 2]
    assert trips[0][2] == pytest.approx(10_000.0 + 3.0 + TRIP_GAP_S - 1 - 0.5)  # its last reading
    assert trips[1][1] == pytest.approx(now[0] - 0.5)  # its first reading
    assert rows(path, "SELECT t, value FROM readings WHERE trip = 2 ORDER BY t") == [
        (0.0, 850.0), (0.5, 900.0)]
    assert rows(path, "SELECT count(*) FROM readings WHERE trip = 1") == [(4,)]


def test_an_empty_file_and_a_v1_file_open(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    log = TripLog(str(empty), **FAST)
    log.readings([rpm(time.monotonic(), 1.0)], time.monotonic())
    log.close()
    assert rows(empty, "SELECT value FROM readings") == [(1.0,)]

    v1 = tmp_path / "v1.db"  # as keidash before schema v2 wrote it: no application_id
    conn = sqlite3.connect(v1, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in MIGRATIONS[0][1]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO trips (started_unix) VALUES (?)", (time.time(),))
    conn.execute("INSERT INTO readings VALUES (1, 0.0, 'rpm', 700.0, 'obd')")
    assert migrate(conn) == 1
    assert migrate(conn) == 2  # already there: nothing to do
    conn.close()
    log = TripLog(str(v1), **FAST)
    log.readings([rpm(time.monotonic(), 2.0)], time.monotonic())
    log.close()
    assert rows(v1, "SELECT trip, value FROM readings ORDER BY trip") == [(1, 700.0), (2, 2.0)]
    assert rows(v1, "SELECT id, clock_confirmed, bad_values FROM trips") == [(1, 0, 0), (2, 0, 0)]
    assert rows(v1, "PRAGMA user_version") == [(2,)]
    assert rows(v1, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert rows(v1, "PRAGMA integrity_check") == [("ok",)]


def test_a_newer_schema_is_never_written(tmp_path):
    path = tmp_path / "newer.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # keidash's own, from a newer keidash
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("CREATE TABLE future (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    log = TripLog(str(path), **FAST)
    log.readings([rpm(time.monotonic(), 1.0)], time.monotonic())
    wait_for(lambda: log.status() != "")
    assert "written by a newer keidash: not logging" in log.status()
    log.readings([rpm(time.monotonic(), 2.0)], time.monotonic())
    log.close()
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]
    assert rows(path, "SELECT name FROM sqlite_master") == [("future",)]
    assert path.read_bytes() == before


def test_a_full_disk_pauses_logging_and_it_resumes_when_space_returns(tmp_path):
    path = tmp_path / "trips.db"
    max_pages = [12]

    def connect(p):
        conn = sqlite3.connect(p)
        conn.execute(f"PRAGMA max_page_count = {max_pages[0]}")
        return conn

    log = TripLog(str(path), connect=connect, **FAST)
    t = time.monotonic()
    for i in range(3000):
        log.readings([Reading(t + i * 0.001, "rpm", float(i), "obd")], t)
    wait_for(lambda: log.status() != "")
    assert log.status() == f"trip log paused: disk full ({tmp_path})"
    log.readings([Reading(t + 3.5, "rpm", 3000.0, "obd")], t)  # the frame loop is not held up
    max_pages[0] = 1_000_000
    wait_for(lambda: log.status() == "")
    log.close()
    values = [v for (v,) in rows(path, "SELECT value FROM readings ORDER BY t")]
    assert values == [float(i) for i in range(3001)]  # nothing lost: the batch was kept
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]


def test_a_read_only_file_system_pauses_logging_and_it_resumes(tmp_path):
    path = tmp_path / "trips.db"
    TripLog(str(path), **FAST).close()
    read_only = [True]

    def connect(p):
        if read_only[0]:
            return sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        return sqlite3.connect(p)

    log = TripLog(str(path), connect=connect, **FAST)
    log.readings([rpm(time.monotonic(), 5.0)], time.monotonic())
    wait_for(lambda: log.status() != "")
    assert log.status() == f"trip log paused: read-only file system ({tmp_path})"
    read_only[0] = False
    wait_for(lambda: log.status() == "")
    log.close()
    assert rows(path, "SELECT value FROM readings") == [(5.0,)]


def test_a_missing_directory_pauses_and_the_queue_keeps_the_newest_rows(tmp_path):
    path = tmp_path / "not-yet" / "trips.db"
    log = TripLog(str(path), max_queued=100, **FAST)
    t = time.monotonic()
    log.readings([Reading(t + i * 0.001, "rpm", float(i), "obd") for i in range(1000)], t)
    wait_for(lambda: "cannot open" in log.status())
    assert log.status() == f"trip log paused: cannot open {path}"
    assert log.dropped >= 900
    path.parent.mkdir()
    wait_for(lambda: log.status() not in ("", f"trip log paused: cannot open {path}"))
    assert log.status() == f"trip log fell behind: {log.dropped} rows dropped"
    log.close()
    values = [v for (v,) in rows(path, "SELECT value FROM readings ORDER BY t")]
    assert values == [float(i) for i in range(1000 - len(values), 1000)]
    assert len(values) + log.dropped == 1000


def _trip(path, clock_unix, n_readings, **kwargs):
    log = TripLog(str(path), clock=lambda: clock_unix, keep_days=None, max_mb=None,
                  **FAST, **kwargs)
    t = time.monotonic()
    for start in range(0, n_readings, 1000):
        log.readings([Reading(t, "rpm", float(i), "obd") for i in range(start, start + 1000)], t)
    log.close()


def test_trips_older_than_keep_days_are_deleted(tmp_path):
    from keidash.triplog.clock import WallClock
    path = tmp_path / "trips.db"
    (tmp_path / "synchronized").touch()  # every clock here confirmed by NTP (docs: retention)
    now = 1_800_000_000.0
    _trip(path, now - 400 * 86400, 1000, wall=WallClock(lambda: now - 400 * 86400, synchronized=str(tmp_path / "synchronized")))
    _trip(path, now - 10 * 86400, 1000, wall=WallClock(lambda: now - 10 * 86400, synchronized=str(tmp_path / "synchronized")))
    log = TripLog(str(path), clock=lambda: now, keep_days=365, keep_trips=1,
                  wall=WallClock(lambda: now, synchronized=str(tmp_path / "synchronized")), **FAST)
    log.close()
    assert rows(path, "SELECT id FROM trips ORDER BY id") == [(2,), (3,)]
    assert rows(path, "SELECT DISTINCT trip FROM readings") == [(2,)]


def test_the_oldest_trips_go_while_the_file_is_over_max_mb(tmp_path):
    path = tmp_path / "trips.db"
    for day in range(4):
        _trip(path, 1_800_000_000.0 + day, 20_000)
    size_before = path.stat().st_size
    log = TripLog(str(path), clock=lambda: 1_800_000_010.0, max_mb=size_before / 1e6 / 2, **FAST)
    log.close()
    kept = [i for (i,) in rows(path, "SELECT id FROM trips ORDER BY id")]
    assert kept[-1] == 5 and 1 not in kept and 4 in kept  # oldest went first, this run stays
    assert path.stat().st_size <= size_before / 2  # pages given back (auto_vacuum incremental)
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]


def _powercut():
    spec = importlib.util.spec_from_file_location(
        "powercut", Path(__file__).resolve().parent.parent / "bench" / "powercut.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["powercut"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_sigkill_at_random_moments_never_corrupts_and_loses_only_the_last_commit(tmp_path):
    powercut = _powercut()
    commit_s, batch = 0.1, 10
    results = powercut.run(kills=50, seed=20261126, commit_s=commit_s, kill_max_s=0.6, batch=batch,
                           per_db=10, workdir=tmp_path)
    assert [r.integrity for r in results] == ["ok"] * 50
    assert all(r.contiguous for r in results)  # a prefix of what was queued, no gaps
    assert sum(r.stored > 0 for r in results) >= 25  # most runs committed something
    # How much is lost (the readings queued since the last commit: lost_s under the commit
    # interval plus 0.5 s) is a figure of this machine's pace, so bench/powercut.py measures it
    # and exits 1 past that; here only what cannot depend on pace: nothing committed is lost
    # (a prefix, above) and nothing that was never queued appears (the child counts a batch
    # after queueing it, so one batch may be committed before it is counted).
    assert all(r.stored <= r.queued + batch for r in results)
    # Every file opens for writing again; trips cut short get ended_unix from their last row.
    for db in sorted(tmp_path.glob("trips*.db")):
        TripLog(str(db), **FAST).close()
        assert rows(db, "SELECT count(*) FROM trips WHERE ended_unix IS NULL") == [(0,)]
        assert rows(db, "PRAGMA integrity_check") == [("ok",)]


def test_the_writer_connection_has_a_small_page_cache_and_a_bounded_wal(tmp_path):
    """The pragmas that keep the writer's memory and WAL bounded, read back from its own connection.

    SQLite's default page cache (2000 KiB) filled over the first minutes of a drive and was
    part of the dash's RSS growth (bench/demo_rss.py); the writer only appends and needs
    little. The values are read on the writer's connection, in its thread, after it has
    written rows (the first BEGIN after the migration), so they are what it runs with.
    """
    from keidash.triplog import writer

    seen: dict[str, object] = {}

    class Watched(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql.startswith("BEGIN") and "cache_size" not in seen and self.in_transaction is False:
                plain = sqlite3.Connection.execute
                if plain(self, "SELECT count(*) FROM sqlite_master WHERE name = 'readings'").fetchone()[0]:
                    seen.update({name: plain(self, f"PRAGMA {name}").fetchone()[0]
                                 for name in ("cache_size", "journal_size_limit", "journal_mode", "synchronous")})
            return super().execute(sql, *args)

    path = tmp_path / "trips.db"
    log = TripLog(str(path), connect=lambda p: sqlite3.connect(p, factory=Watched), **FAST)
    t = time.monotonic()
    log.readings([rpm(t + i * 0.01, float(i)) for i in range(500)], t)
    log.close()
    assert rows(path, "SELECT count(*) FROM readings") == [(500,)]
    assert seen == {"cache_size": -writer.CACHE_KIB, "journal_size_limit": writer.WAL_LIMIT_BYTES,
                    "journal_mode": "wal", "synchronous": 2}  # 2: FULL
    assert writer.CACHE_KIB < 2000  # below SQLite's default
