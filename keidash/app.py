"""The running dash: ``keidash demo``, ``run`` and ``replay`` assemble it, the frame loop runs it.

:func:`start_dash` opens the sources (by URL), the cluster, the cab, the GPIO
outputs and the trip log, runs :func:`run_dash` and closes them all, whatever
happens. The frame loop drains readings, folds them into the estimator and
renders a snapshot. Sources run in their own threads and only ever put readings
on the bus, so a silent or frozen device can never hold up a frame.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Protocol

from .config import check_writable, load_config
from .dashstate import FAILED, DashState
from .errors import ConfigError, KeidashError
from .estimate.estimator import EstimatorConfig, EstimatorState, advise, learned_so_far, step
from .rig import Rig
from .sources import calibration as vss

if TYPE_CHECKING:
    from .cab import Cab
    from .triplog.writer import TripLog

logger = logging.getLogger(__name__)

DEFAULT_HEADLESS_SECONDS = 20.0
DEFAULT_SCREENSHOT = "keidash-demo.png"
#: frames a second while nothing on the dash moves (standing, cruising steadily): the clock, the
#: trip, the night theme and a source going stale refresh at this rate; the trip log's 10 frames a
#: second are all still logged. A reading wakes the loop at once, back to the full rate.
IDLE_FPS = 10.0
#: frames in a row with nothing redrawn before the loop slows to IDLE_FPS: a needle creeping under
#: half a pixel a frame still moves at the full rate, not in steps
STILL_FRAMES = 6
#: seconds between two looks at the sources' links (connected, failed, error counts): they change
#: with a device, not with a frame
SOURCE_STATUS_S = 0.25
#: the frame loop follows the needle (False: every frame at the full rate, bench/process_cost.py's reference)
PACED = True


class Output(Protocol):
    def render(self, state: DashState) -> None: ...


class FrameTimes:
    """Render times (ms) of every frame in a fixed histogram: the same few KB after any run.

    A list of every frame grew 6.6 MB an hour at 60 fps. Bins are 0.5 % wide on a log scale
    from 1 us to 100 s, so a percentile is within 0.25 % of the exact one (and exact at the
    ends: the smallest and largest times are kept). ``append`` and ``len`` as a list's. The
    counts are machine integers (an array), not Python ints: a count past 256 would be a new
    int object, and the histogram would grow by one per busy bin (bench/frame_times.py).
    """

    LOW_MS, HIGH_MS, STEP = 1e-3, 1e5, 1.005

    def __init__(self) -> None:
        self._log_step = math.log(self.STEP)
        self._counts = array("Q", bytes(8 * (int(math.log(self.HIGH_MS / self.LOW_MS) / self._log_step) + 1)))
        self._n = 0
        self.min_ms = math.inf
        self.max_ms = -math.inf

    def append(self, ms: float) -> None:
        if not math.isfinite(ms):
            return
        ms = max(ms, 0.0)
        index = 0 if ms <= self.LOW_MS else int(math.log(ms / self.LOW_MS) / self._log_step)
        self._counts[min(index, len(self._counts) - 1)] += 1
        self._n += 1
        self.min_ms = min(self.min_ms, ms)
        self.max_ms = max(self.max_ms, ms)

    def __len__(self) -> int:
        return self._n

    def percentile(self, p: float) -> float | None:
        """The time below which a share ``p`` of the frames took (as sorted(times)[int(p * n)])."""
        if not self._n:
            return None
        rank = min(self._n - 1, int(p * self._n))
        seen = 0
        for index, count in enumerate(self._counts):
            seen += count
            if seen > rank:
                middle = self.LOW_MS * self.STEP ** (index + 0.5)
                return min(max(middle, self.min_ms), self.max_ms)
        return self.max_ms


@dataclass
class FrameStats:
    first_frame_s: float | None = None  # from process start to the first frame shown
    first_frame_monotonic: float | None = None  # CLOCK_MONOTONIC of that frame (for bench/)
    frame_ms: FrameTimes = field(default_factory=FrameTimes)  # render time of each frame, as a histogram
    vss_calibration: "vss.VssCalibration | None" = None  # what the speed sensor was learned to be
    learned: "object | None" = None  # keidash.estimate.learn.LearnedRatios found while driving (None: nothing learned)
    started: float = 0.0
    ended: float = 0.0

    def as_dict(self) -> dict:
        frames = len(self.frame_ms)
        elapsed = max(self.ended - self.started, 1e-9)

        def pct(p: float) -> float | None:
            value = self.frame_ms.percentile(p)
            return None if value is None else round(value, 3)
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


def with_failed(dash: DashState, failed: dict[str, str]) -> DashState:
    """``dash`` with each source whose device failed shown as failed (not absent or stale), with why."""
    if not failed:
        return dash
    return replace(dash, sources=tuple(
        replace(v, state=FAILED, message=failed[v.name]) if v.name in failed else v for v in dash.sources))


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
    # Pacing follows the dash: at ``fps`` while anything on it moves, at IDLE_FPS once STILL_FRAMES
    # frames in a row redrew nothing (and no flash is on), woken at once by the next reading.
    # Only with an output that says whether it moves (the cluster): with none, every frame is run.
    paced = PACED and 0 < IDLE_FPS < fps and any(hasattr(output, "moving") for output in outputs)
    idle_period = 1.0 / IDLE_FPS if IDLE_FPS > 0 else period
    still = 0  # frames in a row that changed nothing on screen
    links: dict = {}
    failed: dict = {}
    status_due = -math.inf
    stop = stop or threading.Event()
    stats.started = start = time.monotonic()
    next_frame = start
    quitting = False
    # the engine's note scores each gear's rpm by the ratios the estimator uses: sourced, learned
    # before, or learned live once certain (handed over whenever they change)
    handed = config.rpm_per_kmh
    rig.know_truck(handed)
    while not stop.is_set():
        readings = rig.drive_readings(rig.bus.drain())  # on the drive's clock (a virtual truck sped up)
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
            log.readings(readings, rig.drive_time(time.monotonic()))
        for reading in readings:
            state = step(state, reading, config)
        if state.ratios and state.ratios != handed:
            handed = state.ratios
            rig.know_truck(handed)
        now = time.monotonic()
        drive_now = rig.drive_time(now)  # the estimator's clock: the drive's (a replay at 10x runs it 10x)
        if now >= status_due:
            links, failed, status_due = rig.links(), rig.failed(), now + SOURCE_STATUS_S
        dash = advise(state, drive_now, config, links)
        dash = with_failed(dash, failed)
        if log is not None:
            log.frame(dash, drive_now)
            trouble = log.status()
            if trouble:
                dash = replace(dash, message=trouble)
        if cab is not None:
            dash = cab.dress(dash, drive_now)
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
        if quitting or (seconds is not None and done - start >= seconds):
            break
        if should_quit():  # one more frame: what arrived since this frame's drain is shown too
            quitting = True
            continue
        if paced:
            still = 0 if any(getattr(output, "moving", False) for output in outputs) else still + 1
            if still >= STILL_FRAMES:
                # nothing moves: no advise, no drawing until a reading comes or the idle frame is due
                if rig.bus.wait(max(0.0, min(done + idle_period, start + seconds if seconds is not None
                                             else math.inf) - time.monotonic())):
                    # a reading: the next frame now, but never sooner than the full rate's period after
                    # this one (readings streaming in must not run frames faster than ``fps``)
                    stop.wait(max(0.0, now + period - time.monotonic()))
                next_frame = time.monotonic()  # the full rate restarts from the frame a reading wakes
                continue
        next_frame += period
        if next_frame < done - period:  # fell behind (slow host): do not try to catch up
            next_frame = done
        stop.wait(max(0.0, next_frame - time.monotonic()))
    stats.ended = time.monotonic()
    stats.learned = learned_so_far(state, config)
    return stats


# -- keidash demo / run / replay --------------------------------------------------------------
def demo_main(args) -> int:
    """``keidash demo``: the virtual truck through the real sources to the cluster.

    The options become a ``sim://`` URL, which the user never typed: a mistake the rig
    finds in it is said in the command line's words, never with the URL.
    """
    from urllib.parse import urlencode

    from .profiles import load_profile
    profile = load_profile(args.profile)  # an unknown profile is a usage error before anything starts
    if not profile.ratios_known:
        # the virtual truck borrows a sourced gearbox (keidash.sim.physics.stand_in); the dash does not
        print(f"keidash: {profile.title} has no sourced gear ratios: the virtual truck drives on the "
              f"Hijet S500P's gearbox, and the dash learns the ratios as it would on your truck "
              f"(with no rpm source it says what it needs)", file=sys.stderr)
    options = {"hardware": args.hardware, "speedup": _url_number(args.speedup), "skip": _url_number(args.skip),
               "vss_error": _url_number(args.vss_error)}
    if args.obey_cues:
        options["obey"] = "1"
    url = f"sim://{args.profile}?{urlencode(options)}"
    try:
        return start_dash(args, profile, {"sim": url}, size=_window_size(args), fullscreen=False, shift={},
                          demo=True)
    except ConfigError as exc:
        text = str(exc)
        if url not in text:
            raise
        text = text.replace(f"{url}: ", "").replace(url, "the virtual truck")
        for key, option in DEMO_OPTIONS.items():  # vss_error must be ... -> --vss-error must be ...
            if text.startswith(f"{key} "):
                text = option + text[len(key):]
        raise ConfigError(text) from None


def _url_number(value: float) -> str:
    """``value`` for a URL the rig reads back: every digit (:g kept 6), 500 not 500.0; urlencode
    then keeps the + of 1e+300 (%2B: a bare + in a query is a space)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


#: the sim:// URL's options, by the demo's options that set them
DEMO_OPTIONS = {"hardware": "--hardware", "speedup": "--speedup", "skip": "--skip", "vss_error": "--vss-error",
                "obey": "--obey-cues"}


def run_main(args) -> int:
    """``keidash run --config PATH``: a real truck."""
    config = load_config(args.config)
    return start_dash(args, config.profile, config.sources, size=config.size, fullscreen=config.fullscreen,
                shift=config.shift, fps=config.fps, config=config)


def replay_main(args) -> int:
    """``keidash replay LOG``: a recorded drive through the cluster (and ``--estimates``).

    ``args.drive`` is the log played; ``args.log`` is the trip log (``--log``) that keeps
    what the dash showed, never the same file.
    """
    from urllib.parse import quote, urlencode

    from .replay import load_log
    _check_replay_options(args)
    check_writable("--estimates", args.estimates)
    log = load_log(args.drive, format=args.format, columns=args.columns, speed_unit=args.speed_unit)
    profile, learned = _replay_truck(args)
    # what only the dash playing the log makes: with --estimates and nothing to watch, the log is
    # still played through the (unseen) dash for these, instead of their being ignored
    dash_outputs = [option for option, value in (("--log", args.log), ("--screenshot", args.screenshot),
                                                 ("--save-learned", args.save_learned),
                                                 ("--stats-json", args.stats_json)) if value]
    if args.estimates:
        from .estimate.drives import estimate_log, write_estimates
        from .estimate.estimator import config_for
        config = config_for(profile, {}, ("replay",), learned, transmission=args.transmission)
        rows = write_estimates(estimate_log(log, config, hide_rpm=args.hide_rpm), args.estimates)
        if log.bad_rows:
            print(f"keidash: {log.summary()}")
        print(f"keidash: wrote {rows} rows of estimates to {os.path.abspath(args.estimates)}")
        if (args.headless or no_display()) and not dash_outputs:
            return 0  # nothing to watch: the estimates are what was asked for
    if (args.headless or no_display()) and not args.seconds and (dash_outputs or not args.estimates):
        # nothing on screen and nothing printed until the drive ends: say so, and what gives more
        pace = (f"in {log.duration_s / args.speed / 60:.1f} min at {args.speed:g} x real time" if args.speed
                else "as fast as it goes")
        why = "headless" if args.headless else "no display"
        purpose = f" for {', '.join(dash_outputs)}" if args.estimates else ""
        hint = "" if args.estimates else "; --estimates OUT.csv writes what the dash shows at every row at once"
        print(f"keidash: {why}: the log plays through the dash unseen{purpose}, {pace} (Ctrl-C stops it){hint}",
              file=sys.stderr)
    del log  # the replay source reads the file itself: this copy would be held for the whole drive
    options = {"format": args.format, "speed": _url_number(args.speed)}
    if args.columns:
        options["columns"] = args.columns
    if args.speed_unit:
        options["speed_unit"] = args.speed_unit
    if args.hide_rpm:
        options["hide_rpm"] = "1"
    url = "replay://" + quote(os.path.abspath(args.drive)) + "?" + urlencode(options)
    sources = {"replay": url}
    if getattr(args, "audio", None):
        # the cab's recording from the same drive, in step with the log: both play in real time
        # from the same start, and its engine note is one more rpm source (after the log's own)
        sources["mic"] = "audio://" + quote(os.path.abspath(args.audio))
    return start_dash(args, profile, sources, size=_window_size(args), fullscreen=False, shift={},
                      learned=learned)


RATIOS_OPTIONS = (("--ratios-format", "ratios_format"), ("--ratios-columns", "ratios_columns"),
                  ("--ratios-speed-unit", "ratios_speed_unit"))


def _check_replay_options(args) -> None:
    """The mistakes a replay's options can make, each one sentence before any log is read."""
    given = [option for option, dest in RATIOS_OPTIONS if getattr(args, dest, None) is not None]
    if given and not args.ratios_from:
        raise ConfigError(f"{given[0]} describes the log --ratios-from learns from; name that log with "
                          f"--ratios-from LOG2")
    if args.log and _same_file(args.log, args.drive):
        raise ConfigError(f"--log {args.log} is the log being replayed; keep the trip log in another file")
    audio = getattr(args, "audio", None)
    if audio:
        if args.speed != 1:
            raise ConfigError("--audio plays the recording in real time, in step with the log: leave out --speed "
                              "(or give 1)")
        if os.path.isdir(audio):
            raise ConfigError(f"--audio {audio} is a folder; name the WAV file in it")
        if not os.path.isfile(audio):
            raise ConfigError(f"--audio {audio}: no such file")
        if not os.access(audio, os.R_OK):
            raise ConfigError(f"--audio {audio}: cannot read it (permission denied)")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): the same path is still the same file
        return os.path.realpath(a) == os.path.realpath(b)


def idle_known(shift, profile, learned=None) -> bool:
    """Whether the idle the estimator uses is the truck's, not keidash's default: the owner's
    ([shift] idle_rpm), the profile's engine, or seen at a standstill in earlier drives (learned
    now by --ratios-from, or kept in the profile's [learned] table by keidash learn --out)."""
    from .estimate.estimator import seen_idle
    return bool(shift.get("idle_rpm") or profile.engine.idle_rpm or seen_idle(profile, learned))


def _replay_truck(args):
    """The profile a replay runs with, and what was learned beforehand (``--ratios-from``) or None."""
    from .profiles import load_profile, unknown_profile
    if args.profile:
        return load_profile(args.profile), None
    profile = unknown_profile()
    if not args.ratios_from:
        return profile, None  # ratios are learned as the log plays
    from .replay import AmbiguousHeader, load_log
    from .estimate.drives import learn_truck
    try:
        calibration = load_log(args.ratios_from, format=getattr(args, "ratios_format", None) or "auto",
                               columns=getattr(args, "ratios_columns", None),
                               speed_unit=getattr(args, "ratios_speed_unit", None))
    except AmbiguousHeader as exc:  # LOG2's columns are chosen with --ratios-columns, not --columns
        raise exc.for_option("--ratios-columns") from None
    # an automatic (--transmission) also learns its shift map from LOG2
    learned = learn_truck([calibration], profile, transmission=getattr(args, "transmission", None))
    if not learned.ratios:
        raise ConfigError(f"--ratios-from {args.ratios_from}: {learned.why_not}")
    print(f"keidash: learned from {calibration.name}: {learned.describe()}")
    return profile, learned


def _check_trip_log(path: str | None) -> None:
    """A ``--log`` named on the command line that keidash would refuse to write (another
    program's database, or a newer keidash's log) fails before the drive with one sentence,
    instead of a drive that logs nothing. A damaged file is no reason: the writer keeps it
    aside and starts a new log. (The log the config's data_dir implies is not checked here: the
    dash in the truck runs without it and says so on screen.)"""
    if not path:
        return
    from .triplog.writer import DamagedFileError, ForeignDatabaseError, NewerSchemaError, inspect_file
    try:
        inspect_file(path)
    except ForeignDatabaseError as error:
        raise ConfigError(f"--log {path}: that file is another program's SQLite database ({error}); "
                          f"keidash never writes it: name another file") from None
    except NewerSchemaError as error:
        raise ConfigError(f"--log {path}: that trip log was written by a newer keidash ({error}); "
                          f"update keidash or name another file") from None
    except DamagedFileError:
        return  # the writer moves it aside and starts a new log, and says so


def no_display() -> bool:
    return (not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
            and os.environ.get("SDL_VIDEODRIVER") not in ("kmsdrm", "x11", "wayland"))


def _save_learned(profile, learned, path: str, sources: list[str]) -> None:
    """Write the ratios learned while driving into a profile file (or say why there are none)."""
    if learned is None or not learned.found:
        print("keidash: nothing was learned while driving (no steady driving with rpm and speed was seen); "
              f"{path} not written", file=sys.stderr)
        return
    from .estimate.learn import profile_with_learned
    base = profile if profile.name != "unknown" else None
    with open(path, "w", encoding="utf-8") as f:
        f.write(profile_with_learned(base, learned, [f"live: {', '.join(sources)}"]))
    print(f"keidash: wrote the ratios learned while driving ({learned.found} of {len(learned.gears)} gears) "
          f"to {os.path.abspath(path)}")


def start_dash(args, profile, sources: dict[str, str], *, size, fullscreen, shift,
         fps: float = 60.0, demo: bool = False, learned=None, config=None) -> int:
    """Run the dash: ``config`` is the run's Config (None for demo and replay: defaults)."""
    from .profiles import load_profile
    from .rig import open_rig

    if isinstance(profile, str):
        profile = load_profile(profile)
    headless = args.headless or no_display()
    seconds = args.seconds or (DEFAULT_HEADLESS_SECONDS if headless and demo else None)
    screenshot = args.screenshot or (DEFAULT_SCREENSHOT if headless and demo else None)
    # every output path is checked before the drive, not after it
    for option, path in (("--screenshot", args.screenshot), ("--stats-json", args.stats_json),
                         ("--save-learned", args.save_learned), ("--log", args.log)):
        check_writable(option, path)
    _check_trip_log(args.log)
    if args.save_learned and (learned is not None and learned.ratios or profile.rpm_per_kmh()):
        # with every ratio known nothing is learned live: the drive could only end in "not written"
        where = "were learned from --ratios-from" if learned is not None and learned.ratios else \
            f"are in the {profile.name} profile"
        raise ConfigError(f"--save-learned {args.save_learned}: the gear ratios {where}, so none are learned "
                          f"while driving; drop --save-learned, or drive with a profile without them")
    if screenshot and not args.screenshot:  # the demo's own screenshot, in the current folder
        check_writable("--screenshot", screenshot,
                       label=f"the demo saves its last frame as {screenshot} in the current folder",
                       hint="run it from a folder you can write in, or give --screenshot PATH")
    if headless and seconds is None and not all(url.startswith("replay:") for url in sources.values()):
        print("keidash: running headless; stop with Ctrl-C or SIGTERM", file=sys.stderr)

    # Ctrl-C and SIGTERM: before the frame loop (opening the display, fast-forwarding the virtual
    # truck into its day) they end the start-up at once; in it, they stop the loop after its frame.
    # SDL turns both into a quit event once the display is open, which nothing reads before the loop.
    stop = threading.Event()
    looping = threading.Event()

    signals: list[int] = []

    def on_signal(signum, frame):
        stop.set()
        signals.append(signum)
        if not looping.is_set():
            raise _Interrupted(signum)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    cluster = rig = cab = log = watchdog = None
    outputs = []
    try:
        from .display.cluster import Cluster
        from .display.screen import Screen
        layout = args.layout or (config.layout if config else None)
        layout_notes: list[str] = []  # said once, also on the dash (the cab is made below)

        def open_cluster():
            cluster = Cluster(size=size, fullscreen=fullscreen and not headless, headless=headless, layout=layout)
            note = _layout_fit(cluster.layout, args.layout, config.layout if config else None)
            if note:  # the config's layout hid gear and speed: the screen's own layout instead
                cluster.close()
                cluster = Cluster(size=size, fullscreen=fullscreen and not headless, headless=headless)
                if note not in layout_notes:
                    layout_notes.append(note)
                    print(f"keidash: {note}", file=sys.stderr)
                    if cab is not None:
                        cab.problems.append(f"layout {config.layout} does not fit this screen")
            return cluster
        if headless:  # offscreen: nothing to lose
            try:
                cluster = open_cluster()
            except KeidashError:  # a layout that does not fit: its own sentence
                raise
            except Exception as exc:  # pygame.error and friends: say it plainly
                raise KeidashError(f"cannot open the display: {exc}") from None
        else:  # a display that cannot be opened (no /dev/dri, a loose cable) is retried, never fatal
            cluster = Screen(open_cluster)

        rig = open_rig(sources, profile, config.data_dir if config else None)
        from .estimate.estimator import config_for
        estimator = config_for(profile, shift, rig.priority(), learned,
                               transmission=getattr(args, "transmission", None))
        # the idle the ripple lead's factor may be learned from (the ratios: run_dash hands them over)
        rig.know_idle(estimator.limits.idle_rpm, known=idle_known(shift, profile, learned))
        cab, outputs = _cab_and_outputs(args, config)
        if layout_notes:
            # on the dash too, short enough for its message strip: the owner sees the setting is not used
            cab.problems.append(f"layout {config.layout} does not fit this screen")
        log_path = args.log or (os.path.join(config.data_dir, "trips.db") if config and config.data_dir else None)
        if log_path:
            from .triplog.writer import TripLog
            log = TripLog(log_path, profile=profile.name,
                          sources=" ".join(f"{n}={u}" for n, u in sources.items()),
                          **(config.trip_log if config else {}))  # [trip_log] retention
        from .pi.notify import Watchdog, sources_alive  # systemd: READY=1 at the first frame, pings while healthy
        watchdog = Watchdog.from_environment(
            check_sources=lambda: sources_alive(rig.sources),
            describe=lambda: _status_line(cluster, rig))
        looping.set()
        if stop.is_set():  # a signal came while the rest was opened
            return _stopped_status(signals[-1])
        rig.start()
        stats = run_dash(rig, estimator, [cluster, *outputs], fps=args.fps or fps, seconds=seconds, stop=stop,
                         should_quit=lambda: cluster.poll_quit() or rig.finished(),
                         calibration=rig.vss_calibration(), cab=cab, log=log,
                         on_frame=lambda dash: watchdog.frame(time.monotonic()))
        vss = stats.vss_calibration
        if vss is not None and vss.ready and vss.pulses_per_km:
            print(f"keidash: the speed sensor gives {vss.pulses_per_km:.0f} pulses per km (measured "
                  f"against the GPS); put vss_ppk={vss.pulses_per_km:.0f} in the pulses:// URL")
        if args.save_learned:
            _save_learned(profile, stats.learned, args.save_learned, list(sources))
        if screenshot:
            try:
                cluster.save(screenshot)
            except Exception as exc:  # the disk filled or went read-only during the drive
                raise KeidashError(f"could not save the screenshot {screenshot}: {_reason(exc)}") from None
            print(f"keidash: saved a screenshot of the cluster to {os.path.abspath(screenshot)}")
        if args.stats_json:
            try:
                stats.write(args.stats_json)
            except OSError as exc:
                raise KeidashError(f"could not write --stats-json {args.stats_json}: {_reason(exc)}") from None
    except _Interrupted as interrupted:  # stopped before the first frame: nothing to save
        return _stopped_status(interrupted.signum)
    except Exception as exc:
        if signals and not looping.is_set():
            # the stop was raised inside code that turned it into an error of its own (a module
            # compiled on import loads unicodedata for a \N{...} escape and reports a SyntaxError
            # when that is interrupted): still the stop, never a traceback
            logger.debug("start-up stopped by signal %d: %r", signals[0], exc)
            return _stopped_status(signals[0])
        raise
    finally:
        if watchdog is not None:
            watchdog.stopping()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if rig is not None:
            rig.stop()
        if cab is not None:
            cab.close()
        if log is not None:
            log.close()
        for output in outputs:
            output.close()
        if cluster is not None:
            cluster.close()
    return 0


def _status_line(cluster, rig) -> str:
    """``systemctl status keidash``'s line: a missing display first, then each source's link."""
    parts = [cluster.problem] if getattr(cluster, "problem", "") else []
    parts += [f"{name}: {'connected' if ok else (message or 'not connected')}"
              for name, (ok, message, *_) in rig.links().items()]
    return "; ".join(parts)


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM before the frame loop: the start-up ends where it is."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stopped_status(signum: int) -> int:
    """Ctrl-C is 130, as a shell expects; SIGTERM is a request to stop (systemd's), so a clean 0."""
    return 130 if signum == signal.SIGINT else 0


def _window_size(args) -> tuple[int, int]:
    """The demo's or replay's window: --size, else the --layout's own size (a window can take the
    shape of the layout asked for), else 800x480."""
    if args.size:
        return args.size
    from .display.layout import LAYOUTS
    return LAYOUTS[args.layout][0] if args.layout else (800, 480)


def _layout_fit(layout, typed: str | None, configured: str | None) -> str | None:
    """Refuse a layout that would push gear and speed off the screen, or fit the screen instead.

    A layout typed on the command line is refused (ConfigError): someone is at the keyboard to
    choose again. One in the config is replaced by the screen's own layout, with the returned
    sentence for stderr and the dash: the config's dash starts in the truck with nobody at a
    keyboard, where gear and speed on the screen matter more than the setting. None: it fits.
    """
    from .display.layout import LAYOUTS, choose_layout
    hidden = layout.off_screen()
    if not hidden:
        return None
    w, h = layout.size
    what = " and ".join([", ".join(hidden[:-1]), hidden[-1]] if len(hidden) > 1 else hidden)
    fitting = choose_layout(layout.size)
    if typed is None and configured is None:  # the screen's own layout does not fit it (a portrait screen)
        raise ConfigError(f"the cluster does not fit this {w}x{h} screen: keidash's layouts are for landscape "
                          f"screens like {', '.join(LAYOUTS)}")
    if typed is not None:
        raise ConfigError(f"--layout {typed} does not fit this {w}x{h} screen: it would put the {what} off the "
                          f"screen; use --layout {fitting}, or leave --layout out to fit the screen")
    return (f"[display] layout {configured} does not fit this {w}x{h} screen (it would hide the {what}): "
            f"showing layout {fitting} instead")


def _reason(exc: BaseException) -> str:
    """An OSError's reason in words (``No space left on device``), else the exception's text."""
    code = getattr(exc, "errno", None)
    return os.strerror(code).lower() if isinstance(code, int) else str(exc)


def _cab_and_outputs(args, config):
    """The cab (trip, clock, night, button) and the GPIO outputs the config asks for.

    A GPIO device that cannot be opened (no GPIO here, pin busy, no permission) is one
    warning and the dash runs without it, saying so on screen: the cluster matters more.
    """
    from .cab import AlarmLimits, Cab, CabSettings
    units = args.units or (config.units if config else "mph")
    temperature = getattr(args, "temperature", None) or (config.temperature if config else "C")
    if config is None:
        return Cab(CabSettings(units=units, temperature=temperature)), []
    distance_file = os.path.join(config.data_dir, "distance.json") if config.data_dir else None
    cab = Cab(CabSettings(units=units, odometer_km=config.odometer_km, distance_file=distance_file,
                          night_from=config.night["night_from"], day_from=config.night["day_from"],
                          button_pin=config.button_pin, night_switch_pin=config.night["switch"],
                          temperature=temperature, alarms=AlarmLimits(**config.alarms)))
    outputs = []
    if config.lights:
        from .outputs.lights import ShiftBuzzer, ShiftLights
        lights = config.lights
        if lights["bar"] or lights["down"] is not None:
            outputs.append(ShiftLights(lights["bar"], down_pin=lights["down"], span_rpm=lights["span_rpm"]))
        if lights["buzzer"] is not None:
            outputs.append(ShiftBuzzer(lights["buzzer"]))
    cab.problems += [output.problem for output in outputs if output.problem]  # shown on the dash
    if config.backlight is not None:  # a display without a backlight control is no fault: logged only
        from .outputs.backlight import Backlight
        outputs.append(Backlight(config.backlight["path"], day=config.backlight["day"],
                                 night=config.backlight["night"]))
    return cab, outputs
