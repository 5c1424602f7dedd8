"""Mounting the pages on the app: static files, the routers and the front page."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from cert_authority.web import (
    console,
    console_batch_files,
    console_type_form,
    console_types,
    counter,
    counter_cases,
    rules_pages,
    staff_pages,
    stats_pages,
    wallet,
)
from cert_authority.web.common import STATIC_DIR, render
from cert_authority.web.licence_images import warm_pictures
from cert_authority.web.routing import add_routes

log = logging.getLogger("ecas.web")


def _warm_on_start(app: FastAPI) -> None:
    """When the server starts (its lifespan, not when an app is built: tests build many), the
    licence pictures are warmed in a background thread while the server already answers."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(started: FastAPI) -> AsyncIterator[Any]:
        threading.Thread(target=_warm, args=(started.state,), name="ecas-warm", daemon=True).start()
        async with inner(started) as state:
            yield state

    app.router.lifespan_context = lifespan


def _warm(state: Any) -> None:
    warm_pictures(state)
    try:
        state.cases.warm_up()
    except Exception:
        log.warning("warming the case work failed; the first case will be slower", exc_info=True)


def include_pages(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _warm_on_start(app)
    for module in (
        staff_pages,
        wallet,
        counter,
        counter_cases,
        console_batch_files,
        console,
        console_type_form,
        console_types,
        stats_pages,
        rules_pages,
    ):
        add_routes(app, module.router)

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        return render(request, "index.html")

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> Response:
        """Swagger UI from the package's own copy (static/docs): it works without internet access."""
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} · 接口文档",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
        )
