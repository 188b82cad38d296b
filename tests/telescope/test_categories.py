"""Target categories: the shipped table, user overrides, bad files, numpy and DuckDB lookups."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from iotscope.errors import IotscopeError
from iotscope.telescope.categories import OTHER, CategoryError, load_categories
from tests.share.cli import iotscope, one_line_error
from tests.user_files import KINDS, unsuitable_file

TCP, UDP, ICMP = 6, 17, 1


def _names(table, proto, ports) -> list[str]:
    codes = table.category_codes(np.array(proto, dtype=np.uint8), np.array(ports, dtype=np.uint16))
    return [table.names[c] for c in codes]


def test_default_table_has_the_issue_categories() -> None:
    t = load_categories()
    assert t.names[-1] == OTHER
    assert {"iot", "pc", "database", "remote_login", "web", "voip", "dns"} <= set(t.names)
    expect = {
        (TCP, 23): "iot", (TCP, 2323): "iot", (TCP, 5555): "iot", (TCP, 7547): "iot", (TCP, 37215): "iot",
        (TCP, 52869): "iot", (TCP, 135): "pc", (TCP, 139): "pc", (TCP, 445): "pc", (TCP, 1433): "database",
        (TCP, 3306): "database", (TCP, 5432): "database", (TCP, 6379): "database", (TCP, 27017): "database",
        (TCP, 22): "remote_login", (TCP, 3389): "remote_login", (TCP, 5900): "remote_login", (TCP, 80): "web",
        (TCP, 443): "web", (UDP, 5060): "voip", (UDP, 53): "dns", (TCP, 12345): OTHER, (UDP, 23): OTHER,
        (UDP, 123): OTHER, (ICMP, 0): OTHER, (ICMP, 23): OTHER,
    }
    got = _names(t, [k[0] for k in expect], [k[1] for k in expect])
    assert dict(zip(expect, got, strict=True)) == expect


def test_arrow_nulls_are_other_and_dictionary_column() -> None:
    t = load_categories()
    proto = pa.array([6, 6, 1, 17], pa.uint8())
    dport = pa.array([23, None, None, 53], pa.uint16())
    col = t.category_names(proto, dport)
    assert col.to_pylist() == ["iot", OTHER, OTHER, "dns"]


def test_user_file_merges_over_default(tmp_path: Path) -> None:
    user = tmp_path / "cats.toml"
    user.write_text('[web]\ntcp = [8080]\n[ics]\ntcp = [502, 102]\n[other]\ntcp = [81]\n')
    t = load_categories(user)
    assert _names(t, [TCP] * 5, [8080, 502, 81, 23, 80]) == ["web", "ics", OTHER, "iot", "web"]
    assert "ics" in t.names and t.names[-1] == OTHER
    assert t.sources == (user,)


def test_user_file_can_replace_default(tmp_path: Path) -> None:
    user = tmp_path / "cats.toml"
    user.write_text('replace = true\n[telnet]\ntcp = [23, 2323]\n')
    t = load_categories(user)
    assert t.names == ("telnet", OTHER)
    assert _names(t, [TCP, TCP, TCP], [23, 445, 80]) == ["telnet", OTHER, OTHER]


@pytest.mark.parametrize(("text", "needle"), [
    ("[iot\ntcp = [23]\n", "not valid TOML"),
    ("[iot]\nsctp = [23]\n", "[iot] sctp: unknown protocol"),
    ("[iot]\ntcp = [70000]\n", "port 70000 is not in 0-65535"),
    ("[iot]\ntcp = [-1]\n", "port -1 is not in 0-65535"),
    ("[iot]\ntcp = ['23']\n", "port '23' is not in 0-65535"),
    ("[iot]\ntcp = [23]\n[web]\ntcp = [80, 23]\n", "[web] tcp port 23 is already in [iot]"),
    ("[iot]\ntcp = 23\n", "expected a list of ports"),
    ("iot = 1\n", "iot: expected a [table]"),
    ("[IoT]\ntcp = [23]\n", "[IoT]: category names"),
    ("replace = 'yes'\n", "replace must be true or false"),
])
def test_bad_files_one_line_naming_file_and_entry(tmp_path: Path, text: str, needle: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(CategoryError) as info:
        load_categories(bad)
    message = str(info.value)
    assert isinstance(info.value, IotscopeError)
    assert "\n" not in message and str(bad) in message and needle in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CategoryError, match="category file not found"):
        load_categories(tmp_path / "absent.toml")


def test_same_port_in_tcp_and_udp_is_allowed(tmp_path: Path) -> None:
    user = tmp_path / "c.toml"
    user.write_text('[a]\ntcp = [9999]\n[b]\nudp = [9999]\n')
    t = load_categories(user)
    assert _names(t, [TCP, UDP], [9999, 9999]) == ["a", "b"]


def test_duckdb_join_matches_numpy_lookup() -> None:
    t = load_categories()
    rng = np.random.default_rng(1)
    ports = np.concatenate([t.arrow()["port"].to_numpy(), rng.integers(0, 65536, 500)]).astype(np.uint16)
    protos = rng.choice(np.array([TCP, UDP, ICMP], dtype=np.uint8), len(ports))
    packets = pa.table({"proto": pa.array(protos, pa.uint8()), "dport": pa.array(ports, pa.uint16()),
                        "i": pa.array(np.arange(len(ports)))})
    con = duckdb.connect()
    t.register(con)
    con.register("packets", packets)
    sql = ("SELECT coalesce(c.category, 'other') FROM packets p "
           "LEFT JOIN categories c ON c.proto = p.proto AND c.port = p.dport ORDER BY p.i")
    from_sql = [r[0] for r in con.execute(sql).fetchall()]
    assert from_sql == _names(t, protos, ports)
    assert from_sql.count("iot") > 0 and from_sql.count(OTHER) > 0


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real store of a small simulated capture, not analysed (so `analyze` has hours to do)."""
    root = tmp_path_factory.mktemp("categories-store")
    for args in (("simulate", "--out", root / "d.pcap", "--packets", "2000", "--hours", "1", "--seed", "3"),
                 ("ingest", root / "d.pcap", "--store", root / "store", "--no-analyze")):
        result = iotscope(*args)
        assert result.returncode == 0, result.stderr
    return root / "store"


@pytest.mark.parametrize("kind", KINDS)
def test_categories_that_are_no_regular_file_are_one_line_exit_2(kind: str, small_store: Path, tmp_path: Path) -> None:
    # A FIFO used to hang `analyze --categories` forever and /dev/zero to fill memory (Path.read_text).
    path, words = unsuitable_file(kind, tmp_path)
    error = one_line_error(iotscope("analyze", "--store", small_store, "--categories", path, timeout=60))
    assert str(path) in error and "category file" in error and words in error, error
