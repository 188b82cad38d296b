"""``iotscope serve``: the web API and dashboard over one store, read-only.

Binds 127.0.0.1 by default: the dashboard shows who scans a darknet, which an operator may not
want the world to see; any other address prints a warning. With ``--orgs`` an organization's
bearer token shows it only its own networks, and callers without a token see aggregates only.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from iotscope.cli.common import console, fail
from iotscope.errors import IotscopeError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    store: Annotated[Path, typer.Option("--store", help="Store directory to serve (opened read-only).")],
    host: Annotated[str, typer.Option("--host", help="IP address to bind; 0.0.0.0 exposes the dashboard.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port to listen on (0: any free port).")] = 8000,
    orgs: Annotated[Path | None, typer.Option(
        "--orgs", help="orgs.toml: each organization's token shows only its own networks; without a token, "
        "aggregates only.")] = None,
    trusted_proxy: Annotated[list[str] | None, typer.Option(
        "--trusted-proxy", help="Address or network of a reverse proxy whose X-Forwarded-For /check believes "
        "(repeatable).")] = None,
    check_days: Annotated[float | None, typer.Option("--check-days", min=0.001, help="Days of darknet data the "
                                                     "self-check at /check covers [default: 30].")] = None,
) -> None:
    """Serve the JSON API (OpenAPI at /docs) and the live dashboard at / over a store."""
    from iotscope.notify.orgs import OrgCatalog
    from iotscope.web.app import create_app
    from iotscope.web.client_address import trusted_networks
    from iotscope.web.server import listen, run
    from iotscope.web.store_reader import StoreReader

    try:
        catalog = OrgCatalog.load(orgs) if orgs is not None else None
        proxies = trusted_networks(trusted_proxy or [])
        reader = StoreReader(store)
        sock = listen(host, port)
    except IotscopeError as exc:
        fail(str(exc))
    if not _is_loopback(host):
        exposed = ("the aggregates (no token) and each organization's own rows (its token)" if catalog else
                   "the dashboard and API, every address included (no authentication; see --orgs)")
        console.print(f"[bold yellow]warning:[/] binding {host}: {exposed} are reachable from other hosts",
                      highlight=False, soft_wrap=True)
    shown = f"[{host}]" if ":" in host else host
    port = sock.getsockname()[1]
    console.print(f"dashboard: http://{shown}:{port}/   API docs: http://{shown}:{port}/docs", highlight=False,
                  soft_wrap=True)
    days = {} if check_days is None else {"check_days": check_days}
    run(create_app(reader, orgs=catalog, trusted_proxies=proxies, **days), sock)


def register(app: typer.Typer) -> None:
    """Add the web commands to the main app."""
    app.command()(serve)
