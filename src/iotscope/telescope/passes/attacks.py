"""DoS attacks inferred from backscatter (Moore et al. 2006; CAIDA corsaro3's ``dos`` plugin).

A victim of a spoofed-source flood answers every spoofed packet; the share of answers that lands
in the darknet is the darknet's share of the address space. Per victim (the backscatter's source
address) and protocol, as corsaro3 keys its attack vectors (a hash table per protocol, keyed by
target IP: ``libcorsaro/plugins/corsaro_dos.c``, ``match_packet_to_vector``), an *attack vector*
is a run of backscatter packets whose gaps are at most ``attack_timeout_s``. corsaro3 drops a
vector that was inactive for a whole output interval (``copy_attack_hash_table``: "If this vector
was inactive for the entire interval ... remove it"), so a pause longer than that splits an
attack; corsaro (v2) names the same rule ``ATTACK_VECTOR_TIMEOUT``. Here the timeout is explicit
and independent of file or hour boundaries; default 300 s.

A vector is reported as an attack only if it passes all of corsaro3's thresholds (``write_attack_vectors``):
at least ``attack_min_packets`` packets, lasting at least ``attack_min_duration_s`` (last - first
packet), and at least ``attack_min_window_packets`` packets in some rate window. The rate window is
corsaro3's: ``attack_window_s`` long, sliding by ``attack_window_slide_s`` over buckets aligned to
the epoch (``calculate_maximum_ppm``); ``peak_window_packets`` is its maximum.

Known simplification: corsaro3 takes the victim of an ICMP error from the quoted inner header; the
``packets`` table has no inner header, so an ICMP error's victim is its sender.

Carried state: vectors that could still continue (``open``: the dataset's columns plus whether
they pass the thresholds yet), their attacked ports (``ports``) and their last rate buckets
(``buckets``), so a window that straddles an hour, a file or an ingest is counted whole.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from iotscope.store.datasets import ATTACKS, conform, with_address_text
from iotscope.store.schema import TRAFFIC_CLASSES
from iotscope.telescope.passes.base import (
    US_PER_SECOND,
    AnalysisPass,
    Partition,
    State,
    dictionary_codes,
    packed_key_sql,
    register_state,
)
from iotscope.telescope.passes.settings import AnalysisSettings

_KEY = ("victim", "victim6", "proto")
_K = ", ".join(_KEY)
#: The key as one integer (see ``packed_key_sql``), over columns named as in the dataset.
_PACKED = packed_key_sql("victim", "victim6", [("proto", 8)])
VECTOR_SCHEMA = pa.schema([*ATTACKS.schema, pa.field("is_attack", pa.bool_(), nullable=False)])
PORTS_SCHEMA = pa.schema([pa.field("victim", pa.uint32()), pa.field("victim6", pa.binary(16)),
                          pa.field("proto", pa.uint8()), pa.field("port", pa.uint16())])
BUCKETS_SCHEMA = pa.schema([pa.field("victim", pa.uint32()), pa.field("victim6", pa.binary(16)),
                            pa.field("proto", pa.uint8()), pa.field("bucket", pa.int64()),
                            pa.field("packets", pa.int64())])


def _on(a: str, b: str, with_ev: bool = True) -> str:
    conds = [f"{a}.k = {b}.k"]
    if with_ev:
        conds.append(f"{a}.ev = {b}.ev")
    return " AND ".join(conds)


class AttacksPass(AnalysisPass):
    name = "attacks"
    columns = ("ts", "src", "src6", "proto", "sport", "ip_len", "traffic_class")
    dataset = ATTACKS

    def __init__(self, settings: AnalysisSettings) -> None:
        self.timeout_us = round(settings.attack_timeout_s * US_PER_SECOND)
        self.min_packets = settings.attack_min_packets
        self.min_duration_us = round(settings.attack_min_duration_s * US_PER_SECOND)
        self.min_window_packets = settings.attack_min_window_packets
        self.window_s = settings.attack_window_s
        self.slide_us = settings.attack_window_slide_s * US_PER_SECOND
        self.window_buckets = settings.attack_window_s // settings.attack_window_slide_s

    def config(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items()}

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        con = partition.con
        # Backscatter is about a tenth of the packets: select it in Arrow (by dictionary code) so the
        # SQL below reads only those rows, not the whole hour.
        hour = partition.table
        backscatter = dictionary_codes(hour.column("traffic_class"), TRAFFIC_CLASSES) == TRAFFIC_CLASSES.index("backscatter")
        con.register("av_packets", hour.select(["ts", "src", "src6", "proto", "sport", "ip_len"]).filter(pa.array(backscatter)))
        register_state(con, "av", carried, {"vectors": VECTOR_SCHEMA, "ports": PORTS_SCHEMA, "buckets": BUCKETS_SCHEMA})
        con.sql(f"""
            CREATE OR REPLACE TEMP TABLE av_marked AS
            WITH rows AS (
                SELECT {_K}, epoch_us(last_ts) AS t, epoch_us(first_ts) AS first_us, packets AS n, bytes AS b,
                       peak_window_packets AS peak, NULL::USMALLINT AS port, 1 AS carried FROM av_vectors
                UNION ALL
                SELECT src, src6, proto, epoch_us(ts), epoch_us(ts), 1, ip_len, 0, sport, 0 FROM av_packets
            ), keyed AS (
                SELECT *, {_PACKED} AS k FROM rows
            ), gaps AS (
                SELECT *, CASE WHEN t - lag(t) OVER w > {self.timeout_us} THEN 1 ELSE 0 END AS brk
                FROM keyed WINDOW w AS (PARTITION BY k ORDER BY t)
            )
            SELECT *, sum(brk) OVER (PARTITION BY k ORDER BY t) AS ev
            FROM gaps
        """)
        # Rate buckets of each vector: this hour's, plus the carried tail of the vector that continues (ev 0).
        con.sql(f"""
            CREATE OR REPLACE TEMP TABLE av_buckets_all AS
            SELECT k, ev, bucket, sum(packets)::BIGINT AS packets FROM (
                SELECT k, ev, t // {self.slide_us} AS bucket, count(*) AS packets
                FROM av_marked WHERE carried = 0 GROUP BY ALL
                UNION ALL
                SELECT {_PACKED}, 0, bucket, packets FROM av_buckets
            ) GROUP BY ALL
        """)
        con.sql(f"""
            CREATE OR REPLACE TEMP TABLE av_all AS
            WITH summary AS (
                SELECT k, ev, any_value(victim) AS victim, any_value(victim6) AS victim6, any_value(proto) AS proto,
                       min(first_us) AS first_us, max(t) AS last_us, sum(n)::BIGINT AS packets,
                       sum(b)::BIGINT AS bytes, max(peak) AS carried_peak
                FROM av_marked GROUP BY k, ev
            ), ports AS (
                SELECT k, ev, list(port ORDER BY port) AS victim_ports FROM (
                    SELECT DISTINCT k, ev, port FROM av_marked WHERE port IS NOT NULL
                    UNION
                    SELECT {_PACKED}, 0, port FROM av_ports
                ) GROUP BY ALL
            ), windows AS (
                SELECT k, ev, max(in_window)::BIGINT AS peak FROM (
                    SELECT k, ev, sum(packets) OVER (PARTITION BY k, ev ORDER BY bucket
                        RANGE BETWEEN {self.window_buckets - 1} PRECEDING AND CURRENT ROW) AS in_window
                    FROM av_buckets_all
                ) GROUP BY ALL
            )
            SELECT s.k, s.victim, s.victim6, s.proto, s.ev, s.first_us AS first_ts, s.last_us AS last_ts, s.packets, s.bytes,
                   coalesce(p.victim_ports, []::USMALLINT[]) AS victim_ports,
                   greatest(coalesce(w.peak, 0), coalesce(s.carried_peak, 0))::BIGINT AS peak_window_packets,
                   {self.window_s}::INTEGER AS window_s
            FROM summary s LEFT JOIN ports p ON {_on("s", "p")} LEFT JOIN windows w ON {_on("s", "w")}
        """)
        closes_before = partition.horizon_us - self.timeout_us
        is_attack = (f"(packets >= {self.min_packets} AND last_ts - first_ts >= {self.min_duration_us} "
                     f"AND peak_window_packets >= {self.min_window_packets})")
        select = f"SELECT *, {is_attack} AS is_attack FROM av_all"
        order = f"ORDER BY first_ts, {_K}"
        closed = con.sql(f"{select} WHERE last_ts < {closes_before} AND {is_attack} {order}").to_arrow_table()
        vectors = con.sql(f"{select} WHERE last_ts >= {closes_before} {order}").to_arrow_table()
        first_kept = partition.end_us // self.slide_us - (self.window_buckets - 1)
        buckets = con.sql(f"""
            SELECT a.victim, a.victim6, a.proto, b.bucket, b.packets FROM av_buckets_all b JOIN av_all a ON {_on("b", "a")}
            WHERE a.last_ts >= {closes_before} AND b.bucket >= {first_kept} ORDER BY ALL
        """).to_arrow_table()
        ports = con.sql(f"""
            SELECT a.victim, a.victim6, a.proto, unnest(a.victim_ports) AS port FROM av_all a
            WHERE a.last_ts >= {closes_before} ORDER BY ALL
        """).to_arrow_table()
        con.execute("DROP TABLE av_marked; DROP TABLE av_buckets_all; DROP TABLE av_all")
        for name in ("av_packets", "av_vectors", "av_ports", "av_buckets"):
            con.unregister(name)
        vectors = with_address_text(vectors, "victim", "victim6", "victim_ip", VECTOR_SCHEMA)
        return with_address_text(closed, "victim", "victim6", "victim_ip", ATTACKS.schema), {
            "open": vectors.filter(pc.field("is_attack")),
            "vectors": vectors,
            "ports": conform(ports, PORTS_SCHEMA),
            "buckets": conform(buckets, BUCKETS_SCHEMA),
        }
