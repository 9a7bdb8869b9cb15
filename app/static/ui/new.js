// /ui/new: start a run on a dataset (existing, a new sample, or an uploaded CSV).
// The hyperparameter fields are rendered by the server from the engine's rules
// (app/api/ui.py); this script only reads them back by their data-kind.
import { api, ApiError, el, everyItem, pageError, postJSON, showProblem, url } from "./common.js";

const select = document.getElementById("dataset");
const runForm = document.getElementById("run-form");
const sampleForm = document.getElementById("sample-form");
const csvForm = document.getElementById("csv-form");

async function loadDatasets(chosen) {
  const items = await everyItem("/datasets");
  const keep = chosen || select.value;
  select.replaceChildren(
    el("option", { value: "", text: items.length ? "— pick one —" : "— none yet: make one →" }),
    ...items.map((d) =>
      el("option", { value: d.id, text: `${d.name} · ${d.n_samples}×${d.n_features}` }),
    ),
  );
  if (items.some((d) => d.id === keep)) select.value = keep;
  else if (items.length === 1) select.value = items[0].id;
  select.dataset.loaded = "true";
}

// A field's value as the API takes it; undefined leaves the server's default.
function value(field) {
  const kind = field.dataset.kind;
  if (kind === "bool") {
    const on = field.checked;
    return String(on) === field.dataset.default ? undefined : on;
  }
  const text = field.value.trim();
  if (text === field.dataset.default) return undefined;
  if (text === "") return null; // a nullable field emptied: none (else the server says why not)
  if (kind === "choice") return text;
  const number = Number(text);
  return Number.isNaN(number) ? text : number; // text: the server's 422 names the field
}

runForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const problem = document.getElementById("run-problem");
  showProblem(problem, null);
  const hyperparameters = {};
  for (const field of runForm.querySelectorAll("[data-kind]")) {
    const v = value(field);
    if (v !== undefined) hyperparameters[field.name] = v;
  }
  const body = { dataset_id: select.value || null, hyperparameters };
  const name = runForm.elements.name.value.trim();
  if (name) body.name = name;
  if (!body.dataset_id) {
    showProblem(problem, new Error("pick a dataset, or make one beside this form"));
    return;
  }
  const button = document.getElementById("start");
  button.disabled = true;
  try {
    const run = await postJSON("/runs", body);
    location.href = url(`/ui/runs/${encodeURIComponent(run.id)}`);
  } catch (error) {
    showProblem(problem, error);
  } finally {
    button.disabled = false;
  }
});

sampleForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const problem = document.getElementById("sample-problem");
  showProblem(problem, null);
  const f = sampleForm.elements;
  const number = (text) => (text.trim() === "" || Number.isNaN(Number(text)) ? text : Number(text));
  try {
    const dataset = await postJSON("/datasets/samples", {
      kind: f.kind.value,
      n_samples: number(f.n_samples.value),
      noise: number(f.noise.value),
      seed: number(f.seed.value),
    });
    await loadDatasets(dataset.id);
  } catch (error) {
    showProblem(problem, error);
  }
});

csvForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const problem = document.getElementById("csv-problem");
  showProblem(problem, null);
  const f = csvForm.elements;
  if (!f.file.files.length) {
    showProblem(problem, new Error("choose a CSV file"));
    return;
  }
  const form = new FormData();
  form.append("file", f.file.files[0]);
  form.append("name", f.name.value.trim());
  if (f.label_column.value.trim()) form.append("label_column", f.label_column.value.trim());
  try {
    const response = await api("/datasets/upload", { method: "POST", body: form });
    const answer = await response.json();
    if (!response.ok) throw new ApiError(response.status, answer);
    csvForm.reset();
    await loadDatasets(answer.id);
  } catch (error) {
    showProblem(problem, error);
  }
});

loadDatasets().catch((error) => pageError(error));
