"""The frame loop's pacing (issue 15): frames follow what moves on the dash, readings wake it at once.

Frames and draw calls are counted, never timed: a steady dash draws far fewer frames than a
moving one over the same drive, a flashing shift bar keeps the full rate, and a reading ends an
idle wait that would otherwise last 100 s. The estimator and the cluster are the real ones. The
frame counts are taken on a virtual clock (:class:`VirtualDrive`): the loop's waits move it instead
of sleeping and a source's readings arrive at their times on it, so a count is what the loop
decided, the same on a loaded machine as on an idle one (the rate a real machine holds is
bench/render.py's). Where a thread is the point (a reading waking the loop), a thread puts
readings on the bus as a source's thread does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from keidash import app
from keidash.app import run_dash
from keidash.display.cluster import Cluster
from keidash.estimate.estimator import config_for
from keidash.profiles import load_profile
from keidash.readings import RPM, SPEED, Reading, ReadingBus
from keidash.rig import Rig

HIJET = load_profile("hijet-s500p")
DRIVES = Path(__file__).parent / "data" / "drives"


def feed(bus: ReadingBus, stop: threading.Event, rpm_at, hz: float = 5.0) -> threading.Thread:
    """A source's thread: rpm ``rpm_at(k)`` and 40 km/h at ``hz`` until ``stop``."""
    def run():
        k = 0
        while not stop.is_set():
            now = time.monotonic()
            bus.put(Reading(now, RPM, rpm_at(k), "obd"))
            bus.put(Reading(now, SPEED, 40.0, "obd"))
            k += 1
            stop.wait(1.0 / hz)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class VirtualDrive:
    """The frame loop's clock, its waits and a source's readings, virtual: a wait moves the clock
    (to the next reading due, which it puts on the bus, or to the wait's end) instead of sleeping,
    and rendering takes no time on it. ``rpm_at(k)`` and 40 km/h arrive at ``hz``."""

    def __init__(self, rpm_at, hz: float = 5.0):
        self.now = 1000.0
        self.rpm_at, self.every = rpm_at, 1.0 / hz
        self.k = 0
        self.next_reading = self.now
        drive = self

        class Bus(ReadingBus):
            def wait(self, timeout):
                return drive.wait(timeout)

        class Stop(threading.Event):
            def wait(self, timeout=None):
                drive.wait(timeout, until_reading=False)
                return self.is_set()
        self.bus, self.stop = Bus(), Stop()

    def monotonic(self) -> float:
        return self.now

    def wait(self, timeout: float, until_reading: bool = True) -> bool:
        """Move the clock ``timeout`` on, putting each reading due on the way on the bus; with
        ``until_reading``, stop at the first one (a bus wait) and say whether one came."""
        if until_reading and self.bus._arrived.is_set():
            return True
        end = self.now + max(0.0, timeout)
        while self.next_reading <= end:
            self.now = max(self.now, self.next_reading)
            self.bus.put(Reading(self.now, RPM, self.rpm_at(self.k), "obd"))
            self.bus.put(Reading(self.now, SPEED, 40.0, "obd"))
            self.k += 1
            self.next_reading += self.every
            if until_reading:
                return True
        self.now = end
        return False


def frames_drawn(rpm_at, seconds: float = 3.0) -> tuple[int, int]:
    """(frames rendered, frames that sent pixels to the screen) over ``seconds`` of readings,
    on the virtual clock."""
    drive = VirtualDrive(rpm_at)
    rig = Rig(bus=drive.bus)
    cluster = Cluster(headless=True)
    drawn = []
    original = cluster.render

    def render(state):
        original(state)
        drawn.append(bool(cluster.last_dirty))
    cluster.render = render
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(app, "time", types.SimpleNamespace(monotonic=drive.monotonic))
            run_dash(rig, config_for(HIJET, {}, ("obd",)), [cluster], fps=60, seconds=seconds, stop=drive.stop)
    finally:
        cluster.close()
    return len(drawn), sum(drawn)


@pytest.fixture
def slow_idle(monkeypatch):
    monkeypatch.setattr(app, "IDLE_FPS", 2.0)


def test_a_steady_dash_draws_far_fewer_frames_than_a_moving_one(slow_idle):
    steady, _ = frames_drawn(lambda k: 2000.0)
    moving, moving_drawn = frames_drawn(lambda k: 1500.0 + 60.0 * (k % 40))  # the needle climbs and drops
    # steady: STILL_FRAMES at the full rate, then a frame a reading (5 a second) and the idle frames
    # (2); moving: every frame (60 a second), on the virtual clock whatever this machine's pace
    assert steady <= app.STILL_FRAMES + 3 * (5 + 2) + 2, steady
    assert moving >= 0.9 * 60 * 3 and steady * 4 < moving, (steady, moving)
    assert moving_drawn > moving / 2  # the moving dash's frames do draw: they are not skipped


def test_a_flashing_shift_bar_keeps_the_full_rate(slow_idle):
    steady, _ = frames_drawn(lambda k: 2000.0)
    flashing, flashing_drawn = frames_drawn(lambda k: 5600.0)  # over the upshift rpm: the bar flashes
    assert flashing >= 60 * 3 and flashing > 4 * steady, (steady, flashing)  # every frame of the 3 s
    assert flashing_drawn >= 3  # a few flash phases were drawn, each when it turned


def test_without_pacing_every_frame_is_run(monkeypatch, slow_idle):
    monkeypatch.setattr(app, "PACED", False)
    steady, steady_drawn = frames_drawn(lambda k: 2000.0)
    moving, _ = frames_drawn(lambda k: 1500.0 + 60.0 * (k % 40))
    assert steady == moving >= 60 * 3  # the reference runs a steady dash's frames too ...
    assert steady_drawn < steady / 2  # ... which draw nothing


def test_a_reading_wakes_an_idle_loop_at_once(monkeypatch):
    monkeypatch.setattr(app, "IDLE_FPS", 0.01)  # idle: one frame every 100 s

    class WatchedBus(ReadingBus):
        idle = threading.Event()

        def wait(self, timeout):
            if timeout > 10:
                self.idle.set()
            return super().wait(timeout)

    rig = Rig(bus=WatchedBus())
    cluster = Cluster(headless=True)
    shown = []
    woke = threading.Event()

    def on_frame(dash):
        shown.append(dash.rpm)
        if dash.rpm is not None and dash.rpm > 2900:
            woke.set()
    stop = threading.Event()
    loop = threading.Thread(target=run_dash, args=(rig, config_for(HIJET, {}, ("obd",)), [cluster]),
                            kwargs=dict(fps=60, stop=stop, on_frame=on_frame), daemon=True)
    now = time.monotonic()
    rig.bus.put(Reading(now, RPM, 2000.0, "obd"))
    rig.bus.put(Reading(now, SPEED, 40.0, "obd"))
    loop.start()
    try:
        assert rig.bus.idle.wait(60), "the loop never went idle with nothing moving"
        frames_before = len(shown)
        now = time.monotonic()
        rig.bus.put(Reading(now, RPM, 3000.0, "obd"))
        rig.bus.put(Reading(now, SPEED, 40.0, "obd"))
        assert woke.wait(60), "the new reading did not wake the loop (it would sleep 100 s)"
        assert len(shown) > frames_before
    finally:
        stop.set()
        rig.bus.put(Reading(time.monotonic(), SPEED, 40.0, "obd"))  # ends the idle wait
        loop.join(60)
        cluster.close()
    assert not loop.is_alive()


def test_a_replay_standing_at_the_start_idles(tmp_path):
    """The real CLI replaying a real drive whose first minutes stand still (engine off)."""
    stats = tmp_path / "stats.json"
    subprocess.run([sys.executable, "-m", "keidash", "replay", str(DRIVES / "carobd-etios" / "ufpe1.csv"),
                    "--headless", "--seconds", "5", "--stats-json", str(stats)],
                   check=True, capture_output=True, cwd=tmp_path)
    frames = json.loads(stats.read_text())["frames"]
    assert 0 < frames < 0.6 * 60 * 5, frames  # 117 here: the engine starts 3 s in, the needle moves a while


def test_readings_streaming_in_never_run_frames_faster_than_fps(slow_idle):
    """A steady stream at 250 readings a second (a tach's pulses) wakes an idle loop each time, but
    never sooner than one full-rate period after the last frame: at most ``fps`` frames a second."""
    rig = Rig(bus=ReadingBus())
    cluster = Cluster(headless=True)
    stop = threading.Event()
    feeder = feed(rig.bus, stop, lambda k: 2000.0, hz=250.0)
    try:
        stats = run_dash(rig, config_for(HIJET, {}, ("obd",)), [cluster], fps=30, seconds=2.0)
    finally:
        stop.set()
        feeder.join()
        cluster.close()
    frames = len(stats.frame_ms)
    assert frames <= 30 * (stats.ended - stats.started) + 2, (frames, stats.ended - stats.started)
