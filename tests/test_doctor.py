"""keidash doctor: each check on a machine the test describes, each failure with its fix sentence."""

from __future__ import annotations

import dataclasses
import grp
import json
import os
import subprocess
import tempfile
import textwrap
import tty

import pytest
from as_nobody import nobody_prefix

from keidash.pi import doctor
from keidash.pi.doctor import board, ports
from keidash.pi.doctor import (Check, check_adapter, check_config, check_disk, check_display,
                            check_gpio, check_gps, check_groups, check_serial, doctor_main, run_checks)
from keidash.pi.doctor.base import can_read_write
from keidash.sim.elm327 import EmulatedELM327
from keidash.sim.nmea import EmulatedGPS
from keidash.sim.truth import parked

DRIVING = dataclasses.replace(parked(), rpm=1726.0, speed_kmh=42.0, throttle_pct=33.0, gear=3)
NOBODY = 65534


class Clock:
    """A truth whose time runs (each GPS epoch is a new fix) at 42 km/h."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 0.2
        return dataclasses.replace(parked(self.t), speed_kmh=42.0)


def write_config(tmp_path, body: str, name="truck.toml") -> str:
    path = tmp_path / name
    path.write_text('profile = "hijet-s500p"\n' + textwrap.dedent(body))
    return str(path)


@pytest.fixture
def mock_gpio(monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")


@pytest.fixture
def headless(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


def run_as_nobody(code: str) -> str:
    """Run python ``code`` as user nobody (root opens anything) and return what it printed."""
    out = subprocess.run(nobody_prefix() + ["-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def locked_file():
    """A file nobody but its owner may open (mode 000), where any user can see it exists."""
    fd, path = tempfile.mkstemp(prefix="keidash-doctor-tty", dir="/tmp")
    os.close(fd)
    os.chmod(path, 0)
    yield path
    os.remove(path)


# -- the whole run ------------------------------------------------------------------

def test_a_virtual_truck_with_mock_gpio_passes(tmp_path, mock_gpio, headless, monkeypatch, capsys):
    path = write_config(tmp_path, f"""
        data_dir = "{tmp_path}"
        [sources]
        truck = "sim://hijet-s500p"
        [lights]
        bar = [5, 6, 13, 19, 26]
        buzzer = 12
        [button]
        pin = 16
        [night]
        switch = 20
    """)
    checks = run_checks(path, 1.0)
    by_name = {c.name: c for c in checks}
    assert list(by_name) == ["config", "serial", "adapter", "gps", "audio", "gpio", "display", "groups", "disk"]
    assert by_name["config"].status == "ok" and path in by_name["config"].message
    assert [by_name[n].status for n in ("serial", "adapter", "gps")] == ["skip"] * 3
    assert by_name["gpio"].status == "ok"
    assert "16 ([button] pin)" in by_name["gpio"].message and "20 ([night] switch)" in by_name["gpio"].message
    assert by_name["display"].status == "skip" and "dummy" in by_name["display"].message
    assert by_name["disk"].status == "ok" and str(tmp_path) in by_name["disk"].message
    assert list(tmp_path.iterdir()) == [tmp_path / "truck.toml"]  # the test file was removed
    # The user's groups depend on the machine running the tests (checked below): take them as fine.
    monkeypatch.setattr(doctor, "check_groups", lambda: Check("groups", True, "in every group"))
    assert doctor_main(path, 1.0) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"ok   config: {path} (1 sources: truck)"
    assert "skip serial: no obd:// or nmea:// source in the config" in out and "FAIL" not in out


def test_a_missing_adapter_fails_with_its_fix_and_is_not_probed(tmp_path, mock_gpio, headless, capsys):
    path = write_config(tmp_path, """
        [sources]
        obd = "obd:///dev/ttyUSB-keidash-missing?protocol=5"
    """)
    assert doctor_main(path, 5.0) == 1
    out = capsys.readouterr().out
    assert ("FAIL serial: obd /dev/ttyUSB-keidash-missing does not exist: plug the ELM327 in "
            "(lsusb should list it), or fix the obd URL") in out
    assert "skip adapter: obd /dev/ttyUSB-keidash-missing cannot be opened (see serial)" in out
    assert "Traceback" not in out


def test_a_bad_config_fails_with_its_sentence_and_the_rest_is_skipped(tmp_path, headless, capsys):
    path = write_config(tmp_path, """
        [sources]
        gps = "nmea:///dev/serial0"
        [display]
        brightness = 3
    """)
    assert doctor_main(path) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"FAIL config: {path} [display]: unknown key 'brightness'; allowed: ")
    assert lines[0].endswith(": fix the config file (docs/config.md lists every key)")
    assert lines[1:6] == [f"skip {name}: no config loaded" for name in ("serial", "adapter", "gps", "audio", "gpio")]


def test_a_bad_source_url_fails_the_config_check(tmp_path):
    path = write_config(tmp_path, """
        [sources]
        obd = "obd:///dev/ttyUSB0?protocol=12"
    """)
    check, _ = check_config(path)
    assert not check.ok and "protocol must be auto or 1-9/A" in check.message
    assert check.fix.startswith("fix that source's URL")


def test_no_config_at_all_says_where_to_put_one():
    check, config = check_config(None)
    assert config is None and not check.ok and "/etc/keidash/config.toml" in check.fix


def test_json_output_parses_and_matches_the_exit_status(tmp_path, headless, capsys):
    path = write_config(tmp_path, """
        [sources]
        obd = "obd:///dev/ttyUSB-keidash-missing"
    """)
    assert doctor_main(path, 1.0, json_out=True) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["config"] == path and report["failed"] >= 1
    serial = next(c for c in report["checks"] if c["name"] == "serial")
    assert serial["status"] == "FAIL" and serial["subject"] == "/dev/ttyUSB-keidash-missing"
    assert {c["status"] for c in report["checks"]} <= {"ok", "FAIL", "skip"}


def test_a_check_that_breaks_is_a_fail_line_not_a_traceback(tmp_path, headless, monkeypatch, capsys):
    path = write_config(tmp_path, '[sources]\ntruck = "sim://hijet-s500p"\n')

    def broken(data_dir):
        raise RuntimeError("boom")
    monkeypatch.setattr(doctor, "check_disk", broken)
    assert doctor_main(path) == 1
    out = capsys.readouterr().out
    assert ("FAIL disk: the check itself failed: RuntimeError: boom: please report this line as a keidash bug"
            in out.splitlines())


# -- serial ports ------------------------------------------------------------------

@pytest.mark.parametrize("url, fix", [
    ("nmea:///dev/serial0", "enable the UART with sudo raspi-config nonint do_serial_hw 0 and "
                            "sudo raspi-config nonint do_serial_cons 1, then reboot"),
    ("obd:///dev/rfcomm7", "bind the paired Bluetooth adapter with sudo rfcomm bind 7 <its address>"),
    ("nmea:///dev/ttyACM9", "plug the GPS in (lsusb should list it), or fix the nmea URL"),
])
def test_each_kind_of_missing_port_gets_its_own_fix(url, fix):
    device = url.split("://", 1)[1]
    if os.path.exists(device):
        pytest.skip(f"{device} exists on this machine")
    [check] = check_serial({"src": url})
    assert not check.ok and check.message == f"src {device} does not exist"
    assert check.fix.startswith(fix)


def test_a_network_adapter_has_no_port_to_check():
    [check] = check_serial({"obd": "obd://socket://192.168.0.10:35000"})
    assert check.skipped and "socket://192.168.0.10:35000" in check.message


def test_a_device_this_user_may_not_open_fails_with_the_usermod_fix(locked_file):
    url = f"obd://{locked_file}"
    if os.geteuid() != 0:
        [check] = check_serial({"obd": url})
        line = check.line()
    else:  # root opens anything: run the check as nobody
        line = run_as_nobody(f"from keidash.pi.doctor import check_serial; "
                             f"print(check_serial({{'obd': {url!r}}})[0].line())")
    group = grp.getgrgid(os.stat(locked_file).st_gid).gr_name
    assert line == (f"FAIL serial: obd {locked_file}: this user may not read and write it (group {group}): "
                    f"sudo usermod -aG {group} $USER, then log out and in again (or reboot)")


def test_as_root_the_service_user_is_checked_instead(locked_file):
    [check] = check_serial({"obd": f"obd://{locked_file}"}, euid=0, service_user="nobody")
    group = grp.getgrgid(os.stat(locked_file).st_gid).gr_name
    assert not check.ok
    assert check.message.endswith(f"the nobody user (the service's) may not read and write it (group {group})")
    assert check.fix.startswith(f"sudo usermod -aG {group} nobody")
    os.chmod(locked_file, 0o666)
    [check] = check_serial({"obd": f"obd://{locked_file}"}, euid=0, service_user="nobody")
    assert check.ok and check.message.endswith("present, readable and writable by nobody")


def test_read_write_permission_by_mode_bits(locked_file):
    owner, group = os.stat(locked_file).st_uid, os.stat(locked_file).st_gid
    stranger = 4_000_000  # a user id and group id nothing here has
    os.chmod(locked_file, 0o660)
    assert can_read_write(locked_file, owner, set())
    assert not can_read_write(locked_file, stranger, {stranger})
    assert can_read_write(locked_file, stranger, {group})  # in the device's group
    os.chmod(locked_file, 0o664)  # others may read, not write
    assert not can_read_write(locked_file, stranger, set())
    os.chmod(locked_file, 0o606)  # the group may not, others may
    assert not can_read_write(locked_file, stranger, {group}) and can_read_write(locked_file, stranger, set())


def test_a_serial_console_on_the_uart_is_found(tmp_path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=serial0,115200 console=tty1 root=PARTUUID=1 rootwait\n")
    assert ports._console_on(str(cmdline)) == "serial0"
    cmdline.write_text("console=tty1 root=PARTUUID=1 rootwait\n")
    assert ports._console_on(str(cmdline)) is None


# -- the adapter and the GPS ----------------------------------------------------------

def test_the_emulated_elm327_answers():
    with EmulatedELM327(lambda: DRIVING, "6") as emu:
        [check] = check_adapter({"obd": f"obd://{emu.port}?protocol=6"}, 2.0)
    assert check.ok and check.message.startswith(f"obd {emu.port} answers: rpm ")


def test_a_silent_adapter_fails_within_the_seconds_given_with_its_fix():
    master, slave = os.openpty()  # a port that never answers
    tty.setraw(slave)
    port = os.ttyname(slave)
    try:
        [check] = check_adapter({"obd": f"obd://{port}"}, 3.0)
    finally:
        os.close(master)
        os.close(slave)
    assert not check.ok
    # the source's own sentence, kept although the source had gone back to connecting
    assert check.message == (f"obd {port}: the OBD adapter at {port} does not answer: "
                             "unplug it and plug it back in")
    assert check.fix.startswith("unplug the adapter and plug it back in")


def test_a_gps_with_a_fix_passes():
    with EmulatedGPS(Clock(), rate_hz=5.0) as gps:
        [check] = check_gps({"gps": f"nmea://{gps.port}"}, 1.5)
    assert check.ok and check.message.startswith(f"gps {gps.port} has a fix: speed ")


def test_a_gps_without_a_fix_says_to_give_it_the_sky():
    gps = EmulatedGPS(Clock(), rate_hz=5.0)
    gps.lose_fix()
    with gps:
        [check] = check_gps({"gps": f"nmea://{gps.port}"}, 1.5)
    assert check.line() == (f"FAIL gps: gps {gps.port}: GPS has no fix: give the antenna a view of the sky; "
                            "a cold start takes up to a minute")


def test_no_obd_or_gps_source_skips_their_checks():
    sources = {"pulses": "pulses://gpio?tach=17"}
    assert check_adapter(sources, 1.0)[0].skipped and check_gps(sources, 1.0)[0].skipped


# -- GPIO ------------------------------------------------------------------------

def config_with(tmp_path, body: str):
    _, config = check_config(write_config(tmp_path, body))
    assert config is not None
    return config


def test_a_pin_used_twice_fails_naming_both_users(tmp_path, mock_gpio):
    # the config itself refuses it (keidash run would too): the config check says so
    check, config = check_config(write_config(tmp_path, """
        [sources]
        pulses = "pulses://gpio?tach=17&vss=27"
        [button]
        pin = 27
    """))
    assert config is None and not check.ok
    assert "GPIO27 is used by both [sources] pulses vss and [button] pin" in check.line()


def test_a_pin_on_the_uart_of_the_gps_is_used_twice(tmp_path, mock_gpio):
    config = config_with(tmp_path, """
        [sources]
        gps = "nmea:///dev/serial0"
        [night]
        switch = 15
    """)
    check = check_gpio(config)
    assert not check.ok and "GPIO 15 is used twice: by the UART RXD (gps /dev/serial0) and by [night] switch" \
        in check.message


def test_a_pin_held_elsewhere_cannot_be_claimed(tmp_path):
    from gpiozero import InputDevice
    from gpiozero.pins.mock import MockFactory
    config = config_with(tmp_path, """
        [sources]
        pulses = "pulses://gpio?tach=17&vss=27"
    """)
    factory = MockFactory()
    try:
        assert check_gpio(config, pin_factory=factory).ok
        holder = InputDevice(27, pin_factory=factory)  # another program's claim
        check = check_gpio(config, pin_factory=factory)
        holder.close()
    finally:
        factory.close()
    assert not check.ok and check.message.startswith("GPIO 27 (pulses vss) cannot be claimed: ")
    assert check.fix.startswith("another program holds it")


def test_no_gpio_here_is_a_skip_off_a_pi_and_a_failure_on_one(tmp_path, monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "keidash-none")  # no pin library loads
    config = config_with(tmp_path, "[sources]\npulses = \"pulses://gpio?tach=17\"\n")
    off_pi = check_gpio(config, on_pi=False)
    assert off_pi.skipped and off_pi.message.startswith("no GPIO on this machine (not a Raspberry Pi")
    on_pi = check_gpio(config, on_pi=True)
    assert not on_pi.ok and "python3-lgpio" in on_pi.fix


def test_no_pins_in_the_config_skips_gpio(tmp_path):
    assert check_gpio(config_with(tmp_path, '[sources]\nobd = "obd:///dev/ttyUSB0"\n')).skipped


# -- display, groups, disk -------------------------------------------------------------

def test_display_without_its_device(tmp_path):
    nowhere = str(tmp_path / "card*")
    on_pi = check_display({}, on_pi=True, dri_glob=nowhere)
    assert on_pi.line() == ("FAIL display: no /dev/dri/card*: the KMS display driver is not loaded: "
                            "add dtoverlay=vc4-kms-v3d to /boot/firmware/config.txt and reboot")
    assert check_display({}, on_pi=False, dri_glob=nowhere).skipped
    x11 = check_display({"SDL_VIDEODRIVER": "x11"}, on_pi=True)
    assert not x11.ok and "DISPLAY is not set" in x11.message


def test_display_device_this_user_may_not_open(tmp_path):
    card = tmp_path / "card0"
    card.write_text("")
    card.chmod(0)
    if os.geteuid() == 0:
        pytest.skip("root opens any device; the video group is checked by the groups check")
    check = check_display({}, on_pi=True, dri_glob=str(tmp_path / "card*"))
    assert not check.ok and check.fix.startswith("sudo usermod -aG video,render $USER")


def test_pygame_display_init_is_tried_in_a_child_process():
    assert board._try_display_init("dummy", dict(os.environ)) == ""
    problem = board._try_display_init("keidash-no-such-driver", dict(os.environ))
    assert problem.startswith("pygame.display.init() failed: ")


def test_groups_of_the_service_user_when_running_as_root():
    check = check_groups(euid=0, service_user="nobody")
    if check.skipped:
        assert check.message.startswith("none of video, render, input, gpio, dialout, audio exists")
        return
    assert not check.ok and check.message.startswith("nobody is not in ")
    assert check.fix.startswith("sudo usermod -aG ") and " nobody, then log out" in check.fix
    assert check_groups(euid=0, service_user="keidash-no-such-user").skipped


def test_disk_space_and_writability(tmp_path):
    ok = check_disk(str(tmp_path))
    assert ok.ok and ok.message.startswith(f"{tmp_path} is writable, ")
    assert list(tmp_path.iterdir()) == []
    full = check_disk(str(tmp_path), min_free_mb=1e12)
    assert not full.ok and full.message.startswith("only ") and "journalctl --vacuum-size" in full.fix
    missing = check_disk(str(tmp_path / "nope"))
    assert not missing.ok and missing.fix.startswith("create it")


def test_a_data_dir_this_user_may_not_write(tmp_path):
    folder = tempfile.mkdtemp(prefix="keidash-doctor-", dir="/tmp")
    try:
        os.chmod(folder, 0o555)
        if os.geteuid() != 0:
            line = check_disk(folder).line()
        else:
            line = run_as_nobody(f"from keidash.pi.doctor import check_disk; print(check_disk({folder!r}).line())")
    finally:
        os.rmdir(folder)
    assert line == (f"FAIL disk: cannot write in {folder}: Permission denied: "
                    f"give the user keidash runs as the folder: sudo chown keidash {folder}")
