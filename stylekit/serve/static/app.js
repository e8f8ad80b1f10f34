// stylekit serve: the page. Plain JS, no dependencies, nothing loaded from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null, medium: "image",
  uploads: { image: { content: null, styles: [], contentMask: null, styleMasks: [] }, audio: { content: null, styles: [] } },
  run: null,          // the run this page watches
  runs: {},           // id -> summary (from the queue events)
  steps: [],          // its loss terms, one entry a step
  frames: 0,
};
const HEADERS = { "X-Stylekit": "1" };

function say(text) { $("message").textContent = text || ""; }

async function api(method, url, body, headers) {
  const init = { method, headers: { ...HEADERS, ...(headers || {}) } };
  if (body !== undefined) init.body = body;
  let r;
  try { r = await fetch(url, init); } catch (e) { throw new Error("the server cannot be reached (" + e.message + ")"); }
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) throw new Error((data && data.error) || ("request failed: " + r.status));
  return data;
}

// --- the settings form, made from the config fields the server describes ---------------------------------
function buildForm() {
  const form = $("settings");
  form.replaceChildren();
  for (const c of state.info.controls[state.medium]) {
    const label = document.createElement("label");
    label.textContent = c.label;
    label.htmlFor = "set-" + c.name;
    label.title = c.help;
    let input;
    if (c.kind === "choice") {
      input = document.createElement("select");
      for (const v of c.choices) {
        const o = document.createElement("option");
        o.value = o.textContent = v;
        if (String(c.value) === v) o.selected = true;
        input.append(o);
      }
    } else {
      input = document.createElement("input");
      input.type = c.kind === "text" ? "text" : "number";
      if (c.kind === "float") input.step = "any";
      input.placeholder = c.default;
      if (c.value !== null && c.value !== undefined) input.value = c.value;
    }
    input.id = "set-" + c.name;
    input.name = c.name;
    input.title = c.help + " (default: " + c.default + ")";
    form.append(label, input);
  }
}

function settings() {
  const out = {};
  for (const el of $("settings").elements) if (el.name && el.value !== "") out[el.name] = el.value;
  return out;
}

// --- uploads ------------------------------------------------------------------------------------------------
async function upload(kind, file) {
  const lim = state.info.limits;
  if (file.size > lim.bytes) {
    throw new Error(`${file.name}: ${(file.size / 1e6).toFixed(1)} MB; this server takes at most ${lim.bytes / 1e6} MB`);
  }
  try {
    return await api("POST", "/api/uploads/" + kind, file, { "Content-Type": "application/octet-stream" });
  } catch (e) {
    throw new Error(file.name + ": " + e.message);
  }
}

const SINGLE = new Set(["content", "contentMask"]);

async function chose(kind, role, files) {
  say("");
  const slot = state.uploads[kind];
  slot[role] = SINGLE.has(role) ? null : [];
  updateStart();
  const list = Array.from(files).slice(0, SINGLE.has(role) ? 1 : state.info.limits.styles);
  try {
    for (const f of list) {
      const item = await upload(kind, f);
      item.url = URL.createObjectURL(f);
      if (SINGLE.has(role)) slot[role] = item; else slot[role].push(item);
    }
  } catch (e) {
    say(e.message);
  }
  showUploads(kind, role);
  updateStart();
}

const THUMBS = { content: "image-content-thumb", styles: "image-styles-thumbs", contentMask: "image-content-mask-thumb",
  styleMasks: "image-style-masks-thumbs" };

function showUploads(kind, role) {
  const slot = state.uploads[kind];
  const items = SINGLE.has(role) ? (slot[role] ? [slot[role]] : []) : slot[role];
  if (kind === "image") {
    const el = $(THUMBS[role]);
    if (SINGLE.has(role)) {
      if (items.length) el.src = items[0].url; else el.removeAttribute("src");
    } else {
      el.replaceChildren(...items.map((it) => { const i = new Image(); i.src = it.url; return i; }));
    }
    return;
  }
  const player = $(role === "content" ? "audio-content-player" : "audio-styles-player");
  const canvas = $(role === "content" ? "audio-content-spec" : "audio-styles-spec");
  if (items.length) {
    player.src = items[0].url;
    drawFrame(canvas, items[0].spectrogram);
  } else {
    player.removeAttribute("src");
  }
}

function updateStart() {
  const slot = state.uploads[state.medium];
  $("start").disabled = !(slot.content && slot.styles.length);
}

async function start() {
  say("");
  const slot = state.uploads[state.medium];
  const body = { medium: state.medium, content: slot.content.id, styles: slot.styles.map((s) => s.id), settings: settings() };
  if (state.medium === "image" && (slot.contentMask || slot.styleMasks.length)) {
    body.masks = { styles: slot.styleMasks.map((s) => s.id) };
    if (slot.contentMask) body.masks.content = slot.contentMask.id;
  }
  try {
    const run = await api("POST", "/api/runs", JSON.stringify(body), { "Content-Type": "application/json" });
    watch(run.id);
    state.runs[run.id] = run;
    showRun();
  } catch (e) {
    say(e.message);
  }
}

// --- the run the page watches --------------------------------------------------------------------------------
function watch(id) {
  state.run = id;
  state.steps = [];
  document.body.dataset.run = id;
  drawPlot();
  $("result-player").removeAttribute("src");
  api("GET", "/api/runs/" + id).then((r) => { if (state.run === id) { state.steps = r.steps; drawPlot(); } }).catch(() => {});
}

function showRun() {
  const r = state.runs[state.run];
  if (!r) return;
  const where = r.total ? ` ${r.step}/${r.total}` : "";
  const pos = r.position ? ` (position ${r.position} in the queue)` : "";
  $("status").textContent = `${r.medium} run ${r.id}: ${r.state}${where}${pos}${r.message ? " — " + r.message : ""}`;
  $("status").dataset.state = r.state;
  $("stop").disabled = !(r.state === "running" || r.state === "queued");
  $("continue").disabled = r.state !== "stopped";
  const dl = $("download");
  const ready = r.has_result && r.state !== "running" && r.state !== "queued";
  dl.classList.toggle("disabled", !ready);
  dl.setAttribute("aria-disabled", String(!ready));
  if (ready) {
    dl.href = `/api/runs/${r.id}/result`;
    dl.setAttribute("download", "");
  } else {
    dl.removeAttribute("href");
  }
  $("audio-result").hidden = r.medium !== "audio";
  if (r.medium === "audio" && ready && $("result-player").dataset.version !== r.state + r.step) {
    $("result-player").dataset.version = r.state + r.step;
    $("result-player").src = `/api/runs/${r.id}/result?v=${r.step}`;
    api("GET", `/api/runs/${r.id}/spectrogram`).then((f) => drawFrame($("result-spec"), f)).catch(() => {});
  }
  if (r.state === "failed" && r.message) say(r.message);
}

function showQueue(list) {
  state.order = list.map((r) => r.id);
  for (const r of list) state.runs[r.id] = r;
  renderQueue();
}

function renderQueue() {
  const ol = $("queue");
  ol.replaceChildren();
  for (const id of state.order || []) {
    const r = state.runs[id];
    const li = document.createElement("li");
    const where = r.total ? ` ${r.step}/${r.total}` : "";
    li.textContent = `${r.medium} ${r.id}: ${r.state}${r.position ? " #" + r.position : ""}${where}`;
    li.dataset.run = r.id;
    li.dataset.state = r.state;
    if (r.id === state.run) li.classList.add("current");
    li.onclick = () => { watch(r.id); showRun(); };
    ol.append(li);
  }
  showRun();
}

// --- pictures: raw 8-bit frames drawn on a canvas ------------------------------------------------------------
// A magma-like colour map for spectrograms, interpolated between a few stops.
const STOPS = [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]];
const LUT = Array.from({ length: 256 }, (_, i) => {
  const t = (i / 255) * (STOPS.length - 1), k = Math.min(Math.floor(t), STOPS.length - 2), f = t - k;
  return STOPS[k].map((a, j) => Math.round(a + (STOPS[k + 1][j] - a) * f));
});

function drawFrame(canvas, frame) {
  if (!frame) return;
  const bytes = Uint8Array.from(atob(frame.data), (ch) => ch.charCodeAt(0));
  const img = new ImageData(frame.w, frame.h);
  const px = img.data;
  for (let i = 0, n = frame.w * frame.h; i < n; i++) {
    if (frame.c === 3) {
      px[4 * i] = bytes[3 * i]; px[4 * i + 1] = bytes[3 * i + 1]; px[4 * i + 2] = bytes[3 * i + 2];
    } else {
      const c = LUT[bytes[i]];
      px[4 * i] = c[0]; px[4 * i + 1] = c[1]; px[4 * i + 2] = c[2];
    }
    px[4 * i + 3] = 255;
  }
  canvas.width = frame.w;
  canvas.height = frame.h;
  canvas.getContext("2d").putImageData(img, 0, 0);
}

// --- the loss plot --------------------------------------------------------------------------------------------
const COLOURS = ["#3a5ccc", "#d1495b", "#00798c", "#edae49", "#66a182", "#8d6a9f", "#2e4057"];

function drawPlot() {
  const cv = $("plot"), ctx = cv.getContext("2d");
  const W = cv.width, H = cv.height, L = 44, B = 20, T = 8, R = 100;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  const steps = state.steps;
  if (!steps.length) { ctx.fillStyle = "#6e6e73"; ctx.fillText("no steps yet", L, H / 2); return; }
  const names = [...new Set(steps.flatMap((s) => Object.keys(s.terms))), "total"];
  const val = (s, n) => (n === "total" ? s.loss : s.terms[n]);
  let lo = Infinity, hi = -Infinity;
  for (const s of steps) for (const n of names) { const v = val(s, n); if (v > 0) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }
  if (!isFinite(lo)) return;
  lo = Math.max(lo, hi * 1e-4);        // four decades: a term that starts at 0 (the content) would flatten the rest
  const ly0 = Math.log10(lo), ly1 = Math.max(Math.log10(hi), ly0 + 1e-6);
  const n = steps[steps.length - 1].i, first = steps[0].i;
  const x = (i) => L + ((i - first) / Math.max(n - first, 1)) * (W - L - R);
  const y = (v) => T + (1 - (Math.log10(Math.max(v, lo)) - ly0) / (ly1 - ly0)) * (H - T - B);
  ctx.strokeStyle = "#d2d2d7"; ctx.strokeRect(L, T, W - L - R, H - T - B);
  ctx.fillStyle = "#6e6e73";
  ctx.fillText(hi.toPrecision(3), 2, T + 10); ctx.fillText(lo.toPrecision(3), 2, H - B);
  ctx.fillText("step " + n, W - R - 50, H - 5);
  names.forEach((name, j) => {
    ctx.strokeStyle = name === "total" ? "#000" : COLOURS[j % COLOURS.length];
    ctx.beginPath();
    let moved = false;
    for (const s of steps) {
      const v = val(s, name);
      if (!(v > 0)) continue;
      if (moved) ctx.lineTo(x(s.i), y(v)); else { ctx.moveTo(x(s.i), y(v)); moved = true; }
    }
    ctx.stroke();
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(name, W - R + 6, T + 12 + 14 * j);
  });
}

// --- the event stream -----------------------------------------------------------------------------------------
let plotPending = false, queuePending = false;
function listen() {
  const es = new EventSource("/api/events");
  es.addEventListener("queue", (e) => showQueue(JSON.parse(e.data)));
  es.addEventListener("steps", (e) => {
    const d = JSON.parse(e.data);
    const r = state.runs[d.run];
    if (r && d.steps.length) {
      r.step = d.steps[d.steps.length - 1].i;
      r.total = d.total;
      if (!queuePending) { queuePending = true; requestAnimationFrame(() => { queuePending = false; renderQueue(); }); }
    }
    if (d.run !== state.run) return;
    state.steps.length = Math.min(state.steps.length, d.start);
    if (state.steps.length === d.start) state.steps.push(...d.steps);
    if (!plotPending) { plotPending = true; requestAnimationFrame(() => { plotPending = false; drawPlot(); }); }
  });
  es.addEventListener("frame", (e) => {
    const d = JSON.parse(e.data);
    if (d.run !== state.run) return;
    drawFrame($("preview"), d);
    state.frames += 1;
    $("preview").dataset.frames = String(state.frames);
  });
  es.onerror = () => { $("status").dataset.connection = "lost"; };
  es.onopen = () => { $("status").dataset.connection = "open"; };
}

// --- wiring -----------------------------------------------------------------------------------------------------
function setMedium(m) {
  state.medium = m;
  for (const b of document.querySelectorAll("nav button")) b.setAttribute("aria-selected", String(b.dataset.medium === m));
  $("image-inputs").hidden = m !== "image";
  $("audio-inputs").hidden = m !== "audio";
  buildForm();
  updateStart();
}

function dropTarget(label, input) {
  label.addEventListener("dragover", (e) => { e.preventDefault(); label.classList.add("over"); });
  label.addEventListener("dragleave", () => label.classList.remove("over"));
  label.addEventListener("drop", (e) => {
    e.preventDefault();
    label.classList.remove("over");
    input.files = e.dataTransfer.files;
    input.dispatchEvent(new Event("change"));
  });
}

async function main() {
  try { state.info = await api("GET", "/api/info"); } catch (e) { say(e.message); return; }
  $("version").textContent = "stylekit " + state.info.version;
  for (const [kind, role, id, drop] of [["image", "content", "image-content", "drop-content"],
    ["image", "styles", "image-styles", "drop-style"], ["image", "contentMask", "image-content-mask", "drop-content-mask"],
    ["image", "styleMasks", "image-style-masks", "drop-style-masks"], ["audio", "content", "audio-content", "drop-voice"],
    ["audio", "styles", "audio-styles", "drop-texture"]]) {
    $(id).addEventListener("change", (e) => chose(kind, role, e.target.files));
    dropTarget($(drop), $(id));
  }
  for (const b of document.querySelectorAll("nav button")) b.onclick = () => setMedium(b.dataset.medium);
  $("start").onclick = start;
  $("clear-masks").onclick = () => {
    for (const role of ["contentMask", "styleMasks"]) { chose("image", role, []); }
    $("image-content-mask").value = "";
    $("image-style-masks").value = "";
  };
  $("stop").onclick = () => api("POST", `/api/runs/${state.run}/stop`).catch((e) => say(e.message));
  $("continue").onclick = () => api("POST", `/api/runs/${state.run}/continue`).catch((e) => say(e.message));
  setMedium("image");
  drawPlot();
  listen();
  document.body.dataset.ready = "1";
}

main();
