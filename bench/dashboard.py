"""The dashboard's run page on a 100 000-epoch run, in Chromium.

    python bench/dashboard.py [--epochs 100000] [--repeat 5]

A real `twolayer serve` (SQLite, one local worker) trains a tiny moons
dataset (20 samples, 4 hidden units, full batch) for `--epochs` epochs, and a
short run of 100 epochs on it for comparison. Then Chromium (Debian's, as in
the browser tests, every request off the loopback server refused) opens each
run's page `--repeat` times in a fresh context and reads, from the page
itself, the time from navigation start to both charts drawn (uPlot's draw
hook) with the points the server's chart endpoint sent; and, as the
reference the chart endpoint replaces, fetches the whole history
(GET /runs/{id}/history) and draws every epoch in one uPlot. Medians.
The target: a 100 000-epoch history draws in about a second.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from playwright.sync_api import Browser, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import start_serve

DRAWN = """() => {
  const at = (id) => document.getElementById(id).dataset;
  const cost = at('chart-cost'), accuracy = at('chart-accuracy');
  if (!(Number(cost.drawnPoints) > 0 && Number(accuracy.drawnPoints) > 0)) return null;
  return {ms: Math.max(Number(cost.drawnAt), Number(accuracy.drawnAt)),
          points: Number(cost.drawnPoints)};
}"""

# the reference: every epoch of the history fetched and drawn by one uPlot
WHOLE = """async (runId) => {
  const start = performance.now();
  const h = await (await fetch(`/runs/${runId}/history`)).json();
  const fetched = performance.now();
  const box = document.createElement('div');
  document.body.append(box);
  const series = ['train_cost', 'validation_cost', 'train_accuracy', 'validation_accuracy'];
  const u = new uPlot({width: 600, height: 260, scales: {x: {time: false}},
                       series: [{}, ...series.map(() => ({stroke: '#2563eb'}))]},
                      [h.epoch, ...series.map((s) => h[s])], box);
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  u.destroy();
  return {fetch_ms: fetched - start, ms: performance.now() - start, points: h.epoch.length};
}"""


def train(client: httpx.Client, dataset_id: str, epochs: int) -> tuple[str, float]:
    body = {
        "dataset_id": dataset_id,
        "name": f"bench-{epochs}",
        "hyperparameters": {
            "epochs": epochs,
            "hidden_units": 4,
            "batch_size": None,
            "learning_rate": 0.1,
            "seed": 0,
        },
    }
    start = time.monotonic()
    response = client.post("/runs", json=body)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["id"]
    while (run := client.get(f"/runs/{run_id}").json())["status"] not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        time.sleep(0.2)
    assert run["status"] == "succeeded", run
    return run_id, time.monotonic() - start


def open_page(browser: Browser, base: str, run_id: str) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    refused: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(base):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page = context.new_page()
    page.route("**/*", route)
    page.goto(f"{base}/ui/runs/{run_id}")
    deadline = time.monotonic() + 30
    while (drawn := page.evaluate(DRAWN)) is None:
        assert time.monotonic() < deadline, "the charts were not drawn within 30 s"
        page.wait_for_timeout(20)
    chart = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".filter((e) => e.name.includes('/chart?')).map((e) => e.duration)[0]"
    )
    whole = page.evaluate(WHOLE, run_id)
    context.close()
    assert refused == [], refused
    return {"drawn": drawn, "chart_ms": chart, "whole": whole}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"TWOLAYER_DATABASE_URL": f"sqlite:///{tmp}/bench.db"}
        process, base = start_serve(Path(tmp), env)
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                sample = {"kind": "moons", "n_samples": 20, "noise": 0.1, "seed": 0}
                dataset = client.post("/datasets/samples", json=sample).json()
                long_run, trained = train(client, dataset["id"], args.epochs)
                short_run, _ = train(client, dataset["id"], 100)
            print(f"trained {args.epochs} epochs in {trained:.1f} s")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                open_page(browser, base, short_run)  # warm: the browser's first start
                figures = {
                    name: [open_page(browser, base, run_id) for _ in range(args.repeat)]
                    for name, run_id in (("short", short_run), ("long", long_run))
                }
                browser.close()
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)

    def median(name: str, *keys: str) -> float:
        values = []
        for figure in figures[name]:
            value: Any = figure
            for key in keys:
                value = value[key]
            values.append(float(value))
        return statistics.median(values)

    short_ms = median("short", "drawn", "ms")
    print(f"\nmedian of {args.repeat} page loads each (ms from navigation start)")
    print(
        "| run | epochs | points drawn | charts drawn | GET …/chart "
        "| whole history: fetch | fetch + draw |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, epochs in (("short", 100), ("long", args.epochs)):
        print(
            f"| {name} | {epochs:,} | {median(name, 'drawn', 'points'):,.0f} "
            f"| {median(name, 'drawn', 'ms'):,.0f} | {median(name, 'chart_ms'):,.0f} "
            f"| {median(name, 'whole', 'fetch_ms'):,.0f} | {median(name, 'whole', 'ms'):,.0f} |"
        )
    long_ms = median("long", "drawn", "ms")
    whole_ms = median("long", "whole", "ms")
    print(
        f"\nlong / short page: {long_ms / short_ms:.2f}×; whole history / long page: "
        f"{whole_ms / long_ms:.2f}×; target ~1000 ms: {'met' if long_ms <= 1200 else 'not met'}"
    )


if __name__ == "__main__":
    main()
