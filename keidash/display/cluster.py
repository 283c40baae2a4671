"""The instrument cluster: draws one DashState per frame with pygame-ce.

The cluster renders what it is given and asks nothing of any source. It picks
one of the layouts in :mod:`keidash.display.layout` from the screen size (or
by name) and one of the themes in :mod:`keidash.display.theme` from
``DashState.night``.

pygame is imported inside :class:`Cluster`, never at module import: keidash
must start fast, and tests and tools that only need the layout stay light.

How a frame is drawn (the Pi Zero 2 W has little CPU to spare):

- **Static layer**: everything that does not change while driving (panels,
  labels, the tach face with its red zone) is drawn once per (theme, page, tach
  scale, redline) into a face Surface, the last FACE_CACHE_SIZE kept (a change of
  theme drops the other theme's faces, glyphs and texts). The upshift
  notch moves with the gear, the load and the coolant, so it is not kept with
  them: one background Surface, reused, gets the face and the notch whenever
  either changes (a face per upshift point kept 1.5 MB each at 800x480, for as
  many points as a drive showed).
- **Elements**: the dash is a list of elements in drawing order (shift bar,
  EST badge, rpm digits, needle, speed, gear, info rows, status strip...).
  Each has an area, a *key* (the few values its look depends on: the gear
  text, the needle's rpm rounded to half a pixel of travel, the flash phase)
  and a draw function that stays inside its area.
- **Dirty rectangles**: an element is redrawn only when its key changed. Its
  old and new areas are restored from the static layer, merged so no pixel is
  restored twice, then every element that overlaps them is redrawn clipped to
  them, in order (the needle crossing the EST badge redraws the badge under
  it). Only those rectangles are sent to the screen
  (``pygame.display.update(rects)``). A frame where nothing changed costs a
  few dictionary look-ups.
- **Text caches**: every figure (speed, rpm, clock, and the number of a value
  with a unit: "14.1 V", "84°C", "1,234.5 km") is drawn glyph by glyph from a
  fixed set: the ten digits of a size and colour are rendered together the first
  time a figure needs one, then ``-.:, `` as met, and the unit is a label. Labels
  and sentences come from a small cache keyed by text. Neither grows with the
  values a drive shows (a surface per value shown filled the text cache for minutes,
  and each new digit of the speed cost a render mid-drive).

:class:`FullRedrawCluster` draws the same picture by redrawing every element
each frame; it is the benchmark's baseline (bench/render.py) and the tests
check both give the same pixels.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Hashable, NamedTuple

from keidash.dashstate import (ABSENT, BATTERY_HIGH, BATTERY_LOW, COOLANT_HOT, DOWN, FAILED, LIVE, STALE,
                                UP, DashState)
from keidash.display.layout import (  # noqa: F401  (re-exported for callers and tests)
    LAYOUTS, SHIFT_SEGMENTS, Layout, choose_layout, crowding, tach_angle_deg)
from keidash.display.texts import (  # noqa: F401
    KMH_TO_MPH, MISSING, alarm_texts, battery_text, clock_text, rpm_peak_text, coolant_text, distance_text, gear_text,
    rpm_text, source_problem, source_problems, speed_figures, speed_texts)
from keidash.display.theme import DAY, NIGHT, THEMES, Theme

log = logging.getLogger(__name__)

# The day theme's colours under their old names (tests and tools check pixels against them).
BACKGROUND = DAY.background
PANEL = DAY.panel
PANEL_EDGE = DAY.panel_edge
TEXT = DAY.text
LABEL = DAY.label
DIM = DAY.dim
RED_ZONE = DAY.red_zone
NEEDLE = DAY.needle
ESTIMATED = DAY.estimated
CUE_UP = DAY.cue_up
CUE_DOWN = DAY.cue_down
SOURCE_COLOURS = DAY.sources
PAGE_TEXT_MIN_PX = 10  # a trip page source line too long for its room is set smaller, down to this, then cut

# rev/min: the progression lights from this far below the upshift point. Close enough that a
# truck crawling in 1st at 2800 rpm (upshift at 3600) shows a dark bar, not a half-lit one that
# reads as a cue; far enough that the lamps climb for about a second before the flash in 2nd.
SHIFT_RAMP_RPM = 700.0
STATUS_TURN_S = 3.0  # several troubles in the status strip: each shown this long in turn
FLASH_HZ = 6.0  # the whole bar flashes at this rate while an upshift is due
FACE_LABEL = "x1000 r/min"  # the tach numerals' unit, under the hub
DIGITS = "0123456789"
GLYPH_CHARS = DIGITS + "-.:, "  # a figure's characters, drawn from cached glyphs whatever the value
TEXT_CACHE_SIZE = 64  # labels and sentences kept, least recently used dropped (~10 KB each)
FACE_CACHE_SIZE = 4  # static faces kept (day and night, each page), least recently used dropped

Rect = tuple[int, int, int, int]


class Glyph(NamedTuple):
    """One character of a figure, rendered once: only its ink, placed by (dx, dy) from the pen."""

    ink: Any  # the Surface: the ink's bounding box of the rendered character
    advance: int  # px the pen moves
    dx: int  # where the ink starts, right of the pen
    dy: int  # and below the line's top


@dataclass(frozen=True)
class Element:
    """One part of the dash: where it is, what its look depends on, how to draw it."""

    name: str
    area: Callable[[DashState], Rect]  # the pixels it may touch for this state
    key: Callable[[DashState], Hashable]  # equal keys = identical pixels
    draw: Callable[[Any, DashState], None]  # draws on the screen, inside ``area``


def _is_headless() -> bool:
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    if driver in ("dummy", "offscreen"):
        return True
    if driver == "kmsdrm":
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def shift_bar_key(state: DashState) -> tuple:
    """What the shift bar shows: ("down",), ("up", flash on?) or ("ramp", lamps lit).

    The flash phase comes from ``state.t`` so a replay flashes the same way every time.
    """
    if state.cue == DOWN:
        return ("down",)
    rpm = state.rpm
    if state.cue == UP or (rpm is not None and rpm >= state.upshift_rpm):
        return ("up", (state.t * FLASH_HZ) % 1.0 < 0.5)
    if rpm is None:
        return ("ramp", 0)
    start = state.upshift_rpm - SHIFT_RAMP_RPM
    if rpm < start:
        return ("ramp", 0)
    return ("ramp", min(SHIFT_SEGMENTS, int((rpm - start) / SHIFT_RAMP_RPM * SHIFT_SEGMENTS) + 1))


class Cluster:
    """The dash: ``render(state)`` once per frame, ``poll_quit()`` between frames.

    ``size`` is the window in pixels (default: the named layout's size, else 800x480);
    ``layout`` forces a layout by name (see :data:`LAYOUTS`), else the nearest to ``size``.
    ``headless=None`` renders offscreen when there is no display to open
    (no X11/Wayland and not SDL's kmsdrm driver); ``fullscreen=True`` with
    ``SDL_VIDEODRIVER=kmsdrm`` runs on a Pi without a desktop.
    ``full_redraw=True`` redraws everything every frame (the benchmark baseline).
    """

    _open = 0  # Clusters not yet closed: pygame's subsystems are process-wide
    full_redraw = False

    def __init__(self, size: tuple[int, int] | None = None, fullscreen: bool = False,
                 headless: bool | None = None, layout: str | None = None,
                 full_redraw: bool | None = None):
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
        if size is None:
            size = LAYOUTS[layout][0] if layout else (800, 480)
        if full_redraw is not None:
            self.full_redraw = full_redraw
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        if headless is None:
            headless = _is_headless()
        if headless:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        import pygame  # here, not at module import: see the module docstring
        import pygame.gfxdraw

        self._pg = pygame
        self._gfx = pygame.gfxdraw
        self.headless = headless
        # Only what the dash uses: the audio and joystick subsystems are slow to start.
        pygame.display.init()
        pygame.font.init()
        Cluster._open += 1
        self._closed = False
        if headless:
            self._window = None
            self._screen = pygame.Surface(size)
        else:
            flags = pygame.FULLSCREEN if fullscreen else 0
            try:
                self._window = pygame.display.set_mode(size, flags)
            except BaseException:  # no display after all: undo, so a later Cluster starts clean
                self._closed = True
                Cluster._open -= 1
                if Cluster._open == 0:
                    pygame.font.quit()
                    pygame.display.quit()
                raise
            pygame.display.set_caption("keidash")
            if fullscreen:
                pygame.mouse.set_visible(False)
            self._screen = self._window
        self.layout = Layout.for_size(self._screen.get_size(), layout)
        self.theme: Theme = DAY
        self._font_path = os.path.join(os.path.dirname(pygame.__file__),
                                       pygame.font.get_default_font())
        self._fonts: dict[int, Any] = {}
        self._glyphs: dict[tuple, Glyph] = {}  # (char, px, colour)
        self._advances: dict[tuple[str, int], int] = {}  # (char, px): advance
        self._texts: OrderedDict[tuple, Any] = OrderedDict()
        self._faces: OrderedDict[tuple, Any] = OrderedDict()  # static layer without the notch
        self._notched: Any = None  # the static layer in use: a face and the upshift notch
        self._notched_key: tuple | None = None
        self._static_key: tuple | None = None
        self._elements: list[Element] = []
        self._keys: dict[str, Hashable] = {}
        self._areas: dict[str, Rect] = {}
        self.frames = 0
        self.last_dirty: list[Rect] = []  # what the last frame sent to the screen
        # whether the next frame may differ with no new reading: the last one changed something, or
        # the shift bar flashes (its phase turns with time); the frame loop slows down when it is not
        self.moving = True
        log.debug("cluster %s layout %s", self._screen.get_size(), self.layout.name)

    # -- public API ---------------------------------------------------------

    @property
    def surface(self):
        """The Surface the frames are drawn on (the window's, or offscreen)."""
        return self._screen

    def render(self, state: DashState) -> None:
        """Draw one frame of ``state`` and show it (only what changed, unless ``full_redraw``)."""
        pg = self._pg
        self.frames += 1
        static_key = self._static_key_of(state)
        if static_key != self._static_key:
            if self._static_key is not None and static_key[0] != self._static_key[0]:
                self._forget_theme()
            self._static_key = static_key
            self.theme = THEMES["night" if state.night else "day"]
            self._elements = self._build_elements(state)
            self._keys.clear()
            self._areas.clear()
        background = self._background(state)
        screen = self._screen
        if self.full_redraw or not self._keys:
            screen.blit(background, (0, 0))
            for element in self._elements:
                area = element.area(state)
                screen.set_clip(area)
                element.draw(screen, state)
                self._keys[element.name] = element.key(state)
                self._areas[element.name] = area
            screen.set_clip(None)
            self.last_dirty = [(0, 0, *screen.get_size())]
            self.moving = True
            if self._window is not None:
                pg.display.flip()
            return

        dirty = []
        new_keys = {}
        for element in self._elements:
            key = element.key(state)
            new_keys[element.name] = key
            if key != self._keys.get(element.name):
                dirty.append(pg.Rect(self._areas[element.name]))
                dirty.append(pg.Rect(element.area(state)))
        self._keys = new_keys
        if not dirty:
            self.last_dirty = []
            self.moving = new_keys.get("shift", ("",))[0] == "up"
            return
        self.moving = True
        dirty = _merge(dirty)
        for rect in dirty:
            screen.blit(background, rect, rect)
        for element in self._elements:
            area = pg.Rect(element.area(state))
            self._areas[element.name] = tuple(area)
            for rect in dirty:
                clip = area.clip(rect)
                if clip.width and clip.height:
                    screen.set_clip(clip)
                    element.draw(screen, state)
        screen.set_clip(None)
        self.last_dirty = [tuple(r) for r in dirty]
        if self._window is not None:
            pg.display.update(dirty)

    def save(self, path) -> None:
        """Write the last frame as a PNG."""
        self._pg.image.save(self._screen, os.fspath(path))

    def poll_quit(self) -> bool:
        """Handle window events; True when the driver closed the window or pressed Esc or q."""
        pg = self._pg
        quit_ = False
        for event in pg.event.get():
            if event.type == pg.QUIT:
                quit_ = True
            elif event.type == pg.KEYDOWN and event.key in (pg.K_ESCAPE, pg.K_q):
                quit_ = True
        return quit_

    def close(self) -> None:
        """Release the window; pygame itself is shut down with the last open Cluster."""
        if self._closed:
            return
        self._closed = True
        self._fonts.clear()
        self._glyphs.clear()
        self._texts.clear()
        self._faces.clear()
        self._notched = self._notched_key = None
        Cluster._open -= 1
        if Cluster._open == 0:
            self._pg.font.quit()
            self._pg.display.quit()

    # -- text ---------------------------------------------------------------

    def _font(self, px: int):
        font = self._fonts.get(px)
        if font is None:
            font = self._fonts[px] = self._pg.font.Font(self._font_path, px)
        return font

    def _glyph(self, char: str, px: int, colour) -> Glyph:
        """A cached glyph: its ink cut out of the rendered line, where that goes, its advance.

        The first digit of a size and colour renders all ten: a figure shows them all in any
        drive, so the set is there from the first frame (its memory known from the start) and
        no digit is rendered the moment it first shows. Only the ink is kept: a digit at the
        speed's 173 px is 87x129 pixels of a 96x189 line (45 KB instead of 73).
        """
        key = (char, px, colour)
        glyph = self._glyphs.get(key)
        if glyph is None:
            font = self._font(px)
            for c in (DIGITS if char in DIGITS else char):
                line = font.render(c, True, colour)
                ink = line.get_bounding_rect()
                self._glyphs[(c, px, colour)] = Glyph(line.subsurface(ink).copy(), self._advance(c, px),
                                                      ink.x, ink.y)
            glyph = self._glyphs[key]
        return glyph

    def _advance(self, char: str, px: int) -> int:
        """How far a glyph moves the pen, without rendering it (measuring is not drawing)."""
        key = (char, px)
        advance = self._advances.get(key)
        if advance is None:
            advance = self._advances[key] = self._font(px).size(char)[0]
        return advance

    def _render_text(self, text: str, px: int, colour):
        key = (text, px, colour)
        surf = self._texts.get(key)
        if surf is None:
            surf = self._texts[key] = self._font(px).render(text, True, colour)
            if len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        else:
            self._texts.move_to_end(key)
        return surf

    def _text_width(self, text: str, px: int) -> int:
        figure, unit = _figure_and_unit(text)
        if figure is None:
            return self._font(px).size(text)[0]
        return sum(self._advance(c, px) for c in figure) + (self._font(px).size(unit)[0] if unit else 0)

    def _text(self, target, text: str, px: int, colour, x: int, baseline: int,
              align: str = "left") -> Rect:
        """Draw ``text`` with its baseline at ``baseline``; ``x`` is its left, centre or right."""
        top = baseline - self._font(px).get_ascent()
        figure, unit = _figure_and_unit(text)
        if figure is None:
            surf = self._render_text(text, px, colour)
            w = surf.get_width()
            left = {"left": x, "center": x - w // 2, "right": x - w}[align]
            target.blit(surf, (left, top))
            return (left, top, w, surf.get_height())
        # a figure: glyph by glyph from the fixed set, then its unit as a label
        glyphs = [self._glyph(c, px, colour) for c in figure]
        label = self._render_text(unit, px, colour) if unit else None
        w = sum(glyph.advance for glyph in glyphs) + (label.get_width() if label else 0)
        left = {"left": x, "center": x - w // 2, "right": x - w}[align]
        pen = left
        for glyph in glyphs:
            target.blit(glyph.ink, (pen + glyph.dx, top + glyph.dy))
            pen += glyph.advance
        if label is not None:
            target.blit(label, (pen, top))
        return (left, top, w, self._font(px).get_height())

    def _px(self, design_px: float) -> int:
        return max(8, round(design_px * self.layout.unit))

    def _fit(self, text: str, px: int, room: int) -> str:
        """``text``, cut short with an ellipsis to fit ``room`` pixels."""
        font = self._font(px)
        if font.size(text)[0] <= room:
            return text
        while text and font.size(text + "\N{HORIZONTAL ELLIPSIS}")[0] > room:
            text = text[:-1]
        return text.rstrip() + "\N{HORIZONTAL ELLIPSIS}" if text else ""

    def _fit_px(self, text: str, px: int, room: int) -> int:
        """The largest font size up to ``px`` at which ``text`` fits ``room`` pixels."""
        while px > 8 and self._text_width(text, px) > room:
            px -= 1
        return px

    def _missing(self, target, dashes: str, digits_px: int, x: int, baseline: int,
                 align: str, colour=None) -> None:
        """Dashes for a missing big number: thin, dim, centred on where the digits would be.

        A hyphen at digit size is a fat block that reads as a glitch.
        """
        px = round(digits_px * 0.7)
        # freesansbold: digits are 0.73 em tall, the hyphen's middle is 0.28 em up
        dash_baseline = baseline - round(0.365 * digits_px) + round(0.28 * px)
        self._text(target, dashes, px, colour or self.theme.dim, x, dash_baseline, align)

    # -- static layer --------------------------------------------------------

    def _static_key_of(self, state: DashState) -> tuple:
        return (state.night, state.page, state.tach_max_rpm, state.redline_rpm, state.upshift_rpm)

    def _forget_theme(self) -> None:
        """Drop the surfaces drawn in the colours of the theme being left (day or night).

        The theme changes at dusk and at dawn; keeping the other theme's face, glyphs and texts
        for the hours until it is back held about 3 MB at 800x480. Drawn again, once, when needed.
        """
        leaving = self._static_key[0]
        for key in [key for key in self._faces if key[0] == leaving]:
            del self._faces[key]
        self._glyphs.clear()
        self._texts.clear()

    def _face_key_of(self, state: DashState) -> tuple:
        return (state.night, state.page, state.tach_max_rpm, state.redline_rpm)

    def _background(self, state: DashState):
        """The static layer of ``state``: its face, and on the tach page the upshift notch."""
        key = self._face_key_of(state)
        face = self._faces.get(key)
        if face is None:
            theme = THEMES["night" if state.night else "day"]
            face = self._faces[key] = self._build_background(theme, state)
            if len(self._faces) > FACE_CACHE_SIZE:
                self._faces.popitem(last=False)
            log.debug("built cluster face for %s", key)
        else:
            self._faces.move_to_end(key)
        if state.page == 1:  # the trip page has no tach
            return face
        static_key = self._static_key_of(state)
        if static_key != self._notched_key:
            if self._notched is None or self._notched.get_size() != face.get_size():
                self._notched = face.copy()
            else:
                self._notched.blit(face, (0, 0))
            self._draw_upshift_notch(self._notched, THEMES["night" if state.night else "day"], state)
            self._notched_key = static_key
        return self._notched

    def _panel(self, target, rect, theme: Theme) -> None:
        radius = self._px(10)
        self._pg.draw.rect(target, theme.panel, rect, border_radius=radius)
        self._pg.draw.rect(target, theme.panel_edge, rect, width=max(1, self._px(2)),
                           border_radius=radius)

    def _label_px(self, row_h: int) -> int:
        return max(10, min(round(0.34 * row_h), self._px(20)))

    def _build_background(self, theme: Theme, state: DashState):
        pg = self._pg
        lay = self.layout
        bg = pg.Surface(lay.size)
        bg.fill(theme.background)
        for rect in (lay.speed, lay.gear, lay.info):
            self._panel(bg, rect, theme)
        pg.draw.rect(bg, theme.status_bar, lay.status)
        pg.draw.line(bg, theme.panel_edge, lay.status[:2], (lay.status[2] - 1, lay.status[1]))
        gx, gy, gw, gh = lay.gear
        label_px = self._label_px(round(0.25 * gh))
        self._text(bg, "GEAR", label_px, theme.label, gx + gw // 2,
                   gy + self._px(8) + label_px * 3 // 4, "center")
        pad = self._px(10)
        for (x, y, _, h), label in zip(lay.info_rows, ("COOLANT", "BATTERY", "TRIP", "ODO")):
            px = self._label_px(h)
            self._text(bg, label, px, theme.label, x + pad, y + h // 2 + round(0.36 * px))
        if state.page == 1:
            self._panel(bg, lay.page, theme)
            for (x, y, w, h), label in zip(self._page_rows(), self._page_labels()):
                px = self._label_px(h)
                self._text(bg, label, px, theme.label, x, y + h // 2 + round(0.36 * px))
        else:
            self._draw_tach_face(bg, theme, state.tach_max_rpm, state.redline_rpm)
        if bg.get_bytesize() == 4 and self._window is not None:
            bg = bg.convert()
        return bg

    def _draw_tach_face(self, target, theme: Theme, tach_max_rpm: float,
                        redline_rpm: float) -> None:
        """Ticks, numerals and red zone, drawn at 2x and scaled down for smooth edges."""
        pg = self._pg
        lay = self.layout
        ss = 2
        r = lay.tach_radius
        side = 2 * r + 4
        face = pg.Surface((side * ss, side * ss))
        face.fill(theme.background)
        c = (side * ss / 2, side * ss / 2)
        R = r * ss

        def point(rpm: float, fraction: float) -> tuple[float, float]:
            a = math.radians(tach_angle_deg(rpm, tach_max_rpm))
            return c[0] + R * fraction * math.cos(a), c[1] - R * fraction * math.sin(a)

        pg.draw.circle(face, theme.panel_edge, c, R)
        pg.draw.circle(face, theme.tach_face, c, R - max(2, self._px(3)) * ss)

        # red zone: a band inside the rim, from the redline to full scale
        if redline_rpm < tach_max_rpm:
            steps = max(8, int(48 * (tach_max_rpm - redline_rpm) / tach_max_rpm))
            arc = [redline_rpm + (tach_max_rpm - redline_rpm) * i / steps for i in range(steps + 1)]
            band = [point(v, 0.93) for v in arc] + [point(v, 0.80) for v in reversed(arc)]
            pg.draw.polygon(face, theme.red_zone, band)

        # ticks: major every 1000 rpm, minor every 500 (the numerals and the unit label are
        # elements drawn over the needle: see _face_texts)
        scale = r / 183  # against the 800x480 tach
        major_w = max(2, round(4 * scale)) * ss
        minor_w = max(1, round(2 * scale)) * ss
        rpm = 0
        while rpm <= tach_max_rpm + 1e-6:
            major = rpm % 1000 == 0
            inner = 0.78 if major else 0.85
            pg.draw.line(face, theme.tick, point(rpm, inner), point(rpm, 0.93),
                         major_w if major else minor_w)
            rpm += 500

        face = pg.transform.smoothscale(face, (side, side))
        cx, cy = lay.tach_center
        target.blit(face, (cx - side // 2, cy - side // 2))

    def face_texts(self, state: DashState) -> list[tuple[str, Rect, int]]:
        """The tach's numerals and its "x1000 r/min" label: (text, the box they are drawn in, px).

        They are drawn after the needle, each on a halo of the face's colour, so the needle
        passes under them and never hides one. The label sits under the hub, where the needle
        reaches only below 200 rpm (and then passes under it too).
        """
        lay = self.layout
        (cx, cy), r = lay.tach_center, lay.tach_radius
        scale = r / 183
        numeral_px = max(10, round(34 * scale))
        out = []
        rpm = 0
        while rpm <= state.tach_max_rpm + 1e-6:
            text = str(rpm // 1000)
            w, _ = self._font(numeral_px).size(text)
            # keep the numeral's box clear of the ticks, however wide it is ("10")
            a = math.radians(tach_angle_deg(rpm, state.tach_max_rpm))
            reach = abs(math.cos(a)) * w / 2 + abs(math.sin(a)) * numeral_px * 0.37
            f = 0.70 - reach / r
            out.append((text, self._halo_box(text, numeral_px, cx + r * f * math.cos(a),
                                             cy - r * f * math.sin(a)), numeral_px))
            rpm += 1000
        label_px = max(9, round(16 * scale))
        out.append((FACE_LABEL, self._halo_box(FACE_LABEL, label_px, cx, cy + 0.16 * r), label_px))
        return out

    def _halo_box(self, text: str, px: int, cx: float, cy: float) -> Rect:
        """The box of ``text``'s halo surface centred (by its ink) on (cx, cy)."""
        w, h = self._font(px).size(text)
        pad = _halo_px(px)
        ascent = self._font(px).get_ascent()
        ink_mid = ascent - round(0.365 * px)  # freesansbold: capitals and digits are 0.73 em tall
        left = round(cx - w / 2) - pad
        top = round(cy - ink_mid) - pad
        return (left, top, w + 2 * pad, h + 2 * pad)

    def _halo_text(self, text: str, px: int, colour, halo):
        """``text`` on a halo of ``halo`` colour ``_halo_px`` wide, with alpha, cached."""
        key = ("halo", text, px, colour, halo)
        surf = self._texts.get(key)
        if surf is None:
            pg = self._pg
            pad = _halo_px(px)
            ink = self._font(px).render(text, True, colour)
            shadow = self._font(px).render(text, True, halo)
            surf = pg.Surface((ink.get_width() + 2 * pad, ink.get_height() + 2 * pad), pg.SRCALPHA)
            for dx in range(-pad, pad + 1):
                for dy in range(-pad, pad + 1):
                    if dx * dx + dy * dy <= pad * pad + 1:
                        surf.blit(shadow, (pad + dx, pad + dy))
            surf.blit(ink, (pad, pad))
            self._texts[key] = surf
            if len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        return surf

    def _face_text_drawer(self, text: str, box: Rect, px: int, red: bool):
        def draw(screen, state: DashState) -> None:
            theme = self.theme
            colour = theme.red_zone if red else theme.label if text == FACE_LABEL else theme.text
            screen.blit(self._halo_text(text, px, colour, theme.tach_face), box[:2])
        return draw

    def _draw_upshift_notch(self, target, theme: Theme, state: DashState) -> None:
        """The upshift point as a small amber notch outside the scale."""
        if not 0 < state.upshift_rpm < state.tach_max_rpm:
            return
        lay = self.layout
        (cx, cy), r = lay.tach_center, lay.tach_radius
        a = math.radians(tach_angle_deg(state.upshift_rpm, state.tach_max_rpm))
        tip = lay.tach_point(state.upshift_rpm, state.tach_max_rpm, 0.945)
        base = r * 0.995
        spread = 0.045
        notch = [tip,
                 (cx + base * math.cos(a + spread), cy - base * math.sin(a + spread)),
                 (cx + base * math.cos(a - spread), cy - base * math.sin(a - spread))]
        self._gfx.aapolygon(target, notch, theme.upshift_mark)
        self._gfx.filled_polygon(target, notch, theme.upshift_mark)

    # -- elements ---------------------------------------------------------------

    def _build_elements(self, state: DashState) -> list[Element]:
        lay = self.layout
        page = state.page

        def fixed(rect: Rect) -> Callable[[DashState], Rect]:
            return lambda state: rect

        elements = [Element("shift", fixed(lay.shift), shift_bar_key, self._draw_shift_bar)]
        if page == 1:
            elements.append(Element("page", fixed(lay.page), self._page_key, self._draw_page))
        else:
            elements += [
                Element("est", fixed(lay.est_rect),
                        lambda s: s.rpm_estimated and s.rpm is not None, self._draw_est),
                Element("rpm", fixed(lay.rpm_digits_rect),
                        lambda s: (rpm_text(s.rpm), s.rpm_estimated), self._draw_rpm_digits),
                Element("peak", self._peak_area, lambda s: self._peak_rpm(s), self._draw_peak),
                Element("needle", self._needle_area,
                        lambda s: (self._needle_rpm(s), s.rpm_estimated), self._draw_needle),
            ]
            for text, box, px in self.face_texts(state):
                red = text != FACE_LABEL and int(text) * 1000 >= state.redline_rpm
                elements.append(Element(f"face {text}", fixed(box), lambda s: None,
                                        self._face_text_drawer(text, box, px, red)))
        elements += [
            Element("speed", fixed(lay.speed),
                    lambda s: speed_figures(s.speed_kmh, s.units), self._draw_speed),
            Element("gear", fixed(lay.gear), lambda s: (s.gear, s.low_range, s.gear_note), self._draw_gear),
            Element("low range", fixed(self.low_range_rect()), lambda s: s.low_range, self._draw_low_range),
        ]
        for row, value, alarmed in zip(lay.info_rows, (
                lambda s: coolant_text(s.coolant_c, s.temperature), lambda s: battery_text(s.battery_v),
                lambda s: distance_text(s.trip_km, s.units, 1),
                lambda s: distance_text(s.odometer_km, s.units, 0)), (
                lambda s: COOLANT_HOT in s.alarms,
                lambda s: BATTERY_LOW in s.alarms or BATTERY_HIGH in s.alarms,
                lambda s: False, lambda s: False)):
            elements.append(Element(f"info{row[1]}", fixed(row),
                                    lambda s, value=value, alarmed=alarmed: (value(s), alarmed(s)),
                                    self._info_drawer(row, value, alarmed)))
        elements += [
            Element("sources", lambda s: lay.sources_area(len(s.sources)),
                    lambda s: (tuple((v.name, v.state) for v in s.sources), _strip_wide(s)),
                    self._draw_sources),
            Element("status_message", self._status_message_area,
                    lambda s: (s.message, s.alarms, self.status_shown(s), self._status_message_area(s)),
                    self._draw_status_message),
            Element("clock", fixed(lay.clock), lambda s: clock_text(s.wall_time), self._draw_clock),
        ]
        return elements

    # shift bar

    def _draw_shift_bar(self, screen, state: DashState) -> None:
        pg = self._pg
        theme = self.theme
        lay = self.layout
        key = shift_bar_key(state)
        x, y, w, h = lay.shift
        radius = self._px(8)
        if key[0] == "down" or key == ("up", True):
            up = key[0] == "up"
            lamp, ink = (theme.cue_up, theme.cue_text_up) if up else (theme.cue_down,
                                                                     theme.cue_text_down)
            pg.draw.rect(screen, lamp, (x, y, w, h), border_radius=radius)
            text_px = round(h * 0.75)
            label = "SHIFT UP" if up else "SHIFT DOWN"
            baseline = y + h // 2 + round(text_px * 0.36)
            tx, _, tw, _ = self._text(screen, label, text_px, ink, x + w // 2, baseline, "center")
            # arrows either side of the words, and at the bar's ends, so the cue
            # reads from the corner of the eye even before the words do
            size = round(h * 0.62)
            gap = round(h * 0.6)
            for ax in (tx - gap - size // 2, tx + tw + gap + size // 2, x + gap + size // 2,
                       x + w - gap - size // 2):
                self._arrow(screen, ax, y + h // 2, size, up, ink)
            return
        lit = key[1] if key[0] == "ramp" else 0
        seg_radius = max(2, radius // 2)
        for i in range(SHIFT_SEGMENTS):
            colour = theme.segments[i] if i < lit else theme.segment_off
            pg.draw.rect(screen, colour, lay.shift_segment(i), border_radius=seg_radius)

    def _arrow(self, screen, cx: int, cy: int, size: int, up: bool, colour) -> None:
        s = -1 if up else 1  # screen y grows downwards
        half = size / 2
        head = [(cx, cy + s * half), (cx - half, cy), (cx + half, cy)]
        stem = [(cx - half * 0.38, cy - 1 * s), (cx + half * 0.38, cy - 1 * s),
                (cx + half * 0.38, cy - s * half), (cx - half * 0.38, cy - s * half)]
        for poly in (head, stem):
            self._gfx.aapolygon(screen, poly, colour)
            self._gfx.filled_polygon(screen, poly, colour)

    # tach

    def _needle_rpm(self, state: DashState) -> float | None:
        """The rpm the needle is drawn at: rounded to half a pixel of tip travel."""
        if state.rpm is None:
            return None
        travel_px = math.radians(240.0) * 0.9 * self.layout.tach_radius
        step = state.tach_max_rpm / travel_px / 2
        return round(state.rpm / step) * step

    def _needle_area(self, state: DashState) -> Rect:
        return self.layout.needle_area(self._needle_rpm(state), state.tach_max_rpm)

    def _draw_needle(self, screen, state: DashState) -> None:
        lay = self.layout
        theme = self.theme
        rpm = self._needle_rpm(state)
        if rpm is not None:
            poly = lay.needle_polygon(rpm, state.tach_max_rpm)
            colour = theme.estimated if state.rpm_estimated else theme.needle
            self._gfx.aapolygon(screen, poly, colour)
            self._gfx.filled_polygon(screen, poly, colour)
        (cx, cy), r = lay.tach_center, lay.tach_radius
        self._pg.draw.circle(screen, theme.hub, (cx, cy), round(0.075 * r))
        self._pg.draw.circle(screen, theme.panel_edge, (cx, cy), round(0.075 * r),
                             max(1, self._px(2)))

    def _peak_rpm(self, state: DashState) -> float | None:
        """The peak-hold mark's rpm, rounded as the needle's; None when there is none to show."""
        if state.peak_rpm is None or state.peak_rpm <= 0:
            return None
        return self._needle_rpm(replace(state, rpm=state.peak_rpm))

    def _peak_spot(self, rpm: float, tach_max_rpm: float) -> tuple[tuple[int, int], int]:
        return self.layout.tach_point(rpm, tach_max_rpm, 0.865), max(3, round(0.035 * self.layout.tach_radius))

    def _peak_area(self, state: DashState) -> Rect:
        rpm = self._peak_rpm(state)
        if rpm is None:
            (cx, cy) = self.layout.tach_center
            return (cx, cy, 0, 0)
        (x, y), radius = self._peak_spot(rpm, state.tach_max_rpm)
        return (x - radius - 2, y - radius - 2, 2 * radius + 5, 2 * radius + 5)

    def _draw_peak(self, screen, state: DashState) -> None:
        """The highest rpm since the dash started: a dot in the needle's colour inside the scale."""
        rpm = self._peak_rpm(state)
        if rpm is None:
            return
        (x, y), radius = self._peak_spot(rpm, state.tach_max_rpm)
        self._gfx.aacircle(screen, x, y, radius, self.theme.needle)
        self._gfx.filled_circle(screen, x, y, radius, self.theme.needle)

    def low_range_rect(self) -> Rect:
        """Where "4WD LOW" shows, over the gear box's "GEAR" label, while low range is engaged."""
        x, y, w, h = self.layout.gear
        label_px = self._label_px(round(0.25 * h))
        pad = self._px(8)
        return (x + pad, y + pad // 2, w - 2 * pad, label_px + pad)

    def _draw_low_range(self, screen, state: DashState) -> None:
        if not state.low_range:
            return
        x, y, w, h = self.low_range_rect()
        self._pg.draw.rect(screen, self.theme.low_range, (x, y, w, h), border_radius=max(2, h // 4))
        px = self._fit_px("4WD LOW", round(0.75 * h), w - self._px(8))
        self._text(screen, "4WD LOW", px, self.theme.background, x + w // 2, y + h // 2 + round(0.36 * px),
                   "center")

    def _draw_est(self, screen, state: DashState) -> None:
        if not (state.rpm_estimated and state.rpm is not None):
            return
        x, y, w, h = self.layout.est_rect
        self._pg.draw.rect(screen, self.theme.estimated, (x, y, w, h), border_radius=max(2, h // 4))
        px = round(h * 0.78)
        self._text(screen, "EST", px, self.theme.background, x + w // 2,
                   y + h // 2 + round(px * 0.36), "center")

    def _draw_rpm_digits(self, screen, state: DashState) -> None:
        dx, dy, dw, dh = self.layout.rpm_digits_rect
        cx = dx + dw // 2
        digits_px = round(dh * 0.72)
        baseline = dy + round(dh * 0.78)
        if state.rpm is None:
            self._missing(screen, rpm_text(None), digits_px, cx, baseline, "center")
            return
        colour = self.theme.estimated if state.rpm_estimated else self.theme.needle
        self._text(screen, rpm_text(state.rpm), digits_px, colour, cx, baseline, "center")

    # speed and gear

    def _draw_speed(self, screen, state: DashState) -> None:
        theme = self.theme
        x, y, w, h = self.layout.speed
        px = self.layout.speed_px
        pad = self._px(12)
        big, big_unit, small, small_unit = speed_figures(state.speed_kmh, state.units)
        ink = round(0.73 * px)
        baseline = y + (h + ink) // 2
        label_px = max(10, round(0.17 * px))
        small_px = max(12, round(0.26 * px))
        unit_w = max(self._font(label_px).size(u)[0] for u in ("mph", "km/h"))
        unit_w = max(unit_w, self._text_width("888", small_px))
        number_right = x + w - pad - unit_w - pad
        if state.speed_kmh is None:
            self._missing(screen, big, px, number_right, baseline, "right")
        else:
            self._text(screen, big, px, theme.text, number_right, baseline, "right")
        ux = number_right + pad
        self._text(screen, big_unit, label_px, theme.label, ux, baseline - ink + round(0.73 * label_px))
        self._text(screen, small_unit, label_px, theme.label, ux, baseline)
        small_colour = theme.dim if state.speed_kmh is None else theme.text
        self._text(screen, small, small_px, small_colour, ux,
                   baseline - round(1.25 * label_px))

    def _draw_gear(self, screen, state: DashState) -> None:
        theme = self.theme
        x, y, w, h = self.layout.gear
        px = self.layout.gear_px
        label_zone = self._px(8) + self._label_px(round(0.25 * h))
        ink = round(0.73 * px)
        baseline = y + label_zone + (h - label_zone + ink) // 2
        text = gear_text(state.gear)
        marker_px = round(0.42 * px)
        marker_w = self._font(marker_px).size("L")[0] if state.low_range else 0
        main_w = self._font(px).size(text)[0]
        if state.low_range:
            px = self._fit_px(text, px, w - marker_w - self._px(16))
            main_w = self._font(px).size(text)[0]
        left = x + (w - main_w - marker_w) // 2
        if state.gear is None:
            lines = self.gear_note_lines(state)
            note_px = self._label_px(round(0.25 * h))
            if len(lines) == 2:  # learning: the count found so far where the gear will be
                count_px = self._fit_px(lines[1], round(0.5 * px), w - self._px(16))
                self._text(screen, lines[1], count_px, theme.label, x + w // 2,
                           baseline - (ink - round(0.73 * count_px)) // 2, "center")
            else:
                self._missing(screen, text, px, left + main_w // 2, baseline, "center")
            if lines:  # why: "learning gears", "no ratios"
                note_px = self._fit_px(lines[0], note_px, w - self._px(8))
                self._text(screen, lines[0], note_px, theme.label, x + w // 2, y + h - self._px(6),
                           "center")
        else:
            self._text(screen, text, px, theme.text, left, baseline)
        if state.low_range:
            self._text(screen, "L", marker_px, theme.low_range, left + main_w, baseline)

    @staticmethod
    def gear_note_lines(state: DashState) -> list[str]:
        """The gear box's words while no gear is shown: ["learning gears", "3/5"], ["no ratios"], []."""
        note = state.gear_note
        if note.startswith("learning "):
            return ["learning gears", note[len("learning "):]]
        return [note] if note else []

    # info panel

    def _info_drawer(self, row: Rect, value: Callable[[DashState], str],
                     alarmed: Callable[[DashState], bool]):
        def draw(screen, state: DashState) -> None:
            x, y, w, h = row
            pad = self._px(10)
            text = value(state)
            label_w = self._font(self._label_px(h)).size("BATTERY")[0]
            px = max(12, min(round(0.62 * h), self._px(44)))
            px = self._fit_px(text, px, w - 3 * pad - label_w)
            colour = self.theme.dim if text == MISSING else self.theme.text
            if alarmed(state):  # past the owner's limit: the whole row lit red, the figure on it
                self._pg.draw.rect(screen, self.theme.alarm, (x + 3, y + 2, w - 6, h - 4),
                                   border_radius=self._px(6))
                label_px = self._label_px(h)
                self._text(screen, ("COOLANT", "BATTERY")[row != self.layout.info_rows[0]],
                           label_px, self.theme.alarm_text, x + pad, y + h // 2 + round(0.36 * label_px))
                colour = self.theme.alarm_text
            self._text(screen, text, px, colour, x + w - pad, y + h // 2 + round(0.36 * px),
                       "right")
        return draw

    # status strip

    def _draw_sources(self, screen, state: DashState) -> None:
        lay = self.layout
        theme = self.theme
        x, y, w, h = lay.status
        name_px = lay.source_name_px
        baseline = y + h // 2 + round(name_px * 0.36)
        # every source gets its dot: past SOURCE_SLOTS of them they sit closer (and, past four,
        # smaller); their names show whole, taking room from the message if need be (layout)
        count = len(state.sources)
        dot_r = lay.source_dot_radius(count)
        for i, source in enumerate(state.sources):
            colour = theme.sources.get(source.state, theme.sources[ABSENT])
            if _strip_wide(state):  # the message strip needs the room: dots only
                self._pg.draw.circle(screen, colour, lay.compact_dot(i, count), dot_r)
                continue
            self._pg.draw.circle(screen, colour, lay.source_dot(i, count), dot_r)
            name_colour = theme.text if source.state == LIVE else colour
            self._text(screen, self._fit(source.name, name_px, lay.source_name_room(i, count)), name_px,
                       name_colour, lay.source_name_x(i, count), baseline)

    def _status_message_area(self, state: DashState) -> Rect:
        """The driver message strip, or the room beside the sources' names for their trouble."""
        lay = self.layout
        return lay.message_strip if _strip_wide(state) else lay.status_message_area(len(state.sources))

    def status_items(self, state: DashState) -> list[tuple[str, str]]:
        """What the status strip has to say: the driver message first, then every source in trouble.

        Each item is (text, kind), kind "message" or the source's state. Several are shown in
        turn, ``STATUS_TURN_S`` each, counted from ``state.t`` (a replay turns them the same way).
        """
        items = [(text, "alarm") for text in alarm_texts(state)]
        items += [(state.message, "message")] if state.message else []
        problems = source_problems(state.sources)
        if len(problems) > 1:
            n = len(problems)
            problems = [(f"{text} ({i}/{n})", kind) for i, (text, kind) in enumerate(problems, 1)]
        return items + problems

    def status_shown(self, state: DashState) -> tuple[str, str] | None:
        """The (text, kind) the status strip shows in this frame, or None."""
        items = self.status_items(state)
        if not items:
            return None
        return items[int(state.t // STATUS_TURN_S) % len(items)]

    def status_lines(self, state: DashState) -> tuple[int, list[str]]:
        """(font px, lines) the status strip draws: the whole text, smaller or on two lines if need be."""
        shown = self.status_shown(state)
        if shown is None:
            return 0, []
        text, kind = shown
        x, y, w, h = self._status_message_area(state)
        pad = self._px(10)
        if kind in ("message", "alarm"):
            text = "! " + text
        return self._wrap(text, max(10, round((0.6 if _strip_wide(state) else 0.5) * h)), w - 2 * pad, h)

    def _wrap(self, text: str, px: int, room: int, height: int) -> tuple[int, list[str]]:
        """The largest font (down to 9 px) at which ``text`` fits ``room`` on one line, else two.

        Only when two lines of 9 px do not hold it is the second cut short with an ellipsis.
        """
        smallest = 9
        for size in range(px, smallest - 1, -1):
            if self._text_width(text, size) <= room:
                return size, [text]
        # break after a space, or inside a long device path after "/", "_" or "-"
        words = re.split(r"(?<=[ /_-])", text)
        for size in range(min(px, height // 2), smallest - 1, -1):
            best = None
            for cut in range(1, len(words)):
                first, second = "".join(words[:cut]).rstrip(), "".join(words[cut:])
                widest = max(self._text_width(first, size), self._text_width(second, size))
                if widest <= room and (best is None or widest < best[0]):
                    best = (widest, [first, second])
            if best is not None:
                return size, best[1]
        size = min(px, max(smallest, height // 2))
        half = len(words) // 2 or 1
        return size, [self._fit("".join(words[:half]).rstrip(), size, room),
                      self._fit("".join(words[half:]), size, room)]

    def _draw_status_message(self, screen, state: DashState) -> None:
        theme = self.theme
        x, y, w, h = self._status_message_area(state)
        pad = self._px(10)
        shown = self.status_shown(state)
        if shown is None:
            return
        kind = shown[1]
        px, lines = self.status_lines(state)
        if kind in ("message", "alarm"):
            self._pg.draw.rect(screen, theme.alarm if kind == "alarm" else theme.warning,
                               (x, y + 2, w, h - 3), border_radius=self._px(4))
            colour = theme.alarm_text if kind == "alarm" else theme.warning_text
        else:
            colour = (theme.sources[kind] if kind in (STALE, FAILED)
                      else theme.label if kind == LIVE else theme.text)
        step = round(px * 1.02)
        first = y + h // 2 + round(px * 0.36) - (step // 2 if len(lines) == 2 else 0)
        for i, line in enumerate(lines):
            self._text(screen, line, px, colour, x + pad, first + i * step)

    def _draw_clock(self, screen, state: DashState) -> None:
        x, y, w, h = self.layout.clock
        px = max(10, round(0.66 * h))
        text = clock_text(state.wall_time)
        colour = self.theme.dim if state.wall_time is None else self.theme.text
        self._text(screen, text, px, colour, x + w, y + h // 2 + round(px * 0.36), "right")

    # trip page

    def _page_labels(self) -> tuple[str, ...]:
        return ("TRIP", "ODOMETER", "COOLANT", "BATTERY", "PEAK RPM", "TOP SPEED")

    @staticmethod
    def page_values(state: DashState) -> tuple[str, ...]:
        """The trip page's figures, in the order of its labels."""
        top = None
        if state.top_speed_kmh is not None:
            big, unit, _, _ = speed_figures(state.top_speed_kmh, state.units)
            top = f"{big} {unit}"
        return (distance_text(state.trip_km, state.units, 1),
                distance_text(state.odometer_km, state.units, 0),
                coolant_text(state.coolant_c, state.temperature), battery_text(state.battery_v),
                rpm_peak_text(state.peak_rpm), top or MISSING)

    def _page_rows(self) -> list[Rect]:
        """Label/value rows of the trip page (the sources list goes below them)."""
        x, y, w, h = self.layout.page
        pad = self._px(14)
        title_h = round(0.11 * h)
        row_h = round(0.088 * h)
        return [(x + pad, y + title_h + i * row_h, w - 2 * pad, row_h) for i in range(6)]

    def _page_key(self, state: DashState) -> tuple:
        return (state.profile_title, self.page_values(state), state.alarms, state.sources)

    def _draw_page(self, screen, state: DashState) -> None:
        theme = self.theme
        x, y, w, h = self.layout.page
        pad = self._px(14)
        title_px = max(10, round(0.055 * h))
        title = self._fit(state.profile_title, title_px, w - 2 * pad)
        self._text(screen, title, title_px, theme.label, x + pad, y + pad + round(0.75 * title_px))
        values = self.page_values(state)
        rows = self._page_rows()
        alarmed = (False, False, COOLANT_HOT in state.alarms,
                   BATTERY_LOW in state.alarms or BATTERY_HIGH in state.alarms, False, False)
        for (rx, ry, rw, rh), value, alarm in zip(rows, values, alarmed):
            label_w = self._font(self._label_px(rh)).size("TOP SPEED")[0]
            px = self._fit_px(value, round(0.72 * rh), rw - label_w - pad)
            colour = theme.alarm if alarm else theme.dim if value == MISSING else theme.text
            self._text(screen, value, px, colour, rx + rw, ry + rh // 2 + round(0.36 * px), "right")
        # the sources, each with its state and why
        top = rows[-1][1] + rows[-1][3] + pad
        line_h = max(12, round(0.085 * h))
        px = max(10, round(0.62 * line_h))
        dot_r = max(3, round(0.22 * line_h))
        for i, source in enumerate(state.sources):
            ly = top + i * line_h
            if ly + line_h > y + h - pad // 2:
                break
            colour = theme.sources.get(source.state, theme.sources[ABSENT])
            self._pg.draw.circle(screen, colour, (x + pad + dot_r, ly + line_h // 2), dot_r)
            why = source.message or {LIVE: "live", STALE: "data is old", ABSENT: "no data",
                                     FAILED: "failed"}.get(
                source.state, source.state)
            if source.errors and source.state != LIVE:  # a live source's message is its errors already
                why = f"{why} ({source.errors} errors)"
            # set smaller (down to PAGE_TEXT_MIN_PX) before it is cut short
            room = w - 3 * pad - 2 * dot_r
            line = f"{source.name}: {why}"
            line_px = max(PAGE_TEXT_MIN_PX, min(px, self._fit_px(line, px, room)))
            self._text(screen, self._fit(line, line_px, room), line_px,
                       theme.text if source.state == LIVE else colour,
                       x + 2 * pad + 2 * dot_r, ly + line_h // 2 + round(0.36 * line_px))


class FullRedrawCluster(Cluster):
    """The same dash, redrawn whole every frame: the baseline bench/render.py measures against."""

    full_redraw = True


def _figure_and_unit(text: str) -> tuple[str | None, str]:
    """(figure, unit) of a value as shown, e.g. ("14.1 ", "V"), ("84", "°C"), ("--", "");
    (None, text) for a label or a sentence.

    A figure is a run of GLYPH_CHARS from the start with a digit or a dash in it; what follows is
    its unit when it comes after a space or is a degree sign, and has no digit (the unit then
    comes from the label cache, one per unit). A word that begins with a digit ("4WD LOW") and
    text with digits after words ("learning 3/5", "obd: 3 errors") are cached whole.
    """
    if not text:
        return "", ""
    unit = text.lstrip(GLYPH_CHARS)
    figure = text[:len(text) - len(unit)]
    if (not any(c in figure for c in DIGITS + "-") or any(c.isdigit() for c in unit)
            or unit and not (figure.endswith(" ") or unit.startswith("\N{DEGREE SIGN}"))):
        return None, text
    return figure, unit


def _strip_wide(state: DashState) -> bool:
    """The status strip gives the sources' names up for a driver message or an alarm."""
    return bool(state.message or state.alarms)


def _halo_px(px: int) -> int:
    """How far a face text's halo reaches beyond its ink: the needle stops this far short of it."""
    return max(2, round(px * 0.12))


def _merge(rects: list) -> list:
    """Merge overlapping rects until none overlap, so no pixel is restored and drawn twice."""
    merged: list = []
    for rect in rects:
        if not (rect.width and rect.height):
            continue
        rect = rect.copy()
        changed = True
        while changed:
            changed = False
            for other in merged:
                if rect.colliderect(other):
                    merged.remove(other)
                    rect.union_ip(other)
                    changed = True
                    break
        merged.append(rect)
    return merged


__all__ = ["Cluster", "FullRedrawCluster", "Layout", "LAYOUTS", "choose_layout", "gear_text", "KMH_TO_MPH",
           "speed_texts", "DAY", "NIGHT", "Element"]
