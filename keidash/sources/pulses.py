"""Engine rpm and road speed from pulses on GPIO pins.

The tach input sees the ignition coil's negative side through an
opto-isolator (1.5 pulses per crank revolution for a 3-cylinder with a
distributor); the speed input sees the transmission's speed sensor
(2548 pulses per km for the JIS 637 rev/km drive at 4 pulses per rev).
Both are open-collector style inputs, so the pins are pulled up and the
falling edge marks a pulse.

gpiozero's edge callback runs in gpiozero's thread (lgpio) or in whatever
thread drives a mock pin, so it only records the edge's tick. The source's
own thread turns edges into values at ``publish_hz`` with the pure functions
and the clock-free :class:`PulseTimer` below, which the tests drive with
exact synthetic ticks.

Edge ticks and the clock. On a Pi, gpiozero's lgpio pin factory hands
``when_changed`` the kernel's timestamp of the edge (lgpio's alert
``timestamp`` in ns, divided by 1e9), taken in the GPIO interrupt, and its
``ticks()`` is ``time.monotonic()``. The kernel stamps GPIO line events with
CLOCK_MONOTONIC (the default since Linux 5.7, and lgpio asks for no other),
which is also what ``time.monotonic()`` reads on Linux, so ``ticks_diff`` of
an edge and ``ticks()`` is the edge's true age and a reading's time is
``time.monotonic() - ticks_diff(ticks(), edge)``. The other factories
(mock, rpigpio, native) stamp edges with ``ticks()`` in the callback. An
edge tick that is not on the factory's clock (a kernel before 5.7 stamps
CLOCK_REALTIME) is caught by :func:`edge_on_factory_clock`: that pin is then
timed by when its edges reach the callback, counted once as a ``clock`` error.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import time
import warnings
from collections import deque
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..readings import RPM, SPEED
from .base import CONNECTED, CONNECTING, FAILED, Sink, Source

logger = logging.getLogger(__name__)

#: the pin factory's tick arithmetic: ticks_diff(later, earlier) -> seconds
TicksDiff = Callable[[Any, Any], float]

#: an edge this much sooner than the recent median period is ringing or
#: ignition noise, not a pulse (no engine or wheel speeds up 3x in one pulse)
GLITCH_RATIO = 0.3
#: accepted periods the glitch test and the timeout take their median from
RECENT_PERIODS = 8

# Tach: average over one engine cycle (2 crank revolutions, so cylinder-to-
# cylinder differences cancel) and at least 100 ms, so a pulse stamped a few
# ms late (user-space timestamps: mock, RPi.GPIO and native pin factories;
# lgpio stamps in the kernel) moves the value by a few % at most. Each value
# is then about 50 ms old when published (stamped mid-window, so the
# estimator knows): 75 rpm behind at 1500 rpm/s, nothing for a shift light.
# 0 rpm after max(0.5 s, 3 periods) without an edge.
TACH_CYCLE_REVS = 2.0
TACH_MIN_WINDOW_S = 0.1
TACH_TIMEOUT_S = 0.5
TACH_TIMEOUT_PERIODS = 3.0

# Speed: at least a quarter second of pulses (several sensor revolutions at
# speed, so uneven magnets average out); 0 km/h after 1 s without an edge,
# so the lowest speed shown is 3600 / 2548 = 1.4 km/h.
VSS_MIN_WINDOW_S = 0.25
VSS_TIMEOUT_S = 1.0

#: raw edges buffered between two publishes; far more than any real input gives
EDGE_BUFFER = 4096
#: an edge tick this far in the future or past of the factory's ticks() when it is
#: published is not on that clock (edges are published within a few publish periods)
EDGE_CLOCK_SLACK_S = 10.0
#: accepted edges kept for the window (10 000 rpm at 2 p/rev for 100 ms is 34)
HISTORY = 256


# -- pure maths -----------------------------------------------------------
def rate_from_edges(ticks: Sequence[Any], ticks_diff: TicksDiff) -> float | None:
    """Pulse rate (Hz) by reciprocal period timing: (n - 1) / (last - first).

    Timing whole periods between edges is exact at any rate, where counting
    edges in a fixed gate time is +-1 pulse (+-40 rpm at idle for 50 ms).
    None when fewer than two edges or no time between them.
    """
    if len(ticks) < 2:
        return None
    span = ticks_diff(ticks[-1], ticks[0])
    if not span > 0:
        return None
    return (len(ticks) - 1) / span


def window(ticks: Sequence[Any], ticks_diff: TicksDiff, min_periods: int, min_span_s: float) -> Sequence[Any]:
    """The most recent edges spanning at least ``min_periods`` periods and ``min_span_s``.

    All edges when there are not that many yet (a short window is better
    than none while the engine starts).
    """
    n = len(ticks)
    first = n - 1 - max(1, min_periods)
    if first <= 0:
        return ticks
    last = ticks[-1]
    while first > 0 and ticks_diff(last, ticks[first]) < min_span_s:
        first -= 1
    return ticks[first:]


def is_glitch(period: float, recent_periods: Sequence[float], ratio: float = GLITCH_RATIO) -> bool:
    """True when ``period`` (s since the last good edge) is too short to be a real pulse."""
    if not recent_periods:
        return False
    return period < ratio * statistics.median(recent_periods)


def zero_timeout(period: float | None, min_s: float, periods: float, max_s: float = math.inf) -> float:
    """How long without an edge before the input reads zero (s).

    A few periods, so one late pulse does not flash zero, but at least
    ``min_s`` and at most ``max_s``.
    """
    timeout = min_s if period is None else max(min_s, periods * period)
    return min(timeout, max_s)


def edge_on_factory_clock(ticks_diff: TicksDiff, now_tick: Any, edge: Any,
                          slack_s: float = EDGE_CLOCK_SLACK_S) -> bool:
    """True when ``edge`` is within ``slack_s`` of ``now_tick`` on the factory's clock.

    Edges are published within a few publish periods of arriving, so an edge
    far in the past or future is on another clock. A few ms in the future is
    normal: the edge can arrive after ``ticks()`` was read. Both directions
    are asked, since some factories' ``ticks_diff`` wraps rather than goes
    negative (pigpio's 32-bit microsecond ticks).
    """
    return min(abs(ticks_diff(now_tick, edge)), abs(ticks_diff(edge, now_tick))) < slack_s


def _seconds_diff(later: float, earlier: float) -> float:
    return later - earlier


def rpm_from_rate(rate_hz: float, pulses_per_rev: float) -> float:
    return rate_hz / pulses_per_rev * 60.0


def kmh_from_rate(rate_hz: float, pulses_per_km: float) -> float:
    return rate_hz * 3600.0 / pulses_per_km


class PulseTimer:
    """Edges in, pulse rate out: glitch rejection, windowing and the zero timeout.

    It never reads a clock: edge ticks come in through :meth:`add_edge` and
    "now" through :meth:`rate`, in the pin factory's ticks.
    """

    def __init__(self, ticks_diff: TicksDiff, min_periods: int, min_span_s: float,
                 timeout_s: float, timeout_periods: float, timeout_max_s: float = math.inf):
        self.ticks_diff = ticks_diff
        self.min_periods = min_periods
        self.min_span_s = min_span_s
        self.timeout_s = timeout_s
        self.timeout_periods = timeout_periods
        self.timeout_max_s = timeout_max_s
        self.edges: deque[Any] = deque(maxlen=HISTORY)  # accepted edges, oldest first
        self.periods: deque[float] = deque(maxlen=RECENT_PERIODS)  # s, between accepted edges
        self.glitches = 0  # edges rejected so far

    def period(self) -> float | None:
        """The recent median period (s), None before two edges."""
        return statistics.median(self.periods) if self.periods else None

    def timeout(self) -> float:
        return zero_timeout(self.period(), self.timeout_s, self.timeout_periods, self.timeout_max_s)

    def add_edge(self, tick: Any) -> bool:
        """Take one edge; False when it was rejected as a glitch."""
        if self.edges:
            period = self.ticks_diff(tick, self.edges[-1])
            if period > self.timeout():
                # After a silence (engine off, truck stopped) the old edges say
                # nothing about the new pulse train: start afresh.
                self.edges.clear()
                self.periods.clear()
            elif is_glitch(period, self.periods):
                self.glitches += 1
                return False
            else:
                self.periods.append(period)
        self.edges.append(tick)
        return True

    def timed_out(self, now_tick: Any) -> bool:
        return not self.edges or self.ticks_diff(now_tick, self.edges[-1]) > self.timeout()

    def measure(self, now_tick: Any) -> tuple[float, float]:
        """(pulse rate in Hz, its window's span in s) at ``now_tick``.

        The rate is 0 after the timeout, and also with a single edge since the
        last silence: one pulse after standing still is below what can be timed.
        """
        if self.timed_out(now_tick):
            return 0.0, 0.0
        edges = window(list(self.edges), self.ticks_diff, self.min_periods, self.min_span_s)
        rate = rate_from_edges(edges, self.ticks_diff)
        if rate is None:
            return 0.0, 0.0
        return rate, self.ticks_diff(edges[-1], edges[0])

    def rate(self, now_tick: Any) -> float:
        """Pulse rate (Hz) at ``now_tick``; see :meth:`measure`."""
        return self.measure(now_tick)[0]


def tach_timer(ticks_diff: TicksDiff, pulses_per_rev: float) -> PulseTimer:
    """The tach's timer: one engine cycle and TACH_MIN_WINDOW_S; zero after max(0.5 s, 3 periods)."""
    return PulseTimer(ticks_diff, math.ceil(TACH_CYCLE_REVS * pulses_per_rev), TACH_MIN_WINDOW_S,
                      TACH_TIMEOUT_S, TACH_TIMEOUT_PERIODS)


def speed_timer(ticks_diff: TicksDiff) -> PulseTimer:
    """The speed sensor's timer: VSS_MIN_WINDOW_S; zero after a fixed 1 s, so a crawl
    below 1.4 km/h reads 0 rather than a value that is seconds old."""
    return PulseTimer(ticks_diff, 1, VSS_MIN_WINDOW_S, VSS_TIMEOUT_S, 3.0, VSS_TIMEOUT_S)


# -- the source -----------------------------------------------------------
def _silent(timer: PulseTimer, now_tick: Any, listened_s: float) -> bool:
    """True when the input has been quiet for its timeout: only then is the value zero.

    Just after start, or with a single edge since a silence, the rate cannot be timed
    yet; that is "not known yet", never "0 rpm" (a truck at 90 km/h is not stopped
    because keidash has only just started listening).
    """
    if timer.edges:
        return timer.timed_out(now_tick)
    return listened_s >= timer.timeout()


class _PulseInput:
    """One pin: the edge callback's buffer, the timer and how to scale its rate."""

    def __init__(self, role: str, channel: str, gpio: int, make_timer: Callable[[TicksDiff], PulseTimer],
                 ticks_diff: TicksDiff, scale: Callable[[float], float]):
        self.role = role  # "tach" or "speed sensor", for messages
        self.channel = channel
        self.gpio = gpio
        self.make_timer = make_timer
        self.timer = make_timer(ticks_diff)
        self.scale = scale  # pulse rate (Hz) -> value in the channel's unit
        self.raw: deque[tuple[Any, float]] = deque(maxlen=EDGE_BUFFER)  # (edge tick, arrival monotonic)
        self.pin: Any = None
        self.emitted_edge: Any = None  # last edge a reading was emitted for
        self.emitted_t = -math.inf  # time of the last live reading: stamps never go back
        self.by_arrival = False  # edge ticks proved to be on another clock: time edges by arrival
        self.listening_since: float | None = None  # monotonic time of the first publish

    def on_edge(self, ticks: Any, state: Any) -> None:
        # Runs in gpiozero's callback thread: deque.append is thread-safe and
        # quick, everything else happens in the source's thread.
        self.raw.append((ticks, time.monotonic()))

    def time_by_arrival(self) -> None:
        """From now on, time this pin's edges by when they reached the callback."""
        self.by_arrival = True
        self.timer = self.make_timer(_seconds_diff)
        self.emitted_edge = None


def _drain(pulse_input: _PulseInput) -> list[tuple[Any, float]]:
    """The edges the callback has recorded since the last call, oldest first."""
    raw, edges = pulse_input.raw, []
    while raw:
        edges.append(raw.popleft())  # popleft is thread-safe against the callback's append
    return edges


def _factory_error_message(exc: BaseException, factory_name: str | None) -> str:
    """One plain sentence for a pin factory that cannot be loaded."""
    if factory_name:
        return f"cannot use the GPIO pin factory {factory_name!r} set in GPIOZERO_PIN_FACTORY: {exc}"
    if isinstance(exc, ImportError):  # gpiozero's BadPinFactory is one too
        return "no GPIO pins here (not a Raspberry Pi?): set GPIOZERO_PIN_FACTORY=mock to run without them"
    return f"cannot open the GPIO pins: {exc}"


def _pin_error_message(role: str, gpio: int, exc: BaseException) -> str:
    """One plain sentence for a pin that cannot be set up."""
    name = type(exc).__name__
    text = str(exc)
    if name == "PinInvalidPin":
        return f"GPIO{gpio} for the {role} is not a pin on this board: {text}"
    if "busy" in text.lower() or "in use" in text.lower():
        return f"GPIO{gpio} for the {role} is busy: another program is using it"
    if isinstance(exc, PermissionError) or "permission" in text.lower():
        return f"permission denied on GPIO{gpio}: add the user to the gpio group"
    return f"cannot use GPIO{gpio} for the {role}: {text or name}"


class PulseSource(Source):
    """Engine rpm from a coil tach signal and road speed from a speed sensor, on GPIO."""

    channels = (RPM, SPEED)

    #: the inputs are open-collector (opto-isolator, hall sensor): pulled up, pulse = low
    PULL = "up"
    EDGES = "falling"

    def __init__(self, name: str, sink: Sink, factory: Any = None, tach_pin: int | None = None,
                 vss_pin: int | None = None, tach_pulses_per_rev: float = 1.5,
                 vss_pulses_per_km: float = 2548.0, publish_hz: float = 20.0):
        super().__init__(name, sink)
        if tach_pin is not None and not tach_pulses_per_rev > 0:
            raise ConfigError(f"tach pulses per revolution must be positive, not {tach_pulses_per_rev}")
        if vss_pin is not None and not vss_pulses_per_km > 0:
            raise ConfigError(f"speed-sensor pulses per km must be positive, not {vss_pulses_per_km}")
        if not publish_hz > 0:
            raise ConfigError(f"publish rate must be positive, not {publish_hz} Hz")
        self._factory = factory
        self.tach_pin = tach_pin
        self.vss_pin = vss_pin
        # what this source delivers, as configured
        self.channels = tuple(channel for channel, pin in ((RPM, tach_pin), (SPEED, vss_pin))
                              if pin is not None)
        self.tach_pulses_per_rev = tach_pulses_per_rev
        self.vss_pulses_per_km = vss_pulses_per_km
        self.publish_hz = publish_hz

    def _inputs(self, ticks_diff: TicksDiff) -> list[_PulseInput]:
        inputs = []
        if self.tach_pin is not None:
            ppr = self.tach_pulses_per_rev
            inputs.append(_PulseInput("tach", RPM, self.tach_pin, lambda diff: tach_timer(diff, ppr),
                                      ticks_diff, lambda hz: rpm_from_rate(hz, ppr)))
        if self.vss_pin is not None:
            ppkm = self.vss_pulses_per_km
            inputs.append(_PulseInput("speed sensor", SPEED, self.vss_pin, speed_timer, ticks_diff,
                                      lambda hz: kmh_from_rate(hz, ppkm)))
        return inputs

    def _pin_factory(self) -> Any:
        if self._factory is not None:
            return self._factory
        from gpiozero import Device  # lazy: gpiozero probes the hardware on first use
        from gpiozero.exc import PinFactoryFallback

        # gpiozero warns once per backend it tries before the one that works (or none):
        # the outcome is reported on the dash, the tries are noise in the journal
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PinFactoryFallback)
            Device.ensure_pin_factory()
        return Device.pin_factory

    def run(self) -> None:
        self.set_link(CONNECTING)
        if self.tach_pin is None and self.vss_pin is None:
            self.set_link(FAILED, "no tach or speed-sensor pin configured")
            return
        try:
            factory = self._pin_factory()
        except Exception as exc:
            self.set_link(FAILED, _factory_error_message(exc, os.environ.get("GPIOZERO_PIN_FACTORY")))
            return
        inputs = self._inputs(factory.ticks_diff)
        role, gpio = inputs[0].role, inputs[0].gpio
        try:
            for pulse_input in inputs:
                role, gpio = pulse_input.role, pulse_input.gpio
                pin = factory.pin(gpio)
                pulse_input.pin = pin
                pin.function = "input"
                pin.pull = self.PULL
                pin.edges = self.EDGES
                pin.bounce = None  # bounce filtering would eat real pulses at high rpm
                # gpiozero keeps only a weak reference to a bound method: the
                # _PulseInput in ``inputs`` keeps it alive while we run.
                pin.when_changed = pulse_input.on_edge
        except Exception as exc:
            self._release(inputs)
            self.set_link(FAILED, _pin_error_message(role, gpio, exc))
            return
        self.set_link(CONNECTED)
        try:
            self._publish_loop(factory, inputs)
        finally:
            self._release(inputs)

    def _publish_loop(self, factory: Any, inputs: list[_PulseInput]) -> None:
        interval = 1.0 / self.publish_hz
        # Zeros are re-sent every publish, so they need to live only a few publishes.
        zero_max_age = max(0.25, 3 * interval)
        due = time.monotonic()
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            due += interval
            if due < time.monotonic():  # fell behind: do not publish in a burst
                due = time.monotonic() + interval
            # Take the edges first, then the time: no edge is newer than "now", which
            # matters where ticks_diff wraps instead of going negative (pigpio).
            edges = [_drain(pulse_input) for pulse_input in inputs]
            now_tick = factory.ticks()
            now = time.monotonic()
            for pulse_input, new_edges in zip(inputs, edges):
                self._publish(pulse_input, factory, now_tick, now, zero_max_age, new_edges)

    def _publish(self, pulse_input: _PulseInput, factory: Any, now_tick: Any, now: float,
                 zero_max_age: float, edges: list[tuple[Any, float]] | None = None) -> None:
        """Time the edges that came since the last publish (``None``: take them now) and emit."""
        if edges is None:
            edges = _drain(pulse_input)
        if edges and not pulse_input.by_arrival and not edge_on_factory_clock(
                factory.ticks_diff, now_tick, edges[-1][0]):
            self.count_error("clock")
            logger.warning("%s: GPIO%d's edge times are not on the pin factory's clock (a kernel "
                           "before 5.7?); timing its edges by their arrival instead",
                           self.name, pulse_input.gpio)
            pulse_input.time_by_arrival()
        if pulse_input.by_arrival:
            ticks_diff, now_tick = _seconds_diff, now
            edges = [arrival for _, arrival in edges]
        else:
            ticks_diff = factory.ticks_diff
            edges = [tick for tick, _ in edges]
        timer = pulse_input.timer
        glitches = timer.glitches
        for edge in edges:
            timer.add_edge(edge)
        for _ in range(timer.glitches - glitches):
            self.count_error("glitch")
        rate, span = timer.measure(now_tick)
        if pulse_input.listening_since is None:
            pulse_input.listening_since = now
        if rate == 0.0 and not _silent(timer, now_tick, now - pulse_input.listening_since):
            return  # too few edges yet to time, but no silence either: nothing to say, not zero
        if rate == 0.0:
            pulse_input.emitted_edge = None
            pulse_input.emitted_t = now
            self.emit(now, pulse_input.channel, 0.0, zero_max_age)
            return
        last_edge = timer.edges[-1]
        if last_edge == pulse_input.emitted_edge:
            return  # no new edge since the last reading: nothing new to say
        pulse_input.emitted_edge = last_edge
        # The value is the average over the window, which is the rate at the
        # window's middle (exactly so while rpm ramps): stamp it there, on the
        # monotonic clock, rather than at the last edge, half a window late.
        # Never before the channel's previous reading, though (a zero sent just
        # before the first edges were timed): readings of a channel keep their order.
        last_edge_t = now - ticks_diff(now_tick, last_edge)
        t = max(last_edge_t - span / 2, pulse_input.emitted_t)
        pulse_input.emitted_t = t
        # The value stands until the zero timeout would replace it, plus a publish.
        max_age = span / 2 + timer.timeout() + 2.0 / self.publish_hz
        self.emit(t, pulse_input.channel, pulse_input.scale(rate), max_age)

    def _release(self, inputs: list[_PulseInput]) -> None:
        for pulse_input in inputs:
            pin, pulse_input.pin = pulse_input.pin, None
            if pin is None:
                continue
            try:
                pin.when_changed = None
                pin.close()
            except Exception as exc:  # releasing must not hide why we stopped
                logger.warning("%s: releasing GPIO%s failed: %s", self.name, pulse_input.gpio, exc)
