"""The dashboard in a real browser: Debian's chromium driven by Playwright, never a downloaded browser.

Screenshots are kept in ``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from iotscope.simulate.darknet import DarknetConfig, simulate_darknet
from iotscope.telescope.ingest import ingest
from iotscope.web.app import STATIC_DIR
from tests.web.conftest import CHROMIUM, Server, build_store, map_rows

playwright_sync = pytest.importorskip("playwright.sync_api")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make system-deps)"),
    pytest.mark.skipif(not (STATIC_DIR / "index.html").exists(), reason="dashboard not built (make setup)"),
]


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    yield page
    context.close()


def _open(page, server: Server) -> None:
    page.goto(server.url + "/")
    page.wait_for_function("window.iotscope && window.iotscope.updates >= 1", timeout=30_000)
    assert page.errors == []


def _shoot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_map_draws_points_in_the_legend_colours(page, serve, outbreak_store: Path) -> None:
    server = serve(outbreak_store)
    _open(page, server)
    legend = page.eval_on_selector_all("#legend li", "items => items.map(i => [i.dataset.flagClass, i.dataset.color])")
    assert [k for k, _ in legend] == ["syn", "synack", "ack", "fin", "rst", "push", "tcp_other", "udp", "icmp",
                                      "other"]
    page.click("#map-play")  # pause: every source drawn still, in its colour
    assert page.inner_text("#map-play") == "play"
    pixels = page.evaluate("""(legend) => {
        const canvas = document.getElementById('map');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const wanted = Object.fromEntries(legend.map(([k, c]) => [parseInt(c.slice(1), 16), k]));
        const counts = Object.fromEntries(legend.map(([k]) => [k, 0]));
        for (let i = 0; i < data.length; i += 4) {
            const rgb = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
            if (rgb in wanted) counts[wanted[rgb]] += 1;
        }
        return counts;
    }""", legend)
    points = map_rows(httpx.get(server.url + "/api/map", params={"window": 600, "limit": 5000}).json()["points"])
    drawn = {p["flag_class"] for p in points}
    assert {"syn", "udp", "icmp"} <= drawn and len(drawn) >= 4, drawn
    # the page turned the API's columns into the same points (and a source per point on the canvas)
    assert page.evaluate("window.iotscope.map.points") == points
    assert page.evaluate("window.iotscope.liveMap.sources.length") == len(points)
    for flag in drawn:
        assert pixels[flag] > 0, (flag, pixels)
    for flag in set(pixels) - drawn:
        assert pixels[flag] == 0, (flag, pixels)
    assert pixels["syn"] == max(pixels.values())  # Mirai's SYNs dominate the outbreak
    _shoot(page, "dashboard-map-paused.png")


def test_per_port_chart_has_the_2323_series(page, serve, outbreak_store: Path) -> None:
    server = serve(outbreak_store)
    _open(page, server)
    chart = page.evaluate("({labels: window.iotscope.series.labels, data: window.iotscope.series.data})")
    assert chart["labels"] == ["23/tcp packets", "23/tcp sources", "2323/tcp packets", "2323/tcp sources"]
    api = httpx.get(server.url + "/api/series", params={"proto": "tcp", "port": 2323, "bucket": 600}).json()
    assert chart["data"][0] == api["t"]
    assert chart["data"][3] == api["packets"] and sum(api["packets"]) > 0
    assert chart["data"][4] == api["sources"]
    assert page.locator("#series-chart canvas").count() == 1
    _shoot(page, "dashboard-full.png")


def test_a_new_ingest_appears_on_the_page_within_5_seconds(page, serve, tmp_path: Path) -> None:
    first = DarknetConfig(packets=4_000, hours=0.5, seed=11, start=datetime(2016, 9, 1))
    second = DarknetConfig(packets=6_000, hours=0.5, seed=12, start=datetime(2016, 9, 1, 0, 30))
    store = build_store(tmp_path, first)
    server = serve(store)
    _open(page, server)
    assert page.inner_text("#sum-packets") == "4,000"
    page.wait_for_function("document.getElementById('live-status').dataset.state === 'live'", timeout=10_000)
    capture = simulate_darknet(second, tmp_path / "second.pcap")
    ingest([capture.path], store)
    committed = time.monotonic()
    page.wait_for_function("document.getElementById('sum-packets').textContent === '10,000'", timeout=10_000)
    assert time.monotonic() - committed < 5.0
    _shoot(page, "dashboard-after-live-ingest.png")
    assert page.errors == []


def test_page_uses_no_outside_resources(browser, serve, outbreak_store: Path) -> None:
    """Offline by construction: every request the page makes goes to the server that served it."""
    server = serve(outbreak_store)
    context = browser.new_context()
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.url + "/")
    page.wait_for_function("window.iotscope && window.iotscope.updates >= 1", timeout=30_000)
    context.close()
    assert requested and all(url.startswith(server.url + "/") for url in requested), requested
    assert shutil.which("chromium")


def test_clicking_a_source_on_the_map_opens_its_profile(page, serve, outbreak_store: Path) -> None:
    server = serve(outbreak_store)
    _open(page, server)
    page.click("#map-play")  # hold still
    source = page.evaluate("(() => { const s = window.iotscope.liveMap.sources.at(-1); "
                           "return {src: s.src, x: s.x, y: s.y}; })()")
    box = page.locator("#map").bounding_box()
    scale = box["width"] / 1200
    page.mouse.click(box["x"] + source["x"] * scale, box["y"] + source["y"] * scale)
    page.wait_for_function("window.iotscope.profile && !document.getElementById('profile').hidden", timeout=10_000)
    assert page.inner_text("#profile-address") == source["src"]
    expected = httpx.get(f"{server.url}/api/ip/{source['src']}").json()
    shown = page.inner_text("#profile-table")
    assert f"packets\t{expected['packets']:,}" in shown
    assert expected["first_seen"].replace("T", " ")[:19] in shown
    _shoot(page, "dashboard-profile.png")
    assert page.errors == []


def test_a_bad_port_in_the_chart_picker_is_explained_not_drawn(page, serve, outbreak_store: Path) -> None:
    server = serve(outbreak_store)
    _open(page, server)
    page.fill("#series-ports", "tcp/telnet")
    page.click("#series-apply")
    page.wait_for_function("document.getElementById('series-error').textContent !== ''", timeout=10_000)
    assert page.inner_text("#series-error").startswith("port:")
    page.fill("#series-ports", "udp/5060")
    page.click("#series-apply")
    page.wait_for_function("window.iotscope.series.labels[0] === '5060/udp packets'", timeout=10_000)
    assert page.inner_text("#series-error") == ""


def test_events_and_attacks_tables_show_the_api_rows_and_open_profiles(page, serve, analysed_store: Path) -> None:
    server = serve(analysed_store)
    _open(page, server)
    first_page = httpx.get(f"{server.url}/api/events", params={"limit": 25}).json()
    events = first_page["rows"]
    attacks = httpx.get(f"{server.url}/api/attacks", params={"limit": 25}).json()["rows"]
    assert events and attacks
    shown_events = page.locator("#events-table a.source").all_inner_texts()
    assert shown_events == [r["src"] for r in events]
    assert page.locator("#attacks-table a.source").all_inner_texts() == [r["victim"] for r in attacks]
    page.click("#events-more")
    page.wait_for_function("window.iotscope.listings.events.length > 25", timeout=10_000)
    second = httpx.get(f"{server.url}/api/events", params={"limit": 25, "cursor": first_page["cursor"]}).json()["rows"]
    assert page.locator("#events-table a.source").all_inner_texts()[25:] == [r["src"] for r in second]
    victim = attacks[0]["victim"]
    page.locator("#attacks-table a.source").first.click()
    page.wait_for_function(f"window.iotscope.profile && window.iotscope.profile.address === '{victim}'", timeout=10_000)
    assert not page.locator("#profile").is_hidden()
    expected = httpx.get(f"{server.url}/api/ip/{victim}").json()
    assert f"packets\t{expected['packets']:,}" in page.inner_text("#profile-table")
    _shoot(page, "dashboard-listings.png")
    assert page.errors == []


_LEGEND_PIXELS = """([legend, band]) => {
    const canvas = document.getElementById('map');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const wanted = Object.fromEntries(legend.map(([k, c]) => [parseInt(c.slice(1), 16), k]));
    const above = {}; const below = {};
    for (let i = 0; i < data.length; i += 4) {
        const rgb = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
        if (!(rgb in wanted)) continue;
        const y = Math.floor(i / 4 / canvas.width);
        const into = y < canvas.height - band ? above : below;
        into[wanted[rgb]] = (into[wanted[rgb]] || 0) + 1;
    }
    return {above, below};
}"""


def test_map_draws_located_sources_on_the_map_not_the_unknown_band(page, serve, analysed_store: Path,
                                                                   geo_data: None) -> None:
    server = serve(analysed_store)
    _open(page, server)
    page.click("#map-play")  # pause: every source drawn still
    legend = page.eval_on_selector_all("#legend li", "items => items.map(i => [i.dataset.flagClass, i.dataset.color])")
    points = map_rows(httpx.get(server.url + "/api/map", params={"window": 600, "limit": 5000}).json()["points"])
    located = [p for p in points if p["lat"] is not None]
    assert len(located) > 0.9 * len(points)
    pixels = page.evaluate(_LEGEND_PIXELS, [legend, 44])  # 44 px: the map's "location unknown" band
    assert sum(pixels["above"].values()) > 20 * sum(pixels["below"].values()), pixels
    assert {p["flag_class"] for p in located} <= set(pixels["above"]), pixels
    assert pixels["above"]["syn"] == max(pixels["above"].values())
    _shoot(page, "dashboard-map-located.png")


def test_category_donut_alerts_table_and_alert_spans(page, serve, alerting_store: Path) -> None:
    server = serve(alerting_store)
    _open(page, server)
    categories = httpx.get(server.url + "/api/categories").json()["rows"]
    donut = page.evaluate("window.iotscope.donut")
    assert [(d["category"], d["share"]) for d in donut] == [(c["category"], c["share"]) for c in categories]
    assert page.locator("#category-legend li").first.inner_text().startswith(f"{categories[0]['category']} ")
    colours = page.evaluate("""() => {
        const c = document.getElementById('category-donut');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < data.length; i += 4) if (data[i + 3] === 255)
            seen.add('#' + ((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]).toString(16).padStart(6, '0'));
        return [...seen];
    }""")
    big = [d["color"] for d in donut if d["share"] > 0.02]
    assert big and set(big) <= set(colours)
    alerts = httpx.get(server.url + "/api/alerts", params={"limit": 25}).json()["rows"]
    assert {a["port"] for a in alerts} >= {23, 2323}
    rows = page.locator("#alerts-table tr").all_inner_texts()[1:]
    assert [r.split("\t")[0] for r in rows] == [f"{a['port']}/{a['proto']}" for a in alerts]
    spans = page.evaluate("window.iotscope.series.spans")
    charted = [a for a in alerts if a["port"] in (23, 2323) and a["proto"] == "tcp"]
    assert len(spans) == len(charted) > 0
    shaded = page.evaluate("""(span) => {
        const u = window.iotscope.series.chart;
        const ctx = u.ctx; const x = Math.round(u.valToPos((span[0] + span[1]) / 2, 'x', true));
        const y = Math.round(u.bbox.top + 2);
        const [r, g, b] = ctx.getImageData(x, y, 1, 1).data;
        const [r0, g0, b0] = ctx.getImageData(Math.round(u.bbox.left + 1), y, 1, 1).data;
        return [[r, g, b], [r0, g0, b0]];
    }""", spans[0])
    assert shaded[0] != shaded[1] and shaded[0][0] > shaded[0][2], shaded  # reddish inside the span
    _shoot(page, "dashboard-categories-alerts.png")
    assert page.errors == []
