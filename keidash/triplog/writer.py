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

Bad input never stops the log: a reading or frame that is not a number (NaN, an infinity, a
string) is dropped and counted (``bad``, shown in :meth:`TripLog.status`), never queued, so
it cannot fail a transaction and hold up the good rows behind it; a row the database still
refuses is dropped alone (the batch is written again row by row); each trip counts its own
(``trips.bad_values``, shown by ``keidash trips``). A file that is not a keidash log is never
written: a damaged one (not SQLite, or SQLite says it is corrupt) is moved aside, kept as
``trips.db.corrupt-<date>-<time>``, and a new log started; another program's SQLite database
(its application_id, or tables that are not keidash's) is refused untouched, byte for byte,
without a ``-wal`` or ``-shm`` beside it. keidash's own logs say ``PRAGMA application_id`` =
:data:`APPLICATION_ID`.

Retention by age trusts no clock that has not been confirmed (keidash.triplog.clock: NTP, or
the GPS's time agreeing with the wall clock) and never deletes the last ``keep_trips`` drives.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

from keidash.dashstate import DashState
from keidash.readings import GPS_TIME, Reading

from .clock import WallClock

log = logging.getLogger(__name__)

TRIP_GAP_S = 300.0  # s without any reading after which the next reading starts a new trip
RETENTION_EVERY_S = 300.0  # s between retention passes (also run once at open)
DROP_SHOWN_S = 60.0  # s a drop of queued rows (or of bad values, or a new log) stays in status()
KEEP_TRIPS = 20  # the last drives before this run: never deleted by age, whatever the clocks say
MAX_MOVED_ASIDE = 3  # damaged files moved aside per run before the writer stops trying
# The writer only appends (to the right-hand pages of two tables and two indexes), so a small
# page cache does: SQLite's default, 2000 KiB, filled over the first minutes of a drive and
# was the trip log's share of the dash's RSS growth (bench/demo_rss.py).
CACHE_KIB = 256  # PRAGMA cache_size = -CACHE_KIB: the writer connection's page cache, KiB
# The WAL is checkpointed at 1000 pages (~4 MB) and then reused from its start; a reader
# holding a snapshot (keidash trips during a drive) can make it grow past that. Truncated back
# to this after such a checkpoint, so it never keeps the size it grew to.
WAL_LIMIT_BYTES = 8 * 1024 * 1024  # PRAGMA journal_size_limit
_SQLITE_HEADER = b"SQLite format 3\x00"
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26  # SQLite's primary result codes for a damaged file
#: PRAGMA application_id of keidash's trip logs ("KDSH"; header bytes 68-71): another program's
#: database says its own id there, or 0. Logs written before schema v2 have 0.
APPLICATION_ID = int.from_bytes(b"KDSH", "big")
_TABLES = {"trips": {"id", "started_unix", "ended_unix"}, "readings": {"trip", "t", "channel", "value", "source"},
           "frames": {"trip", "t", "rpm", "gear"}}  # keidash's tables and the columns every version has

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
    (
        2,
        (
            # 1: started_unix / ended_unix are from a wall clock confirmed by NTP or the GPS
            "ALTER TABLE trips ADD COLUMN clock_confirmed INTEGER NOT NULL DEFAULT 0",
            # values dropped because they were not numbers (or the database refused them)
            "ALTER TABLE trips ADD COLUMN bad_values INTEGER NOT NULL DEFAULT 0",
            f"PRAGMA application_id = {APPLICATION_ID}",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class NewerSchemaError(Exception):
    "The database was written by a newer keidash; it is never downgraded."


class ForeignDatabaseError(Exception):
    "The file is another program's SQLite database: it is never written, not even its header."


class DamagedFileError(Exception):
    "The file is not a database, or SQLite says it is corrupt: it is moved aside, never deleted."


def _damaged(error: BaseException) -> bool:
    """True when ``error`` says the file itself is damaged (not full, locked or read-only)."""
    if isinstance(error, DamagedFileError):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.DatabaseError) and code is not None and code & 0xFF in (
        _SQLITE_CORRUPT, _SQLITE_NOTADB)


def inspect_file(path: str) -> None:
    """Check, writing nothing, that ``path`` is keidash's log, an empty file or none at all.

    Raises :class:`ForeignDatabaseError` (another program's SQLite database: its
    application_id, or a user_version no keidash writes with no id, or tables that are not
    keidash's), :class:`NewerSchemaError` (a newer keidash's) or :class:`DamagedFileError` (not
    SQLite). The id and version are read from the file's header with a plain read, before
    SQLite opens it; the tables through an ``immutable`` read-only connection, which takes no
    lock and creates no ``-wal`` or ``-shm`` (a read-only connection to a WAL-mode database
    creates both). Whatever that connection cannot read (damaged pages, a lock) is left to the
    real open to report; :meth:`TripLog._open` judges the file again there before writing.
    """
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError:
        return  # missing (a new log) or unreadable: sqlite's open says why
    if not header:
        return  # empty: a new log
    if not header.startswith(_SQLITE_HEADER):
        raise DamagedFileError("not an SQLite file")
    if len(header) < 100:
        raise DamagedFileError("cut short inside its header")
    _judge(int.from_bytes(header[68:72], "big"), int.from_bytes(header[60:64], "big"), None)
    try:
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return
    try:
        _judge(int.from_bytes(header[68:72], "big"), int.from_bytes(header[60:64], "big"), conn)
    except sqlite3.DatabaseError:
        return  # damaged, or changing under us: the real open (with locks) tells which
    finally:
        conn.close()


def _judge(application_id: int, user_version: int, conn: sqlite3.Connection | None) -> None:
    """Raise unless a file with this header (and, given ``conn``, these tables) may be keidash's log."""
    if application_id not in (0, APPLICATION_ID):
        raise ForeignDatabaseError(f"its application_id is {application_id:#010x}, not keidash's")
    if application_id == APPLICATION_ID and user_version > SCHEMA_VERSION:
        raise NewerSchemaError(f"schema v{user_version}, this keidash knows v{SCHEMA_VERSION}")
    if application_id == 0 and user_version > 1:  # keidash has set its application_id since v2
        raise ForeignDatabaseError(f"its user_version is {user_version}, with no application_id")
    if conn is None:
        return
    objects = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
    tables = sorted(name for kind, name in objects if kind == "table" and not name.startswith("sqlite_"))
    if not tables:
        return  # an empty SQLite database: keidash may make it its log
    if set(tables) == set(_TABLES) and all(
            columns <= {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for table, columns in _TABLES.items()):
        return
    others = [t for t in tables if t not in _TABLES] or tables
    shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
    raise ForeignDatabaseError(f"its tables ({shown}) are not keidash's")


def _aside_name(path: str, unix: float) -> str:
    """``path.corrupt-<local date and time>``, with ``-2``, ``-3``... when that is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(unix))
    for n in range(1, 10_000):
        aside = f"{path}.corrupt-{stamp}" + (f"-{n}" if n > 1 else "")
        if not any(os.path.lexists(aside + suffix) for suffix in ("", "-wal", "-shm", "-journal")):
            return aside
    raise FileExistsError(f"no free name for {path}.corrupt-{stamp}")


def move_aside(path: str, unix: float | None = None) -> str:
    """Rename a damaged ``path`` (and its -wal, -shm, -journal) to ``path.corrupt-<when>``; return it.

    ``unix``: the time it was found damaged (default: now). Nothing is deleted: the copy keeps
    whatever can still be read from it.
    """
    aside = _aside_name(path, time.time() if unix is None else unix)
    os.rename(path, aside)
    for suffix in ("-wal", "-shm", "-journal"):  # a stale WAL must never be replayed into the new log
        if os.path.lexists(path + suffix):
            os.rename(path + suffix, aside + suffix)
    return aside


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
    confirmed: bool = False  # started_unix (and ended_unix) are from a confirmed wall clock
    ended_unix: float | None = None  # set when a gap ends it (close() ends the last one)
    end_mono: float | None = None  # s, monotonic time it ended
    bad: int = 0  # values of this trip dropped as not numbers (or refused by the database)


def _fault_sentence(error: BaseException, path: str) -> str:
    """One sentence for the cluster saying why logging is paused."""
    where = os.path.dirname(os.path.abspath(path))
    text = str(error).lower()
    if "full" in text or getattr(error, "errno", None) == 28:
        return f"trip log paused: disk full ({where})"
    if "readonly" in text or "read-only" in text or getattr(error, "errno", None) in (13, 30):
        # SQLite says "readonly" for a read-only file (chmod 444) as for a read-only file system
        try:
            mode = os.stat(path).st_mode
            if not os.access(path, os.W_OK) or not mode & 0o222:
                return f"trip log paused: {path} is read-only (permission denied)"
        except OSError:
            pass
        if os.path.isdir(where) and not os.access(where, os.W_OK):
            return f"trip log paused: cannot write in {where} (permission denied)"
        return f"trip log paused: read-only file system ({where})"
    if "unable to open" in text or isinstance(error, OSError):
        return f"trip log paused: cannot open {path}"
    return f"trip log paused: {error}"


class TripLog:
    """Log readings and frames of one keidash run to a SQLite file, never blocking the caller.

    ``commit_every_s``: s between commits (the data at risk on a crash);
    ``frame_hz``: at most this many frames per second are logged;
    ``keep_days`` / ``max_mb``: retention (``None`` keeps everything); ``keep_trips``: the last
    drives before this run, never deleted by age; ``clock``: UNIX time, used for
    ``started_unix`` / ``ended_unix`` and, once ``wall`` says it is confirmed (NTP or the GPS;
    default ``WallClock(clock, mono)``), for retention by age;
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
        keep_trips: int = KEEP_TRIPS,
        wall: WallClock | None = None,
    ):
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.synchronous = synchronous.upper()
        self.path = path
        self.profile = profile
        self.sources = sources
        self.commit_every_s = commit_every_s
        self.keep_days = keep_days
        self.keep_trips = keep_trips
        self.max_mb = max_mb
        self.retry_s = retry_s
        self._clock = clock
        self._wall = wall or WallClock(clock, mono)
        self._connect = connect
        self._mono = mono
        self._frame_period = 1.0 / frame_hz
        self._next_frame = float("-inf")

        self._lock = threading.Lock()
        self._queue: collections.deque[tuple] = collections.deque()
        self._max_queued = max_queued
        self.dropped = 0  # rows dropped because the writer fell behind or was paused
        self._last_drop_mono = float("-inf")
        self.bad = 0  # readings and frames dropped because they were not numbers (NaN, inf, ...)
        self._last_bad_mono = float("-inf")
        self.moved_aside: list[str] = []  # damaged files moved aside this run
        self._notice = ""  # news for the cluster, shown for DROP_SHOWN_S (a new log was started)
        self._notice_mono = float("-inf")
        self._last_mono = mono()  # latest time the caller gave us
        self._trip = _Trip(0, self._last_mono, clock(), self._wall.confirmed())
        self._trips = {0: self._trip}  # seq -> _Trip, until the writer has written it
        self._all_trips = {0: self._trip}  # seq -> _Trip, every trip of this run (a new file gets them all)
        self._last_reading_mono = self._last_mono

        self._trip_ids: dict[int, int] = {}  # trip seq -> trips.id, once written
        self._fault = ""  # why the writer is paused, "" when writing
        self._refused = ""  # why the file is never written (a newer keidash's, another program's)
        self._dated = self._trip.confirmed  # this run's trips are dated by a confirmed clock
        self._told_unconfirmed = False
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
        bad = 0
        for r in readings:
            try:
                t, value = float(r.t), float(r.value)
            except (TypeError, ValueError, OverflowError):
                bad += 1
                continue
            if not (math.isfinite(t) and math.isfinite(value)
                    and isinstance(r.channel, str) and isinstance(r.source, str)):
                bad += 1  # NaN fails readings.value NOT NULL: it would hold up every row after it
                continue
            if r.channel == GPS_TIME:
                self._wall.gps_time(t, value)  # may confirm the wall clock
            if t - self._last_reading_mono > TRIP_GAP_S:
                self._new_trip(t, mono_now)
            self._last_reading_mono = max(self._last_reading_mono, t)
            trip = self._trip
            rows.append(("r", trip.seq, t - trip.start_mono, r.channel, value, r.source))
        if bad:
            self._count_bad(bad, mono_now)
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
        try:
            t = float(dash.t) - trip.start_mono
        except (TypeError, ValueError, OverflowError):
            t = math.nan
        gear, cue = dash.gear, dash.cue
        if (not math.isfinite(t) or not (gear is None or (isinstance(gear, int) and abs(gear) < 100))
                or not (cue is None or isinstance(cue, str))):
            self._count_bad(1, mono_now)
            return
        row = (
            "f",
            trip.seq,
            t,
            _number_or_none(dash.speed_kmh),  # NULL: unknown, as the dash shows "--"
            _number_or_none(dash.rpm),
            int(bool(dash.rpm_estimated)),
            gear,
            cue,
        )
        self._put([row], mono_now)

    def status(self) -> str:
        """"" while logging, else one sentence for the cluster."""
        if self._refused:
            return self._refused
        if self._fault:
            return self._fault
        if self._last_mono - self._notice_mono < DROP_SHOWN_S:
            return self._notice
        if self._last_mono - self._last_drop_mono < DROP_SHOWN_S:
            return f"trip log fell behind: {self.dropped} rows dropped"
        if self._last_mono - self._last_bad_mono < DROP_SHOWN_S:
            return f"trip log dropped {self.bad} bad values (not numbers)"
        return ""

    def close(self, timeout: float = 3.0) -> None:
        """Flush what is queued, end the trip (``ended_unix``) and stop the writer thread."""
        with self._lock:
            if self._trip.ended_unix is None:
                self._trip.ended_unix = self._clock()
                self._trip.end_mono = self._mono()
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("trip log writer did not finish within %.1f s", timeout)

    def _new_trip(self, start_mono: float, mono_now: float) -> None:
        """End the trip at its last reading and start one at ``start_mono`` (both to UNIX time)."""
        old = self._trip
        unix_now = self._clock()
        ended = unix_now - max(0.0, mono_now - self._last_reading_mono)
        new = _Trip(old.seq + 1, start_mono, unix_now - max(0.0, mono_now - start_mono), self._wall.confirmed())
        with self._lock:
            old.ended_unix = ended
            old.end_mono = self._last_reading_mono
            self._trips[new.seq] = new
            self._all_trips[new.seq] = new
            self._trip = new

    def _count_bad(self, count: int, mono_now: float, trip: _Trip | None = None) -> None:
        with self._lock:
            self.bad += count
            (trip or self._trip).bad += count
            self._last_bad_mono = mono_now

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
            if self._refused:
                with self._lock:
                    self._queue.clear()  # never write to a newer schema or another program's file
                if stopping:
                    return
                continue
            if self._mono() < next_try and not stopping:
                continue
            if not self._dated and self._wall.confirmed():
                self._date_trips()
                next_retention = 0.0  # the clock can now say which drives are old
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
                self._refused = "trip log written by a newer keidash: not logging"
                conn = _close_quietly(conn)
            except ForeignDatabaseError as error:
                log.warning("trip log %s is another program's database (%s); left untouched, not logging",
                            self.path, error)
                self._refused = f"trip log: {self.path} is another program's database: not logging"
                conn = _close_quietly(conn)
            except Exception as error:  # noqa: BLE001 - the writer must never die
                conn = _close_quietly(conn)
                if _damaged(error) and len(self.moved_aside) < MAX_MOVED_ASIDE:
                    try:
                        self._start_afresh(error)
                        continue  # the kept batch goes to the new file at the next pass
                    except OSError as move_error:
                        error = move_error
                elif _damaged(error):
                    error = DamagedFileError(f"{self.path} is damaged again after {len(self.moved_aside)} new "
                                             f"logs: check the SD card")
                sentence = _fault_sentence(error, self.path)
                if not isinstance(error, (sqlite3.Error, OSError, DamagedFileError)):
                    log.exception("trip log writer failed; retrying")
                if sentence != self._fault:
                    log.warning("%s: %s", sentence, error)
                self._fault = sentence
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

    def _date_trips(self) -> None:
        """The wall clock is confirmed: date this run's trips by it, from their monotonic times.

        A trip started before (a Pi that booted at fake-hwclock's saved time and was then
        synchronized) gets the confirmed clock's times, as if it had been right all along.
        """
        now_unix, now_mono = self._clock(), self._mono()
        with self._lock:
            for trip in self._all_trips.values():
                if trip.confirmed:
                    continue
                trip.started_unix = now_unix - (now_mono - trip.start_mono)
                if trip.end_mono is not None:
                    trip.ended_unix = now_unix - (now_mono - trip.end_mono)
                trip.confirmed = True
                self._trips[trip.seq] = trip  # written again
        self._dated = True

    def _start_afresh(self, error: BaseException) -> None:
        """Move the damaged file aside (kept) and let the next pass create a new log.

        Every trip of this run is written again to the new file (its rows already committed
        stay in the old one); the rows not yet written are kept and go to the new file.
        """
        aside = move_aside(self.path, self._clock())
        self.moved_aside.append(aside)
        self._trip_ids = {}
        with self._lock:
            self._trips = dict(self._all_trips)
        self._notice = f"trip log was damaged: kept it as {os.path.basename(aside)}, started a new one"
        self._notice_mono = self._last_mono
        self._fault = ""
        log.warning("trip log %s is damaged (%s): moved it to %s and started a new log", self.path, error, aside)

    def _open(self) -> sqlite3.Connection:
        inspect_file(self.path)  # read-only: a file that is not our log is never written
        conn = self._connect(self.path)
        try:
            conn.isolation_level = None  # we issue BEGIN / COMMIT ourselves
            conn.execute("PRAGMA busy_timeout = 5000")
            # Judged again on this connection before anything writes, even the WAL header: the
            # inspection above could not see tables still in a WAL, nor read damaged pages (a
            # damaged file says so here).
            _judge(conn.execute("PRAGMA application_id").fetchone()[0],
                   conn.execute("PRAGMA user_version").fetchone()[0], conn)
            if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before WAL writes the header
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
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
        """Write ``rows`` (and new or ended trips) in one transaction.

        When the database refuses a row (a constraint, a value SQLite cannot bind), the
        transaction is rolled back and written again row by row, dropping (and counting) only
        the rows it refuses: one bad row never holds up the good ones.
        """
        try:
            self._write_batch(conn, rows, one_by_one=False)
        except _ROW_ERRORS:
            self._write_batch(conn, rows, one_by_one=True)

    def _write_batch(self, conn: sqlite3.Connection, rows: list[tuple], one_by_one: bool) -> None:
        with self._lock:
            trips = list(self._trips.values())
        ids = dict(self._trip_ids)
        started = time.perf_counter()
        refused: dict[int, int] = {}  # trip seq -> rows the database refused
        conn.execute("BEGIN IMMEDIATE")
        try:
            for trip in trips:
                if trip.seq not in ids:
                    cursor = conn.execute(
                        "INSERT INTO trips (started_unix, ended_unix, profile, sources) VALUES (?, ?, ?, ?)",
                        (trip.started_unix, trip.ended_unix, self.profile, self.sources),
                    )
                    ids[trip.seq] = cursor.lastrowid
            # each row's parameters made as SQLite takes them, not a copy of the whole batch first:
            # after a long pause (a full disk) the batch is up to max_queued rows, and a list of
            # their parameters doubled it in memory (CPython then kept up to 2000 of those tuples
            # of each size for reuse)
            inserts = (
                ("INSERT INTO readings (trip, t, channel, value, source) VALUES (?, ?, ?, ?, ?)", "r"),
                ("INSERT INTO frames (trip, t, speed_kmh, rpm, rpm_estimated, gear, cue) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 "f"),
            )
            for sql, kind in inserts:
                if not one_by_one:
                    conn.executemany(sql, ((ids[r[1]],) + r[2:] for r in rows if r[0] == kind))
                    continue
                params = ((r[1], (ids[r[1]],) + r[2:]) for r in rows if r[0] == kind)
                for seq, row in params:
                    try:
                        conn.execute(sql, row)  # a failed INSERT undoes itself, not the transaction
                    except _ROW_ERRORS:
                        refused[seq] = refused.get(seq, 0) + 1
            ended = [t for t in trips if t.ended_unix is not None]
            conn.executemany(  # every trip not yet written for good: its end, dates and drops may change
                "UPDATE trips SET started_unix = ?, ended_unix = ?, clock_confirmed = ?, bad_values = ? WHERE id = ?",
                [(t.started_unix, t.ended_unix, int(t.confirmed), t.bad + refused.get(t.seq, 0), ids[t.seq])
                 for t in trips],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.commit_s.append(time.perf_counter() - started)
        self.commits += 1
        self.rows_written += len(rows) - sum(refused.values())
        for seq, count in refused.items():
            log.warning("trip log: dropped %d rows the database refused", count)
            self._count_bad(count, self._last_mono, next(t for t in trips if t.seq == seq))
        self._trip_ids = ids
        with self._lock:  # ended trips are written for good: forget them
            for trip in ended:
                if trip is not self._trip:
                    self._trips.pop(trip.seq, None)

    def _retain(self, conn: sqlite3.Connection) -> None:
        """Delete trips older than keep_days, then the oldest while the file exceeds max_mb.

        By age only once the wall clock is confirmed (NTP or the GPS, keidash.triplog.clock), and
        only trips dated by a confirmed clock (``clock_confirmed``): a Pi with no RTC and no
        network, or a clock a year ahead, never makes a drive look old. The last keep_trips
        drives before this run are never deleted by age; max_mb, which needs no clock, may
        delete them (the card must not fill up). The trips of this run are never deleted.
        Freed pages go back to the file system by
        ``PRAGMA incremental_vacuum`` (cheap: it only truncates free pages at the end) when the
        file was created with auto_vacuum; otherwise SQLite reuses them, so the file stops
        growing at max_mb but does not shrink. A full VACUUM is never run: it rewrites the
        whole file (minutes for hundreds of MB on an SD card) and needs as much free space.
        """
        ours = set(self._trip_ids.values())
        doomed: list[int] = []
        if self.keep_days is not None and self._wall.confirmed():
            earlier = [(i, start, dated) for i, start, dated in conn.execute(
                "SELECT id, started_unix, clock_confirmed FROM trips ORDER BY id") if i not in ours]
            cutoff = self._clock() - self.keep_days * 86400.0
            doomed = [i for i, start, dated in earlier[:max(0, len(earlier) - max(0, self.keep_trips))]
                      if dated and start < cutoff]
        elif self.keep_days is not None and not self._told_unconfirmed:
            self._told_unconfirmed = True
            log.info("trip log: the wall clock is not confirmed yet (no NTP synchronization, no GPS time "
                     "agreeing with it): no trip is deleted by age")
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


# A row the database refuses on its own (a constraint, a value it cannot bind), not the file
_ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, OverflowError,
               ValueError, TypeError)


def _number_or_none(value) -> float | None:
    """A finite float, or None (NULL: unknown) for None, NaN, an infinity or a non-number."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


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
