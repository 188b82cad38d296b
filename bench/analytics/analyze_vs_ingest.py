"""Analyze benchmark: the analysis passes' wall time against the ingest of the same capture, same run.

The target (issue 8): ``analyze`` adds at most 50% to ingest time on the 5M-packet capture. Both
run in fresh processes on the simulator's 6-hour outbreak capture (the ingest bench's file).

    .venv/bin/python bench/analytics/analyze_vs_ingest.py --packets 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, measure

IOTSCOPE = [sys.executable, "-m", "iotscope"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=5_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    capture = args.out / f"darknet-{args.packets}.pcap"
    if not capture.exists():
        measure([*IOTSCOPE, "simulate", "--out", str(capture), "--packets", str(args.packets),
                 "--hours", "6", "--outbreak", "--seed", "1"])
    store = args.out / "analyze-store"
    shutil.rmtree(store, ignore_errors=True)
    ingest = measure([*IOTSCOPE, "ingest", str(capture), "--store", str(store), "--no-analyze"])
    analyze = measure([*IOTSCOPE, "analyze", "--store", str(store)])
    result = {
        "packets": args.packets, "machine": machine(),
        "ingest_s": round(ingest.seconds, 2), "analyze_s": round(analyze.seconds, 2),
        "analyze_over_ingest": round(analyze.seconds / ingest.seconds, 3),
        "analyze_peak_rss_mb": round(analyze.peak_rss_mb, 1),
    }
    (args.out / f"analyze-{args.packets}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
