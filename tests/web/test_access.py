"""``--orgs``: each organization sees only its own networks on every endpoint that lists addresses,
cursors included; no token gets aggregates only; a wrong token is a 401."""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from iotscope.notify.orgs import OrgCatalog
from iotscope.web.app import create_app
from iotscope.web.store_reader import StoreReader

from .conftest import map_rows, views

TOKENS = {"A": "token-of-org-a", "B": "token-of-org-b"}
EVERY = {"from": "2016-09-01T00:00:00Z", "to": "2016-09-02T00:00:00Z", "limit": 7}
MAP = {"window": 7 * 86400, "limit": 50_000}


def _slash8(address: str) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(f"{address}/8", strict=False)


@pytest.fixture(scope="module")
def networks(analysed_store: Path) -> dict[str, list[ipaddress.IPv4Network]]:
    """Two organizations: each one attack victim's /8 and a busy scanner's /8, all four distinct."""
    victims = [v for (v,) in views(analysed_store, "SELECT victim_ip FROM attacks ORDER BY packets DESC")]
    scanners = [s for (s,) in views(analysed_store, "SELECT src_ip FROM events GROUP BY 1 ORDER BY count(*) DESC")]
    chosen: list[ipaddress.IPv4Network] = []
    for address in [victims[0], victims[1], *scanners]:
        if _slash8(address) not in chosen:
            chosen.append(_slash8(address))
        if len(chosen) == 4:
            break
    return {"A": [chosen[0], chosen[2]], "B": [chosen[1], chosen[3]]}


@pytest.fixture(scope="module")
def orgs_file(tmp_path_factory: pytest.TempPathFactory, networks: dict) -> Path:
    path = tmp_path_factory.mktemp("orgs") / "orgs.toml"
    text = '[sender]\norg = "CSIRT"\nemail = "csirt@example.org"\ndomain = "example.org"\n'
    for name, nets in networks.items():
        digest = hashlib.sha256(TOKENS[name].encode()).hexdigest()
        listed = ", ".join(f'"{n}"' for n in nets)
        text += (f'\n[[org]]\nname = "{name}"\nemail = "{name.lower()}@example.org"\nnetworks = [{listed}]\n'
                 f'language = "en"\ntoken_sha256 = "{digest}"\n')
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def client(analysed_store: Path, orgs_file: Path) -> TestClient:
    return TestClient(create_app(StoreReader(analysed_store), orgs=OrgCatalog.load(orgs_file)),
                      raise_server_exceptions=False)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def walk(client: TestClient, url: str, headers: dict) -> list[dict]:
    rows, cursor = [], None
    while True:
        body = client.get(url, params={**EVERY, **({"cursor": cursor} if cursor else {})}, headers=headers).json()
        rows += body["rows"]
        cursor = body["cursor"]
        if cursor is None:
            return rows


def inside(address: str, nets: list) -> bool:
    return any(ipaddress.ip_address(address) in n for n in nets)


def in_sql(nets: list, column: str) -> str:
    return "(" + " OR ".join(f"{column} BETWEEN {int(n.network_address)} AND {int(n.broadcast_address)}"
                             for n in nets) + ")"


@pytest.mark.parametrize(("me", "other"), [("A", "B"), ("B", "A")])
def test_each_organization_sees_exactly_its_own_rows(client: TestClient, analysed_store: Path, networks: dict,
                                                     me: str, other: str) -> None:
    mine, theirs = networks[me], networks[other]
    events = walk(client, "/api/events", bearer(me))
    (expected,) = views(analysed_store, f"SELECT count(*) FROM events WHERE {in_sql(mine, 'src')}")[0]
    assert len(events) == expected > 0
    assert all(inside(r["src"], mine) for r in events)
    attacks = walk(client, "/api/attacks", bearer(me))
    assert [r["victim"] for r in attacks] == [v for (v,) in views(
        analysed_store, f"SELECT victim_ip FROM attacks WHERE {in_sql(mine, 'victim')} ORDER BY first_ts DESC")]
    assert attacks
    points = map_rows(client.get("/api/map", params=MAP, headers=bearer(me)).json()["points"])
    assert points and all(inside(p["src"], mine) for p in points)
    (packets,) = views(analysed_store, f"SELECT count(*) FROM packets WHERE {in_sql(mine, 'src')}")[0]
    assert sum(p["count"] for p in points) == packets
    own = events[0]["src"]
    assert client.get(f"/api/ip/{own}", headers=bearer(me)).status_code == 200
    # nothing of the other organization, anywhere
    seen = {r["src"] for r in events} | {r["victim"] for r in attacks} | {p["src"] for p in points}
    assert not any(inside(address, theirs) for address in seen)
    their_source = walk(client, "/api/events", bearer(other))[0]["src"]
    answer = client.get(f"/api/ip/{their_source}", headers=bearer(me))
    unseen = client.get("/api/ip/203.0.113.254", headers=bearer(me))
    assert answer.status_code == unseen.status_code == 404
    assert answer.json()["error"].replace(their_source, "X") == unseen.json()["error"].replace("203.0.113.254", "X")


def test_a_cursor_works_only_for_the_organization_it_was_given_to(client: TestClient) -> None:
    cursor = client.get("/api/events", params=EVERY, headers=bearer("A")).json()["cursor"]
    assert cursor
    assert client.get("/api/events", params={**EVERY, "cursor": cursor}, headers=bearer("A")).status_code == 200
    refused = client.get("/api/events", params={**EVERY, "cursor": cursor}, headers=bearer("B"))
    assert refused.status_code == 422 and refused.json()["parameter"] == "cursor"
    assert client.get("/api/events", params={**EVERY, "cursor": cursor}).status_code == 401


def test_without_a_token_only_aggregates(client: TestClient, analysed_store: Path) -> None:
    for url in ("/api/events", "/api/attacks", "/api/ip/1.2.3.4"):
        response = client.get(url)
        assert response.status_code == 401, url
        assert response.headers["www-authenticate"] == "Bearer"
    points = map_rows(client.get("/api/map", params=MAP).json()["points"])
    assert {p["src"] for p in points} == {None}
    by_flag = dict(views(analysed_store, "SELECT flag_class, count(*) FROM packets GROUP BY 1"))
    per_flag: dict[str, int] = {}
    for point in points:  # per flag class and location: how much from where, never who
        per_flag[point["flag_class"]] = per_flag.get(point["flag_class"], 0) + point["count"]
    assert per_flag == by_flag
    assert client.get("/api/top/country").status_code == client.get("/api/categories").status_code == 200
    assert client.get("/api/alerts").status_code == 200  # ports, never addresses
    assert client.get("/api/summary").json()["packets"] == sum(by_flag.values())
    assert client.get("/api/top/port").status_code == client.get("/api/series").status_code == 200


@pytest.mark.parametrize("url", ["/api/summary", "/api/series", "/api/top/port", "/api/map", "/api/events",
                                 "/api/attacks", "/api/ip/1.2.3.4"])
@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer ", "Basic dXNlcjpwYXNz", TOKENS["A"]])
def test_a_wrong_token_is_401_everywhere(client: TestClient, url: str, header: str) -> None:
    response = client.get(url, headers={"Authorization": header})
    assert response.status_code == 401
    assert "token" in response.json()["error"].lower() or "bearer" in response.json()["error"].lower()


def test_serve_takes_orgs_and_refuses_a_bad_file_in_one_line(serve, analysed_store: Path, orgs_file: Path,
                                                             tmp_path: Path) -> None:
    url = serve(analysed_store, extra=("--orgs", str(orgs_file))).url
    assert httpx.get(url + "/api/events").status_code == 401
    assert httpx.get(url + "/api/events", headers=bearer("A")).status_code == 200
    bad = tmp_path / "orgs.toml"
    bad.write_text("[[org]]\nname = 1\n")
    result = subprocess.run([sys.executable, "-m", "iotscope", "serve", "--store", str(analysed_store),
                             "--orgs", str(bad), "--port", "0"], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "orgs.toml" in result.stderr and "Traceback" not in result.stderr


def test_the_dashboard_shows_the_public_aggregates_then_an_organizations_own_rows(
        browser, serve, analysed_store: Path, orgs_file: Path, networks: dict) -> None:
    from iotscope.web.app import STATIC_DIR

    if not (STATIC_DIR / "index.html").exists():
        pytest.skip("dashboard not built (make setup)")
    server = serve(analysed_store, extra=("--orgs", str(orgs_file)))
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    page.wait_for_function("window.iotscope && window.iotscope.updates >= 1", timeout=30_000)
    assert page.evaluate("window.iotscope.map.points.every((p) => p.src === null)")
    assert page.evaluate("window.iotscope.liveMap.sources.length") > 0  # drawn, without addresses
    assert "token" in page.inner_text("#events-note")
    assert page.locator("#events-table a.source").count() == 0
    page.fill("#token", TOKENS["A"])
    page.click("#token-form button")
    page.wait_for_function("window.iotscope.updates >= 2 && window.iotscope.listings.events.length > 0",
                           timeout=30_000)
    shown = page.locator("#events-table a.source").all_inner_texts() + \
        page.locator("#attacks-table a.source").all_inner_texts() + \
        page.evaluate("window.iotscope.map.points.map((p) => p.src)")
    assert shown and all(inside(address, networks["A"]) for address in shown)
    page.screenshot(path=str(Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard-org-a.png"),
                    full_page=True)
    assert errors == []
    context.close()
