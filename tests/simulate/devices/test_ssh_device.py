"""The SSH devices with an asyncssh client: version string, password auth, no-auth, fake shell."""

from __future__ import annotations

import asyncio
import socket

import asyncssh
import pytest


def _connect(ip: str, port: int, **kwargs):
    return asyncssh.connect(
        ip, port, known_hosts=None, agent_path=None, client_keys=None, config=None,
        preferred_auth="password", login_timeout=5, **kwargs,
    )


def test_version_string_is_dropbear(behaviours):
    with socket.create_connection((behaviours.ip(10), 2222), timeout=3) as sock:
        assert sock.recv(256).startswith(b"SSH-2.0-dropbear_2014.63\r\n")


def test_default_password_accepted_and_shell_executes_nothing(behaviours):
    async def session() -> tuple[str, int | None]:
        async with _connect(behaviours.ip(10), 2222, username="root", password="xc3511") as conn:
            result = await conn.run("id", check=False)
            return result.stdout, result.exit_status

    stdout, status = asyncio.run(session())
    assert stdout == "-sh: id: not found\r\n" and status == 127


def test_wrong_password_refused(behaviours):
    async def attempt() -> None:
        async with _connect(behaviours.ip(10), 2222, username="root", password="vizxv"):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(attempt())


def test_no_password_device_needs_no_authentication(behaviours):
    async def session() -> str:
        async with _connect(behaviours.ip(12), 22, username="root") as conn:
            process = await conn.create_process(term_type="vt100")
            prompt = await asyncio.wait_for(process.stdout.readuntil("# "), 5)
            process.stdin.write("exit\n")
            await process.wait(timeout=5)
            return prompt

    assert asyncio.run(session()).endswith("root@OpenWrt:~# ")


def test_connection_dropped_after_dropbear_max_auth_tries(behaviours):
    from iotscope.simulate.devices.ssh_device import MAX_AUTH_TRIES

    class Guesser(asyncssh.SSHClient):
        def password_auth_requested(self) -> str:
            return "guess"  # wrong every time: the server must hang up, not the client give up

    async def attempt() -> None:
        conn, _ = await asyncssh.create_connection(
            Guesser, behaviours.ip(11), 22, username="root", known_hosts=None, agent_path=None,
            client_keys=None, config=None, preferred_auth="password", login_timeout=5,
        )
        conn.close()

    before = behaviours.stats(11, 22)["attempts"]
    with pytest.raises((asyncssh.Error, ConnectionError)):
        asyncio.run(attempt())
    assert behaviours.stats(11, 22)["attempts"] - before == MAX_AUTH_TRIES
