"""User-controlled text reaches the terminal as written, never as markup or control sequences
(issue 6, item 14), checked through the real ``iotscope`` command in a subprocess."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from iotscope.cli.common import printable  # noqa
from tests.cli.loopback_service import serving

#: Every C0/C1 control character except the newline that ends a line.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def iotscope(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iotscope", *map(str, args)], cwd=cwd, capture_output=True, timeout=120,
        encoding="utf-8", errors="surrogateescape",
    )


def _scope(cidr: str = "127.0.8.0/29", owner: str = "Loopback Lab") -> str:
    return f'[[authorized]]\ncidr = "{cidr}"\nowner = "{owner}"\nauthorization = "CLI test"\nspecial_purpose = true\n'


def shown(markup: str) -> str:
    """What a console (as the CLI's: no emoji codes) prints for ``markup``."""
    out = io.StringIO()
    Console(file=out, emoji=False, width=200).print(markup, end="")
    return out.getvalue()


@pytest.mark.parametrize(("text", "expected"), [
    ("[[authorized]] [/] [bold]x[/bold] [link=http://x]y", "[[authorized]] [/] [bold]x[/bold] [link=http://x]y"),
    ("a\x1b[2Jb\x07\x9b\r\n\t\u202e\u2028\x00", r"a\x1b[2Jb\x07\x9b\r\n\t\u202e\u2028\x00"),
    ("\\[bold]", "\\[bold]"),
    (Path("café/ok.toml"), "café/ok.toml"),
])
def test_printable_shows_markup_as_written_and_control_characters_as_escapes(text: object, expected: str) -> None:
    assert shown(printable(text)) == expected
    assert shown(f"[bold]{printable(text)}[/]") == expected  # and cannot break the markup around it


def test_a_trailing_backslash_cannot_escape_the_markup_after_it() -> None:
    assert shown(f"[bold]{printable('back' + chr(92))}[/] done") == "back\\ done"


def test_scope_error_shows_brackets_as_written(tmp_path: Path) -> None:
    (tmp_path / "scope.toml").write_text("# no ranges yet\n")
    result = iotscope("survey", "run", "--scope", "scope.toml", "--store", "store", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: scope.toml: expected one or more [[authorized]] tables\n"


@pytest.mark.parametrize("name", ["a[/]b.toml", "[bold]x[/bold] :smile:.toml", "trailing\\"])
def test_a_path_with_markup_is_one_plain_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)  # "a[/]b.toml" is the file "]b.toml" in the folder "a["
    path.write_text("cidr = 1\n")
    result = iotscope("survey", "run", "--scope", name, "--store", "store", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: {name}: unknown top-level key(s) cidr\n"


def test_control_characters_in_a_file_name_do_not_reach_the_terminal(tmp_path: Path) -> None:
    name = "evil\x1b]0;owned\x07\x1b[2J\x9b31m\rfake\nline.toml"
    (tmp_path / name).write_text("cidr = 1\n")
    result = iotscope("survey", "run", "--scope", name, "--store", "store", cwd=tmp_path)
    assert result.returncode == 2
    assert not _CONTROL.search(result.stderr), repr(result.stderr)
    shown_name = r"evil\x1b]0;owned\x07\x1b[2J\x9b31m\rfake\nline.toml"
    assert result.stderr == f"error: {shown_name}: unknown top-level key(s) cidr\n"


def test_user_text_in_tables_progress_and_titles_is_shown_as_written(tmp_path: Path) -> None:
    """A capture named with markup (progress bar, ingest summary, simulate's table title) and SQL
    results holding markup, emoji codes and escape sequences (the result table)."""
    (tmp_path / "c[").mkdir()
    capture = "c[/]x :smile:.pcap"
    made = iotscope("simulate", "--out", capture, "--packets", "2000", "--hours", "0.1", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "c[/]x :smile:.pcap (" in made.stdout + made.stderr
    ingested = iotscope("ingest", capture, "--store", "store", cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert f"{capture}: 2,000 records" in ingested.stderr
    query = "SELECT '[/]' AS \"[b]col\", ':smile:' AS s, chr(27) || '[2J' AS e"
    shown = iotscope("sql", "--store", "store", query, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "[b]col" in shown.stdout and "[/]" in shown.stdout and ":smile:" in shown.stdout
    assert r"\x1b[2J" in shown.stdout and not _CONTROL.search(shown.stdout)


def test_owner_with_markup_in_a_scope_warning(tmp_path: Path) -> None:
    # Without special_purpose = true a loopback range draws a warning that names its owner (another,
    # flagged range keeps the scope usable: a scope with no usable address at all is an error).
    unflagged = _scope(owner="[red]Evil[/] :smile:").replace("special_purpose = true\n", "")
    (tmp_path / "scope.toml").write_text(unflagged + "\n" + _scope().replace("127.0.8.0/29", "127.0.9.0/29"))
    result = iotscope("survey", "run", "--scope", "scope.toml", "--store", "store", "--ports", "21",
                      "--import", "missing.txt", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "warning: scope.toml: 127.0.8.0/29 ([red]Evil[/] :smile:) overlaps special-purpose space" in result.stderr
    assert "error: missing.txt: import file not found" in result.stderr


@pytest.fixture
def anonymous_ftp() -> Iterator[int]:
    """An FTP server on 127.0.8.5 that lets anyone in (a vulnerable device); yields its port."""

    def handle(conn: socket.socket) -> None:
        with conn.makefile("rwb", buffering=0) as stream:
            stream.write(b"220 (vsFTPd 3.0.3)\r\n")
            for line in stream:
                reply = {b"USER": b"331 Please specify the password.", b"PASS": b"230 Login successful."}
                stream.write(reply.get(line[:4], b"221 Goodbye.") + b"\r\n")
                if line[:4] not in reply:
                    break

    with serving("127.0.8.5", handle) as port:
        yield port


def test_owner_with_markup_in_the_report_table(tmp_path: Path, anonymous_ftp: int) -> None:
    owner = "[red]Evil[/] :smile: ISP"
    (tmp_path / "scope.toml").write_text(_scope(owner=owner))
    ran = iotscope("survey", "run", "--scope", "scope.toml", "--store", "store", "--ports", str(anonymous_ftp),
                   "--workers", "1", "--rate", "1000", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    report = iotscope("survey", "report", "--store", "store", "--out", "out", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert owner in report.stderr, report.stderr
    assert "report (1 services)" in report.stderr
