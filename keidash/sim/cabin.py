"""The virtual truck's cab, as a microphone under the seat hears it.

:class:`CabinSynth` turns the truck's truth into samples (floats, full scale 1.0), carrying
its phases from one call to the next so a live stream has no seams:

- the **engine**: every multiple of the four-stroke cycle (rpm/120 Hz), strong at the firing
  multiples (``cylinders`` x the cycle: rpm/40 Hz for a three), weak between them (cylinder
  to cylinder imbalance), each harmonic shaped by the exhaust, intake and cab-boom
  resonances and growing with load and rpm, with the combustion's cycle-to-cycle flutter;
- **road** rumble (tyre on the road, low and broad) rising with speed, **wind** rising with
  its cube, **gear whine** (a shaft's teeth) in gear;
- the **radio** (a bass line, a melody and a kick drum from a seeded song), the **blower**
  (its motor's hum, the blade pass and its hiss), **clatter** of the doors and bed over
  bumps (bursts, more of them with speed), and the microphone's own hiss;
- the mic's **gain**: turned up too far the samples clip.

Deterministic with a seed: the noises are loops shaped once from it. :func:`cabin_recording`
renders a whole drive (a list of truths) for tests and benches; :class:`EmulatedCabin`
streams it live from a running truck as signed 16-bit samples into a pipe that
``audio://`` reads (``sim://...?hardware=audio``). :data:`CASES` are the hard cases the tests
and bench/audio.py use. :func:`ripple_recording` is the same drive heard through the 12 V
ripple lead instead (``audio://...?signal=ripple``).
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import time
from dataclasses import dataclass, replace

import numpy as np

from .device import EmulatedDevice
from .truth import TruckTruth, TruthFn

logger = logging.getLogger(__name__)

RATE_HZ = 8000
LOOP_S = 8.0  # length of each noise loop


@dataclass(frozen=True)
class CabinNoise:
    """Levels (rms, full scale 1.0, at their reference conditions) of what the mic hears."""

    engine: float = 0.05  # the firing note at 3000 rpm, half load
    road: float = 0.03  # at 60 km/h
    wind: float = 0.02  # at 80 km/h
    whine: float = 0.004  # in gear at 3000 rpm
    radio: float = 0.0
    blower: float = 0.0
    clatter: float = 0.02  # a burst's peak
    hiss: float = 3e-5  # the mic's own noise
    gain: float = 1.0  # the mic's gain: past full scale the samples clip


#: the noise cases: what the cab sounds like in each
CASES: dict[str, CabinNoise] = {
    "cab": CabinNoise(),
    "radio louder than the engine": CabinNoise(radio=0.10),
    "blower on": CabinNoise(blower=0.06),
    "clipping": CabinNoise(gain=40.0),
}


def _shaped_loop(rng: np.random.Generator, shape, rate: float = RATE_HZ) -> np.ndarray:
    """White noise of LOOP_S seconds shaped in frequency by ``shape(f)``, normalised to rms 1;
    circular, so it loops with no seam."""
    n = int(LOOP_S * rate)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    out = np.fft.irfft(spectrum * shape(f), n)
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-12)


def _resonance(f: np.ndarray, centre: float, q: float) -> np.ndarray:
    return 1.0 / np.sqrt(1.0 + (q * (f / centre - centre / np.maximum(f, 1e-3))) ** 2)


def engine_colour(f: np.ndarray) -> np.ndarray:
    """Gain of the cab at frequency ``f``: exhaust, intake and cab-boom resonances on a slope."""
    return (0.35 + _resonance(f, 45.0, 1.5) + 0.8 * _resonance(f, 95.0, 2.0) + 0.6 * _resonance(f, 320.0, 3.0)) / (
        1.0 + f / 500.0)


class CabinSynth:
    """Samples of the cab from per-sample truth arrays; keeps its phases across calls."""

    def __init__(self, cylinders: int = 3, noise: CabinNoise = CabinNoise(), seed: int = 0,
                 rate: float = RATE_HZ, firing_harmonics: int = 8):
        self.cylinders, self.noise, self.rate = cylinders, noise, rate
        rng = np.random.default_rng(seed)
        self._rng = np.random.default_rng(seed + 1)
        self._n_harm = cylinders * firing_harmonics  # cycle harmonics, up to the 8th firing one
        self._phase0 = rng.uniform(0, 2 * np.pi, self._n_harm)
        # a real engine's half-orders are weaker than its firing orders, each by its own amount
        self._imbalance = rng.uniform(0.04, 0.15, self._n_harm)
        self._road = _shaped_loop(rng, lambda f: 1.0 / np.sqrt(1.0 + (f / 120.0) ** 2))
        self._wind = _shaped_loop(rng, lambda f: _resonance(f, 400.0, 0.7))
        self._blower = _shaped_loop(rng, lambda f: _resonance(f, 900.0, 0.6))
        self._flutter = _shaped_loop(rng, lambda f: 1.0 / (1.0 + (f / 4.0) ** 2))  # combustion, slow
        self._song = rng.integers(0, 5, size=(64, 3))  # bass note, melody note, accent per beat
        self._cycle_phase = 0.0  # rad of the engine's four-stroke cycle
        self._whine_phase = 0.0
        self._n = 0  # samples rendered so far

    def render(self, rpm, speed_kmh, throttle_pct, in_gear) -> np.ndarray:
        rpm = np.asarray(rpm, dtype=np.float64)
        n = len(rpm)
        noise, rate = self.noise, self.rate
        speed = np.asarray(speed_kmh, dtype=np.float64)
        load = 0.25 + 0.75 * np.asarray(throttle_pct, dtype=np.float64) / 100.0
        index = (self._n + np.arange(n)) % len(self._road)
        t = (self._n + np.arange(n)) / rate
        out = np.zeros(n)

        # the engine: harmonics of the four-stroke cycle
        cycle_hz = rpm / 120.0
        phase = self._cycle_phase + 2 * np.pi * np.cumsum(cycle_hz) / rate
        running = rpm > 300
        level = noise.engine * np.sqrt(np.maximum(rpm, 0) / 3000.0) * load / 0.625 * running
        level = level * (1.0 + 0.15 * self._flutter[index])
        for h in range(1, self._n_harm + 1):
            f = h * cycle_hz
            firing = h % self.cylinders == 0
            weight = 1.0 if firing else self._imbalance[h - 1]
            gain = engine_colour(f) * weight * (f < 0.45 * rate)
            out += level * gain * np.sin(h * phase + self._phase0[h - 1])
        self._cycle_phase = float(phase[-1] % (2 * np.pi)) if n else self._cycle_phase

        # road, wind, whine
        out += noise.road * (speed / 60.0) ** 1.5 * self._road[index]
        out += noise.wind * (speed / 80.0) ** 3 * self._wind[index]
        whine_hz = rpm / 60.0 * 19  # 19 teeth on the input shaft
        whine = self._whine_phase + 2 * np.pi * np.cumsum(whine_hz) / rate
        out += noise.whine * np.asarray(in_gear, dtype=np.float64) * (rpm / 3000.0) * np.sin(whine)
        self._whine_phase = float(whine[-1] % (2 * np.pi)) if n else self._whine_phase

        if noise.radio:
            out += noise.radio * self._music(t)
        if noise.blower:
            hum = 0.5 * np.sin(2 * np.pi * 47.0 * t) + 0.5 * np.sin(2 * np.pi * 7 * 47.0 * t)
            out += noise.blower * (0.8 * self._blower[index] + hum)
        if noise.clatter:
            out += noise.clatter * self._clatter(speed, n)
        out += noise.hiss * self._rng.standard_normal(n)
        self._n += n
        return np.clip(out * noise.gain, -1.0, 1.0)

    def _music(self, t: np.ndarray) -> np.ndarray:
        """A seeded song at 112 bpm: bass line, a melody an octave and more up, kick on each beat."""
        beat_s = 60.0 / 112
        beat = (t / beat_s).astype(int)
        within = t - beat * beat_s
        notes = self._song[beat % len(self._song)]
        scale = np.array([0, 3, 5, 7, 10])  # minor pentatonic
        bass_hz = 55.0 * 2 ** (scale[notes[:, 0]] / 12)
        melody_hz = 440.0 * 2 ** (scale[notes[:, 1]] / 12)
        out = np.zeros_like(t)
        for k, a in ((1, 1.0), (2, 0.6), (3, 0.4), (4, 0.25), (5, 0.15)):
            out += 0.6 * a * np.sin(2 * np.pi * k * bass_hz * t)
            out += 0.35 * a * np.sin(2 * np.pi * k * melody_hz * t) * np.exp(-within / 0.3)
        kick = np.sin(2 * np.pi * (50.0 * within + 40.0 * (1 - np.exp(-within / 0.03)))) * np.exp(-within / 0.12)
        return out + 0.9 * kick

    def _clatter(self, speed: np.ndarray, n: int) -> np.ndarray:
        """Bursts from doors and bed over bumps: about one a second at 40 km/h."""
        out = np.zeros(n)
        rate = float(np.mean(speed)) / 40.0
        starts = np.nonzero(self._rng.random(n) < rate / self.rate)[0]
        length = int(0.03 * self.rate)
        decay = np.exp(-np.arange(length) / (0.006 * self.rate))
        for s in starts:
            burst = self._rng.standard_normal(length) * decay * self._rng.uniform(0.3, 1.0)
            end = min(n, s + length)
            out[s:end] += burst[:end - s]
        return out


def cabin_recording(truths: list[TruckTruth], noise: CabinNoise = CabinNoise(), seed: int = 0,
                    cylinders: int = 3, rate: float = RATE_HZ) -> np.ndarray:
    """The cab over a drive sampled as ``truths`` (evenly spaced in time), rendered whole."""
    t = np.array([tr.t for tr in truths])
    samples = np.arange(int((t[-1] - t[0]) * rate)) / rate + t[0]
    series = {name: np.interp(samples, t, [getattr(tr, name) for tr in truths])
              for name in ("rpm", "speed_kmh", "throttle_pct")}
    in_gear = np.interp(samples, t, [float(tr.gear > 0 and not tr.clutch_in) for tr in truths])
    synth = CabinSynth(cylinders, noise, seed, rate)
    chunk = int(rate)
    return np.concatenate([synth.render(series["rpm"][i:i + chunk], series["speed_kmh"][i:i + chunk],
                                        series["throttle_pct"][i:i + chunk], in_gear[i:i + chunk])
                           for i in range(0, len(samples), chunk)])


#: the virtual truck's alternator: a 2.3 pulley ratio x 6 pole pairs x 6 rectifier pulses / 60
RIPPLE_HZ_PER_RPM = 1.38


def ripple_recording(truths: list[TruckTruth], factor: float = RIPPLE_HZ_PER_RPM, seed: int = 0,
                     rate: float = 48000.0) -> np.ndarray:
    """The 12 V ripple over a drive, as the ripple lead hands it to a line-in: the three-phase
    bridge's six pulses per electrical cycle at ``rpm x factor`` Hz, about 50 mV after the lead's
    divider, on the line's own hiss; with the engine off the battery's DC leaves only the hiss."""
    t = np.array([tr.t for tr in truths])
    samples = np.arange(int((t[-1] - t[0]) * rate)) / rate + t[0]
    rpm = np.interp(samples, t, [tr.rpm for tr in truths])
    phase = 2 * np.pi * np.cumsum(rpm * factor) / rate
    running = rpm > 300
    ripple = np.where(running, 0.05 * (np.abs(np.sin(phase / 2)) - 2 / np.pi), 0.0)
    return ripple + 0.003 * np.random.default_rng(seed).standard_normal(len(samples))


def scripted(points: list[tuple[float, float, float, int, float]], step_s: float = 0.01) -> list[TruckTruth]:
    """Truths through (t, rpm, speed_kmh, gear, throttle_pct) points, linear between them: the
    scripted cases (an idle, a downshift blip, the engine off)."""
    from .truth import parked
    base = parked()
    times = np.arange(points[0][0], points[-1][0] + step_s / 2, step_s)
    columns = list(zip(*points))
    rpm = np.interp(times, columns[0], columns[1])
    speed = np.interp(times, columns[0], columns[2])
    gear = np.interp(times, columns[0], columns[3])
    throttle = np.interp(times, columns[0], columns[4])
    return [replace(base, t=float(t), rpm=float(r), speed_kmh=float(s), gear=int(round(g)),
                    clutch_in=int(round(g)) == 0 or g != round(g), throttle_pct=float(th))
            for t, r, s, g, th in zip(times, rpm, speed, gear, throttle)]


#: scripted drives of the hard cases: (t, rpm, speed_kmh, gear, throttle_pct)
IDLE_800 = [(0.0, 800, 0, 0, 0), (20.0, 800, 0, 0, 0)]
ENGINE_OFF = [(0.0, 0, 0, 0, 0), (10.0, 0, 0, 0, 0)]


def downshift_blip(profile) -> list[tuple[float, float, float, int, float]]:
    """4th at 50 km/h, braking to 40, clutch in, a blip, into 3rd: the rpm of the profile's gears."""
    per_kmh = profile.rpm_per_kmh()
    return [(0.0, 50 * per_kmh[3], 50, 4, 30), (4.0, 50 * per_kmh[3], 50, 4, 30),
            (7.0, 40 * per_kmh[3], 40, 4, 0), (7.3, 1400, 40, 0, 0), (7.6, 3600, 40, 0, 70),
            (7.9, 40 * per_kmh[2], 40, 3, 20), (12.0, 45 * per_kmh[2], 45, 3, 40)]


class EmulatedCabin(EmulatedDevice):
    """The cab of a running virtual truck, streamed in real time as signed 16-bit little-endian
    mono samples into a named pipe (:attr:`path`), as a sound card would deliver them."""

    thread_name = "emulated-cabin"
    chunk_s = 0.05

    def __init__(self, truth: TruthFn, cylinders: int = 3, noise: CabinNoise = CabinNoise(), seed: int = 0,
                 rate: int = RATE_HZ):
        super().__init__()
        self._truth, self.rate = truth, rate
        self._synth = CabinSynth(cylinders, noise, seed, rate)
        self._dir = tempfile.mkdtemp(prefix="keidash-cabin-")
        self.path = os.path.join(self._dir, "mic.s16")
        os.mkfifo(self.path)
        self.unplugged = False

    def _run(self) -> None:
        fd = None
        previous = self._truth()
        n = int(self.chunk_s * self.rate)
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                if fd is None:
                    try:  # a pipe opens for writing only once a reader is there
                        fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                    except OSError as exc:
                        if exc.errno != errno.ENXIO:
                            raise
                        self._stop.wait(0.05)
                        next_due = time.monotonic()
                        continue
                    os.set_blocking(fd, True)
                now = self._truth()
                w = np.linspace(0.0, 1.0, n, endpoint=False)
                samples = self._synth.render(
                    previous.rpm + (now.rpm - previous.rpm) * w,
                    previous.speed_kmh + (now.speed_kmh - previous.speed_kmh) * w,
                    np.full(n, now.throttle_pct), np.full(n, float(now.gear > 0 and not now.clutch_in)))
                previous = now
                try:
                    os.write(fd, (samples * 32767).astype("<i2").tobytes())
                except BrokenPipeError:  # the reader went away: wait for the next one
                    os.close(fd)
                    fd = None
                    continue
                next_due += self.chunk_s
                self._stop.wait(max(0.0, next_due - time.monotonic()))
                if self.unplugged:
                    os.close(fd)
                    fd = None
                    self._stop.wait(0.2)
        finally:
            if fd is not None:
                os.close(fd)

    def _after_stop(self) -> None:
        for path in (self.path,):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self._dir)
        except OSError:
            pass


def drive_truths(profile, seconds: float, skip_s: float = 0.0, step_s: float = 0.01) -> list[TruckTruth]:
    """The virtual truck's own day (its habit driver), sampled every ``step_s``: the drive cases."""
    from .truck import VirtualTruck
    truck = VirtualTruck(profile)
    truck.fast_forward(skip_s)
    out = [truck.truth()]
    for _ in range(int(round(seconds / step_s))):
        truck.advance(step_s)
        out.append(truck.truth())
    return out

