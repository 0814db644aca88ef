"""The operator console: a page and its scripts, served at ``/console`` by the gateway itself.

The console is static files shipped in the package (``console_assets/``): plain HTML, CSS and ES
modules with no build step and nothing fetched from elsewhere, so that it works on a cluster with no way
out and a change to it is an edit to a file. Everything it shows comes from the API with the key the
person signs in with, so the files themselves are public (``domain.access.is_public``).
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from marketing_agents.domain.access import CONSOLE

ASSETS = resources.files("marketing_agents.serve_app").joinpath("console_assets")


def add_console_routes(app: FastAPI) -> None:
    @app.get(CONSOLE, include_in_schema=False)
    async def console_root() -> RedirectResponse:
        # Relative asset paths in index.html resolve under /console/ only with the trailing slash; a
        # relative Location keeps Serve's route_prefix, whatever it is.
        return RedirectResponse("console/", status_code=308)

    app.mount(CONSOLE, StaticFiles(directory=str(ASSETS), html=True), name="console")
