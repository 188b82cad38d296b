#!/usr/bin/env bash
# `make bench`: every benchmark, each against its peers in the same run. Results: bench/out/*.json.
# Only loopback (127.0.0.0/8) is ever contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python bench/ingest/run.py
.venv/bin/python bench/survey/run.py
.venv/bin/python bench/enrich/run.py
.venv/bin/python bench/analytics/analyze_vs_ingest.py
