"""Write a stream of capture blocks as ONE pcap/pcapng file (plain or gzip), atomically.

A 10-million-packet capture is produced in bounded pieces to stay well under 1 GB of memory; the
capture writer's streaming API appends each piece's records to one file. The result appears under
its final name only when complete (written as a hidden partial file, then renamed), so a killed
simulation never leaves a truncated capture that looks finished.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from iotscope.capture import CaptureBlock
from iotscope.capture.writer import open_pcap_writer, open_pcapng_writer


def is_pcapng(path: Path) -> bool:
    """pcapng when the name says so (``.pcapng`` or ``.pcapng.gz``), classic pcap otherwise."""
    return path.name.removesuffix(".gz").endswith(".pcapng")


def write_blocks(path: Path, blocks: Iterable[CaptureBlock]) -> None:
    """Write every block, in order, into the single capture file ``path`` (gzip if it ends in .gz).

    The simulator's frames are all Ethernet, the writers' default link type.
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    open_writer = open_pcapng_writer if is_pcapng(path) else open_pcap_writer
    try:
        with open_writer(partial, compress=path.name.endswith(".gz")) as writer:
            for block in blocks:
                writer.write(block)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
