"""The built-in credential list and the user credential file format."""

from __future__ import annotations

import pytest

import hashlib
import re

from iotscope.survey.credentials import (
    PROTOCOLS,
    CredentialsError,
    attempt_order,
    load_builtin,
    load_credentials,
    merge,
    prefer_vendor,
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
        ('[[credential]]\nid = "a"\nusername = "u"\npassword = ""\nprotocols = ["smtp"]\n', "unknown protocol"),
        ('[[credential]]\nid = "a"\nusername = "u"\npassword = ""\nvendors = "Acme"\n', "list of printable"),
        ('[[credential]]\nid = "a"\nusername = "u"\npassword = ""\nweight = -1\n', "non-negative"),
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


#: sha256 over "id\0username\0password\n" of the 73 ids shipped before the corpus grew (sorted by id):
#: findings written since then name these ids, so each must keep meaning the same pair.
ORIGINAL_IDS_DIGEST = "88f0efe51455f689b94483dc03eeb3e608f300425c1880b7db816116febae395"
#: Fingerprint makers that must have their own defaults in the corpus (vendor-first ordering).
FINGERPRINTED_MAKERS = ("Hikvision", "Dahua", "Xiongmai", "ZTE", "Huawei", "TP-Link", "D-Link", "MikroTik",
                        "Ubiquiti", "Netgear", "ZyXEL", "Avtech", "Axis")


def test_corpus_has_notice_scale_distinct_iot_pairs():
    """Issue 7 item 6: NOTICE tried about 600 pairs; the built-in corpus has at least that many."""
    builtin = load_builtin()
    pairs = [(c.username, c.password) for c in builtin]
    assert len(set(pairs)) >= 600
    # De-duplicated: one entry per pair, except Mirai's own repeat (guest/12345 as mirai-31 and -32).
    repeats = [c.id for c in builtin if pairs.count((c.username, c.password)) > 1]
    assert repeats == ["mirai-31", "mirai-32"]
    device_types = {d for c in builtin for d in c.devices}
    assert {"router", "camera", "dvr-nvr", "nas", "printer", "set-top-box"} <= device_types


def test_every_pair_has_a_source_device_type_and_protocols_and_no_control_characters():
    printable = re.compile(r"[\x20-\x7e]*")
    for c in load_builtin():
        assert c.source.strip() and c.devices and c.protocols, c.id
        assert set(c.protocols) <= set(PROTOCOLS), c.id
        for text in (c.id, c.username, c.password, c.source, *c.vendors, *c.devices):
            assert printable.fullmatch(text), c.id
    unattributed = [c.id for c in load_builtin() if not c.vendors]
    assert len(unattributed) <= 20  # only pairs from botnet lists that name no maker


def test_ids_are_stable():
    builtin = {c.id: (c.username, c.password) for c in load_builtin()}
    original = [i for i in builtin if i.startswith(("mirai-", "vendor-"))]
    assert len(original) == 73
    text = "".join(f"{i}\0{builtin[i][0]}\0{builtin[i][1]}\n" for i in sorted(original))
    assert hashlib.sha256(text.encode()).hexdigest() == ORIGINAL_IDS_DIGEST
    ids = list(builtin)
    assert len(ids) == len(set(ids))


def test_mirai_weights_kept_for_prevalence_order():
    mirai = [c for c in load_builtin() if c.id.startswith("mirai-")]
    assert all(c.weight is not None and c.weight >= 1 for c in mirai)
    assert (mirai[0].weight, mirai[1].weight, mirai[61].weight) == (10, 9, 1)
    assert all(c.weight is None for c in load_builtin() if not c.id.startswith("mirai-"))


def test_fingerprinted_makers_have_their_own_defaults():
    vendors = {v for c in load_builtin() for v in c.vendors}
    assert set(FINGERPRINTED_MAKERS) <= vendors


def test_prefer_vendor_puts_that_makers_pairs_first_keeping_order():
    builtin = load_builtin()
    ordered = prefer_vendor(builtin, "hikvision")
    hikvision = [c for c in builtin if "Hikvision" in c.vendors]
    assert hikvision and ordered[: len(hikvision)] == hikvision
    assert ordered[len(hikvision):] == [c for c in builtin if c not in hikvision]
    assert prefer_vendor(builtin, None) == builtin
