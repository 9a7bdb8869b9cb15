// /ui/sweeps/{id}: a sweep's status and settings, Cancel while it runs, its
// trials as a table (one column per searched hyperparameter, sortable by any
// column, the best trial highlighted) and the metric against a chosen
// parameter as a scatter (sweep-chart.js). GET /sweeps/{id} is polled every
// second while the sweep is running, and no more once it has ended.
import { Scatter } from "./sweep-chart.js";
import { ApiError, el, fmt, getJSON, pageError, postJSON, url } from "./common.js";

const root = document.getElementById("sweep");
const sweepId = root.dataset.sweepId;
const path = `/sweeps/${encodeURIComponent(sweepId)}`;
const table = document.getElementById("trials");
const cancel = document.getElementById("cancel");
const paramSelect = document.getElementById("chart-param");
const scatter = new Scatter(document.getElementById("chart"));

let sweep = null;
let datasetName = null;
let sortKey = "number";
let descending = false;

const STATES = ["complete", "pending", "pruned", "failed", "cancelled"];

function ended(s) {
  return Object.entries(s.counts)
    .filter(([state]) => state !== "pending")
    .reduce((sum, [, n]) => sum + n, 0);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" }) : "—";
}

function spaceText(space) {
  if (Array.isArray(space)) return space.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ");
  return `${fmt(space.low)} … ${fmt(space.high)}${space.log ? " (log)" : ""}`;
}

function countsText(counts) {
  const parts = STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
  return parts.join(" · ") || "none yet";
}

function runLink(trial, text) {
  if (!trial.run_id) return el("span", { class: "muted", text: "deleted" });
  return el("a", { href: url(`/ui/runs/${encodeURIComponent(trial.run_id)}`), text });
}

function renderSummary() {
  const s = sweep;
  const better = s.direction === "maximize" ? "higher is better" : "lower is better";
  const pruner = s.pruner
    ? `median: after ${s.pruner.startup_trials} trials, from epoch ${s.pruner.warmup_epochs}, every ${s.pruner.interval_epochs ?? "auto"} epochs`
    : "none";
  const best = s.best
    ? el("span", {}, el("strong", { text: fmt(s.best.value, 6) }), ` trial #${s.best.number} · `, runLink(s.best, "its run"))
    : "—";
  const rows = [
    ["dataset", datasetName || s.dataset_id],
    ["strategy", s.strategy === "tpe" ? `tpe (${s.startup_trials} random first)` : s.strategy],
    ["metric", `${s.metric}, ${s.direction} (${better})`],
    ...Object.entries(s.search).map(([name, space]) => [`search ${name}`, spaceText(space)]),
    ["trials", `${s.trials_planned} planned, ${s.parallel} at once`],
    ["counts", countsText(s.counts)],
    ["best", best],
    ["seed", fmt(s.seed)],
    ["pruner", pruner],
    ["created", when(s.created_at)],
    ["finished", when(s.finished_at)],
  ];
  document.querySelector("#summary tbody").replaceChildren(
    ...rows.map(([name, value]) => {
      const td = el("td");
      td.append(value);
      const tr = el("tr", {}, el("th", { text: name }), td);
      tr.dataset.name = name;
      return tr;
    }),
  );
}

// ---- the trials table ----

function columns() {
  return [
    { key: "number", label: "#", num: true, value: (t) => t.number },
    ...Object.keys(sweep.search).map((name) => ({
      key: `param:${name}`,
      label: name,
      param: name,
      num: Array.isArray(sweep.search[name]) ? sweep.search[name].every((v) => typeof v === "number") : true,
      value: (t) => t.params[name],
    })),
    { key: "state", label: "State", value: (t) => t.state },
    { key: "value", label: sweep.metric, num: true, value: (t) => t.value },
    { key: "epochs", label: "Epochs", num: true, value: (t) => t.epochs },
    { key: "run", label: "Run", value: (t) => t.run_id },
  ];
}

function compareValues(a, b) {
  const missingA = a === null || a === undefined;
  const missingB = b === null || b === undefined;
  if (missingA || missingB) return missingA === missingB ? 0 : missingA ? 1 : -1; // blanks last
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}

function sortBy(key) {
  if (sortKey === key) descending = !descending;
  else {
    sortKey = key;
    // the metric's better end first
    descending = key === "value" && sweep.direction === "maximize";
  }
  renderTrials();
}

function renderHead(cols) {
  const head = table.tHead.rows[0];
  if (head.dataset.keys === cols.map((c) => c.key).join("\n")) return;
  head.dataset.keys = cols.map((c) => c.key).join("\n");
  head.replaceChildren(
    ...cols.map((c) => {
      const th = el("th", { class: c.num ? "num" : "", text: c.label, tabIndex: 0 });
      th.dataset.key = c.key;
      if (c.param) th.dataset.param = c.param;
      th.addEventListener("click", () => sortBy(c.key));
      th.addEventListener("keydown", (event) => event.key === "Enter" && sortBy(c.key));
      return th;
    }),
  );
}

// a searched value of null (batch_size: the full batch) is "null", not a blank
function paramText(params, name) {
  if (!(name in params)) return "—";
  return params[name] === null ? "null" : fmt(params[name], 6);
}

function stateCell(trial) {
  const text = trial.state === "pending" && trial.run_status ? `pending (${trial.run_status})` : trial.state;
  const td = el("td", {}, el("span", { class: `status ${trial.state}`, text }));
  if (trial.error) {
    td.title = trial.error;
    td.append(el("span", { class: "muted", text: ` ${trial.error.slice(0, 60)}` }));
  }
  return td;
}

function renderTrials() {
  const cols = columns();
  renderHead(cols);
  const column = cols.find((c) => c.key === sortKey) || cols[0];
  const trials = [...sweep.trials].sort((a, b) => {
    const [va, vb] = [column.value(a), column.value(b)];
    const order = compareValues(va, vb);
    const blank = va === null || va === undefined || vb === null || vb === undefined;
    return (blank ? order : descending ? -order : order) || a.number - b.number;
  });
  const best = sweep.best ? sweep.best.number : null;
  table.tBodies[0].replaceChildren(
    ...trials.map((t) => {
      const valueCell = el("td", { class: "num", text: fmt(t.value, 6) });
      if (t.number === best) valueCell.append(el("span", { class: "best-mark", text: "best" }));
      const tr = el(
        "tr",
        {},
        el("td", { class: "num", text: String(t.number) }),
        ...cols.filter((c) => c.param).map((c) => el("td", { class: c.num ? "num" : "", text: paramText(t.params, c.param) })),
        stateCell(t),
        valueCell,
        el("td", { class: "num", text: fmt(t.epochs) }),
        el("td", {}, runLink(t, t.run_id ? t.run_id.slice(0, 8) : "")),
      );
      tr.dataset.number = String(t.number);
      tr.dataset.state = t.state;
      if (t.value !== null) tr.dataset.value = String(t.value);
      if (t.number === best) tr.classList.add("best");
      return tr;
    }),
  );
  for (const th of table.tHead.rows[0].cells) {
    th.setAttribute("aria-sort", th.dataset.key === sortKey ? (descending ? "descending" : "ascending") : "none");
  }
  document.getElementById("trials-count").textContent = `${sweep.trials.length} of ${sweep.trials_planned}`;
}

// ---- the chart ----

function renderChart() {
  const names = Object.keys(sweep.search);
  if (paramSelect.options.length !== names.length) {
    paramSelect.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
  }
  const param = paramSelect.value || names[0];
  const { axis, left } = scatter.draw(sweep, param);
  document.getElementById("chart-scale").textContent =
    axis.kind === "log" ? "log x axis" : axis.kind === "category" ? "values at even positions" : "";
  const missing = Object.entries(left).map(([state, n]) => `${n} ${state}`);
  const note = document.getElementById("chart-note");
  note.textContent = missing.length ? `Left out, without a value yet or at all: ${missing.join(", ")}.` : "";
  note.hidden = !missing.length;
}

// ---- the page ----

function render() {
  const name = sweep.name || sweep.id.slice(0, 8);
  document.getElementById("sweep-name").textContent = name;
  document.title = `Sweep ${name} · twolayer`;
  const status = document.getElementById("status");
  status.className = `status ${sweep.status}`;
  status.textContent = sweep.status;
  document.getElementById("progress").textContent = `${ended(sweep)}/${sweep.trials_planned} trials ended`;
  const note = document.getElementById("sweep-note");
  note.textContent = sweep.note || "";
  note.hidden = !sweep.note;
  cancel.hidden = sweep.status !== "running";
  renderSummary();
  renderTrials();
  renderChart();
  root.dataset.status = sweep.status;
  root.dataset.trials = String(sweep.trials.length);
}

async function refresh() {
  try {
    sweep = await getJSON(path);
    if (datasetName === null) {
      datasetName = await getJSON(`/datasets/${encodeURIComponent(sweep.dataset_id)}`)
        .then((d) => d.name)
        .catch(() => "");
    }
    render();
    pageError(null);
    if (sweep.status === "running") setTimeout(refresh, 1000);
  } catch (error) {
    if (error instanceof ApiError && error.status < 500) {
      pageError(error); // not found (or not this owner's): nothing to poll
      return;
    }
    pageError(new Error(`cannot reach the server: ${error.message || error}`));
    setTimeout(refresh, 3000);
  }
}

cancel.addEventListener("click", async () => {
  cancel.disabled = true;
  try {
    sweep = await postJSON(`${path}/cancel`, {});
    render();
  } catch (error) {
    pageError(error);
  } finally {
    cancel.disabled = false;
  }
});
paramSelect.addEventListener("change", () => sweep && renderChart());

refresh();
