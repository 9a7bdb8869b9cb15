// What every dashboard page shares: API calls with the key, the key form,
// problem+json display, the events stream over fetch(), and small helpers.
//
// The key lives in sessionStorage only (this tab, gone when it closes): never in
// a URL, never in a cookie. A call answered 401 asks for it once (every call
// waiting on the same form) and is sent again with it.

const ROOT = document.body.dataset.root || "";
const KEY = "twolayer.api-key";

export const ACTIVE = new Set(["queued", "running"]);

export function url(path) {
  return ROOT + path;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let asking = null; // the open key form's promise, shared by every call waiting on it

function askForKey(reason) {
  if (asking) return asking;
  const dialog = document.getElementById("key-dialog");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  error.hidden = !reason;
  error.textContent = reason || "";
  input.value = "";
  asking = new Promise((resolve) => {
    form.addEventListener(
      "submit",
      (event) => {
        event.preventDefault();
        const key = input.value.trim();
        input.value = "";
        sessionStorage.setItem(KEY, key);
        dialog.close();
        asking = null;
        showForget();
        resolve();
      },
      { once: true },
    );
  });
  dialog.showModal();
  input.focus();
  return asking;
}

function showForget() {
  const button = document.getElementById("forget-key");
  button.hidden = !sessionStorage.getItem(KEY);
}

// Escape does not close the key form: the calls waiting on it need a key
document.getElementById("key-dialog").addEventListener("cancel", (event) => event.preventDefault());

document.getElementById("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  location.reload();
});
showForget();

async function readProblem(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText, status: response.status };
  }
}

// fetch() on this server with the key; a 401 asks for a key and tries again.
export async function api(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    const key = sessionStorage.getItem(KEY);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const response = await fetch(url(path), { ...options, headers, credentials: "omit" });
    if (response.status !== 401) return response;
    const problem = await readProblem(response);
    sessionStorage.removeItem(KEY);
    await askForKey(key ? problem.detail : "");
  }
}

// The JSON of a 2xx answer, or ApiError with the problem details.
export async function getJSON(path, options = {}) {
  const response = await api(path, options);
  if (!response.ok) throw new ApiError(response.status, await readProblem(response));
  return response.json();
}

export function postJSON(path, body) {
  return getJSON(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

// Every item of a paged list (limit/offset, {items, total}).
export async function everyItem(path) {
  const items = [];
  const sep = path.includes("?") ? "&" : "?";
  for (;;) {
    const page = await getJSON(`${path}${sep}limit=1000&offset=${items.length}`);
    items.push(...page.items);
    if (page.items.length === 0 || items.length >= page.total) return items;
  }
}

// A problem (detail, and each validation error) shown in `element`.
export function showProblem(element, error) {
  element.replaceChildren();
  if (!error) {
    element.hidden = true;
    return;
  }
  const problem = error.problem || { detail: String(error.message || error) };
  const head = document.createElement("p");
  head.textContent = problem.detail || problem.title || "the request failed";
  element.append(head);
  if (Array.isArray(problem.errors) && problem.errors.length) {
    const list = document.createElement("ul");
    for (const item of problem.errors) {
      const li = document.createElement("li");
      const where = (item.loc || []).filter((part) => part !== "body").join(".");
      li.textContent = where ? `${where}: ${item.msg}` : item.msg;
      list.append(li);
    }
    element.append(list);
  }
  element.hidden = false;
}

export function pageError(error) {
  const element = document.getElementById("page-error");
  element.textContent = error ? error.message || String(error) : "";
  element.hidden = !error;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- server-sent events over fetch() (EventSource cannot send a header) ----

const BLANK_LINE = /\r\n\r\n|\n\n|\r\r/;

function parseEvent(block) {
  const event = { event: "message", id: undefined, data: [] };
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(":")) continue; // a comment: the keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event.event = value;
    else if (field === "id") event.id = value;
    else if (field === "data") event.data.push(value);
  }
  if (!event.data.length) return null;
  return { event: event.event, id: event.id, data: JSON.parse(event.data.join("\n")) };
}

// Follows GET /runs/{id}/events from epoch `since`, calling onEvent({event, id,
// data}) for each event until `end`. A dropped connection is opened again with
// Last-Event-ID (the last epoch received), so no epoch is missed or repeated.
export async function followEvents(runId, since, onEvent, { signal } = {}) {
  let last = String(since || 0);
  let pause = 250;
  const stats = (window.twolayerEvents ||= { connections: 0, events: 0 });
  while (!signal || !signal.aborted) {
    try {
      const response = await api(`/runs/${encodeURIComponent(runId)}/events?since=${since || 0}`, {
        headers: { Accept: "text/event-stream", "Last-Event-ID": last },
        signal,
        cache: "no-store",
      });
      if (!response.ok) throw new ApiError(response.status, await readProblem(response));
      stats.connections += 1;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let match;
        while ((match = BLANK_LINE.exec(buffer))) {
          const event = parseEvent(buffer.slice(0, match.index));
          buffer = buffer.slice(match.index + match[0].length);
          if (!event) continue;
          if (event.id !== undefined) last = event.id;
          stats.events += 1;
          onEvent(event);
          if (event.event === "end") return event;
        }
        pause = 250;
      }
    } catch (error) {
      if (signal && signal.aborted) return null;
      if (error instanceof ApiError && error.status < 500 && error.status !== 408) throw error;
    }
    await sleep(pause); // the stream dropped before its end: open it again
    pause = Math.min(pause * 2, 5000);
  }
  return null;
}

// ---- formatting ----

export function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    const abs = Math.abs(value);
    if (Number.isInteger(value) && abs < 1e19) return String(value); // a seed below 2**63 in full
    if (abs >= 1e6 || (abs !== 0 && abs < 1e-3)) return value.toExponential(2);
    return String(Number(value.toPrecision(digits)));
  }
  if (typeof value === "boolean") return value ? "true" : "false";
  return String(value);
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

export function runLabel(run) {
  return run.name || run.id.slice(0, 8);
}

// ---- charts (the vendored uPlot) ----

export const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

// TensorBoard's smoothing: an exponential moving average, debiased at the start;
// a null (non-finite) figure is skipped and stays null.
export function smooth(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    count += 1;
    out[i] = last / (1 - weight ** count);
  }
  return out;
}

export function chartWidth(element) {
  return Math.max(280, Math.floor(element.getBoundingClientRect().width) - 4);
}

// 1, 2 and 5 times every power of ten a float64 holds: tick steps for any range
const INCREMENTS = [];
for (let exponent = -300; exponent <= 300; exponent++) {
  for (const m of [1, 2, 5]) INCREMENTS.push(Number(`${m}e${exponent}`));
}

export function makeChart(element, series, { yRange } = {}) {
  const options = {
    width: chartWidth(element),
    height: 260,
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: false }, y: yRange ? { range: yRange } : {} },
    axes: [
      { label: "epoch", stroke: "#4b5563", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#d1d5db" } },
      {
        stroke: "#4b5563",
        grid: { stroke: "#eef0f3" },
        ticks: { stroke: "#d1d5db" },
        // as wide as the longest tick label (1.00e+271 included)
        size: (u, values) => Math.max(44, 24 + 7.5 * Math.max(0, ...(values || []).map((v) => String(v).length))),
        incrs: INCREMENTS, // uPlot's own stop near 1e16; a diverged run's cost is ~1e271
        values: (u, splits) => splits.map((v) => (v === null ? "" : fmt(v, 3))),
      },
    ],
    series: [{ label: "epoch" }, ...series],
    hooks: {
      // when and how much was last drawn: read by the tests and bench/dashboard.py
      draw: [
        (u) => {
          element.dataset.drawnPoints = String(u.data[0].length);
          element.dataset.drawnAt = performance.now().toFixed(1);
        },
      ],
    },
  };
  const data = [[], ...series.map(() => [])];
  const chart = new window.uPlot(options, data, element);
  window.addEventListener("resize", () => chart.setSize({ width: chartWidth(element), height: 260 }));
  return chart;
}
