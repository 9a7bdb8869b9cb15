// /ui: every run of the owner, live while any is queued or running; sortable
// columns, filters by status and dataset, and runs picked for a comparison.
import { ACTIVE, ApiError, everyItem, el, fmt, pageError, url } from "./common.js";

const table = document.getElementById("runs");
const body = table.querySelector("tbody");
const statusFilter = document.getElementById("filter-status");
const datasetFilter = document.getElementById("filter-dataset");
const compare = document.getElementById("compare");
const count = document.getElementById("runs-count");
const empty = document.getElementById("empty");

let runs = [];
const datasets = new Map(); // id → name
const picked = new Set();
let sortKey = "created_at";
let descending = true;

function row(run) {
  const h = run.hyperparameters || {};
  const m = run.metrics || {};
  return {
    run,
    name: run.name || run.id,
    dataset: datasets.get(run.dataset_id) || run.dataset_id,
    status: run.status,
    progress: run.progress.epochs ? run.progress.epoch / run.progress.epochs : 0,
    hidden_units: h.hidden_units,
    learning_rate: h.learning_rate,
    epochs: h.epochs,
    batch_size: h.batch_size,
    optimizer: h.optimizer,
    train_accuracy: m.train ? m.train.accuracy : null,
    validation_accuracy: m.validation ? m.validation.accuracy : null,
    train_cost: m.train ? m.train.cost : null,
    validation_cost: m.validation ? m.validation.cost : null,
    created_at: run.created_at,
  };
}

function when(iso) {
  const date = new Date(iso);
  const today = date.toDateString() === new Date().toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}

function compareValues(a, b) {
  const missingA = a === null || a === undefined;
  const missingB = b === null || b === undefined;
  if (missingA || missingB) return missingA === missingB ? 0 : missingA ? 1 : -1; // blanks last
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}

function render() {
  const rows = runs
    .map(row)
    .filter((r) => !statusFilter.value || r.status === statusFilter.value)
    .filter((r) => !datasetFilter.value || r.run.dataset_id === datasetFilter.value);
  rows.sort((a, b) => {
    const order = compareValues(a[sortKey], b[sortKey]);
    const blank = a[sortKey] === null || a[sortKey] === undefined || b[sortKey] === null || b[sortKey] === undefined;
    return blank ? order : descending ? -order : order;
  });
  body.replaceChildren(
    ...rows.map((r) => {
      const run = r.run;
      const box = el("input", { type: "checkbox", checked: picked.has(run.id), title: "compare" });
      box.dataset.runId = run.id;
      box.addEventListener("change", () => {
        if (box.checked) picked.add(run.id);
        else picked.delete(run.id);
        updateCompare();
      });
      const bar = el("progress", { max: run.progress.epochs || 1, value: run.progress.epoch });
      const tr = el(
        "tr",
        {},
        el("td", { class: "check" }, box),
        el("td", { class: "wrap name" }, el("a", { href: url(`/ui/runs/${encodeURIComponent(run.id)}`), text: r.name })),
        el("td", { class: "wrap", text: r.dataset }),
        el("td", {}, el("span", { class: `status ${run.status}`, text: run.status })),
        el("td", { class: "num" }, bar, el("span", { class: "muted", text: ` ${run.progress.epoch}` })),
        el("td", { class: "num", text: fmt(r.hidden_units) }),
        el("td", { class: "num", text: fmt(r.learning_rate) }),
        el("td", { class: "num", text: fmt(r.epochs) }),
        el("td", { class: "num", text: r.batch_size === null ? "full" : fmt(r.batch_size) }),
        el("td", { text: fmt(r.optimizer) }),
        el("td", { class: "num", text: fmt(r.train_accuracy) }),
        el("td", { class: "num", text: fmt(r.validation_accuracy) }),
        el("td", { class: "num", text: fmt(r.train_cost) }),
        el("td", { class: "num", text: fmt(r.validation_cost) }),
        el("td", { class: "muted", text: when(run.created_at), title: run.created_at }),
      );
      tr.dataset.runId = run.id;
      tr.dataset.status = run.status;
      return tr;
    }),
  );
  for (const th of table.querySelectorAll("th[data-key]")) {
    th.setAttribute("aria-sort", th.dataset.key === sortKey ? (descending ? "descending" : "ascending") : "none");
  }
  count.textContent = `${rows.length} of ${runs.length} run${runs.length === 1 ? "" : "s"}`;
  empty.hidden = runs.length > 0;
  table.dataset.loaded = "true";
}

function updateCompare() {
  for (const id of picked) if (!runs.some((run) => run.id === id)) picked.delete(id);
  compare.disabled = picked.size < 2;
  compare.textContent = picked.size ? `Compare (${picked.size})` : "Compare";
}

function fillDatasets(items) {
  const chosen = datasetFilter.value;
  datasets.clear();
  const options = [el("option", { value: "", text: "all" })];
  for (const d of items) {
    datasets.set(d.id, d.name);
    options.push(el("option", { value: d.id, text: d.name }));
  }
  datasetFilter.replaceChildren(...options);
  datasetFilter.value = datasets.has(chosen) ? chosen : "";
}

async function refresh() {
  try {
    const [items, sets] = await Promise.all([everyItem("/runs"), everyItem("/datasets")]);
    fillDatasets(sets);
    runs = items;
    render();
    updateCompare();
    pageError(null);
    if (runs.some((run) => ACTIVE.has(run.status))) setTimeout(refresh, 1000);
  } catch (error) {
    pageError(error instanceof ApiError ? error : new Error(`cannot reach the server: ${error}`));
    setTimeout(refresh, 3000);
  }
}

for (const th of table.querySelectorAll("th[data-key]")) {
  th.tabIndex = 0;
  const sortBy = () => {
    if (sortKey === th.dataset.key) descending = !descending;
    else {
      sortKey = th.dataset.key;
      descending = false;
    }
    render();
  };
  th.addEventListener("click", sortBy);
  th.addEventListener("keydown", (event) => event.key === "Enter" && sortBy());
}
statusFilter.addEventListener("change", render);
datasetFilter.addEventListener("change", render);
compare.addEventListener("click", () => {
  const query = [...picked].map((id) => `run=${encodeURIComponent(id)}`).join("&");
  location.href = url(`/ui/compare?${query}`);
});

refresh();
