"""``iotscope analyze``: run the analytics passes over the hours of a store not analysed yet.

Thin shell over :func:`iotscope.telescope.passes.runner.analyze`; ``ingest`` calls
:func:`run_analysis` at its end (unless ``--no-analyze``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from iotscope.cli.common import console, fail, require_store
from iotscope.errors import IotscopeError

if TYPE_CHECKING:
    from iotscope.telescope.passes.runner import ComputedAhead


def analyze(
    store: Annotated[Path, typer.Option("--store", help="Store directory (made by `iotscope ingest`).")],
    event_idle: Annotated[float | None, typer.Option(
        "--event-idle", help="Seconds of silence that end a scanner event [stored; default 600].")] = None,
    attack_timeout: Annotated[float | None, typer.Option(
        "--attack-timeout", help="Seconds without backscatter that end an attack vector [default 300].")] = None,
    attack_min_packets: Annotated[int | None, typer.Option(
        "--attack-min-packets", help="Fewest packets of an attack [default 25].")] = None,
    attack_min_duration: Annotated[float | None, typer.Option(
        "--attack-min-duration", help="Shortest attack, seconds [default 60].")] = None,
    attack_min_window_packets: Annotated[int | None, typer.Option(
        "--attack-min-window-packets", help="Fewest packets in the busiest rate window [default 30].")] = None,
    series_bucket: Annotated[int | None, typer.Option(
        "--series-bucket", help="port_series bucket, seconds; divides 3600 [default 600].")] = None,
    darknet: Annotated[str | None, typer.Option(
        "--darknet", help="The telescope's IPv4 prefix (CIDR), for attack rate estimates "
                          "[stored; default: the smallest prefix covering the destinations seen].")] = None,
    categories: Annotated[Path | None, typer.Option(
        "--categories", help="TOML of target categories by protocol and port, amending (or with "
                             "`replace = true` replacing) the default [stored].")] = None,
    geo_city: Annotated[Path | None, typer.Option(
        "--geo-city", help="MaxMind-format .mmdb with country/location (GeoLite2-City, DB-IP, IPinfo) "
                           "instead of the embedded default [stored].")] = None,
    geo_asn: Annotated[Path | None, typer.Option(
        "--geo-asn", help="MaxMind-format .mmdb with AS numbers and names (GeoLite2-ASN, ...) [stored].")] = None,
) -> None:
    """Find scanner events, DoS attacks, per-port series, surge alerts and source profiles (hours not analysed yet)."""
    overrides = {
        "event_idle_s": event_idle, "attack_timeout_s": attack_timeout, "attack_min_packets": attack_min_packets,
        "attack_min_duration_s": attack_min_duration, "attack_min_window_packets": attack_min_window_packets,
        "series_bucket_s": series_bucket,
    }
    require_store(store)
    run_analysis(store, {k: v for k, v in overrides.items() if v is not None}, darknet,
                 categories=categories, geo_city=geo_city, geo_asn=geo_asn)


def run_analysis(store: Path, overrides: dict[str, object] | None = None, darknet: str | None = None, *,
                 categories: Path | None = None, geo_city: Path | None = None, geo_asn: Path | None = None,
                 ahead: ComputedAhead | None = None) -> None:
    """Validate the settings and files first (bad input leaves the store untouched), analyse, print a summary.

    ``ahead``: what ``ingest`` computed while it stored the packets (the runner takes what still applies).
    """
    from iotscope.telescope.passes.finish import resolve_profile_inputs
    from iotscope.telescope.passes.runner import analyze as run
    from iotscope.telescope.passes.settings import AnalysisSettings, Darknet

    try:
        prefix = Darknet.parse(darknet) if darknet is not None else None
        AnalysisSettings.from_dict({**AnalysisSettings().as_dict(), **(overrides or {})})  # before any file is opened
        profile = resolve_profile_inputs(store, categories, geo_city, geo_asn)
        report = run(store, overrides, prefix, profile=profile, ahead=ahead)
    except IotscopeError as exc:
        fail(str(exc))
    if report.hours_analysed == 0:
        console.print(f"analysis: all {report.hours_total} hours up to date", highlight=False)
        return
    rows = ", ".join(f"{name} {n:,}" for name, n in report.rows.items())
    net = report.darknet
    where = f"; darknet {net.prefix}{' (inferred)' if net.inferred else ''}" if net else ""
    ahead = f" ({report.hours_ahead} while ingesting)" if report.hours_ahead else ""
    console.print(f"analysis: {report.hours_analysed} of {report.hours_total} hours{ahead} in {report.seconds:.2f} s "
                  f"-> {rows}{where}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(analyze)
