"""keidash's own trip log (SQLite, issue 7) as a replay format: ``keidash replay trip.db``.

A trip log holds every reading the sources delivered, stamped with seconds
since the trip started. Replay takes the rpm and speed_kmh readings of one
trip (the last one by default) and turns them into samples: readings at the
same time become one sample with both channels fresh; a sample where only one
channel was measured holds the other's last value, not fresh, exactly as a
logger that polls them apart. When two sources measured the same channel
(OBD speed and GPS speed, say) the one with more readings in the trip is
replayed (on a tie, the one that began first), so two speeds never fight over
one gauge. The dash's own frames (its gear and cues) are not replayed: they were
its answer, and a replay asks the estimator again.

The readings come from SQLite in time order through a cursor, one row at a time,
straight into the log's :class:`Samples` columns: a long trip is never held as
Python rows (fetching them all took about 650 bytes a sample at the peak; now 70,
``tests/test_trips.py``).
A value that is not a number (a file written by another program) is a bad row,
counted and skipped as the other readers do.

Detection is by the file's first bytes, SQLite's header ``SQLite format 3\\0``.
The file is opened read-only through keidash.triplog.reading, so its errors (not a trip
log, newer schema, locked) are the same sentences ``keidash trips`` gives.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Iterable

from ..errors import ConfigError
from ..readings import RPM, SPEED
from .log import BOTH, BadRow, DriveLog, Sample, Samples, fresh_channels, make_log, number

HEADER = "SQLite format 3\x00"


def sniff(head: list[str]) -> bool:
    return bool(head) and head[0].startswith(HEADER)


def read(lines: Iterable[str], name: str = "log", trip: str | int = "last") -> DriveLog:
    """The trip log at ``name`` (its path: SQLite cannot be read from text lines) -> DriveLog."""
    if not os.path.isfile(name):
        raise ConfigError(f"{name}: a keidash trip log is read from its file; name the .db file")
    return load_trip(name, trip)


def load_trip(path: str | os.PathLike, trip: str | int = "last") -> DriveLog:
    """One trip (an id or "last") of the trip log at ``path`` as a DriveLog of rpm and speed samples."""
    from ..triplog.reading import find_trip, open_trip_log, stream  # late: keidash.triplog.reading is the bigger module

    path = os.fspath(path)
    errors: Counter[str] = Counter()
    db = open_trip_log(path)
    try:
        chosen = find_trip(db, trip, path)
        picked = _main_sources(stream(
            db, path, "SELECT channel, source, count(*), min(t) FROM readings "
                      "WHERE trip = ? AND channel IN (?, ?) GROUP BY channel, source", (chosen.id, *BOTH)))
        # rows at one time in the order of BOTH (and by value: a channel read twice at once keeps the larger,
        # as the rows sorted in Python did); SQLite sorts only the rows that share a time (the index gives t)
        readings = stream(db, path, "SELECT t, channel, value FROM readings WHERE trip = ? AND "
                                    "((channel = ? AND source = ?) OR (channel = ? AND source = ?)) "
                                    "ORDER BY t, channel, value",
                          (chosen.id, *(x for ch in BOTH for x in (ch, picked.get(ch, "")))))
        samples = trip_samples(readings, errors)
    finally:
        db.close()
    used = ", ".join(f"{ch} from {picked[ch]}" for ch in BOTH if ch in picked)
    log = make_log(path, "triplog", samples, errors,
                   f"trip {chosen.id}: times as recorded (s since the trip started); {used or 'no rpm or speed'}")
    if not log.samples:
        return DriveLog(log.name, log.format, (), log.errors, log.time_base, log.refresh_s,
                        f"trip {chosen.id} holds no rpm or speed readings")
    return log


def _main_sources(counts: Iterable[tuple[str, str, int, float]]) -> dict[str, str]:
    """Channel -> the source with the most readings of it, from (channel, source, readings, first t);
    on a tie the one whose first reading came first, then by name."""
    best: dict[str, tuple] = {}
    for channel, source, n, first in counts:
        key = (-n, first, source)
        if channel not in best or key < best[channel]:
            best[channel] = key
    return {channel: key[2] for channel, key in best.items()}


def trip_samples(readings: Iterable[tuple[float, str, float]], errors: Counter | None = None) -> Samples:
    """Samples from (t, channel, value) readings of rpm and speed_kmh in time order: one per reading
    time, fresh where measured, the other channel held (pure; it takes them as they come). A time or
    value that is not a finite number is counted in ``errors`` (kind "number") and skipped."""
    samples = Samples()
    latest = {RPM: None, SPEED: None}
    fresh: set[str] = set()
    now = None
    for t, channel, value in readings:
        try:
            t, value = number(t), number(value)
        except BadRow as bad:
            if errors is not None:
                errors[bad.kind] += 1
            continue
        if t != now:
            if fresh:
                samples.append(Sample(now, latest[SPEED], latest[RPM], None, fresh_channels(fresh)))
                fresh = set()
            now = t
        latest[channel] = value  # a channel read twice at one time: the later row wins
        fresh.add(channel)
    if fresh:
        samples.append(Sample(now, latest[SPEED], latest[RPM], None, fresh_channels(fresh)))
    return samples
