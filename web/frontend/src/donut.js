// The target-category donut ("IoT 64%, PC 5%, ..."): plain canvas, one arc per category, from /api/categories.
export const CATEGORY_COLORS = ['#ff3b30', '#0a84ff', '#ff9500', '#30d158', '#bf5af2', '#ffd60a', '#64d2ff',
  '#ff6482', '#8e8e93', '#ac8e68'];

// Draws `rows` ({category, share}) on `canvas` and lists them in `legend`; returns what was drawn.
export function drawDonut(canvas, legend, rows) {
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const { width, height } = canvas;
  const cx = width / 2; const cy = height / 2;
  const outer = Math.min(width, height) / 2 - 4; const inner = outer * 0.58;
  ctx.clearRect(0, 0, width, height);
  let angle = -Math.PI / 2;
  const drawn = rows.map((r, i) => {
    const color = CATEGORY_COLORS[i % CATEGORY_COLORS.length];
    const sweep = 2 * Math.PI * r.share;
    ctx.beginPath();
    ctx.arc(cx, cy, outer, angle, angle + sweep);
    ctx.arc(cx, cy, inner, angle + sweep, angle, true);
    ctx.closePath();
    ctx.fillStyle = color; ctx.fill();
    angle += sweep;
    return { category: r.category, share: r.share, color };
  });
  if (!rows.length) {
    ctx.fillStyle = '#6b7487'; ctx.font = '12px sans-serif'; ctx.textAlign = 'center';
    ctx.fillText('no categories (run iotscope analyze)', cx, cy);
  }
  legend.replaceChildren(...drawn.map((d) => {
    const li = document.createElement('li');
    li.dataset.category = d.category; li.dataset.color = d.color;
    const swatch = document.createElement('span');
    swatch.className = 'swatch'; swatch.style.background = d.color;
    li.append(swatch, `${d.category} ${(100 * d.share).toFixed(1)}%`);
    return li;
  }));
  return drawn;
}
