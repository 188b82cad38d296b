"""Load generator for bench/api: N concurrent HTTP clients; prints every request's timing as JSON.

Runs in its own process so that the client's work never shares a GIL with the server's. Each
client asks the given URLs in turn (a client starts at its own offset, so all URLs are in flight),
either ``--requests`` in all or for ``--duration`` seconds. Output: ``requests`` as rows
``[start (epoch s), url index, latency (s), status]`` and the wall ``seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx


async def _run(urls: list[str], clients: int, requests: int | None, duration: float | None) -> dict:
    done: list[list] = []
    remaining = requests
    deadline = None if duration is None else time.monotonic() + duration

    def more() -> bool:
        nonlocal remaining
        if deadline is not None:
            return time.monotonic() < deadline
        if remaining <= 0:
            return False
        remaining -= 1
        return True

    async def client(offset: int) -> None:
        async with httpx.AsyncClient(timeout=300) as http:
            n = offset
            while more():
                index = n % len(urls)
                n += 1
                wall = time.time()
                started = time.perf_counter()
                response = await http.get(urls[index])
                await response.aread()
                done.append([wall, index, time.perf_counter() - started, response.status_code])

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return {"requests": done, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--duration", type=float, default=None, help="Seconds to run instead of --requests.")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.urls, args.clients, args.requests, args.duration))))


if __name__ == "__main__":
    main()
