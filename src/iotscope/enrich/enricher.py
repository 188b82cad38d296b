"""The public face of the enrich stage: build an Enricher once, then look up columns of addresses.

``Enricher.default()`` answers from the embedded, offline default data; ``Enricher.from_mmdb``
from the user's MaxMind-format files (each one standing in for the default's geo or ASN half);
both end in one RangeTable, so ``lookup_ipv4`` is the same vectorized search for every source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from iotscope.enrich.config import EnrichConfig, default_cache_dir
from iotscope.enrich.default_data import default_data_dir
from iotscope.enrich.errors import EnrichDataError
from iotscope.enrich.lookup import lookup_ipv4
from iotscope.enrich.mmdb import cached_mmdb_table
from iotscope.enrich.ranges import RangeTable, combine
from iotscope.enrich.source import EnrichmentSource


class Enricher:
    """Geo and ASN lookups over one RangeTable; cheap to share, safe to use from several threads."""

    def __init__(self, table: RangeTable) -> None:
        self.table = table

    @property
    def sources(self) -> tuple[EnrichmentSource, ...]:
        """The data behind this enricher's answers (name, date, licence, attribution)."""
        return self.table.sources

    @classmethod
    def default(cls, data_dir: Path | None = None) -> Enricher:
        """The embedded default (DB-IP City Lite + Route Views/DB-IP ASN), memory-mapped, offline."""
        directory = Path(data_dir) if data_dir is not None else default_data_dir()
        try:
            return cls(RangeTable.load(directory))
        except (OSError, ValueError, KeyError) as exc:
            raise EnrichDataError(
                f"{directory}: embedded geo/ASN data missing or damaged ({type(exc).__name__}); run `make geo-data`"
            ) from None

    @classmethod
    def from_config(cls, config: EnrichConfig) -> Enricher:
        """The user's files where configured, the default for the half they leave out."""
        if config.city is None and config.asn is None:
            return cls.default()
        cache = config.cache_dir or default_cache_dir()
        provenance = {"licence": config.licence}
        # the user's files first: a bad one is reported even where the default is not built
        geo = cached_mmdb_table(config.city, cache, **provenance) if config.city else None
        asn = cached_mmdb_table(config.asn, cache, **provenance) if config.asn else None
        if config.city and not any(s.provides == "geo" for s in geo.sources):
            raise EnrichDataError(f"{config.city}: MaxMind DB has no country or location records")
        if config.asn and not any(s.provides == "asn" for s in asn.sources):
            raise EnrichDataError(f"{config.asn}: MaxMind DB has no AS records")
        default = cls.default().table if geo is None or asn is None else None
        return cls(combine(geo if geo is not None else default, asn if asn is not None else default))

    @classmethod
    def from_mmdb(
        cls, city: Path | str | None = None, asn: Path | str | None = None, cache_dir: Path | str | None = None
    ) -> Enricher:
        """Shorthand for ``from_config(EnrichConfig(city=..., asn=..., cache_dir=...))``."""
        return cls.from_config(EnrichConfig(city=city, asn=asn, cache_dir=cache_dir))

    def lookup_ipv4(self, addresses: np.ndarray | pa.Array | pa.ChunkedArray) -> pa.Table:
        """country, lat, lon, asn, as_name for each uint32 address (host byte order); nulls if unknown."""
        return lookup_ipv4(self.table, addresses)
