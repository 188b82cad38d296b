"""notify.sqlite: the org catalog's versions, and one writer at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.notify.database import NotifyDatabase
from iotscope.notify.errors import NotifyError
from tests.notify.conftest import SENDER, org_entry
from tests.notify.test_orgs import load


def test_catalog_versions_follow_content(tmp_path: Path) -> None:
    first = load(tmp_path, SENDER + org_entry("A", ["a@a.example"], ["192.0.2.0/24"]))
    second = load(tmp_path, SENDER + org_entry("A", ["a@a.example"], ["192.0.2.0/25"]))
    with NotifyDatabase(tmp_path / "store") as db:
        assert db.record_catalog(first) == 1
        assert db.record_catalog(first) == 1  # unchanged: same version
        assert db.record_catalog(second) == 2
        assert db.record_catalog(first) == 1  # edited back: the old version
        assert db.catalog_document(2)["orgs"][0]["networks"] == ["192.0.2.0/25"]
        assert [v for v, _, _ in db.catalog_versions()] == [1, 2]


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    """Two runs at once would both find a host due and both alert it: the second is refused."""
    with NotifyDatabase(tmp_path / "store"):
        with pytest.raises(NotifyError, match="another alerts/notify run .pid [0-9]+. is writing"):
            NotifyDatabase(tmp_path / "store")
        with NotifyDatabase(tmp_path / "store", read_only=True) as reader:  # readers are never refused
            assert reader.catalog_versions() == []
    with NotifyDatabase(tmp_path / "store"):  # released on close
        pass


def test_status_before_any_notice_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "store").mkdir()
    run = subprocess.run([sys.executable, "-m", "iotscope", "notify", "status", "--store", str(tmp_path / "store")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2 and "nothing notified yet" in run.stderr
    assert list((tmp_path / "store").iterdir()) == []


def test_read_only_open_of_a_store_whose_path_has_uri_characters(tmp_path: Path) -> None:
    """The read-only open goes through the store's one opener, which quotes the path: ``#`` and
    ``?`` in a directory name used to cut the ``file:`` URI (no such file, or ``mode=ro`` lost)."""
    store = tmp_path / "sensor #2?x"
    first = load(tmp_path, SENDER + org_entry("A", ["a@a.example"], ["192.0.2.0/24"]))
    with NotifyDatabase(store) as db:
        db.record_catalog(first)
    with NotifyDatabase(store, read_only=True) as reader:
        assert [v for v, _, _ in reader.catalog_versions()] == [1]
