"""The telnet devices over plain sockets: BusyBox negotiation, prompts, login, lockout."""

from __future__ import annotations

import socket

import pytest

from iotscope.simulate.devices.telnet_device import BUSYBOX_NEGOTIATION

IAC, SB, SE, DO, WILL, WONT = 255, 250, 240, 253, 251, 252
NAWS, TTYPE = 31, 24


class TelnetClient:
    """A minimal client: keeps raw bytes (to check negotiation) and the data without IAC."""

    def __init__(self, ip: str, port: int) -> None:
        self.sock = socket.create_connection((ip, port), timeout=3)
        self.raw = bytearray()
        self.consumed = 0  # data bytes already matched by read_until

    def read_until(self, marker: bytes) -> bytes:
        """The data since the last match, up to and including ``marker``."""
        while marker not in self.text()[self.consumed:]:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError(f"closed before {marker!r}; got {self.text()[self.consumed:]!r}")
            self.raw += chunk
        text = self.text()
        end = text.index(marker, self.consumed) + len(marker)
        seen, self.consumed = text[self.consumed:end], end
        return seen

    def text(self) -> bytes:
        data, i, raw = bytearray(), 0, self.raw
        while i < len(raw):
            if raw[i] == IAC and i + 1 < len(raw) and raw[i + 1] in (251, 252, 253, 254):
                i += 3
            else:
                data.append(raw[i])
                i += 1
        return bytes(data)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def login(self, username: str, password: str) -> None:
        self.read_until(b"ogin: ")
        self.send(username.encode() + b"\r\n")
        self.read_until(b"Password: ")
        self.send(password.encode() + b"\r\n")

    def close(self) -> None:
        self.sock.close()


def test_opens_with_busybox_negotiation_and_refuses_unoffered_options(behaviours):
    client = TelnetClient(behaviours.ip(10), 23)
    try:
        client.read_until(b"login: ")
        assert bytes(client.raw).startswith(BUSYBOX_NEGOTIATION)
        assert client.text() == b"\r\n(none) login: "
        # Client: WILL NAWS + window size, and asks DO TTYPE (which the device never offered).
        client.send(bytes([IAC, WILL, NAWS, IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE, IAC, DO, TTYPE]))
        client.send(b"root\r\n")
        client.read_until(b"Password: ")
        assert bytes([IAC, WONT, TTYPE]) in client.raw
        assert b"root\r\n" in client.text()  # the user name is echoed, as a pty would
    finally:
        client.close()


def test_right_password_gives_a_shell_prompt_that_executes_nothing(behaviours):
    client = TelnetClient(behaviours.ip(10), 23)
    try:
        client.login("root", "xc3511")
        client.read_until(b"built-in shell (ash)")
        client.read_until(b"# ")
        client.send(b"/bin/busybox ECCHI\r\n")
        client.read_until(b"ECCHI: applet not found")
        client.send(b"exit\r\n")
        while client.sock.recv(4096):
            pass
    finally:
        client.close()


def test_wrong_password_three_times_hangs_up(behaviours):
    client = TelnetClient(behaviours.ip(10), 23)
    try:
        for attempt in range(3):
            client.login("root", f"wrong{attempt}")
            client.read_until(b"Login incorrect")
        with pytest.raises(EOFError):
            client.read_until(b"login: ")
    finally:
        client.close()


def test_no_password_device_gives_a_shell_at_once(behaviours):
    client = TelnetClient(behaviours.ip(12), 23)
    try:
        assert client.read_until(b"root@OpenWrt:~# ").count(b"login") == 0
    finally:
        client.close()


def test_hardened_device_locks_after_its_failure_limit(behaviours):
    """lockout_after=3: after three failures even the right password is refused."""
    from tests.simulate.devices.conftest import STRONG

    for attempt in range(3):
        client = TelnetClient(behaviours.ip(11), 2323)
        try:
            assert b"Welcome to ATP Cli" in client.read_until(b"Login: ")
            client.send(b"telecomadmin\r\n")
            client.read_until(b"Password: ")
            client.send(f"guess{attempt}\r\n".encode())
            client.read_until(b"Authorization failed")
        finally:
            client.close()
    client = TelnetClient(behaviours.ip(11), 2323)
    try:
        client.read_until(b"Login: ")
        client.send(b"telecomadmin\r\n")
        client.read_until(b"Password: ")
        client.send(STRONG.encode() + b"\r\n")
        assert b"ATP>" not in client.read_until(b"Authorization failed")
    finally:
        client.close()
    stats = behaviours.stats(11, 2323)
    assert stats["lockouts"] == 1 and stats["attempts"] == 4 and stats["successes"] == 0
