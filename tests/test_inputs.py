"""The dash button, the night switch and the UI state they move, on gpiozero's MockFactory.

Hold detection runs on gpiozero's own timer thread, so these tests press the mock button
for real (short) times: a hold_s of 0.2 s, presses of 0.06 s, holds of 0.4 s.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given
from hypothesis import strategies as st

from keidash.cab.inputs import PAGE, UNITS, DashButton, NightSwitch, UiState, ui_step

BUTTON, SWITCH = 21, 20
HOLD_S = 0.2


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def button(factory):
    button = DashButton(BUTTON, pin_factory=factory, hold_s=HOLD_S)
    yield button
    button.close()


def press(factory, seconds: float) -> None:
    pin = factory.pin(BUTTON)
    pin.drive_low()  # the button connects the pin to ground
    time.sleep(seconds)
    pin.drive_high()


def wait_for_events(button, count: int, timeout: float = 5.0) -> list[str]:
    events, deadline = [], time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events += button.events()
        time.sleep(0.01)
    return events


def test_the_button_pin_is_pulled_up(factory, button):
    assert factory.pin(BUTTON).pull == "up" and factory.pin(BUTTON).state == 1


def test_a_short_press_queues_page_once(factory, button):
    press(factory, 0.06)
    assert button.events() == [PAGE]
    assert button.events() == []  # drained


def test_a_hold_queues_units_while_still_held_and_nothing_on_release(factory, button):
    pin = factory.pin(BUTTON)
    pin.drive_low()
    assert wait_for_events(button, 1) == [UNITS]  # felt while the finger is still down
    time.sleep(HOLD_S)  # held twice as long: still one event (no repeat)
    pin.drive_high()
    assert button.events() == []


def test_contact_bounce_is_not_a_press(factory, button):
    pin = factory.pin(BUTTON)
    for _ in range(5):  # a few microsecond-long closures, as a worn contact makes
        pin.drive_low()
        pin.drive_high()
    assert button.events() == []


def test_presses_queue_in_order_and_the_frame_loop_folds_them(factory, button):
    press(factory, 0.06)
    time.sleep(0.02)
    press(factory, 0.06)
    time.sleep(0.02)
    pin = factory.pin(BUTTON)
    pin.drive_low()
    events = wait_for_events(button, 3)
    pin.drive_high()
    assert events == [PAGE, PAGE, UNITS]
    ui = UiState()
    for event in events:
        ui = ui_step(ui, event, pages=3)
    assert ui == UiState(page=2, units="kmh")


def test_events_are_drained_while_another_thread_presses(factory, button):
    # the callbacks run in whichever thread drives the pin; the frame loop drains meanwhile
    presser = threading.Thread(target=lambda: [press(factory, 0.04) for _ in range(8)])
    presser.start()
    drained = []
    while presser.is_alive():
        drained += button.events()
        time.sleep(0.005)
    presser.join()
    drained += button.events()
    assert drained == [PAGE] * 8


def test_the_night_switch_is_night_when_closed(factory):
    switch = NightSwitch(SWITCH, pin_factory=factory)
    pin = factory.pin(SWITCH)
    assert switch.night is False  # open: pulled up
    pin.drive_low()
    assert switch.night is True
    pin.drive_high()
    assert switch.night is False
    switch.close()
    assert switch.night is None


def test_a_pin_that_cannot_be_opened_is_one_log_line_and_no_answer(factory, caplog):
    first = NightSwitch(SWITCH, pin_factory=factory)
    with caplog.at_level(logging.WARNING):
        second = NightSwitch(SWITCH, pin_factory=factory)
        button = DashButton(SWITCH, pin_factory=factory)
    assert second.night is None and not second.available
    assert button.events() == [] and not button.available
    assert len(caplog.records) == 2 and "GPIO20 is in use" in caplog.text
    first.close()


def test_hold_must_be_longer_than_a_bounce():
    with pytest.raises(ValueError, match="hold_s"):
        DashButton(BUTTON, pin_factory=MockFactory(), hold_s=0.01)


# -- the UI state --------------------------------------------------------------------------------

def test_page_cycles_and_units_toggle():
    ui = UiState()
    assert ui == UiState(page=0, units="mph")
    ui = ui_step(ui, PAGE)
    assert ui.page == 1
    ui = ui_step(ui, PAGE)
    assert ui.page == 0  # two pages by default: back to the drive page
    ui = ui_step(ui, UNITS)
    assert ui.units == "kmh" and ui.page == 0
    assert ui_step(ui, UNITS).units == "mph"


def test_an_unknown_event_is_a_plain_error():
    with pytest.raises(ValueError, match="unknown dash button event 'dim'"):
        ui_step(UiState(), "dim")


@given(events=st.lists(st.sampled_from([PAGE, UNITS]), max_size=50), pages=st.integers(1, 5))
def test_the_ui_state_is_the_count_of_each_event(events, pages):
    ui = UiState()
    for event in events:
        ui = ui_step(ui, event, pages)
    assert ui.page == events.count(PAGE) % pages
    assert ui.units == ("kmh" if events.count(UNITS) % 2 else "mph")
