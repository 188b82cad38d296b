"""Opaque pagination cursors: the last row's sort key, signed, and bound to who asked.

Why signed: a cursor is the key of the last row a caller saw (its time and address). Signed with
a key that lives only in this server process and bound to the caller (an organization's name, or
nobody), a cursor cannot be forged to start a page anywhere, and one organization's cursor is
refused (422) when another presents it. A server restart invalidates open cursors, which only
means starting again from the first page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from iotscope.web.queries import ApiParameterError


class CursorCodec:
    """Encodes and checks cursors with a random per-process key."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _tag(self, payload: bytes, audience: str) -> str:
        mac = hmac.new(self._key, audience.encode() + b"\0" + payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def encode(self, key: list[Any], audience: str) -> str:
        """The cursor for a page that ends at the row whose sort key is ``key``."""
        payload = json.dumps(key, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._tag(payload, audience)

    def decode(self, cursor: str, audience: str, arity: int) -> list[Any]:
        """The sort key in ``cursor``; :class:`ApiParameterError` (``cursor``) for anything not issued
        by this server to ``audience`` for a listing whose key has ``arity`` parts."""
        body, _, tag = cursor.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            # bytes, not str: compare_digest refuses non-ASCII text with a TypeError
            good = hmac.compare_digest(tag.encode(), self._tag(payload, audience).encode())
            key = json.loads(payload) if good else None
        except (ValueError, UnicodeDecodeError):
            key = None
        if not isinstance(key, list) or len(key) != arity:
            raise ApiParameterError("cursor", "not a cursor this server issued for this listing (start from the first page)")
        return key
