"""One CSV-cell rule for every CSV iotscope writes: formula-looking text becomes text."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from iotscope.share.blocklist import Entry, csv_list
from iotscope.spreadsheet import FORMULA_STARTS, csv_cell, csv_text
from iotscope.survey.report import render_rows


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_formula_looking_text_gets_an_apostrophe(start: str) -> None:
    assert csv_cell(f"{start}cmd|' /C calc'!A0") == f"'{start}cmd|' /C calc'!A0"


def test_other_values_pass_unchanged() -> None:
    assert csv_cell(None) == "" and csv_cell("BusyBox") == "BusyBox" and csv_cell(-3) == -3 and csv_cell("") == ""


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_every_csv_writer_uses_the_rule() -> None:
    """The survey report, the Shadowserver-style alerts and the blocklist feed write the same cell."""
    evil = "\t=HYPERLINK(\"http://x\")"
    report = _cells(render_rows([{"banner": evil, "port": None}], ("banner", "port"), "csv"))
    alerts = _cells(csv_text([{"hostname": evil, "packets": None}], ("hostname", "packets")))
    entry = Entry("ipv4-addr", "192.0.2.1", 90.0, datetime(2026, 1, 1, tzinfo=UTC), 3600, ("scan",), (evil,))
    feed = _cells(csv_list([entry]))
    assert report[1] == alerts[1] == ["'" + evil, ""]
    assert feed[1][5] == "'" + evil  # the blocklist's copy did not quote a leading tab
