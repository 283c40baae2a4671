"""The log formats keidash can replay, chosen by name or recognised from the file's start.

Each format is a :class:`LogFormat`: a ``sniff`` that looks at the first lines
and a pure ``read(lines, name, **options) -> DriveLog``. To add one (keidash's
own SQLite trip log will be next), write a module with those two functions and
:func:`register` it; ``load_log``, ``replay://`` URLs and ``keidash replay``
pick it up by name.
"""

from __future__ import annotations

import itertools
import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from ..errors import ConfigError
from . import carobd, generic, openxc, torque, triplog
from .log import DriveLog, _kinds

AUTO = "auto"
#: lines handed to each sniff
HEAD_LINES = 5


@dataclass(frozen=True)
class LogFormat:
    name: str  # as given to --format / ?format=
    description: str
    sniff: Callable[[list[str]], bool] | None  # first non-empty lines -> is it this format? None: never guessed
    read: Callable[..., DriveLog]  # read(lines, name, **options)
    options: tuple[str, ...] = ()  # keyword options read() takes


FORMATS: dict[str, LogFormat] = {}


def register(fmt: LogFormat) -> None:
    """Add a format; formats with a sniff are tried in the order registered."""
    FORMATS[fmt.name] = fmt


register(LogFormat("carobd", "carOBD CSV (ENGINE_RUN_TINE, ENGINE_RPM, VEHICLE_SPEED)", carobd.sniff, carobd.read))
register(LogFormat("openxc", "OpenXC trace, one JSON message per line, timed or untimed", openxc.sniff, openxc.read))
register(LogFormat("torque", "Torque Pro CSV export (GPS Time, Device Time, ...)", torque.sniff, torque.read))
# after the specific formats, so a carOBD or Torque header keeps its own reader
register(LogFormat("csv", "any CSV whose header names time and speed (and rpm, gear) in the usual ways, or "
                          "through columns=time=COL,speed=COL[,rpm=COL][,gear=COL]",
                   generic.sniff, generic.read, ("columns", "speed_unit")))
register(LogFormat("triplog", "keidash trip log (SQLite): the last trip's rpm and speed readings",
                   triplog.sniff, triplog.read, ("trip",)))


def format_names() -> str:
    return ", ".join(FORMATS)


def detect_format(head: list[str], name: str = "log") -> str:
    """The registered format whose sniff recognises these first lines, or ConfigError."""
    lines = [line for line in head if line.strip()][:HEAD_LINES]
    for fmt in FORMATS.values():
        if fmt.sniff is not None and fmt.sniff(lines):
            return fmt.name
    if _binary(lines):  # a program, an image, a zip renamed .csv: no excerpt of its bytes
        raise ConfigError(f"{name}: unknown log format (it is not text: a binary file, not a drive log); "
                          f"keidash replays {format_names()} logs")
    first = lines[0].strip() if lines else ""
    shown = first if len(first) <= 60 else first[:57] + "..."
    raise ConfigError(f"{name}: unknown log format (it starts {shown!r}); give format= one of "
                      f"{format_names()}, with columns=time=COL,speed=COL[,rpm=COL] for a plain CSV")


def _binary(lines: list[str]) -> bool:
    """True when the first lines are not text: NUL bytes, undecodable bytes (read as U+FFFD) or
    more than a few control characters, which a log's header never holds."""
    text = "\n".join(lines)[:2000]
    if not text:
        return False
    controls = sum(1 for c in text if not c.isprintable() and c not in "\t\n\r\ufffd")
    undecodable = text.count("\ufffd")  # a Latin-1 degree sign is one now and then; a binary, many
    return "\x00" in text or controls > max(2, len(text) // 50) or undecodable > max(8, len(text) // 10)


#: what a path that is no regular file is, for the sentence refusing it
_NOT_A_FILE = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
               (stat.S_ISSOCK, "a socket"))


def read_text(path: str) -> Iterator[str]:
    """The file's lines (without line ends), streamed: leading blank lines skipped, the file
    read as the lines are taken, so memory does not grow with the file.

    Raises ConfigError at once, saying plainly why, for a missing, unreadable or empty file and
    for anything that is not a regular file (a FIFO would block forever, /dev/zero never ends).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigError(f"no log at {path}: check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {_reason(exc)}") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{path} is a folder; name a log file in it")
    kind = next((what for test, what in _NOT_A_FILE if test(mode)), None)
    if kind is not None or not stat.S_ISREG(mode):
        raise ConfigError(f"{path} is {kind or 'not a regular file'}, not a log file: name a recorded drive")
    try:
        f = open(path, encoding="utf-8-sig", errors="replace", newline="")
    except PermissionError:
        raise ConfigError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {_reason(exc)}") from None
    try:
        first = next((line for line in f if line.strip()), None)
    except OSError as exc:
        f.close()
        raise ConfigError(f"cannot read {path}: {_reason(exc)}") from None
    if first is None:
        f.close()
        raise ConfigError(f"{path} is empty: there is no drive to replay")
    return _lines(f, first, path)


def _lines(f, first: str, path: str) -> Iterator[str]:
    with f:
        yield first.rstrip("\r\n")
        try:
            for line in f:
                yield line.rstrip("\r\n")
        except OSError as exc:  # the card failing mid-file
            raise ConfigError(f"cannot read {path}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def read_lines(lines: Iterable[str], name: str = "log", format: str = AUTO, columns=None,
               speed_unit: str | None = None) -> DriveLog:
    """Lines of a log -> DriveLog (no file access); see :func:`load_log`. The lines are taken
    once, in order: an iterator streams (only the first 50 are held to recognise the format)."""
    lines = iter(lines)
    head = list(itertools.islice(lines, 50))
    lines = itertools.chain(head, lines)
    if format == AUTO:
        format = "csv" if columns is not None else detect_format(head, name)
    if format not in FORMATS:
        raise ConfigError(f"unknown log format {format!r}; use {AUTO} or one of {format_names()}")
    fmt = FORMATS[format]
    if fmt.name != "triplog" and _binary([line for line in head if line.strip()][:HEAD_LINES]):
        raise ConfigError(f"{name}: it is not text (a binary file), so it cannot be read as format {format}")
    options = {k: v for k, v in (("columns", columns), ("speed_unit", speed_unit)) if v is not None}
    extra = sorted(set(options) - set(fmt.options))
    if extra:
        raise ConfigError(f"{name}: {extra[0]} only applies to a plain CSV (format csv), not to {format}")
    log = fmt.read(lines, name, **options)
    if not log.samples and log.hint:
        raise ConfigError(f"{name}: {log.hint}")
    if not log.samples:
        bad = f" ({log.bad_rows} bad rows: {_kinds(log.errors)})" if log.bad_rows else ""
        raise ConfigError(f"{name} holds no usable rpm or speed samples{bad}")
    return log


def load_log(path: str | os.PathLike, format: str = AUTO, columns=None, speed_unit: str | None = None) -> DriveLog:
    """Read a drive log into samples.

    ``format`` is a registered name or ``auto`` (recognised from the header;
    ``columns`` alone means a plain CSV). ``columns`` is
    ``time=COL,speed=COL[,rpm=COL][,gear=COL]`` (a string or :class:`Columns`),
    ``speed_unit`` one of kmh, mph, ms (plain CSV only; default kmh). Raises
    ConfigError with one sentence for a missing, unreadable, empty or unknown
    file and for a missing column; bad rows are counted in ``errors``.
    """
    path = os.fspath(path)
    return read_lines(read_text(path), path, format, columns, speed_unit)

