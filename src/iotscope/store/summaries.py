"""Whole-store analysis results: ``alerts``, ``sources`` and the category table, one file each.

The hourly datasets (``iotscope.store.datasets``) are written hour by hour; these are computed at
the end of every ``analyze`` from the whole store (surge detection needs a port's history, a source
profile merges all of that source's hours and is enriched once) and replace their previous file as
a whole. The store owns their schemas, where their files go and which file is committed; it takes
their content as data from the telescope (it imports nothing from ``iotscope.telescope``).

Layout::

    analysis/summary/<name>/<run>.parquet

Crash safety is the hourly datasets' recipe: the file is written into staging, moved into place
durably, then the catalog setting ``summaries`` (one JSON value in ``analysis_settings``, replaced
in one statement) names it; views read only named files and ``remove_uncommitted`` deletes others.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from iotscope.store.datasets import (
    ANALYSIS_DIR,
    SUMMARIES_KEY,
    AnalysisCatalog,
    DatasetSpec,
    ViewSnapshot,
    empty_relation,
    staging_dir,
)
from iotscope.store.durable import move_into_place
from iotscope.store.state import StoreError

_TS = pa.timestamp("us", tz="UTC")

ALERTS = DatasetSpec("alerts", pa.schema([
    pa.field("proto", pa.uint8(), nullable=False),
    pa.field("port", pa.uint16(), nullable=False),
    pa.field("start", _TS, nullable=False),  # first bucket of the change
    pa.field("detected", _TS, nullable=False),  # bucket at whose end the alarm fired
    pa.field("baseline_sources", pa.float64(), nullable=False),  # distinct sources per bucket before
    pa.field("level_sources", pa.float64(), nullable=False),  # mean over the confirming buckets
    pa.field("magnitude", pa.float64(), nullable=False),  # level / baseline (baseline floored at 1)
    pa.field("packets", pa.int64(), nullable=False),  # packets to the port from start to detected
    pa.field("method", pa.string(), nullable=False),
]), version=1)

SOURCES = DatasetSpec("sources", pa.schema([
    pa.field("src", pa.uint32()),  # IPv4 source; null for IPv6
    pa.field("src6", pa.binary(16)),  # IPv6 source; null for IPv4
    pa.field("src_ip", pa.string(), nullable=False),
    pa.field("first_ts", _TS, nullable=False),
    pa.field("last_ts", _TS, nullable=False),
    pa.field("packets", pa.int64(), nullable=False),
    pa.field("scan_packets", pa.int64(), nullable=False),
    pa.field("backscatter_packets", pa.int64(), nullable=False),
    pa.field("distinct_ports", pa.int64(), nullable=False),  # distinct (protocol, destination port) scanned
    pa.field("ports", pa.list_(pa.uint16()), nullable=False),  # the most scanned destination ports, busiest first
    pa.field("tools", pa.list_(pa.string()), nullable=False),  # tool fingerprints seen in its packets
    pa.field("tags", pa.list_(pa.string()), nullable=False),
    pa.field("country", pa.string()),
    pa.field("asn", pa.uint32()),
    pa.field("as_name", pa.string()),
    pa.field("lat", pa.float32()),
    pa.field("lon", pa.float32()),
    pa.field("scanner_org", pa.string()),  # the research scanner whose published network holds it
    pa.field("classification", pa.string(), nullable=False),  # benign, malicious, unknown
]), version=1)

#: The target category table the ``packets`` view's ``category`` column is computed from.
CATEGORIES = DatasetSpec("categories", pa.schema([
    pa.field("proto", pa.uint8(), nullable=False),
    pa.field("port", pa.uint16(), nullable=False),
    pa.field("category", pa.string(), nullable=False),
]), version=1)

#: Every whole-store result the store knows, by name.
SUMMARY_DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (ALERTS, SOURCES, CATEGORIES)}


def committed_summaries(catalog: AnalysisCatalog) -> dict[str, dict]:
    """{name: {"path": relative path, "inputs": str, "meta": dict}} of the committed summaries."""
    value = catalog.setting(SUMMARIES_KEY)
    return value if isinstance(value, dict) else {}


def commit_summaries(root: Path, catalog: AnalysisCatalog, results: dict[str, tuple[pa.Table, str, dict]]) -> None:
    """Write each ``name -> (table, inputs, meta)`` and commit them together in one catalog statement.

    ``inputs`` says what the table was computed from (a later run with the same inputs can skip
    it); ``meta`` is JSON the views expose (e.g. the enrichment data's provenance). Call only while
    holding the analysis lock.
    """
    run = uuid.uuid4().hex[:16]
    staging = staging_dir(root) / f"summary-{run}"
    staging.mkdir(parents=True, exist_ok=True)
    entries = committed_summaries(catalog)
    for name, (table, inputs, meta) in results.items():
        spec = SUMMARY_DATASETS[name]
        if table.schema != spec.schema:
            table = table.select(spec.schema.names).cast(spec.schema)
        relative = Path(ANALYSIS_DIR) / "summary" / name / f"{run}.parquet"
        staged = staging / f"{name}.parquet"
        pq.write_table(table, staged, compression="zstd", compression_level=1)
        move_into_place(staged, root / relative)
        entries[name] = {"path": str(relative), "inputs": inputs, "meta": meta, "version": spec.version}
    staging.rmdir()
    catalog.set_setting(SUMMARIES_KEY, entries)


def source_key_sql(alias: str = "") -> str:
    """SQL for one UBIGINT identifying a row's source address (``src`` or ``src6``): joins and groups
    on one integer are much faster than on two nullable columns. IPv4: the address; IPv6: a 64-bit
    hash with the top bit set, so it never equals an IPv4 key; two IPv6 sources colliding is a
    ~n²/2⁶⁴ event, accepted."""
    t = f"{alias}." if alias else ""
    return f"coalesce({t}src::UBIGINT, hash({t}src6) | (1::UBIGINT << 63))"


def inputs_key(*parts: object) -> str:
    """A stable text for what a summary was computed from (compared, never parsed)."""
    return json.dumps(parts, sort_keys=True, default=str)


#: Columns of the view ``enrichment_sources``: the data behind ``sources``' geo and AS columns.
ENRICHMENT_SOURCE_COLUMNS = ("name", "provides", "date", "licence", "origin", "attribution", "sha256")


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def category_sql(snapshot: ViewSnapshot) -> str:
    """SQL for the ``packets`` view's ``category``: scan packets' target category, else null.

    Built from the committed category table (a small file read here, once per connection) as one
    ``CASE`` of ``IN`` lists, which keeps the view a projection (no join: row order and speed of
    ``packets`` queries stay as they were). Null for every packet until an analysis wrote a table.
    """
    path = snapshot.summary_file("categories")
    if path is None:
        return "CAST(NULL AS VARCHAR)"
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: committed category table unreadable ({str(exc).splitlines()[0]}); "
                         "run `iotscope analyze` again") from None
    by_category: dict[tuple[str, int], list[int]] = {}
    for proto, port, category in zip(table["proto"].to_pylist(), table["port"].to_pylist(),
                                     table["category"].to_pylist(), strict=True):
        by_category.setdefault((category, proto), []).append(port)
    whens = " ".join(
        f"WHEN proto = {int(proto)} AND dport IN ({', '.join(str(int(p)) for p in sorted(ports))}) THEN {_quote(name)}"
        for (name, proto), ports in sorted(by_category.items()))
    return f"CASE WHEN traffic_class <> 'scan' THEN NULL {whens} ELSE 'other' END"


def create_summary_views(con: duckdb.DuckDBPyConnection, snapshot: ViewSnapshot, selects: dict[str, str]) -> None:
    """Views ``alerts``, ``sources``, ``enrichment_sources``; ``events`` gains its source's country and AS.

    ``selects`` are the hourly views' SELECTs from ``iotscope.store.datasets.create_views``.
    """
    for spec in (ALERTS, SOURCES):
        path = snapshot.summary_file(spec.name)
        if path is None:
            con.execute(f"CREATE OR REPLACE VIEW {spec.name} AS SELECT * FROM {empty_relation(con, spec.schema)}")
        else:
            con.execute(f"CREATE OR REPLACE VIEW {spec.name} AS SELECT * FROM read_parquet({_quote(path)})")
    entry = snapshot.summaries.get("sources")
    listed = entry.get("meta", {}).get("enrichment", []) if isinstance(entry, dict) else []
    # literal rows, not a registered Arrow table: only the registering connection sees those, not its cursors
    names = ", ".join(f'"{c}"' for c in ENRICHMENT_SOURCE_COLUMNS)
    rows = ", ".join("(" + ", ".join(_quote(str(s.get(c, ""))) for c in ENRICHMENT_SOURCE_COLUMNS) + ")"
                     for s in listed if isinstance(s, dict))
    provenance = (f"SELECT * FROM (VALUES {rows}) AS t({names})" if rows else
                  "SELECT * FROM " + empty_relation(con, pa.schema([(c, pa.string()) for c in ENRICHMENT_SOURCE_COLUMNS])))
    con.execute(f"CREATE OR REPLACE VIEW enrichment_sources AS {provenance}")
    if "events" in selects:
        con.execute(
            "CREATE OR REPLACE VIEW events AS SELECT e.*, s.country, s.asn, s.as_name "
            f"FROM ({selects['events']}) e LEFT JOIN sources s ON s.src_ip = e.src_ip")
