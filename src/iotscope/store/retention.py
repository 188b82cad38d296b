"""Retention: ``--keep 400d`` removes hour partitions older than that, and the catalog says so.

Why in the catalog: a telescope's data is evidence; when data is gone, an operator (or an auditor)
must be able to see that it was removed by policy, when, and how much, rather than wonder about a
gap. Each removed hour is a row of ``retention_log``; its files are retired in the same transaction
(so readers see the hour either whole or not at all) and deleted after the same grace period as
compacted files (``iotscope.store.compaction.delete_retired``).

The captures that filled a removed hour stay recorded in ``ingested_files``: ingesting one of them
again is "already ingested", so old data never comes back by accident.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from iotscope.errors import IotscopeError
from iotscope.store.compaction import hour_start, live_files_by_hour
from iotscope.store.packets import PacketStore

_KEEP = re.compile(r"^(\d+)([dh])$")


class RetentionError(IotscopeError):
    """``--keep`` is not a duration such as ``400d`` or ``36h``."""


def parse_keep(text: str) -> timedelta:
    """``'400d'`` -> 400 days, ``'36h'`` -> 36 hours; at least one hour."""
    match = _KEEP.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise RetentionError(f"--keep {text!r}: expected a number of days or hours, e.g. 400d or 36h")
    n, unit = int(match.group(1)), match.group(2)
    return timedelta(days=n) if unit == "d" else timedelta(hours=n)


def keep_text(keep: timedelta) -> str:
    hours = int(keep.total_seconds() // 3600)
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


def apply_retention(store: PacketStore, keep: timedelta, now: datetime | None = None) -> int:
    """Retire every hour partition that ended more than ``keep`` before ``now``; the number retired.

    Takes the store's write lock (``StoreError`` if another process writes).
    """
    now = now or datetime.now(UTC)
    store.lock_for_writing()
    removed = 0
    for hour, files in sorted(live_files_by_hour(store).items()):
        if hour_start(hour) + timedelta(hours=1) > now - keep:
            continue
        rows = sum(pq.read_metadata(store.root / f).num_rows for f in files)
        store.state.record_retention(hour, files, rows, keep_text(keep))
        removed += 1
    return removed
