"""Live sensor benchmark: loss-free replay rate, CPU per million packets and end-to-end lag, for
`iotscope sensor` against `tcpdump -w` and `dumpcap -w` on the same veth in the same run.

Everything happens in a network namespace this script creates (a veth pair, no addresses, IPv6
off): tcpreplay (``--preload-pcap``, so the sender reads no disk) sends a simulator capture into one
end at --pps steps then --topspeed, each tool captures on the other end. Loss = packets tcpreplay
sent - packets the tool stored (the sensor: rows in its store; tcpdump/dumpcap: packets they report
written). Kernel drops: what each tool reports (PACKET_STATISTICS) and the receiving veth's own
rx_dropped. CPU is the tool's own and its children's user+system time (wait4), per million packets
sent, whole run; "after start" leaves out what the process spent before it captured (the sensor's
Python and numba start-up, its store open and first analysis). Lag (sensor only): packet arrival
-> row queryable in the store, polled every 0.1 s, at a steady rate.

    sudo .venv/bin/python bench/sensor/run.py --packets 1000000
    sudo .venv/bin/python bench/sensor/run.py --lag-only
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
from common import machine

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.simulate.veth_namespace import (
    VethNamespace,
    missing_tools,
    veth_namespace,
)
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.store.state import StoreError

TOOLS = ("sensor", "tcpdump", "dumpcap")
SNAPLEN, BUFFER_MIB = "160", 64


class Tool:
    """One capture tool running in the namespace until :meth:`stop`."""

    def __init__(self, kind: str, ns: VethNamespace, work: Path, rotate: int = 1,
                 sensor_args: tuple[str, ...] = ()) -> None:
        self.kind, self.work = kind, work
        if kind == "sensor":
            cmd = [sys.executable, "-m", "iotscope", "sensor", "-i", ns.receiver, "--store", str(work / "store"),
                   "--rotate", str(rotate), "--snaplen", SNAPLEN, "--buffer-mib", str(BUFFER_MIB), *sensor_args]
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
        self.startup_cpu = _cpu_so_far(self.proc.pid)

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


def _cpu_so_far(pid: int) -> float:
    """User + system seconds of ``pid`` and its reaped children so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def veth_rx(ns: VethNamespace) -> tuple[int, int]:
    """(rx_packets, rx_dropped) of the receiving veth end, as the kernel counts them."""
    out = subprocess.run(ns.exec("cat", f"/sys/class/net/{ns.receiver}/statistics/rx_packets",
                                 f"/sys/class/net/{ns.receiver}/statistics/rx_dropped"),
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def replay(ns: VethNamespace, capture: Path, rate: str, loop: int = 1, nice: int = 0) -> tuple[int, float]:
    """(packets sent, achieved packets/s) of one tcpreplay run (``loop`` times the capture; ``nice``
    below 0 keeps the tool under test from slowing the sender)."""
    args = ["--topspeed"] if rate == "topspeed" else [f"--pps={rate}"]
    args += [f"--loop={loop}"] if loop > 1 else []
    cmd = ns.exec("nice", "-n", str(nice), "tcpreplay", "-i", ns.sender, "--preload-pcap", *args, str(capture))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
    sent = int(re.search(r"Successful packets:\s+(\d+)", out).group(1))
    pps = float(re.search(r"([\d.]+) pps", out).group(1))
    return sent, pps


def loss_run(ns: VethNamespace, kind: str, capture: Path, rate: str, sensor_args: tuple[str, ...] = (),
             loop: int = 1, nice: int = 0) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as work:
        tool = Tool(kind, ns, Path(work), sensor_args=sensor_args)
        rx_before, dropped_before = veth_rx(ns)
        sent, pps = replay(ns, capture, rate, loop, nice)
        time.sleep(1.5)
        rx_after, dropped_after = veth_rx(ns)
        stored, drops, cpu = tool.stop()
    return {"tool": kind, "rate": rate, "achieved_pps": round(pps), "sent": sent, "veth_rx": rx_after - rx_before,
            "veth_rx_dropped": dropped_after - dropped_before, "stored": stored, "lost": sent - stored,
            "kernel_drops": drops, "cpu_seconds": round(cpu, 3), "cpu_s_per_million": round(cpu / sent * 1e6, 2),
            "cpu_s_per_million_after_start": round((cpu - tool.startup_cpu) / sent * 1e6, 2)}


def loss_free(rows: list[dict]) -> dict[str, int]:
    """Per tool, the highest rate (packets/s tcpreplay reached) at which it lost nothing."""
    best: dict[str, int] = {}
    for row in rows:
        if row["lost"] == 0 and not row["kernel_drops"]:
            best[row["tool"]] = max(best.get(row["tool"], 0), row["achieved_pps"])
    return best


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
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--rates", default="100000,200000,300000,400000,topspeed")
    parser.add_argument("--sender-nice", type=int, default=0, help="run tcpreplay at this nice value (e.g. -10)")
    parser.add_argument("--loop", type=int, default=1, help="tcpreplay sends the capture this many times per run")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--sensor-args", default="", help="extra options for `iotscope sensor`, space-separated")
    parser.add_argument("--lag-only", action="store_true", help="only the end-to-end lag runs")
    parser.add_argument("--no-lag", action="store_true", help="skip the end-to-end lag runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--name", default="sensor", help="results go to OUT/NAME.json")
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
    sensor_args = tuple(args.sensor_args.split())
    results: dict = {"machine": machine(), "packets": args.packets, "loop": args.loop, "sensor_args": sensor_args,
                     "sender_nice": args.sender_nice,
                     "loss": [], "lag": []}
    with veth_namespace() as ns:
        for rate in [] if args.lag_only else args.rates.split(","):
            for kind in args.tools.split(","):
                row = loss_run(ns, kind, capture, rate, sensor_args, args.loop, args.sender_nice)
                results["loss"].append(row)
                print(json.dumps(row), flush=True)
        results["loss_free_pps"] = loss_free(results["loss"])
        print(json.dumps({"loss_free_pps": results["loss_free_pps"]}), flush=True)
        for rotate in [] if args.no_lag else (1, 5):
            row = lag_run(ns, lag_capture, 2000, rotate)
            results["lag"].append(row)
            print(json.dumps(row), flush=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
