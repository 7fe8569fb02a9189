// aether-rt web page: sliders and pictures over one WebSocket (messages: docs/web.md).
// Everything the page shows comes from the server's frames; every change goes back as a
// "set". Nothing is computed here that the engine computes (the response curve arrives
// ready, from the table the audio is running).
"use strict";

const HOLD_MS = 400; // a control the user just moved ignores the server's value for this long
const TRAIL = 90; // points of z history drawn on the planes (3 s at 30 frames/s)

const page = {
  hello: null, ws: null, nextId: 1, pending: new Map(), touched: new Map(), dragging: new Set(),
  frame: null, trail: [], drawScheduled: false,
  library: null, picked: -1, hovered: -1, // the IR library (run --ir-library), the IR last clicked, under the pointer
  // figures read by people (the header) and by the tests and benchmarks
  stats: { frames: 0, draws: 0, fps: 0, rttMs: [], errors: 0, acks: 0, connected: false, labels: {} },
  sent: [], // {param, value, t_ms (epoch)} of the last sets (for latency measurements)
  lastError: "",
};
window.aether = page;

const $ = (id) => document.getElementById(id);
const fmt = (v, digits = 2) => (typeof v === "number" ? v.toFixed(digits) : "–");

// -- the socket ---------------------------------------------------------------------

function connect() {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  page.ws = ws;
  ws.onopen = () => { page.stats.connected = true; setLink(true, "connected"); };
  ws.onclose = () => {
    page.stats.connected = false;
    setLink(false, page.hello ? "disconnected, retrying…" : "the effect is starting…"); // refused (503) until it runs
    setTimeout(connect, 1000);
  };
  ws.onmessage = (event) => handle(JSON.parse(event.data));
}

function setLink(up, text) {
  const link = $("link");
  link.textContent = text;
  link.className = "link " + (up ? "up" : "down");
}

function send(message) {
  if (!page.ws || page.ws.readyState !== WebSocket.OPEN) return;
  message.id = page.nextId++;
  page.pending.set(message.id, performance.now());
  if (page.pending.size > 256) page.pending.delete(page.pending.keys().next().value);
  page.ws.send(JSON.stringify(message));
}

function set(param, value) {
  page.touched.set(param, performance.now());
  page.sent.push({ param, value, t_ms: performance.timeOrigin + performance.now() });
  if (page.sent.length > 2000) page.sent.splice(0, 1000);
  send({ type: "set", param, value });
}

function say(text, ok = false) {
  const message = $("message");
  message.textContent = text;
  message.className = ok ? "ok" : "";
}

function handle(msg) {
  if (msg.type === "hello") setup(msg);
  else if (msg.type === "frame") onFrame(msg);
  else if (msg.type === "ack") {
    const t0 = page.pending.get(msg.id);
    page.pending.delete(msg.id);
    page.stats.acks++;
    if (t0 !== undefined) {
      page.stats.rttMs.push(performance.now() - t0);
      if (page.stats.rttMs.length > 500) page.stats.rttMs.shift();
    }
  } else if (msg.type === "error") {
    page.pending.delete(msg.id);
    page.stats.errors++;
    page.lastError = msg.message;
    say(msg.message);
  } else if (msg.type === "presets") {
    fillPresets(msg.names, msg.current);
    say(`saved preset ${msg.current}`, true);
  } else if (msg.type === "library") showLibrary(msg);
  else if (msg.type === "image") showImage(msg.name);
}

// -- building the page from the hello ------------------------------------------------

function setup(hello) {
  page.hello = hello;
  const box = $("z-sliders");
  box.replaceChildren();
  for (let i = 0; i < hello.latent_dim; i++) {
    const row = document.createElement("label");
    row.className = "zrow";
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: -hello.z_bound, max: hello.z_bound, step: 0.01, id: `z${i}` });
    input.className = "z-slider";
    input.setAttribute("list", "z-ticks");
    input.dataset.dim = String(i);
    const out = document.createElement("output");
    out.id = `z${i}-out`;
    row.append(`z${i}`, input, out);
    box.append(row);
    hold(input, () => zParam(i));
    input.addEventListener("input", () => set(zParam(i), Number(input.value)));
  }
  const planes = $("planes");
  planes.replaceChildren();
  for (let a = 0; a + 1 < hello.latent_dim; a += 2) planes.append(makePlane(a, a + 1));
  applyRegistry(hello.registry);
  const mode = $("mode");
  mode.replaceChildren(...hello.modes.map((m) => new Option(m, m)));
  fillPresets(hello.presets, "");
  for (const img of document.querySelectorAll("img[data-image]")) {
    const name = img.dataset.image;
    const figure = img.closest("figure");
    figure.hidden = !hello.images.includes(name);
    figure.classList.toggle("drawing", !figure.hidden); // until its "image" message: drawn at start
  }
  addLearnButtons(hello);
}

// With run --midi: a "MIDI" button beside each control; the next control change the player
// moves drives that parameter (docs/midi.md).
function addLearnButtons(hello) {
  for (const old of document.querySelectorAll("button.learn")) old.remove();
  if (!hello.midi) return;
  const names = new Set(hello.registry.params.map((p) => p.name));
  for (const el of document.querySelectorAll("[data-param]")) {
    const param = el.dataset.param.replace(/\/norm$/, "");
    if (!names.has(param)) continue;
    const button = document.createElement("button");
    Object.assign(button, { type: "button", className: "learn", textContent: "MIDI",
                            title: `MIDI learn: the next control you move drives ${param}` });
    button.dataset.learn = param;
    button.addEventListener("click", (ev) => {
      ev.preventDefault();
      send({ type: "learn", param });
      say(`MIDI learn: move a control for ${param}`, true);
    });
    el.after(button);
  }
}

// The parameter registry (aether_rt/params.py): the ranges and descriptions of the page's
// own controls, and a control for every number it has none for (built here, not in the HTML).
function applyRegistry(registry) {
  const more = $("more-controls");
  more.replaceChildren();
  page.generated = [];
  for (const p of registry.params) {
    const plain = document.querySelector(`[data-param="${p.name}"]`);
    const norm = document.querySelector(`[data-param="${p.name}/norm"]`);
    for (const el of [plain, norm]) if (el) el.title = p.doc;
    if (p.kind !== "number") continue;
    if (plain) Object.assign(plain, { min: p.min, max: p.max });
    if (plain || norm) continue;
    const row = document.createElement("label");
    row.className = "row";
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: p.min, max: p.max, step: (p.max - p.min) / 400, title: p.doc });
    input.dataset.param = p.name;
    input.id = `param-${p.name.replaceAll("/", "-")}`;
    const out = document.createElement("output");
    row.append(p.label.toLowerCase() + " ", input, out);
    more.append(row);
    hold(input, p.name);
    input.addEventListener("input", () => set(p.name, Number(input.value)));
    page.generated.push({ name: p.name, unit: p.unit, out });
  }
}

// A picture is ready on the server (cached, or drawn in the background since the start): load it.
function showImage(name) {
  const src = `/img/${name}.png`;
  const img = document.querySelector(`img[data-image="${name}"]`);
  if (img) {
    img.onload = () => img.closest("figure").classList.remove("drawing");
    img.src = src;
  }
  const canvas = document.getElementById(name); // a plane (canvas id plane-A-B): its backdrop
  if (canvas && canvas.tagName === "CANVAS") {
    const backdrop = new Image();
    backdrop.src = src;
    canvas.backdrop = backdrop;
  }
}

function zTarget() {
  return document.querySelector("input[name=ztarget]:checked").value; // "z" or "center"
}

function zParam(i) {
  return `${zTarget()}/${i}`;
}

// -- the IR library: a point per impulse response, on the planes and as a list ------------

function showLibrary(lib) {
  page.library = lib;
  page.picked = page.hovered = -1;
  $("library").hidden = false;
  const status = { encoding: `encoding ${lib.folder}…`, ready: `${lib.irs.length} from ${lib.folder}`,
                   failed: `could not encode ${lib.folder}: ${lib.message}` }[lib.status] || lib.status;
  $("library-status").textContent = status;
  const list = $("library-list");
  list.replaceChildren(...lib.irs.map((ir, i) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.index = String(i);
    button.title = `z = ${ir.z.map((v) => fmt(v)).join(", ")}; fit ${fmt(ir.fit_db, 1)} dB` +
      (ir.encoder_in_region ? "" : " (the encoder put it outside the learned region)");
    const fit = document.createElement("small");
    fit.textContent = ` ${fmt(ir.fit_db, 1)} dB`;
    button.append(ir.name, fit);
    button.addEventListener("click", () => pickLibrary(i));
    item.append(button);
    return item;
  }));
  const skipped = $("library-skipped");
  skipped.hidden = lib.skipped.length === 0;
  skipped.querySelector("summary").textContent = `${lib.skipped.length} file(s) skipped`;
  skipped.querySelector("ul").replaceChildren(...lib.skipped.map((s) => {
    const item = document.createElement("li");
    item.textContent = `${s.name}: ${s.reason}`;
    return item;
  }));
}

// Moves z (the motion stops there) or the centre, as the sliders would: one checked "set".
function pickLibrary(i) {
  const ir = page.library.irs[i], target = zTarget();
  page.picked = i;
  for (const b of document.querySelectorAll("#library-list button")) b.classList.toggle("picked", b.dataset.index === String(i));
  set(target, ir.z.slice());
  say(`${target === "z" ? "z" : "the centre"} at ${ir.name} (fit ${fmt(ir.fit_db, 1)} dB)`, true);
}

// The library point under a click on plane (a, b), within 8 px, or -1.
function libraryAt(canvas, a, b, ev) {
  if (!page.library || !page.library.irs.length) return -1;
  const r = canvas.getBoundingClientRect(), bound = page.hello.z_bound;
  let best = -1, bestD = 8;
  page.library.irs.forEach((ir, i) => {
    const x = r.left + ((ir.z[a] + bound) / (2 * bound)) * r.width;
    const y = r.top + r.height - ((ir.z[b] + bound) / (2 * bound)) * r.height;
    const d = Math.hypot(ev.clientX - x, ev.clientY - y);
    if (d <= bestD) { best = i; bestD = d; }
  });
  return best;
}

function fillPresets(names, current) {
  const list = $("preset-list");
  const keep = current || list.value;
  list.replaceChildren(...names.map((n) => new Option(n, n)));
  if (names.includes(keep)) list.value = keep;
}

// A control being dragged, or just moved, keeps the user's value, not the server's.
function hold(el, param) {
  const name = typeof param === "function" ? param : () => param;
  el.addEventListener("pointerdown", () => page.dragging.add(el));
  for (const ev of ["pointerup", "pointercancel", "blur"]) {
    el.addEventListener(ev, () => { page.dragging.delete(el); page.touched.set(name(), performance.now()); });
  }
}

function held(el, param) {
  const t = page.touched.get(param);
  return page.dragging.has(el) || (t !== undefined && performance.now() - t < HOLD_MS);
}

function bindControls() {
  for (const el of document.querySelectorAll("[data-param]")) {
    const param = el.dataset.param;
    hold(el, param);
    if (el.type === "checkbox") el.addEventListener("change", () => set(param, el.checked));
    else if (el.tagName === "SELECT") el.addEventListener("change", () => set(param, el.value));
    else el.addEventListener("input", () => set(param, Number(el.value)));
  }
  $("reset").addEventListener("click", () => set("reset", true));
  $("preset-load").addEventListener("click", () => {
    const name = $("preset-list").value;
    if (name) { send({ type: "preset", name }); say(`loading preset ${name}`, true); }
  });
  $("preset-save").addEventListener("click", () => {
    const name = $("preset-name").value.trim();
    if (!name) { say("type a name for the new preset first"); return; }
    send({ type: "save", name });
  });
  for (const radio of document.querySelectorAll("input[name=ztarget]")) {
    radio.addEventListener("change", () => { if (page.frame) showState(page.frame); });
  }
}

// -- frames ------------------------------------------------------------------------

function onFrame(frame) {
  page.frame = frame;
  page.stats.frames++;
  page.trail.push(frame.z);
  if (page.trail.length > TRAIL) page.trail.shift();
  showState(frame);
  showMeters(frame.meters);
  scheduleDraw();
}

function scheduleDraw() {
  if (!page.drawScheduled) {
    page.drawScheduled = true;
    requestAnimationFrame(() => { page.drawScheduled = false; draw(); });
  }
}

function showControl(el, param, value) {
  if (held(el, param)) return;
  if (el.type === "checkbox") el.checked = Boolean(value);
  else el.value = String(value);
}

function showState(frame) {
  const s = frame.state;
  const toCenter = document.querySelector("input[name=ztarget]:checked").value === "center";
  for (let i = 0; i < frame.z.length; i++) {
    const value = toCenter ? s.center[i] : frame.z[i];
    showControl($(`z${i}`), zParam(i), value);
    $(`z${i}-out`).textContent = (value >= 0 ? "+" : "") + fmt(value);
  }
  for (const el of document.querySelectorAll("[data-param]")) {
    const param = el.dataset.param;
    if (param in s) showControl(el, param, s[param]);
  }
  const rateUnit = s.sync ? " beats" : " Hz";
  $("rate-fast-out").textContent = fmt(s["rate/fast"], 3) + rateUnit;
  $("rate-slow-out").textContent = fmt(s["rate/slow"], 3) + rateUnit;
  $("depth-out").textContent = fmt(s.depth);
  $("tempo-out").textContent = fmt(s.tempo, 0) + " BPM";
  $("mix-out").textContent = fmt(s.mix * 100, 0) + " %";
  $("gain-in-out").textContent = fmt(s["gain/in"], 1) + " dB";
  $("gain-out-out").textContent = fmt(s["gain/out"], 1) + " dB";
  for (const g of page.generated || []) if (g.name in s) g.out.textContent = fmt(s[g.name]) + (g.unit ? ` ${g.unit}` : "");
  $("preset-now").textContent = s.preset ? `preset: ${s.preset}` : "";
  const list = $("preset-list");
  if (s.preset && s.preset !== page.shownPreset && document.activeElement !== list) {
    page.shownPreset = s.preset; // a preset loaded from elsewhere (OSC) shows in the picker too
    list.value = s.preset;
  }
}

function showMeters(m) {
  if (!m || m.frames === undefined) return;
  for (const [key, id] of [["input_peak_dbfs", "meter-in"], ["output_peak_dbfs", "meter-out"]]) {
    const db = m[key];
    const width = Math.max(0, Math.min(1, (db + 60) / 60));
    $(id).style.width = `${(width * 100).toFixed(1)}%`;
    $(id).classList.toggle("hot", db > -1);
    $(`${id}-out`).textContent = db <= -120 ? "silent" : `${fmt(db, 1)} dBFS`;
  }
  $("xruns").textContent = m.xruns;
  $("load").textContent = `${fmt(m.callback_max_load * 100, 0)} %`;
  $("load").classList.toggle("bad", m.callback_max_load > 0.8);
  $("clips").textContent = m.clip_events;
  $("restarts").textContent = m.control_restarts;
}

// -- drawing ---------------------------------------------------------------------------

let dbRange = 24;

function draw() {
  page.stats.draws++;
  drawResponse();
  for (const plane of document.querySelectorAll("#planes canvas")) drawPlane(plane);
}

function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.round(canvas.clientWidth * ratio), h = Math.round(canvas.clientHeight * ratio);
  if (w > 0 && h > 0 && (canvas.width !== w || canvas.height !== h)) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [ctx, canvas.width / ratio, canvas.height / ratio];
}

function drawResponse() {
  const frame = page.frame, hello = page.hello;
  if (!frame || !hello) return;
  const canvas = $("response");
  const [ctx, w, h] = fitCanvas(canvas);
  const freqs = hello.freqs_hz, step = hello.db_step;
  const total = frame.response.map((v) => v * step);
  const peak = Math.max(...total.map(Math.abs), ...frame.filters.flat().map((v) => Math.abs(v * step)));
  const wanted = Math.max(12, Math.ceil(peak / 6) * 6);
  if (wanted > dbRange || wanted < dbRange - 12) dbRange = wanted; // hysteresis: the scale does not flicker
  const pad = { l: 42, r: 10, t: 10, b: 24 };
  const lf0 = Math.log10(freqs[0]), lf1 = Math.log10(freqs[freqs.length - 1]);
  const x = (f) => pad.l + ((Math.log10(f) - lf0) / (lf1 - lf0)) * (w - pad.l - pad.r);
  const y = (db) => pad.t + ((dbRange - db) / (2 * dbRange)) * (h - pad.t - pad.b);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.fillStyle = "#8a919c";
  for (const f of [20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000]) {
    if (f < freqs[0] || f > freqs[freqs.length - 1] * 1.001) continue;
    ctx.strokeStyle = "#2c3038";
    ctx.beginPath(); ctx.moveTo(x(f), pad.t); ctx.lineTo(x(f), h - pad.b); ctx.stroke();
    ctx.fillText(f >= 1000 ? `${f / 1000}k` : String(f), x(f) - 8, h - 8);
  }
  for (let db = -dbRange; db <= dbRange; db += 6) {
    ctx.strokeStyle = db === 0 ? "#59606b" : "#2c3038";
    ctx.beginPath(); ctx.moveTo(pad.l, y(db)); ctx.lineTo(w - pad.r, y(db)); ctx.stroke();
    ctx.fillText(`${db > 0 ? "+" : ""}${db}`, 6, y(db) + 4);
  }
  const curve = (values, color, width) => {
    ctx.strokeStyle = color; ctx.lineWidth = width;
    ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x(freqs[i]), y(v)) : ctx.moveTo(x(freqs[i]), y(v))));
    ctx.stroke();
  };
  frame.filters.forEach((f, k) => curve(f.map((v) => v * step), `hsla(${(k * 137.5) % 360}, 60%, 60%, 0.45)`, 1));
  curve(total, "#f2f4f7", 2.5);
}

function makePlane(a, b) {
  const figure = document.createElement("figure");
  const canvas = document.createElement("canvas");
  canvas.id = `plane-${a}-${b}`;
  canvas.dataset.dims = `${a},${b}`;
  const caption = document.createElement("figcaption");
  caption.textContent = `z${a} → , z${b} ↑ (colour: spectral centroid)`;
  figure.append(canvas, caption);
  // Dragging on a plane puts z there (those two dims; the others stay where they are).
  const toZ = (ev) => {
    const r = canvas.getBoundingClientRect(), bound = page.hello.z_bound;
    const clamp = (v) => Math.max(-bound, Math.min(bound, v));
    return [clamp(((ev.clientX - r.left) / r.width) * 2 * bound - bound),
            clamp(bound - ((ev.clientY - r.top) / r.height) * 2 * bound)];
  };
  let pending = null;
  const move = (ev) => {
    if (!page.frame || (ev.type === "pointermove" && !canvas.hasPointerCapture(ev.pointerId))) return;
    const z = page.frame.z.slice();
    [z[a], z[b]] = toZ(ev);
    if (!pending) requestAnimationFrame(() => { set("z", pending.map((v) => Math.round(v * 1000) / 1000)); pending = null; });
    pending = z;
  };
  canvas.addEventListener("pointerdown", (ev) => {
    const hit = libraryAt(canvas, a, b, ev);
    if (hit >= 0) { pickLibrary(hit); return; } // a click on an IR's point goes there, all dims
    canvas.setPointerCapture(ev.pointerId);
    move(ev);
  });
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointermove", (ev) => { // the IR under the pointer shows its name
    const hit = canvas.hasPointerCapture(ev.pointerId) ? -1 : libraryAt(canvas, a, b, ev);
    canvas.style.cursor = hit >= 0 ? "pointer" : "";
    if (hit !== page.hovered) { page.hovered = hit; scheduleDraw(); }
  });
  canvas.addEventListener("pointerleave", () => { if (page.hovered >= 0) { page.hovered = -1; scheduleDraw(); } });
  return figure;
}

function drawPlane(canvas) {
  const frame = page.frame, hello = page.hello;
  if (!frame || !hello) return;
  const [a, b] = canvas.dataset.dims.split(",").map(Number);
  const [ctx, w, h] = fitCanvas(canvas);
  const bound = hello.z_bound;
  const px = (z) => ((z + bound) / (2 * bound)) * w, py = (z) => h - ((z + bound) / (2 * bound)) * h;
  ctx.clearRect(0, 0, w, h);
  if (canvas.backdrop && canvas.backdrop.complete) ctx.drawImage(canvas.backdrop, 0, 0, w, h);
  else { ctx.fillStyle = "#0d0f12"; ctx.fillRect(0, 0, w, h); }
  const lb = hello.learned_bound;
  ctx.setLineDash([4, 3]); ctx.strokeStyle = "rgba(255,255,255,0.8)"; ctx.lineWidth = 1;
  ctx.strokeRect(px(-lb), py(lb), px(lb) - px(-lb), py(-lb) - py(lb));
  ctx.setLineDash([]);
  ctx.strokeStyle = "rgba(255,255,255,0.55)"; ctx.lineWidth = 1.5;
  ctx.beginPath();
  page.trail.forEach((z, i) => (i ? ctx.lineTo(px(z[a]), py(z[b])) : ctx.moveTo(px(z[a]), py(z[b]))));
  ctx.stroke();
  const c = frame.state.center;
  ctx.strokeStyle = "#ffffff";
  ctx.beginPath();
  ctx.moveTo(px(c[a]) - 5, py(c[b])); ctx.lineTo(px(c[a]) + 5, py(c[b]));
  ctx.moveTo(px(c[a]), py(c[b]) - 5); ctx.lineTo(px(c[a]), py(c[b]) + 5);
  ctx.stroke();
  drawLibrary(ctx, a, b, px, py);
  ctx.fillStyle = "#ff5a36"; ctx.strokeStyle = "#ffffff";
  ctx.beginPath(); ctx.arc(px(frame.z[a]), py(frame.z[b]), 6, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
}

// Every IR's point, and the names that fit: a library crowds where its family lies (70
// guitar cabinets in a unit square), where all the names hid each other and the points. The
// picked IR and the one under the pointer are named first, then each in the list's order
// whose label overlaps none already named; the others show theirs when pointed at.
function drawLibrary(ctx, a, b, px, py) {
  if (!page.library) return;
  const irs = page.library.irs;
  ctx.font = "10px system-ui, sans-serif";
  irs.forEach((ir, i) => {
    const x = px(ir.z[a]), y = py(ir.z[b]), picked = i === page.picked;
    ctx.fillStyle = picked ? "#4fc3a1" : "#ffffff"; ctx.strokeStyle = "#000000"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(x, y - 5); ctx.lineTo(x + 5, y); ctx.lineTo(x, y + 5); ctx.lineTo(x - 5, y); ctx.closePath();
    ctx.fill(); ctx.stroke();
  });
  const first = [page.picked, page.hovered].filter((i) => i >= 0 && i < irs.length);
  const order = [...new Set([...first, ...irs.keys()])];
  const named = [], shown = [];
  for (const i of order) {
    const ir = irs[i], x = px(ir.z[a]), y = py(ir.z[b]);
    const label = ir.name.replace(/\.[^./]+$/, "").split("/").pop();
    const box = { x: x + 6, y: y - 13, w: ctx.measureText(label).width + 4, h: 12 };
    const clash = named.some((o) => box.x < o.x + o.w && o.x < box.x + box.w && box.y < o.y + o.h && o.y < box.y + box.h);
    if (clash && !first.includes(i)) continue;
    named.push(box);
    shown.push(i);
    ctx.fillStyle = "rgba(0,0,0,0.6)";
    ctx.fillRect(box.x, box.y, box.w, box.h);
    ctx.fillStyle = i === page.picked ? "#4fc3a1" : "#ffffff";
    ctx.fillText(label, x + 8, y - 4);
  }
  page.stats.labels[`${a},${b}`] = shown; // the IRs named on this plane
}

// -- the header's figures, once a second ----------------------------------------------

let lastDraws = 0;
setInterval(() => {
  page.stats.fps = page.stats.draws - lastDraws;
  lastDraws = page.stats.draws;
  const rtt = page.stats.rttMs.slice().sort((p, q) => p - q);
  const median = rtt.length ? rtt[Math.floor(rtt.length / 2)] : null;
  $("perf").textContent = `plot ${page.stats.fps} fps` + (median === null ? "" : ` · slider round trip ${median.toFixed(1)} ms`);
}, 1000);

bindControls();
connect();
