"""An emulated embedded SSH server (dropbear-like) built on asyncssh's server.

The probe's success criterion is "password auth accepted", so the protocol must be real SSH (key
exchange, auth): asyncssh provides it, and the version string is set to the profile's dropbear
build. After login the session is a fake shell that executes nothing; port forwarding, agent
forwarding, X11 and SFTP stay off. Like dropbear, a connection is dropped after
``MAX_AUTH_TRIES`` wrong passwords.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncssh

from iotscope.simulate.devices.accounts import Account
from iotscope.simulate.devices.banners import Profile, shell_reply
from iotscope.simulate.devices.connections import DEFAULT_IDLE_TIMEOUT

#: dropbear's ``MAX_AUTH_TRIES``.
MAX_AUTH_TRIES = 10
_MAX_SHELL_COMMANDS = 50


def generate_host_key() -> asyncssh.SSHKey:
    """One ed25519 host key (fast to make): a fleet makes one and shares it across its devices."""
    return asyncssh.generate_private_key("ssh-ed25519")


class SSHConnections:
    """The live connections of a fleet's SSH services, so stopping the fleet can close them."""

    def __init__(self) -> None:
        self._live: set[asyncssh.SSHServerConnection] = set()

    def add(self, connection: asyncssh.SSHServerConnection) -> None:
        self._live.add(connection)

    def discard(self, connection: asyncssh.SSHServerConnection) -> None:
        self._live.discard(connection)

    async def close_all(self) -> None:
        connections = list(self._live)
        for connection in connections:
            connection.close()
        for connection in connections:
            with contextlib.suppress(Exception):
                await connection.wait_closed()


class _DeviceSSHServer(asyncssh.SSHServer):
    def __init__(self, account: Account, connections: SSHConnections) -> None:
        self._account = account
        self._connections = connections
        self._connection: asyncssh.SSHServerConnection | None = None
        self._failures = 0

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        self._account.stats.connections += 1
        self._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._connections.discard(self._connection)

    def begin_auth(self, username: str) -> bool:
        return not self._account.open  # False: no authentication needed at all

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        if self._account.check(username, password):
            return True
        self._failures += 1
        if self._failures >= MAX_AUTH_TRIES and self._connection is not None:
            asyncio.get_running_loop().call_soon(self._connection.close)
        return False


async def start_ssh_service(
    ip: str,
    port: int,
    profile: Profile,
    account: Account,
    *,
    host_key: asyncssh.SSHKey,
    connections: SSHConnections,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> asyncssh.SSHAcceptor:
    """Listen on ``ip:port`` as ``profile``'s SSH daemon."""

    async def fake_shell(process: asyncssh.SSHServerProcess) -> None:
        if process.command is not None:  # exec request: answer like ash, run nothing
            process.stdout.write(shell_reply(process.command) or "")
            process.exit(127)
            return
        process.stdout.write(profile.shell_banner + profile.shell_prompt)
        with contextlib.suppress(asyncssh.Error, TimeoutError, ConnectionError):
            for _ in range(_MAX_SHELL_COMMANDS):
                line = await asyncio.wait_for(process.stdin.readline(), idle_timeout)
                reply = shell_reply(line) if line else None
                if reply is None:
                    break
                process.stdout.write(reply + profile.shell_prompt)
        process.exit(0)

    return await asyncssh.create_server(
        lambda: _DeviceSSHServer(account, connections),
        host=ip,
        port=port,
        reuse_address=True,
        server_host_keys=[host_key],
        server_version=profile.ssh_version,
        process_factory=fake_shell,
        login_timeout=idle_timeout,
        allow_pty=True,
        agent_forwarding=False,
        x11_forwarding=False,
        encoding="utf-8",
    )
