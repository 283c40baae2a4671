"""The ignition watch: power the Pi off cleanly a little while after the key is turned off.

A kei truck's 12 V accessory line dies at every key-off and dips at every crank. With the
Pi fed from a supply that outlives the key (a permanent 12 V feed through a buck converter,
a UPS HAT or a supercap hold-up) and the ignition line read on one GPIO input, this watch
waits until the input has said "off" for ``grace_s`` seconds without a break, then runs
the off action once. An input that comes back earlier (cranking, a loose connector, the
driver changing their mind) cancels it.

Polarity: the usual sense circuit is an optocoupler whose LED is lit by the ignition line
and whose transistor pulls the GPIO pin to ground, so the pin reads LOW while the ignition
is ON (``active_low=True``, the default: the Pi's pull-up is enabled and a broken wire reads
as "off"). A resistor divider or a level shifter that drives the pin HIGH while the
ignition is on is ``active_low=False`` (pull-down enabled).

The production action (:func:`power_off_action`) stops keidash first (``systemctl stop
keidash.service``: keidash flushes its trip log and odometer on SIGTERM) and then powers
off (``systemctl poweroff``). The commands and the way they are run are parameters, so
tests check what would be run, in order, without running it.

Only the unit powers off: ``keidash-ignition.service`` passes ``--power-off``. Run by hand
(to try the wiring, on a laptop, with gpiozero's mock pins) the watch is a dry run: it logs
what it would run and runs nothing, so a test on the wrong machine never powers it off.

The watch runs in its own systemd unit as root (``keidash-ignition.service``) rather than
in the dash: powering off needs root (or polkitd plus a rule granting it, one more package and
one more policy to get right), and the dash itself stays an unprivileged user. It is also a
separate process, so a dash that hangs or is being restarted by the watchdog still gets
powered off at key-off.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import warnings
from collections.abc import Callable, Sequence

# Key-off, key-on and power-off are logged at WARNING: rare events the owner wants to find in
# `journalctl -u keidash-ignition` with keidash's default log level.
logger = logging.getLogger(__name__)

#: default seconds the ignition must stay off: longer than a crank's dip, shorter than any
#: hold-up supply's reserve minus the ~10 s a Pi needs to shut down
DEFAULT_GRACE_S = 10.0
#: seconds between two reads of the input besides its edge callbacks (a missed edge is
#: caught by this: the watch never depends on one interrupt arriving)
POLL_S = 1.0
STOP_DASH = ("systemctl", "stop", "keidash.service")
POWER_OFF = ("systemctl", "poweroff")

Runner = Callable[[Sequence[str]], int]


class IgnitionWatch:
    """Call ``on_off`` once when the ignition input has read "off" for ``grace_s`` seconds.

    ``pin``: BCM number (or a gpiozero pin name). ``grace_s``: seconds (> 0).
    ``pin_factory``: gpiozero's (``MockFactory()`` in tests; None: gpiozero's default).
    ``active_low``: the input reads LOW while the ignition is on (optocoupler to ground).
    ``on_off`` runs in a timer thread. After it has run, the watch is re-armed only when the
    ignition comes back on. The watch counts from :meth:`start`: if the ignition is already
    off then, the grace period starts then.
    """

    def __init__(self, pin: int | str, grace_s: float, on_off: Callable[[], None], *,
                 pin_factory=None, active_low: bool = True):
        if grace_s <= 0:
            raise ValueError(f"grace_s must be above 0 s, not {grace_s}")
        from gpiozero import DigitalInputDevice  # lazy: keidash runs without GPIO elsewhere
        self.grace_s = grace_s
        self.on_off = on_off
        self.active_low = active_low
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._fired = False
        self._closed = False
        # pull_up=True: active when LOW; pull_up=False: pull-down, active when HIGH
        self._input = DigitalInputDevice(pin, pull_up=active_low, pin_factory=pin_factory)

    def start(self) -> "IgnitionWatch":
        """Start watching: from here the key's changes count, and a key already off starts the
        grace period now. Apart from the constructor, so that whoever starts the watch can say
        so first: the log then reads "watching ..." before "ignition off ..."."""
        self._input.when_activated = lambda *_: self._update(True)
        self._input.when_deactivated = lambda *_: self._update(False)
        self.check()
        return self

    @property
    def ignition_on(self) -> bool:
        return bool(self._input.is_active)

    @property
    def pending(self) -> bool:
        """True while the grace period is running."""
        with self._lock:
            return self._timer is not None

    @property
    def fired(self) -> bool:
        with self._lock:
            return self._fired

    def check(self) -> None:
        """Read the input now (called on start and every POLL_S by :func:`ignition_main`)."""
        self._update(self.ignition_on)

    def _update(self, on: bool) -> None:
        with self._lock:
            if self._closed:
                return
            if on:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                    logger.warning("ignition back on within %.1f s: staying up", self.grace_s)
                if self._fired:
                    logger.warning("ignition back on after the off action: watching again")
                self._fired = False
            elif self._timer is None and not self._fired:
                logger.warning("ignition off: powering off in %.1f s unless it comes back", self.grace_s)
                self._timer = threading.Timer(self.grace_s, self._expire)
                self._timer.daemon = True
                self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._closed or self._timer is None or self._fired:
                return
            self._timer = None
            self._fired = True
        logger.warning("ignition off for %.1f s: running the off action", self.grace_s)
        try:
            self.on_off()
        except Exception:  # log it; the watch stays up and re-arms at the next key-on
            logger.exception("the ignition-off action failed")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._input.close()


def run_command(command: Sequence[str], timeout_s: float = 120.0) -> int:
    """Run one command; its exit status (or 1 when it could not be run or timed out)."""
    try:
        return subprocess.run(list(command), check=False, timeout=timeout_s).returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.error("%s: %s", " ".join(command), exc)
        return 1


def power_off_action(run: Runner = run_command,
                     commands: Sequence[Sequence[str]] = (STOP_DASH, POWER_OFF)) -> Callable[[], None]:
    """The off action: each command in order (stop the dash so it flushes, then power off).

    A failing command is logged and the next one still runs: a dash that will not stop
    cleanly must not keep the Pi draining the truck's battery.
    """
    def action() -> None:
        for command in commands:
            if run is not dry_run:  # the dry run says it itself
                logger.warning("running: %s", " ".join(command))
            status = run(command)
            if status != 0:
                logger.error("%s exited with status %s", " ".join(command), status)
    return action


def dry_run(command: Sequence[str]) -> int:
    """The runner of a watch started by hand: says what it would run, runs nothing."""
    logger.warning("dry run: would run %s (only keidash-ignition.service, with --power-off, "
                   "powers off)", " ".join(command))
    return 0


def ignition_main(pin: int, grace_s: float = DEFAULT_GRACE_S, active_low: bool = True, *,
                  power_off: bool = False, pin_factory=None, run: Runner | None = None,
                  stop: threading.Event | None = None, poll_s: float = POLL_S) -> int:
    """``keidash ignition``: watch the ignition input until SIGTERM/SIGINT (or ``stop``).

    ``power_off``: run the off action's commands (the unit's ``--power-off``); otherwise a dry
    run that only logs them. ``run`` (tests) replaces the runner either way.
    Returns 0 on a clean stop, 1 when the input cannot be opened (one plain sentence in
    the log, without gpiozero's warnings about each backend it tried). Signal handlers are
    installed only from the main thread.
    """
    from ..gpio import gpio_problem

    stop = stop or threading.Event()
    if run is None:
        run = run_command if power_off else dry_run
    try:
        from gpiozero.exc import PinFactoryFallback  # lazy: keidash runs without GPIO elsewhere

        with warnings.catch_warnings():
            # one warning per backend gpiozero tries before failing: they would bury the sentence
            warnings.simplefilter("ignore", PinFactoryFallback)
            watch = IgnitionWatch(pin, grace_s, power_off_action(run), pin_factory=pin_factory,
                                  active_low=active_low)
    except Exception as exc:  # gpiozero: BadPinFactory, GPIOPinInUse, PermissionError ...
        logger.error("%s", gpio_problem("the ignition input", [pin], exc))
        return 1
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    logger.warning("watching the ignition on GPIO %s (%s while on), grace %.1f s; it is %s now%s",
                   pin, "low" if active_low else "high", grace_s, "on" if watch.ignition_on else "off",
                   "" if power_off else "; a dry run: nothing will be powered off (--power-off does)")
    try:
        watch.start()
        while not stop.wait(poll_s):
            watch.check()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        watch.close()
    logger.info("ignition watch stopped")
    return 0
