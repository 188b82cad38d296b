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

export function drawSeries(container, results) {
  const t = results.length ? results[0].body.t : [];
  const series = [{}];
  const data = [t];
  results.forEach(({ proto, port, body }, i) => {
    const color = PALETTE[i % PALETTE.length];
    series.push({ label: `${port}/${proto} packets`, stroke: color, width: 2, scale: 'packets' });
    series.push({ label: `${port}/${proto} sources`, stroke: color, width: 1, dash: [5, 4], scale: 'sources' });
    data.push(body.packets, body.sources);
  });
  container.replaceChildren();
  const width = Math.max(600, container.clientWidth || 1100);
  const chart = new uPlot({
    width, height: 300, series,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'), // the store's times are UTC
    scales: { x: { time: true } },
    axes: [
      { stroke: '#aab' },
      { scale: 'packets', label: 'packets', stroke: '#aab' },
      { scale: 'sources', label: 'distinct sources', side: 1, stroke: '#aab', grid: { show: false } },
    ],
  }, data, container);
  return { chart, data, labels: series.slice(1).map((s) => s.label) };
}
