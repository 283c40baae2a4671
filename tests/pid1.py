"""A Debian machine with systemd as its PID 1, for tests/test_pid1.py (``make test-pid1``).

Everything heavy is made once and kept outside the clone, in ``KEIDASH_PID1_CACHE``
(default ``/var/cache/keidash-pid1``):

- ``<suite>-<arch>/``: a minimal Debian root made by ``debootstrap`` (minbase with systemd,
  dbus and python3-venv), never changed after it is made;
- ``wheels/cp<NN>-<arch>/``: the wheels keidash needs, fetched on the host with ``pip download``
  for the guest's Python and machine, so the install in the guest is offline
  (``--private-network``: it has no network at all).

Each run copies the root to ``KEIDASH_PID1_RUNS`` (default ``/var/tmp/keidash-pid1``), puts the
project in it, boots it with ``systemd-nspawn --boot --register=no --keep-unit`` and goes in
with ``nsenter -t <its PID 1> -a``. Every wait polls for a state with a generous timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KEIDASH_PID1_CACHE", "/var/cache/keidash-pid1"))
RUNS = Path(os.environ.get("KEIDASH_PID1_RUNS", "/var/tmp/keidash-pid1"))
MIRROR = os.environ.get("KEIDASH_PID1_MIRROR", "http://deb.debian.org/debian")
#: what the root needs beyond minbase: systemd as PID 1, D-Bus for systemctl, the venv module
INCLUDE = "systemd,systemd-sysv,dbus,python3-venv"
#: the Debian machine names of the wheels' platform tags
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WHEELS_IN_GUEST = "/var/cache/keidash-wheels"
SOURCE_IN_GUEST = "/usr/src/keidash"


class Unavailable(Exception):
    """This machine cannot run the test (the message says why): the test skips."""


def host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


#: where root's tools live (debootstrap, chroot): a CI's bare PATH (env -i PATH=/usr/local/bin:/usr/bin:/bin)
#: has none of them, and debootstrap, installed there, was then "not found" right after apt-get installed it
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def ensure_host_tools(arch: str = "amd64") -> None:
    """debootstrap and systemd-nspawn (and qemu-user for a foreign arch), from apt if missing; root's
    sbin folders on this process's PATH (debootstrap and the chroot it runs live there)."""
    if os.geteuid() != 0:
        raise Unavailable("booting a Debian root with systemd-nspawn needs root")
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(path + [folder for folder in SBIN if folder not in path])
    if shutil.which("apt-get") is None:
        raise Unavailable("no apt-get on this machine to install debootstrap and systemd-container")
    wanted = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "nsenter": "util-linux"}
    if arch != host_arch():
        wanted[f"qemu-{MACHINES[arch]}-static"] = "qemu-user-static"
    missing = sorted({package for tool, package in wanted.items() if shutil.which(tool) is None})
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in (["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
            if done.returncode != 0:
                raise Unavailable(f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}")
    if arch != host_arch():
        register_binfmt(arch)


def register_binfmt(arch: str) -> None:
    """Let the kernel run the foreign arch's programs through qemu-user (binfmt_misc)."""
    name = f"qemu-{MACHINES[arch]}"
    misc = Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "register").exists():
        done = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(misc)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise Unavailable(f"cannot mount binfmt_misc: {done.stderr.strip()}")
    if (misc / name).exists():
        return
    conf = Path(f"/usr/lib/binfmt.d/{name}.conf")
    if not conf.exists():
        raise Unavailable(f"qemu-user-static has no {conf}")
    line = next(text for text in conf.read_text().splitlines() if text.startswith(":"))
    try:
        (misc / "register").write_text(line)
    except OSError as exc:
        raise Unavailable(f"cannot register {name} with binfmt_misc: {exc}") from None


def cached_root(suite: str, arch: str) -> Path:
    """The minimal Debian root of ``suite`` for ``arch``: debootstrapped once, then reused."""
    root = CACHE / f"{suite}-{arch}"
    if (root / "usr/bin/python3").exists() and (root / "var/lib/dpkg/status").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f"{suite}-{arch}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    log = CACHE / f"{suite}-{arch}.log"
    with open(log, "w") as out:
        done = subprocess.run(["debootstrap", f"--arch={arch}", "--variant=minbase", f"--include={INCLUDE}",
                               suite, str(work), MIRROR], stdout=out, stderr=subprocess.STDOUT, timeout=3600)
    if done.returncode != 0:
        raise Unavailable(f"debootstrap {suite} {arch} failed (see {log}): "
                          f"{log.read_text().strip().splitlines()[-1:]}")
    work.rename(root)
    return root


def guest_python(root: Path) -> tuple[int, int]:
    """The guest's Python version, from its interpreter's name (python3.11, python3.13)."""
    versions = sorted((int(m[1]), int(m[2])) for p in (root / "usr/bin").glob("python3.*")
                      if (m := re.fullmatch(r"python(\d)\.(\d+)", p.name)))
    if not versions:
        raise Unavailable(f"no python3.N in {root}/usr/bin")
    return versions[-1]


def guest_glibc(root: Path) -> tuple[int, int]:
    status = (root / "var/lib/dpkg/status").read_text()
    match = re.search(r"^Package: libc6\n(?:.+\n)*?Version: (\d+)\.(\d+)", status, re.M)
    if not match:
        raise Unavailable(f"no libc6 in {root}'s dpkg status")
    return int(match[1]), int(match[2])


def requirements() -> list[str]:
    """keidash's runtime requirements and its build backend, as pyproject.toml names them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [*project["project"]["dependencies"], *project["build-system"]["requires"]]


def wheels(root: Path, arch: str) -> Path:
    """Every wheel the guest's offline install needs, for its Python and machine (fetched once).

    lgpio is fetched when PyPI has a wheel for that Python (it has for 3.11, not 3.13): without
    it the guest's install is the one that says the GPIO features are off.
    """
    major, minor = guest_python(root)
    glibc = guest_glibc(root)
    machine = MACHINES[arch]
    folder = CACHE / "wheels" / f"cp{major}{minor}-{arch}"
    wanted = requirements()
    stamp = folder / ".requirements"
    if stamp.exists() and stamp.read_text() == "\n".join(wanted):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [f"manylinux_{glibc[0]}_{n}_{machine}" for n in range(17, glibc[1] + 1)]
    platforms += [f"manylinux2014_{machine}", f"linux_{machine}"]
    base = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(folder), "--only-binary=:all:",
            "--python-version", f"{major}.{minor}", "--implementation", "cp"]
    base += [arg for platform in platforms for arg in ("--platform", platform)]
    done = subprocess.run([*base, *wanted], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise Unavailable(f"pip download for Python {major}.{minor} on {machine} failed: "
                          f"{done.stderr.strip()[-400:]}")
    subprocess.run([*base, "lgpio>=0.2"], capture_output=True, text=True, timeout=600)  # a wheel or none
    stamp.write_text("\n".join(wanted))
    return folder


def copy_project(dest: Path) -> None:
    """The clone as a user would have it (no venv, no caches)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", "build", ".pytest_cache", ".hypothesis"))


class Machine:
    """A copy of a cached root, booted with systemd-nspawn as often as a test asks."""

    def __init__(self, suite: str, arch: str = "amd64"):
        self.suite, self.arch = suite, arch
        self.name = f"keidash-{suite}-{arch}"
        self.base = cached_root(suite, arch)
        self.wheels = wheels(self.base, arch)
        self.dir = RUNS / self.name
        self.root = self.dir / "root"
        self.process: subprocess.Popen | None = None
        self.pid1: int | None = None
        self.boots = 0
        #: its programs run through qemu-user (binfmt_misc), not natively
        self.emulated = arch != host_arch()

    def prepare(self) -> None:
        """A fresh copy of the root with the project in it."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        done = subprocess.run(["cp", "-a", "--reflink=auto", str(self.base), str(self.root)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError(f"copying {self.base}: {done.stderr}")
        copy_project(self.root / SOURCE_IN_GUEST.lstrip("/"))

    def path(self, guest_path: str) -> Path:
        """A file of the guest, seen from the host."""
        return self.root / guest_path.lstrip("/")

    # -- booting -----------------------------------------------------------------------------

    def boot(self, timeout: float = 120.0) -> float:
        """Boot with systemd as PID 1; the host's monotonic time the boot started (s)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.boots += 1
        log = open(self.dir / f"console-{self.boots}.log", "w")
        started = time.monotonic()
        self.process = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--private-network",
             "--directory", str(self.root), "--machine", self.name,
             f"--bind-ro={self.wheels}:{WHEELS_IN_GUEST}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.pid1 = None
        self.wait_for(lambda: self._find_pid1() is not None, timeout, "systemd to start as PID 1")
        self.wait_for(lambda: self.run("systemctl", "is-system-running", check=False).stdout.strip()
                      in ("running", "degraded"), timeout, "the boot to finish")
        return started

    def _find_pid1(self) -> int | None:
        if self.process.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited with {self.process.returncode}: "
                               f"{(self.dir / f'console-{self.boots}.log').read_text()[-2000:]}")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M)
            if nspid is None or nspid[1].split()[-1] != "1" or len(nspid[1].split()) < 2:
                continue
            if self._descends_from(int(entry.name), self.process.pid):
                self.pid1 = int(entry.name)
                return self.pid1
        return None

    @staticmethod
    def _descends_from(pid: int, ancestor: int) -> bool:
        while pid > 1:
            if pid == ancestor:
                return True
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return False
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_off(self, timeout: float = 120.0) -> float:
        """Wait for the machine to power itself off; the host's monotonic time it was seen off."""
        self.wait_for(lambda: not self.running, timeout, "the machine to power off")
        return time.monotonic()

    def poweroff(self, timeout: float = 120.0) -> None:
        self.run("systemctl", "poweroff", check=False)
        self.wait_off(timeout)

    def kill(self) -> None:
        """The end of a test, whatever happened: no container left running."""
        if self.running:
            self.run("systemctl", "poweroff", check=False)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)

    # -- inside ------------------------------------------------------------------------------

    def run(self, *command: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = 300.0) -> subprocess.CompletedProcess:
        """Run a command in the machine (all of PID 1's namespaces), with a clean environment."""
        assert self.pid1 is not None, "not booted"
        environment = [f"{k}={v}" for k, v in {"PATH": GUEST_PATH, "LANG": "C.UTF-8", **(env or {})}.items()]
        done = subprocess.run(["nsenter", "-t", str(self.pid1), "-a", "env", "-i", *environment, *command],
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode} in {self.name}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "--no-pager", "-o", "cat", "-b", "-u", unit, check=False).stdout

    @staticmethod
    def wait_for(condition, timeout: float, what: str, poll_s: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f} s for {what}")
            time.sleep(poll_s)


def print_figures() -> int:
    """``python tests/pid1.py --figures``: what the last make test-pid1 measured, per suite."""
    import json
    found = sorted(RUNS.glob("figures-*.json"))
    if not found:
        print(f"no figures in {RUNS}: run make test-pid1")
        return 1
    for path in found:
        figures = json.loads(path.read_text())
        print(f"{figures.pop('suite', path.stem)}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(print_figures() if sys.argv[1:] == ["--figures"] else 2)
