# keidash: every target creates and reuses .venv itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-pid1 test-arm64 bench install clean install-pi uninstall-pi systemd-analyze arecord

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Runs the virtual truck through the real python-obd / pyserial / gpiozero paths
# to the cluster; with no display it runs headless and saves a screenshot.
demo: $(STAMP)
	$(VENV)/bin/keidash demo $(DEMO_ARGS)

# pytest-xdist: the longest tests are real-time drives that mostly wait, so more workers than
# cores pay (README "Tests"). PYTEST_WORKERS=0 runs in one process (PYTEST_ARGS='-n 0' too).
PYTEST_WORKERS ?= 4
test: $(STAMP) systemd-analyze arecord
	SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup \
		--no-loadscope-reorder $(PYTEST_ARGS)

# keidash under a real systemd PID 1 (docs/install.md): Debian Bookworm and Trixie roots made by
# debootstrap once (cached in /var/cache/keidash-pid1), booted with systemd-nspawn. Root only;
# elsewhere it skips saying why. KEIDASH_PID1_SUITES="bookworm" runs one.
test-pid1: $(STAMP)
	@if [ "$$(id -u)" -ne 0 ]; then \
		echo "make test-pid1: skipped: it boots Debian roots with systemd-nspawn, which needs root"; \
	else \
		KEIDASH_PID1=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy $(PY) -m pytest -q tests/test_pid1.py $(PYTEST_ARGS) \
			&& $(PY) tests/pid1.py --figures; \
	fi

# The same on an arm64 Bookworm root (a Pi's), its programs run by qemu-user-static through
# binfmt_misc: proves the aarch64 wheels install and the dash draws frames. Slow (emulated).
test-arm64:
	$(MAKE) test-pid1 KEIDASH_PID1_ARCH=arm64 KEIDASH_PID1_SUITES="$${KEIDASH_PID1_SUITES:-bookworm}"

bench: $(STAMP)
	SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy $(PY) bench/run_all.py

# tests/test_systemd.py checks the units with systemd-analyze: install it when missing and we can.
systemd-analyze:
	@if command -v systemd-analyze >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "make: no systemd-analyze and no apt-get: the unit checks in tests/test_systemd.py will skip"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
		echo "make: no systemd-analyze and not root: the unit checks will skip (sudo apt-get install systemd)"; \
	else \
		echo "make: installing systemd for systemd-analyze"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; \
	fi

# tests/test_audio.py runs the capture path through arecord (alsa-utils): install it when missing and we can.
arecord:
	@if command -v arecord >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "make: no arecord and no apt-get: the arecord tests in tests/test_audio.py will skip"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
		echo "make: no arecord and not root: the arecord tests will skip (sudo apt-get install alsa-utils)"; \
	else \
		echo "make: installing alsa-utils for arecord"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends alsa-utils >/dev/null; \
	fi

# On the Pi (docs/install.md): sudo make install-pi. DESTDIR=/some/root installs into that root.
install-pi:
	DESTDIR="$(DESTDIR)" sh systemd/install.sh

uninstall-pi:
	DESTDIR="$(DESTDIR)" sh systemd/install.sh --uninstall

clean:
	rm -rf $(VENV) build *.egg-info
