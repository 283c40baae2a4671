"""OBD polling rate: rpm+speed pairs a second, keidash against python-obd, in one run.

Each adapter is an emulator on a pseudo-terminal whose ECU answers every
request after a fixed delay: 50 ms models a K-line ECU, 5 ms a CAN one.

* ``ELM327-emulator``: the independent package (test-only dependency, never
  shipped), its UDS P2 ``delay`` set. It frames every answer as 11-bit CAN, so
  both tools use protocol 6 with it; it refuses a multi-PID request with a
  response count, so keidash asks one PID per request there, as on a K-line.
* ``emulated ELM327``: keidash's own (keidash/sim/elm327.py, what the demo
  uses), on a real K-line protocol (5, KWP2000 fast init) and on CAN (6), with
  the chip's listening timeout modelled (ATST, ATAT, the response count).

Measured per adapter and delay, each for a few seconds after connecting:

* python-obd ``Async`` with its defaults (``fast=True``, 0.25 s between
  loops), watching RPM and SPEED: pairs/s = the rarer of the two per second;
  and, on ELM327-emulator, python-obd's plain ``query`` in a loop (what its
  I/O does without Async's sleep: the measurement behind docs/obd.md);
* keidash's ``ObdSource`` with its defaults (slow channels every 2 s, polls
  capped at 50 Hz), and on CAN also uncapped (``max_poll_hz=None``);
* the protocol limit, one ECU reply per delay: 1 / (2 x delay) pairs/s with
  one PID per request (K-line), 1 / delay with rpm and speed in one request.

Also: connect time on a known protocol (python-obd's constructor; keidash's
link from opening the port to ready), and how long a frozen adapter takes to
be noticed (keidash: until FAILED; python-obd: until a query comes back empty,
given up on after 5 s).

Goals (exit 1 when one is missed): keidash at least 2x python-obd's Async
everywhere, at least 85 % of the limit on the K-line, connect under 1.5 s,
a frozen adapter noticed within 1 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from keidash.readings import RPM, SPEED, ReadingBus
from keidash.sim.elm327 import EmulatedELM327
from keidash.sim.truth import parked
from keidash.sources.base import CONNECTED, FAILED
from keidash.sources.obd import ObdSource

WINDOW_S = float(os.environ.get("KEIDASH_BENCH_OBD_SECONDS", "4"))
WARM_UP_S = 0.5  # after connecting: the first slow values, python-obd's first queries without a count
K_LINE_S, CAN_S = 0.050, 0.005  # ECU reply delays
GOAL_VS_PYTHON_OBD = 2.0
GOAL_OF_K_LINE_LIMIT = 0.85
GOAL_CONNECT_S = 1.5
GOAL_FROZEN_S = 1.0
PYTHON_OBD_FROZEN_GIVE_UP_S = 5.0

DRIVING = dataclasses.replace(parked(), rpm=1726.0, speed_kmh=42.0, throttle_pct=33.0, gear=3)


# -- the adapters ------------------------------------------------------------------------

@contextlib.contextmanager
def package_emulator(delay_s: float):
    """ELM327-emulator on a pty; yields (emulator, port, freeze)."""
    import elm

    emulator = elm.Elm(batch_mode=True)
    port = emulator.get_pty()
    with emulator:
        emulator.delay = delay_s

        def freeze():  # it pauses between commands: it answers the one it is reading, then nothing
            emulator.threadState = emulator.THREAD.PAUSED

        yield emulator, port, freeze


@contextlib.contextmanager
def own_emulator(protocol: str, delay_s: float):
    with EmulatedELM327(lambda: DRIVING, protocol, reply_delay_s=delay_s) as emu:
        yield emu, emu.port, emu.freeze


# -- the tools -----------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    pairs_per_s: float
    connect_s: float
    multi_pid: bool = False  # rpm and speed in one request


def python_obd_async(obd, port: str, protocol: str) -> Run:
    t0 = time.monotonic()
    connection = obd.Async(port, protocol=protocol)  # every other setting its default
    connect_s = time.monotonic() - t0
    if not connection.is_connected():
        raise SystemExit(f"python-obd did not connect to {port}")
    times = {"rpm": [], "speed": []}
    for command, key in ((obd.commands.RPM, "rpm"), (obd.commands.SPEED, "speed")):
        connection.watch(command, callback=lambda r, key=key: r.is_null() or times[key].append(time.monotonic()))
    connection.start()
    time.sleep(WARM_UP_S)
    start = time.monotonic()
    time.sleep(WINDOW_S)
    end = time.monotonic()
    connection.stop()
    connection.close()
    pairs = min(sum(start <= t < end for t in times[key]) for key in times)
    return Run(pairs / (end - start), connect_s)


def python_obd_sync(obd, port: str, protocol: str) -> Run:
    """python-obd's own query loop, no Async: what its I/O does without the 0.25 s sleep."""
    t0 = time.monotonic()
    connection = obd.OBD(port, protocol=protocol)
    connect_s = time.monotonic() - t0
    for _ in range(3):  # warm up: the first query of each command goes without a response count
        connection.query(obd.commands.RPM), connection.query(obd.commands.SPEED)
    pairs, start = 0, time.monotonic()
    while time.monotonic() - start < WINDOW_S:
        rpm, speed = connection.query(obd.commands.RPM), connection.query(obd.commands.SPEED)
        pairs += not (rpm.is_null() or speed.is_null())
    rate = pairs / (time.monotonic() - start)
    connection.close()
    return Run(rate, connect_s)


def keidash(port: str, protocol: str, **options) -> Run:
    bus = ReadingBus()
    source = ObdSource("obd", bus.put, port, protocol=protocol, **options)
    source.start()
    try:
        wait(lambda: source.status().link == CONNECTED, 20, "keidash to connect")
        time.sleep(WARM_UP_S)
        bus.drain()
        start = time.monotonic()
        time.sleep(WINDOW_S)
        readings = bus.drain()
        end = time.monotonic()
    finally:
        source.stop()
    pairs = min(sum(r.channel == channel and start <= r.t < end for r in readings) for channel in (RPM, SPEED))
    return Run(pairs / (end - start), source.connected_info.connect_s, source.connected_info.multi_pid)


def keidash_frozen_s(port: str, protocol: str, freeze) -> float:
    source = ObdSource("obd", ReadingBus().put, port, protocol=protocol)
    source.start()
    try:
        wait(lambda: source.status().link == CONNECTED, 20, "keidash to connect")
        time.sleep(WARM_UP_S)
        freeze()
        t0 = time.monotonic()
        wait(lambda: source.status().link == FAILED, 10, "keidash to notice the frozen adapter")
        return time.monotonic() - t0
    finally:
        source.stop()


def python_obd_frozen_s(obd, port: str, freeze) -> float | None:
    """How long python-obd takes to give up on a frozen adapter: from the
    freeze until a query returns empty; None if still blocked when given up on."""
    connection = obd.OBD(port, protocol="6")
    connection.query(obd.commands.RPM)
    noticed = {}
    freeze()
    t0 = time.monotonic()

    def poll():  # as python-obd's users poll: query after query
        while connection.query(obd.commands.RPM).value is not None:
            pass
        noticed["s"] = time.monotonic() - t0

    thread = threading.Thread(target=poll, daemon=True)  # ends when the emulator closes its pty
    thread.start()
    thread.join(PYTHON_OBD_FROZEN_GIVE_UP_S)
    return noticed.get("s")


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.005)


# -- the bench --------------------------------------------------------------------------------

def measure(obd, label: str, emulator, protocol: str, delay_s: float, k_line: bool) -> dict:
    with emulator(delay_s) as (_, port, _freeze):
        baseline = python_obd_async(obd, port, protocol)
    sync = None
    if label == "ELM327-emulator":
        with emulator(delay_s) as (_, port, _freeze):
            sync = python_obd_sync(obd, port, protocol)
    with emulator(delay_s) as (_, port, _freeze):
        ours = keidash(port, protocol)
    uncapped = None
    if not k_line:
        with emulator(delay_s) as (_, port, _freeze):
            uncapped = keidash(port, protocol, max_poll_hz=None)
    return dict(label=label, protocol=protocol, delay_s=delay_s, k_line=k_line, baseline=baseline, sync=sync,
                ours=ours, uncapped=uncapped)


def limit(delay_s: float, multi_pid: bool) -> float:
    """Pairs a second at one ECU reply per delay: one reply a pair with rpm and speed together, else two."""
    return 1 / delay_s if multi_pid else 1 / (2 * delay_s)


def report(m: dict) -> list[str]:
    """Print one adapter's figures; returns the goals it missed."""
    b, o, u, delay = m["baseline"], m["ours"], m["uncapped"], m["delay_s"]
    bus = "K-line model" if m["k_line"] else "CAN model"
    print(f"  {m['label']}, protocol {m['protocol']}, {bus} (ECU reply {delay * 1000:.0f} ms):")
    print(f"    protocol limit, one reply per delay: {limit(delay, False):.2f} pairs/s with one PID a request"
          + ("" if m["k_line"] else f", {limit(delay, True):.2f} with rpm+speed in one"))
    for name, run in (("python-obd Async (defaults)", b), ("python-obd query loop", m["sync"]),
                      ("keidash ObdSource (defaults)", o), ("keidash ObdSource (uncapped)", u)):
        if run is None:
            continue
        pattern = "rpm+speed in one request" if run.multi_pid else "one PID a request"
        connect = f"   connect {run.connect_s:.2f} s" if run is not u else ""
        print(f"    {name:30} {run.pairs_per_s:7.2f} pairs/s  {run.pairs_per_s / b.pairs_per_s:5.2f}x  "
              f"{run.pairs_per_s / limit(delay, run.multi_pid):4.0%} of the limit ({pattern}){connect}")
    missed = []
    where = f"{m['label']} {bus}"
    if o.pairs_per_s < GOAL_VS_PYTHON_OBD * b.pairs_per_s:
        missed.append(f"{where}: keidash under {GOAL_VS_PYTHON_OBD:.0f}x python-obd")
    if m["k_line"] and o.pairs_per_s < GOAL_OF_K_LINE_LIMIT * limit(delay, False):
        missed.append(f"{where}: keidash under {GOAL_OF_K_LINE_LIMIT:.0%} of the limit")
    if o.connect_s >= GOAL_CONNECT_S:
        missed.append(f"{where}: keidash connect {o.connect_s:.2f} s")
    return missed


def main() -> int:
    logging.basicConfig(level=logging.ERROR)  # python-obd and the package warn on every failed read
    if importlib.util.find_spec("elm") is None:
        print("obd_rate: needs the test-only ELM327-emulator package: pip install -e '.[test]'")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        # The package configures logging from its own YAML and writes elm.log in
        # the working directory unless ELM_LOG_CFG names another file.
        quiet = Path(tmp, "elm-logging.yaml")
        quiet.write_text("version: 1\nincremental: true\n")
        os.environ["ELM_LOG_CFG"] = str(quiet)
        home = os.getcwd()
        os.chdir(tmp)
        try:
            return _run()
        finally:
            os.chdir(home)


def _run() -> int:
    import obd

    obd_logger = logging.getLogger("obd")
    obd_logger.removeHandler(obd.console_handler)
    obd_logger.setLevel(logging.CRITICAL + 1)  # its threads complain as the emulators go
    t_start = time.monotonic()
    runs = [
        measure(obd, "ELM327-emulator", package_emulator, "6", K_LINE_S, k_line=True),
        measure(obd, "ELM327-emulator", package_emulator, "6", CAN_S, k_line=False),
        measure(obd, "emulated ELM327", lambda d: own_emulator("5", d), "5", K_LINE_S, k_line=True),
        measure(obd, "emulated ELM327", lambda d: own_emulator("6", d), "6", CAN_S, k_line=False),
    ]
    with package_emulator(K_LINE_S) as (_, port, freeze):
        frozen_package = keidash_frozen_s(port, "6", freeze)
    with own_emulator("5", K_LINE_S) as (_, port, freeze):
        frozen_own = keidash_frozen_s(port, "5", freeze)
    with package_emulator(0.0) as (_, port, freeze):
        frozen_python_obd = python_obd_frozen_s(obd, port, freeze)

    print(f"obd_rate: {WINDOW_S:.1f} s per run after connecting, rpm+speed pairs a second")
    missed = []
    for m in runs:
        missed += report(m)
    python_obd = (f"{frozen_python_obd:.1f} s" if frozen_python_obd is not None
                  else f"not within {PYTHON_OBD_FROZEN_GIVE_UP_S:.0f} s (a query blocks about 2 minutes)")
    print(f"  frozen adapter noticed: keidash {frozen_package:.2f} s (ELM327-emulator, 50 ms ECU), "
          f"{frozen_own:.2f} s (emulated ELM327, K-line); python-obd: {python_obd}")
    for label, seconds in (("ELM327-emulator", frozen_package), ("emulated ELM327", frozen_own)):
        if seconds >= GOAL_FROZEN_S:
            missed.append(f"{label}: frozen adapter noticed after {seconds:.2f} s")
    print(f"  goals: >= {GOAL_VS_PYTHON_OBD:.0f}x python-obd Async, >= {GOAL_OF_K_LINE_LIMIT:.0%} of the "
          f"K-line limit, connect < {GOAL_CONNECT_S} s, frozen noticed < {GOAL_FROZEN_S:.0f} s: "
          f"{'met' if not missed else 'MISSED'}  ({time.monotonic() - t_start:.0f} s)")
    for line in missed:
        print(f"    missed: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
