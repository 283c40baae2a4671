"""Engine data from an ELM327 OBD-II adapter.

keidash's own transport talks to the adapter (:mod:`keidash.sources.elm327_link`
for the I/O, :mod:`keidash.sources.elm327` for the replies); python-obd's
command table and decoders turn the data bytes into values. Why not
python-obd's I/O: see docs/obd.md (measured: its ``Async`` delivers under four
rpm+speed pairs a second, connecting sleeps 1 to 3 s, and a frozen adapter
blocks one query for two minutes).

Each poll cycle asks for rpm and speed (in one request on CAN when the
adapter can), then at most one slow value when it is due: coolant, battery
voltage (PID 42, or the adapter's own ATRV when the ECU lacks it) and
throttle, each every ``slow_every_s``. Each value is stamped when its reply
arrived, and vouched for (``max_age``) for about three poll cycles as
measured. Error replies are counted by kind (see
:data:`keidash.sources.elm327.ERROR_KINDS`), never fatal. A silent adapter
is FAILED within a second, an unplugged one at once; the source reconnects
by itself, waiting 0.25 s, then twice as long each time up to 5 s, and at once
when a missing port appears again.

python-obd is imported only in the source's thread: importing it costs a
noticeable fraction of a second on a Pi, and keidash must start without it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

from ..errors import ConfigError
from ..readings import BATTERY, COOLANT, RPM, SPEED, THROTTLE
from .base import CONNECTED, CONNECTING, FAILED, Sink, Source, monotonic
from .elm327 import OK
from .elm327_link import AdapterSettings, AdapterSilent, Elm327, LinkError, LinkLost, LinkStopped

logger = logging.getLogger(__name__)

_ELM327_PROTOCOLS = "123456789A"  # None = let the adapter search

#: what each channel is asked with: python-obd command name and the unit it is emitted in
_FAST = ((RPM, "RPM", "rpm"), (SPEED, "SPEED", "kph"))
_SLOW = ((COOLANT, "COOLANT_TEMP", "degC"), (BATTERY, "CONTROL_MODULE_VOLTAGE", "volt"),
         (THROTTLE, "THROTTLE_POS", "percent"))
#: the slow item that reads the battery from the adapter (ATRV) when the ECU has no PID 42
ADAPTER_VOLTS = "ATRV"

#: a fast value is live for this many poll cycles, as measured ...
MAX_AGE_CYCLES = 3.0
#: ... but never less than this (one late reply must not blank the tach) ...
MIN_FAST_MAX_AGE_S = 0.5
#: ... nor more than this (a crawling link must not pass for a live one)
MAX_FAST_MAX_AGE_S = 2.0
#: until a cycle has been measured
INITIAL_FAST_MAX_AGE_S = 1.0
#: poll cycles in a row without rpm or speed before the ECU counts as gone
EMPTY_CYCLES_LIMIT = 3


def _import_obd():
    """Import python-obd and undo the console handler it installs on import.

    keidash's CLI and journald decide where logs go (STYLE.md). The "obd"
    logger keeps the WARNING level python-obd gives it.
    """
    import obd

    obd_logger = logging.getLogger("obd")
    handler = getattr(obd, "console_handler", None)
    if handler is not None:
        obd_logger.removeHandler(handler)
    return obd


class Backoff:
    """Waits between reconnection attempts: ``first_s``, doubling up to ``cap_s``; reset on success."""

    def __init__(self, first_s: float, cap_s: float):
        self.first_s, self.cap_s = first_s, cap_s
        self._next = first_s

    def next(self) -> float:
        delay = self._next
        self._next = min(2 * delay, self.cap_s)
        return delay

    def reset(self) -> None:
        self._next = self.first_s


class PollPlan:
    """What each poll cycle asks for; pure, so the schedule is tested without a clock.

    ``fast`` PIDs are asked every cycle: in one request when ``multi_pid``,
    else one each. Each ``slow`` item (a PID, or :data:`ADAPTER_VOLTS`) is
    asked every ``slow_every_s``, at most one per cycle so a cycle is never
    held up by more than one extra reply; the most overdue goes first.
    """

    def __init__(self, fast: tuple[int, ...], slow: tuple, slow_every_s: float, multi_pid: bool):
        self.fast = fast
        self.multi_pid = multi_pid and len(fast) > 1
        self.slow_every_s = slow_every_s
        self._next_due = {item: 0.0 for item in slow}  # all due at once, asked one per cycle

    def fast_requests(self) -> list[tuple[int, ...]]:
        if self.multi_pid:
            return [self.fast]
        return [(pid,) for pid in self.fast]

    def slow_due(self, now: float):
        """The slow item to ask this cycle (now marked as asked), or None."""
        if not self._next_due:
            return None
        item = min(self._next_due, key=self._next_due.get)
        if self._next_due[item] > now:
            return None
        self._next_due[item] = now + self.slow_every_s
        return item


@dataclass(frozen=True)
class _Wanted:
    channel: str
    pid: int
    command: object  # python-obd's OBDCommand
    unit: object  # python-obd's pint unit


class ObdSource(Source):
    """An ELM327 adapter on ``port``: ``/dev/ttyUSB0``, ``/dev/rfcomm0``,
    ``socket://192.168.0.10:35000``, a pty...

    ``protocol`` is the ELM327 protocol number as a string ("6" = CAN 11/500,
    "5" = ISO 14230 fast init, "3" = ISO 9141-2...) tried first, or None to
    let the adapter search; the adapter searches too when the configured one
    reaches no ECU. ``timeout`` (s) is the longest silence tolerated inside a
    reply before the adapter counts as frozen; None derives it from
    ``ecu_timeout_ms`` (ATST) and the bus, under 1 s. ``slow_every_s`` is how
    often each slow channel is polled.

    ``headers`` (ATH1), ``ecu_timeout_ms`` (ATST), ``adaptive_timing``
    (ATAT 0/1/2) and ``multi_pid`` set the adapter up (docs/obd.md);
    ``max_poll_hz`` caps the poll rate (None: as fast as the bus answers).
    """

    channels = (RPM, SPEED, COOLANT, BATTERY, THROTTLE)
    #: reconnect backoff (s): first wait, and the cap it doubles up to
    backoff_min_s = 0.25
    backoff_max_s = 5.0

    def __init__(self, name: str, sink: Sink, port: str, protocol: str | None = None,
                 baudrate: int | None = None, timeout: float | None = None, slow_every_s: float = 2.0,
                 *, headers: bool = True, ecu_timeout_ms: int = 100, adaptive_timing: int = 1,
                 multi_pid: bool = True, max_poll_hz: float | None = 50.0):
        super().__init__(name, sink)
        self.port = port
        self.protocol = None if protocol is None else str(protocol).upper()
        if self.protocol is not None and self.protocol not in tuple(_ELM327_PROTOCOLS):
            raise ConfigError(f"unknown OBD protocol {self.protocol!r}: use 1 to 9 or A, "
                              f"or leave it out to let the adapter search")
        if adaptive_timing not in (0, 1, 2):
            raise ConfigError(f"adaptive timing is 0, 1 or 2, not {adaptive_timing!r}")
        if not 4 <= ecu_timeout_ms <= 1020:
            raise ConfigError(f"the ECU timeout is 4 to 1020 ms (ATST steps of 4 ms), not {ecu_timeout_ms!r}")
        self.baudrate = baudrate
        self.timeout = timeout
        self.slow_every_s = slow_every_s
        self.settings = AdapterSettings(protocol=self.protocol, headers=headers, timeout_ms=ecu_timeout_ms,
                                        adaptive_timing=adaptive_timing, silence_s=timeout,
                                        multi_pid=multi_pid)
        self.min_cycle_s = 1.0 / max_poll_hz if max_poll_hz else 0.0
        # What the last connection found, for the status line, the bench and the next try.
        self.connected_info = None  # keidash.sources.elm327_link.Connected
        self.cycle_s: float | None = None  # s, measured poll cycle (rpm and speed once each)
        self._found_protocol: str | None = None  # what the adapter's search found, tried first from then on

    # -- the source thread ------------------------------------------------------
    def run(self) -> None:
        obd = None
        backoff = Backoff(self.backoff_min_s, self.backoff_max_s)
        while not self.stopping.is_set():
            self._set_link(CONNECTING)
            problem = self._check_port()
            if problem:
                self._set_link(FAILED, problem)
            else:
                obd = obd or _import_obd()
                if self._session(obd):
                    backoff.reset()
            self._wait_to_retry(backoff.next())

    def _wait_to_retry(self, delay: float) -> None:
        """Wait ``delay``, or less when the device file, gone meanwhile, is back (plugged in again)."""
        self.wait_to_retry(self.port, delay)

    def _check_port(self) -> str:
        """A plain sentence if the port plainly cannot be opened, else ""."""
        if not self.port.startswith("/"):
            return ""  # a pyserial URL (socket://...): opening it will say
        if not os.path.exists(self.port):
            return f"no OBD adapter at {self.port}: is it plugged in?"
        if not os.access(self.port, os.R_OK | os.W_OK):
            return (f"no permission to open {self.port}: add the user to the dialout group "
                    f"(sudo usermod -aG dialout $USER) and log in again")
        return ""

    def _session(self, obd) -> bool:
        """Connect and poll until the adapter is lost; True if it got connected."""
        wanted = {w.pid: w for w in _wanted(obd)}
        settings = self.settings
        if self._found_protocol is not None:
            settings = dataclasses.replace(settings, protocol=self._found_protocol)
        link = Elm327(self.port, settings, _pid_bytes(obd), self.baudrate, self.stopping)
        try:
            try:
                info = link.connect()
            except LinkError as exc:
                if isinstance(exc, AdapterSilent):
                    self.count_error("no_reply")
                self._set_link(FAILED, str(exc))
                return False
            finally:
                for kind in link.connect_errors:
                    self.count_error(kind)
            if info.searched:
                self._found_protocol = info.protocol  # try it first next time: no search needed
            fast = tuple(pid for channel, pid in ((RPM, 0x0C), (SPEED, 0x0D)) if pid in info.supported)
            if not fast:
                self._set_link(FAILED, "the ECU answers but reports neither rpm nor speed")
                return False
            self.connected_info = info
            logger.info("%s: %s on protocol %s%s, connected in %.2f s%s", self.name, info.banner,
                        info.protocol, " (searched)" if info.searched else "", info.connect_s,
                        ", rpm and speed in one request" if info.multi_pid else "")
            self._set_link(CONNECTED)
            slow = []
            for channel, pid in ((COOLANT, 0x05), (BATTERY, 0x42), (THROTTLE, 0x11)):
                if pid in info.supported:
                    slow.append(pid)
                elif channel == BATTERY:
                    slow.append(ADAPTER_VOLTS)
            plan = PollPlan(fast, tuple(slow), self.slow_every_s, info.multi_pid)
            self._poll(link, plan, wanted)
            return True
        except LinkStopped:
            return False
        except AdapterSilent as exc:
            self.count_error("no_reply")
            self._set_link(FAILED, str(exc))
            return True
        except LinkLost as exc:
            self._set_link(FAILED, str(exc))
            return True
        finally:
            link.close()

    # -- polling -----------------------------------------------------------------
    def _poll(self, link: Elm327, plan: PollPlan, wanted: dict) -> None:
        """Poll until stopped; raises LinkError subclasses when the adapter is lost."""
        self.cycle_s = None
        empty_cycles = 0
        while not self.stopping.is_set():
            cycle_start = monotonic()
            fast_max_age = self._fast_max_age()
            got_fast = False
            for pids in plan.fast_requests():
                reply, t = link.query(pids)
                got_fast |= self._take(reply, t, wanted, fast_max_age)
            item = plan.slow_due(cycle_start)
            if item == ADAPTER_VOLTS:
                volts, t = link.voltage()
                if volts is None:
                    self.count_error("garbage")
                else:
                    self.emit(t, BATTERY, volts, self._slow_max_age(fast_max_age))
            elif item is not None:
                reply, t = link.query((item,))
                self._take(reply, t, wanted, self._slow_max_age(fast_max_age))
            empty_cycles = 0 if got_fast else empty_cycles + 1
            if empty_cycles >= EMPTY_CYCLES_LIMIT:
                self._set_link(FAILED, "the ECU stopped answering: is the ignition on?")
                return
            elapsed = monotonic() - cycle_start
            if elapsed < self.min_cycle_s:
                self.stopping.wait(self.min_cycle_s - elapsed)
            if got_fast:
                cycle = monotonic() - cycle_start
                self.cycle_s = cycle if self.cycle_s is None else 0.8 * self.cycle_s + 0.2 * cycle

    def _take(self, reply, t: float, wanted: dict, max_age: float) -> bool:
        """Count the reply's errors and emit its values; True if any value came."""
        for kind in dict.fromkeys(reply.errors or ((reply.kind,) if reply.kind != OK else ())):
            self.count_error(kind)
        if "adapter_reset" in reply.errors:
            # Power dip at cranking: the chip restarted with echo on and headers off.
            raise LinkLost(f"the OBD adapter at {self.port} restarted; setting it up again")
        emitted = False
        for pid, data in reply.values.items():
            w = wanted.get(pid)
            if w is None:
                continue
            try:
                value = _decode(w, data)
            except Exception:  # a decoder that chokes on odd bytes must not end the connection
                logger.debug("%s: cannot decode PID %02X from %s", self.name, pid, data.hex(), exc_info=True)
                self.count_error("garbage")
                continue
            self.emit(t, w.channel, value, max_age)
            emitted = True
        return emitted

    def _fast_max_age(self) -> float:
        if self.cycle_s is None:
            return INITIAL_FAST_MAX_AGE_S
        return min(MAX_FAST_MAX_AGE_S, max(MIN_FAST_MAX_AGE_S, MAX_AGE_CYCLES * self.cycle_s))

    def _slow_max_age(self, fast_max_age: float) -> float:
        # A slow value is vouched for until two of its polls have been missed.
        return 2 * self.slow_every_s + fast_max_age

    def _set_link(self, link: str, message: str = "") -> None:
        # After stop() the link stays STOPPED, whatever a late reply says.
        if not self.stopping.is_set():
            self.set_link(link, message)


def _wanted(obd) -> list[_Wanted]:
    """Every channel with its PID, python-obd command and unit."""
    out = []
    for channel, name, unit in _FAST + _SLOW:
        command = obd.commands[name]
        out.append(_Wanted(channel, command.pid, command, getattr(obd.Unit, unit)))
    return out


def _pid_bytes(obd) -> dict[int, int]:
    """Each mode 01 PID's data length, from python-obd's command table."""
    return {cmd.pid: cmd.bytes - 2 for cmd in obd.commands[1] if cmd is not None and cmd.bytes > 2}


def _decode(wanted: _Wanted, data: bytes) -> float:
    """One PID's data bytes as a number in the channel's unit, by python-obd's decoder."""
    from obd.protocols.protocol import Message

    message = Message([])
    message.data = bytearray([0x41, wanted.pid]) + data
    return float(wanted.command.decode([message]).to(wanted.unit).magnitude)
