"""The analysis runner: incremental == batch, late data, kill -9 mid-analysis, shard merge, bad input."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.base import Partition
from iotscope.telescope.passes.registry import default_passes
from iotscope.telescope.passes.runner import analyze, hour_columns
from iotscope.telescope.passes.settings import AnalysisSettings
from iotscope.telescope.passes.tagging import tag_hour
from tests.telescope.passes.captures import (
    at,
    darknet_address,
    iotscope,
    seconds,
    syn,
    write_capture,
)

VIEWS = {
    "events": "SELECT * EXCLUDE (open) FROM events ORDER BY ALL",
    "attacks": "SELECT * EXCLUDE (open) FROM attacks ORDER BY ALL",
    "port_series": "SELECT * FROM port_series ORDER BY ALL",
    "sources": "SELECT * FROM sources ORDER BY src_ip",
    "alerts": "SELECT * FROM alerts ORDER BY ALL",
    "categories": "SELECT category, count(*) FROM packets GROUP BY ALL ORDER BY ALL",
}


def _views(store: Path) -> dict[str, list[tuple]]:
    with PacketStore(store) as s:
        con = connect(s)
        return {name: con.sql(q).fetchall() for name, q in VIEWS.items()}


def test_incremental_with_late_data_equals_batch(tmp_path: Path, captures: list[Path]) -> None:
    ingest(captures, tmp_path / "batch")
    analyze(tmp_path / "batch")
    ingest(captures[:1], tmp_path / "inc")
    analyze(tmp_path / "inc")
    ingest(captures[1:], tmp_path / "inc")  # adds packets to hours already analysed
    report = analyze(tmp_path / "inc")
    assert report.hours_analysed == 3
    assert _views(tmp_path / "inc") == _views(tmp_path / "batch")
    assert analyze(tmp_path / "inc").hours_analysed == 0  # idempotent


def test_late_data_for_an_earlier_hour_joins_an_event(tmp_path: Path) -> None:
    """Hour 11 analysed first; then a capture of hour 10 arrives whose packets continue into hour 11's event."""
    src = "203.0.113.9"
    early = [(at("2016-09-01T10:52:00") + seconds(60 * i), syn(src, darknet_address(i), 23)) for i in range(8)]
    late = [(at("2016-09-01T11:00:00") + seconds(60 * i), syn(src, darknet_address(100 + i), 23)) for i in range(5)]
    write_capture(tmp_path / "late11.pcap", late)
    write_capture(tmp_path / "early10.pcap", early)
    ingest([tmp_path / "late11.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    ingest([tmp_path / "early10.pcap"], tmp_path / "s")
    report = analyze(tmp_path / "s")
    assert report.hours_analysed == 2  # hour 10 is new and earlier: it and everything after it
    with PacketStore(tmp_path / "s") as s:
        rows = connect(s).sql("SELECT packets, destinations FROM events").fetchall()
    assert rows == [(13, 13)]


def test_changed_settings_reanalyse_everything(tmp_path: Path, captures: list[Path]) -> None:
    ingest(captures[:1], tmp_path / "s")
    analyze(tmp_path / "s")
    before = _views(tmp_path / "s")["port_series"]
    report = analyze(tmp_path / "s", {"series_bucket_s": 300})
    assert report.hours_analysed == 3
    after = _views(tmp_path / "s")["port_series"]
    assert {r[3] for r in after} == {300} and sum(r[4] for r in after) == sum(r[4] for r in before)
    assert analyze(tmp_path / "s").hours_analysed == 0  # the setting is stored, not reverted


def test_kill_9_mid_analysis_then_rerun_gives_identical_datasets(tmp_path: Path) -> None:
    simulate_darknet(DarknetConfig(packets=120_000, hours=10, seed=4), tmp_path / "d.pcap")
    ingest([tmp_path / "d.pcap"], tmp_path / "clean")
    analyze(tmp_path / "clean")
    ingest([tmp_path / "d.pcap"], tmp_path / "s")
    proc = subprocess.Popen([sys.executable, "-m", "iotscope", "analyze", "--store", str(tmp_path / "s")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = 0
    deadline = time.monotonic() + 120
    while committed == 0 and time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(f"file:{tmp_path / 's' / 'state.sqlite'}?mode=ro", uri=True) as db:
                committed = db.execute("SELECT count(*) FROM analysed_hours").fetchone()[0]
        except sqlite3.OperationalError:
            pass  # the table does not exist yet
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(tmp_path / "s" / "state.sqlite") as db:
        at_kill = db.execute("SELECT count(*) FROM analysed_hours").fetchone()[0]
    assert 1 <= at_kill < 10, at_kill  # killed part-way
    analyze(tmp_path / "s")
    assert _views(tmp_path / "s") == _views(tmp_path / "clean")
    leftovers = [p for p in (tmp_path / "s" / "analysis").rglob("*.parquet")]
    expected = [p for p in (tmp_path / "clean" / "analysis").rglob("*.parquet")]
    assert len(leftovers) == len(expected)  # the killed run's uncommitted files are gone


def test_source_sharded_runs_merge_to_the_whole_hour(tmp_path: Path, captures: list[Path]) -> None:
    """The partition-parallel contract: shards by source hash, run with their state, merge == one run."""
    ingest(captures[:1], tmp_path / "s")
    with PacketStore(tmp_path / "s") as s:
        files = sorted(str(tmp_path / "s" / f) for e in s.state.all_ingested() for f in e.files)
    passes = default_passes(AnalysisSettings())
    columns = hour_columns(passes)
    hours = sorted({int(Path(f).parent.name.split("=")[1]) for f in files})
    day_hour = 409080  # 2016-09-01T00 in hours since the epoch

    def run(shard: int | None, carried: dict) -> dict:
        con = duckdb.connect()
        out = {}
        for h in hours:
            table = pq.read_table([f for f in files if f"/hour={h:02d}/" in f], columns=columns, partitioning=None)
            if shard is not None:  # by source: IPv4 by the address's low bit, IPv6 all in shard 0
                table = table.filter(pc.equal(pc.bit_wise_and(pc.fill_null(table.column("src"), 0), 1), shard))
            con.register("packets_hour", table)
            end = (day_hour + h + 1) * 3600 * 10**6
            for p in passes:
                rows, carried[p.name] = p.run(Partition(day_hour + h, con, end, table, tag_hour(table)),
                                             carried.get(p.name, {}))
                out.setdefault((h, p.name), []).append(rows)
        return out

    whole = run(None, {})
    shards = [run(i, {}) for i in range(2)]
    for (h, name), [rows] in whole.items():
        p = next(p for p in passes if p.name == name)
        merged, _ = p.merge([(s[(h, name)][0], {}) for s in shards])
        assert _sorted(merged) == _sorted(rows), (h, name)


def _sorted(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=repr)


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("args", [
    ["--event-idle", "-1"], ["--event-idle", "0"], ["--darknet", "198.18.0.0/33"], ["--darknet", "not-a-net"],
    ["--darknet", "2001:db8::/32"], ["--series-bucket", "7"],
])
def test_bad_input_one_line_exit_2_store_untouched(tmp_path: Path, captures: list[Path], args: list[str]) -> None:
    iotscope("ingest", str(captures[0]), "--store", str(tmp_path / "s"))
    before = _tree_digest(tmp_path / "s")
    result = iotscope("analyze", "--store", str(tmp_path / "s"), *args, check=False)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert _tree_digest(tmp_path / "s") == before


def test_ingest_analyses_unless_told_not_to(tmp_path: Path, captures: list[Path]) -> None:
    iotscope("ingest", str(captures[0]), "--store", str(tmp_path / "a"), "--no-analyze")
    assert "analysis:" not in iotscope("ingest", str(captures[0]), "--store", str(tmp_path / "a"), "--no-analyze").stderr
    out = iotscope("sql", "--store", str(tmp_path / "a"), "--csv", "SELECT count(*) AS n FROM events").stdout
    assert out.split() == ['"n"', "0"]
    result = iotscope("ingest", str(captures[0]), "--store", str(tmp_path / "b"))
    assert "analysis: 3 of 3 hours" in result.stderr
    out = iotscope("sql", "--store", str(tmp_path / "b"), "--csv",
                   "SELECT count(*) > 0 AS ok FROM events WHERE src_ip LIKE '%.%.%.%'").stdout
    assert out.split() == ['"ok"', "true"]
