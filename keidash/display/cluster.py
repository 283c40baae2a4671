"""The instrument cluster: draws one DashState per frame with pygame-ce.

The cluster renders what it is given and asks nothing of any source. It is
sized for the official 7" Raspberry Pi display (800x480) and lays itself out
from the window size, so other displays only need a different ``size``.

pygame is imported inside :class:`Cluster`, never at module import: keidash
must start fast, and tests and tools that only need the layout stay light.
Everything that does not change between frames (the tach face, panels and
labels) is drawn once into a background Surface and blitted each frame.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

from keidash.dashstate import ABSENT, DOWN, LIVE, STALE, UP, DashState

log = logging.getLogger(__name__)

KMH_TO_MPH = 0.621371  # mph per km/h

# Colours, RGB. High contrast on a dark background: the cab is bright by day
# and the screen is read in a glance.
BACKGROUND = (6, 8, 12)
PANEL = (18, 22, 30)
PANEL_EDGE = (48, 56, 70)
TACH_FACE = (14, 17, 24)
TEXT = (240, 242, 246)
LABEL = (150, 158, 172)
DIM = (80, 86, 98)
TICK = (225, 228, 235)
RED_ZONE = (225, 28, 28)
NEEDLE = (255, 112, 0)  # measured rpm
ESTIMATED = (60, 190, 255)  # rpm estimated from speed and gear
HUB = (40, 44, 52)
UPSHIFT_MARK = (255, 196, 0)
CUE_UP = (255, 196, 0)  # lamp colour for "shift up"
CUE_DOWN = (40, 120, 255)  # lamp colour for "shift down"
CUE_TEXT_UP = (10, 10, 10)
CUE_TEXT_DOWN = (255, 255, 255)
STATUS_BAR = (14, 16, 22)

SOURCE_COLOURS = {
    LIVE: (40, 200, 80),
    STALE: (255, 176, 0),
    ABSENT: (110, 114, 122),
}

TACH_SWEEP_DEG = 240.0
TACH_START_DEG = 90.0 + TACH_SWEEP_DEG / 2  # 0 rpm, lower left; maths angle, counter-clockwise


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in pixels, for one screen size.

    Rects are ``(x, y, width, height)`` tuples so the layout needs no pygame.
    ``unit`` is the scale against the 800x480 design size, for fonts and strokes.
    """

    size: tuple[int, int]
    unit: float
    shift: tuple[int, int, int, int]  # the shift lamp bar along the top
    tach_center: tuple[int, int]
    tach_radius: int
    speed: tuple[int, int, int, int]
    gear: tuple[int, int, int, int]
    gauges: tuple[int, int, int, int]  # coolant and battery
    status: tuple[int, int, int, int]  # the source strip along the bottom
    source_slot: int  # width of one source's dot + name in the status strip

    @classmethod
    def for_size(cls, size: tuple[int, int]) -> Layout:
        w, h = size
        unit = min(w / 800, h / 480)
        margin = max(4, round(10 * unit))
        status_h = max(20, round(0.075 * h))
        status = (0, h - status_h, w, status_h)
        shift = (margin, margin, w - 2 * margin, round(0.11 * h))
        top = shift[1] + shift[3] + margin
        bottom = status[1] - margin
        radius = round(min((bottom - top) / 2, 0.25 * w - 2 * margin))
        center = (2 * margin + radius, (top + bottom) // 2)
        right_x = center[0] + radius + 2 * margin
        right_w = w - margin - right_x
        speed_h = round(0.56 * (bottom - top))
        speed = (right_x, top, right_w, speed_h)
        lower_y = top + speed_h + margin
        lower_h = bottom - lower_y
        gear_w = round(0.40 * right_w)
        gear = (right_x, lower_y, gear_w, lower_h)
        gauges = (right_x + gear_w + margin, lower_y, right_w - gear_w - margin, lower_h)
        return cls(size=(w, h), unit=unit, shift=shift, tach_center=center, tach_radius=radius,
                   speed=speed, gear=gear, gauges=gauges, status=status,
                   source_slot=round(0.13 * w))

    def tach_point(self, rpm: float, tach_max_rpm: float,
                   radius_fraction: float) -> tuple[int, int]:
        """The pixel at ``rpm`` on the tach scale, ``radius_fraction`` of the way out."""
        a = math.radians(tach_angle_deg(rpm, tach_max_rpm))
        cx, cy = self.tach_center
        r = self.tach_radius * radius_fraction
        return round(cx + r * math.cos(a)), round(cy - r * math.sin(a))

    def source_dot(self, index: int) -> tuple[int, int]:
        """Centre of the dot of the ``index``-th source in the status strip."""
        x, y, _, h = self.status
        return round(x + 0.6 * h + index * self.source_slot), y + h // 2

    @property
    def tach_rect(self) -> tuple[int, int, int, int]:
        (cx, cy), r = self.tach_center, self.tach_radius
        return (cx - r, cy - r, 2 * r, 2 * r)

    @property
    def rpm_digits_rect(self) -> tuple[int, int, int, int]:
        """The rpm digits, in the open bottom of the tach."""
        (cx, cy), r = self.tach_center, self.tach_radius
        return (round(cx - 0.42 * r), round(cy + 0.38 * r), round(0.84 * r), round(0.44 * r))


def tach_angle_deg(rpm: float, tach_max_rpm: float) -> float:
    """Maths angle (degrees, counter-clockwise from +x) of ``rpm`` on the tach; pegs at the ends."""
    fraction = min(max(rpm / tach_max_rpm, 0.0), 1.0)
    return TACH_START_DEG - TACH_SWEEP_DEG * fraction


def speed_texts(speed_kmh: float | None) -> tuple[str, str]:
    """Road speed as shown: (mph, km/h), whole numbers, "--" when unknown."""
    if speed_kmh is None:
        return "--", "--"
    return str(int(round(speed_kmh * KMH_TO_MPH))), str(int(round(speed_kmh)))


def gear_text(gear: int | None) -> str:
    if gear is None:
        return "-"
    if gear == 0:
        return "N"
    if gear < 0:
        return "R"
    return str(gear)


def _is_headless() -> bool:
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    if driver in ("dummy", "offscreen"):
        return True
    if driver == "kmsdrm":
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Cluster:
    """The dash: ``render(state)`` once per frame, ``poll_quit()`` between frames.

    ``headless=None`` renders offscreen when there is no display to open
    (no X11/Wayland and not SDL's kmsdrm driver); ``fullscreen=True`` with
    ``SDL_VIDEODRIVER=kmsdrm`` runs on a Pi without a desktop.
    """

    _open = 0  # Clusters not yet closed: pygame's subsystems are process-wide

    def __init__(self, size: tuple[int, int] = (800, 480), fullscreen: bool = False,
                 headless: bool | None = None):
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
            self._window = pygame.display.set_mode(size, flags)
            pygame.display.set_caption("keidash")
            if fullscreen:
                pygame.mouse.set_visible(False)
            self._screen = self._window
        self.layout = Layout.for_size(self._screen.get_size())
        self._font_path = os.path.join(os.path.dirname(pygame.__file__),
                                       pygame.font.get_default_font())
        self._fonts: dict[int, object] = {}
        self._texts: dict[tuple, object] = {}
        self._backgrounds: dict[tuple, object] = {}

    # -- public API ---------------------------------------------------------

    @property
    def surface(self):
        """The Surface the frames are drawn on (the window's, or offscreen)."""
        return self._screen

    def render(self, state: DashState) -> None:
        """Draw one frame of ``state`` and show it."""
        screen = self._screen
        screen.blit(self._background(state), (0, 0))
        self._draw_shift_lamp(screen, state.cue)
        self._draw_tach(screen, state)
        self._draw_speed(screen, state.speed_kmh)
        self._draw_gear(screen, state.gear)
        self._draw_gauges(screen, state.coolant_c, state.battery_v)
        self._draw_status(screen, state)
        if self._window is not None:
            self._pg.display.flip()

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
        self._texts.clear()
        self._backgrounds.clear()
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

    def _render_text(self, text: str, px: int, colour):
        key = (text, px, colour)
        surf = self._texts.get(key)
        if surf is None:
            if len(self._texts) > 512:  # digits change every frame; keep the cache bounded
                self._texts.clear()
            surf = self._texts[key] = self._font(px).render(text, True, colour)
        return surf

    def _text(self, target, text: str, px: int, colour, x: int, baseline: int,
              align: str = "left") -> tuple[int, int, int, int]:
        """Draw ``text`` with its baseline at ``baseline``; ``x`` is its left, centre or right."""
        surf = self._render_text(text, px, colour)
        w = surf.get_width()
        left = {"left": x, "center": x - w // 2, "right": x - w}[align]
        top = baseline - self._font(px).get_ascent()
        target.blit(surf, (left, top))
        return (left, top, w, surf.get_height())

    def _px(self, design_px: float) -> int:
        return max(8, round(design_px * self.layout.unit))

    # -- static background ---------------------------------------------------

    def _background(self, state: DashState):
        key = (self._screen.get_size(), state.tach_max_rpm, state.redline_rpm)
        bg = self._backgrounds.get(key)
        if bg is None:
            bg = self._backgrounds[key] = self._build_background(state.tach_max_rpm,
                                                                 state.redline_rpm)
            log.debug("built cluster background for %s", key)
        return bg

    def _build_background(self, tach_max_rpm: float, redline_rpm: float):
        pg = self._pg
        lay = self.layout
        bg = pg.Surface(lay.size)
        bg.fill(BACKGROUND)
        radius_px = self._px(10)
        for rect in (lay.speed, lay.gear, lay.gauges):
            pg.draw.rect(bg, PANEL, rect, border_radius=radius_px)
            pg.draw.rect(bg, PANEL_EDGE, rect, width=max(1, self._px(2)), border_radius=radius_px)
        pg.draw.rect(bg, STATUS_BAR, lay.status)
        pg.draw.line(bg, PANEL_EDGE, lay.status[:2], (lay.status[2], lay.status[1]))
        self._draw_tach_face(bg, tach_max_rpm, redline_rpm)

        label_px = self._px(18)
        down = self._px(12) + label_px * 3 // 4  # label baseline below a panel's top
        pad = self._px(12)
        gx, gy, gw, _ = lay.gear
        self._text(bg, "GEAR", label_px, LABEL, gx + gw // 2, gy + down, "center")
        sx, sy, _, _ = lay.speed
        self._text(bg, "SPEED", label_px, LABEL, sx + pad, sy + down)
        ux, uy, _, uh = lay.gauges
        for i, label in enumerate(("COOLANT", "BATTERY")):
            self._text(bg, label, label_px, LABEL, ux + pad, uy + i * (uh // 2) + down)
        if bg.get_bytesize() == 4 and self._window is not None:
            bg = bg.convert()
        return bg

    def _draw_tach_face(self, target, tach_max_rpm: float, redline_rpm: float) -> None:
        """Ticks, numerals and red zone, drawn at 2x and scaled down for smooth edges."""
        pg = self._pg
        lay = self.layout
        ss = 2
        r = lay.tach_radius
        side = 2 * r + 4
        face = pg.Surface((side * ss, side * ss))
        face.fill(BACKGROUND)
        c = (side * ss / 2, side * ss / 2)
        R = r * ss

        def point(rpm: float, fraction: float) -> tuple[float, float]:
            a = math.radians(tach_angle_deg(rpm, tach_max_rpm))
            return c[0] + R * fraction * math.cos(a), c[1] - R * fraction * math.sin(a)

        pg.draw.circle(face, PANEL_EDGE, c, R)
        pg.draw.circle(face, TACH_FACE, c, R - max(2, self._px(3)) * ss)

        # red zone: a band inside the rim, from the redline to full scale
        if redline_rpm < tach_max_rpm:
            steps = max(8, int(48 * (tach_max_rpm - redline_rpm) / tach_max_rpm))
            arc = [redline_rpm + (tach_max_rpm - redline_rpm) * i / steps for i in range(steps + 1)]
            band = [point(v, 0.93) for v in arc] + [point(v, 0.80) for v in reversed(arc)]
            pg.draw.polygon(face, RED_ZONE, band)

        # ticks: major every 1000 rpm with numerals, minor every 500
        major_w = max(2, round(4 * lay.unit)) * ss
        minor_w = max(1, round(2 * lay.unit)) * ss
        numeral_px = self._px(34) * ss
        font = pg.font.Font(self._font_path, numeral_px)
        rpm = 0
        while rpm <= tach_max_rpm + 1e-6:
            major = rpm % 1000 == 0
            colour = TEXT if rpm < redline_rpm else (255, 235, 235)
            inner = 0.78 if major else 0.85
            pg.draw.line(face, colour, point(rpm, inner), point(rpm, 0.93),
                         major_w if major else minor_w)
            if major:
                numeral = font.render(str(rpm // 1000), True,
                                      RED_ZONE if rpm >= redline_rpm else TEXT)
                # keep the numeral's box clear of the ticks, however wide it is ("10")
                a = math.radians(tach_angle_deg(rpm, tach_max_rpm))
                half_w, half_h = numeral.get_width() / 2, numeral_px * 0.37
                reach = abs(math.cos(a)) * half_w + abs(math.sin(a)) * half_h
                nx, ny = point(rpm, 0.70 - reach / R)
                face.blit(numeral, numeral.get_rect(center=(nx, ny)))
            rpm += 500
        unit_font = pg.font.Font(self._font_path, self._px(16) * ss)
        label = unit_font.render("x1000 r/min", True, LABEL)
        face.blit(label, label.get_rect(center=(c[0], c[1] - 0.36 * R)))

        face = pg.transform.smoothscale(face, (side, side))
        cx, cy = lay.tach_center
        target.blit(face, (cx - side // 2, cy - side // 2))

    # -- dynamic parts --------------------------------------------------------

    def _draw_shift_lamp(self, screen, cue: str | None) -> None:
        pg = self._pg
        x, y, w, h = self.layout.shift
        radius = self._px(8)
        if cue not in (UP, DOWN):
            pg.draw.rect(screen, PANEL, (x, y, w, h), border_radius=radius)
            pg.draw.rect(screen, PANEL_EDGE, (x, y, w, h), width=max(1, self._px(2)),
                         border_radius=radius)
            return
        up = cue == UP
        lamp, ink = (CUE_UP, CUE_TEXT_UP) if up else (CUE_DOWN, CUE_TEXT_DOWN)
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

    def _arrow(self, screen, cx: int, cy: int, size: int, up: bool, colour) -> None:
        s = -1 if up else 1  # screen y grows downwards
        half = size / 2
        head = [(cx, cy + s * half), (cx - half, cy), (cx + half, cy)]
        stem = [(cx - half * 0.38, cy - 1 * s), (cx + half * 0.38, cy - 1 * s),
                (cx + half * 0.38, cy - s * half), (cx - half * 0.38, cy - s * half)]
        for poly in (head, stem):
            self._gfx.aapolygon(screen, poly, colour)
            self._gfx.filled_polygon(screen, poly, colour)

    def _draw_tach(self, screen, state: DashState) -> None:
        lay = self.layout
        (cx, cy), r = lay.tach_center, lay.tach_radius
        colour = ESTIMATED if state.rpm_estimated else NEEDLE

        # the upshift point as a small amber notch outside the scale
        if 0 < state.upshift_rpm < state.tach_max_rpm:
            a = math.radians(tach_angle_deg(state.upshift_rpm, state.tach_max_rpm))
            tip = lay.tach_point(state.upshift_rpm, state.tach_max_rpm, 0.945)
            base = r * 0.995
            spread = 0.045
            notch = [tip,
                     (cx + base * math.cos(a + spread), cy - base * math.sin(a + spread)),
                     (cx + base * math.cos(a - spread), cy - base * math.sin(a - spread))]
            self._gfx.aapolygon(screen, notch, UPSHIFT_MARK)
            self._gfx.filled_polygon(screen, notch, UPSHIFT_MARK)

        if state.rpm_estimated and state.rpm is not None:
            bx, by = cx, round(cy + 0.27 * r)
            px = self._px(22)
            surf = self._render_text("EST", px, BACKGROUND)
            bw, bh = surf.get_width() + self._px(14), round(px * 1.05)
            box = (bx - bw // 2, by - bh // 2, bw, bh)
            self._pg.draw.rect(screen, ESTIMATED, box, border_radius=self._px(5))
            self._text(screen, "EST", px, BACKGROUND, bx, by + round(px * 0.36), "center")

        dx, dy, dw, dh = lay.rpm_digits_rect
        digits_px = round(dh * 0.72)
        baseline = dy + round(dh * 0.78)
        if state.rpm is None:
            self._missing(screen, "----", digits_px, cx, baseline, "center")
        else:
            shown = int(round(state.rpm / 10.0) * 10)
            self._text(screen, str(shown), digits_px, colour, cx, baseline, "center")
            self._needle(screen, state.rpm, state.tach_max_rpm, colour)
        self._pg.draw.circle(screen, HUB, (cx, cy), round(0.075 * r))
        self._pg.draw.circle(screen, PANEL_EDGE, (cx, cy), round(0.075 * r), max(1, self._px(2)))

    def _needle(self, screen, rpm: float, tach_max_rpm: float, colour) -> None:
        (cx, cy), r = self.layout.tach_center, self.layout.tach_radius
        a = math.radians(tach_angle_deg(rpm, tach_max_rpm))
        ux, uy = math.cos(a), -math.sin(a)  # along the needle, screen coords
        nx, ny = -uy, ux  # across it
        tip, tail = 0.90 * r, -0.14 * r
        base_half, tip_half = 0.045 * r, 0.014 * r
        poly = [(cx + ux * tail + nx * base_half, cy + uy * tail + ny * base_half),
                (cx + ux * tip + nx * tip_half, cy + uy * tip + ny * tip_half),
                (cx + ux * tip - nx * tip_half, cy + uy * tip - ny * tip_half),
                (cx + ux * tail - nx * base_half, cy + uy * tail - ny * base_half)]
        self._gfx.aapolygon(screen, poly, colour)
        self._gfx.filled_polygon(screen, poly, colour)

    def _draw_speed(self, screen, speed_kmh: float | None) -> None:
        x, y, w, h = self.layout.speed
        pad = self._px(14)
        digits_px = round(h * 0.70)
        unit_px = self._px(30)
        baseline = y + round(h * 0.70)
        number_right = x + w - pad - round(unit_px * 2.6)
        mph, kmh = speed_texts(speed_kmh)
        colour = DIM if speed_kmh is None else TEXT
        if speed_kmh is None:
            self._missing(screen, mph, digits_px, number_right, baseline, "right")
        else:
            self._text(screen, mph, digits_px, colour, number_right, baseline, "right")
        self._text(screen, "mph", unit_px, LABEL, number_right + self._px(10), baseline)
        small_px = self._px(32)
        small_base = y + h - pad
        ux = x + w - pad
        _, _, uw, _ = self._text(screen, "km/h", self._px(20), LABEL, ux, small_base, "right")
        self._text(screen, kmh, small_px, colour, ux - uw - self._px(8), small_base, "right")

    def _draw_gear(self, screen, gear: int | None) -> None:
        x, y, w, h = self.layout.gear
        px = round(h * 0.80)
        baseline = y + round(h * 0.86)
        if gear is None:
            self._missing(screen, "-", px, x + w // 2, baseline, "center")
        else:
            self._text(screen, gear_text(gear), px, TEXT, x + w // 2, baseline, "center")

    def _draw_gauges(self, screen, coolant_c: float | None, battery_v: float | None) -> None:
        x, y, w, h = self.layout.gauges
        pad = self._px(12)
        row_h = h // 2
        px = self._px(40)
        values = (f"{coolant_c:.0f}\N{DEGREE SIGN}C" if coolant_c is not None else "--",
                  f"{battery_v:.1f} V" if battery_v is not None else "--")
        for i, value in enumerate(values):
            colour = DIM if value == "--" else TEXT
            self._text(screen, value, px, colour, x + w - pad, y + (i + 1) * row_h - pad, "right")

    def _draw_status(self, screen, state: DashState) -> None:
        lay = self.layout
        x, y, w, h = lay.status
        name_px = self._px(18)
        baseline = y + h // 2 + round(name_px * 0.36)
        dot_r = max(3, round(h * 0.2))
        end = x
        for i, source in enumerate(state.sources):
            colour = SOURCE_COLOURS.get(source.state, SOURCE_COLOURS[ABSENT])
            dx, dy = lay.source_dot(i)
            self._pg.draw.circle(screen, colour, (dx, dy), dot_r)
            nx = dx + dot_r + self._px(6)
            name_colour = TEXT if source.state == LIVE else colour
            _, _, nw, _ = self._text(screen, source.name, name_px, name_colour, nx, baseline)
            end = max(end, nx + nw)

        title_px = self._px(16)
        title = self._render_text(state.profile_title, title_px, LABEL)
        title_x = x + w - self._px(10) - title.get_width()
        self._text(screen, state.profile_title, title_px, LABEL, title_x,
                   y + h // 2 + round(title_px * 0.36))

        # a source in trouble first; else a live one that has counted errors (noisy line)
        trouble = next((s for s in state.sources if s.state != LIVE), None) or next(
            (s for s in state.sources if s.errors and s.message), None)
        if trouble is None:
            return
        message = trouble.message or ("no data" if trouble.state == ABSENT else "data is old")
        text = f"{trouble.name}: {message}"
        left = max(end + self._px(16), x + lay.source_slot * len(state.sources))
        room = title_x - self._px(16) - left
        colour = SOURCE_COLOURS[STALE] if trouble.state == STALE else (LABEL if trouble.state == LIVE else TEXT)
        text = self._fit(text, name_px, room)
        if text:
            self._text(screen, text, name_px, colour, left, baseline)

    def _missing(self, target, dashes: str, digits_px: int, x: int, baseline: int,
                 align: str) -> None:
        """Dashes for a missing big number: thin, dim, centred on where the digits would be.

        A hyphen at digit size is a fat block that reads as a glitch.
        """
        px = round(digits_px * 0.7)
        # freesansbold: digits are 0.73 em tall, the hyphen's middle is 0.28 em up
        dash_baseline = baseline - round(0.365 * digits_px) + round(0.28 * px)
        self._text(target, dashes, px, DIM, x, dash_baseline, align)

    def _fit(self, text: str, px: int, room: int) -> str:
        """``text``, cut short with an ellipsis to fit ``room`` pixels."""
        font = self._font(px)
        if font.size(text)[0] <= room:
            return text
        while text and font.size(text + "\N{HORIZONTAL ELLIPSIS}")[0] > room:
            text = text[:-1]
        return text.rstrip() + "\N{HORIZONTAL ELLIPSIS}" if text else ""
