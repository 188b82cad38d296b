"""Classic pcap details the round trips do not reach: link-type FCS bits, large snap lengths,
nanosecond flooring, and a file written by a real tool (tcpdump's libpcap)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np

from iotscope.capture.writer import block_from_frames, write_pcap

from .tools import read_capture, reader_records, tshark_records


def pcap_file(path: Path, records: list[tuple[int, int, bytes]], *, magic: int = 0xA1B23C4D,
              snaplen: int = 65535, linktype: int = 1) -> Path:
    """A little-endian pcap built by hand: (seconds, fraction, frame) per record."""
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for seconds, fraction, frame in records:
        out += struct.pack("<IIII", seconds, fraction, len(frame), len(frame)) + frame
    path.write_bytes(out)
    return path


def test_nanoseconds_are_floored_to_microseconds(tmp_path: Path) -> None:
    path = pcap_file(tmp_path / "ns.pcap", [(10, 999, b"a"), (10, 1_999, b"b"), (4_000_000_000, 999_999_999, b"c")])
    got, frames, _, _ = read_capture(path)
    assert got["ts_us"].tolist() == [10_000_000, 10_000_001, 4_000_000_000_999_999]  # seconds are unsigned
    assert frames == [b"a", b"b", b"c"]


def test_fcs_bits_of_the_link_type_field_are_not_the_link_type(tmp_path: Path) -> None:
    path = pcap_file(tmp_path / "fcs.pcap", [(1, 0, b"x" * 20)], linktype=0x1000_0000 | 0x0400_0000 | 1)
    got, _, _, _ = read_capture(path)
    assert got["linktype"].tolist() == [1]


def test_a_large_snaplen_admits_records_beyond_256_kib(tmp_path: Path) -> None:
    big = bytes(300_000)
    path = pcap_file(tmp_path / "big.pcap", [(1, 0, big), (2, 0, b"y")], snaplen=1 << 20)
    _, frames, stats, _ = read_capture(path, block_bytes=4096)
    assert frames == [big, b"y"] and stats.warnings == []


def test_reads_what_tcpdump_writes(tmp_path: Path) -> None:
    """A capture rewritten by tcpdump (libpcap's writer), compared with tshark on the same file."""
    frames = [bytes([i]) * (14 + i) for i in range(40)]
    source = tmp_path / "ours.pcap"
    write_pcap(source, block_from_frames(frames, 1_700_000_000_000_000 + np.arange(40) * 1_000_003, 1))
    theirs = tmp_path / "tcpdump.pcap"
    subprocess.run(["tcpdump", "-r", str(source), "-w", str(theirs)], check=True, capture_output=True, timeout=60)
    assert theirs.read_bytes() != b""
    assert reader_records(theirs) == tshark_records(theirs)
    assert read_capture(theirs)[1] == frames


def test_a_fraction_past_the_last_second_is_the_only_way_out_of_range(tmp_path: Path) -> None:
    """pcap's seconds are unsigned 32-bit, so its times cannot crash anything; only a fraction of a
    second >= 1 s on the very last second leaves the range (2^32 s) and is skipped as bad_timestamp."""
    last = 2**32 - 1
    path = pcap_file(tmp_path / "end.pcap", [(0, 0, b"a"), (last, 999_999, b"b"), (last, 2_000_000, b"c")],
                     magic=0xA1B2C3D4)
    got, frames, stats, _ = read_capture(path)
    assert frames == [b"a", b"b"] and got["ts_us"].tolist() == [0, last * 10**6 + 999_999]
    assert stats.skipped == {"bad_timestamp": 1} and stats.records == 3
