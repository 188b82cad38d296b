"""Scanner events against hand-built edge cases (real pcaps) and the simulator's ground truth."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze
from tests.telescope.passes.captures import (
    at,
    darknet_address,
    seconds,
    syn,
    syn6,
    udp_probe,
    write_capture,
)

SCANNER = "203.0.113.7"


def _events(store: Path, where: str = "true") -> list[dict]:
    with PacketStore(store) as s:
        return connect(s).sql(f"SELECT * FROM events WHERE {where} ORDER BY first_ts, dport").to_arrow_table().to_pylist()


def test_gap_exactly_at_threshold_continues_the_event_one_microsecond_more_ends_it(tmp_path: Path) -> None:
    t0 = at("2016-09-01T10:00:00")
    idle = seconds(600)
    times = [t0, t0 + idle, t0 + 2 * idle + 1, t0 + 2 * idle + 2]  # gaps: exactly 600 s, then 600 s + 1 µs
    write_capture(tmp_path / "a.pcap", [(t, syn(SCANNER, darknet_address(i), 23)) for i, t in enumerate(times)])
    ingest([tmp_path / "a.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    events = _events(tmp_path / "s", f"src_ip = '{SCANNER}'")
    assert [(e["packets"], e["destinations"]) for e in events] == [(2, 2), (2, 2)]
    assert events[0]["last_ts"] == events[0]["first_ts"].__class__.fromtimestamp((t0 + idle) / 1e6, events[0]["first_ts"].tzinfo)


def test_event_spans_hours_files_and_separate_ingests(tmp_path: Path) -> None:
    """One scan from 10:50 to 11:20 delivered in two captures ingested (and analysed) one after the other."""
    start = at("2016-09-01T10:50:00")
    packets = [(start + seconds(60 * i), syn(SCANNER, darknet_address(i % 20), 2323, seq=i)) for i in range(31)]
    write_capture(tmp_path / "1.pcap", [p for p in packets if p[0] < at("2016-09-01T11:05:00")])
    write_capture(tmp_path / "2.pcap", [p for p in packets if p[0] >= at("2016-09-01T11:05:00")])
    ingest([tmp_path / "1.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    first = _events(tmp_path / "s")
    assert [(e["packets"], e["open"]) for e in first] == [(15, True)]  # 10:50..11:04, may continue
    ingest([tmp_path / "2.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    events = _events(tmp_path / "s")
    assert len(events) == 1
    e = events[0]
    assert (e["packets"], e["destinations"], e["dst_24s"], e["dport"], e["traffic_class"]) == (31, 20, 1, 2323, "scan")
    assert int(e["first_ts"].timestamp() * 1e6) == start
    assert int(e["last_ts"].timestamp() * 1e6) == start + seconds(1800)


def test_keys_split_events_and_ipv6_sources_have_text(tmp_path: Path) -> None:
    t0 = at("2016-09-01T10:00:00")
    packets = [(t0 + seconds(i), syn(SCANNER, darknet_address(i), 23)) for i in range(3)]
    packets += [(t0 + seconds(i), udp_probe(SCANNER, darknet_address(i), 53)) for i in range(2)]
    packets += [(t0 + seconds(i), syn6("2001:db8::1", f"2001:db8:ffff::{i + 1}", 22)) for i in range(4)]
    write_capture(tmp_path / "a.pcap", packets)
    ingest([tmp_path / "a.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    got = {(e["src_ip"], e["proto"], e["dport"]): (e["packets"], e["destinations"], e["dst_24s"]) for e in _events(tmp_path / "s")}
    assert got == {(SCANNER, 6, 23): (3, 3, 1), (SCANNER, 17, 53): (2, 2, 1), ("2001:db8::1", 6, 22): (4, 4, None)}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sim")
    result = simulate_darknet(DarknetConfig(packets=150_000, hours=3, seed=5), d / "d.pcap")
    ingest([d / "d.pcap"], d / "s")
    analyze(d / "s")
    return d / "s", result.truth_path


@pytest.mark.parametrize("kind", ["mirai", "zmap", "masscan"])
def test_simulated_scanners_events_add_up_to_their_truth(simulated: tuple[Path, Path], kind: str) -> None:
    store, truth_path = simulated
    truth = pq.read_table(truth_path)
    with PacketStore(store) as s:
        con = connect(s)
        con.register("truth", truth)
        rows = con.sql(f"""
            SELECT t.src, any_value(t.packets) AS want, sum(e.packets) AS got,
                   epoch_us(any_value(t.first_ts)) = epoch_us(min(e.first_ts)) AS first_ok,
                   epoch_us(any_value(t.last_ts)) = epoch_us(max(e.last_ts)) AS last_ok,
                   bool_and(e.tool = '{kind}') AS tool_ok, count(*) AS events
            FROM truth t JOIN events e ON e.src = t.src WHERE t.kind = '{kind}' GROUP BY t.src
        """).fetchall()
        sources = con.sql(f"SELECT count(*) FROM truth WHERE kind = '{kind}'").fetchall()[0][0]
    assert len(rows) == sources > 0
    for src, want, got, first_ok, last_ok, tool_ok, _ in rows:
        assert (got, first_ok, last_ok, tool_ok) == (want, True, True, True), src
    if kind == "zmap":  # one port per campaign, thousands of packets a minute: one event per source
        assert all(n == 1 for *_, n in rows)
