"""Importing the L4 phase from zmap and masscan output, judged against the scope."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.survey.journal import OpenPort
from iotscope.survey.l4import import L4ImportError, read_l4_file
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
