"""Opening gpiozero devices on the Pi: a pin that cannot be had is one sentence, never a crash.

Every GPIO device keidash drives or reads (shift lights, buzzer, dash button,
night switch) is built through :func:`open_gpio`: the device keeps the sentence
as its ``problem``, the dash shows it and runs on without the device.
gpiozero is imported only when a device is built: importing keidash never
probes the GPIO hardware.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

def gpio_problem(role: str, pins: Sequence[int], exc: BaseException) -> str:
    """One plain sentence for a GPIO device that cannot be opened, saying what to do."""
    where = ", ".join(f"GPIO{p}" for p in pins)
    text = str(exc)
    name = type(exc).__name__
    if isinstance(exc, ImportError) or name in ("BadPinFactory", "PinFactoryFallback"):
        return (f"{role}: no GPIO pins here (not a Raspberry Pi?); "
                "set GPIOZERO_PIN_FACTORY=mock to run without them")
    if name == "PinInvalidPin":
        return f"{role}: {where} is not a pin on this board: {text}"
    if name == "GPIOPinInUse" or "in use" in text.lower() or "busy" in text.lower():
        return f"{role}: {where} is in use by another device or program; choose another pin"
    if isinstance(exc, PermissionError) or "permission" in text.lower():
        return f"{role}: permission denied on {where}: add the user to the gpio group"
    return f"{role}: cannot use {where}: {text or name}"


def open_gpio(role: str, pins: Sequence[int], build: Callable[[], Any]) -> tuple[Any | None, str]:
    """Call ``build()`` (which makes gpiozero devices): (devices, "") or, on failure, (None, the
    sentence saying why, also logged) for the device to keep as its ``problem``."""
    try:
        from gpiozero.exc import PinFactoryFallback  # lazy: importing keidash never probes GPIO

        with warnings.catch_warnings():
            # gpiozero warns once per backend it tries before one works: noise in the journal
            warnings.simplefilter("ignore", PinFactoryFallback)
            return build(), ""
    except Exception as exc:  # noqa: BLE001 - any failure becomes one sentence, never a crash
        problem = gpio_problem(role, pins, exc)
        logger.warning("%s", problem)
        return None, problem
