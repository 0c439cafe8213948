// Small SVG charts drawn with DOM calls (no markup strings, nothing inline for the CSP to
// refuse): stacked bars for spend, lines for latency. Hand-written because a stacked bar and a
// line over at most a few hundred points take less code than wiring a charting library.
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#94a3b8"];
const W = 900, H = 240, PAD = { left: 84, right: 12, top: 12, bottom: 40 };

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function frame(labels, max, format) {
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
  const plotH = H - PAD.top - PAD.bottom;
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - f);
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, stroke: "#e5e7eb" }),
      svg("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7280" }, format(max * f)));
  }
  const step = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((label, i) => {
    if (i % step) return;
    const x = PAD.left + (i + 0.5) * ((W - PAD.left - PAD.right) / labels.length);
    root.append(svg("text", { x, y: H - PAD.bottom + 16, "text-anchor": "middle", "font-size": 11, fill: "#6b7280" }, label));
  });
  return root;
}

export function legend(names) {
  const box = document.createElement("div");
  box.className = "legend";
  names.forEach((name, i) => {
    const swatch = document.createElement("i");
    swatch.style.background = COLORS[i % COLORS.length];
    const item = document.createElement("span");
    item.append(swatch, name);
    box.append(item);
  });
  return box;
}

export function stackedBars(labels, series, format, limit) {
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + s.values[i], 0));
  const max = Math.max(...totals, limit ?? 0, 1e-9);
  const root = frame(labels, max, format);
  const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
  const barW = plotW / labels.length;
  labels.forEach((label, i) => {
    let base = 0;
    series.forEach((s, k) => {
      const v = s.values[i];
      if (!v) return;
      const h = (v / max) * plotH;
      const rect = svg("rect", { x: PAD.left + i * barW + barW * 0.1, width: Math.max(1, barW * 0.8),
        y: PAD.top + plotH - base - h, height: h, fill: COLORS[k % COLORS.length], "data-series": s.name });
      rect.append(svg("title", {}, `${label} ${s.name}: ${format(v)}`));
      root.append(rect);
      base += h;
    });
  });
  if (limit) {
    const y = PAD.top + plotH * (1 - limit / max);
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, stroke: "#dc2626", "stroke-dasharray": "6 4" }));
  }
  return root;
}

export function lines(labels, series, format) {
  const all = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = Math.max(...all, 1e-9);
  const root = frame(labels, max, format);
  const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
  series.forEach((s, k) => {
    const points = s.values.map((v, i) => v === null ? null
      : `${PAD.left + (i + 0.5) * (plotW / labels.length)},${PAD.top + plotH * (1 - v / max)}`).filter(Boolean);
    const color = COLORS[k % COLORS.length];
    if (points.length > 1) root.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    for (const p of points) {
      const [cx, cy] = p.split(",");
      root.append(svg("circle", { cx, cy, r: 3, fill: color }));
    }
  });
  return root;
}
