"""The darknet simulator, checked from the outside: tshark decodes the captures it writes.

Each property is read back from the pcap by an independent decoder (tshark) and joined with the
ground-truth sidecar by source address, so a test fails if the bytes do not say what the truth says.
"""

from __future__ import annotations

import collections
import ipaddress
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import iotscope.simulate.darknet_packets as darknet_packets
from iotscope.simulate.addresses import RIR_SLASH8, reserved_mask
from iotscope.simulate.darknet import simulate_darknet
from iotscope.simulate.darknet_config import DEFAULT_MIX, DarknetConfig, SimulationError
from iotscope.simulate.darknet_truth import truth_path

START = datetime(2016, 9, 1, tzinfo=UTC).timestamp()
FIELDS = ["frame.time_epoch", "ip.src", "ip.dst", "ip.proto", "ip.id", "ip.ttl", "tcp.srcport", "tcp.dstport",
          "udp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.window_size_value", "icmp.type"]


@dataclass
class Packets:
    """tshark's view of a capture: one numpy column per field (missing fields are -1)."""

    ts: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    proto: np.ndarray
    ip_id: np.ndarray
    ttl: np.ndarray
    sport: np.ndarray
    dport: np.ndarray  # TCP or UDP destination port
    flags: np.ndarray
    seq: np.ndarray
    win: np.ndarray
    icmp_type: np.ndarray
    kind: np.ndarray  # from the ground truth, by source address

    def __len__(self) -> int:
        return len(self.ts)


def ip_to_int(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def first_int(text: str, base: int = 10) -> int:
    """tshark repeats a field for headers quoted inside ICMP errors ("a,b"); the outer one is first."""
    return int(text.split(",")[0], base) if text else -1


def tshark_packets(path: Path) -> Packets:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for name in FIELDS:
        cmd += ["-e", name]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    truth = pq.read_table(truth_path(path)).to_pydict()
    kind_of = dict(zip(truth["src"], truth["kind"], strict=True))
    src = np.array([ip_to_int(r[1].split(",")[0]) for r in rows], dtype=np.int64)
    return Packets(
        ts=np.array([float(r[0]) for r in rows]),
        src=src,
        dst=np.array([ip_to_int(r[2].split(",")[0]) for r in rows], dtype=np.int64),
        proto=np.array([first_int(r[3]) for r in rows]),
        ip_id=np.array([first_int(r[4], 16) for r in rows]),
        ttl=np.array([first_int(r[5]) for r in rows]),
        sport=np.array([first_int(r[6]) for r in rows]),
        dport=np.array([first_int(r[7]) if r[7] else first_int(r[8]) for r in rows]),
        flags=np.array([first_int(r[9], 16) for r in rows]),
        seq=np.array([first_int(r[10]) for r in rows], dtype=np.int64),
        win=np.array([first_int(r[11]) for r in rows]),
        icmp_type=np.array([first_int(r[12]) for r in rows]),
        kind=np.array([kind_of.get(int(s), "?") for s in src]),
    )


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("darknet") / "darknet.pcap"
    simulate_darknet(DarknetConfig(packets=60_000, hours=2, seed=42), path)
    return path


@pytest.fixture(scope="module")
def packets(capture: Path) -> Packets:
    return tshark_packets(capture)


@pytest.fixture(scope="module")
def truth(capture: Path) -> dict[str, list]:
    return pq.read_table(truth_path(capture)).to_pydict()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{name}.pcap" for name in "abc")
    for path, seed in ((a, 7), (b, 7), (c, 8)):
        simulate_darknet(DarknetConfig(packets=5_000, seed=seed), path)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert truth_path(a).read_bytes() == truth_path(b).read_bytes()


def test_tshark_reads_every_packet_with_valid_checksums(capture: Path) -> None:
    result = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
         "-o", "udp.check_checksum:TRUE", "-T", "fields",
         "-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "udp.checksum.status",
         "-e", "icmp.checksum.status", "-e", "_ws.malformed"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert len(rows) == 60_000
    statuses = collections.Counter(status for row in rows for field in row.split("\t") for status in field.split(","))
    # 1 good, 2 unverified, 3 not present (UDP quoted in ICMP errors carries none); 0 would be bad.
    assert set(statuses) <= {"1", "2", "3", ""}, statuses


def test_every_packet_belongs_to_a_source_of_the_truth(packets: Packets, truth: dict[str, list]) -> None:
    assert "?" not in set(packets.kind)
    per_source = collections.Counter(packets.src.tolist())
    assert {s: n for s, n in zip(truth["src"], truth["packets"], strict=True)} == dict(per_source)
    first = {s: t.timestamp() for s, t in zip(truth["src"], truth["first_ts"], strict=True)}
    last = {s: t.timestamp() for s, t in zip(truth["src"], truth["last_ts"], strict=True)}
    seen_last = dict(zip(packets.src.tolist(), packets.ts.tolist(), strict=True))  # packets are in time order
    seen_first = dict(zip(packets.src[::-1].tolist(), packets.ts[::-1].tolist(), strict=True))
    assert all(abs(seen_first[s] - first[s]) < 1e-5 and abs(seen_last[s] - last[s]) < 1e-5 for s in first)


def test_packets_by_kind_follow_the_mix(packets: Packets) -> None:
    counts = collections.Counter(packets.kind.tolist())
    for kind, share in DEFAULT_MIX.items():
        assert counts[kind] / len(packets) == pytest.approx(share, abs=0.002), kind
    iot = (np.isin(packets.dport, [23, 2323, 5555, 7547, 37215, 52869, 8080, 81]) & (packets.proto == 6)
           & (packets.flags == 0x02)).mean()
    assert 0.60 < iot < 0.75  # NICTER 2016: about 2/3 of darknet packets target IoT


def test_time_order_and_span(packets: Packets) -> None:
    assert np.all(np.diff(packets.ts) >= 0)
    assert packets.ts.min() >= START and packets.ts.max() < START + 2 * 3600


def test_mirai_fingerprint(packets: Packets) -> None:
    mirai = packets.kind == "mirai"
    assert np.all(packets.flags[mirai] == 0x02)
    assert np.all(packets.seq[mirai] == packets.dst[mirai])
    assert set(packets.dport[mirai]) == {23, 2323}
    assert (packets.dport[mirai] == 2323).mean() == pytest.approx(0.1, abs=0.01)
    assert np.all(packets.ttl[mirai] <= 64)
    # The fingerprint is Mirai's own: other SYNs match it only by 1-in-2^32 chance.
    others = ~mirai & (packets.proto == 6) & (packets.seq == packets.dst)
    assert others.sum() == 0
    # Each bot scans many darknet addresses from one fixed source port (Mirai picks it at start).
    bots = collections.defaultdict(set)
    for src, sport in zip(packets.src[mirai].tolist(), packets.sport[mirai].tolist(), strict=True):
        bots[src].add(sport)
    assert all(len(ports) == 1 for ports in bots.values())


def test_research_scanner_fingerprints(packets: Packets) -> None:
    zmap = packets.kind == "zmap"
    assert zmap.any() and np.all(packets.ip_id[zmap] == 54321) and np.all(packets.win[zmap] == 65535)
    assert np.all(packets.ttl[zmap] >= 200)
    masscan = packets.kind == "masscan"
    assert masscan.any() and np.all(packets.win[masscan] == 1024)
    expected = (packets.dst[masscan] ^ packets.dport[masscan] ^ packets.seq[masscan]) & 0xFFFF
    assert np.array_equal(packets.ip_id[masscan], expected)
    assert (packets.ip_id[~zmap] == 54321).mean() < 0.001


def test_backscatter_victims_answer_from_the_attacked_service(packets: Packets, truth: dict[str, list]) -> None:
    victims = [i for i, kind in enumerate(truth["kind"]) if kind == "backscatter_victim"]
    assert len(victims) >= 3
    for i in victims:
        mine = packets.src == truth["src"][i]
        flags, icmp = packets.flags[mine], packets.icmp_type[mine]
        replies = np.isin(flags, [0x12, 0x04, 0x14]) | (icmp == 3)
        assert replies.all()
        assert mine.sum() >= 25 and np.ptp(packets.ts[mine]) >= 60  # Corsaro's DoS thresholds
        tcp = packets.proto[mine] == 6
        assert np.all(packets.sport[mine][tcp] == truth["sport"][i])
    assert {"synack", "rst", "icmp_unreachable"} >= {truth["style"][i] for i in victims}


def test_destinations_inside_the_darknet(packets: Packets) -> None:
    net = ipaddress.IPv4Network("198.18.0.0/15")
    first = int(net.network_address)
    assert np.all((packets.dst >= first) & (packets.dst < first + net.num_addresses))
    assert len(np.unique(packets.dst)) > 0.5 * len(packets)


def test_sources_are_allocated_space_except_noise(packets: Packets, truth: dict[str, list]) -> None:
    src = np.array(truth["src"], dtype=np.uint32)
    noise = np.array(truth["kind"]) == "noise"
    assert not reserved_mask(src[~noise]).any()
    allocated = {s8 for blocks in RIR_SLASH8.values() for s8 in blocks}
    assert set((src[~noise] >> 24).tolist()) <= allocated
    assert reserved_mask(src[noise]).any()  # spoofed and looped sources are part of the noise
    styles = set(np.array(truth["style"])[noise])
    assert {"ttl_high", "port_zero", "xmas", "null_scan", "syn_fin", "reserved_source", "src_is_dst"} == styles
    noisy = packets.kind == "noise"
    assert (packets.ttl[noisy] >= 200).any() and (packets.dport[noisy] == 0).any()
    assert {0x29, 0x00, 0x03} <= set(packets.flags[noisy].tolist())


def test_mirai_sources_mostly_asia_and_latin_america(truth: dict[str, list]) -> None:
    src = np.array(truth["src"], dtype=np.uint32)[np.array(truth["kind"]) == "mirai"]
    south = set(RIR_SLASH8["APNIC"]) | set(RIR_SLASH8["LACNIC"])
    assert np.isin(src >> 24, list(south)).mean() > 0.55


def distinct_2323_sources_per_hour(path: Path) -> list[int]:
    p = tshark_packets(path)
    hour = ((p.ts - START) // 3600).astype(int)
    on_2323 = (p.dport == 2323) & (p.proto == 6)
    return [len(set(p.src[on_2323 & (hour == h)].tolist())) for h in range(hour.max() + 1)]


def test_outbreak_grows_2323_sources_hour_by_hour(tmp_path: Path) -> None:
    outbreak, steady = tmp_path / "outbreak.pcap", tmp_path / "steady.pcap"
    simulate_darknet(DarknetConfig(packets=40_000, hours=4, seed=3, outbreak=True), outbreak)
    simulate_darknet(DarknetConfig(packets=40_000, hours=4, seed=3), steady)
    grows = distinct_2323_sources_per_hour(outbreak)
    level = distinct_2323_sources_per_hour(steady)
    assert all(b > a for a, b in zip(grows, grows[1:], strict=False)) and grows[-1] > 3 * grows[0], grows
    assert max(level) < 1.5 * min(level), level


def test_other_darknet_start_and_pcapng_gz_in_several_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(darknet_packets, "CHUNK_PACKETS", 4_000)  # 5 windows, joined into one file
    path = tmp_path / "other.pcapng.gz"
    start = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    result = simulate_darknet(DarknetConfig(packets=20_000, hours=0.5, seed=5, darknet="203.0.113.0/24",
                                            start=start), path)
    assert result.packets == 20_000 and result.file_bytes == path.stat().st_size
    p = tshark_packets(path)
    assert len(p) == 20_000 and np.all(np.diff(p.ts) >= 0)
    assert p.ts.min() >= start.timestamp() and p.ts.max() < start.timestamp() + 1800
    assert np.all((p.dst >> 8) == ip_to_int("203.0.113.0") >> 8)
    mirai = p.kind == "mirai"
    assert np.all(p.seq[mirai] == p.dst[mirai])
    assert not list(tmp_path.glob(".*"))  # no scratch or partial files left behind


@pytest.mark.parametrize("config, message", [
    (DarknetConfig(packets=-1), "packets must be >= 0"),
    (DarknetConfig(darknet="198.18.0.0/33"), "bad darknet prefix"),
    (DarknetConfig(hours=0), "hours must be > 0"),
])
def test_impossible_settings_are_refused_before_writing(tmp_path: Path, config: DarknetConfig, message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        simulate_darknet(config, tmp_path / "x.pcap")
    assert not list(tmp_path.iterdir())


def iotscope(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotscope", *args], capture_output=True, text=True)


def test_cli_simulate_writes_capture_truth_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "cli.pcap"
    result = iotscope("simulate", "--out", str(out), "--packets", "3000", "--hours", "0.25", "--seed", "1",
                      "--outbreak", "--start", "2016-09-20T12:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "mirai" in result.stderr and "3,000" in result.stderr and "packets/s" in result.stderr
    p = tshark_packets(out)
    assert len(p) == 3000 and p.ts.min() >= datetime(2016, 9, 20, 12, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("args, message", [
    (["--darknet", "not-a-prefix"], "bad darknet prefix"),
    (["--packets", "-5"], "packets must be >= 0"),
    (["--start", "yesterday"], "--start"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = iotscope("simulate", "--out", str(tmp_path / "x.pcap"), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.pcap").exists()
