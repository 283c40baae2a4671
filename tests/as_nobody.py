"""Permission checks that also run as root (CI runs as root, and root opens anything)."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest


def source_message_as_nobody(make_source: str, port: str, timeout: float = 30.0) -> str:
    """Start a source as user nobody on ``port`` (which root made unreadable) and
    return the message it shows once it has failed.

    ``make_source`` is an expression building the source from ``port`` and ``sink``.
    """
    if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv (util-linux) is missing, so no user can be denied")
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
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout + 30, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
