"""The ignition watch on gpiozero's MockFactory, with real short grace periods.

Nothing is ever powered off: the commands go to a recorder standing in for subprocess.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

from keidash.pi.ignition import POWER_OFF, STOP_DASH, IgnitionWatch, dry_run, ignition_main, power_off_action
from waiting import wait_for

GRACE_S = 0.2
#: for the tests where the key must come back in time: a wide margin against a loaded CI host
LONG_GRACE_S = 0.6
PIN = 4


class Recorder:
    """Stands in for run_command: notes each command, returns a chosen status."""

    def __init__(self, status: int = 0):
        self.commands: list[tuple[str, ...]] = []
        self.status = status
        self.lock = threading.Lock()

    def __call__(self, command) -> int:
        with self.lock:
            self.commands.append(tuple(command))
        return self.status


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def key_on(factory, active_low=True):
    pin = factory.pin(PIN)
    pin.drive_low() if active_low else pin.drive_high()


def key_off(factory, active_low=True):
    pin = factory.pin(PIN)
    pin.drive_high() if active_low else pin.drive_low()


@pytest.mark.parametrize("active_low", [True, False])
def test_key_off_stops_the_dash_then_powers_off(factory, active_low):
    run = Recorder()
    watch = IgnitionWatch(PIN, GRACE_S, power_off_action(run), pin_factory=factory,
                          active_low=active_low).start()
    try:
        key_on(factory, active_low)
        assert watch.ignition_on and not watch.pending
        key_off(factory, active_low)
        assert not watch.ignition_on and watch.pending
        assert wait_for(lambda: len(run.commands) == 2)
        time.sleep(2 * GRACE_S)  # and only once, however long it stays off
        watch.check()
        assert run.commands == [STOP_DASH, POWER_OFF]
        assert watch.fired and not watch.pending
    finally:
        watch.close()


def test_a_flicker_shorter_than_the_grace_does_nothing(factory):
    run = Recorder()
    watch = IgnitionWatch(PIN, LONG_GRACE_S, power_off_action(run), pin_factory=factory).start()
    try:
        key_on(factory)
        for _ in range(3):  # cranking: the accessory line dips and comes back
            key_off(factory)
            assert watch.pending
            time.sleep(0.05)
            key_on(factory)
            assert not watch.pending
        time.sleep(1.5 * LONG_GRACE_S)
        assert run.commands == []
        assert not watch.fired
    finally:
        watch.close()


def test_the_grace_period_restarts_after_a_flicker(factory):
    """Off, briefly on, off again: the full grace counts from the last key-off."""
    calls = []
    watch = IgnitionWatch(PIN, LONG_GRACE_S, lambda: calls.append(time.monotonic()),
                          pin_factory=factory).start()
    try:
        key_on(factory)
        key_off(factory)
        time.sleep(0.1)
        key_on(factory)
        key_off(factory)
        last_off = time.monotonic()
        assert wait_for(lambda: calls)
        assert calls[0] - last_off >= LONG_GRACE_S * 0.95  # Timer's own resolution aside
    finally:
        watch.close()


def test_off_at_start_counts_and_key_on_re_arms(factory):
    """Booted with the key off: the grace starts at once. After the action, key-on re-arms."""
    calls = []
    watch = IgnitionWatch(PIN, GRACE_S, lambda: calls.append("off"), pin_factory=factory).start()
    try:
        assert not watch.ignition_on  # pull-up, nothing driving the opto: reads off
        assert wait_for(lambda: calls == ["off"])
        key_on(factory)
        assert not watch.fired
        key_off(factory)
        assert wait_for(lambda: calls == ["off", "off"])
    finally:
        watch.close()


def test_a_failing_stop_still_powers_off():
    run = Recorder(status=1)
    power_off_action(run)()
    assert run.commands == [STOP_DASH, POWER_OFF]


def test_close_cancels_a_pending_power_off(factory):
    run = Recorder()
    watch = IgnitionWatch(PIN, GRACE_S, power_off_action(run), pin_factory=factory).start()
    key_on(factory)
    key_off(factory)
    watch.close()
    time.sleep(2 * GRACE_S)
    assert run.commands == []


def test_bad_grace_is_refused(factory):
    with pytest.raises(ValueError):
        IgnitionWatch(PIN, 0, lambda: None, pin_factory=factory)


def test_ignition_main_watches_until_stopped(factory):
    run, stop, result = Recorder(), threading.Event(), []
    thread = threading.Thread(target=lambda: result.append(
        ignition_main(PIN, GRACE_S, True, pin_factory=factory, run=run, stop=stop, poll_s=0.05)))
    thread.start()
    try:
        assert wait_for(lambda: factory.pin(PIN).pull == "up")  # the watch has opened the pin
        key_on(factory)
        time.sleep(GRACE_S / 2)
        key_off(factory)
        assert wait_for(lambda: run.commands == [STOP_DASH, POWER_OFF])
    finally:
        stop.set()
        thread.join(5)
    assert result == [0]


def test_ignition_main_says_so_when_the_pin_cannot_be_opened(factory, caplog):
    from gpiozero import DigitalInputDevice
    busy = DigitalInputDevice(PIN, pin_factory=factory)  # another program holds the pin
    try:
        assert ignition_main(PIN, GRACE_S, pin_factory=factory, run=Recorder(), stop=threading.Event()) == 1
    finally:
        busy.close()
    assert "the ignition input: GPIO4 is in use by another device or program" in caplog.text


# -- keidash ignition as a user runs it: the real CLI in a subprocess ------------------------

def ignition_cli(tmp_path, *args, factory="mock"):
    """Start ``keidash ignition``; its stderr goes to a file the test reads as it grows."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GPIOZERO_PIN_FACTORY", "INVOCATION_ID", "NOTIFY_SOCKET")}
    if factory:
        env["GPIOZERO_PIN_FACTORY"] = factory
    log = tmp_path / "ignition.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "keidash", "ignition", *args], stdout=subprocess.DEVNULL,
                                stderr=err, env=env)
    return proc, log


def test_run_by_hand_it_is_a_dry_run_that_says_what_it_would_run(tmp_path):
    # the mock pin floats up: active-low, so the ignition reads off from the start
    proc, log = ignition_cli(tmp_path, "--pin", "22", "--grace", "0.2")
    try:
        assert wait_for(lambda: "would run systemctl poweroff" in log.read_text(), timeout=60), log.read_text()
        assert proc.poll() is None  # still watching: nothing was powered off
    finally:
        proc.send_signal(signal.SIGINT)
        status = proc.wait(30)
    text = log.read_text()
    assert status == 0, text
    assert "a dry run: nothing will be powered off (--power-off does)" in text
    # it says it watches before what it saw: the key was off from the start
    assert text.index("watching the ignition on GPIO 22") < text.index("ignition off: powering off in 0.2 s")
    assert "dry run: would run systemctl stop keidash.service" in text
    assert text.index("would run systemctl stop keidash.service") < text.index("would run systemctl poweroff")
    assert "running: systemctl" not in text  # nothing was run


def test_power_off_runs_the_commands_only_when_asked():
    run = Recorder()
    assert power_off_action(run)() is None and run.commands == [STOP_DASH, POWER_OFF]
    logged: list = []
    dry = power_off_action(lambda command: logged.append(tuple(command)) or dry_run(command))
    dry()
    assert logged == [STOP_DASH, POWER_OFF]


def test_no_pin_factory_is_one_sentence_without_gpiozero_warnings(tmp_path):
    pytest.importorskip("gpiozero")
    try:
        import lgpio  # noqa: F401
        pytest.skip("lgpio is installed here: gpiozero may find a GPIO chip")
    except ImportError:
        pass
    proc, log = ignition_cli(tmp_path, "--pin", "22", factory=None)
    status = proc.wait(60)
    lines = log.read_text().strip().splitlines()
    assert status == 1
    assert lines == ["ERROR keidash.pi.ignition: the ignition input: no GPIO pins here (not a Raspberry Pi?); "
                     "set GPIOZERO_PIN_FACTORY=mock to run without them"], lines
