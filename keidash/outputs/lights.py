"""Shift lights and a shift buzzer on GPIO: outputs that render a :class:`DashState`.

The lights are a row of plain LEDs (a gpiozero ``LEDBarGraph``) and an optional separate
"shift down" LED (a ``PWMLED``):

- below ``upshift_rpm - span_rpm`` every bar LED is off; from there the LEDs light one by
  one, LED *i* of *n* at ``upshift_rpm - span_rpm + span_rpm * i / n``, so the whole row is
  lit one step before the shift point;
- at or above ``upshift_rpm``, or whenever the estimator says ``cue == "up"``, the whole row
  flashes at ``flash_hz`` (half on, half off);
- above ``redline_rpm`` the whole row is on, steady: over-rev, there is nothing left to cue;
- while ``cue == "down"`` the down LED pulses (a smooth fade in and out, ``DOWN_PULSE_HZ``);
- with no rpm (``rpm is None``, or the source named in ``rpm_source`` is not live) every LED
  is off: a dark row never claims an engine speed.

Flashing and pulsing are timed from ``state.t`` (the snapshot's monotonic time), counted from
the render where they began, so a replayed drive drives the pins the same way every time and
no output needs a clock, a thread or a sleep. The same goes for :class:`ShiftBuzzer`'s beeps.

gpiozero is imported inside the constructors only: importing keidash never probes the GPIO
hardware. A device that cannot be opened (not a Pi, pin busy, permission denied) logs one
sentence that says what to do and leaves the output ``available = False``; its ``render``
then does nothing, so a missing shift light never stops the dash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

from ..dashstate import DOWN, LIVE, UP, DashState
from ..gpio import open_gpio


DOWN_PULSE_HZ = 2.0  # Hz, how fast the down LED fades in and out while a down cue shows
_EPS = 1e-9  # s, float slack when comparing state.t differences


# -- pure parts -------------------------------------------------------------------------------

def rpm_is_live(state: DashState) -> bool:
    """True when the state carries an engine speed worth showing.

    ``rpm`` is None when neither measured nor estimable; a measured rpm whose source is
    listed in ``state.sources`` but not live is treated the same way (belt and braces: the
    estimator already drops stale values).
    """
    if state.rpm is None:
        return False
    if state.rpm_source is not None:
        for view in state.sources:
            if view.name == state.rpm_source:
                return view.state == LIVE
    return True


def bar_lit(rpm: float, upshift_rpm: float, span_rpm: float, count: int) -> int:
    """How many of ``count`` bar LEDs are lit at ``rpm`` (rev/min), before any flashing.

    LED ``i`` (0-based) lights at ``upshift_rpm - span_rpm + span_rpm * i / count``.
    """
    start = upshift_rpm - span_rpm
    if rpm < start or count <= 0:
        return 0
    step = span_rpm / count
    return min(count, int((rpm - start) / step + _EPS) + 1)


def flash_on(t: float, since: float, flash_hz: float) -> bool:
    """The on half of a ``flash_hz`` square wave that started (on) at ``since`` (s)."""
    return int(math.floor((t - since) * 2.0 * flash_hz + _EPS)) % 2 == 0


def pulse_level(t: float, since: float, pulse_hz: float = DOWN_PULSE_HZ) -> float:
    """Brightness 0..1 of a smooth pulse that started (full on) at ``since`` (s)."""
    return 0.5 + 0.5 * math.cos(2.0 * math.pi * pulse_hz * (t - since))


@dataclass(frozen=True)
class LightsFrame:
    """What the shift lights show for one snapshot."""

    bar: tuple[bool, ...]  # each bar LED, first (lowest rpm) to last
    down: float  # down LED brightness 0..1
    mode: str  # "off", "bar", "flash", "over-rev"


@dataclass(frozen=True)
class LightsMemory:
    """What the lights remember between frames: when flashing and the down pulse began."""

    flash_since: float | None = None  # s, state.t of the first flashing frame
    down_since: float | None = None  # s, state.t of the first frame of the down cue


def lights_step(memory: LightsMemory, state: DashState, count: int, span_rpm: float,
                flash_hz: float) -> tuple[LightsMemory, LightsFrame]:
    """Fold one snapshot into the lights' memory and say what ``count`` bar LEDs show."""
    if not rpm_is_live(state):
        return LightsMemory(), LightsFrame((False,) * count, 0.0, "off")
    rpm = state.rpm
    assert rpm is not None
    if state.cue == DOWN:
        down_since = memory.down_since if memory.down_since is not None else state.t
        down = pulse_level(state.t, down_since)
    else:
        down_since, down = None, 0.0
    if rpm > state.redline_rpm:
        return (LightsMemory(None, down_since),
                LightsFrame((True,) * count, down, "over-rev"))
    if rpm >= state.upshift_rpm or state.cue == UP:
        since = memory.flash_since if memory.flash_since is not None else state.t
        on = flash_on(state.t, since, flash_hz)
        return LightsMemory(since, down_since), LightsFrame((on,) * count, down, "flash")
    lit = bar_lit(rpm, state.upshift_rpm, span_rpm, count)
    return (LightsMemory(None, down_since),
            LightsFrame(tuple(i < lit for i in range(count)), down, "bar"))


@dataclass(frozen=True)
class BeepMemory:
    """The buzzer's progress through a cue's beeps (``t`` values are state.t, s)."""

    last_cue: str | None = None  # the cue seen at the previous render
    on: bool = False  # the buzzer is sounding
    since: float = 0.0  # s, when the buzzer last switched on or off
    remaining: int = 0  # beeps still to start after the current one


BEEPS = {UP: 1, DOWN: 2}  # beeps per new cue
ALARM_BEEPS = 3  # long beeps when an alarm goes off (coolant, battery)
ALARM_BEEP_S = 0.4  # s, each alarm beep and the gap after it: unlike the cue's chirps
ALARM_AGAIN_S = 60.0  # s, an alarm still on sounds again this often


@dataclass(frozen=True)
class AlarmBeepMemory:
    """The buzzer's alarm beeps (``t`` values are state.t, s)."""

    alarms: tuple[str, ...] = ()  # the alarms on at the previous render
    on: bool = False
    since: float = 0.0  # s, when the buzzer last switched on or off
    remaining: int = 0  # beeps still to start after the current one
    sounded: float | None = None  # s, when the last series began


def alarm_beep_step(memory: AlarmBeepMemory, t: float, alarms: tuple[str, ...]) -> AlarmBeepMemory:
    """Fold one render into the alarm beeps: three long beeps when an alarm goes off, again
    every ``ALARM_AGAIN_S`` while one stays on; silence as soon as none is on."""
    if not alarms:
        return AlarmBeepMemory()
    new = bool(set(alarms) - set(memory.alarms))
    if new and (memory.on or memory.remaining):  # mid-series: its beeps follow, none merged
        return replace(memory, alarms=alarms, remaining=memory.remaining + ALARM_BEEPS, sounded=t)
    if new or (memory.sounded is not None and t - memory.sounded >= ALARM_AGAIN_S - _EPS and not memory.on
               and memory.remaining == 0):
        return AlarmBeepMemory(alarms, True, t, ALARM_BEEPS - 1, t)
    if memory.on and t - memory.since >= ALARM_BEEP_S - _EPS:
        return replace(memory, alarms=alarms, on=False, since=t)
    if not memory.on and memory.remaining > 0 and t - memory.since >= ALARM_BEEP_S - _EPS:
        return replace(memory, alarms=alarms, on=True, since=t, remaining=memory.remaining - 1)
    return replace(memory, alarms=alarms)


def beep_step(memory: BeepMemory, t: float, cue: str | None, beep_s: float) -> BeepMemory:
    """Fold one render at ``t`` (s) with ``cue`` into the buzzer's progress.

    A cue that appears (or changes) starts its beeps at once: on at this render, off at the
    first render ``beep_s`` later, and for a down cue on again at the first render ``beep_s``
    after that, then off. Each beep lasts at least ``beep_s`` whatever the frame rate, and
    the count is kept even when frames are slower than the beeps.
    """
    if cue != memory.last_cue and cue in BEEPS:
        return BeepMemory(cue, True, t, BEEPS[cue] - 1)
    if memory.on and t - memory.since >= beep_s - _EPS:
        return BeepMemory(cue, False, t, memory.remaining)
    if not memory.on and memory.remaining > 0 and t - memory.since >= beep_s - _EPS:
        return BeepMemory(cue, True, t, memory.remaining - 1)
    return replace(memory, last_cue=cue)


class ShiftLights:
    """A row of shift-light LEDs and an optional down LED: an Output (``render``, ``close``).

    ``bar_pins`` are BCM numbers, lowest-rpm LED first (none: a down LED alone); ``down_pin`` drives the down LED
    (PWM, for the pulse); ``span_rpm`` (rev/min) is how far below ``upshift_rpm`` the row
    starts to fill; ``flash_hz`` (Hz) is the flash rate at the shift point.
    """

    def __init__(self, bar_pins: Sequence[int], down_pin: int | None = None, span_rpm: float = 700,
                 flash_hz: float = 6.0, pin_factory=None):
        if not bar_pins and down_pin is None:
            raise ValueError("shift lights need at least one bar pin or a down pin")
        if span_rpm <= 0 or flash_hz <= 0:
            raise ValueError("span_rpm and flash_hz must be positive")
        self.count = len(bar_pins)
        self.span_rpm = float(span_rpm)
        self.flash_hz = float(flash_hz)
        self._memory = LightsMemory()
        self._shown: tuple[tuple[bool, ...], float] | None = None
        pins = list(bar_pins) + ([down_pin] if down_pin is not None else [])

        def build():
            from gpiozero import LEDBarGraph, PWMLED

            bar = LEDBarGraph(*bar_pins, pwm=False, pin_factory=pin_factory) if bar_pins else None
            try:
                down = PWMLED(down_pin, pin_factory=pin_factory) if down_pin is not None else None
            except Exception:
                if bar is not None:
                    bar.close()
                raise
            return bar, down

        devices, self.problem = open_gpio("shift lights", pins, build)
        self._bar, self._down = devices if devices is not None else (None, None)
        self.available = devices is not None
        self.moving = False  # the lights change with time alone (flash, pulse): see render

    def render(self, state: DashState) -> None:
        """Show ``state`` on the LEDs (pins are written only when what they show changes)."""
        self._memory, frame = lights_step(self._memory, state, self.count, self.span_rpm, self.flash_hz)
        # the row flashing or the down LED pulsing change with time: the frame loop keeps its full rate
        self.moving = self.available and (frame.mode == "flash" or self._memory.down_since is not None)
        if not self.available or self._shown == (frame.bar, frame.down):
            return
        for led, on in zip(self._bar or (), frame.bar):
            if bool(led.value) != on:
                led.value = on
        if self._down is not None:
            self._down.value = frame.down
        self._shown = (frame.bar, frame.down)

    def close(self) -> None:
        """Switch every LED off and release the pins (safe to call twice)."""
        for device in (self._bar, self._down):
            if device is not None:
                device.off()
                device.close()
        self._bar = self._down = None
        self.available = False


class ShiftBuzzer:
    """An active buzzer (one with its own oscillator: on/off is enough) that beeps at each new cue.

    One beep for "up", two for "down", each ``beep_s`` (s) long with a ``beep_s`` gap; never
    continuous, however long the cue stays. An alarm going off (``state.alarms``: coolant hot,
    battery low or high) sounds three long beeps, again every minute while it stays on.
    Timed from ``state.t``: no threads, no sleeps.
    A buzzer drawing more than a GPIO pin can give (~16 mA) needs a transistor (docs/lights.md).
    """

    def __init__(self, pin: int, pin_factory=None, beep_s: float = 0.08):
        if beep_s <= 0:
            raise ValueError("beep_s must be positive")
        self.beep_s = float(beep_s)
        self._memory = BeepMemory()
        self._alarm = AlarmBeepMemory()

        def build():
            from gpiozero import Buzzer

            return Buzzer(pin, pin_factory=pin_factory)

        self._buzzer, self.problem = open_gpio("shift buzzer", [pin], build)
        self.available = self._buzzer is not None
        self.moving = False  # a beep is on or due: see render

    def render(self, state: DashState) -> None:
        """Advance the beeps to ``state.t`` and switch the buzzer accordingly."""
        self._memory = beep_step(self._memory, state.t, state.cue, self.beep_s)
        self._alarm = alarm_beep_step(self._alarm, state.t, state.alarms)
        on = self._memory.on or self._alarm.on
        # a beep's end (or the next one) falls between frames: the frame loop keeps its full rate
        self.moving = self.available and (on or self._memory.remaining > 0 or self._alarm.remaining > 0)
        if self.available and bool(self._buzzer.value) != on:
            self._buzzer.value = on

    def close(self) -> None:
        """Silence the buzzer and release the pin (safe to call twice)."""
        if self._buzzer is not None:
            self._buzzer.off()
            self._buzzer.close()
        self._buzzer = None
        self.available = False
