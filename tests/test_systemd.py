"""The systemd units and the installer, checked in a throwaway root (DESTDIR).

Nothing here touches the host: the installer runs with DESTDIR into tmp_path (it only
prints the systemctl/sysusers commands it would run) and systemd-analyze and
systemd-sysusers work on that root with --root. ``make test`` installs systemd-analyze
when it is missing and it can (root with apt-get); otherwise these tests say why they skip.
"""

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "systemd" / "install.sh"
UNIT_DIR = "usr/local/lib/systemd/system"
UNITS = ("keidash.service", "keidash-ignition.service")
KEPT_BY_UNINSTALL = {"etc", "etc/keidash", "etc/keidash/config.toml", "etc/keidash/ignition.env",
                     "var", "var/lib", "var/lib/keidash"}

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (apt-get install systemd; "
                                          "make test does it when run as root)")


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DESTDIR": str(root), "KEIDASH_SKIP_VENV": "1"}
    result = subprocess.run(["sh", str(INSTALL), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under root: (mode, sha256 of the content or "dir")."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[str(path.relative_to(root))] = (stat.S_IMODE(st.st_mode), digest)
    return out


@pytest.fixture
def installed(tmp_path) -> Path:
    root = tmp_path / "root"
    install(root)
    return root


def systemd_root(root: Path) -> Path:
    """Make an installed DESTDIR verifiable: systemd's own units and a stand-in keidash."""
    host_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir())
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    program = root / "opt/keidash/venv/bin/keidash"  # the venv is skipped: pip needs the network
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return root


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", *args, f"--root={root}"], capture_output=True, text=True, timeout=60)


# -- the units ---------------------------------------------------------------------------

@needs_analyze
def test_units_pass_systemd_analyze_verify(installed):
    root = systemd_root(installed)
    result = analyze(root, "verify", *(f"/{UNIT_DIR}/{unit}" for unit in UNITS))
    # verify exits 0 on unknown keys and bad values but warns: any output is a failure
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


@needs_analyze
def test_verify_catches_a_broken_unit(installed):
    """The check above can fail: a typo in a directive is reported."""
    root = systemd_root(installed)
    unit = root / UNIT_DIR / "keidash.service"
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    result = analyze(root, "verify", f"/{UNIT_DIR}/keidash.service")
    assert "notifyy" in result.stderr


@needs_analyze
@pytest.mark.parametrize("unit, threshold", [("keidash.service", 25), ("keidash-ignition.service", 20)])
def test_units_are_hardened(installed, unit, threshold):
    """systemd's own exposure score (0 best, 10 worst): measured 2.3 for the dash and 1.5 for the
    ignition watch with a system-call filter, native calls only and other processes hidden (4.0 and
    3.2 before); a change that weakens either past 2.5 / 2.0 fails."""
    root = systemd_root(installed)
    result = analyze(root, "security", "--offline=true", f"--threshold={threshold}", f"/{UNIT_DIR}/{unit}")
    assert result.returncode == 0, result.stdout[-600:]


@pytest.mark.parametrize("unit", UNITS)
def test_units_filter_system_calls_and_hide_other_processes(unit):
    settings = unit_settings(unit)
    assert settings["SystemCallFilter"] == ["@system-service"]
    assert settings["SystemCallArchitectures"] == ["native"]
    assert settings["ProtectProc"] == ["invisible"]
    assert "PrivateUsers" not in settings  # it would map away the device groups (video, gpio, dialout)


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (REPO / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_dash_unit_says_what_the_issue_asks():
    s = unit_settings("keidash.service")
    assert s["Type"] == ["notify"] and s["Restart"] == ["always"] and s["WatchdogSec"]
    assert s["ExecStart"] == ["/opt/keidash/venv/bin/keidash run --config /etc/keidash/config.toml"]
    assert s["User"] == ["keidash"] and s["StateDirectory"] == ["keidash"]
    assert s["WorkingDirectory"] == ["/var/lib/keidash"]  # writable: lgpio needs it
    assert s["ReadWritePaths"] == ["/var/lib/keidash"] and s["ProtectSystem"] == ["strict"]
    assert s["NoNewPrivileges"] == ["yes"] and s["PrivateTmp"] == ["yes"]
    assert "SDL_VIDEODRIVER=kmsdrm" in s["Environment"]
    assert not any("network" in v for key in ("After", "Wants", "Requires") for v in s.get(key, []))
    assert s["WantedBy"] == ["multi-user.target"]


def test_dash_unit_leaves_its_devices_open():
    """The dash opens the display, GPIO, serial and input devices, some plugged in later.

    Any DeviceAllow= (ProtectClock=yes implies one) switches systemd's device policy to
    "only these", which would lock the dash out of all of them (systemd.resource-control(5)).
    """
    s = unit_settings("keidash.service")
    for key in ("DeviceAllow", "DevicePolicy", "PrivateDevices", "ProtectClock"):
        assert key not in s, key


def test_sysusers_creates_the_user_in_its_device_groups(installed):
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers is not installed (package systemd)")
    result = subprocess.run(["systemd-sysusers", f"--root={installed}"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    passwd = (installed / "etc/passwd").read_text().splitlines()
    user = next(line.split(":") for line in passwd if line.startswith("keidash:"))
    assert user[5:] == ["/var/lib/keidash", "/usr/sbin/nologin"]
    groups = {line.split(":")[0]: line.split(":")[3].split(",")
              for line in (installed / "etc/group").read_text().splitlines()}
    for group in ("video", "render", "input", "gpio", "dialout", "audio"):
        assert "keidash" in groups[group], group


# -- the installer -------------------------------------------------------------------------

def test_installer_is_idempotent_and_keeps_the_owners_config(tmp_path):
    root = tmp_path / "root"
    first = install(root)
    once = tree(root)
    assert "would run: systemctl enable keidash.service" in first.stdout
    assert "skipping the virtual environment" in first.stdout
    install(root)
    assert tree(root) == once  # same files, same modes, same content

    config = root / "etc/keidash/config.toml"
    config.write_text(config.read_text() + "\n# my truck\n")
    again = install(root)
    assert "keeping your /etc/keidash/config.toml" in again.stdout
    assert config.read_text().endswith("# my truck\n")


def test_installed_config_loads_and_keeps_data_in_var_lib(installed):
    from keidash.config import load_config
    config = load_config(str(installed / "etc/keidash/config.toml"))
    assert config.data_dir == "/var/lib/keidash"
    assert (installed / "var/lib/keidash").is_dir()
    assert stat.S_IMODE((installed / "var/lib/keidash").stat().st_mode) == 0o750


def test_uninstall_keeps_only_config_and_data(installed):
    (installed / "var/lib/keidash/distance.json").write_text("{}")
    result = install(installed, "--uninstall")
    assert set(tree(installed)) == KEPT_BY_UNINSTALL | {"var/lib/keidash/distance.json"}
    assert "would run: systemctl disable --now keidash.service" in result.stdout
    install(installed, "--uninstall")  # twice is fine too


def test_purge_leaves_nothing(installed):
    result = install(installed, "--purge")
    assert tree(installed) == {}
    assert "would run: userdel keidash" in result.stdout


def test_installer_refuses_an_unknown_option(tmp_path):
    result = subprocess.run(["sh", str(INSTALL), "--frobnicate"], capture_output=True, text=True,
                            env={**os.environ, "DESTDIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 2 and "unknown option --frobnicate" in result.stderr
