#!/bin/sh
# lgpio, gpiozero's GPIO backend on a Pi 5 and on Bookworm/Trixie, for keidash's venv:
#
#   sh systemd/lgpio.sh VENV_PYTHON     (systemd/install.sh runs it; DESTDIR as there)
#
# 1. the archive's python3-lgpio (Raspberry Pi OS has it) with apt-get: the venv sees it
#    through --system-site-packages;
# 2. else a wheel from PyPI into the venv (there are wheels for some Pythons and machines only:
#    nothing is compiled here);
# 3. else one sentence that the GPIO features are off. It never fails: keidash runs without GPIO.
set -u
VENV_PY=$1
DESTDIR=${DESTDIR:-}
say() { printf 'keidash install: %s\n' "$*"; }

has_lgpio() { "$VENV_PY" -c 'import lgpio' > /dev/null 2>&1; }

if has_lgpio; then
    say "lgpio: already installed"
    exit 0
fi
if command -v apt-cache > /dev/null && command -v apt-get > /dev/null; then
    candidate=$(apt-cache policy python3-lgpio 2> /dev/null | sed -n 's/^ *Candidate: *//p')
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
        if [ -n "$DESTDIR" ]; then
            say "would run: apt-get install python3-lgpio"
            exit 0
        fi
        say "lgpio: installing python3-lgpio $candidate with apt-get"
        if apt-get install -y -q --no-install-recommends python3-lgpio > /dev/null && has_lgpio; then
            exit 0
        fi
        say "lgpio: apt-get could not install python3-lgpio; trying PyPI"
    fi
fi
# --only-binary: lgpio's source needs its C library and swig to build; a wheel or nothing
if "$VENV_PY" -m pip install --quiet --only-binary=lgpio 'lgpio>=0.2' > /dev/null 2>&1 && has_lgpio; then
    say "lgpio: installed from PyPI into the virtual environment"
    exit 0
fi
version=$("$VENV_PY" -c 'import platform, sys; print(f"Python {sys.version_info[0]}.{sys.version_info[1]} on {platform.machine()}")' 2> /dev/null)
say "lgpio: neither this system's archive (python3-lgpio) nor PyPI (a wheel for ${version:-this Python}) has it, so the GPIO features are off (pulse inputs, shift lights, buzzer, dash button, night switch, ignition watch); keidash runs without them"
exit 0
