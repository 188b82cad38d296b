#!/usr/bin/env bash
# `make demo`: simulate an hour of darknet traffic with a 2323/tcp outbreak, ingest it, show what
# the telescope sees. Everything stays on this machine; re-running re-uses the store (idempotent).
set -euo pipefail
out=${1:-demo-out}
iotscope() { .venv/bin/iotscope "$@"; }
mkdir -p "$out"

echo "== 1. simulate one hour of darknet traffic toward 198.18.0.0/15 (RFC 2544 range)"
[ -f "$out/darknet.pcap" ] || iotscope simulate --out "$out/darknet.pcap" --packets 1000000 --hours 1 --outbreak --seed 2016

echo "== 2. ingest it into $out/store (Parquet, partitioned by hour)"
iotscope ingest "$out/darknet.pcap" --store "$out/store"

echo "== 3. what the telescope saw"
iotscope stats --store "$out/store"

echo "== 4. Mirai fingerprint (TCP SYN with sequence number = destination address): top sources"
iotscope sql --store "$out/store" "
  SELECT (src >> 24) || '.' || ((src >> 16) & 255) || '.' || ((src >> 8) & 255) || '.' || (src & 255) AS source,
         count(*) AS packets, count(DISTINCT dst) AS darknet_addresses, list_distinct(list(dport)) AS ports
  FROM packets WHERE flag_class = 'syn' AND seq = dst GROUP BY src ORDER BY packets DESC LIMIT 10"

echo "== 5. the 2323/tcp outbreak: packets and distinct sources per 10 minutes"
iotscope sql --store "$out/store" "
  SELECT time_bucket(INTERVAL 10 MINUTE, ts) AS window, count(*) AS packets, count(DISTINCT src) AS sources
  FROM packets WHERE proto = 6 AND dport = 2323 GROUP BY 1 ORDER BY 1"
