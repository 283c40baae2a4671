"""Sources chosen by URL, started and stopped together.

=====================================  ==========================================
``obd:///dev/ttyUSB0?protocol=5``      ELM327 adapter (USB, /dev/rfcomm0, or
                                       ``obd://socket://host:port``); options in docs/config.md
``nmea:///dev/serial0?baud=9600``      GPS receiver writing NMEA
``pulses://gpio?tach=17&vss=27``       coil tach / speed sensor on GPIO (BCM numbers;
                                       ``tach_ppr`` pulses per rev, ``vss_ppk`` per km)
``replay:///home/pi/logs/drive.csv``   a recorded drive (``format``, ``speed``, ``columns``,
                                       ``speed_unit``, ``hide_rpm=1``; see docs/replay.md)
``audio://hw:1,0?cylinders=3``        rpm from the engine's note: a microphone (``default``,
                                       ``hw:1,0``), a WAV file (``audio:///x.wav``); options
                                       ``cylinders``, ``strokes``, ``channel``, ``rate``,
                                       ``signal=ripple[&factor=]`` (docs/audio.md)
``sim://hijet-s500p``                  the virtual truck with its emulated ELM327, GPS,
                                       pulse pins and cab microphone (``hardware=obd,gps,pulses,audio``,
                                       ``speedup``, ``obey=1`` to follow keidash's cues,
                                       ``skip`` simulated seconds to start into the day,
                                       ``protocol`` and ``ecu_ms`` reply delay of the
                                       emulated ELM327, ``vss_error`` % of its speed sensor)
=====================================  ==========================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, unquote, urlsplit

from .config import URL_NUMBERS
from .errors import ConfigError
from .profiles import Profile, load_profile
from .readings import RPM, SPEED, Reading, ReadingBus
from .sources.base import CONNECTED, CONNECTING, Source

logger = logging.getLogger(__name__)

SCHEMES = ("obd", "nmea", "pulses", "audio", "sim", "replay")
SIM_HARDWARE = ("obd", "gps", "pulses", "audio")
#: what sim:// emulates when hardware= is not given (the cab's microphone is asked for by name)
SIM_DEFAULT_HARDWARE = ("obd", "gps", "pulses")
#: how old the latest road speed may be for the engine note's gear constraint
HINT_SPEED_AGE_S = 1.5
#: how far apart in time another source's rpm and a ripple window may be to learn the factor
REFERENCE_AGE_S = 0.3
#: default pins of the virtual truck's pulse inputs (BCM), as in hardware/ wiring
SIM_TACH_PIN, SIM_VSS_PIN = 17, 27


@dataclass
class Rig:
    """Running sources, and whatever emulated hardware feeds them."""

    bus: ReadingBus
    sources: list[Source] = field(default_factory=list)
    _stoppables: list = field(default_factory=list)  # virtual truck and emulators, stopped last
    truck: object = None  # the VirtualTruck when a sim:// source is in use
    devices: dict = field(default_factory=dict)  # its emulated "obd", "gps", "pulses" (to unplug in tests)
    _speed: tuple[float, float] | None = None  # (t, km/h) of the latest road speed, for the engine's note
    _rpm: dict = field(default_factory=dict)  # source -> (t, rpm) of its latest rpm, for the ripple's factor
    #: the gear ratios (rpm per km/h) the estimator uses now, handed over by the frame loop: sourced,
    #: learned before, or learned live once certain; () until it has any (the profile's are used)
    gear_ratios: tuple[float, ...] = ()
    #: (idle rpm, known) the estimator uses: known when the config, the profile or earlier drives
    #: give it (not keidash's default); None until the dash says (the profile's are used)
    idle: tuple[float, bool] | None = None

    def put(self, reading) -> None:
        """Every source's sink: the bus, and the latest road speed and each source's rpm kept for
        the engine note's gear constraint and the ripple's factor."""
        if reading.channel == SPEED:
            self._speed = (reading.t, reading.value)
        elif reading.channel == RPM:
            self._rpm[reading.source] = (reading.t, reading.value)
        self.bus.put(reading)

    def rpm_reference(self, own: str):
        """A reference(t) for the ripple's factor: the freshest rpm of another source within
        REFERENCE_AGE_S of t, else None."""
        def reference(t: float):
            fresh = [(abs(t - at), value) for source, (at, value) in list(self._rpm.items())
                     if source != own and abs(t - at) <= REFERENCE_AGE_S]
            return min(fresh)[1] if fresh else None
        return reference

    def know_truck(self, ratios: tuple[float, ...]) -> None:
        """The gear ratios the estimator uses, for the engine note's gear constraint: the frame
        loop hands them over at its start and whenever they change (ratios learned live count
        once certain)."""
        self.gear_ratios = tuple(ratios)

    def know_idle(self, idle_rpm: float | None, known: bool = False) -> None:
        """The idle the estimator uses, and whether the owner, the profile or earlier drives gave
        it (the ripple's factor may be learned from a known one)."""
        if idle_rpm:
            self.idle = (float(idle_rpm), bool(known))

    def gear_hint(self, profile: Profile | None):
        """A hint(t) for the engine note: the latest road speed, the gear ratios the estimator
        uses (else the profile's; () when none is known: the note is then tracked free) and the
        idle; None when no fresh road speed is at hand."""
        from .profiles.engine import DEFAULT_IDLE_RPM, shift_limits
        own = profile.rpm_per_kmh() if profile is not None else ()
        idle = (shift_limits(profile).idle_rpm, bool(profile.engine.idle_rpm)) if profile is not None \
            else (DEFAULT_IDLE_RPM, False)

        def hint(t: float):
            from .sources.note import GearHint
            speed = self._speed
            if speed is None or abs(t - speed[0]) > HINT_SPEED_AGE_S:
                return None
            idle_rpm, known = self.idle or idle
            return GearHint(speed[1], self.gear_ratios or own, idle_rpm, known)
        return hint

    def start(self) -> None:
        for source in self.sources:
            source.start()

    def stop(self) -> None:
        for source in self.sources:
            source.stop()
        for thing in reversed(self._stoppables):
            try:
                thing.stop()
            except Exception:  # shutting down: note it and carry on stopping the rest
                logger.exception("stopping %r", thing)

    def drive_time(self, now: float) -> float:
        """The estimator's time at monotonic ``now``: a replay played faster or slower than real
        time runs the drive's own clock (its readings are stamped on it), a virtual truck run
        faster or slower than real time its simulation's (:meth:`drive_readings`), else ``now``."""
        own = [s for s in self.sources if s.own_clock]
        if own:
            return own[0].drive_time(now)
        return self.truck.drive_time(now) if self._sped_up() else now

    def drive_readings(self, readings: list[Reading]) -> list[Reading]:
        """``readings`` on the drive's clock. The virtual truck's devices are read in real time and
        stamp what they read on the monotonic clock; with ``speedup`` the truck lives speedup
        seconds in each of them, so each stamp is taken to the simulation's time and each value
        vouched for speedup times as long: the estimator, the trip meter and the trip log then see
        the truck's own seconds (at 5x a 60 s demo drove 300 s of the day, not 60)."""
        if not self._sped_up():
            return readings
        k = self.truck.speedup
        return [replace(r, t=self.truck.drive_time(r.t), max_age=r.max_age * k) for r in readings]

    def _sped_up(self) -> bool:
        return self.truck is not None and getattr(self.truck, "speedup", 1.0) != 1.0

    def links(self) -> dict[str, tuple[bool, str, dict[str, int]]]:
        """Each source's (connected, message, error counts by kind) for the dash.

        A source that is connected but does not vouch for its values now (a GPS without a
        fix, or gone quiet) counts as down: its message and a dot that is not green reach
        the dash at once, and its last values are not shown while still within max_age."""
        out = {}
        for source in self.sources:
            status = source.status()
            message = status.message or ("connecting" if status.link == CONNECTING else "")
            out[source.name] = (status.link == CONNECTED and source.vouches(), message, status.errors)
        return out

    def failed(self) -> dict[str, str]:
        """The sources whose device cannot be opened or was lost, and why: red on the dash.

        A source stays failed while it retries (its link goes back to connecting every
        few seconds), until it is connected again.
        """
        out = {}
        for source in self.sources:
            status = source.status()
            if status.failure:
                out[source.name] = status.failure
        return out

    def priority(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sources)

    def vss_calibration(self):
        """A CalibrationConfig when a speed sensor can be calibrated against a GPS here, else None."""
        from .sources.calibration import CalibrationConfig
        from .sources.nmea import NmeaSource
        from .sources.pulses import PulseSource
        vss = next((s for s in self.sources if isinstance(s, PulseSource) and s.vss_pin is not None), None)
        gps = next((s for s in self.sources if isinstance(s, NmeaSource)), None)
        if vss is None or gps is None:
            return None
        return CalibrationConfig(vss_source=vss.name, gps_source=gps.name,
                                 assumed_pulses_per_km=vss.vss_pulses_per_km)

    def gps_degraded(self, name: str) -> bool:
        source = next((s for s in self.sources if s.name == name), None)
        return bool(getattr(source, "degraded", False))

    def finished(self) -> bool:
        """True when every source is a replay that has reached the end of its log."""
        replays = [s for s in self.sources if hasattr(s, "finished")]
        return bool(replays) and len(replays) == len(self.sources) and all(s.finished.is_set() for s in replays)

    def show_cue(self, cue: str | None) -> None:
        if self.truck is not None:
            self.truck.show_cue(cue)


def _query(url: str, parts, allowed: set[str]) -> dict[str, str]:
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ConfigError(f"{url}: unknown option {unknown[0]!r}; allowed: {', '.join(sorted(allowed)) or 'none'}")
    return query


def _num(url: str, query: dict, key: str, default):
    """Option ``key`` of ``url`` within its range (config.URL_NUMBERS), else ``default``: a
    probe's URL has not been through the config's check."""
    if key not in query:
        return default
    return URL_NUMBERS[urlsplit(url).scheme][key].parse(query[key], key, url)


def _flag(url: str, query: dict, key: str, default: bool) -> bool:
    if key not in query:
        return default
    if query[key] not in ("0", "1"):
        raise ConfigError(f"{url}: {key} is 0 or 1, not {query[key]!r}")
    return query[key] == "1"


def _obd_port(url: str, parts) -> str:
    """obd:///dev/ttyUSB0 -> /dev/ttyUSB0; obd://socket://192.168.0.10:35000 -> the pyserial URL."""
    if parts.netloc == "socket:" or url.startswith("obd://socket://"):
        return url[len("obd://"):].split("?", 1)[0]
    port = parts.netloc + parts.path
    if not port:
        raise ConfigError(f"{url}: name the adapter's port, e.g. obd:///dev/ttyUSB0")
    return port


def _protocol(url: str, query: dict) -> str | None:
    protocol = query.get("protocol", "auto").upper()
    if protocol in ("AUTO", "0", ""):
        return None
    if protocol not in tuple("123456789A"):
        raise ConfigError(f"{url}: protocol must be auto or 1-9/A (5 = ISO 14230 fast init, "
                          f"3 = ISO 9141, 6 = CAN 11/500), not {query['protocol']!r}")
    return protocol


def open_rig(sources: dict[str, str], profile: Profile | None = None, data_dir: str | None = None) -> Rig:
    """Build (not start) the sources named by URL. Raises ConfigError with one sentence.
    ``data_dir``: where a source keeps what it learned (the ripple's factor)."""
    if not sources:
        raise ConfigError("no sources configured: name at least one, e.g. gps = \"nmea:///dev/serial0\"")
    rig = Rig(ReadingBus())
    try:
        for name, url in sources.items():
            _add(rig, name, url, profile, data_dir)
        own = [s.name for s in rig.sources if s.own_clock]
        if own and len(rig.sources) > 1:
            raise ConfigError(f"source {own[0]}: a replay at another speed than 1 runs on the log's own "
                              "clock and cannot be read beside other sources; play it alone or at speed=1")
    except Exception:
        rig.stop()
        raise
    return rig


def _add(rig: Rig, name: str, url: str, profile: Profile | None, data_dir: str | None = None) -> None:
    if not isinstance(url, str):
        raise ConfigError(f"source {name}: the URL must be a string like \"nmea:///dev/serial0\"")
    parts = urlsplit(url)
    sink = rig.put
    if parts.scheme == "obd":
        query = _query(url, parts, {"protocol", "baud", "slow_s", "timeout", "headers", "st_ms", "at",
                                    "multi", "max_hz"})
        from .sources.obd import ObdSource
        port = _obd_port(url, parts)
        max_hz = _num(url, query, "max_hz", 50.0)
        rig.sources.append(ObdSource(
            name, sink, port, protocol=_protocol(url, query), baudrate=_num(url, query, "baud", None),
            timeout=_num(url, query, "timeout", None), slow_every_s=_num(url, query, "slow_s", 2.0),
            headers=_flag(url, query, "headers", True), ecu_timeout_ms=_num(url, query, "st_ms", 100),
            adaptive_timing=_num(url, query, "at", 1), multi_pid=_flag(url, query, "multi", True),
            max_poll_hz=max_hz or None))
    elif parts.scheme == "nmea":
        query = _query(url, parts, {"baud", "rate"})
        from .sources.nmea import NmeaSource
        port = parts.netloc + parts.path
        if not port:
            raise ConfigError(f"{url}: name the GPS port, e.g. nmea:///dev/serial0")
        rig.sources.append(NmeaSource(name, sink, port, baudrate=_num(url, query, "baud", 9600),
                                      ublox_rate_hz=_num(url, query, "rate", None)))
    elif parts.scheme == "pulses":
        query = _query(url, parts, {"tach", "vss", "tach_ppr", "vss_ppk"})
        from .sources.pulses import PulseSource
        tach = _num(url, query, "tach", None)
        vss = _num(url, query, "vss", None)
        if tach is None and vss is None:
            raise ConfigError(f"{url}: name at least one pin, e.g. pulses://gpio?tach=17&vss=27")
        default_ppr = (profile.tach_pulses_per_rev if profile else None) or 1.5
        rig.sources.append(PulseSource(name, sink, tach_pin=tach, vss_pin=vss,
                                       tach_pulses_per_rev=_num(url, query, "tach_ppr", default_ppr),
                                       vss_pulses_per_km=_num(url, query, "vss_ppk", 2548.0)))
    elif parts.scheme == "audio":
        _add_audio(rig, name, url, profile, data_dir)
    elif parts.scheme == "sim":
        _add_sim(rig, url, parts)
    elif parts.scheme == "replay":
        query = _query(url, parts, {"format", "speed", "columns", "speed_unit", "hide_rpm"})
        from .replay import open_replay
        path = unquote(parts.netloc + parts.path)  # replay:///abs/x.csv or replay://rel/x.csv
        if not path:
            raise ConfigError(f"{url}: name the log, e.g. replay:///home/pi/logs/drive.csv")
        rig.sources.append(open_replay(name, sink, path, format=query.get("format", "auto"),
                                       speed=_num(url, query, "speed", 1.0), columns=query.get("columns"),
                                       speed_unit=query.get("speed_unit"),
                                       hide_rpm=query.get("hide_rpm", "0") not in ("0", "", "no", "false")))
    else:
        raise ConfigError(f"source {name}: unknown URL scheme {parts.scheme or url!r}; "
                          f"use one of {', '.join(s + '://' for s in SCHEMES)}")
    if parts.scheme in ("obd", "nmea", "pulses", "audio"):  # a device on this truck: not beyond what it can do
        rig.sources[-1].limits = _limits(profile)


def _limits(profile: Profile | None) -> dict[str, tuple[float, float]]:
    from .profiles.engine import plausible
    most = plausible(profile)
    return {RPM: (0.0, most.max_rpm), SPEED: (0.0, most.max_kmh)}


def _add_audio(rig: Rig, name: str, url: str, profile: Profile | None, data_dir: str | None) -> None:
    from dataclasses import replace
    from .sources.audio import AudioSource, parse_audio_url
    settings = replace(parse_audio_url(url), data_dir=data_dir)
    if "cylinders=" not in url and profile is not None and profile.engine.cylinders:
        settings = replace(settings, cylinders=profile.engine.cylinders)
    learn = settings.signal == "ripple" and settings.hz_per_rpm is None and data_dir is not None
    rig.sources.append(AudioSource(name, rig.put, settings, hint=rig.gear_hint(profile),
                                   reference=rig.rpm_reference(name) if learn else None))


def _add_sim(rig: Rig, url: str, parts) -> None:
    """The virtual truck and its emulated devices, read through the real sources."""
    query = _query(url, parts, {"hardware", "speedup", "obey", "protocol", "skip", "ecu_ms", "vss_error"})
    if rig.truck is not None:
        raise ConfigError(f"{url}: only one virtual truck at a time")
    sim_profile = load_profile(parts.netloc or "hijet-s500p")
    hardware = [h for h in query.get("hardware", ",".join(SIM_DEFAULT_HARDWARE)).split(",") if h]
    for h in hardware:
        if h not in SIM_HARDWARE:
            raise ConfigError(f"{url}: unknown hardware {h!r}; choose from {', '.join(SIM_HARDWARE)}")
    speedup = _num(url, query, "speedup", 1.0)
    skip = _num(url, query, "skip", 0.0)  # within the virtual truck's day (config.SIM_SKIP)
    from .sim.physics import STAND_IN, stand_in
    from .sim.truck import VirtualTruck
    driven = stand_in(sim_profile)
    if driven is not sim_profile:  # the dash still knows only what the profile says
        logger.info("the virtual %s drives on the %s's sourced gearbox and engine where its profile has none",
                    sim_profile.title, STAND_IN)
    truck = VirtualTruck(driven, obey_cues=query.get("obey", "0") in ("1", "yes", "true"),
                         speedup=speedup)
    first = len(rig.sources)  # sources named before the sim's are another truck's devices: theirs stay
    rig.truck = truck
    truck.fast_forward(skip)  # into the day before going live
    truck.start()
    rig._stoppables.append(truck)
    sink = rig.put
    if "pulses" in hardware:
        from gpiozero.pins.mock import MockFactory
        from .sim.pulses import PulseGenerator, StampedMockPin
        from .sources.pulses import PulseSource
        factory = MockFactory(pin_class=StampedMockPin)  # edges stamped when due, as a Pi's kernel does
        ppr = sim_profile.tach_pulses_per_rev or 1.5
        rig.sources.append(PulseSource("pulses", sink, factory=factory, tach_pin=SIM_TACH_PIN,
                                       vss_pin=SIM_VSS_PIN, tach_pulses_per_rev=ppr))
        # vss_error: a speed sensor reading that many % high (worn or non-stock tyres), which
        # keidash learns to correct against the GPS
        vss_error = _num(url, query, "vss_error", 0.0)
        generator = PulseGenerator(truck.truth, factory, tach_pin=SIM_TACH_PIN, vss_pin=SIM_VSS_PIN,
                                   tach_pulses_per_rev=ppr, vss_pulses_per_km=2548.0 * (1 + vss_error / 100))
        generator.start()
        rig._stoppables.append(generator)
        rig.devices["pulses"] = generator
    if "obd" in hardware:
        from .sim.elm327 import EmulatedELM327
        from .sources.obd import ObdSource
        protocol = _protocol(url, query) or "6"
        elm = EmulatedELM327(truck.truth, protocol=protocol,
                             reply_delay_s=_num(url, query, "ecu_ms", 0.0) / 1000)
        elm.start()
        rig._stoppables.append(elm)
        rig.devices["obd"] = elm
        rig.sources.append(ObdSource("obd", sink, elm.port, protocol=protocol))
    if "gps" in hardware:
        from .sim.nmea import EmulatedGPS
        from .sources.nmea import NmeaSource
        gps = EmulatedGPS(truck.truth)
        gps.start()
        rig._stoppables.append(gps)
        rig.devices["gps"] = gps
        rig.sources.append(NmeaSource("gps", sink, gps.port))
    if "audio" in hardware:
        from .sim.cabin import EmulatedCabin
        from .sources.audio import AudioSettings, AudioSource
        cylinders = sim_profile.engine.cylinders or 3
        cabin = EmulatedCabin(truck.truth, cylinders=cylinders)
        cabin.start()
        rig._stoppables.append(cabin)
        rig.devices["audio"] = cabin
        rig.sources.append(AudioSource("mic", sink, AudioSettings(path=cabin.path, raw=True, rate=cabin.rate,
                                                                     cylinders=cylinders),
                                          hint=rig.gear_hint(sim_profile)))
    for source in rig.sources[first:]:  # the virtual truck's devices, read as a real truck's
        source.limits = _limits(sim_profile)
