"""The ``packets/`` Parquet dataset: Hive-partitioned by hour, written atomically, never twice.

Layout of a store directory::

    packets/date=YYYY-MM-DD/hour=HH/part-<content hash of the capture>-<n>.parquet
    state.sqlite       committed captures (see ``iotscope.store.state``)
    .staging/          files being written; never read

Why it is crash-safe: an ingest writes into ``.staging/``, moves its finished files into
``packets/`` and only then commits a row in ``state.sqlite``. Readers use the committed file
list, and opening a store deletes any file in ``packets/`` that no committed row names (the
remains of a killed ingest), so a re-run after ``kill -9`` counts every packet exactly once.

An ingest holds an exclusive lock (``iotscope.store.lock``) on ``.ingest.lock`` while it writes. The clean-up on open
runs only when that lock is free, so ``stats`` or ``sql`` while an ingest runs never deletes the
ingest's work; the kernel releases the lock of a killed process, so its remains are cleaned next
time. A second concurrent ingest into the same store is refused.

Readers open the store with ``read_only=True``: nothing is created, cleaned up or locked, and
``state.sqlite`` is opened read-only, so ``stats`` and ``sql`` work on a store they cannot write.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from iotscope.store.durable import move_into_place
from iotscope.store.lock import try_lock, unlock
from iotscope.store.schema import PACKET_SCHEMA
from iotscope.store.state import IngestedFile, StoreError, StoreState

_US_PER_HOUR = 3_600_000_000
#: Rows buffered per partition before a row group is written: big enough for good compression,
#: small enough that memory stays bounded whatever the capture size.
_ROW_GROUP_ROWS = 1 << 19
_MAX_PENDING_ROWS = 2 * _ROW_GROUP_ROWS
#: Columns whose values repeat enough for dictionary pages to pay (measured: ``src`` halves in size);
#: ts, dst, seq and ip_id are near-unique in darknet traffic and are stored plain.
_DICTIONARY_COLUMNS = [
    "ip_version", "src", "proto", "sport", "dport", "icmp_type", "icmp_code", "tcp_flags", "ttl",
    "ip_len", "win", "flag_class", "traffic_class", "tool",
]
#: Parquet encoding is the most expensive step of ingest; pyarrow releases the GIL while it runs,
#: so row groups are encoded on worker threads while the caller decodes the next block.
_ENCODER_THREADS = 2


class HourObserver(Protocol):
    """Sees a capture's rows by hour as a :class:`PartitionWriter` stores them (``ingest`` analyses
    completed hours from memory while it decodes the next ones; see ``telescope.passes.ahead``).

    The calls come in the writer's order: ``rows`` for every batch of an hour, ``file`` when the
    hour's buffered rows become a file (its path relative to ``packets/``), ``moved_to`` after each
    batch with its earliest hour: the capture moved past the hours before it, whose files are named
    by then (a capture out of time order may still add to them later); ``rows_done`` when the
    capture is about to be committed: every row and file of it has been shown (its last files are
    still being encoded, the commit may yet fail).
    """

    def rows(self, hour: int, batch: pa.RecordBatch) -> None: ...

    def file(self, hour: int, relative: Path) -> None: ...

    def moved_to(self, hour: int) -> None: ...

    def rows_done(self) -> None: ...


class PacketStore:
    """A store directory: the packets dataset plus its state."""

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.root = Path(root)
        self.read_only = read_only
        self._ingest_lock: int | None = None  # file descriptor holding the flock while writing
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: exists and is not a directory")
        if read_only:
            self.state = StoreState(self.root / "state.sqlite", read_only=True)
            return
        try:
            (self.root / "packets").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.root}: cannot create store ({exc.strerror})") from None
        self.state = StoreState(self.root / "state.sqlite")
        self._recover()

    def close(self) -> None:
        if self._ingest_lock is not None:
            unlock(self._ingest_lock)
            self._ingest_lock = None
        self.state.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def committed_files(self) -> list[Path]:
        """Every Parquet file of the dataset that belongs to a committed capture."""
        return [self.root / f for f in self.state.live_files()]

    def ingested(self, content_hash: str) -> IngestedFile | None:
        return self.state.ingested(content_hash)

    def writer(self, content_hash: str, observer: HourObserver | None = None) -> PartitionWriter:
        """A writer for the packets of one capture, identified by its content hash.

        Takes the store's ingest lock (kept until :meth:`close`); raises ``StoreError`` when another
        process is ingesting into this store. ``observer`` sees the rows by hour as they are stored.
        """
        self.lock_for_writing()
        return PartitionWriter(self, content_hash, observer)

    def lock_for_writing(self) -> None:
        """Take the store's ingest lock (kept until :meth:`close`) before changing the dataset
        (ingest, compaction, retention, repair); raises ``StoreError`` when another process writes."""
        if self.read_only:
            raise StoreError(f"{self.root}: opened read-only; this operation writes")
        if self._ingest_lock is None:
            self._ingest_lock = self._try_ingest_lock()
            if self._ingest_lock is None:
                raise StoreError(f"{self.root}: another ingest is writing to this store; try again when it ends")

    def drop_captures(self, content_hashes: list[str]) -> None:
        """Remove captures from the catalog, then delete their files (``store check --repair``).

        Holds the ingest lock meanwhile; a crash between the two steps leaves files that no
        committed row names, which the next writer's clean-up deletes.
        """
        self.lock_for_writing()
        doomed = [e for e in self.state.all_ingested() if e.content_hash in set(content_hashes)]
        self.state.forget(content_hashes)
        for entry in doomed:
            for name in entry.files:
                (self.root / name).unlink(missing_ok=True)

    def _try_ingest_lock(self) -> int | None:
        try:
            return try_lock(self.root / ".ingest.lock")
        except OSError as exc:
            raise StoreError(f"{self.root}: cannot write the store ({exc.strerror})") from None

    def _recover(self) -> None:
        """Remove what a killed ingest left: the staging area and files no committed row names.

        Skipped while another process holds the ingest lock: then those files are its work.
        Files retired by compaction or retention but not yet deleted are kept: a reader that listed
        them before they were retired may still be reading them, so only the grace-period path
        (``iotscope.store.compaction.delete_retired``) removes them.
        """
        lock = self._try_ingest_lock()
        if lock is None:
            return
        try:
            shutil.rmtree(self.root / ".staging", ignore_errors=True)
            keep = {str(p) for p in self.committed_files()}
            keep |= {str(self.root / f) for f in self.state.retired_not_deleted()}
            for path in (self.root / "packets").glob("date=*/hour=*/*.parquet"):
                if str(path) not in keep:
                    path.unlink()
        finally:
            unlock(lock)


class PartitionWriter:
    """Splits batches by hour into Parquet files in staging; ``commit`` publishes them.

    Each flush of an hour's buffered rows becomes one file (one row group of up to
    ``_ROW_GROUP_ROWS`` rows), encoded on a worker thread; at most ``_ENCODER_THREADS`` flushes are
    in flight, which keeps memory bounded whatever the capture size.
    """

    def __init__(self, store: PacketStore, content_hash: str, observer: HourObserver | None = None) -> None:
        self._store = store
        self._observer = observer
        self._hash = content_hash
        self._staging = store.root / ".staging" / content_hash
        self._staging.mkdir(parents=True, exist_ok=True)
        self._pending: dict[int, list[pa.RecordBatch]] = {}
        self._pending_rows: dict[int, int] = {}
        self._encoders = ThreadPoolExecutor(_ENCODER_THREADS, thread_name_prefix="parquet")
        self._in_flight: list[Future[None]] = []
        self._files: list[Path] = []  # relative to the staging directory
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Add a batch of ``PACKET_SCHEMA`` rows; they may span several hours."""
        if batch.num_rows == 0:
            return
        self.rows += batch.num_rows
        ts = batch.column(0).cast(pa.int64()).to_numpy()
        hours = ts // _US_PER_HOUR
        if hours.min() == hours.max():
            self._buffer(int(hours[0]), batch)
        else:
            self._split(batch, hours)
        # Captures are (nearly) in time order: an hour older than this batch is complete, so
        # encode it now, while the caller decodes the next block, rather than all at commit.
        for hour in [h for h in self._pending if h < hours.min()]:
            self._flush(hour)
        if self._observer is not None:
            self._observer.moved_to(int(hours.min()))
        # A capture out of time order could keep many hours half-full: cap what waits in memory.
        while sum(self._pending_rows.values()) > _MAX_PENDING_ROWS:
            self._flush(max(self._pending_rows, key=self._pending_rows.__getitem__))

    def _split(self, batch: pa.RecordBatch, hours: np.ndarray) -> None:
        order = np.argsort(hours, kind="stable")
        sorted_hours = hours[order]
        bounds = np.flatnonzero(np.diff(sorted_hours)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(order)]))
        taken = batch.take(pa.array(order))
        for s, e in zip(starts.tolist(), ends.tolist()):
            self._buffer(int(sorted_hours[s]), taken.slice(s, e - s))

    def _buffer(self, hour: int, batch: pa.RecordBatch) -> None:
        if self._observer is not None:
            self._observer.rows(hour, batch)
        self._pending.setdefault(hour, []).append(batch)
        self._pending_rows[hour] = self._pending_rows.get(hour, 0) + batch.num_rows
        if self._pending_rows[hour] >= _ROW_GROUP_ROWS:
            self._flush(hour)

    def _flush(self, hour: int) -> None:
        batches = self._pending.pop(hour, [])
        self._pending_rows.pop(hour, None)
        if not batches:
            return
        while len(self._in_flight) >= _ENCODER_THREADS:
            self._in_flight.pop(0).result()
        relative = _partition_path(hour, self._hash, len(self._files))
        self._files.append(relative)
        if self._observer is not None:
            self._observer.file(hour, relative)
        table = pa.Table.from_batches(batches, schema=PACKET_SCHEMA)
        self._in_flight.append(self._encoders.submit(_write_parquet, table, self._staging / relative))

    def _drain(self) -> None:
        for hour in list(self._pending):
            self._flush(hour)
        for future in self._in_flight:
            future.result()
        self._in_flight.clear()
        self._encoders.shutdown()

    def commit(self, source: str, size: int, records: int, skipped: dict[str, int]) -> IngestedFile:
        """Finish the files, move them into ``packets/`` and record the capture as committed."""
        for hour in list(self._pending):
            self._flush(hour)
        if self._observer is not None:
            self._observer.rows_done()  # it may analyse the last hour while the last files are encoded
        self._drain()
        published: list[str] = []
        try:
            for relative in self._files:
                staged, target = self._staging / relative, self._store.root / "packets" / relative
                move_into_place(staged, target)
                published.append(str(Path("packets") / relative))
            self._store.state.record_ingest(self._hash, source, size, self.rows, records, skipped, published)
        except BaseException:
            for name in published:  # not committed: take them back out of the dataset (best effort)
                (self._store.root / name).unlink(missing_ok=True)
            raise
        shutil.rmtree(self._staging, ignore_errors=True)
        entry = self._store.ingested(self._hash)
        assert entry is not None
        return entry

    def abort(self) -> None:
        """Drop everything written so far (bad input found mid-file is reported, not half-stored)."""
        self._pending.clear()
        try:
            self._drain()
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)


def _write_parquet(table: pa.Table, path: Path) -> None:
    with packet_file_writer(path, table.schema) as writer:
        writer.write_table(table, row_group_size=_ROW_GROUP_ROWS * 2)


def packet_file_writer(path: Path, schema: pa.Schema = PACKET_SCHEMA) -> pq.ParquetWriter:
    """A Parquet writer with the dataset's encodings (ingest and compaction write files with it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return pq.ParquetWriter(
        path, schema, compression="zstd", compression_level=1,
        use_dictionary=_DICTIONARY_COLUMNS, write_statistics=["ts", "src", "dport"],
    )


#: Hours the partition names can hold: from the Unix epoch to the last with a four-digit year (9999-12-31).
_END_HOUR = 2_932_897 * 24


def _partition_path(hour: int, content_hash: str, sequence: int) -> Path:
    """``date=YYYY-MM-DD/hour=HH/part-...``; StoreError (one line) for an hour no such name can hold.

    The capture reader skips records outside 1970..2106 (``bad_timestamp``), so this is the last
    guard, not the filter: a bad time must never reach numpy's or datetime's ValueError/OverflowError.
    """
    if not 0 <= hour < _END_HOUR:
        raise StoreError(f"packet time {hour:,} hours from 1970 is outside the years 1970..9999 the store can partition")
    stamp = np.datetime64(hour, "h").item()
    return Path(f"date={stamp:%Y-%m-%d}") / f"hour={stamp:%H}" / f"part-{content_hash}-{sequence}.parquet"


def partition_of(relative: str | os.PathLike[str]) -> tuple[str, str] | None:
    """``('2026-12-01', '05')`` for ``packets/date=2026-12-01/hour=05/x.parquet``: the partition a
    dataset file is in, read back from the path :func:`_partition_path` wrote (the one parser of
    it); None for a path outside a ``<dataset>/date=.../hour=.../<file>`` partition."""
    parts = Path(relative).parts
    if len(parts) < 4 or not parts[-3].startswith("date=") or not parts[-2].startswith("hour="):
        return None
    return parts[-3][5:], parts[-2][5:]
