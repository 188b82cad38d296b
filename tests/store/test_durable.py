from pathlib import Path

import pytest

from iotscope.store.durable import fsync_path, move_into_place


def test_move_into_place_creates_the_directory_and_leaves_nothing_staged(tmp_path: Path) -> None:
    staged = tmp_path / ".staging" / "part-1.parquet"
    staged.parent.mkdir()
    staged.write_bytes(b"whole file")
    target = tmp_path / "date=2026-11-22" / "hour=04" / "part-1.parquet"

    move_into_place(staged, target)

    assert target.read_bytes() == b"whole file"
    assert not staged.exists()


def test_move_into_place_replaces_an_existing_target(tmp_path: Path) -> None:
    staged, target = tmp_path / "new", tmp_path / "out" / "file"
    target.parent.mkdir()
    target.write_bytes(b"old")
    staged.write_bytes(b"new")

    move_into_place(staged, target)

    assert target.read_bytes() == b"new"


def test_fsync_of_a_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsync_path(tmp_path / "missing")
