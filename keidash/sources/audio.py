"""AudioSource: rpm from the engine's note through a microphone (or the 12 V ripple), and
``keidash listen``.

Capture is ``arecord`` from alsa-utils as a subprocess, reading signed 16-bit samples from
its stdout: no Python audio library, nothing to compile on the Pi, and ALSA's own
resampling (``hw:1,0`` is opened as ``plughw:1,0`` so any USB microphone gives 8 kHz).
docs/audio.md has the measurements that chose it over python-sounddevice and pyalsaaudio.
A WAV file (stdlib ``wave``) plays as a device would, in real time, for replay and tests; a
raw stream (``format=s16``, a named pipe) is how the virtual truck's cab is heard.

numpy and the tracker (keidash.sources.note) are imported in the source's thread. A reading
carries the capture time of the middle of its window and its noise (``sigma``) for the
needle; nothing is emitted when no engine is heard, and the status says why (silence,
clipping, no engine note); a device gone (arecord exits) is FAILED with arecord's sentence,
and the source retries.
"""

from __future__ import annotations

import logging
import math
import os
import re
import select
import shutil
import subprocess
import time
import wave
from dataclasses import dataclass
from typing import Callable, Iterator

from ..errors import ConfigError, SourceError
from ..readings import RPM
from .base import CONNECTED, CONNECTING, FAILED, Sink, Source

logger = logging.getLogger(__name__)

CAPTURE_RATE_HZ = 8000  # what arecord is asked for: the firing lines and 6 harmonics lie below 1.3 kHz
#: the ripple lead: an alternator's ripple is about 1-12 kHz (rpm x pulley ratio x pole pairs x
#: 6 pulses of the rectifier / 60), so it is captured and analysed at 48 kHz, on 2 harmonics
RIPPLE_RATE_HZ = 48000
RIPPLE_ANALYSIS_HZ = 48000
BLOCK_S = 0.05  # s of samples read at a time
READING_MAX_AGE_S = 0.5  # five windows: the needle goes stale if the note is lost for half a second
#: what the status says while no rpm is heard, by the tracker's reason
QUIET_SENTENCES = {
    "silence": "silence: is the microphone muted or unplugged? (alsamixer, F4 for capture)",
    "clipping": "the microphone clips: turn its capture gain down (alsamixer, F4)",
    "no engine heard": "no engine note heard",
    "confirming": "",
}
LEARNING_SENTENCE = "learning the ripple's factor against another rpm source"


@dataclass(frozen=True)
class AudioSettings:
    """What audio:// names: where the sound comes from and what engine makes it."""

    device: str | None = None  # an ALSA device for arecord (hw:1,0, default, plughw:CARD=...)
    path: str | None = None  # a WAV file, or a raw s16 stream with ``raw``
    raw: bool = False  # path is signed 16-bit little-endian mono at ``rate`` (a pipe)
    cylinders: int = 3
    strokes: int = 4
    channel: int = 1  # 1 = the first (left) channel
    rate: int = CAPTURE_RATE_HZ  # arecord's rate, or a raw stream's
    signal: str = "engine"  # engine (a microphone) or ripple (the 12 V through the ripple lead)
    hz_per_rpm: float | None = None  # ripple: the line's Hz per rpm (pulley ratio x alternator poles)
    pace: bool = True  # play a WAV file in real time (False: as fast as it decodes, for listen)
    data_dir: str | None = None  # where a learned ripple factor is kept (ripple-factor.json)


def parse_audio_url(url: str) -> AudioSettings:
    """audio://hw:1,0?cylinders=3, audio://default, audio:///path/cab.wav; one sentence when wrong."""
    from urllib.parse import parse_qsl, unquote, urlsplit
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    allowed = {"cylinders", "strokes", "channel", "rate", "signal", "factor", "format"}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ConfigError(f"{url}: unknown option {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")

    def whole(key, default, low, high, sentence):
        if key not in query:
            return default
        try:
            value = int(query[key])
        except ValueError:
            raise ConfigError(f"{url}: {key} must be a whole number, not {query[key]!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{url}: {key} {sentence}")
        return value

    cylinders = whole("cylinders", 3, 1, 12, "is 1 to 12")
    strokes = whole("strokes", 4, 2, 4, "is 2 or 4")
    if strokes == 3:
        raise ConfigError(f"{url}: strokes is 2 or 4")
    channel = whole("channel", 1, 1, 32, "is 1 (the first) to 32")
    signal = query.get("signal", "engine")
    rate = whole("rate", RIPPLE_RATE_HZ if signal == "ripple" else CAPTURE_RATE_HZ, 8000, 192000,
                 "is 8000 to 192000 samples a second")
    if signal not in ("engine", "ripple"):
        raise ConfigError(f"{url}: signal is engine (a microphone) or ripple (the 12 V ripple lead), not {signal!r}")
    factor = None
    if "factor" in query:
        try:
            factor = float(query["factor"])
        except ValueError:
            factor = -1.0
        if not 0.001 <= factor <= 10:
            raise ConfigError(f"{url}: factor is the ripple's Hz per rpm, 0.001 to 10, not {query['factor']!r}")
    fmt = query.get("format", "wav")
    if fmt not in ("wav", "s16"):
        raise ConfigError(f"{url}: format is wav or s16 (raw signed 16-bit mono), not {fmt!r}")
    device = unquote(parts.netloc) if parts.netloc else None
    path = unquote(parts.path) if not parts.netloc and parts.path else None
    if device is None and path is None:
        raise ConfigError(f"{url}: name a capture device or a file, e.g. audio://hw:1,0 or audio:///home/pi/cab.wav")
    if device is not None and parts.path:
        raise ConfigError(f"{url}: a device takes no path; a file is audio:///its/path.wav (three slashes)")
    return AudioSettings(device=device, path=path, raw=fmt == "s16", cylinders=cylinders, strokes=strokes,
                         channel=channel, rate=rate, signal=signal, hz_per_rpm=factor)


def note_config(settings: AudioSettings, rate: float):
    """The tracker's settings for this sound at ``rate`` (after decimation to the analysis rate)."""
    from .note import NoteConfig, decimation_for
    if settings.signal == "ripple":
        factor = decimation_for(rate, RIPPLE_ANALYSIS_HZ)
        # the lead hears one clean line at 1-10 kHz: a 64 ms window resolves it (16 Hz, 1.6 % at an
        # idle's 1 kHz, read between bins) and follows a launch or a blip that smears over 0.5 s
        # (tests/test_audio.py: a drive with launches, shifts and a coasting stop, 0 windows off by
        # more than 3 %, against 90 of 381 with the microphone's 0.512 s)
        return NoteConfig(cylinders=settings.cylinders, strokes=settings.strokes, rate_hz=rate / factor,
                          hz_per_rpm=settings.hz_per_rpm, harmonics=2, whiten_hz=120.0, fft_size=32768,
                          window_s=0.064)
    factor = decimation_for(rate)
    return NoteConfig(cylinders=settings.cylinders, strokes=settings.strokes, rate_hz=rate / factor)


def arecord_device(device: str) -> str:
    """hw:X,Y gives only the card's native rates; plughw:X,Y lets ALSA resample to ours."""
    return "plug" + device if device.startswith("hw:") else device


class AudioSource(Source):
    channels = (RPM,)
    retry_s = 2.0

    def __init__(self, name: str, sink: Sink, settings: AudioSettings, *,
                 on_estimate: Callable | None = None, hint: Callable | None = None,
                 reference: Callable | None = None):
        """``on_estimate(estimate)`` is called for every window (rpm or not: keidash listen);
        ``hint(t)`` may give a keidash.sources.note.GearHint for the gear constraint."""
        super().__init__(name, sink)
        self.factor_file = os.path.join(settings.data_dir, RIPPLE_FACTOR_FILE) if settings.data_dir else None
        self.check = None  # a factor keidash learned, checked as the drive goes on (FactorCheck)
        if settings.signal == "ripple" and settings.hz_per_rpm is None:
            kept = read_ripple_record(self.factor_file)
            if kept is not None:
                from dataclasses import replace as _replace

                from .note import FactorCheck
                settings = _replace(settings, hz_per_rpm=kept[0])
                self.check = FactorCheck(kept[1]) if reference is not None or hint is not None else None
            elif self.factor_file is None or (reference is None and hint is None):
                raise ConfigError(f"source {name}: signal=ripple needs factor= (the ripple's Hz per rpm), or data_dir "
                                  "to learn it and keep it there (against another rpm source, the gears or the "
                                  "idle): see docs/audio.md")
        self.settings = settings
        self._reference = reference  # reference(t): another source's rpm at t, or None
        self.learner = None  # against another rpm source (RippleFactor)
        self.truck_learner = None  # from the gears or the idle (RippleFromTruck)
        self._on_estimate = on_estimate
        self._hint = hint
        self._last_t = -math.inf  # readings never go back in time
        self._quiet = ""  # why the last window had no rpm ("" when it had one)
        self.heard = 0  # windows with an rpm
        self.windows = 0
        if settings.path is not None and not settings.raw:
            import threading
            self.finished = threading.Event()  # a WAV file has an end (rig.finished)

    # -- the thread ---------------------------------------------------------------
    def run(self) -> None:
        try:
            self._listen()
        except SourceError as exc:  # a device gone or refused: one sentence, and the base retries
            self.count_error("device")
            self.set_link(FAILED, f"{exc}; retrying" if self.settings.device else str(exc))

    def _listen(self) -> None:
        from .note import Decimator, NoteTracker, to_float
        s = self.settings
        self.set_link(CONNECTING)
        tracker = decimate = None
        offset = None  # monotonic time less the tracker's sample clock, at the latest block
        for t_first, pcm, rate, width, channels in self._blocks():
            if channels < s.channel:
                raise SourceError(f"{self._where()} has {channels} channel(s): channel {s.channel} is not there")
            samples = to_float(pcm, width, channels, s.channel - 1)
            if tracker is None:
                # the tracker runs on its own sample clock (its line following needs steady time);
                # readings are stamped on the monotonic clock through the latest block's offset
                if s.signal == "ripple" and s.hz_per_rpm is None:
                    from dataclasses import replace as _replace

                    from .note import RippleFactor, RippleFromTruck
                    self.learner = RippleFactor() if self._reference is not None else None
                    self.truck_learner = RippleFromTruck() if self._hint is not None else None
                    s = _replace(s, hz_per_rpm=1.0)  # until learned, the "rpm" read is the line's Hz
                tracker = NoteTracker(note_config(s, rate))
                decimate = Decimator(int(round(rate / tracker.config.rate_hz)))
                self.set_link(CONNECTED, self._learning_sentence(None) if self._learning
                              else QUIET_SENTENCES["confirming"])
            measured = t_first - (tracker.t0 + tracker.samples_in / tracker.config.rate_hz)
            if offset is None or abs(measured - offset) > 0.05:  # a start, an overrun, a crystal's drift
                offset = measured
            for estimate in tracker.feed(decimate(samples), None if self._learning else self._hint_on(offset)):
                if self._learning:
                    tracker = self._learn(estimate, offset, rate, tracker) or tracker
                    continue
                self._deliver(estimate, offset)
                if self.check is not None and estimate.rpm is not None:
                    tracker = self._refine(estimate, offset, rate, tracker) or tracker
            if self.stopping.is_set():
                return

    @property
    def _learning(self) -> bool:
        return self.learner is not None or self.truck_learner is not None

    def _learn(self, estimate, offset: float, rate: float, tracker):
        """Ripple mode before the factor is known: the line (in Hz) against another source's rpm
        at the same moment, else against the truck's gears or idle at its road speed; once
        learned, keep the factor and return a tracker that reads rpm (else None)."""
        if estimate.rpm is None:
            return None
        at = estimate.t + offset
        factor = how = reference = None
        if self.learner is not None:
            reference = self._reference(at)
            if reference is not None:
                self.learner.add(estimate.rpm, reference)
                factor, how = self.learner.factor(), "another rpm source"
        if factor is None and self.truck_learner is not None:
            hint = self._hint(at)
            if hint is not None:
                self.truck_learner.add(estimate.t, estimate.rpm, hint.speed_kmh)
                factor = self.truck_learner.factor(hint.rpm_per_kmh, hint.idle_rpm, hint.idle_known)
                how = self.truck_learner.how
            if factor is None:  # what it waits for; against another source's rpm when one is heard
                self.set_link(CONNECTED, LEARNING_SENTENCE if reference is not None else self._learning_sentence(hint))
        if factor is None:
            return None
        from .note import FactorCheck, RippleFactor, RippleFromTruck
        # the windows heard so far go on counting for the check (they are in Hz, whatever the factor)
        self.check = FactorCheck(how, by_source=self.learner or RippleFactor(),
                                 by_truck=self.truck_learner or RippleFromTruck())
        self.learner = self.truck_learner = None
        logger.info("%s: learned the ripple's factor from %s, %.4f Hz per rpm", self.name, how, factor)
        self.set_link(CONNECTED, "")
        return self._use_factor(factor, how, rate, tracker)

    def _refine(self, estimate, offset: float, rate: float, tracker):
        """A factor keidash learned, checked window by window against another source's rpm and the
        truck's gears or idle (FactorCheck); a tracker at the better factor when it is off, else None."""
        at = estimate.t + offset
        current = self.settings.hz_per_rpm
        found = self.check.check(estimate.t, estimate.rpm * current,  # the line's Hz
                                 current, self._reference(at) if self._reference is not None else None,
                                 self._hint(at) if self._hint is not None else None)
        if found is None:
            return None
        logger.warning("%s: the ripple's factor refined from %.4f to %.4f Hz per rpm (from %s)", self.name,
                       current, found[0], found[1])
        return self._use_factor(found[0], found[1], rate, tracker)

    def _use_factor(self, factor: float, how: str, rate: float, tracker):
        """Read rpm at ``factor`` from now on, and keep it in data_dir with what it was learned from."""
        from dataclasses import replace as _replace

        from .note import NoteTracker
        self.settings = _replace(self.settings, hz_per_rpm=factor)
        write_ripple_factor(self.factor_file, factor, how)
        # its sample clock goes on from the old tracker's (estimates' t stay seconds from the start)
        return NoteTracker(note_config(self.settings, rate),
                           t0=tracker.t0 + tracker.samples_in / tracker.config.rate_hz)

    def _learning_sentence(self, hint) -> str:
        """What the ripple's factor waits for, on the dash (the source's status)."""
        if self.truck_learner is None:
            return LEARNING_SENTENCE
        from .note import WAIT_ROAD
        waiting = WAIT_ROAD if hint is None else self.truck_learner.waiting_for(hint.rpm_per_kmh, hint.idle_known)
        return f"learning the ripple's factor: {waiting}"

    def _hint_on(self, offset: float):
        """The gear constraint's hint on the tracker's clock: only with gear ratios known (the
        estimator's, handed over by the frame loop, else the profile's); else the note is free."""
        if self._hint is None or self.settings.signal == "ripple":
            # no cab noise reaches the lead, and a coasting stop with the clutch in is on no gear's
            # rpm: the constraint only costs there (measured over tests/test_audio.py's ripple_drive:
            # 4 windows wrong with it, 0 free)
            return None

        def hint(t: float):
            given = self._hint(t + offset)
            return given if given is not None and given.rpm_per_kmh else None
        return hint

    def _deliver(self, estimate, offset: float) -> None:
        """``estimate`` on the sample clock (seconds from the first sample) to the listener; its
        rpm as a reading on the monotonic clock, never later than now nor before the last one."""
        self.windows += 1
        if self._on_estimate is not None:
            self._on_estimate(estimate)
        if estimate.rpm is None:
            self.set_link(CONNECTED, QUIET_SENTENCES.get(estimate.why, estimate.why))
            if estimate.why in ("silence", "clipping") and estimate.why != self._quiet:
                self.count_error(estimate.why)  # once each time the sound turns silent or clips
            self._quiet = estimate.why
            return
        self._quiet = ""
        self.heard += 1
        t = min(max(estimate.t + offset, self._last_t), time.monotonic())
        self._last_t = t
        self.set_link(CONNECTED)
        self.emit(t, RPM, estimate.rpm, READING_MAX_AGE_S, sigma=estimate.sigma_rpm)

    def _where(self) -> str:
        s = self.settings
        return f"the capture device {s.device}" if s.device else f"{s.path}"

    # -- where the samples come from: (time of the first sample, bytes, rate, width, channels)
    def _blocks(self) -> Iterator[tuple[float, bytes, int, int, int]]:
        s = self.settings
        if s.device is not None:
            return self._arecord()
        if s.raw:
            return self._stream(s.path)
        return self._wav()

    def _wav(self):
        s = self.settings
        try:
            reader = wave.open(s.path, "rb")
        except FileNotFoundError:
            raise SourceError(f"{s.path}: no such file") from None
        except IsADirectoryError:
            raise SourceError(f"{s.path} is a folder; name a WAV file in it") from None
        except PermissionError:
            raise SourceError(f"cannot read {s.path}: permission denied") from None
        except (wave.Error, EOFError) as exc:
            why = str(exc) or "it is empty or cut short"
            raise SourceError(f"{s.path} is not a PCM WAV file keidash reads ({why})") from None
        with reader:
            rate, width, channels = reader.getframerate(), reader.getsampwidth(), reader.getnchannels()
            block = max(1, int(rate * BLOCK_S))
            start = time.monotonic()
            done = 0
            while not self.stopping.is_set():
                pcm = reader.readframes(block)
                if not pcm:
                    break
                t_first = start + done / rate
                if s.pace:  # as the sound card would deliver it
                    ahead = t_first + block / rate - time.monotonic()
                    if ahead > 0 and self.stopping.wait(ahead):
                        return
                yield t_first, pcm, rate, width, channels
                done += len(pcm) // (width * channels)
        self.finished.set()
        self.set_link(CONNECTED, "the recording has ended")
        self.stopping.wait()  # a file ends once: no retry

    def _stream(self, path: str):
        """Raw s16 mono from a pipe or a file (the virtual cab's microphone)."""
        rate = self.settings.rate
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise SourceError(f"{path}: no such stream") from None
        try:
            yield from self._read_fd(fd, rate, f"{path}: the stream ended")
        finally:
            os.close(fd)

    def _arecord(self):
        s = self.settings
        exe = shutil.which("arecord")
        if exe is None:
            raise SourceError("arecord is not installed: sudo apt install alsa-utils")
        device = arecord_device(s.device)
        command = [exe, "-q", "-D", device, "-t", "raw", "-f", "S16_LE", "-r", str(s.rate), "-c", str(s.channel)]
        logger.debug("capture: %s", " ".join(command))
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            os.set_blocking(process.stdout.fileno(), False)
            yield from self._read_fd(process.stdout.fileno(), s.rate, None, channels=s.channel, process=process)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(2.0)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            process.stdout.close()
            process.stderr.close()

    def _read_fd(self, fd: int, rate: int, ended: str | None, channels: int = 1, process=None):
        """Blocks of whole frames as they arrive, stamped with their capture time: the first block
        anchors the clock (its arrival less its length), later ones count samples from there and
        re-anchor when the stream fell behind (an overrun, a stalled pipe)."""
        frame = 2 * channels
        want = max(frame, int(rate * BLOCK_S) * frame)
        pending = b""
        anchor = None
        count = 0
        waited = 0.0
        while not self.stopping.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, want)
            except BlockingIOError:
                continue
            if not data:
                if process is not None:
                    process.wait(2.0)
                    error = process.stderr.read().decode(errors="replace").strip().splitlines()
                    sentence = error[-1] if error else f"arecord ended (status {process.returncode})"
                    sentence = re.sub(r"^(arecord: )?(\w+:\d+: )?", "", sentence)  # arecord's "main:831: "
                    raise SourceError(f"{self._where()}: {sentence}")
                if anchor is None and waited < 5.0:  # a pipe whose writer has not opened it yet
                    self.stopping.wait(0.05)
                    waited += 0.05
                    continue
                raise SourceError(ended or "the stream ended")
            pending += data
            usable = len(pending) - len(pending) % frame
            if not usable:
                continue
            block, pending = pending[:usable], pending[usable:]
            n = usable // frame
            now = time.monotonic()
            end = anchor + (count + n) / rate if anchor is not None else None
            if end is None or now - end > 0.25 or end > now:
                # (re)start the sample clock: at the first block, after an overrun or a stall, and
                # never stamping a sample later than it arrived
                anchor, count = now - n / rate, 0
            yield anchor + count / rate, block, rate, 2, channels
            count += n


# -- the ripple's factor, kept in data_dir ------------------------------------------------------

RIPPLE_FACTOR_FILE = "ripple-factor.json"


def read_ripple_record(path: str | None) -> tuple[float, str | None] | None:
    """(the factor learned before, what it was learned from, None when the file does not say)."""
    import json

    from .note import FACTOR_SOURCES
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            kept = json.load(f)
        value, how = kept.get("hz_per_rpm"), kept.get("learned_from")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(value, (int, float)) or not 0.001 <= value <= 10:
        return None
    return float(value), how if how in FACTOR_SOURCES else None


def write_ripple_factor(path: str | None, factor: float, learned_from: str | None = None) -> None:
    """Keep the factor atomically (a power cut leaves the old file or the new one, never half),
    with what it was learned from (another rpm source, the gears, the idle)."""
    import json
    if not path:
        return
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        temporary = path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump({"hz_per_rpm": round(factor, 6), **({"learned_from": learned_from} if learned_from else {})}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as exc:  # the factor still works for this drive; say why it was not kept
        logger.warning("could not keep the ripple's factor in %s: %s", path, exc)


# -- keidash listen ---------------------------------------------------------------------------

def settings_for(source: str, cylinders: int | None, strokes: int | None, channel: int | None) -> AudioSettings:
    """A device name, a WAV path or an audio:// URL, with the command line's options on top."""
    from dataclasses import replace
    if source.startswith("audio://"):
        settings = parse_audio_url(source)
    elif os.path.exists(source) or source.lower().endswith(".wav"):
        settings = AudioSettings(path=os.path.abspath(source))
    else:
        settings = AudioSettings(device=source)
    changes = {k: v for k, v in (("cylinders", cylinders), ("strokes", strokes), ("channel", channel)) if v}
    return replace(settings, pace=False, **changes)


def listen_main(source: str, cylinders: int | None, strokes: int | None, channel: int | None,
                csv_path: str | None, seconds: float | None) -> int:
    """keidash listen: the rpm heard, a line a second on the terminal, every window in the CSV."""
    import csv
    import sys
    import threading
    from ..config import check_writable
    settings = settings_for(source, cylinders, strokes, channel)
    if settings.path is not None:  # the user's mistakes, one sentence each before anything starts
        if not os.path.exists(settings.path):
            raise ConfigError(f"{settings.path}: no such file")
        if os.path.isdir(settings.path):
            raise ConfigError(f"{settings.path} is a folder; name a WAV file in it")
        if not os.access(settings.path, os.R_OK):
            raise ConfigError(f"cannot read {settings.path}: permission denied")
    check_writable("--csv", csv_path)
    out = open(csv_path, "w", newline="") if csv_path else None  # noqa: SIM115 - closed below
    writer = csv.writer(out) if out else None
    if writer:
        writer.writerow(["t", "rpm", "confidence"])
    state = {"printed": -1.0, "rows": 0, "last": None}
    done = threading.Event()

    def on_estimate(estimate) -> None:
        t = estimate.t  # seconds from the first sample
        if writer:
            writer.writerow([f"{t:.3f}", "" if estimate.rpm is None else f"{estimate.rpm:.0f}",
                             f"{estimate.confidence:.2f}"])
        state["rows"] += 1
        state["last"] = estimate
        if t - state["printed"] >= 1.0:
            state["printed"] = t
            heard = f"{estimate.rpm:5.0f} rpm  confidence {estimate.confidence:.2f}" if estimate.rpm else \
                f"   -- {QUIET_SENTENCES.get(estimate.why) or estimate.why}"
            print(f"{t:7.1f} s {heard}", flush=True)
        if seconds is not None and t >= seconds:
            done.set()

    audio = AudioSource("mic", lambda reading: None, settings, on_estimate=on_estimate)
    audio.start()
    try:
        while not done.is_set():
            if getattr(audio, "finished", None) is not None and audio.finished.is_set():
                break
            status = audio.status()
            if status.link == FAILED:  # the dash's source retries; listen stops and says why
                print(f"keidash: {status.message.removesuffix('; retrying')}", file=sys.stderr)
                return 1
            done.wait(0.1)
    finally:
        audio.stop()
        if out:
            out.close()
    if audio.windows:
        print(f"heard the engine in {audio.heard} of {audio.windows} windows "
              f"({100 * audio.heard / audio.windows:.0f} %)" + (f"; every window in {csv_path}" if csv_path else ""))
        return 0
    print(f"keidash: no sound was read from {source}: less than one 0.5 s window of it came "
          "(a recording that short has nothing to hear)", file=sys.stderr)
    return 1

