"""The estimator's commands on recorded drives: ``keidash learn``, ``marks`` and ``eval``.

Each checks its output paths before any work (one sentence, never a traceback
after a long run) and prints what it wrote.
"""

from __future__ import annotations

import os

from ..config import check_writable
from ..errors import ConfigError


def learn_main(paths: list[str], profile_name: str | None = None, gears: int | None = None,
               out: str | None = None, format: str = "auto", columns: str | None = None,
               speed_unit: str | None = None, transmission: str | None = None) -> int:
    """``keidash learn``: 0 when every gear was found and which is 1st is certain, 1 when not (the report
    says why).

    ``format``, ``columns`` and ``speed_unit`` apply to every log (see :func:`keidash.replay.load_log`);
    ``transmission`` is the gearbox when the profile does not say (an automatic's shift map is learned too),
    and with a number the gear count when neither ``gears`` nor the profile gives one.
    """
    from ..profiles import gears_named, load_profile
    from ..replay import load_log
    from .learn import profile_with_learned
    from .drives import learn_truck
    if out:
        check_writable("--out", out)
    if gears is not None and not 1 <= gears <= 10:
        raise ConfigError(f"--gears {gears}: a gearbox has 1 to 10 forward gears")
    profile = load_profile(profile_name) if profile_name else None
    # "--transmission 5MT" counts five, as --gears 5 does, where neither --gears nor the profile counts
    gears = gears or (profile.forward_gears if profile else None) or gears_named(transmission)
    logs = [load_log(path, format=format, columns=columns, speed_unit=speed_unit) for path in paths]
    learned = learn_truck(logs, profile, gears=gears, transmission=transmission)
    print(learned.report())
    for log, lag in zip(logs, learned.ratios_learned.speed_lags):  # taken out by learn_from_logs: say so
        if lag:
            late, early = ("speed", "rpm") if lag > 0 else ("rpm", "speed")
            print(f"keidash: in {log.name} the {late} lags the {early} by {abs(lag):g} s (a GPS's speed, "
                  f"an engine note?): each was learned at the instant it was measured")
    from ..profiles.engine import gearing_warning
    found = tuple(g.rpm_per_kmh for g in learned.ratios_learned.gears if g.rpm_per_kmh is not None)
    warning = gearing_warning(profile, found, bool(learned.ratios))
    if warning:
        print(f"keidash: warning: {warning}")
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(profile_with_learned(profile, learned.ratios_learned, [log.name for log in logs], transmission,
                                         learned.shift_map.coast_down if learned.shift_map is not None else (),
                                         learned.idle_rpm))
        print(f"keidash: wrote the profile with the learned ratios to {os.path.abspath(out)}")
    return 0 if learned.ratios and learned.ratios_learned.numbering_certain else 1


def marks_command(profile_name: str, units: str = "kmh", out: str | None = None) -> int:
    """``keidash marks``: the shift-speed table, and the sticker when ``out`` is given."""
    if out:
        check_writable("--out", out)
    from .marks import marks_main
    print(marks_main(profile_name, units, out))
    if out:
        print(f"keidash: wrote the sticker to {os.path.abspath(out)}")
    return 0


def eval_main(paths: list[str], json_path: str | None = None, format: str = "auto", columns: str | None = None,
              speed_unit: str | None = None, transmission: str | None = None) -> int:
    """``keidash eval``: the estimator's figures on recorded drives, as a table (and JSON).

    ``format``, ``columns`` and ``speed_unit`` apply to every log named or found in a folder;
    ``transmission`` to every folder without a vehicle.toml. Exit status 1 when keidash does
    worse than the naive answer beside it on some log (:func:`keidash.estimate.evaluate.shortfalls`).
    """
    import json

    from .evaluate import as_json, evaluate, format_table, shortfalls
    from .evaluate import LOG_EXTENSIONS, find_logs
    for path in paths:
        if not os.path.exists(path):
            raise ConfigError(f"{path}: no such file or folder")
        if os.path.isdir(path) and not find_logs([path]):
            raise ConfigError(f"{path} holds no drive log (files ending {', '.join(LOG_EXTENSIONS)}): "
                              "name a folder of logs or the logs themselves")
    if json_path:
        check_writable("--json", json_path)
    figures = evaluate(paths, format=format, columns=columns, speed_unit=speed_unit, transmission=transmission)
    print(format_table(figures))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(as_json(figures), f, indent=1)
    worse = shortfalls(figures)
    if worse:
        print("\nBelow the naive answer:\n" + "\n".join(f"  {line}" for line in worse))
    return 1 if worse else 0
