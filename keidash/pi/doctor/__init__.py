"""``keidash doctor``: is this Pi ready to run keidash? One line per check, a fix for each failure.

The checks, in the order printed (docs/doctor.md says what each means and how to fix it):

==========  ====================================================================
config      the config file loads, and every source URL in it builds
serial      each obd:// and nmea:// device exists and this user (or, as root, the
            service's ``keidash`` user) may read and write it; the UART is not
            also the serial console
adapter     the ELM327 answers: rpm or speed arrive within ``seconds``
            (through :func:`keidash.pi.probe.probe`, the sources keidash drives with)
gps         the GPS has a fix: speed arrives within ``seconds``
audio       each audio:// capture device opens and hears the engine's idle line
            within ``seconds`` (keidash.sources.audio, as the dash listens)
gpio        every pin in the config is named once and can be claimed (gpiozero)
display     SDL's video driver (``SDL_VIDEODRIVER``, else kmsdrm) has its device,
            and ``pygame.display.init()`` works in a child process
groups      the user the dash runs as is in video, render, input, gpio, dialout, audio
disk        ``data_dir`` (or /var/lib/keidash) is writable with >= 100 MB free
==========  ====================================================================

The checks live in :mod:`.ports` (config, serial, adapter, gps, audio) and :mod:`.board`
(gpio, display, groups, disk), on the shared :mod:`.base` (:class:`Check`, the
machine's users and groups). Each check is a small function returning
:class:`Check` objects and never raising: :func:`run_checks` still wraps each one, so an unexpected exception
becomes a FAIL line naming it, never a traceback. A check that cannot apply
here (no GPIO on a laptop, no config) is a *skip* with the reason; skips do not
fail the run. :func:`doctor_main` prints the report and returns the exit status:
0 when nothing failed, 1 otherwise.

Checks that look at the machine take what they look at as arguments
(environment, user id, whether this is a Raspberry Pi, the pin factory), with
the real machine as the default, so tests can describe another machine.
"""

from __future__ import annotations

import json
import os

from .base import DEFAULT_CONFIG, Check, fail_check, skip_check
from .board import check_disk, check_display, check_gpio, check_groups
from .ports import check_adapter, check_audio, check_config, check_gps, check_serial


# -- the run ---------------------------------------------------------------------

def _unexpected(name: str, exc: Exception) -> Check:
    return fail_check(name, f"the check itself failed: {type(exc).__name__}: {exc}",
                      "please report this line as a keidash bug")


def _guarded(name: str, check, *args, **kwargs) -> list[Check]:
    """Run one check; an exception it did not expect is a FAIL line naming it, never a traceback."""
    try:
        result = check(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the doctor must finish its report
        return [_unexpected(name, exc)]
    return list(result) if isinstance(result, list) else [result]


def run_checks(config_path: str | None, seconds: float = 5.0, *, pin_factory=None,
               env: dict | None = None, try_display_init: bool = True) -> list[Check]:
    """Every check, in report order (see the module doc)."""
    try:
        config_check, config = check_config(config_path)
    except Exception as exc:  # noqa: BLE001 - as in _guarded
        config_check, config = _unexpected("config", exc), None
    checks = [config_check]
    if config is None:
        why = "no config loaded"
        checks += [skip_check(name, why) for name in ("serial", "adapter", "gps", "audio", "gpio")]
    else:
        serial = _guarded("serial", check_serial, config.sources)
        checks += serial
        unusable = {c.subject for c in serial if not c.ok and c.subject}  # missing or not permitted
        checks += _guarded("adapter", check_adapter, config.sources, seconds, unusable)
        checks += _guarded("gps", check_gps, config.sources, seconds, unusable)
        checks += _guarded("audio", check_audio, config.sources, seconds, _profile_of(config))
        checks += _guarded("gpio", check_gpio, config, pin_factory)
    checks += _guarded("display", check_display, env, None, try_display_init)
    checks += _guarded("groups", check_groups)
    checks += _guarded("disk", check_disk, config.data_dir if config else None)
    return checks


def _profile_of(config):
    """The config's truck profile (for its cylinders), or None when it cannot be loaded."""
    try:
        from ...profiles import load_profile
        return load_profile(config.profile) if config.profile else None
    except Exception:  # noqa: BLE001 - the config check has already said what is wrong with it
        return None


def format_report(checks: list[Check]) -> str:
    return "\n".join(check.line() for check in checks)


def report_json(config_path: str | None, checks: list[Check]) -> dict:
    return {"ok": all(c.ok for c in checks), "config": config_path,
            "failed": sum(not c.ok for c in checks), "checks": [c.as_dict() for c in checks]}


def default_config_path() -> str | None:
    """/etc/keidash/config.toml when it exists, else None."""
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def doctor_main(config_path: str | None, seconds: float = 5.0, json_out: bool = False) -> int:
    """``keidash doctor``: print the report (text, or one JSON object); 0 when nothing failed, else 1."""
    if config_path is None:
        config_path = default_config_path()
    checks = run_checks(config_path, seconds)
    if json_out:
        print(json.dumps(report_json(config_path, checks), indent=2))
    else:
        print(format_report(checks))
    return 0 if all(c.ok for c in checks) else 1
