"""Speed-sensor (VSS) self-calibration against GPS speed. Pure and deterministic.

A worn, new or non-stock tyre, or a sensor that gives another number of
pulses per km than assumed, makes the VSS speed wrong by a fixed factor. The
GPS measures true speed over ground, noisily and late, but without that
bias. ``step(state, reading, config) -> state`` folds one reading in;
``result(state, config) -> VssCalibration`` says what has been learned: the
scale factor (true speed / VSS speed), the pulses per km that implies, and
how sure it is. Like the estimator it reads no clock, port or file: a replayed
log gives the same calibration every time.

Only trustworthy stretches teach it:

- Pairs. Each GPS speed is paired with the VSS speed at the GPS reading's
  time, interpolated between the two VSS readings around it; those two must
  be close together (both fresh, time-aligned), or the GPS reading is dropped.
- Stretches. Pairs are judged over ``window_s`` of GPS time: every pair above
  ``min_speed_kmh``, GPS epochs no more than ``max_gps_gap_s`` apart, the VSS
  speed steady within ``steady_pct`` (or ``steady_kmh``), and no GPS speed
  off the window's ratio by more than ``gps_outlier_pct`` (or
  ``gps_outlier_kmh``). Steadiness is judged on the VSS, which is smooth; the
  GPS is only checked for jumps, since its noise averages out over a window.
  A weak or missing GPS fix (``gps_degraded``) breaks the stretch.
- Samples. A steady window gives one sample, the ratio of its mean GPS speed
  to its mean VSS speed; windows do not overlap, so samples are independent.
- Estimate. A trimmed mean of the last ``max_samples`` samples (robust to
  the odd bad window), a robust spread (MAD), the standard error from them,
  and a confidence that reaches 1 with ``min_samples`` samples whose
  standard error is well inside ``target_pct``.

GPS readings are stamped when their sentence arrived, up to a few hundred ms
after the fix; on a steady stretch that moves the speed by a few hundredths
of a km/h at most, and speeding up and slowing down cancel.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

from ..readings import SPEED, Reading

#: the JIS speedometer drive: 637 rev/km x 4 pulses/rev
JIS_PULSES_PER_KM = 2548.0


@dataclass(frozen=True)
class CalibrationConfig:
    vss_source: str = "pulses"  # the source whose speed is calibrated
    gps_source: str = "gps"  # the source giving true speed
    assumed_pulses_per_km: float | None = JIS_PULSES_PER_KM  # what the VSS source assumes; None if not pulses
    min_speed_kmh: float = 25.0  # below this GPS speed is too noisy and wheels too likely to slip
    window_s: float = 3.0  # s of GPS time one sample is judged over
    steady_pct: float = 1.5  # VSS speed range within a window, % of its mean ...
    steady_kmh: float = 0.8  # ... or this many km/h, whichever is larger
    gps_outlier_pct: float = 5.0  # a GPS speed this far off the window's ratio is a jump (multipath) ...
    gps_outlier_kmh: float = 3.0  # ... or this many km/h, whichever is larger
    max_gps_gap_s: float = 1.5  # GPS readings further apart break the stretch
    max_vss_gap_s: float = 0.5  # the VSS readings around a GPS reading must be this close together
    max_wait_s: float = 2.0  # a GPS reading waits this long for the VSS reading after it
    max_samples: int = 300  # the last 15 minutes of steady driving (3 s a sample)
    min_samples: int = 20  # one minute of steady driving before the scale is trusted
    target_pct: float = 0.5  # the accuracy aimed for: standard error well inside it
    trim: float = 0.2  # trimmed mean: drop this share of samples at each end
    plausible: tuple[float, float] = (0.6, 1.6)  # a ratio outside is a wrong pairing, not a tyre


@dataclass(frozen=True)
class CalibrationState:
    vss: tuple[tuple[float, float], ...] = ()  # recent VSS readings (t, km/h), in time order
    pending: tuple[tuple[float, float], ...] = ()  # GPS readings (t, km/h) waiting for a later VSS reading
    window: tuple[tuple[float, float, float], ...] = ()  # pairs (t, gps, vss) of the current window
    samples: tuple[float, ...] = ()  # scale samples, oldest first
    # why GPS readings went unused: reason -> count
    rejected: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    latest_t: float = -math.inf  # newest reading time seen


@dataclass(frozen=True)
class VssCalibration:
    scale: float | None  # true speed / VSS speed; None before the first sample
    pulses_per_km: float | None  # what the sensor really gives per km (assumed / scale); None if unknown
    confidence: float  # 0..1: 1 = min_samples samples and a standard error well inside target_pct
    ready: bool  # confident enough to correct the speedo with
    samples: int  # steady windows learned from
    spread_pct: float | None  # robust standard deviation of one sample, % of the scale
    stderr_pct: float | None  # standard error of the scale, %
    rejected: Mapping[str, int]  # GPS readings not used, by reason


def _count(state: CalibrationState, reason: str, **changes) -> CalibrationState:
    rejected = dict(state.rejected)
    rejected[reason] = rejected.get(reason, 0) + 1
    return replace(state, rejected=MappingProxyType(rejected), **changes)


def step(state: CalibrationState, reading: Reading, config: CalibrationConfig,
         gps_degraded: bool = False) -> CalibrationState:
    """Fold one reading in. Only speed readings from the two configured sources count.

    ``gps_degraded``: the GPS source says its fix is weak or missing now
    (:attr:`keidash.sources.nmea.NmeaSource.degraded`); its readings then
    teach nothing and break the current stretch.
    """
    if reading.channel != SPEED or reading.source not in (config.vss_source, config.gps_source):
        return state
    if not (math.isfinite(reading.t) and math.isfinite(reading.value)) or reading.value < 0:
        return state
    state = replace(state, latest_t=max(state.latest_t, reading.t))
    if reading.source == config.vss_source:
        vss = state.vss
        if vss and reading.t < vss[-1][0]:
            return state  # out of order: the VSS history must stay sorted
        keep_from = reading.t - (config.window_s + config.max_wait_s + config.max_vss_gap_s)
        start = bisect_left(vss, (keep_from, -math.inf))
        state = replace(state, vss=vss[start:] + ((reading.t, reading.value),))
    elif gps_degraded:
        return _count(state, "degraded", window=())
    else:
        state = replace(state, pending=state.pending + ((reading.t, reading.value),))
    return _resolve(state, config)


def _resolve(state: CalibrationState, config: CalibrationConfig) -> CalibrationState:
    """Pair every waiting GPS reading that now has VSS readings on both sides."""
    while state.pending:
        t, gps = state.pending[0]
        vss = state.vss
        after = bisect_left(vss, (t, -math.inf))
        if after == len(vss):  # no VSS reading at or after it yet
            if state.latest_t - t <= config.max_wait_s:
                return state
            state = _count(state, "unaligned", pending=state.pending[1:], window=())
            continue
        state = replace(state, pending=state.pending[1:])
        if vss[after][0] == t:
            before = after
        elif after == 0:
            state = _count(state, "unaligned", window=())
            continue
        else:
            before = after - 1
        (t0, v0), (t1, v1) = vss[before], vss[after]
        if t1 - t0 > config.max_vss_gap_s:
            state = _count(state, "unaligned", window=())
            continue
        vss_kmh = v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        state = _pair(state, t, gps, vss_kmh, config)
    return state


def _pair(state: CalibrationState, t: float, gps: float, vss: float,
          config: CalibrationConfig) -> CalibrationState:
    window = state.window
    if window and not 0 <= t - window[-1][0] <= config.max_gps_gap_s:
        window = ()  # a gap in the GPS: the stretch is broken
    if gps < config.min_speed_kmh or vss <= 0:
        return _count(state, "slow", window=())
    low, high = config.plausible
    if not low <= gps / vss <= high:
        return _count(state, "implausible", window=())
    window = window + ((t, gps, vss),)
    if t - window[0][0] < config.window_s:
        return replace(state, window=window)  # the window is not full yet
    gps_speeds = [p[1] for p in window]
    vss_speeds = [p[2] for p in window]
    mean_vss = sum(vss_speeds) / len(vss_speeds)
    if max(vss_speeds) - min(vss_speeds) > max(config.steady_kmh, mean_vss * config.steady_pct / 100.0):
        # Slide on: drop the oldest pair and judge again with the next one.
        return _count(state, "unsteady", window=window[1:])
    sample = sum(gps_speeds) / sum(vss_speeds)
    if any(abs(g - sample * v) > max(config.gps_outlier_kmh, g * config.gps_outlier_pct / 100.0)
           for g, v in zip(gps_speeds, vss_speeds)):
        return _count(state, "gps_outlier", window=window[1:])
    samples = (state.samples + (sample,))[-config.max_samples:]
    return replace(state, samples=samples, window=())  # next window starts afresh: no overlap


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def result(state: CalibrationState, config: CalibrationConfig) -> VssCalibration:
    """What has been learned so far."""
    samples = state.samples
    n = len(samples)
    if n == 0:
        return VssCalibration(None, None, 0.0, False, 0, None, None, state.rejected)
    ordered = sorted(samples)
    cut = int(n * config.trim)
    kept = ordered[cut:n - cut]
    scale = sum(kept) / len(kept)
    sigma = 1.4826 * _median([abs(s - _median(ordered)) for s in ordered])  # robust standard deviation
    spread_pct = 100.0 * sigma / scale
    stderr_pct = spread_pct / math.sqrt(n)
    confidence = min(1.0, n / config.min_samples) * max(0.0, 1.0 - stderr_pct / config.target_pct)
    ready = n >= config.min_samples and stderr_pct <= config.target_pct / 2
    pulses_per_km = None if config.assumed_pulses_per_km is None else config.assumed_pulses_per_km / scale
    return VssCalibration(scale, pulses_per_km, confidence, ready, n, spread_pct, stderr_pct, state.rejected)


def correct(reading: Reading, calibration: VssCalibration, config: CalibrationConfig) -> Reading:
    """The reading with the learned scale applied, when it is a VSS speed and the scale is ready.

    Feed :func:`step` the raw readings, never corrected ones: the calibration
    would otherwise chase its own correction.
    """
    if (reading.channel != SPEED or reading.source != config.vss_source or not calibration.ready
            or calibration.scale is None):
        return reading
    return replace(reading, value=reading.value * calibration.scale)
