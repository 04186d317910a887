# wattbus — make run (embedded stack), make test (installs what it needs), make bench, make lint.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := mosquitto mosquitto-clients influxdb victoria-metrics chromium openssl faketime
SERVICES := $(sort $(wildcard services/*/wattbus_*/__init__.py))

.PHONY: install system-deps run run-pi test bench reliability lint schema clean

# Debian packages the stack and the tests run for real: broker, InfluxDB 1.x, VictoriaMetrics
# (InfluxDB line protocol, v2 write API) and Chromium (the web UI tests, headless).
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# Debian starts the system broker/DB on install where systemd runs; the stack brings its own.

$(VENV)/bin/activate:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# Re-install when the dependencies or the set of services change (setup.py discovers services/*/).
$(VENV)/.installed: pyproject.toml setup.py $(SERVICES) | $(VENV)/bin/activate
	$(PIP) install -q -e '.[dev]'
	touch $@

install: system-deps $(VENV)/.installed

run: install
	$(VENV)/bin/wattbus embedded --root .

run-pi: install
	WATTBUS_EMBEDDED_PROFILE=one-process $(VENV)/bin/wattbus embedded --root .

test: install
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests

bench: install
	$(PY) bench/run_all.py --report bench/REPORT.md

reliability: install
	$(VENV)/bin/pip install -q -e '.[dev,reliability]'
	$(PY) reliability/run.py

lint: install
	$(VENV)/bin/ruff check shared services simulators tests bench reliability
	MYPYPATH=shared:simulators:$$(ls -d services/*/ | tr '\n' ':') $(VENV)/bin/mypy --explicit-package-bases shared/wattbus simulators/wattbus_sim $$(ls -d services/*/wattbus_*/)

schema: install
	$(VENV)/bin/wattbus schema --root .

clean:
	rm -rf .run build *.egg-info
