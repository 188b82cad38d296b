"""The store's catalog: every dataset of a store directory, read without writing, and documented."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from iotscope.notify.database import NotifyDatabase
from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.store.catalog import store_catalog
from iotscope.store.datasets import DATASETS
from iotscope.store.packets import PacketStore
from iotscope.store.state import StoreError
from tests.survey.test_report import ISP, T0, add_survey

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


def iotscope(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotscope", *args], capture_output=True, text=True, timeout=600,
                          check=False)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def full_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with every kind of dataset: packets and their analysis (a real ingest), findings of
    two surveys, and a notify database."""
    tmp = tmp_path_factory.mktemp("catalog")
    simulate_darknet(DarknetConfig(packets=20_000, hours=2, seed=5), tmp / "d.pcap")
    root = tmp / "store"
    ingest = iotscope("ingest", str(tmp / "d.pcap"), "--store", str(root))
    assert ingest.returncode == 0, ingest.stderr
    add_survey(root, "S1", [("192.0.2.9", 23, "telnet", "vulnerable", "mirai-01", T0, ISP)])
    add_survey(root, "S2", [("192.0.2.10", 23, "telnet", "not_vulnerable", None, T0, ISP)])
    NotifyDatabase(root).close()
    return root


def test_store_info_lists_every_dataset_with_its_files_and_writes_nothing(full_store: Path) -> None:
    before = snapshot(full_store)
    result = iotscope("store", "info", "--store", str(full_store), "--json")
    assert result.returncode == 0, result.stderr
    assert snapshot(full_store) == before
    info = {d["name"]: d for d in json.loads(result.stdout)}
    assert list(info) == ["packets", *DATASETS, "alerts", "sources", "categories", "findings", "notify"]
    assert info["sources"]["files"] == 1 and info["sources"]["view"] == "sources"  # written by the analysis
    with PacketStore(full_store, read_only=True) as store:
        live = store.state.live_files()
    assert info["packets"]["files"] == len(live) > 0
    assert info["packets"]["stored_formats"] == [info["packets"]["format"]]
    for name, spec in DATASETS.items():
        assert info[name]["view"] == name and info[name]["format"] == spec.version
    assert info["events"]["files"] > 0 and info["events"]["stored_formats"] == [DATASETS["events"].version]
    assert info["findings"]["files"] == 2 and info["findings"]["view"] is None
    assert info["notify"]["files"] == 1 and info["notify"]["stored_formats"] == [info["notify"]["format"]]
    table = iotscope("store", "info", "--store", str(full_store))
    assert table.returncode == 0 and all(name in table.stdout for name in info)


def test_a_store_with_only_a_survey_lists_its_findings(tmp_path: Path) -> None:
    add_survey(tmp_path, "S1", [("192.0.2.9", 23, "telnet", "vulnerable", "mirai-01", T0, ISP)])
    info = {d.name: d for d in store_catalog(tmp_path)}
    assert info["findings"].files == 1 and info["packets"].files == 0 and info["notify"].stored_formats == ()
    assert not (tmp_path / "state.sqlite").exists()


def test_bad_stores_are_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    other = tmp_path / "other"
    other.mkdir()
    db = sqlite3.connect(other / "state.sqlite")
    db.execute("CREATE TABLE t (x)")
    db.execute("PRAGMA user_version = 99")
    db.close()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notify.sqlite").write_bytes(b"not a database at all" * 10)
    for store, message in [(tmp_path / "missing", "no such store directory"),
                           (tmp_path / "empty", "not an iotscope store"),
                           (other, "store format 99"), (tmp_path / "junk", "cannot read")]:
        before = snapshot(store) if store.exists() else None
        result = iotscope("store", "info", "--store", str(store))
        assert result.returncode == 2, (store, result.stdout, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert (snapshot(store) if store.exists() else None) == before


def test_catalog_refuses_a_file_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="no such store directory"):
        store_catalog(tmp_path / "f")


def test_schema_doc_documents_every_dataset_and_view(tmp_path: Path) -> None:
    """docs/schema.md's "Datasets" table has a row per dataset the catalog knows, with its format,
    and a section per view."""
    text = DOCS.read_text()
    table = text.split("## Datasets", 1)[1].split("\n## ", 1)[0]
    add_survey(tmp_path, "S1", [])
    for d in store_catalog(tmp_path):
        row = re.search(rf"^\| `{d.name}` \|.*$", table, re.MULTILINE)
        assert row, f"docs/schema.md: no row for dataset {d.name}"
        assert f"| {d.format} |" in row.group(0), f"docs/schema.md: format of {d.name} is not {d.format}"
        if d.view:
            assert re.search(rf"^##+ `{d.view}`", text, re.MULTILINE), f"docs/schema.md: no section for view {d.view}"


def test_catalog_does_not_import_the_stages_that_write(tmp_path: Path) -> None:
    """store/ may not depend on survey/, notify/ or telescope/ (architecture: they come after it)."""
    code = ("import sys, iotscope.store.catalog; "
            "print(sorted(m for m in sys.modules if m.split('.')[1:2] in (['survey'], ['notify'], ['telescope'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"
