"""The whole-store step at the end of every ``analyze``: ``alerts``, ``sources`` and the category table.

The hourly passes cannot produce these: surge detection needs a port's whole history and a source
profile merges all of that source's hours. Both inputs are small (``port_series``: ports x buckets;
``source_hours``: sources x ports x hours), so this step recomputes them from every committed
hour whenever an input changed (other hours, another category table, other enrichment data),
and skips them otherwise. The result replaces the previous one in one catalog statement
(``iotscope.store.summaries``).

When a run analysed new hours, the step starts while the newest hour is still being committed
(:func:`start_whole_store`): it reads the other hours' committed files and the newest hour's rows
from memory, so the commit (its files and the state snapshot) and this step, the serial tail of an
``ingest`` after the capture's end, overlap instead of following each other. :func:`finish` takes
that result when the hours committed by then are the ones it was computed from.

What the user configures here is validated *before* the store is touched
(:func:`resolve_profile_inputs`: a bad category TOML or ``.mmdb`` is one line, exit 2) and stored
in the catalog, so later runs (and the one ``ingest`` runs) keep it: the category table as the
committed file itself, the ``.mmdb`` files as their paths.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from iotscope.enrich import EnrichConfig, EnrichDataError, Enricher
from iotscope.store.datasets import (
    PORT_SERIES,
    SOURCE_HOURS,
    AnalysedHour,
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
from iotscope.telescope.profiles import profile_sources
from iotscope.telescope.scanners import ResearchScanners, load_research_scanners
from iotscope.telescope.source_merge import merge_source_hours
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


@dataclass(frozen=True)
class EarlyWholeStore:
    """``alerts`` and ``sources`` being computed for ``hours`` (the committed ones plus the newest)."""

    hours: frozenset[int]
    results: dict[str, Future[pa.Table]]  # "alerts", "sources": computed side by side

    def covers(self, hours: dict[int, AnalysedHour]) -> bool:
        """Whether it was computed from exactly these committed hours."""
        return self.hours == frozenset(hours)


def start_whole_store(root: Path, catalog: AnalysisCatalog, settings: AnalysisSettings, inputs: ProfileInputs,
                      newest: int, newest_rows: dict[str, pa.Table], workers: Executor) -> EarlyWholeStore | None:
    """Start ``alerts`` and ``sources`` on ``workers`` from the committed hours and ``newest_rows``.

    ``newest_rows`` (dataset name -> rows) is the hour ``newest``, not committed yet: its commit runs
    meanwhile. None when the passes do not write both inputs (a test's subset of passes).
    """
    if PORT_SERIES.name not in newest_rows or SOURCE_HOURS.name not in newest_rows:
        return None
    hours = {h: e for h, e in catalog.hours().items() if h != newest}
    series_files, partial_files = _input_files(root, hours)
    surge = SurgeConfig(bucket_seconds=settings.series_bucket_s)
    series, partial = newest_rows[PORT_SERIES.name], newest_rows[SOURCE_HOURS.name]
    return EarlyWholeStore(frozenset({*hours, newest}), {
        "alerts": workers.submit(_alerts, series_files, series, surge),
        "sources": workers.submit(_sources, partial_files, partial, inputs)})


def finish(root: Path, catalog: AnalysisCatalog, settings: AnalysisSettings, inputs: ProfileInputs,
           early: EarlyWholeStore | None = None) -> dict[str, int]:
    """Recompute the whole-store results whose inputs changed; return rows written per result.

    ``early``: what :func:`start_whole_store` computed, used if it covers the committed hours.
    """
    catalog.set_setting(ENRICH_KEY, inputs.enrich_paths)
    hours = catalog.hours()
    series_files, partial_files = _input_files(root, hours)
    computed = {name: future.result() for name, future in early.results.items()} \
        if early is not None and early.covers(hours) else {}
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
        alerts = computed["alerts"] if "alerts" in computed else _alerts(series_files, None, surge)
        results["alerts"] = (alerts, key, {"method": asdict(surge)})

    provenance = [asdict(s) for s in inputs.enricher.sources] if inputs.enricher else []
    key = inputs_key(SOURCES.version, partial_files, digest, provenance, inputs.scanners.source,
                     inputs.scanners.retrieved)
    if done.get("sources", {}).get("inputs") != key:
        sources = computed["sources"] if "sources" in computed else _sources(partial_files, None, inputs)
        results["sources"] = (sources, key, {"enrichment": provenance, "scanners": {
            "source": inputs.scanners.source, "retrieved": inputs.scanners.retrieved}})
    if results:
        commit_summaries(root, catalog, results)
    return {name: t.num_rows for name, (t, _, _) in results.items() if name != "categories"}


def _input_files(root: Path, hours: dict[int, AnalysedHour]) -> tuple[list[str], list[str]]:
    """The committed ``port_series`` and ``source_hours`` files of ``hours``."""
    return ([str(root / e.rows[PORT_SERIES.name]) for e in hours.values() if PORT_SERIES.name in e.rows],
            [str(root / e.rows[SOURCE_HOURS.name]) for e in hours.values() if SOURCE_HOURS.name in e.rows])


def _alerts(series_files: list[str], newest: pa.Table | None, surge: SurgeConfig) -> pa.Table:
    """Surge alerts over the ``port_series`` files plus ``newest`` (an hour's rows not committed yet)."""
    parts = [pq.read_table(series_files)] if series_files else []
    parts += [newest] if newest is not None else []
    series = pa.concat_tables([t.select(PORT_SERIES.schema.names).cast(PORT_SERIES.schema) for t in parts]) if len(
        parts) > 1 else (parts[0] if parts else PORT_SERIES.schema.empty_table())
    alerts = detect_surges(series, surge).sort_by([("start", "ascending"), ("proto", "ascending"),
                                                    ("port", "ascending")])
    return alerts.cast(ALERTS.schema)


def _sources(partial_files: list[str], newest: pa.Table | None, inputs: ProfileInputs) -> pa.Table:
    """Source profiles over the ``source_hours`` files plus ``newest`` (an hour's rows not committed yet)."""
    merged = merge_source_hours(partial_files, inputs.categories, () if newest is None else (newest,))
    return profile_sources(merged, inputs.enricher, inputs.scanners)


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
