"""Test-wide settings.

Hypothesis: no per-example deadline, because CI machines are shared and noisy and speed is
measured by bench/, never by tests. ``KEIDASH_HYPOTHESIS=thorough`` runs ten times the examples
to shake out rare cases before a change lands.

Parallel runs (``make test`` runs pytest-xdist, ``--dist loadgroup``; see README "Tests"): the
longest tests are real-time drives that mostly wait, so several workers share two cores well.
Two things here keep such a run short and each test's setting the same as in a single process:

- tests marked ``slow`` (a real-time run of many seconds) are collected first, so the workers
  start on them and finish together instead of one worker ending the run with a 50 s drive;
- the tests that share a fixture of module or class scope from tests/ go to one worker, as one
  xdist group, so a costly shared fixture (a simulated day, a venv) is made once, as in a
  single process, and never once per worker.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("keidash", deadline=None, print_blob=True)
settings.register_profile("thorough", settings.get_profile("keidash"), max_examples=1000)
settings.load_profile("thorough" if os.environ.get("KEIDASH_HYPOTHESIS") == "thorough" else "keidash")

SHARED_SCOPES = ("module", "class", "package")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a real-time run of many seconds; scheduled first")


def _shared_fixture(item) -> str | None:
    """The first fixture of module or class scope defined under tests/ that ``item`` uses."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for name in sorted(info.name2fixturedefs):
        definition = info.name2fixturedefs[name][-1]
        # baseid is "" for pytest's and plugins' own fixtures (tmp_path_factory and the like)
        if definition.scope in SHARED_SCOPES and definition.baseid:
            return f"{definition.baseid}::{name}"
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        shared = _shared_fixture(item)
        if shared is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(shared))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow ones first
