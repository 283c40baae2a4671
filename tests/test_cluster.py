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
from keidash.display.cluster import DIM, NEEDLE, SOURCE_COLOURS, TEXT  # noqa: E402

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


def test_long_message_does_not_cover_clock(cluster):
    lay = cluster.layout
    title_only = drive(sources=(SourceView("obd", STALE, ""),), wall_time=1.7e9)
    long = drive(sources=(SourceView("obd", STALE, "x" * 500),), wall_time=1.7e9)
    right = lay.clock  # the clock took the profile title's place (the title is on the trip page)
    assert region(cluster, title_only, right) == region(cluster, long, right)


def test_static_face_is_built_once(cluster):
    a = cluster._background(drive(rpm=1000.0, speed_kmh=10.0))
    assert cluster._background(drive(rpm=5000.0, cue=UP)) is a
    face = cluster._faces[cluster._face_key_of(drive())]
    cluster._background(drive(upshift_rpm=4200.0))  # the notch moves: the face is not built again
    assert cluster._faces[cluster._face_key_of(drive())] is face
    cluster._background(drive(redline_rpm=5500.0))
    assert cluster._face_key_of(drive(redline_rpm=5500.0)) in cluster._faces


def surface_bytes(c: Cluster) -> int:
    """Pixel bytes of every Surface the cluster keeps (its caches and static layers)."""
    surfaces = [*c._faces.values(), c._notched, *c._texts.values(), *(g.ink for g in c._glyphs.values())]
    return sum(s.get_pitch() * s.get_height() for s in surfaces if s is not None)


def test_static_layer_stays_bounded_over_a_long_drive():
    """Every upshift point, theme and page of a long drive: the Surfaces kept stop growing.

    The upshift point moves with the gear, the load and the coolant; a static layer kept
    per point held 1.5 MB each (800x480) for as long as the dash ran. After 600 frames
    through 200 points, both themes and both pages, the cluster keeps no more than it kept
    in the first 300 (its caches are full by then; a change of theme empties them), and
    the reused background is pixel for pixel the one a new cluster builds.
    """
    c = Cluster(size=SIZE, headless=True)
    try:
        def frame(i: int) -> DashState:
            return drive(upshift_rpm=2500.0 + 10 * (i % 200), night=i < 100, page=1 if i % 13 == 0 else 0,
                         coolant_c=40.0 + (i % 100) / 2, battery_v=12.0 + (i % 30) / 10, trip_km=(i % 100) / 10)
        kept = []
        for i in range(600):
            c.render(frame(i))
            kept.append(surface_bytes(c))
        assert max(kept[300:]) <= 1.02 * max(kept[:300])  # texts of other widths: a few KB either way
        assert len(c._faces) <= cluster_mod.FACE_CACHE_SIZE
        assert len(c._texts) <= cluster_mod.TEXT_CACHE_SIZE
        last = frame(599)
        fresh = Cluster(size=SIZE, headless=True)
        try:
            assert (pygame.image.tobytes(c._background(last), "RGB")
                    == pygame.image.tobytes(fresh._background(last), "RGB"))
        finally:
            fresh.close()
    finally:
        c.close()


def cached_surfaces(c: Cluster) -> dict:
    """Every text and glyph Surface the cluster keeps, by cache key: {key: the Surface object}."""
    return {**{("text", *key): s for key, s in c._texts.items()},
            **{("glyph", *key): g.ink for key, g in c._glyphs.items()}}


def test_a_value_splits_into_its_figure_and_its_unit():
    """The number goes to the glyphs, the unit to the labels; words and sentences stay whole."""
    split = cluster_mod._figure_and_unit
    assert split("14.1 V") == ("14.1 ", "V")
    assert split("84\N{DEGREE SIGN}C") == ("84", "\N{DEGREE SIGN}C")
    assert split("1,234.5 km") == ("1,234.5 ", "km")
    assert split("3,450 rpm") == ("3,450 ", "rpm")
    assert split("--:--") == ("--:--", "")
    for whole in ("4WD LOW", "learning 3/5", "obd: 3 errors", "GEAR", "N", "x1000 r/min"):
        assert split(whole) == (None, whole)


def test_figures_come_from_a_fixed_glyph_set_whatever_the_values():
    """Values changing every frame through their whole range render no new text after the first frames.

    The speed, rpm, clock and the numbers of coolant, battery, trip, odometer, peak rpm and top
    speed are drawn glyph by glyph (the ten digits of a size and colour rendered together) with
    their unit as a label. A Surface per value shown ("84°C", "14.1 V", "23.5 km") filled the
    text cache for minutes of a drive and, once full, replaced one text with another frame after
    frame. After each theme's first frames the cluster's text and glyph Surfaces are the very
    same objects for 300 more frames in which every figure changes, both pages, mph and km/h.
    """
    c = Cluster(size=SIZE, headless=True)
    try:
        def frame(i: int, night: bool) -> DashState:
            return drive(t=100.0 + i / 60, night=night, rpm=None if i % 50 == 30 else (i * 137) % 8000,
                         rpm_estimated=i % 7 == 0, speed_kmh=None if i % 50 == 25 else float(i % 141),
                         coolant_c=40.0 + (i * 3) % 71, battery_v=11.0 + (i % 50) / 10, trip_km=i * 0.37,
                         odometer_km=12000.0 + 1.3 * i, wall_time=1.7e9 + 60 * i, peak_rpm=float(4000 + i * 7),
                         top_speed_kmh=float(60 + i % 80), units="kmh" if i % 40 >= 20 else "mph",
                         page=1 if i % 30 >= 25 else 0)

        for night in (False, True):
            for i in range(60):  # each figure's first frames: its size, colour and unit seen once
                c.render(frame(i, night))
            kept = cached_surfaces(c)
            for i in range(60, 360):
                c.render(frame(i, night))
                now = cached_surfaces(c)
                new = sorted(str(key[:2]) for key in now.keys() - kept.keys())
                assert not new, f"frame {i}: rendered again {new[:5]}"
                assert all(now[key] is kept[key] for key in now), f"frame {i}: a cached surface was replaced"
            assert len(c._texts) < cluster_mod.TEXT_CACHE_SIZE  # labels only: the cache never evicts
    finally:
        c.close()


def test_dusk_replaces_the_day_surfaces_instead_of_adding_to_them():
    """At dusk the day theme's face, glyphs and texts are dropped: night holds what day held.

    Kept, they were about 3 MB at 800x480 for the hours until dawn (bench/demo_rss.py's
    20-minute run stepped up 4.9 MB when the night theme came on).
    """
    c = Cluster(size=SIZE, headless=True)
    try:
        def frames(night: bool):
            for i in range(40):
                c.render(drive(night=night, rpm=1000.0 + 100 * i, speed_kmh=float(i), coolant_c=60.0 + i,
                               page=1 if i in (10, 11) else 0))
            return surface_bytes(c)
        day = frames(False)
        night = frames(True)
        assert all(key[0] for key in c._faces)  # no day face left
        assert night <= day * 1.02  # the same texts and glyphs, in other colours
        day_again = frames(False)
        assert all(not key[0] for key in c._faces)
        assert day_again <= day * 1.02
        fresh = Cluster(size=SIZE, headless=True)
        try:
            fresh.render(drive(coolant_c=99.0))
            c.render(drive(coolant_c=99.0))
            assert pygame.image.tobytes(c.surface, "RGB") == pygame.image.tobytes(fresh.surface, "RGB")
        finally:
            fresh.close()
    finally:
        c.close()


def test_upshift_notch_moves_with_the_upshift_point(cluster):
    lay = cluster.layout
    low = pygame.image.tobytes(cluster._background(drive(upshift_rpm=3000.0)).subsurface(lay.tach_rect), "RGB")
    high = pygame.image.tobytes(cluster._background(drive(upshift_rpm=5000.0)).subsurface(lay.tach_rect), "RGB")
    again = pygame.image.tobytes(cluster._background(drive(upshift_rpm=3000.0)).subsurface(lay.tach_rect), "RGB")
    assert low != high
    assert again == low  # the old notch is gone, not drawn over


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


# -- layouts, themes, elements and the dirty-rectangle renderer (issue 5) ----------------------

from keidash.display.cluster import FullRedrawCluster, shift_bar_key  # noqa: E402
from keidash.display.layout import LAYOUTS, choose_layout  # noqa: E402
from keidash.display.texts import clock_text, distance_text, gear_label  # noqa: E402
from keidash.display.theme import DAY, NIGHT  # noqa: E402


def ink_height(surface, rect, colour) -> int:
    """Rows of ``rect`` holding at least one pixel exactly ``colour``."""
    mask = pygame.mask.from_threshold(surface.subsurface(rect), colour, (1, 1, 1, 255))
    boxes = mask.get_bounding_rects()
    if not boxes:
        return 0
    return max(b.bottom for b in boxes) - min(b.top for b in boxes)


@pytest.mark.parametrize("size, name", [
    ((800, 480), "800x480"), ((480, 320), "480x320"), ((1024, 600), "1024x600"),
    ((1280, 400), "1280x400"), ((1920, 480), "1280x400"), ((1280, 720), "1024x600"),
    ((320, 240), "480x320"), ((720, 480), "800x480")])
def test_layout_chosen_by_aspect_and_size(size, name):
    assert choose_layout(size) == name


def test_unknown_layout_is_a_clear_error():
    with pytest.raises(ValueError, match="1280x400"):
        Cluster(layout="1920x1080", headless=True)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_named_layout_fits_and_figures_are_a_quarter_of_the_height(name):
    c = Cluster(layout=name, headless=True)
    try:
        lay = c.layout
        w, h = lay.size
        assert c.surface.get_size() == LAYOUTS[name][0]
        boxes = [lay.shift, lay.tach_rect, lay.speed, lay.gear, lay.info, lay.status]
        for bx, by, bw, bh in boxes + [lay.page, lay.clock, lay.status_message]:
            assert bx >= 0 and by >= 0 and bx + bw <= w and by + bh <= h and bw > 0 and bh > 0
        rects = [pygame.Rect(b) for b in boxes]
        for i, a in enumerate(rects):
            for b in rects[i + 1:]:
                assert not a.colliderect(b), (name, a, b)
        # the widest speed the truck shows, and the tallest gear figure, measured in pixels
        c.render(drive(speed_kmh=188.0 / 0.621371, units="mph", gear=4))
        assert ink_height(c.surface, lay.speed, TEXT) >= 0.25 * h
        assert ink_height(c.surface, lay.gear, TEXT) >= 0.25 * h
        c.render(drive(speed_kmh=188.0, units="kmh"))  # three digits fit their panel
        left = pygame.Rect(lay.speed).inflate(-4, -4)
        mask = pygame.mask.from_threshold(c.surface.subsurface(left), TEXT, (1, 1, 1, 255))
        assert mask.get_bounding_rects() and min(b.left for b in mask.get_bounding_rects()) > 0
    finally:
        c.close()


def frames(n: int = 90) -> list[DashState]:
    """A short drive: a pull through the ramp into the flashing bar, cues, pages, night, gaps."""
    out = []
    for i in range(n):
        t = 100.0 + i / 30
        rpm = 1800.0 + 40.0 * i
        out.append(drive(
            t=t, rpm=None if 40 <= i < 44 else rpm, rpm_estimated=50 <= i < 60,
            speed_kmh=None if 20 <= i < 23 else 30.0 + i / 3, gear=2 + i // 30,
            cue=DOWN if 70 <= i < 75 else None, coolant_c=None if i % 17 == 0 else 80 + i / 9,
            trip_km=i / 10, odometer_km=12000 + i / 10, wall_time=1.7e9 + 20 * i,
            night=80 <= i < 85, page=1 if 60 <= i < 66 else 0, low_range=i >= 86,
            message="GPS antenna unplugged" if 30 <= i < 33 else "",
            sources=(SourceView("obd", LIVE), SourceView("gps", STALE if i % 11 == 0 else LIVE))
            # a fourth and a fifth source for a while: their names take room from the trouble beside them
            + ((SourceView("pulses", ABSENT, "GPIO17 not wired"), SourceView("mic", LIVE))[:1 + (i >= 13)]
               if 10 <= i < 16 else ())))
    return out


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_dirty_rectangles_give_the_same_pixels_as_a_full_redraw(name):
    dirty = Cluster(layout=name, headless=True)
    full = FullRedrawCluster(layout=name, headless=True)
    try:
        redrawn = []
        for state in frames():
            dirty.render(state)
            full.render(state)
            assert (pygame.image.tobytes(dirty.surface, "RGB")
                    == pygame.image.tobytes(full.surface, "RGB")), state
            redrawn.append(sum(w * h for _, _, w, h in dirty.last_dirty))
        # and it redraws less: on average under a third of the screen per frame
        w, h = dirty.layout.size
        assert sum(redrawn) / len(redrawn) < w * h / 3
    finally:
        dirty.close()
        full.close()


def test_nothing_changed_nothing_redrawn(cluster):
    cluster.render(drive())
    cluster.render(drive(t=100.01))
    assert cluster.last_dirty == []
    # the needle moving touches the tach only
    cluster.render(drive(t=100.02, rpm=3205.0))  # same shift lamps lit
    assert cluster.last_dirty
    tach = pygame.Rect(cluster.layout.tach_rect)
    assert all(tach.contains(r) for r in cluster.last_dirty)


def test_shift_progression_then_flash_at_6_hz():
    up, ramp = 3500.0, cluster_mod.SHIFT_RAMP_RPM
    assert shift_bar_key(drive(rpm=up - ramp - 100, upshift_rpm=up)) == ("ramp", 0)
    assert shift_bar_key(drive(rpm=up - ramp, upshift_rpm=up)) == ("ramp", 1)
    lit = [shift_bar_key(drive(rpm=up - ramp + r, upshift_rpm=up))[1] for r in range(0, int(ramp), 25)]
    assert lit == sorted(lit) and lit[-1] == 12
    assert shift_bar_key(drive(rpm=None)) == ("ramp", 0)
    assert shift_bar_key(drive(rpm=1000.0, cue=DOWN)) == ("down",)
    # at and past the upshift point, or on an up cue, the bar flashes: 6 on-off cycles a second
    for state in (drive(rpm=up, upshift_rpm=up), drive(rpm=2000.0, cue=UP)):
        phases = [shift_bar_key(dataclasses.replace(state, t=100.0 + i / 240))[1] for i in range(240)]
        switches = sum(a != b for a, b in zip(phases, phases[1:]))
        assert switches in (11, 12) and phases.count(True) == 120


def test_shift_ramp_lights_left_to_right(cluster):
    lay = cluster.layout
    cluster.render(drive(rpm=3500 - cluster_mod.SHIFT_RAMP_RPM + 10, upshift_rpm=3500.0))
    first = cluster.surface.get_at(pygame.Rect(lay.shift_segment(0)).center)[:3]
    last = cluster.surface.get_at(pygame.Rect(lay.shift_segment(11)).center)[:3]
    assert first == DAY.segments[0] and last == DAY.segment_off
    cluster.render(drive(rpm=3499.0, upshift_rpm=3500.0))
    assert cluster.surface.get_at(pygame.Rect(lay.shift_segment(11)).center)[:3] == DAY.segments[11]


def test_night_theme_is_dim_and_switches_back(cluster):
    def brightness() -> float:
        return sum(pygame.transform.average_color(cluster.surface)[:3]) / 3
    cluster.render(drive())
    day = brightness()
    cluster.render(drive(night=True))
    night = brightness()
    cluster.render(drive())
    assert brightness() == day
    assert night < 0.7 * day
    # no pure white-ish pixel at night
    cluster.render(drive(night=True))
    assert count_colour(cluster, (0, 0, *SIZE), DAY.text) == 0
    assert count_colour(cluster, cluster.layout.speed, NIGHT.text) > 500


def test_low_range_marker(cluster):
    lay = cluster.layout
    assert gear_label(1, True) == "1L" and gear_label(0, True) == "NL" and gear_label(None, True) == "-"
    cluster.render(drive(gear=1))
    assert count_colour(cluster, lay.gear, DAY.low_range) == 0
    cluster.render(drive(gear=1, low_range=True))
    assert count_colour(cluster, lay.gear, DAY.low_range) > 200


def test_message_strip_and_clock(cluster):
    lay = cluster.layout
    cluster.render(drive(message=""))
    assert count_colour(cluster, lay.status_message, DAY.warning) == 0
    cluster.render(drive(message="logging paused: disk full"))
    assert count_colour(cluster, lay.message_strip, DAY.warning) > 0.5 * lay.message_strip[2] * lay.status[3]
    assert clock_text(None) == "--:--"
    import time
    assert clock_text(1.7e9) == time.strftime("%H:%M", time.localtime(1.7e9))
    no_clock = region(cluster, drive(wall_time=None), lay.clock)
    assert count_colour(cluster, lay.clock, DAY.text) == 0
    assert region(cluster, drive(wall_time=1.7e9), lay.clock) != no_clock


def test_distances_in_the_drivers_units():
    assert distance_text(10.0, "mph", 1) == "6.2 mi"
    assert distance_text(10.0, "kmh", 1) == "10.0 km"
    assert distance_text(123456.0, "kmh", 0) == "123,456 km"
    assert distance_text(None, "mph", 1) == "--"


def test_units_swap_the_big_figure(cluster):
    lay = cluster.layout
    assert region(cluster, drive(units="mph"), lay.speed) != region(cluster, drive(units="kmh"), lay.speed)


def test_missing_values_are_dashes_never_old_figures(cluster):
    lay = cluster.layout
    cluster.render(drive())
    for row in lay.info_rows[:2]:
        assert count_colour(cluster, row, TEXT) > 50
    cluster.render(drive(coolant_c=None, battery_v=None, trip_km=None, odometer_km=None))
    for row in lay.info_rows:
        assert count_colour(cluster, row, TEXT) == 0
        assert count_colour(cluster, row, DIM) > 10


def test_trip_page_keeps_speed_and_gear(cluster):
    lay = cluster.layout
    state = drive(page=1, trip_km=42.0, sources=(SourceView("gps", STALE, "no fix for 12 s"),))
    cluster.render(state)
    assert count_colour(cluster, lay.tach_rect, NEEDLE) == 0  # no tach on the trip page
    assert count_colour(cluster, lay.speed, TEXT) > 500
    assert count_colour(cluster, lay.gear, TEXT) > 500
    assert count_colour(cluster, lay.page, SOURCE_COLOURS[STALE]) > 50  # the source and its why
    cluster.render(drive(page=0))
    assert count_colour(cluster, lay.tach_rect, NEEDLE) > 100


# -- the cluster as a driver sees it (issue 14, point 7) ---------------------------------------

from keidash.dashstate import FAILED  # noqa: E402
from keidash.display.cluster import FACE_LABEL, STATUS_TURN_S  # noqa: E402


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_needle_never_covers_the_numerals_or_the_unit_label(name):
    """Sweep the needle over the whole scale: the numerals' and the label's pixels never change."""
    c = Cluster(layout=name, headless=True)
    try:
        empty = drive(rpm=None)
        texts = c.face_texts(empty)
        assert [t for t, _, _ in texts] == [str(k) for k in range(9)] + [FACE_LABEL]
        c.render(empty)
        ink = {}  # each text's ink pixels (where its glyphs are drawn) and their colours
        for text, box, px in texts:
            pad = cluster_mod._halo_px(px)
            mask = pygame.mask.from_surface(c._font(px).render(text, True, (255, 255, 255)), 1)
            pixels = [(box[0] + pad + mx, box[1] + pad + my) for mx in range(mask.get_size()[0])
                      for my in range(mask.get_size()[1]) if mask.get_at((mx, my))]
            assert pixels
            ink[text] = (pixels, [c.surface.get_at(p) for p in pixels])
        for rpm in range(0, 8001, 125):
            state = drive(rpm=float(rpm), rpm_estimated=rpm % 250 == 0)
            c.render(state)
            needle = pygame.Rect(c.layout.needle_area(c._needle_rpm(state), state.tach_max_rpm))
            for text, box, _ in texts:
                if needle.colliderect(box):
                    pixels, colours = ink[text]
                    assert [c.surface.get_at(p) for p in pixels] == colours, (rpm, text)
        # and the needle does reach under them: the test is not vacuous
        crossed = {text for text, box, _ in texts for rpm in range(0, 8001, 125)
                   if pygame.Rect(c.layout.needle_area(float(rpm), 8000.0)).colliderect(box)}
        assert {"3", "4", "5"} <= crossed
    finally:
        c.close()


def test_shift_bar_is_dark_while_crawling_in_first():
    """1st at 2800 rpm with the upshift at 3600: no lamp lit; they climb in the last 700 rpm."""
    assert shift_bar_key(drive(gear=1, rpm=2800.0, upshift_rpm=3600.0)) == ("ramp", 0)
    assert shift_bar_key(drive(gear=1, rpm=3300.0, upshift_rpm=3600.0))[1] > 0


def test_failed_source_has_its_own_colour_not_absents_grey(cluster):
    sources = (SourceView("obd", FAILED, "no OBD adapter at /dev/ttyUSB0; retrying"),
               SourceView("gps", LIVE), SourceView("pulses", ABSENT, "waiting for data"))
    cluster.render(drive(sources=sources))
    colours = {s.state: cluster.surface.get_at(cluster.layout.source_dot(i))[:3] for i, s in enumerate(sources)}
    assert colours[FAILED] == DAY.sources[FAILED]
    assert len({colours[FAILED], colours[ABSENT], colours[LIVE], DAY.sources[STALE]}) == 4
    assert NIGHT.sources[FAILED] not in (NIGHT.sources[ABSENT], NIGHT.sources[STALE])


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_every_fault_shows_in_turn_and_whole(name):
    long = "no OBD adapter at /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0; retrying"
    sources = (SourceView("gps", LIVE), SourceView("obd", FAILED, long),
               SourceView("pulses", ABSENT, "GPIO17 not wired"))
    c = Cluster(layout=name, headless=True)
    try:
        shown = []
        for k in range(4):
            state = drive(sources=sources, t=k * STATUS_TURN_S, message="logging paused: disk full")
            c.render(state)
            px, lines = c.status_lines(state)
            text = " ".join(lines)
            assert "\N{HORIZONTAL ELLIPSIS}" not in text and px >= 9
            text = text.replace(" ", "")
            x, y, w, h = c.layout.message_strip
            assert len(lines) * px <= h + 2
            assert all(c._text_width(line, px) <= w for line in lines)
            shown.append(text)
        assert shown[0] == "!loggingpaused:diskfull"
        assert shown[1] == f"obd: {long} (1/2)".replace(" ", "")  # the failed one first
        assert shown[2] == "pulses:GPIO17notwired(2/2)"
        assert shown[3] == shown[0]
    finally:
        c.close()


def test_learning_gears_shows_progress(cluster):
    lay = cluster.layout
    blank = region(cluster, drive(gear=None, gear_note=""), lay.gear)
    learning = region(cluster, drive(gear=None, gear_note="learning 3/5"), lay.gear)
    other = region(cluster, drive(gear=None, gear_note="learning 4/5"), lay.gear)
    assert len({blank, learning, other}) == 3
    assert cluster.gear_note_lines(drive(gear=None, gear_note="learning 3/5")) == ["learning gears", "3/5"]


# -- what owners of other dashes expect (issue 14, point 8) ------------------------------------

def test_peak_rpm_and_top_speed_are_held_and_shown(cluster):
    from keidash.cab import Cab
    cab = Cab()
    for t, rpm, speed in ((1.0, 2000.0, 20.0), (2.0, 5230.0, 60.0), (3.0, 3100.0, 92.0), (4.0, None, None)):
        dressed = cab.dress(drive(t=t, rpm=rpm, speed_kmh=speed), t, wall=1.7e9)
    assert dressed.peak_rpm == 5230.0 and dressed.top_speed_kmh == 92.0
    assert Cluster.page_values(dressed)[-2:] == ("5,230 rpm", "57 mph")
    # the peak's dot on the tach, in the needle's colour, where 5230 rpm is on the scale
    lay = cluster.layout
    spot = lay.tach_point(5230.0, 8000.0, 0.865)
    cluster.render(drive(rpm=1000.0, peak_rpm=5230.0))
    assert cluster.surface.get_at(spot)[:3] == NEEDLE
    cluster.render(drive(rpm=1000.0, peak_rpm=None))
    assert cluster.surface.get_at(spot)[:3] != NEEDLE


def test_four_wheel_drive_low_has_its_own_lamp(cluster):
    box = cluster.low_range_rect()
    cluster.render(drive(low_range=False))
    assert count_colour(cluster, box, DAY.low_range) == 0
    cluster.render(drive(low_range=True, gear=1))
    assert count_colour(cluster, box, DAY.low_range) > 0.5 * box[2] * box[3]


@pytest.mark.parametrize("message", ["", "engine hot: pull over"])
def test_every_source_has_its_dot_four_or_more_share_the_room(cluster, message):
    lay = cluster.layout
    sources = (SourceView("obd", LIVE), SourceView("gps", STALE, "no fix for 12 s"),
               SourceView("pulses", ABSENT, "GPIO17 not wired"), SourceView("mic", FAILED, "no sound card"))
    cluster.render(drive(sources=sources, message=message))
    for i, source in enumerate(sources):
        centre = lay.compact_dot(i, len(sources)) if message else lay.source_dot(i, len(sources))
        assert cluster.surface.get_at(centre)[:3] == cluster_mod.SOURCE_COLOURS[source.state], source
    # clear of the message: the driver's, or beside the names the sources' trouble
    last = (lay.compact_dot(3, 4) if message else lay.source_dot(3, 4))[0]
    assert last < (lay.message_strip[0] if message else lay.status_message_area(4)[0])


def _fits_recorded(c: Cluster, monkeypatch) -> list[tuple[str, int, int, str]]:
    """Every text the cluster fits to a room from here on: (text, px, room, what was drawn)."""
    calls = []
    fit = c._fit

    def recording(text, px, room):
        shown = fit(text, px, room)
        calls.append((text, px, room, shown))
        return shown
    monkeypatch.setattr(c, "_fit", recording)
    return calls


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize("names", [("pulses", "obd", "gps"), ("pulses", "obd", "gps", "mic"),
                                   ("replay", "pulses", "gps", "mic")])
def test_the_source_names_show_whole_in_the_status_strip(name, names, monkeypatch):
    # four sources (the demo's obd, gps, pulses and audio) read "pul..." in the strip on 1280x400
    c = Cluster(layout=name, headless=True)
    try:
        lay, count = c.layout, len(names)
        calls = _fits_recorded(c, monkeypatch)
        c.render(drive(sources=tuple(SourceView(n, LIVE) for n in names)))
        shown = [(text, px, room, drawn) for text, px, room, drawn in calls if text in names]
        assert [text for text, *_ in shown] == list(names)
        for i, (text, px, room, drawn) in enumerate(shown):
            assert drawn == text and c._font(px).size(text)[0] <= room, (text, room)
            assert room == lay.source_name_room(i, count)
            # the name ends before the next source's dot, and the last one before the message's room
            end = lay.source_name_x(i, count) + room
            limit = (lay.source_dot(i + 1, count)[0] - lay.source_dot_radius(count) if i + 1 < count
                     else lay.status_message_area(count)[0])
            assert end <= limit, (text, end, limit)
        # the message's room is what is left of the strip before the clock, a good part of it
        x, _, w, _ = lay.status_message_area(count)
        assert x + w == lay.clock[0] and w >= (lay.clock[0] - lay.status[0]) / 3
    finally:
        c.close()


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_the_trip_page_sample_source_lines_show_whole(name, monkeypatch):
    # on 1280x400 the sample's obd line read "obd: 2 errors: NO DATA (2 erro...": the count was said
    # twice (a live source's message is its error summary) and cut off
    from keidash.display.screens import SITUATIONS
    state = SITUATIONS["trip-page"]
    c = Cluster(layout=name, headless=True)
    try:
        calls = _fits_recorded(c, monkeypatch)
        c.render(state)
        lines = [(text, px, room, drawn) for text, px, room, drawn in calls  # the page's, not the strip's
                 if ": " in text and text.split(":")[0] in {s.name for s in state.sources}]
        assert [text for text, *_ in lines] == ["pulses: live", "obd: 2 errors: NO DATA", "gps: no fix for 12 s"]
        for text, px, room, drawn in lines:
            assert drawn == text and c._font(px).size(text)[0] <= room, (text, px, room)
            assert px >= cluster_mod.PAGE_TEXT_MIN_PX
    finally:
        c.close()


def test_a_stale_source_s_errors_are_counted_on_the_trip_page(monkeypatch):
    c = Cluster(size=SIZE, headless=True)
    try:
        calls = _fits_recorded(c, monkeypatch)
        c.render(drive(page=1, sources=(SourceView("obd", STALE, "no reply for 4 s", 3),)))
        assert "obd: no reply for 4 s (3 errors)" in [text for text, *_ in calls]
    finally:
        c.close()
