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

How: one array pass per hour, no SQL (five DuckDB statements took ~6x the CPU). The carried
vectors (one row each, at their last packet) and the hour's backscatter are sorted by (victim key,
time) and cut where the key changes or a gap exceeds the timeout; the sums are ``reduceat``s, the
ports a ``np.unique`` of ``vector << 16 | port``, the windows :func:`kernels.peak_windows`.

Carried state: vectors that could still continue (``open``: the dataset's columns plus whether
they pass the thresholds yet), their attacked ports (``ports``) and their last rate buckets
(``buckets``), so a window that straddles an hour, a file or an ingest is counted whole.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.store.datasets import ATTACKS, conform, with_address_text
from iotscope.telescope.passes.base import US_PER_SECOND, AnalysisPass, Partition, State
from iotscope.telescope.passes.kernels import peak_windows
from iotscope.telescope.passes.settings import AnalysisSettings
from iotscope.telescope.passes.tagging import BACKSCATTER

_KEY = ("victim", "victim6", "proto")
VECTOR_SCHEMA = pa.schema([*ATTACKS.schema, pa.field("is_attack", pa.bool_(), nullable=False)])
PORTS_SCHEMA = pa.schema([pa.field("victim", pa.uint32()), pa.field("victim6", pa.binary(16)),
                          pa.field("proto", pa.uint8()), pa.field("port", pa.uint16())])
BUCKETS_SCHEMA = pa.schema([pa.field("victim", pa.uint32()), pa.field("victim6", pa.binary(16)),
                            pa.field("proto", pa.uint8()), pa.field("bucket", pa.int64()),
                            pa.field("packets", pa.int64())])


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
        # Backscatter is about a tenth of the packets: select it in Arrow (by dictionary code) first.
        hour = partition.table
        backscatter = partition.tags.traffic == BACKSCATTER
        rows = hour.select(["ts", "src", "src6", "proto", "sport", "ip_len"]).filter(pa.array(backscatter))
        old = carried.get("vectors")
        old = old if old is not None else VECTOR_SCHEMA.empty_table()
        old_ports = carried.get("ports")
        old_ports = old_ports if old_ports is not None else PORTS_SCHEMA.empty_table()
        old_buckets = carried.get("buckets")
        old_buckets = old_buckets if old_buckets is not None else BUCKETS_SCHEMA.empty_table()
        c, n = len(old), len(rows)
        # One row per carried vector (at its last packet) and per packet, as one would-be vector each.
        victim = _concat([old.column("victim"), rows.column("src"), old_ports.column("victim"),
                          old_buckets.column("victim")], pa.uint32())
        victim6 = _concat([old.column("victim6"), rows.column("src6"), old_ports.column("victim6"),
                           old_buckets.column("victim6")], pa.binary(16))
        proto = _concat([old.column("proto"), rows.column("proto"), old_ports.column("proto"),
                         old_buckets.column("proto")], pa.uint8())
        all_keys = vector_keys(victim, victim6, proto)
        keys = all_keys[:c + n]
        t = np.concatenate([_micros(old.column("last_ts")), _micros(rows.column("ts"))])
        first = np.concatenate([_micros(old.column("first_ts")), t[c:]])
        packets = np.concatenate([_int64(old.column("packets")), np.ones(n, dtype=np.int64)])
        size = np.concatenate([_int64(old.column("bytes")), _int64(rows.column("ip_len"))])
        carried_peak = np.concatenate([_int64(old.column("peak_window_packets")), np.zeros(n, dtype=np.int64)])

        # Vectors: runs per key in time order whose gaps are at most the timeout (corsaro3's expiry).
        order = np.lexsort((t, keys))
        k_sorted, t_sorted = keys[order], t[order]
        starts = np.ones(c + n, dtype=bool)
        starts[1:] = (k_sorted[1:] != k_sorted[:-1]) | (t_sorted[1:] - t_sorted[:-1] > self.timeout_us)
        heads = np.flatnonzero(starts)
        vector_of = np.empty(c + n, dtype=np.int64)
        vector_of[order] = np.cumsum(starts) - 1
        m = len(heads)
        if m:
            first_us = np.minimum.reduceat(first[order], heads)
            last_us = np.maximum.reduceat(t_sorted, heads)
            total_packets = np.add.reduceat(packets[order], heads)
            total_bytes = np.add.reduceat(size[order], heads)
            peak = np.maximum.reduceat(carried_peak[order], heads)
        else:
            first_us = last_us = total_packets = total_bytes = peak = np.empty(0, dtype=np.int64)
        head_rows = pa.array(order[heads])
        # The carried ports and buckets belong to their key's carried vector (the first of the key).
        carried_vector = _carried_vector(keys[:c], vector_of[:c], all_keys[c + n:])
        port_vector, bucket_vector = carried_vector[:len(old_ports)], carried_vector[len(old_ports):]

        sport = rows.column("sport").combine_chunks()
        has_port = sport.is_valid().to_numpy(zero_copy_only=False)
        pairs = np.unique(np.concatenate([
            (vector_of[c:][has_port] << 16) | _int64(sport.filter(pa.array(has_port))),
            (port_vector << 16) | _int64(old_ports.column("port"))]))
        pair_vector = pairs >> 16
        offsets = np.searchsorted(pair_vector, np.arange(m + 1))
        victim_ports = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(pairs & 0xFFFF, pa.uint16()))

        # Rate buckets: this hour's, plus the carried tail of each carried vector; peak window per vector.
        cell_vector = np.concatenate([vector_of[c:], bucket_vector])
        cell_bucket = np.concatenate([t[c:] // self.slide_us, _int64(old_buckets.column("bucket"))])
        cell_packets = np.concatenate([np.ones(n, dtype=np.int64), _int64(old_buckets.column("packets"))])
        by_cell = np.lexsort((cell_bucket, cell_vector))
        cell_vector, cell_bucket, cell_packets = cell_vector[by_cell], cell_bucket[by_cell], cell_packets[by_cell]
        cell_starts = np.ones(len(by_cell), dtype=bool)
        cell_starts[1:] = (cell_vector[1:] != cell_vector[:-1]) | (cell_bucket[1:] != cell_bucket[:-1])
        cell_heads = np.flatnonzero(cell_starts)
        cell_vector, cell_bucket = cell_vector[cell_heads], cell_bucket[cell_heads]
        cell_packets = np.add.reduceat(cell_packets, cell_heads) if len(cell_heads) else cell_packets
        peak = np.maximum(peak, peak_windows(cell_vector, cell_bucket, cell_packets, m, self.window_buckets))

        is_attack = (total_packets >= self.min_packets) & (last_us - first_us >= self.min_duration_us) \
            & (peak >= self.min_window_packets)
        table = pa.table({
            "victim": victim.take(head_rows), "victim6": victim6.take(head_rows), "proto": proto.take(head_rows),
            "first_ts": first_us, "last_ts": last_us, "packets": total_packets, "bytes": total_bytes,
            "victim_ports": victim_ports, "peak_window_packets": peak,
            "window_s": pa.array(np.full(m, self.window_s, dtype=np.int32)), "is_attack": is_attack,
        })
        by_start = [("first_ts", "ascending"), *((name, "ascending") for name in _KEY)]
        keep = last_us >= partition.horizon_us - self.timeout_us
        closed = table.filter(pa.array(~keep & is_attack)).sort_by(by_start).drop_columns(["is_attack"])
        vectors = table.filter(pa.array(keep)).sort_by(by_start)
        first_kept = partition.end_us // self.slide_us - (self.window_buckets - 1)
        kept_cells = keep[cell_vector] & (cell_bucket >= first_kept)
        cell_rows = pa.array(order[heads][cell_vector[kept_cells]])
        buckets = pa.table({"victim": victim.take(cell_rows), "victim6": victim6.take(cell_rows),
                            "proto": proto.take(cell_rows), "bucket": cell_bucket[kept_cells],
                            "packets": cell_packets[kept_cells]})
        kept_pairs = keep[pair_vector]
        pair_rows = pa.array(order[heads][pair_vector[kept_pairs]])
        ports = pa.table({"victim": victim.take(pair_rows), "victim6": victim6.take(pair_rows),
                          "proto": proto.take(pair_rows), "port": pa.array(pairs[kept_pairs] & 0xFFFF, pa.uint16())})
        vectors = with_address_text(vectors, "victim", "victim6", "victim_ip", VECTOR_SCHEMA)
        return with_address_text(closed, "victim", "victim6", "victim_ip", ATTACKS.schema), {
            "open": vectors.filter(pc.field("is_attack")),
            "vectors": vectors,
            "ports": conform(ports.sort_by([(name, "ascending") for name in ports.column_names]), PORTS_SCHEMA),
            "buckets": conform(buckets.sort_by([(name, "ascending") for name in buckets.column_names]), BUCKETS_SCHEMA),
        }


def _concat(columns: list[pa.ChunkedArray], type_: pa.DataType) -> pa.Array:
    """The columns end to end as one array of ``type_``."""
    return pa.chunked_array([chunk for column in columns for chunk in column.cast(type_).chunks], type_).combine_chunks()


def _int64(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column without nulls as int64 numpy values."""
    return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    """Timestamps as µs since the epoch (int64)."""
    return _int64(column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()))


def vector_keys(victim: pa.Array, victim6: pa.Array, proto: pa.Array) -> np.ndarray:
    """One exact uint64 per (victim, victim6, proto): an IPv4 victim packed with the protocol (40 bits),
    an IPv6 victim numbered among this call's IPv6 victims (``np.unique``) with the top bit set."""
    protos = _int64(proto)
    v4 = victim.is_valid().to_numpy(zero_copy_only=False)
    keys = (_int64(victim.fill_null(0)) << 8) | protos
    if not v4.all():
        rows6 = np.flatnonzero(~v4)
        words = victim6.take(pa.array(rows6)).fill_null(b"\0" * 16)
        values = np.frombuffer(words.buffers()[1], dtype="V16")[words.offset:words.offset + len(words)]
        _, number = np.unique(values, return_inverse=True)
        keys[rows6] = (number.reshape(-1).astype(np.int64) << 8) | protos[rows6] | np.int64(1 << 62)
    return keys


def _carried_vector(carried_keys: np.ndarray, carried_vectors: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The vector of each of ``keys`` (carried ports or buckets) among the carried vectors' keys."""
    if not len(keys):
        return np.empty(0, dtype=np.int64)
    by_key = np.argsort(carried_keys, kind="stable")
    found = by_key[np.searchsorted(carried_keys[by_key], keys)]
    return carried_vectors[found]
