"""Shadowserver-style exports of survey findings: one CSV or JSON file per authorized owner.

An ISP (step 2 of the framework) needs a file per network it is responsible for, with one line
per vulnerable service, in a format its ticketing already reads; that is what Shadowserver's
daily reports established. A service (address, port) is reported by its latest *conclusive*
observation (vulnerable, not vulnerable, or closed in a later complete sweep): a device fixed or
switched off since an earlier survey of the same store is no longer reported, while a later
timeout alone does not clear an earlier finding. When the newest observation of a service is an
error or ``incomplete`` (a deadline or the attempt cap ended the credential list early), it goes to
``errors.csv``/``errors.json``, so nothing observed is silently dropped. Every owner with any
observation gets a file, empty when nothing of theirs is vulnerable, so that a file left by an
earlier export cannot go on naming fixed devices.

A report is a reader: it opens the survey state read-only and writes only into ``out`` (a private
0700 directory when it creates it, files 0600). Addresses are compared in one spelling
(:func:`~iotscope.survey.addresses.canonical_address`), also in findings stored before that rule.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from iotscope.errors import IotscopeError
from iotscope.spreadsheet import csv_text
from iotscope.survey.findings import CONCLUSIVE, SEVERITIES, FindingsDataset, latest_per_service
from iotscope.survey.journal import JournalError, SurveyJournal
from iotscope.survey.private import private_directory

REPORT_FIELDS = (
    "timestamp", "ip", "port", "protocol", "hostname", "tag", "device", "severity",
    "credential_id", "survey_id", "owner", "authorization",
)
ERROR_FIELDS = ("timestamp", "ip", "port", "protocol", "tag", "detail", "survey_id", "owner")
#: How the ``timestamp`` column (and every time in these tables) is written: Shadowserver's, UTC to the second.
REPORT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
FORMATS = ("csv", "json")
#: Times a reader lists and reads the findings before giving up on files that keep vanishing.
_READ_ATTEMPTS = 5


class ReportError(IotscopeError, ValueError):
    """Nothing to report from (no store, unknown survey) or an unusable output directory."""


@dataclass
class ReportResult:
    #: Owner -> (file written, rows in it).
    owners: dict[str, tuple[Path, int]] = field(default_factory=dict)
    #: Rows per severity over all owners.
    severities: dict[str, int] = field(default_factory=dict)
    errors_file: Path | None = None
    #: Rows of the errors file: probe errors, and services left ``incomplete`` (list not exhausted).
    errors: int = 0
    incomplete: int = 0
    services: int = 0


def export_report(store: Path, out: Path, *, survey_id: str | None = None, fmt: str = "csv") -> ReportResult:
    """Write the per-owner reports of ``store`` (one survey, or the latest state over all) to ``out``."""
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r} (use csv or json)")
    table = store_findings(store, survey_id)
    latest = latest_per_service(table)
    conclusive = latest_per_service(table, CONCLUSIVE)
    try:
        if not out.is_dir():
            private_directory(out)
    except OSError as exc:
        raise ReportError(f"{out}: cannot create output directory ({exc.strerror})") from None
    result = ReportResult(services=latest.num_rows)
    rows = latest.to_pylist()
    vulnerable = [r for r in conclusive.to_pylist() if r["status"] == "vulnerable"]
    vulnerable.sort(key=lambda r: (r["owner"], SEVERITIES.index(r["severity"]), _ip_key(r["ip"]), r["port"]))
    by_owner: dict[str, list[dict]] = {row["owner"]: [] for row in rows}
    for row in vulnerable:
        by_owner.setdefault(row["owner"], []).append(_report_row(row))
        result.severities[row["severity"]] = result.severities.get(row["severity"], 0) + 1
    names = _file_names(sorted(by_owner))
    for owner, owner_rows in sorted(by_owner.items()):
        path = out / f"{names[owner]}.{fmt}"
        _write_atomic(path, render_rows(owner_rows, REPORT_FIELDS, fmt))
        result.owners[owner] = (path, len(owner_rows))
    errors = [r for r in rows if r["status"] in ("error", "incomplete")]
    errors.sort(key=lambda r: (r["owner"], _ip_key(r["ip"]), r["port"]))
    # Written even when empty, so an errors file left by an earlier export cannot mislead.
    result.errors_file = out / f"errors.{fmt}"
    _write_atomic(result.errors_file, render_rows([_error_row(r) for r in errors], ERROR_FIELDS, fmt))
    result.errors = len(errors)
    result.incomplete = sum(1 for r in errors if r["status"] == "incomplete")
    return result


def current_services(table: pa.Table) -> pa.Table:
    """Each service's (address, port) current state, as reports judge it: its latest conclusive
    observation (vulnerable, not vulnerable, closed), or, for a service that never had one, its
    latest observation (an error or ``incomplete``). A later timeout does not undo an earlier
    conclusive finding; a later ``closed`` does."""
    conclusive = latest_per_service(table, CONCLUSIVE)
    latest = latest_per_service(table)
    unsettled = latest.join(conclusive.select(["ip", "port"]), keys=["ip", "port"], join_type="left anti")
    return pa.concat_tables([conclusive, unsettled.select(conclusive.column_names).cast(conclusive.schema)])


def store_findings(store: Path, survey_id: str | None = None) -> pa.Table:
    """Every committed observation of ``survey_id`` (or of every survey in the store), read
    without writing anything to the store.

    A compaction (:mod:`iotscope.survey.compact`) may retire files between the moment they are
    listed and the moment they are read: a file gone missing sends the read back to the journal,
    whose newer list names the compacted file with the same rows."""
    if not (store / SurveyJournal.FILENAME).is_file():
        raise ReportError(f"{store}: no survey in this store (run `iotscope survey run ... --store {store}` first)")
    for attempt in range(_READ_ATTEMPTS):
        with SurveyJournal(store, read_only=True) as journal:
            if survey_id is not None and journal.job(survey_id) is None:
                known = ", ".join(j.survey_id for j in journal.jobs()[-5:]) or "none"
                raise ReportError(f"{store}: no survey {survey_id!r} (latest: {known})")
            files = journal.findings_files(survey_id)
        try:
            return FindingsDataset(store).read(files)
        except FileNotFoundError as exc:
            if attempt == _READ_ATTEMPTS - 1:
                raise JournalError(f"{store}: cannot read the findings ({exc})") from None
        except OSError as exc:
            raise JournalError(f"{store}: cannot read the findings ({exc})") from None
    raise AssertionError("unreachable")



def _report_row(row: dict) -> dict:
    return {
        "timestamp": _timestamp(row), "ip": row["ip"], "port": row["port"], "protocol": row["protocol"],
        "hostname": row.get("hostname"), "tag": row["tag"], "device": row["device"], "severity": row["severity"],
        "credential_id": row["credential_id"], "survey_id": row["survey_id"], "owner": row["owner"],
        "authorization": row["authorization"],
    }


def _error_row(row: dict) -> dict:
    return {
        "timestamp": _timestamp(row), "ip": row["ip"], "port": row["port"], "protocol": row["protocol"],
        "tag": row["tag"], "detail": row["detail"], "survey_id": row["survey_id"], "owner": row["owner"],
    }


def _timestamp(row: dict) -> str:
    return row["ts"].strftime(REPORT_TIME_FORMAT)


def render_rows(rows: list[dict], fields: tuple[str, ...], fmt: str) -> str:
    """``rows`` as a JSON array or as CSV with a header (text a spreadsheet would run as a formula
    quoted, see :func:`iotscope.spreadsheet.csv_cell`): the one writer of the survey's exported tables."""
    if fmt == "json":
        return json.dumps(rows, indent=1, ensure_ascii=True) + "\n"
    return csv_text(rows, fields)


def _file_names(owners: list[str]) -> dict[str, str]:
    """A safe, distinct file name per owner ("Example ISP, Inc." -> "example-isp-inc")."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for owner in owners:
        base = re.sub(r"[^a-z0-9]+", "-", owner.lower()).strip("-")[:60] or "owner"
        if base == "errors":
            base = "owner-errors"  # the errors file's name
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        names[owner] = name
    return names


def _ip_key(ip: str) -> tuple[int, int]:
    address = ipaddress.ip_address(ip)
    return address.version, int(address)


def _write_atomic(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
