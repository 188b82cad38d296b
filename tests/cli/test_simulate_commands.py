"""``iotscope simulate``: the options that shape the scenario, checked through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest


def iotscope(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotscope", *args], check=False, capture_output=True, text=True, timeout=300)


def test_outbreak_start_dates_the_first_infection(tmp_path: Path) -> None:
    out = tmp_path / "dated.pcap"
    result = iotscope("simulate", "--out", str(out), "--packets", "5000", "--hours", "2", "--seed", "3",
                      "--outbreak-start", "0.25")
    assert result.returncode == 0, result.stderr
    meta = pq.read_schema(f"{out}.truth.parquet").metadata
    assert meta[b"outbreak"] == b"True"
    onset = datetime(2016, 9, 1, 0, 30, tzinfo=UTC)  # a quarter of 2 hours after the default start
    assert int(meta[b"outbreak_start_us"]) == round(onset.timestamp() * 1_000_000)


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "nan", "half"])
def test_bad_outbreak_start_is_one_line_and_exit_2(tmp_path: Path, value: str) -> None:
    out = tmp_path / "never.pcap"
    result = iotscope("simulate", "--out", str(out), "--packets", "100", "--outbreak-start", value)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "--outbreak-start" in lines[0], lines
    assert not out.exists()
