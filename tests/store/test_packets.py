"""The packets dataset: hour partitioning, atomic commit, recovery after a crash, idempotence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iotscope.store.packets import PacketStore, StoreError, partition_of
from iotscope.store.query import connect, store_stats
from iotscope.store.schema import PACKET_SCHEMA, packet_record_batch

HOUR_US = 3_600_000_000
T0 = 1_472_688_000 * 1_000_000  # 2016-09-01 00:00 UTC


def make_batch(ts: np.ndarray, proto: int = 6, flags: int = 2):
    """A batch of IPv4 packets at the given times, like the decode stage would produce."""
    n = len(ts)
    cols = {
        "ts": ts.astype(np.int64),
        "ip_version": np.full(n, 4, np.uint8),
        "src": np.arange(n, dtype=np.uint32) + 0x01020304,
        "dst": np.full(n, 0xC6120001, np.uint32),
        "src6": np.zeros((n, 16), np.uint8),
        "dst6": np.zeros((n, 16), np.uint8),
        "proto": np.full(n, proto, np.uint8),
        "sport": np.full(n, 40000, np.uint16),
        "dport": np.full(n, 23, np.uint16),
        "icmp_type": np.zeros(n, np.uint8),
        "icmp_code": np.zeros(n, np.uint8),
        "tcp_flags": np.full(n, flags, np.uint8),
        "seq": np.full(n, 0xC6120001, np.uint32),
        "ip_id": np.full(n, 54321, np.uint16),
        "ttl": np.full(n, 64, np.uint8),
        "ip_len": np.full(n, 40, np.uint16),
        "win": np.full(n, 14600, np.uint16),
        "l4": np.ones(n, bool),
    }
    return packet_record_batch(cols, np.zeros(n, np.int8), np.zeros(n, np.int8), np.full(n, -1, np.int8))


def test_record_batch_nulls_follow_protocol() -> None:
    batch = make_batch(np.array([T0]), proto=1)  # ICMP: no ports, no TCP fields
    row = batch.to_pylist()[0]
    assert batch.schema == PACKET_SCHEMA
    assert row["sport"] is None and row["dport"] is None and row["seq"] is None
    assert row["icmp_type"] == 0 and row["src"] == 0x01020304 and row["src6"] is None


def test_batches_split_by_hour_into_hive_partitions(tmp_path: Path) -> None:
    ts = np.array([T0 + 5, T0 + HOUR_US + 1, T0 + 10, T0 + 3 * HOUR_US - 1])
    with PacketStore(tmp_path) as store:
        writer = store.writer("a" * 64)
        writer.write(make_batch(ts))
        entry = writer.commit("x.pcap", 1, 4, {})
        assert entry.packets == 4
        assert sorted(entry.files) == [
            f"packets/date=2016-09-01/hour={h}/part-{'a' * 64}-{i}.parquet" for i, h in enumerate(("00", "01", "02"))
        ]
        assert pq.read_table(tmp_path / entry.files[0]).num_rows == 2
        rows = connect(store).execute("SELECT hour, count(*) FROM packets GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [(0, 2), (1, 1), (2, 1)]


def test_uncommitted_files_are_invisible_and_removed_on_reopen(tmp_path: Path) -> None:
    store = PacketStore(tmp_path)
    writer = store.writer("b" * 64)
    writer.write(make_batch(np.array([T0])))
    writer._flush(T0 // HOUR_US)  # data reaches staging, as in a kill -9 mid-ingest
    # A crash between "move into packets/" and "commit": an orphan file in the dataset.
    orphan = tmp_path / "packets/date=2016-09-01/hour=00/part-" f"{'c' * 64}.parquet"
    orphan.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_batches([make_batch(np.array([T0]))]), orphan)
    assert store_stats(store)["packets"] == 0  # readers see only committed files
    store.close()
    with PacketStore(tmp_path) as reopened:
        assert not orphan.exists()
        assert not (tmp_path / ".staging").exists()
        assert store_stats(reopened)["packets"] == 0


def test_commit_is_recorded_once(tmp_path: Path) -> None:
    with PacketStore(tmp_path) as store:
        writer = store.writer("d" * 64)
        writer.write(make_batch(np.array([T0, T0 + 1])))
        writer.commit("y.pcap", 10, 2, {"non_ip": 3})
    with PacketStore(tmp_path) as store:
        assert store.ingested("d" * 64).skipped == {"non_ip": 3}
        stats = store_stats(store)
    assert stats["packets"] == 2 and stats["skipped"] == {"non_ip": 3}
    assert stats["flag_class"]["syn"] == 2 and stats["top_dports"][0]["dport"] == 23


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    with PacketStore(tmp_path) as store:
        writer = store.writer("e" * 64)
        writer.write(make_batch(np.array([T0])))
        writer.abort()
        assert store.committed_files() == []
    assert list((tmp_path / "packets").rglob("*.parquet")) == []


def test_store_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        PacketStore(target)


def test_out_of_order_hours_are_all_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ts = T0 + rng.integers(0, 48 * HOUR_US, 20_000)  # two days, shuffled
    with PacketStore(tmp_path) as store:
        writer = store.writer("f" * 64)
        for chunk in np.array_split(ts, 10):
            writer.write(make_batch(chunk))
        entry = writer.commit("z.pcap", 1, len(ts), {})
        hours = connect(store).execute("SELECT count(DISTINCT (date, hour)), count(*) FROM packets").fetchone()
    assert entry.packets == len(ts) and hours == (48, len(ts))


def test_store_of_another_format_is_refused(tmp_path: Path) -> None:
    import sqlite3

    PacketStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="format 99"):
        PacketStore(tmp_path)


def test_opening_the_store_during_an_ingest_leaves_its_work_alone(tmp_path: Path) -> None:
    with PacketStore(tmp_path) as ingesting:
        writer = ingesting.writer("9" * 64)
        writer.write(make_batch(np.array([T0, T0 + 1])))
        writer._flush(T0 // HOUR_US)
        with PacketStore(tmp_path) as reader:  # e.g. `iotscope stats` in another terminal
            assert (tmp_path / ".staging" / ("9" * 64)).exists()
            assert store_stats(reader)["packets"] == 0
            with pytest.raises(StoreError, match="another ingest"):
                reader.writer("8" * 64)
        assert writer.commit("w.pcap", 1, 2, {}).packets == 2
    with PacketStore(tmp_path) as after:
        assert store_stats(after)["packets"] == 2


def test_a_time_no_partition_can_name_is_a_one_line_store_error(tmp_path: Path) -> None:
    """The capture reader skips such records; should one reach the store, it refuses in one line."""
    year_12000 = (12_000 - 1970) * 365 * 24 * HOUR_US
    with PacketStore(tmp_path) as store:
        writer = store.writer("e" * 64)
        writer.write(make_batch(np.array([T0, year_12000])))
        with pytest.raises(StoreError, match=r"outside the years 1970\.\.9999") as raised:
            writer.commit("x.pcap", 1, 2, {})
        assert "\n" not in str(raised.value)
        writer.abort()


def test_partition_of_reads_back_the_hour_a_file_was_written_to(tmp_path: Path) -> None:
    """The one parser of ``date=/hour=`` paths (compaction labels and the analysis hours use it)."""
    hours = np.array([0, 1, 25])  # 2016-09-01 00h and 01h, 2016-09-02 01h
    with PacketStore(tmp_path / "s") as store:
        writer = store.writer("c" * 32)
        writer.write(make_batch(T0 + hours * 3_600_000_000))
        entry = writer.commit("/c.pcap", 1, 3, {})
    assert sorted(partition_of(f) for f in entry.files) == [
        ("2016-09-01", "00"), ("2016-09-01", "01"), ("2016-09-02", "01")]
    assert partition_of("packets/x.parquet") is None
    assert partition_of("packets/date=2016-09-01/x.parquet") is None
