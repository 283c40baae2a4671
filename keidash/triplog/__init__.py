"""The trip log: every drive kept in one crash-safe SQLite file.

- :mod:`.writer`: :class:`~.writer.TripLog`, the dash's writer thread (WAL, batched commits).
- :mod:`.reading`: reading a trip log back (read-only): trips, frames, readings, positions,
  summaries; ``keidash trips``.
- :mod:`.report`: one trip as HTML or PNG (``keidash report``).
- :mod:`.export`: one trip as CSV or GPX (``keidash export``).

A trip log is replayed through the cluster by :mod:`keidash.replay.triplog`.
"""
