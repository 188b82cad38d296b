"""Compaction: many small Parquet files of one hour -> one file, swapped in atomically for readers.

Why: a sensor commits a capture file a minute, each adding a Parquet file to its hour; after months
a query would open hundreds of thousands of small files (one footer read each) and stay slow.
Compaction rewrites the files of every finished hour into one (row groups of a million rows), and
keeps queries as fast as for a single big ingest.

Why readers never see a gap or a double: the new file is written in ``.staging/``, moved into the
hour's directory (not yet part of the dataset: a crash now leaves a file the next open deletes),
then one SQLite transaction adds it to the catalog and retires the files it replaces
(``StoreState.record_compaction``). A reader lists the live files in one statement, so it gets
either the old files or the new one. Retired files stay on disk for ``RETIRED_GRACE_SECONDS``, so
a query that listed them just before the swap still reads them; :func:`delete_retired` then removes
them, and nothing else does (a writer opening the store keeps them: a reader may still hold them).

Rows are copied batch by batch (Arrow, never per row); memory is bounded by one row group.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from iotscope.store.durable import move_into_place
from iotscope.store.packets import PacketStore, packet_file_writer, partition_of

#: Rows per row group of a compacted file: large, since the file is read many times and written once.
COMPACT_ROW_GROUP_ROWS = 1 << 20
#: How long a retired file stays on disk for readers that listed it before it was retired.
RETIRED_GRACE_SECONDS = 600.0


def partition_label(relative: str) -> str | None:
    """``'packets/date=2026-12-01/hour=05/x.parquet'`` -> ``'2026-12-01 05'``, the hour as the
    catalog's ``compacted_files`` and ``retention_log`` name it (None if not a partition)."""
    partition = partition_of(relative)
    return None if partition is None else " ".join(partition)


def hour_start(hour: str) -> datetime:
    return datetime.strptime(hour, "%Y-%m-%d %H").replace(tzinfo=UTC)


def live_files_by_hour(store: PacketStore) -> dict[str, list[str]]:
    """The dataset's live files grouped by their hour partition."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for relative in store.state.live_files():
        hour = partition_label(relative)
        if hour is not None:
            grouped[hour].append(relative)
    return dict(grouped)


def compact_hours(store: PacketStore, before: datetime, min_files: int = 2) -> int:
    """Compact every hour that ended before ``before`` and has at least ``min_files`` files.

    Returns the number of hours compacted. Takes the store's write lock (``StoreError`` if another
    process writes). Idempotent: a compacted hour has one file and is left alone.
    """
    store.lock_for_writing()
    done = 0
    for hour, files in sorted(live_files_by_hour(store).items()):
        if len(files) < min_files or hour_start(hour) + timedelta(hours=1) > before:
            continue
        compact_hour(store, hour, files)
        done += 1
    return done


def compact_hour(store: PacketStore, hour: str, files: list[str]) -> str:
    """Rewrite ``files`` (all of partition ``hour``) as one file and swap it in; its relative path."""
    return replace_hour_files(store, hour, [store.root / f for f in files], files)


def replace_hour_files(store: PacketStore, hour: str, sources: list[Path], replaced: list[str]) -> str:
    """Write the Parquet files ``sources`` (rows of partition ``hour`` only) as one file of that
    partition, and swap it in for the live files ``replaced`` in one catalog transaction (compaction;
    also ``store check --repair``, which rebuilds a damaged hour from its captures). Its relative path."""
    digest = xxhash.xxh3_128("\n".join(sorted(replaced)).encode()).hexdigest()
    relative = Path(replaced[0]).parent / f"compact-{digest}.parquet"
    staged = store.root / ".staging" / f"compact-{digest}" / relative.name
    rows = _concatenate(sources, staged)
    move_into_place(staged, store.root / relative)
    shutil.rmtree(staged.parent, ignore_errors=True)
    store.state.record_compaction(str(relative), hour, rows, replaced)
    return str(relative)


def _concatenate(sources: list[Path], target: Path) -> int:
    schema = pq.read_schema(sources[0])
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with packet_file_writer(target, schema) as writer:
        for source in sources:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=1 << 16):
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= COMPACT_ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=COMPACT_ROW_GROUP_ROWS)
                    rows += pending_rows
                    pending, pending_rows = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=COMPACT_ROW_GROUP_ROWS)
            rows += pending_rows
    return rows


def delete_retired(store: PacketStore, grace_seconds: float = RETIRED_GRACE_SECONDS,
                   now: datetime | None = None) -> int:
    """Delete files retired (by compaction or retention) more than ``grace_seconds`` ago, and the
    partition directories they leave empty. Returns how many files were deleted."""
    now = now or datetime.now(UTC)
    cutoff = (now - timedelta(seconds=grace_seconds)).isoformat(timespec="microseconds")
    paths = store.state.retired_not_deleted(cutoff)
    if not paths:
        return 0
    store.lock_for_writing()
    for relative in paths:
        path = store.root / relative
        path.unlink(missing_ok=True)
        for directory in (path.parent, path.parent.parent):  # hour=HH, then date=YYYY-MM-DD
            try:
                os.rmdir(directory)
            except OSError:
                break  # not empty (or gone): leave it
    store.state.mark_deleted(paths)
    return len(paths)
