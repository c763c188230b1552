"""The static files every service serves, so that pages need no inline script or style (shared/csp.py) and
nothing comes from a CDN: the header's stylesheet at ``/static/site.css``, and ``/docs``: Swagger UI 5 from the
installed package ``fastapi-offline`` (its files at ``/static/docs/...``), started by a small script of ours.
``serve`` gives a service's own files a path of their own (``/static/<service>/...``, routed to it by the proxy)."""

from __future__ import annotations

from html import escape
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from shared.csp import HEADER, page_policy

STATIC = Path(__file__).resolve().parent / "static"
SWAGGER_UI = Path(str(resources.files("fastapi_offline") / "static"))  # Swagger UI's dist (reads OpenAPI 3.1)
CACHE = {"Cache-Control": "max-age=300"}


def serve(router: APIRouter, prefix: str, files: dict[str, Path]) -> None:
    """``GET <prefix>/<name>`` for each of ``files`` (name → path), and nothing else."""

    @router.get(prefix + "/{name}", include_in_schema=False)
    async def static_file(name: str) -> FileResponse:
        path = files.get(name)
        if path is None:
            raise HTTPException(status_code=404, detail=f"No such file: {prefix}/{name}")
        return FileResponse(path, headers=CACHE)


def files_in(directory: Path) -> dict[str, Path]:
    """Every file directly in ``directory`` (*.css, *.js), by name."""
    return {path.name: path for path in sorted(directory.iterdir()) if path.suffix in (".css", ".js")}


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – API</title>
<link rel="stylesheet" href="static/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="static/docs/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="static/docs/swagger-ui-bundle.js"></script>
<script src="static/docs/docs.js"></script>
</body>
</html>
"""


def static_router() -> APIRouter:
    """``/static/site.css``, ``/docs`` and its files. Links on ``/docs`` are relative, so that it works as well
    behind the proxy under ``/services/<name>/docs``."""
    router = APIRouter(include_in_schema=False)
    serve(router, "/static", {"site.css": STATIC / "site.css"})
    docs = {name: SWAGGER_UI / name for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")}
    serve(router, "/static/docs", {**docs, "docs.js": STATIC / "docs.js"})
    policy = page_policy()

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi = (request.app.openapi_url or "/openapi.json").lstrip("/")
        page = DOCS_PAGE.format(title=escape(request.app.title), openapi=escape(openapi))
        return HTMLResponse(page, headers={HEADER: policy})

    return router
