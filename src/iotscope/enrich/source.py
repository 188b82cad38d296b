"""Where an enrichment answer comes from: the data's name, date and licence travel with every result.

Geolocation and routing data go stale and carry attribution duties (DB-IP's and Route Views'
CC BY 4.0 ask for credit), so a country or ASN without its source and date cannot be judged or
redistributed correctly. Every lookup result carries the :class:`EnrichmentSource` records of the
data that produced it, in the Arrow schema's metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

#: Key of the Arrow schema metadata entry holding the JSON list of sources of a lookup result.
SOURCES_METADATA_KEY = b"iotscope.enrich.sources"


@dataclass(frozen=True, slots=True)
class EnrichmentSource:
    """One data set behind an enrichment column."""

    #: What the data is, e.g. "DB-IP IP to City Lite".
    name: str
    #: Which columns it fills: "geo" (country, lat, lon) or "asn" (asn, as_name).
    provides: str
    #: Date of the data (ISO 8601 day), from the package version or the mmdb's build epoch.
    date: str
    #: Licence of the data, e.g. "CC BY 4.0"; "unknown" for a user's file that does not say.
    licence: str
    #: Where it was read from (a package name and version, or a file path) and the attribution owed.
    origin: str
    attribution: str = ""
    #: SHA-256 of the file converted, so a result can be traced to the exact bytes.
    sha256: str = ""

    def __post_init__(self) -> None:
        if self.provides not in ("geo", "asn"):
            raise ValueError(f"enrichment source provides 'geo' or 'asn', not {self.provides!r}")

    @classmethod
    def from_dict(cls, data: dict) -> EnrichmentSource:
        return cls(**data)


def sources_to_json(sources: tuple[EnrichmentSource, ...]) -> bytes:
    """The sources as the JSON bytes stored in a result's schema metadata."""
    return json.dumps([asdict(s) for s in sources], sort_keys=True).encode()


def sources_from_json(raw: bytes | str) -> tuple[EnrichmentSource, ...]:
    """Inverse of :func:`sources_to_json` (for readers of a result table)."""
    return tuple(EnrichmentSource.from_dict(d) for d in json.loads(raw))
