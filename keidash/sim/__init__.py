"""The virtual truck: physics, a driver, and emulated hardware.

It is both ``keidash demo`` and the hardware mock for the tests: an ELM327
on a pseudo-terminal that python-obd talks to unchanged, a GPS writing NMEA
on a pseudo-terminal, and coil-tach and speed-sensor pulses on gpiozero mock
pins. Everything reads the truck's ground truth through :class:`TruckTruth`.
"""
