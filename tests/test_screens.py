"""Screenshot tests: known dash situations on every layout, compared with reference PNGs.

The references are in tests/data/screens/. Regenerate them after a deliberate change:

    KEIDASH_UPDATE_SCREENS=1 SDL_VIDEODRIVER=dummy .venv/bin/pytest tests/test_screens.py

and LOOK at them before keeping them. The comparison tolerates font hinting and
anti-aliasing differences between machines (small mean difference, few pixels
far off) but fails when an element moves, changes colour or goes missing.
"""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from pathlib import Path  # noqa: E402

import pygame  # noqa: E402
import pytest  # noqa: E402

from keidash.display.cluster import Cluster  # noqa: E402
from keidash.display.layout import LAYOUTS  # noqa: E402
from keidash.display.screens import SITUATIONS, fixed_timezone  # noqa: E402

REFERENCES = Path(__file__).parent / "data" / "screens"
UPDATE = os.environ.get("KEIDASH_UPDATE_SCREENS") == "1"
MAX_MEAN_DIFF = 1.5  # mean absolute difference per channel, 0..255
MAX_FAR_SHARE = 0.004  # share of pixels with a channel off by more than FAR
FAR = 32


def difference(a, b) -> tuple[float, float]:
    """(mean absolute channel difference, share of pixels off by more than FAR) of two Surfaces."""
    a, b = a.convert(24) if a.get_bitsize() != 24 else a, b.convert(24) if b.get_bitsize() != 24 else b
    up = a.copy()
    up.blit(b, (0, 0), special_flags=pygame.BLEND_RGB_SUB)  # max(a - b, 0)
    down = b.copy()
    down.blit(a, (0, 0), special_flags=pygame.BLEND_RGB_SUB)  # max(b - a, 0)
    up.blit(down, (0, 0), special_flags=pygame.BLEND_RGB_ADD)  # |a - b|
    mean = sum(pygame.transform.average_color(up)[:3]) / 3
    w, h = up.get_size()
    near = pygame.mask.from_threshold(up, (0, 0, 0), (FAR + 1, FAR + 1, FAR + 1, 255)).count()
    return mean, 1 - near / (w * h)


@pytest.fixture(scope="module", params=list(LAYOUTS))
def cluster(request):
    c = Cluster(layout=request.param, headless=True)
    yield c
    c.close()


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_matches_reference(cluster, situation):
    with fixed_timezone():
        cluster.render(SITUATIONS[situation])
    path = REFERENCES / f"{cluster.layout.name}-{situation}.png"
    if UPDATE:
        REFERENCES.mkdir(parents=True, exist_ok=True)
        cluster.save(path)
        pytest.skip(f"wrote {path.name}")
    assert path.exists(), f"no reference {path.name}: run with KEIDASH_UPDATE_SCREENS=1"
    reference = pygame.image.load(str(path))
    assert reference.get_size() == cluster.surface.get_size()
    mean, far = difference(cluster.surface, reference)
    assert mean <= MAX_MEAN_DIFF and far <= MAX_FAR_SHARE, (
        f"{path.name}: mean difference {mean:.2f}, {far:.2%} of pixels far off")


def test_comparison_catches_a_moved_element():
    """The tolerance is not so loose that a shifted figure passes."""
    state = SITUATIONS["mid-drive-up"]
    c = Cluster(layout="800x480", headless=True)
    try:
        with fixed_timezone():
            c.render(state)
        frame = c.surface.copy()
        assert difference(frame, frame) == (0.0, 0.0)
        # the gear figure moved 12 px to the right
        moved = frame.copy()
        x, y, w, h = c.layout.gear
        moved.blit(frame.subsurface((x, y, w - 12, h)), (x + 12, y))
        mean, far = difference(frame, moved)
        assert mean > MAX_MEAN_DIFF or far > MAX_FAR_SHARE
    finally:
        c.close()


def test_references_stay_small():
    if UPDATE:
        pytest.skip("updating")
    total = sum(p.stat().st_size for p in REFERENCES.glob("*.png"))
    assert 0 < total < 2_000_000
