"""``iotscope survey run`` given hostile or broken files (issue 6, item 11): devices, FIFOs, huge
sparse files and malformed imports end as one line and exit 2, at once, in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iotscope.survey.l4import import IMPORT_MAX_BYTES
from iotscope.survey.scope import BLOCKLIST_MAX_BYTES

_SCOPE = '[[authorized]]\ncidr = "127.0.8.0/29"\nowner = "Lab"\nauthorization = "CLI test"\nspecial_purpose = true\n'
#: Memory the command may use: reading /dev/zero used to go on until MemoryError, far past this.
_MEMORY_LIMIT = 2 << 30


def survey_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the command with a memory limit and a time limit; returns (result, seconds taken)."""
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({_MEMORY_LIMIT}, {_MEMORY_LIMIT}))\n"
        "from iotscope.cli import main\n"
        "sys.argv = ['iotscope', *sys.argv[1:]]\n"
        "main()\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code, "survey", "run", "--store", "store", "--workers", "1", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    return result, time.monotonic() - started


def _one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """The command failed with exit 2 and ``expected`` as its one error line (after the scope
    summary, if the scope loaded), and nothing else."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == f"error: {expected}", result.stderr
    assert all(not line.startswith(("error", "Traceback", "  ")) for line in lines[:-1]), result.stderr


def test_blocklist_naming_a_device(tmp_path: Path) -> None:
    (tmp_path / "scope.toml").write_text('blocklist = "/dev/zero"\n' + _SCOPE)
    result, _ = survey_run(tmp_path, "--scope", "scope.toml", "--ports", "23")
    _one_line(result, "scope.toml: cannot read blocklist file /dev/zero (a character device, not a regular file)")


def test_import_of_a_device(tmp_path: Path) -> None:
    (tmp_path / "scope.toml").write_text(_SCOPE)
    result, _ = survey_run(tmp_path, "--scope", "scope.toml", "--ports", "23", "--import", "/dev/zero")
    _one_line(result, "/dev/zero: cannot read import file (a character device, not a regular file)")


def test_scope_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "scope.toml")  # nobody will ever write to it
    result, seconds = survey_run(tmp_path, "--scope", "scope.toml", "--ports", "23")
    _one_line(result, "scope.toml: cannot read scope file (a FIFO, not a regular file)")
    assert seconds < 30


def test_credentials_that_are_a_fifo_or_a_directory(tmp_path: Path) -> None:
    (tmp_path / "scope.toml").write_text(_SCOPE)
    os.mkfifo(tmp_path / "creds.toml")
    result, _ = survey_run(tmp_path, "--scope", "scope.toml", "--ports", "23", "--credentials", "creds.toml")
    _one_line(result, "creds.toml: cannot read credential file (a FIFO, not a regular file)")
    result, _ = survey_run(tmp_path, "--scope", "scope.toml", "--ports", "23", "--credentials", ".")
    _one_line(result, ".: cannot read credential file (a directory, not a regular file)")


@pytest.mark.parametrize(("name", "option", "size", "what"), [
    ("optout.txt", "blocklist", BLOCKLIST_MAX_BYTES + 1, "blocklist file optout.txt"),
    ("scan.csv", "--import", IMPORT_MAX_BYTES + 1, "import file"),
    ("scope.toml", "--scope", 64 << 30, "scope file"),
])
def test_huge_sparse_files_are_refused_without_reading_them(
    tmp_path: Path, name: str, option: str, size: int, what: str
) -> None:
    with (tmp_path / name).open("wb") as handle:
        handle.truncate(size)  # sparse: no disk used
    if name != "scope.toml":
        (tmp_path / "scope.toml").write_text(('blocklist = "optout.txt"\n' if option == "blocklist" else "") + _SCOPE)
    args = ["--scope", "scope.toml", "--ports", "23"] + (["--import", name] if option == "--import" else [])
    result, seconds = survey_run(tmp_path, *args)
    where = "scope.toml" if option == "blocklist" else name
    cap = {"blocklist": BLOCKLIST_MAX_BYTES, "--import": IMPORT_MAX_BYTES, "--scope": 1 << 20}[option]
    _one_line(result, f"{where}: {what} is {size:,} bytes, more than the cap of {cap:,} bytes")
    assert seconds < 30


@pytest.mark.parametrize(("text", "message"), [
    ("saddr,sport\n127.0.8.1\n", "scan.csv:2: not a zmap CSV row (missing 'sport')"),
    ('[{"ip": "127.0.8.1", "ports": 23}]', "scan.csv:1: not masscan -oJ JSON (expected a list of ports)"),
    ('[{"ip": "127.0.8.1", "ports": [23]}]', "scan.csv:1: not masscan -oJ JSON (expected a port object)"),
    ("[" * 50_000, "scan.csv:1: not masscan -oJ JSON (nested too deeply)"),
])
def test_malformed_imports_are_one_line_with_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "scope.toml").write_text(_SCOPE)
    (tmp_path / "scan.csv").write_text(text)
    result, _ = survey_run(tmp_path, "--scope", "scope.toml", "--ports", "23", "--import", "scan.csv")
    _one_line(result, message)
