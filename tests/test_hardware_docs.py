"""The hardware and Pi set-up docs stay consistent with keidash's docs and with themselves.

- hardware/schematic.svg is exactly what hardware/schematic.py writes (never hand-edited),
  parses as XML, and names every GPIO that keidash's docs use.
- hardware/bom.csv parses; every row has a manufacturer, a part number and a quantity.
- hardware/models.md has one section per vehicle profile and no other.
- every relative link in these docs points at a file that exists.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARDWARE = ROOT / "hardware"
DOCS = [HARDWARE / "README.md", HARDWARE / "models.md",
        ROOT / "docs" / "overlay-root.md", ROOT / "docs" / "boot-time.md"]
SVG_NS = "{http://www.w3.org/2000/svg}"


def _documented_gpios() -> set[int]:
    """Every BCM pin keidash's own docs configure: pulses URL, lights, button, night."""
    sources = (ROOT / "docs" / "sources.md").read_text(encoding="utf-8")
    lights = (ROOT / "docs" / "lights.md").read_text(encoding="utf-8")
    pins = {int(n) for n in re.findall(r"(?:tach|vss)=(\d+)", sources)}
    bar = re.search(r"^bar = \[([\d, ]+)\]", lights, re.MULTILINE)
    assert bar, "docs/lights.md no longer shows `bar = [...]`"
    pins |= {int(n) for n in bar.group(1).split(",")}
    for key in ("down", "buzzer", "pin", "switch"):
        m = re.search(rf"^{key} = (\d+)", lights, re.MULTILINE)
        assert m, f"docs/lights.md no longer shows `{key} = N`"
        pins.add(int(m.group(1)))
    return pins | {14, 15}  # the GPS UART on /dev/serial0


def test_schematic_svg_is_generated_by_the_script(tmp_path: Path) -> None:
    out = tmp_path / "schematic.svg"
    subprocess.run([sys.executable, str(HARDWARE / "schematic.py"), str(out)], check=True)
    assert out.read_bytes() == (HARDWARE / "schematic.svg").read_bytes(), \
        "hardware/schematic.svg is stale: run python hardware/schematic.py"
    again = tmp_path / "again.svg"
    subprocess.run([sys.executable, str(HARDWARE / "schematic.py"), str(again)], check=True)
    assert again.read_bytes() == out.read_bytes()


def test_schematic_parses_and_names_every_documented_gpio() -> None:
    root = ET.parse(HARDWARE / "schematic.svg").getroot()
    assert root.tag == f"{SVG_NS}svg"
    width, height = float(root.get("width")), float(root.get("height"))
    texts = [t.text or "" for t in root.iter(f"{SVG_NS}text")]
    named = {int(n) for t in texts for n in re.findall(r"GPIO(\d+)", t)}
    documented = _documented_gpios()
    assert len(documented) >= 13
    assert documented <= named, f"not in the schematic: {sorted(documented - named)}"
    assert {22, 23} <= named  # ignition sense and power hold, chosen in hardware/README.md
    for t in root.iter(f"{SVG_NS}text"):  # nothing drawn off the page
        assert 0 <= float(t.get("x")) <= width and 0 <= float(t.get("y")) <= height


def test_every_gpio_in_the_schematic_is_in_the_readme_pin_map() -> None:
    readme = (HARDWARE / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if line.startswith("| ") and "|" in line[2:]]
    in_table = {int(n) for line in table for n in re.findall(r"\b(\d+)\b", line.split("|")[1])}
    assert _documented_gpios() | {22, 23} <= in_table


def test_bom_rows_are_complete() -> None:
    with open(HARDWARE / "bom.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 20
    for row in rows:
        ref = row["ref"]
        assert row["manufacturer"].strip(), ref
        assert row["part_number"].strip(), ref
        assert row["role"].strip(), ref
        assert int(row["qty"]) >= 0, ref
        if row["manufacturer"] != "generic":  # a named maker has a real number, not a spec
            assert not row["part_number"].startswith("spec"), ref
    fitted = {r["part_number"] for r in rows if int(r["qty"]) > 0}
    assert {"PC817", "SM8S24A", "D36V28F5", "1N4750A", "1N4746A"} <= fitted


def test_every_bom_reference_appears_in_the_schematic() -> None:
    svg = (HARDWARE / "schematic.svg").read_text(encoding="utf-8")
    with open(HARDWARE / "bom.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["qty"]) > 0]
    for row in rows:
        first = re.split(r"[ -]", row["ref"])[0]
        assert re.search(rf"\b{re.escape(first)}\b", svg), row["ref"]


def test_models_cover_exactly_the_profiles() -> None:
    profiles = {p.stem for p in (ROOT / "keidash" / "profiles").glob("*.toml")}
    text = (HARDWARE / "models.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^## ([a-z0-9-]+)\s*$", text, re.MULTILINE))
    assert sections == profiles


def test_relative_links_resolve() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{doc.relative_to(ROOT)} links to missing {target}"


def test_the_ignition_pin_is_documented_as_read_by_keidash_ignition() -> None:
    """Issue 14 point 11: GPIO 22 is read by `keidash ignition`, which the CLI really has."""
    readme = (HARDWARE / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| **22** |"))
    assert "keidash ignition --pin 22" in row and "not yet" not in readme
    out = subprocess.run([sys.executable, "-m", "keidash", "ignition", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--pin" in out.stdout and "--grace" in out.stdout


def test_the_example_config_names_its_truck_truly() -> None:
    """The example's first comment names the profile it sets, with that profile's years."""
    import tomllib
    from keidash.profiles import load_profile
    text = (ROOT / "docs" / "example-config.toml").read_text(encoding="utf-8")
    profile = load_profile(tomllib.loads(text)["profile"])
    described = text.splitlines()[1]
    assert "1990s" not in described
    assert profile.years in described and profile.title.split("/")[0].split()[-1] in described
