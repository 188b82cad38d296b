#!/usr/bin/env bash
# `make bench`: every benchmark, each against its peers in the same run. Results: bench/out/*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python bench/ingest/run.py "$@"
