"""Permission checks that also run as root (CI runs as root, and root opens anything)."""

import functools
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

NOBODY = 65534


@functools.lru_cache(maxsize=1)
def _nobody_problem() -> str:
    """'' when user nobody can run this interpreter and import keidash, else why not."""
    if not shutil.which("setpriv"):
        return "running as root and setpriv (util-linux) is missing, so no user can be denied"
    out = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                          sys.executable, "-c", "import keidash"], capture_output=True, text=True, timeout=60,
                         cwd="/", env=dict(os.environ))
    if out.returncode != 0:
        return (f"user nobody cannot run {sys.executable} or import keidash from this clone (a parent "
                "folder only root can enter?): the permission cases need a clone nobody can read")
    return ""


def nobody_prefix() -> list[str]:
    """The argv that runs this interpreter as user nobody; skips the test, saying why, when it cannot."""
    problem = _nobody_problem()
    if problem:
        pytest.skip(problem)
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable]


def source_message_as_nobody(make_source: str, port: str, timeout: float = 30.0) -> str:
    """Start a source as user nobody on ``port`` (which root made unreadable) and
    return the message it shows once it has failed.

    ``make_source`` is an expression building the source from ``port`` and ``sink``.
    """
    prefix = nobody_prefix()
    code = textwrap.dedent(f"""
        import time
        from keidash.sources.base import FAILED
        from keidash.sources.obd import ObdSource
        from keidash.sources.nmea import NmeaSource
        port, sink = {port!r}, (lambda reading: None)
        source = {make_source}
        source.start()
        deadline = time.monotonic() + {timeout}
        while source.status().link != FAILED and time.monotonic() < deadline:
            time.sleep(0.02)
        print(source.status().message)
        source.stop()
    """)
    out = subprocess.run(prefix + ["-c", code], capture_output=True, text=True,
                         timeout=timeout + 30, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
