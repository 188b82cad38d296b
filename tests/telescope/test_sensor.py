"""The live sensor end to end: simulator capture -> tcpreplay into a veth -> `iotscope sensor` on the
other end -> store, in a network namespace each test creates (no other interface is touched).

"Exactly the replayed packets" is checked by count and by a checksum over the columns a replay
keeps (everything but the capture time stamp), against the same captures ingested from file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.simulate.veth_namespace import (
    VethNamespace,
    missing_tools,
    veth_namespace,
)
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())}")

KEY = "hash(ip_version, src, dst, src6, dst6, proto, sport, dport, icmp_type, tcp_flags, seq, ip_id, ttl, ip_len, win)"
RATE = "--pps=20000"


def fingerprint(store: Path) -> tuple[int, int]:
    """(rows, checksum of the key columns) of a store's packets."""
    with PacketStore(store) as s:
        rows, total = connect(s).execute(f"SELECT count(*), coalesce(sum({KEY}), 0) FROM packets").fetchone()
    return int(rows), int(total)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two captures to replay one after the other (a restart between them)."""
    out = tmp_path_factory.mktemp("replay")
    a, b = out / "a.pcap", out / "b.pcap"
    simulate_darknet(DarknetConfig(packets=12_000, hours=0.05, seed=21), a)
    simulate_darknet(DarknetConfig(packets=9_000, hours=0.05, seed=22), b)
    return a, b


@pytest.fixture(scope="module")
def expected(parts: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, int]]:
    out = tmp_path_factory.mktemp("reference")
    result = {}
    for name, paths in (("a", [parts[0]]), ("ab", list(parts))):
        ingest(paths, out / name)
        result[name] = fingerprint(out / name)
    return result


@pytest.fixture
def ns() -> Iterator[VethNamespace]:
    with veth_namespace() as namespace:
        yield namespace


class Sensor:
    """`iotscope sensor` running in the namespace, its stderr collected line by line."""

    def __init__(self, ns: VethNamespace, store: Path, *extra: str, prefix: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        cmd = ns.exec(*prefix, sys.executable, "-m", "iotscope", "sensor", "--interface", ns.receiver,
                      "--store", str(store), *extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).parents[2], env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_capturing(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith("capturing on") for line in self.lines):
            assert self.proc.poll() is None, f"sensor exited {self.proc.returncode}: {self.text}"
            assert time.monotonic() < deadline, f"sensor did not start: {self.text}"
            time.sleep(0.1)

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def capture_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])


def gone(pid: int, timeout: float = 10) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for init to reap it counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def metrics(ns: VethNamespace, port: int) -> dict[str, float]:
    code = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())"
    text = subprocess.run(ns.exec(sys.executable, "-c", code), capture_output=True, text=True, check=True).stdout
    values = {}
    for line in text.splitlines():
        if line.startswith("iotscope_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_sigterm_restart_stores_exactly_the_replayed_packets(
    ns: VethNamespace, parts: tuple[Path, Path], expected: dict[str, tuple[int, int]], tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    first = Sensor(ns, store, "--rotate", "1", "--metrics", "127.0.0.1:9108")
    first.wait_capturing()
    ns.replay(parts[0], RATE)
    deadline = time.monotonic() + 60
    # dumpcap reports its packet count on its own schedule, so "captured" may trail "ingested"
    while (m := metrics(ns, 9108))["iotscope_sensor_packets_ingested_total"] < expected["a"][0] or \
            m["iotscope_sensor_packets_captured_total"] < expected["a"][0]:
        assert time.monotonic() < deadline, m
        time.sleep(0.3)
    assert m["iotscope_sensor_packets_captured_total"] == expected["a"][0]
    assert m["iotscope_sensor_files_ingested_total"] >= 1
    assert m["iotscope_sensor_capture_paused"] == 0
    time.sleep(2.0)  # a few more (empty) one-second files
    first.proc.send_signal(signal.SIGTERM)
    assert first.finish() == 0, first.text
    assert "0 dropped by the kernel" in first.text
    assert fingerprint(store) == expected["a"]
    # analysed once at start and once after the last ingest, not after each of the files: and the
    # store is analysed up to its last commit when the sensor has stopped (nothing left to analyse)
    files, runs = re.search(r"([\d,]+) files -> .* analysed ([\d,]+) time", first.text).groups()
    assert int(files) >= 3 and int(runs) == 2, first.text
    assert analyze(store).hours_analysed == 0

    second = Sensor(ns, store, "--rotate", "1")
    second.wait_capturing()
    ns.replay(parts[1], RATE)
    time.sleep(1.0)  # let the capture read what the kernel holds before it is told to stop
    second.proc.send_signal(signal.SIGTERM)
    assert second.finish() == 0, second.text
    assert fingerprint(store) == expected["ab"]
    assert not [p for p in (store / "spool").iterdir() if p.suffix == ".pcapng"]  # all committed, then deleted


def test_kill_9_then_restart_ingests_the_spool_exactly_once(
    ns: VethNamespace, parts: tuple[Path, Path], expected: dict[str, tuple[int, int]], tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    first = Sensor(ns, store)  # rotate 60 s: the replay stays in the open spool file
    first.wait_capturing()
    capture = first.capture_pid()
    ns.replay(parts[0], RATE)
    time.sleep(1.0)
    first.proc.kill()
    first.finish()
    assert gone(capture), "dumpcap outlived the sensor killed with SIGKILL"
    spooled = [p for p in (store / "spool").iterdir() if p.suffix == ".pcapng"]
    assert spooled, "the killed sensor's capture file should wait in the spool"
    assert fingerprint(store)[0] == 0

    second = Sensor(ns, store, "--rotate", "1")
    second.wait_capturing()
    ns.replay(parts[1], RATE)
    time.sleep(1.0)
    second.proc.send_signal(signal.SIGTERM)
    assert second.finish() == 0, second.text
    assert "left in the spool by an earlier run" in second.text
    assert fingerprint(store) == expected["ab"]


def test_kill_9_after_commit_before_delete_is_not_doubled(
    ns: VethNamespace, parts: tuple[Path, Path], expected: dict[str, tuple[int, int]], tmp_path: Path,
) -> None:
    """A spool file committed but still present (killed between commit and delete) adds nothing."""
    store = tmp_path / "store"
    first = Sensor(ns, store, "--rotate", "1")
    first.wait_capturing()
    ns.replay(parts[0], RATE)
    time.sleep(1.0)
    first.proc.send_signal(signal.SIGTERM)
    assert first.finish() == 0
    # put the committed capture back, as if the kill came right after its commit
    spool = store / "spool"
    (spool / "sensor-00000000T000000000000Z_00001_20000101000000.pcap").write_bytes(parts[0].read_bytes())
    ingest([spool], store)  # committed by content hash, file left in place
    assert fingerprint(store)[0] == 2 * expected["a"][0]  # store now: replayed a + file a
    second = Sensor(ns, store, "--rotate", "1")
    second.wait_capturing()
    second.proc.send_signal(signal.SIGTERM)
    assert second.finish() == 0, second.text
    assert fingerprint(store)[0] == 2 * expected["a"][0]
    assert not list(spool.glob("*.pcap"))


def one_line_error(sensor: Sensor) -> str:
    assert sensor.finish(60) == 2, sensor.text
    assert "Traceback" not in sensor.text
    assert len(sensor.lines) == 1 and sensor.lines[0].startswith("error:"), sensor.text
    return sensor.lines[0]


def test_analysis_interval_out_of_range(ns: VethNamespace, tmp_path: Path) -> None:
    sensor = Sensor(ns, tmp_path / "store", "--analyze-every", "-1")
    assert "--analyze-every must be between 0 and 86400 seconds" in one_line_error(sensor)
    assert not (tmp_path / "store").exists()


def test_missing_interface(ns: VethNamespace, tmp_path: Path) -> None:
    sensor = Sensor(VethNamespace(ns.name, ns.sender, "nosuch0"), tmp_path / "store")
    assert "no such network interface" in one_line_error(sensor)


def test_invalid_bpf(ns: VethNamespace, tmp_path: Path) -> None:
    sensor = Sensor(ns, tmp_path / "store", "--bpf", "tcp port")
    assert "invalid --bpf expression 'tcp port'" in one_line_error(sensor)


def test_no_capture_permission(ns: VethNamespace) -> None:
    with tempfile.TemporaryDirectory(prefix="iotscope-nobody-") as shared:
        os.chmod(shared, 0o777)
        # a service user needs a numba cache directory it can write (the unit file sets one too)
        sensor = Sensor(ns, Path(shared) / "store", prefix=(
            "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"),
            env={"NUMBA_CACHE_DIR": str(Path(shared) / "numba")})
        assert "permission to capture" in one_line_error(sensor)


def test_full_spool_disk_refuses_to_start(ns: VethNamespace, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(spool)], check=True)
    try:
        sensor = Sensor(ns, tmp_path / "store", "--spool", str(spool))
        assert "disk full" in one_line_error(sensor)
    finally:
        subprocess.run(["umount", str(spool)], check=True)


def test_full_spool_disk_while_running_pauses_then_resumes(
    ns: VethNamespace, parts: tuple[Path, Path], expected: dict[str, tuple[int, int]], tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(spool)], check=True)
    try:
        store = tmp_path / "store"
        sensor = Sensor(ns, store, "--rotate", "1", "--spool", str(spool))
        sensor.wait_capturing()
        free = os.statvfs(spool)
        filler = spool / "filler.bin"  # another program fills the disk while the sensor runs
        subprocess.run(["fallocate", "-l", str(free.f_bavail * free.f_frsize - 300_000), str(filler)], check=True)
        ns.replay(parts[0], RATE)
        deadline = time.monotonic() + 30
        while "capture paused" not in sensor.text:
            assert time.monotonic() < deadline, sensor.text
            time.sleep(0.2)
        assert "no space left" in sensor.text
        filler.unlink()
        while "capture resumed" not in sensor.text:
            assert time.monotonic() < deadline + 30, sensor.text
            time.sleep(0.2)
        ns.replay(parts[1], RATE)
        time.sleep(1.0)
        sensor.proc.send_signal(signal.SIGTERM)
        assert sensor.finish() == 0, sensor.text
    finally:
        subprocess.run(["umount", str(spool)], check=True)
    rows = fingerprint(store)[0]
    # all of the replay after the pause, and whatever part of the first the full disk let dumpcap write
    assert expected["ab"][0] - expected["a"][0] < rows < expected["ab"][0]


def test_kernel_drops_are_counted_and_reported(
    ns: VethNamespace, parts: tuple[Path, Path], expected: dict[str, tuple[int, int]], tmp_path: Path,
) -> None:
    """Stall the capture with a tiny kernel buffer: the packets the kernel drops are reported, and
    stored rows + reported drops account for every packet sent."""
    store = tmp_path / "store"
    sensor = Sensor(ns, store, "--buffer-mib", "1")
    sensor.wait_capturing()
    capture = sensor.capture_pid()
    os.kill(capture, signal.SIGSTOP)
    try:
        ns.replay(parts[0], RATE)
    finally:
        os.kill(capture, signal.SIGCONT)
    time.sleep(1.0)
    sensor.proc.send_signal(signal.SIGTERM)
    assert sensor.finish() == 0, sensor.text
    line = next(line for line in sensor.lines if line.startswith("sensor stopped:"))
    drops = int(line.split(" dropped by the kernel")[0].rsplit(", ", 1)[1].replace(",", ""))
    rows = fingerprint(store)[0]
    assert drops > 0 and rows + drops == expected["a"][0], (rows, drops, sensor.text)


def test_store_busy_refuses_before_capturing(ns: VethNamespace, tmp_path: Path) -> None:
    store = tmp_path / "store"
    with PacketStore(store) as busy:
        busy.lock_for_writing()  # an `iotscope ingest` writing into the same store
        sensor = Sensor(ns, store)
        assert "another ingest is writing" in one_line_error(sensor)
    assert not list((store / "spool").glob("*.pcapng"))  # the capture never started


def test_power_cut_leftovers_torn_and_garbage_files(
    ns: VethNamespace, parts: tuple[Path, Path], expected: dict[str, tuple[int, int]], tmp_path: Path,
) -> None:
    """After a power cut the spool may hold a torn file (whole records are kept) and, on a bad
    disk, garbage (moved to spool/rejected with a warning, never deleted); the sensor runs on."""
    store, spool = tmp_path / "store", tmp_path / "store" / "spool"
    spool.mkdir(parents=True)
    data = parts[0].read_bytes()
    (spool / "sensor-A_00001_20260101000000.pcap").write_bytes(data[: len(data) - 7])  # cut in the last record
    (spool / "sensor-A_00002_20260101000100.pcapng").write_bytes(b"\0" * 4096)
    sensor = Sensor(ns, store)
    sensor.wait_capturing()
    deadline = time.monotonic() + 60
    while not any("rejected" in line for line in sensor.lines):
        assert time.monotonic() < deadline, sensor.text
        time.sleep(0.2)
    sensor.proc.send_signal(signal.SIGTERM)
    assert sensor.finish() == 0, sensor.text
    assert fingerprint(store)[0] == expected["a"][0] - 1
    assert [p.name for p in (spool / "rejected").iterdir()] == ["sensor-A_00002_20260101000100.pcapng"]
    assert not list(spool.glob("*.pcap*"))


def test_second_sensor_on_the_same_spool_is_refused(ns: VethNamespace, tmp_path: Path) -> None:
    first = Sensor(ns, tmp_path / "store")
    first.wait_capturing()
    try:
        second = Sensor(ns, tmp_path / "other-store", "--spool", str(tmp_path / "store" / "spool"))
        assert "is in use by another sensor" in one_line_error(second)
    finally:
        first.proc.send_signal(signal.SIGTERM)
        assert first.finish() == 0, first.text


def test_kill_9_during_the_ingest_of_a_spool_file(ns: VethNamespace, tmp_path: Path) -> None:
    """Killed while a spool file is half ingested: the next start stores it once, in full."""
    big = tmp_path / "big.pcap"
    simulate_darknet(DarknetConfig(packets=1_500_000, hours=2, seed=23), big)
    ingest([big], tmp_path / "reference")
    spool = tmp_path / "store" / "spool"
    spool.mkdir(parents=True)
    os.link(big, spool / "sensor-B_00001_20260101000000.pcap")
    first = Sensor(ns, tmp_path / "store")
    deadline = time.monotonic() + 60
    while not any("left in the spool" in line for line in first.lines):
        assert first.proc.poll() is None and time.monotonic() < deadline, first.text
        time.sleep(0.02)
    time.sleep(0.3)  # inside ingest_file now (it takes ~1 s for this file)
    first.proc.kill()
    first.finish()
    assert (spool / "sensor-B_00001_20260101000000.pcap").exists(), "killed too late: ingest had finished"
    assert any((tmp_path / "store" / ".staging").iterdir()), "killed outside the ingest (timing)"
    second = Sensor(ns, tmp_path / "store")
    second.wait_capturing()
    while any(spool.glob("*.pcap")):
        assert time.monotonic() < deadline + 120, second.text
        time.sleep(0.2)
    second.proc.send_signal(signal.SIGTERM)
    assert second.finish() == 0, second.text
    assert fingerprint(tmp_path / "store") == fingerprint(tmp_path / "reference")


def test_runs_as_an_ordinary_user_with_only_net_raw_and_net_admin(
    ns: VethNamespace, parts: tuple[Path, Path], expected: dict[str, tuple[int, int]],
) -> None:
    """What the systemd unit does (AmbientCapabilities): no root, two capabilities, the same result."""
    with tempfile.TemporaryDirectory(prefix="iotscope-caps-") as shared:
        os.chmod(shared, 0o777)
        store = Path(shared) / "store"
        sensor = Sensor(ns, store, "--rotate", "1", prefix=(
            "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            "--inh-caps=-all,+net_raw,+net_admin", "--ambient-caps=+net_raw,+net_admin"),
            env={"NUMBA_CACHE_DIR": str(Path(shared) / "numba")})
        sensor.wait_capturing()
        status = Path(f"/proc/{sensor.proc.pid}/status").read_text()
        assert "Uid:\t65534" in status and "CapEff:\t0000000000003000" in status  # nobody, NET_ADMIN|NET_RAW
        ns.replay(parts[0], RATE)
        time.sleep(1.0)
        sensor.proc.send_signal(signal.SIGTERM)
        assert sensor.finish() == 0, sensor.text
        assert fingerprint(store) == expected["a"]
        assert (store / "spool").stat().st_mode & 0o777 == 0o700
