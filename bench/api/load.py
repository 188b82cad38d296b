"""Load generator for bench/api: N concurrent HTTP clients hammering one URL; prints latencies as JSON.

Runs in its own process so that the client's work never shares a GIL with the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx


async def _run(url: str, clients: int, requests: int) -> dict:
    latencies: list[float] = []
    remaining = requests
    statuses: dict[int, int] = {}

    async def client() -> None:
        nonlocal remaining
        async with httpx.AsyncClient(timeout=120) as http:
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await http.get(url)
                await response.aread()
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return {"latencies": latencies, "seconds": time.perf_counter() - started, "statuses": statuses}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.url, args.clients, args.requests))))


if __name__ == "__main__":
    main()
