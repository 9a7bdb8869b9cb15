"""The dashboard at /ui: page shells rendered here, filled in by the browser.

The shells carry no owner data, so they are open (AuthGate's OPEN_PATHS):
a browser's navigation cannot send `Authorization`, and the key must never
be in a URL or a cookie. The pages' scripts (app/static/ui) ask for the key
when the API answers 401, keep it in sessionStorage and send it with every
call. Everything is served from this server under a Content-Security-Policy
without inline scripts; the charts are the vendored uPlot (app/static).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.api.deps import SettingsDep
from app.core.errors import NotFound
from app.core.ids import is_id
from app.core.settings import Settings
from app.nn.hyperparameters import DEFAULTS, RULES
from app.nn.samples import SAMPLE_KINDS
from app.schemas.runs import CAPS

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
UPLOT = "uplot-1.6.32"

# Only this server, no inline script, no inline style attribute in the HTML
# (the scripts set styles through the DOM, which a policy does not govern).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'self'",
    )
)

router = APIRouter(prefix="/ui", include_in_schema=False)
root_router = APIRouter(include_in_schema=False)
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class FormField:
    """One hyperparameter as the new-run form shows it, from the engine's rule."""

    name: str
    kind: str  # int, float, bool, choice
    default: Any
    description: str
    expected: str  # the rule in words: "an integer >= 1", "in [0, 1)"
    choices: tuple[str, ...]
    nullable: bool
    minimum: float | None
    maximum: float | None

    @property
    def default_text(self) -> str:
        if self.default is None:
            return ""
        if self.kind == "bool":
            return "true" if self.default else "false"
        return str(self.default)


def hyperparameter_fields(settings: Settings) -> list[FormField]:
    """Every hyperparameter of the request schema (HyperparametersIn is made from
    the same RULES and CAPS): nothing about them is repeated in the scripts."""
    fields = []
    for name, rule in RULES.items():
        cap = CAPS[name](settings) if name in CAPS else None
        expected = rule.expected() + (f", at most {cap}" if cap is not None else "")
        fields.append(
            FormField(
                name=name,
                kind=rule.kind,
                default=DEFAULTS[name],
                description=rule.description,
                expected=expected,
                choices=rule.choices,
                nullable=rule.nullable,
                # inclusive bounds only: a strict one (gt, lt) is left to the server's 422
                minimum=rule.ge,
                maximum=cap if cap is not None else rule.le,
            )
        )
    return fields


def _page(request: Request, template: str, title: str, script: str, **context: Any) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    html = _env.get_template(f"ui/{template}").render(
        root=root,
        title=title,
        script=script,
        uplot=f"{root}/static/{UPLOT}",
        **context,
    )
    response = HTMLResponse(html)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@root_router.get("/")
async def home(request: Request) -> RedirectResponse:
    """The server's address in a browser opens the dashboard."""
    return RedirectResponse(f"{request.scope.get('root_path', '')}/ui", status_code=307)


@router.get("")
async def runs_page(request: Request) -> HTMLResponse:
    return _page(request, "runs.html", "Runs", "runs.js", nav="runs")


@router.get("/models")
async def models_page(request: Request) -> HTMLResponse:
    return _page(request, "models.html", "Models", "models.js", nav="models")


@router.get("/sweeps")
async def sweeps_page(request: Request) -> HTMLResponse:
    return _page(request, "sweeps.html", "Sweeps", "sweeps.js", nav="sweeps")


@router.get("/sweeps/{sweep_id}")
async def sweep_page(request: Request, sweep_id: str) -> HTMLResponse:
    if not is_id(sweep_id):
        raise NotFound(f"no sweep {sweep_id!r}")
    return _page(request, "sweep.html", "Sweep", "sweep.js", nav="sweeps", sweep_id=sweep_id)


@router.get("/new")
async def new_run_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(
        request,
        "new.html",
        "New run",
        "new.js",
        nav="new",
        fields=hyperparameter_fields(settings),
        sample_kinds=SAMPLE_KINDS,
    )


@router.get("/compare")
async def compare_page(request: Request) -> HTMLResponse:
    return _page(request, "compare.html", "Compare runs", "compare.js", nav="runs")


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str) -> HTMLResponse:
    if not is_id(run_id):
        raise NotFound(f"no run {run_id!r}")
    return _page(request, "run.html", "Run", "run.js", nav="runs", run_id=run_id)
