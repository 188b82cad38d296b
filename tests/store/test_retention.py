"""Retention: hours older than --keep leave the dataset, logged in the catalog; nothing comes back."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.compaction import delete_retired, live_files_by_hour
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.store.retention import RetentionError, apply_retention, parse_keep
from iotscope.telescope.ingest import ingest

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("retention") / "three-hours.pcap"
    simulate_darknet(DarknetConfig(packets=9_000, hours=3, seed=4, start=START), path)
    return path


def count(store: Path, where: str = "true") -> int:
    with PacketStore(store) as s:
        return connect(s).execute(f"SELECT count(*) FROM packets WHERE {where}").fetchone()[0]


def test_old_hours_are_removed_and_logged(capture: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([capture], store)
    total, first_hour = count(store), count(store, "hour = 0")
    assert 0 < first_hour < total
    with PacketStore(store) as s:
        # one day kept, now = 1 day 1.5 h after the start: only hour 00 (ended 01:00) is older
        assert apply_retention(s, parse_keep("1d"), now=START + timedelta(days=1, hours=1, minutes=30)) == 1
        log = s.state.retention_log()
        assert [(h, rows, keep) for h, _, rows, keep, _ in log] == [("2026-01-01 00", first_hour, "1d")]
        assert sorted(live_files_by_hour(s)) == ["2026-01-01 01", "2026-01-01 02"]
    assert count(store) == total - first_hour
    with PacketStore(store) as s:
        assert delete_retired(s, grace_seconds=0) == 1
    assert not (store / "packets" / "date=2026-01-01" / "hour=00").exists()
    ingest([capture], store)  # the capture is still known: its old hour does not come back
    assert count(store) == total - first_hour


def test_keep_parsing() -> None:
    assert parse_keep("400d") == timedelta(days=400)
    assert parse_keep("36h") == timedelta(hours=36)
    for bad in ("0d", "12x", "d", "-3d", ""):
        with pytest.raises(RetentionError):
            parse_keep(bad)


def test_bad_keep_on_the_command_line_is_one_line(capture: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([capture], store)
    result = subprocess.run([sys.executable, "-m", "iotscope", "compact", "--store", str(store), "--keep", "12x"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--keep '12x'" in result.stderr
    assert count(store) == 9_000


def test_compact_command_compacts_and_applies_retention(capture: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([capture], store)
    total = count(store)
    result = subprocess.run([sys.executable, "-m", "iotscope", "compact", "--store", str(store), "--keep", "36500d"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "0 hour(s) removed" in result.stderr
    assert count(store) == total
