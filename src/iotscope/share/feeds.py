"""Imported feeds: C&C and malware-distribution addresses and domains an operator receives, as CSV or STIX.

CSV (one indicator per row, header required; only ``value`` is mandatory)::

    value,type,role,first_seen,last_seen,sightings,source
    203.0.113.50,,c2,2016-09-01T00:00:00Z,2016-09-02T00:00:00Z,3,abuse-feed
    bad.example,domain-name,malware_distribution,,,,

``type`` is inferred when empty; ``role`` defaults to ``c2``; times default to the file's
modification time; ``sightings`` to 1; ``source`` (the feed's name, which counts as one
independent source in scoring) to the file's stem. STIX 2.1 bundles (``.json``) are read by
:func:`iotscope.share.stix.indicators_from_bundle`. A malformed row or bundle is refused with
one line naming the file and the row; nothing of the file is used then. A feed is read only if it is a
regular file of at most :data:`FEED_MAX_BYTES` (:mod:`iotscope.textfile`): a FIFO or ``/dev/zero``
given as ``--feed`` is refused at once instead of hanging or filling memory.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotscope.share.errors import ShareError
from iotscope.share.indicators import (
    ROLES,
    Indicator,
    canonical_value,
    indicator_type,
    parse_time,
)
from iotscope.share.stix import indicators_from_bundle
from iotscope.textfile import read_text_file

#: Cap for one feed or STIX bundle file: large public C&C feeds are a few MiB; every row becomes an object.
FEED_MAX_BYTES = 64 << 20


def read_csv_feed(path: Path) -> list[Indicator]:
    text = read_text_file(path, "feed", ShareError, max_bytes=FEED_MAX_BYTES)
    try:
        default_time = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError as exc:
        raise ShareError(f"{path}: cannot read feed ({exc.strerror or exc})") from None
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "value" not in reader.fieldnames:
        raise ShareError(f"{path}: a CSV feed needs a header with a 'value' column")
    out = []
    for line, row in enumerate(reader, start=2):
        where = f"{path}:{line}"
        value = (row.get("value") or "").strip()
        if not value:
            raise ShareError(f"{where}: empty value")
        try:
            inferred = indicator_type(value)
        except ShareError as exc:
            raise ShareError(f"{where}: {exc}") from None
        type_ = (row.get("type") or "").strip() or inferred
        if type_ != inferred:
            raise ShareError(f"{where}: {value!r} is not of type {type_!r}")
        role = (row.get("role") or "").strip() or "c2"
        if role not in ROLES:
            raise ShareError(f"{where}: unknown role {role!r} (use one of {', '.join(ROLES)})")
        first = parse_time(row["first_seen"], where) if (row.get("first_seen") or "").strip() else default_time
        last = parse_time(row["last_seen"], where) if (row.get("last_seen") or "").strip() else first
        try:
            sightings = int(row.get("sightings") or 1)
        except ValueError:
            raise ShareError(f"{where}: sightings must be an integer, got {row.get('sightings')!r}") from None
        if sightings < 1 or last < first:
            raise ShareError(f"{where}: sightings must be >= 1 and last_seen not before first_seen")
        out.append(Indicator(
            type=type_, value=canonical_value(type_, value), roles=frozenset({role}), sightings=sightings,
            sources=frozenset({(row.get("source") or "").strip() or path.stem}), first_seen=first, last_seen=last,
        ))
    return out


def read_feed(path: Path) -> list[Indicator]:
    """The indicators of one feed file: ``.csv`` or a STIX 2.1 bundle (``.json``/``.stix``)."""
    if path.suffix.lower() == ".csv":
        return read_csv_feed(path)
    return indicators_from_bundle(read_bundle(path, "feed"), str(path), default_source=path.stem)


def read_bundle(path: Path, what: str = "STIX bundle") -> Any:
    """The JSON document in ``path`` (a regular file of at most :data:`FEED_MAX_BYTES`), not yet validated
    as STIX; ``what`` names the file in the one-line refusal."""
    text = read_text_file(path, what, ShareError, max_bytes=FEED_MAX_BYTES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShareError(f"{path}: malformed STIX (not JSON: {exc.msg} at line {exc.lineno})") from None
