"""What the user configures for enrichment: which MaxMind-format files, and where conversions are cached."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/iotscope/enrich`` (``~/.cache/iotscope/enrich``): converted .mmdb tables."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iotscope" / "enrich"


@dataclass(frozen=True, slots=True)
class EnrichConfig:
    #: A MaxMind-format file with country/location records (GeoLite2-City or -Country, DB-IP
    #: City/Country, IPinfo); None: the embedded default answers country, lat and lon.
    city: Path | None = None
    #: A MaxMind-format file with AS records (GeoLite2-ASN, DB-IP ASN, IPinfo); None: the default.
    asn: Path | None = None
    #: Where converted .mmdb tables are kept, keyed by the file's SHA-256 (None: default_cache_dir()).
    cache_dir: Path | None = None
    #: Licence of the user's files, recorded with every result (their vendors' terms apply).
    licence: str = "see the file vendor's terms"

    def __post_init__(self) -> None:
        for name in ("city", "asn", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if not self.licence.strip():
            raise ValueError("enrich licence must not be empty")
