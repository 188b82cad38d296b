"""merge_source_hours (array code) against the same merge written as SQL, on simulated and hand-built rows."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.datasets import SOURCE_HOURS
from iotscope.telescope.categories import load_categories
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze
from iotscope.telescope.source_merge import MERGED_SCHEMA, TOP_PORTS, merge_source_hours

#: The definition, as SQL (what the module replaced): sources in address order break packet ties.
REFERENCE = f"""
    WITH parts AS (SELECT *, coalesce(src::UBIGINT, hash(src6) | (1::UBIGINT << 63)) AS k FROM rows),
    base AS (
        SELECT k, any_value(src) AS src, any_value(src6) AS src6, min(first_ts) AS first_ts, max(last_ts) AS last_ts,
               sum(packets)::BIGINT AS packets,
               coalesce(sum(packets) FILTER (WHERE traffic_class = 'scan'), 0)::BIGINT AS scan_packets,
               coalesce(sum(packets) FILTER (WHERE traffic_class = 'backscatter'), 0)::BIGINT AS backscatter_packets,
               sum(mirai) AS mirai, sum(zmap) AS zmap, sum(masscan) AS masscan
        FROM parts GROUP BY k),
    targets AS (
        SELECT k, proto, dport, sum(packets) AS packets, bool_or(traffic_class = 'scan') AS scan
        FROM parts WHERE dport IS NOT NULL AND traffic_class <> 'backscatter' GROUP BY ALL),
    by_port AS (SELECT k, dport, sum(packets) AS packets FROM targets GROUP BY ALL),
    ranked AS (SELECT *, row_number() OVER (PARTITION BY k ORDER BY packets DESC, dport) AS rn FROM by_port),
    ports AS (SELECT k, list(dport ORDER BY rn) FILTER (WHERE rn <= {TOP_PORTS}) AS ports FROM ranked GROUP BY k),
    counted AS (SELECT k, count(*) AS distinct_ports FROM targets GROUP BY k),
    cats AS (
        SELECT t.k, list(DISTINCT c.category ORDER BY c.category) AS categories
        FROM targets t JOIN categories c ON c.proto = t.proto AND c.port = t.dport WHERE t.scan GROUP BY t.k)
    SELECT b.src, b.src6, b.first_ts, b.last_ts, b.packets, b.scan_packets, b.backscatter_packets,
           coalesce(n.distinct_ports, 0)::BIGINT AS distinct_ports, coalesce(p.ports, [])::USMALLINT[] AS ports,
           list_concat(CASE WHEN b.mirai > 0 THEN ['mirai'] ELSE [] END, CASE WHEN b.zmap > 0 THEN ['zmap'] ELSE [] END,
                       CASE WHEN b.masscan > 0 THEN ['masscan'] ELSE [] END) AS tools,
           coalesce(c.categories, [])::VARCHAR[] AS categories
    FROM base b LEFT JOIN ports p USING (k) LEFT JOIN counted n USING (k) LEFT JOIN cats c USING (k)
    ORDER BY b.packets DESC, b.src NULLS LAST, b.src6
"""


def _reference(rows: pa.Table) -> pa.Table:
    con = duckdb.connect()
    con.register("rows", rows)
    con.register("categories", load_categories().table)
    return con.sql(REFERENCE).to_arrow_table().cast(MERGED_SCHEMA)


def test_merge_equals_the_sql_definition_on_the_simulator(tmp_path: Path) -> None:
    simulate_darknet(DarknetConfig(packets=60_000, hours=3, seed=7, outbreak=True), tmp_path / "d.pcap")
    ingest([tmp_path / "d.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    files = sorted(str(p) for p in (tmp_path / "s").rglob("source_hours/**/*.parquet"))
    assert len(files) == 3
    *committed, newest = files  # the newest hour in memory, as the whole-store step gets it
    merged = merge_source_hours(committed, load_categories(), (pq.read_table(newest),))
    want = _reference(pq.read_table(files, partitioning=None))
    assert merged.num_rows > 500 and merged.equals(want)


def _row(src: str, proto: int, dport: int | None, cls: str, first: int, packets: int, mirai: int = 0,
         zmap: int = 0) -> dict:
    address = ipaddress.ip_address(src)
    return {"src": int(address) if address.version == 4 else None,
            "src6": address.packed if address.version == 6 else None, "proto": proto, "dport": dport,
            "traffic_class": cls, "first_ts": first, "last_ts": first + 10, "packets": packets,
            "mirai": mirai, "zmap": zmap, "masscan": 0}


def test_ties_ipv6_order_many_ports_and_mixed_classes_follow_the_definition() -> None:
    rows = [
        # twelve ports, ties on packets: the port number breaks them; 23 also over UDP (one port, two targets)
        *[_row("203.0.113.1", 6, port, "scan", 1_000 + port, 5 if port % 2 else 3) for port in range(20, 32)],
        _row("203.0.113.1", 17, 23, "scan", 5, 1),
        _row("203.0.113.1", 6, 2323, "other", 7, 40),  # not a scan: a port, not a category
        _row("203.0.113.1", 6, 2323, "scan", 9, 1, mirai=1),  # ... until one of its rows is a scan
        _row("203.0.113.1", 6, None, "backscatter", 11, 7),
        _row("2001:db8::2", 6, 22, "scan", 3, 9, zmap=9),
        _row("2001:db8::1", 6, 3389, "scan", 4, 9),  # same packets as ::2: address order decides
        _row("2001:db8::1", 1, None, "other", 8, 2),
        _row("198.51.100.7", 6, 445, "scan", 2, 11),
        _row("198.51.100.7", 6, 445, "scan", 2_000, 11),  # a second hour of the same target
        _row("192.0.2.80", 6, None, "backscatter", 1, 11),  # a DoS victim: no port at all
    ]
    table = pa.Table.from_pylist(rows, schema=SOURCE_HOURS.schema)
    merged = merge_source_hours([], load_categories(), (table.slice(0, 9), table.slice(9)))
    assert merged.equals(_reference(table))
    first = merged.to_pylist()[0]
    assert first["ports"] == [2323, 23, 21, 25, 27, 29, 31, 20, 22, 24][:TOP_PORTS]  # 23: TCP and UDP together
    assert first["distinct_ports"] == 14 and first["tools"] == ["mirai"] and "iot" in first["categories"]
    assert [r["src6"] for r in merged.to_pylist() if r["src"] is None] == [
        ipaddress.ip_address("2001:db8::1").packed, ipaddress.ip_address("2001:db8::2").packed]


def test_sources_without_any_target_port_or_only_ipv6() -> None:
    """Backscatter and ICMP only (no (protocol, port) target at all), and a store of IPv6 sources only."""
    no_targets = pa.Table.from_pylist([_row("192.0.2.80", 6, None, "backscatter", 1, 11),
                                       _row("192.0.2.81", 1, None, "other", 2, 3)], schema=SOURCE_HOURS.schema)
    merged = merge_source_hours([], load_categories(), (no_targets,))
    assert merged.equals(_reference(no_targets))
    assert merged["ports"].to_pylist() == [[], []] and merged["distinct_ports"].to_pylist() == [0, 0]
    only6 = pa.Table.from_pylist([_row("2001:db8::9", 6, 23, "scan", 1, 4), _row("2001:db8::3", 17, 53, "scan", 2, 4)],
                                 schema=SOURCE_HOURS.schema)
    assert merge_source_hours([], load_categories(), (only6,)).equals(_reference(only6))
    assert merge_source_hours([], load_categories()).num_rows == 0
