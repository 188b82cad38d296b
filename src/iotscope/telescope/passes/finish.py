"""The whole-store step at the end of every ``analyze``: ``alerts``, ``sources`` and the category table.

The hourly passes cannot produce these: surge detection needs a port's whole history and a source
profile merges all of that source's hours. Both inputs are small (``port_series``: ports x buckets;
``source_hours``: sources x ports x hours), so this step recomputes them from every committed
hour whenever an input changed (other hours, another category table, other enrichment data),
and skips them otherwise. The result replaces the previous one in one catalog statement
(``iotscope.store.summaries``).

What the user configures here is validated *before* the store is touched
(:func:`resolve_profile_inputs`: a bad category TOML or ``.mmdb`` is one line, exit 2) and stored
in the catalog, so later runs (and the one ``ingest`` runs) keep it: the category table as the
committed file itself, the ``.mmdb`` files as their paths.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from iotscope.enrich import EnrichConfig, EnrichDataError, Enricher
from iotscope.store.datasets import (
    PORT_SERIES,
    SOURCE_HOURS,
    AnalysisCatalog,
    view_snapshot,
)
from iotscope.store.state import StoreError
from iotscope.store.summaries import (
    ALERTS,
    CATEGORIES,
    SOURCES,
    commit_summaries,
    committed_summaries,
    inputs_key,
)
from iotscope.telescope.categories import OTHER, CategoryTable, load_categories
from iotscope.telescope.passes.settings import AnalysisSettings
from iotscope.telescope.profiles import merge_source_hours, profile_sources
from iotscope.telescope.scanners import ResearchScanners, load_research_scanners
from iotscope.telescope.surge import SurgeConfig, detect_surges

#: Catalog setting holding the user's ``.mmdb`` paths ({"city": path or null, "asn": path or null}).
ENRICH_KEY = "enrich"
DEFAULT_CATEGORIES_SOURCE = "default"


@dataclass(frozen=True)
class ProfileInputs:
    """What the whole-store step needs besides the store, resolved and validated up front."""

    categories: CategoryTable
    categories_source: str  # "default" or the user's file it was read from
    enricher: Enricher | None  # None: no enrichment data (the default is not built: `make geo-data`)
    enrich_paths: dict[str, str | None]
    scanners: ResearchScanners


def resolve_profile_inputs(root: Path, categories: Path | None = None, geo_city: Path | None = None,
                           geo_asn: Path | None = None) -> ProfileInputs:
    """The category table, enricher and scanner list an analysis of ``root`` uses; reads, never writes.

    Given files replace what the store recorded; absent ones fall back to it, then to the defaults.
    Raises ``CategoryError`` / ``EnrichDataError`` (one line) for a bad file.
    """
    stored_summaries, stored_enrich, snapshot = {}, {}, None
    if (Path(root) / "state.sqlite").is_file():
        snapshot = view_snapshot(root)
        stored_summaries = snapshot.summaries
        catalog = AnalysisCatalog(root, read_only=True)
        try:
            value = catalog.setting(ENRICH_KEY)
            stored_enrich = value if isinstance(value, dict) else {}
        finally:
            catalog.close()
    if categories is not None:
        table, source = load_categories(categories), str(categories)
    else:
        entry = stored_summaries.get("categories") or {}
        source = entry.get("meta", {}).get("source", DEFAULT_CATEGORIES_SOURCE)
        stored_file = snapshot.summary_file("categories") if snapshot is not None else None
        if source != DEFAULT_CATEGORIES_SOURCE and stored_file:
            table = _table_from_file(Path(stored_file))
        else:
            table, source = load_categories(), DEFAULT_CATEGORIES_SOURCE
    paths = {"city": str(geo_city) if geo_city else stored_enrich.get("city"),
             "asn": str(geo_asn) if geo_asn else stored_enrich.get("asn")}
    if paths["city"] or paths["asn"]:
        enricher = Enricher.from_config(EnrichConfig(city=paths["city"], asn=paths["asn"]))
    else:
        try:
            enricher = Enricher.default()
        except EnrichDataError:
            enricher = None  # documented: sources' geo/AS columns stay null until `make geo-data`
    return ProfileInputs(table, source, enricher, paths, load_research_scanners())


def _table_from_file(path: Path) -> CategoryTable:
    """The category table a previous analysis stored (the user's file may be gone since)."""
    try:
        table = pq.read_table(path).cast(CATEGORIES.schema)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: the stored category table is unreadable ({str(exc).splitlines()[0]}); "
                         "give the table again with --categories FILE") from None
    names = sorted(set(table["category"].to_pylist()) - {OTHER})
    return CategoryTable(table=table, names=(*names, OTHER))


def finish(root: Path, catalog: AnalysisCatalog, settings: AnalysisSettings, inputs: ProfileInputs) -> dict[str, int]:
    """Recompute the whole-store results whose inputs changed; return rows written per result."""
    catalog.set_setting(ENRICH_KEY, inputs.enrich_paths)
    hours = catalog.hours()
    series_files = [str(root / e.rows[PORT_SERIES.name]) for e in hours.values() if PORT_SERIES.name in e.rows]
    partial_files = [str(root / e.rows[SOURCE_HOURS.name]) for e in hours.values() if SOURCE_HOURS.name in e.rows]
    done = committed_summaries(catalog)
    results: dict[str, tuple[pa.Table, str, dict]] = {}

    table = inputs.categories.arrow().cast(CATEGORIES.schema)
    digest = hashlib.sha256(_ipc_bytes(table)).hexdigest()
    key = inputs_key(CATEGORIES.version, digest, inputs.categories_source)
    if done.get("categories", {}).get("inputs") != key:
        results["categories"] = (table, key, {"source": inputs.categories_source, "sha256": digest})

    surge = SurgeConfig(bucket_seconds=settings.series_bucket_s)
    key = inputs_key(ALERTS.version, series_files, asdict(surge))
    if done.get("alerts", {}).get("inputs") != key:
        series = pq.read_table(series_files) if series_files else PORT_SERIES.schema.empty_table()
        alerts = detect_surges(series, surge).sort_by([("start", "ascending"), ("proto", "ascending"),
                                                        ("port", "ascending")])
        results["alerts"] = (alerts.cast(ALERTS.schema), key, {"method": asdict(surge)})

    provenance = [asdict(s) for s in inputs.enricher.sources] if inputs.enricher else []
    key = inputs_key(SOURCES.version, partial_files, digest, provenance, inputs.scanners.source,
                     inputs.scanners.retrieved)
    if done.get("sources", {}).get("inputs") != key:
        merged = merge_source_hours(partial_files, inputs.categories)
        sources = profile_sources(merged, inputs.enricher, inputs.scanners)
        results["sources"] = (sources, key, {"enrichment": provenance, "scanners": {
            "source": inputs.scanners.source, "retrieved": inputs.scanners.retrieved}})
    if results:
        commit_summaries(root, catalog, results)
    return {name: t.num_rows for name, (t, _, _) in results.items() if name != "categories"}


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
