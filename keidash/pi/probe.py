"""``keidash probe URL``: open one source, listen for a while, report per channel.

:func:`probe` opens the source named by ``URL`` through :func:`keidash.rig.open_rig`
(a ``sim://`` URL brings up the virtual truck and all its sources), collects
what arrives for ``seconds`` and returns one JSON-ready dict:

.. code-block:: json

    {
      "rpm":       {"hz": 19.9, "errors": 0, "readings": 99, "source": "pulses",
                    "last": 2512.4, "min": 848.2, "max": 2515.0},
      "speed_kmh": {"hz": 19.9, "errors": 0, "readings": 99, "source": "pulses", "...": "...",
                    "by_source": {"pulses": {"hz": 19.9, "errors": 0, "readings": 99, "...": "..."},
                                  "obd": {"...": "..."}, "gps": {"...": "..."}}},
      "sources":   {"pulses": {"link": "connected", "message": "", "connect_s": 0.01,
                               "errors": {}, "readings": 198, "channels": ["rpm", "speed_kmh"]}}
    }

Every top-level key but ``"sources"`` is a channel: each channel the opened
sources deliver (declared or seen), with

- ``hz``: readings per second while they came, (n - 1) / (last t - first t); 0.0 below two readings
- ``errors``: errors counted by the source delivering the channel, all kinds summed
  (sources count errors per kind, not per channel; the kinds are under ``sources``)
- ``readings``: how many arrived; ``last``, ``min``, ``max``: their values (None without any)
- ``source``: which source these figures are for: the first source, in the rig's
  order, that delivers the channel (the one the dash prefers)
- ``by_source``: the same figures for each source, only when several deliver the channel

``sources`` has, per source: ``link`` (connecting, connected, failed, stopped) and
``message`` as the source last reported them (before the probe stopped it),
``connect_s`` (seconds until it first connected, None if it never did),
``errors`` by kind, ``readings`` in all, and the ``channels`` it declares.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import ConfigError, KeidashError
from ..readings import CHANNELS, Reading
from ..rig import open_rig
from ..sources.base import CONNECTED

#: what a source opened by URL is called in the report, by URL scheme
SOURCE_NAMES = {"obd": "obd", "nmea": "gps", "pulses": "pulses", "sim": "sim"}
#: how often the probe drains the bus and looks at the links (s)
POLL_S = 0.05


@dataclass
class _Tally:
    count: int = 0
    first_t: float = math.nan
    last_t: float = math.nan
    last: float | None = None
    low: float = math.inf
    high: float = -math.inf

    def add(self, reading: Reading) -> None:
        if self.count == 0:
            self.first_t = reading.t
        self.count += 1
        self.last_t = reading.t
        self.last = reading.value
        self.low = min(self.low, reading.value)
        self.high = max(self.high, reading.value)

    def hz(self) -> float:
        span = self.last_t - self.first_t
        return (self.count - 1) / span if self.count >= 2 and span > 0 else 0.0


@dataclass
class _SourceWatch:
    started: float
    connect_s: float | None = None
    tallies: dict[str, _Tally] = field(default_factory=dict)


def _number(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def probe(url: str, seconds: float, profile=None) -> dict:
    """Open the source(s) named by ``url``, listen ``seconds`` (or until a replayed log has
    played to its end) and report (see the module doc).

    A bad URL raises :class:`~keidash.errors.ConfigError` with one sentence; a
    device that cannot be opened is not an error here: its source reports
    ``failed`` and the reason in ``message``.
    """
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"probe for how long? --seconds must be above 0, not {seconds!r}")
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme not in SOURCE_NAMES and scheme != "replay":
        raise ConfigError(not_a_source_url(url))
    rig = open_rig({SOURCE_NAMES.get(scheme, scheme or "source"): url}, profile)
    watches: dict[str, _SourceWatch] = {}
    try:
        rig.start()
        start = time.monotonic()
        watches = {source.name: _SourceWatch(start) for source in rig.sources}
        deadline = start + seconds
        while True:
            now = time.monotonic()
            _collect(rig, watches, now)
            if now >= deadline or rig.finished():  # a replayed log played to its end has no more to say
                break
            time.sleep(min(POLL_S, max(0.0, deadline - now)))
        statuses = [source.status() for source in rig.sources]  # before stop() makes them "stopped"
    finally:
        rig.stop()
    _collect(rig, watches, time.monotonic())  # whatever was put on the bus while stopping
    return _report(rig.sources, statuses, watches)


#: ports that are a GPS more often than an OBD adapter: the Pi's UART, u-blox USB (ACM), gpsd's names
GPS_LIKE = ("/dev/serial", "/dev/ttyAMA", "/dev/ttyS", "/dev/ttyACM", "/dev/gps")
EXAMPLES = "obd:///dev/ttyUSB0, nmea:///dev/serial0 or pulses://gpio?tach=17"


def not_a_source_url(url) -> str:
    """One sentence for what is not a source URL: a bare port gets its URL suggested."""
    text = str(url)
    if text.startswith("/dev/") or text.startswith("tty"):
        port = text if text.startswith("/") else f"/dev/{text}"
        if port.startswith(GPS_LIKE):
            return (f"{text} is a port, not a URL: probe nmea://{port} for a GPS "
                    f"(or obd://{port} for an OBD adapter)")
        return (f"{text} is a port, not a URL: probe obd://{port} for an OBD adapter "
                f"(or nmea://{port} for a GPS)")
    scheme = urlsplit(text).scheme
    if scheme:
        return f"unknown URL scheme {scheme!r} in {text}; probe a URL like {EXAMPLES}"
    return f"{text!r} is not a source URL; probe a URL like {EXAMPLES}"


def device_port(url: str) -> str | None:
    """The device file an obd:// or nmea:// URL opens (None for a socket, GPIO or the virtual truck)."""
    parts = urlsplit(url)
    if parts.scheme not in ("obd", "nmea") or url.startswith("obd://socket://"):
        return None
    port = parts.netloc + parts.path
    return port if port.startswith("/") else None


def same_node(a, b) -> bool:
    """The same device node: a process in another mount namespace (a container) can hold a
    /dev/pts/0 of its own, which reads as the same path."""
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def port_holders(port: str, proc: str = "/proc") -> list[tuple[int, str]]:
    """(PID, name) of every other process with ``port`` open, as far as /proc lets this user see."""
    import os
    try:
        target = os.path.realpath(port)
        node = os.stat(target)
        pids = [int(entry) for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return []
    holders = []
    for pid in sorted(pids):
        if pid == os.getpid():
            continue
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or another user's (not ours to see)
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target and same_node(os.stat(f"{fd_dir}/{fd}"), node):
                    break
            except OSError:
                continue
        else:
            continue
        try:
            with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as f:
                name = f.read().strip() or "?"
        except OSError:
            name = "?"
        holders.append((pid, name))
    return holders


def port_in_use(port: str) -> str | None:
    """One sentence when another program has ``port``: "in use by PID N (name)" when /proc shows
    who, "in use by another program" when only the port says so (opened exclusively or locked)."""
    holders = port_holders(port)
    if holders:
        who = ", ".join(f"PID {pid} ({name})" for pid, name in holders[:3])
        return f"{port} is in use by {who}: stop it, then probe again"
    import errno
    import fcntl
    import os
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.EBUSY:  # TIOCEXCL: another program opened it exclusively
            return f"{port} is in use by another program: stop it, then probe again"
        return None  # missing, no permission: the source says so in its own words
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # pyserial's exclusive=True, lockers like gpsd
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return f"{port} is in use by another program: stop it, then probe again"
    finally:
        os.close(fd)  # closing drops our lock too
    return None


def _collect(rig, watches: dict[str, _SourceWatch], now: float) -> None:
    for reading in rig.bus.drain():
        watch = watches.get(reading.source)
        if watch is not None:
            watch.tallies.setdefault(reading.channel, _Tally()).add(reading)
    for source in rig.sources:
        watch = watches[source.name]
        if watch.connect_s is None and source.status().link == CONNECTED:
            watch.connect_s = now - watch.started


def _figures(tally: _Tally | None, errors: int) -> dict:
    tally = tally or _Tally()
    count = tally.count
    return {"hz": round(tally.hz(), 2), "errors": errors, "readings": count,
            "last": _number(tally.last, 3), "min": _number(tally.low, 3) if count else None,
            "max": _number(tally.high, 3) if count else None}


def _report(sources, statuses, watches: dict[str, _SourceWatch]) -> dict:
    delivered: dict[str, list[str]] = {}  # channel -> sources delivering it, in the rig's order
    for source in sources:
        seen = watches[source.name].tallies if source.name in watches else {}
        for channel in list(source.channels) + [c for c in seen if c not in source.channels]:
            delivered.setdefault(channel, [])
            if source.name not in delivered[channel]:
                delivered[channel].append(source.name)
    order = [c for c in CHANNELS if c in delivered] + sorted(c for c in delivered if c not in CHANNELS)
    errors = {status.name: sum(status.errors.values()) for status in statuses}
    report: dict = {}
    for channel in order:
        names = delivered[channel]
        figures = {name: _figures(watches[name].tallies.get(channel) if name in watches else None,
                                  errors.get(name, 0)) for name in names}
        # The preferred source is the first in the rig's order that actually delivered.
        primary = next((name for name in names if figures[name]["readings"]), names[0])
        entry = dict(figures[primary], source=primary)
        if len(names) > 1:
            entry["by_source"] = figures
        report[channel] = entry
    def connect_s(name: str) -> float | None:
        return _number(watches[name].connect_s, 2) if name in watches else None

    report["sources"] = {
        status.name: {"link": status.link, "message": status.message, "connect_s": connect_s(status.name),
                      "errors": dict(sorted(status.errors.items())), "readings": status.readings,
                      "channels": list(source.channels)}
        for source, status in zip(sources, statuses)}
    return report


def _value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def format_probe(result: dict) -> str:
    """The probe's result as the aligned text ``keidash probe`` prints without ``--json``."""
    lines = []
    sources = result.get("sources", {})
    rows = [("source", "link", "connect", "readings", "errors", "message")]
    for name, info in sources.items():
        connect = "-" if info.get("connect_s") is None else f"{info['connect_s']:.1f} s"
        kinds = ", ".join(f"{kind} {count}" for kind, count in info.get("errors", {}).items())
        errors = str(sum(info.get("errors", {}).values())) + (f" ({kinds})" if kinds else "")
        rows.append((name, info.get("link", ""), connect, str(info.get("readings", 0)), errors,
                     info.get("message", "")))
    lines += _table(rows)
    lines.append("")
    rows = [("channel", "source", "rate", "readings", "errors", "last", "min", "max")]
    for channel, entry in result.items():
        if channel == "sources":
            continue
        per_source = entry.get("by_source") or {entry.get("source", ""): entry}
        for i, (name, figures) in enumerate(per_source.items()):
            rows.append((channel if i == 0 else "", name, f"{figures['hz']:.1f} Hz", str(figures["readings"]),
                         str(figures["errors"]), _value(figures.get("last")), _value(figures.get("min")),
                         _value(figures.get("max"))))
    lines += _table(rows)
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def probe_main(url: str, seconds: float, json_out: bool = False, profile_name: str | None = None) -> int:
    """``keidash probe``: exit status 0 when some reading arrived, 1 when none did (the report says why)."""
    import json

    from ..profiles import load_profile
    profile = load_profile(profile_name) if profile_name else None
    port = device_port(url) if isinstance(url, str) else None
    busy = port_in_use(port) if port else None
    if busy:  # another program reading the port takes the adapter's replies: it would look unplugged
        raise KeidashError(busy)
    result = probe(url, seconds, profile)
    print(json.dumps(result, indent=1) if json_out else format_probe(result))
    return 0 if any(s.get("readings") for s in result.get("sources", {}).values()) else 1
