"""orgs.toml: what loads, and one clear line for each way it can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.notify.errors import NotifyError
from iotscope.notify.orgs import OrgCatalog
from tests.notify.conftest import SENDER, org_entry, write_orgs


def load(tmp_path: Path, text: str) -> OrgCatalog:
    path = tmp_path / "orgs.toml"
    path.write_text(text, encoding="utf-8")
    return OrgCatalog.load(path)


def test_a_valid_file_loads_with_both_families(tmp_path: Path) -> None:
    catalog = load(tmp_path, SENDER + org_entry("City", ["a@city.example"], ["192.0.2.0/24", "2001:db8:1::/48"], "ja")
                   + org_entry("ISP", ["x@isp.example", "y@isp.example"], ["198.51.100.0/25"]))
    assert [o.name for o in catalog.orgs] == ["City", "ISP"]
    assert catalog.by_name("ISP").emails == ("x@isp.example", "y@isp.example")
    assert catalog.owner_of("2001:db8:1::5").name == "City"
    assert catalog.owner_of("198.51.100.200") is None and catalog.owner_of("::ffff:192.0.2.9").name == "City"


@pytest.mark.parametrize(("entries", "message"), [
    ([org_entry("A", ["a@a.example"], ["192.0.2.1/24"])], "network '192.0.2.1/24' has host bits set"),
    ([org_entry("A", ["a@a.example"], ["192.0.2.0/24"]), org_entry("B", ["b@b.example"], ["192.0.2.128/25"])],
     "network 192.0.2.128/25 of 'B' overlaps 192.0.2.0/24 of 'A'"),
    ([org_entry("A", ["a@a.example"], ["2001:db8::/32", "2001:db8:5::/48"])],
     "overlaps 2001:db8::/32 of the same organization"),
    ([org_entry("A", ["a@a.example"], ["192.0.2.0/24"]), org_entry("A", ["b@b.example"], ["198.51.100.0/24"])],
     "name 'A' is already [[org]] #1"),
    ([org_entry("A", ["a@a.example"], ["192.0.2.0/24"], language="de")], "'language' must be one of ja, en, not 'de'"),
    ([org_entry("A", ["a@a.example\\nBcc: x@evil.example"], ["192.0.2.0/24"])], "is not one plain address"),
    ([org_entry("A", ["a@a.example"], ["not-a-cidr"])], "network 'not-a-cidr' is not a CIDR"),
    ([org_entry("A", ["a@a.example"], [])], "'networks' must be a non-empty list"),
    (['\n[[org]]\nname = "A"\nemail = "a@a.example"\nnetworks = ["192.0.2.0/24"]\nlanguage = "en"\ncolour = "red"\n'],
     "unknown key(s) colour"),
    ([('\n[[org]]\nname = "A"\nemail = "a@a.example"\nnetworks = ["192.0.2.0/24"]\nlanguage = "en"\n'
       'token_sha256 = "abc"\n')], "'token_sha256' must be 64 lower-case hex digits"),
])
def test_each_problem_is_one_line_naming_it(tmp_path: Path, entries: list[str], message: str) -> None:
    with pytest.raises(NotifyError) as error:
        OrgCatalog.load(write_orgs(tmp_path / "orgs.toml", entries))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(str(tmp_path / "orgs.toml"))


@pytest.mark.parametrize(("text", "message"), [
    ("[[org]\n", "not valid TOML"),
    ('[[org]]\nname = "A"\nemail = "a@a.example"\nnetworks = ["192.0.2.0/24"]\nlanguage = "en"\n', "[sender]: missing"),
    (SENDER, "expected one or more [[org]] tables"),
    (SENDER.replace("csirt.example\"\n", "x\"\n", 1) + org_entry("A", ["a@a.example"], ["192.0.2.0/24"]),
     "is not one plain address"),
])
def test_file_level_problems(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(NotifyError, match=None) as error:
        load(tmp_path, text)
    assert message in str(error.value)


def test_a_directory_or_huge_file_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(NotifyError, match="a directory, not a regular file"):
        OrgCatalog.load(tmp_path)
    big = tmp_path / "big.toml"
    with open(big, "wb") as handle:
        handle.truncate(2 << 20)
    with pytest.raises(NotifyError, match="more than the cap"):
        OrgCatalog.load(big)
