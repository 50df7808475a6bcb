// The evaluation report's player: summary tables, bird's-eye player, timeline, decisions.
// Inlined into report.html by cordillera.eval.report; reads the JSON payload of #report-data.
"use strict";
const D = JSON.parse(document.getElementById("report-data").textContent);
const TYPE_COLOURS = ["#3b82f6", "#f97316", "#a855f7", "#9ca3af"];
const TYPE_NAMES = ["vehicle", "pedestrian", "cyclist", "other"];
const EGO = "#dc2626";
const SIGNAL = ["#6b7280", "#ef4444", "#eab308", "#22c55e", "#f87171", "#fde047"];
const PALETTE = {
  longitudinal: { gentle_acceleration: "#86efac", strong_acceleration: "#16a34a", maintain_speed: "#cbd5e1",
    gentle_deceleration: "#fdba74", strong_deceleration: "#ea580c", stop: "#b91c1c", reverse: "#7c3aed" },
  lateral: { go_straight: "#dde3ea", steer_left: "#93c5fd", steer_right: "#fcd34d", sharp_steer_left: "#2563eb",
    sharp_steer_right: "#d97706", reverse_left: "#a78bfa", reverse_right: "#c4b5fd" },
  lane: { lane_keep: "#d5dbe3", left_lane_change: "#0d9488", right_lane_change: "#db2777",
    slight_shift_left: "#99f6e4", slight_shift_right: "#fbcfe8", turn_left: "#4f46e5", turn_right: "#c2410c" },
  decision_lon: { stop: "#b91c1c", yield: "#f97316", pass: "#16a34a", gap_search: "#0891b2",
    keep_distance: "#2563eb", adapt_speed: "#eab308", resume_speed: "#65a30d" },
  decision_lat: { lane_change: "#0d9488", nudge: "#a855f7", turn: "#4f46e5", merge: "#db2777", keep_lane: "#94a3b8" },
};
const EVENTS = [  // bit, label, colour (most severe last: drawn on top)
  [32, "time to collision < 1 s", "#fdba74"], [16, "against traffic", "#a855f7"],
  [8, "red light", "#db2777"], [4, "off-road", "#92400e"], [1, "collision (not at fault)", "#f59e0b"],
  [2, "at-fault collision", "#dc2626"],
];
const tip = document.getElementById("tip");
const lightbox = document.getElementById("lightbox");
lightbox.addEventListener("click", () => { lightbox.style.display = "none"; });

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}
const nice = (s) => (s || "").replaceAll("_", " ");
function fmt(v, digits) { return v === null || v === undefined ? "—" : Number(v).toFixed(digits ?? 3); }
function showTip(ev, text) {
  tip.textContent = text; tip.style.display = "block";
  tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px";
}
function hideTip() { tip.style.display = "none"; }
function lowerBetter(key) { return D.lower_is_better.includes(key); }
function scoreColour(v, key) {
  if (v === null || v === undefined) return "#cbd5e1";
  const good = lowerBetter(key) ? 1 - Math.min(1, v) : Math.min(1, Math.max(0, v));
  return `hsl(${Math.round(good * 120)}, 65%, 45%)`;
}
function metricCell(v, key, best, unit) {
  const td = el("td", {});
  if (v === null || v === undefined) { td.textContent = "—"; td.className = "na"; return td; }
  td.append(fmt(v, unit ? 2 : 3));
  if (!unit) {
    const w = lowerBetter(key) ? Math.min(1, v) : Math.min(1, Math.max(0, v));
    td.append(el("span", { class: "bar" }, el("i", { style: `width:${w * 100}%;background:${scoreColour(v, key)}` })));
  }
  if (best) td.classList.add("best");
  else if (lowerBetter(key) && !unit && v > 0) td.classList.add("badv");
  return td;
}
function bestIndex(values, key) {
  const ok = values.map((v, i) => [v, i]).filter(([v]) => v !== null && v !== undefined);
  if (values.length < 2 || ok.length < 2) return -1;
  ok.sort((a, b) => lowerBetter(key) ? a[0] - b[0] : b[0] - a[0]);
  return Math.abs(ok[0][0] - ok[1][0]) < 5e-4 ? -1 : ok[0][1];  // equal as printed: no winner
}

// ---------- summary and overview ----------
function renderSummary() {
  document.getElementById("title").textContent = D.title;
  document.getElementById("subtitle").textContent = D.subtitle;
  document.title = D.title;
  const t = el("table", {});
  t.append(el("tr", {}, el("th", { text: "run" }), el("th", { text: "traffic" }), el("th", { text: "scenes" }),
    ...D.headline.map(([, label]) => el("th", { text: label }))));
  D.runs.forEach((run, i) => {
    const tr = el("tr", {}, el("td", {}, el("b", { text: run.name })), el("td", { text: run.traffic }),
      el("td", { text: String(run.num_scenes) }));
    for (const [key] of D.headline) {
      const best = bestIndex(D.runs.map((r) => r.aggregate[key]), key) === i;
      tr.append(metricCell(run.aggregate[key], key, best));
    }
    t.append(tr);
  });
  document.getElementById("summary").append(el("div", { class: "scroll" }, t));
  document.getElementById("footer").textContent = D.footer;
}
function renderOverview() {
  const keys = D.overview, multi = D.runs.length > 1;
  const t = el("table", {});
  if (multi) t.append(el("tr", {}, el("th", { colspan: "2" }),
    ...D.runs.map((run) => el("th", { colspan: String(keys.length), class: "run-group", text: run.name }))));
  t.append(el("tr", {}, el("th", { text: "scene" }), el("th", { text: "source" }),
    ...D.runs.flatMap(() => keys.map(([, label]) => el("th", { text: label })))));
  D.scenes.forEach((sc, si) => {
    const tr = el("tr", {}, el("td", {}, el("a", { href: `#scene-${si}`, text: sc.scene_id })), el("td", { text: sc.source }));
    D.runs.forEach((run, ri) => {
      for (const [key] of keys) {
        const vals = sc.panels.map((p) => (p ? p.metrics[key] : null));
        const td = metricCell(vals[ri], key, bestIndex(vals, key) === ri);
        if (multi && key === keys[0][0]) td.classList.add("run-start");
        tr.append(td);
      }
    });
    t.append(tr);
  });
  document.getElementById("overview").append(el("div", { class: "scroll" }, t));
}

// ---------- bird's-eye player ----------
function pathOf(flat, close) {
  const p = new Path2D();
  for (let i = 0; i + 1 < flat.length; i += 2) { if (i === 0) p.moveTo(flat[i], flat[i + 1]); else p.lineTo(flat[i], flat[i + 1]); }
  if (close) p.closePath();
  return p;
}
function buildMap(layers) {
  const one = (name, close) => { const p = new Path2D(); for (const l of layers[name] || []) p.addPath(pathOf(l, close)); return p; };
  return {
    drivable: one("drivable", true), crosswalks: one("crosswalks", true), lanes: one("lanes"),
    white: one("white"), white_dashed: one("white_dashed"), yellow: one("yellow"), yellow_dashed: one("yellow_dashed"),
    edges: one("edges"), stop_lines: one("stop_lines"), stop_signs: (layers.stop_signs || [[]])[0] || [],
  };
}
class Bev {
  constructor(canvas, panel) {
    this.c = canvas; this.p = panel; this.radius = 40; this.headingUp = true;
    this.map = buildMap(panel.map || {});
    this.log = pathOf(panel.log || []);
    canvas.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      this.radius = Math.min(120, Math.max(12, this.radius * (ev.deltaY > 0 ? 1.15 : 1 / 1.15)));
      this.draw(this.frame || 0);
    }, { passive: false });
  }
  size() {
    const dpr = window.devicePixelRatio || 1, w = Math.max(200, Math.round(this.c.clientWidth * dpr));
    if (this.c.width !== w) { this.c.width = w; this.c.height = w; }
    return w;
  }
  draw(f) {
    this.frame = f;
    const P = this.p, ctx = this.c.getContext("2d"), W = this.size();
    const ex = P.ego[3 * f], ey = P.ego[3 * f + 1], eh = P.ego[3 * f + 2];
    const h = this.headingUp ? eh : Math.PI / 2, s = W / (2 * this.radius), sh = Math.sin(h), ch = Math.cos(h);
    const a = s * sh, b = -s * ch, c = -s * ch, d = -s * sh;
    const px = (v) => v / s;  // screen pixels -> metres (line widths)
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#dfe5ea"; ctx.fillRect(0, 0, W, W);
    const cx = W / 2, cy = this.headingUp ? W * 0.62 : W / 2;  // heading up: see farther ahead
    ctx.setTransform(a, b, c, d, cx - a * ex - c * ey, cy - b * ex - d * ey);
    const m = this.map;
    ctx.fillStyle = "#f8fafc"; ctx.fill(m.drivable);
    ctx.fillStyle = "#fde68a"; ctx.fill(m.crosswalks);
    ctx.lineCap = "round"; ctx.lineJoin = "round";
    const stroke = (path, colour, width, dash) => {
      ctx.strokeStyle = colour; ctx.lineWidth = px(width); ctx.setLineDash(dash ? dash.map(px) : []); ctx.stroke(path);
    };
    stroke(m.lanes, "#b6c2d1", 1, [6, 5]);
    stroke(m.white, "#64748b", 1.3); stroke(m.white_dashed, "#64748b", 1.3, [8, 8]);
    stroke(m.yellow, "#ca8a04", 1.5); stroke(m.yellow_dashed, "#ca8a04", 1.5, [8, 8]);
    stroke(m.edges, "#1f2937", 2); stroke(m.stop_lines, "#111827", 3);
    ctx.setLineDash([]);
    for (let i = 0; i + 1 < m.stop_signs.length; i += 2) {
      ctx.fillStyle = "#b91c1c"; ctx.beginPath(); ctx.arc(m.stop_signs[i], m.stop_signs[i + 1], px(6), 0, 7); ctx.fill();
    }
    for (let k = 0; k < P.signals.xy.length / 2; k++) {
      const st = Number(P.signals.states[k][Math.min(f, P.signals.states[k].length - 1)] || 0);
      ctx.fillStyle = SIGNAL[st] || SIGNAL[0]; ctx.strokeStyle = "#111827"; ctx.lineWidth = px(1);
      ctx.beginPath(); ctx.arc(P.signals.xy[2 * k], P.signals.xy[2 * k + 1], px(6), 0, 7); ctx.fill(); ctx.stroke();
    }
    stroke(this.log, "rgba(100,116,139,0.55)", 5);
    const trail = new Path2D();
    for (let i = 0; i <= f; i++) { if (i === 0) trail.moveTo(P.ego[0], P.ego[1]); else trail.lineTo(P.ego[3 * i], P.ego[3 * i + 1]); }
    stroke(trail, "rgba(220,38,38,0.55)", 2);
    const boxes = P.frames[f] || [];
    const hit = P.hits[f];
    for (let k = 0; k + 3 < boxes.length; k += 4) this.box(ctx, boxes[k], boxes[k + 1], boxes[k + 2], boxes[k + 3], px, hit);
    this.box(ctx, P.ego_object, ex, ey, eh, px, hit, true);
    const plan = P.plan[f] || [];
    if (plan.length >= 4) {
      const pp = pathOf(plan);
      stroke(pp, "rgba(255,255,255,0.9)", 5); stroke(pp, EGO, 2.5, [7, 4]);
      ctx.setLineDash([]); ctx.fillStyle = EGO;
      for (let i = 4; i + 1 < plan.length; i += 4) { ctx.beginPath(); ctx.arc(plan[i], plan[i + 1], px(2.5), 0, 7); ctx.fill(); }
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    const dpr = window.devicePixelRatio || 1, fs = Math.round(12 * dpr);
    ctx.font = `${fs}px ui-sans-serif, system-ui, sans-serif`;
    const label = `t = ${(f * D.dt_s).toFixed(1)} s   ${P.speed[f].toFixed(1)} m/s`;
    ctx.fillStyle = "rgba(255,255,255,0.85)"; ctx.fillRect(8 * dpr, 8 * dpr, ctx.measureText(label).width + 12 * dpr, fs + 10 * dpr);
    ctx.fillStyle = "#0f172a"; ctx.fillText(label, 14 * dpr, 8 * dpr + fs + 1 * dpr);
    const bar = 10 * s;  // a 10 m scale bar
    ctx.fillStyle = "#0f172a"; ctx.fillRect(12 * dpr, W - 16 * dpr, bar, 3 * dpr);
    ctx.fillText("10 m", 16 * dpr + bar, W - 11 * dpr);
  }
  box(ctx, i, x, y, h, px, hit, isEgo) {
    const l = this.p.sizes[2 * i], w = this.p.sizes[2 * i + 1], c = Math.cos(h), s = Math.sin(h);
    ctx.beginPath();
    for (const [u, v] of [[1, 1], [1, -1], [-1, -1], [-1, 1]]) ctx.lineTo(x + c * u * l / 2 - s * v * w / 2, y + s * u * l / 2 + c * v * w / 2);
    ctx.closePath();
    ctx.fillStyle = isEgo ? EGO : (TYPE_COLOURS[this.p.types[i]] || TYPE_COLOURS[3]); ctx.fill();
    const struck = hit !== undefined && (hit === i || isEgo);
    ctx.strokeStyle = struck ? "#facc15" : "#0f172a"; ctx.lineWidth = px(struck ? 3 : 0.8); ctx.setLineDash([]); ctx.stroke();
    if (isEgo || this.p.types[i] === 0) {  // a windshield tick shows which way a vehicle faces
      ctx.beginPath(); ctx.moveTo(x + c * l * 0.3 - s * w * 0.4, y + s * l * 0.3 + c * w * 0.4);
      ctx.lineTo(x + c * l * 0.3 + s * w * 0.4, y + s * l * 0.3 - c * w * 0.4);
      ctx.strokeStyle = "rgba(255,255,255,0.85)"; ctx.lineWidth = px(1.5); ctx.stroke();
    }
  }
}

// ---------- timeline ----------
class Timeline {
  constructor(canvas, panel, seek) {
    this.c = canvas; this.p = panel; this.seek = seek; this.frames = panel.speed.length; this.labelW = 104;
    this.rows = [
      ["speed", "speed", 34], ["longitudinal", "longitudinal", 14], ["lateral", "lateral", 14], ["lane", "lane", 14],
      ["decision_lon", "decision (lon.)", 14], ["decision_lat", "decision (lat.)", 14], ["events", "events", 14],
    ];
    this.height = this.rows.reduce((acc, r) => acc + r[2] + 4, 0) + 20;
    canvas.addEventListener("click", (ev) => { const f = this.frameAt(ev); if (f !== null) seek(f); });
    canvas.addEventListener("mousemove", (ev) => this.hover(ev));
    canvas.addEventListener("mouseleave", hideTip);
  }
  x(f, W) { return this.labelW + (W - this.labelW - 8) * f / Math.max(1, this.frames - 1); }
  frameAt(ev) {
    const r = this.c.getBoundingClientRect(), W = r.width, x = ev.clientX - r.left;
    if (x < this.labelW - 4) return null;
    return Math.max(0, Math.min(this.frames - 1, Math.round((x - this.labelW) / (W - this.labelW - 8) * (this.frames - 1))));
  }
  rowAt(ev) {
    const y = ev.clientY - this.c.getBoundingClientRect().top; let top = 4;
    for (const r of this.rows) { if (y >= top && y < top + r[2]) return r[0]; top += r[2] + 4; }
    return null;
  }
  hover(ev) {
    const f = this.frameAt(ev), row = this.rowAt(ev);
    if (f === null || row === null) { hideTip(); return; }
    const P = this.p, t = `t = ${(f * D.dt_s).toFixed(1)} s`;
    let text = t;
    if (row === "speed") text = `${t}: ${P.speed[f].toFixed(2)} m/s`;
    else if (row === "events") text = `${t}: ${EVENTS.filter((e) => (P.eventAt[f] || 0) & e[0]).map((e) => e[1]).join(", ") || "no event"}`;
    else { const seg = (P.segments[row] || []).find((s) => s[0] <= f && f < s[1]); text = `${t}: ${nice(row)} — ${seg ? nice(seg[2]) : "none"}`; }
    showTip(ev, text);
  }
  draw(f) {
    const dpr = window.devicePixelRatio || 1, W = this.c.clientWidth || 600;
    if (this.c.width !== Math.round(W * dpr)) { this.c.width = Math.round(W * dpr); this.c.height = Math.round(this.height * dpr); this.c.style.height = this.height + "px"; }
    const ctx = this.c.getContext("2d"), P = this.p;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0); ctx.clearRect(0, 0, W, this.height);
    ctx.font = "11px ui-sans-serif, system-ui, sans-serif"; ctx.textBaseline = "middle";
    let top = 4;
    for (const [key, label, h] of this.rows) {
      ctx.fillStyle = "#64748b"; ctx.textAlign = "right";
      ctx.fillText(label, this.labelW - 8, key === "speed" ? top + 9 : top + h / 2);
      ctx.fillStyle = "#f1f5f9"; ctx.fillRect(this.labelW, top, W - this.labelW - 8, h);
      if (key === "speed") {
        const vmax = Math.max(1, ...P.speed);
        ctx.beginPath();
        P.speed.forEach((v, i) => { const X = this.x(i, W), Y = top + h - (v / vmax) * (h - 3); if (i === 0) ctx.moveTo(X, Y); else ctx.lineTo(X, Y); });
        ctx.strokeStyle = "#0f172a"; ctx.lineWidth = 1.3; ctx.stroke();
        ctx.fillStyle = "#94a3b8"; ctx.fillText(`0–${vmax.toFixed(0)} m/s`, this.labelW - 8, top + h - 8);
      } else if (key === "events") {
        for (const [bit, , colour] of EVENTS) {
          ctx.fillStyle = colour;
          for (let i = 0; i < this.frames; i++) if ((P.eventAt[i] || 0) & bit) ctx.fillRect(this.x(i, W) - 1.5, top, 3, h);
        }
      } else {
        const pal = PALETTE[key];
        for (const [s, e, lab] of P.segments[key] || []) {
          ctx.fillStyle = pal[lab] || "#94a3b8";
          const x0 = this.x(s, W), x1 = this.x(Math.min(e, this.frames - 1), W);
          ctx.fillRect(x0, top, Math.max(1.5, x1 - x0), h);
        }
      }
      top += h + 4;
    }
    ctx.fillStyle = "#94a3b8"; ctx.textAlign = "center";
    const total = (this.frames - 1) * D.dt_s, step = total > 30 ? 10 : total > 12 ? 5 : 2;
    for (let t = 0; t <= total + 1e-6; t += step) {
      const text = `${t} s`, half = ctx.measureText(text).width / 2;
      ctx.fillText(text, Math.min(this.x(t / D.dt_s, W), W - half - 1), top + 7);  // last one fits
    }
    const X = this.x(f, W);
    ctx.strokeStyle = "#0f172a"; ctx.lineWidth = 1.5; ctx.beginPath(); ctx.moveTo(X, 2); ctx.lineTo(X, top); ctx.stroke();
  }
}
const ROW_NAMES = { longitudinal: "longitudinal", lateral: "lateral", lane: "lane", decision_lon: "decision (lon.)", decision_lat: "decision (lat.)" };
function legendFor(panel) {
  const box = el("div", { class: "legend" });
  const seen = new Set();
  for (const key of ["longitudinal", "lateral", "lane", "decision_lon", "decision_lat"]) {
    const labs = [];
    for (const [, , lab] of panel.segments[key] || []) if (!seen.has(key + lab)) { seen.add(key + lab); labs.push(lab); }
    if (!labs.length) continue;
    box.append(el("b", { text: ROW_NAMES[key] + ":" }), ...labs.map((lab) => el("span", { style: `--c:${PALETTE[key][lab] || "#94a3b8"}`, text: nice(lab) })));
  }
  const ev = EVENTS.filter(([bit]) => panel.eventAt.some((e) => e & bit));
  if (ev.length) box.append(el("b", { text: "events:" }), ...ev.map(([, label, colour]) => el("span", { style: `--c:${colour}`, text: label })));
  return box;
}

// ---------- panels and scene cards ----------
function prepare(panel) {
  panel.eventAt = new Array(panel.speed.length).fill(0);
  panel.hits = {};
  for (const [f, flags, obj] of panel.events) { panel.eventAt[f] = flags; if (obj >= 0) panel.hits[f] = obj; }
  const dec = panel.decisions;
  const seg = (pick) => dec.map((d) => [d.frame, d.end, pick(d)]).filter((s) => s[2]);
  panel.segments.decision_lon = seg((d) => d.longitudinal);
  panel.segments.decision_lat = seg((d) => d.lateral);
}
class Panel {
  constructor(P, run, multi) {
    this.P = P; prepare(P);
    this.root = el("div", { class: "panel" });
    if (multi) this.root.append(el("div", { class: "run-name", text: run.name }));
    const canvas = el("canvas", { class: "bev", title: "scroll to zoom" });
    this.bev = new Bev(canvas, P);
    const legend = el("div", { class: "legend" },
      el("span", { style: `--c:${EGO}`, text: "ego" }),
      ...TYPE_NAMES.map((n, i) => el("span", { style: `--c:${TYPE_COLOURS[i]}`, text: n })),
      el("span", { class: "line", style: `--c:${EGO}`, text: "plan (dots every 1 s)" }),
      el("span", { class: "line", style: "--c:rgba(100,116,139,.6)", text: "logged path" }));
    const rotate = el("input", { type: "checkbox" }); rotate.checked = true;
    rotate.addEventListener("change", () => { this.bev.headingUp = rotate.checked; this.bev.draw(this.frame); });
    legend.append(el("label", {}, rotate, " heading up"));
    this.nowT = el("div", {}); this.nowMeta = el("div", {}); this.nowCoc = el("div", { class: "coc-now" });
    this.nowEv = el("div", { class: "events" });
    const now = el("div", { class: "now" },
      el("div", { class: "row" }, el("span", { class: "k", text: "now" }), this.nowT),
      el("div", { class: "row" }, el("span", { class: "k", text: "meta-actions of the plan" }), this.nowMeta),
      el("div", { class: "row" }, el("span", { class: "k", text: "reasoning (chain of causation)" }), this.nowCoc),
      this.nowEv);
    const list = el("ol", { class: "coc" });
    this.items = P.decisions.map((d) => {
      const li = el("li", { onclick: () => this.seek(d.frame) }, el("span", { class: "t", text: `${d.time_s.toFixed(1)} s` }),
        ...[["decision_lon", d.longitudinal], ["decision_lat", d.lateral]].filter((x) => x[1]).map(([k, v]) =>
          el("span", { class: "chip", style: `background:${PALETTE[k][v] || "#e2e8f0"}33`, text: nice(v) })),
        el("span", { text: " " + d.text }));
      list.append(li); return li;
    });
    const decisions = P.decisions.length ? list : el("div", { class: "empty", text: "This policy states no Chain-of-Causation; its meta-actions are derived from its trajectory." });
    now.append(el("h3", { text: `decisions (${P.decisions.length})` }), decisions);
    this.list = list;
    this.root.append(el("div", { class: "top" }, el("div", { class: "bev-wrap" }, canvas, legend), now));
    const tl = el("canvas", { class: "timeline" });
    this.timeline = new Timeline(tl, P, (f) => this.seek(f));
    this.root.append(tl, legendFor(P));
    if (P.cams.length) {
      const cams = el("div", { class: "cams" });
      for (const cam of P.cams) {
        const img = el("img", { src: cam.src, alt: `camera ring at ${cam.time_s} s`, loading: "lazy" });
        cams.append(el("figure", { onclick: () => { this.seek(cam.frame); lightbox.querySelector("img").src = cam.src; lightbox.style.display = "flex"; } },
          img, el("figcaption", { text: `camera ring at t = ${cam.time_s.toFixed(1)} s` })));
      }
      this.root.append(el("h3", { text: "surround cameras" }), cams);
    }
    this.frame = 0; this.seek = () => {};
  }
  show(frame) {
    const P = this.P, f = Math.min(frame, P.speed.length - 1);
    this.frame = f;
    this.bev.draw(f); this.timeline.draw(f);
    this.nowT.textContent = `t = ${(f * D.dt_s).toFixed(1)} s · ${P.speed[f].toFixed(1)} m/s${frame > f ? " (scene ended)" : ""}`;
    this.nowMeta.replaceChildren(...["longitudinal", "lateral", "lane"].map((k) => {
      const seg = P.segments[k].find((s) => s[0] <= f && f < s[1]);
      return el("span", { class: "chip", style: `background:${seg ? PALETTE[k][seg[2]] : "#e2e8f0"}55`, text: seg ? nice(seg[2]) : `${k}: none` });
    }));
    let active = -1;
    P.decisions.forEach((d, i) => { if (d.frame <= f && f < d.end) active = i; });
    this.nowCoc.textContent = active >= 0 ? P.decisions[active].text : (P.decisions.length ? "(no decision stated now)" : "—");
    this.items.forEach((li, i) => li.classList.toggle("active", i === active));
    if (active >= 0) {
      const li = this.items[active], box = this.list;
      // Scroll the list, never the page (scrollIntoView would move the whole report).
      if (li.offsetTop < box.scrollTop || li.offsetTop + li.offsetHeight > box.scrollTop + box.clientHeight) box.scrollTop = li.offsetTop;
    }
    const ev = P.eventAt[f] || 0;
    this.nowEv.textContent = EVENTS.filter((e) => ev & e[0]).map((e) => "⚠ " + e[1]).join("   ");
  }
}
const playing = new Set();
class SceneCard {
  constructor(sc, si) {
    this.sc = sc; this.frame = 0; this.speed = 1; this.acc = 0;
    const multi = D.runs.length > 1;
    this.frames = Math.max(...sc.panels.map((p) => (p ? p.speed.length : 1)));
    const head = el("div", { class: "scene-head" }, el("h2", { text: sc.scene_id }),
      el("span", { class: "src", text: `${sc.source} · ${((this.frames - 1) * D.dt_s).toFixed(1)} s` }));
    sc.panels.forEach((p, ri) => {
      if (!p) return;
      const m = p.metrics, chips = el("span", {});
      if (multi) chips.append(el("b", { text: D.runs[ri].name + ": " }));
      chips.append(el("span", { class: "chip", text: `EPDMS ${fmt(m.epdms)}` }), el("span", { class: "chip", text: `AlpaSim ${fmt(m.alpasim_score)}` }));
      if (m.at_fault_collision > 0) chips.append(el("span", { class: "chip bad", text: "at-fault collision" }));
      if (m.offroad > 0) chips.append(el("span", { class: "chip bad", text: "off-road" }));
      head.append(chips);
    });
    this.btn = el("button", { text: "▶ play", onclick: () => this.toggle() });
    this.slider = el("input", { type: "range", min: "0", max: String(this.frames - 1), value: "0" });
    this.slider.addEventListener("input", () => this.seek(Number(this.slider.value)));
    this.time = el("span", { class: "time" });
    const speed = el("select", {}, ...[0.5, 1, 2, 4].map((v) => { const o = el("option", { value: String(v), text: `${v}×` }); if (v === 1) o.selected = true; return o; }));
    speed.addEventListener("change", () => { this.speed = Number(speed.value); });
    const controls = el("div", { class: "controls" }, this.btn, this.slider, this.time, el("label", {}, "speed", speed));
    this.panels = sc.panels.map((p, ri) => (p ? new Panel(p, D.runs[ri], multi) : null));
    const grid = el("div", { class: "panels" + (multi ? " multi" : "") });
    this.panels.forEach((p, ri) => grid.append(p ? p.root : el("div", { class: "panel" }, el("div", { class: "run-name", text: D.runs[ri].name }), el("div", { class: "empty", text: "This scene is not in this run." }))));
    for (const p of this.panels) if (p) p.seek = (f) => this.seek(f);
    this.root = el("section", { class: "card", id: `scene-${si}` }, head, controls, grid, el("h3", { text: "metric breakdown" }), this.metricsTable());
  }
  metricsTable() {
    const runs = D.runs, grid = el("div", { class: "metrics-grid" + (runs.length > 1 ? " multi" : "") });
    for (const [group, items] of D.metric_groups) {
      const t = el("table", { class: "metrics-table" });
      t.append(el("tr", {}, el("th", { text: group }), ...runs.map((r) => el("th", { text: runs.length > 1 ? r.name : "" }))));
      for (const [key, label, unit] of items) {
        const vals = this.sc.panels.map((p) => (p ? p.metrics[key] : null));
        t.append(el("tr", {}, el("td", { text: label }), ...vals.map((v, i) => metricCell(v, key, bestIndex(vals, key) === i, unit))));
      }
      grid.append(t);
    }
    return grid;
  }
  toggle() {
    if (playing.has(this)) { playing.delete(this); this.btn.textContent = "▶ play"; return; }
    if (this.frame >= this.frames - 1) this.seek(0);
    playing.add(this); this.btn.textContent = "❚❚ pause"; this.acc = 0;
  }
  seek(f) {
    this.frame = Math.max(0, Math.min(this.frames - 1, f));
    this.slider.value = String(this.frame);
    this.time.textContent = `${(this.frame * D.dt_s).toFixed(1)} / ${((this.frames - 1) * D.dt_s).toFixed(1)} s`;
    for (const p of this.panels) if (p) p.show(this.frame);
  }
  tick(dt) {
    this.acc += dt * this.speed;
    const n = Math.floor(this.acc / D.dt_s);
    if (n <= 0) return;
    this.acc -= n * D.dt_s;
    if (this.frame + n >= this.frames - 1) { this.seek(this.frames - 1); this.toggle(); } else this.seek(this.frame + n);
  }
}
let last = null;
function loop(ts) {
  const dt = last === null ? 0 : Math.min(0.25, (ts - last) / 1000);
  last = ts;
  for (const card of [...playing]) card.tick(dt);
  requestAnimationFrame(loop);
}

renderSummary();
renderOverview();
const cards = D.scenes.map((sc, si) => new SceneCard(sc, si));
const host = document.getElementById("scene-cards");
for (const c of cards) host.append(c.root);
for (const c of cards) c.seek(0);
if (location.hash === "#play" && cards.length) cards[0].toggle();  // a smoke test of the player
window.addEventListener("resize", () => { for (const c of cards) c.seek(c.frame); });
requestAnimationFrame(loop);
