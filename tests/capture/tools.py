"""Shared helpers for the capture tests: synthetic blocks, reading a whole capture, tshark's view."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from iotscope.capture import CaptureBlock, CaptureStats, open_capture

#: tshark's frame.encap_type (wiretap's numbering) for the LINKTYPE values the tests use.
WTAP_ENCAP = {1: 1, 101: 7, 113: 25}


def frames_of(block: CaptureBlock) -> list[bytes]:
    return [bytes(block.data[o : o + c]) for o, c in zip(block.offset.tolist(), block.caplen.tolist())]


def read_capture(path: Path, **kwargs: int) -> tuple[dict[str, np.ndarray], list[bytes], CaptureStats, int]:
    """Everything a reader yields for ``path``: concatenated arrays, frames, stats, number of blocks."""
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("caplen", "wirelen", "ts_us", "linktype")}
    frames: list[bytes] = []
    blocks = 0
    with open_capture(path, **kwargs) as reader:
        for block in reader.blocks():
            blocks += 1
            assert len(block.offset) == len(block.caplen) == len(block.ts_us) == len(block.linktype)
            assert block.offset.dtype == np.int64 and block.ts_us.dtype == np.int64
            assert block.caplen.dtype == np.uint32 and block.linktype.dtype == np.uint16
            for key, values in columns.items():
                values.append(getattr(block, key))
            frames += frames_of(block)
        stats = reader.stats
    arrays = {k: np.concatenate(v) if v else np.empty(0, np.int64) for k, v in columns.items()}
    return arrays, frames, stats, blocks


def assert_same_records(path: Path, expected: CaptureBlock, **kwargs: int) -> CaptureStats:
    """The reader gives back exactly ``expected``'s records (bytes, lengths, µs, link types)."""
    got, frames, stats, _ = read_capture(path, **kwargs)
    assert frames == frames_of(expected)
    np.testing.assert_array_equal(got["caplen"], expected.caplen)
    np.testing.assert_array_equal(got["wirelen"], expected.wirelen)
    np.testing.assert_array_equal(got["ts_us"], expected.ts_us)
    np.testing.assert_array_equal(got["linktype"], expected.linktype)
    assert stats.records == len(expected)
    return stats


def tshark_records(path: Path) -> list[tuple[int | None, int, int, int | None]]:
    """tshark's (µs timestamp, wire length, captured length, wiretap encapsulation) per frame.

    The timestamp is floored to µs from tshark's nanosecond text, like the reader does. It is None
    where tshark has none (simple packet blocks); the encapsulation is None for the non-packet
    records tshark also lists (pcapng custom blocks).
    """
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len",
         "-e", "frame.cap_len", "-e", "frame.encap_type"],
        capture_output=True, text=True, timeout=60,
    ).stdout
    records: list[tuple[int | None, int, int, int | None]] = []
    for line in out.splitlines():
        epoch, wire, cap, encap = line.split("\t")
        seconds, _, fraction = epoch.partition(".")
        ts = int(seconds) * 1_000_000 + int((fraction + "000000")[:6]) if epoch else None
        records.append((ts, int(wire), int(cap), int(encap) if encap else None))
    return records


def reader_records(path: Path, **kwargs: int) -> list[tuple[int, int, int, int]]:
    """The reader's view in tshark's terms, to compare with :func:`tshark_records`."""
    got, _, _, _ = read_capture(path, **kwargs)
    encap = [WTAP_ENCAP[int(k)] for k in got["linktype"]]
    return list(zip(got["ts_us"].tolist(), got["wirelen"].tolist(), got["caplen"].tolist(), encap))
