"""TAXII 2.1 client: push our bundles to, and pull collections from, any TAXII 2.1 server (taxii2-client).

The server side is :mod:`iotscope.share.taxii_server`. Every failure (no server listening, a
server that does not answer, HTTP 401/403/404, a reply that is not TAXII) becomes one
:class:`ShareError` line naming the URL.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests
from taxii2client import exceptions as taxii_errors
from taxii2client.v21 import Collection, as_pages

from iotscope.share.errors import ShareError

#: Seconds a client waits for a server before saying it is unreachable.
CLIENT_TIMEOUT = 10


def _collection(url: str, collection_id: str, user: str | None, password: str | None) -> Collection:
    """The client of one collection, its requests bounded by :data:`CLIENT_TIMEOUT` (see :func:`_with_timeout`)."""
    base = url.rstrip("/") + "/"
    collection = Collection(f"{base}collections/{collection_id}/", user=user, password=password)
    collection._conn.session.request = _with_timeout(collection._conn.session.request)
    return collection


def _client_error(url: str, exc: Exception) -> ShareError:
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ShareError(f"cannot reach TAXII server {url} (connection refused or no route)")
    if isinstance(exc, requests.exceptions.Timeout):
        return ShareError(f"TAXII server {url} did not answer within {CLIENT_TIMEOUT} s")
    if isinstance(exc, taxii_errors.AccessError):
        return ShareError(f"TAXII server {url} refused: {exc}")
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return ShareError(f"TAXII server {url} refused: HTTP {exc.response.status_code} {exc.response.reason}")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ShareError(f"TAXII server {url}: {first}")


_CLIENT_ERRORS = (requests.exceptions.RequestException, taxii_errors.TAXIIServiceException, ValueError)


def push(url: str, collection_id: str, bundle: dict[str, Any], *, user: str | None, password: str | None) -> dict[str, int]:
    """Add ``bundle``'s objects to a collection; returns the server's success/failure counts."""
    collection = _collection(url, collection_id, user, password)
    try:
        status = collection.add_objects(json.dumps(bundle), wait_for_completion=True, poll_interval=1, timeout=60)
    except _CLIENT_ERRORS as exc:
        raise _client_error(url, exc) from None
    return {"success": int(status.success_count), "failure": int(status.failure_count),
            "pending": int(status.pending_count)}


def pull(url: str, collection_id: str, *, user: str | None, password: str | None) -> dict[str, Any]:
    """Every object of a collection (all pages), as one STIX 2.1 bundle."""
    collection = _collection(url, collection_id, user, password)
    objects: list[Any] = []
    try:
        for page in as_pages(collection.get_objects, per_request=1000):
            objects += page.get("objects", [])
    except _CLIENT_ERRORS as exc:
        raise _client_error(url, exc) from None
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}


def _with_timeout(request: Any) -> Any:
    """taxii2-client passes no timeout to requests: a silent server would hang the command forever."""
    def timed(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", CLIENT_TIMEOUT)
        return request(*args, **kwargs)
    return timed
