"""Research scanner membership: the shipped, sourced list and vectorized IPv4/IPv6 lookups."""

from __future__ import annotations

import ipaddress
import tomllib
from importlib import resources
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from iotscope.errors import IotscopeError
from iotscope.telescope.scanners import ScannerListError, load_research_scanners
from tests.user_files import KINDS, unsuitable_file


def v4(*texts: str) -> np.ndarray:
    return np.array([int(ipaddress.IPv4Address(t)) for t in texts], dtype=np.uint32)


def v6(*texts: str) -> np.ndarray:
    return np.frombuffer(b"".join(ipaddress.IPv6Address(t).packed for t in texts), dtype=np.uint8).reshape(-1, 16)


def test_shipped_list_is_sourced_and_dated() -> None:
    text = resources.files("iotscope.telescope").joinpath("data/research_scanners.toml").read_text()
    data = tomllib.loads(text)
    assert data["retrieved"]
    for entry in data["scanner"]:
        assert entry["published"].startswith("http") and entry["ranges"], entry["org"]
    s = load_research_scanners()
    assert {"Censys", "University of Michigan (ZMap team)", "Rapid7 Project Sonar"} <= set(s.orgs)


def test_ipv4_membership_edges() -> None:
    s = load_research_scanners()
    got = s.org_v4(v4("162.142.125.0", "162.142.125.255", "162.142.126.0", "162.142.124.255",
                      "141.212.121.77", "137.226.113.63", "137.226.113.64", "8.8.8.8", "0.0.0.0",
                      "255.255.255.255", "141.22.28.227", "141.22.28.228")).to_pylist()
    assert got == ["Censys", "Censys", None, None, "University of Michigan (ZMap team)",
                   "RWTH Aachen University", None, None, None, None,
                   "HAW Hamburg / FU Berlin (ilab DNS scans)", None]


def test_ipv4_lookup_matches_a_brute_force_check() -> None:
    s = load_research_scanners()
    rng = np.random.default_rng(0)
    inside = np.concatenate([rng.integers(f, int(la) + 1, 20) for f, la in zip(s.v4_first, s.v4_last, strict=True)])
    addr = np.concatenate([inside, rng.integers(0, 2**32, 5000)]).astype(np.uint32)
    codes = s.codes_v4(addr)
    brute = np.full(len(addr), -1)
    for f, la, o in zip(s.v4_first, s.v4_last, s.v4_org, strict=True):
        brute[(addr >= f) & (addr <= la)] = o
    assert np.array_equal(codes, brute) and (codes[: len(inside)] >= 0).all()


def test_ipv6_membership_arrow_and_numpy() -> None:
    s = load_research_scanners()
    addrs = ["2602:80d:1000:b0cc:e::1", "2602:80d:1007:ffff::1", "2602:80d:100b::1", "2a00:8a60:1014:88::5",
             "2a00:8a60:1014:89::5", "2001:db8::1"]
    expect = ["Censys", "Censys", None, "RWTH Aachen University", None, None]
    assert s.org_v6(v6(*addrs)).to_pylist() == expect
    arrow = pa.array([ipaddress.IPv6Address(a).packed for a in addrs] + [None], pa.binary(16))
    assert s.org_v6(arrow).to_pylist() == [*expect, None]
    # variable-width binary, a slice (an offset into the buffer) and a null inside: the same answers
    binary = pa.array([None] + [ipaddress.IPv6Address(a).packed for a in addrs], pa.binary())
    assert s.org_v6(binary.slice(1)).to_pylist() == expect
    assert s.org_v6(binary).to_pylist() == [None, *expect]


def test_duckdb_range_join() -> None:
    s = load_research_scanners()
    con = duckdb.connect()
    con.register("scanners", s.arrow_v4())
    con.register("sources", pa.table({"src": pa.array(v4("167.94.138.9", "1.1.1.1"), pa.uint32())}))
    rows = con.execute("SELECT s.src, r.org FROM sources s LEFT JOIN scanners r ON s.src BETWEEN r.first AND r.last "
                       "ORDER BY s.src").fetchall()
    assert rows == [(int(ipaddress.IPv4Address("1.1.1.1")), None),
                    (int(ipaddress.IPv4Address("167.94.138.9")), "Censys")]


def test_user_list_replaces_and_merges_one_orgs_ranges(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('retrieved = "2026-01-01"\n[[scanner]]\norg = "Lab"\npublished = "https://lab.example/"\n'
                 'ranges = ["203.0.113.0/25", "203.0.113.128/25", "203.0.113.64/26"]\n')
    s = load_research_scanners(f)
    assert s.orgs == ("Lab",) and len(s.v4_first) == 1
    assert s.org_v4(v4("203.0.113.200", "162.142.125.1")).to_pylist() == ["Lab", None]


@pytest.mark.parametrize(("body", "needle"), [
    ('retrieved = "x"\n[[scanner]\n', "not valid TOML"),
    ('[[scanner]]\norg = "A"\npublished = "u"\nranges = ["1.2.3.0/24"]\n', "retrieved must be"),
    ('retrieved = "x"\n[[scanner]]\norg = "A"\nranges = ["1.2.3.0/24"]\n', "needs org and published"),
    ('retrieved = "x"\n[[scanner]]\norg = "A"\npublished = "u"\nranges = ["1.2.3.4/24"]\n', "bad range '1.2.3.4/24'"),
    ('retrieved = "x"\n[[scanner]]\norg = "A"\npublished = "u"\nranges = ["1.2.3.0/33"]\n', "bad range"),
    ('retrieved = "x"\n[[scanner]]\norg = "A"\npublished = "u"\nranges = []\n', "non-empty list"),
    ('retrieved = "x"\n[[scanner]]\norg = "A"\npublished = "u"\nranges = ["10.0.0.0/8"]\n'
     '[[scanner]]\norg = "B"\npublished = "u"\nranges = ["10.1.0.0/16"]\n', "10.1.0.0 of B overlaps a range of A"),
])
def test_bad_lists_one_line(tmp_path: Path, body: str, needle: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ScannerListError) as info:
        load_research_scanners(f)
    assert isinstance(info.value, IotscopeError)
    message = str(info.value)
    assert "\n" not in message and str(f) in message and needle in message, message


@pytest.mark.timeout(60)  # a FIFO used to block the open forever
@pytest.mark.parametrize("kind", KINDS)
def test_list_that_is_no_regular_file_is_refused_in_one_line(kind: str, tmp_path: Path) -> None:
    path, words = unsuitable_file(kind, tmp_path)
    with pytest.raises(ScannerListError) as info:
        load_research_scanners(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "scanner list" in message and words in message, message
