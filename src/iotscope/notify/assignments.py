"""The ISP's address assignments: which subscriber held which address when (step 4 of NOTICE).

Only the ISP can map an address and a time to a subscriber; its RADIUS accounting records the
sessions. The file is a CSV with a header and one session a line::

    address,start,stop,subscriber
    198.51.100.7,2026-11-30T08:00:00Z,2026-11-30T20:00:00Z,C-000123
    198.51.100.7,2026-11-30T20:00:00Z,,C-000456          # empty stop: still connected

``start`` and ``stop`` are ISO 8601 (without a zone: UTC); a session covers ``[start, stop)``.
An optional ``language`` column (``ja``/``en``) chooses the subscriber's notice language.
A finding mapped to the wrong subscriber tells a stranger about someone else's device, so an
unusable file is refused as a whole, in one line naming the line and the problem: a bad address
or time, a stop not after its start, or two sessions of one address that overlap (the address
would have had two subscribers at once).
"""

from __future__ import annotations

import bisect
import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from iotscope.notify.errors import NotifyError
from iotscope.notify.orgs import LANGUAGES
from iotscope.survey.addresses import canonical_address
from iotscope.textfile import read_text_file

#: Cap on an assignments file: 256 MiB, some three million sessions.
ASSIGNMENTS_MAX_BYTES = 256 << 20
_REQUIRED = ("address", "start", "stop", "subscriber")
_OPTIONAL = ("language",)


@dataclass(frozen=True, slots=True)
class Session:
    address: str
    start: datetime
    stop: datetime | None
    subscriber: str
    language: str | None
    line: int


class Assignments:
    """Sessions per address, sorted by start, checked not to overlap."""

    def __init__(self, sessions: list[Session], source: str) -> None:
        self.source = source
        self._by_address: dict[str, list[Session]] = {}
        for session in sorted(sessions, key=lambda s: (s.address, s.start)):
            self._by_address.setdefault(session.address, []).append(session)
        for address, listed in self._by_address.items():
            for before, after in pairwise(listed):
                if before.stop is None or after.start < before.stop:
                    raise NotifyError(
                        f"{source}:{after.line}: session of {address} from {after.start.isoformat()} overlaps the "
                        f"session on line {before.line} (until {before.stop.isoformat() if before.stop else 'open'})"
                    )
        self._starts = {a: [s.start for s in listed] for a, listed in self._by_address.items()}

    @classmethod
    def load(cls, path: str | Path) -> Assignments:
        path = Path(path)
        text = read_text_file(path, "assignments file", NotifyError, max_bytes=ASSIGNMENTS_MAX_BYTES)
        return cls(list(_parse(text, str(path))), str(path))

    def session_at(self, address: str, moment: datetime) -> tuple[Session | None, str]:
        """The session covering ``address`` at ``moment``, or None with the reason."""
        listed = self._by_address.get(canonical_address(address))
        if not listed:
            return None, "no session for this address in the assignments"
        index = bisect.bisect_right(self._starts[canonical_address(address)], moment) - 1
        if index >= 0 and (listed[index].stop is None or moment < listed[index].stop):
            return listed[index], ""
        return None, f"no session of this address covers {moment.isoformat()} ({len(listed)} session(s) at other times)"


def _parse(text: str, source: str):
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise NotifyError(f"{source}: empty assignments file (expected a header: {','.join(_REQUIRED)})")
    columns = [h.strip().lower() for h in header]
    missing = [c for c in _REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in _REQUIRED + _OPTIONAL]
    if missing or unknown:
        problem = f"missing column(s) {', '.join(missing)}" if missing else f"unknown column(s) {', '.join(unknown)}"
        raise NotifyError(f"{source}:1: {problem} (expected {','.join(_REQUIRED)}[,language])")
    for number, row in enumerate(reader, 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise NotifyError(f"{source}:{number}: {len(row)} fields, the header has {len(columns)}")
        values = dict(zip(columns, (cell.strip() for cell in row), strict=True))
        try:
            address = canonical_address(values["address"])
        except ValueError:
            raise NotifyError(f"{source}:{number}: not an IP address: {values['address']!r}") from None
        start = _time(values["start"], source, number, "start")
        stop = _time(values["stop"], source, number, "stop") if values["stop"] else None
        if stop is not None and stop <= start:
            raise NotifyError(f"{source}:{number}: stop {values['stop']} is not after start {values['start']}")
        if not values["subscriber"]:
            raise NotifyError(f"{source}:{number}: empty subscriber id")
        language = values.get("language") or None
        if language is not None and language not in LANGUAGES:
            raise NotifyError(f"{source}:{number}: language must be one of {', '.join(LANGUAGES)}, not {language!r}")
        yield Session(address, start, stop, values["subscriber"], language, number)


def _time(text: str, source: str, number: int, column: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise NotifyError(f"{source}:{number}: {column} {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
