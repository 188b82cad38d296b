"""Write a stream of capture blocks as ONE pcap/pcapng file (plain or gzip), atomically.

``iotscope.capture.writer`` writes one block per file, but a 10-million-packet capture must be
produced in bounded pieces to stay well under 1 GB of memory. Each piece is written with the
capture writer to a scratch file, and the pieces are joined: the first keeps its file header
(pcap global header, or pcapng SHB + IDB), later ones contribute only their records. The result
appears under its final name only when complete (written as a hidden partial file, then renamed),
so a killed simulation never leaves a truncated capture that looks finished.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from iotscope.capture import CaptureBlock
from iotscope.capture.writer import write_pcap, write_pcapng

PCAP_FILE_HEADER = 24


def is_pcapng(path: Path) -> bool:
    """pcapng when the name says so (``.pcapng`` or ``.pcapng.gz``), classic pcap otherwise."""
    return path.name.removesuffix(".gz").endswith(".pcapng")


def _header_length(scratch: Path, pcapng: bool) -> int:
    """Bytes before the first record: the pcap header, or the pcapng SHB and its one IDB."""
    if not pcapng:
        return PCAP_FILE_HEADER
    with open(scratch, "rb") as f:
        head = f.read(64 * 1024)
    shb_length = struct.unpack_from("<I", head, 4)[0]
    idb_length = struct.unpack_from("<I", head, shb_length + 4)[0]
    return shb_length + idb_length


def write_blocks(path: Path, blocks: Iterable[CaptureBlock]) -> None:
    """Write every block, in order, into the single capture file ``path`` (gzip if it ends in .gz).

    All blocks must share one link type (a classic pcap has one; the pcapng pieces are joined under
    the first piece's single interface).
    """
    path = Path(path)
    pcapng = is_pcapng(path)
    write = write_pcapng if pcapng else write_pcap
    partial = path.with_name(f".{path.name}.partial")
    scratch = path.with_name(f".{path.name}.piece")
    try:
        if path.name.endswith(".gz"):
            with gzip.open(partial, "wb", compresslevel=1) as out:
                for number, block in enumerate(blocks):
                    write(scratch, block, compress=False)
                    _append_records(scratch, out, 0 if number == 0 else _header_length(scratch, pcapng))
        else:
            # Uncompressed: the first piece is written in place, later pieces are appended to it.
            for number, block in enumerate(blocks):
                if number == 0:
                    write(partial, block, compress=False)
                    continue
                write(scratch, block, compress=False)
                with open(partial, "ab") as out:
                    _append_records(scratch, out, _header_length(scratch, pcapng))
        os.replace(partial, path)
    finally:
        for leftover in (partial, scratch):
            leftover.unlink(missing_ok=True)


def _append_records(piece_path: Path, out: BinaryIO, skip: int) -> None:
    """Copy a scratch piece into ``out``, leaving out its first ``skip`` bytes (the file header)."""
    with open(piece_path, "rb") as piece:
        piece.seek(skip)
        shutil.copyfileobj(piece, out, 8 << 20)
