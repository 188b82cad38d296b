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

echo "== 6. survey: an emulated IoT fleet on loopback (127.0.1.0/26), authorized by a scope file"
iotscope simulate-devices --bind 127.0.1.0/26 --count 16 --seed 7 --truth "$out/fleet-truth.json" >"$out/fleet.log" 2>&1 &
fleet=$!
trap 'kill "$fleet" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$out/fleet-truth.json" ] && break; sleep 0.1; done
cat >"$out/scope.toml" <<TOML
# Who authorized what: every range the survey may touch, with owner and authorization reference.
[[authorized]]
cidr = "127.0.1.0/26"
owner = "Demo ISP (emulated fleet on loopback)"
authorization = "demo: the fleet is this script's own, started above"
special_purpose = true   # 127/8 is RFC 6890 special-purpose space: say so explicitly
TOML
ports=$(python3 -c "import json,sys; print(','.join(sorted({str(r['port']) for r in json.load(open(sys.argv[1]))}, key=int)))" "$out/fleet-truth.json")
iotscope survey run --scope "$out/scope.toml" --ports "$ports" --rate 2000 --store "$out/store"
iotscope survey report --store "$out/store" --out "$out/reports"
echo "== 7. per-owner report (Shadowserver-style CSV) in $out/reports/"
ls "$out/reports"
head -n 8 "$out"/reports/*.csv | cut -c1-160

echo "== 8. the dashboard: live map, per-port chart (23 and 2323/tcp), source profiles"
if [ -t 0 ] && [ -z "${DEMO_NO_SERVE:-}" ]; then
  iotscope serve --store "$out/store" --port "${DEMO_PORT:-8000}"   # prints its URL; Ctrl-C stops it
else
  echo "not a terminal: run  .venv/bin/iotscope serve --store $out/store  and open http://127.0.0.1:8000/"
fi
