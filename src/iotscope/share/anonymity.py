"""How strong a policy's anonymization is on a given data set, and how much analysis survives it.

Released records are the packets of one policy field (``scanner``: scan traffic by source;
``dos_victim``: backscatter by victim) with the source address replaced as the policy says, and
the other columns (port, protocol, tool) as they are. Measured, all with array code:

- ``k_anonymity``: the smallest number of distinct real sources behind one released address
  (the quasi-identifier). 1 for ``raw``, ``cryptopan`` and ``hmac``: those are pseudonyms, one
  per host, linkable by design; truncation gives k >= 1 per network.
- ``sources_with_k1``: share of sources alone behind their released value (re-identifiable by
  anyone who knows the source is active, e.g. its owner).
- ``unique_in_24``: share of real sources that are the only source seen in their /24: the ones
  /24 truncation cannot hide.
- analysis preserved: packets per destination port and per tool (the category column joins these
  when the analytics views land) computed from the *released* records, compared with the real
  ones (largest absolute difference of shares); distinct sources and distinct /24s before and
  after (Crypto-PAn keeps both; truncation merges sources).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from iotscope.share.anonymize import (
    TRUNCATION_PREFIX,
    AnonymizationKey,
    CryptoPAn,
    keyed_hash,
    truncate_v4,
)
from iotscope.share.errors import ShareError
from iotscope.share.policy import Policy
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect

_TRAFFIC_CLASS = {"scanner": "scan", "dos_victim": "backscatter"}


def released_sources(src: np.ndarray, method: str, key: AnonymizationKey | None) -> np.ndarray:
    """IPv4 sources (uint32) as the method releases them, as integers (a pseudonym's index for hmac)."""
    if method == "raw":
        return src
    if method == "cryptopan":
        assert key is not None
        return CryptoPAn(key).anonymize_v4(src)
    if method in TRUNCATION_PREFIX:
        return truncate_v4(src, TRUNCATION_PREFIX[method][4])
    if method == "hmac":
        assert key is not None
        uniques, inverse = np.unique(src, return_inverse=True)
        digests = np.array([int(keyed_hash(key, str(int(u)))[:15], 16) for u in uniques], dtype=np.int64)
        return digests[inverse]
    raise ShareError(f"method {method} releases nothing to measure")


def _shares(keys: np.ndarray) -> dict[Any, float]:
    values, counts = np.unique(keys, return_counts=True)
    total = counts.sum()
    return {v.item() if hasattr(v, "item") else v: c / total for v, c in zip(values, counts, strict=True)}


def _max_share_difference(a: dict[Any, float], b: dict[Any, float]) -> float:
    return max((abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in a.keys() | b.keys()), default=0.0)


def anonymity_report(store_dir: Path, policy: Policy, key: AnonymizationKey | None, field: str = "scanner") -> dict[str, Any]:
    """The measured report of ``policy``'s method for ``field`` over the store's IPv4 packets."""
    if field not in _TRAFFIC_CLASS:
        raise ShareError(f"--field must be one of {', '.join(_TRAFFIC_CLASS)} (fields measured on packets)")
    method = policy.fields[field]
    if method == "drop":
        return {"field": field, "method": method, "released_records": 0, "note": "nothing released"}
    with PacketStore(store_dir, read_only=True) as store:
        con = connect(store)
        try:
            table = con.sql(  # the class name comes from _TRAFFIC_CLASS, never from the user
                "SELECT src, dport, proto, coalesce(CAST(tool AS VARCHAR), '') AS tool FROM packets "
                f"WHERE traffic_class = '{_TRAFFIC_CLASS[field]}' AND src IS NOT NULL").to_arrow_table()
        finally:
            con.close()
    src = table.column("src").to_numpy(zero_copy_only=False).astype(np.uint32)
    dport = table.column("dport").fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    proto = table.column("proto").to_numpy(zero_copy_only=False).astype(np.int64)
    tool = table.column("tool").to_numpy(zero_copy_only=False).astype(str)
    released = released_sources(src, method, key)

    sources, first = np.unique(src, return_index=True)
    released_of_source = released[first]
    _, class_of_source, class_sizes = np.unique(released_of_source, return_inverse=True, return_counts=True)
    k_per_source = class_sizes[class_of_source]
    nets, per_net = np.unique(sources >> 8, return_counts=True)
    alone = per_net[np.searchsorted(nets, sources >> 8)] == 1
    port_key = proto * 65536 + dport

    def analysis(src_values: np.ndarray) -> dict[str, Any]:
        # Computed from the given (real or released) records alone, the way a recipient would.
        return {"port_shares": _shares(port_key), "tool_shares": _shares(tool),
                "distinct_sources": int(np.unique(src_values).size)}

    before, after = analysis(src), analysis(released)
    prefix_preserving = method in ("raw", "cryptopan")
    return {
        "field": field,
        "method": method,
        "released_records": len(src),
        "distinct_sources": len(sources),
        "k_anonymity": int(k_per_source.min()) if len(sources) else 0,
        "median_k": float(np.median(k_per_source)) if len(sources) else 0.0,
        "sources_with_k1": float(np.mean(k_per_source == 1)) if len(sources) else 0.0,
        "unique_in_24": float(np.mean(alone)) if len(sources) else 0.0,
        "port_share_max_difference": _max_share_difference(before["port_shares"], after["port_shares"]),
        "tool_share_max_difference": _max_share_difference(before["tool_shares"], after["tool_shares"]),
        "distinct_sources_after": after["distinct_sources"],
        "distinct_24s_before": int(nets.size),
        "distinct_24s_after": int(np.unique(released >> 8).size) if prefix_preserving else None,
    }
