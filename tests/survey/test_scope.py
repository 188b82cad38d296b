"""Scope: loading, the in-scope rule (against a brute-force oracle), enumeration, and the guard.

Only 127.0.0.0/8 is ever contacted. Out-of-scope addresses anywhere in IPv4/IPv6 are handed to
the guard with sockets forbidden by an audit hook, which proves the refusal happens before a
socket exists (and would veto the packet if the guard were broken).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotscope.survey.addresses import SPECIAL_PURPOSE, canonical_address
from iotscope.survey.guarded_connect import (
    guarded_source_address,
    open_guarded_connection,
    open_guarded_socket,
    start_guarded_connect,
)
from iotscope.survey.scope import AuthorizedRange, OutOfScopeError, Scope, ScopeError
from tests.survey.socket_audit import socket_audit

LOOPBACK_SCOPE = """
blocklist = "optout.txt"

[[authorized]]
cidr = "127.0.0.0/24"
owner = "Loopback Lab"
authorization = "test fixture"
special_purpose = true

[[authorized]]
cidr = "198.51.100.0/24"
owner = "Documentation ISP"
authorization = "RFC 5737 example"
special_purpose = true
"""


def write_scope(tmp_path: Path, text: str, blocklist: str | None = "127.0.0.128/25  # opt-out\n") -> Path:
    if blocklist is not None:
        (tmp_path / "optout.txt").write_text(blocklist)
    path = tmp_path / "scope.toml"
    path.write_text(text)
    return path


@pytest.fixture
def loopback_scope(tmp_path: Path) -> Scope:
    return Scope.load(write_scope(tmp_path, LOOPBACK_SCOPE))


# -- loading ---------------------------------------------------------------------------------------


def test_load_reads_ranges_blocklist_and_owners(loopback_scope: Scope) -> None:
    assert [str(e.network) for e in loopback_scope.authorized] == ["127.0.0.0/24", "198.51.100.0/24"]
    assert loopback_scope.owner_of("127.0.0.9") == "Loopback Lab"
    assert loopback_scope.check("198.51.100.7").authorization == "RFC 5737 example"
    assert [str(n) for n in loopback_scope.blocklist] == ["127.0.0.128/25"]
    assert loopback_scope.target_count == 128 + 256
    assert loopback_scope.warnings == ()


@pytest.mark.parametrize(
    ("text", "blocklist", "expected"),
    [
        ("[[authorized]\ncidr = 1", None, "not valid TOML"),
        ("", None, "expected one or more [[authorized]] tables"),
        ('[[authorized]]\ncidr = "192.0.2.0/24"\nowner = "x"\n', None, "#1: missing 'authorization'"),
        ('[[authorized]]\ncidr = "300.1.2.0/24"\nowner = "x"\nauthorization = "y"\n', None, "#1: bad cidr '300.1.2.0/24'"),
        ('[[authorized]]\ncidr = "8.8.8.8/24"\nowner = "x"\nauthorization = "y"\n', None, "has host bits set"),
        ('[[authorized]]\ncidr = "8.8.8.0/24"\nowner = "x"\nauthorization = "y"\nspecial = true\n', None, "unknown key(s) special"),
        ('[[authorized]]\ncidr = "0.0.0.0/0"\nowner = "x"\nauthorization = "y"\nspecial_purpose = true\n', None, "only accepted on a range inside one special-purpose block"),
        ('[[authorized]]\ncidr = "8.8.8.0/24"\nowner = "x"\nauthorization = "y"\nspecial_purpose = "yes"\n', None, "must be true or false"),
        ('[[authorized]]\ncidr = "8.8.8.0/24"\nowner = "x"\nauthorization = "y"\n[[authorized]]\ncidr = "8.8.8.0/24"\nowner = "z"\nauthorization = "y"\n', None, "#2: 8.8.8.0/24 is already entry #1"),
        ('blocklist = "missing.txt"\n[[authorized]]\ncidr = "8.8.8.0/24"\nowner = "x"\nauthorization = "y"\n', None, "blocklist file"),
        ('blocklist = "optout.txt"\n[[authorized]]\ncidr = "8.8.8.0/24"\nowner = "x"\nauthorization = "y"\n', "# ok\n8.8.8.1\nnot-an-ip\n", "optout.txt:3: not a CIDR or address: 'not-an-ip'"),
        ('[[authorized]]\ncidr = "8.8.8.0/24"\nowner = "x"\nauthorization = "y"\n[[authorized]]\ncidr = "::ffff:8.8.8.0/120"\nowner = "z"\nauthorization = "y"\n', None, "#2: 8.8.8.0/24 is already entry #1"),
        ('targets = 3\n[[authorized]]\ncidr = "8.8.8.0/24"\nowner = "x"\nauthorization = "y"\n', None, "unknown top-level key(s) targets"),
    ],
)
def test_bad_scope_files_fail_with_one_line_naming_file_and_entry(
    tmp_path: Path, text: str, blocklist: str | None, expected: str
) -> None:
    path = write_scope(tmp_path, text, blocklist)
    with pytest.raises(ScopeError) as info:
        Scope.load(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert "scope.toml" in message or "optout.txt" in message


def test_missing_scope_file(tmp_path: Path) -> None:
    with pytest.raises(ScopeError, match="nope.toml: scope file not found"):
        Scope.load(tmp_path / "nope.toml")


def test_typo_range_never_authorizes_special_space_and_warns(tmp_path: Path) -> None:
    scope = Scope.load(write_scope(tmp_path, '[[authorized]]\ncidr = "0.0.0.0/0"\nowner = "x"\nauthorization = "y"\n', None))
    assert len(scope.warnings) == 1 and "0.0.0.0/0" in scope.warnings[0]
    for ip in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.0.1", "224.0.0.1", "255.255.255.255", "0.1.2.3"):
        with pytest.raises(OutOfScopeError, match="special-purpose range .* special_purpose = true"):
            scope.check(ip)
    assert scope.is_allowed("8.8.8.8")
    special_v4 = sum(n.num_addresses for n in ipaddress.collapse_addresses(V4_SPECIAL))
    assert scope.target_count == 2**32 - special_v4


def test_refusal_messages(loopback_scope: Scope) -> None:
    with pytest.raises(OutOfScopeError, match=r"^refusing 8\.8\.8\.8: not in any authorized range of .*scope\.toml$"):
        loopback_scope.check("8.8.8.8")
    with pytest.raises(OutOfScopeError, match=r"^refusing 127\.0\.0\.200: blocklisted by 127\.0\.0\.128/25 in .*optout\.txt$"):
        loopback_scope.check("127.0.0.200")
    with pytest.raises(OutOfScopeError, match=r"^refusing 127\.0\.1\.1: not in any authorized range"):
        loopback_scope.check("127.0.1.1")


@pytest.mark.parametrize("target", ["localhost", "127.1", "0x7f000001", "fe80::1%lo", "", "127.0.0.1:23"])
def test_only_literal_addresses_are_accepted(loopback_scope: Scope, target: str) -> None:
    with pytest.raises(OutOfScopeError, match="not an IP address"):
        loopback_scope.check(target)


def test_ipv4_mapped_ipv6_is_judged_as_the_ipv4_host_it_reaches(loopback_scope: Scope) -> None:
    assert loopback_scope.is_allowed("::ffff:127.0.0.5")
    assert not loopback_scope.is_allowed("::ffff:127.0.0.200")  # blocklisted as IPv4
    assert not loopback_scope.is_allowed("::ffff:8.8.8.8")


def test_ipv4_mapped_blocklist_entries_block_the_ipv4_host(tmp_path: Path) -> None:
    scope = Scope.load(write_scope(tmp_path, LOOPBACK_SCOPE, "::ffff:127.0.0.9\n"))
    assert not scope.is_allowed("127.0.0.9") and scope.is_allowed("127.0.0.10")


# -- one spelling per address (issue 6 item 10) ------------------------------------------------------


def _spellings_of_v4(address: ipaddress.IPv4Address) -> list[str]:
    """Ways operators and tools write one IPv4 host: mapped IPv6 in dotted, hex, full and upper forms."""
    value = int(address)
    mapped = ipaddress.IPv6Address(0xFFFF << 32 | value)
    return [
        str(address), f"::ffff:{address}", f"::FFFF:{address}", f"::ffff:{value >> 16:x}:{value & 0xFFFF:x}",
        mapped.exploded, mapped.exploded.upper(), f"0:0:0:0:0:ffff:{address}", mapped,
    ]


def _spellings_of_v6(address: ipaddress.IPv6Address) -> list[str]:
    groups = address.exploded.split(":")
    return [str(address), address.exploded, address.exploded.upper(), ":".join(g.lstrip("0") or "0" for g in groups), address]


@settings(max_examples=500, deadline=None)
@given(value=st.integers(0, 2**32 - 1))
def test_every_spelling_of_an_ipv4_host_is_one_address(value: int) -> None:
    address = ipaddress.IPv4Address(value)
    assert {canonical_address(s) for s in _spellings_of_v4(address)} == {str(address)}


@settings(max_examples=500, deadline=None)
@given(value=st.integers(0, 2**128 - 1).filter(lambda v: v >> 32 != 0xFFFF))
def test_every_spelling_of_an_ipv6_address_is_one_address(value: int) -> None:
    address = ipaddress.IPv6Address(value)
    canonical = {canonical_address(s) for s in _spellings_of_v6(address)}
    assert canonical == {address.compressed} and canonical_address(address.compressed) == address.compressed


@pytest.mark.parametrize("text", ["127.1", "0x7f000001", "fe80::1%eth0", "host.example", "", "127.000.0.1"])
def test_canonical_address_refuses_what_is_not_a_literal_address(text: str) -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        canonical_address(text)


def test_ipv4_mapped_scope_entries_are_the_ipv4_range(tmp_path: Path) -> None:
    text = '[[authorized]]\ncidr = "::ffff:127.0.0.0/120"\nowner = "x"\nauthorization = "y"\nspecial_purpose = true\n'
    scope = Scope.load(write_scope(tmp_path, text))
    assert [str(e.network) for e in scope.authorized] == ["127.0.0.0/24"]
    assert scope.is_allowed("127.0.0.9") and scope.target_at(0) == "127.0.0.0"


# -- the rule against a brute-force oracle ----------------------------------------------------------

V4_SPECIAL = [n for n in SPECIAL_PURPOSE if n.version == 4]
V6_SPECIAL = [n for n in SPECIAL_PURPOSE if n.version == 6]
V6_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def networks(version: int, min_prefix: int = 0) -> st.SearchStrategy:
    bits = 32 if version == 4 else 128
    make = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return st.builds(
        lambda value, prefix: make((value, prefix), strict=False),
        st.integers(0, 2**bits - 1), st.integers(min_prefix, bits),
    )


def special_subnets(version: int) -> st.SearchStrategy:
    blocks = V4_SPECIAL if version == 4 else [n for n in V6_SPECIAL if n != V6_MAPPED]  # mapped: refused by load
    return st.sampled_from(blocks).flatmap(
        lambda block: st.builds(
            lambda offset, extra: ipaddress.ip_network(
                (int(block.network_address) + offset % block.num_addresses, min(block.max_prefixlen, block.prefixlen + extra)),
                strict=False,
            ),
            st.integers(0, 2**128), st.integers(0, 16),
        )
    )


@st.composite
def scopes(draw: st.DrawFn, version: int = 4, min_prefix: int = 0) -> Scope:
    plain = draw(st.lists(networks(version, min_prefix), min_size=1, max_size=4, unique=True))
    flagged = draw(st.lists(special_subnets(version), max_size=2, unique=True))
    flagged = [n for n in flagged if n not in plain and n.prefixlen >= min_prefix]
    blocked = draw(st.lists(networks(version, min_prefix), max_size=3))
    authorized = tuple(AuthorizedRange(n, f"owner-{n}", "test") for n in plain) + tuple(
        AuthorizedRange(n, f"special-{n}", "test", special_purpose=True) for n in flagged
    )
    return Scope("scope.toml", authorized, tuple(blocked), "optout.txt")


def oracle_allows(scope: Scope, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # it reaches the IPv4 host
    if any(address in n for n in scope.blocklist):
        return False
    covering = [e for e in scope.authorized if address in e.network]
    if any(address in n for n in SPECIAL_PURPOSE):
        return any(e.special_purpose for e in covering)
    return bool(covering)


def probe_addresses(scope: Scope, draw: st.DrawFn, version: int) -> list:
    """Random addresses plus the edges of every range, where off-by-one bugs live."""
    bits = 32 if version == 4 else 128
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    picks = [make(v) for v in draw(st.lists(st.integers(0, 2**bits - 1), min_size=5, max_size=20))]
    for net in [e.network for e in scope.authorized] + list(scope.blocklist) + (V4_SPECIAL if version == 4 else V6_SPECIAL):
        for value in (int(net.network_address) - 1, int(net.network_address), int(net.broadcast_address), int(net.broadcast_address) + 1):
            if 0 <= value < 2**bits:
                picks.append(make(value))
    return picks


@settings(max_examples=300, deadline=None)
@given(data=st.data(), version=st.sampled_from([4, 6]))
def test_check_agrees_with_brute_force_oracle(data: st.DataObject, version: int) -> None:
    scope = data.draw(scopes(version))
    for address in probe_addresses(scope, data.draw, version):
        expected = oracle_allows(scope, address)
        assert scope.is_allowed(address) == expected, address
        if expected:
            entry = scope.check(str(address))
            assert (address.ipv4_mapped if address.version == 6 and address.ipv4_mapped else address) in entry.network
            assert entry.special_purpose or not any(address in n for n in SPECIAL_PURPOSE)
        else:
            with pytest.raises(OutOfScopeError):
                scope.check(str(address))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), version=st.sampled_from([4, 6]))
def test_enumeration_is_exactly_the_allowed_set(data: st.DataObject, version: int) -> None:
    bits = 32 if version == 4 else 128
    scope = data.draw(scopes(version, min_prefix=bits - 10))
    universe = {a for e in scope.authorized for a in e.network}
    allowed = {a for a in universe if oracle_allows(scope, a)}
    assert scope.target_count == len(allowed)
    enumerated = [ipaddress.ip_address(scope.target_at(i)) for i in range(scope.target_count)]
    assert set(enumerated) == allowed and len(enumerated) == len(allowed)
    with pytest.raises(IndexError):
        scope.target_at(scope.target_count)
    candidates = {scope.authorized_at(i) for i in range(scope.authorized_count)}
    assert candidates == {a for a in universe if oracle_allows(scope.__class__(scope.source, scope.authorized), a)}


def test_sweep_targets_are_the_authorized_space_minus_the_blocklist(loopback_scope: Scope) -> None:
    """The sweep's integer fast lane gives the same addresses as the ``ipaddress`` path, and None
    exactly where the guard refuses (the blocklisted half of 127.0.0.0/24)."""
    for index in range(loopback_scope.authorized_count):
        address = loopback_scope.authorized_at(index)
        target = loopback_scope.authorized_target_at(index)
        if loopback_scope.is_allowed(address):
            assert target == str(address)
            family, host = loopback_scope.admit_host(target)
            assert (family, host) == (socket.AF_INET, target)
        else:
            assert target is None and str(address).startswith("127.0.0.")
            with pytest.raises(OutOfScopeError, match="blocklisted"):
                loopback_scope.admit_host(str(address))


@pytest.mark.parametrize("text", ["127.000.000.001", "127.0.0.01", "0x7f.0.0.1", "127.1", "127.0.0.1 ", " 127.0.0.1"])
def test_fast_lane_accepts_only_canonical_dotted_quads(loopback_scope: Scope, text: str) -> None:
    with socket_audit(forbid_sockets=True), pytest.raises(OutOfScopeError):
        start_guarded_connect(loopback_scope, text, 80)


def test_enumeration_of_huge_ranges_is_lazy(tmp_path: Path) -> None:
    scope = Scope.load(write_scope(tmp_path, '[[authorized]]\ncidr = "2400:cb00::/32"\nowner = "x"\nauthorization = "y"\n', None))
    assert scope.target_count == 2**96
    assert scope.target_at(2**96 - 1) == "2400:cb00:ffff:ffff:ffff:ffff:ffff:ffff"


# -- the guard --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@st.composite
def out_of_scope_targets(draw: st.DrawFn) -> str:
    """Anywhere in IPv4/IPv6 (the audit hook vetoes any socket, so nothing can be sent)."""
    return str(draw(st.one_of(
        st.ip_addresses(v=4), st.ip_addresses(v=6),
        st.integers(0x7F000080, 0x7F0000FF).map(ipaddress.IPv4Address),  # the blocklisted half
        st.integers(0x7F000100, 0x7FFFFFFF).map(ipaddress.IPv4Address),  # loopback outside the range
    )))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=out_of_scope_targets(), port=st.integers(1, 65535), opener=st.sampled_from(["socket", "connection", "start"]))
def test_guard_refuses_before_any_socket_is_created(loopback_scope: Scope, loop, target: str, port: int, opener: str) -> None:
    if loopback_scope.is_allowed(target):
        return  # the rare random draw inside 127.0.0.0/25 or 198.51.100.0/24
    with socket_audit(forbid_sockets=True) as audit:
        with pytest.raises(OutOfScopeError):
            if opener == "start":
                start_guarded_connect(loopback_scope, target, port)
            else:
                connect = open_guarded_socket if opener == "socket" else open_guarded_connection
                loop.run_until_complete(connect(loopback_scope, target, port, timeout=1.0))
    assert audit.created == 0 and audit.connects == []


async def _listen(host: str) -> tuple[asyncio.Server, int, list[str]]:
    peers: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, host, 0)
    return server, server.sockets[0].getsockname()[1], peers


def test_guard_connects_in_scope_and_never_to_blocklisted_listener(loopback_scope: Scope, loop) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        allowed, allowed_port, allowed_peers = await _listen("127.0.0.3")
        blocked, blocked_port, blocked_peers = await _listen("127.0.0.130")
        async with allowed, blocked:
            reader, writer = await open_guarded_connection(loopback_scope, "127.0.0.3", allowed_port, timeout=2)
            assert await reader.readline() == b"hello\n"
            assert writer.get_extra_info("sockname")[0] == "127.0.0.1"
            writer.close()
            sock = await open_guarded_socket(loopback_scope, "127.0.0.3", allowed_port, timeout=2)
            assert not sock.getblocking()
            sock.close()
            with pytest.raises(OutOfScopeError, match="blocklisted"):
                await open_guarded_connection(loopback_scope, "127.0.0.130", blocked_port, timeout=2)
            await asyncio.sleep(0.05)
        return allowed_peers, blocked_peers

    with socket_audit() as audit:
        allowed_peers, blocked_peers = loop.run_until_complete(scenario())
    assert len(allowed_peers) == 2 and blocked_peers == []
    assert {host for host, _ in audit.connects} == {"127.0.0.3"}


def test_source_address_is_guarded_and_sends_nothing(loopback_scope: Scope) -> None:
    with socket_audit() as audit:
        assert guarded_source_address(loopback_scope, "127.0.0.7") == "127.0.0.1"
    assert audit.connects == [("127.0.0.7", 9)]
    with socket_audit(forbid_sockets=True) as audit, pytest.raises(OutOfScopeError):
        guarded_source_address(loopback_scope, "8.8.8.8")
    assert audit.created == 0


def test_guard_connection_errors_are_os_errors_not_refusals(loopback_scope: Scope, loop) -> None:
    async def closed_port() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.4", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        await open_guarded_connection(loopback_scope, "127.0.0.4", port, timeout=2)

    with pytest.raises(ConnectionRefusedError):
        loop.run_until_complete(closed_port())
    assert not issubclass(OutOfScopeError, OSError)


# -- no sender around the gate ----------------------------------------------------------------------

_SURVEY_SOURCES = sorted((Path(__file__).parents[2] / "src" / "iotscope" / "survey").rglob("*.py"))
_SOCKET_OPENERS = {"create_connection", "open_connection", "sock_connect", "connect_ex", "connect_accepted_socket"}
_DATABASE_MODULES = {"sqlite3", "duckdb"}


def _unguarded_calls(path: Path) -> list[str]:
    """Calls in ``path`` that could open a connection without the scope's guard."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        keywords = {k.arg for k in node.keywords}
        if name in _SOCKET_OPENERS and "sock" not in keywords:
            found.append(f"{path.name}:{node.lineno}: {name}()")
        elif name == "socket" and owner == "socket":
            found.append(f"{path.name}:{node.lineno}: socket.socket()")
        elif name.startswith("connect") and owner not in _DATABASE_MODULES and "sock" not in keywords:
            found.append(f"{path.name}:{node.lineno}: {owner}.{name}()")
    return found


def test_no_survey_module_opens_a_socket_around_the_guard() -> None:
    assert len(_SURVEY_SOURCES) > 5
    offenders = [c for path in _SURVEY_SOURCES if path.name != "guarded_connect.py" for c in _unguarded_calls(path)]
    assert offenders == []


def test_the_static_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import socket, asyncio, asyncssh\nsocket.socket()\nasyncio.open_connection('h', 1)\nasyncssh.connect('h')\ns.connect(('h', 1))\n")
    assert len(_unguarded_calls(bad)) == 4


def test_a_scope_with_no_usable_address_says_why(tmp_path: Path) -> None:
    """Issue 7, item 5: refused before a survey starts, instead of a warning and "0 addresses"."""
    entry = '[[authorized]]\ncidr = "{}"\nowner = "Lab"\nauthorization = "t"\n'
    unflagged = tmp_path / "unflagged.toml"
    unflagged.write_text(entry.format("10.1.0.0/24") + entry.format("127.0.8.0/29"))
    with pytest.raises(ScopeError, match=r"no address to survey: the authorized range\(s\) 10.1.0.0/24, 127.0.8.0/29 "
                                         r"lie in special-purpose space .* special_purpose = true"):
        Scope.load(unflagged).require_targets()
    (tmp_path / "all.txt").write_text("127.0.8.0/29\n")
    blocked = tmp_path / "blocked.toml"
    blocked.write_text('blocklist = "all.txt"\n' + entry.format("127.0.8.0/29") + "special_purpose = true\n")
    with pytest.raises(ScopeError, match="every authorized address is blocklisted by .*all.txt"):
        Scope.load(blocked).require_targets()
    usable = tmp_path / "usable.toml"
    usable.write_text(entry.format("127.0.8.0/29") + "special_purpose = true\n" + entry.format("10.1.0.0/24"))
    Scope.load(usable).require_targets()  # 8 usable addresses: no error
