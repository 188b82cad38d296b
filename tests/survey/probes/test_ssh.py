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


def run_probe(accounts, host, credentials=CREDENTIALS, limits=FAST, max_auth_tries=6, device=Device):
    log: list[tuple[str, str]] = []

    async def main():
        key = asyncssh.generate_private_key("ssh-ed25519")
        server = await asyncssh.create_server(
            lambda: device(accounts, log, max_auth_tries),
            host,
            0,
            server_host_keys=[key],
            server_version="dropbear_2022.83",
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
    assert (capped.status, capped.attempts, len(log)) == ("not_vulnerable", 3, 3)


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
