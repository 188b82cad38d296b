// The live world map: sources at their locations, packets flying toward the sensor, on a canvas
// (one draw call per particle, no DOM node per packet: thousands of points stay smooth).
import { geoNaturalEarth1, geoPath, geoGraticule10 } from 'd3-geo';
import { feature, mesh } from 'topojson-client';
import countries from 'world-atlas/countries-110m.json';
import { COLOR } from './legend.js';

const OCEAN = '#0b1020';
const LAND = '#273142';
const BORDER = '#3b4759';
const UNKNOWN_BAND = 44; // px at the bottom: sources without a location (no geo data yet)
const CYCLE_MS = 4000; // a particle's flight from its source to the sensor
const MAX_PARTICLES = 6000;
const HEAD = 4; // px: each particle's head is a HEAD x HEAD square in its legend colour

function hash(text) { // FNV-1a: a stable place on the "location unknown" band per address
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 0x01000193); }
  return h >>> 0;
}

export class LiveMap {
  constructor(canvas, sensor) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { willReadFrequently: true });
    this.playing = true;
    this.sources = [];
    this.particles = [];
    const { width, height } = canvas;
    this.projection = geoNaturalEarth1().fitExtent([[8, 8], [width - 8, height - UNKNOWN_BAND - 8]], { type: 'Sphere' });
    this.sensor = this.projection([sensor.lon, sensor.lat]);
    this.base = this.drawBase(width, height);
    this.frame = this.frame.bind(this);
    requestAnimationFrame(this.frame);
  }

  drawBase(width, height) {
    const base = document.createElement('canvas');
    base.width = width; base.height = height;
    const ctx = base.getContext('2d');
    const path = geoPath(this.projection, ctx);
    ctx.fillStyle = '#05070d'; ctx.fillRect(0, 0, width, height);
    ctx.beginPath(); path({ type: 'Sphere' }); ctx.fillStyle = OCEAN; ctx.fill();
    ctx.beginPath(); path(geoGraticule10()); ctx.strokeStyle = '#141c2e'; ctx.lineWidth = 0.5; ctx.stroke();
    ctx.beginPath(); path(feature(countries, countries.objects.land)); ctx.fillStyle = LAND; ctx.fill();
    ctx.beginPath(); path(mesh(countries, countries.objects.countries, (a, b) => a !== b));
    ctx.strokeStyle = BORDER; ctx.lineWidth = 0.5; ctx.stroke();
    ctx.fillStyle = '#101521'; ctx.fillRect(0, height - UNKNOWN_BAND, width, UNKNOWN_BAND);
    ctx.fillStyle = '#6b7487'; ctx.font = '11px sans-serif';
    ctx.fillText('location unknown (no geo data for these sources)', 10, height - UNKNOWN_BAND + 13);
    return base;
  }

  place(point) {
    if (point.lat != null && point.lon != null) return this.projection([point.lon, point.lat]);
    const h = hash(point.src ?? point.flag_class); // no address for the public under --orgs
    const { width, height } = this.canvas;
    return [10 + (h % (width - 20)), height - UNKNOWN_BAND + 20 + ((h >>> 16) % (UNKNOWN_BAND - 26))];
  }

  // Points from /api/map: one per source x flag class, with a packet count.
  setPoints(points) {
    this.sources = points.map((p) => {
      const [x, y] = this.place(p);
      return { x, y, src: p.src, color: COLOR[p.flag_class] || COLOR.other, count: p.count, flag: p.flag_class };
    });
    const want = this.sources.map((s) => 1 + Math.floor(Math.log2(s.count)));
    const total = want.reduce((a, b) => a + b, 0);
    const scale = total > MAX_PARTICLES ? MAX_PARTICLES / total : 1;
    this.particles = [];
    this.sources.forEach((s, i) => {
      const n = Math.max(1, Math.floor(want[i] * scale));
      for (let k = 0; k < n && this.particles.length < MAX_PARTICLES; k++) {
        this.particles.push({ s, phase: Math.random() });
      }
    });
    if (!this.playing) this.drawStill();
  }

  // The source drawn topmost under a click (page coordinates of a mouse event), or null.
  sourceAt(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) * (this.canvas.width / rect.width);
    const y = (event.clientY - rect.top) * (this.canvas.height / rect.height);
    for (let i = this.sources.length - 1; i >= 0; i--) { // drawn last = on top
      const s = this.sources[i];
      if (Math.abs(s.x - x) <= HEAD && Math.abs(s.y - y) <= HEAD) return s;
    }
    return null;
  }

  setPlaying(playing) {
    this.playing = playing;
    if (playing) requestAnimationFrame(this.frame); else this.drawStill();
  }

  drawSensor(ctx) {
    const [x, y] = this.sensor;
    ctx.strokeStyle = '#ffffff'; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI); ctx.stroke();
  }

  // Paused: every source drawn where it is, in its legend colour.
  drawStill() {
    const ctx = this.ctx;
    ctx.drawImage(this.base, 0, 0);
    for (const s of this.sources) {
      ctx.fillStyle = s.color;
      ctx.fillRect(Math.round(s.x) - HEAD / 2, Math.round(s.y) - HEAD / 2, HEAD, HEAD);
    }
    this.drawSensor(ctx);
  }

  frame(now) {
    if (!this.playing) return;
    const ctx = this.ctx;
    ctx.drawImage(this.base, 0, 0);
    const [tx, ty] = this.sensor;
    for (const p of this.particles) {
      const f = ((now / CYCLE_MS) + p.phase) % 1;
      const x = p.s.x + (tx - p.s.x) * f;
      const y = p.s.y + (ty - p.s.y) * f;
      const back = Math.max(0, f - 0.08);
      ctx.globalAlpha = 0.35;
      ctx.strokeStyle = p.s.color; ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(p.s.x + (tx - p.s.x) * back, p.s.y + (ty - p.s.y) * back);
      ctx.lineTo(x, y); ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.fillStyle = p.s.color;
      ctx.fillRect(Math.round(x) - HEAD / 2, Math.round(y) - HEAD / 2, HEAD, HEAD);
    }
    this.drawSensor(ctx);
    requestAnimationFrame(this.frame);
  }
}
