"""Swagger UI and ReDoc render from the package's own assets, with no network."""

from __future__ import annotations

import os
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
        path = summary.locator(".opblock-summary-path").inner_text().strip()
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
