# Set-up and everyday commands. `make demo` and `make test` create the virtualenv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint test-fast install clean rtsp-deps browser-deps mqtt-deps

# GStreamer's RTSP server for the system Python (vidaffect/testing/rtsp_server.py, the RTSP tests).
RTSP_DEBS := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-tools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/vidaffect: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]"
	touch $@

install: $(BIN)/vidaffect

demo: install
	$(BIN)/vidaffect demo

test: install
	$(BIN)/pytest

# The checks that keep the style (also the pre-commit hooks): lint, formatting, types.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Without the tests marked slow (pipelines and CLIs in subprocesses, training, long benchmarks).
test-fast: install
	$(BIN)/pytest -m "not slow"

rtsp-deps:
	@/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(RTSP_DEBS))

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser-deps:
	@command -v chromium >/dev/null 2>&1 \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

# Debian's mosquitto broker for the MQTT tests (started by the tests on 127.0.0.1, never as a service).
mqtt-deps:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends mosquitto)

clean:
	rm -rf out .pytest_cache
