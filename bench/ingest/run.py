"""Ingest benchmark: iotscope (capture file -> Parquet store) against dpkt, tcpdump and tshark.

All peers read the same simulator capture in the same run; rates are packets per second and the
table reports iotscope's ratio to each. dpkt and tshark are run on the first ``--subset`` packets
(they are slow enough that the full file would take minutes) and compared by rate.

    .venv/bin/python bench/ingest/run.py --packets 5000000
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import bench_parser, machine, measure, parse_bench_args  # noqa: E402

IOTSCOPE = [sys.executable, "-m", "iotscope"]
#: The library call behind `iotscope ingest`, in a fresh process; prints the time spent inside it.
LIBRARY_INGEST = (
    "import json, sys, pathlib; from iotscope.telescope.ingest import ingest; "
    "r = ingest([pathlib.Path(sys.argv[1])], pathlib.Path(sys.argv[2]))[0]; "
    "print(json.dumps({'seconds': r.seconds, 'records': r.records}))"
)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--packets", type=int, default=5_000_000)
    parser.add_argument("--subset", type=int, default=300_000, help="packets for the dpkt and tshark runs")
    args = parse_bench_args(parser)
    capture = args.out / f"darknet-{args.packets}.pcap"
    if not capture.exists():
        sim = measure([*IOTSCOPE, "simulate", "--out", str(capture), "--packets", str(args.packets),
                       "--hours", "6", "--outbreak", "--seed", "1"])
        print(f"simulated {args.packets:,} packets in {sim.seconds:.1f} s", file=sys.stderr)
    size_mb = capture.stat().st_size / 1e6
    store = args.out / "ingest-store"

    def iotscope_ingest():
        shutil.rmtree(store, ignore_errors=True)
        return measure([sys.executable, "-c", LIBRARY_INGEST, str(capture), str(store)])

    cold = iotscope_ingest()  # first run may compile numba kernels into the cache
    warm = iotscope_ingest()
    in_library = json.loads(warm.stdout)["seconds"]
    stored = json.loads(measure([*IOTSCOPE, "stats", "--store", str(store), "--json"]).stdout)["packets"]
    n = args.packets
    results = {
        "iotscope ingest, whole process (file -> Parquet)": (n, warm),
        "dpkt parse loop": (args.subset, measure([sys.executable, str(Path(__file__).parent / "dpkt_loop.py"),
                                                   str(capture), str(args.subset)])),
        "tcpdump -r FILE -w /dev/null": (n, measure(["tcpdump", "-r", str(capture), "-w", "/dev/null"])),
        "tshark -T fields (7 fields)": (args.subset, measure(
            ["tshark", "-n", "-r", str(capture), "-c", str(args.subset), "-T", "fields",
             "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "tcp.dstport", "-e", "tcp.flags",
             "-e", "tcp.seq_raw", "-e", "udp.dstport"])),
    }
    ours = n / warm.seconds
    lines = [
        f"Machine: {machine()}",
        f"Capture: {n:,} simulator packets, {size_mb:,.0f} MB classic pcap; {stored:,} rows stored.",
        f"iotscope cold run (incl. numba cache fill): {cold.seconds:.2f} s. Warm run: {warm.seconds:.2f} s for the "
        f"whole process, of which {in_library:.2f} s inside `ingest()` ({n / in_library:,.0f} packets/s) and the "
        "rest interpreter start and imports.",
        "",
        "| tool | packets | seconds | packets/s | peak RSS (MB) | iotscope is |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    summary = {"iotscope ingest() library call": {"packets": n, "seconds": in_library, "pps": n / in_library}}
    for name, (count, run) in results.items():
        rate = count / run.seconds
        ratio = "1.0x" if name.startswith("iotscope") else f"{ours / rate:,.1f}x"
        lines.append(f"| {name} | {count:,} | {run.seconds:.2f} | {rate:,.0f} | {run.peak_rss_mb:,.0f} | {ratio} |")
        summary[name] = {"packets": count, "seconds": run.seconds, "pps": rate, "peak_rss_mb": run.peak_rss_mb}
    (args.out / "ingest.json").write_text(json.dumps({"machine": machine(), "results": summary}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
