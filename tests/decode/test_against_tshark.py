"""Randomized: thousands of seeded random-but-valid packets, every field compared with tshark."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from iotscope.decode import DecodedBlock
from tests.decode.pcaps import decode_file, decoded_row, expected_row, random_frames, tshark_frames, write_pcap

N_PACKETS = 3000


@pytest.fixture(scope="module")
def random_capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DecodedBlock]:
    path = write_pcap(tmp_path_factory.mktemp("random") / "random.pcap", random_frames(7, N_PACKETS), 1)
    return path, decode_file(path)


def test_every_field_matches_tshark(random_capture: tuple[Path, DecodedBlock]) -> None:
    path, decoded = random_capture
    frames = tshark_frames(path)
    assert len(decoded) == len(frames) == N_PACKETS
    assert sum(decoded.skipped.values()) == 0 and decoded.l4_truncated == 0
    mismatches = [k for k, frame in enumerate(frames) if decoded_row(decoded, k) != expected_row(frame, True)]
    if mismatches:
        first = mismatches[0]
        raise AssertionError(f"{len(mismatches)} rows differ, e.g. row {first}: "
                             f"{decoded_row(decoded, first)} != tshark {expected_row(frames[first], True)}")


def test_mirai_fingerprint_count_matches_tshark_filter(random_capture: tuple[Path, DecodedBlock]) -> None:
    path, decoded = random_capture
    columns = decoded.columns
    syn_only = (columns["tcp_flags"] & 0x17) == 0x02
    ours = int(np.count_nonzero(columns["l4"] & (columns["proto"] == 6) & syn_only & (columns["seq"] == columns["dst"])
                                & (columns["ip_version"] == 4)))
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "tcp.flags & 0x17 == 0x02 && ip[16:4] == tcp[4:4]"]
    theirs = len(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines())
    assert ours == theirs
    assert ours > 100  # the generator planted enough of them for the count to mean something
