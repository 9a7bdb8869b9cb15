"""A real server and Debian's Chromium, driven by Playwright, with every
request that does not go to the loopback server refused and recorded."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.helpers import start_serve

CHROMIUM = "/usr/bin/chromium"
# as the machine's notes say: without the background-networking flags Chromium
# keeps trying to reach Google's hosts
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # never skipped: a missing browser is a failure (.ci/run installs it)
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Site:
    base: str
    refused: list[str] = field(default_factory=list)


@contextmanager
def serving(workdir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`twolayer serve` on SQLite in `workdir` with `env` added; its base URL once
    it answers (it has migrated its database: keys can be made from then on)."""
    full = {"TWOLAYER_DATABASE_URL": f"sqlite:///{workdir}/t.db", **(env or {})}
    ready = "/health" if full.get("TWOLAYER_AUTH") == "required" else "/ready"
    process, base = start_serve(workdir, full, ready=ready)
    try:
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@contextmanager
def guarded_page(browser: Browser, base: str) -> Iterator[tuple[Page, Site]]:
    """A page in a fresh context whose requests off `base`'s host are refused
    and recorded in the Site."""
    site = Site(base)
    host = urlparse(base).hostname

    def only_loopback(route: Route) -> None:
        url = route.request.url
        if urlparse(url).hostname == host:
            route.continue_()
        else:
            site.refused.append(url)
            route.abort()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.route("**/*", only_loopback)
    try:
        yield page, site
    finally:
        context.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`twolayer serve` on the embedded default (SQLite, local executor, auth off)."""
    with serving(tmp_path_factory.mktemp("serve")) as base:
        yield base


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[tuple[Page, Site]]:
    with guarded_page(browser, server) as guarded:
        yield guarded
