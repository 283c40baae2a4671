"""The engine's note (issue 12), each figure against its goal; exits 1 when a goal is missed.

1. Accuracy per noise case of the virtual cab (keidash.sim.cabin): the virtual truck's own day
   (its habit driver, the first ``--seconds``) heard in the everyday cab, with the radio louder
   than the engine, with the blower on, and with the mic's gain so high it clips; and scripted
   cases: an idle at 800 rpm, a downshift with a blip, the engine off (silence), the engine off
   with the radio on. Per case, over the same 0.512 s windows every 0.1 s:
   - keidash free (keidash.sources.note, as ``keidash listen`` runs it);
   - keidash with the gear constraint (road speed as a GPS gives it, the Hijet's ratios);
   - a plain FFT peak pick: the same window and FFT, the highest bin in the firing band, always
     reported (what a single-peak phone tach does);
   share of the windows with the engine running whose rpm is within 5 % of the truth (a window
   with no rpm counts as a miss), share with a wrong rpm (more than 5 % off), and share of
   engine-off or clipped windows with any rpm at all (goal: none).
2. Delay from sound to estimate: half the window (the estimate is stamped at its middle, so the
   needle's Kalman filter is handed a reading that old), plus a capture block, plus the
   processing of one window (median, measured).
3. CPU per second of audio: keidash's tracker against the plain FFT peak pick over the same
   audio in the same run (the baseline), as a ratio, and the share of one core it implies on a
   Pi Zero 2 W (goal < 10 %), assuming its Cortex-A53 at 1 GHz is PI_ZERO_2W_FACTOR times slower
   per core than this machine (docs/benchmarks.md says why).
4. Memory: tracemalloc's peak while tracking (numpy's buffers included).

Run: ``.venv/bin/python bench/audio.py [--seconds 300] [--json PATH]`` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keidash.profiles import load_profile  # noqa: E402
from keidash.profiles.engine import shift_limits  # noqa: E402
from keidash.sim import cabin  # noqa: E402
from keidash.sources.audio import BLOCK_S  # noqa: E402
from keidash.sources.note import GearHint, NoteConfig, NoteTracker  # noqa: E402

PROFILE = "hijet-s500p"
#: a Pi Zero 2 W core (Cortex-A53, 1 GHz) against one core of this machine: the slow end of the
#: 5-10x docs/benchmarks.md's frame-cost section assumes
PI_ZERO_2W_FACTOR = 10.0
GOAL_PI_CORE_SHARE = 0.10
GOALS_WITHIN = {  # case -> share within 5 % with the gear constraint
    "cab": 0.95, "blower on": 0.95, "radio louder than the engine": 0.90, "idle at 800": 0.95,
    "downshift blip": 0.85,
}
OFF_CASES = ("engine off", "clipping", "engine off, radio on")  # nothing may be reported (with gears)


def plain_peak(sound: np.ndarray, config: NoteConfig) -> list[tuple[float, float]]:
    """(t, rpm) per window: the highest FFT bin in the firing band, always reported."""
    n = int(round(config.window_s * config.rate_hz))
    hop = int(round(config.hop_s * config.rate_hz))
    window = np.hanning(n)
    f = np.fft.rfftfreq(config.fft_size, 1 / config.rate_hz)
    band = (f >= config.min_rpm * config.line_hz_per_rpm) & (f <= config.max_rpm * config.line_hz_per_rpm)
    out = []
    for start in range(0, len(sound) - n + 1, hop):
        spectrum = np.abs(np.fft.rfft(sound[start:start + n] * window, config.fft_size))
        out.append(((start + n / 2) / config.rate_hz, f[band][np.argmax(spectrum[band])] / config.line_hz_per_rpm))
    return out


def shares(estimates: list[tuple[float, float | None]], t: np.ndarray, rpm: np.ndarray, clipped: bool) -> dict:
    truth = np.interp([e[0] for e in estimates], t, rpm)
    running = [(e[1], r) for e, r in zip(estimates, truth) if r > 300 and not clipped]
    off = [e[1] for e, r in zip(estimates, truth) if r <= 300 or clipped]
    within = sum(v is not None and abs(v - r) <= 0.05 * r for v, r in running)
    wrong = sum(v is not None and abs(v - r) > 0.05 * r for v, r in running)
    return {"within_5pct": round(within / len(running), 4) if running else None,
            "wrong": round(wrong / len(running), 4) if running else None,
            "heard_when_off": round(sum(v is not None for v in off) / len(off), 4) if off else None,
            "windows": len(estimates)}


def case_list(seconds: float):
    profile = load_profile(PROFILE)
    day = cabin.drive_truths(profile, seconds)
    cases = [(name, day, noise) for name, noise in cabin.CASES.items()]
    cases += [("idle at 800", cabin.scripted(cabin.IDLE_800), cabin.CASES["cab"]),
              ("downshift blip", cabin.scripted(cabin.downshift_blip(profile)), cabin.CASES["cab"]),
              ("engine off", cabin.scripted(cabin.ENGINE_OFF), cabin.CASES["cab"]),
              ("engine off, radio on", cabin.scripted(cabin.ENGINE_OFF), cabin.CASES["radio louder than the engine"])]
    return profile, cases


def measure(seconds: float) -> dict:
    profile, cases = case_list(seconds)
    ratios = profile.rpm_per_kmh()
    idle = shift_limits(profile).idle_rpm
    config = NoteConfig(cylinders=profile.engine.cylinders or 3)
    results, cpu = {}, {}
    for name, truths, noise in cases:
        sound = cabin.cabin_recording(truths, noise, cylinders=config.cylinders)
        t = np.array([tr.t for tr in truths]) - truths[0].t
        rpm = np.array([tr.rpm for tr in truths])
        speed = np.array([tr.speed_kmh for tr in truths])
        clipped = noise.gain > 1
        started = time.process_time()
        free = [(e.t, e.rpm) for e in NoteTracker(config).feed(sound)]
        free_cpu = time.process_time() - started
        geared = [(e.t, e.rpm) for e in NoteTracker(config).feed(
            sound, lambda at: GearHint(float(np.interp(at, t, speed)), ratios, idle))]
        started = time.process_time()
        peak = plain_peak(sound, config)
        peak_cpu = time.process_time() - started
        results[name] = {"keidash": shares(free, t, rpm, clipped), "keidash_gears": shares(geared, t, rpm, clipped),
                         "fft_peak": shares(peak, t, rpm, clipped), "audio_s": round(len(sound) / config.rate_hz, 1)}
        if name == "cab":
            cpu = {"keidash_s_per_audio_s": free_cpu / (len(sound) / config.rate_hz),
                   "fft_peak_s_per_audio_s": peak_cpu / (len(sound) / config.rate_hz)}
    # delay and memory, on 20 s of the everyday cab
    sound = cabin.cabin_recording(cases[0][1][:2001], cabin.CASES["cab"])
    tracker = NoteTracker(config)
    n = int(round(config.window_s * config.rate_hz))
    per_window = []
    for start in range(0, 100 * 800, 800):
        frame = sound[start:start + n]
        began = time.perf_counter()
        tracker.estimate(frame, start / config.rate_hz)
        per_window.append(time.perf_counter() - began)
    processing = statistics.median(per_window)
    tracemalloc.start()
    NoteTracker(config).feed(sound)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    share_here = cpu["keidash_s_per_audio_s"]
    return {"cases": results, "cpu": {**{k: round(v, 5) for k, v in cpu.items()},
                                      "ratio_to_fft_peak": round(cpu["keidash_s_per_audio_s"] /
                                                                 cpu["fft_peak_s_per_audio_s"], 2),
                                      "core_share_here": round(share_here, 4),
                                      "pi_zero_2w_core_share": round(share_here * PI_ZERO_2W_FACTOR, 4)},
            "delay_ms": {"half_window": config.window_s / 2 * 1000, "capture_block": BLOCK_S * 1000,
                         "processing_p50": round(processing * 1000, 2),
                         "total": round((config.window_s / 2 + BLOCK_S + processing) * 1000, 1)},
            "memory_peak_mb": round(peak_bytes / 1e6, 2)}


def goals(figures: dict) -> dict[str, bool]:
    out = {}
    cases = figures["cases"]
    for name, goal in GOALS_WITHIN.items():
        got = cases[name]["keidash_gears"]["within_5pct"]
        out[f"{name}: with gears {100 * got:.1f} % within 5 % >= {100 * goal:g} %"] = got >= goal
    for name in OFF_CASES:
        heard = cases[name]["keidash_gears"]["heard_when_off"]
        out[f"{name}: an rpm in {100 * heard:.1f} % of windows = 0 %"] = heard == 0
    for name, case in cases.items():
        ours, peak = case["keidash_gears"]["within_5pct"], case["fft_peak"]["within_5pct"]
        if ours is not None:
            out[f"{name}: keidash with gears {100 * ours:.1f} % >= FFT peak {100 * peak:.1f} %"] = ours >= peak
    pi = figures["cpu"]["pi_zero_2w_core_share"]
    out[f"Pi Zero 2 W: {100 * pi:.1f} % of a core < {100 * GOAL_PI_CORE_SHARE:g} %"] = pi < GOAL_PI_CORE_SHARE
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of the virtual day (default 300)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    figures = measure(args.seconds)
    print("| case | keidash | keidash + gears | FFT peak | wrong (keidash + gears) | rpm when off (keidash + gears) |")
    print("| --- | --- | --- | --- | --- | --- |")

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f} %"
    for name, case in figures["cases"].items():
        print(f"| {name} ({case['audio_s']:g} s) | {pct(case['keidash']['within_5pct'])} | "
              f"{pct(case['keidash_gears']['within_5pct'])} | {pct(case['fft_peak']['within_5pct'])} | "
              f"{pct(case['keidash_gears']['wrong'])} | {pct(case['keidash_gears']['heard_when_off'])} "
              f"(free {pct(case['keidash']['heard_when_off'])}, FFT peak {pct(case['fft_peak']['heard_when_off'])}) |")
    cpu, delay = figures["cpu"], figures["delay_ms"]
    print(f"\nCPU per second of audio: keidash {1000 * cpu['keidash_s_per_audio_s']:.2f} ms, FFT peak "
          f"{1000 * cpu['fft_peak_s_per_audio_s']:.2f} ms (ratio {cpu['ratio_to_fft_peak']:.2f}x); "
          f"{100 * cpu['core_share_here']:.2f} % of a core here, {100 * cpu['pi_zero_2w_core_share']:.1f} % "
          f"on a Pi Zero 2 W at {PI_ZERO_2W_FACTOR:g}x slower")
    print(f"delay from sound to estimate: {delay['total']:.0f} ms (half window {delay['half_window']:.0f} + "
          f"capture block {delay['capture_block']:.0f} + processing {delay['processing_p50']:.2f})")
    print(f"memory: tracemalloc peak {figures['memory_peak_mb']:.2f} MB while tracking")
    checks = goals(figures)
    print()
    for text, ok in checks.items():
        print(("met    " if ok else "MISSED ") + text)
    figures["goals"] = checks
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=bool))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
