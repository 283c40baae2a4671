"""The frame loop: drain readings, fold them into the estimator, render a snapshot.

Sources run in their own threads and only ever put readings on the bus, so a
silent or frozen device can never hold up a frame.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Protocol

from . import calibration as vss
from .dashstate import DashState
from .estimator import EstimatorConfig, EstimatorState, advise, learned_so_far, step
from .rig import Rig

if TYPE_CHECKING:
    from .cab import Cab
    from .triplog import TripLog

logger = logging.getLogger(__name__)


class Output(Protocol):
    def render(self, state: DashState) -> None: ...


@dataclass
class FrameStats:
    first_frame_s: float | None = None  # from process start to the first frame shown
    first_frame_monotonic: float | None = None  # CLOCK_MONOTONIC of that frame (for bench/)
    frame_ms: list[float] = field(default_factory=list)  # render time of each frame
    vss_calibration: "vss.VssCalibration | None" = None  # what the speed sensor was learned to be
    learned: "object | None" = None  # keidash.learn.LearnedRatios found while driving (None: nothing learned)
    started: float = 0.0
    ended: float = 0.0

    def as_dict(self) -> dict:
        ms = sorted(self.frame_ms)
        frames = len(ms)
        elapsed = max(self.ended - self.started, 1e-9)

        def pct(p: float) -> float | None:
            return round(ms[min(frames - 1, int(p * frames))], 3) if frames else None
        return {"frames": frames, "fps": round(frames / elapsed, 2) if frames else 0.0,
                "frame_ms_p50": pct(0.50), "frame_ms_p99": pct(0.99),
                "first_frame_s": None if self.first_frame_s is None else round(self.first_frame_s, 4),
                "first_frame_monotonic": self.first_frame_monotonic}

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.as_dict(), f, indent=1)


def process_age_s() -> float:
    """Seconds since this process started (Linux /proc), or since keidash was imported."""
    try:
        with open("/proc/self/stat", "rb") as f:
            start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


_IMPORTED = time.monotonic()


def run_dash(rig: Rig, config: EstimatorConfig, outputs: list[Output], *, fps: float = 60.0,
             seconds: float | None = None, stop: threading.Event | None = None,
             should_quit: Callable[[], bool] = lambda: False,
             on_frame: Callable[[DashState], None] | None = None,
             calibration: "vss.CalibrationConfig | None" = None, cab: "Cab | None" = None,
             log: "TripLog | None" = None) -> FrameStats:
    """Run frames until ``seconds`` pass, ``stop`` is set or ``should_quit()`` says so.

    With ``calibration`` (see :meth:`Rig.vss_calibration`), the speed sensor's pulses per
    km are learned against the GPS and its speed is corrected once the scale is trusted:
    the calibrator sees raw readings, the estimator corrected ones. With ``cab``, each
    frame's DashState gets the trip, odometer, clock, night theme, page and units. With
    ``log``, every reading and the frames (at the log's rate) go to the trip log, which only
    queues them (its writer thread does the I/O) and whose trouble shows as the frame's message.
    """
    stats = FrameStats()
    state = EstimatorState()
    cal_state = vss.CalibrationState()
    cal_result = vss.result(cal_state, calibration) if calibration else None
    period = 1.0 / fps if fps > 0 else 0.0
    stop = stop or threading.Event()
    stats.started = start = time.monotonic()
    next_frame = start
    while not stop.is_set():
        readings = rig.bus.drain()
        if calibration is not None and readings:
            samples = len(cal_state.samples)
            degraded = rig.gps_degraded(calibration.gps_source)
            for reading in readings:
                cal_state = vss.step(cal_state, reading, calibration, gps_degraded=degraded)
            if len(cal_state.samples) != samples:
                was_ready, cal_result = cal_result.ready, vss.result(cal_state, calibration)
                stats.vss_calibration = cal_result
                if cal_result.ready and not was_ready:
                    logger.info("speed sensor measured against GPS: %.0f pulses per km (scale %.4f)",
                                cal_result.pulses_per_km, cal_result.scale)
            readings = [vss.correct(r, cal_result, calibration) for r in readings]
        if cab is not None:
            cab.readings(readings)
        if log is not None and readings:
            log.readings(readings, time.monotonic())
        for reading in readings:
            state = step(state, reading, config)
        now = time.monotonic()
        dash = advise(state, now, config, rig.links())
        if log is not None:
            log.frame(dash, now)
            trouble = log.status()
            if trouble:
                dash = replace(dash, message=trouble)
        if cab is not None:
            dash = cab.dress(dash, now)
        for output in outputs:
            output.render(dash)
        done = time.monotonic()
        stats.frame_ms.append((done - now) * 1000)
        if stats.first_frame_s is None:
            stats.first_frame_s = process_age_s()
            stats.first_frame_monotonic = done
            logger.info("first frame %.3f s after process start", stats.first_frame_s)
        rig.show_cue(dash.cue)
        if on_frame is not None:
            on_frame(dash)
        if should_quit() or (seconds is not None and done - start >= seconds):
            break
        next_frame += period
        if next_frame < done - period:  # fell behind (slow host): do not try to catch up
            next_frame = done
        stop.wait(max(0.0, next_frame - time.monotonic()))
    stats.ended = time.monotonic()
    stats.learned = learned_so_far(state, config)
    return stats
