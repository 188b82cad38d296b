"""Scanner events (Merit ORION's darknet-events): runs of packets of one source toward one port.

An event is the packets of one (source address, protocol, destination port, traffic class) whose
gaps are all at most ``event_idle_s``: the event ends when the source stays silent for *longer*
than the threshold, so a gap of exactly the threshold continues it. Backscatter is left out (its
destination port is the spoofed client's random port; the ``attacks`` pass is about it).

Per event: first/last packet time, packets, distinct destinations, distinct destination /24s
(IPv4), and ``tool``: the most frequent fingerprint among its packets, where "no fingerprint"
competes as a value too (ties go to the tool, in ``mirai, zmap, masscan`` order).

Carried state: the events that could still continue (last packet at most ``event_idle_s`` before
the hour's end) with their counts (table ``open``), and their distinct destinations (``dsts``), so
an event spanning hours, capture files and separate ingests is one event with exact counts.
An event's row is written in the hour in which it was found closed.

Array code: one DuckDB query sessionizes the hour with window functions (``lag`` over time per
key, a running sum of breaks), with the carried events as the first rows of their keys.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from iotscope.store.datasets import EVENTS, conform, with_address_text
from iotscope.store.schema import TOOLS
from iotscope.telescope.passes.base import (
    US_PER_SECOND,
    AnalysisPass,
    Partition,
    State,
    packed_key_sql,
    register_state,
    sessions,
)

_KEY = "src, src6, proto, dport, traffic_class"
#: The key as one integer (see ``packed_key_sql``); ``traffic_class`` is scan or other here.
_K = packed_key_sql("src", "src6", [
    ("proto", 8), ("coalesce(dport, 65536)", 17), ("CASE traffic_class WHEN 'scan' THEN 0 ELSE 1 END", 1),
])
_TOOL_COUNTS = [pa.field(f"n_{tool}", pa.int64(), nullable=False) for tool in TOOLS]
#: ``open``: the dataset's columns plus per-tool packet counts (the majority needs them across hours).
OPEN_SCHEMA = pa.schema([*EVENTS.schema, *_TOOL_COUNTS])
#: ``dsts``: the distinct destinations of each open event, by its packed key ``k``.
DSTS_SCHEMA = pa.schema([pa.field("k", pa.uint64()), pa.field("dst", pa.uint32()), pa.field("dst6", pa.binary(16))])


class EventsPass(AnalysisPass):
    name = "events"
    columns = ("ts", "src", "src6", "dst", "dst6", "proto", "dport", "traffic_class", "tool")
    dataset = EVENTS

    def __init__(self, idle_s: float) -> None:
        self.idle_us = round(idle_s * US_PER_SECOND)

    def config(self) -> dict[str, object]:
        # the carried ``dsts`` are keyed by a DuckDB hash for IPv6 sources: another DuckDB, another hash
        return {"idle_us": self.idle_us, "duckdb": duckdb.__version__}

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        con = partition.con
        register_state(con, "ev", carried, {"open": OPEN_SCHEMA, "dsts": DSTS_SCHEMA})
        counts_open = ", ".join(f"n_{t}" for t in TOOLS)
        tool_code = "CASE tool " + " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(TOOLS)) + " END"
        packets = con.sql(f"""
            SELECT {_K} AS k, epoch_us(ts) AS t, {tool_code}::TINYINT AS tool, dst, dst6, src, src6, proto, dport,
                   (traffic_class = 'scan')::BOOLEAN AS is_scan
            FROM packets_hour WHERE traffic_class <> 'backscatter'
        """).to_arrow_table()
        opened = con.sql(f"SELECT {_K} AS k, epoch_us(last_ts) AS t FROM ev_open").to_arrow_table()
        # Sessionize: a carried event's last packet is older than any of this hour's, so it is the
        # first row of its key and its session continues it (see ``sessions``).
        k = np.concatenate([opened.column("k").to_numpy(), packets.column("k").to_numpy()])
        t = np.concatenate([opened.column("t").to_numpy(), packets.column("t").to_numpy()])
        ids = sessions(k, t, self.idle_us)
        con.register("ev_packets", packets.append_column("sid", pa.array(ids[opened.num_rows:])))
        con.register("ev_carried", carried.get("open", OPEN_SCHEMA.empty_table()).append_column(
            "k", opened.column("k")).append_column("sid", pa.array(ids[:opened.num_rows])))
        # Destinations per session: this hour's plus the carried set of a continued event.
        con.sql("""
            CREATE OR REPLACE TEMP TABLE ev_dst_set AS
            SELECT DISTINCT sid, dst, dst6 FROM (
                SELECT sid, dst, dst6 FROM ev_packets
                UNION ALL
                SELECT c.sid, d.dst, d.dst6 FROM ev_dsts d JOIN ev_carried c ON d.k = c.k
            )
        """)
        tools = ", ".join(f"count(*) FILTER (WHERE tool = {i}) AS n_{t}" for i, t in enumerate(TOOLS))
        con.sql(f"""
            CREATE OR REPLACE TEMP TABLE ev_all AS
            WITH fresh AS (
                SELECT sid, any_value(k) AS k, any_value(src) AS src, any_value(src6) AS src6,
                       any_value(proto) AS proto, any_value(dport) AS dport,
                       CASE WHEN any_value(is_scan) THEN 'scan' ELSE 'other' END AS traffic_class, min(t) AS first_us, max(t) AS last_us, count(*) AS packets, {tools}
                FROM ev_packets GROUP BY sid
            ), summary AS (
                SELECT coalesce(f.sid, c.sid) AS sid, coalesce(f.k, c.k) AS k,
                       {", ".join(f"coalesce(c.{c}, f.{c}) AS {c}" for c in _KEY.split(", "))},
                       coalesce(epoch_us(c.first_ts), f.first_us) AS first_us,
                       coalesce(f.last_us, epoch_us(c.last_ts)) AS last_us,
                       (coalesce(c.packets, 0) + coalesce(f.packets, 0))::BIGINT AS packets,
                       {", ".join(f"(coalesce(c.n_{t}, 0) + coalesce(f.n_{t}, 0))::BIGINT AS n_{t}" for t in TOOLS)}
                FROM fresh f FULL OUTER JOIN ev_carried c ON f.sid = c.sid
            ), reached AS (
                SELECT sid, count(*)::BIGINT AS destinations FROM ev_dst_set GROUP BY sid
            ), prefixes AS (
                SELECT sid, count(*)::BIGINT AS dst_24s FROM (SELECT DISTINCT sid, dst >> 8 FROM ev_dst_set
                WHERE dst IS NOT NULL) GROUP BY sid
            )
            SELECT s.*, r.destinations, CASE WHEN s.src IS NULL THEN NULL ELSE coalesce(p.dst_24s, 0) END AS dst_24s
            FROM summary s JOIN reached r ON s.sid = r.sid LEFT JOIN prefixes p ON s.sid = p.sid
        """)
        closes_before = partition.horizon_us - self.idle_us  # closed: more than idle before the horizon
        tool_case = _majority_tool_sql()
        select = (f"SELECT src, src6, proto, dport, traffic_class, first_us AS first_ts, last_us AS last_ts, "
                  f"packets, destinations, dst_24s, {tool_case} AS tool, {counts_open} FROM ev_all")
        order = f"ORDER BY first_ts, {_KEY}"
        closed = con.sql(f"{select} WHERE last_us < {closes_before} {order}").to_arrow_table()
        still_open = con.sql(f"{select} WHERE last_us >= {closes_before} {order}").to_arrow_table()
        dsts = con.sql(f"""
            SELECT o.k, d.dst, d.dst6 FROM ev_dst_set d JOIN ev_all o ON d.sid = o.sid
            WHERE o.last_us >= {closes_before}
        """).to_arrow_table()
        con.execute("DROP TABLE ev_dst_set; DROP TABLE ev_all")
        for name in ("ev_open", "ev_dsts", "ev_packets", "ev_carried"):
            con.unregister(name)
        return with_address_text(closed, "src", "src6", "src_ip", EVENTS.schema), {
            "open": with_address_text(still_open, "src", "src6", "src_ip", OPEN_SCHEMA),
            "dsts": conform(dsts, DSTS_SCHEMA),
        }


def _majority_tool_sql() -> str:
    """The most frequent tool, "none" (untagged packets) competing; ties go to the earlier tool."""
    untagged = "packets - " + " - ".join(f"n_{t}" for t in TOOLS)
    best = f"greatest({', '.join(f'n_{t}' for t in TOOLS)})"
    cases = " ".join(f"WHEN n_{t} = {best} THEN '{t}'" for t in TOOLS)
    return f"CASE WHEN {best} = 0 OR {best} < {untagged} THEN NULL {cases} END"
