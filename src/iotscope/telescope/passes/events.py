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
import pyarrow as pa

from iotscope.store.datasets import EVENTS, address_text, conform
from iotscope.store.schema import TOOLS
from iotscope.telescope.passes.base import (
    US_PER_SECOND, AnalysisPass, Partition, State, packed_key_sql, register_state,
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
        self.idle_us = int(round(idle_s * US_PER_SECOND))

    def config(self) -> dict[str, object]:
        # the carried ``dsts`` are keyed by a DuckDB hash for IPv6 sources: another DuckDB, another hash
        return {"idle_us": self.idle_us, "duckdb": duckdb.__version__}

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        con = partition.con
        register_state(con, "ev", carried, {"open": OPEN_SCHEMA, "dsts": DSTS_SCHEMA})
        counts_open = ", ".join(f"n_{t}" for t in TOOLS)
        counts_packet = ", ".join(f"coalesce(tool = '{t}', false)::BIGINT" for t in TOOLS)
        zeros = ", ".join("0" for _ in TOOLS)
        # Sessionize: the carried events are the first row of their key (their last packet is older
        # than any packet of this hour); a gap longer than idle starts a new event. ev 0 of a key
        # with a carried row continues that event.
        con.sql(f"""
            CREATE OR REPLACE TEMP TABLE ev_marked AS
            WITH rows AS (
                SELECT {_KEY}, epoch_us(last_ts) AS t, epoch_us(first_ts) AS first_us, packets AS n, {counts_open},
                       NULL::UINTEGER AS dst, NULL::BLOB AS dst6, 1 AS carried FROM ev_open
                UNION ALL
                SELECT {_KEY}, epoch_us(ts), epoch_us(ts), 1, {counts_packet}, dst, dst6, 0
                FROM packets_hour WHERE traffic_class <> 'backscatter'
            ), keyed AS (
                SELECT *, {_K} AS k FROM rows
            ), gaps AS (
                SELECT *, CASE WHEN t - lag(t) OVER w > {self.idle_us} THEN 1 ELSE 0 END AS brk
                FROM keyed WINDOW w AS (PARTITION BY k ORDER BY t)
            )
            SELECT *, sum(brk) OVER (PARTITION BY k ORDER BY t) AS ev
            FROM gaps
        """)
        # Destinations per event: this hour's, plus the carried set of the continued event (ev 0);
        # a hash aggregate, not part of the sort above (the carried sets can be large).
        con.sql("""
            CREATE OR REPLACE TEMP TABLE ev_dst_rows AS
            SELECT k, ev, dst, dst6 FROM ev_marked WHERE carried = 0
            UNION ALL
            SELECT k, 0, dst, dst6 FROM ev_dsts
        """)
        con.sql(f"""
            CREATE OR REPLACE TEMP TABLE ev_all AS
            WITH summary AS (
                SELECT k, ev, {", ".join(f"any_value({c}) AS {c}" for c in _KEY.split(", "))},
                       min(first_us) AS first_us, max(t) AS last_us, sum(n)::BIGINT AS packets,
                       {", ".join(f"sum(n_{t})::BIGINT AS n_{t}" for t in TOOLS)}
                FROM ev_marked GROUP BY k, ev
            ), reached AS (
                SELECT k, ev, (count(DISTINCT dst) + count(DISTINCT dst6))::BIGINT AS destinations,
                       count(DISTINCT dst >> 8)::BIGINT AS dst_24s
                FROM ev_dst_rows GROUP BY k, ev
            )
            SELECT s.*, r.destinations, CASE WHEN s.src IS NULL THEN NULL ELSE r.dst_24s END AS dst_24s
            FROM summary s JOIN reached r ON s.k = r.k AND s.ev = r.ev
        """)
        closes_before = partition.horizon_us - self.idle_us  # closed: more than idle before the horizon
        tool_case = _majority_tool_sql()
        select = (f"SELECT src, src6, proto, dport, traffic_class, first_us AS first_ts, last_us AS last_ts, "
                  f"packets, destinations, dst_24s, {tool_case} AS tool, {counts_open} FROM ev_all")
        order = f"ORDER BY first_ts, {_KEY}"
        closed = con.sql(f"{select} WHERE last_us < {closes_before} {order}").to_arrow_table()
        still_open = con.sql(f"{select} WHERE last_us >= {closes_before} {order}").to_arrow_table()
        dsts = con.sql(f"""
            SELECT DISTINCT d.k, d.dst, d.dst6 FROM ev_dst_rows d JOIN ev_all o ON d.k = o.k AND d.ev = o.ev
            WHERE o.last_us >= {closes_before} ORDER BY ALL
        """).to_arrow_table()
        con.execute("DROP TABLE ev_marked; DROP TABLE ev_dst_rows; DROP TABLE ev_all")
        for name in ("ev_open", "ev_dsts"):
            con.unregister(name)
        return _with_text(closed, EVENTS.schema), {
            "open": _with_text(still_open, OPEN_SCHEMA), "dsts": conform(dsts, DSTS_SCHEMA),
        }


def _majority_tool_sql() -> str:
    """The most frequent tool, "none" (untagged packets) competing; ties go to the earlier tool."""
    untagged = "packets - " + " - ".join(f"n_{t}" for t in TOOLS)
    best = f"greatest({', '.join(f'n_{t}' for t in TOOLS)})"
    cases = " ".join(f"WHEN n_{t} = {best} THEN '{t}'" for t in TOOLS)
    return f"CASE WHEN {best} = 0 OR {best} < {untagged} THEN NULL {cases} END"


def _with_text(table: pa.Table, schema: pa.Schema) -> pa.Table:
    table = table.append_column("src_ip", address_text(table.column("src").combine_chunks(),
                                                       table.column("src6").combine_chunks()))
    return conform(table, schema)
