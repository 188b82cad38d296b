"""bench/api: latency of every endpoint of ``iotscope serve`` on a 10M-packet store, quiet and under commits.

1. The floor: each endpoint's question asked directly of DuckDB in-process (the library function
   behind the endpoint over a fresh cursor, what a server can only add to), ``--floor-runs`` times.
2. Quiet store: the server starts (it answers the dashboard's default questions in the background,
   ``iotscope.web.prewarm``); per endpoint the first request, then ``--clients`` concurrent clients
   in another process (``load.py``) for ``--requests`` requests.
3. Commits during the load: on a copy of the store, the same clients ask every endpoint in turn for
   ``--commit-seconds`` while a second process ingests one-hour captures (``iotscope ingest``, which
   commits the packets, then analyses them and commits that); a watcher notes each new generation.
   Requests started within ``--after-commit`` seconds of a commit are reported apart, and so is
   the time from each commit to the server's switch to it (its ``/api/live`` ``commit`` event).

The store is built by ``store.py`` (minutes; no need to hold the bench lock for it). Results:
bench/out/api/result.json. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from store import build_store, later_captures

from iotscope.web import listings, profile_query, queries
from iotscope.web.store_reader import StoreReader

LOAD = Path(__file__).with_name("load.py")


def endpoints(reader: StoreReader) -> dict[str, tuple[str, object]]:
    """Name -> (URL path, the library call behind it): every endpoint of issue 9 (``/api/live`` is a stream)."""
    top_source = queries.map_points(reader.cursor(), 3600, 1)["points"]["src"][0]
    table: dict[str, tuple[str, object]] = {
        "summary": ("/api/summary", queries.summary),
        "map 600 s (5,000 points)": ("/api/map?window=600&limit=5000", lambda c: queries.map_points(c, 600, 5000)),
        "series 2323/tcp 600 s": ("/api/series?proto=tcp&port=2323&bucket=600",
                                  lambda c: queries.series(c, "tcp", 2323, 600)),
        "series 23/tcp 1 h": ("/api/series?proto=tcp&port=23&bucket=3600",
                              lambda c: queries.series(c, "tcp", 23, 3600)),
        "categories": ("/api/categories", queries.categories),
    }
    for by in ("port", "tool", "country", "asn"):
        table[f"top {by}"] = (f"/api/top/{by}?limit=10", lambda c, by=by: queries.top(c, by, 10))
    table["events"] = ("/api/events?limit=25", lambda c: listings.events(c, limit=25))
    table["attacks"] = ("/api/attacks?limit=25", lambda c: listings.attacks(c, limit=25))
    table["alerts"] = ("/api/alerts?limit=25", lambda c: listings.alerts(c, limit=25))
    table["ip profile"] = (f"/api/ip/{top_source}", lambda c: profile_query.source_profile(c, top_source))
    return table


def percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    ms = np.asarray(seconds) * 1000
    return {**{f"p{q}": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)}, "n": len(seconds)}


def serve(store: Path) -> tuple[subprocess.Popen, str]:
    """``iotscope serve`` on a free loopback port, dying with this process (``setpriv --pdeathsig``)."""
    server = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--", sys.executable, "-m", "iotscope", "serve",
                               "--store", str(store), "--port", "0"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    for line in server.stderr:
        if "dashboard: http://" in line:
            port = line.split("dashboard: http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
            break
    else:
        raise RuntimeError("the server did not start")
    threading.Thread(target=server.stderr.read, daemon=True).start()  # keep its pipe drained
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(base + "/openapi.json", timeout=2)
            return server, base
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not answer")


def settle(base: str, seconds: float = 60) -> None:
    """Wait until the background prewarm has answered the dashboard's questions (summary answers fast)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        httpx.get(base + "/api/summary", timeout=60)
        if time.perf_counter() - started < 0.02:
            time.sleep(2)  # the other default questions follow the summary
            return
        time.sleep(0.2)


def load(urls: list[str], clients: int, requests: int | None = None, duration: float | None = None) -> dict:
    command = [sys.executable, str(LOAD), *urls, "--clients", str(clients)]
    command += ["--duration", str(duration)] if duration else ["--requests", str(requests)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1200)
    return json.loads(done.stdout)


def map_bytes(base: str) -> dict[str, int]:
    """The map answer's size as served (columns) and as one object per point with full float text (before)."""
    body = httpx.get(base + "/api/map?window=600&limit=5000", timeout=60).content
    points = json.loads(body)["points"]
    rows = [dict(zip(points, values, strict=True)) for values in zip(*points.values(), strict=True)]
    for row in rows:  # the previous answer printed float32 coordinates as doubles: 35.689998626708984
        for key in ("lat", "lon"):
            row[key] = None if row[key] is None else float(np.float32(row[key]))
    before = json.dumps({**json.loads(body), "points": rows}).encode()
    return {"points": len(rows), "columns_bytes": len(body), "objects_bytes": len(before)}


def quiet(store: Path, table: dict, clients: int, requests: int) -> tuple[dict, dict]:
    server, base = serve(store)
    results: dict[str, dict] = {}
    try:
        settle(base)
        sizes = map_bytes(base)
        for name, (path, _) in table.items():
            started = time.perf_counter()
            assert httpx.get(base + path, timeout=300).status_code == 200, path
            first = round((time.perf_counter() - started) * 1000, 1)
            measured = load([base + path], clients, requests=requests)
            latencies = [r[2] for r in measured["requests"]]
            statuses: dict[int, int] = {}
            for r in measured["requests"]:
                statuses[r[3]] = statuses.get(r[3], 0) + 1
            results[name] = {"first_request_ms": first, "served_ms": percentiles(latencies),
                             "requests_per_s": round(len(latencies) / measured["seconds"], 1), "statuses": statuses}
    finally:
        server.terminate()
        server.wait(10)
    return results, sizes


def watch_generations(store: Path, stop: threading.Event, seen: list[float]) -> None:
    """Note the wall time of every new generation of ``store`` (what the server's readers will see)."""
    reader = StoreReader(store)
    last = reader.generation()
    while not stop.is_set():
        now = reader.generation()
        if now != last:
            seen.append(time.time())
            last = now
        time.sleep(0.02)


def listen(base: str, stop: threading.Event, told: list[float]) -> None:
    """Note the wall time of every ``commit`` event of ``/api/live``: when the server answers from the new commit."""
    with httpx.Client(timeout=None) as http, http.stream("GET", base + "/api/live") as stream:
        for line in stream.iter_lines():
            if stop.is_set():
                return
            if line == "event: commit":
                told.append(time.time())


def publish_lag(commits: list[float], told: list[float]) -> dict[str, float | None]:
    """Seconds from each commit to the first ``commit`` event at or after it (the server's switch)."""
    lags = [min((t for t in told if t >= c), default=None) for c in commits]
    lags = [t - c for t, c in zip(lags, commits, strict=True) if t is not None]
    return {"p50_s": round(float(np.median(lags)), 2) if lags else None,
            "max_s": round(max(lags), 2) if lags else None, "n": len(lags), "each_s": [round(x, 2) for x in lags]}


def under_commits(store: Path, scratch: Path, captures: list[Path], table: dict, clients: int, seconds: float,
                  after_commit: float) -> dict:
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(store, scratch)
    server, base = serve(scratch)
    commits: list[float] = []
    ingests: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch_generations, args=(scratch, stop, commits), daemon=True)

    def ingest_all() -> None:
        time.sleep(seconds / (len(captures) + 1) / 2)
        for capture in captures:
            started = time.perf_counter()
            subprocess.run(["setpriv", "--pdeathsig", "KILL", "--", sys.executable, "-m", "iotscope", "ingest",
                            str(capture), "--store", str(scratch)], check=True, capture_output=True, timeout=600)
            ingests.append(time.perf_counter() - started)
            time.sleep(max(0.0, seconds / (len(captures) + 1) - (time.perf_counter() - started)))

    told: list[float] = []
    try:
        settle(base)
        threading.Thread(target=listen, args=(base, stop, told), daemon=True).start()
        watcher.start()
        writer = threading.Thread(target=ingest_all, daemon=True)
        writer.start()
        names = list(table)
        measured = load([base + table[n][0] for n in names], clients, duration=seconds)
        writer.join()
    finally:
        stop.set()
        server.terminate()
        server.wait(10)
    rows = measured["requests"]
    marks = np.asarray(commits)

    def soon_after(start: float) -> bool:
        before = marks[marks <= start]
        return bool(len(before)) and start - before[-1] <= after_commit

    after = [r for r in rows if soon_after(r[0])]
    per_endpoint = {n: {"all": percentiles([r[2] for r in rows if r[1] == i]),
                        "after_commit": percentiles([r[2] for r in after if r[1] == i])} for i, n in enumerate(names)}
    return {"seconds": round(measured["seconds"], 1), "commits": len(commits), "publish_lag": publish_lag(commits, told), "ingest_seconds": [round(s, 1) for s in ingests],
            "requests": len(rows), "statuses": sorted({r[3] for r in rows}),
            "all": percentiles([r[2] for r in rows]), "after_commit": percentiles([r[2] for r in after]),
            "after_commit_max_ms": round(max((r[2] for r in after), default=0) * 1000, 1),
            "endpoints": per_endpoint}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=10_000_000)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--floor-runs", type=int, default=5)
    parser.add_argument("--commit-seconds", type=float, default=60)
    parser.add_argument("--captures", type=int, default=4, help="One-hour captures ingested during the load.")
    parser.add_argument("--after-commit", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/api"))
    parser.add_argument("--only-commits", action="store_true",
                        help="Only step 3 (commits during the load): a short run for changes to the prewarm.")
    args = parser.parse_args()
    store = build_store(args.out, args.packets, args.hours)
    captures = later_captures(args.out, args.captures, 100_000, args.hours)
    reader = StoreReader(store)
    packets = queries.summary(reader.cursor())["packets"]
    table = endpoints(reader)
    if args.only_commits:
        commits = under_commits(store, args.out / "store-commits", captures, table, args.clients,
                                args.commit_seconds, args.after_commit)
        (args.out / "commits.json").write_text(json.dumps({"machine": machine(), "packets": packets,
                                                           "under_commits": commits}, indent=2))
        print_commits(commits, args.after_commit)
        return

    floor: dict[str, dict] = {}
    for name, (_, query) in table.items():
        runs = []
        for _ in range(args.floor_runs):
            con = reader.cursor()
            started = time.perf_counter()
            query(con)
            runs.append(time.perf_counter() - started)
        floor[name] = percentiles(runs)
    served, sizes = quiet(store, table, args.clients, args.requests)
    commits = under_commits(store, args.out / "store-commits", captures, table, args.clients, args.commit_seconds,
                            args.after_commit)

    report = {"machine": machine(), "packets": packets, "clients": args.clients, "requests": args.requests,
              "floor_ms": floor, "served": served, "map_bytes": sizes, "under_commits": commits}
    (args.out / "result.json").write_text(json.dumps(report, indent=2))
    print(f"{packets:,} packets, {args.clients} concurrent clients x {args.requests} requests per endpoint")
    print("| endpoint | DuckDB floor p50 (ms) | first request (ms) | served p50 / p95 / p99 (ms) | requests/s |")
    print("|---|---:|---:|---:|---:|")
    for name, r in served.items():
        s = r["served_ms"]
        print(f"| {name} | {floor[name]['p50']:,.1f} | {r['first_request_ms']:,.1f} | "
              f"{s['p50']} / {s['p95']} / {s['p99']} | {r['requests_per_s']:,.0f} |")
    print(f"map answer: {sizes['points']} points, {sizes['columns_bytes']:,} bytes as columns, "
          f"{sizes['objects_bytes']:,} as objects")
    print_commits(commits, args.after_commit)


def print_commits(c: dict, after_commit: float) -> None:
    print(f"\nunder commits: {c['commits']} commits in {c['seconds']} s (ingest+analyze of each capture: "
          f"{c['ingest_seconds']} s), {c['requests']} requests, statuses {c['statuses']}")
    print(f"| endpoint | all p50 / p95 / p99 (ms) | within {after_commit:g} s after a commit p50 / p95 / p99 (n) |")
    print("|---|---:|---:|")
    for name, r in [("every endpoint", {"all": c["all"], "after_commit": c["after_commit"]}), *c["endpoints"].items()]:
        a, b = r["all"], r["after_commit"]
        print(f"| {name} | {a['p50']} / {a['p95']} / {a['p99']} | {b['p50']} / {b['p95']} / {b['p99']} ({b['n']}) |")
    print(f"slowest request within {after_commit:g} s after a commit: {c['after_commit_max_ms']} ms")
    lag = c["publish_lag"]
    print(f"commit -> served (the /api/live event): p50 {lag['p50_s']} s, max {lag['max_s']} s over {lag['n']} commits")


if __name__ == "__main__":
    main()
