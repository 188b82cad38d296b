"""The shared TOML reading of scope, credential and organization files: one line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.errors import IotscopeError
from iotscope.survey.tomlfile import array_of_tables, entry_table, load_toml, required_string


class FileError(IotscopeError):
    """Stands for a caller's own error class (ScopeError, NotifyError ...)."""


def test_a_valid_file_is_its_document(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text('[[item]]\nname = "  a  "\n')
    document = load_toml(path, "test file", FileError, {"item"})
    entry = entry_table(array_of_tables(document, "item", str(path), FileError)[0], "#1", {"name"}, FileError)
    assert required_string(entry, "name", "#1", FileError) == "a"


@pytest.mark.parametrize(("text", "message"), [
    ("[[item]\n", r": not valid TOML \("),
    ('colour = "red"\n[[item]]\nname = "a"\n', r": unknown top-level key\(s\) colour$"),
    ("", r": expected one or more \[\[item\]\] tables$"),
    ("item = 1\n", r": expected one or more \[\[item\]\] tables$"),
])
def test_a_bad_document_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "f.toml"
    path.write_text(text)
    with pytest.raises(FileError, match=f"^{path}{message}"):
        array_of_tables(load_toml(path, "test file", FileError, {"item"}), "item", str(path), FileError)


@pytest.mark.parametrize(("entry", "message"), [
    (["a"], "#1: expected a table"),
    ({"name": "a", "nmae": "b"}, "#1: unknown key(s) nmae"),
    ({}, "#1: missing 'name'"),
    ({"name": " "}, "#1: 'name' must be a non-empty string"),
    ({"name": 3}, "#1: 'name' must be a non-empty string"),
])
def test_a_bad_entry_names_the_entry_and_the_key(entry: object, message: str) -> None:
    with pytest.raises(FileError) as raised:
        required_string(entry_table(entry, "#1", {"name"}, FileError), "name", "#1", FileError)
    assert str(raised.value) == message


def test_a_missing_file_is_the_callers_error(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="test file not found"):
        load_toml(tmp_path / "absent.toml", "test file", FileError, {"item"})
