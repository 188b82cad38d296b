"""Tarpits and hostile devices over plain sockets: each must behave exactly as advertised."""

from __future__ import annotations

import socket
import time

import pytest

from iotscope.simulate.devices.misbehaviour import GARBAGE_BYTES, HUGE_BANNER_BYTES
from iotscope.simulate.devices.telnet_device import BUSYBOX_NEGOTIATION


def _read_for(sock: socket.socket, seconds: float, limit: int = 1 << 20) -> bytes:
    """Everything received within ``seconds`` (or until EOF/limit)."""
    data = bytearray()
    deadline = time.monotonic() + seconds
    while len(data) < limit and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _read_to_eof(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = bytearray()
    while chunk := sock.recv(1 << 20):
        data += chunk
    return bytes(data)


def test_drip_tarpit_sends_a_byte_per_interval_and_no_prompt(behaviours):
    with socket.create_connection((behaviours.ip(13), 23), timeout=3) as sock:
        data = _read_for(sock, 0.5)
    # drip_interval 0.05 s: about 10 bytes in 0.5 s, never the whole negotiation plus a prompt
    assert 3 <= len(data) <= 15
    assert BUSYBOX_NEGOTIATION.startswith(data[:12])


def test_ssh_drip_tarpit_never_sends_a_version_line(behaviours):
    with socket.create_connection((behaviours.ip(13), 22), timeout=3) as sock:
        data = _read_for(sock, 0.5)
    assert data and b"SSH-" not in data


def test_stall_tarpit_never_finishes_negotiation(behaviours):
    with socket.create_connection((behaviours.ip(13), 2323), timeout=3) as sock:
        assert _read_for(sock, 0.5) == BUSYBOX_NEGOTIATION[:3]
    assert behaviours.stats(13, 2323)["connections"] == 1  # tarpits count contacts too


def test_huge_banner_is_over_ten_megabytes_without_a_prompt(behaviours):
    with socket.create_connection((behaviours.ip(14), 23), timeout=3) as sock:
        data = _read_to_eof(sock)
    assert len(data) > HUGE_BANNER_BYTES > 10_000_000
    assert b"login" not in data and b"\n" not in data


def test_huge_http_header(behaviours):
    with socket.create_connection((behaviours.ip(14), 80), timeout=3) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = _read_to_eof(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\nServer: AAAA") and b"\r\n\r\n" not in data
    assert len(data) > HUGE_BANNER_BYTES


def test_garbage_then_close(behaviours):
    with socket.create_connection((behaviours.ip(14), 2323), timeout=3) as sock:
        data = _read_to_eof(sock)
    assert len(data) == GARBAGE_BYTES
    assert len(set(data)) == 256  # random bytes, IAC and NUL included


def test_endless_negotiation_has_no_data_byte(behaviours):
    with socket.create_connection((behaviours.ip(14), 8023), timeout=3) as sock:
        data = _read_for(sock, 0.3, limit=64 * 1024)
    assert len(data) >= 4096
    i = 0
    while i + 3 <= len(data):  # every byte belongs to IAC DO/WILL x or IAC SB x 1 IAC SE
        assert data[i] == 255
        i += 6 if data[i + 1] == 250 else 3


def test_reset_after_a_few_bytes(behaviours):
    received = bytearray()
    with (
        socket.create_connection((behaviours.ip(14), 22), timeout=3) as sock,
        pytest.raises(ConnectionResetError),
    ):
        while chunk := sock.recv(4096):
            received += chunk
        pytest.fail("closed with FIN instead of RST")
    assert b"SSH-2.0-".startswith(bytes(received))
