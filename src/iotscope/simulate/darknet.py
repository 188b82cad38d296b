"""Synthetic darknet traffic: what a network telescope on a /15 receives, with its ground truth.

The telescope half needs big, realistic captures to test and benchmark against, and tests need to
know which source is which. :func:`simulate_darknet` writes both: a capture (pcap or pcapng, gzip
by name) and ``<capture>.truth.parquet`` with one row per simulated source.

Traffic mix (share of packets, roughly NICTER 2016: about 2/3 of darknet packets target IoT):

============================  =====  ==========================================================
kind                          share  what the packets look like
============================  =====  ==========================================================
``mirai``                     0.50   TCP SYN, seq = destination address, dport 23 / 2323 in 9:1,
                                     per-bot fixed sport and window, random IP ID, TTL 64 - hops
``iot_worm``                  0.16   SYN from a Linux stack to 5555 (ADB), 7547 (TR-069),
                                     37215 (Huawei HG532), 52869 (Realtek), 8080, 81
``ssh_scanner``               0.04   Linux SYN to 22 (brute-force bots)
``zmap``                      0.05   SYN, IP ID 54321, window 65535, TTL 255 - hops, one port per
                                     campaign (443, 80, 22, 23, 8080, 7547)
``masscan``                   0.04   SYN, IP ID = (dst ^ dport ^ seq) & 0xffff, window 1024,
                                     TTL 255 - hops, fixed sport, ports drawn from a top-ports list
``pc_scanner``                0.06   Windows SYN (TTL 128 - hops, window 8192, MSS/WS/SACK
                                     options) to 445, 3389, 1433, 3306, 6379
``backscatter_victim``        0.06   DoS victims answering spoofed floods: SYN-ACK (+ some
                                     RST-ACK), RST / RST-ACK, or ICMP unreachable (type 3) quoting
                                     the spoofed packet; sport = attacked service; each victim is an
                                     episode of minutes with hundreds to thousands of packets
``udp_prober``                0.04   well-formed UDP requests to 53, 123, 161, 1900, 5060, 137,
                                     11211
``icmp_prober``               0.03   ICMP echo requests (ping payload)
``noise``                     0.02   TTL >= 200, port 0, XMAS / NULL / SYN+FIN flags, reserved
                                     (spoofed) sources, source = destination
============================  =====  ==========================================================

ZMap and masscan really send with TTL 255, so their packets arrive with TTL >= 200 like the noise
share's; telling them apart takes their fingerprints, which is the point of having both.

Sources live in allocated address space, weighted by registry toward where each kind really came
from (Mirai: Asia and Latin America; research scanners: North America and Europe), see
:mod:`iotscope.simulate.addresses`. Each source is active over an interval of the run and its packets
arrive uniformly within it (a Poisson process, conditioned on its packet count); with ``outbreak``
most Mirai bots are infected during the run at an exponentially growing rate and stay active, so the
distinct sources on 2323/TCP grow hour by hour as before the 2016 Dyn attack. Everything is drawn
from one seeded generator: the same config gives the same bytes.

The capture is generated in time windows of at most
:data:`~iotscope.simulate.darknet_packets.CHUNK_PACKETS` packets, so memory stays bounded whatever
the packet count; within a window all work is numpy array code.

Ground truth (``<capture>.truth.parquet``, one row per source that sent a packet), what the
analysis passes are tested against:

================  ==================  ==========================================================
column            type                meaning
================  ==================  ==========================================================
``src``           uint32              the source address (host byte order, like ``packets.src``)
``kind``          dictionary string   one of :data:`~iotscope.simulate.darknet_config.KINDS`
``style``         dictionary string   backscatter style or noise style, else ``""``
``proto``         uint8               the protocol its packets carry (ICMP for unreachable
                                      backscatter and ping probers)
``dport``         uint16, null        targeted port (Mirai: 23, 1 in 10 packets go to 2323);
                                      null when it varies per packet
``sport``         uint16, null        a backscatter victim's attacked service port
``first_ts``,     timestamp[us, UTC]  first and last packet the source sent
``last_ts``
``packets``       uint64              packets it sent
``tool``          dictionary string   ``mirai``, ``zmap`` or ``masscan`` when every SYN of the
                                      source carries that tool's fingerprint, else null (what
                                      the ``tool`` column says by majority, see
                                      ``iotscope.telescope.fingerprints``)
``episode_start``, timestamp[us, UTC] a backscatter victim's DoS episode: its packets arrive
``episode_end``   , null              uniformly in ``[start, end)``; null for other kinds
``peak_60s``      uint32, null        a victim's most packets in any 60 s ``[t, t + 60 s)``;
                                      with ``packets`` and the episode's length this says
                                      whether it passes the ``attacks`` thresholds
================  ==================  ==========================================================

Schema metadata: ``darknet``, ``seed``, ``hours``, ``outbreak``, ``start`` and, with ``outbreak``,
``outbreak_start`` (ISO 8601) and ``outbreak_start_us`` (epoch µs): the first infection, which is
the run's start unless :attr:`DarknetConfig.outbreak_start` places it later.

The parts: :mod:`~iotscope.simulate.darknet_config` (settings), :mod:`~iotscope.simulate.darknet_sources`
(who sends), :mod:`~iotscope.simulate.darknet_packets` (what they send),
:mod:`~iotscope.simulate.darknet_truth` (the ground truth); this module runs them into files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from iotscope.capture import CaptureBlock
from iotscope.simulate.capture_file import write_blocks
from iotscope.simulate.darknet_config import KINDS, DarknetConfig, SimulationError
from iotscope.simulate.darknet_packets import generate_blocks
from iotscope.simulate.darknet_sources import plan_sources
from iotscope.simulate.darknet_truth import SourceExtent, truth_path, truth_table


@dataclass
class SimulationResult:
    """What :func:`simulate_darknet` wrote, with the counts the CLI summary shows."""

    path: Path
    truth_path: Path
    packets: int
    file_bytes: int
    seconds: float
    packets_by_kind: dict[str, int]
    sources_by_kind: dict[str, int]


def simulate_darknet(config: DarknetConfig, out: Path | str,
                     progress: Callable[[int], None] | None = None) -> SimulationResult:
    """Simulate ``config`` into the capture ``out`` (.pcap/.pcapng, optionally .gz) and its ground truth.

    ``progress`` is called with the number of packets written so far after each window.
    Raises :class:`SimulationError` for impossible settings, before anything is written.
    """
    began = time.perf_counter()
    out = Path(out)
    config.validate()
    if not out.parent.is_dir():
        raise SimulationError(f"output directory does not exist: {out.parent}")
    plan = plan_sources(config)
    extent = SourceExtent.empty(len(plan), tracked=plan.kind == KINDS.index("backscatter_victim"))
    written = 0

    def counted() -> Iterator[CaptureBlock]:
        nonlocal written
        for block in generate_blocks(config, plan, extent):
            yield block
            written += len(block)
            if progress is not None:
                progress(written)

    write_blocks(out, counted())
    extent.first += config.start_us
    extent.last += config.start_us
    truth = truth_path(out)
    pq.write_table(truth_table(config, plan, extent), truth)
    by_kind = np.bincount(plan.kind, weights=plan.packets, minlength=len(KINDS)).astype(np.int64)
    sources = np.bincount(plan.kind[plan.packets > 0], minlength=len(KINDS))
    return SimulationResult(
        path=out,
        truth_path=truth,
        packets=written,
        file_bytes=out.stat().st_size,
        seconds=time.perf_counter() - began,
        packets_by_kind={k: int(by_kind[i]) for i, k in enumerate(KINDS) if by_kind[i]},
        sources_by_kind={k: int(sources[i]) for i, k in enumerate(KINDS) if sources[i]},
    )
