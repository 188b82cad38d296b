"""The analysis views of a store with nothing analysed yet: readable from every cursor, with their columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotscope.store.datasets import DATASETS
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.store.schema import PACKET_SCHEMA
from iotscope.store.summaries import ALERTS, ENRICHMENT_SOURCE_COLUMNS, SOURCES
from tests.store.test_packets import T0, make_batch


def _store(root: Path, packets: int) -> Path:
    with PacketStore(root) as s:
        if packets:
            writer = s.writer("a" * 32)
            writer.write(make_batch(T0 + np.arange(packets)))
            writer.commit("/s/a.pcap", 1, packets, {})
    return root


@pytest.mark.parametrize("packets", [0, 100], ids=["empty store", "unanalysed store"])
def test_views_without_files_are_seen_by_every_cursor(tmp_path: Path, packets: int) -> None:
    """A web server queries from a cursor per thread; a view over an Arrow table registered on the
    connection (what an empty dataset once stood on) exists only for that connection."""
    with PacketStore(_store(tmp_path / "store", packets), read_only=True) as store:
        con = connect(store)
    cursor = con.cursor()
    expected = {**{name: spec.schema.names for name, spec in DATASETS.items()},
                ALERTS.name: ALERTS.schema.names, SOURCES.name: SOURCES.schema.names,
                "enrichment_sources": list(ENRICHMENT_SOURCE_COLUMNS)}
    for view, columns in expected.items():
        assert cursor.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,), view
        described = [row[0] for row in cursor.execute(f"DESCRIBE {view}").fetchall()]
        assert described[:len(columns)] == columns, view
    assert cursor.execute("SELECT count(*) FROM packets").fetchone() == (packets,)
    assert [r[0] for r in cursor.execute("DESCRIBE packets").fetchall()][:len(PACKET_SCHEMA)] == PACKET_SCHEMA.names
    # the types are the files' types: an empty view unions with, and compares to, real rows
    assert cursor.execute("SELECT typeof(bucket), typeof(src6), typeof(ports) FROM port_series, sources "
                          "LIMIT 0").description is not None
    assert dict(cursor.execute("SELECT column_name, column_type FROM (DESCRIBE sources)").fetchall())["ports"] \
        == "USMALLINT[]"
