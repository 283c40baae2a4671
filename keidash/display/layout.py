"""Where everything goes on the cluster, in pixels, for each supported screen.

Pure geometry: no pygame here, so the layouts can be checked (fit, overlap,
figure heights) without opening a display. Rects are ``(x, y, width, height)``.

Four named layouts, one per screen keidash is built for:

- ``"800x480"``: the official 7" Raspberry Pi DSI display (the design size);
- ``"480x320"``: the common 3.5" SPI/HDMI hats;
- ``"1024x600"``: the cheap 7" HDMI panels;
- ``"1280x400"``: a wide, short "bar" screen: tach left, speed in the middle,
  gear and the rest right.

The first three share one arrangement (tach left, speed over gear and the
small figures on the right) scaled to the screen; the bar has its own.
:func:`choose_layout` picks the named layout nearest a screen size (by aspect
ratio first, then area) and builds it for that exact size, so an unlisted
screen still gets a layout that fits. :meth:`Layout.off_screen` says what a layout named for
another screen would push off this one (the bar on a 5:3 screen: gear and speed), so the dash can
refuse it (named on the command line) or fit the screen instead (named in the config) with a sentence.

Readability rule: the speed and gear figures are at least a quarter of the
screen height tall (digit ink, not font size), because the dash is read in a
glance at arm's length on a rough road. ``FIGURE_HEIGHT_FRACTION`` and
``DIGIT_INK_EM`` set that; the tests check it on every layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Rect = tuple[int, int, int, int]

TACH_SWEEP_DEG = 240.0
TACH_START_DEG = 90.0 + TACH_SWEEP_DEG / 2  # 0 rpm, lower left; maths angle, counter-clockwise

DIGIT_INK_EM = 0.73  # freesansbold: a digit's ink is 0.73 of the font size tall
DIGIT_ADVANCE_EM = 0.56  # and 0.56 of it wide, every digit the same
FIGURE_HEIGHT_FRACTION = 0.25  # speed and gear digits: at least this share of the screen height
SHIFT_SEGMENTS = 12  # lamps in the shift-light bar
SOURCE_SLOTS = 3  # sources the status strip has room for at full width; more share that room
SOURCE_NAME_EM = 3.5  # the longest name a source gets from keidash ("pulses", "replay"): 3.45 em in bold
SOURCES_MOST = 2 / 3  # the share of the strip (up to the clock) that more sources' names may take


def crowding(count: int) -> float:
    """How much closer ``count`` source dots sit than SOURCE_SLOTS of them (1.0 up to that many)."""
    return SOURCE_SLOTS / max(SOURCE_SLOTS, count)

# name -> (design size, arrangement)
LAYOUTS: dict[str, tuple[tuple[int, int], str]] = {
    "800x480": ((800, 480), "standard"),
    "480x320": ((480, 320), "standard"),
    "1024x600": ((1024, 600), "standard"),
    "1280x400": ((1280, 400), "bar"),
}


@dataclass(frozen=True)
class Layout:
    """One screen's layout. ``unit`` scales the small texts against the 800x480 design."""

    name: str
    size: tuple[int, int]
    unit: float
    shift: Rect  # the shift-light bar along the top
    tach_center: tuple[int, int]
    tach_radius: int
    speed: Rect
    speed_px: int  # font size of the big speed figure
    gear: Rect
    gear_px: int  # font size of the gear figure
    info: Rect  # coolant, battery, trip, odometer (drive page)
    status: Rect  # the source strip along the bottom, with the clock at its right
    source_slot: int  # width of one source's dot + name in the status strip
    clock: Rect  # HH:MM at the right of the status strip
    page: Rect  # where the trip page goes (the tach's place)

    # -- derived rects ------------------------------------------------------------------------

    @property
    def gauges(self) -> Rect:
        """The small-figures panel (coolant, battery, trip, odometer); the old name."""
        return self.info

    @property
    def info_rows(self) -> tuple[Rect, Rect, Rect, Rect]:
        """Coolant, battery, trip and odometer rows of the info panel."""
        x, y, w, h = self.info
        row = h // 4
        return tuple((x, y + i * row, w, row) for i in range(4))  # type: ignore[return-value]

    @property
    def tach_rect(self) -> Rect:
        (cx, cy), r = self.tach_center, self.tach_radius
        return (cx - r, cy - r, 2 * r, 2 * r)

    @property
    def rpm_digits_rect(self) -> Rect:
        """The rpm digits, in the open bottom of the tach."""
        (cx, cy), r = self.tach_center, self.tach_radius
        return (round(cx - 0.46 * r), round(cy + 0.40 * r), round(0.92 * r), round(0.44 * r))

    @property
    def est_rect(self) -> Rect:
        """The "EST" badge, between the hub and the rpm digits."""
        (cx, cy), r = self.tach_center, self.tach_radius
        w, h = round(0.46 * r), round(0.16 * r)
        return (cx - w // 2, round(cy + 0.30 * r - h / 2), w, h)

    @property
    def status_message(self) -> Rect:
        """The middle of the status strip: a source's trouble (up to SOURCE_SLOTS sources)."""
        return self.status_message_area(SOURCE_SLOTS)

    def status_message_area(self, count: int) -> Rect:
        """The middle of the status strip beside ``count`` sources' dots and names."""
        x, y, w, h = self.sources_area(count)
        left = x + w
        return (left, y, self.clock[0] - left, h)

    @property
    def message_strip(self) -> Rect:
        """The driver message strip: the status strip but for the (compact) source dots and clock."""
        x, y, _, h = self.status
        left = x + self.compact_dot(SOURCE_SLOTS)[0] - round(0.2 * h)
        return (left, y, self.clock[0] - left, h)

    def compact_dot(self, index: int, count: int = SOURCE_SLOTS) -> tuple[int, int]:
        """Centre of the ``index``-th of ``count`` source dots while a message takes the strip (no
        names). More than SOURCE_SLOTS sources share the same room, closer together."""
        x, y, _, h = self.status
        return round(x + 0.6 * h + index * 0.7 * h * crowding(count)), y + h // 2

    @property
    def sources(self) -> Rect:
        """The sources' dots and names, up to SOURCE_SLOTS of them."""
        return self.sources_area(SOURCE_SLOTS)

    def sources_area(self, count: int) -> Rect:
        """The dots and names of ``count`` sources: SOURCE_SLOTS slots' room, more when more
        sources need it to show their names whole (see :meth:`source_width`)."""
        x, y, _, h = self.status
        return (x, y, max(self.source_slot * SOURCE_SLOTS, self.source_width(count) * count), h)

    @property
    def source_name_px(self) -> int:
        """Font size of the sources' names in the status strip."""
        return max(10, round(0.46 * self.status[3]))

    def source_dot_radius(self, count: int = SOURCE_SLOTS) -> int:
        """The source dots' radius: past SOURCE_SLOTS sources they sit closer and, past four, are smaller."""
        return max(3, round(self.status[3] * 0.2 * min(1.0, 1.5 * crowding(count))))

    def source_name_x(self, index: int, count: int = SOURCE_SLOTS) -> int:
        """Where the ``index``-th of ``count`` sources' name starts, right of its dot."""
        return self.source_dot(index, count)[0] + self.source_dot_radius(count) + max(3, round(6 * self.unit))

    def source_name_room(self, index: int, count: int = SOURCE_SLOTS) -> int:
        """Pixels the ``index``-th of ``count`` sources' name may take (a longer one is cut short)."""
        x = self.status[0]
        right = x + (index + 1) * self.source_width(count) - max(2, round(4 * self.unit))
        return right - self.source_name_x(index, count)

    def shift_segment(self, index: int) -> Rect:
        """The ``index``-th lamp of the shift-light bar, left to right."""
        x, y, w, h = self.shift
        gap = max(2, round(4 * self.unit))
        seg_w = (w - gap * (SHIFT_SEGMENTS - 1)) / SHIFT_SEGMENTS
        left = round(x + index * (seg_w + gap))
        right = round(x + index * (seg_w + gap) + seg_w)
        return (left, y, right - left, h)

    def tach_point(self, rpm: float, tach_max_rpm: float,
                   radius_fraction: float) -> tuple[int, int]:
        """The pixel at ``rpm`` on the tach scale, ``radius_fraction`` of the way out."""
        a = math.radians(tach_angle_deg(rpm, tach_max_rpm))
        cx, cy = self.tach_center
        r = self.tach_radius * radius_fraction
        return round(cx + r * math.cos(a)), round(cy - r * math.sin(a))

    def source_width(self, count: int = SOURCE_SLOTS) -> int:
        """Width of one source's dot + name when ``count`` sources share the strip.

        Up to SOURCE_SLOTS sources each has a slot. More share that room, closer together, as
        long as their names still show whole (a name of SOURCE_NAME_EM); when they would not,
        the sources take more of the strip from the message beside them, up to SOURCES_MOST of
        it, and only past that are their names cut short.
        """
        shared = round(self.source_slot * crowding(count))
        if count <= SOURCE_SLOTS:
            return shared
        h = self.status[3]
        whole = math.ceil(0.6 * h + self.source_dot_radius(count) + max(3, round(6 * self.unit))
                          + SOURCE_NAME_EM * self.source_name_px + max(2, round(4 * self.unit)))
        most = int(SOURCES_MOST * (self.clock[0] - self.status[0])) // count
        return max(shared, min(whole, most))

    def source_dot(self, index: int, count: int = SOURCE_SLOTS) -> tuple[int, int]:
        """Centre of the dot of the ``index``-th of ``count`` sources in the status strip."""
        x, y, _, h = self.status
        return round(x + 0.6 * h) + index * self.source_width(count), y + h // 2

    def needle_polygon(self, rpm: float, tach_max_rpm: float) -> list[tuple[float, float]]:
        """The needle's outline at ``rpm``: a tapered bar from behind the hub to near the rim."""
        (cx, cy), r = self.tach_center, self.tach_radius
        a = math.radians(tach_angle_deg(rpm, tach_max_rpm))
        ux, uy = math.cos(a), -math.sin(a)  # along the needle, screen coords
        nx, ny = -uy, ux  # across it
        tip, tail = 0.90 * r, -0.10 * r  # the tail stays clear of the label under the hub
        base_half, tip_half = 0.045 * r, 0.014 * r
        return [(cx + ux * tail + nx * base_half, cy + uy * tail + ny * base_half),
                (cx + ux * tip + nx * tip_half, cy + uy * tip + ny * tip_half),
                (cx + ux * tip - nx * tip_half, cy + uy * tip - ny * tip_half),
                (cx + ux * tail - nx * base_half, cy + uy * tail - ny * base_half)]

    def needle_area(self, rpm: float | None, tach_max_rpm: float) -> Rect:
        """The pixels the needle and hub cover at ``rpm`` (the hub alone when None), padded."""
        (cx, cy), r = self.tach_center, self.tach_radius
        hub = round(0.075 * r) + 2
        xs, ys = [cx - hub, cx + hub], [cy - hub, cy + hub]
        if rpm is not None:
            for px, py in self.needle_polygon(rpm, tach_max_rpm):
                xs.append(px)
                ys.append(py)
        left, top = math.floor(min(xs)) - 2, math.floor(min(ys)) - 2
        return (left, top, math.ceil(max(xs)) + 3 - left, math.ceil(max(ys)) + 3 - top)

    def off_screen(self) -> list[str]:
        """What this layout puts (partly) beyond its screen's edges: [] when everything shows.

        The standard arrangement scales to any landscape screen; the bar's needs a screen as
        wide as a bar, so ``1280x400`` on an 800x480 screen would push gear and speed off it.
        """
        w, h = self.size
        parts = {"speed": self.speed, "gear": self.gear, "tach": self.tach_rect, "small figures": self.info}
        return [part for part, (x, y, rw, rh) in parts.items()
                if x < 0 or y < 0 or rw <= 0 or rh <= 0 or x + rw > w or y + rh > h]

    @classmethod
    def for_size(cls, size: tuple[int, int], name: str | None = None) -> Layout:
        """The layout named ``name`` (or the nearest one) built for a screen of ``size``."""
        name = name or choose_layout(size)
        try:
            kind = LAYOUTS[name][1]
        except KeyError:
            raise ValueError(f"unknown layout {name!r}: choose one of {', '.join(LAYOUTS)}") from None
        return (_bar if kind == "bar" else _standard)(name, size)


def tach_angle_deg(rpm: float, tach_max_rpm: float) -> float:
    """Maths angle (degrees, counter-clockwise from +x) of ``rpm`` on the tach; pegs at the ends."""
    fraction = min(max(rpm / tach_max_rpm, 0.0), 1.0)
    return TACH_START_DEG - TACH_SWEEP_DEG * fraction


def choose_layout(size: tuple[int, int]) -> str:
    """The name of the layout nearest ``size``: aspect ratio weighs most, then area."""
    w, h = size
    if w <= 0 or h <= 0:
        raise ValueError(f"screen size must be positive, not {size}")

    def distance(item) -> float:
        (lw, lh), _ = item[1]
        return 4.0 * abs(math.log((w / h) / (lw / lh))) + abs(math.log((w * h) / (lw * lh)))
    return min(LAYOUTS.items(), key=distance)[0]


def figure_px(height: int) -> int:
    """Font size whose digits are ``FIGURE_HEIGHT_FRACTION`` of a ``height``-pixel screen.

    Plus 5%: the anti-aliased top and bottom rows of a digit are not full ink.
    """
    return math.ceil(FIGURE_HEIGHT_FRACTION * 1.05 * height / DIGIT_INK_EM)


def _frame(size: tuple[int, int], shift_fraction: float, status_fraction: float):
    """Margins, shift bar, status strip and the main area's top and bottom, shared by all."""
    w, h = size
    unit = min(w / 800, h / 480)
    margin = max(4, round(8 * unit))
    shift = (margin, margin, w - 2 * margin, max(16, round(shift_fraction * h)))
    status_h = max(20, round(status_fraction * h))
    status = (0, h - status_h, w, status_h)
    top = shift[1] + shift[3] + margin
    bottom = status[1] - margin
    clock_w = round(status_h * 2.9)
    clock = (w - clock_w - margin, status[1], clock_w, status_h)
    return unit, margin, shift, status, top, bottom, clock


def _standard(name: str, size: tuple[int, int]) -> Layout:
    """Tach left; on the right, speed over gear and the small figures."""
    w, h = size
    unit, m, shift, status, top, bottom, clock = _frame(size, 0.085, 0.072)
    main_h = bottom - top
    px = figure_px(h)
    unit_col = round(max(0.62 * px, 100 * unit))  # "mph" over "120 km/h" beside the big figure
    right_w = round(3 * DIGIT_ADVANCE_EM * px + unit_col + 3 * m)
    diameter = min(main_h, w - right_w - 3 * m)
    radius = diameter // 2
    center = (m + (w - right_w - 2 * m) // 2, top + main_h // 2)
    right_x = w - m - right_w
    speed_h = round(0.5 * main_h)
    speed = (right_x, top, right_w, speed_h)
    lower_y = top + speed_h + m
    lower_h = bottom - lower_y
    gear_w = round(1.2 * px)
    gear = (right_x, lower_y, gear_w, lower_h)
    info = (right_x + gear_w + m, lower_y, right_w - gear_w - m, lower_h)
    page = (m, top, right_x - 2 * m, main_h)
    return Layout(name=name, size=size, unit=unit, shift=shift, tach_center=center,
                  tach_radius=radius, speed=speed, speed_px=px, gear=gear, gear_px=px, info=info,
                  status=status, source_slot=round(0.15 * min(w, 1.6 * h)), clock=clock, page=page)


def _bar(name: str, size: tuple[int, int]) -> Layout:
    """A wide, short screen: tach left, speed in the middle, gear and the small figures right."""
    w, h = size
    unit, m, shift, status, top, bottom, clock = _frame(size, 0.085, 0.07)
    main_h = bottom - top
    radius = main_h // 2
    center = (m + radius, top + radius)
    tach_right = m + 2 * radius
    px = max(figure_px(h), round(0.66 * main_h))
    unit_col = round(max(0.6 * figure_px(h), 110 * unit))
    speed_w = round(3 * DIGIT_ADVANCE_EM * px + unit_col + 3 * m)
    speed = (tach_right + m, top, speed_w, main_h)
    gear_w = round(1.15 * px)
    gear = (speed[0] + speed_w + m, top, gear_w, main_h)
    info_x = gear[0] + gear_w + m
    info = (info_x, top, w - m - info_x, main_h)
    page = (m, top, tach_right - m, main_h)
    return Layout(name=name, size=size, unit=unit, shift=shift, tach_center=center,
                  tach_radius=radius, speed=speed, speed_px=px, gear=gear, gear_px=px, info=info,
                  status=status, source_slot=round(0.15 * min(w, 1.6 * h)), clock=clock, page=page)
