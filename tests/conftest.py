"""Test-wide settings.

Hypothesis: no per-example deadline, because CI machines are shared and noisy and speed is
measured by bench/, never by tests. ``KEIDASH_HYPOTHESIS=thorough`` runs ten times the examples
to shake out rare cases before a change lands.

Parallel runs (``make test`` runs pytest-xdist with ``--dist loadgroup``; README "Tests"): the
longest tests are real-time drives that mostly wait, so several workers share two cores well.
Two things here keep such a run short and each test's setting the same as in one process:

- tests marked ``slow`` (a real-time run of many seconds) are collected first, so the workers
  start on them and end together instead of one worker ending the run with a 50 s drive;
- a test module that defines a fixture of module or class scope runs whole on one worker, so
  a costly shared fixture (a simulated day, a venv) is made once, as in one process, and not
  once per worker. (xdist's own ``xdist_group`` marks would do this per test, but xdist 3.8
  cannot apply them under pytest 9.2, which no longer lets it rename a test: see
  ``SharedFixtureScheduling``.)
"""

import ast
import os
from functools import cache
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("keidash", deadline=None, print_blob=True)
settings.register_profile("thorough", settings.get_profile("keidash"), max_examples=1000)
settings.load_profile("thorough" if os.environ.get("KEIDASH_HYPOTHESIS") == "thorough" else "keidash")

SHARED_SCOPES = ("module", "class", "package")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a real-time run of many seconds; scheduled first")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow ones first


def _is_fixture_decorator(decorator: ast.expr) -> bool:
    name = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(name, ast.Attribute) and name.attr == "fixture") or \
        (isinstance(name, ast.Name) and name.id == "fixture")


@cache
def defines_shared_fixture(path: Path) -> bool:
    """Whether the test module at ``path`` defines a fixture of module, class or package scope."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return False  # pytest itself will say what is wrong with it
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if _is_fixture_decorator(decorator) and isinstance(decorator, ast.Call) and any(
                        keyword.arg == "scope" and isinstance(keyword.value, ast.Constant)
                        and keyword.value.value in SHARED_SCOPES for keyword in decorator.keywords):
                    return True
    return False


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's: fine without it (-p no:xdist)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedFixtureScheduling(LoadGroupScheduling):
        """loadgroup, with every module that defines a shared fixture as one unit of work."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if defines_shared_fixture(Path(self.config.rootpath) / module):
                return module
            return super()._split_scope(nodeid)

    return SharedFixtureScheduling(config, log)
