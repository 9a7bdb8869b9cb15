"""The dashboard's sweeps pages in Chromium against a real `twolayer serve`: a
small grid sweep followed live to its end, its trials' table (one column per
searched hyperparameter, sorted by a click), the scatter of the metric against
a parameter drawn with uPlot, and a hostile name shown as text."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import Site, guarded_page, serving
from tests.browser.test_dashboard import SHOTS, sample, until

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> 名前 🦄'
SEARCH = {"hidden_units": [1, 2, 4], "optimizer": ["sgd", "adam"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two workers, and the sweeps' steps taken every 0.2 s: a short sweep ends soon."""
    env = {"TWOLAYER_LOCAL_WORKERS": "2", "TWOLAYER_SWEEP_POLL_SECONDS": "0.2"}
    with serving(tmp_path_factory.mktemp("sweeps"), env) as base:
        yield base


@pytest.fixture
def ui(browser: Browser, site: str) -> Iterator[tuple[Page, Site]]:
    with guarded_page(browser, site) as guarded:
        errors: list[str] = []
        guarded[0].on("pageerror", lambda error: errors.append(str(error)))
        yield guarded
        assert errors == [], errors
        assert guarded[1].refused == []


def start_sweep(client: httpx.Client, name: str) -> dict[str, Any]:
    body = {
        "dataset_id": sample(client, n=200, seed=3)["id"],
        "name": name,
        "base": {"epochs": 20},
        "search": SEARCH,
        "strategy": "grid",
        "metric": "validation.accuracy",
        "parallel": 2,
        "seed": 0,
    }
    response = client.post("/sweeps", json=body)
    assert response.status_code == 202, response.text
    sweep: dict[str, Any] = response.json()
    return sweep


def wait_sweep(client: httpx.Client, sweep_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        sweep: dict[str, Any] = client.get(f"/sweeps/{sweep_id}").json()
        if sweep["status"] != "running":
            return sweep
        assert time.monotonic() < deadline, sweep
        time.sleep(0.1)


def column(page: Page, key: str) -> list[str]:
    cells: list[str] = page.evaluate(
        """(key) => {
          const heads = [...document.querySelectorAll('#trials thead th')];
          const at = heads.findIndex((th) => th.dataset.key === key);
          const rows = [...document.querySelectorAll('#trials tbody tr')];
          return rows.map((tr) => tr.cells[at].innerText);
        }""",
        key,
    )
    return cells


def test_a_sweep_is_followed_to_its_end_tabled_sorted_and_charted(
    ui: tuple[Page, Site], site: str, tmp_path: Path
) -> None:
    page, _ = ui
    polls: list[str] = []
    with httpx.Client(base_url=site) as client:
        sweep = start_sweep(client, HOSTILE)
        page.on("request", lambda r: polls.append(r.url) if "/sweeps/" in r.url else None)
        page.goto(f"{site}/ui/sweeps/{sweep['id']}")
        page.wait_for_selector("#sweep[data-status]")
        ended = wait_sweep(client, sweep["id"])
    assert ended["status"] == "succeeded"
    page.wait_for_selector("#sweep[data-status=succeeded]", timeout=15_000)
    assert page.is_hidden("#cancel")
    # polled while running, and no more once ended
    seen = len(polls)
    page.wait_for_timeout(1500)
    assert len(polls) == seen

    rows = page.locator("#trials tbody tr")
    assert rows.count() == 6 == len(ended["trials"])
    keys = page.eval_on_selector_all("#trials thead th", "ths => ths.map(th => th.dataset.key)")
    assert keys[:3] == ["number", "param:hidden_units", "param:optimizer"]
    shown = zip(column(page, "param:hidden_units"), column(page, "param:optimizer"), strict=True)
    assert sorted(shown) == sorted(
        (str(t["params"]["hidden_units"]), t["params"]["optimizer"]) for t in ended["trials"]
    )
    best = ended["best"]["number"]
    assert page.get_attribute("#trials tr.best", "data-number") == str(best)

    def values() -> list[float]:
        shown = page.eval_on_selector_all("#trials tbody tr", "rs => rs.map(r => r.dataset.value)")
        return [float(v) for v in shown]

    page.click("#trials th[data-key=value]")  # maximized: the best first
    assert values() == sorted(values(), reverse=True)
    assert rows.nth(0).get_attribute("class") == "best"
    page.click("#trials th[data-key=value]")
    assert values() == sorted(values())
    page.click("#trials th[data-key='param:hidden_units']")
    assert [int(v) for v in column(page, "param:hidden_units")] == [1, 1, 2, 2, 4, 4]

    # the scatter: every trial drawn, a category axis for the optimizer
    chart = "document.querySelector('#chart').dataset"
    until(page, f"{chart}.drawnPoints === '6'")
    assert page.evaluate(f"{chart}.axis") == "linear"
    page.select_option("#chart-param", "optimizer")
    until(page, f"{chart}.axis === 'category' && {chart}.drawnPoints === '6'")
    inked = page.evaluate(
        """() => {
          const c = document.querySelector('#chart canvas');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let blue = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 200 && d[i] < 80) blue++;
          return blue;
        }"""
    )
    assert inked > 50  # the complete trials' points, in their blue
    assert page.is_hidden("#chart-note")  # none left out

    # the hostile name: text in the heading, in the list, nothing of it run
    assert page.inner_text("#sweep-name") == HOSTILE
    page.select_option("#chart-param", "hidden_units")
    page.screenshot(path=str(Path(SHOTS or tmp_path) / "sweep.png"), full_page=True)
    page.goto(f"{site}/ui/sweeps")
    row = page.locator(f"#sweeps tbody tr[data-sweep-id='{sweep['id']}']")
    row.wait_for()
    assert HOSTILE in row.inner_text()
    assert "6/6" in row.inner_text()
    assert page.get_attribute("nav a[aria-current=page]", "href") == "/ui/sweeps"
    row.locator("a").click()
    page.wait_for_url(f"**/ui/sweeps/{sweep['id']}")
    page.wait_for_selector("#sweep[data-status=succeeded]")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
