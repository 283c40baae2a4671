"""The cluster, rendered headless: what the driver would see, checked by pixels."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import dataclasses  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pygame  # noqa: E402
import pytest  # noqa: E402

from keidash.dashstate import ABSENT, DOWN, LIVE, STALE, UP, DashState, SourceView  # noqa: E402
from keidash.display import cluster as cluster_mod  # noqa: E402
from keidash.display.cluster import Cluster, Layout, gear_text, speed_texts  # noqa: E402

SIZE = (800, 480)


def drive(**changes) -> DashState:
    """A truck pulling away in third, everything live."""
    state = DashState(
        t=100.0, profile_title="Test truck", rpm=3200.0, rpm_estimated=False, speed_kmh=62.0,
        gear=3, cue=None, upshift_rpm=3500.0, redline_rpm=6000.0, tach_max_rpm=8000.0,
        coolant_c=86.0, battery_v=14.1,
        sources=(SourceView("obd", LIVE), SourceView("gps", LIVE)),
        speed_source="gps", rpm_source="obd")
    return dataclasses.replace(state, **changes)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(size=SIZE, headless=True)
    yield c
    c.close()


def region(c: Cluster, state: DashState, rect) -> bytes:
    c.render(state)
    return pygame.image.tobytes(c.surface.subsurface(rect), "RGB")


def count_colour(c: Cluster, rect, colour) -> int:
    """Pixels in ``rect`` of the last frame that are exactly ``colour``."""
    return pygame.mask.from_threshold(c.surface.subsurface(rect), colour, (1, 1, 1, 255)).count()


def test_mid_drive_renders_and_saves_png(cluster, tmp_path):
    cluster.render(drive())
    path = tmp_path / "frame.png"
    cluster.save(path)
    assert path.stat().st_size > 1000
    assert pygame.image.load(str(path)).get_size() == SIZE


def test_needle_follows_rpm(cluster):
    lay = cluster.layout
    x, y, w, _ = lay.tach_rect
    h = lay.rpm_digits_rect[1] - y  # above the rpm digits, which are in the needle's colour
    left, right = (x, y, w // 2, h), (x + w // 2, y, w // 2, h)
    def needle_pixels():
        return tuple(count_colour(cluster, half, cluster_mod.NEEDLE) for half in (left, right))

    at_1000 = region(cluster, drive(rpm=1000.0), lay.tach_rect)
    low = needle_pixels()
    at_5000 = region(cluster, drive(rpm=5000.0), lay.tach_rect)
    high = needle_pixels()
    assert at_1000 != at_5000
    # at 1000 rpm the needle points lower left, at 5000 upper right
    assert low[0] > 200 and low[0] > 5 * low[1]
    assert high[1] > 200 and high[1] > 5 * high[0]


def test_red_zone_from_redline_to_full_scale(cluster):
    state = drive(rpm=1000.0, redline_rpm=6000.0, tach_max_rpm=8000.0)
    cluster.render(state)
    lay = cluster.layout
    r, g, b, _ = cluster.surface.get_at(lay.tach_point(7250.0, 8000.0, 0.865))
    assert r > 180 and g < 80 and b < 80
    r, g, b, _ = cluster.surface.get_at(lay.tach_point(5250.0, 8000.0, 0.865))
    assert not (r > 120 and r > 2 * g), "the red zone starts at the redline, not before"


def test_no_rpm_no_needle_and_dashes(cluster):
    lay = cluster.layout
    none_a = region(cluster, drive(rpm=None), lay.tach_rect)
    for colour in (cluster_mod.NEEDLE, cluster_mod.ESTIMATED):
        assert count_colour(cluster, lay.tach_rect, colour) == 0
    # the rest of the dash changing does not touch an rpm-less tach
    none_b = region(cluster, drive(rpm=None, rpm_estimated=True, speed_kmh=None, gear=0, cue=UP),
                    lay.tach_rect)
    assert none_a == none_b
    assert count_colour(cluster, lay.tach_rect, cluster_mod.ESTIMATED) == 0
    # while an rpm, even 0, does show a needle and digits
    zero = region(cluster, drive(rpm=0.0), lay.tach_rect)
    assert count_colour(cluster, lay.tach_rect, cluster_mod.NEEDLE) > 100
    assert zero != none_a
    # "----" is dim: no bright digits where the rpm would be
    cluster.render(drive(rpm=None))
    assert count_colour(cluster, lay.rpm_digits_rect, cluster_mod.DIM) > 20
    assert count_colour(cluster, lay.rpm_digits_rect, cluster_mod.TEXT) == 0


def test_estimated_rpm_looks_different(cluster):
    lay = cluster.layout
    measured = region(cluster, drive(rpm=3000.0), lay.tach_rect)
    assert count_colour(cluster, lay.tach_rect, cluster_mod.ESTIMATED) == 0
    estimated = region(cluster, drive(rpm=3000.0, rpm_estimated=True), lay.tach_rect)
    assert measured != estimated
    # needle, digits and the EST badge
    assert count_colour(cluster, lay.tach_rect, cluster_mod.ESTIMATED) > 300
    assert count_colour(cluster, lay.tach_rect, cluster_mod.NEEDLE) == 0


def test_shift_cues_are_distinct(cluster):
    lay = cluster.layout
    shots = {cue: region(cluster, drive(cue=cue), lay.shift) for cue in (None, UP, DOWN)}
    assert len(set(shots.values())) == 3
    x, y, w, _ = lay.shift
    top_middle = (x + w // 2, y + 2)
    cluster.render(drive(cue=UP))
    assert cluster.surface.get_at(top_middle)[:3] == cluster_mod.CUE_UP
    cluster.render(drive(cue=DOWN))
    assert cluster.surface.get_at(top_middle)[:3] == cluster_mod.CUE_DOWN
    cluster.render(drive(cue=None))
    assert cluster.surface.get_at(top_middle)[:3] not in (cluster_mod.CUE_UP, cluster_mod.CUE_DOWN)


def test_missing_speed_shows_dim_dashes(cluster):
    lay = cluster.layout
    known = region(cluster, drive(speed_kmh=62.0), lay.speed)
    assert count_colour(cluster, lay.speed, cluster_mod.TEXT) > 500
    unknown = region(cluster, drive(speed_kmh=None), lay.speed)
    assert known != unknown
    assert count_colour(cluster, lay.speed, cluster_mod.TEXT) == 0
    assert count_colour(cluster, lay.speed, cluster_mod.DIM) > 50


def test_speed_texts_in_mph_and_kmh():
    assert speed_texts(100.0) == ("62", "100")
    assert speed_texts(0.4) == ("0", "0")
    assert speed_texts(120.0) == ("75", "120")
    assert speed_texts(None) == ("--", "--")


def test_kmh_figure_changes_with_speed(cluster):
    lay = cluster.layout
    # both are 62 mph: only the small km/h figure tells them apart
    at_100 = region(cluster, drive(speed_kmh=100.0), lay.speed)
    assert at_100 != region(cluster, drive(speed_kmh=99.0), lay.speed)


def test_gear_text():
    assert [gear_text(g) for g in (None, 0, 1, 5, 6)] == ["-", "N", "1", "5", "6"]


def test_gear_region_changes(cluster):
    lay = cluster.layout
    shots = {g: region(cluster, drive(gear=g), lay.gear) for g in (None, 0, 1, 5)}
    assert len(set(shots.values())) == 4


def test_source_dots_show_source_state(cluster):
    sources = (SourceView("obd", LIVE), SourceView("gps", STALE, "no fix for 12 s"),
               SourceView("pulses", ABSENT, "GPIO17 not wired"))
    cluster.render(drive(sources=sources))
    for i, source in enumerate(sources):
        dot = cluster.surface.get_at(cluster.layout.source_dot(i))[:3]
        assert dot == cluster_mod.SOURCE_COLOURS[source.state], source


def test_status_shows_first_problem(cluster):
    lay = cluster.layout
    fine = region(cluster, drive(), lay.status)
    sources = (SourceView("obd", LIVE), SourceView("gps", STALE, "no fix for 12 s"))
    stale = region(cluster, drive(sources=sources), lay.status)
    assert fine != stale
    # the message is shown in the stale colour, beyond the dots and names
    cluster.render(drive(sources=(SourceView("obd", LIVE), SourceView("gps", STALE, "no fix"))))
    x, y, w, h = lay.status
    beyond = (x + 2 * lay.source_slot, y, w // 2 - 2 * lay.source_slot, h)
    assert count_colour(cluster, beyond, cluster_mod.SOURCE_COLOURS[STALE]) > 20


def test_long_message_does_not_cover_title(cluster):
    lay = cluster.layout
    title_only = drive(sources=(SourceView("obd", STALE, ""),))
    long = drive(sources=(SourceView("obd", STALE, "x" * 500),))
    x, y, w, h = lay.status
    right = (x + w - lay.source_slot, y, lay.source_slot, h)  # where the title sits
    assert region(cluster, title_only, right) == region(cluster, long, right)


def test_static_face_is_built_once(cluster):
    a = cluster._background(drive(rpm=1000.0, speed_kmh=10.0))
    assert cluster._background(drive(rpm=5000.0, cue=UP)) is a
    assert cluster._background(drive(redline_rpm=5500.0)) is not a


@pytest.mark.parametrize("size", [(800, 480), (1024, 600), (480, 320), (1280, 720)])
def test_layout_fits_other_screens(size):
    lay = Layout.for_size(size)
    w, h = size
    boxes = [lay.shift, lay.tach_rect, lay.speed, lay.gear, lay.gauges, lay.status]
    for bx, by, bw, bh in boxes:
        assert bx >= 0 and by >= 0 and bx + bw <= w and by + bh <= h and bw > 0 and bh > 0
    rects = [pygame.Rect(b) for b in boxes]
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not a.colliderect(b), (a, b)


def test_other_size_renders():
    c = Cluster(size=(1024, 600), headless=True)
    try:
        c.render(drive(cue=DOWN, rpm_estimated=True))
        assert c.surface.get_size() == (1024, 600)
    finally:
        c.close()


def test_poll_quit():
    c = Cluster(size=SIZE, headless=True)
    try:
        assert c.poll_quit() is False
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q))
        assert c.poll_quit() is True
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        assert c.poll_quit() is True
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE))
        assert c.poll_quit() is False
    finally:
        c.close()


def test_import_does_not_load_pygame():
    code = ("import sys, keidash.display.cluster\n"
            "assert 'pygame' not in sys.modules, 'pygame imported at module import'\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("env, headless", [
    ({}, True),
    ({"DISPLAY": ":0"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0"}, False),
    ({"SDL_VIDEODRIVER": "kmsdrm"}, False),
    ({"DISPLAY": ":0", "SDL_VIDEODRIVER": "dummy"}, True),
])
def test_headless_when_there_is_no_display(monkeypatch, env, headless):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cluster_mod._is_headless() is headless


def test_window_path_draws_on_the_display_surface():
    # SDL's dummy driver stands in for a window: set_mode works, nothing is shown
    c = Cluster(size=SIZE, fullscreen=True, headless=False)
    try:
        assert c.surface is pygame.display.get_surface()
        assert pygame.mouse.get_visible() is False
        c.render(drive(cue=UP))
        assert c.surface.get_at((c.layout.shift[0] + c.layout.shift[2] // 2,
                                 c.layout.shift[1] + 2))[:3] == cluster_mod.CUE_UP
    finally:
        c.close()


def test_live_source_with_counted_errors_shows_them_in_the_status_strip(cluster):
    clean = drive(sources=(SourceView("gps", LIVE, "", 0),))
    noisy = drive(sources=(SourceView("gps", LIVE, "3 errors: checksum 3", 3),))
    x, y, w, h = cluster.layout.status
    message_area = (x + w // 5, y, w // 3, h)  # right of the dot and name, left of the title
    assert region(cluster, clean, message_area) != region(cluster, noisy, message_area)
