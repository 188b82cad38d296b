"""The writer's files as tshark and dpkt read them, and what the writer refuses."""

from __future__ import annotations

import gzip
from pathlib import Path

import dpkt
import numpy as np
import pytest

from iotscope.capture import open_capture
from iotscope.capture.writer import (
    block_from_frames,
    open_pcap_writer,
    open_pcapng_writer,
    write_pcap,
    write_pcapng,
)
from iotscope.simulate.capture_fuzzing import random_block

from .tools import WTAP_ENCAP, frames_of, tshark_records


def expected_records(block, resolution_us: int = 1) -> list[tuple[int, int, int, int]]:
    ts = (block.ts_us // resolution_us) * resolution_us
    return list(zip(ts.tolist(), block.wirelen.tolist(), block.caplen.tolist(),
                    [WTAP_ENCAP[int(k)] for k in block.linktype]))


@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_as_tshark_and_dpkt_read_it(tmp_path: Path, nanosecond: bool, big_endian: bool) -> None:
    block = random_block(50, seed=1)
    path = tmp_path / "w.pcap"
    write_pcap(path, block, nanosecond=nanosecond, big_endian=big_endian)
    assert tshark_records(path) == expected_records(block)
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == 1 and reader.snaplen == 262144
        read = list(reader)
    assert [frame for _, frame in read] == frames_of(block)
    assert [round(ts * 1_000_000) for ts, _ in read] == block.ts_us.tolist()


def test_pcap_gzip_by_suffix_or_flag(tmp_path: Path) -> None:
    block = random_block(20, seed=2)
    write_pcap(tmp_path / "a.pcap.gz", block)
    write_pcap(tmp_path / "b.pcap", block, compress=True)
    write_pcap(tmp_path / "c.pcap.gz", block, compress=False)
    plain = (tmp_path / "c.pcap.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.pcap.gz").read_bytes()) == plain
    assert gzip.decompress((tmp_path / "b.pcap").read_bytes()) == plain
    assert tshark_records(tmp_path / "a.pcap.gz") == expected_records(block)


def test_pcap_refuses_mixed_link_types_and_oversized_records(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one link type"):
        write_pcap(tmp_path / "x.pcap", random_block(10, linktypes=(1, 101)))
    with pytest.raises(ValueError, match="exceeds snaplen"):
        write_pcap(tmp_path / "x.pcap", random_block(10), snaplen=64)


def test_pcap_empty_block_is_a_header_only_file(tmp_path: Path) -> None:
    write_pcap(tmp_path / "e.pcap", block_from_frames([], [], 1))
    assert (tmp_path / "e.pcap").stat().st_size == 24
    assert tshark_records(tmp_path / "e.pcap") == []


@pytest.mark.parametrize(("kwargs", "resolution_us"), [
    ({}, 1),
    ({"tsresol_exp10": 9, "big_endian": True}, 1),
    ({"tsresol_exp10": 3}, 1000),
    ({"tsresol_exp2": 20}, 1),
])
def test_pcapng_interfaces_and_resolutions_as_tshark_reads_them(tmp_path: Path, kwargs: dict,
                                                               resolution_us: int) -> None:
    block = random_block(60, seed=3, linktypes=(1, 101, 113))
    path = tmp_path / "w.pcapng"
    write_pcapng(path, block, **kwargs)
    assert tshark_records(path) == expected_records(block, resolution_us)


def test_pcapng_as_dpkt_reads_it(tmp_path: Path) -> None:
    block = random_block(30, seed=4)
    path = tmp_path / "w.pcapng"
    write_pcapng(path, block)
    with open(path, "rb") as f:
        read = list(dpkt.pcapng.Reader(f))
    assert [frame for _, frame in read] == frames_of(block)
    assert [round(ts * 1_000_000) for ts, _ in read] == block.ts_us.tolist()


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
def test_output_is_the_same_whatever_the_piece_sizes(tmp_path: Path, monkeypatch, writer) -> None:
    import iotscope.capture.writer as module

    block = random_block(40, seed=5)
    writer(tmp_path / "one-piece.cap", block)
    monkeypatch.setattr(module, "OUTPUT_PIECE_BYTES", 500)  # smaller than some records
    monkeypatch.setattr(module, "RECORDS_PER_SLICE", 7)
    writer(tmp_path / "pieces.cap", block)
    assert (tmp_path / "pieces.cap").read_bytes() == (tmp_path / "one-piece.cap").read_bytes()


def test_block_from_frames_lays_frames_end_to_end() -> None:
    block = block_from_frames([b"ab", b"", b"cde"], np.array([1, 2, 3]), 101, wirelen=[2, 0, 9])
    assert block.offset.tolist() == [0, 2, 2]
    assert block.caplen.tolist() == [2, 0, 3] and block.wirelen.tolist() == [2, 0, 9]
    assert block.linktype.tolist() == [101, 101, 101]
    assert frames_of(block) == [b"ab", b"", b"cde"]


def concatenated(blocks: list) -> list[bytes]:
    return [frame for block in blocks for frame in frames_of(block)]


@pytest.mark.parametrize("name", ["s.pcap", "s.pcap.gz"])
def test_pcap_writer_streams_many_blocks_into_one_file(tmp_path: Path, name: str) -> None:
    blocks = [random_block(30, seed=s) for s in (20, 21, 22)]
    with open_pcap_writer(tmp_path / name, nanosecond=True) as writer:
        for block in blocks:
            writer.write(block)
        assert writer.records == 90
    read = tshark_records(tmp_path / name)
    assert [r[0] for r in read] == [t for b in blocks for t in b.ts_us.tolist()]
    with open_capture(tmp_path / name) as reader:
        assert [f for b in reader.blocks() for f in frames_of(b)] == concatenated(blocks)


def test_pcapng_writer_declares_interfaces_up_front(tmp_path: Path) -> None:
    blocks = [random_block(20, seed=23, linktypes=(1,)), random_block(20, seed=24, linktypes=(101, 1))]
    path = tmp_path / "s.pcapng"
    with open_pcapng_writer(path, linktypes=[113, 101, 1], tsresol_exp10=9) as writer:
        for block in blocks:
            writer.write(block)
        with pytest.raises(ValueError, match=r"link types \[228\] have no interface"):
            writer.write(random_block(3, linktypes=(228,)))
    expected = [(t, w, c, WTAP_ENCAP[int(k)]) for b in blocks
                for t, w, c, k in zip(b.ts_us.tolist(), b.wirelen.tolist(), b.caplen.tolist(), b.linktype)]
    assert tshark_records(path) == expected


def test_pcap_writer_refuses_a_second_link_type(tmp_path: Path) -> None:
    with open_pcap_writer(tmp_path / "one.pcap", linktype=101) as writer:
        with pytest.raises(ValueError, match=r"one link type \(101\), the block also has \[1\]"):
            writer.write(random_block(5, linktypes=(1, 101)))
