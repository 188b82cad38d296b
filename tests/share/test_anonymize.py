"""Crypto-PAn (vectorized) against yacryptopan and the published vector; truncation, HMAC, the key file."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yacryptopan
from hypothesis import given, settings
from hypothesis import strategies as st

from iotscope.share.anonymize import (
    AnonymizationKey,
    CryptoPAn,
    generate_key,
    keyed_hash,
    load_key,
    truncate_text,
    truncate_v4,
)
from iotscope.share.errors import ShareError

KEY = bytes(range(32))
#: The Crypto-PAn reference implementation's sample key (sample.cpp, Xu et al.) and its published
#: pairs from sample_trace_raw.txt / sample_trace_sanitized.txt.
REFERENCE_KEY = bytes([21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16,
                       216, 152, 143, 131, 121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2])
REFERENCE_PAIRS = [
    ("128.11.68.132", "135.242.180.132"), ("129.118.74.4", "134.136.186.123"),
    ("130.132.252.244", "133.68.164.234"), ("141.223.7.43", "141.167.8.160"),
    ("141.233.145.108", "141.129.237.235"), ("152.163.225.39", "151.140.114.167"),
    ("156.29.3.236", "147.225.12.42"), ("165.247.96.84", "162.9.99.234"),
    ("166.107.77.190", "160.132.178.185"), ("192.102.249.13", "252.138.62.131"),
]


@pytest.fixture(scope="module")
def cp() -> CryptoPAn:
    return CryptoPAn(AnonymizationKey(KEY))


def test_reference_vectors_of_the_crypto_pan_paper() -> None:
    ours = CryptoPAn(AnonymizationKey(REFERENCE_KEY))
    raw = np.array([int(ipaddress.IPv4Address(a)) for a, _ in REFERENCE_PAIRS], dtype=np.uint32)
    got = [str(ipaddress.IPv4Address(int(x))) for x in ours.anonymize_v4(raw)]
    assert got == [b for _, b in REFERENCE_PAIRS]
    reference = yacryptopan.CryptoPAn(REFERENCE_KEY)
    assert [reference.anonymize(a) for a, _ in REFERENCE_PAIRS] == got


def test_ipv4_equals_yacryptopan_bit_for_bit(cp: CryptoPAn) -> None:
    rng = np.random.default_rng(7)
    addresses = np.concatenate([rng.integers(0, 2**32, 3000, dtype=np.uint32),
                                np.array([0, 2**32 - 1, 0x7F000001], dtype=np.uint32),
                                rng.integers(0, 2**32, 100, dtype=np.uint32).repeat(3)])
    reference = yacryptopan.CryptoPAn(KEY)
    expected = [int(ipaddress.IPv4Address(reference.anonymize(str(ipaddress.IPv4Address(int(a))))))
                for a in addresses]
    assert np.array_equal(cp.anonymize_v4(addresses), np.array(expected, dtype=np.uint32))


def test_ipv6_equals_yacryptopan(cp: CryptoPAn) -> None:
    rng = np.random.default_rng(8)
    raw = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    raw[:50, :4] = [0x20, 0x01, 0x0D, 0xB8]  # a shared prefix
    reference = yacryptopan.CryptoPAn(KEY)
    expected = [ipaddress.IPv6Address(reference.anonymize(str(ipaddress.IPv6Address(r.tobytes())))).packed for r in raw]
    assert [r.tobytes() for r in cp.anonymize_v6(raw)] == expected
    assert cp.anonymize_text("2001:db8::1") == "dd92:2c44:3fc0:ff1e:7ff9:c7f0:8180:7e00"  # yacryptopan's own example


def common_prefix(a: int, b: int, bits: int) -> int:
    x = a ^ b
    return bits - x.bit_length()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(min_size=32, max_size=32))
def test_prefix_preservation_property(a: int, b: int, key: bytes) -> None:
    out = CryptoPAn(AnonymizationKey(key)).anonymize_v4(np.array([a, b], dtype=np.uint32))
    assert common_prefix(int(out[0]), int(out[1]), 32) == common_prefix(a, b, 32)
    assert (a == b) == (out[0] == out[1])  # one-to-one


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_prefix_preservation_ipv6(a: bytes, b: bytes) -> None:
    cp = CryptoPAn(AnonymizationKey(KEY))
    out = cp.anonymize_v6(np.frombuffer(a + b, dtype=np.uint8).reshape(2, 16))
    ia, ib = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    oa, ob = int.from_bytes(out[0].tobytes(), "big"), int.from_bytes(out[1].tobytes(), "big")
    assert common_prefix(oa, ob, 128) == common_prefix(ia, ib, 128)


def test_same_key_same_mapping_across_processes(tmp_path: Path) -> None:
    key_file = generate_key(tmp_path / "k")
    script = ("import sys, numpy as np; from pathlib import Path; from iotscope.share.anonymize import *;"
              "c = CryptoPAn(load_key(Path(sys.argv[1])));"
              "print(c.anonymize_text('192.0.2.1'), keyed_hash(load_key(Path(sys.argv[1])), '192.0.2.1'))")
    runs = {subprocess.run([sys.executable, "-c", script, str(key_file)], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}
    assert len(runs) == 1
    other = generate_key(tmp_path / "k2")
    assert subprocess.run([sys.executable, "-c", script, str(other)], capture_output=True, text=True,
                          check=True).stdout not in runs


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = generate_key(tmp_path / "key")
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(ShareError, match="refusing to overwrite"):
        generate_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(ShareError, match="group/others"):
        load_key(path)
    os.chmod(path, 0o600)
    assert "secret" in repr(load_key(path))
    (tmp_path / "bad").write_text("zz")
    os.chmod(tmp_path / "bad", 0o600)
    with pytest.raises(ShareError, match="not a key file"):
        load_key(tmp_path / "bad")


def test_truncation_and_hmac() -> None:
    assert truncate_text("203.0.113.77", "truncate24") == "203.0.113.0/24"
    assert truncate_text("203.0.113.77", "truncate16") == "203.0.0.0/16"
    assert truncate_text("2001:db8:1:2::5", "truncate24") == "2001:db8:1::/48"
    assert truncate_v4(np.array([0xCB00714D], dtype=np.uint32), 24)[0] == 0xCB007100
    key = AnonymizationKey(KEY)
    h = keyed_hash(key, "192.0.2.1")
    assert len(h) == 32 and h == keyed_hash(key, "192.0.2.1") != keyed_hash(AnonymizationKey(bytes(32)), "192.0.2.1")
    assert KEY.hex() not in h
