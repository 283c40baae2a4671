"""No display is not a crash: the dash runs on without a screen and keeps trying to open one.

The process test runs the real ``keidash run`` under a stand-in for systemd's notify socket with
``SDL_VIDEODRIVER=kmsdrm`` on a machine without ``/dev/dri`` (SDL: "kmsdrm not available"), as a
Pi whose display cable is loose. The retry itself is tested on :class:`Screen` with a clock the
test turns, opening a real (offscreen) Cluster once the "cable" is back.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace

import pytest

from keidash.dashstate import DashState
from keidash.display.screen import Screen
from keidash.display.screens import SITUATIONS
from keidash.triplog.reading import frames, list_trips, open_trip_log
from waiting import wait_for


class Cable:
    """The display's cable: unplugged, open_cluster fails as SDL does; plugged, a real Cluster."""

    def __init__(self):
        self.plugged = False
        self.opened = []

    def open_cluster(self):
        import pygame
        if not self.plugged:
            raise pygame.error("kmsdrm not available")
        from keidash.display.cluster import Cluster
        cluster = Cluster(size=(800, 480), headless=True)
        self.opened.append(cluster)
        return cluster


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def state(t: float) -> DashState:
    return replace(next(iter(SITUATIONS.values())), t=t)


def test_no_display_is_a_sentence_and_a_retry_every_few_seconds(caplog):
    cable, clock = Cable(), Clock()
    caplog.set_level(logging.WARNING, logger="keidash.display.screen")
    screen = Screen(cable.open_cluster, retry_s=5.0, clock=clock)
    try:
        assert not screen.shown and screen.tries == 1
        assert screen.problem == ("no display (kmsdrm not available): running on without a screen, "
                                  "trying again every 5 s")
        for t in (0.0, 2.0, 4.9):  # frames go on without a screen; no retry before 5 s
            clock.now = 100.0 + t
            screen.render(state(t))
        assert screen.tries == 1 and not screen.poll_quit()
        clock.now = 105.0
        screen.render(state(5.0))
        assert screen.tries == 2 and not screen.shown
        assert caplog.text.count("no display (kmsdrm not available)") == 1  # said once, not every retry

        cable.plugged = True  # the cable is re-seated
        clock.now = 109.0
        screen.render(state(9.0))
        assert not screen.shown  # not yet: the next try is at 110 s
        clock.now = 110.0
        screen.render(state(10.0))
        assert screen.shown and screen.problem == "" and screen.tries == 3
        assert cable.opened[0].frames == 1  # the frame of the retry is drawn at once
        assert "the display is back (after 3 tries)" in caplog.text
    finally:
        screen.close()


def test_a_display_lost_while_drawing_is_dropped_and_retried(caplog):
    import pygame
    cable, clock = Cable(), Clock()
    cable.plugged = True
    screen = Screen(cable.open_cluster, retry_s=5.0, clock=clock)
    try:
        screen.render(state(0.0))
        cluster = screen.cluster

        def gone(_state):
            raise pygame.error("video system not initialized")
        cluster.render = gone
        screen.render(state(1.0))
        assert not screen.shown and screen.problem.startswith("no display (video system not initialized)")
        with pytest.raises(Exception, match="no frame to save: no display"):
            screen.save("x.png")
        clock.now += 5.0
        screen.render(state(6.0))
        assert screen.shown and screen.cluster is not cluster
    finally:
        screen.close()


def test_the_owners_mistake_is_not_a_missing_display():
    from keidash.errors import ConfigError

    def refuse():
        raise ConfigError("--layout 1280x400 does not fit this 800x480 screen")
    with pytest.raises(ConfigError):
        Screen(refuse)


# -- the real dash process, as keidash.service runs it -----------------------------------------

def test_the_dash_runs_on_without_a_display_and_says_so_to_systemd(tmp_path):
    if os.path.exists("/dev/dri"):
        pytest.skip("this machine has /dev/dri: kmsdrm might open a real display here")
    config = tmp_path / "truck.toml"
    config.write_text(f'profile = "hijet-s500p"\ndata_dir = "{tmp_path}"\n'
                      '[sources]\nsim = "sim://hijet-s500p?hardware=pulses&skip=140&speedup=4"\n'
                      '[lights]\nbar = [5, 6, 13, 19, 26]\ndown = 12\nbuzzer = 16\n')
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(SDL_VIDEODRIVER="kmsdrm", SDL_AUDIODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock",
               NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    err = tmp_path / "stderr"
    with open(err, "w") as stderr:
        dash = subprocess.Popen([sys.executable, "-m", "keidash", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    messages: list[str] = []

    def receive() -> list[str]:
        try:
            messages.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        return messages
    try:
        assert wait_for(lambda: any("READY=1" in m for m in receive()), timeout=120), err.read_text()
        assert wait_for(lambda: sum("WATCHDOG=1" in m for m in receive()) >= 4, timeout=120), messages
        assert dash.poll() is None  # not a crash: running on
    finally:
        dash.send_signal(signal.SIGTERM)
        status = dash.wait(60)
        sock.close()
    text = err.read_text()
    assert status == 0, text
    assert "Traceback" not in text
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=no display (kmsdrm not available): running on without a screen" in ready
    assert text.count("no display (kmsdrm not available)") == 1, text
    db = open_trip_log(tmp_path / "trips.db")
    try:
        (trip,) = list_trips(db)
        kept = frames(db, trip.id)
    finally:
        db.close()
    assert trip.ended_unix is not None  # the trip log was closed properly by SIGTERM
    assert any(frame.speed_kmh for frame in kept)  # readings went through the estimator to the log
