"""Print docs/learning.md's tables: the learner on every shared log, and a plain k-means beside it.

Run from the repository root: .venv/bin/python docs/learning_figures.py
"""

import math
import statistics
from pathlib import Path

from keidash.estimate.evaluate import plain_kmeans
from keidash.estimate.learn import learn_from_logs
from keidash.replay import load_log

DRIVES = Path(__file__).resolve().parent.parent / "tests" / "data" / "drives"
ETIOS = [DRIVES / "carobd-etios" / f"{n}.csv" for n in ("drive4", "live1", "long2", "ufpe1", "ufpe7")]
FORD = [DRIVES / "openxc-ford" / f"{n}.jsonl" for n in ("driving", "driving2")]


def label_medians(log):
    return [statistics.median(s.rpm / s.speed_kmh for s in log.samples if s.gear == g and s.moving and s.rpm)
            for g in range(1, 6)]


def kmeans(log, k=5):
    """Plain 1-D k-means on log(rpm/km/h) of every pair at >= 8 km/h and >= 850 rpm."""
    return plain_kmeans([math.log(s.rpm / s.speed_kmh) for s in log.samples
                         if s.speed_kmh >= 8 and s.rpm >= 850], k)


def cell(gear):
    return "-" if gear.rpm_per_kmh is None else f"{gear.rpm_per_kmh:.1f} ({gear.confidence:.2f})"


def main():
    print("| log | gears given | found | 1st | 2nd | 3rd | 4th | 5th | other | pairs | launches | numbering |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for paths, name in [([p], p.name) for p in ETIOS] + [(ETIOS, "all five Etios")] + [([p], p.name) for p in FORD]:
        logs = [load_log(str(p)) for p in paths]
        for gears in (None, 5):
            r = learn_from_logs(logs, gears)
            cells = [cell(g) for g in r.gears] + [""] * (5 - len(r.gears))
            print(f"| {name} | {gears or '-'} | {r.found} | " + " | ".join(cells[:5]) +
                  f" | {', '.join(f'{o:.1f}' for o in r.other) or '-'} | {r.samples_used} | {r.launches} |"
                  f" {'certain' if r.numbering_certain else 'UNSURE'} |")
    print()
    print("| log | method | 1st | 2nd | 3rd | 4th | 5th | worst |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for p in FORD:
        log = load_log(str(p))
        truth = label_medians(log)
        print(f"| {p.name} | label median | " + " | ".join(f"{t:.1f}" for t in truth) + " | |")
        for method, ratios in (("learner (gears=5)", learn_from_logs([log], 5).rpm_per_kmh()),
                               ("plain k-means, k=5", kmeans(log))):
            errors = [g / t - 1 for g, t in zip(ratios, truth)]
            print(f"| {p.name} | {method} | " + " | ".join(f"{g:.1f} ({100 * e:+.1f} %)" for g, e in zip(ratios, errors))
                  + f" | {100 * max(map(abs, errors)):.1f} % |")


if __name__ == "__main__":
    main()
