"""CSV cells that a spreadsheet opens as text, never as a formula (OWASP "CSV injection").

Why one function: every CSV iotscope exports (survey reports, Shadowserver-style alerts, blocklist
feeds) carries text that came from the hosts themselves (banners, host names, tags, feed names),
and a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return runs as a formula
in Excel or LibreOffice on the abuse desk's machine. A leading apostrophe makes it text and is
what OWASP recommends; every CSV writer uses this one rule.
"""

from __future__ import annotations

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
