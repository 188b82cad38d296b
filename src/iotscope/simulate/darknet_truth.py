"""The ground truth of a simulated darknet capture: one row per source, what the passes are tested
against (the columns are described in :mod:`iotscope.simulate.darknet`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from iotscope.ip_protocols import PROTO_ICMP, PROTO_TCP, PROTO_UDP
from iotscope.simulate.darknet_config import KINDS, DarknetConfig, SimulationError
from iotscope.simulate.darknet_sources import BACKSCATTER_STYLES, NOISE_STYLES, TOOL_OF_KIND, SourcePlan

#: Attack window of Corsaro3's dos plugin (and of the ``attacks`` pass): packets in some 60 s.
PEAK_WINDOW_US = 60_000_000


@dataclass
class SourceExtent:
    """First and last packet time per source, accumulated over windows (for the ground truth).

    With ``tracked`` (a mask over sources), the packet times of those sources are kept too, so that
    :meth:`peak` can count their busiest window afterwards; the simulator tracks backscatter victims
    only (6% of packets by default, 8 bytes each).
    """

    first: np.ndarray
    last: np.ndarray
    tracked: np.ndarray | None = None
    _sids: list[np.ndarray] = field(default_factory=list)
    _times: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def empty(cls, sources: int, tracked: np.ndarray | None = None) -> SourceExtent:
        return cls(first=np.full(sources, np.iinfo(np.int64).max), last=np.full(sources, -1), tracked=tracked)

    def update(self, sid_sorted: np.ndarray, ts: np.ndarray, counts: np.ndarray) -> None:
        present = np.flatnonzero(counts)
        if len(present) == 0:
            return
        starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]])
        self.first[present] = np.minimum(self.first[present], np.minimum.reduceat(ts, starts))
        self.last[present] = np.maximum(self.last[present], np.maximum.reduceat(ts, starts))
        if self.tracked is not None:
            keep = self.tracked[sid_sorted]
            self._sids.append(sid_sorted[keep])
            self._times.append(ts[keep])

    def peak(self, window_us: int = PEAK_WINDOW_US) -> np.ndarray:
        """Most packets of each tracked source in any ``[t, t + window_us)`` (0 for untracked sources)."""
        peak = np.zeros(len(self.first), dtype=np.int64)
        if not self._sids:
            return peak
        sid = np.concatenate(self._sids)
        ts = np.concatenate(self._times)
        order = np.lexsort((ts, sid))
        sid, ts = sid[order], ts[order]
        # One int64 key per (source, time) (times are µs into the run, >= 0), so that one
        # searchsorted finds every packet's window end for all sources at once.
        shift = int(ts.max() + window_us).bit_length()
        if int(sid.max()).bit_length() + shift > 62:
            raise SimulationError("run too long to count attack peaks")
        key = (sid.astype(np.int64) << shift) + ts
        inside = np.searchsorted(key, key + window_us, side="left") - np.arange(len(key))
        np.maximum.at(peak, sid, inside)
        return peak


def truth_path(capture: Path) -> Path:
    """Where the ground truth of ``capture`` goes: next to it, ``<capture name>.truth.parquet``."""
    return capture.with_name(capture.name + ".truth.parquet")


def truth_table(config: DarknetConfig, plan: SourcePlan, extent: SourceExtent) -> pa.Table:
    """One row per source that sent at least one packet: what it is and what it did."""
    sent = plan.packets > 0
    kind = plan.kind[sent]
    style_names = np.array(["", *BACKSCATTER_STYLES, *NOISE_STYLES], dtype=object)
    style_index = np.where(kind == KINDS.index("backscatter_victim"), 1 + plan.style[sent],
                           np.where(kind == KINDS.index("noise"), 1 + len(BACKSCATTER_STYLES) + plan.style[sent], 0))
    proto = np.full(len(kind), PROTO_TCP, dtype=np.uint8)
    proto[kind == KINDS.index("udp_prober")] = PROTO_UDP
    proto[kind == KINDS.index("icmp_prober")] = PROTO_ICMP
    backscatter = kind == KINDS.index("backscatter_victim")
    proto[backscatter & (plan.style[sent] == BACKSCATTER_STYLES.index("icmp_unreachable"))] = PROTO_ICMP
    port = plan.port[sent]
    mirai = kind == KINDS.index("mirai")
    dport = np.where(mirai, 23, port)
    no_dport = backscatter | (kind == KINDS.index("icmp_prober")) | (kind == KINDS.index("masscan"))
    ts_type = pa.timestamp("us", tz="UTC")
    tool_names = np.array([TOOL_OF_KIND.get(k) for k in KINDS], dtype=object)[kind]
    episode_start = plan.start[sent] + config.start_us
    episode_end = plan.end[sent] + config.start_us
    peak = extent.peak()[sent]
    metadata = {
        "iotscope.simulator": "darknet",
        "darknet": config.darknet, "seed": str(config.seed), "hours": str(config.hours),
        "outbreak": str(config.outbreak), "start": config.start.isoformat(),
        "notes": "dport: targeted port (mirai: 23, and 1 in 10 packets to 2323; null when it varies); "
                 "sport: the attacked service of a backscatter victim; tool: the fingerprint its SYNs carry; "
                 "episode_*: a backscatter victim's DoS episode (packets uniform within it), "
                 "peak_60s: its most packets in any 60 s",
    }
    if config.outbreak_start_us is not None:
        metadata["outbreak_start"] = datetime.fromtimestamp(config.outbreak_start_us / 1e6, tz=UTC).isoformat()
        metadata["outbreak_start_us"] = str(config.outbreak_start_us)
    return pa.table({
        "src": pa.array(plan.src[sent], type=pa.uint32()),
        "kind": pa.array(np.array(KINDS, dtype=object)[kind], type=pa.string()).dictionary_encode(),
        "style": pa.array(style_names[style_index], type=pa.string()).dictionary_encode(),
        "proto": pa.array(proto, type=pa.uint8()),
        "dport": pa.array(dport.astype(np.uint16), type=pa.uint16(), mask=no_dport),
        "sport": pa.array(port.astype(np.uint16), type=pa.uint16(), mask=~backscatter),
        "first_ts": pa.array(extent.first[sent], type=ts_type),
        "last_ts": pa.array(extent.last[sent], type=ts_type),
        "packets": pa.array(plan.packets[sent].astype(np.uint64), type=pa.uint64()),
        "tool": pa.array(tool_names, type=pa.string()).dictionary_encode(),
        "episode_start": pa.array(episode_start, type=ts_type, mask=~backscatter),
        "episode_end": pa.array(episode_end, type=ts_type, mask=~backscatter),
        "peak_60s": pa.array(peak.astype(np.uint32), type=pa.uint32(), mask=~backscatter),
    }, metadata=metadata)
