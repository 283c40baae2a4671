"""The driver's inputs on GPIO: one dash button and a night switch, and the pure UI state they move.

- :class:`DashButton`: a push button from a GPIO pin to ground (internal pull-up). A short
  press queues ``"page"``, a hold of ``hold_s`` queues ``"units"`` (at the moment the hold is
  reached, so the driver feels it take effect; releasing after a hold queues nothing more).
  Presses shorter than ``MIN_PRESS_S`` are contact bounce and are ignored. gpiozero calls
  back from its own threads; events go through a thread-safe queue that the frame loop
  drains once per frame with :meth:`DashButton.events`.
- :class:`NightSwitch`: a switch from a GPIO pin to ground; closed = night.
- :class:`UiState` and :func:`ui_step`: which page and which speed units the cluster shows,
  moved by those events. Pure: the frame loop folds events in and copies the result into
  the ``DashState`` (``page``, ``units``).

gpiozero is imported inside the constructors only. A pin that cannot be opened logs one
sentence saying what to do and leaves the device ``available = False``: no events, and
``NightSwitch.night`` is None (the caller then decides by clock or sun).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, replace

from ..gpio import open_gpio

PAGE = "page"  # event: show the next page
UNITS = "units"  # event: swap mph and km/h for the big speed figure
UNIT_CYCLE = {"mph": "kmh", "kmh": "mph"}


@dataclass(frozen=True)
class UiState:
    """What the driver chose with the button."""

    page: int = 0  # 0 = drive page, 1 = trip page, ...
    units: str = "mph"  # "mph" or "kmh": the big speed figure


def ui_step(ui: UiState, event: str, pages: int = 2) -> UiState:
    """Apply one button event: ``"page"`` cycles 0..pages-1, ``"units"`` toggles mph/kmh."""
    if event == PAGE:
        return replace(ui, page=(ui.page + 1) % max(1, pages))
    if event == UNITS:
        return replace(ui, units=UNIT_CYCLE.get(ui.units, "mph"))
    raise ValueError(f"unknown dash button event {event!r}; expected 'page' or 'units'")


class DashButton:
    """One push button, to ground with the internal pull-up: short press "page", hold "units".

    ``pin`` is a BCM number; ``hold_s`` (s) is how long a press must last to count as a hold.
    """

    MIN_PRESS_S = 0.03  # s, shorter presses are contact bounce

    def __init__(self, pin: int, pin_factory=None, hold_s: float = 1.0):
        if hold_s <= self.MIN_PRESS_S:
            raise ValueError(f"hold_s must be longer than {self.MIN_PRESS_S} s")
        self.pin = pin
        self.hold_s = float(hold_s)
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pressed_at: float | None = None  # monotonic s of the current press
        self._held = False  # the current press has already queued "units"

        def build():
            from gpiozero import Button

            return Button(pin, pull_up=True, hold_time=self.hold_s, hold_repeat=False,
                          pin_factory=pin_factory)

        self._button, self.problem = open_gpio("dash button", [pin], build)
        self.available = self._button is not None
        if self._button is not None:
            self._button.when_pressed = self._pressed
            self._button.when_held = self._held_down
            self._button.when_released = self._released

    # gpiozero calls these from its own threads (edge callbacks, the hold timer)
    def _pressed(self) -> None:
        with self._lock:
            self._pressed_at = time.monotonic()
            self._held = False

    def _held_down(self) -> None:
        with self._lock:
            if self._pressed_at is None or self._held:
                return
            self._held = True
        self._queue.put(UNITS)

    def _released(self) -> None:
        with self._lock:
            pressed_at, held = self._pressed_at, self._held
            self._pressed_at, self._held = None, False
        if pressed_at is None or held:
            return
        if time.monotonic() - pressed_at >= self.MIN_PRESS_S:
            self._queue.put(PAGE)

    def events(self) -> list[str]:
        """Every event queued since the last call, oldest first (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        """Release the pin (safe to call twice)."""
        if self._button is not None:
            self._button.close()
        self._button = None
        self.available = False


class NightSwitch:
    """A switch from a GPIO pin to ground (internal pull-up): closed = night."""

    def __init__(self, pin: int, pin_factory=None):
        self.pin = pin

        def build():
            from gpiozero import Button

            return Button(pin, pull_up=True, pin_factory=pin_factory)

        self._switch, self.problem = open_gpio("night switch", [pin], build)
        self.available = self._switch is not None

    @property
    def night(self) -> bool | None:
        """True when the switch is closed, False when open, None when the pin is not available."""
        if self._switch is None:
            return None
        return bool(self._switch.is_pressed)

    def close(self) -> None:
        """Release the pin (safe to call twice)."""
        if self._switch is not None:
            self._switch.close()
        self._switch = None
        self.available = False
