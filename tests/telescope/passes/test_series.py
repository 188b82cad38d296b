"""port_series against direct SQL over the packets, and its bucket width."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze

DIRECT = """
    SELECT proto, dport, time_bucket(INTERVAL '{w} seconds', ts) AS bucket, count(*), count(DISTINCT src)
    FROM packets WHERE traffic_class = 'scan' AND dport IS NOT NULL GROUP BY ALL ORDER BY ALL
"""


@pytest.mark.parametrize("width", [600, 300])
def test_series_equals_direct_sql(tmp_path: Path, width: int) -> None:
    simulate_darknet(DarknetConfig(packets=80_000, hours=2, seed=3, outbreak=True), tmp_path / "d.pcap")
    ingest([tmp_path / "d.pcap"], tmp_path / "s")
    analyze(tmp_path / "s", {"series_bucket_s": width})
    with PacketStore(tmp_path / "s") as s:
        con = connect(s)
        got = con.sql("SELECT proto, port, bucket, packets, sources FROM port_series ORDER BY ALL").fetchall()
        want = con.sql(DIRECT.format(w=width)).fetchall()
        widths = con.sql("SELECT DISTINCT bucket_s FROM port_series").fetchall()
        buckets_2323 = con.sql("SELECT count(*) FROM port_series WHERE proto = 6 AND port = 2323").fetchall()[0][0]
    assert got == want and len(got) > 100
    assert widths == [(width,)]
    assert buckets_2323 == 2 * 3600 // width  # Mirai's 2323 is scanned in every bucket
