"""The FTP devices through ftplib: anonymous allowed, anonymous refused."""

from __future__ import annotations

import ftplib

import pytest


def test_anonymous_login_allowed(behaviours):
    with ftplib.FTP() as ftp:
        ftp.connect(behaviours.ip(10), 21, timeout=3)
        assert ftp.getwelcome() == "220 Operation successful"
        assert ftp.login().startswith("230")
        assert ftp.pwd() == "/"


def test_anonymous_login_refused_and_named_account_strong(behaviours):
    from tests.simulate.devices.conftest import STRONG

    with ftplib.FTP() as ftp:
        ftp.connect(behaviours.ip(11), 21, timeout=3)
        with pytest.raises(ftplib.error_perm, match="530"):
            ftp.login()
        with pytest.raises(ftplib.error_perm, match="530"):
            ftp.pwd()  # not logged in
        assert ftp.login("admin", STRONG).startswith("230")


def test_three_failed_logins_hang_up(behaviours):
    with ftplib.FTP() as ftp:
        ftp.connect(behaviours.ip(11), 21, timeout=3)
        for _ in range(3):
            with pytest.raises(ftplib.error_perm, match="530"):
                ftp.login("admin", "admin")
        with pytest.raises((EOFError, ConnectionError)):
            ftp.voidcmd("NOOP")
