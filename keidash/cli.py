"""keidash's command line: ``keidash demo``, ``keidash run``, ``keidash profiles``.

A user mistake (bad argument, unknown profile, bad config key) gets one plain
sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from . import __version__
from .errors import ConfigError, KeidashError, ProfileError

logger = logging.getLogger("keidash")

EXIT_USAGE = 2
DEFAULT_HEADLESS_SECONDS = 20.0
DEFAULT_SCREENSHOT = "keidash-demo.png"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, not a usage dump
        self.exit(EXIT_USAGE, f"keidash: {message} (see 'keidash {self.prog.split()[-1]} --help')\n"
                  if " " in self.prog else f"keidash: {message} (see 'keidash --help')\n")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w < 160 or h < 120:
            raise ValueError
        return w, h
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 800x480, not {text!r}") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
    return value


def _non_negative(text: str) -> float:
    value = float(text) if text.replace(".", "", 1).isdigit() else -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number, 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="keidash", description="Instrument cluster for Japanese kei mini-trucks.")
    parser.add_argument("--version", action="version", version=f"keidash {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def display_options(p):
        p.add_argument("--headless", action="store_true", help="render off-screen (no window)")
        p.add_argument("--seconds", type=_positive, help="stop after this many seconds")
        p.add_argument("--screenshot", metavar="PATH", help="save the last frame as a PNG")
        p.add_argument("--fps", type=_positive, help="frames per second (default 60)")
        p.add_argument("--stats-json", metavar="PATH", help="write frame statistics as JSON on exit")
        p.add_argument("--units", choices=("mph", "kmh"), help="the big speed figure (default mph, or the config's)")
        p.add_argument("--layout", choices=("800x480", "480x320", "1024x600", "1280x400"),
                       help="cluster layout (default: from the screen size)")
        p.add_argument("--log", metavar="TRIPS.db",
                       help="keep every reading and frame in this SQLite trip log (keidash run: default "
                            "data_dir/trips.db when the config sets data_dir)")
        p.add_argument("--save-learned", metavar="PROFILE.toml",
                       help="on exit, write the gear ratios learned while driving into this profile file")
        p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")

    demo = sub.add_parser("demo", help="run the virtual truck through the real pipeline to the cluster")
    demo.add_argument("--profile", default="hijet-s500p", help="truck to simulate (default hijet-s500p)")
    demo.add_argument("--hardware", default="obd,gps,pulses",
                      help="emulated devices to read, comma-separated: obd,gps,pulses "
                           "(gps alone = a truck with no rpm source)")
    demo.add_argument("--speedup", type=_positive, default=1.0, help="simulated seconds per real second")
    demo.add_argument("--skip", type=_non_negative, default=0.0,
                      help="start this many simulated seconds into the day")
    demo.add_argument("--obey-cues", action="store_true",
                      help="the virtual driver shifts when keidash says so (closed loop)")
    demo.add_argument("--vss-error", type=float, default=0.0, metavar="PCT",
                      help="make the virtual speed sensor read PCT %% high, to watch keidash learn it")
    demo.add_argument("--size", type=_size, default=(800, 480), help="screen size, e.g. 800x480")
    display_options(demo)

    run = sub.add_parser("run", help="drive a real truck from a config file")
    run.add_argument("--config", required=True, metavar="PATH", help="TOML config (see docs/config.md)")
    display_options(run)

    replay = sub.add_parser("replay", help="play a recorded drive through the cluster")
    replay.add_argument("log", metavar="LOG", help="carOBD CSV, OpenXC trace, Torque Pro CSV or any CSV")
    replay.add_argument("--format", default="auto", help="auto (default), carobd, openxc, torque or csv")
    replay.add_argument("--columns", help="for any CSV: time=COL,speed=COL[,rpm=COL][,gear=COL]")
    replay.add_argument("--speed-unit", choices=("kmh", "mph", "ms"), help="unit of the speed column")
    replay.add_argument("--speed", type=_non_negative, default=1.0,
                        help="times real time (default 1; 0 = as fast as possible)")
    truck = replay.add_mutually_exclusive_group()
    truck.add_argument("--profile", help="the truck the log was driven in (default: learn it as the log plays)")
    truck.add_argument("--ratios-from", metavar="LOG2",
                       help="learn the truck (gear ratios, habits) from another drive with rpm first")
    replay.add_argument("--hide-rpm", action="store_true", help="hide the log's rpm: estimate it from speed")
    replay.add_argument("--estimates", metavar="OUT.csv",
                        help="write one row per sample: t, speed_kmh, rpm_in, rpm_est, gear_est, cue")
    replay.add_argument("--size", type=_size, default=(800, 480), help="screen size, e.g. 800x480")
    display_options(replay)

    learn = sub.add_parser("learn", help="learn a truck's gear ratios from drives with rpm and speed")
    learn.add_argument("logs", nargs="+", metavar="LOG", help="drive logs (any format replay reads)")
    learn.add_argument("--profile", help="the truck's profile to add the learned ratios to")
    learn.add_argument("--gears", type=int, help="forward gears (default: the profile's, else found)")
    learn.add_argument("--out", metavar="PROFILE.toml", help="write the profile with the learned ratios")

    marks = sub.add_parser("marks", help="shift speeds per gear, as a table and a speedometer sticker")
    marks.add_argument("--profile", required=True, help="the truck (its ratios known or learned)")
    marks.add_argument("--units", choices=("mph", "kmh"), default="kmh",
                       help="speed units (default kmh: a kei truck's speedometer reads km/h)")
    marks.add_argument("--out", metavar="FILE.svg|.png", help="write a printable sticker")

    ev = sub.add_parser("eval", help="the estimator's figures on recorded drives")
    ev.add_argument("paths", nargs="+", metavar="LOG|DIR", help="logs, or folders of logs (one folder per vehicle)")
    ev.add_argument("--json", metavar="PATH", help="also write the figures as JSON")

    probe = sub.add_parser("probe", help="open one source and report its update rate and errors")
    probe.add_argument("url", metavar="URL", help="e.g. obd:///dev/ttyUSB0?protocol=5 or nmea:///dev/serial0")
    probe.add_argument("--seconds", type=_positive, default=5.0, help="how long to listen (default 5)")
    probe.add_argument("--json", action="store_true", help="print one JSON object")
    probe.add_argument("--profile", help="profile for pulse defaults (tach pulses per rev)")
    probe.add_argument("-v", "--verbose", action="count", default=0, help="more log output")

    doctor = sub.add_parser("doctor", help="check this Pi is ready: ports, adapter, GPS fix, pins, display, "
                                           "groups, disk")
    doctor.add_argument("--config", metavar="PATH", help="TOML config (default /etc/keidash/config.toml when it "
                                                         "exists)")
    doctor.add_argument("--seconds", type=_positive, default=5.0,
                        help="how long to listen to the adapter and the GPS (default 5)")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")

    ign = sub.add_parser("ignition", help="power the Pi off after the ignition has been off a while")
    ign.add_argument("--pin", type=int, required=True, help="BCM number of the ignition-sense input (hardware/: 22)")
    ign.add_argument("--grace", type=_positive, default=10.0, help="seconds off before powering off (default 10)")
    polarity = ign.add_mutually_exclusive_group()
    polarity.add_argument("--active-low", dest="active_low", action="store_true", default=True,
                          help="the pin reads LOW while the ignition is on (optocoupler; default)")
    polarity.add_argument("--active-high", dest="active_low", action="store_false",
                          help="the pin reads HIGH while the ignition is on")

    trips = sub.add_parser("trips", help="list the trips in the trip log")
    trips.add_argument("db", metavar="LOG", help="the trip log (SQLite), e.g. /var/lib/keidash/trips.db")
    report = sub.add_parser("report", help="one trip as an HTML or PNG report")
    report.add_argument("db", metavar="LOG", help="the trip log (SQLite)")
    report.add_argument("--trip", default="last", help="trip number (see keidash trips) or last (default)")
    report.add_argument("-o", "--out", metavar="FILE.html|FILE.png",
                        help="default trip-N.html; PNG needs keidash[report] (matplotlib)")
    export = sub.add_parser("export", help="one trip as CSV (frames) or GPX (GPS track)")
    export.add_argument("db", metavar="LOG", help="the trip log (SQLite)")
    export.add_argument("--trip", default="last", help="trip number or last (default)")
    export.add_argument("-o", "--out", required=True, metavar="FILE.csv|FILE.gpx")

    sub.add_parser("profiles", help="list the vehicle profiles")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING - 10 * getattr(args, "verbose", 0),
                        format="%(levelname)s %(name)s: %(message)s")
    # python-obd's import makes pint redefine units and log each at WARNING: noise, not news
    logging.getLogger("pint").setLevel(logging.ERROR)
    try:
        if args.command == "profiles":
            return cmd_profiles()
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "replay":
            return cmd_replay(args)
        if args.command == "probe":
            return cmd_probe(args)
        if args.command == "learn":
            return cmd_learn(args)
        if args.command == "marks":
            return cmd_marks(args)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "ignition":
            from .ignition import ignition_main
            return ignition_main(args.pin, args.grace, args.active_low)
        if args.command in ("trips", "report", "export"):
            from . import trips
            if args.command == "trips":
                return trips.trips_main(args.db)
            if args.command == "report":
                return trips.report_main(args.db, args.trip, args.out)
            return trips.export_main(args.db, args.trip, args.out)
        if args.command == "doctor":
            from .doctor import doctor_main
            return doctor_main(args.config, args.seconds, args.json)
        return cmd_run(args)
    except (ConfigError, ProfileError) as exc:
        print(f"keidash: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeidashError as exc:
        print(f"keidash: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_profiles() -> int:
    from .profiles import list_profiles, load_profile
    for name in list_profiles():
        p = load_profile(name)
        gears = (f"{len(p.gear_ratios)} gears, final {p.final_drive:g}" if p.ratios_known
                 else "ratios learned by driving")
        print(f"{name:14s} {p.title} ({p.years}), {p.engine.code} {p.engine.displacement_cc:g} cc, "
              f"{p.tyre.size}, {gears}")
    return 0


def cmd_demo(args) -> int:
    from .profiles import load_profile
    load_profile(args.profile)  # an unknown profile is a usage error before anything starts
    query = f"hardware={args.hardware}&speedup={args.speedup:g}&skip={args.skip:g}&vss_error={args.vss_error:g}"
    if args.obey_cues:
        query += "&obey=1"
    sources = {"sim": f"sim://{args.profile}?{query}"}
    return _run(args, args.profile, sources, size=args.size, fullscreen=False, shift={}, demo=True)


def cmd_probe(args) -> int:
    """Exit status 0 when some reading arrived, 1 when none did (the report says why)."""
    import json

    from .probe import format_probe, probe
    from .profiles import load_profile
    profile = load_profile(args.profile) if args.profile else None
    result = probe(args.url, args.seconds, profile)
    print(json.dumps(result, indent=1) if args.json else format_probe(result))
    return 0 if any(s.get("readings") for s in result.get("sources", {}).values()) else 1


def cmd_replay(args) -> int:
    from urllib.parse import quote, urlencode

    from .replay import load_log
    _check_writable("--estimates", args.estimates)
    log = load_log(args.log, format=args.format, columns=args.columns, speed_unit=args.speed_unit)
    profile, learned = _replay_truck(args)
    if args.estimates:
        from .estimates import estimate_log, write_estimates
        from .estimator import config_for
        config = config_for(profile, {}, ("replay",), learned)
        rows = write_estimates(estimate_log(log, config, hide_rpm=args.hide_rpm), args.estimates)
        print(f"keidash: wrote {rows} rows of estimates to {os.path.abspath(args.estimates)}")
        if args.headless or _no_display():
            return 0  # nothing to watch: the estimates are what was asked for
    options = {"format": args.format, "speed": f"{args.speed:g}"}
    if args.columns:
        options["columns"] = args.columns
    if args.speed_unit:
        options["speed_unit"] = args.speed_unit
    if args.hide_rpm:
        options["hide_rpm"] = "1"
    url = "replay://" + quote(os.path.abspath(args.log)) + "?" + urlencode(options)
    return _run(args, profile, {"replay": url}, size=args.size, fullscreen=False, shift={}, learned=learned)


def _replay_truck(args):
    """The profile a replay runs with, and what was learned beforehand (``--ratios-from``) or None."""
    from .profiles import load_profile, unknown_profile
    if args.profile:
        return load_profile(args.profile), None
    profile = unknown_profile()
    if not args.ratios_from:
        return profile, None  # ratios are learned as the log plays
    from .replay import load_log
    from .truck import learn_truck
    calibration = load_log(args.ratios_from)
    learned = learn_truck([calibration], profile)
    if not learned.ratios:
        raise ConfigError(f"--ratios-from {args.ratios_from}: {learned.why_not}")
    print(f"keidash: learned from {calibration.name}: {learned.describe()}")
    return profile, learned


def cmd_learn(args) -> int:
    from .learn import profile_with_learned
    from .profiles import load_profile
    from .replay import load_log
    from .truck import learn_truck
    if args.out:
        _check_writable("--out", args.out)
    if args.gears is not None and not 1 <= args.gears <= 10:
        raise ConfigError(f"--gears {args.gears}: a gearbox has 1 to 10 forward gears")
    profile = load_profile(args.profile) if args.profile else None
    logs = [load_log(path) for path in args.logs]
    learned = learn_truck(logs, profile, gears=args.gears)
    print(learned.report())
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(profile_with_learned(profile, learned.ratios_learned, [log.name for log in logs]))
        print(f"keidash: wrote the profile with the learned ratios to {os.path.abspath(args.out)}")
    return 0 if learned.ratios else 1


def cmd_marks(args) -> int:
    if args.out:
        _check_writable("--out", args.out)
    from .marks import marks_main
    print(marks_main(args.profile, args.units, args.out))
    if args.out:
        print(f"keidash: wrote the sticker to {os.path.abspath(args.out)}")
    return 0


def cmd_eval(args) -> int:
    import json

    from .evaluate import as_json, evaluate, format_table
    for path in args.paths:
        if not os.path.exists(path):
            raise ConfigError(f"{path}: no such file or folder")
    if args.json:
        _check_writable("--json", args.json)
    figures = evaluate(args.paths)
    print(format_table(figures))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(as_json(figures), f, indent=1)
    return 0


def cmd_run(args) -> int:
    from .config import load_config
    config = load_config(args.config)
    return _run(args, config.profile, config.sources, size=config.size, fullscreen=config.fullscreen,
                shift=config.shift, fps=config.fps, config=config)


def _no_display() -> bool:
    return (not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
            and os.environ.get("SDL_VIDEODRIVER") not in ("kmsdrm", "x11", "wayland"))


def _check_writable(option: str, path: str | None) -> None:
    """Fail before the drive, not after it, when an output file cannot be written."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{option} {path}: cannot write in {folder} (permission denied)")


def _save_learned(profile, learned, path: str, sources: list[str]) -> None:
    """Write the ratios learned while driving into a profile file (or say why there are none)."""
    if learned is None or not learned.found:
        print("keidash: nothing was learned while driving (the ratios were known, or no steady driving "
              f"with rpm and speed was seen); {path} not written", file=sys.stderr)
        return
    from .learn import profile_with_learned
    base = profile if profile.name != "unknown" else None
    with open(path, "w", encoding="utf-8") as f:
        f.write(profile_with_learned(base, learned, [f"live: {', '.join(sources)}"]))
    print(f"keidash: wrote the ratios learned while driving ({learned.found} of {len(learned.gears)} gears) "
          f"to {os.path.abspath(path)}")


def _run(args, profile, sources: dict[str, str], *, size, fullscreen, shift,
         fps: float = 60.0, demo: bool = False, learned=None, config=None) -> int:
    """Run the dash: ``config`` is the run's Config (None for demo and replay: defaults)."""
    from .profiles import load_profile
    from .rig import open_rig

    if isinstance(profile, str):
        profile = load_profile(profile)
    for option, path in (("--screenshot", args.screenshot), ("--stats-json", args.stats_json),
                         ("--save-learned", args.save_learned), ("--log", args.log)):
        _check_writable(option, path)
    headless = args.headless or _no_display()
    seconds = args.seconds or (DEFAULT_HEADLESS_SECONDS if headless and demo else None)
    screenshot = args.screenshot or (DEFAULT_SCREENSHOT if headless and demo else None)
    if headless and seconds is None and not all(url.startswith("replay:") for url in sources.values()):
        print("keidash: running headless; stop with Ctrl-C or SIGTERM", file=sys.stderr)

    from .display.cluster import Cluster
    layout = args.layout or (config.layout if config else None)
    try:
        cluster = Cluster(size=size, fullscreen=fullscreen and not headless, headless=headless, layout=layout)
    except Exception as exc:  # pygame.error and friends: say it plainly
        raise KeidashError(f"cannot open the display: {exc}") from None

    rig = open_rig(sources, profile)
    from .estimator import config_for
    estimator = config_for(profile, shift, rig.priority(), learned)
    cab, outputs = _cab_and_outputs(args, config)
    log_path = args.log or (os.path.join(config.data_dir, "trips.db") if config and config.data_dir else None)
    log = None
    if log_path:
        from .triplog import TripLog
        log = TripLog(log_path, profile=profile.name, sources=" ".join(f"{n}={u}" for n, u in sources.items()))
    from .notify import Watchdog, sources_alive  # systemd: READY=1 at the first frame, pings while healthy
    watchdog = Watchdog.from_environment(
        check_sources=lambda: sources_alive(rig.sources),
        describe=lambda: "; ".join(f"{name}: {'connected' if ok else (message or 'not connected')}"
                                   for name, (ok, message, *_) in rig.links().items()))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    from .app import run_dash
    try:
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
            cluster.save(screenshot)
            print(f"keidash: saved a screenshot of the cluster to {os.path.abspath(screenshot)}")
        if args.stats_json:
            stats.write(args.stats_json)
    finally:
        watchdog.stopping()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        rig.stop()
        cab.close()
        if log is not None:
            log.close()
        for output in outputs:
            output.close()
        cluster.close()
    return 0


def _cab_and_outputs(args, config):
    """The cab (trip, clock, night, button) and the GPIO outputs the config asks for.

    A GPIO device that cannot be opened (no GPIO here, pin busy, no permission) is one
    warning and the dash runs without it, saying so on screen: the cluster matters more.
    """
    from .cab import Cab, CabSettings
    units = args.units or (config.units if config else "mph")
    if config is None:
        return Cab(CabSettings(units=units)), []
    distance_file = os.path.join(config.data_dir, "distance.json") if config.data_dir else None
    cab = Cab(CabSettings(units=units, odometer_km=config.odometer_km, distance_file=distance_file,
                          night_from=config.night["night_from"], day_from=config.night["day_from"],
                          button_pin=config.button_pin, night_switch_pin=config.night["switch"]))
    outputs = []
    if config.lights:
        from .outputs.lights import ShiftBuzzer, ShiftLights
        lights = config.lights
        outputs.append(ShiftLights(lights["bar"], down_pin=lights["down"], span_rpm=lights["span_rpm"]))
        if lights["buzzer"] is not None:
            outputs.append(ShiftBuzzer(lights["buzzer"]))
    cab.problems += [output.problem for output in outputs if output.problem]  # shown on the dash
    if config.backlight is not None:  # a display without a backlight control is no fault: logged only
        from .backlight import Backlight
        outputs.append(Backlight(config.backlight["path"], day=config.backlight["day"],
                                 night=config.backlight["night"]))
    return cab, outputs


if __name__ == "__main__":
    sys.exit(main())
