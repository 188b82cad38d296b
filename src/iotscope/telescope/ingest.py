"""Ingest: capture files -> decoded, classified columns -> the store's ``packets/`` dataset.

The whole path is array code: the capture reader hands over blocks of records, the numba kernel
decodes a block at once, classification is vectorized, and Arrow batches go to Parquet. Python
runs once per block (tens of MB), never once per packet.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from iotscope.capture import CaptureError, open_capture
from iotscope.decode import decode_block
from iotscope.store.packets import PacketStore
from iotscope.store.schema import packet_record_batch
from iotscope.telescope.classify import flag_class, traffic_class

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
    digest = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ingest_file(path: Path, store: PacketStore, progress: ProgressCallback | None = None) -> FileReport:
    """Ingest one capture into ``store``, or skip it if the same content is already committed."""
    started = time.perf_counter()
    digest = content_hash(path)
    done = store.ingested(digest)
    if done is not None:
        return FileReport(path, digest, "already", done.records, done.packets, skipped=done.skipped)
    report = FileReport(path, digest, "ingested")
    writer = store.writer(digest)
    try:
        with open_capture(path) as reader:
            for block in reader.blocks():
                decoded = decode_block(block)
                cols = decoded.columns
                flags = flag_class(cols["proto"], cols["tcp_flags"], cols["icmp_type"], cols["l4"])
                traffic = traffic_class(cols["proto"], cols["tcp_flags"], cols["icmp_type"], cols["l4"])
                writer.write(packet_record_batch(cols, flags, traffic))
                for reason, n in [*decoded.skipped.items(), ("l4_truncated", decoded.l4_truncated)]:
                    report.skipped[reason] = report.skipped.get(reason, 0) + n
                if progress is not None:
                    progress(path, reader.position)
            stats = reader.stats
    except BaseException:
        writer.abort()
        raise
    if stats.torn_tail_bytes:
        report.skipped["torn_record"] = 1
    for reason, n in stats.skipped.items():  # bad_timestamp, interface_limit, corrupt_record
        report.skipped[reason] = report.skipped.get(reason, 0) + n
    report.records = stats.records
    report.bytes_read = stats.bytes_read
    report.warnings = list(stats.warnings)
    report.skipped = {k: v for k, v in report.skipped.items() if v}
    entry = writer.commit(str(path.resolve()), os.path.getsize(path), report.records, report.skipped)
    report.packets = entry.packets
    report.seconds = time.perf_counter() - started
    return report


def ingest(paths: list[Path], store_dir: Path, progress: ProgressCallback | None = None) -> list[FileReport]:
    """Ingest captures into the store at ``store_dir``; each file commits on its own.

    Directories are expanded (:func:`capture_files`). Every file's header is checked first, so a
    wrong file refuses the run before the store changes.
    """
    paths = capture_files(paths)
    check_captures(paths)
    with PacketStore(store_dir) as store:
        return [ingest_file(p, store, progress) for p in paths]
