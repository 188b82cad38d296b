"""TAXII 2.1 round trips: taxii2-client against our server process on loopback (free port, killed with the test)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import stix2validator

from iotscope.lifetime import end_with_parent
from iotscope.share.collect import collect
from iotscope.share.errors import ShareError
from iotscope.share.feeds import FEED_MAX_BYTES, read_feed
from iotscope.share.policy import default_policy
from iotscope.share.scoring import ScoringConfig
from iotscope.share.stix import build_bundle, bundle_json
from iotscope.share.taxii_server import (
    API_ROOT,
    INBOX_COLLECTION,
    INDICATORS_COLLECTION,
)
from tests.share.cli import iotscope, one_line_error
from tests.user_files import KINDS, unsuitable_file

PASSWORD = "correct horse"
ENV = {**os.environ, "IOTSCOPE_TAXII_PASSWORD": PASSWORD}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(darknet_store: tuple[Path, Path]) -> Iterator[str]:
    port = free_port()
    parent = os.getpid()
    proc = subprocess.Popen(
        [sys.executable, "-m", "iotscope", "share", "taxii-serve", "--store", str(darknet_store[0]),
         "--host", "127.0.0.1", "--port", str(port), "--sensor", "tokyo-1"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: end_with_parent(parent),  # noqa: PLW1509 (only prctl and getppid run there)
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "TAXII server did not start"
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/{API_ROOT}/"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_pull_our_collection_is_our_export(server: str, darknet_store: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "pulled.json"
    result = iotscope("share", "pull", "--taxii", server, "--collection", INDICATORS_COLLECTION, "--out", out,
                      "--user", "iotscope", env=ENV)
    assert result.returncode == 0, result.stderr
    pulled = {i.key: i for i in read_feed(out)}
    ours = collect(darknet_store[0], sensor="tokyo-1", feeds=[], policy=default_policy(), key=None,
                   at=datetime.now(UTC), scoring=ScoringConfig())
    assert set(pulled) == {s.indicator.key for s in ours.indicators}
    for s in ours.indicators[:50]:
        got = pulled[s.indicator.key]
        assert (got.sightings, got.sources, got.roles) == (s.indicator.sightings, s.indicator.sources, s.indicator.roles)
    objects = json.loads(out.read_text())["objects"]
    sample = [o for o in objects if o["type"] in ("identity", "marking-definition")] + objects[2:60]
    assert stix2validator.validate_string(json.dumps({"type": "bundle", "id": "bundle--0a7a3a1e-7d2b-4a43-9e8a-5b9c1d2e3f40",
                                                      "objects": sample})).is_valid


def test_push_then_pull_round_trip(server: str, tmp_path: Path) -> None:
    feed = tmp_path / "partner.csv"
    feed.write_text("value,role,first_seen,last_seen,sightings,source\n"
                    "198.51.100.23,c2,2016-09-01T00:00:00Z,2016-09-01T02:00:00Z,5,partner-cert\n"
                    "loader.bad.example,malware_distribution,2016-09-01T00:00:00Z,2016-09-01T02:00:00Z,2,partner-cert\n")
    indicators = read_feed(feed)
    from iotscope.share.scoring import score
    at = datetime(2016, 9, 1, 3, tzinfo=UTC)
    from iotscope.share.scoring import Scored
    bundle, _ = build_bundle([Scored(i, score(i, at, ScoringConfig())) for i in indicators], [], tlp="green",
                             at=at, identity_name="Partner CERT")
    bundle_file = tmp_path / "push.json"
    bundle_file.write_text(bundle_json(bundle))
    pushed = iotscope("share", "push", "--taxii", server, "--collection", INBOX_COLLECTION, "--bundle", bundle_file,
                      "--user", "iotscope", env=ENV)
    assert pushed.returncode == 0, pushed.stderr
    assert "10 added, 0 refused" in pushed.stderr  # identity, marking, 2 x (observable, indicator, observed, sighting)
    out = tmp_path / "inbox.json"
    pulled = iotscope("share", "pull", "--taxii", server, "--collection", INBOX_COLLECTION, "--out", out,
                      "--user", "iotscope", env=ENV)
    assert pulled.returncode == 0, pulled.stderr
    back = {i.key: i for i in read_feed(out)}
    for ind in indicators:
        got = back[ind.key]
        assert (got.sightings, got.sources, got.roles, got.first_seen, got.last_seen) == (
            ind.sightings, ind.sources, ind.roles, ind.first_seen, ind.last_seen)


def test_push_a_store_export(server: str, darknet_store: tuple[Path, Path]) -> None:
    pushed = iotscope("share", "push", "--taxii", server, "--collection", INBOX_COLLECTION, "--store", darknet_store[0],
                      "--user", "iotscope", env=ENV)
    assert pushed.returncode == 0, pushed.stderr
    added = int(pushed.stderr.split(": ")[1].split(" added")[0].replace(",", ""))
    assert added > 4 * 1000 and ", 0 refused" in pushed.stderr  # 4 objects per indicator, identity, marking


def test_refusals_are_one_line(server: str, tmp_path: Path) -> None:
    bundle_file = tmp_path / "b.json"
    bundle_file.write_text(json.dumps({"type": "bundle", "id": "bundle--0a7a3a1e-7d2b-4a43-9e8a-5b9c1d2e3f41",
                                       "objects": []}))
    read_only = one_line_error(iotscope("share", "push", "--taxii", server, "--collection", INDICATORS_COLLECTION,
                                        "--bundle", bundle_file, "--user", "iotscope", env=ENV))
    assert "does not allow writing" in read_only  # the client reads can_write first
    # and the server refuses a write to the read-only collection by itself too
    direct = requests.post(f"{server}collections/{INDICATORS_COLLECTION}/objects/", auth=("iotscope", PASSWORD),
                           data=bundle_file.read_bytes(), timeout=10,
                           headers={"Content-Type": "application/taxii+json;version=2.1"})
    assert direct.status_code == 403
    wrong = one_line_error(iotscope("share", "pull", "--taxii", server, "--collection", INDICATORS_COLLECTION,
                                    "--user", "iotscope", env={**ENV, "IOTSCOPE_TAXII_PASSWORD": "wrong"}))
    assert "HTTP 401" in wrong


def test_unreachable_server_is_one_line_exit_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/{API_ROOT}/"  # nothing listens there
    err = one_line_error(iotscope("share", "pull", "--taxii", url, "--collection", INDICATORS_COLLECTION, env=ENV))
    assert "cannot reach TAXII server" in err
    bundle_file = tmp_path / "b.json"
    bundle_file.write_text('{"type": "bundle", "id": "bundle--0a7a3a1e-7d2b-4a43-9e8a-5b9c1d2e3f42", "objects": []}')
    err = one_line_error(iotscope("share", "push", "--taxii", url, "--collection", INBOX_COLLECTION,
                                  "--bundle", bundle_file, env=ENV))
    assert "cannot reach TAXII server" in err


@pytest.mark.parametrize("kind", KINDS)
def test_push_of_a_bundle_that_is_no_regular_file_is_one_line_exit_2(kind: str, tmp_path: Path) -> None:
    # Refused before anything is sent: the TAXII address is never contacted.
    path, words = unsuitable_file(kind, tmp_path, FEED_MAX_BYTES)
    error = one_line_error(iotscope("share", "push", "--taxii", "http://127.0.0.1:9/taxii2/", "--collection", "c",
                                    "--bundle", path, timeout=60))
    assert str(path) in error and "STIX bundle" in error and words in error, error


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_feed_that_is_no_regular_file_is_refused_in_one_line(kind: str, tmp_path: Path) -> None:
    path, words = unsuitable_file(kind, tmp_path)
    for name in (path.with_suffix(".csv"), path.with_suffix(".json")):
        if kind == "fifo":
            os.mkfifo(name)
        else:
            name.mkdir()
        with pytest.raises(ShareError) as info:
            read_feed(name)
        assert str(info.value) == f"{name}: cannot read feed {words}", info.value
