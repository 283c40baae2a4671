"""The contract every source keeps: failures become a status, never an exception."""

import logging

from keidash.readings import RPM, ReadingBus
from keidash.sources.base import CONNECTED, FAILED, STOPPED, Source
from waiting import wait_for


class Flaky(Source):
    """Fails twice in the same way, once in another, then delivers forever."""

    retry_s = 0.01

    def __init__(self, bus):
        super().__init__("flaky", bus.put)
        self.runs = 0

    def run(self):
        self.runs += 1
        if self.runs <= 2:
            raise OSError("adapter unplugged")
        if self.runs == 3:
            self.set_link(FAILED, "ECU silent")
            return
        self.set_link(CONNECTED)
        while not self.stopping.is_set():
            self.emit(1.0, RPM, 900, 1.0)
            self.stopping.wait(0.01)


def test_exceptions_are_retried_and_each_failure_is_logged_once(caplog):
    bus = ReadingBus()
    source = Flaky(bus)
    with caplog.at_level(logging.INFO, logger="keidash.sources.base"):
        source.start()
        try:
            assert wait_for(lambda: source.status().link == CONNECTED)
            assert wait_for(lambda: source.status().readings > 0)
        finally:
            source.stop()
    assert source.status().link == STOPPED
    assert source.status().errors == {"OSError": 2}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["flaky: failed (failed: adapter unplugged; retrying)", "flaky: failed (ECU silent)"]
    assert any(r.getMessage() == "flaky: connected" for r in caplog.records)
    assert all(r.source == "flaky" and r.value == 900 for r in bus.drain())


def test_a_full_bus_drops_the_oldest_not_the_source_thread():
    bus = ReadingBus(maxsize=3)
    for i in range(5):
        Source("s", bus.put).emit(float(i), RPM, i, 1.0)
    kept = bus.drain()
    assert [r.t for r in kept] == [2.0, 3.0, 4.0] and bus.dropped == 2
