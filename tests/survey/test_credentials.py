"""The built-in credential list and the user credential file format."""

from __future__ import annotations

import pytest

from iotscope.survey.credentials import (
    CredentialsError,
    attempt_order,
    load_builtin,
    load_credentials,
    merge,
)


def test_builtin_has_mirai_62_pairs_in_source_order():
    builtin = load_builtin()
    mirai = [c for c in builtin if c.id.startswith("mirai-")]
    assert [c.id for c in mirai] == [f"mirai-{i:02d}" for i in range(1, 63)]
    assert (mirai[0].username, mirai[0].password) == ("root", "xc3511")
    assert (mirai[1].username, mirai[1].password) == ("root", "vizxv")
    assert (mirai[11].username, mirai[11].password) == ("root", "")
    # Decoded from the obfuscated bytes, not the (wrong) source comments.
    assert (mirai[26].username, mirai[26].password) == ("Administrator", "meinsm")
    assert (mirai[57].username, mirai[57].password) == ("admin", "4321")
    assert (mirai[61].username, mirai[61].password) == ("mother", "fucker")


def test_builtin_vendor_defaults_cite_a_source_and_do_not_repeat_mirai_pairs():
    builtin = load_builtin()
    vendors = [c for c in builtin if c.id.startswith("vendor-")]
    assert len(vendors) >= 10
    assert all(c.source.strip() for c in builtin)
    mirai_pairs = {(c.username, c.password) for c in builtin if c.id.startswith("mirai-")}
    assert not [c.id for c in vendors if (c.username, c.password) in mirai_pairs]
    assert any((c.username, c.password) == ("pi", "raspberry") for c in vendors)


def test_attempt_order_drops_repeated_pairs_keeping_first_id():
    ordered = attempt_order(load_builtin())
    ids = [c.id for c in ordered]
    assert "mirai-31" in ids and "mirai-32" not in ids  # Mirai's own guest/12345 twice
    assert len({(c.username, c.password) for c in ordered}) == len(ordered)


def test_repr_never_shows_the_password():
    credential = load_builtin()[0]
    assert "xc3511" not in repr(credential)


def test_user_file_extends_builtin(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[[credential]]\nid = "site-1"\nusername = "ops"\npassword = "0ps!"\n')
    extra = load_credentials(path)
    assert extra[0].source == str(path)
    combined = merge(load_builtin(), extra)
    assert combined[-1].id == "site-1"
    with pytest.raises(CredentialsError, match="defined twice"):
        merge(extra, extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not = [valid", "not valid TOML"),
        ("x = 1\n", "expected one or more"),
        ('[[credential]]\nid = "a"\nusername = "u"\n', "'password' must be a string"),
        ('[[credential]]\nid = "a"\nusername = "u\\r\\nreboot"\npassword = ""\n', "printable ASCII"),
        ('[[credential]]\nid = "bad id"\nusername = "u"\npassword = ""\n', "must match"),
        ('[[credential]]\nid = "a"\nusername = "u"\npassword = ""\nrole = 1\n', "unknown key"),
        (
            '[[credential]]\nid = "a"\nusername = "u"\npassword = ""\n' * 2,
            "defined twice",
        ),
    ],
)
def test_bad_user_file_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CredentialsError, match=message) as info:
        load_credentials(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CredentialsError, match="not found"):
        load_credentials(tmp_path / "absent.toml")
