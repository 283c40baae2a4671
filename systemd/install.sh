#!/bin/sh
# keidash's installer for Raspberry Pi OS (Bookworm or Trixie, Lite) and Debian: docs/install.md.
#
#   sudo systemd/install.sh               install or update (same as: sudo make install-pi)
#   sudo systemd/install.sh --uninstall   remove the program and units; keep config, data, user
#   sudo systemd/install.sh --purge       remove those too
#
# It puts:
#   /opt/keidash/venv                            the program (a Python virtual environment)
#   /opt/keidash/docs/install.md                 this guide (the units' Documentation=)
#   /usr/local/lib/systemd/system/keidash.service, keidash-ignition.service
#   /usr/lib/sysusers.d/keidash.conf             the keidash user and its device groups
#   /etc/keidash/config.toml, ignition.env       your settings: written once, never overwritten
#   /var/lib/keidash                             data (odometer, trip log)
#
# Running it again gives the same result (config you edited is kept).
#
# Environment:
#   DESTDIR=/some/dir    install into that root instead of /, for packaging and tests: nothing
#                        outside it is touched, and users/systemctl are only printed ("would run")
#   KEIDASH_SKIP_VENV=1  do not build the virtual environment (it needs the network for pip)
#   PYTHON=python3       the interpreter the virtual environment is made from
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PYTHON=${PYTHON:-python3}
KEIDASH_SKIP_VENV=${KEIDASH_SKIP_VENV:-}

OPT=/opt/keidash
UNITS=/usr/local/lib/systemd/system
SYSUSERS=/usr/lib/sysusers.d
CONF=/etc/keidash
DATA=/var/lib/keidash
UNIT_FILES="keidash.service keidash-ignition.service"

say() { printf 'keidash install: %s\n' "$*"; }

# Runs a command that changes the live system; with DESTDIR only says what it would run.
live() {
    if [ -n "$DESTDIR" ]; then
        say "would run: $*"
    else
        "$@"
    fi
}

usage() {
    sed -n '3,6p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

MODE=install
case "${1:-}" in
    "") ;;
    --uninstall) MODE=uninstall ;;
    --purge) MODE=purge ;;
    -h|--help) usage ;;
    *) printf 'keidash install: unknown option %s\n' "$1" >&2; usage ;;
esac
[ $# -le 1 ] || usage

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    printf 'keidash install: run it as root: sudo %s %s\n' "$0" "${1:-}" >&2
    exit 1
fi
case "$DESTDIR" in
    ""|/*) ;;
    *) DESTDIR=$(pwd)/$DESTDIR ;;
esac
D=$DESTDIR

install_files() {
    install -d -m 0755 "$D$OPT" "$D$OPT/docs" "$D$UNITS" "$D$SYSUSERS" "$D$CONF"
    install -d -m 0750 "$D$DATA"
    for unit in $UNIT_FILES; do
        install -m 0644 "$SRC/systemd/$unit" "$D$UNITS/$unit"
    done
    install -m 0644 "$SRC/docs/install.md" "$D$OPT/docs/install.md"
    cat > "$D$SYSUSERS/keidash.conf.tmp" <<'EOF'
# keidash: the user the dash runs as (systemd/install.sh; sysusers.d(5)).
#Type Name     ID  GECOS                          Home              Shell
u     keidash  -   "keidash instrument cluster"   /var/lib/keidash  /usr/sbin/nologin
# the display (DRM), its GPU, the dash button and touch, GPIO, serial/USB/Bluetooth adapters,
# the sound card of an audio:// microphone or ripple lead
m     keidash  video
m     keidash  render
m     keidash  input
m     keidash  gpio
m     keidash  dialout
m     keidash  audio
EOF
    chmod 0644 "$D$SYSUSERS/keidash.conf.tmp"
    mv -f "$D$SYSUSERS/keidash.conf.tmp" "$D$SYSUSERS/keidash.conf"

    if [ -e "$D$CONF/config.toml" ]; then
        say "keeping your $CONF/config.toml"
    else
        # the example, with the data directory switched on (a top-level key: before any table)
        {
            printf '# Written by systemd/install.sh from docs/example-config.toml (docs/config.md).\n'
            printf 'data_dir = "%s"           # odometer and trip log: keidash.service may write only here\n\n' "$DATA"
            cat "$SRC/docs/example-config.toml"
        } > "$D$CONF/config.toml.tmp"
        chmod 0644 "$D$CONF/config.toml.tmp"
        mv -f "$D$CONF/config.toml.tmp" "$D$CONF/config.toml"
        say "wrote $CONF/config.toml from docs/example-config.toml: edit it for your truck"
    fi
    if [ -e "$D$CONF/ignition.env" ]; then
        say "keeping your $CONF/ignition.env"
    else
        cat > "$D$CONF/ignition.env" <<'EOF'
# keidash-ignition.service: power off after the key is turned off (docs/install.md).
# The BCM number of the GPIO input the ignition-sense circuit drives (hardware/README.md: 22)
IGNITION_PIN=
# seconds the ignition must stay off before the Pi powers off (longer than a crank's dip)
IGNITION_GRACE_S=10
# --active-high if the pin reads HIGH while the ignition is on (default: LOW, optocoupler)
IGNITION_ARGS=
EOF
        chmod 0644 "$D$CONF/ignition.env"
    fi
}

install_venv() {
    if [ -n "$KEIDASH_SKIP_VENV" ]; then
        say "skipping the virtual environment (KEIDASH_SKIP_VENV is set): $OPT/venv/bin/keidash is not installed"
        return
    fi
    if [ -z "$DESTDIR" ] && command -v apt-get > /dev/null && ! "$PYTHON" -c 'import ensurepip' 2> /dev/null; then
        say "installing python3-venv with apt-get"
        apt-get install -y -q --no-install-recommends python3-venv > /dev/null \
            || say "apt-get could not install python3-venv: making the virtual environment may fail"
    fi
    [ -n "$DESTDIR" ] && say "note: a virtual environment built under DESTDIR names DESTDIR in its scripts"
    if [ ! -x "$D$OPT/venv/bin/python" ]; then
        if ! "$PYTHON" -m venv --system-site-packages "$D$OPT/venv"; then
            printf 'keidash install: cannot make the virtual environment with %s -m venv: install python3-venv, then run this again\n' "$PYTHON" >&2
            exit 1
        fi
    fi
    # lgpio (gpiozero's GPIO backend): apt, else PyPI, else a sentence; it never stops the install
    DESTDIR="$DESTDIR" sh "$SRC/systemd/lgpio.sh" "$D$OPT/venv/bin/python"
    say "installing keidash from $SRC into $OPT/venv (pip, needs the network)"
    if ! "$D$OPT/venv/bin/python" -m pip install --quiet --upgrade "$SRC"; then
        printf 'keidash install: pip could not install keidash into %s/venv (above: why; it needs the network or PIP_FIND_LINKS with the wheels): run this again\n' "$OPT" >&2
        exit 1
    fi
}

activate() {
    live systemd-sysusers "$SYSUSERS/keidash.conf"
    live chown keidash:keidash "$DATA"
    if [ -n "$DESTDIR" ] || [ -d /run/systemd/system ]; then
        live systemctl daemon-reload
    else  # sd_booted(3): no systemd running (a chroot, an image being built): enable works offline
        say "systemd is not running here (a chroot or an image being built): keidash is enabled for its next boot"
    fi
    live systemctl enable keidash.service
    say "installed. keidash starts at the next boot (or now: sudo systemctl start keidash)."
    say "ignition watch: set IGNITION_PIN in $CONF/ignition.env, then: sudo systemctl enable --now keidash-ignition"
}

uninstall() {
    for unit in $UNIT_FILES; do
        if [ -e "$D$UNITS/$unit" ]; then
            live systemctl disable --now "$unit"
        fi
        rm -f "$D$UNITS/$unit"
    done
    live systemctl daemon-reload
    rm -rf "$D$OPT"
    rm -f "$D$SYSUSERS/keidash.conf"
    if [ "$MODE" = purge ]; then
        rm -rf "$D$CONF" "$D$DATA"
        if [ -n "$DESTDIR" ] || id keidash > /dev/null 2>&1; then
            live userdel keidash
        fi
        say "removed keidash, its settings ($CONF), its data ($DATA) and the keidash user"
    else
        say "removed keidash; kept your settings in $CONF, the data in $DATA and the keidash user" \
            "(--purge removes them too)"
    fi
    if [ -n "$DESTDIR" ]; then  # leave no empty folders behind in a throwaway root
        prune "$UNITS"
        prune "$SYSUSERS"
        prune "$(dirname "$OPT")"
        prune "$(dirname "$CONF")"
        prune "$(dirname "$DATA")"
    fi
}

# Removes DESTDIR's folder and its parents while they are empty, never DESTDIR itself.
prune() {
    dir=$1
    while [ -n "$dir" ] && [ "$dir" != / ] && rmdir "$D$dir" 2> /dev/null; do
        dir=$(dirname "$dir")
    done
}

case "$MODE" in
    install)
        install_files
        install_venv
        activate
        ;;
    uninstall|purge)
        uninstall
        ;;
esac
