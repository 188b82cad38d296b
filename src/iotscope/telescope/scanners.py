"""Is a source a documented research scanner? Membership in the networks scanners publish.

A darknet sees Censys, university ZMap scans and Project Sonar next to Mirai; GreyNoise-style
profiles call the former ``benign``, and only their own published networks can say so (a ZMap
fingerprint alone is no proof: botnets use ZMap too). The list ships in
``iotscope/telescope/data/research_scanners.toml``, each entry citing the page that publishes its
ranges and the retrieval date; a user file of the same format replaces it (``path``).

File format::

    retrieved = "2026-12-01"
    [[scanner]]
    org = "Censys"
    published = "https://..."      # the page that publishes the ranges
    via = "https://..."            # optional: where the ranges were read, if not on that page
    ranges = ["162.142.125.0/24", "2602:80d:1000:b0cc:e::/80"]

Lookups are vectorized: IPv4 ranges are merged into sorted, disjoint intervals and an address
array is resolved with one ``searchsorted``; IPv6 (a handful of prefixes) is one vectorized
comparison per prefix. Ranges of two different organisations must not overlap (which would make
the answer ambiguous): :class:`ScannerListError`, like any malformed file.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.errors import IotscopeError
from iotscope.textfile import read_text_file

DEFAULT_SCANNERS = "data/research_scanners.toml"


class ScannerListError(IotscopeError, ValueError):
    """A research scanner list that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True, eq=False)
class ResearchScanners:
    """Published scanner networks: ``orgs`` (code order) and their IPv4 / IPv6 ranges.

    ``v4_first``/``v4_last`` (uint32, inclusive, sorted, disjoint) with ``v4_org`` (int16 codes);
    ``v6_first``/``v6_last`` are (n, 2) uint64 arrays (high, low halves) with ``v6_org``.
    """

    orgs: tuple[str, ...]
    v4_first: np.ndarray
    v4_last: np.ndarray
    v4_org: np.ndarray
    v6_first: np.ndarray
    v6_last: np.ndarray
    v6_org: np.ndarray
    retrieved: str
    source: str

    def codes_v4(self, addresses: np.ndarray) -> np.ndarray:
        """Org code (int16, indexing ``orgs``) per IPv4 address (uint32, host order), -1 if none."""
        addr = np.asarray(addresses, dtype=np.uint32)
        idx = np.searchsorted(self.v4_first, addr, side="right") - 1
        safe = np.maximum(idx, 0)
        hit = (idx >= 0) & (addr <= self.v4_last[safe]) if len(self.v4_first) else np.zeros(addr.shape, bool)
        return np.where(hit, self.v4_org[safe] if len(self.v4_first) else -1, -1).astype(np.int16)

    def codes_v6(self, addresses: np.ndarray | pa.Array) -> np.ndarray:
        """Org code per IPv6 address (16 bytes, network order: ``packets.src6``), -1 if none or null."""
        halves, valid = _v6_halves(addresses)
        codes = np.full(halves.shape[0], -1, dtype=np.int16)
        hi, lo = halves[:, 0], halves[:, 1]
        for (fhi, flo), (lhi, llo), org in zip(self.v6_first, self.v6_last, self.v6_org, strict=True):
            above = (hi > fhi) | ((hi == fhi) & (lo >= flo))
            below = (hi < lhi) | ((hi == lhi) & (lo <= llo))
            codes[above & below & valid] = org
        return codes

    def names(self, codes: np.ndarray) -> pa.Array:
        """Org names for codes from :meth:`codes_v4` / :meth:`codes_v6`, null where -1."""
        codes = np.asarray(codes)
        names = np.array(self.orgs + ("",), dtype=object)[np.where(codes < 0, len(self.orgs), codes)]
        return pa.array(names, pa.string(), mask=codes < 0)

    def org_v4(self, addresses: np.ndarray) -> pa.Array:
        """The organisation scanning from each IPv4 address, null for none."""
        return self.names(self.codes_v4(addresses))

    def org_v6(self, addresses: np.ndarray | pa.Array) -> pa.Array:
        """The organisation scanning from each IPv6 address, null for none."""
        return self.names(self.codes_v6(addresses))

    def arrow_v4(self) -> pa.Table:
        """``first uint32, last uint32, org string``: for a SQL range join (``src BETWEEN first AND last``)."""
        return pa.table({"first": pa.array(self.v4_first, pa.uint32()), "last": pa.array(self.v4_last, pa.uint32()),
                         "org": self.names(self.v4_org)})


def _v6_halves(addresses: np.ndarray | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) uint64 big-endian halves and validity of 16-byte addresses (Arrow binary or (n, 16) uint8)."""
    if isinstance(addresses, pa.ChunkedArray):
        addresses = addresses.combine_chunks()
    if isinstance(addresses, pa.Array):
        valid = addresses.is_valid().to_numpy(zero_copy_only=False)
        if not pa.types.is_fixed_size_binary(addresses.type):
            lengths = pc.binary_length(addresses)
            if pc.any(pc.not_equal(lengths, 16)).as_py():
                raise ScannerListError("IPv6 addresses must be 16 bytes")
        fixed = addresses.cast(pa.binary(16))  # the values side by side, 16 bytes a slot (nulls too)
        raw = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)[16 * fixed.offset:16 * (fixed.offset + len(fixed))] \
            if len(fixed) else np.empty(0, np.uint8)
    else:
        raw = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1)
        valid = np.ones(raw.shape[0] // 16, dtype=bool)
    return raw.view(">u8").reshape(-1, 2).astype(np.uint64), valid


def _read(path: Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        ref = resources.files("iotscope.telescope").joinpath(DEFAULT_SCANNERS)
        return tomllib.loads(ref.read_text(encoding="utf-8")), DEFAULT_SCANNERS
    text = read_text_file(Path(path), "scanner list", ScannerListError)
    try:
        return tomllib.loads(text), str(path)
    except tomllib.TOMLDecodeError as exc:
        raise ScannerListError(f"{path}: not valid TOML: {exc}") from None


def _merge(first: np.ndarray, last: np.ndarray, org: np.ndarray, orgs: list[str], where: str,
           fmt: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort intervals, merge those of one org that touch or overlap; refuse overlaps between orgs."""
    order = np.argsort(first, kind="stable")
    out_first: list[int] = []
    out_last: list[int] = []
    out_org: list[int] = []
    for f, la, o in zip(first[order].tolist(), last[order].tolist(), org[order].tolist(), strict=True):
        if out_first and f <= out_last[-1] + 1 and out_org[-1] == o:
            out_last[-1] = max(out_last[-1], la)
        elif out_first and f <= out_last[-1]:
            raise ScannerListError(f"{where}: {fmt(f)} of {orgs[o]} overlaps a range of {orgs[out_org[-1]]}")
        else:
            out_first.append(f)
            out_last.append(la)
            out_org.append(o)
    return np.array(out_first, dtype=object), np.array(out_last, dtype=object), np.array(out_org, dtype=np.int16)


def load_research_scanners(path: Path | None = None) -> ResearchScanners:
    """The shipped list (``path=None``) or the user's list at ``path``, which replaces it.

    Raises :class:`ScannerListError` (one line: file and entry) for an unreadable or bad file.
    """
    data, where = _read(path)
    retrieved = data.get("retrieved")
    if not isinstance(retrieved, str):
        raise ScannerListError(f"{where}: retrieved must be a date string (when the ranges were read)")
    entries = data.get("scanner", [])
    if not isinstance(entries, list):
        raise ScannerListError(f"{where}: scanner must be an array of tables ([[scanner]])")
    orgs: list[str] = []
    rows4: list[tuple[int, int, int]] = []
    rows6: list[tuple[int, int, int]] = []
    for n, entry in enumerate(entries, 1):
        org, published, ranges = entry.get("org"), entry.get("published"), entry.get("ranges")
        if not isinstance(org, str) or not org or not isinstance(published, str) or not published:
            raise ScannerListError(f"{where}: scanner #{n} needs org and published (the page publishing its ranges)")
        if not isinstance(ranges, list) or not ranges:
            raise ScannerListError(f"{where}: scanner #{n} ({org}): ranges must be a non-empty list")
        if org not in orgs:
            orgs.append(org)
        code = orgs.index(org)
        for text in ranges:
            try:
                net = ipaddress.ip_network(text, strict=True)
            except (TypeError, ValueError) as exc:
                raise ScannerListError(f"{where}: scanner #{n} ({org}): bad range {text!r}: {exc}") from None
            target = rows4 if net.version == 4 else rows6
            target.append((int(net.network_address), int(net.broadcast_address), code))

    def arrays(rows: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=object),
                np.array([r[2] for r in rows], dtype=np.int16))

    f4, l4, o4 = _merge(*arrays(rows4), orgs, where, lambda a: str(ipaddress.IPv4Address(a)))
    f6, l6, o6 = _merge(*arrays(rows6), orgs, where, lambda a: str(ipaddress.IPv6Address(a)))

    def halves(values: np.ndarray) -> np.ndarray:
        return np.array([[v >> 64, v & (2**64 - 1)] for v in values.tolist()], dtype=np.uint64).reshape(-1, 2)

    return ResearchScanners(
        orgs=tuple(orgs), v4_first=f4.astype(np.uint32), v4_last=l4.astype(np.uint32), v4_org=o4,
        v6_first=halves(f6), v6_last=halves(l6), v6_org=o6, retrieved=retrieved, source=where)


__all__ = ["DEFAULT_SCANNERS", "ResearchScanners", "ScannerListError", "load_research_scanners"]
