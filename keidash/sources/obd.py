"""Engine data from an ELM327 OBD-II adapter, through python-obd.

rpm and speed are polled every cycle; coolant, battery voltage and throttle
every ``slow_every_s``. Each value is stamped when its reply arrived. NO DATA
and garbled replies are counted, never fatal. A lost or silent adapter ends
:meth:`ObdSource.run` with FAILED and one plain sentence; the base class
retries, so an adapter that is plugged back in comes back by itself.

python-obd is imported only when the source runs: importing it costs a
noticeable fraction of a second on a Pi, and keidash must start without it.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from ..errors import ConfigError
from ..readings import BATTERY, COOLANT, RPM, SPEED, THROTTLE
from .base import CONNECTED, CONNECTING, FAILED, Sink, Source, monotonic

logger = logging.getLogger(__name__)

_FAST_MAX_AGE_S = 1.0  # rpm and speed come several times a second
_EMPTY_CYCLES_LIMIT = 3  # cycles in a row without rpm or speed before giving up
_ELM327_PROTOCOLS = "123456789A"  # what python-obd can parse; None = search


def _import_obd():
    """Import python-obd and undo the console handler it installs on import.

    keidash's CLI and journald decide where logs go (STYLE.md). The "obd"
    logger keeps the WARNING level python-obd gives it: at INFO it writes one
    line per query.
    """
    import obd

    obd_logger = logging.getLogger("obd")
    handler = getattr(obd, "console_handler", None)
    if handler is not None:
        obd_logger.removeHandler(handler)
    return obd


class _ErrorCapture(logging.Handler):
    """Collects python-obd's error messages from one thread while it connects.

    python-obd reports why a connection failed only in its log; keidash
    needs the reason to tell the driver what to do.
    """

    def __init__(self):
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


class _ReplyRecorder:
    """Stands in for python-obd's ELM327 interface and keeps the last reply.

    ``OBD.query`` drops the adapter's own messages (NO DATA, CAN ERROR...)
    before handing back a response, so without this a silent adapter and a
    NO DATA could not be told apart. Everything else is passed through.
    """

    def __init__(self, interface):
        self._interface = interface
        self.messages: list | None = None  # None: nothing sent since the last query began

    def send_and_parse(self, cmd):
        self.messages = self._interface.send_and_parse(cmd)
        return self.messages

    def __getattr__(self, name):
        return getattr(self._interface, name)


class ObdSource(Source):
    """An ELM327 adapter on ``port`` (``/dev/ttyUSB0``, ``/dev/rfcomm0``, a pty...).

    ``protocol`` is the ELM327 protocol number as a string ("6" = CAN 11/500,
    "5" = KWP fast, "3" = ISO 9141-2...) or None to let the adapter search.
    ``timeout`` (s) is the longest silence tolerated inside one reply once
    connected; ``slow_every_s`` is how often the slow channels are polled.
    """

    channels = (RPM, SPEED, COOLANT, BATTERY, THROTTLE)
    #: shortest poll cycle (s): a fast adapter need not burn the Pi's CPU
    #: faster than the display can show
    min_cycle_s = 0.05

    def __init__(self, name: str, sink: Sink, port: str, protocol: str | None = None,
                 baudrate: int | None = None, timeout: float = 1.0, slow_every_s: float = 2.0):
        super().__init__(name, sink)
        self.port = port
        self.protocol = None if protocol is None else str(protocol).upper()
        if self.protocol is not None and self.protocol not in tuple(_ELM327_PROTOCOLS):
            raise ConfigError(f"unknown OBD protocol {self.protocol!r}: use 1 to 9 or A, "
                              f"or leave it out to let the adapter search")
        self.baudrate = baudrate
        self.timeout = timeout
        self.slow_every_s = slow_every_s
        # The pyserial port python-obd opened, so stop() can interrupt a read.
        self._serial = None
        self._serial_lock = threading.Lock()

    # -- the source thread ----------------------------------------------------
    def run(self) -> None:
        self._set_link(CONNECTING)
        problem = self._check_port()
        if problem:
            self._set_link(FAILED, problem)
            return
        obd = _import_obd()
        connection = self._connect(obd)
        if connection is None:
            return
        try:
            self._set_link(CONNECTED)
            self._poll(obd, connection)
        finally:
            self._close(connection)

    def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        # python-obd waits in blocking serial reads and, when nothing comes,
        # retries ten times. pyserial's cancel_read() is its documented way to
        # end a blocked read from another thread; keep cancelling until the
        # source thread notices `stopping`.
        deadline = time.monotonic() + timeout
        thread = self._thread
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:
            self._cancel_read()
            thread.join(0.05)
        super().stop(max(0.0, deadline - time.monotonic()))

    # -- connecting ------------------------------------------------------------
    def _check_port(self) -> str:
        """A plain sentence if the port plainly cannot be opened, else ""."""
        if not self.port.startswith("/"):
            return ""  # a pyserial URL (socket://...): python-obd will say
        if not os.path.exists(self.port):
            return self._missing()
        if not os.access(self.port, os.R_OK | os.W_OK):
            return self._no_permission()
        return ""

    def _missing(self) -> str:
        return f"no OBD adapter at {self.port}: is it plugged in?"

    def _no_permission(self) -> str:
        return (f"no permission to open {self.port}: add the user to the dialout group "
                f"(sudo usermod -aG dialout $USER) and log in again")

    def _connect(self, obd):
        """An open python-obd connection that reaches the engine ECU, or None
        after setting FAILED with the reason."""
        capture = _ErrorCapture()
        obd_logger = logging.getLogger("obd")
        obd_logger.addHandler(capture)
        try:
            connection = obd.OBD(self.port, baudrate=self.baudrate, protocol=self.protocol,
                                 fast=True, timeout=self.timeout)
        finally:
            obd_logger.removeHandler(capture)
        status = connection.status()
        problem = ""
        if status == obd.OBDStatus.NOT_CONNECTED:
            problem = self._explain_open_failure(capture.messages)
        elif status == obd.OBDStatus.ELM_CONNECTED:
            problem = (f"the OBD adapter at {self.port} reads no battery voltage: "
                       f"is it pushed fully into the OBD socket?")
        elif status == obd.OBDStatus.OBD_CONNECTED:
            problem = "adapter found but the ECU does not answer: is the ignition on?"
        elif not (connection.supports(obd.commands.RPM) or connection.supports(obd.commands.SPEED)):
            # A manual protocol "connects" even when nobody answers 0100;
            # then the ECU has announced no PIDs beyond python-obd's base set.
            if len(connection.supported_commands) > len(obd.commands.base_commands()):
                problem = "the ECU answers but reports neither rpm nor speed"
            else:
                problem = "adapter found but the ECU does not answer: is the ignition on?"
        if problem or self.stopping.is_set():
            self._set_link(FAILED, problem)
            connection.close()
            return None
        serial_port = getattr(connection.interface, "_ELM327__port", None)
        if serial_port is not None:
            # python-obd reads with a fixed 10 s timeout and retries ten times,
            # so a hung adapter would block each query for almost two minutes.
            serial_port.timeout = self.timeout
        with self._serial_lock:
            self._serial = serial_port
        connection.interface = _ReplyRecorder(connection.interface)
        return connection

    def _explain_open_failure(self, errors: list[str]) -> str:
        text = " ".join(errors)
        if "Errno 13" in text or "Permission denied" in text:
            return self._no_permission()
        if "Errno 2" in text or "No such file" in text:
            return self._missing()
        return (f"the device at {self.port} does not answer like an ELM327 OBD adapter: "
                f"is it the right port?")

    def _close(self, connection) -> None:
        with self._serial_lock:
            self._serial = None
        try:
            connection.close()
        except Exception:  # the port may already be gone; nothing left to save
            logger.debug("%s: closing the OBD connection failed", self.name, exc_info=True)

    def _cancel_read(self) -> None:
        # The lock keeps this away from our own close (see _close). python-obd
        # also closes the port by itself when a read or write fails; then
        # cancel_read() is a no-op or fails, which is harmless.
        with self._serial_lock:
            if self._serial is None:
                return
            try:
                self._serial.cancel_read()
            except (OSError, TypeError, AttributeError):
                pass

    # -- polling -----------------------------------------------------------------
    def _poll(self, obd, connection) -> None:
        commands = obd.commands
        fast = [(cmd, channel, unit) for cmd, channel, unit in (
            (commands.RPM, RPM, obd.Unit.rpm),
            (commands.SPEED, SPEED, obd.Unit.kph),
        ) if connection.supports(cmd)]
        slow = [(cmd, channel, unit) for cmd, channel, unit in (
            (commands.COOLANT_TEMP, COOLANT, obd.Unit.degC),
            (commands.CONTROL_MODULE_VOLTAGE, BATTERY, obd.Unit.volt),
            (commands.THROTTLE_POS, THROTTLE, obd.Unit.percent),
        ) if connection.supports(cmd)]
        # A slow value is vouched for until two slow polls have been missed.
        slow_max_age = 2 * self.slow_every_s + _FAST_MAX_AGE_S
        next_slow = 0.0
        empty_cycles = 0
        while not self.stopping.is_set():
            cycle_start = monotonic()
            got_fast, outcome = False, ""
            for cmd, channel, unit in fast:
                outcome = self._query(connection, cmd, channel, unit, _FAST_MAX_AGE_S)
                got_fast |= outcome == "ok"
                if outcome == "no_reply":
                    break  # a silent adapter costs seconds per query: do not ask it more
            if outcome != "no_reply" and cycle_start >= next_slow:
                next_slow = cycle_start + self.slow_every_s
                for cmd, channel, unit in slow:
                    self._query(connection, cmd, channel, unit, slow_max_age)
            if connection.status() == obd.OBDStatus.NOT_CONNECTED:
                self._set_link(FAILED, f"lost the OBD adapter at {self.port}: was it unplugged?")
                return
            empty_cycles = 0 if got_fast else empty_cycles + 1
            if empty_cycles >= _EMPTY_CYCLES_LIMIT:
                if outcome == "no_reply":
                    self._set_link(FAILED, f"the OBD adapter at {self.port} stopped answering")
                else:
                    self._set_link(FAILED, "the ECU stopped answering: is the ignition on?")
                return
            self.stopping.wait(self.min_cycle_s - (monotonic() - cycle_start))

    def _query(self, connection, cmd, channel: str, unit, max_age: float) -> str:
        """Ask for one value and emit it; returns "ok" or the error kind counted."""
        if self.stopping.is_set():
            return "stopped"
        recorder = connection.interface
        recorder.messages = None
        try:
            response = connection.query(cmd)
            t = monotonic()
            if response.is_null():
                kind = _error_kind(recorder.messages)
            else:
                self.emit(t, channel, response.value.to(unit).magnitude, max_age)
                return "ok"
        except Exception:  # a garbled reply must not end the connection
            logger.debug("%s: %s failed", self.name, cmd.name, exc_info=True)
            kind = "bad_reply"
        self.count_error(kind)
        return kind

    def _set_link(self, link: str, message: str = "") -> None:
        # After stop() the link stays STOPPED, whatever a late query says.
        if not self.stopping.is_set():
            self.set_link(link, message)


def _error_kind(messages) -> str:
    """Why a query gave no value, as counted in the source's status:

    "no_reply"  the adapter said nothing (hung, or the line is dead)
    "no_data"   the adapter said NO DATA (the ECU did not answer that PID)
    "elm_error" the adapter said something else (CAN ERROR, BUS INIT: ...ERROR, ?)
    "bad_reply" hex came back but not a usable answer
    """
    if not messages:  # None when python-obd had no port left to send on
        return "no_reply"
    if any("NO DATA" in m.raw() for m in messages):
        return "no_data"
    if any(not m.parsed() for m in messages):
        return "elm_error"
    return "bad_reply"
