"""DoS attacks from backscatter: thresholds, splitting, hour/file/ingest boundaries, simulator truth."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze
from iotscope.telescope.passes.settings import Darknet
from tests.telescope.passes.captures import (
    at,
    darknet_address,
    seconds,
    synack,
    synack6,
    unreachable,
    write_capture,
)

VICTIM = "192.0.2.80"


def _attacks(store: Path) -> list[dict]:
    with PacketStore(store) as s:
        return connect(s).sql("SELECT * FROM attacks ORDER BY first_ts").to_arrow_table().to_pylist()


def _flood(victim: str, start: int, count: int, every_s: float, service: int = 80) -> list[tuple[int, bytes]]:
    return [(start + seconds(i * every_s), synack(victim, darknet_address(i), service)) for i in range(count)]


def _run(tmp_path: Path, packets: list[tuple[int, bytes]], **overrides: object) -> list[dict]:
    write_capture(tmp_path / "a.pcap", packets)
    ingest([tmp_path / "a.pcap"], tmp_path / "s")
    analyze(tmp_path / "s", overrides, Darknet.parse("198.18.0.0/15"))
    return _attacks(tmp_path / "s")


def test_victims_below_any_threshold_are_not_attacks(tmp_path: Path) -> None:
    t0 = at("2016-09-01T10:00:00")
    packets = _flood("192.0.2.1", t0, 24, 1.0)  # 24 packets (< 25), though fast and 23 s long... too short too
    packets += _flood("192.0.2.2", t0, 100, 0.5)  # 100 packets in 49.5 s: shorter than 60 s
    packets += _flood("192.0.2.3", t0, 40, 15.0)  # 40 packets over 585 s: at most 4-5 in any 60 s window
    packets += _flood("192.0.2.4", t0, 61, 1.0)  # 61 packets over 60 s, 60 in one window: an attack
    got = _run(tmp_path, packets)
    assert [(a["victim_ip"], a["packets"], a["peak_window_packets"]) for a in got] == [("192.0.2.4", 61, 60)]
    a = got[0]
    assert (a["proto"], a["victim_ports"], a["duration_s"], a["window_s"]) == (6, [80], 60.0, 60)
    # 61 packets in 60 s seen by a /15 (2^-15 of IPv4): ~1.0167 pps observed, x 32768 for the Internet
    assert a["est_attack_pps"] == pytest.approx(61 / 60 * 2**15)
    assert a["est_peak_pps"] == pytest.approx(1.0 * 2**15)
    assert a["darknet"] == "198.18.0.0/15"


def test_a_pause_longer_than_the_timeout_splits_an_attack(tmp_path: Path) -> None:
    t0 = at("2016-09-01T10:00:00")
    first = _flood(VICTIM, t0, 120, 1.0)  # last packet at t0 + 119 s
    exactly = _flood(VICTIM, t0 + seconds(119 + 300), 120, 1.0)  # gap exactly 300 s: same attack
    longer = _flood(VICTIM, t0 + seconds(119 + 300 + 119 + 300) + 1, 120, 1.0)  # gap 300 s + 1 µs: new one
    got = _run(tmp_path, first + exactly + longer)
    assert [a["packets"] for a in got] == [240, 120]


def test_attack_split_across_two_hours_two_files_two_ingests_is_one(tmp_path: Path) -> None:
    """Only the 60 s windows that straddle 11:00 hold >= 30 packets: the carried rate buckets matter."""
    start, boundary = at("2016-09-01T10:57:00"), at("2016-09-01T11:00:00")
    sparse_before = _flood(VICTIM, start, 17, 10.0)  # 10:57:00 .. 10:59:40 every 10 s
    burst = [(t + seconds(161), f) for t, f in _flood(VICTIM, 0, 39, 1.0)]  # 10:59:41 .. 11:00:19 every 1 s
    burst = [(t + start, f) for t, f in burst]
    sparse_after = _flood(VICTIM, at("2016-09-01T11:00:20"), 11, 10.0)  # 11:00:20 .. 11:02:00
    packets = sparse_before + burst + sparse_after
    write_capture(tmp_path / "1.pcap", [p for p in packets if p[0] < boundary])
    write_capture(tmp_path / "2.pcap", [p for p in packets if p[0] >= boundary])
    ingest([tmp_path / "1.pcap"], tmp_path / "s")
    analyze(tmp_path / "s", {}, Darknet.parse("198.18.0.0/15"))
    assert _attacks(tmp_path / "s") == []  # 10:57-10:59:59 alone holds at most 25 packets in a window
    ingest([tmp_path / "2.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    got = _attacks(tmp_path / "s")
    assert len(got) == 1
    a = got[0]
    assert a["packets"] == len(packets) == 67
    assert int(a["first_ts"].timestamp() * 1e6) == start and int(a["last_ts"].timestamp() * 1e6) == at("2016-09-01T11:02:00")
    assert a["peak_window_packets"] >= 30 and a["open"] is True  # the newest data: it may go on


def test_ipv6_victims_carried_across_hours_keep_their_ports_and_windows(tmp_path: Path) -> None:
    """IPv6 victims are keyed by address like IPv4 ones; an open vector's ports and rate buckets carry over."""
    start, boundary = at("2016-09-01T10:59:00"), at("2016-09-01T11:00:00")
    packets = []
    for victim, build in (("2001:db8::2", synack6), ("2001:db8::1", synack6), (VICTIM, synack)):
        dst = "2001:db8:ffff::9" if build is synack6 else darknet_address(9)
        packets += [(start + seconds(i), build(victim, dst, 80 if i < 60 else 443)) for i in range(120)]
    packets += [(at("2016-09-01T11:10:00") + seconds(i), synack6("2001:db8::1", "2001:db8:ffff::9", 22))
                for i in range(61)]  # 9 min after the first run of ::1: a second attack
    write_capture(tmp_path / "1.pcap", [p for p in packets if p[0] < boundary])
    write_capture(tmp_path / "2.pcap", [p for p in packets if p[0] >= boundary])
    ingest([tmp_path / "1.pcap"], tmp_path / "s")
    analyze(tmp_path / "s", {}, Darknet.parse("198.18.0.0/15"))
    assert _attacks(tmp_path / "s") == []  # 10:59:00-10:59:59 alone: 59 s, shorter than 60 s
    ingest([tmp_path / "2.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    got = sorted(_attacks(tmp_path / "s"), key=lambda a: (a["first_ts"], a["victim_ip"]))
    assert [(a["victim_ip"], a["victim"], a["packets"], a["victim_ports"], a["peak_window_packets"]) for a in got] == [
        (VICTIM, 3221226064, 120, [80, 443], 60),
        ("2001:db8::1", None, 120, [80, 443], 60),
        ("2001:db8::2", None, 120, [80, 443], 60),
        ("2001:db8::1", None, 61, [22], 60),
    ]
    assert all(int(a["last_ts"].timestamp()) - int(a["first_ts"].timestamp()) in (119, 60) for a in got)


def test_icmp_backscatter_is_its_own_vector(tmp_path: Path) -> None:
    t0 = at("2016-09-01T10:00:00")
    packets = [(t0 + seconds(i), unreachable(VICTIM, darknet_address(i))) for i in range(90)]
    packets += _flood(VICTIM, t0, 90, 1.0, service=443)
    got = _run(tmp_path, packets)
    assert sorted((a["proto"], a["packets"], a["victim_ports"]) for a in got) == [(1, 90, []), (6, 90, [443])]


def test_simulated_victims_are_found_with_their_truth(tmp_path: Path) -> None:
    result = simulate_darknet(DarknetConfig(packets=200_000, hours=2, seed=9), tmp_path / "d.pcap")
    ingest([tmp_path / "d.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    truth = pq.read_table(result.truth_path).to_pylist()
    victims = {t["src"]: t for t in truth if t["kind"] == "backscatter_victim"}
    got = _attacks(tmp_path / "s")
    assert {a["victim"] for a in got} <= set(victims)  # no scanner taken for a victim
    dense = [v for v in victims.values() if v["packets"] >= 200]  # hundreds of packets in 2-20 minutes
    assert dense and {v["src"] for v in dense} <= {a["victim"] for a in got}
    for a in got:
        t = victims[a["victim"]]
        assert a["packets"] == t["packets"] and a["first_ts"] == t["first_ts"] and a["last_ts"] == t["last_ts"]
        assert a["proto"] == t["proto"]
        if t["proto"] == 6:
            assert a["victim_ports"] == [t["sport"]]
    with PacketStore(tmp_path / "s") as s:
        assert connect(s).sql("SELECT any_value(darknet) FROM attacks").fetchall()[0][0] == "198.18.0.0/15"
