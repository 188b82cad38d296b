"""open_capture: round trips through the writer, tshark agreement, bad input, torn and corrupt files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotscope.capture import CaptureError, open_capture
from iotscope.capture.writer import block_from_frames, write_pcap, write_pcapng
from iotscope.simulate.capture_fuzzing import random_block

from .tools import assert_same_records, read_capture, reader_records, tshark_records


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_round_trip(tmp_path: Path, big_endian: bool, nanosecond: bool, compress: bool) -> None:
    block = random_block(200, seed=10)
    path = tmp_path / "r.pcap"
    write_pcap(path, block, big_endian=big_endian, nanosecond=nanosecond, compress=compress)
    stats = assert_same_records(path, block)
    assert (stats.format, stats.compressed, stats.warnings, stats.torn_tail_bytes) == ("pcap", compress, [], 0)
    assert stats.bytes_read == 24 + 16 * len(block) + int(block.caplen.sum())


@pytest.mark.parametrize("kwargs", [{}, {"tsresol_exp10": 9}, {"tsresol_exp2": 24, "big_endian": True},
                                    {"compress": True}])
def test_pcapng_round_trip_several_interfaces(tmp_path: Path, kwargs: dict) -> None:
    block = random_block(200, seed=11, linktypes=(1, 101, 113))
    path = tmp_path / "r.pcapng"
    write_pcapng(path, block, **kwargs)
    stats = assert_same_records(path, block)
    assert (stats.format, stats.warnings) == ("pcapng", [])


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
def test_agrees_with_tshark(tmp_path: Path, writer) -> None:
    path = tmp_path / "t.cap"
    writer(path, random_block(300, seed=12), nanosecond=True) if writer is write_pcap else writer(
        path, random_block(300, seed=12, linktypes=(1, 101)), tsresol_exp10=9)
    assert reader_records(path) == tshark_records(path)


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
@pytest.mark.parametrize("block_bytes", [100, 333, 4096])
def test_small_buffers_carry_records_over_every_boundary(tmp_path: Path, writer, block_bytes: int) -> None:
    """Buffers down to smaller than one record: records straddle boundaries, some several."""
    block = random_block(150, seed=13)
    path = tmp_path / "s.cap"
    writer(path, block)
    _, _, _, blocks = read_capture(path, block_bytes=block_bytes)
    assert blocks >= 6
    assert_same_records(path, block, block_bytes=block_bytes)


def test_blocks_stay_near_block_bytes(tmp_path: Path) -> None:
    path = tmp_path / "m.pcap"
    write_pcap(path, random_block(3000, seed=14))
    with open_capture(path, block_bytes=64 << 10) as reader:
        sizes = [len(b.data) for b in reader.blocks()]
    assert len(sizes) > 5 and max(sizes) <= (64 << 10) + 16 + 300


def test_gzip_recognised_by_content_not_name(tmp_path: Path) -> None:
    block = random_block(30, seed=15)
    write_pcap(tmp_path / "looks-plain.pcap", block, compress=True)
    write_pcapng(tmp_path / "looks-compressed.pcapng.gz", block, compress=False)
    assert assert_same_records(tmp_path / "looks-plain.pcap", block).compressed
    assert not assert_same_records(tmp_path / "looks-compressed.pcapng.gz", block).compressed


def test_header_only_capture_has_no_records(tmp_path: Path) -> None:
    write_pcap(tmp_path / "h.pcap", block_from_frames([], [], 1))
    got, _, stats, blocks = read_capture(tmp_path / "h.pcap")
    assert (blocks, stats.records, stats.warnings) == (0, 0, [])


# --- files that are not captures: one line, raised by open_capture itself ---------------------------

def refusal(path: Path) -> str:
    with pytest.raises(CaptureError) as info:
        open_capture(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


def test_text_file_is_refused_with_its_magic(tmp_path: Path) -> None:
    path = tmp_path / "notes.pcap"
    path.write_text("hello, this is not a capture\n")
    assert refusal(path) == f"{path}: not a pcap or pcapng capture (magic 0x68656c6c)"


def test_empty_and_tiny_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.pcap").write_bytes(b"")
    (tmp_path / "tiny.pcap").write_bytes(b"\xd4\xc3")
    assert "empty file" in refusal(tmp_path / "empty.pcap")
    assert "too short" in refusal(tmp_path / "tiny.pcap")
    assert "no such file" in refusal(tmp_path / "missing.pcap")


def test_gzip_of_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(b"GET / HTTP/1.1\r\n"))
    assert refusal(path) == f"{path}: not a pcap or pcapng capture (magic 0x47455420) (after gzip decompression)"
    (tmp_path / "e.gz").write_bytes(gzip.compress(b""))
    assert "empty file" in refusal(tmp_path / "e.gz")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8bnot really gzip at all")
    assert "not a readable capture" in refusal(tmp_path / "bad.gz")


def test_truncated_and_unsupported_headers_are_refused(tmp_path: Path) -> None:
    write_pcap(tmp_path / "ok.pcap", random_block(3))
    whole = (tmp_path / "ok.pcap").read_bytes()
    (tmp_path / "short.pcap").write_bytes(whole[:20])
    assert "truncated pcap global header (20 of 24 bytes)" in refusal(tmp_path / "short.pcap")
    (tmp_path / "v3.pcap").write_bytes(whole[:4] + struct.pack("<HH", 3, 0) + whole[8:])
    assert "unsupported pcap version 3.0" in refusal(tmp_path / "v3.pcap")
    (tmp_path / "kuz.pcap").write_bytes(b"\x34\xcd\xb2\xa1" + whole[4:])
    assert "modified pcap" in refusal(tmp_path / "kuz.pcap")

    write_pcapng(tmp_path / "ok.pcapng", random_block(3))
    whole = (tmp_path / "ok.pcapng").read_bytes()
    (tmp_path / "short.pcapng").write_bytes(whole[:20])
    assert "truncated section header (20 of 28 bytes)" in refusal(tmp_path / "short.pcapng")
    (tmp_path / "bom.pcapng").write_bytes(whole[:8] + b"\0\0\0\0" + whole[12:])
    assert "invalid byte-order magic" in refusal(tmp_path / "bom.pcapng")
    (tmp_path / "v2.pcapng").write_bytes(whole[:12] + struct.pack("<HH", 2, 0) + whole[16:])
    assert "unsupported pcapng version 2.0" in refusal(tmp_path / "v2.pcapng")


# --- damage after the header: keep every whole record, warn, never raise ---------------------------

@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
@pytest.mark.parametrize("cut", [1, 10, 17, 40])
@pytest.mark.parametrize("block_bytes", [128, 32 << 20])
def test_torn_last_record_keeps_every_whole_record(tmp_path: Path, writer, cut: int, block_bytes: int) -> None:
    block = block_from_frames([bytes([i]) * 60 for i in range(5)], np.arange(5) + 10**15, 1)
    path = tmp_path / "torn.cap"
    writer(path, block)
    whole = path.read_bytes()
    path.write_bytes(whole[:-cut])
    got, frames, stats, _ = read_capture(path, block_bytes=block_bytes)
    assert frames == [bytes([i]) * 60 for i in range(4)]
    tail = (76 if writer is write_pcap else 92) - cut
    assert stats.torn_tail_bytes == tail
    assert stats.warnings == [f"{path}: last record torn after 4 whole records ({tail} bytes dropped)"]
    assert len(tshark_records(path)) == 4  # tshark agrees on what is whole


def test_truncated_gzip_keeps_what_decompressed(tmp_path: Path) -> None:
    block = random_block(2000, seed=16)
    path = tmp_path / "cut.pcap.gz"
    write_pcap(path, block)
    compressed = path.read_bytes()
    path.write_bytes(compressed[: len(compressed) * 2 // 3])
    got, frames, stats, _ = read_capture(path, block_bytes=4096)
    n = len(frames)
    assert 0 < n < len(block)
    assert frames == [bytes(block.data[o : o + c]) for o, c in zip(block.offset[:n], block.caplen[:n])]
    assert any("gzip stream truncated" in w for w in stats.warnings)
    assert stats.torn_tail_bytes == stats.bytes_read - 24 - 16 * n - int(block.caplen[:n].sum())


def test_corrupt_pcap_record_header_stops_there_with_a_warning(tmp_path: Path) -> None:
    block = block_from_frames([bytes([i]) * 60 for i in range(6)], np.arange(6) + 10**15, 1)
    path = tmp_path / "corrupt.pcap"
    write_pcap(path, block)
    data = bytearray(path.read_bytes())
    third = 24 + 2 * 76
    data[third + 8 : third + 12] = struct.pack("<I", 10_000_000)  # absurd caplen
    path.write_bytes(bytes(data))
    got, frames, stats, _ = read_capture(path, block_bytes=200)
    assert frames == [bytes([0]) * 60, bytes([1]) * 60]
    assert stats.warnings == [f"{path}: corrupt record at byte {third} after 2 whole records"
                              " (caplen 10000000 exceeds the limit 262144); stopped reading there"]
    assert stats.torn_tail_bytes == 0


def test_corrupt_pcapng_block_length_stops_there_with_a_warning(tmp_path: Path) -> None:
    block = block_from_frames([bytes([i]) * 60 for i in range(6)], np.arange(6) + 10**15, 1)
    path = tmp_path / "corrupt.pcapng"
    write_pcapng(path, block)
    data = bytearray(path.read_bytes())
    fourth = 28 + 20 + 3 * 92
    data[fourth + 4 : fourth + 8] = struct.pack("<I", 93)
    path.write_bytes(bytes(data))
    _, frames, stats, _ = read_capture(path)
    assert len(frames) == 3
    assert stats.warnings == [f"{path}: corrupt record at byte {fourth} after 3 whole records"
                              " (invalid block length 93); stopped reading there"]


def test_position_reports_file_bytes_for_progress(tmp_path: Path) -> None:
    path = tmp_path / "p.pcap.gz"
    write_pcap(path, random_block(500, seed=17))
    with open_capture(path, block_bytes=1024) as reader:
        seen = [reader.position for _ in reader.blocks()]
    assert seen == sorted(seen) and seen[-1] == path.stat().st_size


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
def test_every_cut_point_keeps_exactly_the_whole_records(tmp_path: Path, writer) -> None:
    block = random_block(6, seed=18)
    path = tmp_path / "whole.cap"
    writer(path, block)
    whole = path.read_bytes()
    header = 24 if writer is write_pcap else 28 + 20
    ends = header + np.cumsum(block.caplen.astype(int) + 16 if writer is write_pcap
                              else 32 + ((block.caplen.astype(int) + 3) & ~3))
    cut_path = tmp_path / "cut.cap"
    for cut in range(header, len(whole) + 1):
        cut_path.write_bytes(whole[:cut])
        _, frames, stats, _ = read_capture(cut_path, block_bytes=64)
        whole_records = int(np.searchsorted(ends, cut, side="right"))
        assert len(frames) == whole_records
        assert stats.torn_tail_bytes == cut - (ends[whole_records - 1] if whole_records else header)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
       pcapng=st.booleans(), block_bytes=st.sampled_from([64, 1000, 1 << 20]))
def test_damage_anywhere_never_raises_once_open(tmp_path: Path, damage, pcapng: bool, block_bytes: int) -> None:
    """Random byte damage: either refused at open with CaptureError, or read without an exception,
    every record inside its block's buffer."""
    path = tmp_path / "damaged.cap"
    (write_pcapng if pcapng else write_pcap)(path, random_block(40, seed=19, linktypes=(1, 101) if pcapng else (1,)))
    data = bytearray(path.read_bytes())
    for where, value in damage:
        data[where % len(data)] = value
    path.write_bytes(bytes(data))
    try:
        reader = open_capture(path, block_bytes=block_bytes)
    except CaptureError as exc:
        assert "\n" not in str(exc)
        return
    with reader:
        for block in reader.blocks():
            assert (block.offset >= 0).all() and (block.offset + block.caplen <= len(block.data)).all()


def test_blocks_can_be_read_once(tmp_path: Path) -> None:
    write_pcap(tmp_path / "o.pcap", random_block(3))
    with open_capture(tmp_path / "o.pcap") as reader:
        assert sum(len(b) for b in reader.blocks()) == 3
        with pytest.raises(RuntimeError, match="read once"):
            next(reader.blocks())
