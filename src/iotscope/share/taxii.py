"""TAXII 2.1: serve our indicators with the OASIS reference server (medallion), push and pull with taxii2-client.

Why medallion and not our own endpoints: TAXII's value is interoperability, and medallion is the
OASIS TC's own implementation of the 2.1 spec (discovery, API roots, collections, objects,
manifests, versions, status, pagination, filters, basic auth); a consumer that works with it
works with the spec. Writing those endpoints again (or waiting for ``iotscope serve``) would
give a second, less-tested reading of the spec. We do not run it from a config file on disk:
:func:`serve` builds its configuration in memory (users, one API root, two collections), loads
our bundle into the read-only collection through medallion's own backend (so manifests and
versions are medallion's), and runs its Flask app in this process: nothing to clean up, and the
server stops with the command.

Collections (fixed ids, the same on every server, so partners can configure them once):
``indicators`` (read-only): our released, scored indicators; ``inbox`` (read-write): where
partners push theirs (kept in memory until the server stops; pull it and import it with
``--feed``).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
from taxii2client import exceptions as taxii_errors
from taxii2client.v21 import Collection, as_pages

from iotscope.share.errors import ShareError
from iotscope.share.stix import NAMESPACE

API_ROOT = "iotscope"
INDICATORS_COLLECTION = str(uuid.uuid5(NAMESPACE, "taxii collection indicators"))
INBOX_COLLECTION = str(uuid.uuid5(NAMESPACE, "taxii collection inbox"))
_MEDIA_TYPE = "application/stix+json;version=2.1"
#: Seconds a client waits for a server before saying it is unreachable.
CLIENT_TIMEOUT = 10


def medallion_config(base_url: str, user: str, password: str) -> dict[str, Any]:
    """Medallion's configuration: one user, one API root, the two collections (empty)."""
    def collection(id_: str, title: str, description: str, can_write: bool) -> dict[str, Any]:
        return {"id": id_, "title": title, "description": description, "can_read": True, "can_write": can_write,
                "media_types": [_MEDIA_TYPE], "objects": [], "manifest": []}

    return {
        "users": {user: password},
        "taxii": {"max_page_size": 1000},
        "backend": {"module_class": "MemoryBackend", "module": "medallion.backends.memory_backend"},
        "data": {
            "/discovery": {"title": "iotscope TAXII server", "description": "darknet indicators, anonymized by policy",
                           "default": f"{base_url}/{API_ROOT}/", "api_roots": [f"{base_url}/{API_ROOT}/"]},
            API_ROOT: {
                "information": {"title": "iotscope", "description": "indicators of one telescope operator",
                                "versions": ["application/taxii+json;version=2.1"], "max_content_length": 100_000_000},
                "status": [],
                "collections": [
                    collection(INDICATORS_COLLECTION, "indicators", "our released, scored indicators", False),
                    collection(INBOX_COLLECTION, "inbox", "indicators partners push to us", True),
                ],
            },
        },
    }


def serve(bundle: dict[str, Any], *, host: str, port: int, user: str, password: str) -> None:
    """Run medallion on ``host:port`` with ``bundle``'s objects in the indicators collection; blocks."""
    import medallion
    from medallion.backends.memory_backend import MemoryBackend

    config = medallion_config(f"http://{host}:{port}", user, password)
    app = medallion.application_instance
    medallion.set_config(app, "users", config)
    medallion.set_config(app, "taxii", config)
    backend = MemoryBackend()
    backend.data = config["data"]
    backend.add_objects(API_ROOT, INDICATORS_COLLECTION, {"objects": bundle.get("objects", [])}, datetime.now(UTC))
    app.medallion_backend = backend
    medallion.register_blueprints(app)
    try:
        app.run(host=host, port=port, threaded=True)
    except OSError as exc:
        raise ShareError(f"cannot serve TAXII on {host}:{port} ({exc.strerror})") from None


def _collection(url: str, collection_id: str, user: str | None, password: str | None) -> Collection:
    base = url.rstrip("/") + "/"
    return Collection(f"{base}collections/{collection_id}/", user=user, password=password)


def _client_error(url: str, exc: Exception) -> ShareError:
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ShareError(f"cannot reach TAXII server {url} (connection refused or no route)")
    if isinstance(exc, requests.exceptions.Timeout):
        return ShareError(f"TAXII server {url} did not answer within {CLIENT_TIMEOUT} s")
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return ShareError(f"TAXII server {url} refused: HTTP {exc.response.status_code} {exc.response.reason}")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ShareError(f"TAXII server {url}: {first}")


_CLIENT_ERRORS = (requests.exceptions.RequestException, taxii_errors.TAXIIServiceException, ValueError)


def push(url: str, collection_id: str, bundle: dict[str, Any], *, user: str | None, password: str | None) -> dict[str, int]:
    """Add ``bundle``'s objects to a collection; returns the server's success/failure counts."""
    collection = _collection(url, collection_id, user, password)
    collection._conn.session.request = _with_timeout(collection._conn.session.request)
    try:
        status = collection.add_objects(json.dumps(bundle), wait_for_completion=True, poll_interval=1, timeout=60)
    except _CLIENT_ERRORS as exc:
        raise _client_error(url, exc) from None
    return {"success": int(status.success_count), "failure": int(status.failure_count),
            "pending": int(status.pending_count)}


def pull(url: str, collection_id: str, *, user: str | None, password: str | None) -> dict[str, Any]:
    """Every object of a collection (all pages), as one STIX 2.1 bundle."""
    collection = _collection(url, collection_id, user, password)
    collection._conn.session.request = _with_timeout(collection._conn.session.request)
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
