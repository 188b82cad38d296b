"""``iotscope report`` and ``iotscope ip``: real subprocesses over a simulated, ingested store."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from tests.telescope.passes.captures import iotscope


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("report")
    result = simulate_darknet(DarknetConfig(packets=50_000, hours=2, seed=11), d / "s.pcap")
    iotscope("ingest", str(d / "s.pcap"), "--store", str(d / "store"))  # runs analyze at its end
    return d / "store", result.truth_path


def _sql(store: Path, query: str) -> list[tuple]:
    with PacketStore(store, read_only=True) as s:
        return connect(s).sql(query).fetchall()


@pytest.mark.parametrize("by", ["country", "asn", "port", "category", "tool"])
def test_report_json_and_csv_agree_with_sql(store: tuple[Path, Path], by: str) -> None:
    root, _ = store
    rows = json.loads(iotscope("report", "--store", str(root), "--by", by, "--top", "5", "--json").stdout)
    assert 1 <= len(rows) <= 5
    assert [r["packets"] for r in rows] == sorted((r["packets"] for r in rows), reverse=True)
    table = list(csv.DictReader(io.StringIO(iotscope("report", "--store", str(root), "--by", by, "--top", "5",
                                                     "--csv").stdout)))
    assert [int(r["packets"]) for r in table] == [r["packets"] for r in rows]
    if by == "tool":
        expected = dict(_sql(root, "SELECT coalesce(CAST(tool AS VARCHAR), 'none'), count(*) FROM packets "
                                   "WHERE traffic_class = 'scan' GROUP BY 1"))
        assert {r["tool"]: r["packets"] for r in rows} == {k: v for k, v in expected.items() if k in
                                                            {r["tool"] for r in rows}}
    if by == "country":
        total = _sql(root, "SELECT count(*) FROM packets")[0][0]
        assert all(abs(r["share"] - r["packets"] / total) < 1e-9 for r in rows)
    human = iotscope("report", "--store", str(root), "--by", by)
    assert f"by {by}" in human.stdout


def test_report_time_range_filters(store: tuple[Path, Path]) -> None:
    root, _ = store
    first = json.loads(iotscope("report", "--store", str(root), "--by", "tool", "--json",
                                "--from", "2016-09-01T00:00", "--to", "2016-09-01T01:00").stdout)
    expected = _sql(root, "SELECT count(*) FROM packets WHERE traffic_class = 'scan' "
                          "AND ts < TIMESTAMPTZ '2016-09-01 01:00:00+00'")[0][0]
    assert sum(r["packets"] for r in first) == expected
    assert 0 < expected < _sql(root, "SELECT count(*) FROM packets WHERE traffic_class = 'scan'")[0][0]


def test_ip_profile_of_a_mirai_bot_with_its_events(store: tuple[Path, Path]) -> None:
    root, truth_path = store
    truth = pq.read_table(truth_path).to_pylist()
    bot = max((t for t in truth if t["kind"] == "mirai"), key=lambda t: t["packets"])
    address = ".".join(str(bot["src"] >> k & 255) for k in (24, 16, 8, 0))
    found = json.loads(iotscope("ip", address, "--store", str(root), "--json").stdout)
    profile = found["profile"]
    assert profile["src_ip"] == address and profile["classification"] == "malicious"
    assert profile["packets"] == bot["packets"] and profile["tools"] == ["mirai"]
    assert sum(e["packets"] for e in found["events"]) == bot["packets"]
    assert found["attacks"] == [] and {s["provides"] for s in found["enrichment_sources"]} == {"geo", "asn"}
    human = iotscope("ip", address, "--store", str(root)).stdout
    assert "malicious" in human and "events" in human
    unseen = json.loads(iotscope("ip", "192.0.2.1", "--store", str(root), "--json").stdout)
    assert unseen["profile"] is None and unseen["events"] == []


def test_ip_profile_of_a_dos_victim_lists_its_attacks(store: tuple[Path, Path]) -> None:
    root, _ = store
    victim = _sql(root, "SELECT victim_ip FROM attacks ORDER BY packets DESC LIMIT 1")[0][0]
    found = json.loads(iotscope("ip", victim, "--store", str(root), "--json").stdout)
    assert found["attacks"] and "dos_victim" in found["profile"]["tags"]


@pytest.mark.parametrize("args, words", [
    (["report", "--by", "city"], "unknown grouping"),
    (["report", "--by", "port", "--from", "2016-09-02", "--to", "2016-09-01"], "is after --to"),
    (["report", "--from", "yesterday"], "not an ISO 8601"),
    (["report", "--top", "0"], "--top"),
    (["ip", "not-an-address"], "not an IP address"),
    (["ip", "300.1.2.3"], "not an IP address"),
])
def test_bad_input_is_one_line_and_exit_2(store: tuple[Path, Path], args: list[str], words: str) -> None:
    root, _ = store
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    result = iotscope(*args, "--store", str(root), check=False)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert result.stdout == ""
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before


def test_not_a_store_is_one_line(tmp_path: Path) -> None:
    for args in (["report"], ["ip", "8.8.8.8"]):
        result = iotscope(*args, "--store", str(tmp_path / "none"), check=False)
        assert result.returncode == 2 and "not an iotscope store" in result.stderr
        assert not (tmp_path / "none").exists()
