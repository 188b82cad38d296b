"""Indicators from a real ingested store against the simulator's ground truth; merging."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from iotscope.share.indicators import (
    Indicator,
    canonical_value,
    dos_victim_indicators,
    indicator_type,
    merge_indicators,
    scanner_indicators,
    survey_aggregates,
)
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect

SCANNER_KINDS = {"mirai", "iot_worm", "pc_scanner", "udp_prober", "icmp_prober", "ssh_scanner", "zmap", "masscan"}


def by_address(truth: pa.Table) -> dict[str, dict]:
    return {str(ipaddress.IPv4Address(row["src"])): row for row in truth.to_pylist()}


def views(store_dir: Path, sql: str) -> dict[str, tuple]:
    with PacketStore(store_dir, read_only=True) as store:
        con = connect(store)
        try:
            return {row[0]: row[1:] for row in con.execute(sql).fetchall()}
        finally:
            con.close()


def test_scanners_are_the_scanning_sources_with_their_tool(darknet_store: tuple[Path, Path], truth: pa.Table) -> None:
    rows = by_address(truth)
    scanners = scanner_indicators(darknet_store[0], "sensor-a")
    profiles = views(darknet_store[0], "SELECT src_ip, classification, tools, country, asn FROM sources")
    events = views(darknet_store[0], "SELECT src_ip, count(*), sum(packets) FROM events "
                                     "WHERE traffic_class = 'scan' GROUP BY src_ip")
    values = {i.value for i in scanners}
    assert {a for a, r in rows.items() if r["kind"] in SCANNER_KINDS} <= values
    assert not {a for a, r in rows.items() if r["kind"] == "backscatter_victim"} & values
    for ind in scanners:
        row = rows[ind.value]
        if row["kind"] == "noise":
            continue  # noise sources that send SYNs look like scans; they carry no tool
        assert set(ind.tools) == ({row["tool"]} if row["tool"] else set()), (ind, row["kind"])
        assert ind.sources == {"sensor-a"} and ind.roles == {"scanner"}
        assert ind.first_seen >= row["first_ts"] and ind.last_seen <= row["last_ts"]
        assert ind.packets <= row["packets"]
        # the profile is the sources view's; one sighting per scanner event of the events view
        classification, tools, country, asn = profiles[ind.value]
        assert (ind.classification, ind.country, ind.asn) == (classification, country, asn)
        assert set(ind.tools) <= set(tools)
        assert (ind.sightings, ind.packets) == events[ind.value]
        if row["kind"] == "mirai":
            assert ind.classification == "malicious"
    mirai = [i for i in scanners if rows[i.value]["kind"] == "mirai"]
    assert all(set(i.ports) <= {23, 2323} for i in mirai)
    assert sum(i.ports[0] == 23 for i in mirai) > 0.8 * len(mirai)  # 9 in 10 Mirai SYNs go to 23
    assert sum(i.packets for i in scanners) > 0.8 * sum(r["packets"] for r in rows.values() if r["kind"] in SCANNER_KINDS)


def test_dos_victims_are_the_backscatter_sources(darknet_store: tuple[Path, Path], truth: pa.Table) -> None:
    rows = by_address(truth)
    victims = dos_victim_indicators(darknet_store[0], "sensor-a")
    assert {i.value for i in victims} == {a for a, r in rows.items() if r["kind"] == "backscatter_victim"}
    attacks = views(darknet_store[0], "SELECT victim_ip, count(*), sum(packets) FROM attacks GROUP BY victim_ip")
    for ind in victims:
        assert ind.packets == rows[ind.value]["packets"] and ind.ports[0] == rows[ind.value]["sport"]
        assert (ind.sightings, ind.packets) == attacks[ind.value]  # one sighting per attack


def test_no_survey_no_aggregates(darknet_store: tuple[Path, Path]) -> None:
    assert survey_aggregates(darknet_store[0]) == []


def test_merge_per_type_and_value() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    a = Indicator("ipv4-addr", "192.0.2.1", frozenset({"scanner"}), 3, frozenset({"us"}), t0, t0 + timedelta(hours=2),
                  frozenset({"mirai"}), (23,), 100)
    b = Indicator("ipv4-addr", "192.0.2.1", frozenset({"c2"}), 2, frozenset({"feed"}), t0 - timedelta(days=1), t0)
    c = Indicator("domain-name", "192-0-2-1.example", frozenset({"c2"}), 1, frozenset({"feed"}), t0, t0)
    merged = merge_indicators([[a], [b, c]])
    assert len(merged) == 2
    ip = next(m for m in merged if m.type == "ipv4-addr")
    assert ip.sightings == 5 and ip.sources == {"us", "feed"} and ip.roles == {"scanner", "c2"}
    assert ip.first_seen == t0 - timedelta(days=1) and ip.last_seen == t0 + timedelta(hours=2)
    assert ip.tools == {"mirai"} and ip.packets == 100


def test_types_and_canonical_values() -> None:
    assert indicator_type("192.0.2.1") == "ipv4-addr" and indicator_type("2001:db8::/32") == "ipv6-addr"
    assert indicator_type("Bad.Example.") == "domain-name" and indicator_type("http://x.example/a") == "url"
    assert canonical_value("ipv4-addr", "192.0.2.1/32") == "192.0.2.1"
    assert canonical_value("ipv4-addr", "192.0.2.7/24") == "192.0.2.0/24"
    assert canonical_value("domain-name", "Bad.Example.") == "bad.example"
