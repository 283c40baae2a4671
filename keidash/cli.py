"""keidash's command line: argument parsing and dispatch, nothing more.

Each command's body lives beside the part it drives (:func:`dispatch` says
where). A user mistake (bad argument, unknown profile, bad config key) gets one
plain sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .config import FPS, HEIGHT, PIN, REPLAY_SPEED, SIM_SKIP, SIM_SPEEDUP, SIM_VSS_ERROR, WIDTH, Range
from .errors import ConfigError, KeidashError, ProfileError
from .profiles import CYLINDERS, GEAR_COUNT

logger = logging.getLogger("keidash")

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, not a usage dump
        self.exit(EXIT_USAGE, f"keidash: {message} (see 'keidash {self.prog.split()[-1]} --help')\n"
                  if " " in self.prog else f"keidash: {message} (see 'keidash --help')\n")


def _size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, each in the config's [display] width and height ranges."""
    w, _, h = text.lower().partition("x")
    width, height = WIDTH.read(w), HEIGHT.read(h)
    if width is None or height is None:
        raise argparse.ArgumentTypeError(f"must look like 800x480, not {text!r}")
    for value, key, limits in ((width, "the width", WIDTH), (height, "the height", HEIGHT)):
        if not limits.holds(value):
            raise argparse.ArgumentTypeError(f"{key} must be {limits}, not {value} (in {text!r})")
    return width, height


# Every number on the command line is a Range (keidash.config), most of them the config's own:
# finite and in range, else one sentence ("argument --fps: must be a positive number from 1 to
# 240 frames a second, not 'nan'").

#: the demo's day (keidash.sim.driver.KEI_DAY) lasts about 487 simulated seconds before it starts
#: over; --skip past it would only fast-forward through the same day again (tests pin the figure)
DEMO_DAY_S = SIM_SKIP.high
#: --seconds of a drive: up to a week (a number beyond is a typo; leave --seconds out to run until stopped)
DRIVE_SECONDS = Range(0, 7 * 24 * 3600, " s (leave it out to run until stopped)", above=True)
#: --seconds of probe and doctor: listening longer than an hour tells nothing more
LISTEN_SECONDS = Range(0, 3600, " s", above=True)
GRACE_SECONDS = Range(0, 3600, " s", above=True)
CHANNEL = Range(1, 32, " (1 = the first channel)", whole=True)


#: the registered log formats (keidash.replay.FORMATS), written out so the CLI imports no reader
LOG_FORMATS = "auto (default: recognised from the file), carobd, openxc, torque, csv or triplog"


def log_options(p, prefix: str = "", which: str = "the log") -> None:
    """--format, --columns and --speed-unit (with ``prefix``: the same for another log, e.g. --ratios-from's)."""
    p.add_argument(f"--{prefix}format", default=None if prefix else "auto", metavar="FORMAT",
                   help=f"format of {which}: {LOG_FORMATS}")
    p.add_argument(f"--{prefix}columns", metavar="MAP",
                   help=f"the columns of {which} when it is a CSV whose header keidash does not know or names "
                        "twice: time=COL,speed=COL[,rpm=COL][,gear=COL]")
    p.add_argument(f"--{prefix}speed-unit", choices=("kmh", "mph", "ms"),
                   help=f"unit of the speed column of {which} (default: from the column's name, else kmh)")


#: the virtual truck's emulated devices (keidash.rig.SIM_HARDWARE), written out so the CLI imports no rig
SIM_HARDWARE = ("obd", "gps", "pulses", "audio")


def _hardware(text: str) -> str:
    names = [h.strip() for h in text.split(",") if h.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"name at least one device, e.g. obd,gps,pulses or gps (not {text!r})")
    for name in names:
        if name not in SIM_HARDWARE:
            raise argparse.ArgumentTypeError(f"unknown hardware {name!r}; choose from {', '.join(SIM_HARDWARE)}")
    return ",".join(dict.fromkeys(names))


def _strokes(text: str) -> int:
    if text.strip() not in ("2", "4"):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: --strokes is 2 or 4")
    return int(text)


def _transmission(text: str) -> str:
    from .profiles import is_gearbox
    t = text.strip().upper().replace(" ", "")
    if not is_gearbox(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a gearbox: say 5MT, 4MT+EL, 3AT, CVT, manual or automatic")
    return "MT" if t == "MANUAL" else "AT" if t in ("AUTOMATIC", "AUTO") else t


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="keidash", description="Instrument cluster for Japanese kei mini-trucks.")
    parser.add_argument("--version", action="version", version=f"keidash {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def display_options(p):
        p.add_argument("--headless", action="store_true", help="render off-screen (no window)")
        p.add_argument("--seconds", type=DRIVE_SECONDS.arg, help="stop after this many seconds")
        p.add_argument("--screenshot", metavar="PATH", help="save the last frame as a PNG")
        p.add_argument("--fps", type=FPS.arg, help="frames per second while the dash moves, 1 to 240 (default 60)")
        p.add_argument("--stats-json", metavar="PATH", help="write frame statistics as JSON on exit")
        p.add_argument("--units", choices=("mph", "kmh"), help="the big speed figure (default mph, or the config's)")
        p.add_argument("--temperature", choices=("C", "F"),
                       help="the coolant in deg C or F (default C, or the config's)")
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
    demo.add_argument("--hardware", type=_hardware, default="obd,gps,pulses",
                      help="emulated devices to read, comma-separated: obd,gps,pulses,audio "
                           "(gps alone = a truck with no rpm source; audio,gps = a microphone and a GPS)")
    demo.add_argument("--speedup", type=SIM_SPEEDUP.arg,
                      default=1.0, help="simulated seconds per real second, 0.1 to 20")
    demo.add_argument("--skip", type=SIM_SKIP.arg, default=0.0,
                      help=f"start this many simulated seconds into the day (0 to {DEMO_DAY_S:g})")
    demo.add_argument("--obey-cues", action="store_true",
                      help="the virtual driver shifts when keidash says so (closed loop)")
    demo.add_argument("--vss-error", type=SIM_VSS_ERROR.arg, default=0.0, metavar="PCT",
                      help="make the virtual speed sensor read PCT %% high, to watch keidash learn it")
    demo.add_argument("--size", type=_size,
                      help="window size, e.g. 800x480 (default: the --layout's own, else 800x480)")
    display_options(demo)

    run = sub.add_parser("run", help="drive a real truck from a config file")
    run.add_argument("--config", required=True, metavar="PATH", help="TOML config (see docs/config.md)")
    display_options(run)

    replay = sub.add_parser("replay", help="play a recorded drive through the cluster")
    # dest "drive": --log (the trip log, display_options) is another file and keeps args.log
    replay.add_argument("drive", metavar="LOG",
                        help="carOBD CSV, OpenXC trace, Torque Pro CSV, keidash trip log or any CSV")
    log_options(replay)
    replay.add_argument("--speed", type=REPLAY_SPEED.arg, default=1.0,
                        help="times real time (default 1; 0 = as fast as possible)")
    truck = replay.add_mutually_exclusive_group()
    truck.add_argument("--profile", help="the truck the log was driven in (default: learn it as the log plays)")
    truck.add_argument("--ratios-from", metavar="LOG2",
                       help="learn the truck (gear ratios, habits) from another drive with rpm first")
    # LOG2 gets options of its own: it is often another logger's file than LOG (an OBD log to learn
    # from, a GPS log to replay), so one --columns for both would fit neither
    log_options(replay.add_argument_group("LOG2 (--ratios-from), when not recognised from the file"),
                "ratios-", "LOG2")
    replay.add_argument("--transmission", type=_transmission, metavar="T",
                        help="the gearbox, when no --profile says: 5MT, 4MT+EL, 3AT, CVT, manual or automatic "
                             "(default: manual, as most kei trucks)")
    replay.add_argument("--hide-rpm", action="store_true", help="hide the log's rpm: estimate it from speed")
    replay.add_argument("--audio", metavar="FILE.wav",
                        help="a cab recording of the same drive, played in step with the log: its engine note is "
                             "an rpm source (mic) beside the log's (docs/audio.md)")
    replay.add_argument("--estimates", metavar="OUT.csv",
                        help="write one row per sample: t, speed_kmh, rpm_in, rpm_est, gear_est, cue")
    replay.add_argument("--size", type=_size,
                        help="window size, e.g. 800x480 (default: the --layout's own, else 800x480)")
    display_options(replay)

    learn = sub.add_parser("learn", help="learn a truck's gear ratios from drives with rpm and speed")
    learn.add_argument("logs", nargs="+", metavar="LOG", help="drive logs (any format replay reads)")
    learn.add_argument("--profile", help="the truck's profile to add the learned ratios to")
    learn.add_argument("--gears", type=GEAR_COUNT.arg,
                       help="forward gears (default: the profile's, else the one --transmission names, else found)")
    learn.add_argument("--out", metavar="PROFILE.toml", help="write the profile with the learned ratios")
    learn.add_argument("--transmission", type=_transmission, metavar="T",
                       help="the gearbox, when no --profile says: 5MT, 4MT+EL, 3AT, CVT, manual or automatic "
                            "(5MT: five forward gears; an automatic's coast-down lines are learned too; default: manual)")
    log_options(learn, which="every LOG")

    marks = sub.add_parser("marks", help="shift speeds per gear, as a table and a speedometer sticker")
    marks.add_argument("--profile", required=True, help="the truck (its ratios known or learned)")
    marks.add_argument("--units", choices=("mph", "kmh"), default="kmh",
                       help="speed units (default kmh: a kei truck's speedometer reads km/h)")
    marks.add_argument("--out", metavar="FILE.svg|.png", help="write a printable sticker")

    ev = sub.add_parser("eval", help="the estimator's figures on recorded drives")
    ev.add_argument("paths", nargs="+", metavar="LOG|DIR", help="logs, or folders of logs (one folder per vehicle)")
    ev.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ev.add_argument("--transmission", type=_transmission, metavar="T",
                    help="the gearbox of every log whose folder has no vehicle.toml: 5MT, 4AT, CVT, manual, "
                         "automatic (5MT: five forward gears, live learning's count; default: manual)")
    log_options(ev, which="every log (named, or found in a folder)")

    probe = sub.add_parser("probe", help="open one source and report its update rate and errors")
    probe.add_argument("url", metavar="URL", help="e.g. obd:///dev/ttyUSB0?protocol=5 or nmea:///dev/serial0")
    probe.add_argument("--seconds", type=LISTEN_SECONDS.arg, default=5.0, help="how long to listen (default 5; a replay:// log: until it ends, if sooner)")
    probe.add_argument("--json", action="store_true", help="print one JSON object")
    probe.add_argument("--profile", help="profile for pulse defaults (tach pulses per rev)")
    probe.add_argument("-v", "--verbose", action="count", default=0, help="more log output")

    listen = sub.add_parser("listen", help="rpm from the engine's note: a microphone (or the 12 V ripple lead) "
                                           "or a WAV file")
    listen.add_argument("source", metavar="SOURCE",
                        help="an ALSA capture device (default, hw:1,0), a WAV file, or an audio:// URL")
    listen.add_argument("--cylinders", type=CYLINDERS.arg,
                        help="the engine's cylinders (default 3, a kei engine's)")
    listen.add_argument("--strokes", type=_strokes,
                        help="4 (default) or 2 (the older 360 and 550 cc engines)")
    listen.add_argument("--channel", type=CHANNEL.arg,
                        help="which channel to listen to, 1 = the first (default)")
    listen.add_argument("--csv", metavar="OUT.csv", help="write every estimate: t,rpm,confidence (rpm empty "
                                                         "when no engine is heard)")
    listen.add_argument("--seconds", type=LISTEN_SECONDS.arg, help="stop after this many seconds of sound")
    listen.add_argument("-v", "--verbose", action="count", default=0, help="more log output")

    doctor = sub.add_parser("doctor", help="check this Pi is ready: ports, adapter, GPS fix, pins, display, "
                                           "groups, disk")
    doctor.add_argument("--config", metavar="PATH", help="TOML config (default /etc/keidash/config.toml when it "
                                                         "exists)")
    doctor.add_argument("--seconds", type=LISTEN_SECONDS.arg, default=5.0,
                        help="how long to listen to the adapter and the GPS (default 5)")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")

    ign = sub.add_parser("ignition", help="power the Pi off after the ignition has been off a while")
    ign.add_argument("--pin", type=PIN.arg, required=True, help="BCM number of the ignition-sense input (hardware/: 22)")
    ign.add_argument("--grace", type=GRACE_SECONDS.arg, default=10.0, help="seconds off before powering off (default 10)")
    polarity = ign.add_mutually_exclusive_group()
    polarity.add_argument("--active-low", dest="active_low", action="store_true", default=True,
                          help="the pin reads LOW while the ignition is on (optocoupler; default)")
    polarity.add_argument("--active-high", dest="active_low", action="store_false",
                          help="the pin reads HIGH while the ignition is on")
    ign.add_argument("--power-off", action="store_true",
                     help="really stop keidash and power off (keidash-ignition.service passes it); "
                          "without it a dry run that only says what it would run")

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
        code = dispatch(args)
        sys.stdout.flush()  # output buffered for a pipe: a reader gone is found here, not at exit
        return code
    except (ConfigError, ProfileError) as exc:
        print(f"keidash: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeidashError as exc:
        print(f"keidash: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (keidash doctor --json | head): nothing more to say, and Python's
        # flush of stdout at exit must not raise again, so stdout goes to /dev/null
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def dispatch(args: argparse.Namespace) -> int:
    """Run the command ``args`` names. Each body lives beside the part it drives and is
    imported only when its command runs, so ``keidash demo`` never loads the report code."""
    command = args.command
    if command in ("probe", "listen") and not getattr(args, "verbose", 0):
        # these print each source's state themselves: the sources' own warnings (meant for the
        # dash's journal) would say the same thing twice; -v shows them
        logging.getLogger("keidash.sources").setLevel(logging.ERROR)
    if command == "profiles":
        from .profiles import profiles_main
        return profiles_main()
    if command in ("demo", "run", "replay"):
        from . import app
        return {"demo": app.demo_main, "run": app.run_main, "replay": app.replay_main}[command](args)
    if command == "probe":
        from .pi.probe import probe_main
        return probe_main(args.url, args.seconds, args.json, args.profile)
    if command == "learn":
        from .estimate.commands import learn_main
        return learn_main(args.logs, args.profile, args.gears, args.out, format=args.format, columns=args.columns,
                          speed_unit=args.speed_unit, transmission=args.transmission)
    if command == "marks":
        from .estimate.commands import marks_command
        return marks_command(args.profile, args.units, args.out)
    if command == "eval":
        from .estimate.commands import eval_main
        return eval_main(args.paths, args.json, format=args.format, columns=args.columns, speed_unit=args.speed_unit,
                         transmission=args.transmission)
    if command == "trips":
        from .triplog.reading import trips_main
        return trips_main(args.db)
    if command == "report":
        from .triplog.report import report_main
        return report_main(args.db, args.trip, args.out)
    if command == "export":
        from .triplog.export import export_main
        return export_main(args.db, args.trip, args.out)
    if command == "listen":
        from .sources.audio import listen_main
        return listen_main(args.source, args.cylinders, args.strokes, args.channel, args.csv, args.seconds)
    if command == "doctor":
        from .pi.doctor import doctor_main
        return doctor_main(args.config, args.seconds, args.json)
    if command == "ignition":
        from .pi.ignition import ignition_main
        return ignition_main(args.pin, args.grace, args.active_low, power_off=args.power_off)
    raise AssertionError(f"no body for the command {command!r}")  # build_parser and dispatch disagree


if __name__ == "__main__":
    sys.exit(main())
