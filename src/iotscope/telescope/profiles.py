"""Per-source profiles (GreyNoise-like): one row per source address over the whole store.

Merged from the hourly partial aggregates (``source_hours``: ``iotscope.telescope.source_merge``), then
enriched once (country, AS, location: ``iotscope.enrich``, one vectorized lookup of every IPv4
source) and classified:

* ``benign``: the address lies in a network a research scanner publishes
  (``iotscope.telescope.scanners``); its organisation is in ``scanner_org``. This wins over a
  fingerprint: research scanners emulate Mirai's SYNs to measure it.
* ``malicious``: at least one of its packets carries Mirai's fingerprint (``seq == dst``). The
  issue also names credential-scanning sources; a darknet cannot see those: it answers no SYN, so
  no handshake completes and no login is ever attempted against it. Scanning login ports (Telnet,
  SSH) is shown as the tags ``iot`` / ``remote_login``, not as malicious.
* ``unknown`` otherwise.

``ports`` holds the ``source_merge.TOP_PORTS`` destination ports it scanned most (by packets, both protocols;
backscatter has no target port), ``distinct_ports`` counts every distinct (protocol, port).
``tags``: its tools, the target categories of its scans, ``dos_victim`` when it sent backscatter
and ``research_scanner`` when benign.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.enrich import Enricher
from iotscope.store.datasets import address_text
from iotscope.store.summaries import SOURCES
from iotscope.telescope.scanners import ResearchScanners

CLASSIFICATIONS = ("benign", "malicious", "unknown")


def profile_sources(merged: pa.Table, enricher: Enricher | None, scanners: ResearchScanners) -> pa.Table:
    """The ``sources`` dataset: ``merged`` (:func:`~iotscope.telescope.source_merge.merge_source_hours`)
    enriched and classified (array code)."""
    n = merged.num_rows
    src = merged["src"].combine_chunks()
    src6 = merged["src6"].combine_chunks()
    if enricher is not None and n:
        geo = enricher.lookup_ipv4(src)
        country = _decoded(geo["country"])
        as_name = _decoded(geo["as_name"])
        asn, lat, lon = (geo[c].combine_chunks() for c in ("asn", "lat", "lon"))
    else:
        country = as_name = pa.nulls(n, pa.string())
        asn, lat, lon = pa.nulls(n, pa.uint32()), pa.nulls(n, pa.float32()), pa.nulls(n, pa.float32())
    is_v4 = src.is_valid().to_numpy(zero_copy_only=False)
    codes = np.where(is_v4, scanners.codes_v4(src.fill_null(0).to_numpy(zero_copy_only=False)),
                     scanners.codes_v6(src6)).astype(np.int16)
    benign = codes >= 0
    mirai = _has(merged["tools"], "mirai")
    classification = np.where(benign, "benign", np.where(mirai, "malicious", "unknown")).astype(object)
    tags = _tags(merged, benign)
    return pa.table({
        "src": src, "src6": src6, "src_ip": address_text(src, src6),
        **{c: merged[c] for c in ("first_ts", "last_ts", "packets", "scan_packets", "backscatter_packets",
                                  "distinct_ports", "ports", "tools")},
        "tags": tags, "country": country, "asn": asn, "as_name": as_name, "lat": lat, "lon": lon,
        "scanner_org": scanners.names(codes), "classification": pa.array(classification, pa.string()),
    }).cast(SOURCES.schema)


def _decoded(column: pa.ChunkedArray) -> pa.Array:
    array = column.combine_chunks()
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _has(lists: pa.ChunkedArray, value: str) -> np.ndarray:
    """Per row, whether the list column holds ``value`` (vectorized over the flattened lists)."""
    array = lists.combine_chunks()
    flat = pc.equal(array.flatten(), value).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
    out = np.zeros(len(array), dtype=bool)
    out[parents[flat]] = True
    return out


def _tags(merged: pa.Table, benign: np.ndarray) -> pa.Array:
    """tools + categories + ``dos_victim`` + ``research_scanner``, per source.

    Array code: every part as (row, tag) pairs, put in row order by one stable sort (so each row's
    tags keep the parts' order), cut into lists by the per-row counts.
    """
    parts: list[tuple[np.ndarray, pa.Array]] = []
    for name in ("tools", "categories"):
        lists = merged[name].combine_chunks()
        parts.append((pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), lists.flatten().cast(pa.string())))
    for tag, rows in (("dos_victim", np.flatnonzero(merged["backscatter_packets"].to_numpy() > 0)),
                      ("research_scanner", np.flatnonzero(benign))):
        parts.append((rows, pa.array([tag], pa.string()).take(pa.array(np.zeros(len(rows), dtype=np.int64)))))
    rows = np.concatenate([r.astype(np.int64) for r, _ in parts])
    order = np.argsort(rows, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=merged.num_rows))]).astype(np.int32)
    values = pa.concat_arrays([v for _, v in parts]).take(pa.array(order))
    return pa.ListArray.from_arrays(pa.array(offsets), values)
