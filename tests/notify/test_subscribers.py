"""Subscriber notices: language per session, text from devices escaped in HTML, stable tracking ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.notify.errors import NotifyError
from iotscope.notify.subscribers import subscriber_notices

FINDINGS = (
    "timestamp,ip,port,protocol,hostname,tag,device,severity,credential_id,survey_id,owner,authorization,tracking_id\n"
    "2026-11-30T10:00:00Z,198.51.100.7,23,telnet,,default-credentials,<script>alert(1)</script>,critical,mirai-01,"
    "S1,ISP,c1,F-AAAAAAAAAAAA\n"
    "2026-11-30T10:00:05Z,198.51.100.7,80,http,,default-credentials,Xiongmai,high,vendor-1,S1,ISP,c1,F-BBBBBBBBBBBB\n"
    "2026-11-30T10:00:09Z,198.51.100.9,23,telnet,,no-authentication,BusyBox,critical,,S1,ISP,c1,F-CCCCCCCCCCCC\n"
)
SESSIONS = (
    "address,start,stop,subscriber,language\n"
    "198.51.100.7,2026-11-30T00:00:00Z,2026-12-01T00:00:00Z,C-EN,en\n"
    "198.51.100.9,2026-11-30T00:00:00Z,,C-JA,\n"
)


def run(tmp_path: Path, out: str = "out"):
    (tmp_path / "findings.csv").write_text(FINDINGS)
    (tmp_path / "sessions.csv").write_text(SESSIONS)
    return subscriber_notices(tmp_path / "findings.csv", tmp_path / "sessions.csv", tmp_path / out, isp="Example ISP")


def test_one_notice_per_subscriber_in_its_language(tmp_path: Path) -> None:
    result = run(tmp_path)
    by = {n.subscriber: n for n in result.notices}
    assert set(by) == {"C-EN", "C-JA"} and result.unmatched == []
    english, japanese = by["C-EN"], by["C-JA"]
    assert english.language == "en" and japanese.language == "ja"  # the default language is ja
    assert [f["tracking_id"] for f in english.findings] == ["F-AAAAAAAAAAAA", "F-BBBBBBBBBBBB"]
    text = english.text.read_text()
    assert "Change the device's password" in text and english.notice_id in text and "198.51.100.9" not in text
    html = english.html.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "パスワードを、推測されにくい" in japanese.text.read_text() and 'lang="ja"' in japanese.html.read_text()
    # the same findings and subscriber give the same tracking id in another run
    assert {n.notice_id for n in run(tmp_path, "again").notices} == {english.notice_id, japanese.notice_id}


def test_a_findings_file_without_the_needed_columns(tmp_path: Path) -> None:
    (tmp_path / "findings.csv").write_text("ip,port\n198.51.100.7,23\n")
    (tmp_path / "sessions.csv").write_text(SESSIONS)
    with pytest.raises(NotifyError, match="findings.csv:1: missing column.s. tracking_id, timestamp, protocol"):
        subscriber_notices(tmp_path / "findings.csv", tmp_path / "sessions.csv", tmp_path / "out", isp="X")
