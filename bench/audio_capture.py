"""Which capture path for audio:// (issue 12): arecord (alsa-utils, a subprocess) against
python-sounddevice (PortAudio) when it is installed; exits 1 when a goal is missed.

Both read the same sound through the same ALSA device: a ``file`` PCM plugin named in a
temporary asoundrc, whose ``infile`` is 60 s of the virtual cab (signed 16-bit, 8 kHz, mono).
The plugin's ``null`` slave keeps no time, so each path reads as fast as it can: the figures
are the cost of moving a second of audio into Python, not of waiting for it.

- start: from nothing (a fresh interpreter for sounddevice: its import and PortAudio's
  initialisation; a fresh arecord process) to the first 50 ms block in hand, median of 5;
- CPU: user + system time of everything involved (the Python reader, and arecord itself) per
  second of audio read;
- the ratio of each to a baseline measured in the same run: reading the same bytes from a
  plain file in blocks of 50 ms (the least any capture path can cost).

Goals: arecord's start under 0.5 s and its CPU under 1 % of a core per second of audio here.
pyalsaaudio is not measured: it has no wheel and ``pip install pyalsaaudio`` needs the ALSA
headers and a C compiler (docs/audio.md).

Run: ``.venv/bin/python bench/audio_capture.py`` (needs arecord; sounddevice is optional:
``pip install sounddevice`` and ``apt install libportaudio2`` to compare it).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keidash.sim import cabin  # noqa: E402

RATE, SECONDS, BLOCK = 8000, 60, 400 * 2  # bytes of a 50 ms block
GOAL_START_S, GOAL_CORE_SHARE = 0.5, 0.01

SOUNDDEVICE_READ = """
import sys, time
t0 = time.perf_counter()
import sounddevice as sd
stream = sd.RawInputStream(device="cabin", samplerate=8000, channels=1, dtype="int16", blocksize=400)
stream.start()
stream.read(400)
first = time.perf_counter() - t0
got = 400
while got < int(sys.argv[1]) * 8000:
    stream.read(400)
    got += 400
stream.stop()
print(first)
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def arecord_once(env: dict, seconds: float) -> tuple[float, float]:
    """(seconds to the first block, CPU seconds of arecord + this reader) reading ``seconds`` of audio."""
    cpu0, own0 = children_cpu(), time.process_time()
    t0 = time.perf_counter()
    process = subprocess.Popen(["arecord", "-q", "-D", "cabin", "-t", "raw", "-f", "S16_LE", "-r", str(RATE), "-c",
                                "1", "-d", str(int(seconds))], stdout=subprocess.PIPE, env=env)
    first, got = None, 0
    while True:
        data = process.stdout.read1(BLOCK)
        if not data:
            break
        if first is None:
            first = time.perf_counter() - t0
        got += len(data)
    process.wait()
    return first, (children_cpu() - cpu0) + (time.process_time() - own0)


def sounddevice_once(env: dict, seconds: float) -> tuple[float, float] | None:
    cpu0 = children_cpu()
    run = subprocess.run([sys.executable, "-c", SOUNDDEVICE_READ, str(int(seconds))], capture_output=True, text=True,
                         env=env, timeout=120)
    if run.returncode != 0:
        return None
    return float(run.stdout.strip().splitlines()[-1]), children_cpu() - cpu0


def python_start(env: dict) -> float:
    """CPU seconds of a bare interpreter's start and exit (taken off sounddevice's figure)."""
    cpu0 = children_cpu()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return children_cpu() - cpu0


def file_baseline(path: str) -> float:
    own0 = time.process_time()
    with open(path, "rb") as f:
        while f.read(BLOCK):
            pass
    return time.process_time() - own0


def main() -> int:
    if shutil.which("arecord") is None:
        print("arecord is not installed (apt install alsa-utils): nothing to measure")
        return 1
    home = tempfile.mkdtemp(prefix="keidash-capture-")
    raw = os.path.join(home, "cab.s16")
    truths = cabin.scripted([(0.0, 2400, 48, 3, 30), (SECONDS + 1.0, 2400, 48, 3, 30)])
    Path(raw).write_bytes((cabin.cabin_recording(truths) * 32767).astype("<i2").tobytes())
    Path(home, ".asoundrc").write_text(f'pcm.cabin {{\n type file\n slave.pcm "null"\n file "/dev/null"\n'
                                       f' infile "{raw}"\n format "raw"\n}}\n')
    env = dict(os.environ, HOME=home)
    baseline_cpu = statistics.median(file_baseline(raw) for _ in range(5)) / SECONDS
    rows = {}
    starts, cpus = zip(*(arecord_once(env, SECONDS) for _ in range(5)))
    rows["arecord (alsa-utils)"] = (statistics.median(starts), statistics.median(cpus) / SECONDS)
    python = statistics.median(python_start(env) for _ in range(5))
    try:
        import importlib.util
        has_sounddevice = importlib.util.find_spec("sounddevice") is not None
    except ValueError:
        has_sounddevice = False
    if has_sounddevice:
        runs = [sounddevice_once(env, SECONDS) for _ in range(5)]
        if all(runs):
            starts, cpus = zip(*runs)
            # its CPU includes the interpreter's own start: take that off, measured the same way
            rows["python-sounddevice (PortAudio)"] = (statistics.median(starts),
                                                      (statistics.median(cpus) - python) / SECONDS)
        else:
            print("python-sounddevice is installed but could not read the device")
    else:
        print("python-sounddevice is not installed here: only arecord is measured")
    print(f"\nbaseline: reading the same bytes from a file, {1e6 * baseline_cpu:.1f} us CPU per second of audio "
          f"(a bare interpreter's start, {1000 * python:.0f} ms CPU, is taken off sounddevice's)")
    print("| path | start to the first block | CPU per second of audio | x baseline | share of a core |")
    print("| --- | --- | --- | --- | --- |")
    for name, (start, cpu) in rows.items():
        print(f"| {name} | {1000 * start:.0f} ms | {1e6 * cpu:.0f} us | {cpu / baseline_cpu:.0f}x | "
              f"{100 * cpu:.3f} % |")
    start, cpu = rows["arecord (alsa-utils)"]
    checks = {f"arecord starts in {1000 * start:.0f} ms < {1000 * GOAL_START_S:.0f} ms": start < GOAL_START_S,
              f"arecord costs {100 * cpu:.3f} % of a core < {100 * GOAL_CORE_SHARE:g} %": cpu < GOAL_CORE_SHARE}
    print()
    for text, ok in checks.items():
        print(("met    " if ok else "MISSED ") + text)
    shutil.rmtree(home, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
