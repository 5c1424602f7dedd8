"""The FastAPI application, built by `create_app(settings)` (no globals: tests build many)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from cert_authority import routes_pki
from cert_authority.db import create_db_engine, migrate
from cert_authority.error_map import classify
from cert_authority.errors import ServiceError
from cert_authority.pki import PkiService
from cert_authority.settings import Settings, load_settings
from keys.errors import KeysError

log = logging.getLogger("ecas")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    engine = create_db_engine(settings.effective_database_url)
    migrate(engine)
    app = FastAPI(
        title="ECAS 电子证照与电子印章服务",
        version="0.1.0",
        description="E-licence and e-seal authority: SM2 PKI, sealed licences, verification.",
    )
    app.state.settings = settings
    app.state.pki = PkiService(settings, engine)
    app.include_router(routes_pki.router)

    @app.get("/healthz", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.exception_handler(ServiceError)
    @app.exception_handler(KeysError)
    @app.exception_handler(ValueError)
    async def known_error(_request: Request, exc: Exception) -> JSONResponse:
        status, code = classify(exc) or (500, "internal_error")
        message = str(exc)
        if status >= 500:
            # The detail is for operators' logs; users get a message without internals.
            log.error("request failed: %s: %s", type(exc).__name__, exc)
            message = "数据库暂不可用，请稍后重试" if status == 503 else "服务内部错误，请联系管理员"
        return JSONResponse({"error": code, "message": message}, status_code=status)

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", exc.orig)
        return JSONResponse(
            {"error": "database_unavailable", "message": "数据库暂不可用，请稍后重试"}, status_code=503
        )

    return app
