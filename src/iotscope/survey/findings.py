"""Evidence records of a survey and the ``findings/`` Parquet dataset that keeps them.

One row per observation of a service: ``vulnerable``, ``not_vulnerable``, ``error`` (timeouts and
hostile devices are evidence too: the report lists them), ``incomplete`` (a deadline or the attempt
cap ended the probe before the credential list did: ``attempts`` pairs tried, ``remaining`` not) or ``closed``
(a later complete sweep found the port of an earlier finding closed). Observations are never
rewritten: a later one supersedes an earlier one in reports, and the history stays here. A row carries what an ISP needs to act
(time, target, protocol, which default credential by *id*, device guess, severity) and what
shows the survey was legitimate (survey id, the scanner's source address, the owner and
authorization reference of the range at the time). Never the plaintext of a credential.

Layout, like ``packets/``: ``findings/date=YYYY-MM-DD/part-<survey id>-<random>.parquet``. A
file is written in ``findings/.staging/``, renamed into its partition, and counts once the job
journal commits it (together with the targets it covers); files of a survey that the journal
does not name are remains of a killed run and are removed when the survey resumes (or is
compacted: :mod:`iotscope.survey.compact` rewrites a survey's files as one per partition). Files and
directories are created private (0600/0700) whatever the umask (:mod:`iotscope.survey.private`).
Its format version is ``FINDINGS_FORMAT`` in :mod:`iotscope.store.layout` (bump it with the schema),
where the store's catalog (``iotscope store info``) reads it.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iotscope.store.durable import move_into_place
from iotscope.store.layout import FINDINGS_DIR
from iotscope.survey.addresses import canonical_address
from iotscope.survey.private import PRIVATE_DIRECTORY, open_private, private_directory
from iotscope.survey.probes import ProbeResult
from iotscope.survey.scope import AuthorizedRange, Scope

FINDINGS_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us", tz="UTC")),
    ("survey_id", pa.string()),
    ("scanner", pa.string()),
    ("ip", pa.string()),
    ("port", pa.int32()),
    ("protocol", pa.string()),
    ("status", pa.string()),
    ("severity", pa.string()),
    ("tag", pa.string()),
    ("credential_id", pa.string()),
    ("banner", pa.string()),
    ("device", pa.string()),
    ("detail", pa.string()),
    ("attempts", pa.int32()),
    ("owner", pa.string()),
    ("authorization", pa.string()),
    # Credential pairs not tried when a deadline or the attempt cap ended the probe (``incomplete``); null otherwise
    # (and in files written before the column existed).
    ("remaining", pa.int32()),
    # The device's reverse DNS name when the probe ran (see iotscope.survey.probes.hostname);
    # null when it has none, the lookup was off or slow (and in files written before the column).
    ("hostname", pa.string()),
])

#: Severities, most urgent first (the report sorts by this).
SEVERITIES = ("critical", "high", "medium", "low", "info")
#: Statuses that settle whether a service is vulnerable now; ``error`` and ``incomplete`` do not
#: (an earlier conclusive observation still stands, see :mod:`iotscope.survey.report`).
CONCLUSIVE = ("vulnerable", "not_vulnerable", "closed")
BANNER_CHARS = 256
_NON_PRINTABLE = re.compile(r"[^\x21-\x7e]+")  # controls and whitespace runs -> one space


@dataclass(frozen=True, slots=True)
class Finding:
    ts: datetime
    survey_id: str
    scanner: str | None
    ip: str
    port: int
    protocol: str
    status: str
    severity: str
    tag: str
    credential_id: str | None
    banner: str
    device: str | None
    detail: str
    attempts: int
    owner: str
    authorization: str
    remaining: int | None = None
    hostname: str | None = None


def classify(protocol: str, status: str, credential_id: str | None) -> tuple[str, str]:
    """(severity, tag) of a probe outcome.

    A login shell (telnet/SSH) is what Mirai needs: critical, with or without a password. An
    admin web page or FTP account with a default password gives control of the device or its
    files: high. Anonymous FTP is common by design and exposes files only: medium.
    """
    if status != "vulnerable":
        tags = {"not_vulnerable": "credentials-rejected", "incomplete": "incomplete", "closed": "port-closed"}
        return "info", tags.get(status, "probe-error")
    no_auth = credential_id is None
    if protocol in ("telnet", "ssh"):
        return "critical", "no-authentication" if no_auth else "default-credentials"
    if protocol == "ftp" and no_auth:
        return "medium", "anonymous-ftp"
    return "high", "no-authentication" if no_auth else "default-credentials"


def make_finding(
    *, ts: datetime, survey_id: str, scanner: str | None, ip: str, port: int,
    authorized: AuthorizedRange, result: ProbeResult | None, hostname: str | None = None,
) -> Finding:
    """The evidence row for one service; ``result`` None means no known service handshake.

    ``ts`` is when the probe of the service began; the row carries the time the probe reached
    its verdict (``result.confirmed_at``) when there is one: evidence says when it was seen.
    """
    ip = canonical_address(ip)
    if result is not None and result.confirmed_at is not None:
        ts = result.confirmed_at
    if result is None:
        return Finding(
            ts, survey_id, scanner, ip, port, "unknown", "error", "info", "unidentified-service",
            None, "", None, "no telnet, SSH, HTTP or FTP handshake (silent, unknown or hostile service)",
            0, authorized.owner, authorized.authorization, hostname=hostname,
        )
    severity, tag = classify(result.protocol, result.status, result.credential_id)
    return Finding(
        ts, survey_id, scanner, ip, port, result.protocol, result.status, severity, tag,
        result.credential_id, sanitize(result.banner), result.device, sanitize(result.detail),
        result.attempts, authorized.owner, authorized.authorization, result.remaining, hostname,
    )


def closed_findings(
    history: pa.Table, *, ts: datetime, survey_id: str, scope: Scope, ports: list[int], still_open: set[tuple[str, int]],
) -> list[Finding]:
    """``closed`` observations for the services of ``history`` that a complete sweep of ``scope``
    x ``ports`` did not find open (``still_open``): a device switched off or a service disabled
    since an earlier survey must stop being reported as vulnerable.

    Only services the sweep covered count (port asked for, address in scope and not blocklisted);
    a service whose latest observation is already ``closed`` gets no second row, so running this
    twice (a resume after a kill) adds nothing.
    """
    if history.num_rows == 0:
        return []
    latest = latest_per_service(history)
    wanted = set(ports)
    closed = []
    for row in latest.to_pylist():
        target = (row["ip"], row["port"])
        if row["status"] == "closed" or row["port"] not in wanted or target in still_open or not scope.is_allowed(row["ip"]):
            continue
        authorized = scope.check(row["ip"])
        closed.append(Finding(
            ts, survey_id, None, row["ip"], row["port"], row["protocol"], "closed", *classify(row["protocol"], "closed", None),
            None, "", row["device"], f"not open in this survey's complete sweep (last seen {row['status']} by survey "
            f"{row['survey_id']})", 0, authorized.owner, authorized.authorization, hostname=row.get("hostname"),
        ))
    return closed


def canonical_ips(table: pa.Table) -> pa.Table:
    """``table`` with its ``ip`` column in :func:`~iotscope.survey.addresses.canonical_address` form:
    rows written before addresses were canonicalised may spell one host several ways."""
    column = table.column("ip")
    spellings = pc.unique(column)  # one parse per distinct address, not per row
    folded = pa.array([_canonical_or_same(s) for s in spellings.to_pylist()], pa.string())
    if folded.equals(spellings):
        return table
    mapped = pc.take(folded, pc.index_in(column, value_set=spellings))
    return table.set_column(table.schema.get_field_index("ip"), "ip", mapped)


def latest_per_service(table: pa.Table, statuses: tuple[str, ...] | None = None) -> pa.Table:
    """The newest row per service (ip, port), among rows with one of ``statuses`` (all when None).

    A port serves one thing at a time, so the service is the (address, port) pair: a device that
    moved telnet off 2323 and put a web page there has a new observation of the same service."""
    table = canonical_ips(table)
    if statuses is not None:
        table = table.filter(pc.is_in(table.column("status"), pa.array(statuses, pa.string())))
    connection = duckdb.connect()
    try:
        connection.register("findings", table)
        return connection.sql(
            "SELECT * FROM findings QUALIFY row_number() OVER (PARTITION BY ip, port ORDER BY ts DESC, survey_id DESC) = 1"
        ).to_arrow_table()
    finally:
        connection.close()


def _canonical_or_same(ip: str) -> str:
    try:
        return canonical_address(ip)
    except ValueError:
        return ip


def sanitize(text: str, limit: int = BANNER_CHARS) -> str:
    """Printable ASCII on one line, at most ``limit`` characters (banners come from devices
    that may be hostile, and end up in CSV files and terminals)."""
    return _NON_PRINTABLE.sub(" ", text[: limit * 4]).strip()[:limit]


def to_table(findings: list[Finding]) -> pa.Table:
    rows = [asdict(f) for f in findings]
    return pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)


class FindingsDataset:
    """The ``findings/`` directory of a store."""

    def __init__(self, store_root: Path) -> None:
        self.root = store_root
        self.directory = store_root / FINDINGS_DIR
        self._staging = self.directory / ".staging"

    def publish(self, survey_id: str, findings: list[Finding]) -> list[str]:
        """Write ``findings`` (one file per date partition) and move them into place; returns the
        paths relative to the store root, which the journal must then commit."""
        by_date: dict[str, list[Finding]] = {}
        for finding in findings:
            by_date.setdefault(finding.ts.astimezone(timezone.utc).strftime("%Y-%m-%d"), []).append(finding)
        return [self.publish_table(survey_id, date, to_table(rows)) for date, rows in sorted(by_date.items())]

    def publish_table(self, survey_id: str, date: str, table: pa.Table) -> str:
        """Write ``table`` (rows of partition ``date``, YYYY-MM-DD) as one new file of ``survey_id``
        and move it into place; returns its path relative to the store root, for the journal."""
        private_directory(self._staging)
        os.chmod(self.directory, PRIVATE_DIRECTORY)
        name = f"part-{survey_id}-{uuid.uuid4().hex[:12]}.parquet"
        staged = self._staging / name
        with os.fdopen(open_private(staged), "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
        relative = Path(FINDINGS_DIR) / f"date={date}" / name
        private_directory((self.root / relative).parent)
        move_into_place(staged, self.root / relative)
        return relative.as_posix()

    def remove_uncommitted(self, survey_id: str, committed: list[str]) -> int:
        """Delete files of ``survey_id`` the journal does not name (a killed run's remains)."""
        keep = set(committed)
        removed = 0
        for path in self.directory.glob(f"date=*/part-{survey_id}-*.parquet"):
            if path.relative_to(self.root).as_posix() not in keep:
                path.unlink()
                removed += 1
        for path in self._staging.glob(f"part-{survey_id}-*.parquet"):
            path.unlink()
        return removed

    def read(self, files: list[str]) -> pa.Table:
        """The committed rows of ``files`` (journal paths), in one table."""
        tables = [pq.read_table(self.root / f, schema=FINDINGS_SCHEMA) for f in files]
        return pa.concat_tables(tables) if tables else FINDINGS_SCHEMA.empty_table()


def now() -> datetime:
    return datetime.now(timezone.utc)
