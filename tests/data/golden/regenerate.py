"""Regenerate the golden estimates the tests compare against (run after a deliberate change).

    .venv/bin/python tests/data/golden/regenerate.py

driving2 (OpenXC, BSD-3-Clause, see tests/data/drives/README.md) with the truck learned from
driving: once with its rpm, once with rpm hidden (speed only). Review the diff before committing:
every changed row is a changed gear, needle or cue on a real drive.
"""

from pathlib import Path

from keidash.estimate.drives import estimate_log, write_estimates
from keidash.estimate.drives import learn_truck
from keidash.estimate.estimator import config_for
from keidash.profiles import unknown_profile
from keidash.replay import load_log

HERE = Path(__file__).parent
FORD = HERE.parent / "drives" / "openxc-ford"


def golden_config():
    # the Ford is an automatic (tests/data/drives/openxc-ford/vehicle.toml): its tracker model is the converter's
    # and its shift map (the coast-downs seen) is learned on driving too
    return config_for(unknown_profile(), {}, ("replay",),
                      learn_truck([load_log(str(FORD / "driving.jsonl"))], transmission="AT"), transmission="AT")


def main() -> None:
    log, config = load_log(str(FORD / "driving2.jsonl")), golden_config()
    for hide, name in ((False, "driving2-with-rpm.csv"), (True, "driving2-speed-only.csv")):
        rows = write_estimates(estimate_log(log, config, hide_rpm=hide), str(HERE / name))
        print(f"{name}: {rows} rows")


if __name__ == "__main__":
    main()
