# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
DEMO  ?= demo-out
# Debian packages the tests and benchmarks drive as real peers (tshark, tcpdump, nmap, hydra),
# real IoT daemons (busybox telnetd, dropbear; openssl and login for their throwaway account)
# namespaces (iproute2) and replay into them for the live sensor (tcpreplay; dumpcap comes with tshark).
APT_PKGS := tshark tcpdump nmap hydra busybox-static dropbear-bin openssl login iproute2 libpcap-dev tcpreplay

.PHONY: help setup system-deps demo test bench clean

help:
	@echo "make demo   - set up, simulate an hour of darknet traffic, ingest it, show stats"
	@echo "make test   - set up (incl. Debian packages) and run the test suite"
	@echo "make bench  - run the benchmarks in bench/ against their peers"

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

setup: $(VENV)/.installed

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
	rm -rf $(VENV) $(DEMO) bench/out .pytest_cache
