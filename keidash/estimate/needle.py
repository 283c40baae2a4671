"""The tach needle: every rpm reading fused by its timestamp, predicted to the frame's display time.

Readings arrive out of step with the 60 fps frames and late: a 5 Hz OBD rpm is
measured 50-100 ms before the ELM327's reply reaches keidash, coil pulses give
rpm at 10-50 Hz, and rpm estimated from road speed x gear comes at 1-10 Hz.
Holding the latest value shows the needle a reply delay plus half a poll period
behind the engine (about 180 ms at 5 Hz) and makes it jump by the measurement
noise at every poll. This module is a small Kalman filter that does better:

- **Model**: engine speed and its rate of change, ``[rpm, rate]``, with a
  constant-rate prediction disturbed by white-noise angular acceleration of
  spectral density ``process_noise_rpm2_s3`` (the standard
  "continuous white-noise acceleration" model; process noise over a step dt is
  q [[dt^3/3, dt^2/2], [dt^2/2, dt]]).
- **Update** on each reading at its measurement time ``t``, with the reading's
  own measurement noise picked by its source (``source_sigma_rpm``): an OBD
  value's ECU averaging and quantisation, coil-pulse jitter, or the speed and
  ratio error of an rpm estimated from speed x gear.
- **Two process noises**: steady driving needs a small one (the needle averages
  the noise away), a throttle step or the start of a ramp a large one (the
  needle follows at once). Each reading is first folded in with the steady
  noise; if it lands outside ``maneuver_gate_sigma`` standard deviations of
  what the filter expected, the update is redone with ``maneuver_noise_rpm2_s3``.
  This assumes the source noise is set about right: a source noisier than its
  ``source_sigma_rpm`` trips the gate often and the needle gets jittery.
- **Late readings**: sources run their own clocks and delays, so a reading can
  arrive measured before the filter's last update (an OBD reply arrives after a
  coil-pulse reading measured later). Within ``max_late_s`` it is folded in as a
  measurement of the *past* value, rpm(t) = rpm - (t_last - t) x rate, with the
  measurement noise widened by the process noise over that interval (an
  approximation that ignores the correlation between the state and that noise).
  Older readings are dropped and counted in ``NeedleState.dropped``.
- **Prediction** to a display time extrapolates with the rate term, but never
  further than a horizon past the last update: ``horizon_periods`` x the mean
  gap between updates (learned from the readings), within ``min_horizon_s`` ..
  ``max_horizon_s``. Past the horizon the needle holds; past ``stale_s`` with
  no reading there is no value (None) and the next reading starts afresh. The
  value is clamped to 0 .. ``max_rpm`` and the rate to +-``max_rate_rpm_s``.
- **Reset**: a gear change (the estimator knows) restarts the filter at the new
  value with no rate, instead of smearing the needle across the shift with the
  rate learned while the clutch was slipping. Call it with the *first* reading
  that shows the new gear engaged (its rpm / speed matches the gear): a reset
  that waits for the gear display's dwell comes after the smear. On the virtual
  truck (bench/needle.py) this beat also resetting without a value at clutch-in:
  while the clutch is in, the rate term follows the falling rpm better than a hold.

Pure and deterministic: no clock, no I/O; state is a small frozen dataclass and
every function returns a new one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

#: measurement noise (1 sigma, rpm) by source name; keidash's choices, not sourced figures
DEFAULT_SOURCE_SIGMA_RPM: Mapping[str, float] = MappingProxyType({
    "obd": 40.0,  # the ECU's own averaged, quantised engine speed
    "pulses": 30.0,  # coil-pulse period: cylinder-to-cylinder crank speed ripple
    "vss": 60.0,  # speed-sensor pulses x gear: tooth spacing, ratio error
    "gps": 100.0,  # GPS speed (+-0.3 km/h) x up to ~280 rpm per km/h in 1st
    "estimated": 80.0,  # any other rpm from speed x gear
})


@dataclass(frozen=True)
class NeedleConfig:
    process_noise_rpm2_s3: float = 2.0e3  # white-noise angular acceleration PSD, rpm^2/s^3, steady
    maneuver_noise_rpm2_s3: float = 1.0e6  # the same once a reading falls outside the gate
    maneuver_gate_sigma: float = 3.0  # innovation, in its own standard deviations, that means a maneuver
    source_sigma_rpm: Mapping[str, float] = field(default_factory=lambda: DEFAULT_SOURCE_SIGMA_RPM)
    default_sigma_rpm: float = 50.0  # rpm, measurement noise of a source not named above
    horizon_periods: float = 1.5  # extrapolate at most this many mean update gaps past the last update
    min_horizon_s: float = 0.1  # s, never hold sooner (covers an ELM327's reply delay)
    max_horizon_s: float = 0.5  # s, never extrapolate further
    initial_period_s: float = 0.2  # s, assumed gap between updates until two readings have come
    max_late_s: float = 0.5  # s, a reading measured this long before the last update is dropped
    stale_s: float = 2.0  # s, no reading this long: no value, and the next reading starts afresh
    max_rpm: float = 10_000.0  # rev/min, the needle's full scale (clamp); set to the tach's
    max_rate_rpm_s: float = 10_000.0  # rpm/s, bound on the rate term
    reset_sigma_rpm: float = 50.0  # rpm, trust in a value handed to needle_reset
    initial_rate_sigma_rpm_s: float = 2_000.0  # rpm/s, rate uncertainty after a start or a reset

    def sigma_rpm(self, source: str) -> float:
        """Measurement noise (1 sigma, rpm) of a reading from ``source``."""
        return self.source_sigma_rpm.get(source, self.default_sigma_rpm)


DEFAULT_CONFIG = NeedleConfig()


@dataclass(frozen=True)
class NeedleState:
    t: float | None = None  # s, time of the last update (measurement time); None: no value yet
    rpm: float = 0.0  # rev/min at t
    rate_rpm_s: float = 0.0  # rpm/s at t
    var_rpm: float = 0.0  # rpm^2, variance of rpm     } the covariance
    cov_rpm_rate: float = 0.0  # rpm^2/s, covariance } of the estimate
    var_rate: float = 0.0  # rpm^2/s^2, variance of rate } [rpm, rate]
    period_s: float | None = None  # s, mean gap between in-order updates (None until two)
    dropped: int = 0  # readings ignored: not a number, negative, or too late


def _fresh(state: NeedleState, t: float, rpm: float, sigma_rpm: float, config: NeedleConfig) -> NeedleState:
    """Start at ``rpm`` with no rate, keeping the learned period and the drop count."""
    return replace(state, t=t, rpm=rpm, rate_rpm_s=0.0, var_rpm=sigma_rpm ** 2, cov_rpm_rate=0.0,
                   var_rate=config.initial_rate_sigma_rpm_s ** 2)


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def needle_update(state: NeedleState, t: float, rpm: float, source: str,
                  config: NeedleConfig = DEFAULT_CONFIG, sigma_rpm: float | None = None) -> NeedleState:
    """Fold in one rpm reading measured at ``t`` (s) from ``source``.

    ``sigma_rpm``: the reading's own noise when the caller knows it better than the source's
    table entry (an rpm estimated from speed x gear: the speed's noise x the gear's ratio).
    A value that is not a finite number >= 0 is ignored, as is a reading
    measured more than ``max_late_s`` before the last update; both are counted
    in ``dropped``. A reading after ``stale_s`` of silence restarts the filter.
    """
    if not (math.isfinite(rpm) and rpm >= 0.0 and math.isfinite(t)):
        return replace(state, dropped=state.dropped + 1)
    sigma = config.sigma_rpm(source) if sigma_rpm is None else sigma_rpm
    if state.t is None or t - state.t > config.stale_s:
        return _fresh(state, t, rpm, sigma, config)
    updated = _update(state, t, rpm, sigma, config.process_noise_rpm2_s3, config)
    if updated is None:
        return replace(state, dropped=state.dropped + 1)
    new, surprise = updated
    if surprise > config.maneuver_gate_sigma ** 2:
        # the engine is doing something the steady model did not expect: update again
        # as if it could change rate quickly (a step change of the rate's uncertainty)
        new, _ = _update(state, t, rpm, sigma, config.maneuver_noise_rpm2_s3, config)
    return new


def _update(state: NeedleState, t: float, rpm: float, sigma: float, q: float,
            config: NeedleConfig) -> tuple[NeedleState, float] | None:
    """One Kalman update with process noise ``q``: (new state, squared normalised innovation).

    None when the reading is too late to use.
    """
    gap = t - state.t
    if gap >= 0.0:
        # predict the state forward to the reading: x = F x, P = F P F' + Q
        x, v = state.rpm + gap * state.rate_rpm_s, state.rate_rpm_s
        p00 = (state.var_rpm + 2 * gap * state.cov_rpm_rate + gap * gap * state.var_rate
               + q * gap ** 3 / 3)
        p01 = state.cov_rpm_rate + gap * state.var_rate + q * gap * gap / 2
        p11 = state.var_rate + q * gap
        t_new, back, noise = t, 0.0, sigma ** 2
        period = state.period_s
        if gap > 0.0:
            period = gap if period is None else period + 0.2 * (gap - period)
    else:
        back = -gap  # s, the reading measured this long before the state's time
        if back > config.max_late_s:
            return None
        x, v = state.rpm, state.rate_rpm_s
        p00, p01, p11 = state.var_rpm, state.cov_rpm_rate, state.var_rate
        t_new, noise = state.t, sigma ** 2 + q * back ** 3 / 3
        period = state.period_s
    # measurement of rpm at t: H = [1, -back]
    ph0 = p00 - back * p01  # P H'
    ph1 = p01 - back * p11
    innovation_var = ph0 - back * ph1 + noise
    k0, k1 = ph0 / innovation_var, ph1 / innovation_var
    innovation = rpm - (x - back * v)
    rate = _clamp(v + k1 * innovation, -config.max_rate_rpm_s, config.max_rate_rpm_s)
    new = replace(state, t=t_new, rpm=x + k0 * innovation, rate_rpm_s=rate,
                  var_rpm=p00 - k0 * ph0, cov_rpm_rate=p01 - k0 * ph1, var_rate=p11 - k1 * ph1,
                  period_s=period)
    return new, innovation * innovation / innovation_var


def needle_reset(state: NeedleState, t: float, rpm: float | None,
                 config: NeedleConfig = DEFAULT_CONFIG) -> NeedleState:
    """Restart at a gear change: the needle jumps to ``rpm`` at ``t`` with no rate.

    ``rpm`` is the new gear's value (e.g. the reading that showed the new gear,
    or speed x its rpm per km/h). With ``rpm`` None (the old gear is gone, the
    new one not known yet) the needle holds where it is at ``t``, without the
    rate, and the next reading is taken almost as it comes. A state with no
    value stays empty; an invalid ``rpm`` counts as dropped, like a reading.
    """
    if rpm is None:
        held = needle_predict(state, t, config)
        if held is None:
            return state
        return _fresh(state, t, held, 4 * config.max_rpm, config)
    if not (math.isfinite(rpm) and rpm >= 0.0 and math.isfinite(t)):
        return replace(state, dropped=state.dropped + 1)
    return _fresh(state, t, rpm, config.reset_sigma_rpm, config)


def needle_horizon_s(state: NeedleState, config: NeedleConfig = DEFAULT_CONFIG) -> float:
    """How far (s) past the last update the needle extrapolates before it holds."""
    period = config.initial_period_s if state.period_s is None else state.period_s
    return _clamp(config.horizon_periods * period, config.min_horizon_s, config.max_horizon_s)


def needle_predict(state: NeedleState, t_display: float,
                   config: NeedleConfig = DEFAULT_CONFIG) -> float | None:
    """The needle's rpm at display time ``t_display`` (s), or None with no live value.

    Extrapolates with the rate term up to the horizon past the last update,
    then holds; clamped to 0 .. ``max_rpm``. None before any reading and once
    ``stale_s`` has passed without one.
    """
    if state.t is None or not math.isfinite(t_display):
        return None
    ahead = t_display - state.t
    if ahead > config.stale_s:
        return None
    ahead = min(ahead, needle_horizon_s(state, config))
    return _clamp(state.rpm + ahead * state.rate_rpm_s, 0.0, config.max_rpm)
