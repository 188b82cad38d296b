"""Share commands: ``iotscope share export|blocklist|anonymity|keygen|taxii-serve|push|pull``.

Each command parses options and calls :mod:`iotscope.share`; every path out of the machine goes
through :func:`iotscope.share.collect.collect`, i.e. through the policy.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from iotscope.cli.common import console, fail, printable
from iotscope.errors import IotscopeError

if TYPE_CHECKING:
    from iotscope.share.collect import Shareable

share_app = typer.Typer(
    help="Share indicators (STIX 2.1 / TAXII 2.1, MISP), publish blocklists, measure anonymization.",
    no_args_is_help=True,
)

StoreOption = Annotated[Path, typer.Option("--store", help="Store directory (read only).")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write here (0600) instead of stdout.")]
PolicyOption = Annotated[Path | None, typer.Option("--policy", help="Sharing policy (TOML); default: the built-in one.")]
KeyOption = Annotated[Path | None, typer.Option("--key", help="Anonymization key file (0600), if the policy needs one.")]
FeedOption = Annotated[list[Path] | None, typer.Option("--feed", help="Imported feed (CSV or STIX 2.1 JSON); repeatable.")]
SensorOption = Annotated[str | None, typer.Option("--sensor", help="Name of this sensor as a source (default: the store's directory name).")]
HalfLifeOption = Annotated[float, typer.Option("--half-life-days", help="Score half-life in days.")]
AtOption = Annotated[str | None, typer.Option("--at", help="Score as of this ISO 8601 time (default: now).")]
UserOption = Annotated[str | None, typer.Option("--user", help="TAXII user (basic auth).")]
PASSWORD_ENV = "IOTSCOPE_TAXII_PASSWORD"


def _shareable(store: Path, policy_file: Path | None, key_file: Path | None, feeds: list[Path] | None,
               sensor: str | None, half_life_days: float, at: str | None) -> Shareable:
    from iotscope.share.collect import collect, policy_key
    from iotscope.share.indicators import parse_time
    from iotscope.share.policy import load_policy
    from iotscope.share.scoring import ScoringConfig

    policy = load_policy(policy_file)
    moment = parse_time(at, "--at") if at else datetime.now(UTC)
    if not 0 < half_life_days < 100_000:
        fail(f"--half-life-days must be > 0, got {half_life_days}")
    return collect(store, sensor=sensor or store.resolve().name, feeds=list(feeds or []), policy=policy,
                   key=policy_key(policy, key_file), at=moment,
                   scoring=ScoringConfig(half_life=timedelta(days=half_life_days)))


def _emit(text: str, out: Path | None) -> None:
    """``text`` to stdout, or atomically to ``out`` created 0600 (exports name hosts)."""
    if out is None:
        sys.stdout.write(text)
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        fail(f"{out}: cannot write ({exc.strerror})")


@share_app.command("export")
def export(
    store: StoreOption,
    fmt: Annotated[str, typer.Option("--format", help="stix (2.1 bundle) or misp (event JSON).")] = "stix",
    out: OutOption = None,
    policy: PolicyOption = None,
    key: KeyOption = None,
    feed: FeedOption = None,
    sensor: SensorOption = None,
    identity: Annotated[str, typer.Option("--identity", help="Our organization's name in the export.")] = "iotscope operator",
    half_life_days: HalfLifeOption = 7.0,
    at: AtOption = None,
) -> None:
    """Export our indicators (merged with --feed files, released by the policy, scored)."""
    from iotscope.share.collect import stix_bundle
    from iotscope.share.misp import misp_event

    if fmt not in ("stix", "misp"):
        fail(f"unknown --format {fmt!r} (use stix or misp)")
    try:
        shareable = _shareable(store, policy, key, feed, sensor, half_life_days, at)
        document, skipped = stix_bundle(shareable, identity) if fmt == "stix" else misp_event(shareable, identity)
        text = json.dumps(document, indent=1) + "\n"
    except IotscopeError as exc:
        fail(str(exc))
    _emit(text, out)
    console.print(f"{len(shareable.indicators) - skipped:,} indicators, {len(shareable.aggregates)} survey aggregates "
                  f"exported ({fmt}, TLP:{shareable.policy.tlp.upper()}); withheld by policy: "
                  f"{sum(shareable.withheld.values()):,}; no {fmt} form (hmac): {skipped:,}", highlight=False)


@share_app.command("blocklist")
def blocklist(
    store: StoreOption,
    min_score: Annotated[float, typer.Option("--min-score", help="List indicators scoring at least this (0-100).")] = 50.0,
    fmt: Annotated[str, typer.Option("--format", help="rpz, nftables, csv or plain.")] = "plain",
    out: OutOption = None,
    policy: PolicyOption = None,
    key: KeyOption = None,
    feed: FeedOption = None,
    sensor: SensorOption = None,
    half_life_days: HalfLifeOption = 7.0,
    at: AtOption = None,
) -> None:
    """A blocklist of attackers (scanners, C&C, malware sites) for ISPs: nftables set, RPZ zone, CSV, plain."""
    from iotscope.share.blocklist import FORMATS, render, select

    if fmt not in FORMATS:
        fail(f"unknown --format {fmt!r} (use {', '.join(FORMATS)})")
    try:
        shareable = _shareable(store, policy, key, feed, sensor, half_life_days, at)
        entries = select(shareable.indicators, min_score, shareable.at)
        text = render(entries, fmt, shareable.at)
    except IotscopeError as exc:
        fail(str(exc))
    _emit(text, out)
    console.print(f"{len(entries):,} entries with score >= {min_score:g} ({fmt})", highlight=False)


@share_app.command("anonymity")
def anonymity(
    store: StoreOption,
    policy: PolicyOption = None,
    key: KeyOption = None,
    field: Annotated[str, typer.Option("--field", help="Which policy field's method to measure on the packets' sources.")] = "scanner",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Measure what a policy releases: k-anonymity, addresses alone in their /24, analysis preserved."""
    from iotscope.share.anonymity import anonymity_report
    from iotscope.share.collect import policy_key, require_store
    from iotscope.share.policy import load_policy

    try:
        require_store(store)
        loaded = load_policy(policy)
        report = anonymity_report(store, loaded, policy_key(loaded, key), field)
    except IotscopeError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
        return
    for name, value in report.items():
        console.print(f"{name}: {printable(value)}", highlight=False)


@share_app.command("keygen")
def keygen(key: Annotated[Path, typer.Option("--key", help="New key file (must not exist); created 0600.")]) -> None:
    """Create the operator's anonymization key (32 random bytes); it never leaves this machine."""
    from iotscope.share.anonymize import generate_key

    try:
        generate_key(key)
    except IotscopeError as exc:
        fail(str(exc))
    console.print(f"key written to {printable(key)} (0600); keep it: the same key gives the same mapping")


@share_app.command("taxii-serve")
def taxii_serve(
    store: StoreOption,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 9500,
    user: Annotated[str, typer.Option(help="The one TAXII user (basic auth).")] = "iotscope",
    policy: PolicyOption = None,
    key: KeyOption = None,
    feed: FeedOption = None,
    sensor: SensorOption = None,
    identity: Annotated[str, typer.Option("--identity", help="Our organization's name in the export.")] = "iotscope operator",
    half_life_days: HalfLifeOption = 7.0,
) -> None:
    """Serve our indicators over TAXII 2.1: collection 'indicators' (read-only) and 'inbox' (read-write).

    The password is read from the environment variable IOTSCOPE_TAXII_PASSWORD.
    """
    from iotscope.share.collect import stix_bundle
    from iotscope.share.taxii_server import (
        API_ROOT,
        INBOX_COLLECTION,
        INDICATORS_COLLECTION,
        serve,
    )

    password = os.environ.get(PASSWORD_ENV)
    if not password:
        fail(f"set the TAXII password in the environment variable {PASSWORD_ENV}")
    try:
        shareable = _shareable(store, policy, key, feed, sensor, half_life_days, None)
        bundle, _ = stix_bundle(shareable, identity)
        console.print(f"TAXII 2.1 on http://{host}:{port}/{API_ROOT}/ : collection {INDICATORS_COLLECTION} "
                      f"(indicators, {len(shareable.indicators):,}), {INBOX_COLLECTION} (inbox)", highlight=False)
        serve(bundle, host=host, port=port, user=user, password=password)
    except IotscopeError as exc:
        fail(str(exc))


@share_app.command("push")
def push(
    taxii: Annotated[str, typer.Option("--taxii", help="TAXII 2.1 API root URL.")],
    collection: Annotated[str, typer.Option("--collection", help="Collection id.")],
    bundle_file: Annotated[Path | None, typer.Option("--bundle", help="STIX bundle to push (default: export --store).")] = None,
    store: Annotated[Path | None, typer.Option("--store", help="Store to export and push.")] = None,
    user: UserOption = None,
    policy: PolicyOption = None,
    key: KeyOption = None,
    feed: FeedOption = None,
    sensor: SensorOption = None,
    identity: Annotated[str, typer.Option("--identity", help="Our organization's name in the export.")] = "iotscope operator",
    half_life_days: HalfLifeOption = 7.0,
) -> None:
    """Push a bundle (or the store's export) to a TAXII 2.1 collection. Password: IOTSCOPE_TAXII_PASSWORD."""
    from iotscope.share.collect import stix_bundle
    from iotscope.share.feeds import read_bundle
    from iotscope.share.stix import indicators_from_bundle
    from iotscope.share.taxii import push as push_bundle

    if (bundle_file is None) == (store is None):
        fail("give exactly one of --bundle FILE or --store DIR")
    try:
        if bundle_file is not None:
            data = read_bundle(bundle_file)
            indicators_from_bundle(data, str(bundle_file), bundle_file.stem)  # refuses malformed STIX before sending
        else:
            shareable = _shareable(store, policy, key, feed, sensor, half_life_days, None)
            data, _ = stix_bundle(shareable, identity)
        status = push_bundle(taxii, collection, data, user=user, password=os.environ.get(PASSWORD_ENV))
    except IotscopeError as exc:
        fail(str(exc))
    console.print(f"pushed {len(data.get('objects', [])):,} objects: {status['success']:,} added, "
                  f"{status['failure']:,} refused, {status['pending']:,} pending", highlight=False)


@share_app.command("pull")
def pull(
    taxii: Annotated[str, typer.Option("--taxii", help="TAXII 2.1 API root URL.")],
    collection: Annotated[str, typer.Option("--collection", help="Collection id.")],
    out: OutOption = None,
    user: UserOption = None,
) -> None:
    """Pull a TAXII 2.1 collection as one STIX bundle (use it with --feed). Password: IOTSCOPE_TAXII_PASSWORD."""
    from iotscope.share.stix import indicators_from_bundle
    from iotscope.share.taxii import pull as pull_bundle

    try:
        bundle = pull_bundle(taxii, collection, user=user, password=os.environ.get(PASSWORD_ENV))
        indicators = indicators_from_bundle(bundle, taxii, "taxii")
    except IotscopeError as exc:
        fail(str(exc))
    _emit(json.dumps(bundle, indent=1) + "\n", out)
    console.print(f"pulled {len(bundle['objects']):,} objects ({len(indicators):,} indicators)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``share`` command group to the main app."""
    app.add_typer(share_app, name="share")
