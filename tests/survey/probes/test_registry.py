"""The probe registry, and the rule that no probe touches an out-of-scope target."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from iotscope.survey.credentials import load_builtin
from iotscope.survey.probes import identify_service
from iotscope.survey.probes.registry import probes
from iotscope.survey.scope import AuthorizedRange, OutOfScopeError, Scope
from tests.survey.socket_audit import socket_audit

from .fake_devices import FAST

#: Only 127.0.0.0/24 is authorized, and 127.0.0.9 is blocklisted in it.
NARROW = Scope(
    "narrow",
    (AuthorizedRange(ipaddress.ip_network("127.0.0.0/24"), "tests", "loopback", True),),
    blocklist=(ipaddress.ip_network("127.0.0.9/32"),),
    blocklist_source="test blocklist",
)


def test_registry_names_the_four_protocols():
    assert sorted(probes()) == ["ftp", "http", "ssh", "telnet"]


@pytest.mark.parametrize("target", ["127.0.1.5", "127.0.0.9", "192.0.2.1", "localhost", "::1"])
@pytest.mark.parametrize("protocol", [*sorted(probes()), "identify"])
def test_out_of_scope_target_is_refused_before_any_socket_exists(protocol, target):
    async def attempt():
        if protocol == "identify":
            return await identify_service(NARROW, target, 23, FAST)
        return await probes()[protocol](NARROW, target, 23, load_builtin(), FAST)

    loop = asyncio.new_event_loop()  # the loop's own self-pipe sockets come before the audit
    try:
        with socket_audit(forbid_sockets=True) as audit, pytest.raises(OutOfScopeError):
            loop.run_until_complete(attempt())
    finally:
        loop.close()
    assert audit.created == 0 and audit.connects == []


def test_the_registry_is_built_on_first_use_and_stays_read_only():
    """Importing the probes package (the CLI, findings and reports do) must not import the protocol
    modules (asyncssh); the first ``probes()`` call does, and returns the same mapping after."""
    import subprocess
    import sys

    code = ("import sys; import iotscope.survey.probes, iotscope.survey.probes.registry as r; "
            "before = 'asyncssh' in sys.modules; p = r.probes(); "
            "print(before, 'asyncssh' in sys.modules, p is r.probes())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "True", "True"]
    with pytest.raises(TypeError):
        probes()["telnet"] = probes()["ssh"]  # type: ignore[index]
