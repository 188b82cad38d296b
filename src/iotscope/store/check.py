"""Finding committed Parquet files that are missing or unreadable, and the captures they break.

A file deleted by hand, a disk error or a copy cut short leaves the catalog naming a file that
cannot be read, and every reader of the store then fails. ``iotscope store check`` lists such
captures; ``--repair`` drops them from the catalog (with their remaining files) so that ingesting
the capture again restores it exactly once. A capture that grew since an earlier ingest is stored
as that ingest plus the records appended since (see ``iotscope.telescope.ingest``); dropping a
capture therefore also drops the later ingests of the same path, which were stored relative to it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from iotscope.store.compaction import partition_label
from iotscope.store.packets import PacketStore
from iotscope.store.schema import PACKET_SCHEMA
from iotscope.store.state import IngestedFile


@dataclass(frozen=True)
class DamagedCapture:
    """A committed capture whose files cannot be read back as the catalog describes them."""

    capture: IngestedFile
    problems: tuple[str, ...]  # one line each, naming the file


@dataclass(frozen=True)
class DamagedHour:
    """An hour partition with a damaged file that holds rows of several captures, or of a capture
    whose other rows were compacted: only the whole hour can be rebuilt."""

    hour: str  # 'YYYY-MM-DD HH', as the catalog names partitions
    problems: tuple[str, ...]


def find_damage(store: PacketStore, *, thorough: bool = True) -> list[DamagedCapture]:
    """Every committed capture with a missing, unreadable or wrong-sized file.

    ``thorough`` reads every row group (finds a corrupt page); otherwise only existence, the Parquet
    footer, its columns and its row count are checked, which is what readers do to name the culprit
    after a failed query.
    """
    damaged = []
    live = set(store.state.live_files())
    for capture in store.state.all_ingested():
        problems: list[str] = []
        rows = 0
        if not set(capture.files) <= live:
            continue  # compacted or past retention: its rows live in other files (see iotscope.store.compaction)
        for name in capture.files:
            found, problem = _check_file(store.root / name, thorough)
            rows += found
            if problem:
                problems.append(problem)
        if not problems and rows != capture.packets:
            problems.append(f"{capture.source}: its files hold {rows:,} rows, the catalog says {capture.packets:,}")
        if problems:
            damaged.append(DamagedCapture(capture, tuple(problems)))
    return damaged


def find_damaged_hours(store: PacketStore, *, thorough: bool = True) -> list[DamagedHour]:
    """Every hour with a missing, unreadable or wrong-sized live file that :func:`find_damage` cannot
    pin on one capture: a compacted file (its rows are checked against the catalog), or a live file
    of a capture whose other files were compacted or removed by retention."""
    live = store.state.live_files()
    live_set = set(live)
    compacted = store.state.compacted_rows()
    shared = {f for c in store.state.all_ingested() if not set(c.files) <= live_set for f in c.files}
    problems: dict[str, list[str]] = defaultdict(list)
    for name in live:
        if name not in compacted and name not in shared:
            continue
        rows, problem = _check_file(store.root / name, thorough)
        if problem is None and name in compacted and rows != compacted[name]:
            problem = f"{store.root / name}: holds {rows:,} rows, the catalog says {compacted[name]:,}"
        if problem:
            problems[partition_label(name) or name].append(problem)
    return [DamagedHour(hour, tuple(p)) for hour, p in sorted(problems.items())]


def captures_in_hour(store: PacketStore, hour: str) -> list[IngestedFile]:
    """The captures whose rows make up partition ``hour`` now: those with a file of that hour that is
    live or was compacted (retention's retired files hold rows no longer in the dataset)."""
    removed = store.state.retired_paths("retention")
    return [c for c in store.state.all_ingested()
            if any(partition_label(f) == hour and f not in removed for f in c.files)]


def missing_files(store: PacketStore, files: list[str]) -> list[str]:
    """Those of the store's ``files`` (relative paths) that do not exist (a stat each: cheap enough
    for every query)."""
    return [str(store.root / name) for name in files if not (store.root / name).is_file()]


def captures_to_drop(store: PacketStore, damaged: list[DamagedCapture]) -> list[IngestedFile]:
    """The damaged captures plus the later ingests of the same path, stored relative to them."""
    drop: dict[str, IngestedFile] = {}
    for d in damaged:
        drop[d.capture.content_hash] = d.capture
        for later in store.state.ingested_from(d.capture.source):
            if later.size > d.capture.size:
                drop[later.content_hash] = later
    return sorted(drop.values(), key=lambda c: (c.source, c.size))


def _check_file(path: Path, thorough: bool) -> tuple[int, str | None]:
    """(rows read, None) or (0, one line saying what is wrong with the file)."""
    if not path.is_file():
        return 0, f"{path}: missing"
    try:
        return _read_rows(path, thorough), None
    except (OSError, pa.ArrowException) as exc:
        return 0, f"{path}: unreadable ({str(exc).splitlines()[0]})"


def _read_rows(path: object, thorough: bool) -> int:
    with pq.ParquetFile(path) as parquet:
        if parquet.schema_arrow.names != PACKET_SCHEMA.names:
            raise OSError(f"columns {parquet.schema_arrow.names} are not the packets schema")
        if not thorough:
            return parquet.metadata.num_rows
        return sum(parquet.read_row_group(i).num_rows for i in range(parquet.num_row_groups))
