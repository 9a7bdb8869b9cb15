// /ui/runs/{id}: live cost and accuracy curves, smoothing, the decision boundary
// (two features), hyperparameters, metrics, warnings, cancel and downloads.
//
// The curves start from the server's downsampled chart (GET /runs/{id}/chart,
// at most BUDGET epochs whatever the history's length), then grow from the
// events stream from the chart's last epoch on. Once more than BUDGET raw
// epochs have been appended the chart is fetched again, so a long run stays
// light while it grows.
import { setupExplain } from "./explain.js";
import {
  ACTIVE,
  ApiError,
  api,
  el,
  fmt,
  followEvents,
  getJSON,
  makeChart,
  pageError,
  postJSON,
  runLabel,
  smooth,
} from "./common.js";

// the chart's point budget (?points= for a closer look, or for the tests)
const BUDGET = Math.min(10000, Math.max(16, Number(new URLSearchParams(location.search).get("points")) || 1000));
const BOUNDARY_RESOLUTION = 120;
const BOUNDARY_EVERY_MS = 3000;
const COLUMNS = ["epoch", "train_cost", "validation_cost", "train_accuracy", "validation_accuracy"];

const root = document.getElementById("run");
const runId = root.dataset.runId;
const path = `/runs/${encodeURIComponent(runId)}`;
const slider = document.getElementById("smoothing");
const sliderValue = document.getElementById("smoothing-value");
const costBox = document.getElementById("chart-cost");
const accuracyBox = document.getElementById("chart-accuracy");

let run = null;
let base = emptyColumns(); // the downsampled chart
let tail = emptyColumns(); // raw epochs appended from the stream since
let refetching = null;
let boundaryTimer = null;
let hasBoundary = true; // until the server says the dataset has not two features
let datasetName = "";

function emptyColumns() {
  return Object.fromEntries(COLUMNS.map((c) => [c, []]));
}

function lastEpoch() {
  const t = tail.epoch;
  if (t.length) return t[t.length - 1];
  const b = base.epoch;
  return b.length ? b[b.length - 1] : 0;
}

// ---- curves ----

const faint = (color) => ({ stroke: color, width: 1, alpha: 0.25, points: { show: false } });
const solid = (color, label, dash) => ({ label, stroke: color, width: 2, dash, points: { show: false } });
const TRAIN = "#2563eb";
const VALIDATION = "#dc2626";
const costChart = makeChart(costBox, [
  { label: "train (raw)", ...faint(TRAIN) },
  solid(TRAIN, "train"),
  { label: "validation (raw)", ...faint(VALIDATION) },
  solid(VALIDATION, "validation"),
]);
const accuracyChart = makeChart(
  accuracyBox,
  [
    { label: "train (raw)", ...faint(TRAIN) },
    solid(TRAIN, "train"),
    { label: "validation (raw)", ...faint(VALIDATION) },
    solid(VALIDATION, "validation"),
  ],
  { yRange: (u, min, max) => [Math.max(0, Math.min(min, 0.5)), 1] },
);

function column(name) {
  const b = base[name] || [];
  const t = tail[name] || [];
  return b.length || t.length ? b.concat(t) : [];
}

let drawPending = false;
function draw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    const weight = Number(slider.value);
    const x = column("epoch");
    const blank = x.map(() => null);
    const series = (name) => {
      const values = column(name);
      return values.length === x.length ? values : blank;
    };
    const tc = series("train_cost");
    const vc = series("validation_cost");
    const ta = series("train_accuracy");
    const va = series("validation_accuracy");
    costChart.setData([x, tc, smooth(tc, weight), vc, smooth(vc, weight)]);
    accuracyChart.setData([x, ta, smooth(ta, weight), va, smooth(va, weight)]);
    const validation = vc !== blank; // a run without a validation split has no such curves
    for (const chart of [costChart, accuracyChart]) {
      for (const index of [3, 4]) {
        if (chart.series[index].show !== validation) chart.setSeries(index, { show: validation });
      }
    }
    for (const box of [costBox, accuracyBox]) {
      box.dataset.points = String(x.length);
      box.dataset.lastEpoch = String(x.length ? x[x.length - 1] : 0);
    }
    document.getElementById("chart-info").textContent = x.length
      ? `${x.length} points drawn of ${lastEpoch()} epochs` + (base.bucket > 1 ? ` (downsampled, ${base.bucket} epochs a bucket)` : "")
      : "no epochs yet";
    root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
  });
}

slider.addEventListener("input", () => {
  sliderValue.textContent = Number(slider.value).toFixed(2);
  draw();
});

async function fetchChart() {
  const chart = await getJSON(`${path}/chart?points=${BUDGET}`);
  base = {
    epoch: chart.epoch,
    train_cost: chart.train_cost,
    validation_cost: chart.validation_cost || [],
    train_accuracy: chart.train_accuracy,
    validation_accuracy: chart.validation_accuracy || [],
    bucket: chart.bucket,
  };
  tail = keepAfter(tail, base.epoch.length ? base.epoch[base.epoch.length - 1] : 0);
  draw();
}

function keepAfter(columns, epoch) {
  const start = columns.epoch.findIndex((e) => e > epoch);
  if (start < 0) return emptyColumns();
  return Object.fromEntries(COLUMNS.map((c) => [c, (columns[c] || []).slice(start)]));
}

function append(data) {
  // epochs the chart already holds (it may have been fetched after they were
  // written and before they were streamed) are skipped
  const start = data.epoch.findIndex((e) => e > lastEpoch());
  if (start < 0) return;
  for (const c of COLUMNS) {
    const values = data[c];
    if (values) tail[c].push(...values.slice(start));
    else tail[c] = []; // no validation split: no series
  }
  live.epoch = Math.max(live.epoch || 0, lastEpoch());
  renderStatus(live);
  root.dataset.streamed = String(Number(root.dataset.streamed || 0) + data.epoch.length - start);
  if (tail.epoch.length > BUDGET && !refetching) {
    refetching = fetchChart()
      .catch(() => {})
      .finally(() => {
        refetching = null;
      });
  }
  draw();
}

// ---- the run ----

function renderRun() {
  document.getElementById("run-name").textContent = runLabel(run);
  document.title = `${runLabel(run)} · twolayer`;
  renderStatus(run);
  const warnings = document.getElementById("warnings");
  warnings.replaceChildren(...(run.warnings || []).map((w) => el("li", { text: w })));
  warnings.hidden = !(run.warnings || []).length;
  const error = document.getElementById("run-error");
  error.textContent = run.error || "";
  error.hidden = !run.error;
  const hyper = document.querySelector("#hyperparameters tbody");
  hyper.replaceChildren(
    ...Object.entries(run.hyperparameters).map(([name, value]) =>
      el("tr", {}, el("th", { text: name }), el("td", { class: "num", text: fmt(value, 6) })),
    ),
    el("tr", {}, el("th", { text: "dataset" }), el("td", { class: "wrap", text: datasetName })),
  );
  const metrics = document.querySelector("#metrics tbody");
  const m = run.metrics;
  if (!m) {
    metrics.replaceChildren(el("tr", {}, el("td", { class: "muted", text: "when the run ends" })));
  } else {
    const names = Object.keys(m.train);
    metrics.replaceChildren(
      el("tr", {}, el("th"), el("th", { class: "num", text: "train" }), el("th", { class: "num", text: "validation" })),
      ...names.map((name) =>
        el(
          "tr",
          {},
          el("th", { text: name }),
          el("td", { class: "num", text: fmt(m.train[name]) }),
          el("td", { class: "num", text: m.validation ? fmt(m.validation[name]) : "—" }),
        ),
      ),
      el("tr", {}, el("th", { text: "best epoch" }), el("td", { class: "num", text: fmt(run.best_epoch) }), el("td")),
    );
  }
  const hasModel = run.status !== "queued" && run.progress.epoch > 0;
  document.getElementById("download-npz").disabled = !hasModel;
  document.getElementById("download-json").disabled = !hasModel;
}

let live = {}; // where the run stands, as the stream last said

function renderStatus(state) {
  live = { ...state };
  const status = document.getElementById("status");
  status.textContent = state.status;
  status.className = `status ${state.status}`;
  root.dataset.status = state.status;
  const progress = document.getElementById("progress");
  const epoch = state.epoch ?? state.progress?.epoch ?? 0;
  const epochs = state.epochs ?? state.progress?.epochs ?? 0;
  live.epoch = epoch;
  live.epochs = epochs;
  let text = `epoch ${epoch} of ${epochs}`;
  if (state.queue_position) text += ` · position ${state.queue_position} in the queue`;
  if (state.eta_seconds !== null && state.eta_seconds !== undefined) text += ` · about ${Math.ceil(state.eta_seconds)} s left`;
  progress.textContent = text;
  document.getElementById("cancel").hidden = !ACTIVE.has(state.status);
}

document.getElementById("cancel").addEventListener("click", async (event) => {
  event.target.disabled = true;
  try {
    run = await postJSON(`${path}/cancel`, {});
    renderRun();
  } catch (error) {
    pageError(error);
  } finally {
    event.target.disabled = false;
  }
});

async function download(suffix, filename) {
  try {
    const response = await api(`${path}${suffix}`);
    if (!response.ok) throw new ApiError(response.status, await response.json());
    const blob = await response.blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  } catch (error) {
    pageError(error);
  }
}
document.getElementById("download-npz").addEventListener("click", () => download("/model.npz", `${runId}.npz`));
document.getElementById("download-json").addEventListener("click", () => download("/model", `${runId}-model.json`));
document.getElementById("download-csv").addEventListener("click", () => download("/history.csv", `${runId}-history.csv`));

// ---- the decision boundary (a dataset of two features) ----

// A diverging scale: blue (ŷ 0) → near white (0.5) → red (ŷ 1).
function shade(p) {
  const t = Math.min(1, Math.max(0, p));
  const low = [37, 99, 235];
  const mid = [247, 247, 247];
  const high = [220, 38, 38];
  const [a, b, s] = t < 0.5 ? [low, mid, t / 0.5] : [mid, high, (t - 0.5) / 0.5];
  return a.map((v, i) => Math.round(v + (b[i] - v) * s));
}

function drawBoundary(boundary) {
  const canvas = document.getElementById("boundary");
  const ctx = canvas.getContext("2d");
  const { x, y, probability } = boundary;
  const nx = x.length;
  const ny = y.length;
  const grid = new OffscreenCanvas(nx, ny);
  const gctx = grid.getContext("2d");
  const image = gctx.createImageData(nx, ny);
  for (let i = 0; i < ny; i++) {
    const row = probability[i];
    for (let j = 0; j < nx; j++) {
      const [r, g, b] = shade(row[j] ?? 0.5);
      const k = ((ny - 1 - i) * nx + j) * 4; // row 0 is the lowest y: drawn at the bottom
      image.data[k] = r;
      image.data[k + 1] = g;
      image.data[k + 2] = b;
      image.data[k + 3] = 150;
    }
  }
  gctx.putImageData(image, 0, 0);
  const W = canvas.width;
  const H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, W, H);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(grid, 0, 0, W, H);
  // grid coordinates → canvas pixels (cell centres at the grid's x[j], y[i])
  const px = (j) => ((j + 0.5) / nx) * W;
  const py = (i) => H - ((i + 0.5) / ny) * H;
  // the 0.5 contour, by marching squares with linear interpolation
  ctx.strokeStyle = "#111827";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  const at = (i, j) => (probability[i][j] ?? 0.5) - 0.5;
  const cross = (a, b) => a / (a - b);
  for (let i = 0; i < ny - 1; i++) {
    for (let j = 0; j < nx - 1; j++) {
      const v = [at(i, j), at(i, j + 1), at(i + 1, j + 1), at(i + 1, j)];
      const edges = [];
      const corners = [
        [i, j],
        [i, j + 1],
        [i + 1, j + 1],
        [i + 1, j],
      ];
      for (let e = 0; e < 4; e++) {
        const a = v[e];
        const b = v[(e + 1) % 4];
        if (a < 0 !== b < 0) {
          const t = cross(a, b);
          const [ia, ja] = corners[e];
          const [ib, jb] = corners[(e + 1) % 4];
          edges.push([px(ja + (jb - ja) * t), py(ia + (ib - ia) * t)]);
        }
      }
      for (let k = 0; k + 1 < edges.length; k += 2) {
        ctx.moveTo(...edges[k]);
        ctx.lineTo(...edges[k + 1]);
      }
    }
  }
  ctx.stroke();
  // the training points, by label, placed on the grid's axes
  const x0 = x[0];
  const x1 = x[nx - 1];
  const y0 = y[0];
  const y1 = y[ny - 1];
  const toX = (v) => px(((v - x0) / (x1 - x0)) * (nx - 1));
  const toY = (v) => py(((v - y0) / (y1 - y0)) * (ny - 1));
  const points = boundary.points;
  for (let k = 0; k < points.x.length; k++) {
    ctx.beginPath();
    ctx.arc(toX(points.x[k]), toY(points.y[k]), 2.6, 0, 2 * Math.PI);
    ctx.fillStyle = points.label[k] ? "#b91c1c" : "#1d4ed8";
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 0.8;
    ctx.fill();
    ctx.stroke();
  }
  canvas.dataset.epoch = String(boundary.epoch);
  canvas.dataset.painted = "true";
  document.getElementById("class0").textContent = `${boundary.classes[0]}`;
  document.getElementById("class1").textContent = `${boundary.classes[1]}`;
  const shown = points.x.length < boundary.points_total ? `${points.x.length} of ${boundary.points_total} points` : `${points.x.length} points`;
  document.getElementById("boundary-info").textContent =
    `(${boundary.features[0]} × ${boundary.features[1]}, epoch ${boundary.epoch}, ${shown})`;
  document.getElementById("boundary-panel").hidden = false;
}

async function refreshBoundary() {
  if (!hasBoundary) return;
  try {
    drawBoundary(await getJSON(`${path}/boundary?resolution=${BOUNDARY_RESOLUTION}`));
  } catch (error) {
    if (error instanceof ApiError && error.problem.type === "/problems/not-two-features") {
      hasBoundary = false;
      document.getElementById("boundary-panel").hidden = true;
    } else if (!(error instanceof ApiError && error.problem.type === "/problems/run-has-no-model")) {
      throw error;
    }
  }
}

function watchBoundary(active) {
  if (active && !boundaryTimer && hasBoundary) {
    boundaryTimer = setInterval(() => refreshBoundary().catch(pageError), BOUNDARY_EVERY_MS);
  } else if (!active && boundaryTimer) {
    clearInterval(boundaryTimer);
    boundaryTimer = null;
  }
}

// ---- start ----

async function start() {
  const chart = fetchChart(); // at once, beside the run: the curves are what the page is for
  chart.catch(() => {}); // reported below, where it is awaited
  run = await getJSON(path);
  const dataset = await getJSON(`/datasets/${encodeURIComponent(run.dataset_id)}`).catch(() => null);
  datasetName = dataset ? dataset.name : run.dataset_id;
  if (dataset && dataset.n_features !== 2) hasBoundary = false; // no boundary to ask for
  const features = dataset ? dataset.feature_names : [];
  const explainable = () => run.status === "succeeded" || run.status === "cancelled";
  renderRun();
  if (explainable() && features.length) setupExplain(runId, features);
  await chart;
  await refreshBoundary();
  if (!ACTIVE.has(run.status)) return;
  watchBoundary(true);
  await followEvents(runId, lastEpoch(), (event) => {
    const data = event.data;
    if (event.event === "epochs") append(data);
    else if (event.event === "status" || event.event === "progress" || event.event === "queued") {
      renderStatus(data);
      const ready = data.status !== "queued" && data.epoch > 0;
      document.getElementById("download-npz").disabled = !ready;
      document.getElementById("download-json").disabled = !ready;
    }
  });
  watchBoundary(false);
  run = await getJSON(path);
  renderRun();
  if (explainable() && features.length) setupExplain(runId, features);
  await fetchChart(); // the whole history, downsampled, now that it is final
  await refreshBoundary();
}

start().catch((error) => pageError(error));
