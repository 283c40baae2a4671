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


def test_make_bench_exits_1_and_names_the_bench_that_failed(tmp_path):
    (tmp_path / "good.py").write_text("print('figures')\n")
    (tmp_path / "bad.py").write_text("import sys\nprint('MISSED: a goal')\nsys.exit(3)\n")
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); from pathlib import Path; import run_all; "
            f"sys.exit(run_all.main([['good.py'], ['bad.py', '--x']], Path({str(tmp_path)!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    out = done.stdout
    assert "=== bench/good.py: ok," in out and "=== bench/bad.py --x: FAILED (exit 3)," in out
    assert out.index("figures") < out.index("=== bench/good.py: ok")  # each bench's output under its name
    assert "1 of 2 benches met their targets" in out and "exit 1: bench/bad.py --x" in out
