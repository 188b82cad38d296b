"""Fixtures shared by the pass tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two simulated captures over the same three hours, in several blocks each (the second is
    "late" for every hour of the first)."""
    d = tmp_path_factory.mktemp("sim")
    out = []
    for seed in (1, 2):
        path = d / f"c{seed}.pcap"
        simulate_darknet(DarknetConfig(packets=60_000, hours=3, seed=seed), path)
        out.append(path)
    return out
