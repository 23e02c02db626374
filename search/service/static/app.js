// The service's page: plain JS and SVG, no build step, nothing fetched but the API.
// fmt, svgEl, padded and ticks come from /plot.js (search/front/static/plot.js).
// Text from the storage goes into the page as text nodes only (never as HTML).
"use strict";

const LIST_POLL_MS = 2000;
const STUDY_POLL_MS = 3000;
const METRICS = ["robust_accuracy", "clean_accuracy", "latency_ms", "size_bytes"];
const TRIAL_COLUMNS = ["trial", "state", ...METRICS, "sparsity_mean", "bits", "strategy",
  "epsilon", "epochs", "feasible", "fail_reason"];

const $ = (id) => document.getElementById(id);
let openStudy = null;       // name of the study shown, or null for the list
let selectedMember = null;  // trial number of the clicked front member
let lastStudyData = "";     // what the study view shows, to redraw only on change

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(r).padStart(2, "0")}`;
}

function bestText(best) {
  if (!best) return "";
  return Object.entries(best).map(([name, value]) => `${name}=${fmt(value)}`).join(" ");
}

// ---- the list of studies -------------------------------------------------------------

async function refreshList() {
  let studies;
  try {
    studies = await api("/api/studies");
  } catch (error) {
    $("service-info").textContent = `cannot reach the service: ${error.message}`;
    return;
  }
  const body = $("studies").querySelector("tbody");
  body.replaceChildren(...studies.map(studyRow));
  $("no-studies").hidden = studies.length > 0;
}

function studyRow(study) {
  const row = el("tr", null, { "data-study": study.name, "data-state": study.state });
  row.append(el("td", study.name), el("td", study.state, { class: `state-${study.state}` }));
  const progress = el("td");
  const bar = el("span", null, { class: "bar" });
  const done = study.trials.finished, budget = study.budget || done || 1;
  bar.append(el("span", null, { style: `width:${Math.min(100, (100 * done) / budget)}%` }));
  progress.append(bar, document.createTextNode(`${done}/${study.budget ?? "?"}`));
  row.append(progress, el("td", study.trials.running), el("td", study.trials.failed),
    el("td", bestText(study.best)), el("td", study.front_size),
    el("td", clock(study.elapsed_s)), el("td", clock(study.left_s)));
  row.addEventListener("click", () => { location.hash = `study=${encodeURIComponent(study.name)}`; });
  return row;
}

async function submitConfig() {
  const text = $("config-text").value;
  const json = text.trim().startsWith("{");
  const message = $("submit-message");
  message.className = "";
  message.textContent = "submitting...";
  try {
    const study = await api("/api/studies", {
      method: "POST", body: text,
      headers: { "Content-Type": json ? "application/json" : "application/yaml" },
    });
    message.textContent = `started study ${study.name}`;
    refreshList();
  } catch (error) {
    message.className = "error";
    message.textContent = error.message;
  }
}

// ---- one study -----------------------------------------------------------------------

const TRIAL_PAGE = 5000;  // the service's largest page of /trials

// every trial of a study, page after page (the service pages /trials)
async function allTrials(name) {
  const trials = [];
  for (let offset = 0; ; offset += TRIAL_PAGE) {
    const page = await api(`/api/studies/${name}/trials?offset=${offset}&limit=${TRIAL_PAGE}`);
    trials.push(...page.trials);
    if (page.trials.length === 0 || trials.length >= page.total) return { trials };
  }
}

async function refreshStudy() {
  if (!openStudy) return;
  const name = encodeURIComponent(openStudy);
  let summary, trials, front, volume;
  try {
    [summary, trials, front, volume] = await Promise.all([api(`/api/studies/${name}`),
      allTrials(name).catch(() => ({ trials: [] })),
      api(`/api/studies/${name}/front`).catch(() => ({ members: [] })),
      api(`/api/studies/${name}/hypervolume`).catch(() => ({ history: [] }))]);
  } catch (error) {
    $("study-summary").textContent = error.message;
    return;
  }
  const data = JSON.stringify([summary, trials.trials, front.members, volume.history]);
  if (data === lastStudyData) return;
  lastStudyData = data;
  showSummary(summary);
  showSanity(summary.sanity_base || []);
  const complete = trials.trials.filter((t) => t.state === "COMPLETE");
  drawPlot($("plot-latency"), complete, front.members, "latency_ms", "latency (ms)");
  drawPlot($("plot-size"), complete, front.members, "size_bytes", "size (bytes)");
  drawHistory($("plot-hv"), volume.history);
  showTrials(trials.trials);
  const member = front.members.find((m) => m.trial === selectedMember);
  if (member) showMember(member); else $("member-details").hidden = true;
}

function showSummary(s) {
  $("study-title").textContent = s.name;
  const items = [["state", s.state], ["trials", `${s.trials.finished}/${s.budget ?? "?"} finished`],
    ["running", s.trials.running], ["failed", s.trials.failed], ["best", bestText(s.best)],
    ["front", `${s.front_size} members`], ["elapsed", clock(s.elapsed_s)],
    ["left", s.left_s === null ? "" : `~${clock(s.left_s)}`]];
  const box = $("study-summary");
  box.replaceChildren(...items.map(([key, value]) => {
    const item = el("span");
    item.append(el("b", `${key}: `), document.createTextNode(value ?? ""));
    return item;
  }));
  if (s.log_tail && s.log_tail.length) box.append(el("pre", s.log_tail.join("\n")));
  box.dataset.state = s.state;
  $("front-download").href = `/api/studies/${encodeURIComponent(s.name)}/export.zip`;
}

function showSanity(checks) {
  const body = $("sanity-table").querySelector("tbody");
  body.replaceChildren(...checks.map((c) => {
    const row = el("tr");
    row.append(el("td", c.name), el("td", c.passed ? "ok" : "FAILED",
      { class: c.passed ? "state-finished" : "state-failed" }), el("td", c.detail));
    return row;
  }));
  if (!checks.length) {
    const row = el("tr");
    row.append(el("td", "not computed yet", { colspan: 3 }));
    body.append(row);
  }
}

function showTrials(trials) {
  const table = $("trials-table");
  const columns = TRIAL_COLUMNS.filter((c) => trials.some((t) => t[c] !== undefined));
  const head = el("tr");
  head.append(...columns.map((c) => el("th", c)));
  table.querySelector("thead").replaceChildren(head);
  table.querySelector("tbody").replaceChildren(...trials.map((t) => {
    const row = el("tr", null, { "data-trial": t.trial });
    row.append(...columns.map((c) => el("td", fmt(t[c]))));
    return row;
  }));
}

function paramsText(row) {
  return Object.entries(row).filter(([key]) => key.startsWith("params."))
    .map(([key, value]) => `${key.slice(7)} = ${fmt(value)}`).join("\n");
}

// A scatter plot: every complete trial in grey, front members filled and clickable.
function drawPlot(svg, trials, members, xKey, xLabel) {
  const W = 420, H = 300, left = 52, right = 12, top = 12, bottom = 40;
  svg.replaceChildren();
  const points = trials.filter((t) => t[xKey] !== null && t.robust_accuracy !== null);
  if (!points.length) {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no complete trial yet"));
    return;
  }
  const xs = points.map((t) => t[xKey]), ys = points.map((t) => t.robust_accuracy);
  const [x0, x1] = padded(Math.min(...xs), Math.max(...xs));
  const [y0, y1] = padded(Math.min(...ys), Math.max(...ys));
  const sx = (v) => left + ((v - x0) / (x1 - x0)) * (W - left - right);
  const sy = (v) => H - bottom - ((v - y0) / (y1 - y0)) * (H - top - bottom);
  svg.append(svgEl("line", { class: "axis", x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }),
    svgEl("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }));
  for (const v of ticks(x0, x1)) {
    svg.append(svgEl("text", { x: sx(v), y: H - bottom + 14, "text-anchor": "middle" }, fmt(v)));
  }
  for (const v of ticks(y0, y1)) {
    svg.append(svgEl("text", { x: left - 4, y: sy(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  svg.append(svgEl("text", { x: (left + W - right) / 2, y: H - 6, "text-anchor": "middle" }, xLabel),
    svgEl("text", { x: 12, y: (top + H - bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${(top + H - bottom) / 2})` }, "robust accuracy"));
  const front = new Set(members.map((m) => m.trial));
  for (const t of points.filter((p) => !front.has(p.trial))) {
    svg.append(point(t, sx(t[xKey]), sy(t.robust_accuracy), "trial", 3.5));
  }
  for (const m of members.filter((p) => p[xKey] !== null && p.robust_accuracy !== null)) {
    const dot = point(m, sx(m[xKey]), sy(m.robust_accuracy), "member", 6);
    if (m.trial === selectedMember) dot.classList.add("selected");
    dot.addEventListener("click", () => { selectedMember = m.trial; showMember(m); markSelected(); });
    svg.append(dot);
  }
}

// The hypervolume after each completed trial: a step line, one dot per trial.
function drawHistory(svg, history) {
  const W = 420, H = 300, left = 52, right = 12, top = 12, bottom = 40;
  svg.replaceChildren();
  if (!history.length) {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no complete trial yet"));
    return;
  }
  const y1 = padded(0, Math.max(...history.map((h) => h.hypervolume)))[1];
  const sx = (i) => left + ((i + 0.5) / history.length) * (W - left - right);
  const sy = (v) => H - bottom - (v / y1) * (H - top - bottom);
  svg.append(svgEl("line", { class: "axis", x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }),
    svgEl("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }));
  for (const v of ticks(0, y1)) {
    svg.append(svgEl("text", { x: left - 4, y: sy(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  svg.append(svgEl("text", { x: (left + W - right) / 2, y: H - 6, "text-anchor": "middle" },
    `completed trials (${history.length})`),
    svgEl("text", { x: 12, y: (top + H - bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${(top + H - bottom) / 2})` }, "hypervolume"));
  const path = history.map((h, i) => (i ? `H${sx(i)} V` : `M${sx(i)} `) + sy(h.hypervolume));
  svg.append(svgEl("path", { class: "history", d: path.join(" ") }));
  history.forEach((h, i) => {
    const dot = svgEl("circle", { cx: sx(i), cy: sy(h.hypervolume), r: 3, class: "history",
      "data-trial": h.trial, "data-hypervolume": h.hypervolume });
    const text = `after trial ${h.trial}${h.feasible ? "" : " (infeasible)"}\n` +
      `hypervolume = ${fmt(h.hypervolume)}\ncompleted ${h.completed || ""}`;
    dot.addEventListener("mouseenter", (event) => showTip(text, event));
    dot.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
    svg.append(dot);
  });
}

function point(row, x, y, kind, r) {
  const dot = svgEl("circle", { cx: x, cy: y, r, class: kind, "data-trial": row.trial });
  const text = `trial ${row.trial}${kind === "member" ? " (front)" : ""}\n` +
    METRICS.map((m) => `${m} = ${fmt(row[m])}`).join("\n") + `\n${paramsText(row)}`;
  dot.addEventListener("mouseenter", (event) => showTip(text, event));
  dot.addEventListener("mousemove", (event) => showTip(text, event));
  dot.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  return dot;
}

function showTip(text, event) {
  const tip = $("tooltip");
  tip.textContent = text;
  tip.style.left = `${event.clientX + 14}px`;
  tip.style.top = `${event.clientY + 10}px`;
  tip.hidden = false;
}

function markSelected() {
  document.querySelectorAll(".plot circle.member").forEach((dot) => {
    dot.classList.toggle("selected", Number(dot.dataset.trial) === selectedMember);
  });
}

function showMember(m) {
  $("member-details").hidden = false;
  $("member-title").textContent = `Trial ${m.trial}`;
  const rows = Object.entries(m).filter(([key]) => key !== "trial");
  $("member-table").querySelector("tbody").replaceChildren(...rows.map(([key, value]) => {
    const row = el("tr");
    row.append(el("th", key), el("td", fmt(value)));
    return row;
  }));
  $("member-download").href =
    `/api/studies/${encodeURIComponent(openStudy)}/trials/${m.trial}/export.zip`;
}

async function studyAction(action) {
  const message = $("action-message");
  message.className = "";
  message.textContent = `${action}...`;
  try {
    await api(`/api/studies/${encodeURIComponent(openStudy)}/${action}`, { method: "POST" });
    message.textContent = action === "stop" ? "stopped" : "resumed";
  } catch (error) {
    message.className = "error";
    message.textContent = error.message;
  }
  lastStudyData = "";
  refreshStudy();
}

// ---- navigation ----------------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#study=(.+)$/);
  openStudy = match ? decodeURIComponent(match[1]) : null;
  selectedMember = null;
  lastStudyData = "";
  $("list-view").hidden = openStudy !== null;
  $("study-view").hidden = openStudy === null;
  $("member-details").hidden = true;
  if (openStudy) refreshStudy(); else refreshList();
}

async function start() {
  try {
    const info = await api("/api/service");
    $("service-info").textContent = `storage ${info.storage} · backend ${info.backend}` +
      (info.allow_plugins ? " · plug-ins allowed" : "");
  } catch (error) {
    $("service-info").textContent = error.message;
  }
  $("submit-button").addEventListener("click", submitConfig);
  $("stop-button").addEventListener("click", () => studyAction("stop"));
  $("resume-button").addEventListener("click", () => studyAction("resume"));
  $("back-link").addEventListener("click", (event) => { event.preventDefault(); location.hash = ""; });
  window.addEventListener("hashchange", route);
  route();
  setInterval(() => { if (!openStudy) refreshList(); }, LIST_POLL_MS);
  setInterval(refreshStudy, STUDY_POLL_MS);
}

start();
