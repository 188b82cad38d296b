"""The per-organization darknet query: what it finds equals the simulator's ground truth, each host
under its one organization only, IPv4 and IPv6, and nothing outside the organizations' networks."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from iotscope.notify.daedalus import event_id, find_org_hosts
from iotscope.notify.orgs import OrgCatalog
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze
from tests.decode.pcaps import ETH_IPV4, ETH_IPV6, ethernet, ipv4, ipv6, tcp, write_pcap
from tests.notify.conftest import Darknet, org_entry, write_orgs

SYN, SYNACK = 0x02, 0x12


def test_every_source_of_an_org_network_with_truthful_evidence(darknet: Darknet, tmp_path: Path) -> None:
    kinds = ("mirai", "zmap", "masscan", "backscatter_victim", "iot_worm")
    chosen = {kind: darknet.sources(kind, 4) for kind in kinds}
    inside = [row for rows in chosen.values() for row in rows]
    # half the sources as /32s of org A, the others inside a /16 of org B (plus whatever else lives there)
    org_b_net = ipaddress.ip_network(f"{inside[-1]['ip']}/16", strict=False)
    a_rows = [r for r in inside if ipaddress.ip_address(r["ip"]) not in org_b_net][::2]
    orgs = write_orgs(tmp_path / "orgs.toml", [
        org_entry("A", ["a@a.example"], [f"{r['ip']}/32" for r in a_rows]),
        org_entry("B", ["b@b.example"], [str(org_b_net)]),
    ])
    catalog = OrgCatalog.load(orgs)
    with PacketStore(darknet.store, read_only=True) as store:
        hosts = find_org_hosts(store, catalog)
    expected_b = [r for r in darknet.truth if ipaddress.ip_address(r["ip"]) in org_b_net]
    scanning = {"mirai", "zmap", "masscan", "iot_worm", "ssh_scanner", "pc_scanner", "udp_prober", "icmp_prober"}
    by_key = {(h.org, h.host): h for h in hosts if h.role in ("scan", "backscatter")}
    for org, rows in (("A", a_rows), ("B", expected_b)):
        for row in rows:
            if row["kind"] not in scanning | {"backscatter_victim"}:
                continue
            host = by_key[(org, row["ip"])]
            assert host.role == ("backscatter" if row["kind"] == "backscatter_victim" else "scan")
            assert host.packets == row["packets"]
            assert host.first_seen == row["first_ts"] and host.last_seen == row["last_ts"]
            assert host.tool == row["tool"]
            if row["dport"] is not None and row["kind"] != "backscatter_victim":
                assert row["dport"] in host.port_numbers
            if row["kind"] == "backscatter_victim":
                assert host.port_numbers == [row["sport"]]
            assert 1 <= len(host.samples) <= 3 and host.samples[0]["ts"] == row["first_ts"].isoformat()
    # nothing outside: every host found lies in its own org's networks
    for host in hosts:
        assert catalog.by_name(host.org).contains(host.host)
    assert {h.host for h in hosts if h.org == "A"} == {r["ip"] for r in a_rows}
    # the event ids: exactly the host's rows of the events view (scans) or attacks view (backscatter),
    # each id the documented hash recomputed here from the view's columns
    with PacketStore(darknet.store, read_only=True) as store:
        con = connect(store)
        events = con.execute("SELECT src_ip, proto, dport, first_ts, packets FROM events "
                             "WHERE traffic_class = 'scan'").fetchall()
        attacks = con.execute("SELECT victim_ip, proto, first_ts, packets FROM attacks").fetchall()
        con.close()
    expected_ids: dict[tuple[str, str], set[str]] = {}
    expected_packets: dict[tuple[str, str], int] = {}
    for src_ip, proto, dport, first_ts, packets in events:
        expected_ids.setdefault((src_ip, "scan"), set()).add(event_id(src_ip, proto, dport, "scan", first_ts))
        expected_packets[(src_ip, "scan")] = expected_packets.get((src_ip, "scan"), 0) + packets
    for victim_ip, proto, first_ts, packets in attacks:
        key = (victim_ip, "backscatter")
        expected_ids.setdefault(key, set()).add(event_id(victim_ip, proto, None, "backscatter", first_ts))
        expected_packets[key] = expected_packets.get(key, 0) + packets
    assert hosts and any(h.role == "backscatter" for h in hosts)
    for host in hosts:
        assert host.event_ids and len(set(host.event_ids)) == len(host.event_ids)
        assert set(host.event_ids) == expected_ids[(host.host, host.role)]
        assert host.packets == expected_packets[(host.host, host.role)]
    # stable: the same store gives the same ids again
    with PacketStore(darknet.store, read_only=True) as store:
        assert [h.event_ids for h in find_org_hosts(store, catalog)] == [h.event_ids for h in hosts]


def test_ipv6_hosts_and_the_time_window(tmp_path: Path) -> None:
    frames = [
        ethernet(ipv6("2001:db8:1::5", "2001:db8:ff::1", tcp(40000, 23, SYN, seq=1), 6), ETH_IPV6),
        ethernet(ipv6("2001:db8:1::5", "2001:db8:ff::2", tcp(40000, 2323, SYN, seq=2), 6), ETH_IPV6),
        ethernet(ipv6("2001:db8:2::9", "2001:db8:ff::3", tcp(443, 5555, SYNACK, seq=3), 6), ETH_IPV6),
        ethernet(ipv6("2001:db8:3::1", "2001:db8:ff::4", tcp(40000, 23, SYN, seq=4), 6), ETH_IPV6),  # no org
        ethernet(ipv4("192.0.2.10", "198.18.0.1", tcp(4000, 23, SYN, seq=5), 6), ETH_IPV4),
    ]
    write_pcap(tmp_path / "v6.pcap", frames, 1)
    ingest([tmp_path / "v6.pcap"], tmp_path / "store")
    # thresholds lowered so that the one backscatter packet is an attack (the defaults need 25 packets)
    analyze(tmp_path / "store", {"attack_min_packets": 1, "attack_min_duration_s": 0.0, "attack_min_window_packets": 1})
    catalog = OrgCatalog.load(write_orgs(tmp_path / "orgs.toml", [
        org_entry("Six", ["six@six.example"], ["2001:db8:1::/48", "2001:db8:2::/48"]),
        org_entry("Four", ["four@four.example"], ["192.0.2.0/24"]),
    ]))
    with PacketStore(tmp_path / "store", read_only=True) as store:
        hosts = {(h.org, h.host, h.role): h for h in find_org_hosts(store, catalog)}
        assert set(hosts) == {("Six", "2001:db8:1::5", "scan"), ("Six", "2001:db8:2::9", "backscatter"),
                              ("Four", "192.0.2.10", "scan")}
        scan = hosts[("Six", "2001:db8:1::5", "scan")]
        assert scan.packets == 2 and sorted(scan.port_numbers) == [23, 2323] and scan.targets == 2
        assert hosts[("Six", "2001:db8:2::9", "backscatter")].port_numbers == [443]
        assert len(scan.event_ids) == 2 and len(hosts[("Six", "2001:db8:2::9", "backscatter")].event_ids) == 1
        assert scan.samples[0]["dport"] == 23 and scan.protocols == ("tcp",)
        later = scan.first_seen.replace(microsecond=scan.first_seen.microsecond + 500)
        windowed = find_org_hosts(store, catalog, since=later)
        assert [(h.host, h.packets) for h in windowed if h.host == "2001:db8:1::5"] == [("2001:db8:1::5", 1)]
