// The explorer's page. It computes nothing about the models: every picture and
// number comes from the server, which asks minae's models in Python (the
// questions are listed in minae/explore/server.py). This file draws, asks, shows.
"use strict";

const $ = (id) => document.getElementById(id);
const SIDE = 28;
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

// What the page holds; window.explorer lets the tests and the benchmark look in.
const explorer = {
  state: null,                              // GET /api/state: the datasets and their models
  dataset: null,                            // the name of the dataset on show
  pixels: new Array(SIDE * SIDE).fill(0),   // the drawing: 784 numbers in [0, 1], row by row
  version: 0,                               // +1 at every change of the drawing
  shown: -1,                                // the version whose reconstructions are on screen
  shownPixels: null,                        // ... and its pixels
  busy: false,                              // a reconstruction request is on its way
  again: false,                             // the drawing changed meanwhile
  changedAt: null,                          // when the drawing first changed since the last request
  timings: [],                              // per request: ms from that change to pictures on screen
  readyAt: null,                            // ms after navigation start: first pictures on screen
  idle() { return !this.busy && this.shown === this.version; },
};
window.explorer = explorer;

// ------------------------------------------------------------------ asking
// One question to the server: POST a JSON body (or GET without one), get JSON back.
async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const answer = response.status === 204 ? {} : await response.json();
  if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
  return answer;
}

function showError(error) {
  $("error").textContent = String(error.message || error);
  $("error").hidden = false;
}
$("error").addEventListener("click", () => { $("error").hidden = true; });

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function image(src, title = "") {
  return el("img", {src, title, alt: title});
}

function datasetInfo() {
  return explorer.state.datasets.find((d) => d.name === explorer.dataset);
}

// Resolves just after the next frame is painted: what was set before is then on screen.
function painted() {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
}

// ------------------------------------------------------------------ Draw
const canvas = $("canvas");
const pen = canvas.getContext("2d");
let stroke = null;   // the last point of the stroke being drawn, in pixels of the 28x28 image

function at(event) {
  const box = canvas.getBoundingClientRect();
  return {x: (event.clientX - box.left) / box.width * SIDE, y: (event.clientY - box.top) / box.height * SIDE};
}

// Ink a soft-edged disc of the brush's radius around (x, y); ink only ever darkens.
function dab(x, y) {
  const r = Number($("brush").value);
  for (let i = Math.max(0, Math.floor(y - r - 1)); i <= Math.min(SIDE - 1, Math.ceil(y + r)); i++) {
    for (let j = Math.max(0, Math.floor(x - r - 1)); j <= Math.min(SIDE - 1, Math.ceil(x + r)); j++) {
      const ink = Math.min(1, Math.max(0, r + 0.5 - Math.hypot(j + 0.5 - x, i + 0.5 - y)));
      explorer.pixels[i * SIDE + j] = Math.max(explorer.pixels[i * SIDE + j], ink);
    }
  }
}

function line(a, b) {
  const steps = Math.max(1, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) / 0.25));
  for (let s = 1; s <= steps; s++) dab(a.x + (b.x - a.x) * s / steps, a.y + (b.y - a.y) * s / steps);
}

canvas.addEventListener("pointerdown", (event) => {
  canvas.setPointerCapture(event.pointerId);
  stroke = at(event);
  dab(stroke.x, stroke.y);
  changed();
});
canvas.addEventListener("pointermove", (event) => {
  if (stroke === null) return;
  const point = at(event);
  line(stroke, point);
  stroke = point;
  changed();
});
for (const type of ["pointerup", "pointercancel"]) canvas.addEventListener(type, () => { stroke = null; });

function paintCanvas() {
  const picture = pen.createImageData(SIDE, SIDE);
  explorer.pixels.forEach((v, k) => {
    const grey = Math.round(255 * v);
    picture.data.set([grey, grey, grey, 255], 4 * k);
  });
  pen.putImageData(picture, 0, 0);
}

function changed() {
  explorer.version += 1;
  if (explorer.changedAt === null) explorer.changedAt = performance.now();
  paintCanvas();
  reconstruct();
}

// Ask every model of the dataset what it makes of the drawing. While one answer
// is on its way, new strokes only mark the drawing as changed: the newest
// drawing is sent when the answer is on screen, so requests never pile up.
async function reconstruct() {
  if (explorer.busy) { explorer.again = true; return; }
  explorer.busy = true;
  explorer.again = false;
  const version = explorer.version, pixels = explorer.pixels.slice(), since = explorer.changedAt;
  const sent = performance.now();
  explorer.changedAt = null;
  try {
    const answer = await api("/api/reconstruct", {dataset: explorer.dataset, pixels});
    await Promise.all(answer.models.map(showModel));
    await painted();
    const now = performance.now();
    explorer.timings.push({ms: now - since, request_ms: now - sent, server_ms: answer.server_ms});
    explorer.shown = version;
    explorer.shownPixels = pixels;
    if (explorer.readyAt === null) explorer.readyAt = performance.now();
  } catch (error) {
    showError(error);
  }
  explorer.busy = false;
  if (explorer.again) reconstruct();
}

function showModel(answer) {
  const figure = document.querySelector(`#models [data-model="${answer.id}"]`);
  const picture = figure.querySelector("img");
  picture.src = answer.image;
  const bce = figure.querySelector(".bce");
  bce.textContent = `BCE ${answer.bce.toFixed(4)}`;
  bce.dataset.bce = String(answer.bce);
  return picture.decode().catch(() => {});
}

// The grid's models of this dataset as a table: rows hidden layers, columns learning rates.
function buildModels() {
  const info = datasetInfo();
  const table = $("models");
  table.replaceChildren(el("tr", {}, el("th", {}, "hidden \\ lr"), ...info.lrs.map((lr) => el("th", {}, `${lr}`))));
  for (const hidden of info.hidden) {
    const row = el("tr", {}, el("th", {}, hidden.join(",")));
    for (const lr of info.lrs) {
      const cell = el("td");
      for (const m of info.models.filter((m) => m.hidden.join() === hidden.join() && m.lr === lr)) {
        const caption = m.repeat ? `seed ${m.repeat + 1} ` : "";
        cell.append(m.problem
          ? el("figure", {"data-model": m.id, class: "refused"}, el("div", {class: "problem"}, `refused: ${m.problem}`))
          : el("figure", {"data-model": m.id, title: `${m.label}, status ${m.status}`},
               el("img", {alt: m.label}), el("figcaption", {}, caption, el("span", {class: "bce"}))));
      }
      row.append(cell);
    }
    table.append(row);
  }
}

$("clear").addEventListener("click", () => {
  explorer.pixels = new Array(SIDE * SIDE).fill(0);
  $("picked").textContent = "";
  changed();
});

$("pick").addEventListener("click", async () => {
  const value = $("pick-class").value;
  try {
    const answer = await api("/api/example", {dataset: explorer.dataset, label: value === "" ? null : Number(value)});
    explorer.pixels = answer.pixels;
    $("picked").textContent = `validation image ${answer.index}: ${datasetInfo().classes[answer.label]}`;
    changed();
  } catch (error) { showError(error); }
});

// ------------------------------------------------------------------ Code space
const scatter = $("scatter");
const plot = scatter.getContext("2d");
const space = {model: null, points: [], labels: [], box: null, chosen: [], lifted: null, hovered: -1, asked: 0};

async function showCodeSpace() {
  const model = $("code-model").value;
  if (!model || model === space.model) return;
  try {
    const answer = await api("/api/codes", {model});
    const xs = answer.points.map((p) => p[0]), ys = answer.points.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const mx = 0.08 * (x1 - x0 || 1), my = 0.08 * (y1 - y0 || 1);   // a margin of empty space
    Object.assign(space, {model, points: answer.points, labels: answer.labels, chosen: [], lifted: null,
                          box: {x0: x0 - mx, x1: x1 + mx, y0: y0 - my, y1: y1 + my}});
    $("code-info").textContent = `${answer.points.length} validation images; codes of ${answer.code_width} ` +
      "numbers on the plane of their two leading principal components";
    for (const id of ["hovered", "lifted", "path"]) $(id).replaceChildren();
    drawScatter();
  } catch (error) { showError(error); }
}

function toScreen([x, y]) {
  const b = space.box;
  return [(x - b.x0) / (b.x1 - b.x0) * scatter.width, (b.y1 - y) / (b.y1 - b.y0) * scatter.height];
}

function fromScreen(event) {
  const r = scatter.getBoundingClientRect(), b = space.box;
  const px = (event.clientX - r.left) / r.width, py = (event.clientY - r.top) / r.height;
  return [b.x0 + px * (b.x1 - b.x0), b.y1 - py * (b.y1 - b.y0)];
}

// The index of the plotted image within 5 screen pixels of the mouse, or -1.
function nearest(event) {
  const r = scatter.getBoundingClientRect();
  const sx = (event.clientX - r.left) * scatter.width / r.width, sy = (event.clientY - r.top) * scatter.height / r.height;
  let best = -1, bestDistance = 5;
  space.points.forEach((p, k) => {
    const [x, y] = toScreen(p), d = Math.hypot(x - sx, y - sy);
    if (d < bestDistance) { best = k; bestDistance = d; }
  });
  return best;
}

function drawScatter() {
  plot.clearRect(0, 0, scatter.width, scatter.height);
  plot.globalAlpha = 0.7;
  space.points.forEach((p, k) => {
    const [x, y] = toScreen(p);
    plot.fillStyle = PALETTE[space.labels[k] % PALETTE.length];
    plot.fillRect(x - 2, y - 2, 4, 4);
  });
  plot.globalAlpha = 1;
  plot.lineWidth = 2;
  plot.strokeStyle = "#000";
  for (const k of space.chosen) {
    const [x, y] = toScreen(space.points[k]);
    plot.beginPath(); plot.arc(x, y, 7, 0, 2 * Math.PI); plot.stroke();
  }
  if (space.lifted) {
    const [x, y] = toScreen(space.lifted);
    plot.beginPath(); plot.moveTo(x - 7, y - 7); plot.lineTo(x + 7, y + 7);
    plot.moveTo(x + 7, y - 7); plot.lineTo(x - 7, y + 7); plot.stroke();
  }
}

// An image of the plot and its reconstruction. Answers to older hovers may
// arrive after newer ones: only the latest question's answer is shown.
async function showPoint(index) {
  const asked = ++space.asked;
  const answer = await api("/api/point", {model: space.model, index});
  if (asked !== space.asked) return;
  $("hovered").replaceChildren(image(answer.image, `image ${index}`), image(answer.reconstruction, "reconstruction"),
    el("span", {class: "small"}, `${datasetInfo().classes[answer.label]} (image ${index}), BCE ${answer.bce.toFixed(4)}`));
}

scatter.addEventListener("mousemove", (event) => {
  const index = nearest(event);
  if (index >= 0 && index !== space.hovered) showPoint(index).catch(showError);
  space.hovered = index;
});

scatter.addEventListener("click", async (event) => {
  if (space.model === null) return;
  const index = nearest(event);
  try {
    if (index >= 0) {   // an image: it becomes the newer end of the path
      space.chosen = [...space.chosen, index].slice(-2);
      drawScatter();
      await showPoint(index);
      if (space.chosen.length === 2) {
        const [a, b] = space.chosen;
        const answer = await api("/api/interpolate", {model: space.model, a, b});
        $("path").replaceChildren(
          el("div", {class: "small"}, `decoded path between the codes of images ${a} and ${b}`), image(answer.path),
          el("div", {class: "small"}, "the pixels blended, for comparison"), image(answer.blend));
      }
    } else {            // empty space: lift the point to a code and decode it
      const point = fromScreen(event);
      const answer = await api("/api/lift", {model: space.model, point});
      space.lifted = point;
      drawScatter();
      const where = `(${point.map((v) => v.toFixed(2)).join(", ")})`;
      $("lifted").replaceChildren(image(answer.image, "decoded"), el("span", {class: "small"}, answer.negative
        ? `${where} lifts to a code with ${answer.negative} of ${answer.code_width} numbers negative, which no ` +
          "image can have (the code layer is a ReLU): a hole in the code space, decoded anyway."
        : `${where} lifts to a code no image of the plot has; the decoder answers anyway.`));
    }
  } catch (error) { showError(error); }
});

// ------------------------------------------------------------------ Units
async function showUnits() {
  const model = $("unit-model").value;
  if (!model) return;
  try {
    const answer = await api("/api/units", {model, pixels: explorer.pixels});
    $("filters").src = answer.filters;
    $("units-info").textContent = "activations for the drawing of the Draw view; dead: never positive on " +
      `the first ${answer.dead_rows} validation images`;
    $("layers").replaceChildren(...answer.layers.map((layer, k) => {
      const top = Math.max(...layer.activations, 1e-12);
      const dead = layer.dead.filter(Boolean).length;
      return el("div", {class: "layer"},
        el("h3", {}, `hidden layer ${k + 1}: ${layer.activations.length} units, ${dead} dead`),
        el("div", {class: "strip"}, ...layer.activations.map((a, u) => {
          const unit = el("span", {class: layer.dead[u] ? "unit dead" : "unit",
                                   title: `unit ${u + 1}: ${a.toFixed(3)}${layer.dead[u] ? ", dead" : ""}`});
          if (!layer.dead[u]) unit.style.background = activationColour(a / top);
          return unit;
        })));
    }), key());
  } catch (error) { showError(error); }
}

// From pale grey (0: the unit is silent for this image) to orange (the layer's largest activation).
function activationColour(share) {
  const mix = (from, to) => Math.round(from + (to - from) * share);
  return `rgb(${mix(238, 245)}, ${mix(238, 166)}, ${mix(238, 35)})`;
}

function key() {
  const swatch = (colour, dead) => {
    const unit = el("span", {class: dead ? "unit dead" : "unit"});
    if (colour) unit.style.background = colour;
    return unit;
  };
  return el("div", {class: "key"}, swatch(activationColour(0)), "silent for this image",
            swatch(activationColour(1)), "the layer's most active", swatch(null, true), "dead");
}

// ------------------------------------------------------------------ Train live
const run = {train: [], val: [], epochs: 0, source: null};

$("train-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {dataset: $("train-dataset").value, lr: Number($("train-lr").value),
                hidden: $("train-hidden").value.split(",").map(Number), epochs: Number($("train-epochs").value)};
  try {
    await api("/api/train", body);
    follow();
  } catch (error) { showError(error); }
});

$("train-stop").addEventListener("click", () => api("/api/train/stop", {}).catch(showError));

// Listen to the training's events: one per epoch, then one saying why it ended.
function follow() {
  Object.assign(run, {train: [], val: [], epochs: 0});
  drawCurve();
  $("train-status").textContent = "training...";
  if (run.source) run.source.close();
  run.source = new EventSource("/api/train/events");
  run.source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "epoch") {
      run.train.push(event.train_bce);
      run.val.push(event.val_bce);
      run.epochs = event.epochs;
      drawCurve();
      $("train-images").src = event.images;
      showDiagnostics(event.diagnostics);
      $("train-status").textContent = `epoch ${event.epoch} of ${event.epochs}: train BCE ${fixed(event.train_bce)}, ` +
        `validation BCE ${fixed(event.val_bce)}`;
    } else {
      run.source.close();
      $("train-status").textContent += ` (${event.reason})`;
    }
  };
  run.source.onerror = () => run.source.close();
}

function fixed(value, digits = 4) {
  return value === null ? "not finite" : value.toFixed(digits);
}

function svg(tag, attributes) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// The learning curves: one circle per epoch and series, joined by lines.
function drawCurve() {
  const chart = $("curve"), W = 440, H = 260, left = 50, bottom = 30;
  const values = [...run.train, ...run.val].filter((v) => v !== null);
  const lo = values.length ? Math.min(...values) : 0, hi = values.length ? Math.max(...values) : 1;
  const pad = (hi - lo) * 0.1 || 0.01, y0 = lo - pad, y1 = hi + pad, last = Math.max(run.epochs, 2);
  const sx = (e) => left + (e - 1) / (last - 1) * (W - left - 15);
  const sy = (v) => 10 + (y1 - v) / (y1 - y0) * (H - bottom - 10);
  chart.replaceChildren(
    svg("line", {class: "axis", x1: left, y1: H - bottom, x2: W - 10, y2: H - bottom}),
    svg("line", {class: "axis", x1: left, y1: 10, x2: left, y2: H - bottom}));
  const label = (text, attributes) => { const t = svg("text", attributes); t.textContent = text; chart.append(t); };
  label(y1.toFixed(4), {x: 2, y: 16});
  label(y0.toFixed(4), {x: 2, y: H - bottom});
  label("epoch", {x: W / 2, y: H - 6});
  label(`1`, {x: left, y: H - bottom + 14});
  label(`${last}`, {x: W - 20, y: H - bottom + 14});
  for (const [name, series] of [["train", run.train], ["val", run.val]]) {
    const points = series.map((v, i) => [i + 1, v]).filter(([, v]) => v !== null);
    chart.append(svg("polyline", {class: name, points: points.map(([e, v]) => `${sx(e)},${sy(v)}`).join(" ")}));
    for (const [e, v] of points) chart.append(svg("circle", {class: name, cx: sx(e), cy: sy(v), r: 3}));
  }
  label("train", {x: W - 100, y: 22, class: "train"});
  label("validation", {x: W - 100, y: 38, class: "val"});
}

function showDiagnostics(d) {
  const rows = [el("tr", {}, el("th", {}, "layer"), el("th", {}, "|dW|"), el("th", {}, "update ratio"),
                           el("th", {}, "dead units"))];
  d.grad_norm.forEach((g, k) => {
    const dead = k < d.dead_fraction.length ? `${Math.round(100 * d.dead_fraction[k])}%` : "(output)";
    rows.push(el("tr", {}, el("td", {}, `${k + 1}`), el("td", {}, fixed(g, 5)), el("td", {}, fixed(d.update_ratio[k], 5)),
                 el("td", {}, dead)));
  });
  rows.push(el("tr", {}, el("td", {colspan: 4}, `output spread ${fixed(d.output_spread)}`)));
  $("diagnostics").replaceChildren(...rows);
}

// ------------------------------------------------------------------ the page
function selectDataset(name) {
  explorer.dataset = name;
  const info = datasetInfo();
  $("note").textContent = info.note || "";
  $("note").hidden = !info.note;
  buildModels();
  $("pick-class").replaceChildren(el("option", {value: ""}, "any class"),
                                  ...info.classes.map((c, k) => el("option", {value: k}, c)));
  const usable = info.models.filter((m) => !m.problem);
  for (const id of ["code-model", "unit-model"]) {
    $(id).replaceChildren(...usable.map((m) => el("option", {value: m.id}, m.label + (m.repeat ? ` seed ${m.repeat + 1}` : ""))));
  }
  $("legend").replaceChildren(...info.classes.map((c, k) => {
    const swatch = el("i");
    swatch.style.background = PALETTE[k % PALETTE.length];
    return el("span", {}, swatch, c);
  }));
  space.model = null;
  changed();
  showView(currentView);
}

let currentView = "draw";
function showView(view) {
  currentView = view;
  for (const button of $("tabs").querySelectorAll("button")) button.classList.toggle("active", button.dataset.view === view);
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== view;
  if (view === "codes") showCodeSpace();
  if (view === "units") showUnits();
}

async function start() {
  try {
    explorer.state = await api("/api/state");
  } catch (error) { showError(error); return; }
  const names = explorer.state.datasets.map((d) => d.name);
  for (const id of ["dataset", "train-dataset"]) $(id).replaceChildren(...names.map((n) => el("option", {value: n}, n)));
  $("results").textContent = `results: ${explorer.state.results}`;
  const defaults = explorer.state.training.defaults;
  $("train-hidden").value = defaults.hidden.join(",");
  $("train-lr").value = defaults.lr;
  $("train-epochs").value = defaults.epochs;
  $("dataset").addEventListener("change", () => selectDataset($("dataset").value));
  $("code-model").addEventListener("change", showCodeSpace);
  $("unit-model").addEventListener("change", showUnits);
  for (const button of $("tabs").querySelectorAll("button")) button.addEventListener("click", () => showView(button.dataset.view));
  drawCurve();
  selectDataset(names[0]);
  if (explorer.state.training.running) follow();
}

start();
