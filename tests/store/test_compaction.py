"""Compaction: many files per hour -> one, with the same rows, swapped in atomically for readers."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.compaction import compact_hours, delete_retired, live_files_by_hour
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest

START = datetime(2026, 3, 1, tzinfo=UTC)
KEY = "count(*), sum(hash(ts, src, dst, proto, sport, dport, seq, ip_id, tcp_flags, ttl, ip_len, tool))"


def fingerprint(store: Path) -> tuple[int, int]:
    with PacketStore(store) as s:
        return tuple(connect(s).execute(f"SELECT {KEY} FROM packets").fetchone())


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("captures")
    paths = []
    for seed in range(4):  # four captures over the same two hours: four files in each hour
        path = out / f"c{seed}.pcap"
        simulate_darknet(DarknetConfig(packets=5_000, hours=2, seed=seed, start=START), path)
        paths.append(path)
    return paths


def test_compaction_keeps_every_row_in_one_file_per_hour(captures: list[Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest(captures, store)
    before = fingerprint(store)
    with PacketStore(store) as s:
        assert {len(f) for f in live_files_by_hour(s).values()} == {4}
        assert compact_hours(s, before=datetime.now(UTC)) == 2
        hours = live_files_by_hour(s)
        assert len(hours) == 2 and all(len(f) == 1 and "compact-" in f[0] for f in hours.values())
        assert compact_hours(s, before=datetime.now(UTC)) == 0  # idempotent
        # while the writer runs, retired files wait out the grace period for readers that listed them
        assert len(list((store / "packets").rglob("*.parquet"))) == 10
        assert fingerprint(store) == before
        assert delete_retired(s) == 0
        assert delete_retired(s, grace_seconds=0) == 8
    assert len(list((store / "packets").rglob("*.parquet"))) == 2
    assert fingerprint(store) == before


def test_unfinished_hour_is_left_alone(captures: list[Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest(captures[:2], store)
    with PacketStore(store) as s:
        assert compact_hours(s, before=START.replace(hour=1, minute=30)) == 1  # hour 01 not over yet
        assert sorted(len(f) for f in live_files_by_hour(s).values()) == [1, 2]


def test_later_ingest_into_a_compacted_hour_is_compacted_again(captures: list[Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest(captures[:3], store)
    with PacketStore(store) as s:
        compact_hours(s, before=datetime.now(UTC))
    ingest(captures[3:], store)
    with PacketStore(store) as s:
        assert compact_hours(s, before=datetime.now(UTC)) == 2
        assert {len(f) for f in live_files_by_hour(s).values()} == {1}
    reference = tmp_path / "reference"
    ingest(captures, reference)
    assert fingerprint(store) == fingerprint(reference)


def test_readers_never_see_a_gap_or_a_double(captures: list[Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest(captures, store)
    expected = fingerprint(store)[0]
    seen: list[int] = []
    done, reading = threading.Event(), threading.Event()

    def reader() -> None:
        while not done.is_set():
            with PacketStore(store, read_only=True) as s:  # a reader: no clean-up, no lock
                seen.append(connect(s).execute("SELECT count(*) FROM packets").fetchone()[0])
            reading.set()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert reading.wait(60)  # reads before, during and after the compaction (not a race on a busy machine)
        with PacketStore(store) as s:
            compact_hours(s, before=datetime.now(UTC))
        after = len(seen) + 2
        deadline = time.monotonic() + 60
        while len(seen) < after and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        done.set()
        thread.join()
    assert len(seen) >= 2 and set(seen) == {expected}


def test_remains_of_a_killed_compaction_are_removed_on_open(captures: list[Path], tmp_path: Path) -> None:
    """A compacted file moved into place but never committed (killed before the catalog
    transaction) is not part of the dataset and is deleted by the next open."""
    store = tmp_path / "store"
    ingest(captures[:2], store)
    before = fingerprint(store)
    some = next((store / "packets").rglob("*.parquet"))
    stray = some.parent / "compact-0123456789abcdef.parquet"
    stray.write_bytes(some.read_bytes())
    assert fingerprint(store) == before
    assert not stray.exists()


def test_writer_opening_the_store_keeps_retired_files_for_their_grace_period(
    captures: list[Path], tmp_path: Path,
) -> None:
    """A reader that listed the files before a compaction must still find them when another writer
    (a restarted sensor, ``iotscope ingest``) opens the store during the grace period: only
    ``delete_retired`` removes retired files, and only after the grace period."""
    store = tmp_path / "store"
    ingest(captures[:2], store)
    before = fingerprint(store)
    with PacketStore(store, read_only=True) as reader:
        listed = reader.committed_files()  # the reader's snapshot, taken before the compaction
        with PacketStore(store) as s:
            assert compact_hours(s, before=datetime.now(UTC)) == 2
        with PacketStore(store) as s:  # the next writer's open, within the grace period
            assert delete_retired(s) == 0
        assert [p for p in listed if not p.exists()] == []
        assert sum(pq.read_metadata(p).num_rows for p in listed) == before[0]
    with PacketStore(store) as s:
        assert delete_retired(s, grace_seconds=0) == 4  # the grace-period path still deletes them
    assert len(list((store / "packets").rglob("*.parquet"))) == 2
    assert fingerprint(store) == before
