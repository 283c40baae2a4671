"""``keidash marks``: shift speeds as a table and a printable speedometer sticker.

For a driver without a screen: the road speed at which to shift out of each
gear, in power and in economy mode (:mod:`keidash.estimate.shift`), printed as a table
and drawn as a sticker like a speedometer face: an arc scale from 0 to the top
speed with numbered ticks, a coloured mark and a label ("1→2") per shift,
power marks outside the arc and economy marks inside, the profile's title and
a legend naming the modes.

The sticker is laid out once as a list of drawing primitives (:class:`Band`,
:class:`Bar`, :class:`Label`), then written either as SVG by hand (no
dependency) or as PNG with pygame-ce (imported only when a PNG is asked for).
Both come from the same layout, so they agree mark for mark.

Economy marks assume the engine is warm and a gentle throttle
(``shift.DEFAULT_DEMAND``): a sticker cannot see the throttle.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape

from ..errors import ConfigError, ProfileError
from ..profiles import Profile, load_profile
from ..profiles.engine import ShiftLimits, shift_limits
from ..readings import KMH_PER_MPH
from .shift import MODES, ShiftPolicy, policy_from_profile, shift_speeds_kmh, upshift_rpm

UNITS = ("kmh", "mph")
UNIT_TEXT = {"kmh": "km/h", "mph": "mph"}
#: numbered ticks every this many units (a minor tick halfway)
TICK_STEP = {"kmh": 20, "mph": 10}

# Sticker geometry, in pixels of a 1200 x 1000 canvas printed 120 mm wide (254 dpi): digits
# about 4 mm tall.
WIDTH, HEIGHT = 1200, 1000
PRINT_WIDTH_MM = 120.0
CENTRE = (600.0, 575.0)
RADIUS = 370.0  # the arc's centre line
START_DEG, SWEEP_DEG = 225.0, 270.0  # 0 at lower left, top speed at lower right, clockwise
ARC_WIDTH = 10.0
NUMBER_SIZE = 56  # px (em), the numbered ticks
LABEL_SIZE = 58  # px (em), the "1→2" labels
TITLE_SIZE = 48
LEGEND_SIZE = 40
NUMBER_RADIUS = RADIUS - 180
MARK_WIDTH = 14
LABEL_GAP = 6  # px between a mark's end and its label

INK = (20, 20, 20)
PAPER = (255, 255, 255)
# Okabe-Ito vermillion and blue: told apart by colour-blind drivers too
MODE_COLOUR = {"power": (213, 94, 0), "economy": (0, 114, 178)}
OUTSIDE, INSIDE = 1, -1  # which side of the arc a mode's marks sit on
MODE_SIDE = {"power": OUTSIDE, "economy": INSIDE}


@dataclass(frozen=True)
class ShiftMark:
    mode: str  # "power" or "economy"
    gear: int  # shift out of this gear into gear + 1
    speed_kmh: float  # road speed of the shift
    rpm: float  # engine rpm in ``gear`` at the shift

    @property
    def label(self) -> str:
        return f"{self.gear}→{self.gear + 1}"


def shift_marks(policy: ShiftPolicy) -> tuple[ShiftMark, ...]:
    """Every upshift in both modes (warm engine, default demand), power first."""
    marks = []
    for mode in MODES:
        p = replace(policy, mode=mode)
        for gear, speed in enumerate(shift_speeds_kmh(p), start=1):
            marks.append(ShiftMark(mode, gear, speed, upshift_rpm(p, gear)))
    return tuple(marks)


def to_units(speed_kmh: float, units: str) -> float:
    return speed_kmh / KMH_PER_MPH if units == "mph" else speed_kmh


def scale_top(policy: ShiftPolicy, units: str) -> float:
    """Full scale of the sticker in ``units``: the speed at the red line in top gear, rounded up."""
    top_kmh = policy.limits.redline_rpm / policy.rpm_per_kmh[-1]
    step = TICK_STEP[units]
    return float(math.ceil(to_units(top_kmh, units) / step - 1e-9) * step)


def format_table(title: str, policy: ShiftPolicy, marks: tuple[ShiftMark, ...], units: str) -> str:
    """The shift speeds as plain text, one row per upshift."""
    unit = UNIT_TEXT[units]
    by_mode = {mode: [m for m in marks if m.mode == mode] for mode in MODES}
    lines = [f"{title}: shift up at these road speeds ({unit})",
             f"{'shift':6s} {'power':>18s}   {'economy':>18s}"]
    for power, economy in zip(by_mode["power"], by_mode["economy"]):
        cells = [f"{to_units(m.speed_kmh, units):5.0f} {unit:4s} {m.rpm:5.0f} rpm" for m in (power, economy)]
        lines.append(f"{power.gear}->{power.gear + 1:<3d} {cells[0]:>18s}   {cells[1]:>18s}")
    if not policy.has_torque_curve:
        lines.append(f"The profile gives no peak torque and power, so both modes shift at the "
                     f"upshift rpm, {policy.limits.upshift_rpm:.0f} rpm.")
    else:
        lines.append("power: where the next gear pulls as hard as this one, or at the red line "
                     f"({policy.limits.redline_rpm:.0f} rpm) when it never does.")
        lines.append(f"economy: the earliest shift that lands at {policy.floor_rpm:.0f} rpm or more with "
                     "torque in reserve, for gentle throttle and a warm engine.")
    return "\n".join(lines)


# ---------------------------------------------------------------- layout

@dataclass(frozen=True)
class Band:
    """An arc of the dial: ``r`` its centre line, ``width`` across, angles in degrees (maths sense)."""
    r: float
    width: float
    start_deg: float
    end_deg: float
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class Bar:
    """A straight stroke from (x1, y1) to (x2, y2), ``width`` px across."""
    x1: float
    y1: float
    x2: float
    y2: float
    width: float
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class Label:
    """Text centred on (x, y)."""
    x: float
    y: float
    text: str
    size: int  # px, the font's em size
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class Sticker:
    title: str
    units: str
    top: float  # full scale, in units
    marks: tuple[ShiftMark, ...]
    shapes: tuple[Band | Bar | Label, ...]


def angle_deg(speed: float, top: float) -> float:
    """Dial angle (degrees, counter-clockwise from 3 o'clock) of ``speed`` on a 0..``top`` scale."""
    return START_DEG - SWEEP_DEG * min(max(speed / top, 0.0), 1.0)


def polar(r: float, deg: float) -> tuple[float, float]:
    """Canvas point (x right, y down) at radius ``r`` px and dial angle ``deg``."""
    a = math.radians(deg)
    return CENTRE[0] + r * math.cos(a), CENTRE[1] - r * math.sin(a)


def mark_span(mode: str) -> tuple[float, float]:
    """Inner and outer radius (px) of a mode's coloured mark: it crosses the arc to its side."""
    return (RADIUS - 18, RADIUS + 50) if MODE_SIDE[mode] == OUTSIDE else (RADIUS - 50, RADIUS + 18)


#: where a label may go, nearest first: (steps away from the arc, degrees along it)
_PLACES = sorted(((level, offset) for level in range(4) for offset in range(-30, 31)),
                 key=lambda p: (abs(p[1]) + 8 * p[0], p[0], p[1]))


def _text_box(x: float, y: float, text: str, size: int) -> tuple[float, float, float, float]:
    """Rough extent (left, top, right, bottom) of bold text of em ``size`` centred on (x, y)."""
    width = sum(0.8 if ch == "→" else 0.62 for ch in text) * size
    half_w, half_h = width / 2 + 6, 0.375 * size + 6
    return x - half_w, y - half_h, x + half_w, y + half_h


def _radial_extent(text: str, size: int, deg: float) -> float:
    """How far (px) the text's box reaches from its centre along the radius at ``deg``."""
    left, top, right, bottom = _text_box(0.0, 0.0, text, size)
    a = math.radians(deg)
    return abs(math.cos(a)) * right + abs(math.sin(a)) * bottom


def _crosses(box, bar) -> bool:
    """Whether a mark's stroke (x1, y1, x2, y2) runs through ``box`` (sampled along its length)."""
    x1, y1, x2, y2 = bar
    return any(box[0] <= x1 + (x2 - x1) * i / 16 <= box[2] and box[1] <= y1 + (y2 - y1) * i / 16 <= box[3]
               for i in range(17))


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def layout(title: str, policy: ShiftPolicy, units: str) -> Sticker:
    """Place every shape of the sticker; the SVG and PNG writers only draw them.

    Each label sits on its mode's ring at its mark's angle; a label that would
    overlap one already placed (or a number) slides along the ring to the
    nearest free angle and gets a thin leader line back to its mark.
    """
    top = scale_top(policy, units)
    marks = shift_marks(policy)
    shapes: list = [Band(RADIUS, ARC_WIDTH, START_DEG, START_DEG - SWEEP_DEG, INK)]
    taken = []  # boxes of the text placed so far
    step = TICK_STEP[units]
    for i in range(int(round(2 * top / step)) + 1):
        speed = i * step / 2
        a = angle_deg(speed, top)
        major = i % 2 == 0
        (x1, y1), (x2, y2) = polar(RADIUS, a), polar(RADIUS - (38 if major else 22), a)
        shapes.append(Bar(x1, y1, x2, y2, 8 if major else 5, INK))
        if major:
            number = Label(*polar(NUMBER_RADIUS, a), f"{speed:.0f}", NUMBER_SIZE, INK)
            shapes.append(number)
            taken.append(_text_box(number.x, number.y, number.text, number.size))
    unit = Label(CENTRE[0], CENTRE[1] + 40, UNIT_TEXT[units], NUMBER_SIZE, INK)
    shapes.append(unit)
    taken.append(_text_box(unit.x, unit.y, unit.text, unit.size))

    bars = []  # (x1, y1, x2, y2) of the marks so far
    for mark in sorted(marks, key=lambda m: (m.mode, m.speed_kmh)):
        colour, side = MODE_COLOUR[mark.mode], MODE_SIDE[mark.mode]
        a = angle_deg(to_units(mark.speed_kmh, units), top)
        inner, outer = mark_span(mark.mode)
        shapes.append(Bar(*polar(inner, a), *polar(outer, a), MARK_WIDTH, colour))
        end = outer if side == OUTSIDE else inner
        bars.append((*polar(inner, a), *polar(outer, a)))
        for level, offset in _PLACES:
            extent = _radial_extent(mark.label, LABEL_SIZE, a + offset)
            r = end + side * (LABEL_GAP + extent + level * 0.8 * LABEL_SIZE)
            box = _text_box(*polar(r, a + offset), mark.label, LABEL_SIZE)
            if not any(_overlaps(box, other) for other in taken) and not any(_crosses(box, b) for b in bars):
                break
        taken.append(box)
        if offset or level:  # a thin leader from the mark to the nearest point of a label slid away from it
            x0, y0 = polar(end, a)
            shapes.append(Bar(x0, y0, min(max(x0, box[0]), box[2]), min(max(y0, box[1]), box[3]), 4, colour))
        shapes.append(Label(*polar(r, a + offset), mark.label, LABEL_SIZE, colour))

    shapes.append(Label(CENTRE[0], 890, title, TITLE_SIZE, INK))
    shapes.append(Label(CENTRE[0] - 230, 955, "power: outside", LEGEND_SIZE, MODE_COLOUR["power"]))
    shapes.append(Label(CENTRE[0] + 230, 955, "economy: inside", LEGEND_SIZE, MODE_COLOUR["economy"]))
    return Sticker(title, units, top, marks, tuple(shapes))


# ---------------------------------------------------------------- writers

def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def render_svg(sticker: Sticker) -> str:
    """The sticker as a standalone SVG document, sized for print in mm."""
    height_mm = PRINT_WIDTH_MM * HEIGHT / WIDTH
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{PRINT_WIDTH_MM:g}mm" height="{height_mm:.1f}mm" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}">',
           f'<title>{escape(sticker.title)}: shift speeds ({UNIT_TEXT[sticker.units]})</title>',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{_hex(PAPER)}"/>']
    for shape in sticker.shapes:
        if isinstance(shape, Band):
            (x1, y1), (x2, y2) = polar(shape.r, shape.start_deg), polar(shape.r, shape.end_deg)
            large = 1 if abs(shape.start_deg - shape.end_deg) > 180 else 0
            out.append(f'<path d="M {x1:.1f} {y1:.1f} A {shape.r:g} {shape.r:g} 0 {large} 1 {x2:.1f} {y2:.1f}" '
                       f'fill="none" stroke="{_hex(shape.colour)}" stroke-width="{shape.width:g}"/>')
        elif isinstance(shape, Bar):
            out.append(f'<line x1="{shape.x1:.1f}" y1="{shape.y1:.1f}" x2="{shape.x2:.1f}" y2="{shape.y2:.1f}" '
                       f'stroke="{_hex(shape.colour)}" stroke-width="{shape.width:g}"/>')
        else:
            out.append(f'<text x="{shape.x:.1f}" y="{shape.y:.1f}" font-size="{shape.size}" '
                       f'font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-weight="bold" '
                       f'text-anchor="middle" dominant-baseline="central" fill="{_hex(shape.colour)}">'
                       f'{escape(shape.text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _thick_line(x1, y1, x2, y2, width) -> list[tuple[float, float]]:
    dx, dy = x2 - x1, y2 - y1
    length = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / length * width / 2, dx / length * width / 2
    return [(x1 + nx, y1 + ny), (x2 + nx, y2 + ny), (x2 - nx, y2 - ny), (x1 - nx, y1 - ny)]


def render_png(sticker: Sticker, path: str) -> None:
    """Draw the sticker with pygame-ce and save it as a PNG of WIDTH x HEIGHT px."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no window is opened; drawing needs no display
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # stdout carries the table
    import pygame  # lazily: only a PNG needs it
    pygame.font.init()
    surface = pygame.Surface((WIDTH, HEIGHT))
    surface.fill(PAPER)
    fonts: dict[int, pygame.font.Font] = {}
    for shape in sticker.shapes:
        if isinstance(shape, Band):
            n = max(8, int(abs(shape.start_deg - shape.end_deg)))
            degs = [shape.start_deg + (shape.end_deg - shape.start_deg) * i / n for i in range(n + 1)]
            outer = [polar(shape.r + shape.width / 2, d) for d in degs]
            inner = [polar(shape.r - shape.width / 2, d) for d in reversed(degs)]
            pygame.draw.polygon(surface, shape.colour, outer + inner)
        elif isinstance(shape, Bar):
            pygame.draw.polygon(surface, shape.colour, _thick_line(shape.x1, shape.y1, shape.x2, shape.y2, shape.width))
        else:
            if shape.size not in fonts:  # pygame's own font draws 0.6875 em at a given size
                fonts[shape.size] = pygame.font.Font(None, round(shape.size / 0.6875))
            font = fonts[shape.size]
            _draw_text(surface, font, shape, pygame)
    try:
        pygame.image.save(surface, path)
    except pygame.error as exc:  # pygame's own error, not an OSError
        raise OSError(str(exc)) from None


def _draw_text(surface, font, label: Label, pygame) -> None:
    """Blit ``label`` centred; pygame's own font has no arrow, so "→" is drawn as a shape."""
    parts = label.text.split("→")
    images = [font.render(part, True, label.colour) for part in parts]
    arrow_w = int(0.7 * label.size) if len(parts) > 1 else 0
    width = sum(i.get_width() for i in images) + arrow_w * (len(parts) - 1)
    ink = images[0].get_bounding_rect()  # centre the ink, not the line box (which has room for descenders)
    x, y = label.x - width / 2, label.y - (ink.top + ink.bottom) / 2
    for n, image in enumerate(images):
        surface.blit(image, (round(x), round(y)))
        x += image.get_width()
        if n < len(images) - 1:
            mid, head = y + (ink.top + ink.bottom) / 2, 0.22 * label.size
            pygame.draw.polygon(surface, label.colour, _thick_line(x + 4, mid, x + arrow_w - head, mid,
                                                                  max(3, label.size // 10)))
            pygame.draw.polygon(surface, label.colour, [(x + arrow_w - head - 2, mid - head),
                                                        (x + arrow_w - 2, mid), (x + arrow_w - head - 2, mid + head)])
            x += arrow_w


# ---------------------------------------------------------------- command

def _check_out(out: str) -> str:
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".svg", ".png"):
        given = ext or "a file without extension"
        raise ConfigError(f"--out {out}: the sticker can be written as .svg or .png, not {given}")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ConfigError(f"--out {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--out {out}: cannot write in {folder} (permission denied)")
    return ext


def policy_for_marks(profile: Profile, rpm_per_kmh: tuple[float, ...] | None = None,
                     limits: ShiftLimits | None = None, **settings) -> ShiftPolicy:
    """The policy a sticker is drawn from; a profile with no known or learned ratios is an error."""
    k = tuple(rpm_per_kmh) if rpm_per_kmh else profile.rpm_per_kmh()
    if not k and profile.learned is not None:
        missing = [str(g) for g, r in enumerate(profile.learned.rpm_per_kmh, start=1) if r is None]
        raise ProfileError(f"{profile.name} has no learned ratio yet for gear {', '.join(missing) or '?'}: "
                           "drive in every gear and run `keidash learn` again, then make the marks")
    if not k:
        raise ProfileError(f"the gear ratios of {profile.name} are not known yet: run `keidash learn` "
                           "on a drive with rpm and speed first, then make the marks")
    if len(k) < 2:
        raise ProfileError(f"{profile.name} has only one forward gear: there is no shift to mark")
    return policy_from_profile(profile, limits or shift_limits(profile), rpm_per_kmh=k, **settings)


def marks_main(profile_name: str, units: str, out: str | None,
               rpm_per_kmh: tuple[float, ...] | None = None, limits: ShiftLimits | None = None) -> str:
    """``keidash marks``: the table text to print; writes the sticker to ``out`` (.svg/.png) when given.

    ``rpm_per_kmh`` (learned ratios) and ``limits`` (config) override the profile's when given.
    Raises ConfigError or ProfileError with one plain sentence on a user mistake.
    """
    if units not in UNITS:
        raise ConfigError(f"units must be {' or '.join(UNITS)}, not {units!r}")
    ext = _check_out(out) if out else None
    profile = load_profile(profile_name)
    policy = policy_for_marks(profile, rpm_per_kmh, limits)
    sticker = layout(profile.title, policy, units)
    table = format_table(profile.title, policy, sticker.marks, units)
    if out:
        try:
            if ext == ".svg":
                with open(out, "w", encoding="utf-8") as f:
                    f.write(render_svg(sticker))
            else:
                render_png(sticker, out)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write it ({exc.strerror or exc})") from None
    return table
