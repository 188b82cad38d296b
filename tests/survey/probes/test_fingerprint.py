"""Vendor/software guesses from real IoT banners."""

from __future__ import annotations

import pytest

from iotscope.survey.probes.fingerprint import guess_device


@pytest.mark.parametrize(
    ("banner", "expected"),
    [
        ("SSH-2.0-dropbear_2022.83", "dropbear 2022.83"),
        ("SSH-2.0-OpenSSH_7.9p1 Raspbian-10+deb10u2", "Raspberry Pi / OpenSSH 7.9p1"),
        ("SSH-2.0-ROSSSH", "SSH ROSSSH"),
        ("BusyBox v1.19.4 (2016-03-03) built-in shell (ash)", "BusyBox 1.19.4"),
        ("HTTP 401; Server: App-webs/; realm: DS-2CD2032", "Hikvision"),
        ("HTTP 200; Server: lighttpd/1.4.35; title: Web Service", "lighttpd 1.4.35"),
        ("HTTP 401; Server: GoAhead-Webs; realm: GoAhead", "GoAhead"),
        ("HTTP 200; Server: uc-httpd 1.0.0", "Xiongmai"),
        ("220 (vsFTPd 3.0.3)", "vsFTPd 3.0.3"),
        ("(none) login:", None),
        ("", None),
    ],
)
def test_guess_device(banner, expected):
    assert guess_device(banner) == expected
