import os
import time
from pathlib import Path

import pytest

from iotscope.textfile import DEFAULT_MAX_BYTES, read_text_file, read_user_bytes


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


# -- only regular files, and not more than a cap (issue 6, item 11) ---------------------------------


def test_a_device_is_refused_without_reading_it() -> None:
    # /dev/zero never ends: reading it used to go on until MemoryError.
    device = r"^/dev/zero: cannot read blocklist file \(a character device, not a regular file\)$"
    with pytest.raises(_Error, match=device):
        read_text_file(Path("/dev/zero"), "blocklist file", _Error)


def assert_refused_as_a_fifo_at_once(fifo: Path) -> None:
    """Reading the scope file ``fifo`` fails with one line, without waiting for a writer."""
    started = time.monotonic()
    with pytest.raises(_Error, match=r"scope\.toml: cannot read scope file \(a FIFO, not a regular file\)$"):
        read_text_file(fifo, "scope file", _Error)
    assert time.monotonic() - started < 1.0


def test_a_fifo_is_refused_at_once_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "scope.toml"
    os.mkfifo(fifo)
    assert_refused_as_a_fifo_at_once(fifo)


def test_a_file_over_the_cap_is_refused_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "scan.out"
    with huge.open("wb") as handle:  # sparse: 64 GiB that take no disk and would take all memory
        handle.truncate(64 << 30)
    too_big = r"scan\.out: import file is 68,719,476,736 bytes, more than the cap of 1,024 bytes$"
    with pytest.raises(_Error, match=too_big):
        read_text_file(huge, "import file", _Error, max_bytes=1024)


def test_the_cap_also_holds_while_reading(tmp_path: Path) -> None:
    path = tmp_path / "block.txt"
    path.write_bytes(b"x" * 100)
    assert read_user_bytes(path, "blocklist file", _Error, max_bytes=100) == b"x" * 100
    # A file whose size says nothing of its content (procfs says 0 bytes) is not read past the cap.
    assert os.stat("/proc/self/maps").st_size == 0
    grew = r"^/proc/self/maps: blocklist file grew past the cap of 64 bytes while it was read$"
    with pytest.raises(_Error, match=grew):
        read_user_bytes(Path("/proc/self/maps"), "blocklist file", _Error, max_bytes=64)


def test_a_path_swapped_for_a_fifo_after_the_stat_is_neither_waited_on_nor_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race: the path is a regular file when checked and a FIFO when opened. The open must not
    # block (O_NONBLOCK) and what was opened is checked again (fstat).
    regular, fifo = tmp_path / "regular.toml", tmp_path / "scope.toml"
    regular.write_text("ok\n")
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: real_stat(regular if Path(path) == fifo else path, *a, **k))
    assert_refused_as_a_fifo_at_once(fifo)


def test_default_cap_is_for_small_configuration_files(tmp_path: Path) -> None:
    path = tmp_path / "creds.toml"
    path.write_bytes(b"#" * (DEFAULT_MAX_BYTES + 1))
    with pytest.raises(_Error, match="more than the cap of"):
        read_text_file(path, "credential file", _Error)
