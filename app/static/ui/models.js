// /ui/models: the model registry. Models with their latest version and aliases;
// a model's versions (each with its run and metrics) and aliases; register a
// succeeded run as a model's next version; point an alias at a version; delete.
import { api, everyItem, el, fmt, getJSON, pageError, postJSON, runLabel, showProblem, url } from "./common.js";

const modelsBody = document.querySelector("#models tbody");
const empty = document.getElementById("models-empty");
const names = document.getElementById("model-names");
const registerForm = document.getElementById("register-form");
const registerModel = document.getElementById("register-model");
const registerRun = document.getElementById("register-run");
const registerProblem = document.getElementById("register-problem");
const detail = document.getElementById("detail");
const detailProblem = document.getElementById("detail-problem");
const versionsBody = document.querySelector("#versions tbody");
const aliasForm = document.getElementById("alias-form");
const aliasName = document.getElementById("alias-name");
const aliasVersion = document.getElementById("alias-version");
const aliasRef = document.getElementById("alias-ref");

let shown = new URLSearchParams(location.search).get("model");
const runs = new Map(); // id → run

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function aliasText(aliases) {
  const parts = Object.entries(aliases).map(([alias, version]) => `${alias} → ${version}`);
  return parts.join(", ") || "—";
}

async function send(path, method, body) {
  const options = { method };
  if (body !== undefined) {
    options.headers = { "Content-Type": "application/json" };
    options.body = JSON.stringify(body);
  }
  const response = await api(path, options);
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ detail: response.statusText }));
    throw Object.assign(new Error(problem.detail), { problem });
  }
  return response.status === 204 ? null : response.json();
}

async function loadModels() {
  const models = await everyItem("/models");
  modelsBody.replaceChildren(
    ...models.map((m) => {
      const link = el("a", { href: `?model=${encodeURIComponent(m.name)}`, text: m.name });
      link.addEventListener("click", (event) => {
        event.preventDefault();
        show(m.name);
      });
      return el(
        "tr",
        { "data-model": m.name },
        el("td", {}, link),
        el("td", { class: "num", text: fmt(m.latest_version) }),
        el("td", { class: "num", text: String(m.version_count) }),
        el("td", { text: aliasText(m.aliases) }),
        el("td", { text: when(m.updated_at) }),
      );
    }),
  );
  empty.hidden = models.length > 0;
  names.replaceChildren(...models.map((m) => el("option", { value: m.name })));
}

async function loadRuns() {
  const succeeded = await everyItem("/runs?status=succeeded");
  for (const run of succeeded) runs.set(run.id, run);
  registerRun.replaceChildren(
    ...succeeded.map((run) => el("option", { value: run.id, text: `${runLabel(run)} (${run.id.slice(0, 8)})` })),
  );
}

function accuracy(metrics, part) {
  return metrics && metrics[part] ? fmt(metrics[part].accuracy) : "—";
}

async function show(name) {
  shown = name;
  history.replaceState(null, "", `?model=${encodeURIComponent(name)}`);
  showProblem(detailProblem, null);
  const model = await getJSON(`/models/${encodeURIComponent(name)}`);
  document.getElementById("detail-title").textContent = `Model ${model.name}`;
  document.getElementById("detail-description").textContent = model.description || "";
  versionsBody.replaceChildren(
    ...model.versions.map((v) => {
      const run = runs.get(v.run_id);
      const remove = el("button", { type: "button", text: "Delete", title: "delete this version" });
      remove.addEventListener("click", () => act(() => send(`/models/${encodeURIComponent(name)}/versions/${v.version}`, "DELETE")));
      return el(
        "tr",
        { "data-version": String(v.version) },
        el("td", { class: "num", text: String(v.version) }),
        el("td", {}, el("a", { href: url(`/ui/runs/${v.run_id}`), text: run ? runLabel(run) : v.run_id.slice(0, 8) })),
        el("td", { text: v.aliases.join(", ") || "—" }),
        el("td", { class: "num", text: accuracy(v.metrics, "train") }),
        el("td", { class: "num", text: accuracy(v.metrics, "validation") }),
        el("td", { text: v.feature_names.join(", ") }),
        el("td", { text: when(v.created_at) }),
        el("td", {}, remove),
      );
    }),
  );
  aliasVersion.replaceChildren(...model.versions.map((v) => el("option", { value: String(v.version), text: String(v.version) })));
  const current = model.aliases[aliasName.value];
  if (current !== undefined) aliasVersion.value = String(current); // where it points now
  aliasRef.textContent = `"model": "${model.name}@${aliasName.value || "alias"}"`;
  detail.hidden = false;
}

async function act(change) {
  try {
    await change();
    await loadModels();
    if (shown) await show(shown).catch(() => { detail.hidden = true; });
  } catch (error) {
    showProblem(detailProblem, error);
  }
}

registerForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showProblem(registerProblem, null);
  const name = registerModel.value.trim();
  try {
    await send(`/models/${encodeURIComponent(name)}`, "PUT", {});
    await postJSON(`/models/${encodeURIComponent(name)}/versions`, { run_id: registerRun.value });
    await loadModels();
    await show(name);
  } catch (error) {
    showProblem(registerProblem, error);
  }
});

aliasForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const path = `/models/${encodeURIComponent(shown)}/aliases/${encodeURIComponent(aliasName.value)}`;
  act(() => send(path, "PUT", { version: Number(aliasVersion.value) }));
});
aliasName.addEventListener("input", () => {
  aliasRef.textContent = `"model": "${shown}@${aliasName.value || "alias"}"`;
});

document.getElementById("delete-model").addEventListener("click", () => {
  const name = shown;
  act(async () => {
    await send(`/models/${encodeURIComponent(name)}`, "DELETE");
    shown = null;
    detail.hidden = true;
    history.replaceState(null, "", location.pathname);
  });
});

(async () => {
  try {
    await Promise.all([loadModels(), loadRuns()]);
    if (shown) await show(shown);
  } catch (error) {
    pageError(error);
  }
})();
