"""CSV that a spreadsheet opens as text, never as a formula (OWASP "CSV injection").

Why one module: every CSV iotscope exports (survey reports, Shadowserver-style alerts, notices,
blocklist feeds) carries text that came from the hosts themselves (banners, host names, tags, feed
names), and a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return runs as a
formula in Excel or LibreOffice on the abuse desk's machine. A leading apostrophe makes it text and
is what OWASP recommends; every CSV writer uses this one rule (:func:`csv_cell`), and every table
of dicts is written by :func:`csv_text`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """``value`` ready for a CSV writer: empty for None, text a spreadsheet would run as a formula
    with a leading apostrophe, anything else unchanged."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def csv_text(rows: Iterable[dict], fields: tuple[str, ...]) -> str:
    """``rows`` as CSV with a header of ``fields`` (in that order, other keys left out); null is
    empty, formula-looking text is quoted (:func:`csv_cell`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(row.get(k)) for k in fields})
    return buffer.getvalue()
