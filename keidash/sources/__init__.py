"""Sources: one thread per device, each putting :class:`~keidash.readings.Reading` s on the bus.

- :mod:`.base`: the contract every source keeps (its own thread, never raising out of it,
  a status sentence, retrying, stale values never reused).
- :mod:`.obd` over :mod:`.elm327_link` and :mod:`.elm327`: an ELM327 adapter.
- :mod:`.nmea`: a GPS receiver. :mod:`.pulses`: coil tach and speed sensor on GPIO.
- :mod:`.calibration`: the speed sensor's pulses per km, learned against the GPS.

Sources are chosen by URL in :mod:`keidash.rig`; recorded drives are played as a source by
:mod:`keidash.replay`. Nothing is imported here: python-obd, pyserial and gpiozero load only
when their source is built.
"""
