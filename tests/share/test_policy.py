"""Policy files: the default, per-field methods, and the refusal of a raw release a rule forbids."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.share.policy import PolicyError, default_policy, load_policy, parse_policy
from tests.share.cli import iotscope, one_line_error
from tests.user_files import KINDS, unsuitable_file

GOOD = """
tlp = "amber"
[fields]
scanner = "cryptopan"
dos_victim = "truncate16"
imported_address = "raw"
imported_domain = "hmac"
survey_device = "drop"
[rules]
never_raw = ["scanner", "dos_victim"]
"""


def test_default_policy() -> None:
    p = default_policy()
    assert p.fields["scanner"] == "raw" and p.fields["dos_victim"] == "truncate24" and p.tlp == "green"
    assert not p.needs_key()


def test_strictest_method_wins() -> None:
    p = parse_policy(GOOD, "t")
    assert p.method({"scanner", "imported_address"}) == "cryptopan"
    assert p.method({"scanner", "dos_victim"}) == "truncate16"
    assert p.needs_key()


def test_raw_release_that_a_rule_forbids_is_refused_naming_the_rule() -> None:
    text = GOOD.replace('dos_victim = "truncate16"', 'dos_victim = "raw"')
    with pytest.raises(PolicyError, match=r"rules\.never_raw forbids releasing dos_victim raw.*fields\.dos_victim"):
        parse_policy(text, "t")


@pytest.mark.parametrize("change, message", [
    (('scanner = "cryptopan"', 'scanner = "rot13"'), "fields.scanner"),
    (('imported_domain = "hmac"', 'imported_domain = "cryptopan"'), "fields.imported_domain"),
    (('survey_device = "drop"', 'survey_device = "raw"'), "fields.survey_device"),
    (('tlp = "amber"', 'tlp = "white"'), "TLP 2.0"),
    (('[rules]', '[rules]\nallow = 1'), "unknown rule"),
    (('scanner = "cryptopan"\n', ''), "fields.scanner is not set"),
    (('tlp = "amber"', 'tlp = '), "not valid TOML"),
])
def test_bad_policies(change: tuple[str, str], message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace(".", r"\.")):
        parse_policy(GOOD.replace(*change), "t")


def test_unreadable_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy not found"):
        load_policy(tmp_path / "missing.toml")


@pytest.mark.parametrize("kind", KINDS)
def test_policy_that_is_no_regular_file_is_one_line_exit_2(kind: str, tmp_path: Path) -> None:
    # A FIFO used to hang `share export` forever and /dev/zero to fill memory (Path.read_text).
    path, words = unsuitable_file(kind, tmp_path)
    error = one_line_error(iotscope("share", "export", "--store", tmp_path / "store", "--policy", path, timeout=60))
    assert str(path) in error and "policy" in error and words in error, error


@pytest.mark.parametrize("kind", KINDS)
def test_key_that_is_no_regular_file_is_one_line_exit_2(kind: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD)
    path, words = unsuitable_file(kind, tmp_path)
    error = one_line_error(iotscope("share", "export", "--store", tmp_path / "store", "--policy", policy,
                                    "--key", path, timeout=60))
    assert str(path) in error and "anonymization key" in error and words in error, error
