"""The simulator's ground truth for the analysis passes, checked against the packets it wrote.

The capture is ingested into a real store and each truth column is recomputed from the packets with
DuckDB: a truth column that disagrees with the bytes fails here, before a pass is tested against it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from iotscope.simulate.darknet import simulate_darknet
from iotscope.simulate.darknet_config import DEFAULT_START, DarknetConfig, SimulationError
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("truth")
    result = simulate_darknet(DarknetConfig(packets=80_000, hours=2, seed=11), root / "d.pcap")
    ingest([root / "d.pcap"], root / "store")
    return root / "store", result.truth_path


@contextlib.contextmanager
def query_with_truth(store_dir: Path, truth_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A query connection on the store's packets with the ground truth registered as ``truth``."""
    with PacketStore(store_dir) as s:
        con = connect(s)
        con.register("truth", pq.read_table(truth_path))
        yield con


def test_tool_column_is_each_sources_fingerprint_majority(store: tuple[Path, Path]) -> None:
    with query_with_truth(*store) as con:
        rows = con.execute("""
            WITH per_source AS (
                SELECT p.src, nullif(mode(coalesce(p.tool, '')), '') AS majority, count(*) AS syns
                FROM packets p WHERE p.flag_class = 'syn' GROUP BY p.src)
            SELECT t.kind, t.tool, ps.majority, count(*) FROM truth t JOIN per_source ps USING (src)
            GROUP BY ALL ORDER BY ALL""").fetchall()
    assert {(kind, tool) for kind, tool, _, _ in rows if tool is not None} == {
        ("mirai", "mirai"), ("zmap", "zmap"), ("masscan", "masscan")}
    for kind, tool, majority, n in rows:  # mode() skips nulls, hence coalesce: null is a majority too
        assert tool == majority, (kind, tool, majority, n)


def test_backscatter_episodes_hold_their_packets_and_peaks(store: tuple[Path, Path]) -> None:
    with query_with_truth(*store) as con:
        rows = con.execute("""
            WITH pk AS (SELECT src, ts FROM packets
                        WHERE src IN (SELECT src FROM truth WHERE kind = 'backscatter_victim')),
            peaks AS (
                SELECT a.src, max(n) AS peak FROM (
                    SELECT a.src, a.ts, count(*) AS n FROM pk a JOIN pk b
                    ON a.src = b.src AND b.ts >= a.ts AND b.ts < a.ts + INTERVAL 60 SECOND GROUP BY a.src, a.ts) a
                GROUP BY a.src),
            seen AS (SELECT src, min(ts) AS first, max(ts) AS last, count(*) AS packets FROM pk GROUP BY src)
            SELECT t.src, t.episode_start, t.episode_end, t.packets, t.peak_60s, s.first, s.last, s.packets, p.peak
            FROM truth t JOIN seen s USING (src) JOIN peaks p USING (src)""").fetchall()
        victims = con.execute("SELECT count(*) FROM truth WHERE kind = 'backscatter_victim'").fetchone()[0]
        others = con.execute("SELECT count(*) FROM truth WHERE kind <> 'backscatter_victim' "
                             "AND (episode_start IS NOT NULL OR peak_60s IS NOT NULL)").fetchone()[0]
    assert len(rows) == victims >= 3 and others == 0
    for _src, start, end, packets, peak, first, last, seen, counted in rows:
        assert start <= first <= last < end and end - start >= timedelta(seconds=60)
        assert packets == seen and peak == counted and 1 <= peak <= packets


def test_outbreak_start_in_metadata_and_in_the_bytes(tmp_path: Path) -> None:
    config = DarknetConfig(packets=120_000, hours=6, seed=4, outbreak=True, outbreak_start=0.5)
    result = simulate_darknet(config, tmp_path / "o.pcap")
    meta = pq.read_schema(result.truth_path).metadata
    onset = datetime.fromisoformat(meta[b"outbreak_start"].decode())
    assert onset == DEFAULT_START + timedelta(hours=3)
    assert int(meta[b"outbreak_start_us"]) == int(onset.timestamp() * 1e6)
    ingest([tmp_path / "o.pcap"], tmp_path / "store")
    with query_with_truth(tmp_path / "store", result.truth_path) as con:
        per_hour = dict(con.execute(
            "SELECT hour, count(DISTINCT src) FROM packets WHERE proto = 6 AND dport = 2323 GROUP BY hour").fetchall())
        telnet = dict(con.execute(
            "SELECT hour, count(DISTINCT src) FROM packets WHERE proto = 6 AND dport = 23 GROUP BY hour").fetchall())
        # No bot that was not already running is infected before the onset: every Mirai source that
        # appears in the first half was active from the run's start or within the steady population.
        newcomers_before = con.execute(
            "SELECT count(*) FROM truth WHERE kind = 'mirai' AND first_ts >= ? AND first_ts < ?",
            [DEFAULT_START + timedelta(hours=2), onset]).fetchone()[0]
        newcomers_after = con.execute(
            "SELECT count(*) FROM truth WHERE kind = 'mirai' AND first_ts >= ? AND first_ts < ?",
            [onset + timedelta(hours=2), onset + timedelta(hours=3)]).fetchone()[0]
    # Before the onset the bots scan 23 only (Mirai's predecessors); 2323 comes with the outbreak.
    assert [per_hour.get(h, 0) for h in (0, 1, 2)] == [0, 0, 0], per_hour
    after = [per_hour[h] for h in (3, 4, 5)]
    assert 0 < after[0] < after[1] < after[2], per_hour
    assert newcomers_after > 3 * max(1, newcomers_before), (newcomers_before, newcomers_after)
    assert min(telnet[h] for h in (0, 1, 2)) > 0.8 * max(telnet[h] for h in (0, 1, 2)), telnet  # 23: level before


def test_outbreak_start_metadata_defaults(tmp_path: Path) -> None:
    simulate_darknet(DarknetConfig(packets=3_000, hours=1, seed=1, outbreak=True), tmp_path / "a.pcap")
    simulate_darknet(DarknetConfig(packets=3_000, hours=1, seed=1), tmp_path / "b.pcap")
    a = pq.read_schema(tmp_path / "a.pcap.truth.parquet").metadata
    b = pq.read_schema(tmp_path / "b.pcap.truth.parquet").metadata
    assert datetime.fromisoformat(a[b"outbreak_start"].decode()) == datetime(2016, 9, 1, tzinfo=UTC)
    assert b"outbreak_start" not in b


@pytest.mark.parametrize("value", [-0.1, 1.0, 2.0])
def test_bad_outbreak_start_refused(tmp_path: Path, value: float) -> None:
    with pytest.raises(SimulationError, match="outbreak_start must be in"):
        simulate_darknet(DarknetConfig(packets=100, outbreak=True, outbreak_start=value), tmp_path / "x.pcap")
    assert not (tmp_path / "x.pcap").exists()
