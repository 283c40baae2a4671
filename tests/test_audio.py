"""audio://: the engine's note through the real source paths, and keidash listen.

The source contract (tests/test_source_contract.py) runs on the virtual cab's microphone
(a pipe, as ``sim://...?hardware=audio`` reads it) and through ``arecord`` itself, reading
the virtual cab from ALSA's ``file`` PCM plugin named in an asoundrc (so the real capture
path runs, short of a sound card); KEIDASH_TEST_AUDIO=hw:1,0 runs it on a real microphone.
"""

from __future__ import annotations

import csv
import os
import shutil
import statistics
import subprocess
import sys
import wave
from dataclasses import replace

import numpy as np
import pytest

from keidash.errors import ConfigError
from keidash.readings import RPM
from keidash.rig import open_rig
from keidash.sim import cabin
from keidash.sim.truth import parked
from keidash.sources.audio import AudioSettings, AudioSource, parse_audio_url
from keidash.sources.base import CONNECTED, FAILED
from test_source_contract import CRUISING, OnRealHardware, RunningTruth, SourceContract
from waiting import wait_for

ENV = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
NO_ARECORD = shutil.which("arecord") is None
NEEDS_ARECORD = pytest.mark.skipif(NO_ARECORD, reason="arecord (alsa-utils) is not installed: make test installs "
                                                       "it where it can (apt-get, as root)")


def write_wav(path, samples, rate=8000, channels=1, width=2):
    data = np.clip(samples, -1, 1)
    if channels > 1:
        data = np.repeat(data[:, None], channels, axis=1) * np.linspace(1, 0.2, channels)[None, :]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes((data * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}").tobytes())


def cruising_sound(seconds: float) -> np.ndarray:
    truths = cabin.scripted([(0.0, CRUISING.rpm, CRUISING.speed_kmh, 3, CRUISING.throttle_pct),
                             (seconds, CRUISING.rpm, CRUISING.speed_kmh, 3, CRUISING.throttle_pct)])
    return cabin.cabin_recording(truths)


class TestAudioOnTheVirtualCab(SourceContract):
    tolerance = {RPM: 0.02 * CRUISING.rpm}

    def build(self, sink):
        mic = cabin.EmulatedCabin(RunningTruth())
        mic.start()
        return AudioSource("mic", sink, AudioSettings(path=mic.path, raw=True)), mic.stop

    def bad_source(self, sink):
        return AudioSource("mic", sink, AudioSettings(path="/nonexistent/mic.s16", raw=True)), "/nonexistent/mic.s16"


@NEEDS_ARECORD
class TestAudioThroughArecord(SourceContract):
    """arecord reads the virtual cab's sound from ALSA's file plugin (as fast as it reads it:
    the plugin's null slave keeps no time, so readings are stamped as they arrive)."""

    tolerance = {RPM: 0.02 * CRUISING.rpm}
    # arecord reads the file some hundred times faster than real time, so the recording is a minute
    # looped 16 times; a window across a join (the engine's phase jumps there) may read wrong
    outlier_share = 0.02

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _asoundrc(cls, tmp_path_factory):
        home = tmp_path_factory.mktemp("alsa-home")
        raw = home / "cab.s16"
        raw.write_bytes((cruising_sound(60) * 32767).astype("<i2").tobytes() * 16)  # the plugin reads past its end
        (home / ".asoundrc").write_text(f'pcm.cabin {{\n type file\n slave.pcm "null"\n file "/dev/null"\n'
                                        f' infile "{raw}"\n format "raw"\n}}\n')
        before = os.environ.get("HOME")
        os.environ["HOME"] = str(home)  # arecord (a child) reads ~/.asoundrc
        yield
        os.environ["HOME"] = before

    def build(self, sink):
        return AudioSource("mic", sink, AudioSettings(device="cabin")), lambda: None

    def bad_source(self, sink):
        return AudioSource("mic", sink, AudioSettings(device="hw:9,9")), "hw:9,9"


class TestRealAudio(OnRealHardware, TestAudioOnTheVirtualCab):
    variable, scheme, name, example = "KEIDASH_TEST_AUDIO", "audio", "mic", "hw:1,0"


def test_a_wav_file_plays_as_a_source_through_the_rig(tmp_path):
    path = tmp_path / "cab.wav"
    write_wav(path, np.concatenate([cruising_sound(2.5), np.zeros(8000)]), rate=16000 // 2)
    rig = open_rig({"mic": f"audio://{path}"})
    rig.start()
    try:
        assert wait_for(lambda: rig.finished(), 15)
        readings = rig.bus.drain()
        status = rig.sources[0].status()
    finally:
        rig.stop()
    rpm = [r for r in readings if r.channel == RPM]
    assert len(rpm) >= 15 and all(abs(r.value - CRUISING.rpm) < 0.02 * CRUISING.rpm for r in rpm)
    assert all(r.sigma and 0 < r.sigma < 100 for r in rpm) and all(r.max_age == 0.5 for r in rpm)
    assert [r.t for r in rpm] == sorted(r.t for r in rpm)
    assert status.link == CONNECTED


def test_a_48_khz_stereo_file_is_decimated_and_its_channel_chosen(tmp_path):
    path = tmp_path / "stereo.wav"
    t = np.arange(3 * 48000) / 48000
    tone = 0.05 * sum(np.sin(2 * np.pi * k * 75.0 * t) / k for k in range(1, 7))  # 3000 rpm, 3 cylinders
    data = np.stack([0.01 * np.random.default_rng(1).standard_normal(len(t)), tone], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes((data * 32767).astype("<i2").tobytes())
    out = tmp_path / "out.csv"
    run = subprocess.run([sys.executable, "-m", "keidash", "listen", str(path), "--channel", "2", "--csv", str(out)],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert run.returncode == 0, run.stderr
    rpm = [float(r["rpm"]) for r in csv.DictReader(out.open()) if r["rpm"]]
    assert len(rpm) >= 20 and np.median(rpm) == pytest.approx(3000, rel=0.01)
    left = subprocess.run([sys.executable, "-m", "keidash", "listen", str(path), "--channel", "1", "--csv", str(out)],
                          capture_output=True, text=True, timeout=60, env=ENV)
    assert left.returncode == 0 and not [r for r in csv.DictReader(out.open()) if r["rpm"]]
    third = subprocess.run([sys.executable, "-m", "keidash", "listen", str(path), "--channel", "3"],
                           capture_output=True, text=True, timeout=60, env=ENV)
    assert third.returncode == 1 and "has 2 channel(s): channel 3 is not there" in third.stderr
    assert "Traceback" not in third.stderr


def test_listen_writes_ten_rows_a_second_with_the_rpm_empty_when_no_engine_is_heard(tmp_path):
    path = tmp_path / "cab.wav"
    write_wav(path, np.concatenate([cruising_sound(4), np.zeros(3 * 8000)]))
    out = tmp_path / "rpm.csv"
    run = subprocess.run([sys.executable, "-m", "keidash", "listen", str(path), "--csv", str(out)],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["t", "rpm", "confidence"]
    times = [float(r["t"]) for r in rows]
    assert len(rows) >= 8 * 6.5 and times[0] < 0.3 and 6.5 < times[-1] <= 7.0
    engine = [r for r in rows if float(r["t"]) < 3.7]
    quiet = [r for r in rows if float(r["t"]) > 4.3]
    assert sum(bool(r["rpm"]) for r in engine) >= len(engine) - 2
    assert all(abs(float(r["rpm"]) - CRUISING.rpm) < 0.02 * CRUISING.rpm for r in engine if r["rpm"])
    assert quiet and all(r["rpm"] == "" and float(r["confidence"]) == 0 for r in quiet)
    assert "rpm" in run.stdout and "silence" in run.stdout and "heard the engine in" in run.stdout


@NEEDS_ARECORD
def test_listen_on_a_missing_device_says_so_in_one_sentence():
    run = subprocess.run([sys.executable, "-m", "keidash", "listen", "hw:9,9", "--seconds", "2"],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("keidash: the capture device hw:9,9")
    assert not run.stderr.strip().endswith("retrying")  # listen does not retry: it stops and says why
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("args,expected", [
    (["--cylinders", "0"], "--cylinders: must be a positive whole number from 1 to 12 cylinders, not '0'"),
    (["--cylinders", "three"], "--cylinders: must be a positive whole number from 1 to 12 cylinders, not 'three'"),
    (["--strokes", "3"], "--strokes is 2 or 4"),
    (["--channel", "0"], "--channel: must be a positive whole number from 1 to 32 (1 = the first channel)"),
    (["--seconds", "nan"], "--seconds: must be a positive number up to 3,600 s, not 'nan'"),
])
def test_listen_checks_its_numbers(args, expected):
    run = subprocess.run([sys.executable, "-m", "keidash", "listen", "x.wav", *args],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert run.returncode == 2 and expected in run.stderr and "Traceback" not in run.stderr


def test_listen_on_a_missing_file_or_not_a_wav(tmp_path):
    run = subprocess.run([sys.executable, "-m", "keidash", "listen", str(tmp_path / "none.wav")],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert run.returncode == 2 and "no such file" in run.stderr
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav at all" * 10)
    run = subprocess.run([sys.executable, "-m", "keidash", "listen", str(junk)],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert run.returncode == 1 and "is not a PCM WAV file" in run.stderr and "Traceback" not in run.stderr


def _unprivileged() -> list[str]:
    """As root, the same user without the right to read others' files; else nothing to add."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv (util-linux) is missing, so no read can be denied")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_listen_on_a_folder_an_unreadable_or_empty_wav_or_an_unwritable_csv_says_one_sentence(tmp_path):
    def listen(*args, prefix=()):
        run = subprocess.run([*prefix, sys.executable, "-m", "keidash", "listen", *map(str, args)],
                             capture_output=True, text=True, timeout=60, env=ENV)
        assert "Traceback" not in run.stderr and "retrying" not in run.stderr, run.stderr
        return run.returncode, run.stderr.strip()  # one line: the source's own warning is not said too

    assert listen(tmp_path) == (2, f"keidash: {tmp_path} is a folder; name a WAV file in it")
    cab = tmp_path / "cab.wav"
    write_wav(cab, cruising_sound(1.0))
    assert listen(cab, "--csv", tmp_path / "gone" / "out.csv") == (
        2, f"keidash: --csv {tmp_path / 'gone' / 'out.csv'}: the folder {tmp_path / 'gone'} does not exist")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert listen(empty) == (1, f"keidash: {empty} is not a PCM WAV file keidash reads (it is empty or cut short)")
    secret = tmp_path / "secret.wav"
    write_wav(secret, cruising_sound(1.0))
    secret.chmod(0)
    assert listen(secret, prefix=_unprivileged()) == (2, f"keidash: cannot read {secret}: permission denied")
    short = tmp_path / "short.wav"  # a valid WAV of 0.1 s: was "no sound was read" and status 0
    write_wav(short, cruising_sound(0.1))
    assert listen(short) == (1, f"keidash: no sound was read from {short}: less than one 0.5 s window of it came "
                                "(a recording that short has nothing to hear)")


def test_a_wav_source_on_a_folder_fails_in_one_sentence(tmp_path):
    source = AudioSource("mic", lambda reading: None, AudioSettings(path=str(tmp_path)))
    source.start()
    try:
        assert wait_for(lambda: source.status().link == FAILED, 15)
        assert source.status().message.startswith(f"{tmp_path} is a folder; name a WAV file in it")
    finally:
        source.stop()


@pytest.mark.parametrize("url,expected", [
    ("audio://hw:1,0?cylinders=x", "cylinders must be a whole number"),
    ("audio://hw:1,0?cylinders=13", "cylinders is 1 to 12"),
    ("audio://hw:1,0?strokes=3", "strokes is 2 or 4"),
    ("audio://hw:1,0?signal=radio", "signal is engine"),
    ("audio://hw:1,0?signal=ripple", "needs factor="),
    ("audio://hw:1,0?factor=0", "factor is the ripple's Hz per rpm"),
    ("audio://hw:1,0?gain=3", "unknown option 'gain'"),
    ("audio://", "name a capture device or a file"),
])
def test_bad_audio_urls_get_one_sentence(url, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        open_rig({"mic": url})


def test_urls_name_devices_files_and_the_profiles_cylinders():
    assert parse_audio_url("audio://hw:1,0?cylinders=4&strokes=2").device == "hw:1,0"
    assert parse_audio_url("audio://default").device == "default"
    assert parse_audio_url("audio:///home/pi/cab.wav").path == "/home/pi/cab.wav"
    ripple = parse_audio_url("audio://hw:1,0?signal=ripple&factor=0.1")
    assert ripple.signal == "ripple" and ripple.hz_per_rpm == 0.1
    from keidash.profiles import load_profile
    rig = open_rig({"mic": "audio://hw:1,0"}, load_profile("sambar-ks4"))  # a four-cylinder Sambar
    assert rig.sources[0].settings.cylinders == 4


def test_the_virtual_truck_with_a_microphone_and_a_gps_only():
    # 20 s into its day the truck crawls along the farm track in 1st at a steady 2790 rpm
    rig = open_rig({"sim": "sim://hijet-s500p?hardware=audio,gps&skip=20"})
    assert [s.name for s in rig.sources] == ["gps", "mic"]
    rig.start()
    got = []
    try:
        def enough():
            got.extend(r for r in rig.bus.drain() if r.channel == RPM)
            return len(got) >= 30
        assert wait_for(enough, 30)
        truth = rig.truck.truth()
    finally:
        rig.stop()
    assert all(r.source == "mic" for r in got)
    assert abs(statistics.median(r.value for r in got[-20:]) - truth.rpm) < 0.03 * truth.rpm


def test_an_unplugged_microphone_is_a_failed_link_and_comes_back():
    mic = cabin.EmulatedCabin(lambda: parked())
    mic.start()
    source = AudioSource("mic", lambda r: None, AudioSettings(path=mic.path, raw=True))
    source.retry_s = 0.2
    source.start()
    try:
        assert wait_for(lambda: source.status().link == CONNECTED and source.status().readings > 3, 15)
        mic.unplugged = True
        assert wait_for(lambda: source.status().link == FAILED, 15)
        assert "stream ended" in source.status().message
        mic.unplugged = False
        count = source.status().readings
        assert wait_for(lambda: source.status().readings > count + 3, 15)
    finally:
        source.stop()
        mic.stop()


def test_ripple_mode_reads_the_alternators_ripple_at_its_factor(tmp_path):
    # a 6-pulse rectifier's ripple at 1.38 Hz per rpm (pulley 2.3 x 6 pole pairs x 6 pulses / 60),
    # 50 mV after the ripple lead's divider, at 48 kHz: 850 rpm idle, then 3000 rpm
    rate = 48000
    t = np.arange(6 * rate) / rate
    rpm = np.where(t < 3, 850.0, 3000.0)
    phase = 2 * np.pi * np.cumsum(rpm * 1.38) / rate
    ripple = 0.05 * (np.abs(np.sin(phase / 2)) - 0.63) + 0.003 * np.random.default_rng(0).standard_normal(len(t))
    path = tmp_path / "ripple.wav"
    write_wav(path, ripple, rate=rate)
    out = tmp_path / "rpm.csv"
    run = subprocess.run([sys.executable, "-m", "keidash", "listen", f"audio://{path}?signal=ripple&factor=1.38",
                          "--csv", str(out)], capture_output=True, text=True, timeout=60, env=ENV)
    assert run.returncode == 0, run.stderr
    rows = [(float(r["t"]), float(r["rpm"])) for r in csv.DictReader(out.open()) if r["rpm"]]
    idle = [v for t_, v in rows if t_ < 2.7]
    fast = [v for t_, v in rows if t_ > 3.3]
    assert len(idle) > 15 and all(abs(v - 850) < 0.02 * 850 for v in idle)
    assert len(fast) > 15 and all(abs(v - 3000) < 0.02 * 3000 for v in fast)


def _alsa_home(home, samples) -> None:
    raw = home / "cab.s16"
    raw.write_bytes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    (home / ".asoundrc").write_text(f'pcm.cabin {{\n type file\n slave.pcm "null"\n file "/dev/null"\n'
                                    f' infile "{raw}"\n format "raw"\n}}\n')


@NEEDS_ARECORD
def test_doctor_hears_the_idle_through_the_capture_device(tmp_path, monkeypatch):
    from keidash.pi.doctor.ports import check_audio
    idle = cabin.cabin_recording(cabin.scripted(cabin.IDLE_800))
    _alsa_home(tmp_path, np.tile(idle, 20))
    monkeypatch.setenv("HOME", str(tmp_path))
    [check] = check_audio({"mic": "audio://cabin"}, 10.0)
    assert check.ok and not check.skipped, check
    assert check.message.startswith("mic cabin hears the engine at ") and " rpm (" in check.message
    rpm = float(check.message.split(" at ")[1].split()[0])
    assert abs(rpm - 800) < 0.03 * 800


@NEEDS_ARECORD
def test_doctor_says_what_to_do_about_silence_and_a_missing_card(tmp_path, monkeypatch):
    from keidash.pi.doctor.ports import check_audio
    _alsa_home(tmp_path, np.zeros(8000 * 200))
    monkeypatch.setenv("HOME", str(tmp_path))
    [quiet] = check_audio({"mic": "audio://cabin"}, 3.0)
    assert not quiet.ok and quiet.message == "mic cabin: silence for 3 s" and "alsamixer" in quiet.fix
    [missing] = check_audio({"mic": "audio://hw:9,9"}, 3.0)
    assert not missing.ok and missing.message.startswith("mic hw:9,9: the capture device hw:9,9")
    assert "arecord -l" in missing.fix
    [skipped] = check_audio({"gps": "nmea:///dev/serial0", "replay": "audio:///x.wav"}, 3.0)
    assert skipped.skipped and "no audio:// capture device" in skipped.message


def test_replay_plays_a_cab_recording_in_step_with_a_log(tmp_path):
    import sqlite3
    drive = tmp_path / "drive.csv"
    # a 6 s log of a truck cruising at 48 km/h with no rpm column, and the cab's sound of it
    drive.write_text("time,speed_kmh\n" + "".join(f"{i / 5:.1f},48\n" for i in range(31)))
    wav = tmp_path / "cab.wav"
    write_wav(wav, cruising_sound(6))
    trips = tmp_path / "trips.db"
    run = subprocess.run([sys.executable, "-m", "keidash", "replay", str(drive), "--audio", str(wav), "--headless",
                          "--seconds", "5", "--log", str(trips), "--fps", "10"],
                         capture_output=True, text=True, timeout=90, env=ENV)
    assert run.returncode == 0, run.stderr
    rows = sqlite3.connect(trips).execute(
        "SELECT t, value FROM readings WHERE source = 'mic' AND channel = 'rpm' ORDER BY t").fetchall()
    assert len(rows) >= 20 and all(abs(v - CRUISING.rpm) < 0.02 * CRUISING.rpm for _, v in rows)
    speeds = sqlite3.connect(trips).execute("SELECT COUNT(*) FROM readings WHERE source = 'replay'").fetchone()[0]
    assert speeds >= 15
    fast = subprocess.run([sys.executable, "-m", "keidash", "replay", str(drive), "--audio", str(wav), "--speed", "5"],
                          capture_output=True, text=True, timeout=60, env=ENV)
    assert fast.returncode == 2 and "--audio plays the recording in real time" in fast.stderr


def test_replay_audio_that_is_a_folder_or_unreadable_says_so(tmp_path):
    drive = tmp_path / "drive.csv"
    drive.write_text("time,speed_kmh\n" + "".join(f"{i / 5:.1f},48\n" for i in range(31)))

    def replay(audio, prefix=()):
        run = subprocess.run([*prefix, sys.executable, "-m", "keidash", "replay", str(drive), "--audio", str(audio),
                              "--seconds", "1"], capture_output=True, text=True, timeout=60, env=ENV)
        return run.returncode, run.stderr.strip()

    # was "no such file"
    assert replay(tmp_path) == (2, f"keidash: --audio {tmp_path} is a folder; name the WAV file in it")
    secret = tmp_path / "cab.wav"
    write_wav(secret, cruising_sound(1.0))
    secret.chmod(0)
    assert replay(secret, _unprivileged()) == (2, f"keidash: --audio {secret}: cannot read it (permission denied)")


def ripple_wav(path, rpm: float, seconds: float, factor: float = 1.38, rate: int = 48000) -> None:
    """A 6-pulse rectifier's ripple at ``factor`` Hz per rpm, 50 mV after the lead's divider."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * rpm * factor * t
    write_wav(path, 0.05 * (np.abs(np.sin(phase / 2)) - 0.63)
              + 0.003 * np.random.default_rng(0).standard_normal(len(t)), rate=rate)


def test_the_ripples_factor_is_learned_against_another_rpm_source_and_kept(tmp_path):
    from keidash.sources.audio import RIPPLE_FACTOR_FILE, read_ripple_record
    from keidash.sources.note import RippleFactor
    wav = tmp_path / "ripple.wav"
    ripple_wav(wav, 850.0, 8.0)
    data = tmp_path / "data"
    settings = AudioSettings(path=str(wav), signal="ripple", pace=False, data_dir=str(data))
    got = []
    learning = AudioSource("mic", got.append, settings, reference=lambda t: 850.0)  # the coil tach, say
    learning.start()
    try:
        assert wait_for(lambda: learning.finished.is_set(), 60)
    finally:
        learning.stop()
    assert read_ripple_record(str(data / RIPPLE_FACTOR_FILE))[0] == pytest.approx(1.38, rel=0.005)
    assert len(got) >= 20 and all(abs(r.value - 850) < 0.01 * 850 for r in got)
    # the next drive starts with the kept factor: no reference needed, rpm from the first windows
    again = []
    kept = AudioSource("mic", again.append, replace(settings, data_dir=str(data)))
    kept.start()
    try:
        assert wait_for(lambda: kept.finished.is_set(), 60)
    finally:
        kept.stop()
    assert len(again) >= 60 and all(abs(r.value - 850) < 0.01 * 850 for r in again)
    # pairs that disagree (a reference from another moment) never make a factor
    noisy = RippleFactor()
    for i in range(100):
        noisy.add(1173.0, 850.0 * (1.2 if i % 2 else 0.9))
    assert noisy.factor() is None
    # no factor, no reference to learn against: one sentence
    with pytest.raises(ConfigError, match="needs factor="):
        AudioSource("mic", lambda r: None, replace(settings, data_dir=str(tmp_path / "empty")))
    rig = open_rig({"mic": f"audio://{wav}?signal=ripple", "obd": "obd:///dev/ttyUSB0"}, data_dir=str(tmp_path / "e"))
    assert rig.sources[0].settings.hz_per_rpm is None  # learning against the OBD source


def test_the_gear_constraint_takes_the_ratios_the_estimator_uses(tmp_path):
    """A truck whose profile has no ratios, parked, engine off, the radio on. Free (no ratios known
    yet), the radio's bass line is heard as an engine; once the frame loop hands the rig the ratios
    the estimator learned live (Rig.know_truck), the gear constraint takes them and hears none."""
    import threading
    import time

    from keidash.profiles import load_profile
    from keidash.readings import SPEED, Reading
    wav = tmp_path / "radio.wav"
    write_wav(wav, cabin.cabin_recording(cabin.scripted([(0.0, 0, 0, 0, 0), (6.0, 0, 0, 0, 0)]),
                                         cabin.CASES["radio louder than the engine"]))
    no_ratios = replace(load_profile("hijet-s500p"), gear_ratios=(), final_drive=None)
    learned = load_profile("hijet-s500p").rpm_per_kmh()  # what live learning finds (tests/test_audio_fusion.py)

    def rpm_readings(ratios) -> int:
        rig = open_rig({"mic": f"audio://{wav}"}, no_ratios)
        if ratios:
            rig.know_truck(ratios)
        stop = threading.Event()

        def gps():  # a parked truck's GPS, 5 Hz
            while not stop.wait(0.2):
                rig.put(Reading(time.monotonic(), SPEED, 0.0, "gps", 1.0))
        feeder = threading.Thread(target=gps, daemon=True)
        feeder.start()
        rig.start()
        try:
            assert wait_for(lambda: rig.sources[0].finished.is_set(), 60)
        finally:
            stop.set()
            rig.stop()
            feeder.join()
        return sum(r.channel == RPM for r in rig.bus.drain())

    assert rpm_readings(()) >= 20  # the radio taken for an engine
    assert rpm_readings(learned) == 0


def ripple_drive(idle: float = 850.0):
    """A Hijet's 44 s through the ripple lead: idling at a standstill, away in 1st, steady in 2nd,
    3rd and 4th (with the clutch dips between), braking to a stop, idling again."""
    from keidash.profiles import load_profile
    r = load_profile("hijet-s500p").rpm_per_kmh()
    return cabin.scripted([
        (0, idle, 0, 0, 0), (8, idle, 0, 0, 0), (10, 2500, 12, 1, 40), (11, 16 * r[1], 16, 0, 0),
        (12, 20 * r[1], 20, 2, 30), (18, 20 * r[1], 20, 2, 30), (19, 33 * r[2], 33, 0, 0), (20, 35 * r[2], 35, 3, 30),
        (26, 35 * r[2], 35, 3, 30), (27, 48 * r[3], 48, 0, 0), (28, 50 * r[3], 50, 4, 30), (34, 50 * r[3], 50, 4, 30),
        (38, idle, 0, 0, 0), (44, idle, 0, 0, 0)])


def hear_the_ripple(tmp_path, truths, ratios, idle_known: bool, data: str, judged_from: float = 0.0):
    """The ripple lead's WAV through AudioSource with no factor and no other rpm source, a GPS's
    speed from the drive's truth as the rig hands it (Rig.gear_hint): (readings, source). The
    windows read from ``judged_from`` s on are the truck's rpm."""
    import time

    from keidash.sources.note import GearHint
    wav = tmp_path / "ripple-drive.wav"
    write_wav(wav, cabin.ripple_recording(truths), rate=48000)
    t = np.array([tr.t for tr in truths])
    speed = np.array([tr.speed_kmh for tr in truths])
    settings = AudioSettings(path=str(wav), signal="ripple", pace=False, data_dir=data)
    start = time.monotonic()  # the WAV's first sample is stamped when the source opens it, ms later
    got, heard = [], []
    lead = AudioSource("lead", got.append, settings, on_estimate=heard.append,
                       hint=lambda at: GearHint(float(np.interp(at - start, t, speed)), ratios, 850.0, idle_known))
    lead.said = set()  # what its status said on the way (the dash's source line)

    def finished() -> bool:
        lead.said.add(lead.status().message)
        return lead.finished.is_set()
    lead.start()
    try:
        assert wait_for(finished, 60)
    finally:
        lead.stop()
    # what is read once the factor is learned is the truck's rpm (estimates on the sample clock,
    # seconds from the first sample, which goes on through the learning)
    assert len(heard) == len(got) or any(e.rpm is None for e in heard)
    rpm = np.array([tr.rpm for tr in truths])
    judged = [e for e in heard if e.t >= judged_from]
    off = [(e.t, e.rpm) for e in judged if e.rpm is not None and abs(e.rpm / np.interp(e.t, t, rpm) - 1) > 0.03]
    assert len(off) <= 0.03 * len(judged), off[:5]
    return got, lead


def test_the_ripples_factor_is_learned_from_the_gears_with_a_gps_only(tmp_path):
    from keidash.profiles import load_profile
    from keidash.sources.audio import RIPPLE_FACTOR_FILE, read_ripple_record
    data = tmp_path / "data"
    # the idle is 760 rpm, not keidash's default 850: the gears' rpm per km/h set the factor
    got, lead = hear_the_ripple(tmp_path, ripple_drive(idle=760.0), load_profile("hijet-s500p").rpm_per_kmh(),
                                idle_known=False, data=str(data))
    assert read_ripple_record(str(data / RIPPLE_FACTOR_FILE))[0] == pytest.approx(cabin.RIPPLE_HZ_PER_RPM, rel=0.005)
    assert "the gears" in (data / RIPPLE_FACTOR_FILE).read_text()
    assert "learning the ripple's factor: drive steadily in two gears or more" in lead.said
    assert len(got) >= 60  # the rest of the drive (the 4th gear, the stop, the idle) reads rpm


def test_the_ripples_factor_is_learned_from_a_known_idle_when_no_ratios_are(tmp_path):
    from keidash.sources.audio import RIPPLE_FACTOR_FILE, read_ripple_record
    data = tmp_path / "data"
    got, _ = hear_the_ripple(tmp_path, ripple_drive(idle=850.0), (), idle_known=True, data=str(data))
    assert read_ripple_record(str(data / RIPPLE_FACTOR_FILE))[0] == pytest.approx(cabin.RIPPLE_HZ_PER_RPM, rel=0.01)
    assert "the idle" in (data / RIPPLE_FACTOR_FILE).read_text()
    assert len(got) >= 200  # learned at the first stop: the whole drive after it reads rpm


@pytest.mark.parametrize("learned_from", ["the idle", None])
def test_a_kept_ripple_factor_that_is_off_is_refined_from_the_gears(tmp_path, learned_from):
    """A factor kept from an earlier drive 5 % high (learned from a cold engine's fast idle, or by
    a keidash that did not say from what) is put right by the gears as the truck drives, and kept."""
    import json

    from keidash.profiles import load_profile
    from keidash.sources.audio import RIPPLE_FACTOR_FILE, read_ripple_record
    data = tmp_path / "data"
    data.mkdir()
    kept = {"hz_per_rpm": cabin.RIPPLE_HZ_PER_RPM * 1.05, **({"learned_from": learned_from} if learned_from else {})}
    (data / RIPPLE_FACTOR_FILE).write_text(json.dumps(kept))
    got, _ = hear_the_ripple(tmp_path, ripple_drive(idle=760.0), load_profile("hijet-s500p").rpm_per_kmh(),
                             idle_known=False, data=str(data), judged_from=30.0)
    factor, how = read_ripple_record(str(data / RIPPLE_FACTOR_FILE))
    assert factor == pytest.approx(cabin.RIPPLE_HZ_PER_RPM, rel=0.005) and how == "the gears"


@pytest.mark.parametrize("kept, learned_from", [(1.0, "the gears"), (1.05, "another rpm source")])
def test_a_kept_ripple_factor_is_left_alone_when_right_or_learned_from_a_better_source(tmp_path, kept,
                                                                                       learned_from):
    """The gears agree with a right factor (within REFINE_BY): the file is not touched. A factor
    measured against another rpm source is not overruled by the gears (the profile's ratios may be
    another truck's)."""
    import json

    from keidash.profiles import load_profile
    from keidash.sources.audio import RIPPLE_FACTOR_FILE
    data = tmp_path / "data"
    data.mkdir()
    written = json.dumps({"hz_per_rpm": cabin.RIPPLE_HZ_PER_RPM * kept, "learned_from": learned_from})
    (data / RIPPLE_FACTOR_FILE).write_text(written)
    truths = ripple_drive(idle=760.0)
    if kept == 1.0:
        hear_the_ripple(tmp_path, truths, load_profile("hijet-s500p").rpm_per_kmh(), idle_known=False, data=str(data))
    else:  # read 5 % low all the way, as measured
        with pytest.raises(AssertionError):
            hear_the_ripple(tmp_path, truths, load_profile("hijet-s500p").rpm_per_kmh(), idle_known=False,
                            data=str(data), judged_from=30.0)
    assert (data / RIPPLE_FACTOR_FILE).read_text() == written


def test_the_ripple_factor_check_trusts_only_as_much_as_it_learned_from():
    """FactorCheck, pure: a factor from the idle is put right by a known idle or by another
    source's rpm; one from another source only by another source; under REFINE_BY nothing."""
    from keidash.sources.note import REFINE_BY, FactorCheck, GearHint
    true, idle = 1.38, 800.0

    def standstill(check, current, reference=None, known=True):
        found = None
        for i in range(200):
            found = check.check(i / 10, idle * true, current, reference, GearHint(0.0, (), idle, known)) or found
        return found
    assert standstill(FactorCheck("the idle"), true * 1.3) == (pytest.approx(true), "the idle")
    assert standstill(FactorCheck(None), true * 1.3) == (pytest.approx(true), "the idle")
    assert standstill(FactorCheck("the gears"), true * 1.3) is None  # the idle is less sure than the gears
    assert standstill(FactorCheck("the idle"), true * 1.3, known=False) is None  # 700-1000 rpm says little
    assert standstill(FactorCheck("the idle"), true * (1 + REFINE_BY / 2)) is None
    assert standstill(FactorCheck("another rpm source"), true * 1.3) is None
    assert standstill(FactorCheck("another rpm source"), true * 1.3, reference=idle) == \
        (pytest.approx(true), "another rpm source")


def test_the_ripple_lead_says_what_its_factor_waits_for(tmp_path):
    from keidash.sources.note import WAIT_KNOWLEDGE, RippleFromTruck
    data = tmp_path / "data"
    # no ratios, the idle only keidash's default: the idle's line alone cannot tell 700 from 1000 rpm
    got, lead = hear_the_ripple(tmp_path, ripple_drive(), (), idle_known=False, data=str(data))
    assert got == [] and not (data / "ripple-factor.json").exists()
    assert f"learning the ripple's factor: {WAIT_KNOWLEDGE}" in lead.said
    # one gear alone lays on any gear: no factor until a second gear is heard
    one_gear = RippleFromTruck()
    for i in range(300):
        one_gear.add(i / 10, 1.38 * 50 * 68.73, 50.0)
    assert one_gear.factor((278.96, 164.19, 113.12, 68.73, 51.0), None, False) is None
    # in a config: the lead alone learns with data_dir (from the GPS's speed), without it says so
    wav = tmp_path / "ripple-drive.wav"
    assert open_rig({"mic": f"audio://{wav}?signal=ripple", "gps": "nmea:///dev/ttyUSB0"},
                    data_dir=str(tmp_path / "kept")).sources[0].settings.hz_per_rpm is None
    with pytest.raises(ConfigError, match="needs factor=.*or data_dir"):
        open_rig({"mic": f"audio://{wav}?signal=ripple", "gps": "nmea:///dev/ttyUSB0"})


def test_the_rig_hands_the_note_the_estimators_ratios_and_idle():
    """Rig.gear_hint: the latest road speed with the ratios and idle the estimator uses (handed
    over by the frame loop), the profile's until then; nothing without a fresh speed."""
    import time

    from keidash.profiles import load_profile
    from keidash.readings import SPEED, Reading
    hijet = load_profile("hijet-s500p")
    no_ratios = replace(hijet, gear_ratios=(), final_drive=None)
    rig = open_rig({"mic": "audio:///nowhere.wav"}, no_ratios)
    hint = rig.gear_hint(no_ratios)
    now = time.monotonic()
    assert hint(now) is None  # no road speed yet
    rig.put(Reading(now, SPEED, 42.0, "gps", 1.0))
    first = hint(now + 0.5)
    assert first.speed_kmh == 42.0 and first.rpm_per_kmh == () and not first.idle_known
    rig.know_truck(hijet.rpm_per_kmh())  # learned live
    rig.know_idle(780.0, known=True)  # the owner's idle
    later = hint(now + 0.5)
    assert later.rpm_per_kmh == hijet.rpm_per_kmh() and later.idle_rpm == 780.0 and later.idle_known
    assert hint(now + 5.0) is None  # the speed is stale
    # a profile with sourced ratios gives them before the estimator says anything
    assert open_rig({"mic": "audio:///nowhere.wav"}, hijet).gear_hint(hijet)(now + 0.5) is None
    sourced = open_rig({"mic": "audio:///nowhere.wav"}, hijet)
    sourced.put(Reading(now, SPEED, 42.0, "gps", 1.0))
    assert sourced.gear_hint(hijet)(now).rpm_per_kmh == hijet.rpm_per_kmh()
