"""Geo and ASN enrichment of telescope sources: country, latitude/longitude, AS number and name.

Offline by construction: the default data is pinned npm packages converted at build time, and a
user's MaxMind-format files are read locally; no lookup ever opens a socket.
"""

from iotscope.enrich.config import EnrichConfig
from iotscope.enrich.enricher import Enricher
from iotscope.enrich.errors import EnrichDataError
from iotscope.enrich.lookup import RESULT_SCHEMA
from iotscope.enrich.source import SOURCES_METADATA_KEY, EnrichmentSource, sources_from_json

__all__ = [
    "RESULT_SCHEMA",
    "SOURCES_METADATA_KEY",
    "EnrichConfig",
    "EnrichDataError",
    "Enricher",
    "EnrichmentSource",
    "sources_from_json",
]
