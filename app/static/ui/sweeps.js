// /ui/sweeps: every sweep of the owner, newest first (as GET /sweeps answers),
// with its strategy, status, trials ended of planned and best value; polled
// every second while any is running.
import { ApiError, el, everyItem, fmt, pageError, url } from "./common.js";

const table = document.getElementById("sweeps");
const body = table.querySelector("tbody");
const count = document.getElementById("sweeps-count");
const empty = document.getElementById("empty");

// trials no longer pending, of those planned
function ended(sweep) {
  return Object.entries(sweep.counts)
    .filter(([state]) => state !== "pending")
    .reduce((sum, [, n]) => sum + n, 0);
}

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function render(sweeps, datasets) {
  body.replaceChildren(
    ...sweeps.map((sweep) => {
      const done = ended(sweep);
      const name = sweep.name || sweep.id.slice(0, 8);
      const best = sweep.best ? `${fmt(sweep.best.value)} (#${sweep.best.number})` : "—";
      const tr = el(
        "tr",
        {},
        el("td", { class: "wrap name" }, el("a", { href: url(`/ui/sweeps/${encodeURIComponent(sweep.id)}`), text: name })),
        el("td", { class: "wrap", text: datasets.get(sweep.dataset_id) || sweep.dataset_id }),
        el("td", { text: sweep.strategy }),
        el("td", {}, el("span", { class: `status ${sweep.status}`, text: sweep.status })),
        el(
          "td",
          { class: "num" },
          el("progress", { max: sweep.trials_planned || 1, value: done }),
          el("span", { class: "muted", text: ` ${done}/${sweep.trials_planned}` }),
        ),
        el("td", { text: `${sweep.metric} (${sweep.direction === "maximize" ? "max" : "min"})` }),
        el("td", { class: "num", text: best }),
        el("td", { class: "muted", text: when(sweep.created_at), title: sweep.created_at }),
      );
      tr.dataset.sweepId = sweep.id;
      tr.dataset.status = sweep.status;
      return tr;
    }),
  );
  count.textContent = `${sweeps.length} sweep${sweeps.length === 1 ? "" : "s"}`;
  empty.hidden = sweeps.length > 0;
  table.dataset.loaded = "true";
}

async function refresh() {
  try {
    const [sweeps, sets] = await Promise.all([everyItem("/sweeps"), everyItem("/datasets")]);
    render(sweeps, new Map(sets.map((d) => [d.id, d.name])));
    pageError(null);
    if (sweeps.some((sweep) => sweep.status === "running")) setTimeout(refresh, 1000);
  } catch (error) {
    pageError(error instanceof ApiError ? error : new Error(`cannot reach the server: ${error}`));
    setTimeout(refresh, 3000);
  }
}

refresh();
