"""The read-only reader: it never writes the store, refuses what is not one, follows new commits."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.state import StoreError
from iotscope.telescope.ingest import ingest
from iotscope.web.app import create_app
from iotscope.web.store_reader import Generation, StoreReader
from tests.web.conftest import build_store

ENDPOINTS = ["/api/summary", "/api/series", "/api/top/port", "/api/top/tool", "/api/map"]


def test_serving_never_writes_the_store(outbreak_store: Path) -> None:
    """A file no commit names would be deleted by a writer's open (crash clean-up); a reader leaves it."""
    stray = next(outbreak_store.glob("packets/date=*/hour=*")) / "part-stray-0.parquet"
    stray.write_bytes(b"not committed")
    # A reader of a WAL-mode SQLite file maps its index (state.sqlite-shm) and, if the writer's
    # last close removed it, recreates an empty log (state.sqlite-wal): SQLite's machinery, no data.
    # The log must stay empty; everything else must stay byte for byte and time for time.
    def files() -> dict[Path, tuple[int, int]]:
        return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in outbreak_store.rglob("*")
                if not p.name.endswith(("-shm", "-wal"))}

    before = files()
    try:
        client = TestClient(create_app(StoreReader(outbreak_store)), raise_server_exceptions=False)
        for url in ENDPOINTS:
            assert client.get(url).status_code == 200
        assert stray.exists()
        assert files() == before
        wal = outbreak_store / "state.sqlite-wal"
        assert not wal.exists() or wal.stat().st_size == 0
    finally:
        os.unlink(stray)


def test_a_directory_that_is_not_a_store_is_refused_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a store"):
        StoreReader(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_a_new_commit_is_a_new_generation_and_a_new_view(tmp_path: Path) -> None:
    store = build_store(tmp_path, DarknetConfig(packets=3_000, hours=0.2, seed=5, start=datetime(2016, 9, 1)))
    reader = StoreReader(store)
    assert reader.generation() == Generation(1, 3_000)
    assert reader.cursor().execute("SELECT count(*) FROM packets").fetchone() == (3_000,)
    more = simulate_darknet(DarknetConfig(packets=2_000, hours=0.2, seed=6, start=datetime(2016, 9, 1, 1)),
                            tmp_path / "more.pcap")
    ingest([more.path], store)
    assert reader.generation() == Generation(2, 5_000)
    assert reader.cursor().execute("SELECT count(*) FROM packets").fetchone() == (5_000,)


def test_analysis_views_of_an_unanalysed_store_work_from_any_cursor(outbreak_store: Path) -> None:
    """Before any analysis the views have no files to read; a cursor of the shared connection must still read them."""
    reader = StoreReader(outbreak_store)
    cursor = reader.cursor()
    for view in ("events", "attacks", "port_series"):
        assert cursor.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
    client = TestClient(create_app(reader), raise_server_exceptions=False)
    assert client.get("/api/events").json()["rows"] == []
    assert client.get("/api/attacks").status_code == 200
