"""Port lists as nmap and zmap users type them (issue 7, item 5)."""

from __future__ import annotations

import pytest

from iotscope.errors import IotscopeError
from iotscope.survey.portspec import PortSpecError, parse_ports


@pytest.mark.parametrize(("text", "ports"), [
    ("23", [23]),
    ("23,2323,22", [23, 2323, 22]),
    ("1-5", [1, 2, 3, 4, 5]),
    (" 8000-8002 , 23 ", [8000, 8001, 8002, 23]),
    ("22,20-23", [22, 20, 21, 23]),  # each port once, in first-given order
    ("-3", [1, 2, 3]),  # nmap: -3 is 1-3
    ("65534-", [65534, 65535]),  # nmap: to the last port
    ("7-7", [7]),
])
def test_parse(text: str, ports: list[int]) -> None:
    assert parse_ports(text) == ports


def test_every_port_and_the_usual_mix() -> None:
    assert parse_ports("-") == list(range(1, 65536))
    mixed = parse_ports("1-1024,2323,8000-8100")
    assert len(mixed) == 1024 + 1 + 101 and mixed[:2] == [1, 2] and mixed[-1] == 8100


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty port list"),
    ("  ", "empty port list"),
    ("23,", "empty item between commas"),
    ("1024-1", "range '1024-1' is reversed: write 1-1024"),
    ("0", "port 0 in '0': ports are 1..65535"),
    ("0-5", "port 0 in '0-5'"),
    ("65536", "port 65536"),
    ("80-70000", "port 70000 in '80-70000'"),
    ("9" * 5000, "ports are 1..65535"),
    ("http", "'http' is not a port or range"),
    ("+23", "is not a port or range"),
    ("２３", "is not a port or range"),
    ("1-2-3", "'1-2-3' is not a port or range"),
    ("0x17", "is not a port or range"),
])
def test_bad_specs_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(PortSpecError) as caught:
        parse_ports(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, IotscopeError)
