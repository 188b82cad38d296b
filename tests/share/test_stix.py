"""STIX 2.1 export validated by stix2-validator; import of our own bundles and of malformed ones."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import stix2validator

from iotscope.share.collect import collect
from iotscope.share.errors import ShareError
from iotscope.share.feeds import read_feed
from iotscope.share.policy import default_policy
from iotscope.share.scoring import ScoringConfig
from iotscope.share.stix import (
    TLP2_MARKING_IDS,
    build_bundle,
    bundle_json,
    indicators_from_bundle,
)
from tests.share.cli import iotscope, one_line_error
from tests.survey.test_report import ISP, T0, add_survey

AT = "2016-09-01T03:00:00+00:00"
FEED = """value,type,role,first_seen,last_seen,sightings,source
203.0.113.50,,c2,2016-08-31T00:00:00Z,2016-09-01T01:00:00Z,4,abuse-feed
bad.example,domain-name,malware_distribution,2016-08-31T00:00:00Z,2016-09-01T00:00:00Z,2,abuse-feed
"""


@pytest.fixture(scope="module")
def store_with_survey(darknet_store: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stix") / "store"
    shutil.copytree(darknet_store[0], root)
    add_survey(root, "S1", [("192.0.2.9", 23, "telnet", "vulnerable", "mirai-01", T0, ISP),
                            ("192.0.2.10", 80, "http", "vulnerable", None, T0, ISP)])
    return root


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("feed") / "abuse.csv"
    path.write_text(FEED)
    return path


def test_export_is_valid_stix_with_tlp2_and_every_object_kind(store_with_survey: Path, feed: Path) -> None:
    at = datetime.fromisoformat(AT)
    shareable = collect(store_with_survey, sensor="tokyo-1", feeds=[feed], policy=default_policy(), key=None,
                        at=at, scoring=ScoringConfig())
    # Validation of the whole bundle takes ~40 s: validate the 40 best indicators, the feed's and the notes.
    chosen = shareable.indicators[:40] + [s for s in shareable.indicators[40:]
                                          if "abuse-feed" in s.indicator.sources or "dos_victim" in s.indicator.roles]
    bundle, skipped = build_bundle(chosen, shareable.aggregates, tlp="amber", at=at, identity_name="Example CERT")
    text = bundle_json(bundle)
    result = stix2validator.validate_string(text)
    assert result.is_valid, [str(e) for e in result.errors]
    # Deterministic (UUIDv5) ids are deliberate (re-exports de-duplicate); the validator only warns of them.
    assert {str(w).split("{")[1][:3] for w in result.warnings} <= {"103"}, [str(w) for w in result.warnings]
    objects = json.loads(text)["objects"]
    kinds = {o["type"] for o in objects}
    assert {"identity", "marking-definition", "indicator", "observed-data", "sighting", "ipv4-addr",
            "domain-name", "note"} <= kinds
    marking = next(o for o in objects if o["type"] == "marking-definition")
    assert marking["id"] == TLP2_MARKING_IDS["amber"] and marking["name"] == "TLP:AMBER"
    assert all(o.get("object_marking_refs") == [marking["id"]] for o in objects
               if o["type"] in ("indicator", "observed-data", "sighting", "note"))
    c2 = next(o for o in objects if o["type"] == "indicator" and "203.0.113.50" in o["pattern"])
    assert c2["pattern"] == "[ipv4-addr:value = '203.0.113.50']" and c2["indicator_types"] == ["malicious-activity"]
    assert 0 <= c2["confidence"] <= 100 and c2["valid_until"] > c2["valid_from"]
    notes = [o for o in objects if o["type"] == "note"]
    assert notes and not any("192.0.2.9" in json.dumps(n) or "192.0.2.10" in json.dumps(n) for n in notes)
    assert skipped == 0
    # Victims are released as their /24 only (default policy).
    victims = [o for o in objects if o["type"] == "indicator" and "dos_victim" in o["labels"]]
    assert victims and all(o["pattern"].endswith("/24']") for o in victims)


def test_round_trip_through_our_importer(store_with_survey: Path, feed: Path, tmp_path: Path) -> None:
    at = datetime.fromisoformat(AT)
    shareable = collect(store_with_survey, sensor="tokyo-1", feeds=[feed], policy=default_policy(), key=None,
                        at=at, scoring=ScoringConfig())
    bundle, _ = build_bundle(shareable.indicators[:30], [], tlp="green", at=at, identity_name="Example CERT")
    (tmp_path / "b.json").write_text(bundle_json(bundle))
    back = {i.key: i for i in read_feed(tmp_path / "b.json")}
    for scored in shareable.indicators[:30]:
        ind = scored.indicator
        got = back[ind.key]
        assert (got.sightings, got.sources, got.roles, got.tools, got.first_seen, got.ports) == (
            ind.sightings, ind.sources, ind.roles, ind.tools, ind.first_seen, ind.ports)
        assert abs((got.last_seen - ind.last_seen).total_seconds()) < 0.001


def test_cli_export_to_file_merges_the_feed(store_with_survey: Path, feed: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    result = iotscope("share", "export", "--store", store_with_survey, "--format", "stix", "--out", out,
                      "--feed", feed, "--feed", feed, "--at", AT, "--sensor", "tokyo-1")
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    objects = json.loads(out.read_text())["objects"]
    # the feed's C&C (a scanner can have 8 sightings too: one per scanner event): the feed twice, 4 + 4
    c2_indicator = next(o for o in objects if o["type"] == "indicator" and "203.0.113.50" in o["pattern"])
    c2 = next(o for o in objects if o["type"] == "sighting" and o["sighting_of_ref"] == c2_indicator["id"])
    assert c2["count"] == 8
    assert c2["first_seen"].startswith("2016-08-31")
    stdout = iotscope("share", "export", "--store", store_with_survey, "--at", AT, "--format", "misp")
    event = json.loads(stdout.stdout)["Event"]
    assert event["Tag"] == [{"name": "tlp:green"}]
    types = {a["type"] for a in event["Attribute"]}
    assert {"ip-src", "comment"} <= types


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed STIX (not JSON"),
    ('{"type": "bundle", "id": "bundle--1", "objects": [{"type": "indicator"}]}', "malformed STIX"),
    ('{"type": "indicator"}', "not a bundle"),
    (('{"type": "bundle", "id": "bundle--8f1e5bb6-4a3a-4b8a-9b0e-2b6f3c7d9e10", "objects": [{"type": "indicator",'
      ' "spec_version": "2.1", "id": "indicator--8f1e5bb6-4a3a-4b8a-9b0e-2b6f3c7d9e11", "created": "2016-01-01T00:00:00Z",'
      ' "modified": "2016-01-01T00:00:00Z", "pattern": "[ipv4-addr:value = \'999.1.1.1\']", "pattern_type": "stix",'
      ' "valid_from": "2016-01-01T00:00:00Z"}]}'), "malformed STIX"),
])
def test_malformed_stix_in_is_one_line_exit_2(content: str, message: str, store_with_survey: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(ShareError, match=message.replace("(", r"\(")):
        read_feed(bad)
    err = one_line_error(iotscope("share", "export", "--store", store_with_survey, "--feed", bad))
    assert "malformed STIX" in err


def test_bundle_importer_takes_or_patterns() -> None:
    data = {"type": "bundle", "id": "bundle--8f1e5bb6-4a3a-4b8a-9b0e-2b6f3c7d9e10", "objects": [{
        "type": "indicator", "spec_version": "2.1", "id": "indicator--8f1e5bb6-4a3a-4b8a-9b0e-2b6f3c7d9e11",
        "created": "2016-01-01T00:00:00Z", "modified": "2016-01-02T00:00:00Z", "pattern_type": "stix",
        "pattern": "[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'cnc.example']",
        "valid_from": "2016-01-01T00:00:00Z"}]}
    got = indicators_from_bundle(data, "t", "partner")
    assert [(i.type, i.value, i.sources, i.sightings) for i in got] == [
        ("ipv4-addr", "198.51.100.7", {"partner"}, 1), ("domain-name", "cnc.example", {"partner"}, 1)]
    assert got[0].first_seen == datetime(2016, 1, 1, tzinfo=UTC)
