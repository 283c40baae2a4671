"""sd_notify over a real AF_UNIX datagram socket, and the watchdog's health rule."""

import os
import socket
import threading
import uuid

import pytest

from keidash.pi.notify import Notifier, Watchdog, healthy, sources_alive, watchdog_interval_s


@pytest.fixture
def systemd_socket(tmp_path):
    """A datagram socket standing in for systemd's notify socket: (path, receive())."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, lambda: sock.recv(4096).decode()
    sock.close()


def test_notifier_sends_each_message_as_one_datagram(systemd_socket):
    path, receive = systemd_socket
    notifier = Notifier(environ={"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("first frame")
    assert receive() == "READY=1\nSTATUS=first frame"
    assert notifier.status("obd: failed:\nno adapter;  retrying")
    assert receive() == "STATUS=obd: failed: no adapter; retrying"  # one line, always
    assert notifier.watchdog()
    assert receive() == "WATCHDOG=1"
    assert notifier.stopping()
    assert receive() == "STOPPING=1"
    notifier.close()


def test_abstract_namespace_socket():
    name = f"keidash-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        assert Notifier(f"@{name}").watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_no_op():
    notifier = Notifier(environ={})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and not notifier.status("x")


def test_a_vanished_socket_is_logged_not_raised(tmp_path, caplog):
    notifier = Notifier(str(tmp_path / "gone"))
    assert not notifier.watchdog()
    assert not notifier.watchdog()
    assert caplog.text.count("cannot notify systemd") == 1


def test_watchdog_interval_is_half_the_timeout():
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "junk"}) is None
    # meant for another process (sd_watchdog_enabled(3))
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, pid=4242) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}) == 2.0


@pytest.mark.parametrize("frames, window_s, alive, expected", [
    (300, 5.0, True, True),     # 60 fps
    (5, 5.0, True, True),       # 1 fps: slow, but drawing
    (4, 5.0, True, False),      # crawling: as good as stuck
    (0, 5.0, True, False),      # stuck frame loop
    (300, 5.0, False, False),   # a source thread died
])
def test_health_rule(frames, window_s, alive, expected):
    assert healthy(frames, window_s, alive) is expected


class FakeSource:
    """What sources_alive reads from keidash.sources.base.Source."""

    def __init__(self, thread_alive: bool | None, stopping: bool = False):
        self.stopping = threading.Event()
        if stopping:
            self.stopping.set()
        self._thread = None if thread_alive is None else _Thread(thread_alive)


class _Thread:
    def __init__(self, alive):
        self.alive = alive

    def is_alive(self):
        return self.alive


def test_sources_alive():
    assert sources_alive([FakeSource(True), FakeSource(None)])  # None: not started yet
    assert not sources_alive([FakeSource(True), FakeSource(False)])
    assert sources_alive([FakeSource(False, stopping=True)])  # stopped on purpose


def test_sources_alive_on_a_real_failed_source():
    """A source whose device keeps failing is FAILED and retrying: alive, so keidash is healthy."""
    from keidash.readings import ReadingBus
    from keidash.sources.base import FAILED, Source

    class Unplugged(Source):
        retry_s = 0.01

        def run(self):
            raise OSError("no such device /dev/ttyUSB0")

    source = Unplugged("obd", ReadingBus())
    source.start()
    try:
        from waiting import wait_for
        assert wait_for(lambda: source.status().link == FAILED)
        assert sources_alive([source])
    finally:
        source.stop()
    assert sources_alive([source])


def messages(receive, n):
    return [receive() for _ in range(n)]


def test_watchdog_readiness_then_pings_only_while_healthy(systemd_socket):
    path, receive = systemd_socket
    alive = {"ok": True}
    watchdog = Watchdog(Notifier(path), interval_s=2.0, check_sources=lambda: alive["ok"],
                        describe=lambda: "obd connected" if alive["ok"] else "obd thread died")
    frame = iter(range(10**6))

    def draw(seconds: float, fps: int = 60) -> int:
        """Draw frames for ``seconds`` at ``fps`` (times from a frame counter); pings sent."""
        return sum(watchdog.frame(100.0 + next(frame) / fps) for _ in range(round(seconds * fps)))

    assert draw(1 / 60) == 0      # first frame: READY, no ping
    assert receive() == "READY=1\nSTATUS=obd connected"
    assert draw(10) == 5          # one every 2 s
    assert messages(receive, 5) == ["WATCHDOG=1"] * 5  # status unchanged: not repeated
    alive["ok"] = False
    assert draw(10) == 0
    assert receive() == "STATUS=obd thread died"  # said once, with no ping
    alive["ok"] = True            # (a dead thread does not come back; the rule is just re-checked)
    assert draw(2.5) == 1
    assert receive() == "WATCHDOG=1\nSTATUS=obd connected"


def test_watchdog_does_not_ping_after_a_stall(systemd_socket):
    """A frame loop stuck 10 s then drawing again: the frame after the stall is not a ping."""
    path, receive = systemd_socket
    watchdog = Watchdog(Notifier(path), interval_s=2.0)
    watchdog.frame(0.0)
    receive()
    assert not watchdog.frame(10.0)  # one frame in the last 2 s: below 1 fps
    sent = [watchdog.frame(10.0 + i / 30) for i in range(1, 121)]  # 4 s at 30 fps
    assert any(sent)


def test_watchdog_without_watchdog_usec_only_says_ready(systemd_socket):
    path, receive = systemd_socket
    watchdog = Watchdog(Notifier(path), interval_s=None)
    for i in range(100):
        assert not watchdog.frame(i * 1.0)
    assert receive() == "READY=1"
    watchdog.stopping()
    assert receive() == "STOPPING=1"
