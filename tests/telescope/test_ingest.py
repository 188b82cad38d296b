"""End to end: simulator capture -> `iotscope ingest` -> store, checked against tshark.

These run the real CLI in a subprocess, on real pcap files written by the simulator.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iotscope.capture import CaptureError, open_capture
from iotscope.capture.writer import write_pcapng
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import content_hash, ingest_file

FLAG_BITS = {"fin": 1, "syn": 2, "rst": 4, "psh": 8, "ack": 16}


def iotscope(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "iotscope", *args], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"iotscope {args} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "darknet.pcap"
    iotscope("simulate", "--out", str(path), "--packets", "30000", "--hours", "2", "--seed", "11")
    return path


def tshark_rows(path: Path) -> list[list[str]]:
    fields = ["ip.proto", "tcp.dstport", "udp.dstport", "tcp.flags", "tcp.seq_raw", "ip.dst", "icmp.type"]
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "ip", "-T", "fields", "-E", "separator=/t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    # ICMP errors quote the original IP/TCP header and tshark reports those fields as a second
    # value ("1,6"); keep the outer header's only, and no transport fields for a non-TCP/UDP packet.
    rows = []
    for line in out.splitlines():
        r = [v.split(",")[0] for v in line.split("\t")]
        proto = r[0]
        if proto != "6":
            r[1] = r[3] = r[4] = ""
        if proto != "17":
            r[2] = ""
        rows.append(r)
    return rows


def ip_to_int(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def test_ingest_agrees_with_tshark(capture: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    iotscope("ingest", str(capture), "--store", str(store))
    rows = tshark_rows(capture)
    by_proto = collections.Counter(int(r[0]) for r in rows)
    dports = collections.Counter(int(r[1] or r[2]) for r in rows if r[1] or r[2])
    flags = collections.Counter(int(r[3], 16) for r in rows if r[3])
    mirai = sum(1 for r in rows if r[4] and int(r[3], 16) & 0x12 == 0x02 and int(r[4]) == ip_to_int(r[5]))
    with PacketStore(store) as s:
        con = connect(s)
        assert con.execute("SELECT count(*) FROM packets").fetchone()[0] == len(rows)
        assert dict(con.execute("SELECT proto, count(*) FROM packets GROUP BY 1").fetchall()) == dict(by_proto)
        ours_ports = dict(con.execute("SELECT dport, count(*) FROM packets WHERE dport IS NOT NULL GROUP BY 1").fetchall())
        assert ours_ports == dict(dports)
        ours_flags = dict(con.execute("SELECT tcp_flags, count(*) FROM packets WHERE proto = 6 GROUP BY 1").fetchall())
        assert ours_flags == dict(flags)
        ours_mirai = con.execute(
            "SELECT count(*) FROM packets WHERE proto = 6 AND tcp_flags & 18 = 2 AND seq = dst"
        ).fetchone()[0]
        assert ours_mirai == mirai > 0


def test_flag_class_matches_tshark_flags(capture: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    iotscope("ingest", str(capture), "--store", str(store))
    syn_only = sum(1 for r in tshark_rows(capture) if r[3] and int(r[3], 16) & 0x17 == 0x02)
    stats = json.loads(iotscope("stats", "--store", str(store), "--json").stdout)
    assert stats["flag_class"]["syn"] == syn_only
    assert stats["packets"] == sum(stats["flag_class"].values()) == sum(stats["traffic_class"].values())


def test_reingest_same_content_adds_nothing(capture: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    iotscope("ingest", str(capture), "--store", str(store))
    copy = tmp_path / "renamed.pcap"
    copy.write_bytes(capture.read_bytes())
    again = iotscope("ingest", str(capture), str(copy), "--store", str(store))
    assert "already" in again.stderr
    stats = json.loads(iotscope("stats", "--store", str(store), "--json").stdout)
    assert stats["packets"] == len(tshark_rows(capture)) and stats["captures"] == 1


def test_not_a_capture_is_refused_and_store_untouched(capture: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    junk = tmp_path / "notes.txt"
    junk.write_text("this is not a capture\n")
    result = iotscope("ingest", str(capture), str(junk), "--store", str(store), check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "notes.txt" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not store.exists()


def test_torn_last_record_keeps_whole_records(capture: Path, tmp_path: Path) -> None:
    torn = tmp_path / "torn.pcap"
    data = capture.read_bytes()
    torn.write_bytes(data[: len(data) - 7])  # cut inside the last record
    store = tmp_path / "store"
    result = iotscope("ingest", str(torn), "--store", str(store))
    assert "torn" in result.stderr
    stats = json.loads(iotscope("stats", "--store", str(store), "--json").stdout)
    assert stats["packets"] == len(tshark_rows(capture)) - 1
    assert stats["skipped"].get("torn_record") == 1


def test_bad_pcapng_timestamp_skips_that_record_and_keeps_the_rest(capture: Path, tmp_path: Path) -> None:
    """A record dated beyond what the store can partition used to abort the whole file (ValueError)."""
    with open_capture(capture) as reader:
        block = next(reader.blocks())
    ng = tmp_path / "bad-time.pcapng"
    write_pcapng(ng, block)
    data = bytearray(ng.read_bytes())
    eleventh = 28 + 20 + int((32 + ((block.caplen[:10].astype(int) + 3) & ~3)).sum())
    data[eleventh + 12 : eleventh + 16] = b"\xff\xff\xff\x7f"  # timestamp high word: year ~292,000
    ng.write_bytes(bytes(data))
    store = tmp_path / "store"
    result = iotscope("ingest", str(ng), "--store", str(store), check=False)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    stats = json.loads(iotscope("stats", "--store", str(store), "--json").stdout)
    assert stats["skipped"].get("bad_timestamp") == 1
    assert stats["packets"] == len(tshark_rows(capture)) - 1


def test_kill_9_during_ingest_then_rerun_counts_exactly_once(tmp_path: Path) -> None:
    big = tmp_path / "big.pcap"
    iotscope("simulate", "--out", str(big), "--packets", "1500000", "--hours", "3", "--seed", "5")
    small = tmp_path / "small.pcap"
    iotscope("simulate", "--out", str(small), "--packets", "20000", "--seed", "6")
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    iotscope("ingest", str(small), str(big), "--store", str(clean))
    expected = json.loads(iotscope("stats", "--store", str(clean), "--json").stdout)

    proc = subprocess.Popen(
        [sys.executable, "-m", "iotscope", "ingest", str(small), str(big), "--store", str(crashed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    big_staging = crashed / ".staging" / content_hash(big)
    # Kill once the big file is being written: the small one is committed, the big one is half-done.
    while time.monotonic() < deadline and not big_staging.exists():
        time.sleep(0.002)
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "ingest finished before it could be killed"
    partial = json.loads(iotscope("stats", "--store", str(crashed), "--json").stdout)
    assert partial["captures"] == 1 and partial["packets"] < expected["packets"]

    iotscope("ingest", str(small), str(big), "--store", str(crashed))
    assert json.loads(iotscope("stats", "--store", str(crashed), "--json").stdout) == expected


def test_directory_of_captures_is_ingested_in_name_order(capture: Path, tmp_path: Path) -> None:
    sensor = tmp_path / "sensor"
    (sensor / "day2").mkdir(parents=True)
    (sensor / "README.txt").write_text("captures from the darknet sensor\n")
    (sensor / "day2" / "b.pcap").write_bytes(capture.read_bytes())
    iotscope("simulate", "--out", str(sensor / "a.pcapng.gz"), "--packets", "2000", "--seed", "3")
    result = iotscope("ingest", str(sensor), "--store", str(tmp_path / "store"))
    assert result.stderr.index("a.pcapng.gz") < result.stderr.index("b.pcap")
    stats = json.loads(iotscope("stats", "--store", str(tmp_path / "store"), "--json").stdout)
    assert stats["captures"] == 2 and stats["packets"] == len(tshark_rows(capture)) + 2000
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = iotscope("ingest", str(empty), "--store", str(tmp_path / "store2"), check=False)
    assert refused.returncode == 2 and "no capture files" in refused.stderr


# ---- a capture ingested while it was still being written (issue 6, item 8) -------------------

FINGERPRINT = ("SELECT count(*) AS n, sum(hash(ts, src, dst, src6, sport, dport, seq, ip_id, tcp_flags)) AS h "
               "FROM packets")


def fingerprint(store: Path) -> list[dict]:
    return json.loads(iotscope("sql", "--store", str(store), "--json", FINGERPRINT).stdout)


@pytest.fixture(scope="module")
def growing_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("growing")
    out = {}
    for suffix in (".pcap", ".pcapng.gz"):
        out[suffix] = folder / f"sensor{suffix}"
        iotscope("simulate", "--out", str(out[suffix]), "--packets", "20000", "--hours", "2", "--seed", "8")
    return out


@pytest.mark.parametrize("suffix", [".pcap", ".pcapng.gz"])
def test_capture_that_grew_since_its_ingest_adds_only_the_new_records(
        growing_sources: dict[str, Path], tmp_path: Path, suffix: str) -> None:
    full = growing_sources[suffix].read_bytes()
    reference = tmp_path / "reference"
    iotscope("ingest", str(growing_sources[suffix]), "--store", str(reference))
    expected = fingerprint(reference)
    assert expected[0]["n"] == 20000

    growing, store = tmp_path / f"being-written{suffix}", tmp_path / "store"
    cuts = [len(full) * 15 // 100, len(full) * 55 // 100, len(full)]  # e.g. 800 KB of 1.5 MB: mid-record
    written, messages = 0, []
    for cut in cuts:
        with open(growing, "ab") as f:  # the sensor appends; the file is never rewritten
            f.write(full[written:cut])
        written = cut
        messages.append(iotscope("ingest", str(growing), "--store", str(store)).stderr)
    assert fingerprint(store) == expected  # every packet exactly once
    assert all("grew since its ingest" in m for m in messages[1:])
    again = iotscope("ingest", str(growing), "--store", str(store))
    assert "already ingested" in again.stderr and fingerprint(store) == expected


def test_same_path_with_other_content_is_a_new_capture(growing_sources: dict[str, Path], tmp_path: Path) -> None:
    first, second = tmp_path / "first.pcap", tmp_path / "second.pcap"
    iotscope("simulate", "--out", str(first), "--packets", "3000", "--seed", "30")
    iotscope("simulate", "--out", str(second), "--packets", "5000", "--seed", "31")
    rotating, store = tmp_path / "current.pcap", tmp_path / "store"
    shutil.copy(first, rotating)
    iotscope("ingest", str(rotating), "--store", str(store))
    shutil.copy(second, rotating)  # a sensor that reuses the name: larger, but not a continuation
    result = iotscope("ingest", str(rotating), "--store", str(store))
    assert "grew" not in result.stderr
    assert fingerprint(store)[0]["n"] == 8000


def test_capture_growing_during_its_ingest_is_refused_then_taken_whole(
        growing_sources: dict[str, Path], tmp_path: Path) -> None:
    full = growing_sources[".pcap"].read_bytes()
    growing = tmp_path / "being-written.pcap"
    growing.write_bytes(full[:800_000])
    appended = []

    def sensor_writes_on(path: Path, done: int) -> None:  # the sensor appends while ingest reads
        if not appended:
            with open(growing, "ab") as f:
                f.write(full[800_000:1_000_000])
            appended.append(True)

    with PacketStore(tmp_path / "store") as store:
        with pytest.raises(CaptureError, match="still being written"):
            ingest_file(growing, store, sensor_writes_on)
        assert store.state.all_ingested() == []  # nothing committed under a stale hash
        with open(growing, "ab") as f:
            f.write(full[1_000_000:])
        report = ingest_file(growing, store)
        assert report.packets == 20000 and report.content_hash == content_hash(growing)
