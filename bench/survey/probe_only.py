"""iotscope's probe phase on a given list of open services (``run_survey`` with an L4 import file,
which is what ``iotscope survey run --import FILE`` does), with tunable probe limits.

The CLI has no switch for the per-attempt pacing (``ProbeLimits.attempt_delay``); the benchmark
runs the default and, to show what the pacing costs, ``--attempt-delay 0``. Prints one JSON
object: every finding (ip, port, protocol, status, credential id, attempts) and the run's seconds.

    python bench/survey/probe_only.py --scope scope.toml --import open.txt --ports 23,80 --store DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from iotscope.survey.credentials import load_builtin
from iotscope.survey.probes import ProbeLimits
from iotscope.survey.run import DEFAULT_PROBE_CONCURRENCY, run_survey
from iotscope.survey.scope import Scope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", required=True)
    parser.add_argument("--import", dest="import_file", required=True, type=Path, help="masscan -oL file")
    parser.add_argument("--ports", required=True, help="comma-separated TCP ports")
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--attempt-delay", type=float, default=ProbeLimits().attempt_delay)
    parser.add_argument("--probe-concurrency", type=int, default=DEFAULT_PROBE_CONCURRENCY)
    args = parser.parse_args()
    summary = asyncio.run(run_survey(
        Scope.load(args.scope), store=args.store, credentials=load_builtin(),
        ports=[int(p) for p in args.ports.split(",")], l4_file=args.import_file,
        limits=ProbeLimits(attempt_delay=args.attempt_delay), probe_concurrency=args.probe_concurrency,
    ))
    print(json.dumps({
        "seconds": summary.seconds,
        "findings": [
            {"ip": f.ip, "port": f.port, "protocol": f.protocol, "status": f.status,
             "credential_id": f.credential_id, "attempts": f.attempts, "detail": f.detail}
            for f in summary.findings
        ],
    }))


if __name__ == "__main__":
    main()
