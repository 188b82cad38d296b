"""One survey run: sweep (or import) the L4 phase, identify each open service, probe it, keep evidence.

When the survey finishes, its findings files are compacted (:mod:`iotscope.survey.compact`).
The phases are checkpointed in the store's job journal, so ``resume=True`` continues the newest
unfinished survey of the same job (same authorized ranges, set of ports and shard) where it
stopped: the sweep from its permutation position, the probes with the open ports not yet probed;
with no such survey it is refused before anything is sent. The blocklist is re-read on every run
and applies to resumed work too. A survey runs in one process at a time (a lock in the store).

The shards of one survey walk one permutation: its seed is given, or derived from the authorized
ranges and the port set, which every shard has in common, so shards run on different machines
are disjoint and together complete without sharing any state.

A service whose credential list was not exhausted (a deadline, or the ``max_attempts`` cap) is
``incomplete``; the journal keeps the pairs it tried. A survey is finished once every open port
has been probed, but while it has incomplete services ``resume=True`` continues it: each of them
is probed again with the pairs not tried yet, in the same order, until it is settled.

Each device is probed by one task at a time (its services one after another, each within its
service deadline and all within one deadline for the device), so a device never sees parallel logins from the survey;
``probe_concurrency`` bounds the devices in progress. A complete unsharded sweep also records
``closed`` for services of earlier surveys it found closed, so reports stop listing them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from iotscope.survey.compact import CompactResult, compact_survey
from iotscope.survey.credentials import Credential
from iotscope.survey.findings import Finding, FindingsDataset, closed_findings, make_finding, now
from iotscope.survey.guarded_connect import guarded_source_address
from iotscope.survey.journal import OpenPort, ResumeError, SurveyJob, SurveyJournal
from iotscope.survey.l4import import L4Import, import_file_digest, read_l4_file
from iotscope.survey.permutation import CyclicPermutation, Shard
from iotscope.survey.probes import ProbeLimits, ProbeResult
from iotscope.survey.probes.device import device_deadline, probe_service
from iotscope.survey.probes.hostname import reverse_name
from iotscope.survey.probes.limits import DEFAULT_PROBE_CONCURRENCY
from iotscope.survey.scope import Scope
from iotscope.survey.sweep import (
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PORTS,
    DEFAULT_RATE,
    sweep,
)
from iotscope.survey.sweep_bookkeeping import SweepProgress, SweepStats

_FLUSH_ROWS = 256


@dataclass
class SurveyProgress:
    """What a progress bar shows: ``phase`` is "sweep" or "probe"; done/total drive the ETA.

    In the sweep, done/total are positions of its permutation (more than the targets: the walk
    skips elements past the index space), so ``attempts`` counts what the summary counts:
    connection attempts made by this run."""

    phase: str
    done: int
    total: int
    open_ports: int = 0
    vulnerable: int = 0
    errors: int = 0
    attempts: int = 0


@dataclass
class SurveySummary:
    survey_id: str
    resumed: bool
    sweep: SweepStats | None = None
    imported: L4Import | None = None
    open_ports: int = 0
    #: Services probed in this run (a resumed run does not count earlier ones).
    probed: int = 0
    #: Open ports skipped because the blocklist now covers them.
    skipped: int = 0
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    #: Unfinished surveys of the same job that this (non-resumed) run did not continue.
    unfinished: list[str] = field(default_factory=list)
    #: Services of earlier surveys that this run's complete sweep found closed (recorded ``closed``).
    closed: int = 0
    #: Why the findings files were not compacted at the end (``iotscope survey compact`` later), if so.
    compaction_error: str | None = None
    #: Services left ``incomplete`` (credential list not exhausted: a deadline or the
    #: ``max_attempts`` cap), this run's and earlier runs'; while any is left ``resume=True``
    #: continues each with the pairs it has not tried.
    incomplete: int = 0

    @property
    def by_status(self) -> Counter[str]:
        return Counter(f.status for f in self.findings)

    @property
    def vulnerable(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "vulnerable"]


async def run_survey(
    scope: Scope,
    *,
    store: Path,
    credentials: list[Credential],
    ports: list[int] | tuple[int, ...] = DEFAULT_PORTS,
    rate: float = DEFAULT_RATE,
    shard: Shard = Shard(),
    resume: bool = False,
    progress: Callable[[SurveyProgress], None] | None = None,
    limits: ProbeLimits = ProbeLimits(),
    concurrency: int = DEFAULT_CONCURRENCY,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    probe_concurrency: int = DEFAULT_PROBE_CONCURRENCY,
    l4_file: Path | None = None,
    workers: int = 1,
    seed: int | None = None,
) -> SurveySummary:
    """Survey ``scope`` x ``ports`` and store the evidence in ``store``; see the module doc.

    ``workers`` processes share the sweep (see :func:`~iotscope.survey.sweep.sweep`); a resumed
    run may use another number than the interrupted one. ``seed`` fixes the sweep order (all
    shards of a survey need the same; by default it is derived from the scope and ports).
    Raises :class:`ResumeError` or :class:`SurveyBusyError` before any connection."""
    ports = _check_ports(ports)
    scope.require_targets()
    started = time.monotonic()
    findings_dataset = FindingsDataset(store)
    with SurveyJournal(store) as journal:
        key = _job_key(scope, ports, shard, l4_file)
        job = _resumable(journal, store, key, ports, shard, seed) if resume else None
        summary = SurveySummary(job.survey_id if job else _new_survey_id(), resumed=job is not None)
        journal.hold(summary.survey_id)  # until the journal closes
        if job is None:
            summary.unfinished = [j.survey_id for j in journal.jobs() if j.job_key == key and j.finished_at is None]
            seed = shared_seed(scope, ports) if seed is None else seed
            job = journal.create(summary.survey_id, key, seed, str(shard), sorted(ports), scope.source)
        else:
            job = journal.job(job.survey_id) or job  # as it is now that this process holds it
            if job.finished_at is not None and not journal.incomplete_services(job.survey_id):
                raise ResumeError(f"survey {job.survey_id} was finished meanwhile by another process")
            findings_dataset.remove_uncommitted(job.survey_id, journal.findings_files(job.survey_id))
        ports = job.ports  # the order that the permutation's index space was fixed in
        if not job.sweep_finished:
            if l4_file is not None:
                summary.imported = read_l4_file(l4_file, scope, ports)
                mine = [p for p in summary.imported.open_ports if shard.owns(f"{p.ip} {p.port}")]
                journal.add_open_ports(job.survey_id, mine)
            else:
                summary.sweep = await _sweep_phase(
                    scope, ports, shard, job, journal, rate, concurrency, connect_timeout, workers, progress,
                )
        open_ports = journal.open_ports(job.survey_id)
        summary.open_ports = len(open_ports)
        done = journal.probed(job.survey_id)
        tried = journal.incomplete_services(job.survey_id)  # continued where they stopped
        todo = [p for p in open_ports if (p.ip, p.port) not in done or (p.ip, p.port) in tried]
        summary.skipped = sum(1 for p in todo if not scope.is_allowed(p.ip))
        todo = [p for p in todo if scope.is_allowed(p.ip)]
        prober = _Prober(scope, job.survey_id, credentials, limits, journal, findings_dataset, summary, progress, tried)
        await prober.run(todo, probe_concurrency, len(open_ports) - len(todo) - summary.skipped, len(open_ports))
        summary.incomplete = len(journal.incomplete_services(job.survey_id))
        if job.finished_at is None:  # the first complete pass (a later resume only continues incomplete services)
            if l4_file is None and shard.count == 1:  # an import or a shard did not look at every service
                closed = closed_findings(
                    findings_dataset.read(journal.findings_files()), ts=now(), survey_id=job.survey_id, scope=scope,
                    ports=ports, still_open={(p.ip, p.port) for p in open_ports},
                )
                if closed:
                    journal.commit_findings(job.survey_id, findings_dataset.publish(job.survey_id, closed), [])
                summary.closed = len(closed)
            journal.finish(job.survey_id)
        compaction = CompactResult()
        try:
            compact_survey(journal, findings_dataset, job.survey_id, compaction)
        except OSError as exc:  # e.g. disk full: the evidence stands as committed, in its small files
            summary.compaction_error = f"{exc.strerror or exc}"
    summary.seconds = time.monotonic() - started
    return summary


async def _sweep_phase(
    scope: Scope, ports: list[int], shard: Shard, job: SurveyJob, journal: SurveyJournal,
    rate: float, concurrency: int, connect_timeout: float, workers: int,
    progress: Callable[[SurveyProgress], None] | None,
) -> SweepStats:
    permutation = CyclicPermutation(scope.authorized_count * len(ports), job.seed, shard)
    found_before = len(journal.open_ports(job.survey_id))

    def checkpoint(position: int, done_above: list[int], found: list[OpenPort], finished: bool) -> None:
        journal.checkpoint_sweep(job.survey_id, position, done_above, found, finished=finished)

    def on_progress(p: SweepProgress) -> None:
        if progress is not None:
            progress(SurveyProgress(
                "sweep", p.positions_done, p.positions_total, found_before + p.open, 0, p.errors, p.attempted,
            ))

    return await sweep(
        scope, ports, permutation, rate=rate, concurrency=concurrency, timeout=connect_timeout,
        start_position=job.sweep_position, done_above=job.sweep_done_above,
        checkpoint=checkpoint, progress=on_progress, workers=workers,
    )


class _Prober:
    """The probe phase: per device, identify and probe each open port; flush evidence in batches."""

    def __init__(
        self, scope: Scope, survey_id: str, credentials: list[Credential], limits: ProbeLimits,
        journal: SurveyJournal, dataset: FindingsDataset, summary: SurveySummary,
        progress: Callable[[SurveyProgress], None] | None,
        tried: dict[tuple[str, int], list[str]] | None = None,
    ) -> None:
        self.scope = scope
        self.tried = tried or {}  # incomplete services of earlier runs: the credential ids they tried
        self.survey_id = survey_id
        self.credentials = credentials
        self.limits = limits
        self.journal = journal
        self.dataset = dataset
        self.summary = summary
        self.progress = progress
        self._pending: list[tuple[Finding, tuple[str, int], tuple[str, ...] | None]] = []
        self._done = 0
        self._total = 0
        self._last_flush = time.monotonic()

    async def run(self, todo: list[OpenPort], concurrency: int, already_done: int, total: int) -> None:
        self._done, self._total = already_done, total
        devices: dict[str, list[OpenPort]] = {}
        for open_port in todo:
            devices.setdefault(open_port.ip, []).append(open_port)
        slots = asyncio.Semaphore(max(1, concurrency))

        async def survey_device(services: list[OpenPort]) -> None:
            async with slots:
                until = device_deadline(self.limits)
                # Once per device, alongside its probes: a slow PTR costs no probe time.
                hostname = asyncio.create_task(reverse_name(services[0].ip, self.limits.reverse_dns_timeout))
                try:
                    for service in services:
                        await self._probe(service, until, hostname)
                finally:
                    hostname.cancel()

        self._report()
        try:
            await asyncio.gather(*(survey_device(services) for services in devices.values()))
        finally:
            # Also on cancel (Ctrl-C): what is finished is kept, the rest is probed on resume.
            self._flush()
        self._report()

    async def _probe(self, service: OpenPort, until: float, hostname: asyncio.Task[str | None]) -> None:
        authorized = self.scope.check(service.ip)
        started = now()
        scanner, result = service.scanner, None
        try:
            scanner = scanner or guarded_source_address(self.scope, service.ip)
        except OSError as exc:  # no route to an imported target: its error finding, then the next one
            result = ProbeResult("unknown", "error", detail=f"unreachable from this host: {exc.strerror or exc}")
        else:
            tried = set(self.tried.get((service.ip, service.port), ()))
            credentials = [c for c in self.credentials if c.id not in tried] if tried else self.credentials
            result = await probe_service(self.scope, service.ip, service.port, credentials, self.limits, until)
        finding = make_finding(
            ts=started, survey_id=self.survey_id, scanner=scanner, ip=service.ip,
            port=service.port, authorized=authorized, result=result, hostname=await hostname,
        )
        self.summary.findings.append(finding)
        self.summary.probed += 1
        incomplete = result is not None and result.status == "incomplete"
        self._pending.append((finding, (service.ip, service.port), result.tried if incomplete else None))
        self._done += 1
        if len(self._pending) >= _FLUSH_ROWS or time.monotonic() - self._last_flush > 1.0:
            self._flush()
        self._report()

    def _flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        paths = self.dataset.publish(self.survey_id, [finding for finding, _, _ in pending])
        self.journal.commit_findings(
            self.survey_id, paths, [target for _, target, _ in pending], {target: tried for _, target, tried in pending},
        )

    def _report(self) -> None:
        if self.progress is None:
            return
        by_status = self.summary.by_status
        self.progress(SurveyProgress(
            "probe", self._done, self._total, self.summary.open_ports, by_status["vulnerable"], by_status["error"],
        ))


def _check_ports(ports: list[int] | tuple[int, ...]) -> list[int]:
    checked = list(dict.fromkeys(ports))
    if not checked:
        raise ValueError("no ports to survey")
    bad = [p for p in checked if not 0 < p < 65536]
    if bad:
        raise ValueError(f"not a TCP port: {bad[0]}")
    return checked


def shared_seed(scope: Scope, ports: list[int]) -> int:
    """The permutation seed of a survey whose seed is not given: a hash of what all its shards
    share, the authorized ranges (not the blocklist, which may change between shards) and the
    port set. As with ZMap's ``--seed``, another seed gives another order over the same targets."""
    text = json.dumps({"ranges": _ranges(scope), "ports": sorted(ports)})
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _resumable(
    journal: SurveyJournal, store: Path, key: str, ports: list[int], shard: Shard, seed: int | None
) -> SurveyJob:
    """The survey ``--resume`` continues; :class:`ResumeError` (one line, saying what differs) if none."""
    job = journal.resumable(key)
    if job is not None:
        if seed is not None and seed != job.seed:
            raise ResumeError(f"--resume: survey {job.survey_id} was started with seed {job.seed}, not {seed}")
        return job
    unfinished = [j for j in journal.jobs() if j.finished_at is None]
    if not unfinished:
        raise ResumeError(f"--resume: no unfinished survey in {store}; run without --resume to start one")
    other = unfinished[-1]
    differences = []
    if set(other.ports) != set(ports):
        differences.append(f"ports {','.join(map(str, sorted(other.ports)))} (not {','.join(map(str, sorted(ports)))})")
    if other.shard != str(shard):
        differences.append(f"shard {other.shard} (not {shard})")
    what = " and ".join(differences) or "other authorized ranges or another --import file"
    raise ResumeError(
        f"--resume: the unfinished survey {other.survey_id} has {what}; "
        "run the same job to resume it, or leave out --resume to start a new survey"
    )


def _ranges(scope: Scope) -> list[tuple[str, bool]]:
    return sorted((str(e.network), e.special_purpose) for e in scope.authorized)


def _job_key(scope: Scope, ports: list[int], shard: Shard, l4_file: Path | None) -> str:
    """What a resumed run must share with the interrupted one for its saved positions to mean the
    same targets: the authorized ranges (not the blocklist, which may grow), the port set (the
    journal keeps their order) and the shard."""
    ranges = _ranges(scope)
    source = "sweep"
    if l4_file is not None:
        source = import_file_digest(l4_file)
    text = json.dumps({"ranges": ranges, "ports": sorted(ports), "shard": str(shard), "l4": source})
    return hashlib.sha256(text.encode()).hexdigest()


def _new_survey_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
