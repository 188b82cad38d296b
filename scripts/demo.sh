#!/usr/bin/env bash
# `make demo`: simulate 12 hours of darknet traffic with a Mirai outbreak halfway, ingest and analyse
# it, show what the telescope concludes (surge alert on 2323/tcp, events, attacks, categories,
# countries, a source profile), survey an emulated fleet, alert two demo organizations into an
# outbox, and serve the dashboard. Everything stays on this machine; re-running re-uses the store
# (idempotent).
#
# Sizes (environment, for a quick run): DEMO_PACKETS (1000000), DEMO_DEVICES (16), DEMO_BIND
# (127.0.1.0/26, the fleet's loopback range).
#
# Nothing of the demo outlives it, however it ends (Ctrl-C, an error, kill -9 of this script):
# every command runs with the kernel's parent-death signal set (setpriv --pdeathsig), and the
# fleet, started in the background, is this script's own child (no subshell between), stopped
# and waited for on exit so that its addresses are free when the script returns.
set -euo pipefail
out=${1:-demo-out}
packets=${DEMO_PACKETS:-1000000}
devices=${DEMO_DEVICES:-16}
bind=${DEMO_BIND:-127.0.1.0/26}
die_with_me=()
if command -v setpriv >/dev/null && setpriv --help 2>&1 | grep -q -- --pdeathsig; then
  die_with_me=(setpriv --pdeathsig TERM)
fi
iotscope() { ${die_with_me[@]+"${die_with_me[@]}"} .venv/bin/iotscope "$@"; }
mkdir -p "$out"

echo "== 1. simulate 12 hours of darknet traffic toward 198.18.0.0/15 (RFC 2544 range), Mirai outbreak from 06:00"
# The marker holds the settings and is written once the capture is complete: an interrupted demo,
# or one with other settings, simulates again.
settings="--packets $packets --hours 12 --outbreak-start 0.5 --seed 2016"
if [ "$(cat "$out/.simulated" 2>/dev/null)" != "$settings" ]; then
  # shellcheck disable=SC2086  # $settings is a list of options
  iotscope simulate --out "$out/darknet.pcap" $settings
  echo "$settings" >"$out/.simulated"
fi

echo "== 2. ingest it into $out/store (Parquet, partitioned by hour; the analysis passes run at the end)"
iotscope ingest "$out/darknet.pcap" --store "$out/store"

echo "== 3. what the telescope saw"
iotscope stats --store "$out/store"

echo "== 4. Mirai fingerprint (TCP SYN with sequence number = destination address): top sources"
iotscope sql --store "$out/store" "
  SELECT (src >> 24) || '.' || ((src >> 16) & 255) || '.' || ((src >> 8) & 255) || '.' || (src & 255) AS source,
         count(*) AS packets, count(DISTINCT dst) AS darknet_addresses, list_distinct(list(dport)) AS ports
  FROM packets WHERE flag_class = 'syn' AND seq = dst GROUP BY src ORDER BY packets DESC LIMIT 10"

echo "== 5. the 2323/tcp outbreak: packets and distinct sources per hour (port_series, 10-minute buckets)"
iotscope sql --store "$out/store" "
  SELECT date_trunc('hour', bucket) AS hour, sum(packets) AS packets, max(sources) AS most_sources_in_10_min
  FROM port_series WHERE proto = 6 AND port = 2323 GROUP BY 1 ORDER BY 1"

echo "== 5a. surge alerts: when the number of sources scanning a port rose sharply (expected: 2323/tcp near 06:00)"
iotscope sql --store "$out/store" "
  SELECT proto, port, strftime(start, '%Y-%m-%d %H:%M') AS start, strftime(detected, '%H:%M') AS detected,
         round(baseline_sources, 1) AS baseline_sources, round(level_sources, 1) AS level_sources,
         round(magnitude, 1) AS magnitude FROM alerts ORDER BY start, port"

echo "== 5b. scanner events (a source's run of packets to one port, ending after 10 idle minutes), by tool"
iotscope sql --store "$out/store" "
  SELECT coalesce(tool, 'none') AS tool, count(*) AS events, count(DISTINCT src_ip) AS sources,
         sum(packets) AS packets, max(destinations) AS max_dsts,
         round(median(epoch(last_ts) - epoch(first_ts)) / 60, 1) AS median_min
  FROM events GROUP BY ALL ORDER BY packets DESC"

echo "== 5c. DoS attacks seen through backscatter (victims answering spoofed floods)"
iotscope sql --store "$out/store" "
  SELECT victim_ip, proto, strftime(first_ts, '%H:%M:%S') AS start,
         round((epoch(last_ts) - epoch(first_ts)) / 60, 1) AS minutes, packets, round(est_attack_pps) AS est_pps
  FROM attacks ORDER BY packets DESC LIMIT 10"

echo "== 5d. what the scans target: breakdown by category"
iotscope report --store "$out/store" --by category

echo "== 5e. where the scanners are: top countries and ASNs"
iotscope report --store "$out/store" --by country --top 5
iotscope report --store "$out/store" --by asn --top 5

echo "== 5f. one source's profile: the busiest Mirai-fingerprinted scanner"
top=$(iotscope sql --store "$out/store" --csv "
  SELECT src_ip FROM events WHERE tool = 'mirai' GROUP BY src_ip ORDER BY sum(packets) DESC LIMIT 1" | tail -n 1 | tr -d '"')
iotscope ip "$top" --store "$out/store"

echo "== 6. survey: an emulated IoT fleet on loopback ($bind), authorized by a scope file"
rm -f "$out/fleet-truth.json"
# Not through the iotscope function: `$!` must be the fleet's own PID, not a subshell's.
${die_with_me[@]+"${die_with_me[@]}"} .venv/bin/iotscope simulate-devices --bind "$bind" --count "$devices" --seed 7 \
  --truth "$out/fleet-truth.json" >"$out/fleet.log" 2>&1 &
fleet=$!
trap 'kill "$fleet" 2>/dev/null || true; wait "$fleet" 2>/dev/null || true' EXIT
# Listening once the table is printed (the ground truth is written before the fleet starts).
for _ in $(seq 300); do
  grep -q "emulated devices" "$out/fleet.log" && break
  kill -0 "$fleet" 2>/dev/null || { cat "$out/fleet.log" >&2; exit 1; }
  sleep 0.1
done
cat >"$out/scope.toml" <<TOML
# Who authorized what: every range the survey may touch, with owner and authorization reference.
[[authorized]]
cidr = "$bind"
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

echo "== 8. DAEDALUS-style alerts: two demo organizations whose networks hold top darknet sources"
# The four busiest telnet scanners (23, 2323/tcp: Mirai and kin) become the two organizations' hosts (as /32 networks), so each gets an alert.
sources=$(iotscope sql --store "$out/store" --csv "
  SELECT (src >> 24) || '.' || ((src >> 16) & 255) || '.' || ((src >> 8) & 255) || '.' || (src & 255) AS ip
  FROM packets WHERE traffic_class = 'scan' AND dport IN (23, 2323) AND src IS NOT NULL GROUP BY src ORDER BY count(*) DESC, src LIMIT 4" | tail -n +2 | tr -d '"')
set -- $sources
cat >"$out/orgs.toml" <<TOML
[sender]
org = "iotscope demo telescope"
email = "telescope@demo.example"
domain = "demo.example"

[[org]]
name = "Demo City Office"
email = ["soc@city.demo.example"]
networks = ["$1/32", "$2/32"]
language = "en"

[[org]]
name = "デモ市役所"
email = "security@shiyakusho.demo.example"
networks = ["$3/32", "$4/32"]
language = "ja"
TOML
# No --smtp: messages only go to the outbox (a re-run alerts nothing new: de-duplicated).
iotscope alerts run --orgs "$out/orgs.toml" --store "$out/store" --outbox "$out/outbox"
echo "== 9. one alert from $out/outbox (attachments: one X-ARF v4 JSON per host, hosts.csv)"
first=$(ls -t "$out"/outbox/demo-city-office/*.eml | head -n 1)
python3 - "$first" <<'PY'
import email, sys
from email import policy
message = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.default)
for header in ("From", "To", "Subject"):
    print(f"{header}: {message[header]}")
print()
print(message.get_body(("plain",)).get_content())
print("attachments:", ", ".join(part.get_filename() for part in message.iter_attachments()))
PY

echo "== 10. the dashboard: live map, per-port chart (23 and 2323/tcp), source profiles"
if [ -t 0 ] && [ -z "${DEMO_NO_SERVE:-}" ]; then
  iotscope serve --store "$out/store" --port "${DEMO_PORT:-8000}"   # prints its URL; Ctrl-C stops it
else
  echo "not a terminal: run  .venv/bin/iotscope serve --store $out/store  and open http://127.0.0.1:8000/"
fi
