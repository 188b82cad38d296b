// The dashboard: every panel is drawn from the JSON API; /api/live says when to redraw.
import './style.css';
import { getJSON, rows, token } from './api.js';
import { LEGEND, renderLegend } from './legend.js';
import { LiveMap } from './map.js';
import { drawSeries, parsePorts } from './series.js';
import { drawDonut } from './donut.js';

const $ = (id) => document.getElementById(id);
const number = (n) => Number(n).toLocaleString('en-US');
// The sensor's place on the map: NICTER's home (Tokyo) unless the URL says ?sensor=LAT,LON.
const sensorParam = new URLSearchParams(location.search).get('sensor');
const [sensorLat, sensorLon] = sensorParam ? sensorParam.split(',').map(Number) : [35.68, 139.76];

// What the page shows, for people debugging it and for the browser tests.
const state = window.iotscope = { summary: null, map: null, series: null, generation: null, updates: 0 };

function table(element, header, rows) {
  const head = `<tr>${header.map((h) => `<th>${h}</th>`).join('')}</tr>`;
  element.innerHTML = head + rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('');
}

async function loadSummary() {
  const s = state.summary = await getJSON('/api/summary');
  $('sum-packets').textContent = number(s.packets);
  $('sum-sources').textContent = number(s.sources);
  $('sum-first').textContent = s.first ? s.first.replace('T', ' ').slice(0, 19) : '–';
  $('sum-last').textContent = s.last ? s.last.replace('T', ' ').slice(0, 19) : '–';
  $('sum-years').textContent = s.per_year.map((y) => `${y.year}: ${number(y.packets)}`).join('  ·  ') || '–';
  table($('flag-table'), ['kind', 'packets', 'share'], LEGEND.map((e) => [
    `<span class="swatch" style="background:${e.color}"></span>${e.label}`,
    number(s.flag_class[e.key] || 0),
    s.packets ? `${(100 * (s.flag_class[e.key] || 0) / s.packets).toFixed(1)}%` : '–',
  ]));
}

async function loadTops() {
  const ports = await getJSON('/api/top/port?limit=10');
  table($('top-port'), ['port', 'packets', 'sources'],
    ports.rows.map((r) => [`${r.port}/${r.proto}`, number(r.packets), number(r.sources)]));
  const tools = await getJSON('/api/top/tool?limit=10');
  table($('top-tool'), ['tool', 'packets', 'sources'],
    tools.rows.map((r) => [r.tool, number(r.packets), number(r.sources)]));
  const countries = await getJSON('/api/top/country?limit=10');
  table($('top-country'), ['country', 'packets', 'sources'],
    countries.rows.map((r) => [escapeHTML(r.country), number(r.packets), number(r.sources)]));
  const ases = await getJSON('/api/top/asn?limit=10');
  table($('top-asn'), ['AS', 'packets', 'sources'],
    ases.rows.map((r) => [`AS${r.asn} ${escapeHTML(r.as_name || '')}`, number(r.packets), number(r.sources)]));
}

async function loadCategories() {
  const c = state.categories = await getJSON('/api/categories');
  state.donut = drawDonut($('category-donut'), $('category-legend'), c.rows);
}

let liveMap;
async function loadMap() {
  const window_ = $('map-window').value;
  const answer = await getJSON(`/api/map?window=${window_}&limit=5000`);
  const m = state.map = { ...answer, points: rows(answer.points) }; // the API sends columns
  liveMap.setPoints(m.points);
  const located = m.points.filter((p) => p.lat != null).length;
  $('map-info').textContent = `${m.points.length} source × kind points${m.truncated ? ' (largest shown)' : ''}, `
    + `${located} located`;
}

async function loadSeries() {
  const bucket = $('series-bucket').value;
  const wanted = parsePorts($('series-ports').value);
  const results = await Promise.all(wanted.map(async ({ proto, port }) => ({
    proto, port, body: await getJSON(`/api/series?proto=${encodeURIComponent(proto)}&port=${encodeURIComponent(port)}&bucket=${bucket}`),
  })));
  const first = results.length ? results[0].body : null;
  const range = first ? `&from=${encodeURIComponent(first.from)}&to=${encodeURIComponent(first.to)}` : '';
  const alerts = await getJSON(`/api/alerts?limit=1000${range}`);
  state.series = drawSeries($('series-chart'), results, alerts.rows);
}

const escapeHTML = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const when = (iso) => iso.replace('T', ' ').slice(0, 19);
const sourceLink = (address) => `<a href="#" class="source" data-src="${escapeHTML(address)}">${escapeHTML(address)}</a>`;

// The events and attacks tables: a page at a time from the listing endpoints, "more" follows the cursor.
const LISTINGS = {
  events: {
    header: ['source', 'port', 'tool', 'first', 'last', 'packets', 'dests'],
    row: (r) => [sourceLink(r.src), r.port == null ? r.proto : `${r.port}/${r.proto}`, escapeHTML(r.tool || '–'),
      when(r.first), when(r.last), number(r.packets), number(r.destinations)],
  },
  alerts: {
    header: ['port', 'start', 'detected', 'sources before → after', 'magnitude', 'packets'],
    row: (r) => [`${r.port}/${r.proto}`, when(r.start), when(r.detected),
      `${r.baseline_sources.toFixed(1)} → ${r.level_sources.toFixed(1)}`, `×${r.magnitude.toFixed(1)}`,
      number(r.packets)],
  },
  attacks: {
    header: ['victim', 'ports', 'first', 'duration', 'packets', 'est. pps'],
    row: (r) => [sourceLink(r.victim), r.victim_ports.join(', ') || r.proto, when(r.first),
      `${Math.round(r.duration_s)} s`, number(r.packets), number(Math.round(r.est_attack_pps || 0))],
  },
};
state.listings = { events: [], attacks: [], alerts: [] };
const cursors = { events: null, attacks: null, alerts: null };

async function loadListing(kind, more = false) {
  const spec = LISTINGS[kind];
  const query = more && cursors[kind] ? `&cursor=${encodeURIComponent(cursors[kind])}` : '';
  try {
    const page = await getJSON(`/api/${kind}?limit=25${query}`);
    state.listings[kind] = more ? state.listings[kind].concat(page.rows) : page.rows;
    cursors[kind] = page.cursor;
    table($(`${kind}-table`), spec.header, state.listings[kind].map(spec.row));
    $(`${kind}-more`).hidden = !page.cursor;
    $(`${kind}-note`).textContent = state.listings[kind].length ? '' : 'none in the last 24 h of data (run iotscope analyze?)';
  } catch (err) {
    $(`${kind}-more`).hidden = true;
    $(`${kind}-note`).textContent = err.message;
  }
}

const loadListings = () => Promise.all([loadListing('events'), loadListing('attacks'), loadListing('alerts')]);

// A source's profile (from /api/ip/ADDRESS), opened by clicking the source anywhere on the page.
async function openProfile(address) {
  const panel = $('profile');
  panel.hidden = false;
  $('profile-address').textContent = address;
  try {
    const p = state.profile = await getJSON(`/api/ip/${encodeURIComponent(address)}`);
    const where = p.country ? `${p.country}${p.asn ? ` · AS${p.asn} ${p.as_name || ''}` : ''}` : 'location unknown';
    table($('profile-table'), ['', ''], [
      ['packets', number(p.packets)],
      ['first seen', p.first_seen.replace('T', ' ').slice(0, 19)],
      ['last seen', p.last_seen.replace('T', ' ').slice(0, 19)],
      ['darknet addresses hit', number(p.destinations)],
      ['tools', p.tools.join(', ') || 'none recognised'],
      ['kinds', Object.entries(p.flag_class).map(([k, n]) => `${k} ${number(n)}`).join(', ')],
      ['ports', p.ports.slice(0, 8).map((r) => `${r.port}/${r.proto} (${number(r.packets)})`).join(', ') || '–'],
      ['where', where],
      ['classification', escapeHTML(p.classification || 'unknown')],
    ]);
  } catch (err) {
    table($('profile-table'), ['', ''], [['error', err.message]]);
  }
}

async function refresh() {
  await Promise.all([loadSummary(), loadTops(), loadCategories(), loadMap(), loadSeries(), loadListings()]);
  state.updates += 1;
}

function connectLive() {
  const status = $('live-status');
  const events = new EventSource('/api/live');
  const show = (text, kind) => { status.textContent = text; status.dataset.state = kind; };
  events.addEventListener('hello', (e) => {
    state.generation = JSON.parse(e.data);
    show('live', 'live');
  });
  events.addEventListener('commit', async (e) => {
    state.generation = JSON.parse(e.data);
    await refresh();
    show(`live · updated ${new Date().toLocaleTimeString()}`, 'live');
  });
  events.onerror = () => show('reconnecting…', 'down');
}

function start() {
  renderLegend($('legend'));
  liveMap = new LiveMap($('map'), { lat: sensorLat, lon: sensorLon });
  state.liveMap = liveMap;
  $('map-play').addEventListener('click', () => {
    liveMap.setPlaying(!liveMap.playing);
    $('map-play').textContent = liveMap.playing ? 'pause' : 'play';
  });
  $('map').addEventListener('click', (event) => {
    const source = liveMap.sourceAt(event);
    if (source && source.src) openProfile(source.src);
  });
  document.querySelector('.listings').addEventListener('click', (event) => {
    const link = event.target.closest('a.source');
    if (!link) return;
    event.preventDefault();
    openProfile(link.dataset.src);
  });
  $('token').value = token.get();
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    token.set($('token').value.trim());
    refresh().catch((err) => { $('map-info').textContent = `error: ${err.message}`; });
  });
  $('events-more').addEventListener('click', () => loadListing('events', true));
  $('attacks-more').addEventListener('click', () => loadListing('attacks', true));
  $('alerts-more').addEventListener('click', () => loadListing('alerts', true));
  $('profile-close').addEventListener('click', () => { $('profile').hidden = true; });
  $('map-window').addEventListener('change', loadMap);
  const showSeries = () => loadSeries().then(() => { $('series-error').textContent = ''; })
    .catch((err) => { $('series-error').textContent = err.message; });
  $('series-apply').addEventListener('click', showSeries);
  $('series-bucket').addEventListener('change', showSeries);
  refresh().catch((err) => { $('map-info').textContent = `error: ${err.message}`; });
  connectLive();
}

start();
