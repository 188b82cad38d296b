"""What a scan targets: a category (iot, pc, database, ...) per protocol and destination port.

NICTER's headline figures ("IoT 64% of scans") come from mapping each scan packet's destination
port to the kind of device or service that listens there. The map is data, not code: a TOML table
shipped in ``iotscope/telescope/data/categories.toml`` (its comments give the source of every
port), which a user file of the same format can amend or replace, because which service a port
means is a judgement (8080: a router's admin UI or a web proxy?) that differs between darknets
and years.

File format::

    replace = false          # optional; true: ignore the default table, use this file alone
    [iot]                    # a category: lower-case letters, digits, underscores
    tcp = [23, 2323]         # destination ports; protocols are tcp and udp
    udp = [1900]

Merging: a user file is applied over the default; every (protocol, port) it lists belongs to the
user's category afterwards, whatever the default said; listing a port under ``other`` removes it
from every category. Everything not listed is ``other``. Within one file a port in two categories
is an error, as is anything else malformed: :class:`CategoryError`, one line naming the file and
the entry.

Use from array code (passes): ``table.category_codes(proto, dport)`` gives int8 codes indexing
``table.names`` (a 2 x 65536 lookup table, one gather per packet). Use from SQL (views)::

    table.register(con)                      # DuckDB table ``categories(proto, port, category)``
    SELECT p.*, coalesce(c.category, 'other') AS category
    FROM packets p LEFT JOIN categories c ON c.proto = p.proto AND c.port = p.dport

Only scan traffic should get a category (a backscatter packet's dport is the spoofed source port,
not a target); the view decides that, e.g. ``CASE WHEN traffic_class = 'scan' THEN ... END``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from iotscope.errors import IotscopeError
from iotscope.ip_protocols import PROTO_TCP, PROTO_UDP, PROTOCOL_NAMES
from iotscope.store.summaries import CATEGORIES
from iotscope.textfile import read_text_file

#: Protocol names a category file may use, with their IP protocol numbers (the two that carry ports).
PROTOCOLS: dict[str, int] = {PROTOCOL_NAMES[number]: number for number in (PROTO_TCP, PROTO_UDP)}
#: The category of everything no entry names; always the last name of a table.
OTHER = "other"
#: Where the shipped default table lives (inside the package, so it works offline).
DEFAULT_CATEGORIES = "data/categories.toml"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
#: (proto, port, category): the table's Arrow schema is the store's ``categories`` file's.
_ARROW_SCHEMA = CATEGORIES.schema


class CategoryError(IotscopeError, ValueError):
    """A category table that cannot be used; the message names the file and the bad entry."""


@dataclass(frozen=True)
class CategoryTable:
    """Target categories: ``table`` lists (proto, port, category) for every categorised port.

    ``names`` are the category names in code order, ``other`` last; codes from
    :meth:`category_codes` index it. ``sources`` are the files the table was built from.
    """

    table: pa.Table
    names: tuple[str, ...]
    sources: tuple[Path, ...] = field(default=())

    @cached_property
    def _lookup(self) -> np.ndarray:
        """codes[protocol slot, port]: slot 0 = TCP, 1 = UDP, 2 = any other protocol (all ``other``)."""
        other = self.names.index(OTHER)
        lookup = np.full((3, 65536), other, dtype=np.int8)
        slot = np.where(self.table["proto"].to_numpy() == PROTOCOLS["tcp"], 0, 1)
        codes = np.array([self.names.index(c) for c in self.table["category"].to_pylist()], dtype=np.int8)
        lookup[slot, self.table["port"].to_numpy().astype(np.int64)] = codes
        return lookup

    @property
    def other_code(self) -> int:
        return len(self.names) - 1

    def category_codes(self, proto: np.ndarray | pa.Array, dport: np.ndarray | pa.Array) -> np.ndarray:
        """Category code (int8, indexing ``names``) of each packet; vectorized, no per-packet Python.

        ``proto`` is the IP protocol number, ``dport`` the destination port; a null ``dport`` (an
        Arrow array with nulls: ICMP, cut headers) and protocols other than TCP/UDP are ``other``.
        """
        proto_np = _as_numpy(proto, np.uint8)
        port_np, valid = _port_numpy(dport)
        slot = np.full(proto_np.shape[0], 2, dtype=np.int64)
        slot[proto_np == PROTOCOLS["tcp"]] = 0
        slot[proto_np == PROTOCOLS["udp"]] = 1
        slot[~valid] = 2
        return self._lookup[slot, port_np]

    def category_names(self, proto: np.ndarray | pa.Array, dport: np.ndarray | pa.Array) -> pa.DictionaryArray:
        """The categories as an Arrow dictionary column (what a dataset or view stores)."""
        codes = self.category_codes(proto, dport)
        return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(self.names, pa.string()))

    def arrow(self) -> pa.Table:
        """``proto uint8, port uint16, category string``: one row per categorised (protocol, port)."""
        return self.table

    def register(self, con: duckdb.DuckDBPyConnection, name: str = "categories") -> None:
        """Make the table queryable as ``name`` on ``con`` (join on proto and port; unmatched = other)."""
        con.register(name, self.table)


def _as_numpy(values: np.ndarray | pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_numpy(zero_copy_only=False)
    return np.asarray(values).astype(dtype, copy=False)


def _port_numpy(dport: np.ndarray | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Ports as int64 (nulls as 0) and a validity mask."""
    if isinstance(dport, pa.ChunkedArray):
        dport = dport.combine_chunks()
    if isinstance(dport, pa.Array):
        valid = dport.is_valid().to_numpy(zero_copy_only=False)
        ports = dport.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return ports, valid
    ports = np.asarray(dport).astype(np.int64)
    return ports, np.ones(ports.shape[0], dtype=bool)


def _read(path: Path | None) -> tuple[dict[str, Any], str]:
    """Parse a category file (``None``: the shipped default); return its content and its display name."""
    if path is None:
        ref = resources.files("iotscope.telescope").joinpath(DEFAULT_CATEGORIES)
        return tomllib.loads(ref.read_text(encoding="utf-8")), DEFAULT_CATEGORIES
    text = read_text_file(Path(path), "category file", CategoryError)
    try:
        return tomllib.loads(text), str(path)
    except tomllib.TOMLDecodeError as exc:
        raise CategoryError(f"{path}: not valid TOML: {exc}") from None


def _entries(data: dict[str, Any], where: str) -> tuple[bool, list[str], dict[tuple[int, int], str]]:
    """Validate one parsed file: ``(replace, category names in file order, {(proto, port): category})``."""
    replace = data.pop("replace", False)
    if not isinstance(replace, bool):
        raise CategoryError(f"{where}: replace must be true or false, got {replace!r}")
    names: list[str] = []
    assigned: dict[tuple[int, int], str] = {}
    for name, body in data.items():
        if not isinstance(body, dict):
            raise CategoryError(f"{where}: {name}: expected a [table] of protocols, got {type(body).__name__}")
        if not _NAME.match(name):
            raise CategoryError(f"{where}: [{name}]: category names are lower-case letters, digits and _ "
                                "(at most 32, starting with a letter)")
        names.append(name)
        for proto_name, ports in body.items():
            if proto_name not in PROTOCOLS:
                raise CategoryError(f"{where}: [{name}] {proto_name}: unknown protocol "
                                    f"(known: {', '.join(PROTOCOLS)})")
            if not isinstance(ports, list):
                raise CategoryError(f"{where}: [{name}] {proto_name}: expected a list of ports, got {ports!r}")
            for port in ports:
                if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                    raise CategoryError(f"{where}: [{name}] {proto_name}: port {port!r} is not in 0-65535")
                key = (PROTOCOLS[proto_name], port)
                if assigned.get(key, name) != name:
                    raise CategoryError(f"{where}: [{name}] {proto_name} port {port} is already in "
                                        f"[{assigned[key]}]; a port belongs to one category")
                assigned[key] = name
    return replace, names, assigned


def load_categories(path: Path | None = None) -> CategoryTable:
    """The shipped default table, amended (or replaced, ``replace = true``) by the user file ``path``.

    Raises :class:`CategoryError` (one line: file and entry) for an unreadable or malformed file.
    """
    default_data, default_where = _read(None)
    _, names, assigned = _entries(default_data, default_where)
    sources: tuple[Path, ...] = ()
    if path is not None:
        user_data, user_where = _read(path)
        replace, user_names, user_assigned = _entries(user_data, user_where)
        if replace:
            names, assigned = [], {}
        names += [n for n in user_names if n not in names]
        assigned.update(user_assigned)
        sources = (Path(path),)
    names = [n for n in names if n != OTHER] + [OTHER]
    rows = sorted((proto, port, cat) for (proto, port), cat in assigned.items() if cat != OTHER)
    table = pa.table({
        "proto": pa.array([r[0] for r in rows], pa.uint8()),
        "port": pa.array([r[1] for r in rows], pa.uint16()),
        "category": pa.array([r[2] for r in rows], pa.string()),
    }, schema=_ARROW_SCHEMA)
    return CategoryTable(table=table, names=tuple(names), sources=sources)


__all__ = ["DEFAULT_CATEGORIES", "OTHER", "PROTOCOLS", "CategoryError", "CategoryTable", "load_categories"]
