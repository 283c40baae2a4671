"""What an owner of another dash expects (issue 14): alarms, deg F, peak hold, 4WD low, every
profile in the demo. Each is run as the owner runs it: the CLI in a subprocess, its screenshot read."""

import os
import subprocess
import sys

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import pygame  # noqa: E402
import pytest  # noqa: E402

from keidash.cab import AlarmLimits, alarms_step  # noqa: E402
from keidash.dashstate import BATTERY_HIGH, BATTERY_LOW, COOLANT_HOT  # noqa: E402
from keidash.display.layout import Layout  # noqa: E402
from keidash.display.texts import coolant_text  # noqa: E402
from keidash.display.theme import DAY, NIGHT  # noqa: E402

ENV = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "keidash", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def count_colour(surface, rect, colour) -> int:
    return pygame.mask.from_threshold(surface.subsurface(rect), colour, (1, 1, 1, 255)).count()


def alarm_pixels(surface, rect) -> int:
    """Pixels of the alarm's red, by day or by night (the theme follows the clock)."""
    return sum(count_colour(surface, rect, theme.alarm) for theme in (DAY, NIGHT))


def test_alarms_go_off_at_the_limit_and_clear_only_well_inside_it():
    limits = AlarmLimits()
    on = ()
    seen = []
    for coolant in (95.0, 104.9, 105.0, 103.0, 102.5, 101.9, None, 106.0):
        on = alarms_step(on, coolant, 14.0, limits)
        seen.append(COOLANT_HOT in on)
    # on at 105, still on at 103 and 102.5 (3 deg of hysteresis), off under 102, a lost value changes nothing
    assert seen == [False, False, True, True, True, False, False, True]
    assert alarms_step((), 80.0, 11.5, limits) == (BATTERY_LOW,)
    assert alarms_step((BATTERY_LOW,), 80.0, 12.0, limits) == (BATTERY_LOW,)  # not 0.3 V above yet
    assert alarms_step((BATTERY_LOW,), 80.0, 12.2, limits) == ()
    assert alarms_step((), 80.0, 15.2, limits) == (BATTERY_HIGH,)
    assert alarms_step((), float("nan"), float("nan"), limits) == ()


def test_coolant_in_fahrenheit():
    assert coolant_text(100.0, "F") == "212\N{DEGREE SIGN}F"
    assert coolant_text(84.0) == "84\N{DEGREE SIGN}C"
    assert coolant_text(None, "F") == "--"


def write_config(tmp_path, extra: str) -> str:
    config = tmp_path / "truck.toml"
    config.write_text('profile = "hijet-s500p"\n[sources]\nobd = "sim://hijet-s500p?hardware=obd&skip=300"\n'
                      + extra)
    return str(config)


@pytest.mark.slow
def test_an_alarm_limit_in_the_config_turns_the_row_and_the_status_strip_red(tmp_path):
    # the virtual truck's alternator charges at 14.1 V: a 13.5 V upper limit must go off
    shot = tmp_path / "shot.png"
    config = write_config(tmp_path, "[alarms]\nbattery_high_v = 13.5\n")
    out = run_cli("run", "--config", config, "--headless", "--seconds", "6", "--screenshot", str(shot))
    assert out.returncode == 0, out.stderr
    image = pygame.image.load(str(shot))
    lay = Layout.for_size(image.get_size())
    coolant_row, battery_row = lay.info_rows[:2]
    assert alarm_pixels(image, battery_row) > 0.4 * battery_row[2] * battery_row[3]
    assert alarm_pixels(image, coolant_row) == 0
    assert alarm_pixels(image, lay.message_strip) > 0.3 * lay.message_strip[2] * lay.message_strip[3]
    # the default limits (15.0 V) stay quiet on the same truck
    quiet = tmp_path / "quiet.png"
    out = run_cli("run", "--config", write_config(tmp_path, ""), "--headless", "--seconds", "6",
                  "--screenshot", str(quiet))
    assert out.returncode == 0, out.stderr
    image = pygame.image.load(str(quiet))
    assert alarm_pixels(image, battery_row) == 0


@pytest.mark.parametrize("extra,message", [
    ("[alarms]\ncoolant_hot_c = 300\n", "coolant_hot_c must be a positive number from 60 to 150 deg C, not 300"),
    ("[alarms]\nbattery_low_v = 12.9\nbattery_high_v = 13.0\n", None),
    ("[alarms]\nbattery_low_v = 13\nbattery_high_v = 13\n", "battery_low_v must be below battery_high_v"),
    ("[alarms]\nbeep = 1\n", "unknown key 'beep'"),
    ('[display]\ntemperature = "K"\n', 'temperature must be "C" or "F", not \'K\''),
])
def test_alarm_and_temperature_settings_are_checked(tmp_path, extra, message):
    out = run_cli("run", "--config", write_config(tmp_path, extra), "--headless", "--seconds", "1")
    if message is None:
        assert out.returncode == 0, out.stderr
    else:
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


# -- point 3: every profile in the demo, never a silent blank tach ------------------------------

from keidash.profiles import list_profiles, load_profile  # noqa: E402


def pixels_of(surface, rect, colours) -> int:
    return sum(count_colour(surface, rect, c) for c in colours)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_profiles())
def test_every_profile_runs_in_the_demo_and_a_blank_tach_says_why(name, tmp_path):
    """GPS only, as most owners start: a sourced gearbox gives an estimated needle; none gives
    the dash's sentence of what it needs in the message strip, never a blank tach in silence."""
    shot = tmp_path / "shot.png"
    out = run_cli("demo", "--profile", name, "--hardware", "gps", "--skip", "300", "--seconds", "6",
                  "--headless", "--screenshot", str(shot))
    assert out.returncode == 0, out.stderr
    profile = load_profile(name)
    image = pygame.image.load(str(shot))
    lay = Layout.for_size(image.get_size())
    strip = lay.message_strip
    warning = pixels_of(image, strip, (DAY.warning, NIGHT.warning))
    if profile.ratios_known:
        assert "no sourced gear ratios" not in out.stderr
        estimated = pixels_of(image, lay.rpm_digits_rect, (DAY.estimated, NIGHT.estimated))
        assert estimated > 50 and warning == 0
    else:
        assert f"{profile.title} has no sourced gear ratios" in out.stderr
        assert warning > 0.3 * strip[2] * strip[3]  # the estimator's NEEDS_RATIOS, in the warning strip
