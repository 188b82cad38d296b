// The per-port chart: packets (left axis) and distinct sources (right axis) per bucket, uPlot.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const PALETTE = ['#ff3b30', '#0a84ff', '#ff9500', '#30d158', '#bf5af2', '#ffd60a'];

// "tcp/23, tcp/2323, udp/5060" -> [{proto, port}]
export function parsePorts(text) {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((item) => {
    const [proto, port] = item.includes('/') ? item.split('/') : ['tcp', item];
    return { proto: proto.trim().toLowerCase(), port: port.trim() };
  });
}

const SPAN = 'rgba(255, 59, 48, 0.18)';

// Alert spans ([start, detected] of each alert on a charted port), shaded behind the lines.
function alertSpans(spans) {
  return (u) => {
    const { ctx } = u;
    const { top, height } = u.bbox;
    ctx.save();
    ctx.fillStyle = SPAN;
    for (const [from, to] of spans) {
      const x0 = u.valToPos(from, 'x', true); const x1 = u.valToPos(to, 'x', true);
      ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
    }
    ctx.restore();
  };
}

// `alerts`: rows of /api/alerts; those on a charted port are shaded on the chart.
export function drawSeries(container, results, alerts = []) {
  const t = results.length ? results[0].body.t : [];
  const series = [{}];
  const data = [t];
  results.forEach(({ proto, port, body }, i) => {
    const color = PALETTE[i % PALETTE.length];
    series.push({ label: `${port}/${proto} packets`, stroke: color, width: 2, scale: 'packets' });
    series.push({ label: `${port}/${proto} sources`, stroke: color, width: 1, dash: [5, 4], scale: 'sources' });
    data.push(body.packets, body.sources);
  });
  const charted = new Set(results.map(({ proto, port }) => `${port}/${proto}`));
  const spans = alerts.filter((a) => charted.has(`${a.port}/${a.proto}`))
    .map((a) => [Date.parse(a.start) / 1e3, Date.parse(a.detected) / 1e3]);
  container.replaceChildren();
  const width = Math.max(600, container.clientWidth || 1100);
  const chart = new uPlot({
    width, height: 300, series,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'), // the store's times are UTC
    scales: { x: { time: true } },
    hooks: { drawClear: [alertSpans(spans)] },
    axes: [
      { stroke: '#aab' },
      { scale: 'packets', label: 'packets', stroke: '#aab' },
      { scale: 'sources', label: 'distinct sources', side: 1, stroke: '#aab', grid: { show: false } },
    ],
  }, data, container);
  return { chart, data, labels: series.slice(1).map((s) => s.label), spans };
}
