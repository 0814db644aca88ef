// Inline SVG charts: a line chart (series over time or over a number) and a horizontal bar chart. Each
// is a <figure> with a title, a legend and an accessible name; the numbers are also in the page's tables.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
// Okabe-Ito: told apart with the common colour-vision deficiencies.
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined && value !== null) el.setAttribute(name, value);
  for (const child of children.flat()) if (child) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// About `count` round tick values covering [min, max].
function ticks(min, max, count = 5) {
  if (min === max) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= raw);
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function timeTicks(min, max, count = 5) {
  if (min === max) return [min];
  return Array.from({ length: count + 1 }, (_, i) => min + ((max - min) * i) / count);
}

// Ticks as fine as the span: days, else hours and minutes, else (within the hour) seconds too.
function timeFormat(spanMs) {
  const clock = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  const parts = spanMs >= 2 * 86400000 ? { month: "short", day: "numeric" } : spanMs >= 3600000 ? clock : { ...clock, second: "2-digit" };
  return (v) => new Date(v).toLocaleString(undefined, parts);
}

function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

function figure(title, svg, legendItems, caption) {
  return h("figure", { class: "card" },
    h("figcaption", {}, h("strong", {}, title), caption ? h("span", { class: "muted" }, " — ", caption) : null),
    legendItems.length ? h("ul", { class: "legend" }, legendItems.map(([name, color, dashed]) =>
      h("li", {}, h("span", { class: "swatch", style: `background:${color};${dashed ? "opacity:.55" : ""}` }), name))) : null,
    svg);
}

/**
 * series: [{name, points: [[x, y], ...], dashed?, color?}]; x values are numbers or Dates (xTime).
 * Options: xTime, xFormat, yFormat, yMin, yMax, xLabel, yLabel, caption.
 */
export function lineChart(title, series, options = {}) {
  const width = options.width || 620, height = options.height || 260;
  const m = { top: 12, right: 32, bottom: 42, left: 56 };
  const all = series.flatMap((one) => one.points.map(([x, y]) => [Number(x), Number(y)]));
  const xs = all.map(([x]) => x), ys = all.map(([, y]) => y);
  const x0 = options.xMin ?? Math.min(...xs), x1 = options.xMax ?? Math.max(...xs);
  const y0 = options.yMin ?? Math.min(0, ...ys), y1 = options.yMax ?? Math.max(...ys, y0 + 1e-9);
  const x = scale(x0, x1, m.left, width - m.right);
  const y = scale(y0, y1, height - m.bottom, m.top);
  const xFormat = options.xFormat || (options.xTime ? timeFormat(x1 - x0) : String);
  const yFormat = options.yFormat || String;
  const summary = series.map((one) => {
    const last = one.points[one.points.length - 1];
    return last ? `${one.name}: ${yFormat(last[1])} at ${xFormat(Number(last[0]))}` : `${one.name}: no data`;
  }).join("; ");

  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `${title}. ${summary}` },
    s("title", {}, title),
    (options.xTime ? timeTicks(x0, x1, 4) : ticks(x0, x1)).map((t) => s("g", { class: "axis" },
      s("line", { x1: x(t), x2: x(t), y1: height - m.bottom, y2: height - m.bottom + 4 }),
      s("text", { x: x(t), y: height - m.bottom + 16, "text-anchor": "middle" }, xFormat(t)))),
    ticks(y0, y1).map((t) => s("g", {},
      s("line", { class: "gridline", x1: m.left, x2: width - m.right, y1: y(t), y2: y(t) }),
      s("text", { x: m.left - 6, y: y(t) + 4, "text-anchor": "end" }, yFormat(t)))),
    s("line", { class: "axis", x1: m.left, x2: width - m.right, y1: height - m.bottom, y2: height - m.bottom, stroke: "#8a94a3" }),
    s("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: height - m.bottom, stroke: "#8a94a3" }),
    options.xLabel ? s("text", { x: (m.left + width - m.right) / 2, y: height - 6, "text-anchor": "middle" }, options.xLabel) : null,
    options.yLabel ? s("text", { x: 12, y: (m.top + height - m.bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${(m.top + height - m.bottom) / 2})` }, options.yLabel) : null,
    series.map((one, i) => {
      const color = one.color || PALETTE[i % PALETTE.length];
      const path = one.points.map(([px, py], j) => `${j ? "L" : "M"}${x(Number(px)).toFixed(1)},${y(Number(py)).toFixed(1)}`).join(" ");
      return s("g", {},
        s("path", { d: path, fill: "none", stroke: color, "stroke-width": 2, "stroke-dasharray": one.dashed ? "5 4" : null }),
        one.dashed ? null : one.points.map(([px, py]) => s("circle", { cx: x(Number(px)), cy: y(Number(py)), r: 3, fill: color },
          s("title", {}, `${one.name}: ${yFormat(Number(py))} at ${xFormat(Number(px))}`))));
    }));
  return figure(title, svg, series.map((one, i) => [one.name, one.color || PALETTE[i % PALETTE.length], one.dashed]), options.caption);
}

/** bars: [{label, value}]; options: format, caption, max. Horizontal, so that arm names fit. */
export function barChart(title, bars, options = {}) {
  const width = options.width || 620, row = 26;
  const m = { top: 6, right: 70, bottom: 6, left: 150 };
  const height = m.top + m.bottom + row * Math.max(bars.length, 1);
  const values = bars.map((b) => Number(b.value) || 0);
  const max = options.max ?? Math.max(...values, 0);
  const min = Math.min(0, ...values);
  const x = scale(min, max || 1, m.left, width - m.right);
  const format = options.format || String;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `${title}. ` + bars.map((b) => `${b.label}: ${b.value === null || b.value === undefined ? "no data" : format(b.value)}`).join("; ") },
    s("title", {}, title),
    bars.map((b, i) => {
      const top = m.top + i * row;
      const value = Number(b.value) || 0;
      const left = x(Math.min(0, value)), right = x(Math.max(0, value));
      return s("g", {},
        s("text", { x: m.left - 8, y: top + row / 2 + 4, "text-anchor": "end" }, b.label),
        s("rect", { x: left, y: top + 4, width: Math.max(right - left, 1), height: row - 8, fill: b.color || PALETTE[i % PALETTE.length], rx: 2 }),
        s("text", { x: right + 6, y: top + row / 2 + 4 }, b.value === null || b.value === undefined ? "—" : format(b.value)));
    }),
    s("line", { x1: x(0), x2: x(0), y1: m.top, y2: height - m.bottom, stroke: "#8a94a3" }));
  return figure(title, svg, [], options.caption);
}
