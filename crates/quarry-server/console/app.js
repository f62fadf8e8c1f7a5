// Quarry console: collections, search (text or vector, mode, filter, explain per hit), documents,
// and report charts, through the server's own API with the key the user gives. No framework, no
// build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: localStorage.getItem("quarry-api-key") || "", collections: [] };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function status(msg, error) {
  const s = $("status");
  s.textContent = msg || "";
  s.className = error ? "error" : "";
}

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (state.key) headers["api-key"] = state.key;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let v = null;
  try { v = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const why = (v && v.status && v.status.error) || r.statusText;
    throw new Error(`${method} ${path}: ${r.status} ${why}`);
  }
  return v ? v.result : null;
}

// ---- tabs ----
function show(tab) {
  status("");
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== tab;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === tab);
  if (tab === "reports") loadReports();
}

// ---- collections ----
async function loadCollections() {
  status("loading collections…");
  try {
    const list = (await api("GET", "/collections")).collections.map((c) => c.name).sort();
    const details = await Promise.all(list.map((n) => api("GET", `/quarry/collections/${encodeURIComponent(n)}`)));
    state.collections = details;
    const body = $("collection-table").querySelector("tbody");
    body.replaceChildren();
    for (const d of details) {
      const vec = (d.schema.vectors || []).map((f) => `${f.name || "(default)"}: ${f.dim}-d ${f.metric} ${f.index}`).join(", ");
      const kind = d.schema.text ? `text (${d.schema.text.model || "BM25 only"})` : "vectors";
      const row = el("tr", { class: "clickable", "data-name": d.name, onclick: () => showSchema(d) },
        el("td", {}, d.name), el("td", { class: "num" }, d.points), el("td", {}, kind),
        el("td", {}, vec || "–"), el("td", {}, `${d.segments} segments`));
      body.append(row);
    }
    const sel = $("search-collection");
    const keep = sel.value;
    sel.replaceChildren(...details.map((d) => el("option", { value: d.name }, d.name)));
    if (keep && list.includes(keep)) sel.value = keep;
    status(`${details.length} collections`);
  } catch (e) {
    status(e.message, true);
  }
}

function showSchema(d) {
  $("schema-title").hidden = false;
  $("schema-title").textContent = `Schema of ${d.name}`;
  const s = $("schema");
  s.hidden = false;
  s.textContent = JSON.stringify({ schema: d.schema, points: d.points, segments: d.segments, text: d.text }, null, 2);
}

// ---- search ----
function snippet(payload) {
  if (!payload) return "";
  const t = payload.text || payload.title || JSON.stringify(payload);
  return t.length > 300 ? `${t.slice(0, 299)}…` : t;
}

function explainNode(components) {
  const list = el("ul", { class: "explain" });
  for (const c of components) {
    const terms = (c.terms || []).map((t) => `${t.term}=${Number(t.score).toFixed(3)}`).join(" ");
    const passage = c.passage === undefined ? "" : `, passage ${c.passage}`;
    list.append(el("li", {}, `${c.source} (query ${c.query}): rank ${c.rank}, score ${Number(c.score).toFixed(4)}${passage}${terms ? ", terms " + terms : ""}`));
  }
  return el("details", { class: "explain-details" }, el("summary", {}, "explain"), list);
}

async function runSearch(ev) {
  ev.preventDefault();
  const name = $("search-collection").value;
  const raw = $("search-query").value.trim();
  const k = Math.max(1, parseInt($("search-k").value, 10) || 10);
  const fraw = $("search-filter").value.trim();
  if (!name || !raw) { status("choose a collection and type a query", true); return; }
  let filter;
  try { filter = fraw ? JSON.parse(fraw) : undefined; } catch (e) { status(`filter: ${e.message}`, true); return; }
  const explain = $("search-explain").checked;
  const started = performance.now();
  try {
    let hits;
    // A JSON array of numbers is a vector; anything else (even "[draft] notes") is text.
    let vector = null;
    if (raw.startsWith("[")) {
      try {
        const v = JSON.parse(raw);
        if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number" || Array.isArray(x))) vector = v;
      } catch (_) { /* text */ }
    }
    if (vector) {
      const r = await api("POST", `/collections/${encodeURIComponent(name)}/points/query`, { query: vector, limit: k, with_payload: true, filter });
      hits = r.points;
    } else {
      const body = { text: raw, limit: k, explain, filter };
      const mode = $("search-mode").value;
      if (mode) body.mode = mode;
      hits = (await api("POST", `/quarry/collections/${encodeURIComponent(name)}/text-search`, body)).hits;
    }
    const ms = performance.now() - started;
    $("search-info").textContent = `${hits.length} hits in ${ms.toFixed(1)} ms`;
    const tbody = $("results").querySelector("tbody");
    tbody.replaceChildren();
    hits.forEach((h, i) => {
      const idLink = el("a", { href: "#", class: "doc-link", onclick: (e) => { e.preventDefault(); showDocument(name, h.id); } }, String(h.id));
      const doc = el("td", { class: "doc" }, el("div", {}, snippet(h.payload)));
      if (h.explain) doc.append(explainNode(h.explain));
      tbody.append(el("tr", { class: "hit" }, el("td", { class: "num" }, i + 1), el("td", {}, idLink),
        el("td", { class: "num" }, Number(h.score).toFixed(4)), doc));
    });
    status("");
  } catch (e) {
    status(e.message, true);
  }
}

async function showDocument(name, id) {
  try {
    const p = await api("GET", `/collections/${encodeURIComponent(name)}/points/${encodeURIComponent(id)}`);
    $("document").hidden = false;
    $("document-id").textContent = String(id);
    $("document-body").textContent = JSON.stringify(p, null, 2);
  } catch (e) {
    status(e.message, true);
  }
}

// ---- reports ----
async function loadReports() {
  try {
    const list = (await api("GET", "/quarry/reports")).reports;
    const sel = $("report-select");
    const keep = sel.value;
    sel.replaceChildren(...list.map((r) => el("option", { value: r.name }, `${r.name} (${r.bytes} bytes)`)));
    if (keep) sel.value = keep;
    if (list.length === 0) { $("report-info").textContent = "no reports (start the server with --reports DIR)"; return; }
    await showReport(sel.value);
  } catch (e) {
    status(e.message, true);
  }
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function label(r) {
  const parts = [r.system, r.index, r.setup, r.run, r.phase];
  if (r.threads !== undefined) parts.push(`${r.threads} thr`);
  if (r.calls !== undefined) parts.push(r.calls);
  return parts.filter((x) => x !== undefined && x !== null && x !== "").join(" ") || "rows";
}

function scatter(rows) {
  const box = $("report-scatter");
  box.replaceChildren();
  const pts = rows.map((r) => ({ x: Number(r.recall ?? r.recall_at_10), y: Number(r.qps), s: label(r) }))
    .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && p.y > 0);
  if (pts.length === 0) { box.append(el("p", {}, "no rows with recall and qps")); return; }
  const W = 720, H = 380, L = 60, B = 40, T = 10, R = 200;
  const xs = pts.map((p) => p.x), ys = pts.map((p) => Math.log10(p.y));
  // reduce, not Math.min(...xs): spreading 100,000 rows exceeds some engines' argument limit.
  const lo = (a) => a.reduce((m, v) => (v < m ? v : m), Infinity);
  const hi = (a) => a.reduce((m, v) => (v > m ? v : m), -Infinity);
  let [x0, x1] = [lo(xs), hi(xs)];
  let [y0, y1] = [Math.floor(lo(ys)), Math.ceil(hi(ys))];
  if (x1 - x0 < 1e-9) { x0 -= 0.01; x1 += 0.01; }
  if (y1 === y0) y1 = y0 + 1;
  const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const Y = (y) => T + (1 - (Math.log10(y) - y0) / (y1 - y0)) * (H - T - B);
  const s = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "scatter", role: "img" });
  s.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#444" }));
  s.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#444" }));
  for (let e = y0; e <= y1; e++) {
    s.append(svg("text", { x: L - 6, y: Y(10 ** e) + 4, "text-anchor": "end", class: "tick" }, `1e${e}`));
  }
  for (let i = 0; i <= 4; i++) {
    const v = x0 + (x1 - x0) * i / 4;
    s.append(svg("text", { x: X(v), y: H - B + 16, "text-anchor": "middle", class: "tick" }, v.toFixed(3)));
  }
  s.append(svg("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, "recall@10"));
  s.append(svg("text", { x: 14, y: (T + H - B) / 2, transform: `rotate(-90 14 ${(T + H - B) / 2})`, "text-anchor": "middle" }, "queries / s (log)"));
  const series = [...new Set(pts.map((p) => p.s))];
  series.forEach((name, i) => {
    const c = COLORS[i % COLORS.length];
    const mine = pts.filter((p) => p.s === name).sort((a, b) => a.x - b.x);
    if (mine.length > 1) {
      s.append(svg("polyline", { points: mine.map((p) => `${X(p.x)},${Y(p.y)}`).join(" "), fill: "none", stroke: c, "stroke-width": 1.5 }));
    }
    for (const p of mine) {
      const dot = svg("circle", { cx: X(p.x), cy: Y(p.y), r: 4, fill: c, class: "point" });
      dot.append(svg("title", {}, `${name}: recall ${p.x.toFixed(4)}, ${p.y.toFixed(0)} q/s`));
      s.append(dot);
    }
    s.append(svg("rect", { x: W - R + 10, y: T + 16 * i, width: 10, height: 10, fill: c }));
    s.append(svg("text", { x: W - R + 24, y: T + 9 + 16 * i, class: "legend" }, name.slice(0, 26)));
  });
  box.append(s);
}

function bars(rows) {
  const box = $("report-bars");
  box.replaceChildren();
  const stage = /(_ms|_s|_seconds|_secs)$|^(ndcg|map|recip_rank|recall_|P_|mrr)/;
  const sums = new Map();
  for (const r of rows) {
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === "number" && Number.isFinite(v) && stage.test(k)) {
        const e = sums.get(k) || [0, 0];
        sums.set(k, [e[0] + v, e[1] + 1]);
      }
    }
  }
  const items = [...sums.entries()].map(([k, [s, n]]) => ({ k, v: s / n }));
  if (items.length === 0) { box.append(el("p", {}, "no per-stage timings or measures in these rows")); return; }
  const W = 640, rowH = 22, L = 200;
  const H = items.length * rowH + 10;
  const max = items.reduce((m, i) => Math.max(m, Math.abs(i.v)), 0) || 1;
  const s = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "bars", role: "img" });
  items.forEach((it, i) => {
    const w = Math.abs(it.v) / max * (W - L - 90);
    s.append(svg("text", { x: L - 6, y: 5 + i * rowH + 14, "text-anchor": "end", class: "tick" }, it.k));
    const bar = svg("rect", { x: L, y: 5 + i * rowH + 3, width: Math.max(w, 1), height: rowH - 8, fill: COLORS[i % COLORS.length], class: "bar" });
    bar.append(svg("title", {}, `${it.k}: ${it.v}`));
    s.append(bar);
    s.append(svg("text", { x: L + w + 6, y: 5 + i * rowH + 14, class: "tick" }, Number(it.v.toPrecision(4)).toString()));
  });
  box.append(s);
}

async function showReport(name) {
  if (!name) return;
  try {
    const r = await api("GET", `/quarry/reports/${encodeURIComponent(name)}`);
    $("report-info").textContent = `${r.rows.length} rows${r.skipped ? `, ${r.skipped} lines skipped` : ""}`;
    scatter(r.rows);
    bars(r.rows);
  } catch (e) {
    status(e.message, true);
  }
}

// ---- start ----
document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = state.key;
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    localStorage.setItem("quarry-api-key", state.key);
    loadCollections();
  });
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => show(b.dataset.tab));
  $("search-form").addEventListener("submit", runSearch);
  $("report-select").addEventListener("change", (e) => showReport(e.target.value));
  loadCollections();
});
