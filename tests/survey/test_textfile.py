from pathlib import Path

import pytest

from iotscope.survey.textfile import read_text_file


class _Error(Exception):
    pass


def test_reads_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "scope.toml"
    path.write_text("owner = \"Café\"\n", encoding="utf-8")
    assert read_text_file(path, "scope file", _Error) == "owner = \"Café\"\n"


def test_missing_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(_Error, match=r"^.*nope\.toml: scope file not found$"):
        read_text_file(path, "scope file", _Error)


def test_where_points_at_the_file_that_named_it(tmp_path: Path) -> None:
    with pytest.raises(_Error, match=r"^scope\.toml: blocklist file .*block\.txt not found$"):
        read_text_file(tmp_path / "block.txt", f"blocklist file {tmp_path / 'block.txt'}", _Error, "scope.toml")


def test_undecodable_or_unreadable_file_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "creds.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(_Error, match="creds.toml: cannot read credential file"):
        read_text_file(binary, "credential file", _Error)
    with pytest.raises(_Error, match="cannot read credential file"):
        read_text_file(tmp_path, "credential file", _Error)  # a directory
