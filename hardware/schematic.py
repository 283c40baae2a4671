"""Write hardware/schematic.svg: the keidash wiring diagram (truck side -> Raspberry Pi).

This script is the diagram's source; the SVG beside it is generated and never edited by
hand. It is a block diagram with named nets, not a netlist: every block lists its parts
in signal order (reference designators match hardware/bom.csv), every wire is labelled
with its net, and every net that reaches the Pi is labelled with its BCM GPIO number as
keidash's config uses it (docs/lights.md, docs/sources.md).

Standard library only and deterministic: the same script writes the same bytes, so
tests/test_hardware_docs.py can check the committed SVG is current.

    python hardware/schematic.py                 # writes hardware/schematic.svg
    python hardware/schematic.py /tmp/out.svg    # writes elsewhere
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

WIDTH = 1500   # px, the drawing's width
HEIGHT = 1060  # px
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
LINE_H = 14    # px between text lines inside a block

# Colours chosen to survive black-and-white printing: each kind of net also differs in
# line style (power thick, isolated signals dashed on the truck side).
TRUCK = "#b00000"    # truck-side (12 V, non-isolated) nets
PI = "#0050a0"       # Pi-side (3.3 V logic) nets
POWER5 = "#006000"   # 5 V supply nets


@dataclass(frozen=True)
class Block:
    """A titled box listing its parts. x, y, w, h in px."""

    x: int
    y: int
    w: int
    h: int
    title: str
    lines: tuple[str, ...]
    stroke: str = "#000000"
    dashed: bool = False


class Drawing:
    """Collects SVG elements in order; `svg()` joins them into one document."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(self, x: float, y: float, s: str, size: int = 11, weight: str = "normal",
             anchor: str = "start", fill: str = "#000000") -> None:
        self.parts.append(
            f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" font-weight="{weight}" '
            f'text-anchor="{anchor}" fill="{fill}">{escape(s)}</text>')

    def line(self, points: list[tuple[int, int]], stroke: str, width: float = 1.5,
             dashed: bool = False) -> None:
        pts = " ".join(f"{x},{y}" for x, y in points)
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{stroke}" '
                          f'stroke-width="{width}"{dash}/>')

    def dot(self, x: int, y: int, fill: str) -> None:
        self.parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{fill}"/>')

    def block(self, b: Block) -> None:
        dash = ' stroke-dasharray="8,4"' if b.dashed else ""
        self.parts.append(f'<rect x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}" '
                          f'fill="#ffffff" stroke="{b.stroke}" stroke-width="1.5"{dash}/>')
        self.text(b.x + 6, b.y + 15, b.title, size=12, weight="bold")
        for i, s in enumerate(b.lines):
            self.text(b.x + 6, b.y + 31 + i * LINE_H, s, size=10)

    def net(self, points: list[tuple[int, int]], label: str, stroke: str,
            width: float = 1.5, dashed: bool = False, label_at: int = 0,
            dy: int = -4) -> None:
        """A wire with its net name written above the segment starting at point label_at."""
        self.line(points, stroke, width, dashed)
        if not label:
            return
        (x0, y0), (x1, y1) = points[label_at], points[label_at + 1]
        self.text((x0 + x1) / 2, min(y0, y1) + dy, label, size=10, anchor="middle", fill=stroke)

    def svg(self) -> str:
        head = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
                f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}">\n'
                f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>\n')
        return head + "\n".join(self.parts) + "\n</svg>\n"


# The Pi's header as drawn: (BCM GPIO, short net name, 40-pin header position, y in px).
# Inputs enter on the Pi block's left edge, outputs leave on its right edge.
PI_LEFT: tuple[tuple[int, str, int, int], ...] = (
    (23, "PWR_HOLD", 16, 240),
    (22, "IGN_SENSE", 15, 440),
    (17, "TACH", 11, 610),
    (27, "VSS", 13, 760),
    (15, "RXD", 10, 870),
    (14, "TXD", 8, 900),
)
PI_RIGHT: tuple[tuple[int, str, int, int], ...] = (
    (5, "bar 1", 29, 200),
    (6, "bar 2", 31, 240),
    (13, "bar 3", 33, 280),
    (19, "bar 4", 35, 320),
    (26, "bar 5", 37, 360),
    (12, "down LED", 32, 400),
    (16, "buzzer", 36, 560),
    (21, "button", 40, 700),
    (20, "night", 38, 740),
)
PI_X0, PI_X1 = 860, 1180   # the Pi block's left and right edges
PI_Y0, PI_Y1 = 80, 1030


def draw() -> str:
    d = Drawing()
    d.text(20, 30, "keidash: truck wiring (12 V kei truck -> Raspberry Pi)", size=18, weight="bold")
    d.text(20, 50, "Block diagram with named nets. Parts by reference: hardware/bom.csv. "
                   "Why each part: hardware/README.md. Generated by hardware/schematic.py; do not edit.",
           size=11)
    d.text(20, 66, "Red = truck side (12 V, not isolated). Blue = Pi side (3.3 V). Green = 5 V. "
                   "Dashed boxes: optional. GPIO numbers are BCM numbers as in keidash's config.",
           size=11)

    # ---------------------------------------------------------------- power path
    feed = Block(20, 90, 170, 125, "Truck IG1 (key ON/START)", (
        "switched +12 V circuit:", "live in ON and START,", "dead in OFF and ACC;",
        "where: hardware/models.md", "(not sourced: test light)",
        "via J1 sealed connector"), stroke=TRUCK)
    prot = Block(230, 90, 230, 125, "Input protection", (
        "F1  3 A blade fuse, in-line holder", "D1  SM8S24A TVS to GND (load dump)",
        "      (SMBJ24A if the battery stays on)", "D2  1N5822 series Schottky:",
        "      reverse polarity; blocks hold-up", "      back-feed into IG1"), stroke=TRUCK)
    hold = Block(230, 250, 230, 110, "Hold-up (option A, drawn)", (
        "R1  10 ohm 5 W charge resistor", "D3  1N5822 discharge bypass",
        "C1  6 x 2.7 V 25 F EDLC in series", "      with balancing: 4.2 F, 16.2 V",
        "      14 V -> 6 V gives ~330 J"), stroke=TRUCK)
    buck = Block(510, 90, 230, 140, "5 V buck (automotive input)", (
        "U1  Pololu D36V28F5 (5 V 3.2 A)", "      or D36V50F5 (5 V 5.5 A, Pi 5)",
        "      VIN up to 50 V; EN pin", "EN = IGN OR PWR_HOLD:", "  D4 1N4148 from IGN_12V (R 10k/47k)",
        "  Q2 2N7000 driven by PWR_HOLD", "C2  470 uF 35 V low-ESR at VIN"), stroke=TRUCK)
    ups = Block(510, 260, 230, 80, "Hold-up (option B)", (
        "a UPS HAT instead of C1/R1/D3,", "e.g. Silicognition LiFePO4wered/Pi+,",
        "fed from U1's 5 V; see README"), stroke="#555555", dashed=True)
    for b in (feed, prot, hold, buck, ups):
        d.block(b)
    d.net([(190, 130), (230, 130)], "IGN_12V", TRUCK, 3, dy=22)
    d.net([(460, 130), (510, 130)], "V_BUS", TRUCK, 3)
    d.line([(485, 130), (485, 270), (460, 270)], TRUCK, 3)
    d.dot(485, 130, TRUCK)

    # ignition sense: tapped BEFORE D2, so it drops at key-off while V_BUS is held up
    ign = Block(20, 400, 300, 110, "Ignition sense (U2 PC817)", (
        "IGN_12V (before D2) -> R2 4.7k -> U2 LED -> GND", "D5 1N4148 reverse across the LED",
        "U2 transistor: C -> GPIO22, E -> Pi GND", "R3 10k pull-up to 3.3 V, C3 100 nF to GND",
        "key on: LED on, GPIO22 reads low"), stroke=TRUCK)
    d.block(ign)
    d.dot(210, 130, TRUCK)
    d.net([(210, 130), (210, 380), (100, 380), (100, 400)], "IGN_12V", TRUCK, 1.5, label_at=1)

    # ---------------------------------------------------------------- Pi block
    d.parts.append(f'<rect x="{PI_X0}" y="{PI_Y0}" width="{PI_X1 - PI_X0}" height="{PI_Y1 - PI_Y0}" '
                   f'fill="#ffffff" stroke="{PI}" stroke-width="2"/>')
    mid = (PI_X0 + PI_X1) / 2
    d.text(mid, PI_Y0 + 18, "Raspberry Pi", size=14, weight="bold", anchor="middle")
    d.text(mid, PI_Y0 + 34, "Zero 2 W / 3 / 4 / 5, 40-pin header", size=10, anchor="middle")
    d.text(mid, PI_Y0 + 48, "BCM GPIO [header pin]", size=10, anchor="middle")
    for gpio, name, pin, y in PI_LEFT:
        d.dot(PI_X0, y, PI)
        d.text(PI_X0 + 8, y + 4, f"GPIO{gpio} {name}", size=11, weight="bold", fill=PI)
        d.text(PI_X0 + 8, y + 17, f"[pin {pin}]", size=9)
    for gpio, name, pin, y in PI_RIGHT:
        d.dot(PI_X1, y, PI)
        d.text(PI_X1 - 8, y + 4, f"{name} GPIO{gpio}", size=11, weight="bold", fill=PI, anchor="end")
        d.text(PI_X1 - 8, y + 17, f"[pin {pin}]", size=9, anchor="end")
    d.text(PI_X0 + 8, 154, "+5V [pins 2, 4], GND [6, 9, ...]", size=10, fill=POWER5)
    d.text(mid, PI_Y1 - 12, "USB port: ELM327", size=10, anchor="middle")

    d.net([(740, 130), (800, 130), (800, 150), (PI_X0, 150)], "+5V", POWER5, 3, label_at=0)
    d.net([(PI_X0, 240), (770, 240), (770, 200), (740, 200)], "GPIO23 PWR_HOLD", PI, label_at=0)
    d.net([(320, 440), (PI_X0, 440)], "GPIO22 IGN_SENSE (isolated)", PI, label_at=0)

    # ---------------------------------------------------------------- tach input
    tach = Block(20, 540, 520, 140, "Tach input from coil negative (U3 PC817); why: README", (
        "coil(-) -> R4 22k 1W -> R5 22k 1W (44k in series: splits a 300-400 V flyback) -> node A",
        "node A: D6 1N4750A 27 V zener to GND (clamp; conducts forward on negative swings)",
        "node A: C4 4.7 nF to GND (tau 0.2 ms with R4+R5: eats the first ns-us spike)",
        "node A -> D7 1N4746A 18 V zener in series (only the flyback above ~19 V lights the LED,",
        "      not the 12-14 V the coil(-) rests at) -> R6 470 ohm -> U3 LED -> GND; D8 1N4148 across",
        "U3 transistor: C -> GPIO17, E -> Pi GND; R7 10k to 3.3 V, C5 1 nF to GND (tau 10 us)",
        "one falling edge per spark: 8000 rpm is 200 Hz (3-cyl dist.), 267 Hz (4-cyl dist.)"),
        stroke=TRUCK)
    d.block(tach)
    d.net([(540, 610), (PI_X0, 610)], "GPIO17 TACH (isolated)", PI, label_at=0)

    # ---------------------------------------------------------------- VSS input
    vss = Block(20, 700, 520, 125, "Speed sensor (VSS) input (U4 PC817)", (
        "VSS wire: D9 SMAJ33A TVS to GND; R8 2.2k pull-up to V_BUS for a reed switch or",
        "      open collector (leave R8 out if the sender drives its own 12 V square wave)",
        "VSS -> R9 4.7k -> U4 LED -> GND, D10 1N4148 reverse across the LED",
        "U4 transistor: C -> GPIO27, E -> Pi GND; R10 10k to 3.3 V, C6 10 nF to GND",
        "a variable-reluctance (2-wire AC) sender needs a VR interface IC instead (README)",
        "JIS D 5601: 637 rev/km; 4 pulses/rev = 2548 /km = 42.5 Hz at 60 km/h"), stroke=TRUCK)
    d.block(vss)
    d.net([(540, 760), (PI_X0, 760)], "GPIO27 VSS (isolated)", PI, label_at=0)

    d.text(20, 838, "U2-U4 optocouplers: left of each LED is the truck's ground and 12 V, "
                    "right of each transistor only the Pi's 3.3 V and GND.", size=10, fill="#555555")

    # ---------------------------------------------------------------- GPS and ELM327
    gps = Block(20, 845, 330, 95, "GPS (U5, 3.3 V TTL UART)", (
        "e.g. Adafruit Ultimate GPS (product 746) or u-blox",
        "VIN <- +5V (check the module), GND <- Pi GND",
        "GPS TX -> GPIO15 (RXD), GPS RX <- GPIO14 (TXD)",
        "keidash: nmea:///dev/serial0 (Pi 5: README)"), stroke=PI)
    d.block(gps)
    d.net([(350, 870), (PI_X0, 870)], "GPIO15 RXD <- GPS TX", PI, label_at=0)
    d.net([(350, 900), (PI_X0, 900)], "GPIO14 TXD -> GPS RX", PI, label_at=0, dy=14)
    elm = Block(20, 955, 330, 95, "ELM327 (U6), OBD trucks only", (
        "USB: a Pi USB port (obd:///dev/ttyUSB0)", "or Bluetooth: obd:///dev/rfcomm0",
        "powered by OBD pin 16 (battery, always on):", "unplug when parked (drains the battery)"),
        stroke="#555555", dashed=True)
    d.block(elm)
    d.net([(350, 1000), (mid, 1000), (mid, PI_Y1 - 26)], "USB", PI, label_at=0)

    # ---------------------------------------------------------------- outputs
    bar = Block(1210, 170, 280, 250, "Shift lights (docs/lights.md)", (
        "LED1-5 bar, left to right:", "  GPIO5/6/13/19/26 -> R11-R15 430 ohm", "  -> LED anode, cathode -> GND",
        "  (3 mA each at 3.3 V, red LED)", "LED6 down: GPIO12 -> R16 430 ohm", "  -> LED -> GND (software PWM)",
        "one resistor per LED, never shared", "", "brighter (12 V) lamps: a ULN2003A",
        "  sink driver, input from the GPIO,", "  output to the lamp's cathode,", "  COM to the lamp supply",
        "  (its internal flyback diodes)"), stroke=PI)
    buzz = Block(1210, 500, 280, 110, "Buzzer (active type)", (
        "GPIO16 -> R17 1k -> Q1 BC337 base", "Q1 emitter -> GND", "BZ1 between +5V and Q1 collector",
        "D11 1N4148 across BZ1 (inductive types)", "a 3.3 V buzzer under 10 mA: direct"), stroke=PI)
    sw = Block(1210, 660, 280, 130, "Switches (internal pull-ups)", (
        "SW1 dash button: GPIO21 to GND", "SW2 night switch: GPIO20 to GND",
        "long wires: R18/R19 1k in series", "  + C7/C8 100 nF to GND at the Pi",
        "night from a 12 V lamp circuit:", "  through a PC817 stage like U2,", "  never straight to a GPIO"),
        stroke=PI)
    for b in (bar, buzz, sw):
        d.block(b)
    for gpio, _name, _pin, y in PI_RIGHT:
        d.net([(PI_X1, y), (1210, y)], "", PI, 1.5)
    return d.svg()


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("schematic.svg")
    out.write_text(draw(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
