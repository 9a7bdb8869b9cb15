"""The dashboard (/ui) in Chromium against a real `twolayer serve`: the runs
page, a run started from the form whose curves grow, cancel, compare, the
decision boundary, and the key asked for when auth is on. Every request off
the loopback server is refused and recorded, and none may be attempted."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from tests.browser.conftest import Site, guarded_page, serving
from tests.helpers import TWOLAYER

# set to a directory to keep the screenshots and look at them
SHOTS = os.environ.get("TWOLAYER_TEST_SCREENSHOTS")
ENDED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Auth off, two workers (a long run never holds up the next test's), and
    the history written every 0.2 s so a short run's curves visibly grow."""
    env = {"TWOLAYER_LOCAL_WORKERS": "2", "TWOLAYER_HISTORY_FLUSH_SECONDS": "0.2"}
    with serving(tmp_path_factory.mktemp("dashboard"), env) as base:
        yield base


@pytest.fixture
def client(site: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site) as client:
        yield client


@pytest.fixture
def ui(browser: Browser, site: str) -> Iterator[tuple[Page, Site]]:
    with guarded_page(browser, site) as guarded:
        page, _ = guarded
        page.on("pageerror", lambda error: errors.append(str(error)))
        errors: list[str] = []
        yield guarded
        assert errors == [], errors  # no script failed on any page
        assert guarded[1].refused == []


def until(page: Page, expression: str, timeout: float = 30) -> Any:
    """Poll `expression` in the page until it is truthy; its value. (Playwright's
    wait_for_function evaluates a string, which the pages' CSP refuses: good.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        assert time.monotonic() < deadline, f"{expression} stayed {value!r} for {timeout} s"
        page.wait_for_timeout(100)


def shot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(Path(SHOTS or tmp_path) / name), full_page=True)


def sample(client: httpx.Client, n: int = 400, seed: int = 0) -> dict[str, Any]:
    body = {"kind": "moons", "n_samples": n, "noise": 0.15, "seed": seed}
    response = client.post("/datasets/samples", json=body)
    assert response.status_code in (200, 201), response.text
    dataset: dict[str, Any] = response.json()
    return dataset


def start(client: httpx.Client, dataset: dict[str, Any], name: str, **hyper: Any) -> str:
    body = {"dataset_id": dataset["id"], "name": name, "hyperparameters": {"seed": 0, **hyper}}
    response = client.post("/runs", json=body)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["id"]
    return run_id


def wait_run(client: httpx.Client, run_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        run: dict[str, Any] = client.get(f"/runs/{run_id}").json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def test_the_runs_page_sorts_filters_and_compares(
    ui: tuple[Page, Site], site: str, client: httpx.Client, tmp_path: Path
) -> None:
    page, _ = ui
    dataset = sample(client, seed=7)
    fast = start(client, dataset, "fast", learning_rate=0.3, epochs=150)
    slow = start(client, dataset, "slow", learning_rate=0.05, epochs=150)
    for run_id in (fast, slow):
        wait_run(client, run_id, ENDED)

    page.goto(f"{site}/ui")
    page.select_option("#filter-dataset", dataset["id"])
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 2
    page.click("th[data-key=learning_rate]")  # ascending
    assert [rows.nth(i).get_attribute("data-run-id") for i in range(2)] == [slow, fast]
    page.click("th[data-key=learning_rate]")  # descending
    assert [rows.nth(i).get_attribute("data-run-id") for i in range(2)] == [fast, slow]
    assert "0.3" in rows.nth(0).inner_text()
    assert "succeeded" in rows.nth(0).inner_text()
    page.select_option("#filter-status", "failed")
    assert rows.count() == 0
    page.select_option("#filter-status", "succeeded")
    assert rows.count() == 2
    shot(page, tmp_path, "runs.png")

    assert page.is_disabled("#compare")
    page.check(f"input[data-run-id='{fast}']")
    page.check(f"input[data-run-id='{slow}']")
    page.click("#compare")
    page.wait_for_selector("body[data-loaded=true]")
    assert f"run={fast}" in page.url
    assert f"run={slow}" in page.url
    differs = page.locator("#compare-hyperparameters tr.differs")
    assert [differs.nth(i).get_attribute("data-name") for i in range(differs.count())] == [
        "learning_rate"
    ]
    assert "fast" in page.inner_text("#compare-metrics thead")
    assert "slow" in page.inner_text("#compare-metrics thead")
    assert int(page.get_attribute("#chart-cost", "data-points") or 0) >= 150
    # one drawn series each for train and validation per run, and the epoch axis
    assert page.evaluate("document.querySelectorAll('#chart-cost .u-legend .u-series').length") == 5
    shot(page, tmp_path, "compare.png")


def test_a_run_started_from_the_form_draws_growing_curves(
    ui: tuple[Page, Site], site: str, client: httpx.Client, tmp_path: Path
) -> None:
    page, _ = ui
    page.goto(f"{site}/ui/new")
    page.fill("#sample-form [name=n_samples]", "2000")
    page.click("#make-sample")
    until(
        page, "document.querySelector('#dataset').selectedOptions[0].text.startsWith('moons (2000')"
    )
    # an invalid value is answered with the API's own message, beside the form
    page.fill("#run-form [name=learning_rate]", "-1")
    page.click("#start")
    page.wait_for_selector("#run-problem:not([hidden])")
    assert "learning_rate" in page.inner_text("#run-problem")
    page.fill("#run-form [name=learning_rate]", "0.1")
    page.fill("#run-form [name=name]", "from-the-form")
    page.fill("#run-form [name=epochs]", "900")  # a few seconds, under the point budget
    page.fill("#run-form [name=batch_size]", "8")
    page.click("#start")
    page.wait_for_url("**/ui/runs/*")
    run_id = page.url.rsplit("/", 1)[-1]

    run = client.get(f"/runs/{run_id}").json()
    assert run["name"] == "from-the-form"
    assert run["hyperparameters"]["epochs"] == 900
    assert run["hyperparameters"]["batch_size"] == 8

    points = "Number(document.querySelector('#chart-cost').dataset.drawnPoints || 0)"
    until(page, f"{points} > 0")
    first = page.evaluate(points)
    assert first < 900  # caught while it trains
    shot(page, tmp_path, "run-early.png")
    until(page, f"{points} > {first}")
    second = page.evaluate(points)
    shot(page, tmp_path, "run-later.png")
    assert second > first
    assert int(page.get_attribute("#run", "data-streamed") or 0) > 0  # grown from the stream

    page.wait_for_selector("#run[data-status=succeeded]", timeout=60_000)
    until(page, f"{points} === 900")  # every epoch: under the point budget
    assert page.is_hidden("#cancel")
    assert page.inner_text("#metrics").count("accuracy") == 1
    page.wait_for_selector("#boundary[data-painted=true][data-epoch='900']")  # drawn at its end
    shot(page, tmp_path, "run-ended.png")


def test_a_csv_uploaded_from_the_form_becomes_the_dataset_and_a_bad_one_says_why(
    ui: tuple[Page, Site], site: str
) -> None:
    page, _ = ui
    page.goto(f"{site}/ui/new")
    page.wait_for_selector("#dataset[data-loaded=true]")
    one_class = b"a,b,label\n0,0,x\n1,1,x\n"
    page.set_input_files(
        "#csv-form [name=file]", {"name": "bad.csv", "mimeType": "text/csv", "buffer": one_class}
    )
    page.fill("#csv-form [name=name]", "one class")
    page.click("#upload")
    page.wait_for_selector("#csv-problem:not([hidden])")
    assert "class" in page.inner_text("#csv-problem")  # the API's own reason
    rows = "".join(f"{i % 7},{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(40))
    page.set_input_files(
        "#csv-form [name=file]",
        {"name": "good.csv", "mimeType": "text/csv", "buffer": f"a,b,answer\n{rows}".encode()},
    )
    page.fill("#csv-form [name=name]", "uploaded from the form")
    page.click("#upload")
    until(page, "document.querySelector('#dataset').selectedOptions[0].text.startsWith('uploaded')")
    assert page.is_hidden("#csv-problem")
    assert "40×2" in page.inner_text("#dataset")


def test_the_cancel_button_cancels_a_running_run(
    ui: tuple[Page, Site], site: str, client: httpx.Client, tmp_path: Path
) -> None:
    page, _ = ui
    # long: 100 000 epochs of 200 steps each, far more than this test waits
    run_id = start(client, sample(client, n=2000), "long", epochs=100_000, batch_size=8)
    page.goto(f"{site}/ui/runs/{run_id}")
    page.wait_for_selector("#run[data-status=running]", timeout=30_000)
    page.click("#cancel")
    assert wait_run(client, run_id, ENDED)["status"] == "cancelled"
    page.wait_for_selector("#run[data-status=cancelled]", timeout=15_000)
    assert page.is_hidden("#cancel")
    shot(page, tmp_path, "cancelled.png")


def test_the_decision_boundary_of_a_moons_run_is_painted(
    ui: tuple[Page, Site], site: str, client: httpx.Client, tmp_path: Path
) -> None:
    page, _ = ui
    run_id = start(client, sample(client), "boundary", epochs=300, learning_rate=0.3)
    wait_run(client, run_id, ENDED)
    page.goto(f"{site}/ui/runs/{run_id}")
    page.wait_for_selector("#boundary[data-painted=true]", timeout=20_000)
    colours = page.evaluate(
        """() => {
          const c = document.querySelector('#boundary');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          const seen = new Set(); let blue = 0, red = 0;
          for (let i = 0; i < d.length; i += 4) {
            seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
            if (d[i + 2] > d[i] + 40) blue++; else if (d[i] > d[i + 2] + 40) red++;
          }
          return {distinct: seen.size, blue, red, pixels: d.length / 4};
        }"""
    )
    assert colours["distinct"] > 100  # shaded by ŷ, not one flat colour
    # both classes' regions: the moons split the plane, roughly in half
    assert colours["blue"] > colours["pixels"] * 0.15
    assert colours["red"] > colours["pixels"] * 0.15
    assert "x0 × x1" in page.inner_text("#boundary-info")
    shot(page, tmp_path, "boundary.png")
    # the downloads, fetched by the page and saved from a blob
    with page.expect_download() as csv:
        page.click("#download-csv")
    lines = Path(csv.value.path()).read_text().splitlines()
    assert lines[0] == "epoch,train_cost,validation_cost,train_accuracy,validation_accuracy"
    assert len(lines) == 301
    with page.expect_download() as npz:
        page.click("#download-npz")
    assert npz.value.suggested_filename == f"{run_id}.npz"
    assert Path(npz.value.path()).read_bytes()[:2] == b"PK"


def test_a_dropped_stream_is_followed_again_from_its_last_event_and_the_chart_refetched(
    ui: tuple[Page, Site], site: str, client: httpx.Client
) -> None:
    """The first events stream drops after one event (id 0); the page opens it
    again with Last-Event-ID 0 and misses no epoch. With a point budget of 50
    the page fetches the downsampled chart again once more than 50 raw epochs
    have been appended, and ends with at most 50 points of all 800 epochs."""
    page, _ = ui
    run_id = start(client, sample(client, n=2000), "dropped", epochs=800, batch_size=8)
    streams: list[dict[str, str]] = []
    charts: list[str] = []
    page.on("request", lambda r: charts.append(r.url) if "/chart?" in r.url else None)

    def events(route: Route) -> None:
        streams.append(route.request.headers)
        if len(streams) == 1:  # one event, then the connection ends without an `end`
            data = '{"status": "queued", "epoch": 0, "epochs": 800, "queue_position": 1}'
            body = f"event: status\nid: 0\ndata: {data}\n\n"
            route.fulfill(status=200, body=body, content_type="text/event-stream")
        else:
            route.continue_()

    page.route("**/events?*", events)
    page.goto(f"{site}/ui/runs/{run_id}?points=50")
    page.wait_for_selector("#run[data-status=succeeded]", timeout=60_000)
    assert len(streams) >= 2
    assert streams[1].get("last-event-id") == "0"
    drawn = "document.querySelector('#chart-cost').dataset"
    # the streamed epochs are drawn as they come, then the final chart, within the budget
    until(page, f"{drawn}.lastEpoch === '800' && +{drawn}.drawnPoints <= 50")
    assert 0 < int(page.evaluate(f"{drawn}.drawnPoints")) <= 50
    # the first, at least one while the run grew past the budget, and the final one
    assert len(charts) >= 3
    assert all("points=50" in url for url in charts)


def create_key(workdir: Path, owner: str) -> str:
    return subprocess.run(
        [TWOLAYER, "keys", "create", "--owner", owner],
        cwd=workdir,
        env={**os.environ, "TWOLAYER_DATABASE_URL": f"sqlite:///{workdir}/t.db"},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_with_auth_on_the_page_asks_for_a_key_and_shows_only_its_owners_runs(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    workdir = tmp_path_factory.mktemp("secured")
    with serving(workdir, {"TWOLAYER_AUTH": "required"}) as base:
        keys = {who: create_key(workdir, who) for who in ("alice", "bob")}
        runs = {}
        for who, key in keys.items():
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as owner:
                runs[who] = start(owner, sample(owner), f"{who}-run", epochs=20)
        with guarded_page(browser, base) as (page, site):
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(f"{base}/ui")
            page.wait_for_selector("#key-dialog[open]")
            shot(page, tmp_path, "key.png")
            page.fill("#key-input", "tl_not-a-key")  # a wrong key is asked for again
            page.click("#key-form button[type=submit]")
            page.wait_for_selector("#key-error:not([hidden])")
            assert "not valid" in page.inner_text("#key-error")
            page.fill("#key-input", keys["alice"])
            page.click("#key-form button[type=submit]")
            page.wait_for_selector(f"tr[data-run-id='{runs['alice']}']")
            assert page.locator(f"tr[data-run-id='{runs['bob']}']").count() == 0
            assert page.locator("#runs tbody tr").count() == 1
            assert "bob-run" not in page.inner_text("body")
            shot(page, tmp_path, "auth-runs.png")

            # the key: in this tab's sessionStorage, in no cookie and no URL
            assert page.evaluate("sessionStorage.getItem('twolayer.api-key')") == keys["alice"]
            assert page.evaluate("document.cookie") == ""
            assert page.context.cookies() == []
            page.goto(f"{base}/ui/runs/{runs['alice']}")  # the same tab: no question asked
            page.wait_for_selector("#run[data-status]")
            assert page.is_hidden("#key-dialog")
            assert "alice-run" in page.inner_text("#run-name")
            page.goto(f"{base}/ui/runs/{runs['bob']}")  # another owner's run: not found
            page.wait_for_selector("#page-error:not([hidden])")
            assert "bob-run" not in page.inner_text("body")
            assert requests
            assert all(keys["alice"] not in url and keys["bob"] not in url for url in requests)
            assert site.refused == []


HOSTILE = (
    '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> 名前 🦄 \u202eevil'
)


def test_names_are_shown_as_text_never_run_as_markup(
    ui: tuple[Page, Site], site: str, client: httpx.Client
) -> None:
    """A run and a dataset named with markup, scripts and any Unicode: the runs
    page and the run page show the names verbatim and run nothing of them."""
    features = [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] * 5
    response = client.post(
        "/datasets", json={"name": HOSTILE, "features": features, "labels": [0, 0, 1, 1] * 5}
    )
    assert response.status_code == 201, response.text
    run_id = start(client, response.json(), HOSTILE, epochs=5)
    wait_run(client, run_id, ENDED)
    page, _ = ui
    page.goto(f"{site}/ui")
    row = page.locator(f"#runs tbody tr[data-run-id='{run_id}']")
    row.wait_for()
    assert HOSTILE in row.inner_text()  # the run's name and the dataset's, as text
    page.goto(f"{site}/ui/runs/{run_id}")
    until(page, f"document.getElementById('run-name').textContent.includes({HOSTILE!r})")
    until(page, "document.querySelector('#boundary-panel:not([hidden])')")
    assert page.evaluate("window.__pwned") is None
    # the CSP would stop the handler; the markup must not even be made
    assert page.locator("img").count() == 0


def test_the_models_page_registers_a_run_and_moves_an_alias(
    ui: tuple[Page, Site], site: str, client: httpx.Client, tmp_path: Path
) -> None:
    page, _ = ui
    dataset = sample(client, n=200, seed=11)
    first, second = (start(client, dataset, f"reg-{i}", epochs=20) for i in (1, 2))
    for run_id in (first, second):
        wait_run(client, run_id, ("succeeded",))
    page.goto(f"{site}/ui/models")
    page.fill("#register-model", "moons-ui")
    page.select_option("#register-run", first)
    page.click("#register-form button[type=submit]")
    page.wait_for_selector("#versions tr[data-version='1']")
    page.select_option("#register-run", second)
    page.click("#register-form button[type=submit]")
    page.wait_for_selector("#versions tr[data-version='2']")
    assert "moons-ui" in page.inner_text("#models tbody")

    page.fill("#alias-name", "champion")
    page.select_option("#alias-version", "1")
    page.click("#alias-form button[type=submit]")
    until(
        page,
        "document.querySelector(\"#versions tr[data-version='1']\").innerText.includes('champion')",
    )
    assert client.get("/models/moons-ui").json()["aliases"] == {"champion": 1}
    shot(page, tmp_path, "models.png")

    page.click("#versions tr[data-version='1'] button")  # aliased: refused, and said why
    until(page, "!document.getElementById('detail-problem').hidden")
    assert "champion" in page.inner_text("#detail-problem")
    assert page.locator("#versions tbody tr").count() == 2
    page.click("#delete-model")
    until(page, "document.getElementById('detail').hidden")
    assert client.get("/models/moons-ui").status_code == 404
    assert client.get(f"/runs/{first}").status_code == 200


def test_a_prediction_is_explained_on_the_runs_page(
    ui: tuple[Page, Site], site: str, client: httpx.Client, tmp_path: Path
) -> None:
    page, _ = ui
    run_id = start(client, sample(client, n=200, seed=12), "explained", epochs=60)
    wait_run(client, run_id, ("succeeded",))
    page.goto(f"{site}/ui/runs/{run_id}")
    page.wait_for_selector("#explain-panel:not([hidden])")
    page.fill("#explain-x0", "0.5")
    page.fill("#explain-x1", "0.25")
    page.click("#explain-form button[type=submit]")
    page.wait_for_selector("#explain-table:not([hidden])")
    expected = client.post(
        f"/runs/{run_id}/predict", json={"instances": [[0.5, 0.25]], "explain": True}
    ).json()
    shown = float(page.get_attribute("#explain-result", "data-probability") or "nan")
    assert shown == expected["probabilities"][0]
    rows = page.locator("#explain-table tbody tr")
    assert rows.count() == 2
    for j in range(2):
        assert (
            float(rows.nth(j).get_attribute("data-gradient") or "nan")
            == (expected["gradients"][0][j])
        )
        assert (
            float(rows.nth(j).get_attribute("data-attribution") or "nan")
            == (expected["attributions"][0][j])
        )
    assert "x0" in rows.nth(0).inner_text()
    assert f"label {expected['labels'][0]}" in page.inner_text("#explain-result")
    shot(page, tmp_path, "explain.png")
