"""``keidash marks``: the shift-speed table and the speedometer sticker (SVG and PNG)."""

import os
import re
import xml.etree.ElementTree as ET

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402
import pytest  # noqa: E402

from keidash.errors import ConfigError, ProfileError  # noqa: E402
from keidash.estimate import marks  # noqa: E402
from keidash.estimate.shift import MODES, policy_from_profile, shift_speeds_kmh, upshift_rpm  # noqa: E402
from keidash.profiles import load_profile  # noqa: E402
from keidash.profiles.engine import shift_limits  # noqa: E402

HIJET = load_profile("hijet-s500p")
SVG = "{http://www.w3.org/2000/svg}"


def table_rows(text: str) -> dict[int, tuple[float, float, float, float]]:
    """gear -> (power speed, power rpm, economy speed, economy rpm) read back from the table."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"(\d)->(\d)\s+(\d+) \S+\s+(\d+) rpm\s+(\d+) \S+\s+(\d+) rpm$", line)
        if m:
            rows[int(m[1])] = tuple(float(x) for x in m.groups()[2:])
    return rows


@pytest.mark.parametrize("units", ["kmh", "mph"])
def test_table_numbers_are_the_shift_speeds(units):
    text = marks.marks_main("hijet-s500p", units, None)
    rows = table_rows(text)
    assert sorted(rows) == [1, 2, 3, 4]
    scale = 1 / marks.KMH_PER_MPH if units == "mph" else 1.0
    for column, mode in enumerate(MODES):
        policy = policy_from_profile(HIJET, shift_limits(HIJET), mode)
        for gear, speed in enumerate(shift_speeds_kmh(policy), start=1):
            assert rows[gear][2 * column] == round(speed * scale)
            assert rows[gear][2 * column + 1] == round(upshift_rpm(policy, gear))
    assert HIJET.title in text and ("mph" if units == "mph" else "km/h") in text


def test_svg_parses_and_carries_every_mark(tmp_path):
    out = tmp_path / "sticker.svg"
    marks.marks_main("hijet-s500p", "kmh", str(out))
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg" and root.get("width") == f"{marks.PRINT_WIDTH_MM:g}mm"
    texts = [(t.text, t.get("fill")) for t in root.iter(f"{SVG}text")]
    lines = [(float(e.get("x1")), float(e.get("y1")), float(e.get("x2")), float(e.get("y2")), e.get("stroke"))
             for e in root.iter(f"{SVG}line")]
    policy = marks.policy_for_marks(HIJET)
    sticker_marks = marks.shift_marks(policy)
    assert len(sticker_marks) == 8
    top = marks.scale_top(policy, "kmh")
    for mark in sticker_marks:
        colour = marks._hex(marks.MODE_COLOUR[mark.mode])
        assert (f"{mark.gear}→{mark.gear + 1}", colour) in texts
        # the mark's stroke crosses the arc at the angle of its road speed
        a = marks.angle_deg(mark.speed_kmh, top)
        inner, outer = marks.mark_span(mark.mode)
        want = (*marks.polar(inner, a), *marks.polar(outer, a))
        assert any(colour == line[4] and all(abs(p - q) < 0.11 for p, q in zip(line, want)) for line in lines)
    numbers = {t for t, fill in texts if t.isdigit()}
    assert numbers == {str(v) for v in range(0, int(top) + 1, 20)}
    assert HIJET.title in [t for t, _ in texts]


def test_png_has_print_size_and_ink_at_every_mark(tmp_path):
    out = tmp_path / "sticker.png"
    marks.marks_main("hijet-s500p", "mph", str(out))
    image = pygame.image.load(str(out))
    assert image.get_size() == (marks.WIDTH, marks.HEIGHT)
    policy = marks.policy_for_marks(HIJET)
    top = marks.scale_top(policy, "mph")
    assert top == 70  # 5700 rpm in 5th is 112 km/h, 69.5 mph
    for mark in marks.shift_marks(policy):
        a = marks.angle_deg(mark.speed_kmh / marks.KMH_PER_MPH, top)
        inner, outer = marks.mark_span(mark.mode)
        # off the arc, on the mark's own side: only the mark can be there
        r = outer - 12 if mark.mode == "power" else inner + 12
        x, y = marks.polar(r, a)
        assert tuple(image.get_at((round(x), round(y))))[:3] == marks.MODE_COLOUR[mark.mode], mark
    # between marks on the same side the paper shows
    x, y = marks.polar(marks.RADIUS + 30, marks.angle_deg(65, top))
    assert tuple(image.get_at((round(x), round(y))))[:3] == marks.PAPER


def test_learned_ratios_make_marks_for_a_profile_without_sourced_ones(tmp_path):
    carry = load_profile("carry-dd51t")
    with pytest.raises(ProfileError, match="keidash learn"):
        marks.marks_main("carry-dd51t", "kmh", None)
    learned = (250.0, 150.0, 100.0, 70.0, 52.0)
    text = marks.marks_main("carry-dd51t", "kmh", str(tmp_path / "carry.svg"), rpm_per_kmh=learned)
    # no torque figures for the F6A: both modes shift at the upshift rpm, and say so
    upshift = shift_limits(carry).upshift_rpm
    for gear, row in table_rows(text).items():
        assert row == (round(upshift / learned[gear - 1]), upshift, round(upshift / learned[gear - 1]), upshift)
    assert "no peak torque" in text
    ET.parse(tmp_path / "carry.svg")


def test_a_profile_written_by_keidash_learn_makes_marks(tmp_path):
    base = (tmp_path / "base.toml")
    text = (
        'name = "my-carry"\ntitle = "My Carry"\n'
        '[engine]\ncode = "F6A"\ndisplacement_cc = 657\n[tyre]\nsize = "145R12"\n'
        '[learned]\nrpm_per_kmh = [250.0, 150.0, 100.0, 70.0, 52.0]\n'
        'confidence = [0.9, 0.9, 0.9, 0.9, 0.8]\nsamples = 900\n')
    base.write_text(text)
    rows = table_rows(marks.marks_main(str(base), "kmh", None))
    assert sorted(rows) == [1, 2, 3, 4]
    partial = tmp_path / "partial.toml"
    partial.write_text(text.replace("70.0, 52.0]", "70.0, nan]").replace("0.9, 0.8]", "0.9, 0.0]"))
    with pytest.raises(ProfileError, match="gear 5.*keidash learn"):
        marks.marks_main(str(partial), "kmh", None)


@pytest.mark.parametrize("units, out, error, words", [
    ("furlongs", None, ConfigError, "units must be kmh or mph"),
    ("kmh", "sticker.jpg", ConfigError, ".svg or .png, not .jpg"),
    ("kmh", "sticker", ConfigError, "without extension"),
    ("kmh", "no/such/folder/sticker.svg", ConfigError, "does not exist"),
])
def test_user_mistakes_get_one_plain_sentence(tmp_path, units, out, error, words):
    with pytest.raises(error) as info:
        marks.marks_main("hijet-s500p", units, str(tmp_path / out) if out else None)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_unknown_profile_is_a_profile_error():
    with pytest.raises(ProfileError, match="unknown profile"):
        marks.marks_main("kei-spaceship", "kmh", None)
