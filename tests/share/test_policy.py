"""Policy files: the default, per-field methods, and the refusal of a raw release a rule forbids."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.share.policy import PolicyError, default_policy, load_policy, parse_policy

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
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.toml")
