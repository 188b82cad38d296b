"""Finding damaged committed files, and which captures a repair must drop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from iotscope.store.check import captures_to_drop, find_damage
from iotscope.store.packets import PacketStore
from tests.store.test_packets import HOUR_US, T0, make_batch


def commit(store: PacketStore, content_hash: str, source: str, size: int, hours: int = 2) -> None:
    writer = store.writer(content_hash)
    writer.write(make_batch(T0 + np.arange(hours * 10) * (HOUR_US // 10)))
    writer.commit(source, size, hours * 10, {})


def test_intact_store_has_no_damage(tmp_path: Path) -> None:
    with PacketStore(tmp_path) as store:
        commit(store, "a" * 32, "/s/a.pcap", 100)
        assert find_damage(store) == [] and find_damage(store, thorough=False) == []


def test_missing_truncated_and_replaced_files_are_found(tmp_path: Path) -> None:
    with PacketStore(tmp_path) as store:
        for h in "abcd":
            commit(store, h * 32, f"/s/{h}.pcap", 100)
        by_hash = {c.content_hash: c for c in store.state.all_ingested()}
        (tmp_path / by_hash["a" * 32].files[0]).unlink()
        cut = tmp_path / by_hash["b" * 32].files[1]
        cut.write_bytes(cut.read_bytes()[:-20])
        pq.write_table(pa.table({"x": [1]}), tmp_path / by_hash["c" * 32].files[0])
        same_schema = tmp_path / by_hash["d" * 32].files[0]  # right columns, one row instead of ten
        pq.write_table(pq.read_table(same_schema).slice(0, 1), same_schema)
        found = {d.capture.content_hash[0]: d.problems for d in find_damage(store)}
    assert set(found) == {"a", "b", "c", "d"}
    assert "missing" in found["a"][0] and "unreadable" in found["b"][0] and "unreadable" in found["c"][0]
    assert "hold 11 rows, the catalog says 20" in found["d"][0]


def test_dropping_a_capture_drops_the_later_ingests_of_its_growing_file(tmp_path: Path) -> None:
    with PacketStore(tmp_path) as store:
        commit(store, "1" * 32, "/s/grow.pcap", 100)
        commit(store, "2" * 32, "/s/grow.pcap", 200)  # the same file, grown: stored relative to the first
        commit(store, "3" * 32, "/s/other.pcap", 300)
        (tmp_path / store.state.ingested("1" * 32).files[0]).unlink()
        dropped = captures_to_drop(store, find_damage(store))
        assert [c.content_hash[0] for c in dropped] == ["1", "2"]
        store.drop_captures([c.content_hash for c in dropped])
        assert [c.content_hash[0] for c in store.state.all_ingested()] == ["3"]
        assert find_damage(store) == []
    assert sorted(p.name for p in (tmp_path / "packets").rglob("*.parquet")) == sorted(
        f"part-{'3' * 32}-{i}.parquet" for i in range(2))
