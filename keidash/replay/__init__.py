"""Replay of recorded drives: format readers, samples, and a source that plays them.

- :func:`load_log` reads a carOBD CSV, an OpenXC trace, a Torque Pro export, a
  keidash trip log or any CSV (its columns by their usual names, or through a
  columns mapping) into a :class:`DriveLog` of
  :class:`Sample` rows (t, speed_kmh, rpm, gear) in log time. Pure: no threads,
  no clock.
- :func:`readings_from_log` turns a log into readings stamped with log time,
  for the estimator; :meth:`DriveLog.with_readings` pairs each sample with its
  readings, for one output row per input sample.
- :class:`ReplaySource` plays a log as a live source at ``speed`` x real time.

See docs/replay.md for the formats and why time is derived as it is.
"""

from .formats import AUTO, FORMATS, LogFormat, detect_format, load_log, read_lines, register
from .generic import SPEED_UNITS, AmbiguousHeader, Columns, column_role, header_columns, parse_columns
from .log import DriveLog, Sample, Samples, readings_from_log, sample_readings
from .source import FINISHED_MESSAGE, ReplaySource, open_replay

__all__ = ["AUTO", "FORMATS", "FINISHED_MESSAGE", "SPEED_UNITS", "AmbiguousHeader", "Columns", "DriveLog",
           "LogFormat", "ReplaySource", "Sample", "Samples", "column_role", "detect_format", "header_columns",
           "load_log", "open_replay", "parse_columns", "read_lines", "readings_from_log", "register",
           "sample_readings"]
