"""keidash under a real systemd PID 1: Debian Bookworm and Trixie booted with systemd-nspawn.

``make test-pid1`` runs this (``.ci/run`` does when root); plain ``make test`` skips it, saying
so. For each suite: a cached minimal Debian root (tests/pid1.py) is copied, the project put in,
booted, and the real ``systemd/install.sh`` run in it offline (no network in the machine: pip
installs from wheels fetched on the host). Then, in order, on that machine: the cluster draws
inside the dash unit's own sandbox, and with MemoryDenyWriteExecute=yes on top; the ignition
unit with no pin does not start (and does not loop); the dash comes up (READY=1) without a
display (the machine has no /dev/dri), saying so in its status; the watchdog and the sandbox are
in effect; a SIGSTOPped dash is restarted by the watchdog; ``systemctl stop`` ends the trip with
the log intact; a second boot starts the dash by itself; the dash, in its own user namespace,
opens a root:dialout serial port through its group; ``systemd-analyze security`` scores the
units; and the ignition watch, told by gpiozero's mock pin that the key is off, stops the dash
and powers the machine off (under PrivateUsers= and MemoryDenyWriteExecute=, no capabilities).

Every wait polls for a state with a generous timeout; the times measured (boot to READY,
watchdog restart, stop, key-off to power-off) are figures, written to
``$KEIDASH_PID1_RUNS/figures-<suite>.json`` and printed by ``python tests/pid1.py --figures``,
never pass/fail.
"""

import json
import os
import re
import sqlite3
import time

import pytest

import pid1

SUITES = os.environ.get("KEIDASH_PID1_SUITES", "bookworm trixie").split()
#: amd64 here; arm64 runs the Pi's programs through qemu-user (make test-arm64)
ARCH = os.environ.get("KEIDASH_PID1_ARCH") or None
#: systemd-analyze security in the booted machine (systemd 252 and 257 agree): the units' exposure
#: measured by issue 16 (2.2 and 1.3 before PrivateUsers= and ~@privileged @resources); it may not rise
THRESHOLDS = {"keidash.service": 1.8, "keidash-ignition.service": 0.9}
CONFIG = """\
# the owner's config: the virtual truck's ELM327 and GPS on pseudo-terminals stand in for the truck
profile = "hijet-s500p"
data_dir = "/var/lib/keidash"

[sources]
sim = "sim://hijet-s500p?hardware=obd,gps"

[display]
fullscreen = true
"""
TRIPS = "/var/lib/keidash/trips.db"
UNIT_DIR = "usr/local/lib/systemd/system"

pytestmark = pytest.mark.skipif(os.environ.get("KEIDASH_PID1") != "1",
                                reason="boots Debian roots under systemd-nspawn (root, minutes): "
                                       "run by make test-pid1")


@pytest.fixture(scope="module", params=SUITES)
def machine(request):
    """A booted Debian machine of the suite with keidash installed by systemd/install.sh."""
    try:
        arch = ARCH or pid1.host_arch()
        pid1.ensure_host_tools(arch)
        machine = pid1.Machine(request.param, arch)
    except pid1.Unavailable as exc:
        pytest.skip(str(exc))
    machine.figures = {"suite": f"{request.param} {arch}"}
    machine.prepare()
    try:
        machine.boot()
        started = time.monotonic()
        machine.install = machine.run(
            "sh", f"{pid1.SOURCE_IN_GUEST}/systemd/install.sh", check=False, timeout=900,
            env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": pid1.WHEELS_IN_GUEST, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        machine.figures["install_s"] = round(time.monotonic() - started, 1)
        machine.no_services = ""
        if machine.emulated and machine.show("systemd-journald.service", "ActiveState")["ActiveState"] != "active":
            machine.no_services = (f"under qemu-user this machine's systemd cannot start any service (its "
                                   f"console: 'Failed to spawn executor: Invalid argument'; systemd 255 and later "
                                   f"start units through systemd-executor): only the install and the drawing "
                                   f"are checked on {machine.suite} {arch}")
        elif machine.emulated:  # the rest of the dash's checks still run there, without the namespace
            dropin = machine.path("/etc/systemd/system/keidash.service.d/qemu-user.conf")
            dropin.parent.mkdir(parents=True)
            dropin.write_text(f"# tests/test_pid1.py: {NO_USER_NAMESPACE}\n[Service]\nPrivateUsers=no\n")
            machine.run("systemctl", "daemon-reload")
        yield machine
    finally:
        machine.kill()
        pid1.RUNS.mkdir(parents=True, exist_ok=True)
        (pid1.RUNS / f"figures-{machine.name}.json").write_text(json.dumps(machine.figures, indent=1))


def monotonic_s(machine, unit: str, prop: str) -> float:
    """A unit's timestamp on CLOCK_MONOTONIC (s): the host's time.monotonic() clock too."""
    return int(machine.show(unit, prop)[prop]) / 1e6


TRIPS_SQL = ("SELECT id, ended_unix, (SELECT count(*) FROM frames WHERE trip = trips.id), "
             "(SELECT count(*) FROM readings WHERE trip = trips.id) FROM trips ORDER BY id")
#: run by the guest's own Python as the keidash user: files SQLite makes stay the dash's
READ_TRIPS = f"""
import json, sqlite3, sys
db = sqlite3.connect("file:{TRIPS}?mode=ro", uri=True)
assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), "integrity_check failed"
print(json.dumps(db.execute({TRIPS_SQL!r}).fetchall()))
"""


def trips(machine) -> list[tuple]:
    """(id, ended_unix, frames, readings) of every trip; fails on a damaged log.

    While the machine runs, read in it as the keidash user; once it is off, from the host
    (immutable: nothing is written next to the log, and an unmerged WAL would be missed).
    """
    if not machine.path(TRIPS).exists():
        return []
    if machine.running:
        out = machine.run("setpriv", "--reuid=keidash", "--regid=keidash", "--init-groups",
                          "python3", "-c", READ_TRIPS).stdout
        return [tuple(row) for row in json.loads(out)]
    db = sqlite3.connect(f"file:{machine.path(TRIPS)}?immutable=1", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return db.execute(TRIPS_SQL).fetchall()
    finally:
        db.close()


def needs_services(machine) -> None:
    if machine.no_services:
        pytest.skip(machine.no_services)


def test_install_sh_finishes_offline_on_plain_debian(machine):
    out = machine.install.stdout + machine.install.stderr
    assert machine.install.returncode == 0, out
    assert "Unable to locate package" not in out
    has_lgpio = machine.run("/opt/keidash/venv/bin/python", "-c", "import lgpio", check=False).returncode == 0
    if has_lgpio:  # Bookworm's Python 3.11: PyPI has an lgpio wheel
        assert "lgpio: installed from PyPI into the virtual environment" in out
    else:  # Trixie's 3.13: no wheel, no python3-lgpio in Debian: one sentence, and the install went on
        assert "so the GPIO features are off" in out
    machine.figures["lgpio"] = "PyPI wheel" if has_lgpio else "none: GPIO features off"
    assert machine.run("/opt/keidash/venv/bin/keidash", "--help").returncode == 0
    assert machine.show("keidash.service", "UnitFileState")["UnitFileState"] == "enabled"


def sandboxed_demo_unit(installed: str, command: str, extra: tuple[str, ...] = ()) -> str:
    """The installed dash unit with its whole sandbox (user, namespaces, system-call filter...), but
    ``command`` as its program, run once to its end, drawing offscreen; ``extra`` lines are added."""
    lines = []
    for line in installed.splitlines():
        key = line.split("=", 1)[0]
        if key in ("Type", "NotifyAccess", "WatchdogSec", "Restart", "RestartSec", "WantedBy"):
            continue
        if key == "ExecStart":
            line = f"ExecStart={command}"
        elif line == "Environment=SDL_VIDEODRIVER=kmsdrm":
            line = "Environment=SDL_VIDEODRIVER=dummy HOME=/var/lib/keidash"
        lines.append(line)
        if line == "[Service]":
            lines.append("Type=oneshot")
        if line == "[Install]":  # after the unit's own lines: the later setting wins
            lines[-1:] = [*extra, line]
    return "\n".join(lines) + "\n"


def draw_under_the_unit(machine, name: str, extra: tuple[str, ...] = ()) -> dict:
    """``keidash demo`` (3 s, a screenshot) as a oneshot copy of keidash.service; its stats."""
    shot, stats = "/var/lib/keidash/frame.png", "/var/lib/keidash/demo.json"
    unit = machine.path(f"/etc/systemd/system/{name}.service")  # the guest's /run is its own tmpfs
    if machine.emulated:
        extra = (*extra, "PrivateUsers=no")  # NO_USER_NAMESPACE
    unit.write_text(sandboxed_demo_unit(
        machine.path(f"/{UNIT_DIR}/keidash.service").read_text(),
        f"/opt/keidash/venv/bin/keidash demo --headless --seconds 3 --screenshot {shot} --stats-json {stats}", extra))
    machine.run("systemctl", "daemon-reload")
    started = machine.run("systemctl", "start", f"{name}.service", check=False, timeout=600)
    state = machine.show(f"{name}.service", "Result", "ExecMainStatus")
    assert started.returncode == 0 and state == {"Result": "success", "ExecMainStatus": "0"}, (
        state, machine.journal(f"{name}.service")[-3000:])
    return json.loads(machine.path(stats).read_text())


def test_the_cluster_draws_frames_with_the_installed_wheels(machine):
    """pygame-ce's wheel for this Python and machine draws the cluster (offscreen: no display here),
    inside the dash unit's own sandbox (PrivateUsers=, the system-call filter): they break nothing.
    Where systemd can start no service (arm64 under qemu-user), as the keidash user outside it."""
    shot = "/var/lib/keidash/frame.png"
    if machine.no_services:
        machine.run("setpriv", "--reuid=keidash", "--regid=keidash", "--init-groups", "/opt/keidash/venv/bin/keidash",
                    "demo", "--headless", "--seconds", "3", "--screenshot", shot, "--stats-json",
                    "/var/lib/keidash/demo.json", env={"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy",
                                                       "HOME": "/var/lib/keidash"}, timeout=600)
        stats = json.loads(machine.path("/var/lib/keidash/demo.json").read_text())
    else:
        stats = draw_under_the_unit(machine, "keidash-draw")
    assert stats["frames"] >= 1  # how many depends on the machine (under qemu-user: a few)
    machine.figures["demo_frames_in_3_s"] = stats["frames"]
    import pygame
    picture = pygame.image.load(str(machine.path(shot)))
    colours = {tuple(picture.get_at((x, y))) for x in range(0, picture.get_width(), 8)
               for y in range(0, picture.get_height(), 8)}
    assert picture.get_size() == (800, 480) and len(colours) > 5  # a drawn cluster, not a blank surface
    machine.run("rm", shot, "/var/lib/keidash/demo.json")


def test_the_drawing_needs_no_writable_code_pages(machine):
    """The same with MemoryDenyWriteExecute=yes on top: Python, pygame-ce's software drawing,
    python-obd and pyserial on the virtual truck's ports and gpiozero map no W+X pages. The dash
    unit still leaves it off: on a Pi SDL's kmsdrm draws through Mesa's EGL/GLES, which this
    machine (no GPU) cannot run (docs/install.md)."""
    needs_services(machine)
    stats = draw_under_the_unit(machine, "keidash-draw-wx", ("MemoryDenyWriteExecute=yes",))
    assert stats["frames"] >= 1
    machine.figures["demo_frames_in_3_s_no_wx"] = stats["frames"]
    machine.run("rm", "/var/lib/keidash/frame.png", "/var/lib/keidash/demo.json")


#: what qemu-user cannot do for an emulated (arm64) machine, measured: the rest runs there too
NO_PRIVATE_NETWORK = ("under qemu-user systemd cannot set up the ignition unit's PrivateNetwork= "
                      "('Failed to set up network namespacing: Input/output error'): checked natively")
NO_USER_NAMESPACE = ("under qemu-user systemd cannot set up the units' PrivateUsers= ('Failed to set up user "
                     "namespacing: Invalid argument', exit 217/USER): the emulated machine runs the dash "
                     "without it, and the namespace is checked natively")


def test_the_ignition_unit_without_a_pin_does_not_start_or_loop(machine):
    needs_services(machine)
    if machine.emulated:
        pytest.skip(NO_PRIVATE_NETWORK)
    assert machine.run("systemctl", "start", "keidash-ignition").returncode == 0
    state = machine.show("keidash-ignition.service", "ActiveState", "Result", "NRestarts")
    assert state == {"ActiveState": "inactive", "Result": "success", "NRestarts": "0"}
    assert ("no IGNITION_PIN in /etc/keidash/ignition.env, so not watching the ignition"
            in machine.journal("keidash-ignition"))


def test_the_dash_is_ready_without_a_display_and_says_so(machine):
    needs_services(machine)
    machine.path("/etc/keidash/config.toml").write_text(CONFIG)
    asked = time.monotonic()
    machine.run("systemctl", "start", "keidash")  # returns once keidash said READY=1 (Type=notify)
    state = machine.show("keidash.service", "ActiveState", "SubState", "StatusText", "WatchdogUSec", "NRestarts",
                         "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    assert (state["ActiveState"], state["SubState"], state["NRestarts"]) == ("active", "running", "0")
    assert state["WatchdogUSec"] == "5s"
    assert state["StatusText"].startswith("no display (kmsdrm not available): running on without a screen")
    machine.figures["start_to_ready_s"] = round(
        (int(state["ActiveEnterTimestampMonotonic"]) - int(state["ExecMainStartTimestampMonotonic"])) / 1e6, 2)
    machine.figures["systemctl_start_s"] = round(time.monotonic() - asked, 2)
    # and it runs on: the watchdog keeps it (more than one WatchdogSec later, still the same process)
    pid = machine.show("keidash.service", "MainPID")["MainPID"]
    machine.wait_for(lambda: (trips(machine) or [(0, None, 0, 0)])[-1][2] > 0, 120, "frames in the trip log")
    assert machine.show("keidash.service", "MainPID", "NRestarts") == {"MainPID": pid, "NRestarts": "0"}


def test_the_sandbox_is_in_effect(machine):
    needs_services(machine)
    pid = machine.show("keidash.service", "MainPID")["MainPID"]
    uid, gid = (machine.run("id", "-u", "keidash").stdout.strip(), machine.run("id", "-g", "keidash").stdout.strip())
    status = dict(line.split(":", 1) for line in machine.run("cat", f"/proc/{pid}/status").stdout.splitlines())
    assert status["Uid"].split() == [uid] * 4 and status["Gid"].split() == [gid] * 4
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, caps  # CapabilityBoundingSet= empty: none at all
    assert status["NoNewPrivs"].strip() == "1"
    groups = {machine.run("getent", "group", g).stdout.split(":")[2] for g in ("video", "gpio", "dialout")}
    assert groups <= set(status["Groups"].split())  # sysusers.d put keidash in its device groups
    mounts = {}
    for line in machine.run("cat", f"/proc/{pid}/mountinfo").stdout.splitlines():
        fields = line.split()
        mounts[fields[4]] = fields[5].split(",")  # mount point -> its options (later mounts win)
    assert "ro" in mounts["/"] and "rw" in mounts["/var/lib/keidash"]
    if machine.emulated:
        pytest.skip("under qemu-user nsenter cannot enter the dash's mount namespace ('reassociate to "
                    "namespace ns/mnt failed: Invalid argument'): the writes as the dash are checked natively")
    # as the dash itself: its data directory is writable, the rest of the system is not
    as_dash = ["nsenter", "-t", pid, "-m", "-S", uid, "-G", gid, "sh", "-c"]
    assert machine.run(*as_dash, "touch /var/lib/keidash/.probe && rm /var/lib/keidash/.probe").returncode == 0
    for path in ("/etc/keidash/.probe", "/opt/keidash/.probe", "/usr/.probe"):
        refused = machine.run(*as_dash, f"touch {path}", check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr, (path, refused.stderr)


def test_a_frozen_dash_is_restarted_by_the_watchdog(machine):
    needs_services(machine)
    before = machine.show("keidash.service", "MainPID", "NRestarts")
    assert before["MainPID"] != "0", "the dash is not running"  # kill -STOP 0 would stop the shell itself
    frozen = time.monotonic()
    machine.run("sh", "-c", f"kill -STOP {before['MainPID']}")  # minbase has no kill(1): the shell's

    def restarted():
        now = machine.show("keidash.service", "MainPID", "NRestarts", "ActiveState")
        return (now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"])
                and int(now["NRestarts"]) == int(before["NRestarts"]) + 1)
    machine.wait_for(restarted, 120, "the watchdog to restart the frozen dash")
    assert "Watchdog timeout" in machine.journal("keidash")
    machine.figures["watchdog_restart_s"] = round(
        monotonic_s(machine, "keidash.service", "ActiveEnterTimestampMonotonic") - frozen, 2)


def test_systemctl_stop_ends_the_trip_with_the_log_intact(machine):
    needs_services(machine)
    def restarted_dash_logs():  # its own trip, the second, with frames and readings in it
        logged = trips(machine)
        return len(logged) == 2 and min(logged[-1][2:]) > 0
    machine.wait_for(restarted_dash_logs, 120, "the restarted dash's frames and readings in the trip log")
    asked = time.monotonic()
    machine.run("systemctl", "stop", "keidash")
    machine.figures["stop_s"] = round(monotonic_s(machine, "keidash.service", "InactiveEnterTimestampMonotonic")
                                      - asked, 2)
    state = machine.show("keidash.service", "ActiveState", "Result", "ExecMainStatus")
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}  # no SIGKILL
    logged = trips(machine)
    assert len(logged) == 2  # before and after the watchdog's restart
    assert logged[-1][1] is not None and logged[-1][2] > 0 and logged[-1][3] > 0  # ended, frames, readings
    wal = machine.path(TRIPS + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed into the database
    assert "Traceback" not in machine.journal("keidash")


def test_a_second_boot_starts_the_dash(machine):
    needs_services(machine)
    machine.poweroff()
    booted = machine.boot()
    machine.wait_for(lambda: machine.show("keidash.service", "ActiveState")["ActiveState"] == "active", 120,
                     "keidash to start at boot")
    ready = monotonic_s(machine, "keidash.service", "ActiveEnterTimestampMonotonic")
    machine.figures["boot_to_ready_s"] = round(ready - booted, 2)  # from systemd-nspawn's start
    machine.figures["pid1_to_ready_s"] = round(ready - int(machine.run(
        "systemctl", "show", "--property=UserspaceTimestampMonotonic", "--value").stdout) / 1e6, 2)
    machine.wait_for(lambda: len(trips(machine)) == 3 and trips(machine)[-1][2] > 0, 120,
                     "the new trip's frames")


#: a GPS receiver on a serial port as udev makes one (/dev/ttyACM0: root:dialout 0660): a pseudo-terminal
#: whose tty end is given to ``group``, fed RMC and GGA fixes 5 times a second by a root process
FAKE_GPS = """
import grp, os, sys, time, tty
master, tty_end = os.openpty()
tty.setraw(tty_end)
name = os.ttyname(tty_end)
os.chown(name, 0, grp.getgrnam(sys.argv[1]).gr_gid)
os.chmod(name, 0o660)
link = "/run/keidash-test-gps"
if os.path.lexists(link):
    os.unlink(link)
os.symlink(name, link)
def sentence(body):
    check = 0
    for char in body:
        check ^= ord(char)
    return f"${body}*{check:02X}\\r\\n".encode()
while True:
    now = time.gmtime()
    hms, dmy = time.strftime("%H%M%S", now), time.strftime("%d%m%y", now)
    os.write(master, sentence(f"GPRMC,{hms}.00,A,3540.000,N,13945.000,E,10.0,90.0,{dmy},,,A")
             + sentence(f"GPGGA,{hms}.00,3540.000,N,13945.000,E,1,08,0.9,10.0,M,39.0,M,,"))
    time.sleep(0.2)
"""
#: the owner's config with that GPS receiver as a second source (the sim gives rpm and speed)
CONFIG_SERIAL_GPS = CONFIG.replace('hardware=obd,gps"', 'hardware=obd"\nreceiver = "nmea:///run/keidash-test-gps"')


def feed_gps(machine, group: str) -> None:
    machine.run("systemctl", "stop", "keidash-test-gps", check=False)
    script = machine.path("/usr/local/lib/keidash-test-gps.py")  # a file: systemd would expand $ in a -c
    script.write_text(FAKE_GPS)
    machine.run("systemd-run", "--unit=keidash-test-gps", "--collect", "python3", "/usr/local/lib/keidash-test-gps.py",
                group)
    machine.wait_for(lambda: machine.run("test", "-L", "/run/keidash-test-gps", check=False).returncode == 0, 60,
                     "the GPS's serial port")


def dash_status(machine) -> str:
    return machine.show("keidash.service", "StatusText")["StatusText"]


def test_the_dash_opens_a_serial_port_through_its_dialout_group(machine):
    """PrivateUsers= maps only root and keidash into the dash's namespace, yet the device groups
    still open the devices: a serial port of root:dialout 0660, as udev makes a USB GPS's, opens
    under the real unit and its fixes reach the trip log. Given to a group keidash is not in, the
    same port is refused with the source's sentence, so it is the group that opened it."""
    needs_services(machine)
    if machine.emulated:
        pytest.skip(NO_USER_NAMESPACE)
    feed_gps(machine, "tty")  # not one of keidash's groups
    machine.path("/etc/keidash/config.toml").write_text(CONFIG_SERIAL_GPS)
    machine.run("systemctl", "restart", "keidash")
    machine.wait_for(lambda: "receiver: permission denied on /run/keidash-test-gps" in dash_status(machine), 120,
                     "the dash to say the GPS port is refused")
    feed_gps(machine, "dialout")
    machine.wait_for(lambda: "receiver: connected" in dash_status(machine), 120, "the dash to open the GPS port")
    trip = trips(machine)[-1][0]
    count = ("SELECT count(*) FROM readings WHERE trip = {trip} AND source = 'receiver'")
    machine.wait_for(lambda: machine_count(machine, count.format(trip=trip)) > 0, 120,
                     "the serial GPS's fixes in the trip log")
    assert machine.show("keidash.service", "ActiveState", "NRestarts")["ActiveState"] == "active"
    machine.path("/etc/keidash/config.toml").write_text(CONFIG)
    machine.run("systemctl", "restart", "keidash")
    machine.run("systemctl", "stop", "keidash-test-gps")


def machine_count(machine, sql: str) -> int:
    """One count from the trip log, read in the machine as the keidash user."""
    script = f"import sqlite3; print(sqlite3.connect('file:{TRIPS}?mode=ro', uri=True).execute({sql!r}).fetchone()[0])"
    return int(machine.run("setpriv", "--reuid=keidash", "--regid=keidash", "--init-groups", "python3", "-c",
                           script).stdout)


def test_systemd_analyze_security_scores(machine):
    needs_services(machine)
    for unit, threshold in THRESHOLDS.items():
        if machine.emulated and unit == "keidash.service":
            continue  # its qemu-user drop-in (NO_USER_NAMESPACE) is not the unit's score
        out = machine.run("systemd-analyze", "security", "--no-pager", unit, check=False).stdout
        score = float(re.search(rf"Overall exposure level for {re.escape(unit)}: ([\d.]+)", out)[1])
        machine.figures[f"security_{unit}"] = score
        assert score <= threshold, out


def test_the_ignition_watch_stops_the_dash_and_powers_the_machine_off(machine):
    needs_services(machine)
    if machine.emulated:
        pytest.skip(NO_PRIVATE_NETWORK)
    assert machine.show("keidash.service", "ActiveState")["ActiveState"] == "active"
    ended_before = sum(1 for trip in trips(machine) if trip[1] is not None)
    # the owner sets the pin; gpiozero's mock pin floats up: active-low, so the key reads off
    env = machine.path("/etc/keidash/ignition.env")
    text = env.read_text()
    assert "\nIGNITION_PIN=\n" in text  # as installed
    env.write_text(text.replace("\nIGNITION_PIN=\n", "\nIGNITION_PIN=22\n")
                   .replace("IGNITION_GRACE_S=10", "IGNITION_GRACE_S=2") + "GPIOZERO_PIN_FACTORY=mock\n")
    asked = time.monotonic()
    machine.run("systemctl", "enable", "--now", "keidash-ignition")
    off = machine.wait_off(120)
    machine.figures["ignition_enable_to_off_s"] = round(off - asked, 2)  # includes the 2 s grace
    logged = trips(machine)
    assert sum(1 for trip in logged if trip[1] is not None) == ended_before + 1  # the dash's trip ended cleanly
    assert logged[-1][1] is not None
