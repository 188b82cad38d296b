"""Anonymization benchmark: iotscope's vectorized Crypto-PAn against the per-address yacryptopan loop.

Both map the same random IPv4 addresses with the same key and must agree bit for bit (checked on
the peer's subset). iotscope runs on ``--addresses`` distinct addresses (all distinct: no help from
de-duplication) and, separately, on a darknet-like column with repeats (``--repeats`` packets per
source); yacryptopan runs on ``--subset`` addresses. Rates are addresses per second.

    .venv/bin/python bench/share/run.py --addresses 1000000 --subset 20000
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

import numpy as np
import yacryptopan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import bench_parser, best_of, machine, parse_bench_args

from iotscope.share.anonymize import AnonymizationKey, CryptoPAn


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--addresses", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=20_000, help="addresses for the yacryptopan loop")
    parser.add_argument("--repeats", type=int, default=20, help="packets per source in the darknet-like column")
    args = parse_bench_args(parser)
    key = bytes(range(32))
    rng = np.random.default_rng(2026)
    distinct = np.unique(rng.integers(0, 1 << 32, int(args.addresses * 1.01), dtype=np.uint64).astype(np.uint32))
    distinct = rng.permutation(distinct)[: args.addresses]
    packets = np.repeat(distinct[: args.addresses // args.repeats], args.repeats)
    rng.shuffle(packets)
    ours = CryptoPAn(AnonymizationKey(key))
    reference = yacryptopan.CryptoPAn(key)
    subset = distinct[: args.subset]
    texts = [str(ipaddress.IPv4Address(int(a))) for a in subset]

    ours_s = best_of(3, lambda: ours.anonymize_v4(distinct))
    packets_s = best_of(3, lambda: ours.anonymize_v4(packets))
    peer_s = best_of(1, lambda: [reference.anonymize(t) for t in texts])
    expected = np.array([int(ipaddress.IPv4Address(reference.anonymize(t))) for t in texts], dtype=np.uint32)
    assert np.array_equal(ours.anonymize_v4(subset), expected), "vectorized Crypto-PAn disagrees with yacryptopan"

    result = {
        "machine": machine(),
        "addresses": args.addresses,
        "iotscope_distinct_per_s": args.addresses / ours_s,
        "iotscope_packets": len(packets),
        "iotscope_packets_per_s": len(packets) / packets_s,
        "yacryptopan_addresses": args.subset,
        "yacryptopan_per_s": args.subset / peer_s,
    }
    result["ratio_distinct"] = result["iotscope_distinct_per_s"] / result["yacryptopan_per_s"]
    (args.out / "share.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"machine: {result['machine']}")
    print("| implementation | addresses | seconds | addresses/s | iotscope is |")
    print("|---|---:|---:|---:|---:|")
    print(f"| iotscope `CryptoPAn.anonymize_v4` (distinct addresses) | {args.addresses:,} | {ours_s:.2f} | "
          f"{result['iotscope_distinct_per_s']:,.0f} | 1.0x |")
    print(f"| iotscope, darknet-like column ({args.repeats} packets per source) | {len(packets):,} | {packets_s:.2f} | "
          f"{result['iotscope_packets_per_s']:,.0f} | |")
    print(f"| yacryptopan `anonymize()` loop | {args.subset:,} | {peer_s:.2f} | {result['yacryptopan_per_s']:,.0f} | "
          f"**{result['ratio_distinct']:.0f}x** |")


if __name__ == "__main__":
    main()
