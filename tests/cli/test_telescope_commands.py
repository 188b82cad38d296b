"""`iotscope sql`, `stats` and `store check` through the real CLI, on a real store: readers never write.

Every attack on the store through `sql` (issue 6, item 2) must be refused in one line with exit 2
and leave every byte of the store, and of the host, as it was. Queries that might reach the
network run in a fresh network namespace (`unshare -n`), so no version of the code can connect
anywhere; the test checks that the refusal is ours, not a failed download.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest


def iotscope(*args: str, check: bool = True, wrap: tuple[str, ...] = (), **kwargs) -> subprocess.CompletedProcess:
    cmd = [*wrap, sys.executable, "-m", "iotscope", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"iotscope {args} exited {result.returncode}: {result.stderr}")
    return result


def refused(result: subprocess.CompletedProcess, *words: str, progress: bool = False) -> None:
    """Exit 2, one line on stderr (after ``ingest``'s progress bar, if ``progress``), no traceback, saying why."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    if progress:
        lines = lines[-1:] if [line for line in lines if "error" in line] == lines[-1:] else lines
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), result.stderr


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` with a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "darknet.pcap"
    iotscope("simulate", "--out", str(path), "--packets", "20000", "--hours", "2", "--seed", "21")
    return path


@pytest.fixture
def store(capture: Path, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    iotscope("ingest", str(capture), "--store", str(root))
    return root


def part_files(store: Path) -> list[Path]:
    """The committed Parquet files, read straight from the catalog (independent of the code under test)."""
    db = sqlite3.connect(f"file:{store / 'state.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT files FROM ingested_files ORDER BY ingested_at").fetchall()
    finally:
        db.close()
    return [store / name for (files,) in rows for name in json.loads(files)]


def packets(store: Path, **kwargs) -> int:
    return json.loads(iotscope("stats", "--store", str(store), "--json", **kwargs).stdout)["packets"]


# ---- item 2: `sql` cannot write the store or the host, nor reach the network -----------------


def test_copy_to_a_committed_part_file_is_refused(store: Path) -> None:
    before = snapshot(store)
    part = part_files(store)[0]
    for options in ("", " (FORMAT parquet)", " (FORMAT parquet, USE_TMP_FILE false)"):
        result = iotscope("sql", "--store", str(store), f"COPY (SELECT 1 AS x) TO '{part}'{options}", check=False)
        refused(result, "COPY", "refused")
    assert snapshot(store) == before
    assert packets(store) == 20000


def test_copy_to_state_sqlite_is_refused(store: Path) -> None:
    before = snapshot(store)
    result = iotscope("sql", "--store", str(store), f"COPY (SELECT 1) TO '{store / 'state.sqlite'}' (FORMAT csv)",
                      check=False)
    refused(result, "COPY")
    assert snapshot(store) == before and packets(store) == 20000


@pytest.mark.parametrize("statement", [
    "ATTACH '{host}/attached.db' AS x",
    "COPY (SELECT * FROM packets) TO '{host}/exported.csv'",
    "EXPORT DATABASE '{host}/exported'",
    "CREATE TABLE t AS SELECT 1; COPY t TO '{host}/t.csv'",
])
def test_statements_that_write_host_files_are_refused(store: Path, tmp_path: Path, statement: str) -> None:
    host = tmp_path / "host"
    host.mkdir()
    result = iotscope("sql", "--store", str(store), statement.format(host=host), check=False)
    refused(result, "refused")
    assert list(host.iterdir()) == []


def test_reading_a_host_file_is_refused(store: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n42\n")
    result = iotscope("sql", "--store", str(store), f"SELECT * FROM read_csv('{secret}')", check=False)
    refused(result, "disabled")
    assert "42" not in result.stdout


@pytest.fixture
def offline(tmp_path: Path) -> dict:
    """Run in a new network namespace (nothing reachable, loopback down) with an empty HOME."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("needs unshare -n (root)")
    home = tmp_path / "home"
    home.mkdir()
    return {"wrap": ("unshare", "-n"), "env": {**os.environ, "HOME": str(home)}}


@pytest.mark.parametrize("statement", [
    "LOAD httpfs",
    "INSTALL httpfs",
    "SELECT * FROM read_csv('https://example.com/x.csv')",
    "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
    "SET enable_external_access = true",
    "SET autoinstall_known_extensions = true",
])
def test_extensions_and_urls_are_refused_before_any_connect(store: Path, offline: dict, statement: str) -> None:
    result = iotscope("sql", "--store", str(store), statement, check=False, **offline)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # Our refusal, not a download that failed for want of a network:
    assert "refused" in result.stderr or "disabled" in result.stderr or "locked" in result.stderr, result.stderr
    assert not (Path(offline["env"]["HOME"]) / ".duckdb").exists()


def test_reading_queries_still_work(store: Path) -> None:
    out = iotscope("sql", "--store", str(store), "--json",
                   "WITH p AS (SELECT dport FROM packets WHERE dport IS NOT NULL) SELECT count(*) AS n FROM p").stdout
    assert json.loads(out)[0]["n"] > 0
    described = iotscope("sql", "--store", str(store), "--csv", "DESCRIBE packets").stdout
    assert "traffic_class" in described and "hour" in described
    assert "20000" in iotscope("sql", "--store", str(store), "--csv", "FROM packets SELECT count(*)").stdout
    summarized = iotscope("sql", "--store", str(store), "--csv", "EXPLAIN SELECT count(*) FROM packets").stdout
    assert summarized


# ---- item 11: a read-only store is readable; writes to it fail in one line ---------------------


def read_only_mount(store: Path) -> tuple[str, ...]:
    """Wrap a command so that it sees ``store`` through a read-only bind mount (private mount namespace)."""
    script = f'mount --bind "{store}" "{store}" && mount -o remount,bind,ro "{store}" && exec "$@"'
    return ("unshare", "-m", "sh", "-c", script, "sh")


@pytest.fixture
def can_mount() -> None:
    if subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True).returncode:
        pytest.skip("needs unshare -m and mount (root)")


def test_readers_work_on_a_read_only_store(store: Path, can_mount: None) -> None:
    before = snapshot(store)
    wrap = read_only_mount(store)
    assert packets(store, wrap=wrap) == 20000
    out = iotscope("sql", "--store", str(store), "--csv", "SELECT count(*) AS n FROM packets", wrap=wrap).stdout
    assert out.split() == ['"n"', "20000"]
    assert "all files readable" in iotscope("store", "check", "--store", str(store), wrap=wrap).stderr
    assert snapshot(store) == before


def test_readers_leave_a_writable_store_untouched(store: Path, tmp_path: Path) -> None:
    orphan = store / "packets" / "date=2016-09-01" / "hour=00" / "part-orphan-0.parquet"
    shutil.copy(part_files(store)[0], orphan)  # what a killed ingest leaves: a writer cleans it, a reader must not
    before = snapshot(store)
    assert packets(store) == 20000
    iotscope("sql", "--store", str(store), "SELECT count(*) FROM packets")
    assert snapshot(store) == before


def test_ingest_into_a_read_only_store_fails_in_one_line(store: Path, capture: Path, tmp_path: Path,
                                                          can_mount: None) -> None:
    other = tmp_path / "other.pcap"
    iotscope("simulate", "--out", str(other), "--packets", "1000", "--seed", "4")
    before = snapshot(store)
    result = iotscope("ingest", str(other), "--store", str(store), check=False, wrap=read_only_mount(store))
    refused(result, str(store), progress=True)
    assert snapshot(store) == before


# ---- item 11: disk full during ingest ---------------------------------------------------------


def ingest_on_tmpfs(capture: Path, tmp_path: Path, size_kb: int,
                    *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Ingest ``capture`` into a store on a tmpfs of ``size_kb`` (own mount namespace); then its stats and df."""
    mnt = tmp_path / f"tmpfs{size_kb}{''.join(options)}"
    mnt.mkdir()
    store = mnt / "store"
    after = tmp_path / f"after{size_kb}.json"
    script = (f'mount -t tmpfs -o size={size_kb}k none "{mnt}" && "$@"; rc=$?; '
              f'"{sys.executable}" -m iotscope stats --store "{store}" --json > "{after}" 2>/dev/null; '
              f'df -k --output=used "{mnt}" | tail -1 > "{after}.df"; exit $rc')
    result = iotscope("ingest", str(capture), "--store", str(store), *options, check=False,
                      wrap=("unshare", "-m", "sh", "-c", script, "sh"))
    stats = json.loads(after.read_text()) if after.stat().st_size else {}
    return result, {**stats, "used_kb": int(Path(f"{after}.df").read_text())}


def test_disk_full_during_ingest_is_one_line_and_commits_nothing(capture: Path, tmp_path: Path,
                                                                 can_mount: None) -> None:
    fits, usage = ingest_on_tmpfs(capture, tmp_path, 4096, "--no-analyze")
    assert fits.returncode == 0 and usage["packets"] == 20000
    # 8 kB: state.sqlite cannot be set up; 64 kB: Parquet files do not fit; the size the finished store
    # takes plus 8 kB: the files fit, the commit's journal in state.sqlite does not.
    for size_kb in (8, 64, usage["used_kb"] + 8):
        result, stats = ingest_on_tmpfs(capture, tmp_path, size_kb, "--no-analyze")
        refused(result, "disk is full", progress=True)
        assert stats.get("packets", 0) == 0, (size_kb, stats)


def test_disk_full_during_the_analysis_after_ingest_keeps_the_packets(capture: Path, tmp_path: Path,
                                                                      can_mount: None) -> None:
    _, usage = ingest_on_tmpfs(capture, tmp_path, 4096, "--no-analyze")
    # Room for the packets and their commit, not for the analysis datasets: the packets stay committed
    # and the one line says to run analyze again.
    result, stats = ingest_on_tmpfs(capture, tmp_path, usage["used_kb"] + 24)
    refused(result, "disk is full", "analyze", progress=True)
    assert stats["packets"] == 20000


# ---- item 11: missing or corrupt committed files ------------------------------------------------


def damage(part: Path, how: str) -> None:
    if how == "missing":
        part.unlink()
    elif how == "truncated":
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    else:  # "replaced": a valid Parquet file with the wrong rows, as `COPY ... TO` used to leave
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"x": [1]}), part)


@pytest.mark.parametrize("how", ["missing", "truncated", "replaced"])
def test_damaged_file_gives_one_line_and_check_repair_restores(store: Path, capture: Path, how: str) -> None:
    part = part_files(store)[0]
    damage(part, how)
    for reader in (("stats", "--store", str(store)), ("sql", "--store", str(store), "SELECT count(*) FROM packets")):
        result = iotscope(*reader, check=False)
        refused(result, part.name, "store check")

    checked = iotscope("store", "check", "--store", str(store), check=False)
    assert checked.returncode == 1 and part.name in checked.stderr and "Traceback" not in checked.stderr

    repaired = iotscope("store", "check", "--store", str(store), "--repair")
    assert "re-ingested" in repaired.stderr
    assert packets(store) == 20000
    assert "all files readable" in iotscope("store", "check", "--store", str(store)).stderr


def _damaged_store_of_a_moved_capture(capture: Path, tmp_path: Path) -> Path:
    """A store of a copy of ``capture`` with one packet file missing, the copy gone: repair cannot re-ingest it."""
    moved = tmp_path / "moved.pcap"
    shutil.copy(capture, moved)
    other_store = tmp_path / "other"
    iotscope("ingest", str(moved), "--store", str(other_store))
    damage(part_files(other_store)[-1], "missing")
    moved.unlink()
    return other_store


def test_repair_without_the_source_drops_the_capture_until_it_is_ingested_again(store: Path, capture: Path,
                                                                                 tmp_path: Path) -> None:
    other_store = _damaged_store_of_a_moved_capture(capture, tmp_path)
    repaired = iotscope("store", "check", "--store", str(other_store), "--repair")
    assert "ingest it again" in repaired.stderr
    assert packets(other_store) == 0  # dropped, not half-counted
    iotscope("ingest", str(capture), "--store", str(other_store))
    assert packets(other_store) == 20000


def test_ingest_ends_its_analysis_thread_when_every_hour_is_already_up_to_date(capture: Path, tmp_path: Path) -> None:
    """The hours computed while ingesting are not taken when the analysis finds nothing to do (here:
    the re-ingested capture gives back the very files whose analysis is still recorded). Their thread
    must still end before ingest returns: left running, the interpreter tore it down inside DuckDB
    at exit and the process aborted (SIGABRT, "FATAL: exception not rethrown") after a good ingest."""
    from typer.testing import CliRunner

    from iotscope.cli import app

    other_store = _damaged_store_of_a_moved_capture(capture, tmp_path)
    iotscope("store", "check", "--store", str(other_store), "--repair")
    result = CliRunner().invoke(app, ["ingest", str(capture), "--store", str(other_store)])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    assert not [t for t in threading.enumerate() if t.name == "analyse-ahead" and t.is_alive()]
