"""bench/api: latency of every endpoint of ``iotscope serve`` on a large simulated store.

For each endpoint: the same question asked directly of DuckDB in-process (``iotscope.web.queries``
over a fresh cursor: the floor a server can only add to), the first request to the server after a
commit (computed), then ``--clients`` concurrent clients in another process (answers kept until
the next commit, see ``iotscope.web.result_cache``). Results: bench/out/api/result.json.
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.telescope.ingest import ingest
from iotscope.web import queries
from iotscope.web.store_reader import StoreReader


def endpoints(reader: StoreReader) -> dict[str, tuple[str, object]]:
    top_source = queries.map_points(reader.cursor(), 3600, 1)["points"][0]["src"]
    return {
        "summary": ("/api/summary", queries.summary),
        "series 2323/tcp": ("/api/series?proto=tcp&port=2323&bucket=600",
                            lambda c: queries.series(c, "tcp", 2323, 600)),
        "top port": ("/api/top/port?limit=10", lambda c: queries.top(c, "port", 10)),
        "top tool": ("/api/top/tool?limit=10", lambda c: queries.top(c, "tool", 10)),
        "map 600 s": ("/api/map?window=600&limit=5000", lambda c: queries.map_points(c, 600, 5000)),
        "ip profile": (f"/api/ip/{top_source}", lambda c: queries.source_profile(c, top_source)),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    ms = np.asarray(values) * 1000
    return {f"p{q}": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)}


def build_store(out: Path, packets: int, hours: float) -> Path:
    store = out / "store"
    if (store / "state.sqlite").exists():
        return store
    out.mkdir(parents=True, exist_ok=True)
    capture = simulate_darknet(DarknetConfig(packets=packets, hours=hours, outbreak=True, seed=9,
                                             start=datetime(2016, 9, 1)), out / "darknet.pcap")
    ingest([capture.path], store)
    capture.path.unlink()
    return store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=10_000_000)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--floor-runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/out/api"))
    args = parser.parse_args()
    store = build_store(args.out, args.packets, args.hours)
    reader = StoreReader(store)
    packets = queries.summary(reader.cursor())["packets"]
    table = endpoints(reader)

    results: dict[str, dict] = {}
    for name, (_, query) in table.items():
        runs = []
        for _ in range(args.floor_runs):
            con = reader.cursor()
            started = time.perf_counter()
            query(con)
            runs.append(time.perf_counter() - started)
        results[name] = {"duckdb_floor_ms": percentiles(runs)}

    port = 18000 + int(time.time()) % 1000
    server = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--", sys.executable, "-m", "iotscope", "serve",
                               "--store", str(store), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(base + "/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        for name, (path, _) in table.items():
            started = time.perf_counter()
            assert httpx.get(base + path, timeout=300).status_code == 200
            results[name]["first_request_ms"] = round((time.perf_counter() - started) * 1000, 1)
            load = subprocess.run([sys.executable, str(Path(__file__).with_name("load.py")), base + path,
                                   "--clients", str(args.clients), "--requests", str(args.requests)],
                                  capture_output=True, text=True, check=True, timeout=600)
            measured = json.loads(load.stdout)
            results[name]["served_ms"] = percentiles(measured["latencies"])
            results[name]["requests_per_s"] = round(len(measured["latencies"]) / measured["seconds"], 1)
            results[name]["statuses"] = measured["statuses"]
    finally:
        server.terminate()
        server.wait(10)

    report = {"machine": machine(), "packets": packets, "clients": args.clients, "requests": args.requests,
              "endpoints": results}
    (args.out / "result.json").write_text(json.dumps(report, indent=2))
    print(f"{packets:,} packets, {args.clients} concurrent clients x {args.requests} requests per endpoint")
    print("| endpoint | DuckDB direct p50 (ms) | first request after a commit (ms) | served p50 / p95 / p99 (ms) | requests/s |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        s = r["served_ms"]
        print(f"| {name} | {r['duckdb_floor_ms']['p50']:,.0f} | {r['first_request_ms']:,.0f} | "
              f"{s['p50']} / {s['p95']} / {s['p99']} | {r['requests_per_s']:,.0f} |")


if __name__ == "__main__":
    main()
