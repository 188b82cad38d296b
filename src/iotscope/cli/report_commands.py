"""``iotscope report`` (breakdowns by country, AS, port, category, tool) and ``iotscope ip`` (a source profile).

Thin shells over :mod:`iotscope.telescope.report`: parse, call, print. Both open the store read-only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iotscope.cli.common import fail, printable, require_store, stdout_console
from iotscope.errors import IotscopeError

StoreOption = Annotated[Path, typer.Option("--store", help="Store directory (made by `iotscope ingest`).")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]


def report(
    store: StoreOption,
    by: Annotated[str, typer.Option("--by", help="country, asn, port, category or tool.")] = "category",
    start: Annotated[str | None, typer.Option("--from", help="Start (ISO 8601, UTC unless a zone is given).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive (ISO 8601).")] = None,
    top: Annotated[int, typer.Option("--top", help="Rows to show, busiest first.")] = 20,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
) -> None:
    """Packets, distinct sources and share per country, AS, port, target category or tool."""
    from iotscope.store.packets import PacketStore
    from iotscope.telescope.report import breakdown, check_range, parse_time

    try:
        begin, finish = parse_time(start, "--from"), parse_time(end, "--to")
        check_range(begin, finish)
        require_store(store)
        with PacketStore(store, read_only=True) as packet_store:
            result = breakdown(packet_store, by, begin, finish, top)
    except IotscopeError as exc:
        fail(str(exc))
    if as_csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(result, sys.stdout.buffer)
    elif as_json:
        sys.stdout.write(json.dumps(result.to_pylist(), default=str, indent=1) + "\n")
    else:
        table = Table(*result.column_names, title=f"by {by}")
        for row in result.to_pylist():
            table.add_row(*(_cell(k, v) for k, v in row.items()))
        stdout_console.print(table)


def ip(
    address: Annotated[str, typer.Argument(help="IPv4 or IPv6 address, e.g. 203.0.113.7.")],
    store: StoreOption,
    as_json: JsonOption = False,
) -> None:
    """One source's profile (times, ports, tools, tags, country, AS, classification), events and attacks."""
    from iotscope.store.packets import PacketStore
    from iotscope.telescope.report import canonical_address, source_profile

    try:
        canonical_address(address)  # before the store is opened
        require_store(store)
        with PacketStore(store, read_only=True) as packet_store:
            found = source_profile(packet_store, address)
    except IotscopeError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(found, default=str, indent=1) + "\n")
        return
    profile = found["profile"]
    if profile is None:
        stdout_console.print(f"{found['address']}: not seen in this store", highlight=False)
    else:
        table = Table("field", "value", title=f"source {found['address']}")
        for key, value in profile.items():
            table.add_row(key, _cell(key, value))
        stdout_console.print(table)
    for name, columns in _SHOWN.items():
        rows = found[name]
        if not rows:
            continue
        table = Table(*columns, title=f"{name} ({len(rows)}; all columns with --json)")
        for row in rows:
            table.add_row(*(_cell(k, row[k]) for k in columns))
        stdout_console.print(table)


#: The columns of events and attacks the table shows (``--json`` has them all).
_SHOWN = {
    "events": ("proto", "dport", "traffic_class", "first_ts", "last_ts", "packets", "destinations", "tool", "open"),
    "attacks": ("proto", "first_ts", "last_ts", "packets", "victim_ports", "est_attack_pps", "open"),
}


def _cell(key: str, value: Any) -> str:
    if key == "share" and isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, int) and key in ("packets", "sources", "destinations"):
        return f"{value:,}"
    if isinstance(value, list):
        return printable(", ".join(map(str, value)))
    return printable("" if value is None else value)


def register(app: typer.Typer) -> None:
    app.command()(report)
    app.command()(ip)
