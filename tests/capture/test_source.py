"""ByteSource: gzip recognised by magic, multi-member streams, and truncation keeping every byte."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from iotscope.capture.source import ByteSource

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


def read_all(path: Path, piece: int = 10_000) -> tuple[bytes, ByteSource]:
    source = ByteSource(path)
    chunks = []
    while not source.eof:
        buf = np.empty(piece, dtype=np.uint8)
        got = source.readinto(buf)
        assert got == piece or source.eof  # short only at the end
        chunks.append(buf[:got].tobytes())
    source.close()
    return b"".join(chunks), source


def test_plain_file_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "plain.gz"
    path.write_bytes(PAYLOAD)
    data, source = read_all(path)
    assert data == PAYLOAD and not source.compressed and source.problem is None


def test_multi_member_gzip(tmp_path: Path) -> None:
    path = tmp_path / "two"
    path.write_bytes(gzip.compress(PAYLOAD[:1000]) + gzip.compress(PAYLOAD[1000:]))
    data, source = read_all(path)
    assert data == PAYLOAD and source.compressed and source.problem is None


def test_truncated_gzip_keeps_every_decompressed_byte(tmp_path: Path) -> None:
    whole = gzip.compress(PAYLOAD, compresslevel=1)
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    data, source = read_all(path, piece=1 << 20)
    assert source.problem == "gzip stream truncated"
    assert len(data) > len(PAYLOAD) // 3 and PAYLOAD.startswith(data)
    # Nothing is lost at the end of the data: a zlib decompressor over the same bytes gets no more.
    assert len(zlib.decompressobj(31).decompress(whole[: len(whole) // 2])) == len(data)


def test_corrupt_gzip_reports_a_problem(tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(PAYLOAD, compresslevel=1))
    whole[len(whole) // 2 : len(whole) // 2 + 64] = bytes(64)
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(whole))
    data, source = read_all(path)
    assert source.problem is not None and source.problem.startswith("gzip stream corrupt")
    assert PAYLOAD.startswith(data[: len(whole) // 4])
