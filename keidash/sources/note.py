"""The engine's note: rpm from the sound of the cab (or the ripple on the 12 V), pure numpy.

A four-stroke fires ``cylinders / 2`` times a crank revolution (a two-stroke ``cylinders``
times), so the cab hums at ``rpm / 60 x cylinders / 2`` Hz and its harmonics: a kei
three-cylinder at 800 rpm idle hums at 20 Hz, at 7000 rpm at 175 Hz. Each analysis window:

1. **Whiten**: the log magnitude spectrum less its running mean over ``whiten_hz`` (road,
   wind and blower rumble is a broad slope; a firing line is a narrow peak above it),
   negative parts set to nothing.
2. **Harmonic sum** over a log-spaced grid of candidate rpm: the whitened spectrum at the
   first ``harmonics`` multiples of the candidate's firing frequency, less half of it at the
   points half-way between them. A candidate at half the true frequency finds nothing at
   its odd multiples; one at twice finds the true odd harmonics at its half-way points: both
   lose to the true line (the half/double-octave guard of the spectrum itself).
3. **Follow the line**: a jump beyond what a crank can do in one hop (``max_rate_per_s``, in
   log-rpm) is charged against its score, so a line that is briefly weaker than a passing
   note keeps the needle. A line that sweeps through the window (a launch, a shift, a blip)
   smears and may stand out of nothing: then the window's middle half is read, and the window
   and its middle half dechirped (``dechirp_rates``: resampled in time so that a line rising or
   falling at that steady log rate, and all its harmonics with it, becomes one steady line);
   the first reading that continues the followed line (or is clear on its own) is taken.
4. **Say nothing** when nothing is heard: silence (rms below ``min_rms``), clipping (more than
   ``max_clipped_share`` of samples at full scale), or no candidate standing out of the rest
   (``salience``: the best score less the median, in robust standard deviations, below
   ``min_salience``); and a line must hold for ``confirm_frames`` windows before it is
   reported after a silence, so a passing tone gives no needle.
5. **Gears** (``GearHint``): with road speed and each gear's rpm per km/h known, only the rpm
   each gear allows (within ``gear_slack``) and the idle are scored; the free best wins only
   when it is far stronger (clutch in, revving), so music or a blower on a wrong rpm cannot
   take the needle; another gear than the line's a window ago is charged ``shift_charge`` (a
   gearbox changes gear through the clutch, not between two windows; a radio's note does).

The tracker reads no clock: a window's time is its first sample's time plus half its length,
counted from the samples fed. Everything here is keidash's own choice, tuned on the virtual
cabin (keidash.sim.cabin) and measured by bench/audio.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: why no rpm was reported for a window
SILENCE, CLIPPING, NO_ENGINE, CONFIRMING = "silence", "clipping", "no engine heard", "confirming"


@dataclass(frozen=True)
class NoteConfig:
    cylinders: int = 3
    strokes: int = 4  # 4 or 2
    rate_hz: float = 8000.0  # samples per second of what is fed
    hz_per_rpm: float | None = None  # the line's Hz per rpm when known otherwise (ripple mode)
    window_s: float = 0.512  # s analysed per estimate: 10 Hz resolution before interpolation
    hop_s: float = 0.1  # s between estimates (10 a second)
    fft_size: int = 16384  # zero-padded, so the line is read between bins
    min_rpm: float = 450.0
    max_rpm: float = 8500.0
    grid_step: float = 0.004  # log-rpm step of the candidate grid (0.4 %)
    harmonics: int = 6
    whiten_hz: float = 30.0
    peak_cap: float = 30.0  # a peak counts at most this many times the floor (a loud tone is one line)
    max_rate_per_s: float = 2.5  # log-rpm a second a crank can change by (x12 a second)
    jump_charge: float = 1.0  # score charged per log-rpm beyond that
    min_salience: float = 5.0
    short_window: bool = True  # when the window hears no line, try its middle half and dechirped
    #: ... dechirped at these rates (log-rpm a second): a line sweeping at a steady log rate through
    #: the window (a launch, a shift, a blip) is read as the one line it is at the window's middle
    dechirp_rates: tuple[float, ...] = (-2.0, -0.8, 0.8, 2.0)
    #: ... over these parts of the window: the whole and its middle half (a blip turns within half
    #: a second; half a window of it is nearer straight)
    dechirp_parts: tuple[float, ...] = (1.0, 0.5)
    full_salience: float = 12.0  # salience of full confidence
    min_rms: float = 1e-4  # of full scale: below this is silence
    max_clipped_share: float = 0.002
    confirm_frames: int = 2
    multiple_share: float = 0.5  # 3x or 2x the best wins when the best's other harmonics are this weak
    gear_slack: float = 0.06  # a gear's rpm is speed x ratio within this share (tyre, slip, speed lag)
    free_wins_by: float = 2.5  # the free best beats the gears' best only when this much stronger
    #: salience charged to another gear than the line's a window ago: a gearbox changes gear only
    #: through the clutch (a sweep, a dip), never from one window to the next (a radio's note does)
    shift_charge: float = 8.0

    def __post_init__(self):
        if self.strokes not in (2, 4):
            raise ValueError("strokes is 2 or 4")
        if not 1 <= self.cylinders <= 12:
            raise ValueError("cylinders is 1 to 12")

    @property
    def line_hz_per_rpm(self) -> float:
        """The firing frequency's Hz per rpm: rpm/60 x cylinders/2 (four-stroke), x cylinders (two)."""
        if self.hz_per_rpm:
            return self.hz_per_rpm
        return self.cylinders / 60.0 / (2 if self.strokes == 4 else 1)


@dataclass(frozen=True)
class GearHint:
    """What the gear constraint needs: road speed now, each gear's rpm per km/h (() when no
    ratios are known: no constraint), the idle."""

    speed_kmh: float
    rpm_per_kmh: tuple[float, ...]
    idle_rpm: float = 850.0
    idle_known: bool = False  # the idle is the owner's, the profile's or seen before, not a default


@dataclass(frozen=True)
class NoteEstimate:
    t: float  # s, the middle of the window, on the clock of the samples fed
    rpm: float | None  # None: no engine heard (see ``why``)
    confidence: float  # 0..1
    sigma_rpm: float | None  # the reading's noise (1 sigma) for the needle
    salience: float  # best score above the rest, in robust standard deviations
    why: str = ""  # SILENCE, CLIPPING, NO_ENGINE or CONFIRMING when rpm is None
    gear: int | None = None  # with a GearHint: 0 idle/neutral, 1.. the gear whose rpm won, None free


@dataclass
class _Line:
    t: float
    rpm: float
    gear: int | None = None  # the gear whose rpm it was (with a GearHint), None free


@dataclass
class NoteTracker:
    """Feed it samples (floats, full scale 1.0); it returns an estimate per hop."""

    config: NoteConfig = field(default_factory=NoteConfig)
    t0: float = 0.0  # time of the first sample fed

    def __post_init__(self):
        c = self.config
        self._n = int(round(c.window_s * c.rate_hz))
        self._hop = max(1, int(round(c.hop_s * c.rate_hz)))
        self._nfft = max(c.fft_size, 1 << (self._n - 1).bit_length())
        self._window = np.hanning(self._n).astype(np.float64)
        self._buffer = np.zeros(0)
        self._fed = 0  # samples consumed before the buffer's first
        self._rpm = np.exp(np.arange(math.log(c.min_rpm), math.log(c.max_rpm), c.grid_step))
        f0 = self._rpm * c.line_hz_per_rpm
        k = np.arange(1, c.harmonics + 1)
        at = (f0[:, None] * k[None, :]) * self._nfft / c.rate_hz  # bin of each harmonic
        between = (f0[:, None] * (k[None, :] - 0.5)) * self._nfft / c.rate_hz
        self._top_bin = float(at.max())
        # linear interpolation between bins as a gather: index and weight of the lower bin
        self._at_i, self._at_w = at.astype(int), at - at.astype(int)
        self._between_i, self._between_w = between.astype(int), between - between.astype(int)
        width = max(3, int(round(c.whiten_hz * self._nfft / c.rate_hz)))
        self._kernel = np.ones(width) / width
        top = int(self._top_bin) + width + 2
        self._bins = min(self._nfft // 2 + 1, top)
        # harmonics above Nyquist read nothing (weight 0 on the last bin pair)
        for i, w in ((self._at_i, self._at_w), (self._between_i, self._between_w)):
            beyond = i >= self._bins - 1
            i[beyond], w[beyond] = self._bins - 2, 0.0
        self._line: _Line | None = None
        self._pending: list[_Line] = []
        # the plain middle parts first (as cheap as they are likely), then the dechirped readings
        self._warps = sorted((self._warp(rate, int(self._n * part)) for part in c.dechirp_parts
                              for rate in ((0.0,) if part < 1 else ()) + c.dechirp_rates),
                             key=lambda warp: warp[0] != 0.0) if c.short_window else []

    def _warp(self, rate: float, m: int):
        """(rate, lower sample index, weight, window) that resample a window so a line whose
        frequency goes as exp(rate x t) becomes a steady one at its frequency at the middle.

        With t from the middle, warped time u = (exp(rate t) - 1) / rate has du/dt = exp(rate t),
        so a phase of 2 pi f_mid u is the sweeping line's, and every harmonic sweeps alike (all
        scale with the rpm): samples at steps of 1/rate_hz in u are the line as a steady tone."""
        c = self.config
        half = m / 2 / c.rate_hz  # the part's middle m samples, the frame's middle too
        if rate == 0.0:
            u = (np.arange(m) - m / 2) / c.rate_hz
            position = u * c.rate_hz + self._n / 2
        else:
            lo, hi = math.expm1(-rate * half) / rate, math.expm1(rate * half) / rate
            u = np.arange(math.ceil(lo * c.rate_hz), math.floor(hi * c.rate_hz)) / c.rate_hz
            position = np.log1p(rate * u) / rate * c.rate_hz + self._n / 2  # in samples of the frame
        position = np.clip(position, 0.0, self._n - 1.000001)
        below = position.astype(int)
        return rate, below, position - below, np.hanning(len(u))

    # -- feeding ------------------------------------------------------------
    def feed(self, samples, hint_at=None) -> list[NoteEstimate]:
        """Every estimate whose window is now complete. ``hint_at(t)`` gives a GearHint (or
        None) for a window's time, when the gear constraint is to be used."""
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float64)])
        out = []
        while len(self._buffer) >= self._n:
            frame = self._buffer[:self._n]
            t = self.t0 + (self._fed + self._n / 2) / self.config.rate_hz
            out.append(self.estimate(frame, t, hint_at(t) if hint_at else None))
            self._buffer = self._buffer[self._hop:]
            self._fed += self._hop
        return out

    @property
    def samples_in(self) -> int:
        """Samples fed so far (the next one fed is at ``t0 + samples_in / rate_hz``)."""
        return self._fed + len(self._buffer)

    # -- one window ---------------------------------------------------------
    def scores(self, frame: np.ndarray, window: np.ndarray | None = None) -> np.ndarray:
        """The harmonic score of every candidate rpm (``self.grid``) for one window."""
        spectrum = np.abs(np.fft.rfft(frame * (self._window if window is None else window), self._nfft)[:self._bins])
        level = np.log(spectrum + 1e-9)
        above = level - np.convolve(level, self._kernel, mode="same")  # nats above the rumble's slope
        ratio = np.expm1(np.maximum(above, 0.0))
        white = np.minimum(ratio, self.config.peak_cap)
        on = self._gather(white, self._at_i, self._at_w)
        off = self._gather(white, self._between_i, self._between_w)
        self._ratio = ratio  # uncapped, for the octave guard's look at a candidate's own harmonics
        return on.sum(axis=1) - 0.5 * off.sum(axis=1)

    @staticmethod
    def _gather(values: np.ndarray, i: np.ndarray, w: np.ndarray) -> np.ndarray:
        return values[i] * (1.0 - w) + values[i + 1] * w

    @property
    def grid(self) -> np.ndarray:
        return self._rpm

    def estimate(self, frame: np.ndarray, t: float, hint: GearHint | None = None) -> NoteEstimate:
        c = self.config
        rms = float(np.sqrt(np.mean(frame ** 2)))
        if rms < c.min_rms:
            return self._nothing(t, SILENCE)
        if np.mean(np.abs(frame) >= 0.999) > c.max_clipped_share:
            return self._nothing(t, CLIPPING)
        frame = frame - frame.mean()
        score, best, gear, salience = self._pick(self.scores(frame), t, hint)
        if salience < c.min_salience and self._warps:
            # the rpm may sweep through the long window (a shift, a launch, a blip) and smear:
            # its middle half smears less (at half the resolution), and a reading dechirped at the
            # sweep's rate holds a steadily sweeping line as one; the first that hears the line
            # going on from the engine's is taken (trying on after it costs CPU and gains nothing:
            # measured with bench/audio.py)
            following = self._line is not None and t - self._line.t <= 0.6
            half = len(frame) // 2
            early, late = float(np.mean(frame[:half] ** 2)), float(np.mean(frame[half:] ** 2))
            steady_sound = min(early, late) >= 0.05 * max(early, late)
            for rate, below, weight, window in self._warps:
                if rate and not (following and steady_sound):
                    # no line to go on from (noise read many ways finds a line somewhere), or the
                    # sound starts or stops within the window: a tone cut off reads, dechirped, as
                    # a line at another rpm
                    break
                warped = frame[below] * (1.0 - weight) + frame[below + 1] * weight
                score_w, best_w, gear_w, salience_w = self._pick(self.scores(warped, window), t, hint)
                if salience_w >= max(c.min_salience, salience) and (
                        salience_w >= c.full_salience or self._follows_line(best_w, t)):
                    score, best, gear, salience = score_w, best_w, gear_w, salience_w
                    break
        if salience < c.min_salience:
            return self._nothing(t, NO_ENGINE, salience)
        rpm = float(self._refine(score, best))
        line = _Line(t, rpm, gear)
        if self._line is None or t - self._line.t > 0.6:
            # a new line must hold for confirm_frames windows before it is believed
            if self._pending and abs(math.log(rpm / self._pending[-1].rpm)) > c.max_rate_per_s * (
                    t - self._pending[-1].t) + 0.03:
                self._pending = []
            self._pending.append(line)
            if len(self._pending) < c.confirm_frames:
                return NoteEstimate(t, None, 0.0, None, salience, CONFIRMING, gear)
        self._pending = []
        self._line = line
        confidence = min(1.0, (salience - c.min_salience) / (c.full_salience - c.min_salience))
        sigma = rpm * (0.006 + 0.03 * (1.0 - confidence)) + 10.0
        return NoteEstimate(t, rpm, confidence, sigma, salience, "", gear)

    def _pick(self, score: np.ndarray, t: float, hint: GearHint | None):
        """(score, best candidate, gear or None, its salience) of one window's scores."""
        c = self.config
        median = float(np.median(score))
        spread = 1.4826 * float(np.median(np.abs(score - median))) + 1e-9
        salience_all = (score - median) / spread
        charged = salience_all.copy()
        if self._line is not None and t - self._line.t < 0.6:
            jump = np.abs(np.log(self._rpm / self._line.rpm))
            allowed = c.max_rate_per_s * (t - self._line.t)
            charged -= c.jump_charge * np.maximum(jump - allowed, 0.0) * (c.full_salience / 0.7)
        gear = None
        best = self._lowest_multiple(salience_all, int(np.argmax(charged)))
        if hint is not None:
            best, gear = self._best_in_gears(charged, salience_all, best, hint, t)
            if best is None:
                return score, 0, None, -math.inf
        return score, best, gear, float(salience_all[best])

    def _lowest_multiple(self, score: np.ndarray, i: int) -> int:
        """The best candidate, or 3x / 2x its rpm when the candidate's own harmonics are heard only
        at the multiples of 3 (or 2): a candidate at a third or a half of the line gathers the line's
        harmonics too, and (from the weak half-orders of an uneven engine) a little between them,
        so it can outscore the line; a true line has its 1st, 2nd, 4th... harmonics too."""
        c = self.config
        on = self._gather(self._ratio, self._at_i[i], self._at_w[i])
        k = np.arange(1, c.harmonics + 1)
        for multiple in (3, 2):
            j = i + int(round(math.log(multiple) / c.grid_step))
            if j >= len(score):
                continue
            if c.harmonics < multiple:
                continue  # too few harmonics to tell
            own = on[k % multiple != 0].mean()
            shared = on[k % multiple == 0].mean()
            if own < c.multiple_share * shared:
                lo, hi = max(0, j - 2), min(len(score), j + 3)
                return lo + int(np.argmax(score[lo:hi]))
        return i

    def _follows_line(self, i: int, t: float) -> bool:
        """True when candidate ``i`` is where the line followed so far can have gone by ``t``: an
        engine revs away from the gears' rpm only from where it was, never by a jump (a radio's
        note does, and with the engine off there is no line at all)."""
        c = self.config
        if self._line is None or t - self._line.t > 0.6:
            return False
        return abs(math.log(self._rpm[i] / self._line.rpm)) <= c.max_rate_per_s * (t - self._line.t) + 0.05

    def _shifts_to(self, gear: int, t: float) -> bool:
        """True when ``gear`` (1.., not the idle) is another than the line's gear a hop ago."""
        line = self._line
        return (gear > 0 and line is not None and line.gear is not None and line.gear > 0
                and line.gear != gear and t - line.t <= 1.5 * self.config.hop_s)

    def _best_in_gears(self, charged: np.ndarray, salience: np.ndarray, free: int,
                       hint: GearHint, t: float) -> tuple[int, int | None]:
        c = self.config
        lo, hi = np.log(self._rpm[0]), np.log(self._rpm[-1])
        candidates = [(0, hint.idle_rpm, 0.12)]
        candidates += [(g + 1, hint.speed_kmh * r, c.gear_slack) for g, r in enumerate(hint.rpm_per_kmh)
                       if hint.speed_kmh > 0]
        best, best_gear, best_value = None, None, -math.inf
        for gear, rpm, slack in candidates:
            if not rpm or not (lo <= math.log(rpm) <= hi):
                continue
            inside = np.nonzero(np.abs(np.log(self._rpm / rpm)) <= slack)[0]
            if inside.size == 0:
                continue
            i = int(inside[np.argmax(charged[inside])])
            if self._lowest_multiple(salience, i) != i:
                continue  # a half or a third of a stronger line
            value = charged[i] - (c.shift_charge if self._shifts_to(gear, t) else 0.0)
            if best is None or value > best_value:
                best, best_gear, best_value = i, gear, value
        if best is None:
            # no gear's rpm nor the idle is heard: the free line only if it continues the engine's
            # (with the engine off, a radio's notes would otherwise take the needle)
            return (free, None) if self._follows_line(free, t) else (None, None)
        if (charged[free] > c.free_wins_by * max(charged[best], 1e-9) and charged[free] > c.full_salience
                and self._follows_line(free, t)):
            return free, None  # clutch in and revving, or a gear the hint does not know
        return best, best_gear

    def _refine(self, score: np.ndarray, i: int) -> float:
        """The peak between grid points (a parabola through the best and its neighbours)."""
        if 0 < i < len(score) - 1:
            a, b, d = score[i - 1], score[i], score[i + 1]
            denominator = a - 2 * b + d
            if denominator < 0:
                shift = max(-0.5, min(0.5, 0.5 * (a - d) / denominator))
                return float(np.exp(np.log(self._rpm[i]) + shift * self.config.grid_step))
        return float(self._rpm[i])

    def _nothing(self, t: float, why: str, salience: float = 0.0) -> NoteEstimate:
        if self._line is not None and t - self._line.t > 0.6:
            self._line = None
        self._pending = []
        return NoteEstimate(t, None, 0.0, None, salience, why)


def to_float(pcm: bytes, sample_width: int, channels: int, channel: int = 0) -> np.ndarray:
    """Little-endian signed PCM (unsigned for 8-bit, as WAV stores it) to floats of full scale 1,
    one channel of an interleaved stream."""
    if sample_width == 1:
        data = (np.frombuffer(pcm, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif sample_width == 2:
        data = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    elif sample_width == 3:
        raw = np.frombuffer(pcm, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        data = np.where(value >= 1 << 23, value - (1 << 24), value).astype(np.float64) / float(1 << 23)
    elif sample_width == 4:
        data = np.frombuffer(pcm, dtype="<i4").astype(np.float64) / 2147483648.0
    else:
        raise ValueError(f"{8 * sample_width}-bit samples are not PCM keidash reads")
    usable = len(data) - len(data) % channels
    return data[:usable].reshape(-1, channels)[:, channel]


class Decimator:
    """Lowpass (windowed sinc) and keep every ``factor``-th sample, across chunks: a 48 kHz
    microphone is analysed at 8 kHz, where the firing lines and their harmonics all are."""

    def __init__(self, factor: int, taps: int = 63):
        self.factor = factor
        n = np.arange(taps) - (taps - 1) / 2
        cutoff = 0.45 / factor
        self._taps = np.sinc(2 * cutoff * n) * 2 * cutoff * np.hamming(taps)
        self._tail = np.zeros(taps - 1)
        self._phase = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return x
        joined = np.concatenate([self._tail, x])
        filtered = np.convolve(joined, self._taps, mode="valid")
        self._tail = joined[len(joined) - (len(self._taps) - 1):]
        out = filtered[self._phase::self.factor]
        self._phase = (self._phase - len(filtered)) % self.factor
        return out


def decimation_for(rate_hz: float, target_hz: float = 8000.0) -> int:
    """The whole factor that brings ``rate_hz`` nearest above ``target_hz`` (1 when it is already)."""
    return max(1, int(rate_hz // target_hz))


@dataclass
class RippleFactor:
    """The 12 V ripple's Hz per rpm (pulley ratio x alternator pole pairs x 6 / 60), learned from
    the ripple's line in Hz beside another source's rpm at the same moment.

    Each pair gives Hz / rpm; the factor is their median once ``need`` pairs agree within
    ``max_spread`` (median absolute deviation, as a share). Pairs below ``min_rpm`` (cranking,
    a stall) are not taken. Pure: no clock, no file (the source keeps it in data_dir).
    """

    need: int = 30
    max_spread: float = 0.01
    min_rpm: float = 500.0
    keep: int = 300
    ratios: list[float] = field(default_factory=list)

    def add(self, line_hz: float, rpm: float) -> None:
        if rpm >= self.min_rpm and line_hz > 0:
            self.ratios.append(line_hz / rpm)
            del self.ratios[:-self.keep]

    def factor(self) -> float | None:
        if len(self.ratios) < self.need:
            return None
        middle = float(np.median(self.ratios))
        spread = float(np.median(np.abs(np.asarray(self.ratios) / middle - 1.0)))
        return middle if spread <= self.max_spread else None


#: a warm kei engine idles within this range (rpm): the ripple's line at a standstill is the idle
#: x the factor, so the line alone pins the factor only to within it (1000 / 700: 43 %)
KEI_IDLE_RANGE = (700.0, 1000.0)
#: the lead's own status while learning from the truck, by what it waits for
WAIT_ROAD = "no road speed yet (a GPS), nor another rpm source"
WAIT_GEARS = "drive steadily in two gears or more"
WAIT_IDLE = "let the engine idle at a standstill"
WAIT_KNOWLEDGE = "give the idle ([shift] idle_rpm), the gear ratios, or another rpm source"


@dataclass
class RippleFromTruck:
    """The ripple's Hz per rpm from the truck itself, when no other rpm source is at hand (a
    truck with the ripple lead and a GPS). Pure: windows in, no clock, no file.

    **From the gears.** While the truck moves steadily in a gear, the line per km/h sits at
    factor x that gear's rpm per km/h, so in log its windows cluster at log(factor) + each gear's
    log(rpm per km/h). The clusters' spacing does not depend on the factor: the factor is the
    one shift that lays the clusters on the known gears' rpm per km/h (sourced, learned before,
    or learned live from another source). A shift by a gear step can lay some clusters on the
    wrong gears too, so it takes at least ``min_gears`` gears heard with ``min_windows`` each,
    at least ``explained`` of the moving windows on a gear, and the best shift must hold
    ``margin`` times the windows of any other; when the idle's line was heard, the shifts are
    only those that put the idle within KEI_IDLE_RANGE (within 10 % of the idle when it is
    known), which is what tells a gear step apart when few gears were driven.

    **From the idle.** At a standstill the line is the idle x the factor. The idle is known only
    as a range for a kei engine (700-1000 rpm, a 43 % spread), so the idle alone makes a factor
    only when the idle is known (the owner's ``[shift] idle_rpm``, the profile's, or seen on
    earlier drives with an rpm source): then factor = the warm idle's line / that idle. The
    warm idle is the lower half of the standstill windows (a cold engine's fast idle, a blip or
    the A/C's raised idle are above it), once they agree within ``idle_spread``.
    """

    min_kmh: float = 10.0  # moving: GPS speed is too rough below this
    stand_kmh: float = 0.5
    steady: float = 0.01  # log change of the line from the window before (0.1 s): a gear held
    tolerance: float = 0.03  # log: a window this close to a gear's line per km/h is that gear's
    min_windows: int = 30  # windows (3 s) in a gear before it counts
    min_gears: int = 2
    explained: float = 0.6
    margin: float = 2.0
    idle_windows: int = 50  # standstill windows (5 s) before the idle's line is taken
    idle_spread: float = 0.02
    keep: int = 6000
    how: str = ""  # "the gears" or "the idle" once a factor is found
    _moving: list = field(default_factory=list)  # log(line Hz per km/h) of steady moving windows
    _standing: list = field(default_factory=list)  # line Hz at a standstill
    _last: tuple | None = None  # (t, line Hz) of the window before

    def add(self, t: float, line_hz: float, speed_kmh: float) -> None:
        last, self._last = self._last, (t, line_hz)
        if line_hz <= 0:
            return
        if speed_kmh <= self.stand_kmh:
            self._standing.append(line_hz)
            del self._standing[:-self.keep]
        elif speed_kmh >= self.min_kmh and last is not None and t - last[0] <= 0.25 \
                and abs(math.log(line_hz / last[1])) <= self.steady:
            self._moving.append(math.log(line_hz / speed_kmh))
            del self._moving[:-self.keep]

    def idle_hz(self) -> float | None:
        """The warm idle's line (Hz), once enough standstill windows agree; else None."""
        if len(self._standing) < self.idle_windows:
            return None
        low = np.sort(np.asarray(self._standing))[:len(self._standing) // 2]
        middle = float(np.median(low))
        return middle if float(np.median(np.abs(low / middle - 1.0))) <= self.idle_spread else None

    def factor(self, rpm_per_kmh: tuple[float, ...], idle_rpm: float | None, idle_known: bool) -> float | None:
        """The factor once the gears (or, with no ratios, a known idle) pin it; else None."""
        idle_hz = self.idle_hz()
        if rpm_per_kmh:
            if idle_hz is not None:
                lo, hi = (idle_rpm / 1.1, idle_rpm * 1.1) if idle_known and idle_rpm else KEI_IDLE_RANGE
                bounds = (idle_hz / hi, idle_hz / lo)
            else:
                bounds = None
            found = self._from_gears(rpm_per_kmh, bounds)
            if found is not None:
                self.how = "the gears"
                return found
            return None
        if idle_hz is not None and idle_known and idle_rpm:
            self.how = "the idle"
            return idle_hz / idle_rpm
        return None

    def waiting_for(self, rpm_per_kmh: tuple[float, ...], idle_known: bool) -> str:
        """What the factor still waits for, in the driver's words."""
        if rpm_per_kmh:
            return WAIT_GEARS
        return WAIT_IDLE if idle_known else WAIT_KNOWLEDGE

    def _from_gears(self, rpm_per_kmh: tuple[float, ...], bounds: tuple[float, float] | None) -> float | None:
        x = np.asarray(self._moving)
        if len(x) < self.min_windows * self.min_gears:
            return None
        gears = np.log(np.asarray(rpm_per_kmh, dtype=float))
        step = self.tolerance / 8
        lo, hi = float(x.min() - gears.max()), float(x.max() - gears.min())
        if bounds is not None:
            lo, hi = max(lo, math.log(bounds[0])), min(hi, math.log(bounds[1]))
        if hi < lo:
            return None
        shifts = np.arange(lo - self.tolerance, hi + self.tolerance + step, step)
        xs = np.sort(x)
        # windows within tolerance of each gear's line at each shift (two binary searches a gear)
        centres = shifts[:, None] + gears[None, :]
        counts = (np.searchsorted(xs, centres + self.tolerance, side="right")
                  - np.searchsorted(xs, centres - self.tolerance, side="left"))
        total = counts.sum(axis=1)
        valid = ((counts >= self.min_windows).sum(axis=1) >= self.min_gears) & (total >= self.explained * len(x))
        if not valid.any():
            return None
        best = int(np.argmax(np.where(valid, total, -1)))
        away = np.abs(shifts - shifts[best]) > 2 * self.tolerance
        rival = int(total[away].max()) if away.any() else 0
        if total[best] < self.margin * rival:
            return None  # another shift lays the clusters on the gears nearly as well: wait
        # the factor from the windows on a gear at the best shift: their median offset
        offsets = x[:, None] - gears[None, :]
        near = np.abs(offsets - shifts[best]) <= self.tolerance
        on = offsets[near]
        return float(np.exp(np.median(on))) if on.size else None


#: what a factor can be learned from, most trusted first: a factor is only ever refined from a
#: source as trusted as the one it was learned from, or more (another source's rpm is measured;
#: the gears' ratios are sourced or learned from drives; a kei idle is known to within 10 %)
FACTOR_SOURCES = ("another rpm source", "the gears", "the idle")
#: a factor learned or kept is replaced when a check disagrees by more than this (the gears pin it
#: within 0.5 %, another source within 1 %: a smaller change is noise, a larger one an error)
REFINE_BY = 0.02


@dataclass
class FactorCheck:
    """Keeps checking a ripple factor that keidash learned (kept from an earlier drive or learned
    on this one) against what it was learned from, or something more trusted: a factor learned
    from a cold engine's fast idle reads high until the gears or a warm idle say otherwise. An
    owner's ``factor=`` is never checked. Pure: windows in, no clock, no file.

    ``learned_from`` is one of FACTOR_SOURCES, or None for a kept file that does not say (then any
    of them may refine it). The truck's check costs a sort of its windows, so it runs every
    ``every`` windows.
    """

    learned_from: str | None = None
    every: int = 50  # windows (5 s at the ripple's 0.1 s)
    by_source: RippleFactor = field(default_factory=RippleFactor)
    by_truck: RippleFromTruck = field(default_factory=RippleFromTruck)
    _windows: int = 0

    def _trusts(self, how: str) -> bool:
        if self.learned_from not in FACTOR_SOURCES:
            return True
        return FACTOR_SOURCES.index(how) <= FACTOR_SOURCES.index(self.learned_from)

    def check(self, t: float, line_hz: float, current: float, reference_rpm: float | None,
              hint: "GearHint | None") -> tuple[float, str] | None:
        """A window's line (Hz) with another source's rpm and the road's hint at that moment:
        (the better factor, what from) when one disagrees with ``current`` by more than REFINE_BY."""
        found = None
        if reference_rpm is not None:
            self.by_source.add(line_hz, reference_rpm)
            factor = self.by_source.factor()
            found = (factor, FACTOR_SOURCES[0]) if factor is not None else None
        if hint is not None:
            self.by_truck.add(t, line_hz, hint.speed_kmh)
            self._windows += 1
            if found is None and self._windows % self.every == 0:
                factor = self.by_truck.factor(hint.rpm_per_kmh, hint.idle_rpm, hint.idle_known)
                found = (factor, self.by_truck.how) if factor is not None else None
        if found is None or not self._trusts(found[1]) or abs(found[0] / current - 1.0) <= REFINE_BY:
            return None
        self.learned_from = found[1]
        return found

