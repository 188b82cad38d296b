"""SSH: password authentication with asyncssh; success is "auth accepted", then close at once.

No session, no shell, no command: an accepted password is all the evidence needed. The TCP
connection comes from the scope's guarded opener (``sock=``); no agent, no keys, no config files,
no known_hosts (devices' host keys are unknown by definition). Legacy algorithms are offered too,
because old IoT firmware (dropbear) often knows nothing newer. Consecutive credentials with the
same user name share a connection while the server allows more tries (OpenSSH: 6, dropbear: 10).

Host-key algorithms are offered in OpenSSH's order (Ed25519, ECDSA, then RSA with SHA-2), as
ssh(1) and hydra do: the server takes the client's first choice it lists, and dropbear 2022.83
with only an Ed25519 key still lists RSA and aborts when a client picks it. A server that hangs
up during key exchange gets one more handshake with the opposite preference (RSA first), for
the firmware whose bug goes the other way.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque

import asyncssh
from asyncssh import encryption, kex, mac, public_key

from iotscope.survey.credentials import Credential
from iotscope.survey.guarded_connect import open_guarded_socket
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import ProbeFailure, ProbeRecord, ProbeResult, service_probe
from iotscope.survey.scope import Scope


class _PasswordFeeder(asyncssh.SSHClient):
    """Hands the server one password per request, from the run of credentials of one user name."""

    def __init__(self, run: deque[Credential], record: ProbeRecord, limits: ProbeLimits) -> None:
        self._run = run
        self._record = record
        self._limits = limits
        self.current: Credential | None = None
        self.handed = 0  # passwords given to the server on this connection
        self.keyed = False  # key exchange completed: a hang-up after this is not an algorithm problem

    def begin_auth(self, username: str) -> bool:
        self.keyed = True
        return True  # authentication is required

    async def password_auth_requested(self) -> str | None:
        return await self._next_password()

    def kbdint_auth_requested(self) -> str | None:
        return ""  # let the server choose the submethods

    async def kbdint_challenge_received(self, name, instructions, lang, prompts):  # type: ignore[no-untyped-def]
        if not prompts:
            return []
        if len(prompts) != 1 or prompts[0][1]:  # one hidden prompt: the password
            return None
        password = await self._next_password()
        return None if password is None else [password]

    async def _next_password(self) -> str | None:
        if self.current is not None:
            self._record.rejected += 1
        if not self._run:
            self.current = None
            return None
        await self._record.pace(self._limits)
        self.current = self._run.popleft()
        self.handed += 1
        self._record.attempt(self.current)
        self._record.sending(self.current)
        return self.current.password


async def await_version(sock: socket.socket, limits: ProbeLimits) -> bytes:
    """The server's version line ("SSH-2.0-dropbear_2022.83"), peeked, not consumed.

    asyncssh reads the socket itself and bounds only the whole login; peeking first bounds the
    greeting by ``read_timeout`` and its size, so a tarpit or garbage fails fast.
    """
    loop = asyncio.get_running_loop()
    until = loop.time() + limits.read_timeout
    while True:
        ready = loop.create_future()
        loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
        try:
            async with asyncio.timeout_at(until):
                await ready
        except TimeoutError:
            raise ProbeFailure(f"no SSH version line within {limits.read_timeout:g}s") from None
        finally:
            loop.remove_reader(sock.fileno())
        try:
            data = sock.recv(256, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        if not data:
            raise ProbeFailure("closed before saying its SSH version")
        if not data.startswith(b"SSH-"[: len(data)]):
            raise ProbeFailure("not an SSH server")
        if b"\n" in data:
            return data.split(b"\n", 1)[0].rstrip(b"\r")
        if len(data) >= 255:  # RFC 4253: the version line is at most 255 bytes
            raise ProbeFailure("SSH version line too long")
        await asyncio.sleep(0.01)  # a partial line: let more arrive


def _names(algorithms: list[bytes]) -> list[str]:
    return [name.decode("ascii") for name in algorithms]


#: OpenSSH's HostKeyAlgorithms preference (ssh_config(5), certificates and security keys left
#: out), then legacy RSA and DSA for old firmware.
OPENSSH_HOST_KEY_ORDER = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", "ssh-dss",
)


def host_key_orders() -> tuple[list[str], list[str]]:
    """(OpenSSH's order, the fallback order with RSA first), each followed by whatever else
    asyncssh supports, so that no server is left without a common algorithm."""
    available = _names(public_key.get_public_key_algs())
    preferred = [name for name in OPENSSH_HOST_KEY_ORDER if name in available]
    rest = [name for name in available if name not in preferred]
    rsa = [name for name in preferred if "rsa" in name or name == "ssh-dss"]
    return preferred + rest, rsa + [name for name in preferred if name not in rsa] + rest


def _options(limits: ProbeLimits, host_key_algs: list[str]) -> dict[str, object]:
    return {
        "config": None,
        "known_hosts": None,
        "agent_path": None,
        "client_keys": None,
        "gss_host": None,
        "password": None,
        "preferred_auth": "password,keyboard-interactive",
        "login_timeout": limits.deadline,
        "kex_algs": _names(kex.get_kex_algs()),
        "encryption_algs": _names(encryption.get_encryption_algs()),
        "mac_algs": _names(mac.get_mac_algs()),
        "server_host_key_algs": host_key_algs,
    }


async def _login(
    scope: Scope, ip: str, port: int, credentials: list[Credential], limits: ProbeLimits, record: ProbeRecord
) -> ProbeResult:
    """Try ``credentials`` (at most ``limits.max_attempts``) by password on the SSH server at ``ip:port``."""
    pending: deque[Credential] | None = None  # planned once the version line has been seen
    run: deque[Credential] = deque()  # the passwords of one user name, tried on one connection
    orders = deque(host_key_orders())
    options = _options(limits, orders.popleft())
    while pending is None or pending or run:
        try:
            sock = await open_guarded_socket(scope, ip, port, timeout=limits.connect_timeout)
        except TimeoutError:
            raise ProbeFailure(f"connect timed out after {limits.connect_timeout:g}s") from None
        record.connections += 1
        try:
            version = await await_version(sock, limits)
            if not record.banner:
                record.saw(version)
            if pending is None:  # "SSH-2.0-ROSSSH", "SSH-2.0-HUAWEI-1.5": the maker's pairs first
                pending = record.planned(credentials, limits)  # shared with parallel connections
            if not run:
                if not pending:
                    break
                username = pending[0].username
                while pending and pending[0].username == username:
                    run.append(pending.popleft())
            client = _PasswordFeeder(run, record, limits)
            # asyncssh's connect timeout covers the handshake and every password of the run.
            budget = limits.read_timeout * (len(run) + 1)
            try:
                conn = await asyncssh.connect(
                    sock=sock,
                    username=run[0].username,
                    client_factory=lambda: client,  # noqa: B023 - called within this iteration
                    connect_timeout=budget,
                    **options,
                )
            except TimeoutError:
                raise ProbeFailure(f"SSH handshake or login took over {budget:g}s") from None
            except asyncssh.PermissionDenied:
                if client.handed == 0:  # public keys only: no password will ever be asked
                    record.untried = 0  # a verdict on every pair, not an unfinished list
                    return record.result("not_vulnerable", "no password authentication offered")
                if client.current is not None:
                    record.rejected += 1  # the last password handed out was refused too
                    client.current = None
            except (asyncssh.DisconnectError, ConnectionError) as exc:
                if not client.keyed and orders:  # lost in key exchange: once more, other host keys first
                    options = _options(limits, orders.popleft())
                    continue
                if client.handed == 0:  # hung up before trying anything: not a server we can use
                    stage = "in key exchange, with either host-key order" if not client.keyed else "before a password"
                    raise ProbeFailure(f"SSH handshake failed {stage}: {exc}") from None
                if client.handed > 1 and client.current is not None:
                    # Cut off after refusals (too many tries): the last one may be unanswered.
                    run.appendleft(client.current)
                    record.unattempt(client.current)
                elif client.current is not None:
                    record.rejected += 1
            else:
                accepted = client.current
                conn.close()
                await conn.wait_closed()
                if accepted is None:
                    return record.result("vulnerable", "login without password", None)
                return record.result("vulnerable", "password accepted", accepted.id)
        finally:
            sock.close()
    return record.result("not_vulnerable", f"{record.attempts} passwords rejected")


probe = service_probe("ssh", _login)
