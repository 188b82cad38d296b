"""Importing the L4 phase from zmap and masscan output, judged against the scope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotscope.survey.journal import OpenPort
from iotscope.survey.l4import import IMPORT_MAX_BYTES, L4ImportError, import_file_digest, read_l4_file
from iotscope.survey.scope import Scope


@pytest.fixture
def scope(tmp_path: Path) -> Scope:
    (tmp_path / "optout.txt").write_text("192.0.2.66\n")
    (tmp_path / "scope.toml").write_text(
        'blocklist = "optout.txt"\n[[authorized]]\ncidr = "192.0.2.0/24"\nowner = "Doc"\n'
        'authorization = "RFC 5737"\nspecial_purpose = true\n'
    )
    return Scope.load(tmp_path / "scope.toml")


def read(tmp_path: Path, scope: Scope, text: str, ports: list[int] | None = None):
    (tmp_path / "scan.out").write_text(text)
    return read_l4_file(tmp_path / "scan.out", scope, ports)


def test_zmap_csv_with_header(tmp_path: Path, scope: Scope) -> None:
    text = "saddr,sport,classification,success\n192.0.2.1,23,synack,1\n192.0.2.2,23,rst,0\n192.0.2.3,2323,synack,1\n192.0.2.1,23,synack,1\n"
    result = read(tmp_path, scope, text)
    assert result.open_ports == [OpenPort("192.0.2.1", 23), OpenPort("192.0.2.3", 2323)]


def test_zmap_plain_addresses_need_one_port(tmp_path: Path, scope: Scope) -> None:
    assert read(tmp_path, scope, "192.0.2.1\n192.0.2.2\n", [23]).open_ports == [OpenPort("192.0.2.1", 23), OpenPort("192.0.2.2", 23)]
    with pytest.raises(L4ImportError, match="exactly one --ports value"):
        read(tmp_path, scope, "192.0.2.1\n", [23, 22])


def test_masscan_list(tmp_path: Path, scope: Scope) -> None:
    text = "#masscan\nopen tcp 23 192.0.2.7 1763780000\nopen tcp 80 192.0.2.8 1763780001\nopen udp 53 192.0.2.9 1\n# end\n"
    assert read(tmp_path, scope, text).open_ports == [OpenPort("192.0.2.7", 23), OpenPort("192.0.2.8", 80)]
    assert read(tmp_path, scope, text, [80]).open_ports == [OpenPort("192.0.2.8", 80)]


def test_masscan_json_both_dialects(tmp_path: Path, scope: Scope) -> None:
    valid = '[{"ip": "192.0.2.7", "timestamp": "1", "ports": [{"port": 22, "proto": "tcp", "status": "open"}]}]'
    legacy = '[\n{   "ip": "192.0.2.7",   "timestamp": "1", "ports": [ {"port": 22, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] },\n{finished: 1}\n]\n'
    assert read(tmp_path, scope, valid).open_ports == [OpenPort("192.0.2.7", 22)]
    with pytest.raises(L4ImportError, match="scan.out:3: not masscan -oJ JSON"):
        read(tmp_path, scope, legacy)
    legacy_ok = legacy.replace("{finished: 1}\n", "")
    assert read(tmp_path, scope, legacy_ok).open_ports == [OpenPort("192.0.2.7", 22)]


def test_out_of_scope_line_refuses_the_whole_file(tmp_path: Path, scope: Scope) -> None:
    with pytest.raises(L4ImportError, match=r"scan.out:3: refusing 8\.8\.8\.8: not in any authorized range"):
        read(tmp_path, scope, "#masscan\nopen tcp 23 192.0.2.7 1\nopen tcp 23 8.8.8.8 1\n")


def test_blocklisted_lines_are_dropped_and_counted(tmp_path: Path, scope: Scope) -> None:
    result = read(tmp_path, scope, "open tcp 23 192.0.2.66 1\nopen tcp 23 192.0.2.67 1\n")
    assert result.open_ports == [OpenPort("192.0.2.67", 23)] and result.blocklisted == 1


@pytest.mark.parametrize(("text", "message"), [
    ("open tcp 99999 192.0.2.1 1\n", "bad port"),
    ("open tcp\n", "not a masscan -oL line"),
])
def test_malformed_lines(tmp_path: Path, scope: Scope, text: str, message: str) -> None:
    with pytest.raises(L4ImportError, match=message):
        read(tmp_path, scope, text)


def test_missing_file(tmp_path: Path, scope: Scope) -> None:
    with pytest.raises(L4ImportError, match="file not found"):
        read_l4_file(tmp_path / "nope", scope)


# -- malformed and hostile files (issue 6, item 11) ---------------------------------------------------


@pytest.mark.parametrize(("text", "ports", "message"), [
    # zmap CSV rows shorter than the header: no saddr / no sport (was TypeError/AttributeError)
    ("saddr,sport\n192.0.2.1\n", None, r"scan\.out:2: not a zmap CSV row \(missing 'sport'\)$"),
    ("saddr,sport,classification\n\n192.0.2.1,23\n", None,
     r"scan\.out:3: not a zmap CSV row \(missing 'classification'\)$"),
    ('saddr,sport\n"192.0.2.1\n",23\n', None, r"scan\.out:3: not an IP address: '192\.0\.2\.1\\n'$"),
    ("#zmap\nsaddr,sport\n192.0.2.1,+23\n", None, r"scan\.out:3: bad port '\+23'$"),
    ("saddr\n192.0.2.1,23\n", [23], None),
    # masscan -oJ with the wrong shapes (was TypeError/AttributeError)
    ('[{"ip": "192.0.2.1", "ports": 23}]', None, r"scan\.out:1: not masscan -oJ JSON \(expected a list of ports\)$"),
    ('[{"ip": "192.0.2.1", "ports": [23]}]', None, r"scan\.out:1: not masscan -oJ JSON \(expected a port object\)$"),
    ('[{"ip": ["192.0.2.1"], "ports": [{"port": 23, "proto": "tcp"}]}]', None,
     r"scan\.out:1: refusing \['192\.0\.2\.1'\]: not an IP address"),
    ('[{"ip": "192.0.2.1", "ports": [{"port": 23.5, "proto": "tcp"}]}]', None, r"scan\.out:1: bad port '23\.5'$"),
    ('[{"ip": "192.0.2.1", "ports": [{"port": true, "proto": "tcp"}]}]', None, r"scan\.out:1: bad port 'True'$"),
    ("[" * 100_000 + "]" * 100_000, None, r"scan\.out:1: not masscan -oJ JSON \(nested too deeply\)$"),
    ("{" + '"a":' * 100_000, None, r"scan\.out:1: not masscan -oJ JSON"),
    ("open tcp 23 192.0.2.1\x00 1\n", None, r"scan\.out:1: not an IP address: '192\.0\.2\.1\\x00'$"),
])
def test_malformed_files_are_one_line_with_the_line_number(
    tmp_path: Path, scope: Scope, text: str, ports: list[int] | None, message: str | None
) -> None:
    if message is None:
        assert read(tmp_path, scope, text, ports).open_ports == [OpenPort("192.0.2.1", 23)]
        return
    with pytest.raises(L4ImportError, match=message):
        read(tmp_path, scope, text, ports)


def test_import_is_capped_and_regular_files_only(tmp_path: Path, scope: Scope) -> None:
    device = r"^/dev/zero: cannot read import file \(a character device, not a regular file\)$"
    with pytest.raises(L4ImportError, match=device):
        read_l4_file(Path("/dev/zero"), scope, [23])
    with pytest.raises(L4ImportError, match=r"^/dev/zero: cannot read import file"):
        import_file_digest(Path("/dev/zero"))
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:
        handle.truncate(IMPORT_MAX_BYTES + 1)  # sparse
    too_big = rf"huge\.csv: import file is {IMPORT_MAX_BYTES + 1:,} bytes, more than the cap"
    with pytest.raises(L4ImportError, match=too_big):
        read_l4_file(huge, scope, [23])
    with pytest.raises(L4ImportError, match="more than the cap"):
        import_file_digest(huge)


_LINE_PIECES = st.sampled_from([
    "open", "tcp", "udp", "23", "0", "99999", "-1", "1e3", "192.0.2.1", "192.0.2.66", "::1", "8.8.8.8", "x",
    "saddr", "sport", "success", "classification", "synack", "rst", "#masscan", ",", " ", '"', "[", "]", "{",
    "}", ":", '"ip"', '"ports"', '"port"', '"proto"', '"status"', "null", "true", "1.5", "\x00", "\t", "é",
])
_LINES = st.lists(_LINE_PIECES, max_size=8).map("".join)
_JSON_LEAVES = st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=True) | st.sampled_from(
    ["192.0.2.1", "192.0.2.66", "tcp", "open", "23", "ip", "ports"]
)
_JSON_KEYS = st.sampled_from(["ip", "ports", "port", "proto", "status", "x"])
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_JSON_KEYS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.one_of(
        st.lists(_LINES, max_size=6).map("\n".join),
        st.lists(_JSON, max_size=3).map(lambda docs: "\n".join(json.dumps(d) + "," for d in docs)),
        _JSON.map(json.dumps),
        st.text(max_size=200),
    ),
    ports=st.sampled_from([None, [23], [23, 80]]),
)
def test_fuzzed_files_raise_only_l4_import_error(
    tmp_path: Path, scope: Scope, text: str, ports: list[int] | None
) -> None:
    path = tmp_path / "fuzz.out"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        result = read_l4_file(path, scope, ports)
    except L4ImportError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
    else:
        for open_port in result.open_ports:
            assert scope.is_allowed(open_port.ip) and 0 < open_port.port < 65536
