"""keidash's own trip log (SQLite, issue 7) as a replay format: ``keidash replay trip.db``.

A trip log holds every reading the sources delivered, stamped with seconds
since the trip started. Replay takes the rpm and speed_kmh readings of one
trip (the last one by default) and turns them into samples: readings at the
same time become one sample with both channels fresh; a sample where only one
channel was measured holds the other's last value, not fresh, exactly as a
logger that polls them apart. When two sources measured the same channel
(OBD speed and GPS speed, say) the one with more readings in the trip is
replayed, so two speeds never fight over one gauge. The dash's own frames
(its gear and cues) are not replayed: they were its answer, and a replay asks
the estimator again.

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
from .log import BOTH, DriveLog, Sample, Samples, make_log

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
    from ..triplog.reading import channel_readings, find_trip, open_trip_log  # late: keidash.triplog.reading is the bigger module

    path = os.fspath(path)
    db = open_trip_log(path)
    try:
        chosen = find_trip(db, trip, path)
        by_channel = {ch: channel_readings(db, chosen.id, ch, path) for ch in BOTH}
    finally:
        db.close()
    picked = {ch: _main_source(rows) for ch, rows in by_channel.items()}
    samples = trip_samples({ch: [(t, v) for t, v, src in rows if src == picked[ch]]
                            for ch, rows in by_channel.items()})
    used = ", ".join(f"{ch} from {src}" for ch, src in picked.items() if src)
    log = make_log(path, "triplog", samples, Counter(),
                   f"trip {chosen.id}: times as recorded (s since the trip started); {used or 'no rpm or speed'}")
    if not log.samples:
        return DriveLog(log.name, log.format, (), log.errors, log.time_base, log.refresh_s,
                        f"trip {chosen.id} holds no rpm or speed readings")
    return log


def _main_source(rows: list[tuple[float, float, str]]) -> str:
    """The source with the most readings (the first seen on a tie); '' when none."""
    counts = Counter(src for _, _, src in rows)
    if not counts:
        return ""
    most = max(counts.values())
    return next(src for _, _, src in rows if counts[src] == most)


def trip_samples(channels: dict[str, list[tuple[float, float]]]) -> Samples:
    """Samples from (t, value) readings per channel: one per reading time, fresh where measured (pure)."""
    events = sorted((t, ch, v) for ch, rows in channels.items() for t, v in rows)
    samples = Samples()
    latest: dict[str, float] = {}
    k = 0
    while k < len(events):
        t = events[k][0]
        fresh = set()
        while k < len(events) and events[k][0] == t:
            _, ch, value = events[k]
            latest[ch] = value  # a channel read twice at one time: the later row wins
            fresh.add(ch)
            k += 1
        samples.append(Sample(t, latest.get(SPEED), latest.get(RPM), None,
                              tuple(ch for ch in BOTH if ch in fresh)))
    return samples
