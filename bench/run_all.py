"""Run every benchmark under bench/; exit non-zero if any misses its target."""

import subprocess
import sys
from pathlib import Path

BENCHES = ["first_frame.py", "obd_rate.py", "estimator.py", "render.py"]

failed = 0
for name in BENCHES:
    result = subprocess.run([sys.executable, str(Path(__file__).with_name(name))])
    failed += result.returncode != 0
sys.exit(1 if failed else 0)
