"""The HTTP devices through urllib: Basic, Digest (urllib's own implementation), open admin page."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest


def _opener(handler: urllib.request.BaseHandler | None = None) -> urllib.request.OpenerDirector:
    # No proxy: the request must go straight to 127.x.y.z.
    handlers = [urllib.request.ProxyHandler({})] + ([handler] if handler else [])
    return urllib.request.build_opener(*handlers)


def _basic(url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, url, username, password)
    return _opener(urllib.request.HTTPBasicAuthHandler(manager))


def _digest(url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, url, username, password)
    return _opener(urllib.request.HTTPDigestAuthHandler(manager))


def test_basic_auth_challenge_then_admin_page_with_the_default(behaviours):
    url = f"http://{behaviours.ip(10)}:80/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        _opener().open(url, timeout=3)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"] == 'Basic realm="DVR"'
    assert refused.value.headers["Server"] == "uc-httpd 1.0.0"
    with _basic(url, "admin", "admin").open(url, timeout=3) as response:
        assert response.status == 200 and b"NETSurveillance WEB" in response.read()


def test_basic_auth_wrong_password_is_refused(behaviours):
    url = f"http://{behaviours.ip(10)}:80/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        _basic(url, "admin", "not-admin").open(url, timeout=3)
    assert refused.value.code == 401


def test_digest_auth_with_the_default(behaviours):
    url = f"http://{behaviours.ip(10)}:8080/ISAPI/Security/userCheck"
    with _digest(url, "admin", "12345").open(url, timeout=3) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        _digest(url, "admin", "54321").open(url, timeout=3)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith('Digest realm="DVR", qop="auth"')


def test_open_admin_page_needs_no_credentials(behaviours):
    with _opener().open(f"http://{behaviours.ip(12)}:80/", timeout=3) as response:
        assert response.headers["Server"] == "lighttpd/1.4.35"
        assert b"Device Management" in response.read()
