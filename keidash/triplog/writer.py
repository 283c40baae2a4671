"""The trip log: every reading and every frame's estimate in SQLite, written by one thread.

The frame loop hands readings and frames to :class:`TripLog`; it only appends them to a
bounded in-memory queue (a lock held for microseconds), so logging can never hold up a
frame. One writer thread owns the SQLite connection (python-can's ``can/io/sqlite.py``
pattern): every ``commit_every_s`` it drains the queue and writes everything in one
transaction (``executemany``), so at most about one commit interval of data is at risk.

Durability (docs/triplog.md has the measurements): the database is in WAL mode with
``synchronous=FULL`` by default: every commit (one a second) fsyncs the WAL, so a power cut
loses at most the last commit interval, as a killed process does. After a crash or a power
cut SQLite replays the WAL up to the last complete, checksummed transaction and ignores a
torn tail, so the database is never corrupt. ``synchronous="NORMAL"`` (fsync only at
checkpoints) is cheaper but lets a power cut take the last several seconds (Linux writes
dirty pages within ~5-30 s).

Trips: one trip per :class:`TripLog` (keidash starts at ignition on), and a new trip when
readings resume after more than ``TRIP_GAP_S`` (5 min) without any (the truck parked with
the Pi on). ``t`` in the tables is seconds since the trip's start (the monotonic time of
the trip's first reading, or of the TripLog's creation for the first trip).

Faults never raise into the caller: a full disk, a read-only file system, a database that
cannot be opened pause logging, :meth:`TripLog.status` says why in one sentence for the
cluster, the pending batch is kept (bounded: the oldest rows are dropped and counted), and
the writer retries every ``retry_s`` until the database is writable again.
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from keidash.dashstate import DashState
from keidash.readings import Reading

log = logging.getLogger(__name__)

TRIP_GAP_S = 300.0  # s without any reading after which the next reading starts a new trip
RETENTION_EVERY_S = 300.0  # s between retention passes (also run once at open)
DROP_SHOWN_S = 60.0  # s a drop of queued rows stays in status()

# The schema, one step per version; each step runs in one transaction that also sets
# PRAGMA user_version. Append new steps, never edit a released one (readers depend on it).
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE IF NOT EXISTS trips (id INTEGER PRIMARY KEY,
                   started_unix REAL NOT NULL, ended_unix REAL,
                   profile TEXT NOT NULL DEFAULT '', sources TEXT NOT NULL DEFAULT '')""",
            """CREATE TABLE IF NOT EXISTS readings (trip INTEGER NOT NULL REFERENCES trips(id),
                   t REAL NOT NULL, channel TEXT NOT NULL, value REAL NOT NULL,
                   source TEXT NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS frames (trip INTEGER NOT NULL REFERENCES trips(id),
                   t REAL NOT NULL, speed_kmh REAL, rpm REAL, rpm_estimated INTEGER NOT NULL,
                   gear INTEGER, cue TEXT)""",
            "CREATE INDEX IF NOT EXISTS readings_trip_t ON readings(trip, t)",
            "CREATE INDEX IF NOT EXISTS frames_trip_t ON frames(trip, t)",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class NewerSchemaError(Exception):
    "The database was written by a newer keidash; it is never downgraded."


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn``'s database up to :data:`SCHEMA_VERSION`; return the version it had.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Each step runs in its own
    ``BEGIN IMMEDIATE`` transaction with its ``PRAGMA user_version``, so a crash mid-migration
    leaves the previous version intact. A new, empty file gets ``auto_vacuum=INCREMENTAL``
    first, so that retention can give deleted trips' pages back to the file system.
    Raises :class:`NewerSchemaError` when the file's version is newer than this code knows.
    """
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise NewerSchemaError(f"schema v{found}, this keidash knows v{SCHEMA_VERSION}")
    if found == 0 and conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only possible before any table
    for version, statements in MIGRATIONS:
        if version <= found:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


@dataclass
class _Trip:
    """A trip as the frame loop sees it; the writer gives it a row id when it first writes it."""

    seq: int  # 0, 1, ... in this TripLog
    start_mono: float  # s, monotonic time the trip's t counts from
    started_unix: float  # s, UNIX time at start
    ended_unix: float | None = None  # set when a gap ends it (close() ends the last one)


def _fault_sentence(error: BaseException, path: str) -> str:
    """One sentence for the cluster saying why logging is paused."""
    where = os.path.dirname(os.path.abspath(path))
    text = str(error).lower()
    if "full" in text or getattr(error, "errno", None) == 28:
        return f"trip log paused: disk full ({where})"
    if "readonly" in text or "read-only" in text or getattr(error, "errno", None) == 30:
        return f"trip log paused: read-only file system ({where})"
    if "unable to open" in text or isinstance(error, OSError):
        return f"trip log paused: cannot open {path}"
    return f"trip log paused: {error}"


class TripLog:
    """Log readings and frames of one keidash run to a SQLite file, never blocking the caller.

    ``commit_every_s``: s between commits (the data at risk on a crash);
    ``frame_hz``: at most this many frames per second are logged;
    ``keep_days`` / ``max_mb``: retention (``None`` keeps everything); ``clock``: UNIX time,
    used for ``started_unix`` / ``ended_unix`` and retention by age;
    ``connect``: opens the database (injected by tests to simulate read-only or missing files);
    ``retry_s``: s between attempts while paused; ``max_queued``: rows held in memory at most;
    ``mono``: the monotonic clock the writer paces itself by; ``synchronous``: ``"NORMAL"``
    (no fsync per commit: a power cut can also lose commits the OS had not written out yet)
    or ``"FULL"`` (fsync the WAL at every commit: a power cut loses at most the last interval).
    """

    def __init__(
        self,
        path: str,
        *,
        profile: str = "",
        sources: str = "",
        commit_every_s: float = 1.0,
        frame_hz: float = 10.0,
        keep_days: float | None = 365,
        max_mb: float | None = 500,
        clock: Callable[[], float] = time.time,
        connect: Callable[[str], sqlite3.Connection] = sqlite3.connect,
        retry_s: float = 5.0,
        max_queued: int = 200_000,
        mono: Callable[[], float] = time.monotonic,
        synchronous: str = "FULL",
    ):
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.synchronous = synchronous.upper()
        self.path = path
        self.profile = profile
        self.sources = sources
        self.commit_every_s = commit_every_s
        self.keep_days = keep_days
        self.max_mb = max_mb
        self.retry_s = retry_s
        self._clock = clock
        self._connect = connect
        self._mono = mono
        self._frame_period = 1.0 / frame_hz
        self._next_frame = float("-inf")

        self._lock = threading.Lock()
        self._queue: collections.deque[tuple] = collections.deque()
        self._max_queued = max_queued
        self.dropped = 0  # rows dropped because the writer fell behind or was paused
        self._last_drop_mono = float("-inf")
        self._last_mono = mono()  # latest time the caller gave us
        self._trip = _Trip(0, self._last_mono, clock())
        self._trips = {0: self._trip}  # seq -> _Trip, until the writer has written it
        self._last_reading_mono = self._last_mono

        self._trip_ids: dict[int, int] = {}  # trip seq -> trips.id, once written
        self._fault = ""  # why the writer is paused, "" when writing
        self._newer = False
        self.commits = 0  # transactions committed
        self.rows_written = 0
        self.commit_s: collections.deque[float] = collections.deque(maxlen=1000)  # s per commit

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triplog", daemon=True)
        self._thread.start()

    # -- the frame loop's side: append and return ----------------------------------------------
    def readings(self, readings: Iterable[Reading], mono_now: float) -> None:
        """Queue ``readings`` (their ``t`` is monotonic s); start a new trip after a long gap."""
        rows = []
        for r in readings:
            if r.t - self._last_reading_mono > TRIP_GAP_S:
                self._new_trip(r.t, mono_now)
            self._last_reading_mono = max(self._last_reading_mono, r.t)
            trip = self._trip
            rows.append(("r", trip.seq, r.t - trip.start_mono, r.channel, float(r.value), r.source))
        self._put(rows, mono_now)

    def frame(self, dash: DashState, mono_now: float) -> None:
        """Queue the frame's estimate (rpm, gear, cue), at most ``frame_hz`` frames a second."""
        if mono_now < self._next_frame - 1e-3:  # 1 ms slack: float steps of a 30/60 fps loop
            return
        period = self._frame_period
        # On schedule, whatever the loop's own rate; after a late frame, catch up by at most
        # half a period, so the average never exceeds frame_hz.
        if self._next_frame == float("-inf"):
            self._next_frame = mono_now + period
        else:
            self._next_frame = max(self._next_frame + period, mono_now + period / 2)
        trip = self._trip
        row = (
            "f",
            trip.seq,
            dash.t - trip.start_mono,
            dash.speed_kmh,
            dash.rpm,
            int(bool(dash.rpm_estimated)),
            dash.gear,
            dash.cue,
        )
        self._put([row], mono_now)

    def status(self) -> str:
        """"" while logging, else one sentence for the cluster."""
        if self._newer:
            return "trip log written by a newer keidash: not logging"
        if self._fault:
            return self._fault
        if self._last_mono - self._last_drop_mono < DROP_SHOWN_S:
            return f"trip log fell behind: {self.dropped} rows dropped"
        return ""

    def close(self, timeout: float = 3.0) -> None:
        """Flush what is queued, end the trip (``ended_unix``) and stop the writer thread."""
        with self._lock:
            if self._trip.ended_unix is None:
                self._trip.ended_unix = self._clock()
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("trip log writer did not finish within %.1f s", timeout)

    def _new_trip(self, start_mono: float, mono_now: float) -> None:
        """End the trip at its last reading and start one at ``start_mono`` (both to UNIX time)."""
        old = self._trip
        unix_now = self._clock()
        ended = unix_now - max(0.0, mono_now - self._last_reading_mono)
        new = _Trip(old.seq + 1, start_mono, unix_now - max(0.0, mono_now - start_mono))
        with self._lock:
            old.ended_unix = ended
            self._trips[new.seq] = new
            self._trip = new

    def _put(self, rows: list[tuple], mono_now: float) -> None:
        self._last_mono = mono_now
        if not rows:
            return
        with self._lock:
            self._queue.extend(rows)
            excess = len(self._queue) - self._max_queued
            if excess > 0:
                for _ in range(excess):
                    self._queue.popleft()
                self.dropped += excess
                self._last_drop_mono = mono_now

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        pending: list[tuple] = []
        next_retention = 0.0
        next_try = 0.0
        while True:
            stopping = self._stop.wait(self.commit_every_s)
            if self._newer:
                with self._lock:
                    self._queue.clear()  # never write to a newer schema
                if stopping:
                    return
                continue
            if self._mono() < next_try and not stopping:
                continue
            try:
                if conn is None:
                    conn = self._open()
                    next_retention = 0.0
                with self._lock:
                    pending.extend(self._queue)
                    self._queue.clear()
                self._write(conn, pending)
                pending = []
                if self._mono() >= next_retention:
                    self._retain(conn)
                    next_retention = self._mono() + RETENTION_EVERY_S
                if self._fault:
                    log.info("trip log writing again")
                self._fault = ""
            except NewerSchemaError as error:
                log.warning("trip log %s: %s; not logging", self.path, error)
                self._newer = True
                conn = _close_quietly(conn)
            except Exception as error:  # noqa: BLE001 - the writer must never die
                sentence = _fault_sentence(error, self.path)
                if not isinstance(error, (sqlite3.Error, OSError)):
                    log.exception("trip log writer failed; retrying")
                if sentence != self._fault:
                    log.warning("%s: %s", sentence, error)
                self._fault = sentence
                conn = _close_quietly(conn)
                next_try = self._mono() + self.retry_s
                # Keep the batch, bounded like the queue: drop the oldest.
                excess = len(pending) - self._max_queued
                if excess > 0:
                    del pending[:excess]
                    with self._lock:
                        self.dropped += excess
                        self._last_drop_mono = self._last_mono
            if stopping:
                if conn is not None:
                    try:
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    except sqlite3.Error:
                        pass
                _close_quietly(conn)
                return

    def _open(self) -> sqlite3.Connection:
        conn = self._connect(self.path)
        try:
            conn.isolation_level = None  # we issue BEGIN / COMMIT ourselves
            conn.execute("PRAGMA busy_timeout = 5000")
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:  # before anything writes, even the WAL header
                raise NewerSchemaError(f"schema v{found}, this keidash knows v{SCHEMA_VERSION}")
            if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before WAL writes the header
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            migrate(conn)
            # Trips left open by a crash end at their last row.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                """UPDATE trips SET ended_unix = started_unix + coalesce(max(
                       (SELECT max(t) FROM readings WHERE trip = trips.id),
                       (SELECT max(t) FROM frames WHERE trip = trips.id)), 0)
                   WHERE ended_unix IS NULL AND id NOT IN ({})""".format(
                    ",".join(str(i) for i in self._trip_ids.values()) or "-1"
                )
            )
            conn.execute("COMMIT")
        except BaseException:
            _close_quietly(conn)
            raise
        return conn

    def _write(self, conn: sqlite3.Connection, rows: list[tuple]) -> None:
        """Write ``rows`` (and new or ended trips) in one transaction."""
        with self._lock:
            trips = list(self._trips.values())
        ids = dict(self._trip_ids)
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for trip in trips:
                if trip.seq not in ids:
                    cursor = conn.execute(
                        "INSERT INTO trips (started_unix, ended_unix, profile, sources)"
                        " VALUES (?, ?, ?, ?)",
                        (trip.started_unix, trip.ended_unix, self.profile, self.sources),
                    )
                    ids[trip.seq] = cursor.lastrowid
            conn.executemany(
                "INSERT INTO readings (trip, t, channel, value, source) VALUES (?, ?, ?, ?, ?)",
                [(ids[r[1]],) + r[2:] for r in rows if r[0] == "r"],
            )
            conn.executemany(
                "INSERT INTO frames (trip, t, speed_kmh, rpm, rpm_estimated, gear, cue)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(ids[r[1]],) + r[2:] for r in rows if r[0] == "f"],
            )
            ended = [t for t in trips if t.ended_unix is not None]
            conn.executemany(
                "UPDATE trips SET ended_unix = ? WHERE id = ?",
                [(t.ended_unix, ids[t.seq]) for t in ended],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.commit_s.append(time.perf_counter() - started)
        self.commits += 1
        self.rows_written += len(rows)
        self._trip_ids = ids
        with self._lock:  # ended trips are written for good: forget them
            for trip in ended:
                if trip is not self._trip:
                    self._trips.pop(trip.seq, None)

    def _retain(self, conn: sqlite3.Connection) -> None:
        """Delete trips older than keep_days, then the oldest while the file exceeds max_mb.

        The trips of this run are never deleted. Freed pages go back to the file system by
        ``PRAGMA incremental_vacuum`` (cheap: it only truncates free pages at the end) when the
        file was created with auto_vacuum; otherwise SQLite reuses them, so the file stops
        growing at max_mb but does not shrink. A full VACUUM is never run: it rewrites the
        whole file (minutes for hundreds of MB on an SD card) and needs as much free space.
        """
        ours = set(self._trip_ids.values())
        doomed: list[int] = []
        if self.keep_days is not None:
            cutoff = self._clock() - self.keep_days * 86400.0
            doomed = [
                i
                for (i,) in conn.execute("SELECT id FROM trips WHERE started_unix < ?", (cutoff,))
                if i not in ours
            ]
        self._delete_trips(conn, doomed)
        if self.max_mb is None:
            return
        limit = self.max_mb * 1e6
        oldest = [i for (i,) in conn.execute("SELECT id FROM trips ORDER BY id") if i not in ours]
        while oldest and _used_bytes(conn) > limit:
            self._delete_trips(conn, [oldest.pop(0)])

    @staticmethod
    def _delete_trips(conn: sqlite3.Connection, ids: list[int]) -> None:
        if not ids:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for trip_id in ids:
                conn.execute("DELETE FROM readings WHERE trip = ?", (trip_id,))
                conn.execute("DELETE FROM frames WHERE trip = ?", (trip_id,))
                conn.execute("DELETE FROM trips WHERE id = ?", (trip_id,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        # executescript steps the pragma to the end; execute() would free a single page.
        conn.executescript("PRAGMA incremental_vacuum;")
        log.info("trip log: deleted %d old trip(s)", len(ids))


def _used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the database in use (its pages minus the free list)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return (pages - free) * size


def _close_quietly(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except sqlite3.Error:
            pass
    return None
