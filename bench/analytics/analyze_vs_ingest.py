"""Analyze benchmark: the analysis passes against the ingest of the same capture and against naive SQL, same run.

The target (issue 8): ``analyze`` adds at most 50% to ingest time on the 5M-packet capture. Every
command runs in a fresh process on the simulator's 6-hour outbreak capture (the ingest bench's
file), measured for wall time, CPU time (user + system, all threads: the machine is shared, so CPU
time is the steadier figure) and peak RSS:

* ``ingest --no-analyze`` into a fresh store, then ``analyze`` of that store;
* ``ingest`` (which analyses at its end) into another fresh store: what analysing adds to one ingest;
* the same results written as naive DuckDB SQL over the store's Parquet files: ``events`` with
  window functions (``lag`` over (source, protocol, port, class) ordered by time, a running sum
  for the event number, ``count(DISTINCT ...)``), ``port_series`` with ``GROUP BY time_bucket``.
  It has no hourly partitions, no carried state and no files to write, so it is the floor a
  one-shot query engine gives, not an incremental analysis.

Geo lookups are measured by ``bench/enrich/run.py`` (a separate benchmark, see BENCHMARKS.md).

    .venv/bin/python bench/analytics/analyze_vs_ingest.py --packets 5000000 [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import Run, machine, measure

IOTSCOPE = [sys.executable, "-m", "iotscope"]
IDLE_US = 600 * 1_000_000  # the events pass's default --event-idle

NAIVE_EVENTS = f"""
WITH p AS (
    SELECT src, src6, proto, dport, traffic_class, ts, dst, dst6, tool FROM packets
    WHERE traffic_class <> 'backscatter'
), gaps AS (
    SELECT *, CASE WHEN epoch_us(ts) - epoch_us(lag(ts) OVER w) <= {IDLE_US} THEN 0 ELSE 1 END AS starts
    FROM p WINDOW w AS (PARTITION BY src, src6, proto, dport, traffic_class ORDER BY ts)
), numbered AS (
    SELECT *, sum(starts) OVER (PARTITION BY src, src6, proto, dport, traffic_class ORDER BY ts
                                ROWS UNBOUNDED PRECEDING) AS event
    FROM gaps
)
SELECT src, src6, proto, dport, traffic_class, event, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS packets,
       count(DISTINCT dst) + count(DISTINCT dst6) AS destinations, count(DISTINCT dst >> 8) AS dst_24s, mode(tool) AS tool
FROM numbered GROUP BY ALL
"""

NAIVE_PORT_SERIES = """
SELECT proto, dport AS port, time_bucket(INTERVAL 10 minutes, ts) AS bucket, count(*) AS packets,
       count(DISTINCT src) + count(DISTINCT src6) AS sources
FROM packets WHERE traffic_class = 'scan' AND dport IS NOT NULL GROUP BY ALL
"""


def naive(which: str, store: Path) -> None:
    """Run one naive query over the store's packets (in this fresh process) and print its row count."""
    import duckdb

    con = duckdb.connect()
    con.sql(f"CREATE VIEW packets AS SELECT * FROM read_parquet('{store}/packets/**/*.parquet', hive_partitioning=false)")
    query = NAIVE_EVENTS if which == "events" else NAIVE_PORT_SERIES
    print(con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0])


def rows_of(store: Path, view: str) -> int:
    out = measure([*IOTSCOPE, "sql", "--store", str(store), "--json", f"SELECT count(*) AS n FROM {view}"]).stdout
    return int(json.loads(out)[0]["n"])


def figures(run: Run) -> dict[str, float]:
    return {"wall_s": round(run.seconds, 2), "cpu_s": round(run.cpu_seconds, 2), "peak_rss_mb": round(run.peak_rss_mb)}


def one_round(capture: Path, out: Path) -> dict[str, object]:
    """Every measurement once, back to back, so their ratios share the machine's load."""
    plain, full = out / "analyze-store", out / "analyze-store-full"
    for store in (plain, full):
        shutil.rmtree(store, ignore_errors=True)
    runs = {
        "ingest_no_analyze": measure([*IOTSCOPE, "ingest", str(capture), "--store", str(plain), "--no-analyze"]),
        "analyze": measure([*IOTSCOPE, "analyze", "--store", str(plain)]),
        "ingest_with_analyze": measure([*IOTSCOPE, "ingest", str(capture), "--store", str(full)]),
    }
    me = [sys.executable, str(Path(__file__).resolve())]
    runs["naive_sql_events"] = measure([*me, "--naive", "events", "--store", str(plain)])
    runs["naive_sql_port_series"] = measure([*me, "--naive", "port_series", "--store", str(plain)])
    ingest, analyze = runs["ingest_no_analyze"], runs["analyze"]
    added = runs["ingest_with_analyze"]
    naive_both = runs["naive_sql_events"].seconds + runs["naive_sql_port_series"].seconds
    naive_both_cpu = runs["naive_sql_events"].cpu_seconds + runs["naive_sql_port_series"].cpu_seconds
    return {
        **{name: figures(run) for name, run in runs.items()},
        "analyze_over_ingest": {"wall": round(analyze.seconds / ingest.seconds, 3),
                                "cpu": round(analyze.cpu_seconds / ingest.cpu_seconds, 3)},
        "ingest_with_analyze_over_ingest": {"wall": round(added.seconds / ingest.seconds, 3),
                                            "cpu": round(added.cpu_seconds / ingest.cpu_seconds, 3)},
        "naive_events_and_series_over_analyze": {"wall": round(naive_both / analyze.seconds, 2),
                                                 "cpu": round(naive_both_cpu / analyze.cpu_seconds, 2)},
        "rows": {"events": rows_of(plain, "events"), "naive_events": int(runs["naive_sql_events"].stdout),
                 "port_series": rows_of(plain, "port_series"),
                 "naive_port_series": int(runs["naive_sql_port_series"].stdout)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="Rounds (each one measures everything once).")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    parser.add_argument("--naive", choices=("events", "port_series"), help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        naive(args.naive, args.store)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    capture = args.out / f"darknet-{args.packets}.pcap"
    if not capture.exists():
        measure([*IOTSCOPE, "simulate", "--out", str(capture), "--packets", str(args.packets),
                 "--hours", "6", "--outbreak", "--seed", "1"])
    result = {"packets": args.packets, "machine": machine(),
              "rounds": [one_round(capture, args.out) for _ in range(args.repeat)]}
    (args.out / f"analyze-{args.packets}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
