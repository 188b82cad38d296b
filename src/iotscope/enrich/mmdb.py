"""Converting a MaxMind-format ``.mmdb`` file (GeoLite2, DB-IP, IPinfo, ip-location-db) into a RangeTable.

The mmdb tree answers one address at a time; walking it once and writing its networks as sorted
ranges lets the same vectorized search serve a user's file and the embedded default. The walk
takes tens of seconds for a city-level file, so its result is cached on disk under the file's
SHA-256: a changed file is converted again, an unchanged one (even renamed) is not.
"""

from __future__ import annotations

import hashlib
from array import array
from datetime import UTC, datetime
from pathlib import Path

import maxminddb
import numpy as np

from iotscope.enrich import records
from iotscope.enrich.errors import EnrichDataError
from iotscope.enrich.ranges import RangeTable, StringDictionary, from_intervals
from iotscope.enrich.source import EnrichmentSource

#: Errors the maxminddb reader raises on a malformed file, at open or while walking the tree.
_MALFORMED = (maxminddb.InvalidDatabaseError, OSError, ValueError, TypeError, KeyError, IndexError, RuntimeError)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (the cache key of its converted table)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def convert_mmdb(
    path: Path, *, licence: str = "unknown", attribution: str = "", origin: str = "", name: str = ""
) -> RangeTable:
    """Walk every IPv4 network of ``path`` into a RangeTable with the columns its records carry.

    Raises EnrichDataError (one line naming the file) if the file cannot be read or is not a
    valid MaxMind DB. IPv6 networks are skipped (the lookup path is IPv4; see the stage docs).
    """
    path = Path(path)
    try:
        sha256 = file_sha256(path)
        with maxminddb.open_database(str(path)) as reader:
            meta = reader.metadata()
            columns = _walk(reader)
    except EnrichDataError:
        raise
    except _MALFORMED as exc:
        raise EnrichDataError(f"{path}: not a readable MaxMind DB file ({_one_line(exc)})") from None
    starts, ends, geo, asn, countries, as_names = columns
    description = meta.description.get("en") if isinstance(meta.description, dict) else None
    name = name or description or meta.database_type or path.name
    date = datetime.fromtimestamp(meta.build_epoch, UTC).date().isoformat()
    common = {
        "name": name,
        "date": date,
        "licence": licence,
        "origin": origin or str(path),
        "attribution": attribution,
        "sha256": sha256,
    }
    sources = []
    if geo[3]:
        sources.append(EnrichmentSource(provides="geo", **common))
    if asn[2]:
        sources.append(EnrichmentSource(provides="asn", **common))
    if not sources:
        raise EnrichDataError(f"{path}: MaxMind DB has no IPv4 country, location or AS data")
    try:
        return from_intervals(
            np.frombuffer(starts, np.uint32),
            np.frombuffer(ends, np.uint32),
            {
                "country": np.frombuffer(geo[0], np.int16),
                "lat": np.frombuffer(geo[1], np.float32),
                "lon": np.frombuffer(geo[2], np.float32),
                "asn": np.frombuffer(asn[0], np.uint32),
                "as_name": np.frombuffer(asn[1], np.int32),
            },
            countries=countries.values,
            as_names=as_names.values,
            sources=tuple(sources),
        )
    except ValueError as exc:
        raise EnrichDataError(f"{path}: MaxMind DB tree is inconsistent ({_one_line(exc)})") from None


def _walk(reader) -> tuple:
    """The IPv4 networks of an open reader as compact arrays (a build step, once per file)."""
    starts, ends = array("I"), array("I")
    country, lat, lon = array("h"), array("f"), array("f")
    asn, as_name = array("I"), array("i")
    countries, as_names = StringDictionary(), StringDictionary()
    has_geo = has_asn = False
    nan = float("nan")
    for network, record in reader:
        if network.version != 4:
            continue
        starts.append(int(network.network_address))
        ends.append(int(network.broadcast_address))
        code = records.country_code(record)
        where = records.location(record)
        system = records.autonomous_system(record)
        country.append(countries.code(code))
        lat.append(where[0] if where else nan)
        lon.append(where[1] if where else nan)
        asn.append(system[0] if system else 0)
        as_name.append(as_names.code(system[1]) if system else -1)
        has_geo = has_geo or code is not None or where is not None
        has_asn = has_asn or system is not None
    return starts, ends, (country, lat, lon, has_geo), (asn, as_name, has_asn), countries, as_names


def cached_mmdb_table(path: Path, cache_dir: Path, **provenance: str) -> RangeTable:
    """The RangeTable of ``path``, converted once and then loaded from ``cache_dir/mmdb-<sha256>``."""
    path = Path(path)
    if not path.is_file():
        raise EnrichDataError(f"{path}: no such MaxMind DB file")
    try:
        sha256 = file_sha256(path)
    except OSError as exc:
        raise EnrichDataError(f"{path}: cannot read ({_one_line(exc)})") from None
    target = Path(cache_dir) / f"mmdb-{sha256}"
    if target.is_dir():
        try:
            return RangeTable.load(target)
        except (OSError, ValueError, KeyError):
            pass  # a cache entry from another format version or a damaged one: rebuild it
    table = convert_mmdb(path, **provenance)
    try:
        table.save(target)
    except OSError:
        pass  # a read-only cache only costs the conversion next time
    return table
