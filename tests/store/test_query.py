"""The query layer: reading statements run, anything that writes or reaches outside the store is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotscope.store.packets import PacketStore
from iotscope.store.query import QueryError, run_query
from iotscope.store.state import StoreError
from tests.store.test_packets import T0, make_batch


@pytest.fixture
def store(tmp_path: Path) -> Path:
    with PacketStore(tmp_path / "store") as s:
        writer = s.writer("a" * 32)
        writer.write(make_batch(T0 + np.arange(100)))
        writer.commit("/s/a.pcap", 1, 100, {})
    return tmp_path / "store"


def test_reading_statements_run_on_a_read_only_open(store: Path) -> None:
    with PacketStore(store, read_only=True) as s:
        assert run_query(s, "SELECT count(*) AS n FROM packets").to_pylist() == [{"n": 100}]
        assert "dport" in run_query(s, "DESCRIBE packets").column("column_name").to_pylist()
        assert run_query(s, "SELECT 1; FROM packets SELECT count(*) AS n").to_pylist() == [{"n": 100}]
        with pytest.raises(StoreError, match="read-only"):
            s.writer("b" * 32)


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1) TO '{part}' (FORMAT parquet, USE_TMP_FILE false)",
    "SELECT 1; COPY (SELECT 1) TO '{tmp}/x.csv'",
    "ATTACH '{tmp}/x.db'", "INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true",
    "PRAGMA enable_profiling", "CALL pragma_version()", "CREATE TABLE t (a INT)",
])
def test_statements_that_are_not_reads_are_refused_before_running(store: Path, tmp_path: Path, sql: str) -> None:
    with PacketStore(store, read_only=True) as s:
        part = s.committed_files()[0]
        before = part.read_bytes()
        with pytest.raises(QueryError, match="refused"):
            run_query(s, sql.format(part=part, tmp=tmp_path))
        assert part.read_bytes() == before and not (tmp_path / "x.csv").exists() and not (tmp_path / "x.db").exists()


def test_files_outside_the_store_cannot_be_read(store: Path, tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("a\n1\n")
    with PacketStore(store, read_only=True) as s, pytest.raises(QueryError, match="disabled"):
        run_query(s, f"SELECT * FROM read_csv('{tmp_path / 'other.csv'}')")


def test_sql_errors_are_one_line(store: Path) -> None:
    with PacketStore(store, read_only=True) as s:
        with pytest.raises(QueryError) as syntax:
            run_query(s, "SELEC 1")
        with pytest.raises(QueryError) as column:
            run_query(s, "SELECT no_such_column FROM packets")
    assert "\n" not in str(syntax.value) and "no_such_column" in str(column.value)
