"""Tool fingerprints against the simulator's ground truth and hand-built packets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.classify import FLAG
from iotscope.telescope.fingerprints import NO_TOOL, TOOL, tool_codes
from iotscope.telescope.ingest import ingest


def _columns(**fields: list[int]) -> dict[str, np.ndarray]:
    n = len(next(iter(fields.values())))
    base = {"ip_version": [4] * n, "dst": [0] * n, "dport": [0] * n, "seq": [0] * n, "ip_id": [0] * n}
    base.update(fields)
    return {k: np.array(v, dtype=np.uint32 if k != "ip_version" else np.uint8) for k, v in base.items()}


def test_rules_first_match_wins() -> None:
    dst = 0xC6120001  # 198.18.0.1
    cols = _columns(
        dst=[dst, dst, dst, dst, dst, dst],
        seq=[dst, 7, 99, 5, dst, dst],
        ip_id=[54321, 54321, (dst ^ 23 ^ 99) & 0xFFFF, 1, 0, 0],
        dport=[23, 23, 23, 23, 23, 23],
        ip_version=[4, 4, 4, 4, 4, 6],
    )
    syn, ack = FLAG["syn"], FLAG["ack"]
    flags = np.array([syn, syn, syn, syn, ack, syn], dtype=np.int8)
    codes = tool_codes(cols, flags)
    assert codes.tolist() == [TOOL["mirai"], TOOL["zmap"], TOOL["masscan"], NO_TOOL, NO_TOOL, NO_TOOL]


def test_simulated_tools_found_by_their_sources(tmp_path: Path) -> None:
    result = simulate_darknet(DarknetConfig(packets=60_000, hours=1, seed=7), tmp_path / "d.pcap")
    ingest([tmp_path / "d.pcap"], tmp_path / "store")
    truth = pq.read_table(result.truth_path)
    with PacketStore(tmp_path / "store") as store:
        con = connect(store)
        con.register("truth", truth)
        rows = con.execute(
            "SELECT t.kind, p.tool, count(*) FROM packets p JOIN truth t ON p.src = t.src "
            "WHERE p.flag_class = 'syn' GROUP BY ALL"
        ).fetchall()
    by_kind: dict[str, dict[str | None, int]] = {}
    for kind, tool, n in rows:
        by_kind.setdefault(kind, {})[tool] = n
    for kind in ("mirai", "zmap", "masscan"):
        counts = by_kind[kind]
        assert counts.get(kind, 0) == sum(counts.values()), (kind, counts)
    for kind, counts in by_kind.items():
        if kind not in ("mirai", "zmap", "masscan"):
            tagged = sum(n for tool, n in counts.items() if tool is not None)
            assert tagged <= max(2, sum(counts.values()) // 1000), (kind, counts)
