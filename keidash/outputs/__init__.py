"""Outputs other than the screen: each renders a :class:`~keidash.dashstate.DashState` per frame.

- :class:`ShiftLights`: a row of shift-light LEDs and a down LED on GPIO (``lights.py``).
- :class:`ShiftBuzzer`: one beep per new cue on GPIO (``lights.py``).

Importing this package does not import gpiozero; the devices do, when constructed.
"""

from .lights import ShiftBuzzer, ShiftLights

__all__ = ["ShiftBuzzer", "ShiftLights"]
