"""The estimator: from readings to what the dash shows. Pure: no clock, port or file.

- :mod:`.estimator` composes the parts: ``step(state, reading, config)`` and
  ``advise(state, t, config)`` -> :class:`~keidash.dashstate.DashState`.
- :mod:`.learn`: gear ratios (rpm per km/h), from the profile, from earlier drives,
  or learned live; :mod:`.truck`: ratios and driving habits learned from drives.
- :mod:`.gears`: the gear with an rpm source (an HMM over neutral and each gear).
- :mod:`.speedonly`: gear and rpm from road speed alone.
- :mod:`.needle`: the Kalman-filtered, predicted tach needle.
- :mod:`.shift`: upshift and downshift cues from the torque curve.

On recorded drives (files in, figures out; these read logs through
:mod:`keidash.replay`): :mod:`.estimates` (what the dash would have shown at each
row), :mod:`.evaluate` (``keidash eval``), :mod:`.marks` (``keidash marks``: shift
speeds and a speedometer sticker) and :mod:`.commands` (``keidash learn``, ``marks``,
``eval``).

Nothing is imported here: the dash imports only the modules it runs.
"""
