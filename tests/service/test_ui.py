"""The dashboard's page shells (/ui, app.api.ui): HTML under a strict
Content-Security-Policy, nothing from outside, open without a key when auth is
on, and no owner data in them (the pages' scripts fetch it with the key)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import escape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.ui import hyperparameter_fields
from app.core.settings import Settings, configure
from app.main import create_app
from app.nn.hyperparameters import DEFAULTS, RULES
from tests.service.conftest import RecordingExecutor, bearer, sample_dataset, secured_settings

STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
PAGES = (
    "/ui",
    "/ui/new",
    "/ui/compare?run=a&run=b",
    "/ui/runs/9b2f4c1e",
    "/ui/models",
    "/ui/sweeps",
    "/ui/sweeps/9b2f4c1e",
)
NAV = ("Runs", "New run", "Models", "Sweeps", "API docs")


def assets_of(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def check_page(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.text)
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy  # no inline script, no eval
    assert "connect-src 'self'" in policy
    assert "unsafe" not in policy
    html = response.text
    assert "http://" not in html
    assert "https://" not in html
    assert "//" not in "".join(a for a in assets_of(html) if not a.startswith("/"))
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None  # no inline script
    assert " style=" not in html
    for asset in assets_of(html):  # every script, style sheet and link is this server's
        assert asset.startswith("/"), (path, asset)
        if asset.startswith("/static/"):
            assert client.get(asset).status_code == 200, asset
    return html


def test_every_page_is_html_under_the_policy_with_nothing_from_outside(api: TestClient) -> None:
    for path in PAGES:
        html = check_page(api, path)
        assert '<nav class="bar">' in html
        assert 'href="/docs"' in html
        nav = html.split('<nav class="bar">', 1)[1].split("</nav>", 1)[0]
        assert re.findall(r">([^<>]+)</a>", nav)[1:] == list(NAV), path  # after the brand
        assert '<a href="/ui/sweeps"' in nav
    assert api.get("/ui/runs/not%20an%20id").status_code == 404
    assert api.get("/ui/sweeps/not%20an%20id").status_code == 404
    # the scripts are the project's own files, served with the vendored chart library
    assert (STATIC / "uplot-1.6.32" / "uPlot.iife.min.js").is_file()
    scripts = ("common.js", "runs.js", "run.js", "compare.js", "new.js", "models.js")
    for script in (*scripts, "sweeps.js", "sweep.js", "sweep-chart.js"):
        body = api.get(f"/static/ui/{script}").text
        assert "http://" not in body
        assert "https://" not in body


def test_the_sweeps_pages_are_their_shells_with_their_scripts(api: TestClient) -> None:
    listing = check_page(api, "/ui/sweeps")
    assert 'src="/static/ui/sweeps.js"' in listing
    assert '<table class="grid" id="sweeps">' in listing
    assert '<a href="/ui/sweeps" aria-current="page">Sweeps</a>' in listing
    page = check_page(api, "/ui/sweeps/9b2f4c1e")
    assert 'src="/static/ui/sweep.js"' in page
    assert 'data-sweep-id="9b2f4c1e"' in page
    for part in ('id="trials"', 'id="chart"', 'id="chart-param"', 'id="cancel"', 'id="summary"'):
        assert part in page
    assert '<a href="/ui/sweeps" aria-current="page">Sweeps</a>' in page
    # the page's modules, imported by name: each one is served
    for script in ("sweeps.js", "sweep.js"):
        body = api.get(f"/static/ui/{script}").text
        for module in re.findall(r'from "\./([\w-]+\.js)"', body):
            assert api.get(f"/static/ui/{module}").status_code == 200, module


def test_the_new_run_form_is_rendered_from_the_engines_rules(
    api: TestClient, settings: Settings
) -> None:
    html = api.get("/ui/new").text
    fields = hyperparameter_fields(settings)
    assert [f.name for f in fields] == list(RULES)
    for name, rule in RULES.items():
        assert f'name="{name}" data-kind="{rule.kind}"' in html
        assert (
            escape(rule.description).replace("&quot;", "&#34;").replace("&#x27;", "&#39;") in html
        )
    epochs = next(f for f in fields if f.name == "epochs")
    assert epochs.maximum == settings.max_epochs  # the service's cap, as the schema states it
    assert epochs.default == DEFAULTS["epochs"]
    assert f'max="{settings.max_epochs}"' in html
    for kind in ("moons", "circles", "xor", "spiral", "blobs", "flower"):
        assert f"<option>{kind}</option>" in html


@pytest.fixture
def secured_api(settings: Settings, recorder: RecordingExecutor) -> Iterator[TestClient]:
    app = create_app(secured_settings(settings.database_url), executor_factory=lambda _: recorder)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    configure(None)


def test_with_auth_on_the_shells_need_no_key_and_hold_no_run_data(
    secured_api: TestClient, keys: dict[str, str]
) -> None:
    alice = bearer(keys["alice"])
    dataset = sample_dataset(secured_api, headers=alice)
    response = secured_api.post(
        "/runs",
        json={"dataset_id": dataset["id"], "name": "alices-secret-run"},
        headers=alice,
    )
    assert response.status_code == 202
    run_id = response.json()["id"]
    assert secured_api.get("/runs").status_code == 401  # the API itself still wants the key
    assert secured_api.get(f"/runs/{run_id}/chart").status_code == 401
    for path in (*PAGES, f"/ui/runs/{run_id}", f"/ui/compare?run={run_id}"):
        html = check_page(secured_api, path)  # no key sent
        assert "alices-secret-run" not in html
        assert dataset["id"] not in html
        assert dataset["name"] not in html
        assert "alice" not in html
    assert "set-cookie" not in secured_api.get("/ui").headers


def test_the_servers_address_opens_the_dashboard_without_a_key(secured_api: TestClient) -> None:
    response = secured_api.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui"
    assert secured_api.get("/").status_code == 200  # followed: the runs page's shell
