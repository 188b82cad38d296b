"""`store check --repair` on compacted hours: found, rebuilt from the captures that filled them, or
a clear line saying which capture file must be put back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.check import find_damage, find_damaged_hours
from iotscope.store.compaction import compact_hours, live_files_by_hour
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest
from iotscope.telescope.repair import rebuild_hours

START = datetime(2026, 3, 1, tzinfo=UTC)
KEY = "count(*), sum(hash(ts, src, dst, proto, sport, dport, seq, ip_id, tcp_flags, ttl, ip_len, tool))"
HOUR = "2026-03-01 00"


def fingerprint(store: Path) -> tuple[int, int]:
    with PacketStore(store, read_only=True) as s:
        return tuple(connect(s).execute(f"SELECT {KEY} FROM packets").fetchone())


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("captures")
    paths = []
    for seed in range(3):  # three captures over the same two hours
        path = out / f"c{seed}.pcap"
        simulate_darknet(DarknetConfig(packets=4_000, hours=2, seed=seed, start=START), path)
        paths.append(path)
    return paths


def compacted_store(captures: list[Path], tmp_path: Path, late: bool = True) -> tuple[Path, list[Path], Path]:
    """A store of copies of ``captures``: hours compacted, then (``late``) one more capture ingested
    into the compacted hours; returns the store, the copies and hour 00's compacted file."""
    sources = []
    for path in captures:
        copy = tmp_path / "captures" / path.name
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(path, copy)
        sources.append(copy)
    store = tmp_path / "store"
    ingest(sources[:2], store)
    with PacketStore(store) as s:
        assert compact_hours(s, before=datetime.now(UTC)) == 2
    if late:
        ingest(sources[2:], store)
    with PacketStore(store) as s:
        compacted = next(s.root / f for f in live_files_by_hour(s)[HOUR] if "compact-" in f)
    return store, sources, compacted


def test_a_damaged_compacted_file_is_found_and_its_hour_rebuilt(captures: list[Path], tmp_path: Path) -> None:
    store, _, compacted = compacted_store(captures, tmp_path)
    before = fingerprint(store)
    compacted.write_bytes(compacted.read_bytes()[:-100])  # cut short
    with PacketStore(store) as s:
        assert find_damage(s) == []  # no single capture owns those rows...
        hours = find_damaged_hours(s)  # ...so the damage is reported by hour
        assert [h.hour for h in hours] == [HOUR] and "unreadable" in hours[0].problems[0]
        assert str(compacted) in hours[0].problems[0]
        [outcome] = rebuild_hours(hours, s)
        assert outcome.startswith(f"rebuilt hour {HOUR} from 3 capture(s)"), outcome
        assert find_damaged_hours(s) == [] and find_damage(s) == []
        assert len(live_files_by_hour(s)[HOUR]) == 1
    assert fingerprint(store) == before


def test_a_compacted_file_with_the_wrong_rows_is_found(captures: list[Path], tmp_path: Path) -> None:
    store, _, compacted = compacted_store(captures, tmp_path, late=False)
    pq.write_table(pq.read_table(compacted).slice(0, 10), compacted)  # readable, right columns, rows lost
    with PacketStore(store) as s:
        [hour] = find_damaged_hours(s)
    assert hour.hour == HOUR and "rows, the catalog says" in hour.problems[0]


def test_an_hour_whose_capture_is_gone_is_left_alone_with_a_clear_line(captures: list[Path], tmp_path: Path) -> None:
    store, sources, compacted = compacted_store(captures, tmp_path)
    compacted.unlink()
    sources[1].unlink()  # as a sensor's spool file, deleted once stored
    with PacketStore(store) as s:
        live = s.state.live_files()
        [outcome] = rebuild_hours(find_damaged_hours(s), s)
        assert s.state.live_files() == live
    assert outcome.startswith(f"hour {HOUR} not repaired") and str(sources[1]) in outcome
    assert "put those files back" in outcome


def test_store_check_repair_rebuilds_a_compacted_hour(captures: list[Path], tmp_path: Path) -> None:
    store, _, compacted = compacted_store(captures, tmp_path)
    before = fingerprint(store)
    compacted.unlink()

    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "iotscope", "store", "check", "--store", str(store), *extra],
                              capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "1000"})

    found = check()
    assert found.returncode == 1 and f"{compacted.name}: missing" in found.stderr + found.stdout, found.stderr
    repaired = check("--repair")
    assert repaired.returncode == 0 and f"rebuilt hour {HOUR}" in repaired.stderr + repaired.stdout, repaired.stderr
    assert "all files readable" in (check().stderr + check().stdout)
    assert fingerprint(store) == before
