"""The enrich stage's user-facing error: its data (a configured .mmdb, the built default) is unusable."""

from __future__ import annotations

from iotscope.errors import IotscopeError


class EnrichDataError(IotscopeError):
    """An enrichment data file is missing, unreadable or malformed; the message names the file."""
