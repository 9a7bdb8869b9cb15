// A sweep's scatter (the vendored uPlot): the sweep's metric (y) against one
// searched hyperparameter (x). A numeric x is on a log axis when its range
// was searched with log: true or its values span more than two decades; a
// list of booleans, strings, nulls or mixed values is placed at even
// positions 0, 1, … with its values as the labels. Complete trials are filled
// points, the best one ringed; pruned and cancelled trials are drawn hollow
// (their metric where they stopped); a trial without a value is left out and
// counted in the note.
import { chartWidth, fmt } from "./common.js";

const HEIGHT = 300;
const label = (v) => (typeof v === "string" ? v : v === null || v === undefined ? "null" : fmt(v, 6));
const key = (v) => JSON.stringify(v ?? null);
const INTEGER_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

// How the parameter's values go on the x axis.
export function axisOf(sweep, param) {
  const space = sweep.search[param];
  const seen = sweep.trials.map((t) => t.params[param]).filter((v) => v !== undefined);
  if (Array.isArray(space) && !space.every((v) => typeof v === "number")) {
    const categories = [...space];
    for (const v of seen) if (!categories.some((c) => key(c) === key(v))) categories.push(v);
    return { kind: "category", categories, labels: categories.map(label) };
  }
  const numbers = [...(Array.isArray(space) ? space : [space.low, space.high]), ...seen].filter(Number.isFinite);
  const low = Math.min(...numbers);
  const high = Math.max(...numbers);
  const log = low > 0 && (Boolean(space.log) || high / low > 100);
  return { kind: log ? "log" : "linear", low, high, integer: numbers.every(Number.isInteger) };
}

function position(axis, v) {
  if (axis.kind === "category") return axis.categories.findIndex((c) => key(c) === key(v));
  return typeof v === "number" && (axis.kind !== "log" || v > 0) ? v : null;
}

// The plotted points and the trials left out, sorted by x as uPlot wants.
export function pointsOf(sweep, param, axis) {
  const best = sweep.best ? sweep.best.number : null;
  const points = [];
  const left = {};
  for (const t of sweep.trials) {
    const x = position(axis, t.params[param]);
    if (t.value === null || t.value === undefined || x === null || x < 0) {
      left[t.state] = (left[t.state] || 0) + 1;
      continue;
    }
    points.push({ x, y: t.value, trial: t, best: t.number === best });
  }
  points.sort((a, b) => a.x - b.x || a.trial.number - b.trial.number);
  return { points, left };
}

const only = (points, test) => points.map((p) => (test(p) ? p.y : null));

function data(points) {
  return [
    points.map((p) => p.x),
    only(points, (p) => p.trial.state === "complete"),
    only(points, (p) => p.trial.state === "pruned"),
    only(points, (p) => p.trial.state !== "complete" && p.trial.state !== "pruned"),
    only(points, (p) => p.best),
  ];
}

function scatterSeries(name, color, { fill = color, size = 9 } = {}) {
  return {
    label: name,
    stroke: color,
    paths: () => null, // points only, no line between them
    points: { show: true, size, width: 2, stroke: color, fill },
    value: (u, v) => (v === null || v === undefined ? "—" : fmt(v)),
  };
}

// the whole searched range (and any value seen), not only the trials so far
function xScale(axis) {
  if (axis.kind === "category") return { time: false, range: () => [-0.5, axis.categories.length - 0.5] };
  if (axis.kind === "log") return { time: false, distr: 3, log: 10, range: () => [axis.low / 1.5, axis.high * 1.5] };
  return {
    time: false,
    range: () => {
      const [low, high] = [axis.low, axis.high];
      const pad = (high - low || Math.abs(high) || 1) * 0.06;
      return [low - pad, high + pad];
    },
  };
}

function xAxis(axis, param) {
  const base = { label: param, stroke: "#4b5563", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#d1d5db" } };
  if (axis.kind === "category") {
    return {
      ...base,
      splits: () => axis.categories.map((_, i) => i),
      values: (u, splits) => splits.map((i) => (i === null ? "" : axis.labels[i] ?? "")),
    };
  }
  const values = (u, splits) => splits.map((v) => (v === null ? "" : fmt(v, 3)));
  // an integer hyperparameter's ticks on integers only
  return axis.integer && axis.kind === "linear" ? { ...base, values, incrs: INTEGER_STEPS } : { ...base, values };
}

// Draws (or redraws) the scatter of `param` in `box`; returns what it drew.
export class Scatter {
  constructor(box) {
    this.box = box;
    this.chart = null;
    this.shape = null; // the parameter and its axis: a new one needs a new chart
    this.points = [];
    window.addEventListener("resize", () => this.chart && this.chart.setSize({ width: chartWidth(box), height: HEIGHT }));
  }

  draw(sweep, param) {
    const axis = axisOf(sweep, param);
    const { points, left } = pointsOf(sweep, param, axis);
    this.points = points;
    const shape = JSON.stringify([param, axis, sweep.metric]);
    if (shape !== this.shape) {
      if (this.chart) this.chart.destroy();
      this.chart = new window.uPlot(this.options(sweep, param, axis), data(points), this.box);
      this.shape = shape;
    } else {
      this.chart.setData(data(points));
    }
    this.box.dataset.points = String(points.length);
    this.box.dataset.axis = axis.kind;
    return { axis, left };
  }

  options(sweep, param, axis) {
    const box = this.box;
    const xLabel = (u, v, si, i) => {
      if (v === null || v === undefined || i === null || !this.points[i]) return "—";
      const at = axis.kind === "category" ? axis.labels[v] : fmt(v, 6);
      return `${at} · trial #${this.points[i].trial.number}`;
    };
    return {
      width: chartWidth(box),
      height: HEIGHT,
      legend: { live: true },
      cursor: { drag: { x: false, y: false }, points: { size: 12 } },
      scales: { x: xScale(axis), y: {} },
      axes: [
        xAxis(axis, param),
        {
          label: `${sweep.metric} (${sweep.direction})`,
          stroke: "#4b5563",
          grid: { stroke: "#eef0f3" },
          ticks: { stroke: "#d1d5db" },
          size: 60,
          values: (u, splits) => splits.map((v) => (v === null ? "" : fmt(v, 3))),
        },
      ],
      series: [
        { label: param, value: xLabel },
        scatterSeries("complete", "#2563eb"),
        scatterSeries("pruned", "#d97706", { fill: "#ffffff" }),
        scatterSeries("cancelled, failed", "#6b7280", { fill: "#ffffff" }),
        scatterSeries("best", "#059669", { fill: "rgba(0, 0, 0, 0)", size: 17 }), // a ring round it
      ],
      hooks: {
        // what was last drawn: read by the tests
        draw: [
          (u) => {
            box.dataset.drawnPoints = String(u.data[0].length);
            box.dataset.drawnAt = performance.now().toFixed(1);
          },
        ],
      },
    };
  }
}
