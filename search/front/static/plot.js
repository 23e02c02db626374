// SVG plot helpers shared by the export's pareto.html (inlined when the file is written,
// so it stays one offline file) and the service's page (served as /plot.js).
"use strict";

const SVG = "http://www.w3.org/2000/svg";

// A number as a person reads it: integers with separators, others to 4 significant digits.
function fmt(value) {
  if (value === null || value === undefined || value === "") return "";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  return Math.abs(value) >= 1e4 ? Math.round(value).toLocaleString("en")
    : value.toPrecision(4).replace(/\.?0+$/, "");
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// An axis range with a margin, so points on the edge are not cut; never empty.
function padded(low, high) {
  const span = high - low || Math.abs(high) || 1;
  return [low - span * 0.07, high + span * 0.07];
}

// Round tick values (1, 2 or 5 times a power of ten), at most 6 of them.
function ticks(low, high) {
  const step = Math.pow(10, Math.floor(Math.log10((high - low) / 4)));
  const nice = [1, 2, 5, 10].map((f) => f * step).find((s) => (high - low) / s <= 6);
  const out = [];
  for (let v = Math.ceil(low / nice) * nice; v <= high; v += nice) out.push(+v.toPrecision(6));
  return out;
}
