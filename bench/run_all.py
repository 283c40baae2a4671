"""Run every benchmark under bench/; exit non-zero if any misses its target."""

import subprocess
import sys
from pathlib import Path

# each bench with its arguments; powercut: 100 SIGKILLs in make bench (about 2 min), 500 by hand;
# logs: three commands on 100,000- and 500,000-row logs (about 15 min); demo_rss: a 10-minute demo;
# process_cost: two rounds of four runs of the real CLI (90 s and 30 s, about 3 min)
BENCHES = [["first_frame.py"], ["obd_rate.py"], ["gps_health.py"], ["estimator.py"], ["render.py"], ["frame_times.py"],
           ["powercut.py", "--kills", "100"], ["logs.py"], ["demo_rss.py"],
           ["audio.py"], ["audio_capture.py"], ["process_cost.py"]]

failed = 0
for name, *options in BENCHES:
    result = subprocess.run([sys.executable, str(Path(__file__).with_name(name)), *options])
    failed += result.returncode != 0
sys.exit(1 if failed else 0)
