"""Run every benchmark under bench/; exit non-zero if any misses its target.

Each bench's output follows a line naming it; after it, its exit status and wall time, and at
the end a summary of them all. A bench that outlives its time limit is stopped (its whole process
group: the demos and CLIs it started too), reported as TIMED OUT and counted failed, and the run
goes on."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# each bench with its time limit (min) and its arguments. The whole run took 43 min on the 2-core development
# machine, shared, on 2026-12-06, before logs' trip-log case (about 5-10 min more, not measured in a whole run):
# logs: three commands on 100,000- and 500,000-row CSV logs (about 20 min, eval alone about 10) and
# the trip-log replay; demo_rss: a 10-minute demo; estimator: about 4 min; process_cost: two rounds
# of four runs of the real CLI (90 s and 30 s, about 3 min); powercut: 100 SIGKILLs (about 2 min,
# 500 by hand); obd_rate: about 1.5 min; the others a minute or less each. Each limit is several times
# that (at least 10 min), so only a hung bench meets it on a busy machine.
BENCHES = [(10, ["first_frame.py"]), (10, ["obd_rate.py"]), (10, ["gps_health.py"]), (20, ["estimator.py"]),
           (10, ["render.py"]), (10, ["frame_times.py"]), (10, ["powercut.py", "--kills", "100"]),
           (120, ["logs.py"]), (40, ["demo_rss.py"]), (10, ["audio.py"]), (10, ["audio_capture.py"]),
           (15, ["process_cost.py"])]
#: s a timed-out bench gets between SIGTERM (its children clean up: ptys, temporary trip logs) and SIGKILL
TERM_GRACE_S = 10.0


def _stop(child: subprocess.Popen) -> None:
    """End the bench and whatever it started (its own process group): SIGTERM, then SIGKILL to what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:  # nothing left in the group
            pass
        try:
            child.wait(TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            pass


def run_bench(arguments: list[str], minutes: float) -> int | None:
    """The exit status of ``python ARGUMENTS``, or None when it ran past ``minutes`` and was stopped."""
    # its own process group (start_new_session), so a time-out ends whatever it spawned too
    child = subprocess.Popen([sys.executable, *arguments], start_new_session=True)
    try:
        return child.wait(minutes * 60)
    except subprocess.TimeoutExpired:
        _stop(child)
        return None
    except BaseException:  # Ctrl-C: the bench is not in the terminal's foreground group, so end it here
        _stop(child)
        raise


def main(benches: list[tuple[float, list[str]]] = BENCHES, folder: Path = Path(__file__).parent) -> int:
    done = []
    started = time.monotonic()
    for minutes, (name, *options) in benches:
        command = " ".join([f"bench/{name}", *options])
        print(f"\n=== {command}", flush=True)
        t0 = time.monotonic()
        code = run_bench([str(folder / name), *options], minutes)
        seconds = time.monotonic() - t0
        verdict = ("ok" if code == 0 else f"TIMED OUT after {minutes:g} min" if code is None
                   else f"FAILED (exit {code})")
        print(f"=== {command}: {verdict}, {seconds / 60:.1f} min", flush=True)
        done.append((command, code, seconds))
    failed = [command for command, code, _ in done if code != 0]
    print(f"\nmake bench: {len(done) - len(failed)} of {len(done)} benches met their targets in "
          f"{(time.monotonic() - started) / 60:.0f} min" + (f"; exit 1: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
