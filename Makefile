# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
DEMO  ?= demo-out
# Debian packages the tests and benchmarks drive as real peers (tshark, tcpdump, nmap, hydra),
# real IoT daemons (busybox telnetd, dropbear; openssl and login for their throwaway account)
# and namespaces (iproute2); chromium for the dashboard's browser tests (Playwright drives it, never
# a downloaded browser).
APT_PKGS := tshark tcpdump nmap hydra busybox-static dropbear-bin openssl login iproute2 libpcap-dev chromium
# The dashboard: npm packages pinned by package-lock.json, bundled by vite into the Python package.
FRONTEND := web/frontend
DASHBOARD := src/iotscope/web/static/index.html

.PHONY: help setup system-deps demo test bench clean

help:
	@echo "make demo   - set up, simulate an hour of darknet traffic, ingest it, show stats, serve the dashboard"
	@echo "make test   - set up (incl. Debian packages) and run the test suite"
	@echo "make bench  - run the benchmarks in bench/ against their peers"

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

$(DASHBOARD): $(FRONTEND)/package.json $(FRONTEND)/package-lock.json $(FRONTEND)/index.html \
              $(FRONTEND)/vite.config.js $(wildcard $(FRONTEND)/src/*)
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent

setup: $(VENV)/.installed $(DASHBOARD)

system-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: setup
	bash scripts/demo.sh $(DEMO)

test: system-deps setup
	$(BIN)/pytest -q

bench: system-deps setup
	bash bench/run.sh

clean:
	rm -rf $(VENV) $(DEMO) bench/out .pytest_cache $(FRONTEND)/node_modules src/iotscope/web/static test-artifacts
