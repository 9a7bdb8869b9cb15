// /ui/compare?run=ID&run=ID…: the runs' curves overlaid (one colour a run,
// validation dashed), their hyperparameters with the differing rows
// highlighted, and their final metrics side by side.
import { PALETTE, el, fmt, getJSON, makeChart, pageError, runLabel, url } from "./common.js";

const POINTS = 1000;
const ids = [...new Set(new URLSearchParams(location.search).getAll("run"))];

function header(runs) {
  return el(
    "tr",
    {},
    el("th"),
    ...runs.map((run, i) => {
      const th = el("th", {}, el("span", { class: "swatch" }), el("a", { href: url(`/ui/runs/${encodeURIComponent(run.id)}`), text: runLabel(run) }));
      th.firstChild.style.background = PALETTE[i % PALETTE.length];
      return th;
    }),
  );
}

function same(values) {
  const first = JSON.stringify(values[0]);
  return values.every((v) => JSON.stringify(v) === first);
}

function tables(runs, datasets) {
  const names = [...new Set(runs.flatMap((run) => Object.keys(run.hyperparameters)))];
  const rows = [["dataset", runs.map((run) => datasets.get(run.dataset_id) || run.dataset_id)], ...names.map((n) => [n, runs.map((run) => run.hyperparameters[n])])];
  const hyper = document.getElementById("compare-hyperparameters");
  hyper.tHead.replaceChildren(header(runs));
  hyper.tBodies[0].replaceChildren(
    ...rows.map(([name, values]) => {
      const tr = el("tr", {}, el("th", { text: name }), ...values.map((v) => el("td", { class: name === "dataset" ? "wrap" : "num", text: fmt(v, 6) })));
      tr.dataset.name = name;
      if (!same(values)) tr.classList.add("differs");
      return tr;
    }),
  );
  const metrics = document.getElementById("compare-metrics");
  metrics.tHead.replaceChildren(header(runs));
  const keys = ["accuracy", "cost", "f1", "roc_auc"];
  const metricRows = [["status", runs.map((run) => run.status)], ["epochs run", runs.map((run) => run.progress.epoch)]];
  for (const split of ["train", "validation"]) {
    for (const key of keys) {
      metricRows.push([`${split} ${key}`, runs.map((run) => (run.metrics && run.metrics[split] ? run.metrics[split][key] : null))]);
    }
  }
  metrics.tBodies[0].replaceChildren(
    ...metricRows.map(([name, values]) => el("tr", {}, el("th", { text: name }), ...values.map((v) => el("td", { class: "num", text: fmt(v) })))),
  );
}

function charts(runs, histories) {
  const series = (kind) =>
    runs.flatMap((run, i) => {
      const stroke = PALETTE[i % PALETTE.length];
      const label = runLabel(run);
      return [
        { label: `${label} train`, stroke, width: 2, spanGaps: true, points: { show: false } },
        { label: `${label} validation`, stroke, width: 2, dash: [6, 4], spanGaps: true, points: { show: false } },
      ];
    });
  // one x axis for every run: uPlot.join aligns the runs' epochs (null where a run has none)
  const join = (train, validation) =>
    window.uPlot.join(
      histories.flatMap((h) => [
        [h.epoch, h[train]],
        [h.epoch, h[validation] || h.epoch.map(() => null)],
      ]),
    );
  const costBox = document.getElementById("chart-cost");
  const accuracyBox = document.getElementById("chart-accuracy");
  const cost = makeChart(costBox, series("cost"));
  const accuracy = makeChart(accuracyBox, series("accuracy"));
  const costData = join("train_cost", "validation_cost");
  cost.setData(costData);
  accuracy.setData(join("train_accuracy", "validation_accuracy"));
  costBox.dataset.points = String(costData[0].length);
  accuracyBox.dataset.points = String(costData[0].length);
  const legend = document.getElementById("legend");
  legend.replaceChildren(
    ...runs.map((run, i) => {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = PALETTE[i % PALETTE.length];
      return el("span", { class: "legend-item" }, swatch, runLabel(run));
    }),
  );
}

async function start() {
  if (ids.length < 1) {
    pageError(new Error("pick runs to compare on the runs page"));
    return;
  }
  const runs = await Promise.all(ids.map((id) => getJSON(`/runs/${encodeURIComponent(id)}`)));
  const histories = await Promise.all(ids.map((id) => getJSON(`/runs/${encodeURIComponent(id)}/chart?points=${POINTS}`)));
  const datasets = new Map(
    await Promise.all(
      [...new Set(runs.map((run) => run.dataset_id))].map(async (id) => {
        const d = await getJSON(`/datasets/${encodeURIComponent(id)}`).catch(() => null);
        return [id, d ? d.name : id];
      }),
    ),
  );
  document.getElementById("title").textContent = `Compare ${runs.length} runs`;
  tables(runs, datasets);
  charts(runs, histories);
  document.body.dataset.loaded = "true";
}

start().catch((error) => pageError(error));
