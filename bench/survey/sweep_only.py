"""iotscope's L4 phase alone (the same ``sweep`` that ``iotscope survey run`` calls), as its own process.

``survey run`` always goes on to probe what it found; the benchmark compares only the connect
sweep with ``nmap -sT``, so this script runs the sweep engine on the scope and prints one JSON
object: the open (ip, port) pairs and the engine's counters.

    python bench/survey/sweep_only.py --scope scope.toml --ports 22,23,80 --rate 1e9 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets

from iotscope.survey.permutation import CyclicPermutation, Shard
from iotscope.survey.portspec import parse_ports
from iotscope.survey.scope import Scope
from iotscope.survey.sweep import DEFAULT_CONCURRENCY, DEFAULT_CONNECT_TIMEOUT, DEFAULT_RATE, sweep
from iotscope.survey.sweep_workers import start_worker_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", required=True)
    parser.add_argument("--ports", required=True, help="TCP ports and ranges (1-1024,2323), as survey run takes them")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT)
    parser.add_argument("--shard", default="1/1", help="i/N: this process's part (same --seed in every shard)")
    parser.add_argument("--seed", type=int, default=None, help="permutation seed (default random)")
    parser.add_argument("--workers", type=int, default=1, help="sweep processes (survey run's --workers)")
    args = parser.parse_args()
    if args.workers > 1:
        start_worker_server()  # as survey run does: the workers' server starts while the scope loads
    scope = Scope.load(args.scope)
    ports = parse_ports(args.ports)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # as the CLI does (_raise_file_limit)
    wanted = args.concurrency + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted, hard))
    seed = args.seed if args.seed is not None else secrets.randbits(64)
    permutation = CyclicPermutation(scope.authorized_count * len(ports), seed, Shard.parse(args.shard))
    stats = asyncio.run(sweep(scope, ports, permutation, rate=args.rate, concurrency=args.concurrency,
                              timeout=args.timeout, workers=args.workers))
    print(json.dumps({
        "open": sorted([p.ip, p.port] for p in stats.open_ports),
        "attempted": stats.attempted, "closed": stats.closed, "timeouts": stats.timeouts,
        "errors": stats.errors, "seconds": stats.seconds, "concurrency": stats.concurrency,
    }))


if __name__ == "__main__":
    main()
