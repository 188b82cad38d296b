"""An emulated embedded web admin page: HTTP Basic or Digest auth, or none at all.

IoT web servers (GoAhead, Boa, mini_httpd, lighttpd, vendor builds) protect the whole admin site
with one realm, answer ``401`` with a ``WWW-Authenticate`` challenge, and close the connection after
each response. That is what this device does, with Digest (RFC 7616, MD5, ``qop=auth``) checked
for real, so a probe's Digest implementation is tested against an independent one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import html
import re
import secrets

from iotscope.simulate.devices.accounts import Account
from iotscope.simulate.devices.banners import Profile
from iotscope.simulate.devices.connections import DEFAULT_IDLE_TIMEOUT, read_line

HTTP_AUTH_SCHEMES = ("basic", "digest")
_MAX_HEADER_LINES = 64
_MAX_NONCES = 1024
_DIGEST_FIELD = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def admin_page(profile: Profile) -> str:
    """The page behind the login: recognisably a device's configuration UI."""
    title = html.escape(profile.http_title)
    return (
        f"<html><head><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>Device Management - {html.escape(profile.vendor)}</p>"
        '<form action="/cgi-bin/config" method="post">'
        '<label>Admin password <input type="password" name="admin_pwd"></label>'
        '<input type="submit" value="Save"></form>'
        '<a href="/logout">Logout</a></body></html>'
    )


class _DigestRealm:
    """Nonces this server issued, and the check of a client's Digest response against them."""

    def __init__(self, realm: str) -> None:
        self.realm = realm
        self._nonces: dict[str, None] = {}

    def challenge(self) -> str:
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = None
        if len(self._nonces) > _MAX_NONCES:
            del self._nonces[next(iter(self._nonces))]
        return f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}", algorithm=MD5'

    def verify(self, account: Account, method: str, fields: dict[str, str]) -> bool:
        if fields.get("nonce") not in self._nonces or fields.get("realm") != self.realm:
            return False
        username, uri, response = fields.get("username"), fields.get("uri"), fields.get("response")
        if username is None or uri is None or response is None:
            return False

        def proves(password: str) -> bool:
            ha1 = _md5(f"{username}:{self.realm}:{password}")
            ha2 = _md5(f"{method}:{uri}")
            if fields.get("qop") == "auth":
                nc, cnonce = fields.get("nc", ""), fields.get("cnonce", "")
                expected = _md5(f"{ha1}:{fields['nonce']}:{nc}:{cnonce}:auth:{ha2}")
            else:
                expected = _md5(f"{ha1}:{fields['nonce']}:{ha2}")
            return hmac.compare_digest(expected, response.lower())

        return account.attempt(username, proves)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("latin-1")).hexdigest()


def http_handler(
    profile: Profile,
    account: Account,
    *,
    auth: str = "basic",
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
):
    """A connection handler serving ``profile``'s admin page behind ``auth`` (``basic``/``digest``);
    an open ``account`` serves it to anyone."""
    if auth not in HTTP_AUTH_SCHEMES:
        raise ValueError(f"HTTP auth must be one of {', '.join(HTTP_AUTH_SCHEMES)}, not {auth!r}")
    digest = _DigestRealm(profile.http_realm)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader, idle_timeout)
        if request is None:
            return
        method, headers = request
        if method not in ("GET", "HEAD", "POST"):
            await _respond(writer, profile, 501, "Not Implemented", {}, "", method)
            return
        authorization = headers.get("authorization")
        if account.open or (
            authorization is not None and _authorized(authorization, auth, account, digest, method)
        ):
            await _respond(writer, profile, 200, "OK", {}, admin_page(profile), method)
            return
        challenge = (
            digest.challenge() if auth == "digest" else f'Basic realm="{profile.http_realm}"'
        )
        body = "<html><head><title>401 Unauthorized</title></head><body>401 Unauthorized</body></html>"
        await _respond(
            writer, profile, 401, "Unauthorized", {"WWW-Authenticate": challenge}, body, method
        )

    return handle


async def _read_request(
    reader: asyncio.StreamReader, idle_timeout: float
) -> tuple[str, dict[str, str]] | None:
    request_line = await read_line(reader, timeout=idle_timeout)
    if not request_line:
        return None
    method = request_line.split(b" ", 1)[0].decode("latin-1").upper()
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        line = await read_line(reader, timeout=idle_timeout)
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, headers


def _authorized(
    authorization: str, auth: str, account: Account, digest: _DigestRealm, method: str
) -> bool:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != auth:
        return False
    if auth == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("latin-1")
        except (binascii.Error, ValueError):
            return False
        username, _, password = decoded.partition(":")
        return account.check(username, password)
    fields = {match[1].lower(): match[2] or match[3] for match in _DIGEST_FIELD.finditer(credentials)}
    return digest.verify(account, method, fields)


async def _respond(
    writer: asyncio.StreamWriter,
    profile: Profile,
    status: int,
    reason: str,
    extra_headers: dict[str, str],
    body: str,
    method: str,
) -> None:
    payload = body.encode("latin-1")
    headers = {
        "Server": profile.http_server,
        "Content-Type": "text/html",
        "Content-Length": str(len(payload)),
        "Connection": "close",
        **extra_headers,
    }
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(head.encode("latin-1") + b"\r\n" + (b"" if method == "HEAD" else payload))
    await writer.drain()
