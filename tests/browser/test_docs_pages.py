"""Swagger UI and ReDoc render from the package's own assets, with no network."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx2 as httpx
from playwright.sync_api import Page

from tests.browser.conftest import Site

# set to a directory to keep the screenshots and look at them
SHOTS = os.environ.get("TWOLAYER_TEST_SCREENSHOTS")


def test_swagger_ui_lists_every_operation_offline(page: tuple[Page, Site], tmp_path: Path) -> None:
    browser_page, site = page
    spec = httpx.get(f"{site.base}/openapi.json").json()
    expected = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
    assert len(expected) >= 19
    browser_page.goto(f"{site.base}/docs")
    browser_page.wait_for_selector(".opblock-summary", timeout=20_000)
    shown = set()
    for summary in browser_page.locator(".opblock-summary").all():
        method = summary.locator(".opblock-summary-method").inner_text().strip()
        # a deprecated operation's path has a class of its own (struck through)
        where = summary.locator(".opblock-summary-path, .opblock-summary-path__deprecated")
        path = where.inner_text().strip()
        shown.add((method, path.replace("\u200b", "")))  # Swagger UI breaks paths with ZWSP
    assert shown == expected
    browser_page.screenshot(path=str(Path(SHOTS or tmp_path) / "docs.png"), full_page=True)
    assert site.refused == []


def test_redoc_renders_the_api_offline(page: tuple[Page, Site]) -> None:
    browser_page, site = page
    browser_page.goto(f"{site.base}/redoc")
    browser_page.wait_for_selector("[data-item-id*='operation/']", state="attached", timeout=20_000)
    assert "twolayer" in browser_page.inner_text("h1")
    menu = browser_page.locator("li[data-item-id*='operation/']")
    assert menu.count() >= 19
    assert "/datasets/samples" in browser_page.inner_text("body")
    browser_page.screenshot(path=str(Path(SHOTS or ".") / "redoc.png")) if SHOTS else None
    assert site.refused == []


def execute(page: Page, tag: str, operation_id: str) -> tuple[str, str]:
    """Open an operation in Swagger UI, press Execute on its example as it
    stands, and read the answer's status code and body off the page."""
    block = page.locator(f"#operations-{tag}-{operation_id}")
    if not block.locator(".execute").count():
        block.locator(".opblock-summary").click()
    block.locator(".execute").click()
    status = block.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for(timeout=20_000)
    code = status.first.inner_text().strip()
    body = block.locator(".live-responses-table .response-col_description pre").first.inner_text()
    block.locator(".btn-clear").click()  # the next press waits for a fresh answer
    return code, body


def test_the_swagger_tour_pressed_in_order_ends_with_a_prediction(
    page: tuple[Page, Site],
) -> None:
    browser_page, site = page
    browser_page.goto(f"{site.base}/docs")
    browser_page.wait_for_selector(".opblock-summary", timeout=20_000)
    assert execute(browser_page, "datasets", "create_sample")[0] in ("200", "201")
    assert execute(browser_page, "runs", "create_run")[0] == "202"
    deadline = time.monotonic() + 60
    while True:  # as a person would: press again until the run has ended
        code, body = execute(browser_page, "runs", "list_runs")
        assert code == "200"
        if '"succeeded"' in body or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert '"moons-tour"' in body
    assert '"succeeded"' in body
    code, body = execute(browser_page, "prediction", "predict")
    assert code == "200", body
    answer = json.loads(body)
    assert answer["labels"] == [0, 1]
    if SHOTS:
        browser_page.screenshot(path=str(Path(SHOTS) / "tour.png"), full_page=True)
    assert site.refused == []
