"""The backlight against a fake sysfs backlight class in a temporary directory."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

from as_nobody import nobody_prefix

import keidash.outputs.backlight as backlight_module
from keidash.dashstate import DashState
from keidash.outputs.backlight import Backlight, find_backlight, scaled

REPO = str(Path(__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": REPO}


def dash(night: bool, t: float = 0.0) -> DashState:
    return DashState(t=t, profile_title="test", rpm=None, rpm_estimated=False, speed_kmh=None, gear=None,
                     cue=None, upshift_rpm=4800.0, redline_rpm=5700.0, tach_max_rpm=7000.0, night=night)


def fake_device(root, name: str = "10-0045", max_brightness: int = 255, brightness: int = 255) -> str:
    device = root / name
    device.mkdir(parents=True)
    (device / "max_brightness").write_text(f"{max_brightness}\n")
    (device / "brightness").write_text(f"{brightness}\n")
    (device / "actual_brightness").write_text(f"{brightness}\n")
    return str(device)


def brightness(device: str) -> str:
    with open(os.path.join(device, "brightness")) as f:
        return f.read().strip()


def test_finds_the_device_whatever_its_name(tmp_path, monkeypatch):
    root = tmp_path / "backlight"
    device = fake_device(root, "rpi_backlight")
    (root / "not-a-device").mkdir()
    assert find_backlight(str(root)) == device
    monkeypatch.setattr(backlight_module, "SYSFS_BACKLIGHT", str(root))
    assert Backlight().path == device


def test_writes_day_and_night_only_when_the_theme_changes(tmp_path):
    device = fake_device(tmp_path, brightness=128)
    light = Backlight(device, day=255, night=40)
    assert light.available and brightness(device) == "128"  # nothing written before the first frame
    light.render(dash(False))
    assert brightness(device) == "255"
    light.render(dash(True, 1.0))
    assert brightness(device) == "40"
    (tmp_path / "10-0045" / "brightness").write_text("7\n")  # someone else set it
    for t in range(2, 10):
        light.render(dash(True, float(t)))
    assert brightness(device) == "7"  # same theme: not rewritten every frame
    light.render(dash(False, 10.0))
    assert brightness(device) == "255"


def test_levels_are_scaled_to_max_brightness(tmp_path):
    device = fake_device(tmp_path, max_brightness=31, brightness=31)
    light = Backlight(device, day=255, night=40)
    light.render(dash(True))
    assert brightness(device) == str(round(40 * 31 / 255)) == "5"
    light.render(dash(False))
    assert brightness(device) == "31"
    assert scaled(-5, 100) == 0 and scaled(999, 100) == 100


def test_no_device_is_one_log_line_and_no_error(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(backlight_module, "SYSFS_BACKLIGHT", str(tmp_path / "absent"))
    with caplog.at_level(logging.INFO):
        light = Backlight()
        for t in range(5):
            light.render(dash(t % 2 == 0, float(t)))
    assert not light.available and light.path is None
    assert len(caplog.records) == 1 and "no display backlight found" in caplog.text


def test_a_broken_device_is_one_log_line_and_no_error(tmp_path, caplog):
    device = fake_device(tmp_path)
    os.remove(os.path.join(device, "brightness"))
    os.mkdir(os.path.join(device, "brightness"))  # writing it now fails (EISDIR), even for root
    with caplog.at_level(logging.INFO):
        light = Backlight(device)
        for t in range(5):
            light.render(dash(t % 2 == 0, float(t)))
    assert not light.available
    assert len(caplog.records) == 1 and "cannot write the backlight" in caplog.text


PERMISSION_PROBE = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from keidash.outputs.backlight import Backlight
    from keidash.dashstate import DashState
    light = Backlight(sys.argv[1])
    light.render(DashState(t=0.0, profile_title="t", rpm=None, rpm_estimated=False, speed_kmh=None,
                           gear=None, cue=None, upshift_rpm=1.0, redline_rpm=1.0, tach_max_rpm=1.0, night=True))
    print("available", light.available)
""")


def test_permission_denied_says_to_add_the_udev_rule_and_the_video_group(tmp_path, caplog):
    if os.geteuid() != 0:
        device = fake_device(tmp_path)
        os.chmod(os.path.join(device, "brightness"), 0o444)  # as sysfs ships it to a user: not writable
        with caplog.at_level(logging.INFO):
            light = Backlight(device)
            light.render(dash(True))
        assert not light.available and brightness(device) == "255"
        lines = [record.getMessage() for record in caplog.records]
    else:
        # root writes anything: run the probe as nobody, in a directory nobody can reach
        prefix = nobody_prefix()
        top = tempfile.mkdtemp(prefix="keidash-backlight-")
        try:
            os.chmod(top, 0o755)
            device = fake_device(Path(top))
            os.chmod(device, 0o755)
            for name in ("brightness", "max_brightness", "actual_brightness"):
                os.chmod(os.path.join(device, name), 0o644)  # root's, as sysfs has them: nobody cannot write
            out = subprocess.run(prefix + ["-c", PERMISSION_PROBE, device],
                                 capture_output=True, text=True, timeout=60, env=ENV)
            assert brightness(device) == "255"
        finally:
            shutil.rmtree(top)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        lines = out.stdout.strip().splitlines()
        assert lines.pop() == "available False"
    assert len(lines) == 1  # one message
    assert "permission denied" in lines[0] and "udev rule" in lines[0] and "video group" in lines[0]
