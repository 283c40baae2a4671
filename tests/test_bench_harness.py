"""The bench harness's verdicts: `make bench` (bench/run_all.py) and bench/logs.py must fail when a bench or a
command fails, and say which. No figure is judged here: the benches measure, these tests only run their harness."""

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_logs_bench_tells_a_crash_from_a_commands_verdict(tmp_path):
    logs = _bench("logs")
    # an uncaught exception exits 1 in plain Python, the status learn and eval give as a verdict on the drive:
    # through the bench's own child it is CRASHED, and the child's peak RSS is still read
    mb, _, code = logs.run(["raise RuntimeError('the reader broke')"])
    assert code == logs.CRASHED and mb > 0
    assert logs.run(["import sys; sys.exit(1)"])[2] == 1
    assert logs.command_failed("learn", 0, logs.CRASHED)
    assert logs.command_failed("eval", logs.CRASHED, 1)
    assert not logs.command_failed("learn", 1, 1)  # the gears' numbers not sure: a verdict, not a failure
    assert logs.command_failed("replay --estimates", 0, 1)  # replay has no verdict: 1 is an error


def test_logs_bench_stops_when_its_import_baseline_crashes(tmp_path):
    """Every memory ratio of bench/logs.py is to the import baseline's peak: a baseline that crashed (here keidash's
    modules not importable) stops the bench with one sentence and exit 1, before any command is measured."""
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); import logs; "
            f"logs.IMPORTS = \"raise ImportError('No module named keidash.cli')\"; "
            f"sys.argv = ['logs.py', '--rows', '500', '--only', 'csv']; sys.exit(logs.main())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "ImportError: No module named keidash.cli" in done.stderr  # the child's own traceback
    assert done.stderr.strip().splitlines()[-1] == (
        f"bench/logs.py: the import baseline exited {_bench('logs').CRASHED} (its error is above), so no ratio can "
        "be measured against it: fix that and run the bench again")
    assert "MB peak" not in done.stdout and "baselines:" not in done.stdout


def test_make_bench_exits_1_and_names_the_bench_that_failed(tmp_path):
    (tmp_path / "good.py").write_text("print('figures')\n")
    (tmp_path / "bad.py").write_text("import sys\nprint('MISSED: a goal')\nsys.exit(3)\n")
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); from pathlib import Path; import run_all; "
            f"sys.exit(run_all.main([(1, ['good.py']), (1, ['bad.py', '--x'])], Path({str(tmp_path)!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    out = done.stdout
    assert "=== bench/good.py: ok," in out and "=== bench/bad.py --x: FAILED (exit 3)," in out
    assert out.index("figures") < out.index("=== bench/good.py: ok")  # each bench's output under its name
    assert "1 of 2 benches met their targets" in out and "exit 1: bench/bad.py --x" in out


# a bench that hangs, and what it started hangs too: the fork ignores SIGTERM and holds the bench's stdout
HANGING_BENCH = """import os, signal, sys, time
print("waiting for a device that never answers", flush=True)
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(sys.argv[1], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)
    os._exit(0)
time.sleep(600)
"""


def test_make_bench_stops_a_hung_bench_and_goes_on(tmp_path):
    """A bench past its time limit is stopped with everything it started (its process group: the fork that
    ignores SIGTERM gets SIGKILL), reported TIMED OUT and counted failed; the next bench runs and the summary
    prints. The run's stdout is a pipe the fork holds too: run() returns only once the fork is gone."""
    (tmp_path / "hangs.py").write_text(HANGING_BENCH)
    (tmp_path / "bad.py").write_text("import sys\nsys.exit(3)\n")
    forked = tmp_path / "fork.pid"
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); from pathlib import Path; import run_all; "
            f"run_all.TERM_GRACE_S = 0.5; "
            f"sys.exit(run_all.main([(0.5, ['hangs.py', {str(forked)!r}]), (1, ['bad.py'])], Path({str(tmp_path)!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert f"=== bench/hangs.py {forked}: TIMED OUT after 0.5 min," in out
    assert "=== bench/bad.py: FAILED (exit 3)," in out
    assert out.index("TIMED OUT") < out.index("FAILED (exit 3)")  # the run went on after it
    assert "0 of 2 benches met their targets" in out and f"exit 1: bench/hangs.py {forked}, bench/bad.py" in out
    # what the bench started is gone (the 30 s limit lets it fork however busy the machine: the fork
    # is checked when it happened, so the test does not rest on how fast Python starts)
    if forked.exists() and forked.read_text():
        assert "waiting for a device that never answers" in out
        status = Path(f"/proc/{forked.read_text()}/status")  # gone, or a zombie waiting for init to reap it
        assert not status.exists() or "State:\tZ" in status.read_text()
