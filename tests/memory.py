"""The memory a loaded log costs per row: the difference between a short and a long one, so the
interpreter's and the imports' memory cancel out (tracemalloc counts Python's own allocations:
no timing). Shared by the tests of the log readers (test_bad_values.py, test_trips.py)."""

import tracemalloc

from keidash.replay import load_log

SHORT, LONG = 4_000, 40_000


def bytes_per_row(path_for) -> tuple[float, float]:
    """(held, peak) bytes a row of ``load_log(path_for(rows))``, between SHORT and LONG rows; each log
    must hold as many samples as rows."""
    figures = {}
    for rows in (SHORT, LONG):
        path = path_for(rows)
        tracemalloc.start()
        log = load_log(path)
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(log.samples) == rows
        figures[rows] = held, peak
        del log
    return tuple((figures[LONG][k] - figures[SHORT][k]) / (LONG - SHORT) for k in (0, 1))
