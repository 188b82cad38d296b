"""SSH probe against an asyncssh server on loopback: password found, hardened, no password, hostile."""

from __future__ import annotations

import asyncio
import time

import asyncssh
import pytest

from iotscope.survey.credentials import Credential, load_builtin
from iotscope.survey.probes import ssh

from .fake_devices import FAST, garbage, huge_banner, loopback_scope, serving, tarpit

CREDENTIALS = load_builtin()


class Device(asyncssh.SSHServer):
    """Password-only server; logs every password offered and every session request."""

    def __init__(self, accounts: dict[str, str] | None, log: list[tuple[str, str]], max_tries: int) -> None:
        self._accounts = accounts
        self._log = log
        self._tries_left = max_tries  # like OpenSSH's MaxAuthTries: hang up after that many

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        return self._accounts is not None  # None: no authentication at all

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        self._log.append((username, password))
        if self._accounts.get(username) == password:
            return True
        self._tries_left -= 1
        if self._tries_left == 0:
            asyncio.get_running_loop().call_soon(
                self._conn.disconnect, asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "Too many authentication failures"
            )
        return False

    def session_requested(self):  # the probe must never get here
        self._log.append(("SESSION", ""))
        return False


class KeyboardInteractiveDevice(Device):
    """Password asked through keyboard-interactive only, as OpenSSH with PAM does."""

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(self, username, lang, submethods):
        return "", "", "", [("Password: ", False)]

    def validate_kbdint_response(self, username, responses):
        return self.validate_password(username, responses[0]) if len(responses) == 1 else False


def run_probe(accounts, host, credentials=CREDENTIALS, limits=FAST, max_auth_tries=6, device=Device,
              version="dropbear_2022.83"):
    log: list[tuple[str, str]] = []

    async def main():
        key = asyncssh.generate_private_key("ssh-ed25519")
        server = await asyncssh.create_server(
            lambda: device(accounts, log, max_auth_tries),
            host,
            0,
            server_host_keys=[key],
            server_version=version,
        )
        port = server.sockets[0].getsockname()[1]
        try:
            return await ssh.probe(loopback_scope(), host, port, credentials, limits)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main()), log


def test_default_password_found_and_connection_closed_without_session():
    result, log = run_probe({"admin": "admin"}, "127.0.0.31")
    assert (result.status, result.credential_id) == ("vulnerable", "mirai-04")
    assert result.attempts == 4
    assert log[-1] == ("admin", "admin")
    assert ("SESSION", "") not in log
    assert result.device == "dropbear 2022.83"


def test_keyboard_interactive_password_prompt_is_answered():
    result, log = run_probe({"support": "support"}, "127.0.0.36", device=KeyboardInteractiveDevice)
    assert (result.status, result.credential_id) == ("vulnerable", "mirai-11")
    assert log[-1] == ("support", "support")


def test_server_limit_on_tries_is_survived_by_reconnecting():
    # Eight root passwords in a row, a server that allows two tries per connection.
    result, log = run_probe({"root": "juantech"}, "127.0.0.32", max_auth_tries=2)
    assert (result.status, result.credential_id) == ("vulnerable", "mirai-08")
    assert [p for u, p in log if u == "root"][-1] == "juantech"


def test_hardened_server_is_not_reported_and_cap_is_respected():
    credentials = CREDENTIALS[:12]
    result, log = run_probe({"root": "a-strong-one-9"}, "127.0.0.33", credentials=credentials)
    assert (result.status, result.credential_id, result.attempts) == ("not_vulnerable", None, 12)
    assert len(log) == 12
    import dataclasses

    capped, log = run_probe({"root": "a-strong-one-9"}, "127.0.0.33", limits=dataclasses.replace(FAST, max_attempts=3))
    assert (capped.status, capped.attempts, len(log)) == ("incomplete", 3, 3)  # the list was not exhausted
    assert capped.remaining == len({(c.username, c.password) for c in CREDENTIALS}) - 3 and capped.connections == 1


def test_public_key_only_server_is_not_hammered():
    class KeysOnly(Device):
        def password_auth_supported(self) -> bool:
            return False

        def public_key_auth_supported(self) -> bool:
            return True

    result, log = run_probe({"root": "x"}, "127.0.0.37", device=KeysOnly)
    assert (result.status, result.attempts) == ("not_vulnerable", 0)
    assert result.detail == "no password authentication offered"


def test_server_without_authentication_is_vulnerable_without_credential():
    result, log = run_probe(None, "127.0.0.34", credentials=[Credential("x", "root", "x", "test")])
    assert (result.status, result.credential_id) == ("vulnerable", None)
    assert log == []


@pytest.mark.parametrize("handler", [tarpit(b"SSH-2.0-"), huge_banner(), garbage()], ids=["tarpit", "huge", "garbage"])
def test_hostile_servers_end_in_error_within_the_deadline(handler):
    async def main():
        async with serving(handler, "127.0.0.35") as port:
            return await ssh.probe(loopback_scope(), "127.0.0.35", port, CREDENTIALS, FAST)

    started = time.monotonic()
    result = asyncio.run(main())
    assert result.status == "error", result
    assert time.monotonic() - started < FAST.deadline + 1.0


def _host_key_algs(kexinit_packet: bytes) -> list[str]:
    """The server_host_key_algorithms name-list of a client's KEXINIT (RFC 4253 section 7.1)."""
    body = kexinit_packet[5:]  # uint32 packet_length, byte padding_length
    assert body[0] == 20  # SSH_MSG_KEXINIT
    offset = 1 + 16  # the cookie
    kex_length = int.from_bytes(body[offset : offset + 4], "big")
    offset += 4 + kex_length
    length = int.from_bytes(body[offset : offset + 4], "big")
    return body[offset + 4 : offset + 4 + length].decode("ascii").split(",")


def kex_dropper(target_port: int, drop: int, offers: list[list[str]]):
    """In front of a real SSH server: note the host-key algorithms each client offers, hang up
    during key exchange on the first ``drop`` connections (as buggy firmware aborts), pass the rest."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.38", target_port)
        server_version = await upstream_reader.readuntil(b"\n")
        writer.write(server_version)
        client_version = await reader.readuntil(b"\n")
        head = await reader.readexactly(4)
        packet = head + await reader.readexactly(int.from_bytes(head, "big"))
        offers.append(_host_key_algs(packet))
        if len(offers) <= drop:
            upstream_writer.close()
            return  # the handler's writer is closed by serving(): connection lost in key exchange
        upstream_writer.write(client_version + packet)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(4096):
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer), return_exceptions=True)

    return handler


@pytest.mark.parametrize("drop", [0, 1, 2])
def test_host_keys_offered_in_openssh_order_and_a_lost_key_exchange_retried_once(drop):
    log: list[tuple[str, str]] = []
    offers: list[list[str]] = []
    admin = [c for c in CREDENTIALS if c.username == "admin"]  # one user name: one connection

    async def main():
        key = asyncssh.generate_private_key("ssh-ed25519")
        server = await asyncssh.create_server(
            lambda: Device({"admin": "admin"}, log, 6), "127.0.0.38", 0, server_host_keys=[key],
            server_version="dropbear_2022.83",
        )
        try:
            async with serving(kex_dropper(server.sockets[0].getsockname()[1], drop, offers), "127.0.0.38") as port:
                return await ssh.probe(loopback_scope(), "127.0.0.38", port, admin, FAST)
        finally:
            server.close()
            await server.wait_closed()

    result = asyncio.run(main())
    # OpenSSH's preference: Ed25519, then ECDSA, then RSA with SHA-2 (never rsa-sha2-256 first).
    assert offers[0][:6] == [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256"
    ]
    if drop == 0:
        assert (result.status, result.credential_id, len(offers)) == ("vulnerable", "mirai-04", 1), result
        assert result.attempts == 1
    elif drop == 1:  # one more handshake, RSA first this time, and the login goes on
        assert offers[1][0] == "rsa-sha2-512" and set(offers[1]) == set(offers[0])
        assert (result.status, result.credential_id, len(offers)) == ("vulnerable", "mirai-04", 2), result
    else:  # only once: a server that always hangs up is an error, not an endless retry
        assert (result.status, result.attempts, len(offers)) == ("error", 0, 2), result
        assert "key exchange" in result.detail


def test_maker_named_by_the_version_line_gets_its_defaults_first():
    """Issue 7 items 2/6: "SSH-2.0-HUAWEI-1.5" names Huawei, so Huawei's pairs come first and
    huawei-5 (past the 100-attempt cap in list order) is found among them."""
    result, log = run_probe({"Epuser": "userEp"}, "127.0.0.39", version="HUAWEI-1.5")
    assert (result.status, result.credential_id) == ("vulnerable", "huawei-5"), result
    assert result.device and result.device.startswith("Huawei")
    assert result.attempts <= len([c for c in CREDENTIALS if "Huawei" in c.vendors])
