// A run's page: one instance's prediction explained. POST /runs/{id}/predict
// with explain true; ŷ, the label, and each feature's gradient ∂ŷ/∂x and
// attribution x·∂ŷ/∂x, the attributions also as bars.
import { el, fmt, postJSON, showProblem } from "./common.js";

export function setupExplain(runId, featureNames) {
  const panel = document.getElementById("explain-panel");
  const fields = document.getElementById("explain-fields");
  const result = document.getElementById("explain-result");
  const table = document.getElementById("explain-table");
  const problem = document.getElementById("explain-problem");
  if (!panel.hidden) return;
  fields.replaceChildren(
    ...featureNames.map((name, j) =>
      el(
        "div",
        { class: "row" },
        el("label", { htmlFor: `explain-x${j}`, text: name }),
        el("input", { id: `explain-x${j}`, type: "number", step: "any", value: "0", required: true }),
      ),
    ),
  );
  panel.hidden = false;
  document.getElementById("explain-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showProblem(problem, null);
    const x = featureNames.map((_, j) => Number(document.getElementById(`explain-x${j}`).value));
    try {
      const answer = await postJSON(`/runs/${encodeURIComponent(runId)}/predict`, {
        instances: [x],
        explain: true,
      });
      const gradients = answer.gradients[0];
      const attributions = answer.attributions[0];
      result.textContent = `ŷ = ${fmt(answer.probabilities[0], 6)} → label ${fmt(answer.labels[0])}`;
      result.dataset.probability = String(answer.probabilities[0]);
      result.hidden = false;
      const largest = Math.max(...attributions.map(Math.abs), 1e-300);
      table.querySelector("tbody").replaceChildren(
        ...featureNames.map((name, j) => {
          const bar = el("span", { class: attributions[j] >= 0 ? "attr-bar pos" : "attr-bar neg" });
          bar.style.width = `${Math.round((80 * Math.abs(attributions[j])) / largest)}px`;
          return el(
            "tr",
            { "data-gradient": String(gradients[j]), "data-attribution": String(attributions[j]) },
            el("th", { text: name }),
            el("td", { class: "num", text: fmt(x[j]) }),
            el("td", { class: "num", text: fmt(gradients[j]) }),
            el("td", { class: "num", text: fmt(attributions[j]) }),
            el("td", {}, bar),
          );
        }),
      );
      table.hidden = false;
    } catch (error) {
      showProblem(problem, error);
    }
  });
}
