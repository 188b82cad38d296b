#!/usr/bin/env bash
# `make bench`: every benchmark, each against its peers in the same run. Results: bench/out/*.json.
# Only loopback (127.0.0.0/8), or a network namespace a benchmark creates itself, is ever contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python bench/ingest/run.py
.venv/bin/python bench/survey/run.py
.venv/bin/python bench/enrich/run.py
.venv/bin/python bench/api/run.py
.venv/bin/python bench/api/map_fps.py
if [ "$(id -u)" = 0 ]; then
  .venv/bin/python bench/sensor/run.py
else
  echo "bench/sensor needs root (it creates a network namespace): skipped"
fi
.venv/bin/python bench/share/run.py
.venv/bin/python bench/analytics/analyze_vs_ingest.py
