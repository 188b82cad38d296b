"""The exposure census: how many services of each kind the surveyed space exposes, vulnerable or not.

IPA's exposure tables count what is reachable (HTTP on 80/8080, FTP 21, telnet 23/2323, SSH 22 ...)
whether or not a default password opens it: an exposed telnet is a risk before anyone finds its
password, and the trend of exposure is what an ISP or a regulator watches. So the census counts
every *identified* service of the findings dataset, by protocol, port, device guess or owner,
with how many of them are vulnerable, hardened (credentials rejected), or unsettled (a probe
error or a list cut short by the deadline).

A service's state is the one reports use (:func:`~iotscope.survey.report.current_services`):
its latest conclusive observation, else its latest one; a service a later complete sweep found
closed is no longer exposed. An open port whose service was not recognised is counted apart
(``unidentified``), not as a protocol. Like a report, the census only reads the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from iotscope.errors import IotscopeError
from iotscope.survey.report import current_services, render_rows, store_findings

#: What the census can be grouped by: a findings column each.
GROUPINGS = ("protocol", "port", "device", "owner")
#: Output formats besides the terminal table.
FORMATS = ("json", "csv")
#: Columns of a census row after the grouping key, in order.
COUNT_FIELDS = ("services", "addresses", "vulnerable", "not_vulnerable", "unsettled")
#: Shown for a service with no device guess.
UNKNOWN_DEVICE = "(unknown)"


class CensusError(IotscopeError, ValueError):
    """An unknown grouping (the store's own problems are :class:`~iotscope.survey.report.ReportError`)."""


@dataclass
class Census:
    by: str
    #: One dict per group: the key under ``by``, then :data:`COUNT_FIELDS`; most services first.
    rows: list[dict[str, object]] = field(default_factory=list)
    #: Exposed services counted (identified, not closed).
    services: int = 0
    #: Open ports whose service no probe recognised (not in ``rows``).
    unidentified: int = 0
    #: Services whose latest state is ``closed``: seen in an earlier survey, gone since.
    closed: int = 0

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.by, *COUNT_FIELDS)

    def render(self, fmt: str) -> str:
        """The rows as ``json`` or ``csv`` text (see :func:`~iotscope.survey.report.render_rows`)."""
        return render_rows(self.rows, self.fields, fmt)


def exposure_census(store: Path, *, by: str = "protocol", survey_id: str | None = None) -> Census:
    """Count the exposed services of ``store`` (one survey, or the latest state over all) by ``by``."""
    if by not in GROUPINGS:
        raise CensusError(f"cannot group the census by {by!r} (use one of {', '.join(GROUPINGS)})")
    services = current_services(store_findings(store, survey_id))
    connection = duckdb.connect()
    try:
        connection.register("services", services)
        closed, unidentified = connection.execute(
            "SELECT count(*) FILTER (status = 'closed'), count(*) FILTER (status <> 'closed' AND protocol = 'unknown') "
            "FROM services"
        ).fetchone()
        key = f"coalesce(nullif(device, ''), '{UNKNOWN_DEVICE}')" if by == "device" else by
        rows = connection.execute(f"""
            SELECT {key} AS key, count(*) AS services, count(DISTINCT ip) AS addresses,
                   count(*) FILTER (status = 'vulnerable') AS vulnerable,
                   count(*) FILTER (status = 'not_vulnerable') AS not_vulnerable,
                   count(*) FILTER (status IN ('error', 'incomplete')) AS unsettled
            FROM services WHERE status <> 'closed' AND protocol <> 'unknown'
            GROUP BY key ORDER BY services DESC, key
        """).fetchall()
    finally:
        connection.close()
    census = Census(by, closed=closed, unidentified=unidentified)
    for key, *counts in rows:
        census.rows.append({by: key, **dict(zip(COUNT_FIELDS, counts, strict=True))})
    census.services = sum(int(row["services"]) for row in census.rows)
    return census

