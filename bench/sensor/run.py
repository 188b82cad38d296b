"""Live sensor benchmark: loss-free replay rate, CPU per million packets and end-to-end lag, for
`iotscope sensor` against `tcpdump -w` and `dumpcap -w` on the same veth in the same run.

Everything happens in a network namespace this script creates (a veth pair, no addresses, IPv6
off): tcpreplay sends a simulator capture into one end at --pps steps then --topspeed, each tool
captures on the other end. Loss = packets tcpreplay sent - packets the tool stored (the sensor:
rows in its store; tcpdump/dumpcap: packets they report written). CPU is the tool's own and its
children's user+system time (wait4), per million packets sent. Lag (sensor only): packet arrival
-> row queryable in the store, polled every 0.1 s, at a steady rate.

    sudo .venv/bin/python bench/sensor/run.py --packets 300000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from common import machine  # noqa: E402

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet  # noqa: E402
from iotscope.store.packets import PacketStore  # noqa: E402
from iotscope.store.query import connect  # noqa: E402
from iotscope.store.state import StoreError  # noqa: E402
from tests.telescope.netns import VethNamespace, missing_tools, veth_namespace  # noqa: E402

TOOLS = ("sensor", "tcpdump", "dumpcap")
SNAPLEN, BUFFER_MIB = "160", 64


class Tool:
    """One capture tool running in the namespace until :meth:`stop`."""

    def __init__(self, kind: str, ns: VethNamespace, work: Path, rotate: int = 1) -> None:
        self.kind, self.work = kind, work
        if kind == "sensor":
            cmd = [sys.executable, "-m", "iotscope", "sensor", "-i", ns.receiver, "--store", str(work / "store"),
                   "--rotate", str(rotate), "--snaplen", SNAPLEN, "--buffer-mib", str(BUFFER_MIB)]
            ready = "capturing on"
        elif kind == "tcpdump":
            cmd = ["tcpdump", "-i", ns.receiver, "-n", "-s", SNAPLEN, "-B", str(BUFFER_MIB * 1024),
                   "-w", str(work / "tcpdump.pcap")]
            ready = "listening on"
        else:
            cmd = ["dumpcap", "-i", ns.receiver, "-s", SNAPLEN, "-B", str(BUFFER_MIB), "-w", str(work / "dumpcap.pcapng")]
            ready = "Capturing on"
        self.proc = subprocess.Popen(ns.exec(*cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     cwd=ROOT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)  # type: ignore[arg-type]
        self._reader.start()
        deadline = time.monotonic() + 120
        while not any(ready in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start: {''.join(self.lines)}")
            time.sleep(0.05)

    def stop(self) -> tuple[int, int | None, float]:
        """(packets stored, kernel drops reported, CPU seconds)."""
        self.proc.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0
        self._reader.join(10)
        text = "".join(self.lines)
        cpu = usage.ru_utime + usage.ru_stime
        if self.kind == "sensor":
            with PacketStore(self.work / "store") as s:
                stored = connect(s).execute("SELECT count(*) FROM packets").fetchone()[0]
            drops = re.search(r"([\d,]+) dropped by the kernel;", text)
            return stored, int(drops.group(1).replace(",", "")) if drops else None, cpu
        if self.kind == "tcpdump":
            captured = int(re.search(r"(\d+) packets? captured", text).group(1))
            drops = int(re.search(r"(\d+) packets? dropped by kernel", text).group(1))
            return captured, drops, cpu
        m = re.search(r"Packets received/dropped on interface '[^']+': (\d+)/(\d+)", text)
        return int(m.group(1)) - int(m.group(2)), int(m.group(2)), cpu


def replay(ns: VethNamespace, capture: Path, rate: str) -> tuple[int, float]:
    """(packets sent, achieved packets/s) of one tcpreplay run."""
    args = ["--topspeed"] if rate == "topspeed" else [f"--pps={rate}"]
    out = ns.replay(capture, "--preload-pcap", *args).stdout
    sent = int(re.search(r"Successful packets:\s+(\d+)", out).group(1))
    pps = float(re.search(r"([\d.]+) pps", out).group(1))
    return sent, pps


def loss_run(ns: VethNamespace, kind: str, capture: Path, rate: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as work:
        tool = Tool(kind, ns, Path(work))
        sent, pps = replay(ns, capture, rate)
        time.sleep(1.5)
        stored, drops, cpu = tool.stop()
    return {"tool": kind, "rate": rate, "achieved_pps": round(pps), "sent": sent, "stored": stored,
            "lost": sent - stored, "kernel_drops": drops, "cpu_seconds": round(cpu, 3),
            "cpu_s_per_million": round(cpu / sent * 1e6, 2)}


def lag_run(ns: VethNamespace, capture: Path, pps: int, rotate: int) -> dict:
    """Arrival -> queryable lag of every row, at a steady ``pps``, polling the store every 0.1 s."""
    with tempfile.TemporaryDirectory(prefix="bench-lag-") as work:
        tool = Tool("sensor", ns, Path(work), rotate=rotate)
        lags: list[np.ndarray] = []
        seen = 0
        done = threading.Event()

        def poll() -> None:
            nonlocal seen
            while not done.is_set():
                try:
                    with PacketStore(Path(work) / "store") as s:
                        ts = connect(s).execute("SELECT epoch_us(ts) FROM packets ORDER BY ts").fetchnumpy()
                except StoreError:  # opened while the sensor creates the store: look again
                    time.sleep(0.1)
                    continue
                now = time.time()
                column = next(iter(ts.values())) if ts else np.array([])
                if len(column) > seen:
                    lags.append(now - np.sort(np.asarray(column))[seen:] / 1e6)
                    seen = len(column)
                time.sleep(0.1)

        poller = threading.Thread(target=poll)
        poller.start()
        sent, _ = replay(ns, capture, str(pps))
        deadline = time.monotonic() + 3 * rotate + 30
        while seen < sent and time.monotonic() < deadline:
            time.sleep(0.2)
        done.set()
        poller.join()
        tool.stop()
    all_lags = np.concatenate(lags) if lags else np.array([np.nan])
    return {"rotate": rotate, "pps": pps, "rows": int(all_lags.size), "lag_p50_s": round(float(np.percentile(all_lags, 50)), 2),
            "lag_p95_s": round(float(np.percentile(all_lags, 95)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=300_000)
    parser.add_argument("--rates", default="50000,100000,200000,400000,topspeed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    if missing_tools():
        sys.exit(f"needs {', '.join(missing_tools())}")
    args.out.mkdir(parents=True, exist_ok=True)
    capture = args.out / f"sensor-{args.packets}.pcap"
    if not capture.exists():
        simulate_darknet(DarknetConfig(packets=args.packets, hours=0.05, seed=7), capture)
    lag_capture = args.out / "sensor-lag.pcap"
    if not lag_capture.exists():
        simulate_darknet(DarknetConfig(packets=20_000, hours=0.05, seed=8), lag_capture)
    results: dict = {"machine": machine(), "packets": args.packets, "loss": [], "lag": []}
    with veth_namespace() as ns:
        for rate in args.rates.split(","):
            for kind in TOOLS:
                row = loss_run(ns, kind, capture, rate)
                results["loss"].append(row)
                print(json.dumps(row), flush=True)
        for rotate in (1, 5):
            row = lag_run(ns, lag_capture, 2000, rotate)
            results["lag"].append(row)
            print(json.dumps(row), flush=True)
    (args.out / "sensor.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
