"""`iotscope ingest --watch DIR`: closed captures other tools write into DIR are ingested, once;
a file still open for writing is not, however long it stays unchanged."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("watch-src")
    a, b = out / "a.pcap", out / "b.pcapng"
    simulate_darknet(DarknetConfig(packets=6_000, hours=0.1, seed=31), a)
    simulate_darknet(DarknetConfig(packets=4_000, hours=0.1, seed=32), b)
    return a, b


def count(store: Path) -> int:
    with PacketStore(store) as s:
        return connect(s).execute("SELECT count(*) FROM packets").fetchone()[0]


class Watch:
    def __init__(self, directory: Path, store: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iotscope", "ingest", "--watch", str(directory), "--store", str(store),
             "--settle", "1"], stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()  # type: ignore[arg-type]

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no {text!r} in: {''.join(self.lines)}"
            time.sleep(0.1)


def test_watch_ingests_closed_files_only_once(captures: tuple[Path, Path], tmp_path: Path) -> None:
    incoming, store = tmp_path / "incoming", tmp_path / "store"
    incoming.mkdir()
    watch = Watch(incoming, store)
    try:
        watch.wait_for("watching")
        data = captures[0].read_bytes()
        growing = incoming / "a.pcap"
        with open(growing, "wb") as f:  # a writer that pauses longer than --settle with the file open
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(3.5)
            assert not any("a.pcap" in line for line in watch.lines), "ingested while still open for writing"
            f.write(data[len(data) // 2:])
        watch.wait_for("a.pcap: ingested")
        (incoming / "b.pcapng").write_bytes(captures[1].read_bytes())
        watch.wait_for("b.pcapng: ingested")
        (incoming / "b-again.pcapng").write_bytes(captures[1].read_bytes())  # same content, new name
        watch.wait_for("b-again.pcapng: already")
    finally:
        watch.proc.send_signal(signal.SIGTERM)
        assert watch.proc.wait(30) == 0, "".join(watch.lines)
    assert count(store) == 10_000
    assert sorted(p.name for p in incoming.iterdir()) == ["a.pcap", "b-again.pcapng", "b.pcapng"]  # never deleted


def test_watch_of_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "iotscope", "ingest", "--watch", str(tmp_path / "nope"),
                             "--store", str(tmp_path / "store")], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
