// Small line charts for the cluster page, drawn as SVG from the states the
// page already received (no library, no extra requests). A History keeps the
// last `max` samples of each named series; a chart draws some of them with a
// shared y axis from 0 to their maximum.
const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The last `max` samples of each series, by name; a series missing from a sample gets a gap (null). */
export class History {
  constructor(max) { this.max = max; this.times = []; this.series = new Map(); }

  push(at, values) {
    this.times.push(at);
    for (const [name, v] of Object.entries(values)) {
      if (!this.series.has(name)) this.series.set(name, new Array(this.times.length - 1).fill(null));
    }
    for (const [name, points] of this.series) points.push(values[name] ?? null);
    if (this.times.length > this.max) {
      this.times.shift();
      for (const [name, points] of this.series) {
        points.shift();
        if (points.every((p) => p === null)) this.series.delete(name);
      }
    }
  }

  get(name) { return this.series.get(name) ?? []; }

  names(prefix) { return [...this.series.keys()].filter((n) => n.startsWith(prefix)); }
}

function fmt(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v >= 10 || v === 0 ? String(Math.round(v)) : v.toFixed(1);
}

/**
 * A chart: `lines` are {name, color, points} (points may hold nulls), drawn
 * over the same x positions, newest on the right. Shows the title, the
 * latest value of each line and the y maximum.
 */
export function lineChart({ title, unit = '', lines, width = 300, height = 90, id }) {
  const pad = { l: 34, r: 6, t: 16, b: 4 };
  const w = width - pad.l - pad.r;
  const h = height - pad.t - pad.b;
  const n = Math.max(2, ...lines.map((l) => l.points.length));
  const all = lines.flatMap((l) => l.points.filter((p) => p !== null));
  const max = Math.max(1e-9, ...all);
  const root = svg('svg', { class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, 'data-chart': id ?? title });
  root.append(svg('text', { x: pad.l, y: 11, class: 'chart-title' }, `${title}${unit ? ` (${unit})` : ''}`));
  root.append(svg('text', { x: pad.l - 4, y: pad.t + 8, class: 'chart-axis', 'text-anchor': 'end' }, fmt(max)));
  root.append(svg('text', { x: pad.l - 4, y: pad.t + h, class: 'chart-axis', 'text-anchor': 'end' }, '0'));
  root.append(svg('rect', { x: pad.l, y: pad.t, width: w, height: h, class: 'chart-frame' }));
  for (const line of lines) {
    const off = n - line.points.length;
    let d = '';
    let pen = false;
    line.points.forEach((p, i) => {
      if (p === null) { pen = false; return; }
      const x = pad.l + ((off + i) / (n - 1)) * w;
      const y = pad.t + h - (p / max) * h;
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`;
      pen = true;
    });
    if (d) root.append(svg('path', { d, stroke: line.color, class: 'chart-line', 'data-series': line.name }));
  }
  const latest = lines.map((l) => [l, [...l.points].reverse().find((p) => p !== null)]).filter(([, v]) => v !== undefined);
  root.append(svg('text', { x: width - pad.r, y: 11, class: 'chart-latest', 'text-anchor': 'end' },
    latest.length === 1 ? fmt(latest[0][1]) : latest.length > 1 ? `max ${fmt(Math.max(...latest.map(([, v]) => v)))}` : '…'));
  return root;
}
