"""Ingest: capture files -> decoded, classified columns -> the store's ``packets/`` dataset.

The whole path is array code: the capture reader hands over blocks of records, the numba kernel
decodes a block at once, classification is vectorized, and Arrow batches go to Parquet. Python
runs once per block (tens of MB), never once per packet.

A capture that grew since it was ingested (a sensor still writing it, an operator too early):
when the file at the same path starts with exactly the bytes ingested before (the XXH3-128 of its
first ``size`` bytes equals that ingest's content hash), only the records after the ones already
stored are added, so no packet is stored twice. A file that changes *while* it is ingested is
refused (nothing of it stored): what was hashed must be what was read. Ingest it again once it is
complete; an earlier ingest of its beginning is then extended, not repeated.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xxhash

from iotscope.capture import CaptureBlock, CaptureError, open_capture
from iotscope.decode import decode_block
from iotscope.store.durable import is_disk_full
from iotscope.store.packets import HourObserver, PacketStore
from iotscope.store.schema import packet_record_batch
from iotscope.store.state import IngestedFile, StoreError
from iotscope.telescope.classify import flag_class, traffic_class
from iotscope.telescope.fingerprints import tool_codes

#: Called after each block with (path, bytes of the file consumed so far).
ProgressCallback = Callable[[Path, int], None]


@dataclass
class FileReport:
    """What ingesting one capture did: the numbers the CLI summary prints."""

    path: Path
    content_hash: str
    status: str  # "ingested", or "already" when the same content was committed before
    records: int = 0  # records in the capture
    packets: int = 0  # rows stored
    bytes_read: int = 0
    #: records dropped by reason, plus ``l4_truncated``: rows stored without their cut transport header
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: bytes of this file stored by an earlier ingest, when the file grew since (only the rest was added)
    grown_from: int | None = None

    @property
    def packets_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


#: File names taken from a directory given to ingest (explicitly named files may be called anything).
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")


def capture_files(paths: Iterable[Path]) -> list[Path]:
    """The files to ingest: named files as given, directories expanded to the captures inside them.

    A sensor drops a file per interval into a directory, so ``ingest DIR`` takes every file below
    it whose name ends in one of ``CAPTURE_SUFFIXES``, in name order (oldest first for the usual
    time-stamped names).
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES)))
        else:
            files.append(path)
    return files


def check_captures(paths: Iterable[Path]) -> None:
    """Open every path's header before anything is written: a bad file refuses the whole run.

    Raises ``CaptureError`` (one-line message) for a missing file or one that is not a capture.
    """
    for path in paths:
        if not path.is_file():
            raise CaptureError(f"{path}: no such file")
        with open_capture(path):
            pass


def content_hash(path: Path) -> str:
    """The identity of a capture for idempotent ingest: same bytes, same capture, whatever its name.

    XXH3-128 rather than SHA-256: it runs at memory speed, so checking a directory of captures that
    were ingested before costs a read, not a second ingest; it guards against accidents, not forgers.
    """
    return prefix_hashes(path, os.path.getsize(path), [])[0]


def prefix_hashes(path: Path, size: int, prefixes: Iterable[int]) -> tuple[str, dict[int, str]]:
    """The content hash of the first ``size`` bytes of ``path``, and of its first ``n`` bytes for each ``n``.

    One pass: the digest is copied at each prefix length. A file shorter than ``size`` raises
    ``CaptureError`` (it was truncated meanwhile).
    """
    cuts = sorted({n for n in prefixes if 0 < n <= size})
    digest = xxhash.xxh3_128()
    at: dict[int, str] = {}
    done = 0
    with open(path, "rb") as f:
        for cut in [*cuts, size]:
            while done < cut:
                chunk = f.read(min(8 << 20, cut - done))
                if not chunk:
                    raise CaptureError(f"{path}: shrank while being read ({done:,} of {size:,} bytes)")
                digest.update(chunk)
                done += len(chunk)
            at[cut] = digest.hexdigest()
    return at[size], at


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _stored_prefix(store: PacketStore, source: str, size: int, path: Path) -> tuple[str, IngestedFile | None]:
    """The file's content hash, and the largest earlier ingest of the same path that it extends."""
    earlier = [e for e in store.state.ingested_from(source) if e.size < size]
    digest, at = prefix_hashes(path, size, [e.size for e in earlier])
    extended = [e for e in earlier if at.get(e.size) == e.content_hash]
    return digest, max(extended, key=lambda e: e.size, default=None)


def _without_first(block: CaptureBlock, n: int) -> CaptureBlock:
    """``block`` minus its first ``n`` records (array slices of every per-record column)."""
    records = len(block)
    return dataclasses.replace(block, **{
        f.name: getattr(block, f.name)[n:] for f in dataclasses.fields(block)
        if f.name != "data" and isinstance(getattr(block, f.name), np.ndarray)
        and getattr(block, f.name).shape[:1] == (records,)
    })


def ingest_file(path: Path, store: PacketStore, progress: ProgressCallback | None = None,
                observer: HourObserver | None = None) -> FileReport:
    """Ingest one capture into ``store``: skip it if its content is committed, add only what it gained
    if it grew since an earlier ingest of the same path, refuse it if it changes while being read.
    ``observer`` sees the stored rows by hour (``ingest`` analyses hours while it decodes the next).

    Raises ``CaptureError`` for a file that changed during the ingest, ``StoreError`` for a store that
    cannot be written (disk full, read-only); in both cases nothing of this capture is committed.
    """
    started = time.perf_counter()
    source = str(path.resolve())
    try:
        before = _identity(path)
        size = before[2]
        digest, base = _stored_prefix(store, source, size, path)
        done = store.ingested(digest)
        if done is not None:
            return FileReport(path, digest, "already", done.records, done.packets, skipped=done.skipped)
        report = FileReport(path, digest, "ingested", grown_from=base.size if base else None)
        skip = base.records if base else 0
        writer = store.writer(digest, observer)
        try:
            seen = 0
            with open_capture(path) as reader:
                for block in reader.blocks():
                    first, seen = seen, seen + len(block)
                    if seen <= skip:
                        continue
                    if first < skip:
                        block = _without_first(block, skip - first)
                    decoded = decode_block(block)
                    cols = decoded.columns
                    flags = flag_class(cols["proto"], cols["tcp_flags"], cols["icmp_type"], cols["l4"])
                    traffic = traffic_class(cols["proto"], cols["tcp_flags"], cols["icmp_type"], cols["l4"])
                    tools = tool_codes(cols, flags)
                    writer.write(packet_record_batch(cols, flags, traffic, tools))
                    for reason, n in [*decoded.skipped.items(), ("l4_truncated", decoded.l4_truncated)]:
                        report.skipped[reason] = report.skipped.get(reason, 0) + n
                    if progress is not None:
                        progress(path, reader.position)
                stats = reader.stats
            after = _identity(path)
            if after != before:
                raise CaptureError(
                    f"{path}: still being written (size {size:,} -> {after[2]:,} bytes during ingest); nothing "
                    "of it stored. Ingest it again when it is complete (what is stored is never stored twice)")
            if stats.torn_tail_bytes:
                report.skipped["torn_record"] = 1
            for reason, n in stats.skipped.items():  # bad_timestamp, interface_limit, corrupt_record
                report.skipped[reason] = report.skipped.get(reason, 0) + n
            report.records = max(stats.records - skip, 0)
            report.bytes_read = stats.bytes_read
            report.warnings = list(stats.warnings)
            report.skipped = {k: v for k, v in report.skipped.items() if v}
            entry = writer.commit(source, size, stats.records, report.skipped)
        except BaseException:
            writer.abort()
            raise
    except (OSError, sqlite3.OperationalError) as exc:  # pyarrow's I/O errors are OSErrors
        raise _write_error(store, path, exc) from None
    report.packets = entry.packets
    report.seconds = time.perf_counter() - started
    return report


def _write_error(store: PacketStore, path: Path, exc: BaseException) -> StoreError:
    """One line for a store that could not take the capture (a reading problem is a ``CaptureError``)."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    if is_disk_full(exc):
        return StoreError(f"{store.root}: the disk is full while ingesting {path}; nothing of it was committed. "
                          "Free space and ingest it again")
    return StoreError(f"{store.root}: ingesting {path} failed ({text}); nothing of it was committed")


def ingest(paths: list[Path], store_dir: Path, progress: ProgressCallback | None = None) -> list[FileReport]:
    """Ingest captures into the store at ``store_dir``; each file commits on its own.

    Directories are expanded (:func:`capture_files`). Every file's header is checked first, so a
    wrong file refuses the run before the store changes.
    """
    paths = capture_files(paths)
    check_captures(paths)
    with PacketStore(store_dir) as store:
        return [ingest_file(p, store, progress) for p in paths]
