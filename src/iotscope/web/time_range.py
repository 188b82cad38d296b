"""Ranges of capture time as the API's queries use them: half-open, in integer µs since the epoch.

Times cross the DuckDB boundary as integer microseconds (``epoch_us``, ``make_timestamptz``), so no
time-zone library or session time zone is involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

US = 1_000_000
US_PER_HOUR = 3600 * US


@dataclass(frozen=True)
class TimeRange:
    """A half-open range ``[start_us, end_us)`` of capture time, in µs since the epoch."""

    start_us: int
    end_us: int

    def as_json(self) -> dict[str, str]:
        return {"from": iso(self.start_us), "to": iso(self.end_us)}


def iso(epoch_us: int | None) -> str | None:
    """ISO 8601 UTC text of a µs timestamp."""
    if epoch_us is None:
        return None
    return datetime.fromtimestamp(epoch_us / US, tz=UTC).isoformat()


def epoch_us(moment: datetime) -> int:
    """µs since the epoch of ``moment``; a time without zone is taken as UTC (as the store is)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * US)


def packets_in(window: TimeRange) -> tuple[str, list[Any]]:
    """SQL selecting the ``packets`` rows of ``window``; the ``date`` condition lets DuckDB skip
    other days' files unread."""
    first_day = datetime.fromtimestamp(window.start_us / US, tz=UTC).date()
    last_day = datetime.fromtimestamp((window.end_us - 1) / US, tz=UTC).date()
    return ("date BETWEEN ? AND ? AND ts >= make_timestamptz(?::BIGINT) AND ts < make_timestamptz(?::BIGINT)",
            [first_day, last_day, window.start_us, window.end_us])
