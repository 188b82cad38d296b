"""One simulated darknet capture ingested into a real store, shared by the share tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze


@pytest.fixture(scope="session")
def darknet_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store directory, ground-truth table path) of 2 simulated hours, 60,000 packets."""
    root = tmp_path_factory.mktemp("share-store")
    result = simulate_darknet(DarknetConfig(packets=60_000, hours=2, seed=5), root / "d.pcap")
    ingest([root / "d.pcap"], root / "store")
    analyze(root / "store")  # indicators read the analytics views
    return root / "store", result.truth_path


@pytest.fixture(scope="session")
def truth(darknet_store: tuple[Path, Path]):
    return pq.read_table(darknet_store[1])
