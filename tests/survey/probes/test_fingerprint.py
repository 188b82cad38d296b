"""Vendor/software guesses from real IoT banners."""

from __future__ import annotations

import pytest

from iotscope.survey.probes.fingerprint import device_maker, guess_device, name_in_greeting


@pytest.mark.parametrize(
    ("banner", "expected"),
    [
        ("SSH-2.0-dropbear_2022.83", "dropbear 2022.83"),
        ("SSH-2.0-OpenSSH_7.9p1 Raspbian-10+deb10u2", "Raspberry Pi / OpenSSH 7.9p1"),
        ("SSH-2.0-ROSSSH", "MikroTik / SSH ROSSSH"),
        ("Debian GNU/Linux 12 box login:", "Debian 12"),
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


@pytest.mark.parametrize(
    ("texts", "maker"),
    [
        (("HTTP 401; Server: App-webs/; realm: DS-2CD2032",), "Hikvision"),
        (("SSH-2.0-ROSSSH",), "MikroTik"),
        (("Server: nginx/1.22.1", "Welcome to nginx!"), None),  # software is not a maker
        (("BusyBox v1.35.0", "SSH-2.0-dropbear_2022.83"), None),
        ((None, "ZXHN F660 login:"), "ZTE"),
    ],
)
def test_device_maker_names_makers_not_software(texts, maker):
    assert device_maker(*texts) == maker


@pytest.mark.parametrize(
    ("protocol", "banner", "name"),
    [
        ("ftp", "220 Welcome to blah FTP service.", "blah"),
        ("ftp", "220 DiskStation FTP server ready.", "DiskStation"),
        ("ftp", "220 FTP server ready", None),
        ("ftp", "220 Operation successful", None),
        ("telnet", "NVR-4CH login:", "NVR-4CH"),
        ("telnet", "(none) login:", None),
        ("telnet", "localhost login:", None),
        ("telnet", "Please login:", None),
        ("ssh", "SSH-2.0-foo", None),
    ],
)
def test_name_in_greeting(protocol, banner, name):
    assert name_in_greeting(protocol, banner) == name
