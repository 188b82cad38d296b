"""The analysis datasets (``events``, ``attacks``, ``port_series``): schemas, layout, catalog, views.

The telescope's passes (``iotscope.telescope.passes``) compute these from ``packets``; the store
owns what they write, exactly as it owns ``packets``: the Arrow schema and format version of each
dataset, where its files go, which files are committed, and the DuckDB views over them.

Layout, next to ``packets/``::

    analysis/<dataset>/date=YYYY-MM-DD/hour=HH/<run>.parquet      rows a pass emitted for that hour
    analysis/_state/<pass>/<table>/date=YYYY-MM-DD/hour=HH/<run>.parquet
                                                                   the pass's carried state after that hour
    analysis/.staging/                                             files being written; never read

Why it is crash-safe: the table ``analysed_hours`` of ``state.sqlite`` holds one row per analysed
hour naming its files (rows and state snapshots). The runner writes an hour's files into staging,
moves them into place durably, then commits the hour's row; views read only files that a row names,
and the next analysis deletes every other file. Re-analysing from hour H (late data) first deletes
the rows of H and later in one statement, so a crash half-way leaves "not analysed", never "mixed".
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from iotscope.store.state import StoreError, open_read_only

ANALYSIS_DIR = "analysis"
#: The catalog setting naming the committed whole-store results (see ``iotscope.store.summaries``).
SUMMARIES_KEY = "summaries"
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class DatasetSpec:
    """One analysis dataset: its name (also its view's), Arrow schema and format version.

    ``version`` is bumped whenever the schema or the meaning of a column changes; a stored hour
    analysed with another version is re-analysed, not guessed at.
    """

    name: str
    schema: pa.Schema
    version: int


EVENTS = DatasetSpec("events", pa.schema([
    pa.field("src", pa.uint32()),  # IPv4 source (host byte order); null for IPv6
    pa.field("src6", pa.binary(16)),  # IPv6 source; null for IPv4
    pa.field("src_ip", pa.string(), nullable=False),  # the source as text, "192.0.2.1" / "2001:db8::1"
    pa.field("proto", pa.uint8(), nullable=False),
    pa.field("dport", pa.uint16()),  # null for ICMP and cut transport headers
    pa.field("traffic_class", pa.string(), nullable=False),
    pa.field("first_ts", _TS, nullable=False),
    pa.field("last_ts", _TS, nullable=False),
    pa.field("packets", pa.int64(), nullable=False),
    pa.field("destinations", pa.int64(), nullable=False),
    pa.field("dst_24s", pa.int64()),  # distinct destination /24s; null for IPv6
    pa.field("tool", pa.string()),  # the most frequent tool fingerprint of its packets; null: no tool
]), version=1)

ATTACKS = DatasetSpec("attacks", pa.schema([
    pa.field("victim", pa.uint32()),  # the backscatter's IPv4 source; null for IPv6
    pa.field("victim6", pa.binary(16)),
    pa.field("victim_ip", pa.string(), nullable=False),
    pa.field("proto", pa.uint8(), nullable=False),
    pa.field("first_ts", _TS, nullable=False),
    pa.field("last_ts", _TS, nullable=False),
    pa.field("packets", pa.int64(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("victim_ports", pa.list_(pa.uint16()), nullable=False),  # source ports of its TCP/UDP backscatter
    pa.field("peak_window_packets", pa.int64(), nullable=False),  # most packets in one rate window
    pa.field("window_s", pa.int32(), nullable=False),  # length of that window
]), version=1)

PORT_SERIES = DatasetSpec("port_series", pa.schema([
    pa.field("proto", pa.uint8(), nullable=False),
    pa.field("port", pa.uint16(), nullable=False),
    pa.field("bucket", _TS, nullable=False),  # start of the bucket
    pa.field("bucket_s", pa.int32(), nullable=False),
    pa.field("packets", pa.int64(), nullable=False),
    pa.field("sources", pa.int64(), nullable=False),
]), version=1)

#: Per hour, one row per (source, protocol, destination port, traffic class): the partial aggregates
#: the ``sources`` profiles are merged from (backscatter rows have a null port: theirs is spoofed).
SOURCE_HOURS = DatasetSpec("source_hours", pa.schema([
    pa.field("src", pa.uint32()),
    pa.field("src6", pa.binary(16)),
    pa.field("proto", pa.uint8(), nullable=False),
    pa.field("dport", pa.uint16()),
    pa.field("traffic_class", pa.string(), nullable=False),
    pa.field("first_ts", _TS, nullable=False),
    pa.field("last_ts", _TS, nullable=False),
    pa.field("packets", pa.int64(), nullable=False),
    pa.field("mirai", pa.int64(), nullable=False),  # packets with each tool fingerprint
    pa.field("zmap", pa.int64(), nullable=False),
    pa.field("masscan", pa.int64(), nullable=False),
]), version=1)

#: Every analysis dataset the store knows, by name.
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (EVENTS, ATTACKS, PORT_SERIES, SOURCE_HOURS)}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analysed_hours (
    hour        INTEGER PRIMARY KEY,  -- hours since the epoch (UTC)
    fingerprint TEXT NOT NULL,        -- of the committed packet files of that hour
    config      TEXT NOT NULL,        -- the passes, their dataset versions and settings
    files       TEXT NOT NULL,        -- JSON: {"rows": {dataset: path}, "state": {pass: {table: path}}}
    analysed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS analysis_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL               -- JSON
);
"""


@dataclass(frozen=True)
class AnalysedHour:
    """One committed hour of analysis: what it was computed from and the files it produced."""

    hour: int
    fingerprint: str
    config: str
    rows: dict[str, str]  # dataset name -> path relative to the store root
    state: dict[str, dict[str, str]]  # pass name -> state table name -> path


class AnalysisCatalog:
    """The analysis tables of ``state.sqlite``, through a connection of its own (analysis runs after ingest commits)."""

    def __init__(self, root: Path, read_only: bool = False) -> None:
        self.root = Path(root)
        path = self.root / "state.sqlite"
        try:
            if read_only:
                self._db = open_read_only(path)
            else:
                self._db = sqlite3.connect(path, isolation_level=None)
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
            self._has_tables = bool(self._db.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'analysed_hours'").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable store state file ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def hours(self) -> dict[int, AnalysedHour]:
        if not self._has_tables:
            return {}
        rows = self._db.execute("SELECT hour, fingerprint, config, files FROM analysed_hours ORDER BY hour").fetchall()
        out = {}
        for hour, fingerprint, config, files in rows:
            parsed = json.loads(files)
            out[hour] = AnalysedHour(hour, fingerprint, config, parsed["rows"], parsed["state"])
        return out

    def forget_from(self, hour: int) -> None:
        """Drop the analysis of ``hour`` and every later hour (one statement: all or nothing)."""
        self._db.execute("DELETE FROM analysed_hours WHERE hour >= ?", (hour,))

    def commit_hour(self, entry: AnalysedHour) -> None:
        """From this statement on, the hour's files are part of the analysis datasets."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        files = json.dumps({"rows": entry.rows, "state": entry.state}, sort_keys=True)
        self._db.execute("INSERT OR REPLACE INTO analysed_hours VALUES (?, ?, ?, ?, ?)",
                         (entry.hour, entry.fingerprint, entry.config, files, now))

    def setting(self, key: str) -> object | None:
        if not self._has_tables:
            return None
        row = self._db.execute("SELECT value FROM analysis_settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_setting(self, key: str, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO analysis_settings VALUES (?, ?)", (key, json.dumps(value)))


@contextmanager
def analysis_lock(root: Path) -> Iterator[None]:
    """Hold the store's analysis lock: one analysis at a time (ingest holds a lock of its own).

    An analysis reads only committed packet files and records which, so an ingest running
    alongside it is safe: what it adds is seen as changed hours by the next analysis.
    """
    fd = os.open(Path(root) / ".analyze.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{root}: another analysis is running on this store; try again when it ends") from None
        yield
    finally:
        os.close(fd)


def staging_dir(root: Path) -> Path:
    return Path(root) / ANALYSIS_DIR / ".staging"


def remove_uncommitted(root: Path, catalog: AnalysisCatalog) -> None:
    """Delete what a killed or superseded analysis left: staging and files no committed hour names.

    Call only while holding :func:`analysis_lock`.
    """
    shutil.rmtree(staging_dir(root), ignore_errors=True)
    named = set()
    summaries = catalog.setting(SUMMARIES_KEY)
    if isinstance(summaries, dict):
        named.update(e["path"] for e in summaries.values() if isinstance(e, dict) and "path" in e)
    for entry in catalog.hours().values():
        named.update(entry.rows.values())
        for tables in entry.state.values():
            named.update(tables.values())
    base = Path(root) / ANALYSIS_DIR
    for path in base.rglob("*.parquet"):
        if str(path.relative_to(root)) not in named:
            path.unlink()


def hour_path(hour: int, run: str) -> Path:
    """``date=YYYY-MM-DD/hour=HH/<run>.parquet`` for an hour since the epoch."""
    stamp = datetime.fromtimestamp(hour * 3600, tz=UTC)
    return Path(f"date={stamp:%Y-%m-%d}") / f"hour={stamp:%H}" / f"{run}.parquet"


def rows_path(dataset: str, hour: int, run: str) -> Path:
    return Path(ANALYSIS_DIR) / dataset / hour_path(hour, run)


def state_path(pass_name: str, table: str, hour: int, run: str) -> Path:
    return Path(ANALYSIS_DIR) / "_state" / pass_name / table / hour_path(hour, run)


def address_text(v4: pa.Array, v6: pa.Array) -> pa.Array:
    """Dotted-quad text of IPv4 integers, canonical text of IPv6 bytes (one column, never null).

    IPv4 is array code; IPv6 text comes from :mod:`ipaddress` once per distinct address of the
    (small) result tables this runs on, never per packet.
    """
    import ipaddress

    import numpy as np
    import pyarrow.compute as pc

    n = len(v4)
    if n == 0:
        return pa.array([], pa.string())
    ints = pc.fill_null(v4.cast(pa.int64()), 0)
    octets = [pc.cast(pc.bit_wise_and(pc.shift_right(ints, s), 255), pa.string()) for s in (24, 16, 8, 0)]
    dotted = pc.binary_join_element_wise(*octets, ".")
    if v6.null_count == n:
        return dotted
    values = v6.to_pylist()
    texts = {b: str(ipaddress.IPv6Address(b)) for b in set(values) if b is not None}
    six = pa.array([texts.get(b) for b in values], pa.string()) if texts else pa.nulls(n, pa.string())
    return pc.if_else(pa.array(np.asarray(v4.is_valid())), dotted, six)


def with_address_text(table: pa.Table, v4: str, v6: str, text: str, schema: pa.Schema) -> pa.Table:
    """``table`` with the column ``text`` (see :func:`address_text`) added, conformed to ``schema``."""
    column = address_text(table.column(v4).combine_chunks(), table.column(v6).combine_chunks())
    return conform(table.append_column(text, column), schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s columns in ``schema``'s order and types (timestamps may come as µs integers)."""
    arrays = []
    for field in schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type) and pa.types.is_integer(column.type):
            column = column.cast(pa.int64()).cast(field.type)
        arrays.append(column.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class ViewSnapshot:
    """What the analysis views read, taken from the catalog once: a query connection allows
    exactly these files (``allowed_paths``) and builds its views from the same snapshot, so an
    analysis committing meanwhile cannot make the two disagree."""

    root: Path
    hours: dict[int, AnalysedHour]
    darknet: object
    #: The committed whole-store results: {name: {"path", "inputs", "meta", "version"}}.
    summaries: dict = dataclass_field(default_factory=dict)

    def rows_files(self, name: str) -> list[str]:
        return [str(self.root / e.rows[name]) for e in self.hours.values() if name in e.rows]

    def open_file(self, name: str) -> str | None:
        """The newest hour's file of still-open rows of dataset ``name`` (events, attacks), if any."""
        if not self.hours or name not in _OPEN_STATE:
            return None
        path = self.hours[max(self.hours)].state.get(_OPEN_STATE[name], {}).get("open")
        return str(self.root / path) if path else None

    def summary_file(self, name: str) -> str | None:
        """The committed file of the whole-store result ``name`` (alerts, sources, categories), if any."""
        entry = self.summaries.get(name)
        return str(self.root / entry["path"]) if isinstance(entry, dict) and "path" in entry else None

    def files(self) -> list[str]:
        """Every file the views read."""
        out = [f for name in DATASETS for f in self.rows_files(name)]
        out += [f for name in self.summaries if (f := self.summary_file(name))]
        return out + [f for name in DATASETS if (f := self.open_file(name))]


def view_snapshot(root: Path) -> ViewSnapshot:
    """The catalog's committed analysis hours and settings, read-only (paths absolute, as
    ``allowed_paths`` compares them)."""
    root = Path(root).resolve()
    if not (root / "state.sqlite").is_file():
        return ViewSnapshot(root, {}, None)
    catalog = AnalysisCatalog(root, read_only=True)
    try:
        summaries = catalog.setting(SUMMARIES_KEY)
        return ViewSnapshot(root, catalog.hours(), catalog.setting("darknet"),
                            summaries if isinstance(summaries, dict) else {})
    finally:
        catalog.close()


def create_views(con: duckdb.DuckDBPyConnection, snapshot: ViewSnapshot) -> dict[str, str]:
    """Views ``events``, ``attacks``, ``port_series`` over the committed analysis files.

    ``events`` and ``attacks`` add a boolean ``open``: rows of the newest analysed hour's carried
    state (an event whose source may still send, an attack still going on) are shown with
    ``open = true`` below the closed ones. ``attacks`` adds the rate columns that need the
    darknet's size (see docs/analytics.md). Returns each view's SELECT (``iotscope.store.summaries``
    builds on ``events``'s).
    """
    selects = {}
    for spec in DATASETS.values():
        closed = _scan(con, spec, snapshot.rows_files(spec.name))
        select = f"SELECT *, false AS open FROM {closed}"
        if spec.name in _OPEN_STATE:
            open_file = snapshot.open_file(spec.name)
            opened = _scan(con, spec, [open_file] if open_file else [])
            columns = ", ".join(f.name for f in spec.schema)
            select += f" UNION ALL SELECT {columns}, true AS open FROM {opened}"
        if spec is ATTACKS:
            select = _attack_rates(select, snapshot.darknet)
        con.execute(f"CREATE OR REPLACE VIEW {spec.name} AS {select}")
        selects[spec.name] = select
    return selects


#: The pass whose carried state table ``open`` holds a dataset's still-open rows.
_OPEN_STATE = {"events": "events", "attacks": "attacks"}


def _scan(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, files: list[str]) -> str:
    if files:
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        return f"read_parquet([{listing}], hive_partitioning = false, union_by_name = true)"
    return empty_relation(con, spec.schema)


def empty_relation(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> str:
    """SQL of a zero-row relation with ``schema``'s columns, typed as DuckDB reads them from Parquet.

    Why not ``con.register(name, schema.empty_table())``: a registered Arrow table is a temporary
    view of that one connection, and a view over it fails in every cursor of the connection (the
    web server's threads each query through one). Plain SQL is part of the view itself.
    """
    types = con.from_arrow(schema.empty_table()).dtypes
    columns = ", ".join(f'CAST(NULL AS {kind}) AS "{field.name}"' for field, kind in zip(schema, types, strict=True))
    return f"(SELECT {columns} LIMIT 0)"


def _attack_rates(select: str, darknet: object) -> str:
    """Add duration and the rates scaled from the darknet's share of IPv4 to the whole Internet."""
    size = (darknet or {}).get("size") if isinstance(darknet, dict) else None
    prefix = (darknet or {}).get("prefix") if isinstance(darknet, dict) else None
    scale = f"{2 ** 32} / {size}" if size else "NULL"
    prefix_sql = "'" + str(prefix).replace("'", "''") + "'" if prefix else "NULL"
    return (
        "SELECT *, (epoch_us(last_ts) - epoch_us(first_ts)) / 1e6 AS duration_s, "
        "packets / nullif((epoch_us(last_ts) - epoch_us(first_ts)) / 1e6, 0) AS observed_pps, "
        f"packets / nullif((epoch_us(last_ts) - epoch_us(first_ts)) / 1e6, 0) * {scale} AS est_attack_pps, "
        f"peak_window_packets / window_s * {scale} AS est_peak_pps, "
        f"{prefix_sql} AS darknet FROM ({select})"
    )
