"""source_hours (the compiled grouping) against a direct GROUP BY over the stored packets."""

from __future__ import annotations

from pathlib import Path

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
    synack,
    synack6,
    udp_probe,
    unreachable,
    write_capture,
)

#: What ``source_hours`` must hold: one row per (hour, source, protocol, port, class); backscatter has no port.
DIRECT = """
    SELECT epoch_us(time_bucket(INTERVAL 1 hour, ts)) AS hour, src, src6, proto,
           CASE WHEN traffic_class = 'backscatter' THEN NULL ELSE dport END AS port, traffic_class::VARCHAR,
           epoch_us(min(ts)), epoch_us(max(ts)), count(*),
           count(*) FILTER (WHERE tool = 'mirai'), count(*) FILTER (WHERE tool = 'zmap'),
           count(*) FILTER (WHERE tool = 'masscan')
    FROM packets GROUP BY ALL ORDER BY ALL
"""
STORED = """
    SELECT epoch_us(time_bucket(INTERVAL 1 hour, first_ts)), src, src6, proto, dport, traffic_class,
           epoch_us(first_ts), epoch_us(last_ts), packets, mirai, zmap, masscan
    FROM source_hours ORDER BY ALL
"""


def _both(store: Path) -> tuple[list[tuple], list[tuple]]:
    with PacketStore(store, read_only=True) as s:
        con = connect(s)
        return con.sql(STORED).fetchall(), con.sql(DIRECT).fetchall()


def test_source_hours_equal_a_direct_group_by_on_the_simulator(tmp_path: Path) -> None:
    simulate_darknet(DarknetConfig(packets=60_000, hours=2, seed=5, outbreak=True), tmp_path / "d.pcap")
    ingest([tmp_path / "d.pcap"], tmp_path / "s")
    analyze(tmp_path / "s")
    stored, direct = _both(tmp_path / "s")
    assert stored == direct and len(stored) > 1000
    assert {row[5] for row in stored} == {"scan", "backscatter", "other"}
    assert any(row[9] for row in stored) and any(row[10] for row in stored)  # mirai and zmap counted


def test_ipv6_sources_backscatter_and_portless_packets_group_like_sql(tmp_path: Path) -> None:
    """IPv6 sources take the kernel's other path (np.unique); backscatter and ICMP rows have no port."""
    t0 = at("2026-03-01T10:00:00")
    packets = []
    for i in range(40):
        when = t0 + seconds(30 * i)
        dst = darknet_address(i)
        packets += [
            (when, syn("203.0.113.5", dst, 23)),
            (when + 1, syn("203.0.113.5", dst, 2323, seq=int.from_bytes(bytes(map(int, dst.split("."))), "big"))),
            (when + 2, syn6("2001:db8::5", "2001:db8:ffff::1", 23 if i % 3 else 2323)),
            (when + 3, syn6("2001:db8::6", "2001:db8:ffff::2", 22)),
            (when + 4, synack("192.0.2.80", dst, 80, client_port=1000 + i)),
            (when + 5, synack6("2001:db8::80", "2001:db8:ffff::3", 443, client_port=2000 + i)),
            (when + 6, unreachable("192.0.2.99", dst)),
            (when + 7, udp_probe("203.0.113.9", dst, 5060)),
        ]
    packets.append((t0 + seconds(3700), syn6("2001:db8::5", "2001:db8:ffff::1", 23)))  # the next hour
    ingest([write_capture(tmp_path / "hand.pcap", packets)], tmp_path / "s")
    analyze(tmp_path / "s")
    stored, direct = _both(tmp_path / "s")
    assert stored == direct
    ipv6 = [row for row in stored if row[1] is None]
    assert len(ipv6) == 5  # ::5 on 23 and 2323, ::6 on 22, ::80 backscatter, ::5 on 23 in the next hour
    backscatter = [row for row in stored if row[5] == "backscatter"]
    assert len(backscatter) == 3 and all(  # the SYN-ACKs of .80 and ::80, the ICMP unreachables of .99
        row[4] is None and row[8] == 40 for row in backscatter)
    assert [row[9] for row in stored if row[1] is not None and row[4] == 2323] == [40]  # Mirai's seq == dst
