"""Finding committed Parquet files that are missing or unreadable, and the captures they break.

A file deleted by hand, a disk error or a copy cut short leaves the catalog naming a file that
cannot be read, and every reader of the store then fails. ``iotscope store check`` lists such
captures; ``--repair`` drops them from the catalog (with their remaining files) so that ingesting
the capture again restores it exactly once. A capture that grew since an earlier ingest is stored
as that ingest plus the records appended since (see ``iotscope.telescope.ingest``); dropping a
capture therefore also drops the later ingests of the same path, which were stored relative to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from iotscope.store.packets import PacketStore
from iotscope.store.schema import PACKET_SCHEMA
from iotscope.store.state import IngestedFile


@dataclass(frozen=True)
class DamagedCapture:
    """A committed capture whose files cannot be read back as the catalog describes them."""

    capture: IngestedFile
    problems: tuple[str, ...]  # one line each, naming the file


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
            path = store.root / name
            if not path.is_file():
                problems.append(f"{path}: missing")
                continue
            try:
                rows += _read_rows(path, thorough)
            except (OSError, pa.ArrowException) as exc:
                problems.append(f"{path}: unreadable ({str(exc).splitlines()[0]})")
        if not problems and rows != capture.packets:
            problems.append(f"{capture.source}: its files hold {rows:,} rows, the catalog says {capture.packets:,}")
        if problems:
            damaged.append(DamagedCapture(capture, tuple(problems)))
    return damaged


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


def _read_rows(path: object, thorough: bool) -> int:
    with pq.ParquetFile(path) as parquet:
        if parquet.schema_arrow.names != PACKET_SCHEMA.names:
            raise OSError(f"columns {parquet.schema_arrow.names} are not the packets schema")
        if not thorough:
            return parquet.metadata.num_rows
        return sum(parquet.read_row_group(i).num_rows for i in range(parquet.num_row_groups))
