"""Swagger UI at /docs and ReDoc at /redoc, from assets inside the package.

FastAPI's defaults load both from a CDN, which leaves blank pages on a
machine without internet. The assets are vendored from the npm registry
into app/static (versions and licences in its README.md) and served at
/static; nothing on these pages asks for anything outside this server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
SWAGGER_UI = "swagger-ui-5.35.0"
REDOC = "redoc-2.5.4"

router = APIRouter(include_in_schema=False)

# The pages may load only from this server. The browser refuses anything
# else before it is sent (ReDoc's footer asks a CDN for its logo; the image
# then hides itself).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # the pages' inline start-up scripts
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search runs in a worker
        "connect-src 'self'",
        "frame-ancestors 'self'",
    )
)

SWAGGER_UI_PARAMETERS = {
    "validatorUrl": None,  # the default asks validator.swagger.io for a badge
    "tryItOutEnabled": True,  # the tour's examples run at one press of Execute
    "displayRequestDuration": True,
    "persistAuthorization": True,
}


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)


def _url(request: Request, path: str) -> str:
    return f"{request.scope.get('root_path', '')}{path}"


def _secured(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    assets = _url(request, f"/static/{SWAGGER_UI}")
    return _secured(
        get_swagger_ui_html(
            openapi_url=_url(request, "/openapi.json"),
            title="twolayer: Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return _secured(
        get_redoc_html(
            openapi_url=_url(request, "/openapi.json"),
            title="twolayer: ReDoc",
            redoc_js_url=_url(request, f"/static/{REDOC}/redoc.standalone.js"),
            redoc_favicon_url=_url(request, f"/static/{SWAGGER_UI}/favicon-32x32.png"),
            with_google_fonts=False,
        )
    )
